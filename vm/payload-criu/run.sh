#!/bin/sh
# rt checkpoint / rt restore with CRIU, for real, inside the guest (vm/guest.sh vm/payload-criu):
# Debian's criu (packed with ip and GNU tar by ./programs) on the guest's 6.1 kernel.
# A busybox container counts (stdout to a host file, and a bind-mounted host file); it is
# checkpointed, must be gone, and is restored as a NEW container that must count on from
# where it was. Then --leave-running, --pre-dump + --parent-path, a foreground restore, and
# error cases. busybox sh only. Prints "N passed, M failed"; exits non-zero on a failure.

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() {  # check DESCRIPTION COMMAND...
  d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
eq() {  # eq DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected [$2], got [$3]"; fi
}

contains() {  # contains DESCRIPTION TEXT NEEDLE
  case $2 in *"$3"*) ok "$1" ;; *) bad "$1: [$3] not in [$2]" ;; esac
}

CG=/sys/fs/cgroup
W=/tmp/criu-test
RT="rt --root /run/rt-criu"
mkdir -p $W/data
cp -a "${RT_VM_ROOTFS:-/rootfs}" $W/rootfs

# A bundle whose container counts: i on stdout (a host file opened with O_APPEND: criu
# checks the size of a plain external file at restore, an appended one excepted) and in /data/count (a bind of $W/data),
# in new pid, mount, ipc, uts and network (lo only) namespaces, with runc's masked and
# read-only paths.
B=$W/bundle
mkdir -p $B
cat > $B/config.json <<JSON
{
  "ociVersion": "1.2.0",
  "process": {
    "terminal": false, "user": {"uid": 0, "gid": 0},
    "args": ["sh", "-c", "i=0; while :; do i=\$((i+1)); echo \$i; echo \$i > /data/count; sleep 0.2; done"],
    "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
      "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
      "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    }
  },
  "root": {"path": "$W/rootfs"},
  "hostname": "counter",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    {"destination": "/data", "type": "bind", "source": "$W/data", "options": ["rbind", "rw"]}
  ],
  "linux": {
    "cgroupsPath": "/rt-criu/counter",
    "resources": {"pids": {"limit": 64}},
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/scsi", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON
# Each container gets its own cgroup: cgroupsPath is the same in every copy of the config,
# so give each id a bundle of its own with the path rewritten.
bundle_for() {  # bundle_for ID: a bundle dir for ID (same rootfs and data)
  mkdir -p $W/b-$1
  sed "s#/rt-criu/counter#/rt-criu/$1#" $B/config.json > $W/b-$1/config.json
  echo $W/b-$1
}

last() { tail -n 1 "$1" 2>/dev/null | tr -dc 0-9; }
first() { head -n 1 "$1" 2>/dev/null | tr -dc 0-9; }
lines() { [ -f "$1" ] && wc -l < "$1" | tr -dc 0-9; }
wait_lines() {  # wait_lines FILE N: until FILE has N lines (20 s at most)
  i=0
  while :; do
    _n=$(lines $1); [ "${_n:-0}" -ge "$2" ] && return 0
    i=$((i + 1)); [ $i -gt 200 ] && return 1; sleep 0.1
  done
}
status() { $RT state $1 2>/dev/null | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p'; }
gone() {  # gone ID PID: no state, no process, no cgroup
  ! $RT state $1 >/dev/null 2>&1 && { [ -z "$2" ] || ! kill -0 "$2" 2>/dev/null; } &&
    [ ! -d $CG/rt-criu/$1 ]
}
show_log() {  # show_log FILE: the last lines of a criu log, as comments
  tail -n 25 "$1" 2>/dev/null | sed 's/^/#   | /'
}
cleanup() {
  for id in $($RT list -q 2>/dev/null); do $RT delete --force $id >/dev/null 2>&1; done
  for d in $CG/rt-criu/*/ $CG/rt-criu; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  return 0
}

echo "# guest: $(uname -r); $(criu --version | head -n 1)"

# --- criu check: the kernel has what criu needs.
out=$(criu check 2>&1); rc=$?
echo "$out" | sed 's/^/#   criu check: /'
eq "criu check" 0 $rc

# --- a counting container, checkpointed: images written, the container destroyed.
$RT run -d -b $(bundle_for criu-a) criu-a >> $W/a.log 2>&1 < /dev/null
check "run -d criu-a" [ "$(status criu-a)" = running ]
pid_a=$($RT state criu-a | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
wait_lines $W/a.log 5 || bad "criu-a did not count: $(cat $W/a.log)"
if $RT checkpoint --image-path $W/img-a criu-a > $W/ck.out 2>&1; then ok "checkpoint criu-a"
else bad "checkpoint criu-a: $(cat $W/ck.out)"; show_log $W/img-a/dump.log; fi
check "checkpoint wrote images (inventory.img, descriptors.json)" \
  [ -f $W/img-a/inventory.img -a -f $W/img-a/descriptors.json ]
check "checkpointed container is gone (no state, process or cgroup)" gone criu-a "$pid_a"
n_a=$(last $W/a.log)
sleep 1
eq "the log stops growing after the checkpoint" "$n_a" "$(last $W/a.log)"
echo "# criu-a counted to $n_a"

# --- restored as a NEW container from the images: it counts on from n_a + 1.
if $RT restore -d -b $(bundle_for criu-b) --image-path $W/img-a criu-b >> $W/b.log 2>&1 < /dev/null
then ok "restore -d criu-b"
else bad "restore criu-b: $(cat $W/b.log)"; show_log $W/img-a/restore.log; fi
eq "restored container is running" running "$(status criu-b)"
pid_b=$($RT state criu-b | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
wait_lines $W/b.log 3 || bad "criu-b did not count: $(cat $W/b.log)"
eq "restored counter continues on stdout (first line = last before + 1)" $((n_a + 1)) "$(first $W/b.log)"
# The container rewrites the file every step: an empty read is a rewrite in progress.
count_now() {
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    v=$(cat $W/data/count 2>/dev/null)
    [ -n "$v" ] && { echo "$v"; return; }
    sleep 0.05
  done
}
c1=$(count_now); sleep 1; c2=$(count_now)
check "restored counter continues in the bind-mounted /data/count ($c1 -> $c2)" [ "$c2" -gt "$c1" -a "$c1" -gt "$n_a" ]
check "restored init is in the new container's cgroup" grep -qx "$pid_b" $CG/rt-criu/criu-b/cgroup.procs
eq "pids.max set on the new cgroup" 64 "$(cat $CG/rt-criu/criu-b/pids.max)"
eq "restored hostname (uts namespace)" counter "$(nsenter -t $pid_b -u hostname 2>&1)"
check "restored init is pid 1 of its own pid namespace" grep -q 'NSpid:.*[[:space:]]1$' /proc/$pid_b/status
check "restored init has its own network namespace" [ "$(readlink /proc/$pid_b/ns/net)" != "$(readlink /proc/self/ns/net)" ]
check "masked /proc/kcore is still masked" [ ! -s /proc/$pid_b/root/proc/kcore ]

# --- --leave-running: images written, the container keeps running and counting.
if $RT checkpoint --leave-running --image-path $W/img-b criu-b > $W/ck.out 2>&1; then ok "checkpoint --leave-running criu-b"
else bad "checkpoint --leave-running: $(cat $W/ck.out)"; fi
eq "criu-b still running after --leave-running" running "$(status criu-b)"
n=$(lines $W/b.log); wait_lines $W/b.log $((n + 3))
check "criu-b still counting after --leave-running" [ "$(lines $W/b.log)" -ge $((n + 3)) ]

# --- --pre-dump, then a dump on top of it (--parent-path): restored counts on.
if $RT checkpoint --pre-dump --image-path $W/pre criu-b > $W/ck.out 2>&1; then ok "checkpoint --pre-dump criu-b"
else bad "checkpoint --pre-dump: $(cat $W/ck.out)"; fi
eq "criu-b still running after --pre-dump" running "$(status criu-b)"
check "pre-dump wrote memory pages" sh -c "ls $W/pre/pages-*.img >/dev/null"
n=$(lines $W/b.log); wait_lines $W/b.log $((n + 2))
if $RT checkpoint --parent-path ../pre --image-path $W/img-c criu-b > $W/ck.out 2>&1; then ok "checkpoint --parent-path ../pre criu-b"
else bad "checkpoint --parent-path: $(cat $W/ck.out)"; fi
check "the dump links its parent images" [ -L $W/img-c/parent ]
check "criu-b is gone after the final dump" gone criu-b "$pid_b"
n_b=$(last $W/b.log)
if $RT restore -d -b $(bundle_for criu-c) --image-path $W/img-c criu-c >> $W/c.log 2>&1 < /dev/null
then ok "restore -d criu-c from pre-dump + dump"
else bad "restore criu-c: $(cat $W/c.log)"; show_log $W/img-c/restore.log; fi
wait_lines $W/c.log 2 || bad "criu-c did not count"
eq "criu-c counts on from criu-b" $((n_b + 1)) "$(first $W/c.log)"

# --- foreground restore: rt waits, exits with the program's status, deletes the container.
pid_c=$($RT state criu-c | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
if $RT checkpoint --image-path $W/img-d criu-c > $W/ck.out 2>&1; then ok "checkpoint criu-c"
else bad "checkpoint criu-c: $(cat $W/ck.out)"; show_log $W/img-d/dump.log; fi
n_c=$(last $W/c.log)
$RT restore -b $(bundle_for criu-d) --image-path $W/img-d criu-d >> $W/d.log 2>&1 < /dev/null &
fg=$!
if wait_lines $W/d.log 2; then
  eq "criu-d (foreground) counts on from criu-c" $((n_c + 1)) "$(first $W/d.log)"
else
  bad "criu-d did not count: $(cat $W/d.log)"; show_log $W/img-d/restore.log
fi
eq "foreground restore: state running" running "$(status criu-d)"
pid_d=$($RT state criu-d | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
$RT kill criu-d KILL
i=0; while kill -0 $fg 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 $fg 2>/dev/null && { bad "foreground restore still running"; kill -9 $fg; }
wait $fg; rc=$?
eq "foreground restore exits 128+9 when the program is killed" 137 $rc
check "foreground restore deleted the container" gone criu-d "$pid_d"

# --- errors: one line, exit 1, nothing left.
out=$($RT restore -d -b $(bundle_for criu-e) --image-path $W/nothing criu-e 2>&1); rc=$?
eq "restore from a missing image dir fails (exit 1)" 1 $rc
eq "... with one line" 1 "$(echo "$out" | wc -l)"
check "... and leaves nothing" gone criu-e ""
mkdir -p $W/empty
out=$($RT restore -d -b $(bundle_for criu-e) --image-path $W/empty criu-e 2>&1); rc=$?
eq "restore from a dir without a checkpoint fails (exit 1)" 1 $rc
# A bind source that is gone: rt refuses before criu runs.
mv $W/data $W/data.away
out=$($RT restore -d -b $(bundle_for criu-e) --image-path $W/img-a criu-e 2>&1 < /dev/null); rc=$?
mv $W/data.away $W/data
echo "#   $out"
eq "restore with a missing bind source fails (exit 1)" 1 $rc
eq "... with one line" 1 "$(echo "$out" | wc -l)"
check "... and leaves nothing (state, cgroup, process)" gone criu-e ""
# criu itself fails: strict cgroup mode refuses the cgroup rt made for the container.
out=$($RT restore -d -b $(bundle_for criu-e) --manage-cgroups-mode strict --image-path $W/img-a criu-e 2>&1 < /dev/null); rc=$?
echo "#   $out"
eq "restore failing inside criu exits 1" 1 $rc
eq "... with one line" 1 "$(echo "$out" | wc -l)"
contains "... naming criu's log" "$out" "log: $W/img-a/restore.log"
check "... and leaves nothing (state, cgroup, process)" gone criu-e ""
check "no mount of the rootfs left in the guest's namespace" sh -c "! grep -q '$W/rootfs' /proc/self/mountinfo"
out=$($RT checkpoint --image-path $W/img-x criu-zzz 2>&1); rc=$?
eq "checkpoint of an unknown container fails" 1 $rc

cleanup
check "nothing left under $CG/rt-criu" [ ! -e $CG/rt-criu ]
check "no container left" [ -z "$($RT list -q)" ]

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
