//! `containerd-shim-rt-v2` under a real containerd (Debian's 1.6): each test starts its own
//! containerd (integration::containerd: temporary root, state, socket; the shim found on its
//! PATH; a busybox image built here with umoci), drives it with `ctr` using runtime
//! `io.containerd.rt.v2`, then removes every task and container, stops containerd and
//! leaves nothing behind.

use integration::containerd::*;
use integration::*;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn shim_version_and_bootstrap_flags() {
    let out = Command::new(shim_bin()).arg("-v").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("containerd-shim-rt-v2") && text.contains("Version:"),
        "{text}"
    );
}

#[test]
fn ctr_run_output_exit_status_and_events_in_order() {
    let c = Containerd::start("run");
    let (events, events_out) = c.watch_events();
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        "r1",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    out.expect_code(3);
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.contains("err\n"), "{}", out.describe());
    // An instant exit: still TaskCreate, TaskStart, TaskExit, TaskDelete, in that order.
    let out = c.ctr(&["run", "--rm", "--runtime", RUNTIME, IMAGE, "r2", "true"]);
    out.ok();
    std::thread::sleep(Duration::from_millis(300));
    drop(events);
    let text = fs::read_to_string(&events_out).unwrap();
    for id in ["r1", "r2"] {
        let topics: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("\"{id}\"")) && l.contains("/tasks/"))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
            .collect();
        assert_eq!(
            topics,
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/exit",
                "/tasks/delete"
            ],
            "events of {id}:\n{text}"
        );
    }
    assert!(
        text.contains("\"exit_status\":3"),
        "TaskExit carries the status:\n{text}"
    );
}

#[test]
fn exec_kill_pause_resume_ps_metrics() {
    let c = Containerd::start("ops");
    c.run_detached("o1", &["sleep", "1000"]);
    assert_eq!(c.task_status("o1").as_deref(), Some("RUNNING"));
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "o1",
        "sh",
        "-c",
        EXEC_INSIDE,
    ]);
    assert_exec_inside(&out, "sleep 1000");
    c.ps_shows_init("o1");
    c.pause_and_resume("o1");
    // Checkpoint leaves the task running. Where criu cannot run (criu 3.17 on this host's
    // 6.18 kernel), the error names criu and the task is unharmed.
    let criu = host::criu_works();
    let out = c.ctr(&["task", "checkpoint", "o1"]);
    if let Err(why) = criu {
        skip(
            "exec_kill_pause_resume_ps_metrics",
            format!("`criu check` fails here ({why}): only the checkpoint's error path is checked"),
        );
        assert!(
            !out.success() && out.stderr.contains("criu"),
            "{}",
            out.describe()
        );
    } else {
        out.ok();
    }
    assert_eq!(c.task_status("o1").as_deref(), Some("RUNNING"));
    // The v1 Metrics carry what runc's stats JSON has (memory.stat fields included).
    let json = c
        .ctr(&["task", "metrics", "--format", "json", "o1"])
        .ok()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let data = &v;
    for (what, value) in [
        ("memory.usage.usage", &data["memory"]["usage"]["usage"]),
        ("memory.rss", &data["memory"]["rss"]),
        ("memory.pg_fault", &data["memory"]["pg_fault"]),
        ("cpu.usage.total", &data["cpu"]["usage"]["total"]),
        ("pids.current", &data["pids"]["current"]),
    ] {
        assert!(value.as_u64().unwrap_or(0) > 0, "{what} in {json}");
    }
    let m = c.ctr(&["task", "metrics", "o1"]).ok().stdout.clone();
    assert!(
        m.contains("memory.usage_in_bytes") && m.contains("pids.current"),
        "{m}"
    );
    let pids_current: u64 = m
        .lines()
        .find(|l| l.starts_with("pids.current"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(pids_current >= 1, "{m}");
    // SIGTERM is ignored by a pid-1 sleep; SIGKILL ends it with 137.
    c.ctr(&["task", "kill", "-s", "SIGKILL", "o1"]).ok();
    poll(T, "o1 to stop", || {
        (c.task_status("o1").as_deref() == Some("STOPPED")).then_some(())
    });
    c.ctr(&["task", "rm", "o1"]).ok();
    c.ctr(&["container", "rm", "o1"]).ok();
}

#[test]
fn tty_task() {
    let c = Containerd::start("tty");
    // ctr -t needs a terminal: give it a pty of a known size.
    let (master, slave) = integration::console::open_pty(24, 80);
    let mut cmd = c.ctr_command(&[
        "run",
        "--rm",
        "-t",
        "--runtime",
        RUNTIME,
        IMAGE,
        "y1",
        "sh",
        "-c",
        // ctr sends ResizePty with its terminal's size just after the start: 2 s leave a
        // loaded machine time for it (0.5 s did not always).
        "tty; [ -t 0 ] && echo stdin-tty; sleep 2; stty size; exit 4",
    ]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()));
    cmd.stdout(Stdio::from(slave.try_clone().unwrap()));
    cmd.stderr(Stdio::from(slave));
    let mut child = cmd.spawn().unwrap();
    let status = wait_child(&mut child, T, "ctr run -t");
    let text = integration::console::read_pty(master, Duration::from_millis(500)).replace('\r', "");
    assert_eq!(status.code(), Some(4), "{text:?}");
    assert!(
        text.contains("/dev/pts/") && text.contains("stdin-tty"),
        "{text:?}"
    );
    assert!(text.contains("24 80\n"), "ResizePty applied: {text:?}");
}

#[test]
fn binary_log_uri() {
    let c = Containerd::start("logbin");
    // containerd's logging protocol: stdout on fd 3, stderr on fd 4, ready = fd 5 closed.
    let out = c.dir.join("logged.txt");
    let logger = c.dir.join("logger.sh");
    write_script(
        &logger,
        &format!(
            "echo \"id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE args=$*\" > {o}\nexec 5>&-\ncat <&3 >> {o} &\ncat <&4 >> {o}\nwait\n",
            o = out.display()
        ),
    );
    let uri = format!("binary://{}?tag=t1", logger.display());
    c.ctr(&[
        "run",
        "--rm",
        "--log-uri",
        &uri,
        "--runtime",
        RUNTIME,
        IMAGE,
        "lb1",
        "sh",
        "-c",
        "echo via-logger; echo err-via-logger >&2",
    ])
    .ok();
    poll(T, "the logger to write both streams", || {
        let t = fs::read_to_string(&out).unwrap_or_default();
        (t.contains("via-logger\n") && t.contains("err-via-logger\n")).then_some(())
    });
    let text = fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with(&format!("id=lb1 ns={} args=tag t1\n", c.ns)),
        "{text:?}"
    );
}

#[test]
fn containerd_restart_keeps_the_task_and_a_killed_shim_is_cleaned_up() {
    let mut c = Containerd::start("restart");
    c.run_detached("k1", &["sleep", "1000"]);
    let pid_of = |c: &Containerd| {
        c.ctr(&["task", "ls"])
            .stdout
            .lines()
            .find(|l| l.starts_with("k1 "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<i32>().ok())
    };
    let pid = pid_of(&c).expect("k1's pid");
    c.stop();
    assert!(pid_alive(pid), "the container outlives containerd");
    c.launch();
    assert_eq!(
        c.task_status("k1").as_deref(),
        Some("RUNNING"),
        "reconnected through the address file"
    );
    c.ctr(&["task", "exec", "--exec-id", "after", "k1", "true"])
        .ok();
    // The shim dies: containerd sees the task exit and cleans up after it.
    let shims = c.shim_pids();
    assert_eq!(shims.len(), 1, "one shim for k1: {shims:?}");
    // SAFETY: kill(2) of the shim this test's containerd started.
    unsafe { libc::kill(shims[0], libc::SIGKILL) };
    poll(T, "containerd to clean up k1's task", || {
        c.task_status("k1").is_none().then_some(())
    });
    poll(T, "k1's process to be gone", || {
        (!pid_alive(pid)).then_some(())
    });
    c.ctr(&["container", "rm", "k1"]).ok();
}

#[test]
fn fifty_containers_at_once() {
    let c = Containerd::start("fifty");
    let ids: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    std::thread::scope(|s| {
        for id in &ids {
            let c = &c;
            s.spawn(move || c.run_detached(id, &["sleep", "1000"]));
        }
    });
    let listing = c.ctr(&["task", "ls"]).stdout.clone();
    let running = listing.lines().filter(|l| l.contains("RUNNING")).count();
    assert_eq!(running, 50, "{listing}");
    std::thread::scope(|s| {
        for id in &ids {
            let c = &c;
            s.spawn(move || c.remove(id));
        }
    });
    assert_eq!(c.ctr(&["container", "ls", "-q"]).stdout.trim(), "");
}

#[test]
fn oom_kill_is_published_as_task_oom() {
    // ctr sets no swap limit nor swappiness: where swap escapes the memory limit, dd swaps.
    let swaps = host::unaccounted_swap();
    let c = Containerd::start("oom");
    let (events, events_out) = c.watch_events();
    // A 64 MiB buffer in a 16 MiB container: the kernel OOM-kills dd.
    let out = c.ctr(&[
        "run",
        "--rm",
        "--memory-limit",
        "16777216",
        "--runtime",
        RUNTIME,
        IMAGE,
        "oom1",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 1",
    ]);
    out.ok();
    if let Some(why) = swaps {
        skip(
            "oom_kill_is_published_as_task_oom",
            format!("{why}: no OOM kill to publish, only the run is checked"),
        );
        drop(events);
        return;
    }
    poll(T, "a /tasks/oom event", || {
        fs::read_to_string(&events_out)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("/tasks/oom") && l.contains("\"oom1\""))
            .then_some(())
    });
    drop(events);
}

#[test]
fn file_log_uri() {
    let c = Containerd::start("logfile");
    let log = c.dir.join("task.log");
    let uri = format!("file://{}", log.display());
    c.ctr(&[
        "run",
        "--rm",
        "--log-uri",
        &uri,
        "--runtime",
        RUNTIME,
        IMAGE,
        "l1",
        "sh",
        "-c",
        "echo to-the-file; echo err-too >&2",
    ])
    .ok();
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("to-the-file\n") && text.contains("err-too\n"),
        "{text:?}"
    );
}

/// The runc options choose the runtime binary and its root. ctr sets them only for
/// io.containerd.runc.v2, so our shim is installed under the runc shim's name here; it
/// then runs Debian's runc, whose state is under Root/<namespace>.
#[test]
fn runc_options_choose_the_runtime_binary_and_root() {
    let c = Containerd::start("binname");
    std::os::unix::fs::symlink(shim_bin(), c.dir.join("bin/containerd-shim-runc-v2")).unwrap();
    let root = c.dir.join("runc-root");
    let runc = "/usr/sbin/runc";
    c.run_with_runc_options(
        runc,
        &root,
        &["--rm", IMAGE, "b1", "sh", "-c", "echo via-runc; exit 4"],
    )
    .expect_code(4);
    c.run_with_runc_options(runc, &root, &["-d", IMAGE, "b2", "sleep", "1000"])
        .ok();
    c.assert_runtime_state_running(runc, &root, "b2");
    assert_eq!(c.shim_pids().len(), 1, "our shim serves b2");
    c.remove("b2");
}

#[test]
fn containers_of_one_pod_share_a_shim() {
    let c = Containerd::start("pod");
    for id in ["p1", "p2"] {
        c.ctr(&[
            "run",
            "-d",
            "--annotation",
            "io.kubernetes.cri.sandbox-id=pod1",
            "--runtime",
            RUNTIME,
            IMAGE,
            id,
            "sleep",
            "1000",
        ])
        .ok();
    }
    c.run_detached("q1", &["sleep", "1000"]);
    assert_eq!(
        c.shim_pids().len(),
        2,
        "one shim for pod1's two containers, one for q1"
    );
    c.ctr(&["task", "exec", "--exec-id", "x", "p2", "true"])
        .ok();
    c.remove("p1");
    assert_eq!(c.task_status("p2").as_deref(), Some("RUNNING"));
    c.remove("p2");
    c.remove("q1");
    poll(
        T,
        "the shims to exit once their containers are gone",
        || c.shim_pids().is_empty().then_some(()),
    );
}

/// 64 hex characters, as CRI's container and exec ids (and Docker's) are.
fn hex64(tag: u64) -> String {
    let salt = u64::from(std::process::id());
    format!("{tag:016x}{salt:016x}{:016x}{tag:016x}", !tag ^ salt)
}

/// Entries of the temporary directory that our shims `pids` left there (their console
/// sockets' directories are named after the shim's pid).
fn console_dirs_of(pids: &[i32]) -> Vec<String> {
    let tmp = std::env::temp_dir();
    fs::read_dir(&tmp)
        .into_iter()
        .chain(fs::read_dir("/tmp"))
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| pids.iter().any(|p| n.starts_with(&format!("rt-shim-{p}-"))))
        .collect()
}

/// Run ctr with ARGS on a pty of its own (ctr -t needs a terminal): the child and the
/// pty's master.
fn ctr_on_a_pty(c: &Containerd, args: &[&str]) -> (std::process::Child, std::os::fd::OwnedFd) {
    let (master, slave) = integration::console::open_pty(24, 80);
    let mut cmd = c.ctr_command(args);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()));
    cmd.stdout(Stdio::from(slave.try_clone().unwrap()));
    cmd.stderr(Stdio::from(slave));
    (cmd.spawn().unwrap(), master)
}

/// No console socket is left in the bundle nor in the temporary directory by `shims`.
fn assert_no_console_socket_left(bundle: &std::path::Path, shims: &[i32]) {
    let left: Vec<_> = fs::read_dir(bundle)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sock"))
        .collect();
    assert!(left.is_empty(), "sockets left in the bundle: {left:?}");
    let left = console_dirs_of(shims);
    assert!(left.is_empty(), "console sockets left: {left:?}");
}

/// `kubectl exec -it` (CRI's exec with a terminal) with containerd's real layout: the
/// bundle is `<state>/io.containerd.runtime.v2.task/<ns>/<64-hex container id>` and CRI's
/// exec ids are 64 hex characters too, so a console socket named after the exec in the
/// bundle is longer than a unix socket path may be (108 bytes, sun_path). The shim's
/// console sockets live in a short temporary directory instead, removed once the runtime
/// has sent the pty master, and when the runtime fails.
#[test]
fn tty_exec_with_64_hex_ids_in_containerds_layout() {
    let c = Containerd::start("ttyexec64");
    let (cid, eid, bad) = (hex64(1), hex64(2), hex64(3));
    let bundle = c.bundle_dir(&cid);
    let old = bundle.join(format!("{eid}.console.sock"));
    assert!(
        old.as_os_str().len() >= 108,
        "the test needs a layout where {} does not fit in sun_path",
        old.display()
    );
    c.run_detached(&cid, &["sleep", "1000"]);
    let shims = c.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let (mut exec, master) = ctr_on_a_pty(
        &c,
        &[
            "task",
            "exec",
            "-t",
            "--exec-id",
            &eid,
            &cid,
            "sh",
            "-c",
            "tty; sleep 0.5; stty size; exit 5",
        ],
    );
    let status = wait_child(&mut exec, T, "ctr task exec -t");
    let text = integration::console::read_pty(master, Duration::from_millis(500)).replace('\r', "");
    assert_eq!(status.code(), Some(5), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("24 80\n"), "ResizePty applied: {text:?}");
    assert_no_console_socket_left(&bundle, &shims);
    // A tty exec the runtime refuses: its console socket goes too.
    let (mut exec, _master) = ctr_on_a_pty(
        &c,
        &[
            "task",
            "exec",
            "-t",
            "--exec-id",
            &bad,
            &cid,
            "/nonexistent",
        ],
    );
    let status = wait_child(&mut exec, T, "ctr task exec -t /nonexistent");
    assert!(!status.success(), "exec of /nonexistent succeeded");
    assert_eq!(c.task_status(&cid).as_deref(), Some("RUNNING"));
    assert_no_console_socket_left(&bundle, &shims);
    c.remove(&cid);
}

/// A container with a terminal (`create --console-socket`, `kubectl run -it`) and a 64-hex
/// id in containerd's layout: `<bundle>/init.console.sock` would not fit in sun_path either.
#[test]
fn tty_container_with_a_64_hex_id_in_containerds_layout() {
    let c = Containerd::start("ttyinit64");
    let cid = hex64(4);
    let bundle = c.bundle_dir(&cid);
    assert!(bundle.join("init.console.sock").as_os_str().len() >= 108);
    let (run, master) = ctr_on_a_pty(
        &c,
        &[
            "run",
            "-t",
            "--runtime",
            RUNTIME,
            IMAGE,
            &cid,
            "sh",
            "-c",
            "tty; [ -t 0 ] && echo stdin-tty; exec sleep 1000",
        ],
    );
    let mut run = ChildGuard(run);
    poll(T, "the tty container to run", || {
        if let Ok(Some(st)) = run.0.try_wait() {
            let text = integration::console::read_pty(
                master.try_clone().unwrap(),
                Duration::from_millis(300),
            );
            panic!("ctr run -t {cid} exited ({st}): {text:?}");
        }
        (c.task_status(&cid).as_deref() == Some("RUNNING")).then_some(())
    });
    let shims = c.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    assert_no_console_socket_left(&bundle, &shims);
    c.ctr(&["task", "kill", "-s", "SIGKILL", &cid]).ok();
    wait_child(&mut run.0, T, "ctr run -t");
    let text = integration::console::read_pty(master, Duration::from_millis(500)).replace('\r', "");
    assert!(
        text.contains("/dev/pts/") && text.contains("stdin-tty"),
        "{text:?}"
    );
    c.remove(&cid);
    assert!(console_dirs_of(&shims).is_empty());
}

/// An exec'd process killed by a real-time signal (SIGRTMIN+2 here): its exit is 128+N
/// like any other. The crate's reaper decoded statuses with nix, which has no name for
/// these signals: the process was reaped and its exit dropped, so no TaskExit came and
/// `ctr task exec` waited for ever.
#[test]
fn an_exec_killed_by_a_real_time_signal_exits_128_plus_n() {
    let c = Containerd::start("rtsig");
    c.run_detached("s1", &["sleep", "1000"]);
    let n = libc::SIGRTMIN() + 2;
    let kill = format!("kill -{n} $$");
    let out = c.ctr(&["task", "exec", "--exec-id", "x1", "s1", "sh", "-c", &kill]);
    out.expect_code(128 + n);
    assert_eq!(c.task_status("s1").as_deref(), Some("RUNNING"));
    c.remove("s1");
}

/// The helper a misbehaving runtime left running (started by this test's wrapper), killed
/// by its pid when dropped.
struct Helper(std::path::PathBuf);

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.0) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: kill(2) of the process this test's wrapper script started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Our shim installed under the runc shim's name (ctr passes the runc options only to
/// io.containerd.runc.v2), driving `odd-rt`: rt, except where a marker file in the test's
/// directory makes it misbehave:
/// - `odd-ps`: `ps` leaves a process behind holding its stdout (a helper it forks; its pid
///   in `helper.pid`);
/// - `odd-exec`: `exec --console-socket` exits 0 without connecting to the socket.
///
/// Task `o1` (`sleep 1000`) runs under it. Returns the wrapper's path.
fn odd_runtime(c: &Containerd) -> String {
    std::os::unix::fs::symlink(shim_bin(), c.dir.join("bin/containerd-shim-runc-v2")).unwrap();
    let wrapper = c.dir.join("odd-rt");
    let d = c.dir.display();
    write_script(
        &wrapper,
        &format!(
            "case \" $* \" in\n\
             *\" ps \"*) if [ -e {d}/odd-ps ]; then\n\
               {rt} \"$@\"; s=$?; sleep 1000 & echo $! > {d}/helper.pid; exit $s; fi ;;\n\
             *\" exec \"*\" --console-socket \"*) [ -e {d}/odd-exec ] && exit 0 ;;\n\
             esac\n\
             exec {rt} \"$@\"",
            rt = rt_bin().display()
        ),
    );
    let wrapper = wrapper.display().to_string();
    let root = c.dir.join("odd-root");
    c.run_with_runc_options(&wrapper, &root, &["-d", IMAGE, "o1", "sleep", "1000"])
        .ok();
    wrapper
}

/// A runtime whose `ps` leaves a process behind holding its stdout: the shim used to read
/// stdout to EOF before it waited for the runtime's exit, so Pids (and Stats, which reads
/// `events --stats` the same way) hung for as long as that process lived. The call ends
/// with the runtime's exit now, with what it wrote.
#[test]
fn a_runtime_leaving_a_process_on_its_stdout_does_not_hang_pids() {
    let c = Containerd::start("oddps");
    odd_runtime(&c);
    let _helper = Helper(c.dir.join("helper.pid"));
    fs::write(c.dir.join("odd-ps"), "").unwrap();
    c.ps_shows_init("o1");
    assert!(c.dir.join("helper.pid").exists(), "the odd ps ran");
    assert_eq!(c.task_status("o1").as_deref(), Some("RUNNING"));
    c.remove("o1");
}

/// A runtime that exits 0 from a tty `exec` without ever connecting to the console socket:
/// the shim used to block in accept() holding its task table, so that exec and every
/// later call to the shim hung. The exec fails now, saying why, and the shim answers.
#[test]
fn a_runtime_that_never_connects_to_the_console_socket_does_not_wedge_the_shim() {
    let c = Containerd::start("oddtty");
    odd_runtime(&c);
    fs::write(c.dir.join("odd-exec"), "").unwrap();
    let (mut exec, master) =
        ctr_on_a_pty(&c, &["task", "exec", "-t", "--exec-id", "t1", "o1", "sh"]);
    let status = try_wait_child(
        &mut exec,
        T,
        "ctr task exec -t (the runtime never connects)",
    )
    .unwrap_or_else(|e| {
        // A wedged shim would hang the cleanup too: kill it, and remove the task the way
        // containerd's cleanup after a dead shim does not (it knows nothing of this root).
        for pid in c.shim_pids() {
            // SAFETY: kill(2) of a shim of this test's containerd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new(rt_bin())
            .arg("--root")
            .arg(c.dir.join("odd-root").join(&c.ns))
            .args(["delete", "--force", "o1"])
            .status();
        panic!("{e}")
    });
    let text = integration::console::read_pty(master, Duration::from_millis(300));
    assert!(!status.success(), "{text:?}");
    assert!(
        text.contains("without connecting to the console socket"),
        "{text:?}"
    );
    assert_eq!(c.task_status("o1").as_deref(), Some("RUNNING"));
    assert_no_console_socket_left(&c.bundle_dir("o1"), &c.shim_pids());
    c.remove("o1");
}

/// Threads of process `pid` (/proc/PID/status).
fn threads_of(pid: i32) -> usize {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status_field(&status, "Threads")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The thread copying an exec's stdin FIFO into the process ends with the process: the
/// shim holds the FIFO open for reading and writing, so its read never saw EOF and each
/// exec with stdin (ctr always gives one; so does `kubectl exec -i`) left a thread blocked
/// on it for the life of the shim.
#[test]
fn exec_stdin_copiers_end_with_their_process() {
    let c = Containerd::start("stdincopy");
    c.run_detached("i1", &["sleep", "1000"]);
    let shims = c.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let exec = |n: usize| {
        for i in 0..n {
            let id = format!("x{n}-{i}");
            c.ctr(&["task", "exec", "--exec-id", &id, "i1", "true"])
                .ok();
        }
    };
    // The shim's thread pools at their working size first.
    exec(3);
    std::thread::sleep(Duration::from_millis(300));
    let before = threads_of(shims[0]);
    exec(10);
    let settled = poll(T, "the exec's threads to end", || {
        let now = threads_of(shims[0]);
        (now <= before + 2).then_some(now)
    });
    eprintln!("shim threads: {before} before 10 execs, {settled} after");
    c.remove("i1");
}
