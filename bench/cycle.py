#!/usr/bin/env python3
"""Compare OCI runtimes (rt, runc, crun) and the floor on short container lifecycles.

The bundle is busybox with a readonly root and the namespaces `runc spec` and Docker
give a container: pid, network, ipc, uts and mount. The *light* bundle leaves out the
network namespace. Every command is timed with time.perf_counter_ns from Popen until
it exits (seen on a pidfd: Popen.wait(timeout) polls, see wait_exit).

The floor (bench/floor.c, built here with cc -O2) is the bare system calls any runtime
must make: clone into the same namespaces, join the same cgroups (every mounted v1
hierarchy, or on a v2-only host the cgroup2 root through clone3(CLONE_INTO_CGROUP)),
make / private, bind the rootfs, mount proc, pivot_root, exec /bin/true, wait, rmdir
the cgroups. It takes part, timed the same way, where marked [floor]; its
`--exec PID` mode is the bare exec (pidfd_open, setns into all the namespaces, fork,
join the cgroups, exec /bin/true, wait).

Phases:

  run          RUNTIME run -b BUNDLE ID (/bin/true) [floor]
  run-light    the same with the light bundle [floor, without a network namespace]
  cycle        create --pid-file -> start -> wait for exit -> delete
  cycle-light  the cycle with the light bundle
  exec         one `sleep` container per runtime, then RUNTIME exec ID /bin/true
               [floor --exec, into rt's container]
  seccomp      the cycle with Docker 20.10's default seccomp profile
               (runtime/tests/data/docker-20.10-default.json)
  nocgroup     the cycle without cgroups: rt and crun with --cgroup-manager=disabled
               (runc cannot run without cgroups, so it sits this one out)
  seq          --seq cycles back to back, the total (a few rounds)
  trace        rt alone: create with and without --trace (paired: what tracing costs),
               then `rt trace summarize` of the traced runs (where rt's time goes, step
               by step) beside the floor's own traced steps
  memory       peak RSS of the runtime process during `create` and during `exec`
               (GNU time's %M, i.e. wait4's ru_maxrss: the process and the children it
               reaped; the wrapper is tiny, a Python parent would count its own pages),
               and each binary's size
  quiet        the cycle after a quiet spell: a pause (--quiet-pause, default 1.2 s)
               before each cycle of each runtime and each floor run, so that the first
               cgroup move waits for an RCU grace period, as after any idle moment on a
               real host [floor]. Takes a few minutes (--quiet-cycles, default 50).

Iterations are interleaved across the runtimes and the floor (rotating the order every
iteration) so that load spikes on a shared machine hit every one alike; results are
reported as medians, p90s and *paired* ratios (the median of the per-iteration ratios,
e.g. rt/floor, rt/crun), which are far more stable than absolute numbers. A summary
table and the goals (issue 19's, then the project's older ones), each met or MISSED,
close the report; a goal whose runtime is missing is "not measured".

The benchmark re-runs itself once inside a private mount namespace in which
/sys/fs/cgroup/unified is unmounted (crun refuses the hybrid cgroup layout
otherwise); every runtime is started directly from there, so all of them see
the same host and pay the same overhead.

Needs root (and cc for the floor, left out without it). Python standard library only. Cleans up its containers, cgroup
directories (/sys/fs/cgroup/<controller>/rt-bench/...) and temporary files at
the end, also on Ctrl-C or SIGTERM. A runtime that is missing or fails is
reported and left out; the others are still measured.

    python3 bench/cycle.py [--cycles 50] [--quiet-cycles 50] [--quiet-pause 1.2]
                           [--phases run,run-light,cycle,cycle-light,exec,seccomp,nocgroup,seq,trace,memory,quiet]
                           [--rt target/release/rt] [--runc PATH] [--crun PATH] [--no-floor]
"""

import argparse
import ctypes
import errno
import json
import math
import os
import select
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
FLOOR_SOURCE = os.path.join(REPO, "bench", "floor.c")
GNU_TIME = "/usr/bin/time"
ALL_PHASES = ["run", "run-light", "cycle", "cycle-light", "exec", "seccomp", "nocgroup",
              "seq", "trace", "memory", "quiet"]
# The bundles: the default one as `runc spec` and Docker make it, and the light one.
DEFAULT = {"netns": True}
LIGHT = {"netns": False}
SLEEPER_ARGS = ["sleep", "100000"]  # the exec phases' long-running container
# Paired ratios printed for each phase, when both sides were measured.
PAIRS = [("rt", "floor"), ("rt", "crun"), ("rt", "runc"),
         ("crun", "floor"), ("runc", "floor"), ("crun", "runc")]
CYCLE_STEPS = ["create", "start", "wait", "delete"]
# Issue 19's goals ("speed to the floor").
GOAL_RUN_VS_FLOOR, GOAL_RUN_VS_CRUN = 1.25, 0.7
GOAL_QUIET_VS_FLOOR = 1.25
GOAL_EXEC_VS_CRUN = 0.5
GOAL_RSS_VS_CRUN = 0.75  # peak RSS of create, and of exec
# --trace may cost at most this share of rt's create (issue 18: cheap enough to leave on).
GOAL_TRACE_COST = 0.02
# The project's older goals, on the cycle.
OLD_GOAL_VS_CRUN, OLD_GOAL_VS_RUNC = 0.9, 0.3


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


def is_cgroup2(path):
    """Whether `path` (a mount point from cgroup_mounts) is a cgroup2 hierarchy."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return fields[fields.index("-") + 1] == "cgroup2"
    return False


def wait_exit(proc, timeout):
    """Block until `proc` exits (True) or `timeout` seconds pass (False), without reaping it.

    Not Popen.wait(timeout): CPython implements that as a poll loop whose sleeps double
    from 1 ms to 50 ms, so a command is seen to end only at 1, 3, 7, 15, 31, 63... ms
    after it started (a 16.5 ms sleep measured 32 ms). A pidfd becomes readable the moment
    the process exits.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return True  # already reaped elsewhere; Popen.wait() sorts it out
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


def percentile(values, q):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def paired(sa, sb):
    """Median of the per-iteration ratios of two {iteration: sample} maps, or None."""
    common = sorted(set(sa) & set(sb))
    if not common:
        return None
    return statistics.median(sa[i]["total"] / sb[i]["total"] for i in common)


class Runtime:
    """A participant: a runtime, or the floor program (is_floor)."""

    def __init__(self, name, path, root, is_floor=False):
        self.name = name
        self.path = path
        self.root = root  # --root state directory, private to this run
        self.is_floor = is_floor
        self.bundle = None
        self.version = ""
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
        self.floor = None  # Runtime(is_floor=True), set up in setup()
        self.variant = dict(DEFAULT)  # the current phase's bundle: netns, seccomp, args
        self.summary = []  # (phase, {name: median ns}, {pair: ratio})
        self.memory_ratios = {}  # "create"/"exec" -> {pair: ratio}
        self.trace_cost = None
        self.sleepers = {}  # runtime name -> (container id, init pid, cgroup leaf)
        with open(SECCOMP_PROFILE) as f:
            self.seccomp = json.load(f)
        self.out = open(os.path.join(self.tmp, "stdout"), "w+b")
        self.err = open(os.path.join(self.tmp, "stderr"), "w+b")

    # ---- process helpers -------------------------------------------------

    def timed(self, cmd, timeout=None):
        """Run `cmd`; return (rc, stdout, stderr, ns), ns measured from Popen to wait.

        Output goes to files, not pipes: after `create` the container's init
        keeps the inherited stdio open until it exits, so reading pipes to EOF
        would block until `start`.
        """
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
        if not wait_exit(self.live, timeout):
            self.kill_live()
            raise RuntimeFailure("`%s` timed out after %ss" % (os.path.basename(cmd[0]), timeout))
        rc = self.live.wait()  # exited: reaps at once
        elapsed = time.perf_counter_ns() - start
        self.live = None
        output = []
        for f in (self.out, self.err):
            f.seek(0)
            output.append(f.read().decode(errors="replace"))
        return rc, output[0], output[1], elapsed

    def call(self, rt, argv, timeout=None, prefix=()):
        """Run RUNTIME (after `prefix`, e.g. GNU time) with its --root; see timed().

        main() already moved the whole benchmark into one private mount namespace without
        the unified hierarchy: runtimes are started directly from here.
        """
        return self.timed(list(prefix) + [rt.path, "--root", rt.root] + rt.extra + argv, timeout)

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
                "args": self.variant.get("args", ["/bin/true"]),
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
        self.rootfs = self.build_rootfs()
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
        self.floor = self.build_floor()

    def build_floor(self):
        """bench/floor.c, built with cc -O2 (excluded, with the reason, when that fails)."""
        floor = Runtime("floor", None, None, is_floor=True)
        floor.version = "bench/floor.c, cc -O2"
        if self.args.no_floor:
            floor.excluded = "left out (--no-floor)"
            return floor
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            floor.excluded = "no C compiler (cc)"
            return floor
        binary = os.path.join(self.tmp, "floor")
        built = subprocess.run([cc, "-O2", "-o", binary, FLOOR_SOURCE], capture_output=True, text=True)
        if built.returncode != 0:
            floor.excluded = "building %s failed: %s" % (FLOOR_SOURCE, last_line(built.stderr))
        else:
            floor.path = binary
        return floor

    def prepare(self, rt, phase):
        """Fresh container id and cgroup path for one iteration; (id, cgroup leaf)."""
        self.counter += 1
        leaf = "%s-%s%d" % (rt.name, phase, self.counter)
        cid = "bench-%d-%s" % (os.getpid(), leaf)
        self.cgroup_leaves.add(leaf)
        cfg = self.config(self.rootfs, "/%s/%s" % (CGROUP_PARENT, leaf))
        with open(os.path.join(rt.bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.container_ids[rt.name].add(cid)
        return cid, leaf

    # ---- the floor's cgroups ---------------------------------------------

    def cgroup_dirs(self, leaf):
        """The directories of cgroup `leaf` in every hierarchy rt uses (all mounted ones),
        their /rt-bench parents made (untimed: they outlive every container)."""
        dirs = []
        for mnt in cgroup_mounts():
            parent = os.path.join(mnt, CGROUP_PARENT)
            if not os.path.isdir(parent):
                os.makedirs(parent, exist_ok=True)
                if is_cgroup2(mnt):
                    enable_controllers(mnt, parent)
            dirs.append(os.path.join(parent, leaf))
        return dirs

    def floor_argv(self, leaf, trace="-"):
        """The floor's command line for one container in cgroup `leaf`."""
        self.cgroup_leaves.add(leaf)
        argv = [self.floor.path, self.rootfs, trace]
        if self.variant.get("netns"):
            argv.append("--netns")
        for d in self.cgroup_dirs(leaf):
            argv += ["--cgroup", d]
        return argv

    def run_floor(self, argv):
        rc, out, err, ns = self.timed(argv)
        if rc != 0:
            raise RuntimeFailure("the floor exited %d: %s" % (rc, last_line(err, out)))
        return ns

    # ---- the measured operations -----------------------------------------

    def op_run(self, rt):
        """`run -b` (/bin/true); for the floor, one run of it."""
        self.counter += 1
        if rt.is_floor:
            return {"total": self.run_floor(self.floor_argv("floor%d" % self.counter))}
        cid, _ = self.prepare(rt, "run")
        ns = self.check(rt, ["run", "-b", rt.bundle, cid])
        self.container_ids[rt.name].discard(cid)
        reap_zombies()
        return {"total": ns}

    def op_cycle(self, rt, create_flags=()):
        cid, _ = self.prepare(rt, "cycle")
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

    def op_quiet(self, rt):
        """A quiet spell (no container work of ours), then the cycle; the floor runs once
        (its run is a whole cycle: cgroups made, clone to exit, cgroups removed)."""
        time.sleep(self.args.quiet_pause)
        return self.op_run(rt) if rt.is_floor else self.op_cycle(rt)

    def op_exec(self, rt):
        """`exec ID /bin/true` in the runtime's sleeper; for the floor, `floor --exec`
        into the target container's namespaces and cgroups."""
        if rt.is_floor:
            _, pid, leaf = self.sleepers[self.exec_target]
            argv = [self.floor.path, "--exec", str(pid), "-"]
            for d in self.cgroup_dirs(leaf):
                argv += ["--cgroup", d]
            return {"total": self.run_floor(argv)}
        cid, _, _ = self.sleepers[rt.name]
        return {"total": self.check(rt, ["exec", cid, "/bin/true"])}

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

    def start_sleeper(self, rt):
        """A long-running container (busybox sleep, the default bundle) for exec."""
        saved, self.variant = self.variant, dict(DEFAULT, args=SLEEPER_ARGS)
        try:
            cid, leaf = self.prepare(rt, "sleeper")
        finally:
            self.variant = saved
        pidfile = os.path.join(self.tmp, cid + ".pid")
        self.check(rt, ["create", "-b", rt.bundle, "--pid-file", pidfile, cid])
        self.check(rt, ["start", cid])
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.unlink(pidfile)
        self.sleepers[rt.name] = (cid, pid, leaf)

    def stop_sleepers(self):
        for name in list(self.sleepers):
            rt = next(r for r in self.runtimes if r.name == name)
            cid = self.sleepers.pop(name)[0]
            try:
                self.call(rt, ["delete", "--force", cid], timeout=15)
                self.container_ids[name].discard(cid)
            except RuntimeFailure:
                pass  # cleanup() tries again
        reap_zombies()

    # ---- phases ----------------------------------------------------------

    def exclude(self, rt, phase, what, err):
        print("  %-5s FAILED during %s %s: %s -> excluded" % (rt.name, phase, what, err))
        if not rt.is_floor:
            self.forget_containers(rt)
        return err

    def participants(self, with_floor, sits_out):
        everyone = self.runtimes + ([self.floor] if with_floor else [])
        return [p for p in everyone if p.excluded is None and p.name not in sits_out]

    def phase(self, phase, op, title, iterations, warmup, sits_out=None, extra=None,
              with_floor=False):
        """Warm up, then `iterations` interleaved rounds of `op` on every participant.

        sits_out: {runtime: reason} left out of this phase only; extra: {runtime: flags}
        added to its command lines for this phase; with_floor: the floor takes part.
        """
        sits_out, extra = sits_out or {}, extra or {}
        active = self.participants(with_floor, sits_out)
        failed = {}
        samples = {p.name: {} for p in active}
        print()
        print("== %s: %s" % (phase, title))
        for name, why in sits_out.items():
            print("  %-5s sits this phase out: %s" % (name, why))
        if with_floor and self.floor.excluded:
            print("  floor left out: %s" % self.floor.excluded)
        for rt in self.runtimes:
            rt.extra = list(extra.get(rt.name, []))
        try:
            for p in active:
                for _ in range(warmup):
                    try:
                        op(p)
                    except RuntimeFailure as e:
                        failed[p.name] = self.exclude(p, phase, "warm-up", e)
                        break
            active = [p for p in active if p.name not in failed]
            for i in range(iterations):
                if not active:
                    break
                k = i % len(active)
                for p in active[k:] + active[:k]:
                    try:
                        samples[p.name][i] = op(p)
                    except RuntimeFailure as e:
                        failed[p.name] = self.exclude(p, phase, "iteration %d" % (i + 1), e)
                active = [p for p in active if p.name not in failed]
        finally:
            for rt in self.runtimes:
                self.forget_containers(rt)
                rt.extra = []
        self.report(phase, samples, failed)
        return any(samples.values())

    def report(self, phase, samples, failed):
        ms = lambda ns: ns / 1e6
        with_steps = any(CYCLE_STEPS[0] in s for per in samples.values() for s in per.values())
        steps = CYCLE_STEPS if with_steps else []
        header = "%-7s %5s %10s %10s" % ("", "n", "median ms", "p90 ms")
        header += "".join(" %10s" % (s + " ms") for s in steps)
        print(header)
        medians = {}
        for p in self.runtimes + [self.floor]:
            if p.name in failed:
                print("%-7s excluded: %s" % (p.name, failed[p.name]))
                continue
            per = samples.get(p.name, {})
            vals = [s["total"] for s in per.values()]
            if not vals:
                continue
            medians[p.name] = statistics.median(vals)
            line = "%-7s %5d %10.2f %10.2f" % (p.name, len(vals), ms(medians[p.name]),
                                               ms(percentile(vals, 0.9)))
            for s in steps:
                got = [x[s] for x in per.values() if s in x]
                line += " %10.2f" % ms(statistics.median(got)) if got else " %10s" % "-"
            print(line)
        ratios = {}
        for a, b in PAIRS:
            if a in failed or b in failed or not samples.get(a) or not samples.get(b):
                continue
            r = paired(samples[a], samples[b])
            if r is not None:
                ratios[a + "/" + b] = r
        if ratios:
            print("paired ratios (median of per-iteration ratios): "
                  + ", ".join("%s %.2f" % kv for kv in ratios.items()))
        self.summary.append((phase, medians, ratios))

    def exec_phase(self, iterations, warmup):
        """One sleeper per runtime, then interleaved execs (and the floor's, into rt's)."""
        active = [rt for rt in self.runtimes if rt.excluded is None]
        print()
        print("== exec: starting one `%s` container per runtime (default bundle)"
              % " ".join(SLEEPER_ARGS))
        sits_out = {}
        try:
            for rt in active:
                try:
                    self.start_sleeper(rt)
                except RuntimeFailure as e:
                    sits_out[rt.name] = "its sleeper did not start: %s" % e
                    self.forget_containers(rt)
            self.exec_target = next((n for n in ("rt", "crun", "runc") if n in self.sleepers), None)
            if self.exec_target is None:
                sits_out["floor"] = "no container to exec into"
            title = ("RUNTIME exec ID /bin/true  (floor --exec: pidfd_open, setns, fork, "
                     "cgroups, exec, into %s's container)" % (self.exec_target or "no"))
            return self.phase("exec", self.op_exec, title, iterations, warmup,
                              sits_out=sits_out, with_floor=True)
        finally:
            self.stop_sleepers()

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
        floor_steps = self.traced_floor(rt, iterations)
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

    def traced_floor(self, rt, iterations):
        """Run the floor `iterations` times (after 3 warm-ups) into its own trace file."""
        if self.floor.excluded:
            print("  the floor is left out: %s" % self.floor.excluded)
            return None
        path = os.path.join(self.tmp, "floor.jsonl")
        for i in range(iterations + 3):
            out = path if i >= 3 else path + ".warmup"
            try:
                self.run_floor(self.floor_argv("floor-trace%d" % i, trace=out))
            except RuntimeFailure as e:
                print("  the floor program failed: %s" % e)
                return None
        return self.summarize(rt, path)

    def memory(self, rounds):
        """Peak RSS of `create` and of `exec` per runtime (GNU time's %M), interleaved;
        binary sizes."""
        print()
        print("== memory: peak RSS of the runtime process during create and during exec "
              "(wait4's ru_maxrss: the process and the children it reaped, reported by %s) "
              "and binary size" % GNU_TIME)
        active = [rt for rt in self.runtimes if rt.excluded is None]
        peak = {rt.name: {"create": [], "exec": []} for rt in active}
        report = os.path.join(self.tmp, "maxrss")
        time_it = (GNU_TIME, "-o", report, "-f", "%M")

        def measured(rt, what, argv):
            rc, out, err, _ = self.call(rt, argv, prefix=time_it)
            if rc != 0:
                raise RuntimeFailure("%s: %s exited %d: %s" % (rt.name, what, rc, last_line(err, out)))
            with open(report) as f:
                peak[rt.name][what].append(int(f.read().split()[-1]))

        try:
            for rt in active:
                self.start_sleeper(rt)
            for i in range(rounds):
                k = i % len(active)
                for rt in active[k:] + active[:k]:
                    cid, _ = self.prepare(rt, "mem")
                    measured(rt, "create", ["create", "-b", rt.bundle, cid])
                    self.check(rt, ["delete", "--force", cid])
                    self.container_ids[rt.name].discard(cid)
                    reap_zombies()
                    measured(rt, "exec", ["exec", self.sleepers[rt.name][0], "/bin/true"])
        except RuntimeFailure as e:
            print("  memory phase failed: %s" % e)
            return False
        finally:
            self.stop_sleepers()
            for rt in active:
                self.forget_containers(rt)
        print("%-7s %5s %14s %14s %11s  %s" % ("runtime", "n", "create peak", "exec peak",
                                              "binary", "linkage"))
        medians = {"create": {}, "exec": {}}
        for rt in active:
            for what in medians:
                medians[what][rt.name] = statistics.median(peak[rt.name][what]) * 1024
            print("%-7s %5d %10.2f MiB %10.2f MiB %8.2f MB  %s" % (
                rt.name, len(peak[rt.name]["create"]), medians["create"][rt.name] / 2**20,
                medians["exec"][rt.name] / 2**20, os.path.getsize(rt.path) / 1e6, linkage(rt.path)))
        for what, m in medians.items():
            ratios = {"%s/%s" % (a, b): m[a] / m[b]
                      for a, b in [("rt", "crun"), ("rt", "runc")] if a in m and b in m}
            if ratios:
                print("%s ratios: %s" % (what, ", ".join("%s %.2f" % kv for kv in ratios.items())))
            self.memory_ratios[what] = ratios
        return True

    # ---- the summary and the goals ---------------------------------------

    def print_summary(self):
        print()
        print("== summary (medians; paired ratios)")
        names = ["rt", "floor", "crun", "runc"]
        pairs = ["rt/floor", "rt/crun", "rt/runc"]
        print("%-12s" % "phase" + "".join("%9s" % (n + " ms") for n in names)
              + "".join("%10s" % p for p in pairs))
        for phase, medians, ratios in self.summary:
            line = "%-12s" % phase
            line += "".join("%9.1f" % (medians[n] / 1e6) if n in medians else "%9s" % "-"
                            for n in names)
            line += "".join("%10.2f" % ratios[p] if p in ratios else "%10s" % "-" for p in pairs)
            print(line)
        print()
        print("== goals (issue 19: speed to the floor)")
        ratios = {p: r for p, _, r in self.summary}
        get = lambda phase, pair: ratios.get(phase, {}).get(pair)
        create_rss = self.memory_ratios.get("create", {})
        exec_rss = self.memory_ratios.get("exec", {})
        goals = [
            ("run rt/floor", get("run", "rt/floor"), GOAL_RUN_VS_FLOOR, ""),
            ("run rt/crun", get("run", "rt/crun"), GOAL_RUN_VS_CRUN, ""),
            ("quiet cycle rt/floor", get("quiet", "rt/floor"), GOAL_QUIET_VS_FLOOR,
             beside(ratios.get("quiet", {}), ["rt/crun", "rt/runc"])),
            ("exec rt/crun", get("exec", "rt/crun"), GOAL_EXEC_VS_CRUN,
             beside(ratios.get("exec", {}), ["rt/runc", "rt/floor"])),
            ("create peak RSS rt/crun", create_rss.get("rt/crun"), GOAL_RSS_VS_CRUN, ""),
            ("exec peak RSS rt/crun", exec_rss.get("rt/crun"), GOAL_RSS_VS_CRUN, ""),
        ]
        for what, value, limit, note in goals:
            print_goal(what, value, "<= %.2f" % limit, value is not None and value <= limit, note)
        cost = self.trace_cost
        print_goal("--trace cost", None if cost is None else cost * 100,
                   "< %.0f %%" % (GOAL_TRACE_COST * 100), cost is not None and cost < GOAL_TRACE_COST,
                   "", fmt="%+.1f %%")
        print("the project's older goals (the cycle, default bundle):")
        for what, value, limit in [("cycle rt/crun", get("cycle", "rt/crun"), OLD_GOAL_VS_CRUN),
                                   ("cycle rt/runc", get("cycle", "rt/runc"), OLD_GOAL_VS_RUNC)]:
            print_goal(what, value, "<= %.2f" % limit, value is not None and value <= limit, "")
        light = [(phase, beside(ratios[phase], ["rt/floor", "rt/crun", "rt/runc"]))
                 for phase in ("run-light", "cycle-light") if phase in ratios]
        if light:
            print("informational, the light bundle (no network namespace):")
            for phase, text in light:
                print("  %-12s %s" % (phase, text.strip("()") or "-"))

    # ---- cleanup ---------------------------------------------------------

    def forget_containers(self, rt):
        """Force-delete every container of `rt` that may still exist."""
        if rt.path is None or rt.is_floor:
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
        self.sleepers.pop(rt.name, None)
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


def beside(ratios, pairs):
    """'(rt/crun 0.61, rt/runc 0.30)' for those of `pairs` measured, else ''."""
    got = ["%s %.2f" % (p, ratios[p]) for p in pairs if p in ratios]
    return "(%s)" % ", ".join(got) if got else ""


def print_goal(what, value, goal, met, note, fmt="%.2f"):
    if value is None:
        print("goal: %-24s %8s  (goal %s): not measured" % (what, "-", goal))
        return
    line = "goal: %-24s %8s  (goal %s): %s" % (what, fmt % value, goal, "met" if met else "MISSED")
    print(line + (" " + note if note else ""))


def enable_controllers(root, parent):
    """Enable in `parent` (a new cgroup2 directory) every controller `root` offers, as rt
    does for the container's ancestors on a v2-only host."""
    for d in (root, parent):
        try:
            with open(os.path.join(d, "cgroup.controllers")) as f:
                wanted = f.read().split()
            for c in wanted:
                with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                    f.write("+" + c)
        except OSError:
            pass  # a controller that cannot be enabled here; the runtimes meet the same


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


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50,
                    help="measured iterations per phase (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs per runtime and phase (default 3)")
    ap.add_argument("--phases", default=",".join(ALL_PHASES),
                    help="comma-separated subset of %s (default: all)" % ",".join(ALL_PHASES))
    ap.add_argument("--quiet-cycles", type=int, default=50,
                    help="iterations of the quiet phase (default 50)")
    ap.add_argument("--quiet-pause", type=float, default=1.2,
                    help="seconds of quiet before each run in the quiet phase (default 1.2; "
                         "at least 1 for the RCU grace period to show)")
    ap.add_argument("--seq", type=int, default=100, help="cycles per round of the seq phase (default 100)")
    ap.add_argument("--seq-rounds", type=int, default=3, help="rounds of the seq phase (default 3)")
    ap.add_argument("--memory-rounds", type=int, default=10,
                    help="creates and execs per runtime in the memory phase (default 10)")
    ap.add_argument("--rt", default=os.path.join(REPO, "target", "release", "rt"))
    ap.add_argument("--runc", default="runc")
    ap.add_argument("--crun", default="crun")
    ap.add_argument("--only", help="comma-separated subset of rt,runc,crun")
    ap.add_argument("--no-floor", action="store_true", help="leave the floor program out")
    ap.add_argument("--rootfs", default=os.path.join(REPO, "spec-examples", "rootfs"),
                    help="busybox rootfs to copy (built with build-rootfs.sh if missing)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds allowed per runtime command")
    args = ap.parse_args()
    args.phase_list = args.phases.split(",")
    unknown = [p for p in args.phase_list if p not in ALL_PHASES]
    if unknown:
        sys.exit("cycle.py: unknown phase(s) %s; choose from %s" % (",".join(unknown), ",".join(ALL_PHASES)))
    if "memory" in args.phase_list and not os.access(GNU_TIME, os.X_OK):
        sys.exit("cycle.py: the memory phase needs GNU time at %s (apt-get install time)" % GNU_TIME)
    return args


def reexec_in_private_namespace():
    """crun refuses a hybrid cgroup host. Rather than wrapping every command in
    `unshare -m sh -c 'umount ...'` (whose umount costs ~16 ms, a tick-bound RCU wait,
    and would dwarf what is measured), the whole benchmark re-runs itself once in a
    private mount namespace where /sys/fs/cgroup/unified is unmounted; every runtime
    then sees the same pure-v1 host and is started directly."""
    if os.environ.get("RT_BENCH_NS") == "1":
        return
    if shutil.which("unshare") is None:
        sys.exit("cycle.py: unshare (util-linux) is required")
    env = dict(os.environ, RT_BENCH_NS="1")
    script = 'umount %s 2>/dev/null; exec "$0" "$@"' % UNIFIED
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
           sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    os.execvpe("unshare", cmd, env)


def print_header(bench, args):
    print("All runtimes run directly, inside one private mount namespace in which %s is "
          "unmounted (crun refuses hybrid cgroups): same host view for all" % UNIFIED)
    print("Bundle: busybox /bin/true, terminal false, readonly root, pid/network/ipc/uts/mount "
          "namespaces (as `runc spec`, Docker); the light bundle without the network one; "
          "cgroupsPath /%s/<runtime>-<phase><n>" % CGROUP_PARENT)
    print("%d interleaved iterations per phase (order rotated), %d warm-up runs; quiet phase "
          "%d iterations after %.1f s pauses; load average %s"
          % (args.cycles, args.warmup, args.quiet_cycles, args.quiet_pause,
             open("/proc/loadavg").read().split()[0]))
    for p in bench.runtimes + [bench.floor]:
        if p.excluded:
            print("  %-5s excluded: %s" % (p.name, p.excluded))
        else:
            print("  %-5s %s (%s)" % (p.name, p.path, p.version))


def run_phases(bench, args):
    """Every phase asked for, in ALL_PHASES order; True if any measured something."""
    phases, ok = args.phase_list, False
    n, w = args.cycles, args.warmup
    cycle_title = "create -> start -> wait -> delete  (%s; total ms, then medians per step)"
    for phase, variant, what in [("run", DEFAULT, "default bundle"),
                                 ("run-light", LIGHT, "light bundle: no network namespace")]:
        if phase in phases:
            bench.variant = dict(variant)
            ok |= bench.phase(phase, bench.op_run, "run -b BUNDLE ID  (/bin/true, %s)" % what,
                              n, w, with_floor=True)
    for phase, variant, what in [("cycle", DEFAULT, "/bin/true, default bundle"),
                                 ("cycle-light", LIGHT, "/bin/true, light bundle: no network namespace")]:
        if phase in phases:
            bench.variant = dict(variant)
            ok |= bench.phase(phase, bench.op_cycle, cycle_title % what, n, w)
    bench.variant = dict(DEFAULT)
    if "exec" in phases:
        ok |= bench.exec_phase(n, w)
    if "seccomp" in phases:
        bench.variant = dict(DEFAULT, seccomp=True)
        ok |= bench.phase("seccomp", bench.op_cycle,
                          cycle_title % "/bin/true, Docker 20.10's default seccomp profile", n, w)
        bench.variant = dict(DEFAULT)
    if "nocgroup" in phases:
        disabled = ["--cgroup-manager=disabled"]
        ok |= bench.phase("nocgroup", bench.op_cycle,
                          cycle_title % "/bin/true, no cgroups: --cgroup-manager=disabled", n, w,
                          sits_out={"runc": "runc always creates cgroups (no such flag)"},
                          extra={"rt": disabled, "crun": disabled})
    if "seq" in phases:
        ok |= bench.phase("seq", bench.op_seq,
                          "%d cycles back to back, total ms per round" % args.seq,
                          args.seq_rounds, 0)
    if "trace" in phases:
        ok |= bench.trace(n, w)
    if "memory" in phases:
        ok |= bench.memory(args.memory_rounds)
    if "quiet" in phases:
        ok |= bench.phase("quiet", bench.op_quiet,
                          cycle_title % ("/bin/true, default bundle, each after %.1f s of quiet"
                                         % args.quiet_pause),
                          args.quiet_cycles, min(w, 1), with_floor=True)
    return ok


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("cycle.py: must run as root")
    reexec_in_private_namespace()
    make_subreaper()

    def on_signal(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = Bench(args)
    ok = False
    try:
        bench.setup()
        print_header(bench, args)
        ok = run_phases(bench, args)
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
