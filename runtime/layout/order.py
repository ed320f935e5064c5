#!/usr/bin/env python3
"""Regenerate runtime/layout/symbol-order.txt: the functions rt runs on its hot paths
(create, exec, start, delete, ...), grouped by who runs them, in first-call order.

Why: rt is one static binary of ~3.2 MB of code. The kernel maps file pages 64 KiB at
a time around each page fault (fault-around), so a command's resident set is not the
code it runs but every 64 KiB window that code touches. With the linker's default
layout the ~0.9 MiB that `create` runs is scattered over nearly every window of the
binary (2.9 of 3.1 MiB of code resident). runtime/build.rs hands this list to the
linker (lld's --symbol-ordering-file), which puts these functions first, together,
in this order: rt's own process in `create` then touches 10 windows of code instead
of 46.

How: builds an unstripped rt (`make build`'s command plus -C strip=none: the same code
and symbol names), then runs a short workload of rt commands under ptrace with a
one-shot breakpoint (int3) on the entry of every function in the binary, following
forks (the container's first process and init run rt's code until they exec) and
letting go of a process when it execs another program. Each function is recorded
the first time any process enters it. The workload: make bench's bundle (create,
start, delete), the same with Docker's seccomp profile (create), and a running
container (exec, state, kill, delete). The workload runs twice: on the host's own
cgroup layout and, when /sys/fs/cgroup/unified is mounted, in a private mount
namespace without it (as `make bench` runs the runtimes).

The names are mangled symbols with their hashes, which change with the toolchain or
the dependencies (Cargo.lock, features): regenerate then, or when `make bench`'s
create peak RSS regresses. Names the linker does not find are ignored
(--no-warn-symbol-ordering): a stale list costs memory, never correctness.

    sudo python3 runtime/layout/order.py [--rt UNSTRIPPED_RT] [--rootfs DIR]

Needs root, x86_64, nm (binutils) and the busybox rootfs (`make rootfs`). Without
--rt it builds the unstripped rt itself and rebuilds the normal one afterwards.
Python standard library only.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "symbol-order.txt")
UNIFIED = "/sys/fs/cgroup/unified"
SECCOMP_PROFILE = os.path.join(REPO, "runtime", "tests", "data", "docker-20.10-default.json")
BUILD = ["cargo", "rustc", "--release", "-p", "rt", "--bin", "rt", "--",
         "-C", "target-feature=+crt-static"]

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

PTRACE_TRACEME, PTRACE_CONT, PTRACE_GETREGS, PTRACE_SETREGS = 0, 7, 12, 13
PTRACE_DETACH, PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG = 17, 0x4200, 0x4201
OPTIONS = 0x2 | 0x4 | 0x8 | 0x10  # TRACEFORK, TRACEVFORK, TRACECLONE, TRACEEXEC
EV_FORK, EV_VFORK, EV_CLONE, EV_EXEC = 1, 2, 3, 4
CLONE_VM = 0x100
SYS_CLONE = 56
# struct user_regs_struct (x86_64): indexes of the registers used here
RDI, ORIG_RAX, RIP = 14, 15, 16
WALL = 0x40000000


class Regs(ctypes.Structure):
    _fields_ = [("r", ctypes.c_ulong * 27)]


def ptrace(req, pid, addr=0, data=0):
    ctypes.set_errno(0)
    r = libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if r == -1 and ctypes.get_errno():
        e = ctypes.get_errno()
        raise OSError(e, "ptrace(%d, %d): %s" % (req, pid, os.strerror(e)))
    return r


def function_symbols(binary):
    """{address: name} of the binary's functions (one name per address)."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        m = re.match(r"^([0-9a-f]+) ([0-9a-f]+) ([tTwWi]) (\S+)$", line)
        if m and int(m.group(2), 16) > 0:
            syms.setdefault(int(m.group(1), 16), m.group(4))
    return syms


class Space:
    """One address space: the breakpoints still armed in it (address -> original byte)."""

    def __init__(self, armed, base):
        self.armed = dict(armed)
        self.base = base


class Tracer:
    """Runs commands of one binary under ptrace; records first entries of its functions."""

    def __init__(self, binary, syms):
        self.binary, self.syms = binary, syms
        self.spaces, self.mems = {}, {}
        self.live, self.awaited, self.early = set(), set(), set()
        self.first = {}  # name -> order of first entry
        self.users = {}  # name -> {(command, "main" or "child")} that entered it
        self.command, self.root = None, None

    def mem(self, pid):
        if pid not in self.mems:
            self.mems[pid] = open("/proc/%d/mem" % pid, "r+b", buffering=0)
        return self.mems[pid]

    def forget(self, pid):
        self.live.discard(pid)
        self.spaces.pop(pid, None)
        f = self.mems.pop(pid, None)
        if f:
            f.close()

    def run(self, args, command):
        """Run BINARY ARGS traced until it exits (its children stay traced)."""
        self.command = command
        pid = os.fork()
        if pid == 0:
            try:
                fd = os.open(os.devnull, os.O_RDWR)
                for i in (0, 1):
                    os.dup2(fd, i)  # an init holding a pipe would keep a reader waiting
                ptrace(PTRACE_TRACEME, 0)
                os.execv(self.binary, [self.binary] + args)
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            raise RuntimeError("%s did not start under ptrace" % self.binary)
        ptrace(PTRACE_SETOPTIONS, pid, 0, OPTIONS)
        base = self.load_base(pid)
        armed = {}
        f = self.mem(pid)
        for a in sorted(self.syms):
            f.seek(base + a)
            armed[base + a] = f.read(1)
            f.seek(base + a)
            f.write(b"\xcc")
        self.spaces[pid] = Space(armed, base)
        self.root = pid
        self.live.add(pid)
        ptrace(PTRACE_CONT, pid, 0, 0)
        while pid in self.live:
            self.step()
        return self.exit_status

    def drain(self, timeout):
        """Handle stops until no tracee is left, or `timeout` seconds pass."""
        end = time.monotonic() + timeout
        while self.live and time.monotonic() < end:
            if not self.step(block=False):
                time.sleep(0.01)

    def load_base(self, pid):
        real = os.path.realpath(self.binary)
        for line in open("/proc/%d/maps" % pid):
            p = line.split()
            if len(p) >= 6 and p[5] == real and int(p[2], 16) == 0:
                return int(p[0].split("-")[0], 16)
        raise RuntimeError("no mapping of %s in process %d" % (real, pid))

    def step(self, block=True):
        try:
            pid, status = os.waitpid(-1, WALL | (0 if block else os.WNOHANG))
        except ChildProcessError:
            self.live.clear()
            return False
        if pid == 0:
            return False
        self.handle(pid, status)
        return True

    def handle(self, pid, status):
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.exit_status = os.waitstatus_to_exitcode(status)
            self.forget(pid)
            return
        if not os.WIFSTOPPED(status):
            return
        sig, event = os.WSTOPSIG(status), status >> 16
        deliver = 0
        if event in (EV_FORK, EV_VFORK, EV_CLONE):
            self.new_child(pid, event)
        elif event == EV_EXEC:
            # Another program now: none of our breakpoints; let it go.
            self.forget(pid)
            ptrace(PTRACE_DETACH, pid, 0, 0)
            return
        elif sig == signal.SIGTRAP and event == 0:
            deliver = 0 if self.breakpoint(pid) else sig
        elif sig == signal.SIGSTOP and pid not in self.spaces:
            self.early.add(pid)  # a new child stopped before its parent's fork event
            return
        elif sig == signal.SIGSTOP and pid in self.awaited:
            self.awaited.discard(pid)  # the stop ptrace gives a new child
        else:
            deliver = sig
        try:
            ptrace(PTRACE_CONT, pid, 0, deliver)
        except OSError:
            self.forget(pid)

    def new_child(self, pid, event):
        child = ctypes.c_ulong()
        ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(child))
        child = child.value
        shared = event == EV_VFORK
        if event == EV_CLONE:
            regs = Regs()
            ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
            if regs.r[ORIG_RAX] == SYS_CLONE:
                flags = regs.r[RDI]
            else:  # clone3: flags are the first field of struct clone_args
                f = self.mem(pid)
                f.seek(regs.r[RDI])
                flags = struct.unpack("<Q", f.read(8))[0]
            shared = bool(flags & CLONE_VM)
        parent = self.spaces[pid]
        self.spaces[child] = parent if shared else Space(parent.armed, parent.base)
        self.live.add(child)
        if child in self.early:
            self.early.discard(child)
            ptrace(PTRACE_CONT, child, 0, 0)
        else:
            self.awaited.add(child)

    def breakpoint(self, pid):
        """A one-shot breakpoint of ours? Record it, put the byte back, rerun it."""
        regs = Regs()
        ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
        at = regs.r[RIP] - 1
        space = self.spaces.get(pid)
        if space is None or at not in space.armed:
            return False
        f = self.mem(pid)
        f.seek(at)
        f.write(space.armed.pop(at))
        regs.r[RIP] = at
        ptrace(PTRACE_SETREGS, pid, 0, ctypes.addressof(regs))
        name = self.syms[at - space.base]
        self.first.setdefault(name, len(self.first))
        role = "main" if pid == self.root else "child"
        self.users.setdefault(name, set()).add((self.command, role))
        return True


def config(binary, rootfs, cgroups_path, args):
    """`rt spec`'s default config (what users run: pid, network, ipc, uts and mount
    namespaces, Docker's mounts, masks and device rule), made to run `args`."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([binary, "spec", "--bundle", d], check=True)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"] = {"path": rootfs, "readonly": True}
    cfg["linux"]["cgroupsPath"] = cgroups_path
    return cfg


def workload(binary, rootfs, tmp, tag):
    """Run the commands traced; return {name: [first-call index, [[command, role], ...]]}."""
    tracer = Tracer(binary, function_symbols(binary))
    root = os.path.join(tmp, "state-" + tag)
    prefix = "layout-%d-%s" % (os.getpid(), tag)
    bundles = {}
    with open(SECCOMP_PROFILE) as f:
        seccomp = json.load(f)
    for name, args in (("true", ["/bin/true"]), ("sleep", ["/bin/sleep", "1000"]),
                       ("seccomp", ["/bin/true"])):
        b = os.path.join(tmp, "bundle-%s-%s" % (tag, name))
        os.makedirs(b)
        cfg = config(binary, rootfs, "/%s/%s" % (prefix, name), args)
        if name == "seccomp":
            cfg["linux"]["seccomp"] = seccomp
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        bundles[name] = b
    a, b, c = prefix + "-a", prefix + "-b", prefix + "-c"
    rt = ["--root", root]
    # create and exec first: make bench measures their memory. Then a create with
    # Docker's seccomp profile (what Docker and containerd hand a runtime).
    steps = [["create", "-b", bundles["true"], a],
             ["create", "-b", bundles["seccomp"], c],
             ["run", "-d", "-b", bundles["sleep"], b],
             ["exec", b, "/bin/true"],
             ["start", a],
             ["state", a],
             ["kill", b, "KILL"],
             ["delete", a],
             ["delete", "--force", b],
             ["delete", "--force", c],
             ["list"]]
    try:
        for argv in steps:
            code = tracer.run(rt + argv, argv[0])
            if code != 0:
                raise RuntimeError("rt %s exited %s" % (" ".join(argv), code))
            if argv[0] == "start":
                tracer.drain(10)  # the init's last steps, until it execs
                wait_stopped(binary, root, a)
    finally:
        for cid in (a, b, c):
            subprocess.run([binary] + rt + ["delete", "--force", cid], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        tracer.drain(5)
        for h in os.listdir("/sys/fs/cgroup"):
            d = os.path.join("/sys/fs/cgroup", h, prefix)
            if os.path.isdir(d) and not os.path.islink(os.path.join("/sys/fs/cgroup", h)):
                for leaf in bundles:
                    if os.path.isdir(os.path.join(d, leaf)):
                        os.rmdir(os.path.join(d, leaf))
                os.rmdir(d)
    return {n: [i, sorted(tracer.users[n])] for n, i in tracer.first.items()}


def group(users):
    """Where a function goes: what both create and exec run (rt itself, not its children)
    first, then create's own, then exec's, then the children's, then the other commands'.
    `make bench` measures the peak of create and exec, which is rt's own process."""
    users = {tuple(u) for u in users}
    create, exec_ = ("create", "main") in users, ("exec", "main") in users
    if create or exec_:
        return 0 if create and exec_ else 1 if create else 2
    return 3 if ("create", "child") in users or ("exec", "child") in users else 4


def wait_stopped(binary, root, cid):
    for _ in range(500):
        out = subprocess.run([binary, "--root", root, "state", cid], capture_output=True, text=True)
        if '"stopped"' in out.stdout:
            return
        time.sleep(0.01)
    raise RuntimeError("container %s did not stop" % cid)


def build_unstripped():
    """make build's rt with symbols, copied out; then the normal (stripped) one again."""
    subprocess.run(BUILD + ["-C", "strip=none"], cwd=REPO, check=True)
    fd, path = tempfile.mkstemp(prefix="rt-unstripped-")
    os.close(fd)
    shutil.copy(os.path.join(REPO, "target", "release", "rt"), path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rt", help="an unstripped rt built as make build does, plus -C strip=none")
    ap.add_argument("--rootfs", default=os.path.join(REPO, "spec-examples", "rootfs"))
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--workload-only", help=argparse.SUPPRESS)  # FILE: one run (JSON), in the namespace
    args = ap.parse_args()
    if args.workload_only:
        tmp = tempfile.mkdtemp(prefix="rt-layout-")
        try:
            found = workload(args.rt, args.rootfs, tmp, "ns")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with open(args.workload_only, "w") as f:
            json.dump(found, f)
        return 0
    if os.geteuid() != 0:
        sys.exit("order.py: must run as root")
    if platform.machine() != "x86_64":
        sys.exit("order.py: x86_64 only (the ptrace register layout; build.rs orders only there)")
    if not os.path.isdir(os.path.join(args.rootfs, "bin")):
        sys.exit("order.py: no rootfs at %s (make rootfs)" % args.rootfs)
    rootfs = os.path.abspath(args.rootfs)
    built = args.rt is None
    binary = build_unstripped() if built else os.path.abspath(args.rt)
    tmp = tempfile.mkdtemp(prefix="rt-layout-")
    try:
        found = workload(binary, rootfs, tmp, "host")
        if os.path.ismount(UNIFIED):
            more = os.path.join(tmp, "found-ns")
            script = 'umount %s && exec "$0" "$@"' % UNIFIED
            subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                            sys.executable, os.path.abspath(__file__), "--rt", binary,
                            "--rootfs", rootfs, "--workload-only", more], check=True)
            with open(more) as f:
                for name, (i, users) in json.load(f).items():
                    first, known = found.setdefault(name, [len(found) + i, []])
                    known.extend(u for u in users if u not in known)
        names = sorted(found, key=lambda n: (group(found[n][1]), found[n][0]))
        sizes = symbol_sizes(binary)
        old = read_names(args.out)
        with open(args.out, "w") as f:
            f.write("# Functions rt runs on its hot paths: the linker places them first, together, in\n"
                    "# this order (runtime/build.rs, lld's --symbol-ordering-file): what create and exec\n"
                    "# both run, create's, exec's, their children's, the other commands', each in\n"
                    "# first-call order. Generated by runtime/layout/order.py; regenerate after a\n"
                    "# toolchain or dependency change.\n")
            f.write("".join(n + "\n" for n in names))
        print("%s: %d functions, %.0f KiB of code" % (
            os.path.relpath(args.out), len(names), sum(sizes.get(n, 0) for n in names) / 1024))
        if old:
            print("the previous list had %d names; %d of them are in this build" % (
                len(old), len([n for n in old if n in sizes])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if built:
            os.unlink(binary)
            subprocess.run(BUILD, cwd=REPO, check=True)
    return 0


def symbol_sizes(binary):
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4:
            sizes.setdefault(p[3], int(p[1], 16))
    return sizes


def read_names(path):
    try:
        with open(path) as f:
            return [l.strip() for l in f if l.strip() and not l.startswith("#")]
    except FileNotFoundError:
        return []


if __name__ == "__main__":
    sys.exit(main())
