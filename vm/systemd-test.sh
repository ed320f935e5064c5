#!/usr/bin/env bash
# vm/systemd-test.sh - the systemd cgroup driver checks (`make test-systemd`):
# vm/payload-systemd/run.sh in a QEMU guest that boots real systemd on a pure
# cgroup v2 hierarchy with AppArmor (vm/sysguest.sh), where Docker, containerd
# (ctr and the CRI), podman and the runtimes themselves run containers in
# systemd scopes; then once more with v1 controllers (systemd's hybrid layout)
# for the driver alone. Every scenario runs with runc (the reference) and rt.
#
#   usage: vm/systemd-test.sh
#
# Builds nothing: `make build rootfs` makes target/release/rt, the static
# target/release/containerd-shim-rt-v2 and spec-examples/rootfs first. Stages,
# in a directory under /tmp that is removed on exit: the payload, rt and the
# shim, integration/cri/pod.py (the CRI client), the busybox rootfs as a
# tarball (for `docker import` and `podman import`) and as an OCI-layout image
# tarball made with umoci as integration/src/containerd.rs does (tags latest,
# cmd /bin/sh; pause, entrypoint /bin/sleep), then boots the guest on it.
# Prints the guest's output as it runs, the failed checks again at the end,
# the time it all took, and exits with the payload's status (124: timeout,
# 125: the guest gave none). The payload's output is kept in
# <repo>/.cache/sysguest/last-output-{v2,v1}.log.
#
# Environment (all optional):
#   RT_SYSGUEST_RUNTIMES="runc rt"    which runtimes the scenarios run with
#   RT_SYSGUEST_SCENARIOS="direct docker containerd podman rootless"   which scenarios
#   RT_SYSGUEST_SCENARIOS_V1="v1"     scenarios of the second boot (v1 controllers;
#                                     empty: no second boot)
#   RT_SYSGUEST_TIMEOUT=900           seconds before the guest is killed
#   RT_BIN, RT_SHIM_BIN               another rt or shim than target/release's
#   and vm/sysguest.sh's (RT_VM_ACCEL=auto|kvm|tcg, RT_SYSGUEST_CACHE, ...).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
TIMEOUT=${RT_SYSGUEST_TIMEOUT:-900}
RUNTIMES=${RT_SYSGUEST_RUNTIMES:-runc rt}
SCENARIOS=${RT_SYSGUEST_SCENARIOS:-direct docker containerd podman rootless}
SCENARIOS_V1=${RT_SYSGUEST_SCENARIOS_V1-v1}
CACHE=${RT_SYSGUEST_CACHE:-$repo/.cache/sysguest}

step() { echo "systemd-test: $*" >&2; }
die() { echo "systemd-test: error: $*" >&2; exit 125; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

T0=$(now)
[ "$(id -u)" = 0 ] || die "must run as root (qemu, mmdebstrap)"
case $TIMEOUT in '' | *[!0-9]*) die "RT_SYSGUEST_TIMEOUT must be a number of seconds" ;; esac
for r in $RUNTIMES; do
  case $r in runc | rt) ;; *) die "RT_SYSGUEST_RUNTIMES: unknown runtime $r (runc, rt)" ;; esac
done
RT=${RT_BIN:-$repo/target/release/rt}
SHIM=${RT_SHIM_BIN:-$repo/target/release/containerd-shim-rt-v2}
ROOTFS=$repo/spec-examples/rootfs
for f in "$RT" "$SHIM"; do
  [ -x "$f" ] || die "$f is missing: run \`make build\`"
done
[ -x "$ROOTFS/bin/busybox" ] || die "$ROOTFS is missing: run \`make rootfs\`"
if ! command -v umoci >/dev/null; then
  step "installing umoci"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q umoci || { apt-get update -q && apt-get install -y -q umoci; }; } >/dev/null 2>&1 ||
    die "apt-get install umoci failed"
fi

STAGE=$(mktemp -d /tmp/rt-systemd.XXXXXX)
# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() { rm -rf "$STAGE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
chmod 755 "$STAGE"

t=$(now)
cp -a "$here/payload-systemd/." "$STAGE/"
cp "$RT" "$STAGE/rt"
cp "$SHIM" "$STAGE/containerd-shim-rt-v2"
cp "$repo/integration/cri/pod.py" "$STAGE/pod.py"
tar -C "$ROOTFS" --exclude=./.rt-rootfs-stamp -cf "$STAGE/rootfs.tar" .
# The OCI image, as integration/src/containerd.rs import_image makes it.
img=$STAGE/image
(
  set -e
  umoci init --layout "$img"
  umoci new --image "$img:latest"
  umoci unpack --rootless --image "$img:latest" "$STAGE/image-bundle" >/dev/null
  cp -a "$ROOTFS/." "$STAGE/image-bundle/rootfs/"
  rm -f "$STAGE/image-bundle/rootfs/.rt-rootfs-stamp"
  umoci repack --image "$img:latest" "$STAGE/image-bundle"
  umoci config --image "$img:latest" --config.cmd /bin/sh
  umoci config --image "$img:latest" --tag pause --config.entrypoint /bin/sleep --config.cmd 2147483647
  tar -C "$img" -cf "$STAGE/busybox-oci.tar" .
) >"$STAGE/umoci.log" 2>&1 || { cat "$STAGE/umoci.log" >&2; die "umoci could not make the OCI image"; }
rm -rf "$img" "$STAGE/image-bundle" "$STAGE/umoci.log"
step "staged $STAGE ($(du -sm "$STAGE" | cut -f1) MB, $(since "$t")); runtimes: $RUNTIMES; scenarios: $SCENARIOS"

# One boot per cgroup layout: pure v2 (the clients), then v1 controllers (the driver).
rc=0
boot() {  # boot NAME CGROUP SCENARIOS [KERNEL-APPEND]
  local name=$1 r=0
  {
    printf 'RT_SYSGUEST_RUNTIMES=%q\n' "$RUNTIMES"
    printf 'RT_SYSGUEST_SCENARIOS=%q\n' "$3"
    printf 'RT_SYSGUEST_CGROUP=%q\n' "$2"
  } >"$STAGE/env"
  step "boot $name: scenarios $3"
  RT_SYSGUEST_APPEND="${4:-} ${RT_SYSGUEST_APPEND:-}" "$here/sysguest.sh" -t "$TIMEOUT" "$STAGE" || r=$?
  if [ -f "$STAGE/output.log" ]; then
    mkdir -p "$CACHE"
    cp "$STAGE/output.log" "$CACHE/last-output-$name.log"
    echo "--- $name: failed checks:"
    grep '^FAIL ' "$STAGE/output.log" || echo "none"
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$STAGE/output.log" | tail -n 1 || true
  fi
  step "boot $name: exit status $r"
  [ "$r" = 0 ] || rc=$r
}
[ -z "$SCENARIOS" ] || boot v2 v2 "$SCENARIOS"
[ -z "$SCENARIOS_V1" ] || boot v1 hybrid "$SCENARIOS_V1" systemd.unified_cgroup_hierarchy=0
step "exit status $rc; took $(since "$T0") in all"
exit "$rc"
