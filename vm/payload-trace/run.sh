#!/bin/sh
# The research tools on a cgroup v2 host (vm/guest.sh vm/payload-trace): `--trace` and
# `rt trace summarize`, errors as JSON fields, and OTLP spans exported to a file.
# busybox sh only (no jq: JSON is checked with grep). Prints "N passed, M failed";
# exits non-zero on a failure.

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() {  # check DESCRIPTION COMMAND...
  d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
has() { grep -q "$@"; }  # has GREP-ARGS FILE

CG=/sys/fs/cgroup
ROOTFS=${RT_VM_ROOTFS:-/rootfs}
STATE=/run/rt-trace

# make_bundle DIR CGROUPS_PATH SHELL_COMMAND (no double quote, backslash, # or &)
make_bundle() {
  mkdir -p "$1" && cp -a "$ROOTFS" "$1/rootfs" && rt spec -b "$1" || return 1
  sed -i -e 's/"terminal": true/"terminal": false/' \
    -e "s#^\\([[:space:]]*\\)\"sh\"\$#\\1\"sh\", \"-c\", \"$3\"#" \
    -e "s|^\\([[:space:]]*\\)\"linux\": {\$|&\\n\\1\\t\"cgroupsPath\": \"$2\",|" \
    "$1/config.json"
}

echo "# guest: $(uname -r), $(nproc) cpus"
check "/sys/fs/cgroup is cgroup2" test "$(stat -f -c %t $CG)" = 63677270

# --- --trace on v2: the cgroup steps name cgroup2 files; the init's steps are there.
B=/tmp/bundle-t1
check "made bundle $B" make_bundle $B /rt-trace/t1 'true'
T=/tmp/t1.jsonl
for i in 1 2 3; do
  rt --root $STATE run --trace $T -b $B t1-$i >/dev/null 2>&1 || bad "rt run --trace t1-$i"
done
echo "# $(wc -l < $T) trace events"
for step in config-load cgroup-mkdir cgroup-join fork unshare mount pivot-root ready wait-start exec; do
  check "trace has step $step" has "\"name\":\"$step\"" $T
done
check "the init was born in its v2 cgroup (clone3 CLONE_INTO_CGROUP)" has "\"name\":\"cgroup-join\",\"cat\":\"init\".*\"detail\":\"born in $CG/rt-trace/t1\"" $T
check "init steps are the init's" has '"cat":"init"' $T
rt trace summarize $T > /tmp/summary 2>&1
sed 's/^/# summarize: /' /tmp/summary
check "summarize counts 3 runs" has '^3 run(s)' /tmp/summary
check "summarize has a mount row in all 3 runs" grep -Eq ' 3  init  mount$' /tmp/summary
check "$CG/rt-trace/t1 removed" test ! -e $CG/rt-trace/t1

# --- OTLP spans to a file (the io.github.rt.otlp.file annotation), under a caller's context.
B=/tmp/bundle-o1
S=/tmp/spans.jsonl
TRACE=4bf92f3577b34da6a3ce929d0e0e4736
check "made bundle $B" make_bundle $B /rt-trace/o1 'true'
sed -i "s|^\([[:space:]]*\)\"ociVersion\": .*\$|&\n\1\"annotations\": {\"io.github.rt.otlp.file\": \"$S\"},|" $B/config.json
check "annotation in $B/config.json" has io.github.rt.otlp.file $B/config.json
TRACEPARENT=00-$TRACE-00f067aa0ba902b7-01 rt --root $STATE run -b $B o1 >/dev/null 2>&1
check "rt run under TRACEPARENT exits 0" test $? = 0
check "one export line" test "$(wc -l < $S)" = 1
check "spans carry the caller's trace id" has "\"traceId\":\"$TRACE\"" $S
check "one span, the root, is the caller's child" \
  test "$(grep -o '"parentSpanId":"00f067aa0ba902b7"' $S | wc -l)" = 1
check "the cgroup join is a span" has '"name":"cgroup-join"' $S
rt --root $STATE run -b $B o2 >/dev/null 2>&1
check "without TRACEPARENT nothing more is exported" test "$(wc -l < $S)" = 1

# --- Errors as JSON fields: one from the init (over the channel), one from a cgroup2 file.
B=/tmp/bundle-e1
L=/tmp/e1.log
check "made bundle $B" make_bundle $B /rt-trace/e1 'true'
sed -i 's|"mounts": \[|&{"destination": "/mnt", "type": "nosuchfs", "source": "none"},|' $B/config.json
rt --root $STATE --log $L --log-format json run -b $B e1 >/dev/null 2>&1
check "a mount of an unknown filesystem fails" test $? = 1
tail -1 $L | sed 's/^/# /'
for f in '"step":"mount"' '"syscall":"mount"' '"errno":"ENODEV"' '"errno_code":19' \
         '"field":"mounts\[0\]"' '"container":"e1"' '"path":"/mnt"'; do
  check "init's mount error has $f" sh -c "tail -1 $L | grep -q '$f'"
done
check "nothing left of e1" test ! -e $STATE/e1 -a ! -e $CG/rt-trace/e1
B=/tmp/bundle-e2
L=/tmp/e2.log
check "made bundle $B" make_bundle $B /rt-trace/e2 'true'
sed -i 's|"resources": {|&"unified": {"pids.max": "bogus"},|' $B/config.json
rt --root $STATE --log $L --log-format json run -b $B e2 >/dev/null 2>&1
check "pids.max=bogus fails" test $? = 1
tail -1 $L | sed 's/^/# /'
for f in '"step":"cgroup-write"' '"syscall":"write"' '"errno":"EINVAL"' \
         "\"path\":\"$CG/rt-trace/e2/pids.max\"" '"container":"e2"'; do
  check "cgroup write error has $f" sh -c "tail -1 $L | grep -q '$f'"
done
check "nothing left of e2" test ! -e $STATE/e2 -a ! -e $CG/rt-trace/e2

rmdir $CG/rt-trace 2>/dev/null
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
