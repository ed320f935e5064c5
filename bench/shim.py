#!/usr/bin/env python3
"""Shim memory: containerd-shim-rt-v2 next to containerd's containerd-shim-runc-v2.

Starts a private containerd (temporary root, state and socket; our shim on its PATH),
imports a busybox image packed from the test rootfs with umoci, runs one `sleep`
container under each shim, and reports each shim's resident memory (VmRSS, and
Pss from smaps_rollup, which charges shared libraries fairly) with one running
container, in the same run; then a second container under a second rt shim, whose
private memory is what one more shim costs (the code pages are shared). Then removes
everything it made.

Needs root, containerd, ctr, umoci. Python standard library only.

    python3 bench/shim.py [--shim target/release/containerd-shim-rt-v2] [--rootfs DIR]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def kib(pid, path, key):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def shim_pid(marker):
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"-id" in cmd and marker.encode() in cmd and any(b"containerd-shim" in c for c in cmd[:1]):
            return int(p)
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser()
    ap.add_argument("--shim", default=os.path.join(repo, "target/release/containerd-shim-rt-v2"))
    ap.add_argument("--rootfs", default=os.path.join(repo, "spec-examples/rootfs"))
    a = ap.parse_args()
    for tool in ("containerd", "ctr", "umoci"):
        if not shutil.which(tool):
            sys.exit(f"shim bench: {tool} is missing (apt-get install containerd umoci)")
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
    daemon = subprocess.Popen(["containerd", "--config", f"{d}/config.toml"], env=env,
                              stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    ctr = ["ctr", "-a", sock, "-n", ns]
    ids = []
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
                       check=True, stdout=subprocess.DEVNULL)
        rows = []
        # A second rt container (its own shim): the shims share their code pages, so its
        # private memory is what one more container or pod costs.
        for name, runtime, cid in (("containerd-shim-rt-v2", "io.containerd.rt.v2", "shimbench-rt"),
                                   ("containerd-shim-runc-v2", "io.containerd.runc.v2", "shimbench-runc"),
                                   ("containerd-shim-rt-v2 (2nd)", "io.containerd.rt.v2", "shimbench-rt2")):
            subprocess.run(ctr + ["run", "-d", "--fifo-dir", f"{d}/fifo", "--runtime", runtime,
                                  "docker.io/library/busybox:latest",
                                  cid, "sleep", "1000"], check=True, stdout=subprocess.DEVNULL)
            ids.append(cid)
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
        print("(private of the 2nd rt shim: what one more shim costs while their code is shared)")
    finally:
        for cid in ids:
            subprocess.run(ctr + ["task", "kill", "-s", "SIGKILL", cid], stderr=subprocess.DEVNULL)
            for _ in range(100):
                if subprocess.run(ctr + ["task", "rm", "-f", cid], stderr=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.05)
            subprocess.run(ctr + ["container", "rm", cid], stderr=subprocess.DEVNULL)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        with open("/proc/self/mountinfo") as f:
            points = [l.split()[4] for l in f if l.split()[4].startswith(d)]
        for p in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            base = os.path.join("/sys/fs/cgroup", ctrl, ns)
            if os.path.isdir(base):
                for sub in os.listdir(base):
                    if os.path.isdir(os.path.join(base, sub)):
                        try:
                            os.rmdir(os.path.join(base, sub))
                        except OSError:
                            pass
                try:
                    os.rmdir(base)
                except OSError:
                    pass
        for root in ("/run/containerd/rt", "/run/containerd/runc"):
            try:
                os.rmdir(os.path.join(root, ns))
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
