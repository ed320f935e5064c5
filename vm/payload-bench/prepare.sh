#!/bin/sh
# Build the static helpers vm/payload-bench needs in the guest (no libc there):
# floor (bench/floor.c) and lap (bench/lap.c), with `cc -O2 -static`, into this
# directory (git ignores them). Then:
#   RT_VM_TIMEOUT=1800 flock /tmp/rt-qemu.lock vm/guest.sh vm/payload-bench
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$(dirname "$here")")/bench
for p in floor lap; do
  cc -O2 -static -o "$here/$p" "$bench/$p.c"
done
