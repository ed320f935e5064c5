//! OOM kills are never lost and say where the limit was (issue 17): `rt events` reports
//! every OOM kill before its stream ends with the container, the shim publishes TaskOOM
//! before the TaskExit of the task the kill ended, and both say whether the container's
//! own memory limit or an ancestor's (a pod-level or slice limit) was hit.
//!
//! The allocating process is the container's init itself (`x=$x$x` doubles a shell
//! string until the OOM killer ends it): the kill stops the container at once, the
//! hardest case for the order (the exit can be reaped before the OOM notification is
//! read). Ancestor limits are set on parent cgroups this file makes and removes; no
//! system cgroup is written.

use integration::containerd::{Containerd, IMAGE, RUNTIME, T};
use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;

/// Grows without bound: only the OOM killer ends it.
const GROW: &str = "x=1; while :; do x=$x$x; done";
const MIB: i64 = 1024 * 1024;
/// Containers killed per run: each must give exactly one OOM report.
const N: usize = 20;

/// A parent cgroup with a memory limit, made by the test below the memory hierarchy's
/// root (never below a system cgroup), removed with what is left below it on drop.
struct ParentCgroup {
    name: String,
}

impl ParentCgroup {
    fn new(tag: &str, limit: i64) -> ParentCgroup {
        let name = format!("rt-oom-{tag}-{}", std::process::id());
        remove_cgroup_tree(&name);
        let p = ParentCgroup { name };
        if let Some(root) = host::v1_hierarchy("memory") {
            let dir = root.join(&p.name);
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            write(&dir, "memory.limit_in_bytes", limit);
            // memsw after the memory limit (the kernel wants memsw >= memory).
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                write(&dir, "memory.memsw.limit_in_bytes", limit);
            }
        } else {
            let root = host::controller_root("memory").expect("a memory controller");
            let dir = root.join(&p.name);
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            write(&dir, "memory.max", limit);
            if dir.join("memory.swap.max").exists() {
                write(&dir, "memory.swap.max", 0);
            }
        }
        p
    }

    /// `linux.cgroupsPath` of a container below it.
    fn child(&self, id: &str) -> String {
        format!("/{}/{id}", self.name)
    }
}

impl Drop for ParentCgroup {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.name);
    }
}

fn write(dir: &std::path::Path, file: &str, v: i64) {
    let p = dir.join(file);
    fs::write(&p, v.to_string()).unwrap_or_else(|e| panic!("write {v} to {}: {e}", p.display()));
}

/// No cgroup directory of container `id` below `parent` is left, in any hierarchy.
fn assert_no_cgroup_below(parent: &ParentCgroup, id: &str) {
    let left: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join(&parent.name).join(id))
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

/// Create container `id`, follow `rt events` from before its start until the stream ends
/// by itself (the container stopped), delete it; the stream's oom events, in order.
/// Every other line must be a stats event, and the stream must end with status 0.
fn oom_events(h: &Ctx, id: &str, b: &Bundle) -> Vec<Value> {
    h.create_ok(id, b);
    let mut cmd = h.command(&["events", "--interval", "200ms", id]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut events = ChildGuard::spawn(&mut cmd);
    let stdout = events.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first stats event: the stream has read its OOM baseline; only now may the
    // container start allocating.
    let first = rx.recv_timeout(T).expect("a first stats event within 30s");
    assert!(first.contains(r#""type":"stats""#), "{first}");
    h.start(id).ok();
    let st = wait_child(&mut events.0, T, "rt events after the container stopped");
    assert!(st.success(), "rt events: {st:?}");
    let mut ooms = Vec::new();
    for line in rx.iter() {
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("event is not JSON ({e}): {line}"));
        match v["type"].as_str() {
            Some("oom") => ooms.push(v),
            Some("stats") => {}
            _ => panic!("unexpected event: {line}"),
        }
    }
    assert_eq!(h.status(id).as_deref(), Some("stopped"));
    h.delete(id).ok();
    ooms
}

fn oom_event(id: &str, level: &str, cgroup: &str) -> Value {
    json!({ "type": "oom", "id": id, "data": { "level": level, "cgroup": cgroup } })
}

/// runc's `events` has no level, and on cgroup v1 ends its stream only at delete.
fn rt_only(test: &str) -> bool {
    if is_runc() {
        skip(test, "runc's events has no OOM level (an rt extension)");
        return false;
    }
    true
}

#[test]
fn rt_events_reports_each_of_20_oom_kills_before_its_stream_ends() {
    if !rt_only("rt_events_reports_each_of_20_oom_kills_before_its_stream_ends") {
        return;
    }
    let h = Ctx::new("oom_events_20");
    let mut reported = 0;
    for i in 0..N {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["linux"]["resources"]["memory"] = host::memory_without_swap(16 * MIB);
        b.sh(GROW);
        let ooms = oom_events(&h, &id, &b);
        assert_eq!(
            ooms,
            vec![oom_event(&id, "container", &cgroups_path(&id))],
            "container {i}: exactly one OOM, its own limit"
        );
        h.assert_nothing_left(&id);
        reported += ooms.len();
    }
    assert_eq!(reported, N);
}

#[test]
fn rt_events_names_the_level_whose_limit_was_hit() {
    if !rt_only("rt_events_names_the_level_whose_limit_was_hit") {
        return;
    }
    // Declared first: dropped after the containers are gone.
    let parent = ParentCgroup::new("events", 32 * MIB);
    let h = Ctx::new("oom_events_level");
    let ancestor = format!("/{}", parent.name);
    // (own memory limit, the level expected): none or one above the parent's is the
    // parent's limit; one below it is the container's.
    for (own, level) in [
        (None, "ancestor"),
        (Some(64 * MIB), "ancestor"),
        (Some(16 * MIB), "container"),
    ] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["linux"]["cgroupsPath"] = json!(parent.child(&id));
        let mut memory = match own {
            Some(limit) => host::memory_without_swap(limit),
            None => json!({}),
        };
        if host::v1_hierarchy("memory").is_some() {
            // No swapping instead of the kill (see host::memory_without_swap).
            memory["swappiness"] = json!(0);
        }
        b.config["linux"]["resources"]["memory"] = memory;
        b.sh(GROW);
        let ooms = oom_events(&h, &id, &b);
        let cgroup = match level {
            "ancestor" => ancestor.clone(),
            _ => parent.child(&id),
        };
        assert_eq!(
            ooms,
            vec![oom_event(&id, level, &cgroup)],
            "own limit {own:?}"
        );
        assert_no_cgroup_below(&parent, &id);
    }
}

/// `ctr events` lines: (topic, event JSON).
fn ctr_events(text: &str) -> Vec<(String, Value)> {
    text.lines()
        .filter_map(|l| {
            let at = l.find(" /tasks/")?;
            let (topic, json) = l[at + 1..].split_once(' ')?;
            Some((topic.to_string(), serde_json::from_str(json).ok()?))
        })
        .collect()
}

/// Through containerd and the shim, for each of `ids`: exactly one /tasks/oom, before
/// the one /tasks/exit of its init (status 137, SIGKILL).
fn assert_oom_before_exit(events_out: &std::path::Path, ids: &[String]) {
    let events = poll(T, "every task's exit event", || {
        let ev = ctr_events(&fs::read_to_string(events_out).unwrap_or_default());
        let exits = ev.iter().filter(|(t, _)| t == "/tasks/exit").count();
        (exits >= ids.len()).then_some(ev)
    });
    for id in ids {
        let mine: Vec<(usize, &str, &Value)> = events
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v["container_id"] == id.as_str())
            .map(|(i, (t, v))| (i, t.as_str(), v))
            .collect();
        let at = |topic: &str| -> Vec<(usize, &Value)> {
            mine.iter()
                .filter(|(_, t, _)| *t == topic)
                .map(|(i, _, v)| (*i, *v))
                .collect()
        };
        let (ooms, exits) = (at("/tasks/oom"), at("/tasks/exit"));
        assert_eq!(ooms.len(), 1, "{id}: one TaskOOM: {mine:?}");
        assert_eq!(exits.len(), 1, "{id}: one TaskExit: {mine:?}");
        assert!(
            ooms[0].0 < exits[0].0,
            "{id}: TaskOOM after TaskExit: {mine:?}"
        );
        assert_eq!(exits[0].1["exit_status"], 137, "{id}: {mine:?}");
    }
}

/// The shim's log line (through containerd's log) for `id`'s OOM: the level and where.
fn assert_logged_level(c: &Containerd, id: &str, level: &str, cgroup: &str) {
    let want = format!("{id}: OOM kill; memory limit hit: {level} ({cgroup})");
    poll(T, &format!("the shim's log line `{want}`"), || {
        fs::read_to_string(c.dir.join("containerd.log"))
            .unwrap_or_default()
            .contains(&want)
            .then_some(())
    });
}

#[test]
fn shim_publishes_each_of_20_task_ooms_before_its_task_exit() {
    // ctr sets no swap limit nor swappiness: where swap escapes the limit, nothing is killed.
    if let Some(why) = host::unaccounted_swap() {
        skip(
            "shim_publishes_each_of_20_task_ooms_before_its_task_exit",
            why,
        );
        return;
    }
    let c = Containerd::start("oom20");
    let (events, events_out) = c.watch_events();
    let ids: Vec<String> = (0..N).map(|i| format!("oom{i}")).collect();
    let limit = (16 * MIB).to_string();
    for id in &ids {
        c.ctr(&[
            "run",
            "--rm",
            "--memory-limit",
            &limit,
            "--runtime",
            RUNTIME,
            IMAGE,
            id,
            "sh",
            "-c",
            GROW,
        ])
        .expect_code(137);
    }
    assert_oom_before_exit(&events_out, &ids);
    drop(events);
    // ctr puts a container at /<namespace>/<id>.
    for id in &ids {
        assert_logged_level(&c, id, "container", &format!("/{}/{id}", c.ns));
    }
}

#[test]
fn shim_logs_an_ancestor_limit_as_the_level() {
    if let Some(why) = host::unaccounted_swap() {
        skip("shim_logs_an_ancestor_limit_as_the_level", why);
        return;
    }
    let parent = ParentCgroup::new("shim", 32 * MIB);
    let c = Containerd::start("oomlevel");
    let (events, events_out) = c.watch_events();
    let id = "oompod".to_string();
    let cgroup = parent.child(&id);
    // No limit of its own: the parent's 32 MiB is hit.
    c.ctr(&[
        "run",
        "--rm",
        "--cgroup",
        &cgroup,
        "--runtime",
        RUNTIME,
        IMAGE,
        &id,
        "sh",
        "-c",
        GROW,
    ])
    .expect_code(137);
    assert_oom_before_exit(&events_out, std::slice::from_ref(&id));
    drop(events);
    assert_logged_level(&c, &id, "ancestor", &format!("/{}", parent.name));
    drop(c);
    assert_no_cgroup_below(&parent, &id);
}
