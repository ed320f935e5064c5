#!/bin/sh
# containerd-shim-rt-v2 under a real containerd on cgroup v2 (vm/guest.sh vm/payload-shim):
# Debian's containerd and ctr (packed by ./programs), the shim and the static rt. Checks
# what only a v2 host shows: Stats sent as io.containerd.cgroups.v2.Metrics, and an OOM
# kill seen through inotify on memory.events and published as TaskOOM. Containers run
# from a plain rootfs directory (ctr run --rootfs): no image or snapshotter needed.
# busybox sh only. Prints "N passed, M failed"; exits non-zero on a failure.

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
contains() {  # contains DESCRIPTION TEXT NEEDLE
  case $2 in *"$3"*) ok "$1" ;; *) bad "$1: [$3] not in [$2]" ;; esac
}
lacks() {  # lacks DESCRIPTION TEXT NEEDLE
  case $2 in *"$3"*) bad "$1: [$3] in [$2]" ;; *) ok "$1" ;; esac
}
wait_for() {  # wait_for SECONDS COMMAND...: poll every 0.2 s
  n=$(($1 * 5)); shift
  while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.2; n=$((n - 1)); done
  return 1
}

CG=/sys/fs/cgroup
NS=v2test
W=/tmp/ctd
mkdir -p $W
cat > $W/config.toml <<TOML
version = 2
root = "$W/root"
state = "$W/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd.sock.ttrpc"
[debug]
  level = "debug"
TOML
containerd --config $W/config.toml >$W/containerd.log 2>&1 &
CTD=$!
CTR="ctr -a $W/containerd.sock -n $NS"
if wait_for 120 $CTR version >/dev/null 2>&1; then ok "containerd answers"; else
  bad "containerd answers"; tail -20 $W/containerd.log; echo "$pass passed, $fail failed"; exit 1
fi
for c in m1 o1; do cp -a "${RT_VM_ROOTFS:-/rootfs}" $W/$c; done

# Stats on a v2 host: the v2 Metrics message, decoded by ctr.
out=$($CTR run -d --runtime io.containerd.rt.v2 --rootfs $W/m1 m1 sleep 1000 2>&1)
[ $? = 0 ] && ok "ctr run -d m1" || bad "ctr run -d m1: $out"
json=$($CTR task metrics --format json m1 2>&1)
contains "metrics: v2 cpu usage_usec" "$json" '"usage_usec"'
contains "metrics: v2 memory anon" "$json" '"anon"'
contains "metrics: pids current" "$json" '"current": 1'
lacks "metrics: no v1 fields" "$json" '"total_rss"'
table=$($CTR task metrics m1 2>&1)
contains "metrics table: memory.usage" "$table" "memory.usage"
contains "metrics table: cpu.usage_usec" "$table" "cpu.usage_usec"

# OOM: a 32 MiB container that allocates 64 MiB; the shim sees memory.events change.
$CTR events >$W/events 2>&1 &
EV=$!
sleep 1
out=$($CTR run -d --memory-limit 33554432 --runtime io.containerd.rt.v2 --rootfs $W/o1 o1 \
  sh -c 'sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 1000' 2>&1)
[ $? = 0 ] && ok "ctr run -d o1 (32 MiB)" || bad "ctr run -d o1: $out"
if wait_for 60 grep -q '/tasks/oom.*"o1"' $W/events; then ok "TaskOOM published for o1"; else
  bad "TaskOOM published: $(cat $W/events)"; cat $CG/$NS/o1/memory.events 2>&1
fi

# OOM kills of the init itself (the exit can be reaped before memory.events is read):
# each TaskOOM comes before its TaskExit, exactly one each; the shim logs the level.
GROW='x=1; while :; do x=$x$x; done'
for i in 1 2 3 4 5 6 7 8 9 10; do
  cp -a "${RT_VM_ROOTFS:-/rootfs}" $W/g$i
  $CTR run --rm --memory-limit 16777216 --runtime io.containerd.rt.v2 --rootfs $W/g$i g$i \
    sh -c "$GROW" >/dev/null 2>&1
done
mkdir -p $CG/rtpod
echo 33554432 > $CG/rtpod/memory.max
[ -e $CG/rtpod/memory.swap.max ] && echo 0 > $CG/rtpod/memory.swap.max
cp -a "${RT_VM_ROOTFS:-/rootfs}" $W/pa
$CTR run --rm --cgroup /rtpod/pa --runtime io.containerd.rt.v2 --rootfs $W/pa pa \
  sh -c "$GROW" >/dev/null 2>&1
exits_seen() { [ "$(grep -c '/tasks/exit ' $W/events)" -ge 11 ]; }
wait_for 30 exits_seen
kill $EV 2>/dev/null
inorder=0
for c in g1 g2 g3 g4 g5 g6 g7 g8 g9 g10 pa; do
  # The topics of $c's oom and exit events, in order: exactly one of each, oom first.
  seq=$(grep "\"container_id\":\"$c\"" $W/events | grep -e '/tasks/oom ' -e '/tasks/exit ' \
    | grep -o '/tasks/[a-z]*' | tr '\n' ' ')
  [ "$seq" = "/tasks/oom /tasks/exit " ] && inorder=$((inorder + 1)) || echo "# $c: [$seq]"
done
contains "11 init OOM kills: one TaskOOM each, before its TaskExit" "$inorder" 11
log=$(cat $W/containerd.log)
contains "the shim logs the container's own limit" "$log" "g1: OOM kill; memory limit hit: container (/$NS/g1)"
contains "the shim logs the parent's limit" "$log" "pa: OOM kill; memory limit hit: ancestor (/rtpod)"
rmdir $CG/rtpod/pa $CG/rtpod 2>/dev/null
[ ! -e $CG/rtpod ] && ok "the test's parent cgroup removed" || bad "left: $(ls $CG/rtpod)"

for c in m1 o1; do
  $CTR task kill -s SIGKILL $c >/dev/null 2>&1
  wait_for 30 sh -c "$CTR task rm $c >/dev/null 2>&1 || ! $CTR task ls -q | grep -qx $c"
  $CTR container rm $c >/dev/null 2>&1
done
left=$($CTR task ls -q 2>&1)
[ -z "$left" ] && ok "no task left" || bad "tasks left: $left"
kill $CTD; wait $CTD 2>/dev/null
wait_for 10 sh -c "! ls -d $CG/$NS/*/ >/dev/null 2>&1" && ok "no cgroup left" \
  || bad "cgroups left: $(ls -d $CG/$NS/*/ 2>&1)"
rmdir $CG/$NS 2>/dev/null
echo "$pass passed, $fail failed"
[ $fail = 0 ]
