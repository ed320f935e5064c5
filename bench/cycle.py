#!/usr/bin/env python3
"""Compare OCI runtimes (rt, runc, crun) on short container lifecycles.

Phases, each timed with time.perf_counter_ns around the runtime commands, all on the
same busybox bundle (/bin/true; pid, ipc, uts and mount namespaces; readonly root):

  run       RUNTIME --root R run -b BUNDLE ID
  cycle     create --pid-file -> start -> wait for exit -> delete
  netns     the cycle with a new network namespace too
  seccomp   the cycle with Docker 20.10's default seccomp profile
            (runtime/tests/data/docker-20.10-default.json)
  nocgroup  the cycle without cgroups: rt and crun with --cgroup-manager=disabled (runc
            cannot run without cgroups, so it sits this one out)
  seq       100 cycles back to back, the total (a few rounds)
  trace     rt alone: create with and without --trace (paired: what tracing costs),
            then `rt trace summarize` of the traced runs (where rt's time goes, step
            by step) beside bench/floor.c, built here with cc: the bare system calls
            any runtime must make (clone into the same namespaces, join the same
            cgroups, bind the rootfs, mount proc, pivot_root, exec), traced alike
  memory    peak RSS of the runtime process during `create` (GNU time's %M, i.e.
            wait4's ru_maxrss; the wrapper is tiny, a Python parent would count its own
            pages), and each binary's size

Iterations are interleaved across runtimes (rotating the order every iteration) so that
load spikes on a shared machine hit every runtime alike; results are reported as
medians, p90s and *paired* ratios (the median of the per-iteration rt/runc and rt/crun
ratios), which are far more stable than absolute numbers. A summary table and the
project's goals (rt <= 0.9x crun and <= 0.3x runc on the cycle; create peak RSS <= crun's)
close the report.

The benchmark re-runs itself once inside a private mount namespace in which
/sys/fs/cgroup/unified is unmounted (crun refuses the hybrid cgroup layout
otherwise); every runtime is started directly from there, so all of them see
the same host and pay the same overhead.

Needs root. Python standard library only. Cleans up its containers, cgroup
directories (/sys/fs/cgroup/<controller>/rt-bench/...) and temporary files at
the end, also on Ctrl-C or SIGTERM. A runtime that is missing or fails is
reported and left out; the others are still measured.

    python3 bench/cycle.py [--cycles 50] [--phases run,cycle,netns,seccomp,nocgroup,seq,trace,memory]
                           [--rt target/release/rt] [--runc PATH] [--crun PATH]
"""

import argparse
import ctypes
import errno
import json
import math
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIFIED = "/sys/fs/cgroup/unified"
CGROUP_PARENT = "rt-bench"
# crun 1.8.1 rejects ociVersion 1.2.0 ("unknown version specified"); 1.1.0 is
# accepted by all three runtimes.
OCI_VERSION = "1.1.0"
# Docker 20.10's default profile as Docker hands it to its runtime (see runtime/tests/data).
SECCOMP_PROFILE = os.path.join(REPO, "runtime", "tests", "data", "docker-20.10-default.json")
GNU_TIME = "/usr/bin/time"
GOAL_VS_CRUN, GOAL_VS_RUNC = 0.9, 0.3
ALL_PHASES = ["run", "cycle", "netns", "seccomp", "nocgroup", "seq", "trace", "memory"]
# --trace may cost at most this share of rt's create (issue 18: cheap enough to leave on).
GOAL_TRACE_COST = 0.02


class RuntimeFailure(Exception):
    pass


class Interrupted(Exception):
    pass


def last_line(*texts):
    for text in texts:
        lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
        if lines:
            return lines[-1]
    return "(no output)"


def make_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        sys.exit("cycle.py: prctl(PR_SET_CHILD_SUBREAPER) failed: %s" % os.strerror(err))


def reap_zombies():
    """Reap exited children (orphaned container processes land here)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def cgroup_mounts():
    """Mount points of all cgroup v1/v2 hierarchies in our mount namespace."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] in ("cgroup", "cgroup2"):
                mounts.append(fields[4])
    return mounts


def percentile(values, q):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


class Runtime:
    def __init__(self, name, path, root):
        self.name = name
        self.path = path
        self.root = root  # --root state directory, private to this run
        self.bundle = None
        self.excluded = None  # reason, once excluded
        self.extra = []  # global flags for the current phase (--cgroup-manager=disabled)


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="rt-bench-")
        self.live = None  # Popen currently running
        self.counter = 0
        self.cgroup_leaves = set()  # leaf names under /rt-bench that we used
        self.container_ids = {}  # runtime name -> set of ids maybe still present
        self.runtimes = []
        self.variant = {}  # the current phase's bundle changes: netns, seccomp
        self.summary = []  # (phase, {runtime: median ns}, {pair: ratio})
        self.memory_ratios = {}
        self.trace_cost = None
        with open(SECCOMP_PROFILE) as f:
            self.seccomp = json.load(f)
        self.out = open(os.path.join(self.tmp, "stdout"), "w+b")
        self.err = open(os.path.join(self.tmp, "stderr"), "w+b")

    # ---- process helpers -------------------------------------------------

    def call(self, rt, argv, timeout=None, prefix=()):
        """Run RUNTIME (after `prefix`, e.g. GNU time); return (rc, stdout, stderr, ns).

        main() already moved the whole benchmark into one private mount namespace without
        the unified hierarchy: runtimes are started directly from here.

        Output goes to files, not pipes: after `create` the container's init
        keeps the inherited stdio open until it exits, so reading pipes to EOF
        would block until `start`.
        """
        cmd = list(prefix) + [rt.path, "--root", rt.root] + rt.extra + argv
        timeout = timeout or self.args.timeout
        for f in (self.out, self.err):
            f.seek(0)
            f.truncate()
        start = time.perf_counter_ns()
        self.live = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=self.err,
            start_new_session=True,  # Ctrl-C reaches us only; we clean up
        )
        try:
            rc = self.live.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_live()
            raise RuntimeFailure("`%s` timed out after %ss" % (argv[0], timeout))
        elapsed = time.perf_counter_ns() - start
        self.live = None
        output = []
        for f in (self.out, self.err):
            f.seek(0)
            output.append(f.read().decode(errors="replace"))
        return rc, output[0], output[1], elapsed

    def check(self, rt, argv):
        rc, out, err, ns = self.call(rt, argv)
        if rc != 0:
            raise RuntimeFailure("`%s` exited %d: %s" % (" ".join(argv[:1]), rc, last_line(err, out)))
        return ns

    def kill_live(self):
        p, self.live = self.live, None
        if p is None:
            return
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    # ---- setup -----------------------------------------------------------

    def build_rootfs(self):
        dest = os.path.join(self.tmp, "rootfs")
        src = self.args.rootfs
        if os.path.isdir(os.path.join(src, "bin")):
            shutil.copytree(src, dest, symlinks=True)
        else:
            script = os.path.join(REPO, "spec-examples", "build-rootfs.sh")
            print("rootfs %s not found; building one with %s" % (src, script))
            subprocess.run([script, dest], check=True)
        return dest

    def config(self, rootfs, cgroups_path):
        caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        namespaces = ["pid", "ipc", "uts", "mount"]
        if self.variant.get("netns"):
            namespaces.append("network")
        config = {
            "ociVersion": OCI_VERSION,
            "process": {
                "terminal": False,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/true"],
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "cwd": "/",
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted", "ambient")},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": True,
            },
            "root": {"path": rootfs, "readonly": True},
            "hostname": "bench",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                 "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            ],
            "linux": {
                "cgroupsPath": cgroups_path,
                "resources": {"devices": [{"allow": False, "access": "rwm"}]},
                "namespaces": [{"type": t} for t in namespaces],
                "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                  "/proc/sysrq-trigger"],
            },
        }
        if self.variant.get("seccomp"):
            config["linux"]["seccomp"] = self.seccomp
        return config

    def setup(self):
        rootfs = self.build_rootfs()
        self.rootfs = rootfs
        candidates = [("rt", self.args.rt), ("runc", self.args.runc), ("crun", self.args.crun)]
        wanted = self.args.only.split(",") if self.args.only else None
        for name, path in candidates:
            if wanted and name not in wanted:
                continue
            rt = Runtime(name, None, os.path.join(self.tmp, "state-" + name))
            self.runtimes.append(rt)
            self.container_ids[name] = set()
            resolved = shutil.which(path) if path else None
            if not resolved:
                rt.excluded = "not found: %s" % (path or "(not on PATH)")
                continue
            rt.path = os.path.abspath(resolved)
            os.makedirs(rt.root)
            rt.bundle = os.path.join(self.tmp, "bundle-" + name)
            os.makedirs(rt.bundle)
            rt.version = "version unknown"
            try:  # informational only; failures show up in the warm-up
                rc, out, err, _ = self.call(rt, ["--version"], timeout=15)
                if rc == 0 and out.strip():
                    rt.version = out.splitlines()[0]
            except RuntimeFailure:
                pass

    def prepare(self, rt, phase):
        """Fresh container id and cgroup path for one iteration."""
        self.counter += 1
        leaf = "%s-%s%d" % (rt.name, phase, self.counter)
        cid = "bench-%d-%s" % (os.getpid(), leaf)
        self.cgroup_leaves.add(leaf)
        cfg = self.config(self.rootfs, "/%s/%s" % (CGROUP_PARENT, leaf))
        with open(os.path.join(rt.bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.container_ids[rt.name].add(cid)
        return cid

    # ---- the two measured operations -------------------------------------

    def op_run(self, rt):
        cid = self.prepare(rt, "run")
        ns = self.check(rt, ["run", "-b", rt.bundle, cid])
        self.container_ids[rt.name].discard(cid)
        reap_zombies()
        return {"total": ns}

    def op_cycle(self, rt, create_flags=()):
        cid = self.prepare(rt, "cycle")
        pidfile = os.path.join(self.tmp, cid + ".pid")
        t0 = time.perf_counter_ns()
        create = self.check(rt, ["create"] + list(create_flags)
                            + ["-b", rt.bundle, "--pid-file", pidfile, cid])
        start = self.check(rt, ["start", cid])
        t1 = time.perf_counter_ns()
        self.wait_stopped(rt, cid, pidfile)
        t2 = time.perf_counter_ns()
        delete = self.check(rt, ["delete", cid])
        t3 = time.perf_counter_ns()
        self.container_ids[rt.name].discard(cid)
        os.unlink(pidfile)
        reap_zombies()
        return {"total": t3 - t0, "create": create, "start": start,
                "wait": t2 - t1, "delete": delete}

    def wait_stopped(self, rt, cid, pidfile):
        with open(pidfile) as f:
            pid = int(f.read().strip())
        try:
            # We are a subreaper: the container's init was reparented to us
            # when `create` exited, so we can wait for it directly.
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            pass
        # Not our child (runtime keeps its own monitor): poll `state`.
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            rc, out, err, _ = self.call(rt, ["state", cid])
            if rc != 0:
                raise RuntimeFailure("`state` exited %d: %s" % (rc, last_line(err, out)))
            if json.loads(out).get("status") == "stopped":
                return
            time.sleep(0.001)
        raise RuntimeFailure("container did not stop within %ss" % self.args.timeout)

    def op_seq(self, rt):
        """`--seq` cycles back to back: what a burst of short jobs costs."""
        t0 = time.perf_counter_ns()
        for _ in range(self.args.seq):
            self.op_cycle(rt)
        return {"total": time.perf_counter_ns() - t0}

    # ---- phases ----------------------------------------------------------

    def exclude(self, rt, phase, what, err):
        print("  %-5s FAILED during %s %s: %s -> excluded" % (rt.name, phase, what, err))
        self.forget_containers(rt)
        return err

    def phase(self, phase, op, title, iterations, warmup, sits_out=None, extra=None):
        """Warm up, then `iterations` interleaved rounds of `op` on every runtime.

        sits_out: {runtime: reason} left out of this phase only; extra: {runtime: flags}
        added to its command lines for this phase.
        """
        sits_out, extra = sits_out or {}, extra or {}
        active = [rt for rt in self.runtimes if rt.excluded is None and rt.name not in sits_out]
        failed = {}
        samples = {rt.name: {} for rt in active}
        print()
        print("== %s: %s" % (phase, title))
        for name, why in sits_out.items():
            print("  %-5s sits this phase out: %s" % (name, why))
        for rt in self.runtimes:
            rt.extra = list(extra.get(rt.name, []))
        try:
            for rt in active:
                for _ in range(warmup):
                    try:
                        op(rt)
                    except RuntimeFailure as e:
                        failed[rt.name] = self.exclude(rt, phase, "warm-up", e)
                        break
            active = [rt for rt in active if rt.name not in failed]
            for i in range(iterations):
                if not active:
                    break
                k = i % len(active)
                for rt in active[k:] + active[:k]:
                    try:
                        samples[rt.name][i] = op(rt)
                    except RuntimeFailure as e:
                        failed[rt.name] = self.exclude(rt, phase, "iteration %d" % (i + 1), e)
                active = [rt for rt in active if rt.name not in failed]
        finally:
            for rt in self.runtimes:
                self.forget_containers(rt)
                rt.extra = []
        self.report(phase, samples, failed)
        return any(samples.values())

    def report(self, phase, samples, failed):
        ms = lambda ns: ns / 1e6
        steps = ["create", "start", "wait", "delete"] if phase not in ("run", "seq") else []
        header = "%-7s %5s %10s %10s" % ("runtime", "n", "median ms", "p90 ms")
        header += "".join(" %10s" % (s + " ms") for s in steps)
        print(header)
        medians = {}
        for rt in self.runtimes:
            if rt.name in failed:
                print("%-7s excluded: %s" % (rt.name, failed[rt.name]))
                continue
            vals = [s["total"] for s in samples.get(rt.name, {}).values()]
            if not vals:
                continue
            medians[rt.name] = statistics.median(vals)
            line = "%-7s %5d %10.2f %10.2f" % (rt.name, len(vals), ms(medians[rt.name]),
                                               ms(percentile(vals, 0.9)))
            for s in steps:
                line += " %10.2f" % ms(statistics.median(x[s] for x in samples[rt.name].values()))
            print(line)
        ratios = {}
        for a, b in [("rt", "runc"), ("rt", "crun"), ("crun", "runc")]:
            sa, sb = samples.get(a), samples.get(b)
            if not sa or not sb or a in failed or b in failed:
                continue
            common = sorted(set(sa) & set(sb))
            if common:
                ratios[a + "/" + b] = statistics.median(sa[i]["total"] / sb[i]["total"] for i in common)
        if ratios:
            print("paired ratios (median of per-iteration ratios): "
                  + ", ".join("%s %.2f" % kv for kv in ratios.items()))
        self.summary.append((phase, medians, ratios))

    def trace(self, iterations, warmup):
        """What --trace costs rt's create, and where rt's time goes next to the floor."""
        print()
        print("== trace: rt's cycle with and without --trace (paired, order alternating), "
              "then its steps beside the floor program's")
        rt = next((r for r in self.runtimes if r.name == "rt" and r.excluded is None), None)
        if rt is None:
            print("  rt is not measured: phase skipped")
            return False
        traced = os.path.join(self.tmp, "rt-trace.jsonl")
        warm = os.path.join(self.tmp, "rt-trace-warmup.jsonl")
        pairs = []
        try:
            for _ in range(warmup):
                self.op_cycle(rt, ["--trace", warm])
                self.op_cycle(rt)
            for i in range(iterations):
                if i % 2:
                    plain = self.op_cycle(rt)
                    with_trace = self.op_cycle(rt, ["--trace", traced])
                else:
                    with_trace = self.op_cycle(rt, ["--trace", traced])
                    plain = self.op_cycle(rt)
                pairs.append((plain["create"], with_trace["create"]))
        except RuntimeFailure as e:
            print("  trace phase failed: %s" % e)
            return False
        finally:
            self.forget_containers(rt)
        plain = statistics.median(p for p, _ in pairs)
        on = statistics.median(t for _, t in pairs)
        cost = statistics.median(t / p for p, t in pairs) - 1
        print("create: %.2f ms without --trace, %.2f ms with it; paired median cost %+.1f%% "
              "(goal < %.0f%%): %s" % (plain / 1e6, on / 1e6, cost * 100, GOAL_TRACE_COST * 100,
                                       "met" if cost < GOAL_TRACE_COST else "MISSED"))
        self.trace_cost = cost
        rt_steps = self.summarize(rt, traced)
        floor_steps = self.floor(rt, iterations)
        if rt_steps is None:
            return False
        print()
        print("rt's steps (cycle: create then start; median us per run over %d runs; the "
              "init's steps overlap rt's waits)" % rt_steps["runs"])
        print("%9s %9s  %-5s %s" % ("start us", "median us", "by", "step"))
        for r in rt_steps["steps"]:
            print("%9d %9d  %-5s %s" % (r["start_us"], r["median_us"], r["by"], r["step"]))
        if floor_steps:
            print()
            print("the floor's steps (bench/floor.c: bare system calls, the same namespaces "
                  "and cgroups; %d runs)" % floor_steps["runs"])
            for r in floor_steps["steps"]:
                print("%9d %9d  %-5s %s" % (r["start_us"], r["median_us"], r["by"], r["step"]))
            total = lambda steps, name: next((r["median_us"] for r in steps["steps"]
                                              if r["step"] == name), None)
            rt_create, fl = total(rt_steps, "create"), total(floor_steps, "floor")
            if rt_create and fl:
                print("rt create (to the init waiting for start): %d us; the floor, clone to "
                      "exit and cgroups removed: %d us" % (rt_create, fl))
        return True

    def summarize(self, rt, path):
        rc, out, err, _ = self.call(rt, ["trace", "summarize", "--format", "json", path])
        if rc != 0:
            print("  rt trace summarize failed: %s" % last_line(err, out))
            return None
        return json.loads(out)

    def floor(self, rt, iterations):
        """Build bench/floor.c and run it `iterations` times into its own trace file."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            print("  no C compiler (cc): the floor program is left out")
            return None
        binary = os.path.join(self.tmp, "floor")
        src = os.path.join(REPO, "bench", "floor.c")
        built = subprocess.run([cc, "-O2", "-o", binary, src], capture_output=True, text=True)
        if built.returncode != 0:
            print("  building %s failed: %s" % (src, last_line(built.stderr)))
            return None
        path = os.path.join(self.tmp, "floor.jsonl")
        for i in range(iterations + 3):
            leaf = "floor%d" % i
            self.cgroup_leaves.add(leaf)
            cgroups = []
            for mnt in cgroup_mounts():
                parent = os.path.join(mnt, CGROUP_PARENT)
                os.makedirs(parent, exist_ok=True)
                cgroups += ["--cgroup", os.path.join(parent, leaf)]
            out = path if i >= 3 else path + ".warmup"
            done = subprocess.run([binary, self.rootfs, out] + cgroups, capture_output=True,
                                  text=True, timeout=self.args.timeout)
            if done.returncode != 0:
                print("  the floor program failed: %s" % last_line(done.stderr))
                return None
        return self.summarize(rt, path)

    def memory(self, rounds):
        """Peak RSS of `create` per runtime (GNU time's %M), interleaved; binary sizes."""
        print()
        print("== memory: peak RSS of the runtime process during create (wait4's ru_maxrss, "
              "reported by %s) and binary size" % GNU_TIME)
        active = [rt for rt in self.runtimes if rt.excluded is None]
        peak = {rt.name: [] for rt in active}
        report = os.path.join(self.tmp, "maxrss")
        try:
            for i in range(rounds):
                k = i % len(active)
                for rt in active[k:] + active[:k]:
                    cid = self.prepare(rt, "mem")
                    argv = ["create", "-b", rt.bundle, cid]
                    rc, out, err, _ = self.call(rt, argv, prefix=(GNU_TIME, "-o", report, "-f", "%M"))
                    if rc != 0:
                        raise RuntimeFailure("%s: create exited %d: %s" % (rt.name, rc, last_line(err, out)))
                    with open(report) as f:
                        peak[rt.name].append(int(f.read().split()[-1]))
                    self.check(rt, ["delete", "--force", cid])
                    self.container_ids[rt.name].discard(cid)
                    reap_zombies()
        except RuntimeFailure as e:
            print("  memory phase failed: %s" % e)
            return False
        finally:
            for rt in active:
                self.forget_containers(rt)
        print("%-7s %5s %14s %11s  %s" % ("runtime", "n", "create peak", "binary", "linkage"))
        medians = {}
        for rt in active:
            medians[rt.name] = statistics.median(peak[rt.name]) * 1024
            print("%-7s %5d %10.2f MiB %8.2f MB  %s" % (
                rt.name, len(peak[rt.name]), medians[rt.name] / 2**20,
                os.path.getsize(rt.path) / 1e6, linkage(rt.path)))
        ratios = {"%s/%s" % (a, b): medians[a] / medians[b]
                  for a, b in [("rt", "runc"), ("rt", "crun")] if a in medians and b in medians}
        if ratios:
            print("ratios: " + ", ".join("%s %.2f" % kv for kv in ratios.items()))
        self.memory_ratios = ratios
        return True

    def print_summary(self):
        print()
        print("== summary (medians; paired ratios)")
        print("%-9s %9s %9s %9s %8s %8s" % ("phase", "rt ms", "runc ms", "crun ms", "rt/runc", "rt/crun"))
        cell = lambda m, n: "%9.1f" % (m[n] / 1e6) if n in m else "%9s" % "-"
        ratio = lambda r, k: "%8.2f" % r[k] if k in r else "%8s" % "-"
        for phase, medians, ratios in self.summary:
            print("%-9s %s %s %s %s %s" % (phase, cell(medians, "rt"), cell(medians, "runc"),
                                          cell(medians, "crun"), ratio(ratios, "rt/runc"),
                                          ratio(ratios, "rt/crun")))
        cycle = {p: r for p, _, r in self.summary}.get("cycle", {})
        goals = [("rt/crun on the cycle", cycle.get("rt/crun"), GOAL_VS_CRUN),
                 ("rt/runc on the cycle", cycle.get("rt/runc"), GOAL_VS_RUNC),
                 ("rt/crun create peak RSS", self.memory_ratios.get("rt/crun"), 1.0)]
        for what, value, goal in goals:
            if value is not None:
                print("goal: %s %.2f (goal <= %.1f): %s"
                      % (what, value, goal, "met" if value <= goal else "MISSED"))
        if self.trace_cost is not None:
            print("goal: --trace costs %+.1f%% of rt's create (goal < %.0f%%): %s"
                  % (self.trace_cost * 100, GOAL_TRACE_COST * 100,
                     "met" if self.trace_cost < GOAL_TRACE_COST else "MISSED"))

    # ---- cleanup ---------------------------------------------------------

    def forget_containers(self, rt):
        """Force-delete every container of `rt` that may still exist."""
        if rt.path is None:
            return
        ids = set(self.container_ids.get(rt.name, ()))
        if os.path.isdir(rt.root):
            ids.update(n for n in os.listdir(rt.root) if n.startswith("bench-"))
        for cid in sorted(ids):
            try:
                self.call(rt, ["delete", "--force", cid], timeout=15)
            except RuntimeFailure:
                pass
        self.container_ids[rt.name] = set()
        reap_zombies()

    def remove_cgroups(self):
        # With the unified hierarchy unmounted here, /sys/fs/cgroup/unified is a plain
        # directory of the tmpfs below it, and crun makes its cgroup directories there
        # too: empty, but hidden under the host's mount once we are gone.
        stray = os.path.join(UNIFIED, CGROUP_PARENT)
        if UNIFIED not in cgroup_mounts() and os.path.isdir(stray):
            for leaf in self.cgroup_leaves:  # plain directories holding a cgroup.procs file
                shutil.rmtree(os.path.join(stray, leaf), ignore_errors=True)
            try:
                os.rmdir(stray)
            except OSError:
                pass
        for mnt in cgroup_mounts():
            parent = os.path.join(mnt, CGROUP_PARENT)
            if not os.path.isdir(parent):
                continue
            for leaf in self.cgroup_leaves:
                path = os.path.join(parent, leaf)
                if os.path.isdir(path):
                    remove_cgroup(path)
            try:
                os.rmdir(parent)  # only succeeds once empty (others may use it)
            except OSError:
                pass

    def cleanup(self):
        self.kill_live()
        for rt in self.runtimes:
            self.forget_containers(rt)
        self.remove_cgroups()
        reap_zombies()
        shutil.rmtree(self.tmp, ignore_errors=True)


def linkage(path):
    """'static' or 'dynamic' (an ELF with a PT_INTERP program header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return "not a 64-bit ELF"
            (phoff,) = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError as e:
        return "unreadable (%s)" % e
    types = [struct.unpack_from("<I", table, n * phentsize)[0] for n in range(phnum)]
    return "dynamic" if 3 in types else "static"  # 3: PT_INTERP, the dynamic loader


def remove_cgroup(path):
    """rmdir a leaf cgroup we created, killing our leftover processes in it."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                break
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                for pid in f.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        except OSError:
            pass
        reap_zombies()
        time.sleep(0.02)
    print("warning: could not remove cgroup %s" % path, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50, help="measured iterations per phase (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs per runtime and phase (default 3)")
    ap.add_argument("--phases", default=",".join(ALL_PHASES),
                    help="comma-separated subset of %s (default: all)" % ",".join(ALL_PHASES))
    ap.add_argument("--seq", type=int, default=100, help="cycles per round of the seq phase (default 100)")
    ap.add_argument("--seq-rounds", type=int, default=3, help="rounds of the seq phase (default 3)")
    ap.add_argument("--memory-rounds", type=int, default=10,
                    help="creates per runtime in the memory phase (default 10)")
    ap.add_argument("--rt", default=os.path.join(REPO, "target", "release", "rt"))
    ap.add_argument("--runc", default="runc")
    ap.add_argument("--crun", default="crun")
    ap.add_argument("--only", help="comma-separated subset of rt,runc,crun")
    ap.add_argument("--rootfs", default=os.path.join(REPO, "spec-examples", "rootfs"),
                    help="busybox rootfs to copy (built with build-rootfs.sh if missing)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds allowed per runtime command")
    args = ap.parse_args()
    phases = args.phases.split(",")
    unknown = [p for p in phases if p not in ALL_PHASES]
    if unknown:
        sys.exit("cycle.py: unknown phase(s) %s; choose from %s" % (",".join(unknown), ",".join(ALL_PHASES)))
    if "memory" in phases and not os.access(GNU_TIME, os.X_OK):
        sys.exit("cycle.py: the memory phase needs GNU time at %s (apt-get install time)" % GNU_TIME)

    if os.geteuid() != 0:
        sys.exit("cycle.py: must run as root")
    if shutil.which("unshare") is None:
        sys.exit("cycle.py: unshare (util-linux) is required")
    # crun refuses a hybrid cgroup host. Rather than wrapping every command in
    # `unshare -m sh -c 'umount ...'` (whose umount costs ~16 ms, a tick-bound RCU wait,
    # and would dwarf what is measured), the whole benchmark re-runs itself once in a
    # private mount namespace where /sys/fs/cgroup/unified is unmounted; every runtime
    # then sees the same pure-v1 host and is started directly.
    if os.environ.get("RT_BENCH_NS") != "1":
        env = dict(os.environ, RT_BENCH_NS="1")
        script = 'umount %s 2>/dev/null; exec "$0" "$@"' % UNIFIED
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
               sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
        os.execvpe("unshare", cmd, env)
    make_subreaper()

    def on_signal(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = Bench(args)
    ok = False
    try:
        bench.setup()
        print("All runtimes run directly, inside one private mount namespace in which %s is "
              "unmounted (crun refuses hybrid cgroups): same host view for all" % UNIFIED)
        print("Bundle: busybox /bin/true, terminal false, readonly root, pid/ipc/uts/mount "
              "namespaces, cgroupsPath /%s/<runtime>-<phase><n>" % CGROUP_PARENT)
        print("%d interleaved iterations per phase (order rotated), %d warm-up runs; load average %s"
              % (args.cycles, args.warmup, open("/proc/loadavg").read().split()[0]))
        for rt in bench.runtimes:
            if rt.excluded:
                print("  %-5s excluded: %s" % (rt.name, rt.excluded))
            else:
                print("  %-5s %s (%s)" % (rt.name, rt.path, rt.version))
        if "run" in phases:
            ok |= bench.phase("run", bench.op_run, "run -b BUNDLE ID  (/bin/true)",
                              args.cycles, args.warmup)
        cycle_title = "create -> start -> wait -> delete  (%s; total ms, then medians per step)"
        for phase, variant, what in [("cycle", {}, "/bin/true"),
                                     ("netns", {"netns": True}, "/bin/true, new network namespace"),
                                     ("seccomp", {"seccomp": True},
                                      "/bin/true, Docker 20.10's default seccomp profile")]:
            if phase in phases:
                bench.variant = variant
                ok |= bench.phase(phase, bench.op_cycle, cycle_title % what, args.cycles, args.warmup)
        bench.variant = {}
        if "nocgroup" in phases:
            disabled = ["--cgroup-manager=disabled"]
            ok |= bench.phase("nocgroup", bench.op_cycle,
                              cycle_title % "/bin/true, no cgroups: --cgroup-manager=disabled",
                              args.cycles, args.warmup,
                              sits_out={"runc": "runc always creates cgroups (no such flag)"},
                              extra={"rt": disabled, "crun": disabled})
        if "seq" in phases:
            ok |= bench.phase("seq", bench.op_seq,
                              "%d cycles back to back, total ms per round" % args.seq,
                              args.seq_rounds, 0)
        if "trace" in phases:
            ok |= bench.trace(args.cycles, args.warmup)
        if "memory" in phases:
            ok |= bench.memory(args.memory_rounds)
        bench.print_summary()
        print()
        print("load average at end: %s" % open("/proc/loadavg").read().split()[0])
    except (KeyboardInterrupt, Interrupted) as e:
        print("\ninterrupted (%s); cleaning up" % (str(e) or "SIGINT"), file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
