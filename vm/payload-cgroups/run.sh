#!/bin/sh
# cgroup v2 for real, inside the guest (vm/guest.sh vm/payload-cgroups): every limit is set
# through linux.resources and shown to bite, plus pause/resume, update, events and removal.
# busybox sh only. Prints "N passed, M failed"; exits non-zero on a failure.

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

CG=/sys/fs/cgroup
ROOTFS=${RT_VM_ROOTFS:-/rootfs}
RT="rt --root /run/rt"

# bundle ID ARGS_JSON RESOURCES_JSON [EXTRA_MOUNTS_JSON]: a bundle in /tmp/b-ID whose
# container runs ARGS with RESOURCES, in new pid/mount/ipc/uts/network namespaces.
bundle() {
  b=/tmp/b-$1
  mkdir -p $b
  cat > $b/config.json <<JSON
{
  "ociVersion": "1.2.0",
  "process": {
    "terminal": false, "user": {"uid": 0, "gid": 0}, "args": $2,
    "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
      "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
      "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    }
  },
  "root": {"path": "$ROOTFS"},
  "hostname": "v2",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "ro"]}
    ${4:+, $4}
  ],
  "linux": {
    "cgroupsPath": "/rt-vm/$1",
    "resources": $3,
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}, {"type": "cgroup"}]
  }
}
JSON
  echo $b
}

sh_args() { printf '["sh", "-c", "%s"]' "$1"; }

# wait_stopped ID: until `rt state` says stopped (30 s at most)
wait_stopped() {
  i=0
  while [ $i -lt 600 ]; do
    st=$($RT state $1 2>/dev/null) || return 1
    echo "$st" | grep -q '"status": "stopped"' && return 0
    sleep 0.05; i=$((i + 1))
  done
  return 1
}

echo "# guest: $(uname -r), $(nproc) cpus; controllers: $(cat $CG/cgroup.controllers)"

# --- memory.max: a 64 MiB buffer under 16 MiB is OOM-killed; memory.events counts it.
B=$(bundle mem "$(sh_args 'dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?')" \
  '{"memory": {"limit": 16777216, "swap": 16777216}}')
$RT create -b $B mem && $RT start mem
wait_stopped mem || bad "mem did not stop"
eq "memory.max written" 16777216 "$(cat $CG/rt-vm/mem/memory.max 2>&1)"
eq "memory.swap.max = swap - limit" 0 "$(cat $CG/rt-vm/mem/memory.swap.max 2>&1)"
kills=$(grep '^oom_kill ' $CG/rt-vm/mem/memory.events | cut -d' ' -f2)
check "memory.events oom_kill >= 1 (got $kills)" test "${kills:-0}" -ge 1
$RT delete mem
check "cgroup of mem removed by delete" test ! -e $CG/rt-vm/mem

out=$($RT run -b $B mem2 2>&1)
eq "dd is OOM-killed (status 137)" "dd=137" "$out"

# --- pids.max: with 5 pids, sh and 4 sleepers; the 5th fork fails.
B=$(bundle pids "$(sh_args 'cat /sys/fs/cgroup/pids.max; for i in 1 2 3 4 5 6; do sleep 5 & echo $i; done')" \
  '{"pids": {"limit": 5}}')
out=$($RT run -b $B pids 2>/dev/null | tr '\n' ' ')
eq "forks stop at pids.limit" "5 1 2 3 4 " "$out"

# --- cpu: shares → cpu.weight, quota/period → cpu.max, throttling shows in cpu.stat.
B=$(bundle cpu "$(sh_args 'timeout 1 sh -c \"while :; do :; done\"; true')" \
  '{"cpu": {"shares": 512, "quota": 10000, "period": 100000, "cpus": "0"}}')
$RT create -b $B cpu
eq "cpu.weight from shares 512 (runc's formula)" 20 "$(cat $CG/rt-vm/cpu/cpu.weight)"
eq "cpu.max" "10000 100000" "$(cat $CG/rt-vm/cpu/cpu.max)"
eq "cpuset.cpus" 0 "$(cat $CG/rt-vm/cpu/cpuset.cpus)"
$RT start cpu
wait_stopped cpu || bad "cpu loop did not stop"
thr=$(grep '^nr_throttled ' $CG/rt-vm/cpu/cpu.stat | cut -d' ' -f2)
check "the quota throttles (nr_throttled=$thr)" test "${thr:-0}" -gt 0
$RT delete cpu

B=$(bundle cpuset "$(sh_args 'grep Cpus_allowed_list /proc/self/status')" '{"cpu": {"cpus": "1"}}')
eq "cpuset visible in /proc/self/status" "$(printf 'Cpus_allowed_list:\t1')" "$($RT run -b $B cpuset 2>&1)"

# --- io: blkio weight → io.weight; throttling → io.max (on the loop device's major:minor).
if [ -e $CG/cgroup.controllers ] && grep -qw io $CG/cgroup.controllers; then
  dev=$(cat /sys/block/loop0/dev 2>/dev/null || echo 7:0)
  B=$(bundle io "$(sh_args true)" "{\"blockIO\": {\"weight\": 500, \"throttleReadBpsDevice\": [{\"major\": ${dev%:*}, \"minor\": ${dev#*:}, \"rate\": 1048576}]}}")
  if $RT create -b $B io 2>/tmp/io.err; then
    [ -e $CG/rt-vm/io/io.weight ] && eq "io.weight from blkio weight 500" "default 4950" "$(cat $CG/rt-vm/io/io.weight)"
    check "io.max has the read limit" grep -q "^$dev rbps=1048576" $CG/rt-vm/io/io.max
    $RT delete -f io
  else
    bad "create with blockIO: $(cat /tmp/io.err)"
  fi
fi

# --- hugetlb
if [ -e /sys/kernel/mm/hugepages/hugepages-2048kB ]; then
  B=$(bundle huge "$(sh_args true)" '{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}')
  $RT create -b $B huge && eq "hugetlb.2MB.max" 4194304 "$(cat $CG/rt-vm/huge/hugetlb.2MB.max)"
  $RT delete -f huge
fi

# --- unified: raw keys
B=$(bundle uni "$(sh_args true)" '{"unified": {"memory.high": "52428800"}}')
$RT create -b $B uni && eq "unified memory.high" 52428800 "$(cat $CG/rt-vm/uni/memory.high)"
$RT delete -f uni

# --- cgroupsPath: relative to the caller's cgroup (here the root), or the id when empty.
B=$(bundle rel "$(sh_args true)" '{}')
sed -i 's#"cgroupsPath": "/rt-vm/rel"#"cgroupsPath": "rt-rel/x"#' $B/config.json
$RT create -b $B rel && check "relative cgroupsPath lands below the caller's cgroup" test -d $CG/rt-rel/x
$RT delete -f rel
check "relative cgroup removed (parents rt made too)" test ! -e $CG/rt-rel
B=$(bundle noname "$(sh_args true)" '{}')
sed -i '/"cgroupsPath"/d' $B/config.json
$RT create -b $B noname && check "no cgroupsPath: the container id below the caller's cgroup" test -d $CG/noname
$RT delete -f noname
check "default cgroup removed" test ! -e $CG/noname

# --- events: an OOM kill is reported in the stream (memory.events on v2).
B=$(bundle oomev "$(sh_args 'sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 2')" \
  '{"memory": {"limit": 16777216}}')
$RT run -d -b $B oomev
$RT events --interval 1s oomev > /tmp/oomev.out 2>&1 &
ev=$!
wait_stopped oomev
sleep 0.3
kill $ev 2>/dev/null; wait $ev 2>/dev/null
check "rt events reports the OOM kill" grep -q '"type":"oom"' /tmp/oomev.out
$RT delete -f oomev

# --- OOM never lost, with its level: 20 containers whose init is OOM-killed, each
# followed by `rt events` from before its start until the stream ends by itself: exactly
# one oom event each, naming the container's own limit. (events must read its baseline
# before the start: it prints a first stats event once it has.)
GROW='x=1; while :; do x=$x$x; done'
# oom_events ID: create, follow events, start; the stream's oom lines in /tmp/ev-ID.
oom_events() {
  $RT create -b /tmp/b-$1 $1 || return 1
  $RT events --interval 200ms $1 > /tmp/ev-$1 2>&1 &
  evp=$!
  n=0; while ! grep -qs '"type":"stats"' /tmp/ev-$1 && [ $n -lt 300 ]; do sleep 0.05; n=$((n + 1)); done
  $RT start $1
  n=0; while kill -0 $evp 2>/dev/null && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
  kill $evp 2>/dev/null; wait $evp
  evrc=$?
  $RT delete -f $1
  grep '"type":"oom"' /tmp/ev-$1
  return $evrc
}
ooms=0 right=0
for i in $(seq 1 20); do
  bundle oom$i "$(sh_args "$GROW")" '{"memory": {"limit": 16777216, "swap": 16777216}}' >/dev/null
  lines=$(oom_events oom$i)
  ooms=$((ooms + $(echo "$lines" | grep -c oom)))
  [ "$lines" = "{\"type\":\"oom\",\"id\":\"oom$i\",\"data\":{\"level\":\"container\",\"cgroup\":\"/rt-vm/oom$i\"}}" ] \
    && right=$((right + 1)) || echo "# oom$i: [$lines]"
done
eq "20 OOM kills: 20 oom events, each before its stream ended" 20 "$ooms"
eq "20 OOM kills: each names the container's own limit" 20 "$right"

# --- The level: a parent cgroup with a 32 MiB limit; a container under it with no limit
# hits the parent's (ancestor), one with 16 MiB its own (container).
mkdir -p $CG/rt-vm/pod
echo +memory > $CG/rt-vm/cgroup.subtree_control
echo 33554432 > $CG/rt-vm/pod/memory.max
[ -e $CG/rt-vm/pod/memory.swap.max ] && echo 0 > $CG/rt-vm/pod/memory.swap.max
for c in pa pc; do
  res='{}'; [ $c = pc ] && res='{"memory": {"limit": 16777216, "swap": 16777216}}'
  B=$(bundle $c "$(sh_args "$GROW")" "$res")
  sed -i "s#\"/rt-vm/$c\"#\"/rt-vm/pod/$c\"#" $B/config.json
done
line=$(oom_events pa)
eq "no own limit under a 32 MiB parent: level ancestor, the parent named" \
  '{"type":"oom","id":"pa","data":{"level":"ancestor","cgroup":"/rt-vm/pod"}}' "$line"
line=$(oom_events pc)
eq "own 16 MiB limit under the parent: level container" \
  '{"type":"oom","id":"pc","data":{"level":"container","cgroup":"/rt-vm/pod/pc"}}' "$line"
rmdir $CG/rt-vm/pod
check "the test's parent cgroup removed" test ! -e $CG/rt-vm/pod

# --- devices: the eBPF program denies what the rules deny.
MNT='{"destination": "/dev/loop-control", "type": "bind", "source": "/dev/loop-control", "options": ["bind"]}'
B=$(bundle dev1 "$(sh_args '(exec 3</dev/loop-control) 2>/dev/null && echo open || echo denied; head -c 1 /dev/zero | wc -c')" \
  '{"devices": [{"allow": false, "access": "rwm"}]}' "$MNT")
eq "a denied device cannot be opened (eBPF)" "denied 1" "$($RT run -b $B dev1 2>&1 | tr '\n' ' ' | sed 's/ $//')"
B=$(bundle dev2 "$(sh_args '(exec 3</dev/loop-control) 2>/dev/null && echo open || echo denied')" \
  '{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rw"}]}' "$MNT")
eq "an allowed device opens (eBPF)" open "$($RT run -b $B dev2 2>&1)"

# --- pause / resume: a counting loop stops while frozen.
B=$(bundle frz "$(sh_args 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done')" '{}')
$RT run -d -b $B frz
sleep 0.5
$RT pause frz
eq "state says paused" paused "$($RT state frz | sed -n 's/.*"status": "\(.*\)".*/\1/p')"
eq "cgroup.freeze is 1" 1 "$(cat $CG/rt-vm/frz/cgroup.freeze)"
c1=$(cat $ROOTFS/tmp/count); sleep 0.5; c2=$(cat $ROOTFS/tmp/count)
eq "the loop does not count while paused" "$c1" "$c2"
$RT resume frz
sleep 0.5; c3=$(cat $ROOTFS/tmp/count)
check "the loop counts again after resume ($c2 -> $c3)" test "$c3" -gt "$c2"

# --- update: a live limit changes.
$RT update --memory 33554432 --pids-limit 7 frz
eq "update --memory changes memory.max" 33554432 "$(cat $CG/rt-vm/frz/memory.max)"
eq "update --pids-limit changes pids.max" 7 "$(cat $CG/rt-vm/frz/pids.max)"

# --- events --stats
st=$($RT events --stats frz 2>&1)
check "events --stats reports pids" sh -c 'echo "$1" | grep -q "\"pids\":{\"current\":"' - "$st"
check "events --stats reports memory usage" sh -c 'echo "$1" | grep -q "\"memory\":{.*\"usage\":{"' - "$st"
$RT delete -f frz
rm -f $ROOTFS/tmp/count
check "cgroup of frz removed by delete -f" test ! -e $CG/rt-vm/frz

# --- issue 13 on v2. A node in linux.devices gets only what the rules allow (/dev/kmsg
# opened for writing, nothing written).
KMSG='"devices": [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 420}]'
B=$(bundle devk "$(sh_args '(exec 3>/dev/kmsg) 2>/dev/null && echo opened || echo denied')" \
  '{"devices": [{"allow": false, "access": "rwm"}]}')
sed -i "s#\"cgroupsPath\": \"/rt-vm/devk\"#&, $KMSG#" $B/config.json
eq "a node in linux.devices is denied by the rules (eBPF)" denied "$($RT run -b $B devk 2>&1)"
B=$(bundle devk2 "$(sh_args '(exec 3>/dev/kmsg) 2>/dev/null && echo opened || echo denied')" \
  '{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]}')
sed -i "s#\"cgroupsPath\": \"/rt-vm/devk2\"#&, $KMSG#" $B/config.json
eq "and opens when a rule allows it" opened "$($RT run -b $B devk2 2>&1)"

# A cgroupsPath of / is refused: it is the root, which holds every process.
B=$(bundle root "$(sh_args true)" '{}')
sed -i 's#"cgroupsPath": "/rt-vm/root"#"cgroupsPath": "/"#' $B/config.json
out=$($RT create -b $B root 2>&1)
check "cgroupsPath / is refused ($out)" sh -c 'echo "$1" | grep -q "root of the cgroup hierarchy"' - "$out"

# A cgroup that exists and is frozen is refused before the init joins it, and left frozen.
mkdir -p $CG/rt-vm/frozen && echo 1 > $CG/rt-vm/frozen/cgroup.freeze
B=$(bundle frozen "$(sh_args true)" '{}')
out=$(timeout 30 $RT run -b $B frozen 2>&1)
check "a frozen cgroup is refused ($out)" sh -c 'echo "$1" | grep -q "unexpectedly frozen"' - "$out"
eq "and stays frozen" 1 "$(cat $CG/rt-vm/frozen/cgroup.freeze)"
echo 0 > $CG/rt-vm/frozen/cgroup.freeze; rmdir $CG/rt-vm/frozen

# Sub-cgroups the container makes (writable cgroup mount, own cgroup namespace), with a
# process moved into them, go with delete -f, deepest first.
B=$(bundle subcg "$(sh_args 'mkdir -p /sys/fs/cgroup/sub/deeper && echo $$ > /sys/fs/cgroup/sub/deeper/cgroup.procs && exec sleep 1000')" '{}')
sed -i '/"\/sys\/fs\/cgroup"/s#, "ro"\]#]#' $B/config.json
$RT run -d -b $B subcg
i=0; while [ $i -lt 100 ] && [ -z "$(cat $CG/rt-vm/subcg/sub/deeper/cgroup.procs 2>/dev/null)" ]; do sleep 0.05; i=$((i + 1)); done
check "the container moved itself into its sub-cgroup" test -n "$(cat $CG/rt-vm/subcg/sub/deeper/cgroup.procs 2>/dev/null)"
$RT delete -f subcg
check "delete -f removes the container's sub-cgroups and its own" test ! -e $CG/rt-vm/subcg

# --- issue 17 on v2: kill --all and delete -f never hang. A task frozen by cgroup.freeze
# dies of SIGKILL on v2, and rt uses cgroup.kill; it never thaws a cgroup above the
# container's. bounded DESC ID ARGS...: rt ARGS within 15 s, exit 0 and nothing on stderr.
bounded() {
  d=$1; shift
  t0=$(date +%s)
  out=$(timeout 30 $RT "$@" 2>&1); rc=$?
  t=$(( $(date +%s) - t0 ))
  eq "$d: exit 0, no warning, within 15 s (took ${t}s)" "0 ok" "$rc $([ -z "$out" ] && [ $t -lt 15 ] && echo ok || echo "$out")"
}
wait_frozen() {  # wait_frozen DIR: until cgroup.events says frozen 1 (10 s at most)
  i=0
  while [ $i -lt 200 ] && ! grep -qx 'frozen 1' $1/cgroup.events; do sleep 0.05; i=$((i + 1)); done
  grep -qx 'frozen 1' $1/cgroup.events
}
# Paused by rt pause.
B=$(bundle hpause "$(sh_args 'sleep 1000 & exec sleep 1001')" '{}')
$RT run -d -b $B hpause && $RT pause hpause
bounded "kill --all KILL of a paused container" kill --all hpause KILL
wait_stopped hpause || bad "hpause did not stop after kill --all"
bounded "delete of the killed container" delete hpause
check "its cgroup is gone" test ! -e $CG/rt-vm/hpause
# Frozen through a parent the test made and froze: rt leaves it frozen.
mkdir -p $CG/rt-hang-parent
B=$(bundle hpar "$(sh_args 'sleep 1000 & exec sleep 1001')" '{}')
sed -i 's#"cgroupsPath": "/rt-vm/hpar"#"cgroupsPath": "/rt-hang-parent/hpar"#' $B/config.json
$RT run -d -b $B hpar
echo 1 > $CG/rt-hang-parent/cgroup.freeze
check "the parent froze the container" wait_frozen $CG/rt-hang-parent/hpar
bounded "kill --all KILL below a frozen parent" kill --all hpar KILL
wait_stopped hpar || bad "hpar did not stop after kill --all"
bounded "delete -f below a frozen parent" delete -f hpar
eq "the parent stays frozen (rt did not make it)" 1 "$(cat $CG/rt-hang-parent/cgroup.freeze)"
check "the container's cgroup is gone" test ! -e $CG/rt-hang-parent/hpar
echo 0 > $CG/rt-hang-parent/cgroup.freeze; rmdir $CG/rt-hang-parent
# A sub-cgroup the container made, with a process in it, frozen: delete -f, no kill first.
B=$(bundle hsub "$(sh_args 'mkdir -p /sys/fs/cgroup/sub && echo $$ > /sys/fs/cgroup/sub/cgroup.procs && exec sleep 1000')" '{}')
sed -i '/"\/sys\/fs\/cgroup"/s#, "ro"\]#]#' $B/config.json
$RT run -d -b $B hsub
i=0; while [ $i -lt 100 ] && [ -z "$(cat $CG/rt-vm/hsub/sub/cgroup.procs 2>/dev/null)" ]; do sleep 0.05; i=$((i + 1)); done
echo 1 > $CG/rt-vm/hsub/sub/cgroup.freeze
check "the container's sub-cgroup is frozen" wait_frozen $CG/rt-vm/hsub/sub
bounded "delete -f of a container with a frozen sub-cgroup" delete -f hsub
check "delete -f removes the frozen sub-cgroup and the container's" test ! -e $CG/rt-vm/hsub

# --- nothing left
rmdir $CG/rt-vm 2>/dev/null
check "no cgroup left under $CG/rt-vm" test ! -e $CG/rt-vm
check "no state left" sh -c '[ -z "$(ls /run/rt 2>/dev/null)" ]'

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
