#!/bin/sh
# Issue 19's benchmark on a cgroup v2 host (vm/guest.sh vm/payload-bench): the `run`
# phase and the quiet cycle of bench/cycle.py, for rt, the floor (bench/floor.c: the
# bare system calls; here it is born in its cgroup with clone3(CLONE_INTO_CGROUP)) and
# crun and runc when they work here, interleaved (the order rotated every iteration).
# Prints medians and paired ratios (the median of the per-iteration ratios) and the
# goals. Under TCG every time is slow; the ratios still count.
#
#   run      RUNTIME run -b BUNDLE ID (/bin/true); the floor, one run
#   quiet    a pause (1.2 s), then create -> start -> wait for exit -> delete; the
#            floor after the same pause: after a quiet spell the first move into a
#            cgroup waits for an RCU grace period
#
# The bundle is cycle.py's: busybox /bin/true, readonly root, pid, network, ipc, uts and
# mount namespaces, cgroupsPath /rt-bench/<leaf>. busybox sh only: the times come from
# ./lap (bench/lap.c: fork to wait, CLOCK_MONOTONIC), the floor is ./floor; both static,
# built on the host by ./prepare.sh. A benchmark, not a test: not in `make test`.
#
# Environment (all optional; the guest passes none): BENCH_N=15 (run iterations),
# BENCH_QUIET_N=15, BENCH_PAUSE=1.2, BENCH_WARMUP=2, RT=rt, RT_VM_ROOTFS=/rootfs,
# BENCH_CGROUP_PARENT=rt-bench. On a v1 host (a trial outside the guest) the floor
# joins the v1 hierarchies by writing itself into their tasks files instead.
# Exits 1 when rt or the floor could not be measured.

N=${BENCH_N:-15}
QN=${BENCH_QUIET_N:-15}
PAUSE=${BENCH_PAUSE:-1.2}
WARMUP=${BENCH_WARMUP:-2}
RT=${RT:-rt}
ROOTFS=${RT_VM_ROOTFS:-/rootfs}
PARENT=${BENCH_CGROUP_PARENT:-rt-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
LAP=$HERE/lap
FLOOR=$HERE/floor

for f in "$LAP" "$FLOOR"; do
  [ -x "$f" ] || { echo "bench: $f is missing: run vm/payload-bench/prepare.sh on the host first"; exit 1; }
done
W=$(mktemp -d /tmp/rt-bench-guest.XXXXXX) || exit 1
COUNT=0
EXCLUDED=""

# The mount points of the cgroup hierarchies (cgroup2 alone on a v2 host).
cgroup_mounts() {
  awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } }
       t == "cgroup" || t == "cgroup2" { print $5 }' /proc/self/mountinfo
}

cleanup() {
  for p in rt crun runc; do
    b=$(bin_of $p) || continue
    for id in $(ls "$W/state-$p" 2>/dev/null); do
      "$b" --root "$W/state-$p" delete --force "$id" >/dev/null 2>&1
    done
  done
  for m in $(cgroup_mounts); do
    for d in "$m/$PARENT"/*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    rmdir "$m/$PARENT" 2>/dev/null
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

bin_of() {  # bin_of PARTICIPANT: its program
  case $1 in
    rt) command -v "$RT" ;;
    floor) echo "$FLOOR" ;;
    crun | runc) command -v "$1" ;;
    *) return 1 ;;
  esac
}

# config CGROUPS_PATH: cycle.py's default bundle.
config() {
  cat <<EOF
{"ociVersion": "1.1.0",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
   "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/",
   "capabilities": {"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
     "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
     "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
     "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
   "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
 "root": {"path": "$ROOTFS", "readonly": true},
 "hostname": "bench",
 "mounts": [
   {"destination": "/proc", "type": "proc", "source": "proc"},
   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
   {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
   {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
   {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
   {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
   {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}],
 "linux": {"cgroupsPath": "$1",
   "resources": {"devices": [{"allow": false, "access": "rwm"}]},
   "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
   "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
     "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
   "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]}}
EOF
}

# The floor's cgroup parents, made once (they outlive every container), with every
# controller enabled below a cgroup2 one, as rt (and runc) do for a container's ancestors.
make_parents() {
  for m in $(cgroup_mounts); do
    mkdir -p "$m/$PARENT" || return 1
    [ -f "$m/cgroup.subtree_control" ] || continue
    for c in $(cat "$m/$PARENT/cgroup.controllers"); do
      echo "+$c" >"$m/$PARENT/cgroup.subtree_control" 2>/dev/null
    done
  done
}

# once PHASE PARTICIPANT N: one timed run (its cgroup leaf and container id numbered N);
# prints its nanoseconds, fails with the error on stderr.
once() {
  ph=$1 p=$2
  leaf=$p-$ph$3
  if [ "$p" = floor ]; then
    set -- "$FLOOR" "$ROOTFS" - --netns
    for m in $(cgroup_mounts); do set -- "$@" --cgroup "$m/$PARENT/$leaf"; done
    [ "$ph" != quiet ] || sleep "$PAUSE"
    out=$("$LAP" "$@" 2>"$W/err") || { cat "$W/err" >&2; return 1; }
  else
    b=$(bin_of "$p") s=$W/state-$p bundle=$W/bundle-$p id=bench-$leaf
    config "/$PARENT/$leaf" >"$bundle/config.json"
    if [ "$ph" = run ]; then
      out=$("$LAP" "$b" --root "$s" run -b "$bundle" "$id" 2>"$W/err")
    else
      sleep "$PAUSE"
      out=$("$LAP" "$b" --root "$s" create -b "$bundle" "$id" :: "$b" --root "$s" start "$id" \
        :: @wait :: "$b" --root "$s" delete "$id" 2>"$W/err")
    fi || { cat "$W/err" >&2; "$b" --root "$s" delete --force "$id" >/dev/null 2>&1; return 1; }
  fi
  echo "${out%% *}"
}

# rotate K WORD...: the words from the K-th (0-based) on, then the first K.
rotate() {
  k=$1 i=0 head="" tail=""
  shift
  for x; do
    if [ $i -lt "$k" ]; then head="$head $x"; else tail="$tail $x"; fi
    i=$((i + 1))
  done
  echo $tail $head
}

active() {  # the participants not excluded
  for p in rt floor crun runc; do
    case " $EXCLUDED " in *" $p "*) ;; *) echo "$p" ;; esac
  done
}

exclude() {  # exclude PARTICIPANT WHY
  EXCLUDED="$EXCLUDED $1"
  echo "  $1 excluded: $2"
}

# phase NAME ITERATIONS: warm-ups, then interleaved iterations into $W/NAME.P
# ("iteration ns" lines).
phase() {
  name=$1 n=$2
  for p in $(active); do
    w=0
    while [ $w -lt "$WARMUP" ]; do
      COUNT=$((COUNT + 1))
      once "$name" "$p" $COUNT >/dev/null 2>"$W/why" || { exclude "$p" "warm-up of $name: $(tail -n 1 "$W/why")"; break; }
      w=$((w + 1))
    done
  done
  i=0
  while [ $i -lt "$n" ]; do
    set -- $(active)
    [ $# -gt 0 ] || break
    for p in $(rotate $((i % $#)) "$@"); do
      COUNT=$((COUNT + 1))
      if ns=$(once "$name" "$p" $COUNT 2>"$W/why"); then
        echo "$i $ns" >>"$W/$name.$p"
      else
        exclude "$p" "$name iteration $((i + 1)): $(tail -n 1 "$W/why")"
      fi
    done
    i=$((i + 1))
  done
}

median() {  # numbers on stdin, one a line
  sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

p90() {
  sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1
    i = int(0.9 * NR); if (i < 0.9 * NR) i++; if (i < 1) i = 1; print v[i] }'
}

# paired PHASE A B: the median of the per-iteration ratios A/B, or nothing.
paired() {
  a=$W/$1.$2 b=$W/$1.$3
  [ -s "$a" ] && [ -s "$b" ] || return 1
  awk 'NR == FNR { t[$1] = $2; next } ($1 in t) { printf "%d\n", t[$1] / $2 * 1000000 }' "$a" "$b" |
    median | awk '{ printf "%.2f\n", $1 / 1000000 }'
}

report() {  # report PHASE
  printf '%-7s %5s %10s %10s\n' "" n "median ms" "p90 ms"
  for p in rt floor crun runc; do
    f=$W/$1.$p
    [ -s "$f" ] || continue
    printf '%-7s %5d %10.2f %10.2f\n' "$p" "$(wc -l <"$f")" \
      "$(cut -d' ' -f2 "$f" | median | awk '{ print $1 / 1e6 }')" \
      "$(cut -d' ' -f2 "$f" | p90 | awk '{ print $1 / 1e6 }')"
  done
  line=""
  for pair in rt/floor rt/crun rt/runc crun/floor runc/floor crun/runc; do
    r=$(paired "$1" "${pair%/*}" "${pair#*/}") && line="$line, $pair $r"
  done
  [ -z "$line" ] || echo "paired ratios (median of per-iteration ratios): ${line#, }"
}

goal() {  # goal WHAT PHASE PAIR LIMIT [NOTE]
  r=$(paired "$2" "${3%/*}" "${3#*/}") || { echo "goal: $1 $3: not measured (goal <= $4)"; return; }
  verdict=$(awk -v r="$r" -v l="$4" 'BEGIN { print (r <= l) ? "met" : "MISSED" }')
  echo "goal: $1 $3 $r (goal <= $4): $verdict${5:+ $5}"
}

# --- setup
case $(stat -f -c %t /sys/fs/cgroup 2>/dev/null) in
  63677270) cg="cgroup2 (v2 only)" ;;
  *) cg="not cgroup2: $(cgroup_mounts | wc -l) hierarchies" ;;
esac
echo "# $(uname -r), $(nproc) cpus, /sys/fs/cgroup is $cg"
make_parents || { echo "bench: cannot make the cgroup parents"; exit 1; }
# How the floor joins its cgroups here, from one traced run: clone3-into-cgroup (v2) or
# cgroup-tasks (v1: it writes itself into each tasks file).
set -- "$FLOOR" "$ROOTFS" "$W/floor.jsonl" --netns
for m in $(cgroup_mounts); do set -- "$@" --cgroup "$m/$PARENT/floor-check"; done
if "$@" 2>"$W/err"; then
  how=$(grep -oE '"name":"(clone3-into-cgroup|cgroup-tasks)"' "$W/floor.jsonl" | cut -d'"' -f4 | sort -u)
  echo "  floor joins its cgroup(s) with:" $how
else
  echo "  floor: a trial run failed: $(tail -n 1 "$W/err")"
fi
for p in rt floor crun runc; do
  b=$(bin_of "$p") || { exclude "$p" "not found"; continue; }
  [ "$p" = floor ] && continue
  mkdir -p "$W/state-$p" "$W/bundle-$p"
  echo "  $p: $b ($("$b" --version 2>/dev/null | head -n 1))"
done
echo "  floor: $FLOOR (bench/floor.c, cc -O2 -static)"
echo "run: $N interleaved iterations; quiet: $QN, each run after ${PAUSE} s of quiet; $WARMUP warm-up runs each"

echo
echo "== run: run -b BUNDLE ID (/bin/true, pid/network/ipc/uts/mount namespaces)"
phase run "$N"
report run
echo
echo "== quiet: ${PAUSE} s of quiet, then create -> start -> wait -> delete (the floor: one run)"
phase quiet "$QN"
report quiet

echo
echo "== goals (issue 19); /sys/fs/cgroup is $cg"
goal "run" run rt/floor 1.25
goal "run" run rt/crun 0.7
beside=""
for pair in rt/crun rt/runc; do
  r=$(paired quiet "${pair%/*}" "${pair#*/}") && beside="$beside, $pair $r"
done
goal "quiet cycle" quiet rt/floor 1.25 "${beside:+(${beside#, })}"

[ -s "$W/run.rt" ] && [ -s "$W/run.floor" ] && [ -s "$W/quiet.rt" ] && [ -s "$W/quiet.floor" ]
