#!/bin/sh
# Smoke test for the cgroup v2 guest (vm/guest.sh vm/payload-smoke): the guest
# really is cgroup v2, and rt runs a container there whose cgroup is created at
# linux.cgroupsPath and removed after the run, with cgroup2 mounted inside; `rt check`
# finds what a v2 host offers.
# busybox sh only. Prints "N passed, M failed"; exits non-zero on a failure.

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() {  # check DESCRIPTION COMMAND...
  d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
out_has() { printf '%s\n' "$out" | grep -q "$@"; }  # out_has GREP-ARGS: grep the last output

CG=/sys/fs/cgroup
ROOTFS=${RT_VM_ROOTFS:-/rootfs}
STATE=/run/rt

# A bundle from `rt spec`, with the rootfs copied in and config.json edited.
# make_bundle DIR CGROUPS_PATH SHELL_COMMAND (the command: no double quote, backslash, # or &)
make_bundle() {
  mkdir -p "$1" && cp -a "$ROOTFS" "$1/rootfs" && rt spec -b "$1" || return 1
  sed -i -e 's/"terminal": true/"terminal": false/' \
    -e "s#^\\([[:space:]]*\\)\"sh\"\$#\\1\"sh\", \"-c\", \"$3\"#" \
    -e "s|^\\([[:space:]]*\\)\"linux\": {\$|&\\n\\1\\t\"cgroupsPath\": \"$2\",|" \
    "$1/config.json"
  grep -q "\"cgroupsPath\": \"$2\"" "$1/config.json" && grep -q '"terminal": false' "$1/config.json"
}

echo "# guest: $(uname -r), $(nproc) cpus"

# --- the guest's cgroup v2 hierarchy
# busybox stat knows no name for it: 63677270 is CGROUP2_SUPER_MAGIC.
check "/sys/fs/cgroup is cgroup2" test "$(stat -f -c %t $CG)" = 63677270
echo "# controllers: $(cat $CG/cgroup.controllers)"
echo "# subtree_control: $(cat $CG/cgroup.subtree_control)"
for c in cpu memory pids io; do
  check "controller $c available and enabled" \
    sh -c "grep -qw $c $CG/cgroup.controllers && grep -qw $c $CG/cgroup.subtree_control"
done

# --- rt check on v2, run from a cgroup of the payload's own (cgroup.kill and cgroup.freeze
# are not in the root cgroup): cgroup version 2, cgroup.kill and CLONE_INTO_CGROUP
# there, exit 0 (everything the default config needs).
# item_is NAME PATTERN: the JSON item NAME has a line matching PATTERN (the fields follow
# "name" in a fixed order: area, available, value).
item_is() { grep -A4 "\"name\": \"$1\"," /tmp/check.json | grep -q "$2"; }
mkdir $CG/rt-check && echo $$ > $CG/rt-check/cgroup.procs
rt check --format json > /tmp/check.json
rc=$?
rt check | grep -E '^(yes|no |NO!) (cgroup\.|kernel|namespace\.time|mount\.idmap|seccomp\.user)' | cut -c1-150 | sed 's/^/# check: /'
echo $$ > $CG/cgroup.procs && rmdir $CG/rt-check
check "rt check exits 0 (got $rc)" test $rc = 0
check "rt check: cgroup.version is 2" item_is cgroup.version '"value": "2"'
check "rt check: cgroup.kill available" item_is cgroup.kill '"available": true'
check "rt check: CLONE_INTO_CGROUP available" item_is cgroup.clone_into_cgroup '"available": true'
check "rt check: cgroup.freezer is v2" item_is cgroup.freezer '"value": "v2"'
check "rt check: devices via eBPF" item_is cgroup.controller.devices '"available": true'
check "rt check: nothing missing for the default config" grep -q '"missingForDefaultConfig": \[\]' /tmp/check.json

# --- rt run c1 with cgroupsPath /rt-vm/c1 (no cgroup namespace in the spec)
B=/tmp/bundle-c1
check "rt spec + sed made bundle $B" make_bundle $B /rt-vm/c1 'cat /proc/self/cgroup; echo ok-from-v2'
out=$(rt --root $STATE run -b $B c1 2>&1)
rc=$?
echo "$out" | sed 's/^/# c1: /'
check "rt run c1 exits 0 (got $rc)" test $rc = 0
# Without a cgroup namespace the container sees its full path from the root.
check "c1 is in cgroup 0::/rt-vm/c1" out_has -x "0::/rt-vm/c1"
check "c1 printed ok-from-v2" out_has -x ok-from-v2
check "$CG/rt-vm/c1 removed after the run" test ! -e $CG/rt-vm/c1
check "no c1 state left in $STATE" test ! -e $STATE/c1

# --- rt run c2: the spec's /sys/fs/cgroup mount (type "cgroup") is cgroup2 on a v2 host.
B=/tmp/bundle-c2
check "rt spec + sed made bundle $B" make_bundle $B /rt-vm/c2 'grep /sys/fs/cgroup /proc/self/mounts; cat /proc/self/cgroup'
out=$(rt --root $STATE run -b $B c2 2>&1)
rc=$?
echo "$out" | sed 's/^/# c2: /'
check "rt run c2 exits 0 (got $rc)" test $rc = 0
check "c2 has cgroup2 mounted at /sys/fs/cgroup" out_has "^[^ ]* /sys/fs/cgroup cgroup2 "
check "c2 is in cgroup 0::/rt-vm/c2" out_has -x "0::/rt-vm/c2"
check "$CG/rt-vm/c2 removed after the run" test ! -e $CG/rt-vm/c2

# --- rt exec into c3: the exec'd process joins the container's v2 cgroup, or with
# --cgroup an existing sub-cgroup of it.
B=/tmp/bundle-c3
check "rt spec + sed made bundle $B" make_bundle $B /rt-vm/c3 'sleep 1000'
check "rt run -d c3" rt --root $STATE run -d -b $B c3
out=$(rt --root $STATE exec c3 cat /proc/self/cgroup 2>&1)
echo "$out" | sed 's/^/# c3 exec: /'
check "exec'd process is in cgroup 0::/rt-vm/c3" out_has -x "0::/rt-vm/c3"
mkdir $CG/rt-vm/c3/sub
out=$(rt --root $STATE exec --cgroup sub c3 cat /proc/self/cgroup 2>&1)
echo "$out" | sed 's/^/# c3 exec --cgroup sub: /'
check "exec --cgroup sub: in 0::/rt-vm/c3/sub" out_has -x "0::/rt-vm/c3/sub"
out=$(rt --root $STATE exec c3 sh -c 'exit 7' 2>&1)
rc=$?
check "exec exit status passed on (got $rc)" test $rc = 7
rmdir $CG/rt-vm/c3/sub
check "rt delete -f c3" rt --root $STATE delete -f c3
check "$CG/rt-vm/c3 removed" test ! -e $CG/rt-vm/c3

rmdir $CG/rt-vm 2>/dev/null
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
