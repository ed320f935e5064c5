#!/bin/bash
# The systemd cgroup driver, checked where it matters: a guest booted with real
# systemd as PID 1 on a pure cgroup v2 hierarchy with AppArmor on
# (vm/sysguest.sh, staged by vm/systemd-test.sh). Each scenario runs once per
# runtime in RT_SYSGUEST_RUNTIMES (default "runc rt"): the same runs with runc
# pass as well (the reference).
#
#   direct      the runtime's own CLI with --systemd-cgroup: cgroupsPath
#               slice:prefix:name, the scope's properties and cgroup files,
#               nested slices, update, pause, ps, events, exec, kill, delete,
#               the default cgroupsPath, an init that fails.
#   docker      dockerd's defaults (systemd driver): run with limits, exec,
#               pause, update, stats, AppArmor's docker-default, stop, rm.
#   containerd  a containerd of its own (ctr: our shim, the runc shim with rt
#               as its BinaryName, plain runc), then the CRI (pod.py) with a
#               pod slice as the kubelet's systemd driver names it.
#   podman      podman's defaults (cgroup manager systemd), --runtime.
#   rootless    an ordinary user's runtime in a scope its systemd user manager
#               delegates: the container's cgroup below it, limits enforced.
#   v1          (a second boot, systemd.unified_cgroup_hierarchy=0) the driver
#               with v1 controllers: properties, v1 files, the init in every
#               hierarchy, pause, update, exec, delete.
#
# After each scenario nothing of it may be left: no scope unit, no cgroup
# directory, no process. Prints "ok   - ..." / "FAIL - ..." per check and
# "N passed, M failed" at the end; exits non-zero on any failure.
set -u

P=/payload
[ ! -f $P/env ] || . $P/env
RUNTIMES=${RT_SYSGUEST_RUNTIMES:-runc rt}
SCENARIOS=${RT_SYSGUEST_SCENARIOS:-direct docker containerd podman rootless}
CG=/sys/fs/cgroup
W=/tmp/rtcheck
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

pass=0 fail=0
SC=''   # the scenario and runtime, prefixed to each check
ok() { pass=$((pass + 1)); echo "ok   - ${SC:+$SC: }$*"; }
bad() { fail=$((fail + 1)); echo "FAIL - ${SC:+$SC: }$*"; }
note() { echo "# $*"; }
# eq DESCRIPTION GOT WANT
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got [$2], want [$3]"; fi; }
# contains DESCRIPTION TEXT NEEDLE / lacks DESCRIPTION TEXT NEEDLE
contains() { case $2 in *"$3"*) ok "$1" ;; *) bad "$1: [$3] not in [$2]" ;; esac; }
lacks() { case $2 in *"$3"*) bad "$1: [$3] in [$2]" ;; *) ok "$1" ;; esac; }
# is DESCRIPTION COMMAND...: the command succeeds
is() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d (failed: $*)"; fi; }
# wait_for SECONDS COMMAND...: poll every 0.2 s
wait_for() {
  local n=$(($1 * 5)); shift
  while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.2; n=$((n - 1)); done
  return 1
}
# t COMMAND...: with a time limit (a hung client must not hang the guest)
t() { timeout -k 5 "${TL:-90}" "$@"; }
# runs DESCRIPTION CODE COMMAND...: the command exits with CODE; its output in $out
# (through a file: a container started by the command may keep its stdout open)
runs() {
  local d=$1 want=$2 rc=0; shift 2
  t "$@" >$W/runs.out 2>&1 </dev/null || rc=$?
  out=$(cat $W/runs.out)
  if [ "$rc" = "$want" ]; then ok "$d"; else bad "$d: exit $rc (want $want): $(tail -c 600 <<<"$out")"; fi
  [ "$rc" = "$want" ]
}
catf() { cat "$1" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }
prop() { systemctl show -P "$2" "$1" 2>/dev/null; }    # prop UNIT PROPERTY
unit_gone() {   # unit_gone UNIT: not loaded (not even failed or inactive)
  local s
  s=$(systemctl show -P LoadState "$1" 2>/dev/null)
  [ "$s" = not-found ] || [ -z "$s" ]
}
in_procs() { grep -qx "$2" "$1/cgroup.procs" 2>/dev/null; }   # in_procs CGDIR PID
# in_scope UNIT SLICE PID: the unit is active, in SLICE, and PID is in its cgroup
in_scope() {
  eq "the scope is active" "$(systemctl is-active "$1")" active
  eq "unit Slice" "$(prop "$1" Slice)" "$2"
  is "the init ($3) is in the scope" in_procs "$CG/$2/$1" "$3"
}
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }
# no_leftovers WHAT UNIT-REGEX CGROUP-NAME-REGEX PROCESS-REGEX
no_leftovers() {
  local units dirs procs
  units=$(systemctl list-units --all --no-legend --plain 2>/dev/null | awk '{print $1}' | grep -E "$2")
  eq "$1: no unit left" "$units" ""
  dirs=$(find $CG -mindepth 1 -type d 2>/dev/null | grep -E "$3")
  eq "$1: no cgroup left" "$dirs" ""
  procs=$(pgrep -a -f "$4" | grep -v pgrep)
  eq "$1: no process left" "$procs" ""
  local failed
  failed=$(systemctl list-units --all --no-legend --plain --state=failed 2>/dev/null | awk '{print $1}')
  eq "$1: no failed unit in the system" "$failed" ""
}

# ------------------------------------------------------------------------ setup --
echo "# systemd $(systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p'), kernel $(uname -r)," \
  "runtimes: $RUNTIMES; scenarios: $SCENARIOS"
mkdir -p $W
install -m 755 $P/rt $P/containerd-shim-rt-v2 /usr/local/bin/
if [ "${RT_SYSGUEST_CGROUP:-v2}" = hybrid ]; then
  # systemd.unified_cgroup_hierarchy=0: v1 controllers, cgroup2 at unified/.
  eq "setup: cgroup v1 hybrid" "$(stat -fc %T $CG):$(stat -fc %T $CG/unified 2>&1)" tmpfs:cgroup2fs
else
  eq "setup: cgroup v2 only" "$(stat -fc %T $CG)" cgroup2fs
fi
eq "setup: systemd is PID 1" "$(cat /proc/1/comm)" systemd
eq "setup: AppArmor is on" "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" Y
eq "setup: rt installed" "$(/usr/local/bin/rt --version >/dev/null 2>&1 && echo yes)" yes
mkdir -p $W/rootfs
tar -C $W/rootfs -xf $P/rootfs.tar
runs "setup: docker import busybox:local" 0 docker import -c 'CMD ["/bin/sh"]' $P/rootfs.tar busybox:local
runs "setup: podman import busybox:local" 0 podman import --change 'CMD ["/bin/sh"]' $P/rootfs.tar localhost/busybox:local

# ---------------------------------------------------------------------- direct --
# A bundle: `runc spec`, then jq FILTER on it; rootfs is $W/rootfs.
bundle() {  # bundle DIR JQ-FILTER
  rm -rf "$1"; mkdir -p "$1"
  (cd "$1" && runc spec) || return 1
  jq --arg root $W/rootfs "$2 | .root.path = \$root | .process.terminal = false" "$1/config.json" >"$1/c.json" &&
    mv "$1/c.json" "$1/config.json"
}

# st ID [JQ]: a field of the runtime's state (default .status); X is direct's command
st() { t "${X[@]}" state "$1" 2>/dev/null | jq -r "${2:-.status}"; }
status_is() { [ "$(st "$1")" = "$2" ]; }
direct() {
  local R=$1 id=rtc-$1 b=$W/direct-$1 root=/run/rtcheck-$1
  local X=("$R" --root "$root" --systemd-cgroup)
  local unit=rtcheck-$id.scope dir=$CG/system.slice/rtcheck-$id.scope
  local io='' iofile=''
  if [ -e $CG/system.slice/io.bfq.weight ]; then io=',"blockIO":{"weight":500}'; iofile=io.bfq.weight
  elif [ -e $CG/system.slice/io.weight ]; then io=',"blockIO":{"weight":500}'; iofile=io.weight; fi
  # A read throttle on the root disk (its MAJOR:MINOR from sysfs).
  local disk major minor
  disk=$(cat /sys/block/vda/dev 2>/dev/null)
  major=${disk%:*} minor=${disk#*:}
  if [ -n "$disk" ]; then
    io=${io:-,\"blockIO\":\{\}}
    io=$(jq -cn --argjson b "{${io#,}}" --argjson M "$major" --argjson m "$minor" \
      '$b | .blockIO.throttleReadBpsDevice = [{"major": $M, "minor": $m, "rate": 1048576}] | ",\"blockIO\":\(.blockIO | tojson)"' -r)
  fi
  bundle $b '.process.args = ["sleep", "1001"]
    | .linux.cgroupsPath = "system.slice:rtcheck:'$id'"
    | .linux.devices = [{"path": "/dev/rtdeny", "type": "c", "major": 1, "minor": 2, "fileMode": 438}]
    | .linux.resources += {
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50}'"$io"'}' || { bad "runc spec + jq"; return; }
  note "$R: resources $(jq -c .linux.resources $b/config.json)"

  runs "create" 0 "${X[@]}" create -b $b $id || return
  eq "state after create" "$(st $id)" created
  eq "the scope is active after create" "$(systemctl is-active $unit)" active
  runs "start" 0 "${X[@]}" start $id
  local pid
  pid=$(st $id .pid)
  eq "state after start" "$(st $id)" running
  eq "the scope is active" "$(systemctl is-active $unit)" active
  is "the init ($pid) is in the scope's cgroup.procs" in_procs $dir "$pid"
  eq "the init's /proc/PID/cgroup" "$(cgroup_of "$pid")" /system.slice/$unit

  # The unit's properties, as systemd reports them, and the cgroup files.
  eq "unit Slice" "$(prop $unit Slice)" system.slice
  eq "unit Delegate" "$(prop $unit Delegate)" yes
  eq "unit MemoryMax" "$(prop $unit MemoryMax)" 67108864
  eq "unit MemoryLow" "$(prop $unit MemoryLow)" 33554432
  eq "unit MemorySwapMax" "$(prop $unit MemorySwapMax)" 67108864
  eq "unit CPUQuotaPerSecUSec" "$(prop $unit CPUQuotaPerSecUSec)" 500ms
  eq "unit CPUWeight (shares 512)" "$(prop $unit CPUWeight)" 20
  eq "unit TasksMax" "$(prop $unit TasksMax)" 50
  eq "unit AllowedCPUs" "$(prop $unit AllowedCPUs)" 0
  eq "unit AllowedMemoryNodes" "$(prop $unit AllowedMemoryNodes)" 0
  eq "unit DevicePolicy" "$(prop $unit DevicePolicy)" strict
  contains "unit DeviceAllow has /dev/null" "$(prop $unit DeviceAllow | tr '\n' ,)" "/dev/char/1:3 rwm,"
  lacks "unit DeviceAllow lacks c 1:2 (/dev/rtdeny)" "$(prop $unit DeviceAllow | tr '\n' ,)" "/dev/char/1:2 "
  eq "memory.max" "$(catf $dir/memory.max)" 67108864
  eq "memory.low" "$(catf $dir/memory.low)" 33554432
  eq "memory.swap.max" "$(catf $dir/memory.swap.max)" 67108864
  eq "cpu.max" "$(catf $dir/cpu.max)" "50000 100000"
  eq "cpu.weight" "$(catf $dir/cpu.weight)" 20
  eq "cpuset.cpus" "$(catf $dir/cpuset.cpus)" 0
  eq "cpuset.mems" "$(catf $dir/cpuset.mems)" 0
  eq "pids.max" "$(catf $dir/pids.max)" 50
  case $iofile in
    io.bfq.weight) eq "io.bfq.weight (blockIO weight 500)" "$(catf $dir/io.bfq.weight)" "default 500" ;;
    io.weight) eq "io.weight (blockIO weight 500)" "$(catf $dir/io.weight)" "default 4950" ;;
    *) note "no io.weight or io.bfq.weight here: blockIO weight not checked" ;;
  esac
  if [ -n "$disk" ]; then
    contains "io.max (throttleReadBpsDevice on $disk)" "$(catf $dir/io.max)" "$disk rbps=1048576"
    if [ "$R" = rt ]; then
      contains "unit IOReadBandwidthMax" "$(prop $unit IOReadBandwidthMax)" "/dev/block/$disk 1048576"
    else
      note "runc: IOReadBandwidthMax=$(prop $unit IOReadBandwidthMax) (runc 1.1 sets no IO throttle property)"
    fi
  fi

  # Devices: allowed ones work, a node without an allow rule is refused (c 1:2
  # has no driver: were it allowed, opening it would fail with ENXIO instead).
  note "$R: DeviceAllow=$(prop $unit DeviceAllow | tr '\n' ',')"
  runs "exec: /dev/null and /dev/zero are allowed" 0 "${X[@]}" exec $id sh -c 'head -c 3 /dev/zero >/dev/null'
  runs "exec: a device without an allow rule is refused" 1 "${X[@]}" exec $id head -c 1 /dev/rtdeny
  contains "... with EPERM" "$out" "Operation not permitted"

  # update: the unit and the file agree.
  runs "update --memory 100M" 0 "${X[@]}" update --memory 100M $id
  eq "memory.max after update" "$(catf $dir/memory.max)" 104857600
  eq "unit MemoryMax after update" "$(prop $unit MemoryMax)" 104857600
  eq "pids.max untouched by update" "$(catf $dir/pids.max)" 50

  # pause / resume: the cgroup freezer.
  runs "pause" 0 "${X[@]}" pause $id
  eq "state paused" "$(st $id)" paused
  eq "cgroup.freeze 1" "$(catf $dir/cgroup.freeze)" 1
  contains "cgroup.events frozen 1" "$(catf $dir/cgroup.events)" "frozen 1"
  runs "resume" 0 "${X[@]}" resume $id
  eq "state running after resume" "$(st $id)" running
  contains "cgroup.events frozen 0" "$(catf $dir/cgroup.events)" "frozen 0"

  runs "ps" 0 "${X[@]}" ps $id
  contains "ps lists sleep 1001" "$out" "sleep 1001"
  runs "ps --format json" 0 "${X[@]}" ps --format json $id
  eq "ps --format json is the init" "$(jq -c . <<<"$out")" "[$pid]"
  runs "events --stats" 0 "${X[@]}" events --stats $id
  local mem
  mem=$(jq -r '.data.memory.usage.usage // 0' <<<"$out" 2>/dev/null)
  is "events --stats: memory usage > 0 ($mem)" test "${mem:-0}" -gt 0
  eq "events --stats: pids current" "$(jq -r '.data.pids.current' <<<"$out" 2>/dev/null)" 1

  # exec lands in the scope.
  runs "exec: exit status" 4 "${X[@]}" exec $id sh -c 'echo in-exec; exit 4'
  eq "exec: output" "$out" in-exec
  runs "exec -d" 0 "${X[@]}" exec -d --pid-file $W/exec.pid $id sleep 1001
  local epid
  epid=$(cat $W/exec.pid 2>/dev/null)
  eq "exec'd process's cgroup" "$(cgroup_of "$epid")" /system.slice/$unit
  is "exec'd process in cgroup.procs" in_procs $dir "$epid"

  # kill: one signal to the init; --all to everything.
  runs "kill --all KILL" 0 "${X[@]}" kill --all $id KILL
  is "kill --all: the exec'd process died" wait_for 10 sh -c "! kill -0 $epid 2>/dev/null"
  is "kill --all: the init died" wait_for 10 sh -c "! kill -0 $pid 2>/dev/null"
  is "state stopped" wait_for 10 status_is $id stopped
  runs "delete" 0 "${X[@]}" delete $id
  is "after delete: the unit is gone" wait_for 10 unit_gone $unit
  runs "systemctl status: not found" 4 systemctl status $unit
  is "after delete: no scope directory" wait_for 10 sh -c "[ ! -e $dir ]"
  runs "state after delete fails" 1 "${X[@]}" state $id

  # A nested slice: a-b-c.slice is a.slice/a-b.slice/a-b-c.slice.
  local id2=rtc2-$R
  local dir2=$CG/rta.slice/rta-b.slice/rta-b-c.slice/rtcheck-$id2.scope
  jq '.linux.cgroupsPath = "rta-b-c.slice:rtcheck:'$id2'" | del(.linux.devices)' $b/config.json >$b/c.json &&
    mv $b/c.json $b/config.json
  runs "nested slice: run -d" 0 "${X[@]}" run -d -b $b $id2
  pid=$(st $id2 .pid)
  is "nested slice: the scope is at rta.slice/rta-b.slice/rta-b-c.slice/rtcheck-$id2.scope" in_procs $dir2 "$pid"
  eq "nested slice: unit Slice" "$(prop rtcheck-$id2.scope Slice)" rta-b-c.slice
  eq "nested slice: memory.max" "$(catf $dir2/memory.max)" 67108864
  runs "nested slice: kill" 0 "${X[@]}" kill $id2 KILL
  is "nested slice: stopped" wait_for 10 status_is $id2 stopped
  runs "nested slice: delete" 0 "${X[@]}" delete $id2
  is "nested slice: the unit is gone" wait_for 10 unit_gone rtcheck-$id2.scope
  is "nested slice: no scope directory" wait_for 10 sh -c "[ ! -e $dir2 ]"
  systemctl stop rta.slice 2>/dev/null   # the slices stay, as with runc; ours to remove

  # No cgroupsPath: system.slice:RUNTIME:ID, each runtime's own prefix (runc-ID.scope,
  # rt-ID.scope), as runc makes it.
  local id3=rtc3-$R unit3=$R-rtc3-$R.scope
  jq 'del(.linux.cgroupsPath)' $b/config.json >$b/c.json && mv $b/c.json $b/config.json
  runs "no cgroupsPath: run -d" 0 "${X[@]}" run -d -b $b $id3
  pid=$(st $id3 .pid)
  eq "no cgroupsPath: the init's cgroup is system.slice/$unit3" "$(cgroup_of "$pid")" /system.slice/$unit3
  eq "no cgroupsPath: unit active" "$(systemctl is-active $unit3)" active
  runs "no cgroupsPath: delete --force" 0 "${X[@]}" delete --force $id3
  is "no cgroupsPath: the unit is gone" wait_for 10 unit_gone $unit3

  # An init that fails: run returns its status, and no failed unit stays behind.
  local id4=rtc4-$R
  jq '.linux.cgroupsPath = "system.slice:rtcheck:'$id4'" | .process.args = ["sh", "-c", "exit 3"]' \
    $b/config.json >$b/c.json && mv $b/c.json $b/config.json
  runs "failing init: run returns its exit status" 3 "${X[@]}" run -b $b $id4
  is "failing init: the unit is gone (no reset-failed needed)" wait_for 10 unit_gone rtcheck-$id4.scope
  runs "failing init: state fails (deleted)" 1 "${X[@]}" state $id4

  eq "no container left in the runtime's root" "$(ls -A $root 2>/dev/null)" ""
}

# ---------------------------------------------------------------------- docker --
docker_scenario() {
  local R=$1 name=rtcheck-d-$1
  eq "cgroup driver" "$(docker info -f '{{.CgroupDriver}}')" systemd
  eq "cgroup version" "$(docker info -f '{{.CgroupVersion}}')" 2
  runs "run --rm: exit status" 3 docker run --rm --runtime "$R" --network none busybox:local sh -c 'echo out; exit 3'
  eq "run --rm: output" "$out" out
  runs "run -d --memory 64m --cpus 0.5 --pids-limit 50" 0 docker run -d --name $name --runtime "$R" \
    --network none --memory 64m --cpus 0.5 --pids-limit 50 busybox:local sleep 1002 || return
  local id pid unit dir
  id=$(docker inspect -f '{{.Id}}' $name)
  pid=$(docker inspect -f '{{.State.Pid}}' $name)
  eq "the runtime" "$(docker inspect -f '{{.HostConfig.Runtime}}' $name)" "$R"
  unit=docker-$id.scope dir=$CG/system.slice/docker-$id.scope
  in_scope "$unit" system.slice "$pid"
  eq "memory.max" "$(catf "$dir/memory.max")" 67108864
  eq "cpu.max" "$(catf "$dir/cpu.max")" "50000 100000"
  eq "pids.max" "$(catf "$dir/pids.max")" 50
  eq "unit MemoryMax" "$(prop "$unit" MemoryMax)" 67108864
  runs "exec" 4 docker exec $name sh -c 'echo in-exec; exit 4'
  eq "exec: output" "$out" in-exec
  runs "exec: the container sees its own cgroup files" 0 docker exec $name cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max
  eq "exec: memory.max pids.max inside" "$(tr '\n' ' ' <<<"$out")" "67108864 50 "
  runs "exec -d" 0 docker exec -d $name sleep 1002
  is "exec -d: two processes in the scope" wait_for 10 sh -c "[ \$(wc -l <$dir/cgroup.procs) = 2 ]"
  runs "pause" 0 docker pause $name
  eq "paused" "$(docker inspect -f '{{.State.Status}}' $name)" paused
  contains "cgroup.events frozen 1" "$(catf "$dir/cgroup.events")" "frozen 1"
  runs "unpause" 0 docker unpause $name
  eq "running" "$(docker inspect -f '{{.State.Status}}' $name)" running
  contains "cgroup.events frozen 0" "$(catf "$dir/cgroup.events")" "frozen 0"
  runs "update --memory 100m --memory-swap 200m" 0 docker update --memory 100m --memory-swap 200m $name
  eq "memory.max after update" "$(catf "$dir/memory.max")" 104857600
  eq "memory.swap.max after update" "$(catf "$dir/memory.swap.max")" 104857600
  eq "unit MemoryMax after update" "$(prop "$unit" MemoryMax)" 104857600
  runs "stats --no-stream" 0 docker stats --no-stream --format '{{.MemUsage}}|{{.PIDs}}' $name
  contains "stats: the limit" "$out" " / 100MiB|"
  is "stats: memory in use ($out)" grep -qE '^[0-9.]*[1-9][0-9.]*[KMG]i?B / ' <<<"$out"
  eq "stats: pids" "${out#*|}" 2

  # AppArmor: docker-default confines the container. Writing /proc/sysrq-trigger:
  # read-only by default (a mask); with systempaths=unconfined only the profile
  # refuses it (its `deny @{PROC}/sysrq-trigger`), and unconfined it succeeds
  # (key 4: console loglevel 4, what the guest has anyway).
  runs "apparmor: exec's profile" 0 docker exec $name cat /proc/self/attr/current
  eq "apparmor: exec'd process is docker-default (enforce)" "$out" "docker-default (enforce)"
  eq "apparmor: init's profile from the host" "$(tr -d '\0' </proc/$pid/attr/current)" "docker-default (enforce)"
  local d=(docker run --rm --runtime "$R" --network none)
  runs "apparmor: run's profile" 0 "${d[@]}" busybox:local cat /proc/self/attr/current
  eq "apparmor: docker-default (enforce)" "$out" "docker-default (enforce)"
  runs "apparmor: sysrq-trigger refused by the profile" 1 "${d[@]}" --security-opt systempaths=unconfined \
    busybox:local sh -c 'echo 4 >/proc/sysrq-trigger'
  contains "... with EACCES" "$out" "Permission denied"
  runs "apparmor=unconfined: the same write works" 0 "${d[@]}" --security-opt systempaths=unconfined \
    --security-opt apparmor=unconfined busybox:local sh -c 'cat /proc/self/attr/current; echo 4 >/proc/sysrq-trigger'
  eq "apparmor=unconfined: profile" "$out" unconfined

  runs "stop" 0 docker stop -t 1 $name
  eq "stop: exit code 137 (pid 1 ignores TERM)" "$(docker inspect -f '{{.State.ExitCode}}' $name)" 137
  is "stop: the unit is gone" wait_for 10 unit_gone "$unit"
  runs "rm" 0 docker rm $name
  eq "no container left" "$(docker ps -aq)" ""
}

# ------------------------------------------------------------------ containerd --
CTD=$W/ctd
ctd_start() {
  rm -rf $CTD; mkdir -p $CTD/cni/bin $CTD/cni/conf $CTD/logs
  # Our shim: containerd's CRI sends a runtime_type other than runc's its
  # options as runtimeoptions.v1.Options (TypeUrl, ConfigPath; ConfigBody from
  # 1.7 on), whatever the keys: the runc-style options file is at ConfigPath.
  printf 'SystemdCgroup = true\n' >$CTD/rt-shim.toml
  local cri='plugins."io.containerd.grpc.v1.cri"'
  cat >$CTD/config.toml <<TOML
version = 2
root = "$CTD/root"
state = "$CTD/state"
[grpc]
  address = "$CTD/containerd.sock"
[ttrpc]
  address = "$CTD/containerd.sock.ttrpc"
[$cri]
  sandbox_image = "docker.io/library/busybox:pause"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [$cri.cni]
    bin_dir = "$CTD/cni/bin"
    conf_dir = "$CTD/cni/conf"
  [$cri.containerd]
    default_runtime_name = "runc"
    [$cri.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [$cri.containerd.runtimes.runc.options]
        SystemdCgroup = true
    [$cri.containerd.runtimes.runcrt]
      runtime_type = "io.containerd.runc.v2"
      [$cri.containerd.runtimes.runcrt.options]
        BinaryName = "/usr/local/bin/rt"
        SystemdCgroup = true
    [$cri.containerd.runtimes.rt]
      runtime_type = "io.containerd.rt.v2"
      [$cri.containerd.runtimes.rt.options]
        SystemdCgroup = true
        ConfigPath = "$CTD/rt-shim.toml"
TOML
  containerd --config $CTD/config.toml >$CTD/containerd.log 2>&1 &
  CTD_PID=$!
  if ! wait_for 60 ctr -a $CTD/containerd.sock version >/dev/null 2>&1; then
    bad "containerd answers"; tail -n 20 $CTD/containerd.log; return 1
  fi
  ok "containerd answers"
  local ns
  for ns in default k8s.io; do
    runs "ctr -n $ns image import" 0 ctr -a $CTD/containerd.sock -n $ns image import \
      --base-name docker.io/library/busybox $P/busybox-oci.tar
  done
}
CTD_PID=''
ctd_stop() {
  [ -z "$CTD_PID" ] || { kill "$CTD_PID" 2>/dev/null; wait "$CTD_PID" 2>/dev/null; }
  CTD_PID=''
  umount -R $CTD/root 2>/dev/null; umount -R $CTD/state 2>/dev/null
}

# ctr_case LABEL ID RUNTIME-ARGS...: one container through ctr with those flags.
ctr_case() {
  local label=$1 id=$2; shift 2
  local C=(ctr -a "$CTD/containerd.sock" -n default)
  local img=docker.io/library/busybox:latest
  local unit=ctr-$id.scope dir=$CG/system.slice/ctr-$id.scope
  runs "$label: run -d" 0 "${C[@]}" run -d --fifo-dir $CTD/fifo "$@" --cgroup system.slice:ctr:$id \
    $img $id sleep 1003 || { note "$(tail -n 5 $CTD/containerd.log)"; t "${C[@]}" container rm $id >/dev/null 2>&1; return; }
  local pid
  pid=$(t "${C[@]}" task ls | awk -v id=$id '$1 == id {print $2}')
  eq "$label: the scope is active" "$(systemctl is-active $unit)" active
  is "$label: the init ($pid) is in the scope" in_procs $dir "$pid"
  eq "$label: unit Delegate" "$(prop $unit Delegate)" yes
  runs "$label: exec" 4 "${C[@]}" task exec --fifo-dir $CTD/fifo --exec-id e1 $id sh -c 'echo in-exec; exit 4'
  eq "$label: exec output" "$out" in-exec
  runs "$label: exec -d" 0 "${C[@]}" task exec --fifo-dir $CTD/fifo -d --exec-id e2 $id sleep 1003
  runs "$label: task ps" 0 "${C[@]}" task ps $id
  local p n=0 all_in=yes
  for p in $(awk 'NR > 1 {print $1}' <<<"$out"); do
    n=$((n + 1)); [ "$(cgroup_of "$p")" = /system.slice/$unit ] || all_in="no: $p in $(cgroup_of "$p")"
  done
  eq "$label: task ps lists init and exec" "$n" 2
  eq "$label: both in the scope" "$all_in" yes
  runs "$label: kill" 0 "${C[@]}" task kill -s SIGKILL $id
  is "$label: stopped" wait_for 20 sh -c "ctr -a $CTD/containerd.sock -n default task ls | grep -q '^$id .*STOPPED'"
  runs "$label: task rm" 0 "${C[@]}" task rm $id
  runs "$label: container rm" 0 "${C[@]}" container rm $id
  is "$label: the unit is gone" wait_for 10 unit_gone $unit
  is "$label: no scope directory" wait_for 10 sh -c "[ ! -e $dir ]"
  # run --rm in the foreground: the exit status comes back.
  runs "$label: run --rm exit status" 5 "${C[@]}" run --rm --fifo-dir $CTD/fifo "$@" \
    --cgroup system.slice:ctr:$id-fg $img $id-fg sh -c 'echo fg; exit 5'
  eq "$label: run --rm output" "$out" fg
  is "$label: run --rm: the unit is gone" wait_for 10 unit_gone ctr-$id-fg.scope
}

# cri_case HANDLER: pod.py's CRI sequence in a pod slice named as the kubelet's
# systemd driver names it; its scopes checked while it runs.
cri_case() {
  local h=$1 uid slice sdir line rc=0
  uid=$(tr - _ </proc/sys/kernel/random/uuid)
  slice=kubepods-besteffort-pod$uid.slice
  sdir=$CG/kubepods.slice/kubepods-besteffort.slice/$slice
  mkdir -p $CTD/logs/$h
  coproc POD { timeout 300 python3 $P/pod.py --socket $CTD/containerd.sock --handler "$h" \
    --cgroup-parent "$slice" --log-dir $CTD/logs/$h 2>&1; }
  local pod_pid=$POD_PID in=${POD[1]} outfd=${POD[0]}
  while IFS= read -r -u "$outfd" line; do
    case $line in
      "ok   - "*) ok "cri[$h]: ${line#ok   - }" ;;
      "FAIL - "*) bad "cri[$h]: ${line#FAIL - }" ;;
      shims-while-running)
        local scopes s p cmd procs=0 kinds=''
        scopes=$(cd $sdir 2>/dev/null && ls -d cri-containerd-*.scope 2>/dev/null)
        eq "cri[$h]: two scopes under $slice" "$(wc -w <<<"$scopes")" 2
        for s in $scopes; do
          eq "cri[$h]: ${s:0:27}... active" "$(systemctl is-active "$s")" active
          eq "cri[$h]: ${s:0:27}... Slice" "$(prop "$s" Slice)" "$slice"
          procs=$((procs + $(wc -l <"$sdir/$s/cgroup.procs")))
          p=$(head -n 1 "$sdir/$s/cgroup.procs")
          cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)
          case $cmd in
            "/bin/sleep 2147483647 ") kinds="$kinds sandbox" ;;
            "sleep 1000 ")
              kinds="$kinds app"
              # CRI's default for a container without a profile: its own, loaded by containerd.
              eq "cri[$h]: the app's AppArmor profile" "$(tr -d '\0' </proc/$p/attr/current)" \
                "cri-containerd.apparmor.d (enforce)" ;;
            *) kinds="$kinds [$cmd]" ;;
          esac
        done
        kinds=$(tr ' ' '\n' <<<"$kinds" | sort | tr '\n' ' ')
        eq "cri[$h]: the pause sandbox and the app, one process in each scope" "$procs$kinds" "2 app sandbox "
        echo >&"$in"
        ;;
      *) echo "#   pod.py: $line" ;;
    esac
  done
  wait "$pod_pid" || rc=$?
  eq "cri[$h]: pod.py exit status" "$rc" 0
  [ "$rc" = 0 ] || note "containerd's log: $(grep -E 'level=(error|warning)' $CTD/containerd.log | tail -n 3)"
  local left
  left=$(ls -d $sdir/*.scope 2>/dev/null)
  eq "cri[$h]: no scope left in the pod slice" "$left" ""
  systemctl stop "$slice" 2>/dev/null   # the kubelet removes the pod's slice
}

no_shim() { ! pgrep -f "containerd-shim-r.*-address $CTD/" >/dev/null; }
containerd_scenario() {
  local R=$1
  ctd_start || return
  if [ "$R" = runc ]; then
    ctr_case "runc shim + runc" ctrc --runtime io.containerd.runc.v2 --runc-systemd-cgroup
    cri_case runc
  else
    ctr_case "rt shim" ctrt --runtime io.containerd.rt.v2 --runtime-config-path $CTD/rt-shim.toml
    ctr_case "runc shim + rt" ctrr --runtime io.containerd.runc.v2 --runc-binary /usr/local/bin/rt --runc-systemd-cgroup
    cri_case rt
    cri_case runcrt
  fi
  local tasks
  tasks=$(ctr -a $CTD/containerd.sock -n default task ls -q 2>&1; ctr -a $CTD/containerd.sock -n k8s.io task ls -q 2>&1)
  eq "no task left" "$tasks" ""
  ctd_stop
  systemctl stop kubepods.slice 2>/dev/null   # the kubelet's to remove
  is "no shim left" wait_for 10 no_shim
}

# ---------------------------------------------------------------------- podman --
podman_scenario() {
  local R=$1 name=rtcheck-p-$1 rtpath
  rtpath=$(command -v "$R")
  local PM=(podman --runtime "$rtpath")
  eq "cgroup manager" "$(podman info -f '{{.Host.CgroupManager}}')" systemd
  runs "run --rm: exit status" 3 "${PM[@]}" run --rm --network none localhost/busybox:local sh -c 'echo out; exit 3'
  eq "run --rm: output" "$out" out
  runs "run -d --memory 64m --pids-limit 50" 0 "${PM[@]}" run -d --name $name --network none \
    --memory 64m --pids-limit 50 localhost/busybox:local sleep 1004 || return
  local id pid unit dir
  id=$(podman inspect -f '{{.Id}}' $name)
  pid=$(podman inspect -f '{{.State.Pid}}' $name)
  eq "the runtime" "$(podman inspect -f '{{.OCIRuntime}}' $name)" "$rtpath"
  unit=libpod-$id.scope dir=$CG/machine.slice/libpod-$id.scope
  in_scope "$unit" machine.slice "$pid"
  local cpid
  cpid=$(podman inspect -f '{{.State.ConmonPid}}' $name)
  note "conmon $cpid in $(cgroup_of "$cpid"); units: $(systemctl list-units --all --no-legend --plain | grep -E 'libpod|conmon' | tr '\n' ' ')"
  eq "memory.max" "$(catf "$dir/memory.max")" 67108864
  eq "pids.max" "$(catf "$dir/pids.max")" 50
  runs "exec" 4 "${PM[@]}" exec $name sh -c 'echo in-exec; exit 4'
  eq "exec: output" "$out" in-exec
  runs "exec cat /sys/fs/cgroup/memory.max" 0 "${PM[@]}" exec $name cat /sys/fs/cgroup/memory.max
  eq "exec: memory.max inside" "$out" 67108864
  runs "exec: AppArmor profile" 0 "${PM[@]}" exec $name cat /proc/self/attr/current
  case $out in containers-default-*" (enforce)") ok "exec: podman's containers-default profile ($out)" ;;
    *) bad "exec: podman's containers-default profile: got [$out]" ;; esac
  runs "stop" 0 "${PM[@]}" stop -t 1 $name
  eq "stop: exit code 137" "$(podman inspect -f '{{.State.ExitCode}}' $name)" 137
  runs "rm" 0 "${PM[@]}" rm $name
  is "the unit is gone" wait_for 10 unit_gone "$unit"
  eq "no container left" "$(podman ps -aq)" ""
}

# -------------------------------------------------------------------- rootless --
# An ordinary user whose systemd user manager (user@UID.service, Delegate=yes) gives it a
# cgroup subtree: in a scope of its own (systemd-run --user --scope), the user's shell
# moves to a leaf, and the runtime, run by the user with a rootless config, makes the
# container's cgroup below the scope: the limits are written and enforced there.
RLU=rtcheck-user
rootless_scenario() {
  local R=$1 rtpath uid b=$W/rl-$1
  rtpath=$(command -v "$R")
  id -u $RLU >/dev/null 2>&1 || useradd -m -s /bin/bash $RLU
  uid=$(id -u $RLU)
  runs "start the user's systemd manager" 0 systemctl start user@$uid.service ||
    { note "$(journalctl -b --no-pager -n 25 -u user@$uid.service -u user-runtime-dir@$uid.service | tr '\n' '|')"; return; }
  local ucg=$CG/user.slice/user-$uid.slice/user@$uid.service
  note "delegated to the user: $(catf $ucg/cgroup.controllers)"
  rm -rf $b; mkdir -p $b; chown $RLU: $b
  runs "spec --rootless as the user" 0 runuser -u $RLU -- sh -c "cd $b && $rtpath spec --rootless" || return
  jq --arg root $W/rootfs '.root.path = $root | .process.terminal = false
      | .process.args = ["sh", "-c", "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max; (for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1 & done) 2>/dev/null; sleep 2; grep ^max /sys/fs/cgroup/pids.events"]
      | .linux.resources = {"pids": {"limit": 8}, "memory": {"limit": 33554432}}
      | .linux.cgroupsPath = "CGPATH"' $b/config.json >$b/c.json && mv $b/c.json $b/config.json
  chown -R $RLU: $b
  # As the user, in a delegated scope: move to a leaf, put the container next to it.
  cat >$b/go.sh <<SCRIPT
S=\$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir $CG\$S/shell && echo \$\$ > $CG\$S/shell/cgroup.procs || exit 9
sed -i "s|CGPATH|\$S/ctr|" $b/config.json
echo "scope=\$S"
$rtpath --root /run/user/$uid/rtcheck run -b $b rl-$R; echo "run=\$?"
test -d $CG\$S/ctr && echo "left=yes" || echo "left=no"
SCRIPT
  chmod 755 $b/go.sh
  runs "rootless run in a delegated user scope" 0 runuser -u $RLU -- env XDG_RUNTIME_DIR=/run/user/$uid \
    systemd-run --user --scope --quiet -p Delegate=yes --unit rtcheck-rl-$R.scope $b/go.sh
  note "$(echo "$out" | tr '\n' ' ')"
  contains "the init's pids.max" "$out" $'\n8\n'
  contains "the init's memory.max" "$out" 33554432
  case $out in *$'\nmax '[1-9]*) ok "forks past pids.max refused (pids.events)" ;; *) bad "no fork refused: [$out]" ;; esac
  contains "run: exit status 0" "$out" "run=0"
  contains "the container's cgroup is removed" "$out" "left=no"
  lacks "no 'resources ignored' warning" "$out" "resources ignored"
  if [ "$R" = rt ]; then
    # rt does not drive the user's own systemd manager: one line, nothing left.
    runs "--systemd-cgroup as the user" 1 runuser -u $RLU -- env XDG_RUNTIME_DIR=/run/user/$uid \
      "$rtpath" --root /run/user/$uid/rtcheck --systemd-cgroup run -b $b rl2-$R
    contains "--systemd-cgroup refused, naming the flag" "$out" "--systemd-cgroup: a container of a user other than root"
    eq "no state left" "$(ls /run/user/$uid/rtcheck 2>/dev/null)" ""
  fi
  systemctl stop user@$uid.service
}

# -------------------------------------------------------------------------- v1 --
# The driver on a systemd host with v1 controllers (booted by vm/systemd-test.sh
# with systemd.unified_cgroup_hierarchy=0): the scope spans the hierarchies systemd
# manages; the runtime puts the init in the others (cpuset, freezer, ...) itself.
v1_scenario() {
  local R=$1 id=rtv1-$1 b=$W/v1-$1 root=/run/rtcheck-$1
  local X=("$R" --root "$root" --systemd-cgroup)
  local unit=rtcheck-$id.scope rel=rta.slice/rta-b.slice/rtcheck-$id.scope
  bundle $b '.process.args = ["sleep", "1005"]
    | .linux.cgroupsPath = "rta-b.slice:rtcheck:'$id'"
    | .linux.resources += {
        "memory": {"limit": 67108864},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50}}' || { bad "runc spec + jq"; return; }
  runs "run -d" 0 "${X[@]}" run -d -b $b $id || return
  local pid h
  pid=$(st $id .pid)
  eq "the scope is active" "$(systemctl is-active $unit)" active
  eq "Delegate" "$(prop $unit Delegate)" yes
  eq "MemoryLimit" "$(prop $unit MemoryLimit)" 67108864
  eq "CPUShares" "$(prop $unit CPUShares)" 512
  eq "CPUQuotaPerSecUSec" "$(prop $unit CPUQuotaPerSecUSec)" 500ms
  eq "TasksMax" "$(prop $unit TasksMax)" 50
  eq "memory.limit_in_bytes" "$(catf $CG/memory/$rel/memory.limit_in_bytes)" 67108864
  eq "cpu.shares" "$(catf $CG/cpu,cpuacct/$rel/cpu.shares)" 512
  eq "cpu.cfs_quota_us" "$(catf $CG/cpu,cpuacct/$rel/cpu.cfs_quota_us)" 50000
  eq "pids.max" "$(catf $CG/pids/$rel/pids.max)" 50
  eq "cpuset.cpus" "$(catf $CG/cpuset/$rel/cpuset.cpus)" 0
  # Every hierarchy, systemd's and the others, has the init in the scope's directory.
  for h in systemd memory cpu,cpuacct pids devices blkio cpuset freezer net_cls,net_prio perf_event hugetlb unified; do
    [ -d $CG/$h ] || continue
    if [ "$R" = runc ] && [ $h = devices ]; then
      # runc 1.1.5 differs here (the reference for everything else): its init is not
      # in the scope's devices cgroup.
      note "runc: the init's devices cgroup is $(grep ':devices:' /proc/$pid/cgroup)"
      continue
    fi
    is "the init is in $h/$rel" in_procs $CG/$h/$rel "$pid"
  done
  runs "pause" 0 "${X[@]}" pause $id
  eq "freezer.state FROZEN" "$(catf $CG/freezer/$rel/freezer.state)" FROZEN
  runs "resume" 0 "${X[@]}" resume $id
  runs "update --memory 100M" 0 "${X[@]}" update --memory 100M $id
  eq "update: memory.limit_in_bytes" "$(catf $CG/memory/$rel/memory.limit_in_bytes)" 104857600
  eq "update: MemoryLimit" "$(prop $unit MemoryLimit)" 104857600
  runs "exec" 0 "${X[@]}" exec $id cat /proc/self/cgroup
  contains "exec: in the scope (freezer too)" "$out" "freezer:/$rel"
  runs "delete --force" 0 "${X[@]}" delete --force $id
  is "the unit is gone" wait_for 10 unit_gone $unit
  eq "no scope directory in any hierarchy" "$(find $CG -name "rtcheck-$id.scope")" ""
  # The slice directories in the hierarchies systemd leaves alone were the runtime's.
  local left
  left=$(for h in cpuset freezer net_cls,net_prio perf_event hugetlb rdma misc; do
    [ -d $CG/$h/rta.slice ] && echo $h/rta.slice; done)
  if [ "$R" = rt ]; then
    eq "no slice directory rt made is left (cpuset, freezer, ...)" "$left" ""
  else
    note "runc leaves: $(echo $left)"
  fi
  systemctl stop rta.slice 2>/dev/null
  find $CG -depth -type d -name 'rta*.slice' -exec rmdir {} + 2>/dev/null   # the slices rt made for cpuset & co
}

# -------------------------------------------------------------------------- run --
# What a scenario may leave behind, checked after it however it ended (unit
# names, cgroup directory names, process command lines: extended regexes).
leftovers() {
  case $1 in
    direct) no_leftovers afterwards 'rtcheck-|-rtc[0-9]?-' 'rtcheck-|-rtc[0-9]?-|rta\.slice' 'sleep 1001' ;;
    docker) no_leftovers afterwards 'docker-' 'docker-' 'sleep 1002' ;;
    containerd) no_leftovers afterwards 'ctr-ctr|cri-containerd-|kubepods' 'ctr-ctr|cri-containerd-|kubepods' \
      'sleep 1003|sleep 2147483647|sleep 1000$|containerd-shim-r.*-address /tmp/rtcheck' ;;
    podman) no_leftovers afterwards 'libpod-' 'libpod-' 'sleep 1004' ;;
    v1) no_leftovers afterwards 'rtcheck-' 'rtcheck-' 'sleep 1005' ;;
    rootless) no_leftovers afterwards 'rtcheck-rl' 'rtcheck-rl' 'rtcheck-rl|/rl-r' ;;
  esac
}
# Then whatever is left is removed, so that the next scenario starts clean.
clean() {
  local R=$2 p
  case $1 in
    direct)
      for p in rtc rtc2 rtc3 rtc4; do t "$R" --root /run/rtcheck-$R --systemd-cgroup delete --force $p-$R >/dev/null 2>&1; done
      rm -rf /run/rtcheck-$R
      systemctl stop 'rtcheck-*.scope' "*-rtc*-$R.scope" rta.slice >/dev/null 2>&1 ;;
    docker) t docker rm -f rtcheck-d-$R >/dev/null 2>&1 ;;
    containerd)
      ctd_stop
      for p in $(pgrep -f "containerd-shim-r.*-address $CTD/"); do kill -9 "$p"; done
      systemctl stop 'ctr-ctr*.scope' 'cri-containerd-*.scope' kubepods.slice >/dev/null 2>&1 ;;
    podman) t podman rm -f -t 0 rtcheck-p-$R >/dev/null 2>&1 ;;
    rootless)
      uid=$(id -u $RLU 2>/dev/null) && systemctl stop user@$uid.service >/dev/null 2>&1 ;;
    v1)
      t "$R" --root /run/rtcheck-$R --systemd-cgroup delete --force rtv1-$R >/dev/null 2>&1
      rm -rf /run/rtcheck-$R
      systemctl stop 'rtcheck-*.scope' rta.slice >/dev/null 2>&1 ;;
  esac
  systemctl reset-failed >/dev/null 2>&1
}

for R in $RUNTIMES; do
  for s in $SCENARIOS; do
    echo "# --- $s with $R ($(cut -d' ' -f1 /proc/uptime)s)"
    SC="${s}[$R]"
    case $s in
      direct) direct "$R" ;;
      docker) docker_scenario "$R" ;;
      containerd) containerd_scenario "$R" ;;
      podman) podman_scenario "$R" ;;
      v1) v1_scenario "$R" ;;
      rootless) rootless_scenario "$R" ;;
      *) bad "unknown scenario" ;;
    esac
    leftovers "$s"
    clean "$s" "$R"
    SC=''
  done
done
echo "# done at $(cut -d' ' -f1 /proc/uptime)s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
