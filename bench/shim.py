#!/usr/bin/env python3
"""Shim memory: containerd-shim-rt-v2 next to containerd's containerd-shim-runc-v2.

Starts a private containerd (temporary root, state and socket; our shim on its PATH),
imports a busybox image packed from the test rootfs with umoci, runs one `sleep`
container under each shim, and reports each shim's resident memory (VmRSS, and
Pss from smaps_rollup, which charges shared libraries fairly) with one running
container, in the same run; then a second container under a second rt shim, whose
private memory is what one more shim costs (the code pages are shared).

Then "N containers running at once under containerd" (N = --many, default 200; 0
skips it), against the same containerd, for io.containerd.rt.v2 (our shim calling rt)
and then io.containerd.runc.v2 (containerd's Go shim calling runc): N `ctr run -d ...
sleep 1000` with --parallel (default 8) ctr processes at a time; the wall time from
the first start until `ctr task ls` shows all N RUNNING (ms/ctr is that over N: a
throughput at that parallelism, not one start's latency, shown apart as p50/max); then,
while all N run, the sum of VmRSS and of Pss over the N shim processes (ctr gives each
container its own shim) and the drop in MemAvailable since before the first start
(shims, the containers themselves, their mounts/cgroups/namespaces and kernel stacks,
containerd's own growth; system-wide, so other load on the machine shows up in it, and
the runtime measured first, rt, also pays one-off growth of kernel caches), with
per-container averages and rt/runc ratios. Any failed start or task not RUNNING stops
the run with ctr's errors and containerd's log lines about it. The N containers of one
runtime are torn down before the other's are started, so the measurements do not overlap.

Removes everything it made, also on failure, Ctrl-C or SIGTERM: every container in
its private containerd namespace (and, should containerd be gone, SIGKILLs by PID the
processes left in that namespace's cgroups and its shims), the cgroups under
/sys/fs/cgroup/<ctrl>/<namespace>, /run/containerd/{rt,runc}/<namespace>, its mounts
and its temporary directory.

At the end, issue 19's two goals for our shim, each with its value and `met` or `MISSED`:
RSS of the shim with one running container under 2 MiB, and the N-container start time
at most half the runc shim's (rt/runc <= 0.5). The start time moves with other load on
the machine: both runtimes are measured in the same run, one after the other.

Needs root, containerd, ctr, umoci. Python standard library only.

    python3 bench/shim.py [--shim target/release/containerd-shim-rt-v2] [--rootfs DIR]
                          [--many 200] [--parallel 8]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

IMAGE = "docker.io/library/busybox:latest"
DEVNULL = subprocess.DEVNULL
# Issue 19's goals for containerd-shim-rt-v2.
GOAL_RSS_MIB = 2.0
GOAL_START_RATIO = 0.5


def kib(pid, path, key):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cmdlines():
    """(pid, argv) of every process, read from /proc."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        yield int(p), cmd[:-1] if cmd and cmd[-1] == b"" else cmd


def shim_pid(marker):
    for pid, cmd in cmdlines():
        if b"-id" in cmd and marker.encode() in cmd and any(b"containerd-shim" in c for c in cmd[:1]):
            return pid
    return None


def flag(cmd, name):
    """The value after `name` in argv (the shims take Go-style `-namespace NS -id ID`)."""
    name = name.encode()
    for i, c in enumerate(cmd[:-1]):
        if c == name:
            return cmd[i + 1].decode(errors="replace")
    return None


def shim_pids(ns, binary=None, id_prefix=""):
    """The long-running shims in namespace `ns` (both shims are started by containerd as
    `<shim> -namespace NS -id ID -address ...`; the short-lived `start`/`delete`
    invocations end with that verb and are left out)."""
    pids = []
    for pid, cmd in cmdlines():
        if not cmd or b"containerd-shim" not in os.path.basename(cmd[0]):
            continue
        if binary and os.path.basename(cmd[0]) != binary.encode():
            continue
        if flag(cmd, "-namespace") != ns or not (flag(cmd, "-id") or "").startswith(id_prefix):
            continue
        if cmd[-1] in (b"start", b"delete"):
            continue
        pids.append(pid)
    return pids


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def pmap(fn, items, parallel):
    """fn over items, at most `parallel` at a time, results in order. On an exception in
    the caller (Ctrl-C) the calls still queued are cancelled, so no new container is
    started after it; the running ones are waited for (their ctr got the SIGINT too)."""
    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ctr_ids(ctr, what):
    """Ids listed by `ctr <what> ls -q` (empty if containerd does not answer)."""
    r = subprocess.run(ctr + [what, "ls", "-q"], stdout=subprocess.PIPE, stderr=DEVNULL, text=True)
    return [l.strip() for l in r.stdout.splitlines() if l.strip()] if r.returncode == 0 else []


def task_status(ctr):
    """{container id: status} from `ctr task ls` (columns TASK PID STATUS)."""
    r = subprocess.run(ctr + ["task", "ls"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, check=True)
    out = {}
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 3:
            out[f[0]] = f[2]
    return out


def remove(ctr, cid, tasks):
    """Kill and delete the task (if there is one: retrying `task rm` on a task that does
    not exist would only wait), then the container."""
    if cid in tasks:
        subprocess.run(ctr + ["task", "kill", "-s", "SIGKILL", cid], stdout=DEVNULL, stderr=DEVNULL)
        for _ in range(100):
            if subprocess.run(ctr + ["task", "rm", "-f", cid], stderr=DEVNULL,
                              stdout=DEVNULL).returncode == 0:
                break
            time.sleep(0.05)
    subprocess.run(ctr + ["container", "rm", cid], stdout=DEVNULL, stderr=DEVNULL)


def remove_all(ctr, parallel, prefix=""):
    """Remove every container of the namespace whose id starts with `prefix` (the
    namespace is private to this run, so all of them are ours)."""
    tasks = set(ctr_ids(ctr, "task"))
    cids = [c for c in ctr_ids(ctr, "container") if c.startswith(prefix)]
    pmap(lambda cid: remove(ctr, cid, tasks), cids, parallel)
    return cids


def many(ctr, d, ns, runtime, binary, prefix, n, parallel):
    """Start n containers under `runtime`, measure, tear them down; returns a row."""
    cids = [f"{prefix}{i}" for i in range(n)]
    fifo = os.path.join(d, "fifo")

    def start(cid):
        t = time.monotonic()
        r = subprocess.run(ctr + ["run", "-d", "--fifo-dir", fifo, "--runtime", runtime,
                                  IMAGE, cid, "sleep", "1000"],
                           stdout=DEVNULL, stderr=subprocess.PIPE, text=True)
        return cid, r.returncode, r.stderr.strip(), time.monotonic() - t

    avail0 = mem_available()
    t0 = time.monotonic()
    results = pmap(start, cids, parallel)
    failed = [r for r in results if r[1] != 0]
    # `ctr run -d` returns once the task is started, so all should be RUNNING already;
    # the short poll only covers a status that lags behind. Timed until verified.
    deadline = time.monotonic() + 30
    while True:
        status = task_status(ctr)
        running = [c for c in cids if status.get(c) == "RUNNING"]
        if len(running) == n or failed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    if len(running) != n:
        report_failure(d, runtime, n, failed, status, cids)
        raise SystemExit(f"shim bench: {runtime}: only {len(running)} of {n} tasks RUNNING")
    # Let the shims finish their start-up work (their first stats, event publishing)
    # before reading their memory.
    time.sleep(1)
    pids = shim_pids(ns, binary, prefix)
    rss = sum(kib(p, "status", "VmRSS") or 0 for p in pids)
    pss = sum(kib(p, "smaps_rollup", "Pss") or 0 for p in pids)
    drop = avail0 - mem_available()
    latency = sorted(r[3] for r in results)

    # Tear down before the other runtime starts, and wait for the shims to exit, so
    # neither its time nor its MemAvailable baseline carries this runtime's leftovers.
    remove_all(ctr, parallel, prefix)
    deadline = time.monotonic() + 30
    while shim_pids(ns, binary, prefix) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = set(ctr_ids(ctr, "container")) & set(cids)
    if left or shim_pids(ns, binary, prefix):
        raise SystemExit(f"shim bench: {runtime}: teardown left {len(left)} containers, "
                         f"shims {shim_pids(ns, binary, prefix)}")
    return dict(runtime=runtime, n=n, secs=elapsed, shims=len(pids), rss=rss, pss=pss,
                drop=drop, p50=latency[len(latency) // 2], max=latency[-1])


def report_failure(d, runtime, n, failed, status, cids):
    """What went wrong, loudly: ctr's error for each failed start, the tasks that are not
    RUNNING, and containerd's log lines (which carry the shim's log) about the first few."""
    print(f"\n*** {runtime}: {len(failed)} of {n} `ctr run` failed", file=sys.stderr)
    for cid, rc, err, _ in failed[:10]:
        print(f"  {cid}: exit {rc}: {err}", file=sys.stderr)
    bad = [c for c in cids if status.get(c) not in ("RUNNING", None)]
    if bad:
        print(f"  not RUNNING: " + ", ".join(f"{c}={status[c]}" for c in bad[:20]), file=sys.stderr)
    show = [f[0] for f in failed[:3]] + bad[:3]
    try:
        with open(os.path.join(d, "containerd.log")) as f:
            lines = f.readlines()
    except OSError:
        lines = []
    for cid in show:
        mine = [l.rstrip() for l in lines if cid in l]
        print(f"  containerd.log about {cid} ({len(mine)} lines, last 20):", file=sys.stderr)
        for l in mine[-20:]:
            print("    " + l, file=sys.stderr)


def print_many(rows, parallel):
    mib = 1024.0
    print(f"\n{rows[0]['n']} containers running at once under containerd "
          f"(ctr run -d, {parallel} at a time; memory summed over all shims while all run)")
    print("runtime                   N  start s  ms/ctr  shims  RSS MiB  PSS MiB  MemAvail drop MiB")
    for r in rows:
        print(f"{r['runtime']:22} {r['n']:4} {r['secs']:8.2f} {r['secs'] * 1000 / r['n']:7.1f} "
              f"{r['shims']:6} {r['rss'] / mib:8.1f} {r['pss'] / mib:8.1f} {r['drop'] / mib:18.1f}")
    print("per container                            RSS MiB  PSS MiB  MemAvail drop MiB   ctr run p50/max s")
    for r in rows:
        n = r["n"]
        print(f"{r['runtime']:40} {r['rss'] / mib / n:8.2f} {r['pss'] / mib / n:8.2f} "
              f"{r['drop'] / mib / n:18.2f}   {r['p50']:6.2f} / {r['max']:.2f}")
    by = {r["runtime"]: r for r in rows}
    rt, runc = by.get("io.containerd.rt.v2"), by.get("io.containerd.runc.v2")
    ratio = None
    if rt and runc and runc["secs"] and runc["pss"]:
        ratio = rt["secs"] / runc["secs"]
        print(f"ratio rt/runc: start time {ratio:.2f}, "
              f"shims PSS {rt['pss'] / runc['pss']:.2f}")
    # Seen with N=50: the same runtime's drop was ~1.5-1.9 MiB/container when measured
    # first and ~1.0 when second; the shims' PSS does not depend on the order.
    print("(MemAvailable is system-wide: it moves with other load, and the runtime measured "
          "first also pays one-off growth of kernel caches and containerd)")
    for r in rows:
        if r["shims"] != r["n"]:
            print(f"warning: {r['runtime']}: {r['shims']} shim processes for {r['n']} containers")
    return ratio


def print_goals(rss_kib, start_ratio, n):
    """Issue 19's goals: the value, the bound, and met or MISSED."""
    def verdict(ok):
        return "met" if ok else "MISSED"
    print("\ngoals (issue 19)")
    if rss_kib:
        mib = rss_kib / 1024.0
        print(f"  containerd-shim-rt-v2 RSS, one running container: {mib:.2f} MiB "
              f"(< {GOAL_RSS_MIB:g} MiB): {verdict(mib < GOAL_RSS_MIB)}")
    else:
        print("  containerd-shim-rt-v2 RSS, one running container: not measured: MISSED")
    if start_ratio is None:
        print(f"  {n} containers at once, start time rt/runc: not measured (--many 0)")
    else:
        print(f"  {n} containers at once, start time rt/runc: {start_ratio:.2f} "
              f"(<= {GOAL_START_RATIO:g}): {verdict(start_ratio <= GOAL_START_RATIO)}")


def cleanup_leftovers(ns):
    """Last resort when containerd could not remove everything (it died, or a task would
    not go): SIGKILL, by PID, the processes in this run's cgroups and this namespace's
    shims, all started by this run. Returns how many there were."""
    victims = set()
    for ctrl in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", ctrl, ns)
        for root, _, _ in os.walk(base):
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    victims.update(int(l) for l in f if l.strip())
            except (OSError, ValueError):
                pass
    victims.update(shim_pids(ns))
    victims.discard(os.getpid())
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in victims):
        time.sleep(0.05)
    return len(victims)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser()
    ap.add_argument("--shim", default=os.path.join(repo, "target/release/containerd-shim-rt-v2"))
    ap.add_argument("--rootfs", default=os.path.join(repo, "spec-examples/rootfs"))
    ap.add_argument("--many", type=int, default=200, metavar="N",
                    help="containers at once per runtime in the second section (0: skip it)")
    ap.add_argument("--parallel", type=int, default=8,
                    help="ctr run/rm processes at a time in that section")
    a = ap.parse_args()
    for tool in ("containerd", "ctr", "umoci"):
        if not shutil.which(tool):
            sys.exit(f"shim bench: {tool} is missing (apt-get install containerd umoci)")

    # SIGTERM unwinds like Ctrl-C, through the `finally` below.
    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    d = tempfile.mkdtemp(prefix="rt-bench-shim-")
    sock = os.path.join(d, "containerd.sock")
    ns = f"rt-bench-{os.getpid()}"
    os.makedirs(os.path.join(d, "bin"))
    os.symlink(os.path.abspath(a.shim), os.path.join(d, "bin/containerd-shim-rt-v2"))
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write(f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
    env = dict(os.environ, PATH=f"{d}/bin:{os.path.dirname(os.path.abspath(a.shim))}:{os.environ['PATH']}")
    log = open(os.path.join(d, "containerd.log"), "w")
    # Its own session: Ctrl-C on the terminal must not stop containerd (nor the shims it
    # starts) before the `finally` has used it to remove the containers.
    daemon = subprocess.Popen(["containerd", "--config", f"{d}/config.toml"], env=env,
                              stdout=log, stderr=log, stdin=DEVNULL, start_new_session=True)
    ctr = ["ctr", "-a", sock, "-n", ns]
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        img = os.path.join(d, "image")
        sh = (f"set -e; umoci init --layout {img}; umoci new --image {img}:latest; "
              f"umoci unpack --rootless --image {img}:latest {d}/b >/dev/null; cp -a {a.rootfs}/. {d}/b/rootfs/; "
              f"umoci repack --image {img}:latest {d}/b; tar -C {img} -cf {img}.tar .")
        subprocess.run(["sh", "-c", sh], check=True)
        subprocess.run(ctr + ["image", "import", "--base-name", "docker.io/library/busybox", f"{img}.tar"],
                       check=True, stdout=DEVNULL)
        rows = []
        # A second rt container (its own shim): the shims share their code pages, so its
        # private memory is what one more container or pod costs.
        for name, runtime, cid in (("containerd-shim-rt-v2", "io.containerd.rt.v2", "shimbench-rt"),
                                   ("containerd-shim-runc-v2", "io.containerd.runc.v2", "shimbench-runc"),
                                   ("containerd-shim-rt-v2 (2nd)", "io.containerd.rt.v2", "shimbench-rt2")):
            subprocess.run(ctr + ["run", "-d", "--fifo-dir", f"{d}/fifo", "--runtime", runtime,
                                  IMAGE, cid, "sleep", "1000"], check=True, stdout=DEVNULL)
            time.sleep(0.5)
            pid = shim_pid(cid)
            priv = (kib(pid, "smaps_rollup", "Private_Dirty") or 0) + (kib(pid, "smaps_rollup", "Private_Clean") or 0)
            rows.append((name, kib(pid, "status", "VmRSS"), kib(pid, "smaps_rollup", "Pss"), priv,
                         kib(pid, "status", "Threads")))
        print("shim (one running container)      RSS        PSS    private  threads")
        for name, rss, pss, priv, threads in rows:
            print(f"{name:30} {rss / 1024:6.2f} MiB {pss / 1024:6.2f} MiB {priv / 1024:6.2f} MiB {threads:4}")
        if rows[0][1] and rows[1][1]:
            print(f"ratio rt/runc shim (RSS): {rows[0][1] / rows[1][1]:.2f}")
        print("(private of the 2nd rt shim: what one more shim costs while their code is shared)",
              flush=True)

        start_ratio = None
        if a.many > 0:
            # The three containers above go first: they would share the CPUs and count in
            # MemAvailable.
            remove_all(ctr, a.parallel, "shimbench-")
            many_rows = [many(ctr, d, ns, runtime, binary, prefix, a.many, a.parallel)
                         for runtime, binary, prefix in
                         (("io.containerd.rt.v2", "containerd-shim-rt-v2", "many-rt-"),
                          ("io.containerd.runc.v2", "containerd-shim-runc-v2", "many-runc-"))]
            start_ratio = print_many(many_rows, a.parallel)
        print_goals(rows[0][1], start_ratio, a.many)
    finally:
        # Cleanup must run to the end: a second Ctrl-C would leave containers behind
        # (SIGQUIT still stops it; the ctr children inherit the ignore).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if daemon.poll() is None:
            remove_all(ctr, a.parallel)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        killed = cleanup_leftovers(ns)
        if killed:
            print(f"shim bench: cleanup killed {killed} leftover processes of namespace {ns}",
                  file=sys.stderr)
        with open("/proc/self/mountinfo") as f:
            points = [l.split()[4] for l in f if l.split()[4].startswith(d)]
        for p in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", p], stderr=DEVNULL)
        # containerd's tasks live in /sys/fs/cgroup/<ctrl>/<namespace>/<container-id>;
        # remove bottom-up whatever is below this run's namespace (and nothing else).
        for ctrl in os.listdir("/sys/fs/cgroup"):
            base = os.path.join("/sys/fs/cgroup", ctrl, ns)
            if not os.path.isdir(base) or os.path.islink(base):
                continue
            for root, _, _ in sorted(os.walk(base), key=lambda w: len(w[0]), reverse=True):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
        # The runtimes' state roots for this namespace: empty unless a container was left.
        for root in ("/run/containerd/rt", "/run/containerd/runc"):
            shutil.rmtree(os.path.join(root, ns), ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("shim bench: interrupted (cleaned up)")
