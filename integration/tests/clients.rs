//! Real clients driving `rt` as they drive runc. Each test starts its own daemon
//! (integration::containerd: temporary root, state, sockets, namespace) and leaves nothing
//! behind.
//!
//! - containerd's own Go shim, `containerd-shim-runc-v2`, with rt as its runc binary
//!   (`ctr --runc-binary`, the runc options' BinaryName): every runc command that shim uses
//!   (create, start, state, exec --process, ps --format json, pause, resume, kill, delete)
//!   is rt's.
//! - Docker: dockerd 20.10 with `--add-runtime rt=…` (integration::docker), `docker run
//!   --runtime rt` with the flags users pass, exec, top, pause, stats, update, stop, restart.
//! - podman with conmon (integration::podman), `--runtime /path/to/rt`.

use integration::containerd::*;
use integration::*;

#[test]
fn containerd_runc_shim_drives_rt() {
    let c = Containerd::start("runcshim");
    let rt = rt_bin().to_string_lossy().into_owned();
    let root = c.dir.join("rt-root");
    let run = |args: &[&str]| c.run_with_runc_options(&rt, &root, args);

    run(&[
        "--rm",
        IMAGE,
        "g1",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])
    .expect_run(3, "out\n", "err\n");
    run(&["-d", IMAGE, "g2", "sleep", "1000"]).ok();
    // The shim ran rt with Root/<namespace>: rt's own state says so.
    c.assert_runtime_state_running(&rt, &root, "g2");

    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "g2",
        "sh",
        "-c",
        "echo in-exec; exit 4",
    ]);
    out.expect_code(4);
    assert_eq!(out.stdout, "in-exec\n", "{}", out.describe());

    c.ps_shows_init("g2");

    c.pause_and_resume("g2");

    c.ctr(&["task", "kill", "-s", "SIGKILL", "g2"]).ok();
    poll(T, "g2 to stop", || {
        (c.task_status("g2").as_deref() == Some("STOPPED")).then_some(())
    });
    c.ctr(&["task", "rm", "g2"]).ok();
    c.ctr(&["container", "rm", "g2"]).ok();
    // rt's delete ran: no state left under its root.
    let left: Vec<_> = std::fs::read_dir(root.join(&c.ns))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "rt state left: {left:?}");
}

/// Docker (dockerd 20.10, `--add-runtime rt=…`, `docker run --runtime rt`): what a user
/// of Docker does, each checked against what the container sees.
#[test]
fn docker_runs_rt() {
    let d = integration::docker::Dockerd::start("clients");
    let img = integration::docker::IMAGE;

    client_flags_reach_the_container(|args| d.run(args), img);

    let out = d.run(&["--read-only", img, "sh", "-c", "touch /x 2>&1; echo rc=$?"]);
    assert!(
        out.ok().stdout.contains("Read-only file system"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.ends_with("rc=1\n"), "{}", out.describe());

    // Limits land in the container's cgroup (v1 here; Docker mounts it read-only inside).
    // --cpus needs CFS bandwidth control, a kernel option (Docker refuses it without).
    let cfs = host::cgroup_has("cpu", "cpu.cfs_quota_us");
    let mut args = vec!["--memory", "64m", "--pids-limit", "50"];
    let mut files = vec![
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/pids.max",
    ];
    let mut want = "67108864\n50\n".to_string();
    if cfs {
        args.extend(["--cpus", "0.5"]);
        files.extend([
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
        ]);
        want += "50000\n100000\n";
    } else {
        skip(
            "docker_runs_rt",
            "this kernel has no CFS bandwidth control (no cpu.cfs_quota_us): --cpus is not \
             checked",
        );
    }
    args.extend([img, "cat"]);
    args.extend(files);
    let out = d.run(&args);
    assert_eq!(out.ok().stdout, want);

    let out = d.run(&[
        "--cap-drop",
        "ALL",
        img,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(out.ok().stdout, "CapEff:\t0000000000000000\n");

    // Docker's default seccomp profile: a filter is installed and unshare is refused;
    // seccomp=unconfined installs none.
    let out = d.run(&[
        img,
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; unshare -m true 2>/dev/null; echo unshare=$?",
    ]);
    assert_eq!(out.ok().stdout, "Seccomp:\t2\nunshare=1\n");
    let out = d.run(&[
        "--security-opt",
        "seccomp=unconfined",
        img,
        "grep",
        "^Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(out.ok().stdout, "Seccomp:\t0\n");

    // A long-running container: exec, top, pause/unpause, stats, update, stop.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--runtime",
        "rt",
        "--network",
        "none",
        img,
        "sleep",
        "1000",
    ])
    .ok();
    let out = d.docker(&["exec", "d1", "sh", "-c", EXEC_INSIDE]);
    assert_exec_inside(&out, "sleep 1000");
    let top = d.docker(&["top", "d1"]).ok().stdout.clone();
    assert!(top.contains("sleep 1000"), "{top}");
    d.docker(&["pause", "d1"]).ok();
    assert_eq!(d.inspect("d1", "{{.State.Status}}"), "paused");
    d.docker(&["unpause", "d1"]).ok();
    assert_eq!(d.inspect("d1", "{{.State.Status}}"), "running");
    let stats = d
        .docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.PIDs}} {{.MemUsage}}",
            "d1",
        ])
        .ok()
        .stdout
        .clone();
    assert!(stats.starts_with("1 "), "{stats}");
    d.docker(&["update", "--memory", "128m", "--memory-swap", "256m", "d1"])
        .ok();
    let out = d.docker(&[
        "exec",
        "d1",
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_eq!(out.ok().stdout, "134217728\n");
    // A pid-1 sleep ignores SIGTERM: docker stop kills it after the timeout.
    d.docker(&["stop", "-t", "1", "d1"]).ok();
    assert_eq!(d.inspect("d1", "{{.State.ExitCode}}"), "137");
    d.docker(&["rm", "d1"]).ok();

    // --restart: a failing container is started again by Docker, through rt.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "d2",
        "--restart",
        "on-failure:2",
        "--runtime",
        "rt",
        "--network",
        "none",
        img,
        "sh",
        "-c",
        "sleep 0.2; exit 1",
    ])
    .ok();
    poll(T, "d2 to be restarted twice and stop", || {
        (d.inspect("d2", "{{.RestartCount}} {{.State.Status}}") == "2 exited").then_some(())
    });
    assert_eq!(d.inspect("d2", "{{.State.ExitCode}}"), "1");
}

/// podman 4.3 with conmon, `--runtime /path/to/rt`.
#[test]
fn podman_runs_rt() {
    let p = integration::podman::Podman::new("clients");
    let img = integration::podman::IMAGE;

    client_flags_reach_the_container(|args| p.run(args), img);

    let flags = p.run_flags();
    let mut args = vec!["run", "-d", "--name", "p1"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([img, "sleep", "1000"]);
    p.podman(&args).ok();
    let out = p.podman(&["exec", "p1", "sh", "-c", "echo in-exec; exit 4"]);
    out.expect_code(4);
    assert_eq!(out.stdout, "in-exec\n", "{}", out.describe());
    let top = p.podman(&["top", "p1"]).ok().stdout.clone();
    assert!(top.contains("sleep 1000"), "{top}");
    p.podman(&["pause", "p1"]).ok();
    assert_eq!(p.inspect("p1", "{{.State.Status}}"), "paused");
    p.podman(&["unpause", "p1"]).ok();
    assert_eq!(p.inspect("p1", "{{.State.Status}}"), "running");
    p.podman(&["stop", "-t", "1", "p1"]).ok();
    assert_eq!(p.inspect("p1", "{{.State.ExitCode}}"), "137");
    p.podman(&["rm", "p1"]).ok();
}

/// The Kubernetes path: containerd's CRI plugin with a runtime handler `rt` (what a
/// RuntimeClass names) served by our shim, walked as the kubelet does it by a CRI client
/// (integration/cri/pod.py: RunPodSandbox, CreateContainer, StartContainer,
/// ContainerStatus, ExecSync, the container log, StopPodSandbox, RemovePodSandbox).
#[test]
fn kubernetes_cri_pod_with_runtime_class_rt() {
    use std::io::{BufRead, BufReader, Write};
    let python = std::env::var_os("RT_CRI_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join(".cache/cri-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: `make deps` makes it (a venv with grpcio, the CRI client's gRPC)",
        python.display()
    );
    let c = Containerd::start_with("cri", true);
    let logs = c.dir.join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(workspace_dir().join("integration/cri/pod.py"))
        .arg("--socket")
        .arg(&c.sock)
        .args(["--handler", "rt", "--cgroup-parent"])
        .arg(format!("/{}", c.cgroup_parent))
        .arg("--log-dir")
        .arg(&logs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut client = ChildGuard::spawn(&mut cmd);
    let mut stdin = client.0.stdin.take().unwrap();
    let mut lines = BufReader::new(client.0.stdout.take().unwrap()).lines();
    let mut text = String::new();
    let mut shims = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        text += &line;
        text.push('\n');
        if line == "shims-while-running" {
            shims = Some(c.shim_pids().len());
            writeln!(stdin).unwrap();
            break;
        }
    }
    for line in lines {
        text += &line.unwrap();
        text.push('\n');
    }
    let status = wait_child(&mut client.0, T, "the CRI client");
    println!("{text}");
    assert!(status.success(), "the CRI sequence failed:\n{text}");
    assert_eq!(
        shims,
        Some(1),
        "the pod's sandbox and container share one shim"
    );
}

/// What Docker and podman take the same way, checked inside the container: output and
/// exit status, -e/-w/-u, memory and pids limits read back from its cgroup, and -t (a pty
/// as its terminal). `run` is the client's `run --rm` with rt.
fn client_flags_reach_the_container(run: impl Fn(&[&str]) -> Output, img: &str) {
    run(&[img, "sh", "-c", "echo out; echo err >&2; exit 3"]).expect_run(3, "out\n", "err\n");
    let out = run(&[
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        img,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
         /sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(out.ok().stdout, "bar\n/tmp\n1000\n1000\n67108864\n50\n");
    let out = run(&["-t", img, "tty"]);
    assert!(
        out.ok().stdout.starts_with("/dev/pts/"),
        "{}",
        out.describe()
    );
}
