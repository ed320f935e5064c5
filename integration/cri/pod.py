#!/usr/bin/env python3
"""The Kubernetes path, as the kubelet walks it: a CRI call sequence against containerd's
CRI socket with a RuntimeClass handler, checked step by step.

    pod.py --socket SOCK --handler rt --cgroup-parent /NAME --log-dir DIR

RunPodSandbox (the node's network: no CNI), CreateContainer, StartContainer,
ContainerStatus until running, ExecSync, the container's log, StopPodSandbox,
RemovePodSandbox, then nothing listed. Prints "ok   - ..." / "FAIL - ..." lines, one
`shims-while-running N` line for the caller to compare, and exits non-zero on a failure.

Needs grpcio (make deps puts it in .cache/cri-venv). The CRI messages are few, so they
are encoded here field by field (numbers from k8s.io/cri-api pkg/apis/runtime/v1/api.proto)
and sent as raw bytes: no generated code.
"""

import argparse
import sys
import time

import grpc

# ---------------------------------------------------------------- protobuf, by hand --


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """One field: int/bool as a varint, str/bytes as length-delimited, list repeated,
    dict a map<string,string>; None and zero values are left out (proto3)."""
    if value is None or value == 0 or value == "" or value == b"" or value is False:
        return b""
    if isinstance(value, bool) or isinstance(value, int):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return varint(num << 3 | 2) + varint(len(value)) + bytes(value)
    if isinstance(value, list):
        return b"".join(field(num, v) for v in value)
    if isinstance(value, dict):
        return b"".join(field(num, field(1, k) + field(2, v)) for k, v in value.items())
    raise TypeError(value)


def msg(*fields):
    return b"".join(field(n, v) for n, v in fields)


def decode(data):
    """{field number: [values]}: varints as ints, length-delimited as bytes."""
    out, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = read_varint(data, i)
        elif wire == 2:
            n, i = read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wire == 1:
            v, i = data[i:i + 8], i + 8
        elif wire == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(num, []).append(v)
    return out


def read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def one(d, num, default=None):
    return d.get(num, [default])[0]


# ------------------------------------------------------------------------ the pod --

NODE = 2  # NamespaceMode
RUNNING, EXITED = 1, 2  # ContainerState

passed = failed = 0


def check(desc, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   - {desc}", flush=True)
    else:
        failed += 1
        print(f"FAIL - {desc} {detail}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--handler", required=True)
    ap.add_argument("--cgroup-parent", required=True)
    ap.add_argument("--log-dir", required=True)
    ap.add_argument("--image", default="docker.io/library/busybox:latest")
    a = ap.parse_args()

    channel = grpc.insecure_channel(f"unix://{a.socket}")
    grpc.channel_ready_future(channel).result(timeout=30)

    def call(method, request):
        rpc = channel.unary_unary(f"/runtime.v1.RuntimeService/{method}")
        return decode(rpc(request, timeout=60))

    # The CRI plugin finishes its start after containerd's socket answers: retry, as the
    # kubelet does, until it serves.
    version, deadline = None, time.monotonic() + 30
    while version is None:
        try:
            version = call("Version", msg((1, "v1")))
        except grpc.RpcError as e:
            if time.monotonic() > deadline:
                raise
            print(f"# CRI not ready yet: {e.code()}", flush=True)
            time.sleep(0.2)
    check("Version answers", one(version, 2) == b"containerd", version)

    # PodSandboxConfig: metadata, log directory, the node's network namespace, our cgroup
    # parent (LinuxPodSandboxConfig.cgroup_parent, security_context.namespace_options).
    namespace_options = msg((1, NODE))
    security_context = msg((1, namespace_options))
    linux = msg((1, a.cgroup_parent), (2, security_context))
    metadata = msg((1, "rt-pod"), (2, "uid-rt-pod"), (3, "default"))
    sandbox_config = msg((1, metadata), (3, a.log_dir), (8, linux))
    pod = call("RunPodSandbox", msg((1, sandbox_config), (2, a.handler)))
    pod_id = one(pod, 1, b"").decode()
    check("RunPodSandbox with handler " + a.handler, len(pod_id) == 64, pod)

    status = decode(one(call("PodSandboxStatus", msg((1, pod_id))), 1, b""))
    check("the sandbox is ready", one(status, 3, 0) == 0, status)
    check("the sandbox runs on the handler", one(status, 9, b"").decode() == a.handler, status)

    container_config = msg(
        (1, msg((1, "app"))),
        (2, msg((1, a.image))),
        (3, ["sh", "-c", "echo hello-from-rt; exec sleep 1000"]),
        (6, [msg((1, "GREETING"), (2, "hi"))]),
        (11, "app.log"),
    )
    created = call("CreateContainer", msg((1, pod_id), (2, container_config), (3, sandbox_config)))
    cid = one(created, 1, b"").decode()
    check("CreateContainer", len(cid) == 64, created)
    call("StartContainer", msg((1, cid)))
    check("StartContainer", True)

    state = None
    for _ in range(100):
        st = decode(one(call("ContainerStatus", msg((1, cid))), 1, b""))
        state = one(st, 3, 0)
        if state == RUNNING:
            break
        time.sleep(0.1)
    check("ContainerStatus says running", state == RUNNING, st)

    ex = call("ExecSync", msg((1, cid), (2, ["sh", "-c", "echo $GREETING; exit 7"]), (3, 10)))
    check("ExecSync output", one(ex, 1, b"") == b"hi\n", ex)
    check("ExecSync exit code", one(ex, 3, 0) == 7, ex)

    log = ""
    for _ in range(50):
        try:
            log = open(f"{a.log_dir}/app.log").read()
        except OSError:
            log = ""
        if "hello-from-rt" in log:
            break
        time.sleep(0.1)
    check("the container's output is in its CRI log", " stdout F hello-from-rt" in log, repr(log))

    # The caller counts the shims now: the sandbox and the app share one.
    print("shims-while-running", flush=True)
    sys.stdin.readline()

    call("StopPodSandbox", msg((1, pod_id)))
    st = decode(one(call("ContainerStatus", msg((1, cid))), 1, b""))
    check("StopPodSandbox stopped the container", one(st, 3, 0) == EXITED, st)
    call("RemovePodSandbox", msg((1, pod_id)))
    pods = call("ListPodSandbox", b"")
    containers = call("ListContainers", b"")
    check("RemovePodSandbox left no pod or container", not pods and not containers,
          (pods, containers))

    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
