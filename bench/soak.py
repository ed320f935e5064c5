#!/usr/bin/env python3
"""Soak: does rt or its shim leak or drift over many containers? (`make soak`; not in CI.)

Phases, each checked before and after (and failing the run on growth):

1. cycles: N (default 1000) create/start/wait/delete cycles of distinct ids with rt
   directly (own --root, cgroupsPath /rt-soak-<pid>/<id>).
2. execs: N `rt exec` into one running container.
3. shim execs: N `ctr task exec` into one task under a private containerd with our shim.
4. churn: for --minutes (default 10), containers started and removed under containerd
   (`ctr run --rm`, --parallel at a time, default 2) while execs go into the long-lived task of phase 3.
   Every minute a sample: the long-lived shim's RSS and fds, containerd's RSS, mounts,
   cgroups, processes.
5. fuzz: the fuzz tests of `make test` with --fuzz-cases N (default 100000) cases for the
   parsers, N/5 for the seccomp compiler, 2N for the shim's decoding and N/200 mutated
   containers (0 skips them).

What "before/after" compares, with the slack allowed:
- the host mount table (lines of /proc/self/mountinfo): no growth;
- cgroup directories below this run's parent in every hierarchy: none left;
- container processes (found by RT_SOAK_MARK in their environment): none left,
  and in the long-lived containers exactly their init;
- open fds of the long-lived container's init and of its shim: no growth;
- state directories under --root: none left;
- the long-lived shim's RSS: growth under --rss-slack KiB (default 256: malloc arenas
  settle in the first rounds);
- MemAvailable and Slab are printed, not judged (system-wide).

Removes everything it made, also on failure or Ctrl-C. Needs root, containerd, ctr, umoci.

    python3 bench/soak.py [--rt target/release/rt] [--shim ...] [--rootfs DIR]
                          [--cycles 1000] [--execs 1000] [--minutes 10] [--fuzz-cases 100000]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import shim as shimbench  # noqa: E402  (the containerd helpers of bench/shim.py)

MARK = "RT_SOAK_MARK"
DEVNULL = subprocess.DEVNULL


class SoakFailure(Exception):
    pass


def mountinfo_lines():
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def marked_pids(mark):
    """Processes whose environment carries RT_SOAK_MARK=mark: this run's containers."""
    needle = f"{MARK}={mark}".encode()
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(p))
        except OSError:
            pass
    return pids


def cgroup_dirs(parent):
    """Directories at and below /sys/fs/cgroup/<hierarchy>/<parent>, in every hierarchy."""
    out = []
    for ctrl in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", ctrl, parent)
        if os.path.isdir(base) and not os.path.islink(base):
            out.extend(root for root, _, _ in os.walk(base))
    return out


def remove_cgroup_tree(parent):
    for d in sorted(cgroup_dirs(parent), key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass


class Soak:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="rt-soak-")
        os.chmod(self.tmp, 0o755)
        self.mark = f"soak{os.getpid()}"
        self.parent = f"rt-soak-{os.getpid()}"
        self.root = os.path.join(self.tmp, "state")
        self.rows = []  # (phase, what, before, after, verdict)
        self.failures = []
        self.rootfs = os.path.join(self.tmp, "rootfs")
        shutil.copytree(a.rootfs, self.rootfs, symlinks=True)
        self.containerd = None

    # ---- rt directly ----------------------------------------------------------

    def rt(self, *argv, check=True, timeout=60):
        # Output to files, not pipes: after `create` the container's init holds the
        # inherited stdio until it exits, so reading a pipe to EOF would wait for it.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run([self.a.rt, "--root", self.root, *argv], stdin=DEVNULL,
                                stdout=out, stderr=err, timeout=timeout).returncode
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(argv, rc, out.read(), err.read())
        if check and rc != 0:
            raise SoakFailure(f"rt {argv[0]} {argv[-1]}: exit {rc}: {r.stderr.strip()}")
        return r

    def bundle(self, name, args):
        b = os.path.join(self.tmp, name)
        os.makedirs(b, exist_ok=True)
        subprocess.run([self.a.rt, "spec", "-b", b], check=True)
        with open(os.path.join(b, "config.json")) as f:
            cfg = json.load(f)
        cfg["root"] = {"path": self.rootfs, "readonly": True}
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cfg["process"]["env"].append(f"{MARK}={self.mark}")
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        return b, cfg

    def set_cgroup(self, b, cfg, cid):
        cfg["linux"]["cgroupsPath"] = f"/{self.parent}/{cid}"
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)

    def host_snapshot(self):
        return {
            "mounts": mountinfo_lines(),
            "cgroup dirs": len(cgroup_dirs(self.parent)),
            "container processes": len(marked_pids(self.mark)),
            "state dirs": len(os.listdir(self.root)) if os.path.isdir(self.root) else 0,
            "MemAvailable KiB": meminfo("MemAvailable"),
            "Slab KiB": meminfo("Slab"),
        }

    def compare(self, phase, before, after, allow=None):
        """Record before/after; growth in a judged key (all but the memory totals) fails."""
        allow = allow or {}
        for k in before:
            b, a = before[k], after[k]
            judged = not k.endswith(" KiB") or k in allow
            slack = allow.get(k, 0)
            ok = (a is not None and b is not None and a - b <= slack) if judged else None
            verdict = "held" if ok else ("GREW" if ok is False else "(info)")
            self.rows.append((phase, k, b, a, verdict))
            if ok is False:
                self.failures.append(f"{phase}: {k} {b} -> {a}")

    def phase_cycles(self):
        n = self.a.cycles
        b, cfg = self.bundle("bundle-cycle", ["/bin/true"])
        before = self.host_snapshot()
        t0 = time.monotonic()
        for i in range(n):
            cid = f"soak-{os.getpid()}-c{i}"
            self.set_cgroup(b, cfg, cid)
            pidfile = os.path.join(self.tmp, "cycle.pid")
            self.rt("create", "-b", b, "--pid-file", pidfile, cid)
            self.rt("start", cid)
            deadline = time.monotonic() + 10
            while json.loads(self.rt("state", cid).stdout)["status"] != "stopped":
                if time.monotonic() > deadline:
                    raise SoakFailure(f"{cid} did not stop")
                time.sleep(0.002)
            self.rt("delete", cid)
            os.unlink(pidfile)
        secs = time.monotonic() - t0
        remove_cgroup_tree(self.parent)  # the (empty) parent rt made for the leaves
        after = self.host_snapshot()
        self.compare(f"{n} create/start/delete cycles ({secs:.0f} s, "
                     f"{secs * 1000 / n:.1f} ms each)", before, after)

    def phase_execs(self):
        n = self.a.execs
        b, cfg = self.bundle("bundle-exec", ["sleep", "100000"])
        cid = f"soak-{os.getpid()}-exec"
        self.set_cgroup(b, cfg, cid)
        self.rt("run", "-d", "-b", b, cid)
        try:
            init = json.loads(self.rt("state", cid).stdout)["pid"]
            before = self.host_snapshot()
            before["init fds"] = fd_count(init)
            before["container ps"] = len(self.rt("ps", cid).stdout.splitlines())
            t0 = time.monotonic()
            for i in range(n):
                r = self.rt("exec", cid, "sh", "-c", f"echo {i}")
                if r.stdout.strip() != str(i):
                    raise SoakFailure(f"exec {i}: stdout {r.stdout!r}")
            secs = time.monotonic() - t0
            after = self.host_snapshot()
            after["init fds"] = fd_count(init)
            after["container ps"] = len(self.rt("ps", cid).stdout.splitlines())
            self.compare(f"{n} rt exec into one container ({secs * 1000 / n:.1f} ms each)",
                         before, after)
        finally:
            self.rt("delete", "--force", cid, check=False)
            remove_cgroup_tree(self.parent)

    # ---- under containerd with our shim ------------------------------------------

    def start_containerd(self):
        d = os.path.join(self.tmp, "containerd")
        os.makedirs(os.path.join(d, "bin"))
        self.cd_dir = d
        self.sock = os.path.join(d, "containerd.sock")
        # The same name as the parent of phases 1-2: "cgroup dirs" then counts the cgroups
        # containerd makes for its tasks (/sys/fs/cgroup/<ctrl>/<namespace>/<id>).
        self.ns = self.parent
        os.symlink(os.path.abspath(self.a.shim), os.path.join(d, "bin/containerd-shim-rt-v2"))
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n')
        rt_dir = os.path.dirname(os.path.abspath(self.a.rt))
        env = dict(os.environ, PATH=f"{d}/bin:{rt_dir}:{os.environ['PATH']}")
        log = open(os.path.join(d, "containerd.log"), "w")
        self.containerd = subprocess.Popen(["containerd", "--config", f"{d}/config.toml"],
                                           env=env, stdout=log, stderr=log, stdin=DEVNULL,
                                           start_new_session=True)
        self.ctr = ["ctr", "-a", self.sock, "-n", self.ns]
        for _ in range(200):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)
        img = os.path.join(d, "image")
        sh = (f"set -e; umoci init --layout {img}; umoci new --image {img}:latest; "
              f"umoci unpack --rootless --image {img}:latest {d}/b >/dev/null; "
              f"cp -a {self.rootfs}/. {d}/b/rootfs/; "
              f"umoci repack --image {img}:latest {d}/b; tar -C {img} -cf {img}.tar .")
        subprocess.run(["sh", "-c", sh], check=True)
        subprocess.run(self.ctr + ["image", "import", "--base-name", "docker.io/library/busybox",
                                   f"{img}.tar"], check=True, stdout=DEVNULL)

    def ctr_run(self, *argv, check=True, timeout=60):
        r = subprocess.run(self.ctr + list(argv), stdin=DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise SoakFailure(f"ctr {' '.join(argv[:2])}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def shim_snapshot(self, shim):
        snap = self.host_snapshot()
        states = os.path.join("/run/containerd/rt", self.ns)
        snap["shim's rt state dirs"] = len(os.listdir(states)) if os.path.isdir(states) else 0
        snap["shim fds"] = fd_count(shim)
        snap["shim RSS KiB"] = shimbench.kib(shim, "status", "VmRSS")
        snap["containerd RSS KiB"] = shimbench.kib(self.containerd.pid, "status", "VmRSS")
        return snap

    def run_long_task(self):
        cid = "soak-long"
        self.ctr_run("run", "-d", "--runtime", "io.containerd.rt.v2", "--env",
                     f"{MARK}={self.mark}", "--fifo-dir", os.path.join(self.tmp, "fifo"),
                     shimbench.IMAGE, cid, "sleep", "1000000")
        time.sleep(1)
        shim = shimbench.shim_pid(cid)
        if shim is None:
            raise SoakFailure("no shim process found for the long-lived task")
        return cid, shim

    def ctr_exec(self, cid, i):
        r = self.ctr_run("task", "exec", "--exec-id", f"e{i}", cid, "sh", "-c", f"echo {i}")
        if r.stdout.strip() != str(i):
            raise SoakFailure(f"ctr exec {i}: stdout {r.stdout!r}")

    def phase_shim_execs(self, cid, shim):
        n = self.a.execs
        # Warm-up: the first execs grow the shim's allocator arenas to their working size.
        for i in range(20):
            self.ctr_exec(cid, f"w{i}")
        before = self.shim_snapshot(shim)
        t0 = time.monotonic()
        for i in range(n):
            self.ctr_exec(cid, i)
        secs = time.monotonic() - t0
        after = self.shim_snapshot(shim)
        self.compare(f"{n} ctr task exec into one task ({secs * 1000 / n:.1f} ms each)",
                     before, after, allow={"shim RSS KiB": self.a.rss_slack})

    def phase_churn(self, cid, shim):
        minutes = self.a.minutes
        if minutes <= 0:
            return
        before = self.shim_snapshot(shim)
        before["task processes"] = len(marked_pids(self.mark))
        end = time.monotonic() + minutes * 60
        counter = [0, 0]  # containers, execs
        samples = []

        def one(k):
            c = f"churn-{k}"
            self.ctr_run("run", "--rm", "--runtime", "io.containerd.rt.v2", "--env",
                         f"{MARK}={self.mark}", "--fifo-dir", os.path.join(self.tmp, "fifo"),
                         shimbench.IMAGE, c, "sh", "-c", "echo hi")

        next_sample = time.monotonic()
        par = self.a.parallel
        with ThreadPoolExecutor(max_workers=par) as pool:
            while time.monotonic() < end:
                list(pool.map(one, range(counter[0], counter[0] + par)))
                counter[0] += par
                self.ctr_exec(cid, f"c{counter[1]}")
                counter[1] += 1
                if time.monotonic() >= next_sample:
                    s = self.shim_snapshot(shim)
                    samples.append((round((time.monotonic() - end) / 60 + minutes, 1),
                                    s["shim RSS KiB"], s["shim fds"], s["containerd RSS KiB"],
                                    s["mounts"], s["cgroup dirs"]))
                    next_sample += 60
        time.sleep(1)
        after = self.shim_snapshot(shim)
        after["task processes"] = len(marked_pids(self.mark))
        self.compare(f"churn {minutes} min: {counter[0]} containers run --rm, {counter[1]} execs",
                     before, after, allow={"shim RSS KiB": self.a.rss_slack})
        print("\nchurn samples (minute, shim RSS KiB, shim fds, containerd RSS KiB, mounts, "
              "cgroup dirs):")
        for s in samples:
            print("  ", *s)

    def stop_containerd(self):
        if self.containerd is None:
            return
        if self.containerd.poll() is None:
            shimbench.remove_all(self.ctr, 4)
        self.containerd.send_signal(signal.SIGTERM)
        try:
            self.containerd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.containerd.kill()
            self.containerd.wait()
        shimbench.cleanup_leftovers(self.ns)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            base = os.path.join("/sys/fs/cgroup", ctrl, self.ns)
            if os.path.isdir(base) and not os.path.islink(base):
                for root, _, _ in sorted(os.walk(base), key=lambda w: len(w[0]), reverse=True):
                    try:
                        os.rmdir(root)
                    except OSError:
                        pass
        shutil.rmtree(os.path.join("/run/containerd/rt", self.ns), ignore_errors=True)
        self.containerd = None

    def phase_fuzz(self):
        """The fuzz tests of `make test`, with many more cases (a new seed each run, printed
        by the tests; RT_FUZZ_SEED=S replays one)."""
        n = self.a.fuzz_cases
        if n <= 0:
            return
        env = dict(os.environ, RT_BIN=self.a.rt, RT_TEST_ROOTFS=self.a.rootfs)
        runs = [
            ("config, mounts, state, process, hooks", n,
             ["-p", "rt", "--lib", "fuzz::", "--", "--skip", "seccomp"]),
            ("seccomp compiler", max(1, n // 5), ["-p", "rt", "--lib", "seccomp::tests::fuzz"]),
            ("shim requests and options", n * 2, ["-p", "containerd-shim-rt-v2", "fuzz_tests"]),
            ("mutated containers", max(1, n // 200),
             ["-p", "integration", "--test", "fuzz_containers", "--", "--test-threads=1"]),
        ]
        for what, cases, args in runs:
            run_env = dict(env, RT_FUZZ_CASES=str(cases), RT_FUZZ_CONTAINERS=str(cases))
            t0 = time.monotonic()
            r = subprocess.run(["cargo", "test", "--release", *args], cwd=REPO, env=run_env)
            secs = time.monotonic() - t0
            verdict = "held" if r.returncode == 0 else "FAILED"
            self.rows.append((f"fuzz: {what}", f"{cases} cases ({secs:.0f} s): exit", "",
                              r.returncode, verdict))
            if r.returncode != 0:
                self.failures.append(f"fuzz {what}: cargo test exited {r.returncode}")

    # ---- report and cleanup -------------------------------------------------------

    def report(self):
        print("\nphase / what                                        before       after  verdict")
        last = None
        for phase, what, b, a, v in self.rows:
            if phase != last:
                print(phase)
                last = phase
            print(f"  {what:44} {b!s:>10} {a!s:>11}  {v}")

    def cleanup(self):
        for cid in os.listdir(self.root) if os.path.isdir(self.root) else []:
            self.rt("delete", "--force", cid, check=False)
        try:
            self.stop_containerd()
        except Exception as e:  # cleanup goes on
            print(f"soak: stopping containerd: {e}", file=sys.stderr)
        for pid in marked_pids(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        remove_cgroup_tree(self.parent)
        with open("/proc/self/mountinfo") as f:
            points = [l.split()[4] for l in f if l.split()[4].startswith(self.tmp)]
        for p in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", p], stderr=DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rt", default=os.path.join(REPO, "target/release/rt"))
    ap.add_argument("--shim", default=os.path.join(REPO, "target/release/containerd-shim-rt-v2"))
    ap.add_argument("--rootfs", default=os.path.join(REPO, "spec-examples/rootfs"))
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--execs", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--fuzz-cases", type=int, default=100000)
    ap.add_argument("--parallel", type=int, default=2, help="churn: containers at a time")
    ap.add_argument("--rss-slack", type=int, default=256, metavar="KIB")
    a = ap.parse_args()
    for tool in ("containerd", "ctr", "umoci"):
        if not shutil.which(tool):
            sys.exit(f"soak: {tool} is missing (make deps)")

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    s = Soak(a)
    started = time.monotonic()
    try:
        s.phase_cycles()
        s.phase_execs()
        s.start_containerd()
        cid, shim = s.run_long_task()
        s.phase_shim_execs(cid, shim)
        s.phase_churn(cid, shim)
        s.stop_containerd()
        s.phase_fuzz()
    except (SoakFailure, subprocess.TimeoutExpired, subprocess.CalledProcessError) as e:
        s.failures.append(str(e))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        s.cleanup()
    s.report()
    print(f"\nsoak: {(time.monotonic() - started) / 60:.1f} min in all")
    if s.failures:
        print("soak: FAILED:\n  " + "\n  ".join(s.failures))
        sys.exit(1)
    print("soak: everything held")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("soak: interrupted (cleaned up)")
