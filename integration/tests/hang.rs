//! Kill and delete never hang (issue 17): whatever holds the container's processes (a
//! freezer, its own, a parent's or a sub-cgroup's; uninterruptible sleep in a FUSE
//! filesystem that never answers; an init killed during create), `kill --all ID KILL` and
//! `delete --force ID` finish within a bound, and when the kernel keeps something they say
//! in one line what is left and why. Each test then undoes what held the processes (thaws
//! the parent it froze, aborts its FUSE connection) and checks that nothing is left.

use integration::fuse::StuckFuse;
use integration::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What "never hangs" means here: rt waits at most a few seconds; this is generous.
const BOUND: Duration = Duration::from_secs(30);

/// Run `rt args`, asserting that it finished within [`BOUND`].
#[track_caller]
fn bounded(h: &Ctx, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = h.rt(args);
    let took = started.elapsed();
    assert!(
        took < BOUND,
        "`{}` took {took:?}\n{}",
        out.cmdline,
        out.describe()
    );
    eprintln!(
        "`{}`: exit {:?} in {took:?} {}",
        args.join(" "),
        out.status.code(),
        out.stderr.trim()
    );
    out
}

/// `kill --all ID KILL` that finds nothing left: exit 0, no warning.
#[track_caller]
fn kill_all_clean(h: &Ctx, id: &str) {
    let out = bounded(h, &["kill", "--all", id, "KILL"]);
    out.ok();
    assert_eq!(out.stderr, "", "kill --all warned: {}", out.describe());
}

/// The unified (cgroup2) hierarchy's mount point, if the host has one with a freezer.
fn unified_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
}

/// The v1 freezer hierarchy (its root has no freezer.state, but a tasks file).
fn v1_freezer_root() -> Option<PathBuf> {
    let p = PathBuf::from("/sys/fs/cgroup/freezer");
    p.join("tasks").exists().then_some(p)
}

/// Freeze `dir` (v1 freezer.state or v2 cgroup.freeze) and wait until the kernel says so.
fn freeze(dir: &Path) {
    if dir.join("freezer.state").exists() {
        fs::write(dir.join("freezer.state"), "FROZEN").unwrap();
        poll(Duration::from_secs(10), "freezer.state FROZEN", || {
            (read_or_empty(&dir.join("freezer.state")).trim() == "FROZEN").then_some(())
        });
    } else {
        fs::write(dir.join("cgroup.freeze"), "1").unwrap();
        poll(Duration::from_secs(10), "cgroup.events frozen 1", || {
            read_or_empty(&dir.join("cgroup.events"))
                .lines()
                .any(|l| l == "frozen 1")
                .then_some(())
        });
    }
}

fn thaw(dir: &Path) {
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    let _ = fs::write(dir.join("cgroup.freeze"), "0");
}

/// Cgroups a test froze, thawed when it ends (also when it fails).
struct ThawOnDrop(Vec<PathBuf>);

impl Drop for ThawOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(|d| thaw(d));
    }
}

/// How the container's cgroup gets frozen in [`frozen_container_is_killed_and_deleted`].
#[derive(Debug, Clone, Copy)]
enum Freeze {
    Pause,
    V1ByHand,
    UnifiedByHand,
}

/// The container's cgroup frozen by `rt pause`, or by hand (v1 freezer.state FROZEN, or
/// cgroup.freeze 1 in its unified directory): `kill --all ID KILL` ends every process
/// (rt thaws what it made, after signalling) without a warning, so does `kill ID KILL`
/// (the init, whose death ends its pid namespace), and `delete --force` of a frozen
/// container removes everything; each within the bound.
#[test]
fn frozen_container_is_killed_and_deleted() {
    let h = Ctx::new("frozen_container_is_killed");
    let mut ways = vec![Freeze::Pause];
    if v1_freezer_root().is_some() {
        ways.push(Freeze::V1ByHand);
    }
    if unified_root().is_some() {
        ways.push(Freeze::UnifiedByHand);
    }
    for way in ways {
        for how in ["kill --all", "kill", "delete --force"] {
            let id = h.id();
            let mut b = h.bundle(&id);
            b.sh("sleep 1000 & sleep 1001 & exec sleep 1002");
            h.run_detached(&id, &b).ok();
            let frozen_dir = match way {
                Freeze::Pause => {
                    h.rt(&["pause", &id]).ok();
                    None
                }
                Freeze::V1ByHand => Some(v1_freezer_root().unwrap().join("rt-test").join(&id)),
                Freeze::UnifiedByHand => Some(unified_root().unwrap().join("rt-test").join(&id)),
            };
            if let Some(dir) = &frozen_dir {
                if !dir.join("cgroup.freeze").exists() && !dir.join("freezer.state").exists() {
                    skip(
                        &h.name,
                        format!("{way:?}: no freezer file in {}", dir.display()),
                    );
                    h.delete_force(&id).ok();
                    continue;
                }
                freeze(dir);
            }
            if matches!(way, Freeze::Pause) {
                assert_eq!(h.status(&id).as_deref(), Some("paused"));
            }
            match how {
                "kill --all" => kill_all_clean(&h, &id),
                // The init alone: rt thaws the paused container so that it dies (runc too).
                "kill" => {
                    bounded(&h, &["kill", &id, "KILL"]).ok();
                }
                _ => {
                    bounded(&h, &["delete", "--force", &id]).ok();
                }
            }
            if how != "delete --force" {
                h.wait_status(&id, "stopped", Duration::from_secs(10));
                bounded(&h, &["delete", &id]).ok();
            }
            h.assert_nothing_left(&id);
            eprintln!("{way:?} {how}: ok");
        }
    }
}

/// A parent cgroup of the test's own for container `id`; when dropped (also when the test
/// fails) it is thawed, the container deleted, and the parent removed.
struct ParentCgroup<'a>(PathBuf, &'a Ctx, String);

impl Drop for ParentCgroup<'_> {
    fn drop(&mut self) {
        thaw(&self.0);
        let args = ["delete", "--force", self.2.as_str()];
        let _ = self.1.try_rt_cmd(self.1.command(&args), &args);
        for _ in 0..100 {
            if fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: cannot remove {}", self.0.display());
    }
}

/// The container's cgroup below a parent that the test made and froze. On v1 the parent's
/// freeze holds the container's processes and cannot be undone from below: rt does not
/// thaw it (it is not the container's: a pod's, an admin's), so `kill --all` warns and
/// `delete --force` fails, each in one line naming the processes, the parent and FROZEN,
/// within the bound; the state stays, and once the test thaws the parent a second delete
/// removes everything. On cgroup v2 a frozen task dies of SIGKILL: both just succeed, and
/// the parent stays frozen.
#[test]
fn frozen_parent_cgroup_is_reported_not_thawed() {
    let h = Ctx::new("frozen_parent_cgroup");
    let mut roots = Vec::new();
    if let Some(v1) = v1_freezer_root() {
        roots.push((v1, true));
    }
    if let Some(u) = unified_root() {
        roots.push((u, false));
    }
    if roots.is_empty() {
        skip(&h.name, "this host has no freezer");
        return;
    }
    for (root, v1) in roots {
        let id = h.id();
        let parent_name = format!("rt-hang-{id}");
        let parent = ParentCgroup(root.join(&parent_name), &h, id.clone());
        fs::create_dir(&parent.0).unwrap();
        if !v1 && !parent.0.join("cgroup.freeze").exists() {
            skip(&h.name, "the unified hierarchy has no cgroup.freeze");
            continue;
        }
        let mut b = h.bundle(&id);
        b.config["linux"]["cgroupsPath"] = json!(format!("/{parent_name}/{id}"));
        b.sh("sleep 1000 & exec sleep 1001");
        h.run_detached(&id, &b).ok();
        let init = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
        freeze(&parent.0);
        if v1 {
            let kill = bounded(&h, &["kill", "--all", &id, "KILL"]);
            kill.ok();
            let warning = kill.stderr.trim();
            assert_eq!(warning.lines().count(), 1, "{}", kill.describe());
            for needle in [
                "warning".to_string(),
                format!("pid {init} (sleep) frozen"),
                format!(
                    "{} (FROZEN, an ancestor rt does not thaw)",
                    parent.0.display()
                ),
            ] {
                assert!(warning.contains(&needle), "{needle:?} not in {warning}");
            }
            let delete = bounded(&h, &["delete", "--force", &id]);
            delete.expect_error();
            for needle in [
                format!("container {id}: 2 processes still there"),
                format!("pid {init} (sleep) frozen"),
                format!("by {} (FROZEN", parent.0.display()),
                "the container is kept: delete it again once they are gone".to_string(),
            ] {
                assert!(
                    delete.stderr.contains(&needle),
                    "{needle:?} not in {}",
                    delete.stderr
                );
            }
            assert!(
                h.state(&id).is_some(),
                "the state went with the container left"
            );
            assert_eq!(
                read_or_empty(&parent.0.join("freezer.state")).trim(),
                "FROZEN",
                "rt thawed a cgroup that is not the container's"
            );
            thaw(&parent.0);
            bounded(&h, &["delete", "--force", &id]).ok();
        } else {
            kill_all_clean(&h, &id);
            h.wait_status(&id, "stopped", Duration::from_secs(10));
            bounded(&h, &["delete", "--force", &id]).ok();
            assert_eq!(
                read_or_empty(&parent.0.join("cgroup.freeze")).trim(),
                "1",
                "rt thawed a cgroup that is not the container's"
            );
        }
        h.assert_nothing_left(&id);
        drop(parent);
    }
}

/// The pid of the process of container `id` whose command name is `comm`.
fn find_process(id: &str, comm: &str) -> i32 {
    poll(Duration::from_secs(10), &format!("{comm} in {id}"), || {
        marked_processes(id)
            .into_iter()
            .find(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm))
    })
}

/// A process of the container in uninterruptible sleep (D): it closed a file of a FUSE
/// filesystem (served by this test) that never answers FLUSH, and got a signal. Nothing
/// ends it. `kill --all` warns and `delete --force` fails, within the bound, each in one
/// line naming the pid, its state D and where it sleeps; with a pid namespace the init
/// is named too, waiting for the namespace to empty. Once the test aborts the FUSE
/// connection, `delete --force` removes everything.
#[test]
fn process_in_uninterruptible_sleep_is_reported() {
    let h = Ctx::new("process_in_d_state");
    for pidns in [true, false] {
        let id = h.id();
        let dir = h.subdir(&format!("fuse-{id}"));
        let mut fuse = match StuckFuse::mount(&dir) {
            Ok(f) => f,
            Err(e) => {
                skip(&h.name, format!("cannot mount a FUSE filesystem: {e}"));
                return;
            }
        };
        let mut b = h.bundle(&id);
        b.mount(
            json!({ "destination": "/fuse", "type": "bind", "source": dir,
                        "options": ["bind"] }),
        );
        if !pidns {
            b.remove_namespace("pid");
        }
        b.sh(&format!("cat /fuse/{} & exec sleep 1000", StuckFuse::FILE));
        h.run_detached(&id, &b).ok();
        let init = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
        poll(Duration::from_secs(10), "FLUSH to reach the server", || {
            (fuse.flushes() > 0).then_some(())
        });
        let cat = find_process(&id, "cat");
        // The first wait for FLUSH is interruptible; after a signal it is not.
        // SAFETY: kill(2) of the container's process this test started.
        unsafe { libc::kill(cat, libc::SIGTERM) };
        poll(Duration::from_secs(10), "cat in state D", || {
            (proc_state(cat).map(|s| s.0) == Some('D')).then_some(())
        });
        let kill = bounded(&h, &["kill", "--all", &id, "KILL"]);
        kill.ok();
        let warning = kill.stderr.trim();
        assert_eq!(warning.lines().count(), 1, "{}", kill.describe());
        let d_state = format!("pid {cat} (cat) in uninterruptible sleep (D) in ");
        assert!(warning.contains(&d_state), "{d_state:?} not in {warning}");
        let delete = bounded(&h, &["delete", "--force", &id]);
        delete.expect_error();
        let cgroup = cgroup_dirs(&id);
        assert!(!cgroup.is_empty(), "the cgroup went with a process in it");
        for needle in [format!("container {id}: "), d_state.clone()] {
            assert!(
                delete.stderr.contains(&needle),
                "{needle:?} not in {}",
                delete.stderr
            );
        }
        assert!(
            cgroup
                .iter()
                .any(|c| delete.stderr.contains(&format!("cgroup {}", c.display()))),
            "no cgroup of {cgroup:?} named in {}",
            delete.stderr
        );
        if pidns {
            // Its init waits in the kernel for the rest of its pid namespace to go.
            assert!(
                delete.stderr.contains(&format!("pid {init} (sleep)")),
                "{}",
                delete.stderr
            );
        }
        assert!(
            h.state(&id).is_some(),
            "the state went with the container left"
        );
        fuse.abort();
        poll(Duration::from_secs(10), "cat to die", || {
            (!pid_alive(cat)).then_some(())
        });
        bounded(&h, &["delete", "--force", &id]).ok();
        h.assert_nothing_left(&id);
    }
}

/// The init killed while `rt create` waits (during a prestart hook): create fails in one
/// line, and `kill --all` and `delete --force` then finish within the bound and leave
/// nothing. The same for an init killed after create returned (a created container).
#[test]
fn init_killed_during_create_leaves_kill_and_delete_bounded() {
    let h = Ctx::new("init_killed_during_create");
    let id = h.id();
    let mut b = h.bundle(&id);
    let started = h.dir.join("hook.started");
    // With an env of its own: the hook must not carry the harness's marker.
    b.hook_value(
        "prestart",
        json!({ "path": "/bin/sh", "env": ["PATH=/usr/bin:/bin"],
                "args": ["sh", "-c", format!("touch {}; exec sleep 3", started.display())] }),
    );
    b.args(&["sleep", "1000"]);
    b.save();
    let mut c = h.command(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let err_file = h.dir.join("create.stderr");
    c.stdout(std::process::Stdio::null());
    c.stderr(fs::File::create(&err_file).unwrap());
    let mut create = ChildGuard::spawn(&mut c);
    poll(Duration::from_secs(20), "the hook to start", || {
        started.exists().then_some(())
    });
    // Every process of rt's but `rt create` itself: the container's init (and any
    // intermediate child), all started by this test.
    let inits: Vec<i32> = marked_processes(&h.name)
        .into_iter()
        .filter(|&p| p != create.pid() as i32)
        .collect();
    assert!(!inits.is_empty(), "no init found");
    for p in &inits {
        // SAFETY: kill(2) of a process this test started (rt's child).
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
    let status = wait_child(&mut create.0, BOUND, "rt create");
    let err = read_or_empty(&err_file);
    assert_eq!(status.code(), Some(1), "create: {err}");
    assert_eq!(err.trim().lines().count(), 1, "create: {err}");
    let kill = bounded(&h, &["kill", "--all", &id, "KILL"]);
    if !kill.success() {
        kill.expect_error();
    }
    bounded(&h, &["delete", "--force", &id]).ok();
    h.assert_nothing_left(&id);

    // Killed after create returned: the container is created, its init gone.
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("sleep 1000 & exec sleep 1001");
    h.create_ok(&id, &b);
    let init = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
    // SAFETY: kill(2) of the container init this test created.
    unsafe { libc::kill(init, libc::SIGKILL) };
    h.wait_status(&id, "stopped", Duration::from_secs(10));
    kill_all_clean(&h, &id);
    bounded(&h, &["delete", &id]).ok();
    h.assert_nothing_left(&id);
}

/// The container makes sub-cgroups inside its own (a cgroup namespace, a writable cgroup
/// mount), moves a process into the deepest, and that sub-cgroup is frozen (v1
/// freezer.state, and cgroup.freeze in the unified one). Without a pid namespace only rt's
/// walk of the tree reaches that process: `kill --all` thaws and kills it with no warning,
/// `delete --force` (without a kill first) too, within the bound, leaving nothing.
#[test]
fn frozen_sub_cgroup_is_thawed_and_killed() {
    let h = Ctx::new("frozen_sub_cgroup");
    for kill_first in [true, false] {
        let id = h.id();
        let b = h.sub_cgroup_bundle(&id, false);
        h.run_detached(&id, &b).ok();
        let hierarchies = cgroup_dirs(&id);
        assert!(!hierarchies.is_empty());
        poll(Duration::from_secs(10), "the sub-cgroups to fill", || {
            hierarchies
                .iter()
                .all(|d| {
                    !read_or_empty(&d.join("sub/deeper/cgroup.procs"))
                        .trim()
                        .is_empty()
                })
                .then_some(())
        });
        let subs: Vec<PathBuf> = hierarchies
            .iter()
            .map(|d| d.join("sub"))
            .filter(|s| s.join("freezer.state").exists() || s.join("cgroup.freeze").exists())
            .collect();
        // Should rt fail to, the test thaws them, so that the context's cleanup can end
        // the container.
        let _thaw = ThawOnDrop(subs.clone());
        subs.iter().for_each(|s| freeze(s));
        if subs.is_empty() {
            skip(&h.name, "no freezer in the container's sub-cgroups");
        }
        if kill_first {
            kill_all_clean(&h, &id);
            poll(Duration::from_secs(10), "every process to die", || {
                hierarchies
                    .iter()
                    .all(|d| {
                        read_or_empty(&d.join("cgroup.procs")).trim().is_empty()
                            && read_or_empty(&d.join("sub/deeper/cgroup.procs"))
                                .trim()
                                .is_empty()
                    })
                    .then_some(())
            });
            bounded(&h, &["delete", &id]).ok();
        } else {
            bounded(&h, &["delete", "--force", &id]).ok();
        }
        h.assert_nothing_left(&id);
    }
}
