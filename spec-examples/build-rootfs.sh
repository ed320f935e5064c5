#!/bin/sh
# Build a minimal busybox root filesystem for the example bundles, the
# integration tests and the benchmark.
#
#   spec-examples/build-rootfs.sh [DEST]      (default: spec-examples/rootfs)
#
# Uses Debian's busybox-static (installed with apt-get when /bin/busybox is
# missing or dynamically linked). The layout is /bin/busybox plus one symlink
# per applet in /bin, the directories proc sys dev tmp etc root, and small
# /etc/passwd, /etc/group and /etc/hostname files.
#
# Idempotent: a stamp file in DEST records what it was built from; when it
# matches, the script exits at once. Prints nothing unless something fails.
set -eu

LAYOUT_VERSION=1
BUSYBOX=/bin/busybox
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/rootfs}
stamp_name=.rt-rootfs-stamp

die() { echo "build-rootfs: $*" >&2; exit 1; }

busybox_ok() {
    # Usable and static: ldd fails on a static executable.
    [ -x "$BUSYBOX" ] && "$BUSYBOX" true 2>/dev/null && ! ldd "$BUSYBOX" >/dev/null 2>&1
}

if ! busybox_ok; then
    [ "$(id -u)" = 0 ] || die "$BUSYBOX is missing or not static; run as root to apt-get install busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq busybox-static >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
        apt-get install -y -qq busybox-static >/dev/null 2>&1 || die "apt-get install busybox-static failed"
    fi
    busybox_ok || die "$BUSYBOX is still not a static busybox after installing busybox-static"
fi

# What the rootfs is built from: layout version + busybox binary.
want="layout=$LAYOUT_VERSION busybox=$(sha256sum "$BUSYBOX" | cut -d' ' -f1)"
if [ -f "$dest/$stamp_name" ] && [ "$(cat "$dest/$stamp_name")" = "$want" ]; then
    exit 0
fi

if [ -e "$dest" ] && [ ! -f "$dest/$stamp_name" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
    die "$dest exists, is not empty and was not built by this script; refusing to touch it"
fi

umask 022
mkdir -p "$dest"
rm -f "$dest/$stamp_name"
for d in bin proc sys dev etc root tmp; do
    mkdir -p "$dest/$d"
done
chmod 0700 "$dest/root"
chmod 1777 "$dest/tmp"

# Replace the binary atomically (a running container may be using it).
cp "$BUSYBOX" "$dest/bin/.busybox.new"
chmod 0755 "$dest/bin/.busybox.new"
mv -f "$dest/bin/.busybox.new" "$dest/bin/busybox"

for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] && continue
    ln -sfn busybox "$dest/bin/$applet"
done

cat >"$dest/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/tmp:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$dest/etc/group" <<'EOF'
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
EOF
echo rt-rootfs >"$dest/etc/hostname"
chmod 0644 "$dest/etc/passwd" "$dest/etc/group" "$dest/etc/hostname"

echo "$want" >"$dest/$stamp_name"
