#!/bin/sh
# Rootless on cgroup v2, inside the guest (vm/guest.sh vm/payload-rootless): rt run by an
# ordinary user (uid 1000) whose cgroup subtree was delegated to it by root (chown, as
# systemd does for a user session) applies and enforces linux.resources there: pids and
# memory limits bite, pause/resume, ps, kill --all and delete work, and delete removes
# the cgroup. Outside the delegated subtree the container runs without a cgroup and says
# so once. busybox sh only. Prints "N passed, M failed"; exits non-zero on a failure.

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
U=1000
HOME_U=/tmp/rtuser
STATE=$HOME_U/state
echo "rtuser:x:$U:$U::$HOME_U:/bin/sh" >>/etc/passwd
echo "rtuser:x:$U:" >>/etc/group
mkdir -p $HOME_U && chown $U:$U $HOME_U

# as_user COMMAND: run COMMAND with busybox sh as rtuser (su from root asks nothing).
as_user() { su rtuser -s /bin/sh -c "$1"; }
RT="rt --root $STATE"

# Delegate $CG/rtuser: the directory and its interface files become the user's; this
# shell moves into a leaf of it first, so that the user's processes (rt, the container's
# init) move between cgroups whose common ancestor the user owns.
mkdir -p $CG/rtuser/shell
echo $$ >$CG/rtuser/shell/cgroup.procs
chown $U:$U $CG/rtuser $CG/rtuser/cgroup.procs $CG/rtuser/cgroup.subtree_control \
  $CG/rtuser/cgroup.threads $CG/rtuser/shell $CG/rtuser/shell/cgroup.procs

# bundle ID ARGS_JSON RESOURCES_JSON CGROUPS_PATH: a rootless bundle in $HOME_U/b-ID
# (the user's own uid mapped to root, as `rt spec --rootless` writes it).
bundle() {
  b=$HOME_U/b-$1
  mkdir -p $b
  cat >$b/config.json <<JSON
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
  "root": {"path": "$ROOTFS", "readonly": true},
  "hostname": "rootless",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "ro"]}
  ],
  "linux": {
    "uidMappings": [{"containerID": 0, "hostID": $U, "size": 1}],
    "gidMappings": [{"containerID": 0, "hostID": $U, "size": 1}],
    "cgroupsPath": "$4",
    "resources": $3,
    "namespaces": [{"type": "user"}, {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
                   {"type": "uts"}, {"type": "network"}, {"type": "cgroup"}]
  }
}
JSON
  chown -R $U:$U $b
  echo $b
}

sh_args() { printf '["sh", "-c", "%s"]' "$1"; }

wait_stopped() {
  i=0
  while [ $i -lt 600 ]; do
    st=$(as_user "$RT state $1" 2>/dev/null) || return 1
    echo "$st" | grep -q '"status": "stopped"' && return 0
    sleep 0.05; i=$((i + 1))
  done
  return 1
}

echo "# guest: $(uname -r); delegated $CG/rtuser to uid $U; controllers: $(cat $CG/cgroup.subtree_control)"

# --- pids.max in the delegated subtree: forks past 8 processes are refused (pids.events;
# ash gives up at the first refused fork: the forks run in a subshell).
B=$(bundle pids "$(sh_args '(for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done) 2>/dev/null; sleep 2; echo max=$(cat /sys/fs/cgroup/pids.max); cat /sys/fs/cgroup/pids.events')" \
  '{"pids": {"limit": 8}}' /rtuser/pids)
as_user "$RT run -b $B pids" >/tmp/pids.out 2>&1
echo "# run: $?"
sed 's/^/# /' /tmp/pids.out
check "pids.max is 8 in the container's cgroup" grep -qx 'max=8' /tmp/pids.out
refused=$(sed -n 's/^max \([0-9]*\)$/\1/p' /tmp/pids.out)
check "forks past the limit were refused (pids.events max=$refused)" test "${refused:-0}" -ge 1
check "no warning about an ignored cgroup" sh -c "! grep -q 'resources ignored' /tmp/pids.out"
check "run removed the user's cgroup" test ! -d $CG/rtuser/pids

# --- memory.max: a 64 MiB buffer under 16 MiB is OOM-killed.
B=$(bundle mem "$(sh_args 'dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?')" \
  '{"memory": {"limit": 16777216, "swap": 16777216}}' /rtuser/mem)
as_user "$RT create -b $B mem && $RT start mem"
wait_stopped mem || bad "mem did not stop"
eq "memory.max written" 16777216 "$(cat $CG/rtuser/mem/memory.max 2>&1)"
kills=$(grep '^oom_kill ' $CG/rtuser/mem/memory.events | cut -d' ' -f2)
check "memory.events oom_kill >= 1 (got $kills)" test "${kills:-0}" -ge 1
as_user "$RT delete mem"
check "delete removed the cgroup" test ! -d $CG/rtuser/mem

# --- a running container: ps, pause/resume, kill --all, delete.
B=$(bundle life "$(sh_args 'sleep 100 & exec sleep 101')" '{"pids": {"limit": 20}}' /rtuser/life)
as_user "$RT create -b $B life && $RT start life" || bad "life did not start"
n=$(as_user "$RT ps --format json life" | tr ',' '\n' | grep -c '[0-9]')
eq "ps lists the cgroup's 2 processes" 2 "$n"
as_user "$RT update --pids-limit 15 life"
eq "update by the user" 15 "$(cat $CG/rtuser/life/pids.max 2>&1)"
check "events --stats reads the user's cgroup" sh -c "su rtuser -s /bin/sh -c '$RT events --stats life' | grep -q '\"pids\":{\"current\":2'"
as_user "$RT pause life"
eq "pause freezes the user's cgroup" 1 "$(cat $CG/rtuser/life/cgroup.freeze 2>&1)"
check "state says paused" sh -c "su rtuser -s /bin/sh -c '$RT state life' | grep -q paused"
as_user "$RT resume life"
eq "resume thaws it" 0 "$(cat $CG/rtuser/life/cgroup.freeze 2>&1)"
as_user "$RT kill --all life KILL"
wait_stopped life && ok "kill --all stops it" || bad "kill --all: still running"
as_user "$RT delete life"
check "delete removed the cgroup" test ! -d $CG/rtuser/life
check "delete removed the state" test ! -d $STATE/life

# --- outside the delegated subtree: no cgroup, one warning, the container still runs.
B=$(bundle nodeleg "$(sh_args 'echo ran')" '{"pids": {"limit": 8}}' /rt-not-delegated/c)
as_user "$RT run -b $B nodeleg" >/tmp/nodeleg.out 2>&1
sed 's/^/# /' /tmp/nodeleg.out
check "runs without a cgroup" grep -qx ran /tmp/nodeleg.out
eq "one warning: linux.resources ignored" 1 "$(grep -c 'level=warning.*linux.resources ignored' /tmp/nodeleg.out)"
check "no cgroup made outside the delegation" test ! -d $CG/rt-not-delegated

# Hand the subtree back and remove it.
echo $$ >$CG/cgroup.procs
rmdir $CG/rtuser/shell $CG/rtuser 2>/dev/null
check "delegated subtree removed" test ! -d $CG/rtuser

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
