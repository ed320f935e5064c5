//! Faults (issue 17): `rt create` and `rt exec` killed with SIGKILL at each step of their
//! work. rt's hidden `RT_FAULT_STOP_AT=<step>` makes the process reaching that step (rt,
//! or the init or exec child it forked) say so on stderr and wait for SIGCONT; the test
//! then kills rt (and lets the child go on, as if it had only been slow) or kills the
//! child. Afterwards: no process outlives the killed command, `rt list` shows nothing
//! that `rt state` cannot read, `delete --force` leaves no state directory, cgroup,
//! mount or process, and the same id can be created again. The step list comes from
//! `RT_FAULT_STOP_AT=list`, so a step added to rt is tested here without more code.

use integration::*;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The steps rt can stop at, in order.
fn steps() -> Vec<String> {
    let out = std::process::Command::new(rt_bin())
        .env("RT_FAULT_STOP_AT", "list")
        .output()
        .expect("run rt");
    assert!(out.status.success(), "RT_FAULT_STOP_AT=list: {out:?}");
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(list.len() > 10, "too few steps: {list:?}");
    list
}

/// Whether the process at `step` is the forked child rather than rt itself.
fn in_child(step: &str) -> bool {
    step.starts_with("init-") || step.starts_with("exec-child-")
}

/// Not meaningful for runc (no such hook); says so.
fn unsupported(h: &Ctx) -> bool {
    if is_runc() {
        skip(&h.name, "the fault hook is rt's own");
        return true;
    }
    false
}

/// A command of `h`'s runtime started with the stop at `step`, its stderr in `err`.
fn spawn_at(h: &Ctx, args: &[&str], step: &str, err: &Path) -> ChildGuard {
    let mut c = h.command(args);
    c.env("RT_FAULT_STOP_AT", step);
    c.stdout(Stdio::null());
    c.stderr(fs::File::create(err).unwrap());
    ChildGuard::spawn(&mut c)
}

/// Wait until the command announced `step`, and return the pid of the process waiting
/// there: a process of the command (marked with the context's name) waiting for SIGCONT.
/// `rt create` of `b` as `id`, held at `step`: rt, and the pid of the process that
/// stopped there (rt itself or the child it forked).
fn create_held_at(h: &Ctx, b: &Bundle, id: &str, step: &str) -> (ChildGuard, i32) {
    let err = h.dir.join("create.err");
    let bundle = b.dir.to_str().unwrap();
    let mut rt = spawn_at(h, &["create", "--bundle", bundle, id], step, &err);
    let waiting = wait_stopped(h, &mut rt, step, &err);
    (rt, waiting)
}

fn wait_stopped(h: &Ctx, rt: &mut ChildGuard, step: &str, err: &Path) -> i32 {
    let needle = format!("rt-fault: stopped at {step} ");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = read_or_empty(err);
        if text.contains(&needle) {
            break;
        }
        if let Ok(Some(st)) = rt.0.try_wait() {
            panic!("`rt` ended ({st}) without reaching {step}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "{step} not reached in 20 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Said just before it sleeps: give it the moment to get there.
    let mut waiting = Vec::new();
    while Instant::now() < deadline {
        waiting = marked_processes(&h.name)
            .into_iter()
            .filter(|&p| blocks_sigcont(p))
            .collect();
        if !waiting.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(waiting.len(), 1, "one process waits at {step}: {waiting:?}");
    let pid = waiting[0];
    if in_child(step) {
        assert_ne!(pid, rt.pid() as i32, "{step} is reached in the child");
        h.track_pid(pid);
    } else {
        assert_eq!(pid, rt.pid() as i32, "{step} is reached in rt itself");
    }
    pid
}

/// The fault hook waits for SIGCONT in sigwaitinfo (which shows it unblocked meanwhile,
/// so SigBlk cannot tell): the kernel function it sleeps in says so.
fn blocks_sigcont(pid: i32) -> bool {
    read_or_empty(Path::new(&format!("/proc/{pid}/wchan"))).starts_with("do_sigtimedwait")
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) of a process this test started (rt or the child it forked).
    unsafe { libc::kill(pid, sig) };
}

/// Until `timeout`, wait for every process marked `mark` to be gone; the ones left.
fn wait_gone(mark: &str, timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = marked_processes(mark);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn describe(pids: &[i32]) -> Vec<(i32, String)> {
    pids.iter()
        .map(|p| {
            let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            (*p, String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect()
}

/// `rt list` shows nothing that `rt state` cannot read, and nothing "creating" (no
/// create runs any more; an init still on its way out may show it for a moment).
fn assert_no_ghost(h: &Ctx, when: &str) {
    let list = || {
        let out = h.rt(&["list", "--format", "json"]);
        out.ok();
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("{when}: list --format json: {e}:\n{}", out.stdout));
        v.as_array().cloned().unwrap_or_default()
    };
    let mut listed = list();
    let deadline = Instant::now() + Duration::from_secs(5);
    while listed.iter().any(|c| c["status"] == "creating") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        listed = list();
    }
    for c in &listed {
        let id = c["id"].as_str().unwrap_or_default();
        assert_ne!(c["status"], "creating", "{when}: {id} stuck creating: {c}");
        let st = h
            .state(id)
            .unwrap_or_else(|| panic!("{when}: listed {id} has no readable state"));
        assert_eq!(
            st["status"], c["status"],
            "{when}: list and state of {id} differ"
        );
    }
}

/// No mount of the host mentions the test's directory (bundle rootfs, state directory,
/// a namespace bind).
fn assert_no_mount(h: &Ctx, when: &str) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = h.dir.display().to_string();
    let left: Vec<&str> = info.lines().filter(|l| l.contains(&dir)).collect();
    assert!(left.is_empty(), "{when}: mounts left: {left:#?}");
}

/// After a killed create: delete --force, then nothing is left, and the id works again.
fn assert_cleaned_and_reusable(h: &Ctx, id: &str, b: &Bundle, when: &str) {
    assert_no_ghost(h, when);
    let del = h.delete_force(id);
    assert!(del.success(), "{when}: delete --force:\n{}", del.describe());
    assert_no_mount(h, when);
    h.assert_nothing_left(id);
    assert!(h.state(id).is_none(), "{when}: state of {id} after delete");
    // The same id, again, to the end.
    h.create_ok(id, b);
    h.start(id).ok();
    h.wait_status(id, "stopped", Duration::from_secs(10));
    h.delete(id).ok();
    h.assert_nothing_left(id);
}

/// A bundle that reaches every step of create: a user namespace (the id maps), and
/// createRuntime and createContainer hooks.
fn full_bundle(h: &Ctx, id: &str) -> Option<Bundle> {
    if let Err(why) = host::user_namespaces() {
        skip(&h.name, why);
        return None;
    }
    let mut b = h.bundle(id);
    b.user_namespace(100000);
    b.hook("createRuntime", "true");
    b.hook("createContainer", "true");
    b.args(&["true"]);
    Some(b)
}

/// `rt create` SIGKILLed at each step (the init left to go on), with a config that
/// reaches all of them, then with a plain one (no user namespace, no hooks).
#[test]
fn create_killed_at_each_step() {
    let h = Ctx::new("create_killed_at_each_step");
    if unsupported(&h) {
        return;
    }
    let id = h.id();
    let Some(full) = full_bundle(&h, &id) else {
        return;
    };
    let mut plain = h.bundle(&id);
    plain.args(&["true"]);
    let create_steps: Vec<String> = steps()
        .into_iter()
        .filter(|s| s.starts_with("create-") || s.starts_with("init-"))
        .collect();
    for (b, name) in [(&full, "userns+hooks"), (&plain, "plain")] {
        b.save();
        for step in &create_steps {
            let reached = name == "userns+hooks"
                || !matches!(
                    step.as_str(),
                    "init-userns" | "create-maps-written" | "create-before-hooks"
                );
            if !reached {
                continue;
            }
            let when = format!("create ({name}) killed at {step}");
            let (mut rt, waiting) = create_held_at(&h, b, &id, step);
            let rt_pid = rt.pid() as i32;
            signal(rt_pid, libc::SIGKILL);
            let _ = rt.0.wait();
            // A child that was only slow goes on: it must find out that rt is gone.
            if waiting != rt_pid {
                signal(waiting, libc::SIGCONT);
            }
            // Never "created": rt died before it told the init, which must not outlive it.
            let left = wait_gone(&h.name, Duration::from_secs(5));
            assert!(
                left.is_empty(),
                "{when}: left running: {:?}",
                describe(&left)
            );
            let left = wait_gone(&id, Duration::from_secs(5));
            assert!(
                left.is_empty(),
                "{when}: left running: {:?}",
                describe(&left)
            );
            assert_cleaned_and_reusable(&h, &id, b, &when);
        }
    }
}

/// The init (or the intermediate child) SIGKILLed at each of its steps: `rt create`
/// fails on its own, in one line, and leaves nothing, not even a state directory.
#[test]
fn create_fails_cleanly_when_init_killed_at_each_step() {
    let h = Ctx::new("create_init_killed_at_each_step");
    if unsupported(&h) {
        return;
    }
    let id = h.id();
    let Some(b) = full_bundle(&h, &id) else {
        return;
    };
    b.save();
    for step in steps().iter().filter(|s| s.starts_with("init-")) {
        let when = format!("init killed at {step}");
        let (mut rt, waiting) = create_held_at(&h, &b, &id, step);
        signal(waiting, libc::SIGKILL);
        let st = wait_child(&mut rt.0, Duration::from_secs(30), &when);
        assert_eq!(st.code(), Some(1), "{when}: rt create exit status");
        let msg: Vec<String> = read_or_empty(&h.dir.join("create.err"))
            .lines()
            .filter(|l| !l.starts_with("rt-fault:"))
            .map(str::to_string)
            .collect();
        assert_eq!(msg.len(), 1, "{when}: one line of error: {msg:?}");
        assert!(
            msg[0].contains("exited during setup") || msg[0].contains("init"),
            "{when}: {msg:?}"
        );
        assert!(!h.root.join(&id).exists(), "{when}: state directory left");
        assert_no_mount(&h, &when);
        h.assert_nothing_left(&id);
        assert_no_ghost(&h, &when);
    }
    // And the id works after all that.
    h.create_ok(&id, &b);
    h.start(&id).ok();
    h.wait_status(&id, "stopped", Duration::from_secs(10));
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
}

/// The container's processes other than its init, by the mark in their environment.
fn strays(id: &str, init: i32) -> Vec<i32> {
    marked_processes(id)
        .into_iter()
        .filter(|&p| p != init)
        .collect()
}

/// Reap our zombie children in the pid namespace of `init`: exec children whose parent,
/// the killed rt, left them to us (the test is the subreaper, as a shim would be). The
/// container's init cannot finish dying while they are unreaped.
fn reap_orphans_of(init: i32) {
    let ns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(theirs) = ns(init) else {
        return;
    };
    let me = std::process::id() as i32;
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid != init
            && proc_state(pid).is_some_and(|(s, ppid)| s == 'Z' && ppid == me)
            && ns(pid).as_ref() == Some(&theirs)
        {
            reap_pid(pid, Duration::from_secs(1));
        }
    }
}

/// The step after which an exec's process runs whatever becomes of rt.
const COMMITTED: &str = "exec-ready";

/// `rt exec -d` SIGKILLed at each of its steps (the child left to go on), and the exec
/// child killed at each of its own: the container keeps running, no process of the
/// exec stays in it (but past the commit point, where the program runs, as with runc),
/// and it is then killed and deleted with nothing left.
#[test]
fn exec_killed_at_each_step() {
    let h = Ctx::new("exec_killed_at_each_step");
    if unsupported(&h) {
        return;
    }
    // Not the first id, which is the context's name: rt's own processes carry that.
    let _ = h.id();
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "1000"]);
    h.create_ok(&id, &b);
    h.start(&id).ok();
    let init = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
    let exec_steps: Vec<String> = steps()
        .into_iter()
        .filter(|s| s.starts_with("exec-"))
        .collect();
    assert!(exec_steps.len() >= 4, "{exec_steps:?}");
    let marker = b.path_in_rootfs("/exec-ran");
    for step in &exec_steps {
        let mut victims = vec!["rt"];
        if in_child(step) {
            victims.push("child");
        }
        for victim in victims {
            let when = format!("exec: {victim} killed at {step}");
            let err = h.dir.join("exec.err");
            let args = [
                "exec",
                "-d",
                &id,
                "sh",
                "-c",
                "touch /exec-ran; exec sleep 999",
            ];
            let mut rt = spawn_at(&h, &args, step, &err);
            let waiting = wait_stopped(&h, &mut rt, step, &err);
            let rt_pid = rt.pid() as i32;
            if victim == "rt" {
                signal(rt_pid, libc::SIGKILL);
                let _ = rt.0.wait();
                if waiting != rt_pid {
                    signal(waiting, libc::SIGCONT);
                }
            } else {
                signal(waiting, libc::SIGKILL);
                let st = wait_child(&mut rt.0, Duration::from_secs(30), &when);
                assert_eq!(st.code(), Some(255), "{when}: rt exec exit status");
                let msg: Vec<String> = read_or_empty(&err)
                    .lines()
                    .filter(|l| !l.starts_with("rt-fault:"))
                    .map(str::to_string)
                    .collect();
                assert_eq!(msg.len(), 1, "{when}: one line of error: {msg:?}");
                assert!(msg[0].contains("exec failed: "), "{when}: {msg:?}");
            }
            let left = wait_gone(&h.name, Duration::from_secs(5));
            assert!(
                left.is_empty(),
                "{when}: left running: {:?}",
                describe(&left)
            );
            if step == COMMITTED {
                // Past the commit point the program runs (as runc's would), unreported:
                // it is the container's like any other, and goes with it. Ended here
                // so the next step starts from a container with its init alone.
                poll(Duration::from_secs(10), "the committed exec to run", || {
                    marker.exists().then_some(())
                });
                let ran = poll(Duration::from_secs(10), "its process", || {
                    Some(strays(&id, init)).filter(|s| !s.is_empty())
                });
                assert_eq!(ran.len(), 1, "{when}: {:?}", describe(&ran));
                signal(ran[0], libc::SIGKILL);
                poll(Duration::from_secs(5), "the committed exec to die", || {
                    strays(&id, init).is_empty().then_some(())
                });
                fs::remove_file(&marker).unwrap();
            }
            reap_orphans_of(init);
            // Killed before the commit point: the program never ran.
            assert!(!marker.exists(), "{when}: the exec'd program ran");
            let stray = strays(&id, init);
            assert!(stray.is_empty(), "{when}: stray: {:?}", describe(&stray));
            assert_eq!(h.status(&id).as_deref(), Some("running"), "{when}");
            assert_no_ghost(&h, &when);
        }
    }
    // The container still execs normally, then goes with nothing left.
    h.rt(&["exec", &id, "true"]).ok();
    h.delete_force(&id).ok();
    assert_no_mount(&h, "after the exec faults");
    h.assert_nothing_left(&id);
}

/// A state directory a killed create left without state.json: not listed, `state` says
/// it does not exist, a new create of the id is refused until `delete --force` removes
/// it (runc's rule: the directory is the id's), and that delete is idempotent.
#[test]
fn leftover_directory_is_no_ghost() {
    let h = Ctx::new("leftover_directory_is_no_ghost");
    if unsupported(&h) {
        return;
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    b.save();
    let err = h.dir.join("create.err");
    let bundle = b.dir.to_str().unwrap();
    let step = "create-cgroup-made";
    let mut rt = spawn_at(&h, &["create", "--bundle", bundle, &id], step, &err);
    wait_stopped(&h, &mut rt, step, &err);
    signal(rt.pid() as i32, libc::SIGKILL);
    let _ = rt.0.wait();
    assert!(h.root.join(&id).is_dir());
    assert!(!cgroup_dirs(&id).is_empty(), "the cgroup was made");
    let list = h.rt(&["list", "-q"]);
    assert_eq!(list.ok().stdout.trim(), "", "nothing listed");
    h.rt(&["state", &id]).expect_error();
    let again = h.create(&id, &b);
    again.expect_error();
    assert!(again.stderr.contains("exists"), "{}", again.describe());
    h.delete_force(&id).ok();
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// An init that outlives its killed create (here held at `init-ready`, after it stopped
/// dying with rt) leaves a container "creating" that nothing will finish: `rt state`
/// reads it, a plain delete refuses it in one line, `delete --force` kills the init
/// (through a pidfd and its recorded start time) and removes everything.
#[test]
fn creating_container_with_live_init_is_removed() {
    let h = Ctx::new("creating_with_live_init");
    if unsupported(&h) {
        return;
    }
    let _ = h.id();
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    b.save();
    let step = "init-ready";
    let (mut rt, init) = create_held_at(&h, &b, &id, step);
    // rt records the "creating" state when the init's pid reaches it, which may be a
    // moment after the init got here.
    poll(Duration::from_secs(10), "the creating state", || {
        h.state(&id)
    });
    signal(rt.pid() as i32, libc::SIGKILL);
    let _ = rt.0.wait();
    let st = h.state_ok(&id);
    assert_eq!(st["status"], "creating", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(init as i64), "{st}");
    let del = h.delete(&id);
    del.expect_error();
    assert!(del.stderr.contains("creating"), "{}", del.describe());
    assert!(pid_alive(init));
    h.delete_force(&id).ok();
    assert!(
        h.reap(init, Duration::from_secs(5)).is_some(),
        "init killed"
    );
    assert_no_mount(&h, "after delete --force");
    h.assert_nothing_left(&id);
}

/// `rt create` killed while its init sits frozen in its cgroup (frozen here by hand,
/// with rt held still so that it cannot notice): the init cannot die of the SIGKILL that
/// rt's death sent it until thawed, and it holds no lock, so `delete --force` finishes
/// at once, thaws, and leaves no process, cgroup or state directory.
#[test]
fn create_killed_with_its_init_frozen() {
    let h = Ctx::new("create_killed_init_frozen");
    if unsupported(&h) {
        return;
    }
    let _ = h.id();
    let id = h.id();
    let freezer = Path::new("/sys/fs/cgroup/freezer/rt-test").join(&id);
    let unified = Path::new("/sys/fs/cgroup/unified/rt-test").join(&id);
    let mut b = h.bundle(&id);
    // With a cgroup namespace the init joins its cgroup before it goes on (at once).
    b.namespace("cgroup", None);
    b.args(&["true"]);
    b.save();
    let step = "init-started";
    let (mut rt, init) = create_held_at(&h, &b, &id, step);
    let rt_pid = rt.pid() as i32;
    signal(rt_pid, libc::SIGSTOP);
    let (file, frozen) = if freezer.is_dir() {
        (freezer.join("freezer.state"), "FROZEN")
    } else if unified.join("cgroup.freeze").exists() {
        (unified.join("cgroup.freeze"), "1")
    } else {
        signal(rt_pid, libc::SIGKILL);
        skip(&h.name, "no cgroup freezer on this host");
        return;
    };
    let procs = read_or_empty(&file.with_file_name("cgroup.procs"));
    assert!(
        procs.contains(&init.to_string()),
        "init in its cgroup: {procs}"
    );
    fs::write(&file, frozen).unwrap();
    // Thawed whatever happens, so that a regression leaves no frozen process behind.
    let _thaw = Thaw(file.clone());
    signal(rt_pid, libc::SIGKILL);
    let _ = rt.0.wait();
    std::thread::sleep(Duration::from_millis(100));
    assert!(pid_alive(init), "a frozen init is still there");
    let t = Instant::now();
    let del = h.delete_force(&id);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "delete --force took {:?}",
        t.elapsed()
    );
    assert!(del.success(), "{}", del.describe());
    let left = wait_gone(&h.name, Duration::from_secs(5));
    assert!(left.is_empty(), "left running: {:?}", describe(&left));
    assert_no_mount(&h, "after delete --force");
    h.assert_nothing_left(&id);
}

/// Thaws a freezer file when dropped.
struct Thaw(std::path::PathBuf);

impl Drop for Thaw {
    fn drop(&mut self) {
        let thawed = if self.0.ends_with("freezer.state") {
            "THAWED"
        } else {
            "0"
        };
        let _ = fs::write(&self.0, thawed);
    }
}
