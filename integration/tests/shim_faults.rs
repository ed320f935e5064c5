//! `containerd-shim-rt-v2` under faults, with a private containerd (integration::containerd):
//! containerd stopped (SIGTERM) or crashed (SIGKILL) and started again while tasks run;
//! tasks that exit while containerd is away; the shim killed with SIGKILL while it serves,
//! and during Create and Start (the shim stops itself there when RT_SHIM_FAULT_STOP_AT
//! says so, and the test kills it). Each time: the tasks and their exit statuses are
//! right, events reach containerd, and containerd's cleanup leaves nothing behind.

use integration::containerd::*;
use integration::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The shim's runtime root when the runc options name none (containerd's layout).
const DEFAULT_RT_ROOT: &str = "/run/containerd/rt";

/// A task that runs until the test creates `/go` in its rootfs, then exits 7.
const EXIT_7_ON_GO: &str = "while [ ! -e /go ]; do sleep 0.05; done; exit 7";

/// Task id → (pid, status) from `ctr task ls`.
fn tasks(c: &Containerd) -> BTreeMap<String, (i32, String)> {
    c.ctr(&["task", "ls"])
        .ok()
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.to_string(),
                (f.get(1)?.parse().ok()?, f.get(2)?.to_string()),
            ))
        })
        .collect()
}

fn pid_of(c: &Containerd, id: &str) -> i32 {
    tasks(c)
        .get(id)
        .unwrap_or_else(|| panic!("{id} in ctr task ls"))
        .0
}

/// Make an `EXIT_7_ON_GO` task exit (its rootfs is mounted in its bundle).
fn let_go(c: &Containerd, id: &str) {
    fs::write(c.bundle_dir(id).join("rootfs/go"), "").unwrap();
}

/// `ctr task rm ID`, and the task's exit status it reports (from the shim's Delete): ctr
/// warns "task ID exit with non-zero exit code N", and says nothing of a 0.
fn delete_status(c: &Containerd, id: &str) -> i32 {
    let out = c.ctr(&["task", "rm", id]);
    out.ok();
    out.stderr
        .split("exit with non-zero exit code ")
        .nth(1)
        .map(|r| r.trim_end_matches(|ch: char| !ch.is_ascii_digit()))
        .map(|n| n.parse().unwrap_or_else(|_| panic!("{}", out.describe())))
        .unwrap_or(0)
}

/// The `/tasks/exit` events of process `id` (a container's id for its init, else an exec
/// id) in a `ctr events` output, as exit statuses.
fn exit_events(text: &str, id: &str) -> Vec<i32> {
    text.lines()
        .filter(|l| l.contains("/tasks/exit") && l.contains(&format!("\"id\":\"{id}\"")))
        .map(|l| {
            // Status 0 is left out of the JSON (proto3's default).
            l.split("\"exit_status\":")
                .nth(1)
                .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// What a task holds on the host, to check it is all gone once its shim died.
struct Traces {
    pids: Vec<i32>,
    cgroups: Vec<PathBuf>,
    rt_state: PathBuf,
    bundle: PathBuf,
    socket: PathBuf,
}

impl Traces {
    /// Taken while the task runs (or is created): each trace exists now. The runtime keeps
    /// its state under `rt_root`/<namespace>.
    fn of(c: &Containerd, id: &str, pids: Vec<i32>, rt_root: &Path) -> Traces {
        let init = pids[0];
        // The init's cgroup in each v1 hierarchy (name=... ones and the unified one too).
        let cgroups: Vec<PathBuf> = fs::read_to_string(format!("/proc/{init}/cgroup"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                let dir = match ctrls {
                    "" => "unified".to_string(),
                    c => c.trim_start_matches("name=").to_string(),
                };
                Some(
                    Path::new("/sys/fs/cgroup")
                        .join(dir)
                        .join(path.trim_start_matches('/')),
                )
            })
            .filter(|p| p.is_dir() && p.to_string_lossy().contains(id))
            .collect();
        assert!(!cgroups.is_empty(), "{id}'s cgroups");
        let bundle = c.bundle_dir(id);
        let address = fs::read_to_string(bundle.join("address")).unwrap();
        let socket = PathBuf::from(address.trim().trim_start_matches("unix://"));
        let rt_state = rt_root.join(&c.ns).join(id);
        let t = Traces {
            pids,
            cgroups,
            rt_state,
            bundle,
            socket,
        };
        for p in [&t.rt_state, &t.socket] {
            assert!(p.exists(), "{} exists while {id} lives", p.display());
        }
        assert!(!mounts_below(&t.bundle).is_empty(), "{id}'s rootfs mount");
        t
    }

    /// Wait for the processes to go, then nothing may be left.
    fn assert_gone(&self) {
        poll(T, "the task's processes to be gone", || {
            (!self.pids.iter().any(|p| pid_alive(*p))).then_some(())
        });
        // containerd removes the bundle after the shim's `delete` returned.
        poll(T, "containerd to remove the bundle", || {
            (!self.bundle.exists()).then_some(())
        });
        let left: Vec<&PathBuf> = self.cgroups.iter().filter(|p| p.exists()).collect();
        assert!(left.is_empty(), "cgroups left: {left:?}");
        assert!(!self.rt_state.exists(), "{} left", self.rt_state.display());
        assert!(
            !self.socket.exists(),
            "shim socket {} left",
            self.socket.display()
        );
        let mounts = mounts_below(&self.bundle);
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    }
}

/// Should the shim's `delete` not have removed task `id`, `rt delete --force` it (in the
/// runtime root the shim used) when the test ends; declared after the Containerd, so it
/// runs first.
struct ForceDelete(PathBuf, String);

impl ForceDelete {
    fn new(c: &Containerd, rt_root: &Path, id: &str) -> ForceDelete {
        ForceDelete(rt_root.join(&c.ns), id.to_string())
    }
}

impl Drop for ForceDelete {
    fn drop(&mut self) {
        if self.0.join(&self.1).exists() {
            let _ = std::process::Command::new(rt_bin())
                .arg("--root")
                .arg(&self.0)
                .args(["delete", "--force", &self.1])
                .status();
        }
    }
}

fn mounts_below(dir: &Path) -> Vec<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_string_lossy();
    integration::mountinfo::parse(&text)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| m.starts_with(&*dir))
        .collect()
}

/// Pids of the processes in the cgroup of `init` (the task's every process).
fn processes_with(init: i32) -> Vec<i32> {
    let cg = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let mem = cg
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("a memory cgroup");
    let procs = Path::new("/sys/fs/cgroup/memory")
        .join(mem.trim_start_matches('/'))
        .join("cgroup.procs");
    let mut pids: Vec<i32> = fs::read_to_string(procs)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    // The init first.
    pids.sort_by_key(|p| *p != init);
    pids
}

/// containerd restarted while three tasks run: they keep running, containerd finds them
/// again (same pids, same shims), exec works, and their exits afterwards come with the
/// right statuses, both from the shim (`ctr task rm`) and as /tasks/exit events.
fn containerd_restart_keeps_tasks(name: &str, sig: i32) {
    let mut c = Containerd::start(name);
    c.run_detached("a1", &["sleep", "1000"]);
    c.run_detached("a2", &["sh", "-c", EXIT_7_ON_GO]);
    c.run_detached("a3", &["sleep", "1000"]);
    let before = tasks(&c);
    let shims = c.shim_pids();
    assert_eq!(shims.len(), 3, "{shims:?}");
    c.stop_with(sig);
    for (id, (pid, _)) in &before {
        assert!(pid_alive(*pid), "{id} ({pid}) outlives containerd");
    }
    c.launch();
    let after = tasks(&c);
    assert_eq!(after.len(), 3, "{after:?}");
    for (id, (pid, status)) in &after {
        assert_eq!(status, "RUNNING", "{id}: {after:?}");
        assert_eq!(*pid, before[id].0, "{id}'s pid");
    }
    let mut now = c.shim_pids();
    now.sort();
    let mut was = shims.clone();
    was.sort();
    assert_eq!(now, was, "the same shims serve the tasks");
    // Events reach the new containerd: the shims reconnect to it.
    let (events, events_out) = c.watch_events();
    c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "a1",
        "sh",
        "-c",
        "exit 3",
    ])
    .expect_code(3);
    c.ctr(&["task", "kill", "-s", "SIGKILL", "a1"]).ok();
    let_go(&c, "a2");
    for id in ["a1", "a2"] {
        poll(T, &format!("{id} to stop"), || {
            (c.task_status(id).as_deref() == Some("STOPPED")).then_some(())
        });
    }
    assert_eq!(c.task_status("a3").as_deref(), Some("RUNNING"));
    assert_eq!(delete_status(&c, "a1"), 137);
    assert_eq!(delete_status(&c, "a2"), 7);
    let text = poll(T, "the /tasks/exit events of a1 and a2", || {
        let text = fs::read_to_string(&events_out).unwrap_or_default();
        (text.contains("/tasks/delete") && !exit_events(&text, "a2").is_empty()).then_some(text)
    });
    drop(events);
    assert_eq!(exit_events(&text, "x1"), [3], "the exec's exit:\n{text}");
    assert_eq!(exit_events(&text, "a1"), [137], "{text}");
    assert_eq!(exit_events(&text, "a2"), [7], "{text}");
    for id in ["a1", "a2"] {
        c.ctr(&["container", "rm", id]).ok();
    }
    c.remove("a3");
}

#[test]
fn containerd_stopped_and_started_again_keeps_the_tasks_and_their_exits() {
    containerd_restart_keeps_tasks("restart-term", libc::SIGTERM);
}

#[test]
fn containerd_crashed_and_started_again_keeps_the_tasks_and_their_exits() {
    containerd_restart_keeps_tasks("restart-kill", libc::SIGKILL);
}

/// Lines of containerd's log from byte `from` on saying an event of `topic` was forwarded
/// to it (by a shim).
fn forwarded(c: &Containerd, from: usize, topic: &str) -> usize {
    let log = fs::read(c.dir.join("containerd.log")).unwrap_or_default();
    String::from_utf8_lossy(&log[from.min(log.len())..])
        .lines()
        .filter(|l| l.contains("event forwarded") && l.contains(&format!("topic={topic}")))
        .count()
}

/// Tasks exit while containerd is away (one by itself with status 7, one killed by its pid
/// from here): when containerd is back, `ctr task ls` shows them stopped, `ctr task rm`
/// gives 7 and 137, and each shim's TaskExit, held while containerd was away, reaches it.
#[test]
fn exits_while_containerd_is_away_are_reported_when_it_returns() {
    let mut c = Containerd::start("away");
    c.run_detached("w1", &["sh", "-c", EXIT_7_ON_GO]);
    c.run_detached("w2", &["sleep", "1000"]);
    let (p1, p2) = (pid_of(&c, "w1"), pid_of(&c, "w2"));
    c.stop_with(libc::SIGKILL);
    let_go(&c, "w1");
    // SAFETY: kill(2) of w2's init, a process of this test's container.
    unsafe { libc::kill(p2, libc::SIGKILL) };
    poll(T, "both tasks to exit", || {
        (!pid_alive(p1) && !pid_alive(p2)).then_some(())
    });
    // The shims try to publish in vain for a while; they must neither give up on the
    // events nor wedge.
    std::thread::sleep(Duration::from_secs(3));
    let log_len = fs::metadata(c.dir.join("containerd.log")).unwrap().len() as usize;
    c.launch();
    let listed = tasks(&c);
    assert_eq!(listed["w1"], (p1, "STOPPED".to_string()), "{listed:?}");
    assert_eq!(listed["w2"], (p2, "STOPPED".to_string()), "{listed:?}");
    poll(T, "both TaskExits to reach the new containerd", || {
        (forwarded(&c, log_len, "/tasks/exit") >= 2).then_some(())
    });
    assert_eq!(
        forwarded(&c, log_len, "/tasks/exit"),
        2,
        "one TaskExit each"
    );
    assert_eq!(delete_status(&c, "w1"), 7);
    assert_eq!(delete_status(&c, "w2"), 137);
    for id in ["w1", "w2"] {
        c.ctr(&["container", "rm", id]).ok();
    }
    poll(T, "the shims to exit", || {
        c.shim_pids().is_empty().then_some(())
    });
}

/// A shim killed with SIGKILL while its task runs (with a second process in it): containerd
/// sees it go, its cleanup runs the shim's `delete`, which kills the task's processes and
/// removes its runtime state, cgroups, rootfs mount and the dead shim's socket. The task is
/// gone from `ctr task ls`, its container can be removed, and its id used again; the task
/// of another shim runs on.
#[test]
fn a_shim_killed_with_sigkill_leaves_nothing() {
    let c = Containerd::start("shimkill");
    c.run_detached("k1", &["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    c.run_detached("k2", &["sleep", "1000"]);
    let init = pid_of(&c, "k1");
    let pids = poll(T, "k1's second process", || {
        let p = processes_with(init);
        (p.len() == 2).then_some(p)
    });
    let _cleanup = ForceDelete::new(&c, Path::new(DEFAULT_RT_ROOT), "k1");
    let traces = Traces::of(&c, "k1", pids, Path::new(DEFAULT_RT_ROOT));
    let shim = shim_of(&c, init);
    // SAFETY: kill(2) of k1's shim, started by this test's containerd.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    poll(T, "containerd to drop k1's task", || {
        c.task_status("k1").is_none().then_some(())
    });
    traces.assert_gone();
    assert_eq!(c.task_status("k2").as_deref(), Some("RUNNING"));
    c.ctr(&["container", "rm", "k1"]).ok();
    c.run_detached("k1", &["sleep", "1000"]);
    assert_eq!(c.task_status("k1").as_deref(), Some("RUNNING"));
    c.remove("k1");
    c.remove("k2");
}

/// A shim killed while containerd is away: the containerd that comes back cannot reach
/// it, and its cleanup (the shim's `delete`) leaves nothing; the other task runs on.
#[test]
fn a_shim_killed_while_containerd_is_away_leaves_nothing() {
    let mut c = Containerd::start("shimkillaway");
    c.run_detached("d1", &["sleep", "1000"]);
    c.run_detached("d2", &["sleep", "1000"]);
    let init = pid_of(&c, "d1");
    let _cleanup = ForceDelete::new(&c, Path::new(DEFAULT_RT_ROOT), "d1");
    let traces = Traces::of(&c, "d1", vec![init], Path::new(DEFAULT_RT_ROOT));
    let shim = shim_of(&c, init);
    c.stop_with(libc::SIGKILL);
    // SAFETY: kill(2) of d1's shim, started by this test's containerd.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    c.launch();
    poll(T, "containerd to drop d1's task", || {
        c.task_status("d1").is_none().then_some(())
    });
    traces.assert_gone();
    assert_eq!(c.task_status("d2").as_deref(), Some("RUNNING"));
    c.ctr(&["container", "rm", "d1"]).ok();
    c.remove("d2");
}

/// The same with the runc options (BinaryName, Root) choosing the runtime: containerd's
/// cleanup after a dead shim gives its `delete` no options, so the shim records the
/// runtime in the bundle at Create; with the defaults, `delete` looked in the wrong root
/// and left the container running. ctr passes these options only to
/// io.containerd.runc.v2: our shim is installed under that name here.
#[test]
fn a_shim_killed_with_sigkill_leaves_nothing_under_runc_options() {
    let c = Containerd::start("shimkillopts");
    std::os::unix::fs::symlink(shim_bin(), c.dir.join("bin/containerd-shim-runc-v2")).unwrap();
    let root = c.dir.join("rt-root");
    let rt = rt_bin().display().to_string();
    c.run_with_runc_options(&rt, &root, &["-d", IMAGE, "o1", "sleep", "1000"])
        .ok();
    c.assert_runtime_state_running(&rt, &root, "o1");
    let init = pid_of(&c, "o1");
    let _cleanup = ForceDelete::new(&c, &root, "o1");
    let traces = Traces::of(&c, "o1", vec![init], &root);
    let shim = shim_of(&c, init);
    // SAFETY: kill(2) of o1's shim, started by this test's containerd.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    poll(T, "containerd to drop o1's task", || {
        c.task_status("o1").is_none().then_some(())
    });
    traces.assert_gone();
    c.ctr(&["container", "rm", "o1"]).ok();
}

/// The shim serving the task whose init is `init`: its parent (the shim is their
/// subreaper), checked to be one of this containerd's shims.
fn shim_of(c: &Containerd, init: i32) -> i32 {
    let (_, ppid) = proc_state(init).expect("the init's parent");
    assert!(
        c.shim_pids().contains(&ppid),
        "{init}'s parent {ppid} is our shim"
    );
    ppid
}

/// The shim stops itself (SIGSTOP) at `step` ("create": after `rt create`, before it
/// answers Create; "start": after `rt start`, before it answers Start) and is killed there:
/// the `ctr run` fails, containerd's cleanup leaves nothing, and the same id runs again.
fn shim_killed_during(name: &str, step: &str) {
    let mut c = Containerd::start(name);
    c.stop();
    c.env.push(("RT_SHIM_FAULT_STOP_AT".into(), step.into()));
    c.launch();
    let id = "f1";
    let mut run = c.ctr_command(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
        "sleep",
        "1000",
    ]);
    run.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut run = ChildGuard::spawn(&mut run);
    let shim = poll(T, &format!("the shim to stop at {step}"), || {
        c.shim_pids()
            .into_iter()
            .find(|p| matches!(proc_state(*p), Some(('T', _))))
    });
    let init: i32 = fs::read_to_string(c.bundle_dir(id).join("init.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _cleanup = ForceDelete::new(&c, Path::new(DEFAULT_RT_ROOT), id);
    let traces = Traces::of(&c, id, vec![init], Path::new(DEFAULT_RT_ROOT));
    // SAFETY: kill(2) of the shim this test's containerd started (stopped by itself).
    unsafe { libc::kill(shim, libc::SIGKILL) };
    let status = wait_child(&mut run.0, T, "ctr run with its shim killed");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "ctr run succeeded: {stderr}");
    eprintln!("ctr run, shim killed during {step}: {}", stderr.trim());
    poll(T, "containerd to drop the task", || {
        c.task_status(id).is_none().then_some(())
    });
    traces.assert_gone();
    c.ctr(&["container", "rm", id]).ok();
    // The same id again, with a shim that does not stop.
    c.stop();
    c.env.clear();
    c.launch();
    c.run_detached(id, &["sleep", "1000"]);
    assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"));
    c.remove(id);
}

#[test]
fn a_shim_killed_during_create_leaves_nothing() {
    shim_killed_during("shimcreate", "create");
}

#[test]
fn a_shim_killed_during_start_leaves_nothing() {
    shim_killed_during("shimstart", "start");
}
