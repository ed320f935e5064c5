#!/usr/bin/env bash
# vm/guest.sh - run a payload inside a throwaway QEMU guest whose /sys/fs/cgroup
# is the cgroup v2 unified hierarchy with every controller enabled (the host
# is cgroup v1 hybrid and cannot be switched).
#
#   usage: vm/guest.sh PAYLOAD_DIR
#
# PAYLOAD_DIR must contain run.sh. The guest copies PAYLOAD_DIR to /payload and
# runs /payload/run.sh there as root with busybox sh (no libc in the guest:
# extra programs must be static). The guest also has the static rt built from
# this tree as /usr/bin/rt and the busybox rootfs for containers at /rootfs
# ($RT_VM_ROOTFS). The root filesystem is a tmpfs (so pivot_root works) and
# / is rshared, as on a systemd host.
# An optional PAYLOAD_DIR/modules file lists extra kernel modules to load.
# An optional PAYLOAD_DIR/programs file lists host programs (absolute paths, or
# names looked up in the host's PATH; # comments) to copy into the guest at the
# same path, each with the shared libraries ldd names and the dynamic loader, so
# that dynamically linked tools (criu, ip, GNU tar) run there; a listed file
# that is not a dynamic executable (a data file) is copied alone.
#
# Prints the payload's output (stdout) and the steps (stderr, one line each),
# and exits with the payload's exit status; 124 on timeout, 125 when the guest
# ended without reporting one (the tail of the console log is printed), 126 when
# the guest's kernel itself failed: a soft lockup or an RCU stall (which panic the
# guest at once, instead of leaving it stuck until the timeout) or another panic;
# the kernel's report is printed.
#
# Environment (all optional):
#   RT_VM_CACHE=<repo>/.cache/vm   kernel, downloads, last console log
#   RT_VM_TIMEOUT=300              seconds before qemu is killed
#   RT_VM_MODULES="loop overlay"   kernel modules always loaded (deps resolved)
#   RT_VM_ACCEL=auto|kvm|tcg       auto: kvm only when /proc/cpuinfo has vmx/svm
#   RT_VM_KERNEL_PKG=linux-image-6.1.0-NN-amd64   default: what linux-image-amd64 pulls
#   RT_VM_KLOG=1                   keep kernel messages on the console
#   RT_VM_APPEND="..."             extra kernel command line
#
# Cached: the kernel is fetched (apt-get download) and unpacked once (remove
# $RT_VM_CACHE/kernel to take a newer one, ~430 MB unpacked); the static
# rt lives in target/static (cargo rebuilds it only when sources change); the
# initramfs is rebuilt each run (~0.2 s). Needs root (apt-get, qemu).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
CACHE=${RT_VM_CACHE:-$repo/.cache/vm}
TIMEOUT=${RT_VM_TIMEOUT:-300}
BASE_MODULES=${RT_VM_MODULES-loop overlay}
ACCEL=${RT_VM_ACCEL:-auto}
CARGO=${CARGO:-cargo}
TRIPLE=x86_64-unknown-linux-gnu

PREFIX=vm
# shellcheck source=vm/lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2; }
PAYLOAD=$(cd "$1" 2>/dev/null && pwd) || die "no such payload directory: $1"
[ -f "$PAYLOAD/run.sh" ] || die "$PAYLOAD/run.sh is missing"
[ "$(id -u)" = 0 ] || die "must run as root (apt-get, qemu)"
case $TIMEOUT in '' | *[!0-9]*) die "RT_VM_TIMEOUT must be a number of seconds" ;; esac

T0=$(now)
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# ------------------------------------------------------------------ host tools --

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# One setup at a time (parallel make, two checkouts sharing a cache).
exec 9>"$CACHE/.lock"
flock 9

need_qemu
installed busybox-static || { apt_install busybox-static; step "installed busybox-static"; }
command -v xz >/dev/null || { apt_install xz-utils; step "installed xz-utils"; }

# ---------------------------------------------------------------------- kernel --
# $CACHE/kernel: vmlinux (uncompressed ELF, booted through its PVH entry: no
# in-guest decompression), vmlinuz (fallback), config, version, and
# lib/modules/<version>/ with a modules.dep made by busybox depmod.
KDIR=$CACHE/kernel
if [ ! -e "$KDIR/.done" ]; then
  t=$(now)
  kpkg=${RT_VM_KERNEL_PKG:-}
  resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }'; }
  [ -n "$kpkg" ] || kpkg=$(resolve)
  [ -n "$kpkg" ] || { apt-get update -q >"$CACHE/apt.log" 2>&1 || true; kpkg=$(resolve); }
  [ -n "$kpkg" ] || die "cannot resolve the kernel package (apt-cache depends linux-image-amd64)"
  rm -rf "$CACHE/kernel.tmp"
  deb=$(ls "$CACHE/dl/$kpkg"_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then   # not left by an interrupted run
    rm -rf "$CACHE/dl"
    mkdir -p "$CACHE/dl"
    chmod 755 "$CACHE/dl"; chown _apt "$CACHE/dl" 2>/dev/null || true   # apt downloads as _apt
    (cd "$CACHE/dl" && apt-get download -q "$kpkg" >"$CACHE/apt.log" 2>&1) ||
      { tail -n 20 "$CACHE/apt.log" >&2; die "apt-get download $kpkg failed"; }
    deb=$(ls "$CACHE/dl/$kpkg"_*.deb)
    step "downloaded $(basename "$deb") ($(du -m "$deb" | cut -f1) MB, $(since "$t"))"
  fi
  t=$(now)
  x=$CACHE/kernel.tmp
  mkdir -p "$x"
  dpkg -x "$deb" "$x/pkg" || die "dpkg -x $deb failed"
  moddir=$(ls -d "$x"/pkg/lib/modules/* "$x"/pkg/usr/lib/modules/* 2>/dev/null | head -n 1 || true)
  [ -n "$moddir" ] || die "no lib/modules in $deb"
  kver=$(basename "$moddir")
  mkdir -p "$x/lib/modules"
  mv "$moddir" "$x/lib/modules/$kver"
  mv "$x"/pkg/boot/vmlinuz-* "$x/vmlinuz"
  mv "$x"/pkg/boot/config-* "$x/config"
  rm -rf "$x/pkg"
  echo "$kver" >"$x/version"
  busybox depmod -b "$x" "$kver"
  # The uncompressed kernel: the xz stream inside the bzImage.
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$x/vmlinuz" | head -n 1 | cut -d: -f1 || true)
  if [ -n "$off" ]; then
    tail -c +$((off + 1)) "$x/vmlinuz" | xz -dc >"$x/vmlinux" 2>/dev/null || true  # trailing garbage
  fi
  [ "$(head -c 4 "$x/vmlinux" 2>/dev/null | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || rm -f "$x/vmlinux"
  rm -rf "$KDIR" "$CACHE/dl"
  mv "$x" "$KDIR"
  touch "$KDIR/.done"
  step "unpacked kernel $kver ($([ -e "$KDIR/vmlinux" ] && echo vmlinux || echo vmlinuz), $(since "$t"))"
fi
KVER=$(cat "$KDIR/version")
KERNEL=$KDIR/vmlinux
[ -e "$KERNEL" ] || KERNEL=$KDIR/vmlinuz
flock -u 9
exec 9>&-

# Scratch space, and what to stop if this script is interrupted or fails.
WORK=$(mktemp -d /tmp/rt-vm.XXXXXX)
CPID='' QPID='' SPID='' FPID=''
# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
  local p
  for p in $QPID $SPID $FPID; do kill "$p" 2>/dev/null || true; done
  [ -z "$CPID" ] || kill -- "-$CPID" 2>/dev/null || true   # cargo's process group
  [ -z "$QPID" ] || { sleep 0.2; kill -9 "$QPID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ------------------------------------------------------------------- static rt --
# Its own target dir so that it never clobbers target/release. cargo runs in a
# process group of its own, so that an interrupted run can stop it and its rustc
# children (cleanup kills that group by its id).
t=$(now)
cd "$repo"
RUSTFLAGS='-C target-feature=+crt-static' setsid "$CARGO" build --release -q -p rt \
  --target "$TRIPLE" --target-dir "$repo/target/static" </dev/null &
CPID=$!
crc=0
wait "$CPID" || crc=$?
CPID=''
[ "$crc" = 0 ] || die "static build of rt failed"
RT=$repo/target/static/$TRIPLE/release/rt
[ -x "$RT" ] || die "no $RT after the build"
! readelf -l "$RT" 2>/dev/null | grep -q 'program interpreter' || die "$RT is dynamically linked"
step "static rt ready ($(since "$t"))"

# ---------------------------------------------------------------------- rootfs --
ROOTFS=$repo/spec-examples/rootfs
"$repo/spec-examples/build-rootfs.sh" || die "spec-examples/build-rootfs.sh failed"

# ------------------------------------------------------------------- initramfs --
t=$(now)
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,root,newroot,payload} "$R/lib/modules/$KVER"
cp /bin/busybox "$R/bin/busybox"   # busybox-static: the guest has no libc
ln -s busybox "$R/bin/sh"         # the other applets are linked by /init
cp "$RT" "$R/usr/bin/rt"
# The shim beside rt (where it looks for rt), when `make build` made it (static: no libc here).
SHIM=$repo/target/release/containerd-shim-rt-v2
if [ -x "$SHIM" ] && ! readelf -l "$SHIM" 2>/dev/null | grep -q 'program interpreter'; then
  cp "$SHIM" "$R/usr/bin/containerd-shim-rt-v2"
fi
cp -a "$ROOTFS" "$R/rootfs"
rm -f "$R/rootfs/.rt-rootfs-stamp"
cp -a "$PAYLOAD/." "$R/payload/"
if [ -f "$PAYLOAD/programs" ]; then
  put() { mkdir -p "$R$(dirname "$1")" && cp -L "$1" "$R$1"; }
  for p in $(sed 's/#.*//' "$PAYLOAD/programs"); do
    case $p in /*) ;; *) p=$(command -v "$p") || die "programs: $p is not in the host's PATH" ;; esac
    [ -e "$p" ] || die "programs: $p does not exist on the host"
    put "$p" || die "programs: cannot copy $p"
    if libs=$(ldd "$p" 2>/dev/null); then
      for l in $(printf '%s\n' "$libs" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        [ -e "$R$l" ] || put "$l" || die "programs: cannot copy $l (for $p)"
      done
    fi
  done
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
echo rt-vm >"$R/etc/hostname"

# Kernel modules with their dependencies (dependencies first), for insmod.
MODDEP=$KDIR/lib/modules/$KVER/modules.dep
declare -A seen=()
: >"$R/etc/modules.order"
add_mod() {  # add_mod PATH (relative to lib/modules/VERSION)
  local p=$1 d dst
  [ -z "${seen[$p]:-}" ] || return 0
  seen[$p]=1
  for d in $(awk -v m="$p:" '$1 == m { $1 = ""; print }' "$MODDEP"); do add_mod "$d"; done
  dst=$R/lib/modules/$KVER/${p%.xz}
  dst=${dst%.zst}
  mkdir -p "$(dirname "$dst")"
  case $p in
    *.xz) xz -dc "$KDIR/lib/modules/$KVER/$p" >"$dst" ;;
    *.zst) zstd -qdc "$KDIR/lib/modules/$KVER/$p" >"$dst" ;;
    *) cp "$KDIR/lib/modules/$KVER/$p" "$dst" ;;
  esac
  echo "${dst#"$R"}" >>"$R/etc/modules.order"
}
mods=$BASE_MODULES
[ ! -f "$PAYLOAD/modules" ] || mods="$mods $(sed 's/#.*//' "$PAYLOAD/modules")"
for m in $mods; do
  m=${m//-/_}
  p=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n)
                           if (n == m) { print $1; exit } }' "$MODDEP")
  if [ -n "$p" ]; then add_mod "$p"
  elif grep -qE "/${m//_/[-_]}\.ko" "$KDIR/lib/modules/$KVER/modules.builtin"; then :   # built in
  else die "unknown kernel module: $m"; fi
done

TOKEN=$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')
MARK="RT-VM-$TOKEN="
KLOG=${RT_VM_KLOG:-0}
cat >"$R/init" <<EOF
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
if [ ! -e /.stage2 ]; then
  /bin/busybox --install -s
  # The initramfs is the "rootfs" mount, which pivot_root(2) refuses: copy it
  # to a tmpfs and switch_root there.
  mount -t tmpfs -o mode=0755 root /newroot
  for f in /*; do [ "\$f" = /newroot ] || cp -a "\$f" /newroot/; done
  : >/newroot/.stage2
  exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 run /run
[ "$KLOG" = 1 ] || dmesg -n 1
# cgroup v2 as a systemd host mounts it, with every available controller enabled.
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
for c in cpuset cpu io memory hugetlb pids rdma misc; do
  grep -qw "\$c" /sys/fs/cgroup/cgroup.controllers || continue
  echo "+\$c" >/sys/fs/cgroup/cgroup.subtree_control || echo "rt-vm: cannot enable \$c"
done
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount --make-rshared /
hostname -F /etc/hostname
ip link set lo up
while read -r m; do insmod "\$m" || echo "rt-vm: insmod \$m failed"; done </etc/modules.order
export RT_VM=1 RT_VM_ROOTFS=/rootfs
cd /payload
echo "${MARK}start"
if [ -x run.sh ]; then ./run.sh </dev/null; else sh ./run.sh </dev/null; fi
rc=\$?
echo "$MARK\$rc"
poweroff -f
echo o >/proc/sysrq-trigger
EOF
chmod 755 "$R/init"

INITRD=$WORK/initrd.cpio
(cd "$R" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$INITRD"
step "initramfs $(du -m "$INITRD" | cut -f1) MB, modules: $(sed 's|.*/||; s|\.ko$||' "$R/etc/modules.order" | tr '\n' ' ')($(since "$t"))"

# ------------------------------------------------------------------------ boot --
qemu_accel "$ACCEL"
QEMU=(qemu-system-x86_64 "${QACCEL[@]}" -m 1024 -smp 2 -no-reboot -nographic -nic none
  -kernel "$KERNEL" -initrd "$INITRD"
  -append "console=ttyS0 quiet panic=-1 softlockup_panic=1 sysctl.kernel.panic_on_rcu_stall=1 cryptomgr.notests ${RT_VM_APPEND:-}")

LOG=$WORK/console.log
: >"$LOG"
step "booting ($ACCEL, timeout ${TIMEOUT}s)"
t=$(now)
"${QEMU[@]}" </dev/null >"$LOG" 2>&1 &
QPID=$!
# Stream the payload's part of the console (firmware and boot noise before the
# start marker are only in the log), CRs dropped, the exit marker line (and
# anything the payload printed before it without a newline) and the power-down
# message hidden.
# (A shell loop, not awk: mawk reads a pipe in blocks, which holds lines back.)
stream() {
  local line started=0
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    if [ $started = 0 ]; then
      case $line in *"${MARK}start"*) started=1 ;; esac
      continue
    fi
    case $line in
      *"$MARK"*) [ -z "${line%%"$MARK"*}" ] || printf '%s\n' "${line%%"$MARK"*}" ;;
      *"] reboot: Power down") ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
}
tail -s 0.1 -n +1 -f --pid="$QPID" "$LOG" 2>/dev/null | stream &
FPID=$!
sleep "$TIMEOUT" &
SPID=$!
first=''
wait -n -p first "$QPID" "$SPID" || true
timed_out=0
if [ "$first" = "$SPID" ]; then
  timed_out=1
  SPID=''
  kill "$QPID" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QPID" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$QPID" 2>/dev/null || true
else
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=''
fi
qrc=0
wait "$QPID" 2>/dev/null || qrc=$?
QPID=''
wait "$FPID" 2>/dev/null || true
FPID=''
boot_time=$(since "$t")
cp "$LOG" "$CACHE/last-console.log"

rc=$(LC_ALL=C grep -ao "${MARK}[0-9][0-9]*" "$LOG" | tail -n 1 | sed 's/.*=//' || true)
if [ -n "$rc" ]; then
  step "payload exit status $rc (boot+run+poweroff $boot_time, total $(since "$T0"))"
  exit "$rc"
fi
# The kernel's own failure: the first report, its registers and call trace.
kernel_report() {
  tr -d '\r' <"$LOG" | sed 's/^\[ *[0-9.]*\] //' | awk '
    /BUG: soft lockup|self-detected stall|rcu_preempt detected stall|Kernel panic|Oops:|general protection fault/ { n = n ? n : 1 }
    n && n <= 45 { print; n++ }'
}
report=$(kernel_report)
if [ -n "$report" ]; then
  first=$(printf '%s\n' "$report" | head -n 1)
  rip=$(printf '%s\n' "$report" | grep -m 1 '^RIP: 0010:' || true)
  echo "vm: the guest's kernel failed: $first${rip:+ ($rip)}; its report:" >&2
  printf '%s\n' "$report" | sed 's/^/  | /' >&2
  exit 126
fi
if [ "$timed_out" = 1 ]; then
  reason="timed out after ${TIMEOUT}s, qemu killed"
  status=124
else
  reason="guest ended without reporting an exit status (qemu status $qrc)"
  status=125
fi
echo "vm: $reason; last lines of the console log ($CACHE/last-console.log):" >&2
tr -d '\r' <"$LOG" | tail -n 40 | sed 's/^/  | /' >&2
exit "$status"
