#!/usr/bin/env bash
# vm/sysguest.sh - run a payload inside a throwaway QEMU guest that boots a real
# Debian bookworm systemd (PID 1) on a pure cgroup v2 hierarchy, with dbus,
# udev, AppArmor, containerd 1.6, docker.io 20.10 (bridge none, no iptables),
# podman 4.3, runc 1.1 and python3 with grpcio.
# Adapted from the team's shared recipe (tools/sysguest.sh in the shared
# folder): the cache lives in the repo, KVM is used when the host has it, the
# guest has podman and the CRI client's needs, and docker knows rt as a runtime.
#
#   usage: vm/sysguest.sh [-t TIMEOUT] PAYLOAD_DIR
#
# PAYLOAD_DIR must contain run.sh. It is shared with the guest read-write over
# 9p (mount tag "payload") and mounted at /payload. Once multi-user.target,
# containerd.service and docker.service are up, guest-payload.service runs
# `bash /payload/run.sh` as root (cwd /payload, stdin /dev/null), sends its
# output to the serial console, writes the exit status to PAYLOAD_DIR/status
# and a copy of the output to PAYLOAD_DIR/output.log, and powers off.
#
# Prints the guest's serial console (CRs dropped) on stdout and the steps and
# timings on stderr (lines starting "sysguest:"), and exits with run.sh's exit
# status; 124 when the guest ran past TIMEOUT (qemu killed), 125 when it ended
# without a status (the console log is kept in the cache).
#
# Docker's /etc/docker/daemon.json: {"bridge": "none", "iptables": false,
# "ip-masq": false, "runtimes": {"rt": {"path": "/usr/local/bin/rt"}}}: the
# default runtime stays runc; the payload installs rt there for --runtime rt.
#
# Built once, cached under RT_SYSGUEST_CACHE (guarded by a lock): root.img
# (ext4, 4 GiB sparse, made by mmdebstrap + mkfs.ext4 -d), vmlinuz and
# initrd.img from its /boot. The image is rebuilt when this script's recipe
# (package list, build hook) changes, or after `rm CACHE/.done`. It is booted
# with snapshot=on, so it stays pristine and runs can share it. The guest has
# no network and no login; the console is ttyS0. A cold build downloads about
# 500 MB from the Debian mirror.
#
# Environment (all optional):
#   RT_SYSGUEST_CACHE=<repo>/.cache/sysguest   the image, build log, last console log
#   RT_SYSGUEST_TIMEOUT=900                     seconds before qemu is killed (-t wins)
#   RT_VM_ACCEL=auto|kvm|tcg                    auto: kvm when /dev/kvm is writable
#                                               and /proc/cpuinfo has vmx/svm
#   RT_SYSGUEST_MEM=3072  RT_SYSGUEST_SMP=2     guest memory (MiB) and CPUs
#   RT_SYSGUEST_APPEND="..."                    extra kernel command line
#   RT_SYSGUEST_MIRROR=URL                      Debian mirror for the build
#                                               (default: the host's apt source)
# Needs root (mmdebstrap in root mode, qemu, 9p with security_model=none);
# installs mmdebstrap and qemu-system-x86 itself when they are missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
CACHE=${RT_SYSGUEST_CACHE:-$repo/.cache/sysguest}
TIMEOUT=${RT_SYSGUEST_TIMEOUT:-900}
MEM=${RT_SYSGUEST_MEM:-3072}
SMP=${RT_SYSGUEST_SMP:-2}
ACCEL=${RT_VM_ACCEL:-auto}
# The host's own Debian source (deb822 or one-line format), without the trailing /debian.
host_mirror() {
  { sed -n 's|^URIs: *\([^ ]*\)/debian/\{0,1\}$|\1|p' /etc/apt/sources.list.d/*.sources
    sed -n 's|^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\)/debian/\{0,1\} .*|\2|p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list
  } 2>/dev/null | head -n 1 || true
}
MIRROR=${RT_SYSGUEST_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org}
# podman: conmon is its container monitor, catatonit its --init, netavark its
# network backend (a --network none container needs none, but podman looks for
# one), uidmap its user namespaces; python3-grpcio for the CRI client (pod.py);
# libpam-systemd and dbus-user-session give a user their systemd manager and bus
# (the rootless scenario's delegated cgroup).
PACKAGES=systemd,systemd-sysv,dbus,udev,linux-image-amd64,kmod,busybox-static,jq,iproute2,procps,docker.io,containerd,apparmor
PACKAGES=$PACKAGES,runc,podman,conmon,catatonit,netavark,uidmap,python3,python3-grpcio,libpam-systemd,dbus-user-session

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
PREFIX=sysguest
# shellcheck source=vm/lib.sh
. "$here/lib.sh"

while getopts ":t:h" o; do
  case $o in
    t) TIMEOUT=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
case $TIMEOUT in '' | *[!0-9]*) die "TIMEOUT must be a number of seconds" ;; esac
PAYLOAD=$(cd "$1" 2>/dev/null && pwd) || die "no such payload directory: $1"
[ -f "$PAYLOAD/run.sh" ] || die "$PAYLOAD/run.sh is missing"
[ "$(id -u)" = 0 ] || die "must run as root"
case $ACCEL in auto | kvm | tcg) ;; *) die "RT_VM_ACCEL must be auto, kvm or tcg" ;; esac

T0=$(now)
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# ------------------------------------------------------------------ host tools --

# ----------------------------------------------------------------------- build --
# Runs inside mmdebstrap (customize hook, $1 = the new root directory).
hook_script() {
  cat <<'HOOK'
set -eu
R=$1
mkdir -p "$R/etc/docker" "$R/usr/local/sbin" "$R/payload" "$R/etc/systemd/system/multi-user.target.wants"
printf '{"bridge":"none","iptables":false,"ip-masq":false,"runtimes":{"rt":{"path":"/usr/local/bin/rt"}}}\n' >"$R/etc/docker/daemon.json"
echo payload-guest >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tsysguest\n' >"$R/etc/hosts"
printf '/dev/vda\t/\text4\trw,errors=remount-ro\t0\t0\n' >"$R/etc/fstab"
# A fixed machine id: no first-boot units (systemd-firstboot would prompt on the console).
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$R/etc/machine-id"; echo >>"$R/etc/machine-id"

cat >"$R/usr/local/sbin/guest-payload" <<'EOF'
#!/bin/bash
# Mount the payload share, run its run.sh with output on the serial console,
# keep its exit status and output in the share, power off.
out=/dev/ttyS0
say() { echo "$*" >"$out"; }
mkdir -p /payload
modprobe 9pnet_virtio 2>/dev/null || true
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 payload /payload; then
  say "SYSGUEST error: cannot mount the payload share"
  systemctl poweroff --no-block
  exit 1
fi
say "SYSGUEST payload-start uptime=$(cut -d' ' -f1 /proc/uptime)s"
for u in containerd.service docker.service apparmor.service; do
  say "SYSGUEST unit $u: $(systemctl is-active "$u" 2>&1)"
done
cd /payload
rm -f status output.log
log=/run/guest-payload.log
: >"$log"
# run.sh writes to a local file and tail copies it to the console: a container
# left holding run.sh's stdout cannot keep this service from finishing.
bash ./run.sh </dev/null >"$log" 2>&1 &
pid=$!
tail -s 0.2 -n +1 -f --pid=$pid "$log" >"$out" &
tpid=$!
wait $pid
rc=$?
wait $tpid
cp "$log" /payload/output.log
echo "$rc" >/payload/status
sync
say "SYSGUEST payload-status $rc uptime=$(cut -d' ' -f1 /proc/uptime)s"
systemctl poweroff --no-block
EOF
chmod 755 "$R/usr/local/sbin/guest-payload"

cat >"$R/etc/systemd/system/guest-payload.service" <<'EOF'
[Unit]
Description=payload payload (9p share "payload", run.sh, then power off)
After=multi-user.target docker.service containerd.service
Wants=docker.service containerd.service
FailureAction=poweroff

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/guest-payload
TimeoutStartSec=infinity
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/guest-payload.service "$R/etc/systemd/system/multi-user.target.wants/guest-payload.service"
ln -sf /lib/systemd/system/multi-user.target "$R/etc/systemd/system/default.target"

# Nothing on the console but the payload; nothing slow or periodic under TCG.
for u in getty.target serial-getty@ttyS0.service getty@tty1.service systemd-firstboot.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  systemd-hwdb-update.service ldconfig.service systemd-update-done.service \
  systemd-networkd-wait-online.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# ...done here instead, once (hwdb.bin, ld.so.cache).
chroot "$R" systemd-hwdb update
chroot "$R" ldconfig
# Kernel messages at warning level and above only (quiet does the rest).
mkdir -p "$R/etc/sysctl.d"
echo 'kernel.printk = 4 4 1 7' >"$R/etc/sysctl.d/10-payload-console.conf"
HOOK
}

build() {
  local b=$CACHE/build t kver
  rm -rf "$b"
  mkdir -p "$b"
  hook_script >"$b/hook.sh"
  t=$(now)
  step "building the guest image in $CACHE (mmdebstrap bookworm; log $CACHE/build.log)"
  mmdebstrap --mode=root --variant=minbase --include="$PACKAGES" \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="sh $b/hook.sh \"\$1\"" \
    bookworm "$b/rootfs" \
    "deb $MIRROR/debian bookworm main" \
    "deb $MIRROR/debian bookworm-updates main" \
    "deb $MIRROR/debian-security bookworm-security main" \
    >"$CACHE/build.log" 2>&1 || { tail -n 25 "$CACHE/build.log" >&2; die "mmdebstrap failed (log: $CACHE/build.log)"; }
  step "mmdebstrap done ($(since "$t"), $(du -sm "$b/rootfs" | cut -f1) MB)"
  kver=$(ls "$b/rootfs/lib/modules" | sort -V | tail -n 1)
  [ -n "$kver" ] && [ -f "$b/rootfs/boot/vmlinuz-$kver" ] && [ -f "$b/rootfs/boot/initrd.img-$kver" ] ||
    die "no kernel/initrd in the new root's /boot"
  modinfo -b "$b/rootfs" -k "$kver" 9pnet_virtio >/dev/null 2>&1 || [ -n "$(find "$b/rootfs/lib/modules/$kver" -name '9pnet_virtio.ko*')" ] ||
    die "the kernel has no 9pnet_virtio module"
  cp "$b/rootfs/boot/vmlinuz-$kver" "$b/vmlinuz"
  cp "$b/rootfs/boot/initrd.img-$kver" "$b/initrd.img"
  {
    echo "built $(date -u +%FT%TZ) with mmdebstrap $(mmdebstrap --version | awk '{print $2}')"
    echo "kernel $kver"
    chroot "$b/rootfs" dpkg-query -W systemd docker.io containerd runc podman conmon apparmor dbus busybox-static python3-grpcio
  } >"$b/info"
  t=$(now)
  rm -f "$b/root.img"
  truncate -s 4G "$b/root.img"
  mkfs.ext4 -q -F -L payload-root -d "$b/rootfs" "$b/root.img" >>"$CACHE/build.log" 2>&1 ||
    { tail -n 10 "$CACHE/build.log" >&2; die "mkfs.ext4 -d failed"; }
  step "root.img made ($(since "$t"), $(du -m "$b/root.img" | cut -f1) MB used of 4096)"
  rm -rf "$b/rootfs"
  mv "$b/root.img" "$b/vmlinuz" "$b/initrd.img" "$b/info" "$CACHE/"
  rm -rf "$b"
  awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f\n", b - a }' >"$CACHE/build-seconds"
  echo "$RECIPE" >"$CACHE/.done"
  step "guest image cached (cold build $(cat "$CACHE/build-seconds")s); $(sed -n 2p "$CACHE/info")"
}

exec 9>"$CACHE/.lock"
flock 9
need_qemu
# The recipe's fingerprint: a changed package list or hook rebuilds the image.
RECIPE=$( { echo "$PACKAGES"; hook_script; } | sha256sum | cut -c1-16)
if [ "$(cat "$CACHE/.done" 2>/dev/null)" != "$RECIPE" ]; then
  if ! command -v mmdebstrap >/dev/null; then
    t=$(now); apt_install mmdebstrap; step "installed mmdebstrap ($(since "$t"))"
  fi
  command -v mkfs.ext4 >/dev/null || { apt_install e2fsprogs; step "installed e2fsprogs"; }
  rm -f "$CACHE/.done"
  build "$T0"
fi
flock -u 9
exec 9>&-

# ------------------------------------------------------------------------ boot --
WORK=$(mktemp -d /tmp/sysguest.XXXXXX)
QPID='' FPID=''
# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
  [ -z "$QPID" ] || kill "$QPID" 2>/dev/null || true
  [ -z "$FPID" ] || kill "$FPID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

rm -f "$PAYLOAD/status" "$PAYLOAD/output.log"
qemu_accel "$ACCEL"
# shellcheck disable=SC2054
QEMU=(qemu-system-x86_64 "${QACCEL[@]}" -m "$MEM" -smp "$SMP"
  -nographic -no-reboot -nic none
  -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img"
  -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 apparmor=1 security=apparmor quiet panic=-1 ${RT_SYSGUEST_APPEND:-}"
  -drive "file=$CACHE/root.img,if=virtio,format=raw,snapshot=on"
  -virtfs "local,path=$PAYLOAD,mount_tag=payload,security_model=none"
  -device virtio-rng-pci)

LOG=$WORK/console.log
: >"$LOG"
step "booting ($ACCEL, ${MEM} MiB, ${SMP} CPUs, timeout ${TIMEOUT}s)"
TB=$(now)
# timeout(1) passes on the TERM/INT it gets, so killing it stops qemu too.
TMPDIR=${TMPDIR:-/var/tmp} timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$LOG" 2>&1 &
QPID=$!
# Stream the console, CRs and terminal escapes (SeaBIOS clears the screen) dropped;
# note when the payload starts (boot time).
# (A shell loop, not awk: mawk reads a pipe in blocks, which holds lines back.)
stream() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    case $line in *"SYSGUEST payload-start"*) [ -e "$WORK/started" ] || now >"$WORK/started" ;; esac
    printf '%s\n' "$line"
  done
}
tail -s 0.2 -n +1 -f --pid="$QPID" "$LOG" 2>/dev/null |
  sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c78]//g' | stream &
FPID=$!
qrc=0
wait "$QPID" || qrc=$?
QPID=''
wait "$FPID" 2>/dev/null || true
FPID=''
cp "$LOG" "$CACHE/last-console.log"

boot=''
if [ -e "$WORK/started" ]; then
  boot=$(awk -v a="$TB" -v b="$(cat "$WORK/started")" 'BEGIN { printf "%.1fs", b - a }')
  up=$(tr -d '\r' <"$LOG" | sed -n 's/.*SYSGUEST payload-start uptime=\([0-9.]*s\).*/\1/p' | head -n 1)
  step "boot time: ${boot} from qemu start to the payload (guest uptime ${up:-?})"
  echo "$(date -u +%FT%TZ) boot ${boot} uptime ${up:-?}" >>"$CACHE/boot-times"
fi
rc=$(cat "$PAYLOAD/status" 2>/dev/null || true)
if [ -n "$rc" ] && [ "$qrc" != 124 ] && [ "$qrc" != 137 ]; then
  step "payload exit status $rc (qemu run $(since "$TB"), total $(since "$T0"))"
  exit "$rc"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  reason="timed out after ${TIMEOUT}s, qemu killed"; status=124
elif [ -z "$boot" ]; then
  reason="guest ended before the payload started (qemu status $qrc)"; status=125
else
  reason="guest ended without a payload status (qemu status $qrc)"; status=125
fi
step "$reason; console log kept as $CACHE/last-console.log"
exit "$status"
