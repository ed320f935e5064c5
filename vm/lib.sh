# shellcheck shell=bash
# vm/lib.sh - what the guest scripts share (vm/guest.sh, vm/sysguest.sh): step lines,
# timing, installing host tools, choosing QEMU's accelerator. Sourced after setting
# PREFIX (the tag of step and error lines) and CACHE (where apt.log goes).

step() { echo "$PREFIX: $*" >&2; }
die() { echo "$PREFIX: error: $*" >&2; exit 125; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

apt_install() {  # apt_install [APT-OPTS] PKG...: refresh the lists only if needed
  local log=$CACHE/apt.log
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 && return 0
  apt-get update -q >>"$log" 2>&1 || true
  apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 && return 0
  tail -n 20 "$log" >&2
  die "apt-get install $* failed (log: $log)"
}

# need_qemu: install qemu-system-x86 when missing. It should match an installed
# qemu-utils: where that one comes from backports and backports is in the sources,
# bookworm's qemu-system-x86 may be refused ("Breaks"), so take it from backports too.
need_qemu() {
  command -v qemu-system-x86_64 >/dev/null && return 0
  local t codename
  t=$(now)
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo &&
    apt-cache policy 2>/dev/null | grep -q "[an]=$codename-backports"; then
    apt_install -t "$codename-backports" qemu-system-x86
  else
    apt_install qemu-system-x86
  fi
  step "installed qemu-system-x86 ($(since "$t"))"
}

# qemu_accel auto|kvm|tcg: sets ACCEL (auto resolved: kvm only when /dev/kvm is
# writable and the CPU offers vmx/svm) and the QACCEL array of QEMU options.
qemu_accel() {
  ACCEL=$1
  if [ "$ACCEL" = auto ]; then
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; else ACCEL=tcg; fi
  fi
  # shellcheck disable=SC2054,SC2034  # QEMU option syntax; QACCEL is the caller's
  case $ACCEL in
    kvm) QACCEL=(-accel kvm -cpu host) ;;
    tcg) QACCEL=(-accel tcg,thread=multi -cpu max) ;;
    *) die "RT_VM_ACCEL must be auto, kvm or tcg" ;;
  esac
}
