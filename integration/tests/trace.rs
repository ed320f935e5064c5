//! `--trace FILE` / `RT_TRACE`: a JSON line per setup step, from rt, the container init and
//! an exec'd process, and `rt trace summarize`. rt's own feature: skipped against runc.

use integration::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

fn skip_for_runc(test: &str) -> bool {
    if is_runc() {
        skip(test, "--trace is rt's own flag");
        return true;
    }
    false
}

/// The events in a trace file, each checked for the fields every event has.
fn events(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_eq!(v["ph"], "X", "{l}");
            for k in ["name", "cat"] {
                assert!(v[k].is_string(), "{k} in {l}");
            }
            for k in ["ts", "dur", "pid", "tid"] {
                assert!(v[k].is_u64(), "{k} in {l}");
            }
            let a = &v["args"];
            assert_eq!(a["trace"].as_str().map(str::len), Some(32), "{l}");
            for k in ["span", "parent", "run"] {
                assert_eq!(a[k].as_str().map(str::len), Some(16), "{k} in {l}");
            }
            let (s, e) = (
                a["start_ns"].as_u64().unwrap(),
                a["end_ns"].as_u64().unwrap(),
            );
            assert!(s <= e, "{l}");
            assert_eq!(v["ts"].as_u64().unwrap(), s / 1000, "{l}");
            v
        })
        .collect()
}

fn names_by(evs: &[Value], role: &str) -> HashSet<String> {
    evs.iter()
        .filter(|e| e["cat"] == role)
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn details(evs: &[Value], name: &str) -> Vec<String> {
    evs.iter()
        .filter(|e| e["name"] == name)
        .filter_map(|e| e["args"]["detail"].as_str().map(str::to_string))
        .collect()
}

/// One run's spans form one tree: one root (no parent in the file), every other span's
/// parent is in the file, and a step inside another of the same process lies within it.
fn check_tree(evs: &[Value]) {
    let by_span: HashMap<&str, &Value> = evs
        .iter()
        .map(|e| (e["args"]["span"].as_str().unwrap(), e))
        .collect();
    assert_eq!(by_span.len(), evs.len(), "span ids are unique");
    let roots: Vec<&&Value> = by_span
        .values()
        .filter(|e| !by_span.contains_key(e["args"]["parent"].as_str().unwrap()))
        .collect();
    assert_eq!(roots.len(), 1, "one root span: {roots:?}");
    let root = roots[0];
    let run = root["args"]["span"].as_str().unwrap();
    for e in evs {
        assert_eq!(e["args"]["run"], run, "every event names its run: {e}");
        assert_eq!(e["args"]["trace"], root["args"]["trace"], "{e}");
        let parent = match by_span.get(e["args"]["parent"].as_str().unwrap()) {
            Some(p) => p,
            None => continue,
        };
        let (ps, pe) = (
            parent["args"]["start_ns"].as_u64().unwrap(),
            parent["args"]["end_ns"].as_u64().unwrap(),
        );
        let (s, end) = (
            e["args"]["start_ns"].as_u64().unwrap(),
            e["args"]["end_ns"].as_u64().unwrap(),
        );
        assert!(s >= ps, "a step starts within its parent: {e} in {parent}");
        if parent["pid"] == e["pid"] {
            assert!(end <= pe, "a step ends within its parent: {e} in {parent}");
        }
    }
}

/// `rt run --trace TRACE --bundle B ID` (the config saved first).
fn run_traced(h: &Ctx, b: &Bundle, id: &str, trace: &Path) -> Output {
    b.save();
    h.rt(&[
        "run",
        "--trace",
        trace.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        id,
    ])
}

#[test]
fn run_traces_every_step_of_rt_and_the_init() {
    if skip_for_runc("run_traces_every_step_of_rt_and_the_init") {
        return;
    }
    let h = Ctx::new("run_traces_every_step_of_rt_and_the_init");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.hook("prestart", "true");
    b.hook("createContainer", "true");
    b.sh("ls -l /proc/self/fd/");
    let trace = h.dir.join("trace.jsonl");
    let out = run_traced(&h, &b, &id, &trace);
    out.ok();
    assert!(
        !out.stdout.contains("trace.jsonl"),
        "the program must not inherit the trace file:\n{}",
        out.stdout
    );
    let evs = events(&trace);
    check_tree(&evs);
    let rt = names_by(&evs, "rt");
    for step in [
        "run",
        "config-load",
        "validate",
        "state-dir",
        "plan",
        "seccomp-compile",
        "cgroup-create",
        "cgroup-mkdir",
        "cgroup-write",
        "fork",
        "wait-init",
        "hook",
        "state-save",
        "release-init",
    ] {
        assert!(rt.contains(step), "rt step {step} missing: {rt:?}");
    }
    let init = names_by(&evs, "init");
    for step in [
        "cgroup-join",
        "unshare",
        "fork-init",
        "rootfs-prepare",
        "mount",
        "devices",
        "hook",
        "pivot-root",
        "masked-readonly-paths",
        "user-capabilities",
        "ready",
        "wait-start",
        "exec",
    ] {
        assert!(init.contains(step), "init step {step} missing: {init:?}");
    }
    // The namespaces made by the one unshare, each mount with its destination, each hook
    // by phase.
    let unshared: HashSet<String> = details(&evs, "unshare")
        .iter()
        .flat_map(|d| d.split(',').map(str::to_string))
        .collect();
    for ns in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(
            unshared.contains(ns) == b.has_namespace(ns),
            "unshare {ns}: {unshared:?}"
        );
    }
    let mounts = details(&evs, "mount");
    for m in b.config["mounts"].as_array().unwrap() {
        let dest = m["destination"].as_str().unwrap().to_string();
        assert!(
            mounts.contains(&dest),
            "mount {dest} not traced: {mounts:?}"
        );
    }
    let hooks = details(&evs, "hook");
    assert!(
        hooks.iter().any(|h| h.starts_with("prestart[0] ")),
        "{hooks:?}"
    );
    assert!(
        hooks.iter().any(|h| h.starts_with("createContainer[0] ")),
        "{hooks:?}"
    );
    // The init's steps are its own process's; the first-child steps another one.
    let pids = |role: &str| -> HashSet<u64> {
        evs.iter()
            .filter(|e| e["cat"] == role)
            .map(|e| e["pid"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(pids("rt").len(), 1, "rt is one process");
    assert!(pids("rt").is_disjoint(&pids("init")));
    // The cgroup writes name the file and the value.
    assert!(details(&evs, "cgroup-write")
        .iter()
        .all(|d| d.starts_with("/sys/fs/cgroup/") && d.contains('=')));
}

#[test]
fn create_and_exec_trace_to_the_env_var_file() {
    if skip_for_runc("create_and_exec_trace_to_the_env_var_file") {
        return;
    }
    let h = Ctx::new("create_and_exec_trace_to_the_env_var_file");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("sleep 1000");
    b.save();
    let trace = h.dir.join("create.jsonl");
    let mut c = h.command(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    c.env("RT_TRACE", &trace);
    h.rt_cmd(c, &["create"]).ok();
    let evs = events(&trace);
    check_tree(&evs);
    // Everything up to "ready" is written before create returns: the rest comes at start.
    let init = names_by(&evs, "init");
    assert!(init.contains("ready") && !init.contains("exec"), "{init:?}");
    let init_pid = h.state_ok(&id)["pid"].as_u64().unwrap();
    assert!(
        evs.iter()
            .any(|e| e["name"] == "ready" && e["pid"] == init_pid),
        "the init ({init_pid}) reports its own steps"
    );
    h.start(&id).ok();
    poll(
        std::time::Duration::from_secs(5),
        "the init's exec event",
        || {
            names_by(&events(&trace), "init")
                .contains("exec")
                .then_some(())
        },
    );

    let etrace = h.dir.join("exec.jsonl");
    let out = h.rt(&["exec", "--trace", etrace.to_str().unwrap(), &id, "true"]);
    out.ok();
    let evs = events(&etrace);
    check_tree(&evs);
    let rt = names_by(&evs, "rt");
    for step in ["exec", "state-load", "plan", "fork", "wait-exec"] {
        assert!(rt.contains(step), "exec step {step} missing: {rt:?}");
    }
    let child = names_by(&evs, "exec");
    for step in ["cgroup-join", "setns", "user-capabilities", "exec"] {
        assert!(
            child.contains(step),
            "exec child step {step} missing: {child:?}"
        );
    }
    h.rt(&["delete", "--force", &id]).ok();
}

#[test]
fn user_namespace_steps_are_traced() {
    if skip_for_runc("user_namespace_steps_are_traced") {
        return;
    }
    let h = Ctx::new("user_namespace_steps_are_traced");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.user_namespace(100_000);
    b.args(&["true"]);
    let trace = h.dir.join("trace.jsonl");
    run_traced(&h, &b, &id, &trace).ok();
    let evs = events(&trace);
    check_tree(&evs);
    assert!(names_by(&evs, "rt").contains("id-maps"));
    assert!(names_by(&evs, "init").contains("wait-id-maps"));
    assert!(details(&evs, "unshare").contains(&"user".to_string()));
}

#[test]
fn traceparent_makes_the_run_a_child_of_the_callers_span() {
    if skip_for_runc("traceparent_makes_the_run_a_child_of_the_callers_span") {
        return;
    }
    let h = Ctx::new("traceparent_makes_the_run_a_child_of_the_callers_span");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    b.save();
    let trace = h.dir.join("trace.jsonl");
    let mut c = h.command(&["run", "--trace", trace.to_str().unwrap(), "--bundle"]);
    c.args([b.dir.to_str().unwrap(), &id]);
    c.env(
        "TRACEPARENT",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    h.rt_cmd(c, &["run"]).ok();
    let evs = events(&trace);
    check_tree(&evs);
    assert!(evs
        .iter()
        .all(|e| e["args"]["trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"));
    let root = evs.iter().find(|e| e["name"] == "run").unwrap();
    assert_eq!(root["args"]["parent"], "00f067aa0ba902b7");
}

#[test]
fn summarize_gives_medians_per_step_over_runs() {
    if skip_for_runc("summarize_gives_medians_per_step_over_runs") {
        return;
    }
    let h = Ctx::new("summarize_gives_medians_per_step_over_runs");
    let trace = h.dir.join("runs.jsonl");
    let runs = 4;
    for _ in 0..runs {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.args(&["true"]);
        run_traced(&h, &b, &id, &trace).ok();
    }
    let out = h.rt(&[
        "trace",
        "summarize",
        "--format",
        "json",
        trace.to_str().unwrap(),
    ]);
    out.ok();
    let s: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["runs"], runs);
    let steps = s["steps"].as_array().unwrap();
    let row = |name: &str| {
        steps
            .iter()
            .find(|r| r["step"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {}", out.stdout))
    };
    for name in ["run", "config-load", "fork", "mount", "pivot-root", "exec"] {
        assert_eq!(row(name)["runs"], runs, "{name}");
    }
    let total = row("run");
    assert!(total["median_us"].as_u64().unwrap() >= row("fork")["median_us"].as_u64().unwrap());
    assert!(total["p90_us"].as_u64() >= total["median_us"].as_u64());
    // Rows follow the timeline: the root first, then config-load before the fork.
    assert_eq!(steps[0]["step"], "run");
    let pos = |n: &str| steps.iter().position(|r| r["step"] == n).unwrap();
    assert!(pos("config-load") < pos("fork") && pos("fork") < pos("pivot-root"));
    // --detail: one row per mount destination.
    let out = h.rt(&["trace", "summarize", "--detail", trace.to_str().unwrap()]);
    out.ok();
    assert!(out.stdout.contains("mount /proc"), "{}", out.stdout);
    assert!(
        out.stdout.starts_with(&format!("{runs} run(s)")),
        "{}",
        out.stdout
    );

    // A file that is not a trace: one line naming it and the line.
    let bad = h.dir.join("bad.jsonl");
    fs::write(&bad, "{\"name\":\"x\"}\n").unwrap();
    let out = h.rt(&["trace", "summarize", bad.to_str().unwrap()]);
    out.expect_error();
    assert!(out.stderr.contains("bad.jsonl: line 1"), "{}", out.stderr);
}

#[test]
fn an_unwritable_trace_file_fails_before_anything_is_made() {
    if skip_for_runc("an_unwritable_trace_file_fails_before_anything_is_made") {
        return;
    }
    let h = Ctx::new("an_unwritable_trace_file_fails_before_anything_is_made");
    let id = h.id();
    let b = h.bundle(&id);
    b.save();
    let out = h.rt(&[
        "create",
        "--trace",
        "/nonexistent-dir/trace.jsonl",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    out.expect_error();
    assert!(
        out.stderr
            .contains("open trace file /nonexistent-dir/trace.jsonl")
            && out.stderr.contains("ENOENT"),
        "{}",
        out.stderr
    );
    assert!(h.state(&id).is_none(), "no container is left");
}
