//! Commands that work on a live container's cgroup: pause/resume, ps, events, update.
//! Each runs against rt or (RT_BIN=/usr/sbin/runc) runc; where the two differ by design the
//! assertion is gated on `is_runc()`.

use integration::*;
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// The host-side cgroup file of container `id`: `v1_file` in the v1 hierarchy `ctrl` when
/// the host mounts it, else `v2_file` in the unified hierarchy (hybrid or pure v2 host).
fn host_file(id: &str, ctrl: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/rt-test/{id}/{v1_file}"));
    if v1.exists() {
        return v1;
    }
    for base in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let p = PathBuf::from(format!("{base}/rt-test/{id}/{v2_file}"));
        if p.exists() {
            return p;
        }
    }
    panic!("no {v1_file} or {v2_file} for container {id} on this host");
}

fn read_host(id: &str, ctrl: &str, v1_file: &str, v2_file: &str) -> String {
    let p = host_file(id, ctrl, v1_file, v2_file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn init_pid(h: &Ctx, id: &str) -> i64 {
    h.state_ok(id)["pid"].as_i64().expect("state has a pid")
}

/// `events --stats`: the one event's data, parsed.
fn stats(h: &Ctx, id: &str) -> Value {
    stats_and_text(h, id).0
}

/// `events --stats`: the event's data and the event line as printed.
fn stats_and_text(h: &Ctx, id: &str) -> (Value, String) {
    let out = h.rt(&["events", "--stats", id]);
    if !out.success() {
        // Say what the container looked like when rt called it not running.
        let state = h.rt(&["state", id]);
        let pid = serde_json::from_str::<Value>(&state.stdout)
            .ok()
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or(0);
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let saved = fs::read_to_string(h.root.join(id).join("state.json")).unwrap_or_default();
        panic!(
            "{}\nstate: {}{}\n/proc/{pid}/stat: {stat}\nstate.json: {saved}",
            out.describe(),
            state.stdout,
            state.stderr
        );
    }
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "one event line:\n{}",
        out.stdout
    );
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("events --stats: invalid JSON ({e}):\n{}", out.stdout));
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id, "{v}");
    (v["data"].clone(), out.stdout.clone())
}

/// Stderr of a failed command contains `needle` (one error line, exit 1).
#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    out.expect_error();
    assert!(
        out.stderr.contains(needle),
        "`{}`: expected {needle:?} in the error:\n{}",
        out.cmdline,
        out.stderr
    );
}

/// The counter file a [`COUNTER`] container writes, as text ("" while being rewritten).
fn counter(b: &Bundle) -> String {
    read_or_empty(&b.path_in_rootfs("/tmp/cnt"))
        .trim()
        .to_string()
}

/// Counts up, about 20 times a second, into /tmp/cnt.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i > /tmp/cnt; sleep 0.05; done";

#[test]
fn pause_stops_and_resume_restarts() {
    let h = Ctx::new("pause_stops_and_resume_restarts");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh(COUNTER);
    h.run_detached(&id, &b).ok();
    poll(T, "the counter to run", || {
        (counter(&b).parse::<u64>().unwrap_or(0) >= 2).then_some(())
    });

    h.rt(&["pause", &id]).ok();
    assert_eq!(h.status(&id).as_deref(), Some("paused"));
    let frozen = counter(&b);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counter(&b), frozen, "the counter moved while paused");
    fails_with(&h.rt(&["pause", &id]), "container not running");

    h.rt(&["resume", &id]).ok();
    assert_eq!(h.status(&id).as_deref(), Some("running"));
    poll(T, "the counter to move again", || {
        let now = counter(&b);
        (!now.is_empty() && now != frozen).then_some(())
    });
    fails_with(&h.rt(&["resume", &id]), "container not paused");

    // A paused container can be killed and deleted.
    h.rt(&["pause", &id]).ok();
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn pause_a_created_container() {
    // runc allows pausing a container that was created but not started.
    let h = Ctx::new("pause_a_created_container");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("echo ran > /tmp/ran");
    h.create_ok(&id, &b);
    h.rt(&["pause", &id]).ok();
    if is_runc() {
        // rt's `state` still says "created" here (its status checks the exec fifo before
        // the freezer).
        assert_eq!(h.status(&id).as_deref(), Some("paused"));
    }
    h.rt(&["resume", &id]).ok();
    assert_eq!(h.status(&id).as_deref(), Some("created"));
    h.start(&id).ok();
    h.wait_status(&id, "stopped", T);
    assert_eq!(read_or_empty(&b.path_in_rootfs("/tmp/ran")), "ran\n");
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn ps_lists_the_container_processes() {
    let h = Ctx::new("ps_lists_the_container_processes");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "100"]);
    h.run_detached(&id, &b).ok();
    let pid = init_pid(&h, &id);

    let out = h.rt(&["ps", "-f", "json", &id]);
    out.ok();
    assert!(out.stdout.ends_with('\n'), "{:?}", out.stdout);
    let pids: Vec<i64> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("ps -f json: {e}:\n{}", out.stdout));
    assert_eq!(pids, vec![pid], "the container runs only its init");

    // Table: ps -ef's header, then only the container's lines.
    let out = h.rt(&["ps", &id]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(
        header.contains(&"PID") && header.contains(&"CMD"),
        "{}",
        out.stdout
    );
    let pid_col = header.iter().position(|c| *c == "PID").unwrap();
    assert_eq!(lines.len(), 2, "header and the init only:\n{}", out.stdout);
    assert_eq!(
        lines[1].split_whitespace().nth(pid_col),
        Some(pid.to_string().as_str())
    );
    assert!(lines[1].ends_with("sleep 100"), "{}", lines[1]);

    // Everything after the id goes to ps.
    let out = h.rt(&["ps", &id, "-o", "pid,comm"]);
    out.ok();
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["PID", "COMMAND"],
            vec![pid.to_string().as_str(), "sleep"]
        ]
    );

    fails_with(&h.rt(&["ps", "-f", "xml", &id]), "invalid format option");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn events_stats_reports_usage() {
    let h = Ctx::new("events_stats_reports_usage");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"]["pids"] = json!({ "limit": 100 });
    b.sh("sleep 100 & touch /tmp/up; wait");
    h.run_detached(&id, &b).ok();
    poll(T, "the container to start its child", || {
        b.path_in_rootfs("/tmp/up").exists().then_some(())
    });
    let (d, text) = stats_and_text(&h, &id);
    // runc 1.1's types.Stats, in its field order.
    assert_eq!(json_keys_at(&text, 1), ["type", "id", "data"]);
    assert_eq!(
        json_keys_at(&text, 2),
        [
            "cpu",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "intel_rdt",
            "network_interfaces"
        ]
    );
    assert_eq!(d["network_interfaces"], Value::Null);
    assert_eq!(d["intel_rdt"], json!({}));
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{d}"
    );
    assert!(
        d["memory"]["usage"]["limit"].as_u64().unwrap_or(0) > 0,
        "{d}"
    );
    assert!(d["pids"]["current"].as_u64().unwrap_or(0) >= 2, "{d}");
    assert_eq!(d["pids"]["limit"], 100, "{d}");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn events_stream_reports_oom() {
    let h = Ctx::new("events_stream_reports_oom");
    let id = h.id();
    let mut b = h.bundle(&id);
    // No swap either (see host::memory_without_swap): dd must be OOM-killed, not swapped.
    b.config["linux"]["resources"]["memory"] = host::memory_without_swap(16 * 1024 * 1024);
    // dd needs a 64 MiB buffer: over the 16 MiB limit it is OOM-killed. It starts once the
    // event stream is up (the test creates /tmp/go), and the container stops soon after.
    b.sh("while [ ! -e /tmp/go ]; do sleep 0.05; done; \
         dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $? > /tmp/dd; sleep 0.5");
    h.run_detached(&id, &b).ok();

    let mut cmd = h.command(&["events", "--interval", "200ms", &id]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut events = ChildGuard::spawn(&mut cmd);
    let stdout = events.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |timeout: Duration| rx.recv_timeout(timeout).ok();
    let first = next(T).expect("a first stats event within 10s");
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["type"], "stats", "{first}");

    fs::write(b.path_in_rootfs("/tmp/go"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut oom = None;
    while Instant::now() < deadline {
        let Some(line) = next(Duration::from_millis(500)) else {
            continue;
        };
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("event is not JSON ({e}): {line}"));
        if v["type"] == "oom" {
            oom = Some(v);
            break;
        }
        assert_eq!(v["type"], "stats", "{line}");
    }
    let oom = oom.expect("an oom event within 20s");
    if is_runc() {
        assert_eq!(oom, json!({ "type": "oom", "id": id }));
    } else {
        // rt says where the limit was: the container's own.
        let data = json!({ "level": "container", "cgroup": cgroups_path(&id) });
        assert_eq!(oom, json!({ "type": "oom", "id": id, "data": data }));
    }
    // The event can come before the shell has written dd's status.
    let dd = poll(T, "dd's exit status", || {
        let s = read_or_empty(&b.path_in_rootfs("/tmp/dd"));
        s.ends_with('\n').then_some(s)
    });
    assert_eq!(dd.trim(), "137", "dd must be OOM-killed");

    if !is_runc() {
        // rt ends the stream when the container stops (runc on cgroup v1 only at delete).
        let st = wait_child(&mut events.0, T, "rt events after the container stopped");
        assert!(st.success(), "{st:?}");
    }
    drop(events);
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// Forks after /tmp/go until one fails, counting the successes in /tmp/forked.
const FORKER: &str = "while [ ! -e /tmp/go ]; do sleep 0.05; done; \
    ( for i in 1 2 3 4 5 6 7 8; do sleep 30 & echo $i; done ) > /tmp/forked 2> /tmp/err; \
    echo done > /tmp/done; exec sleep 100";

#[test]
fn update_memory_and_pids_limit() {
    let h = Ctx::new("update_memory_and_pids_limit");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh(FORKER);
    h.run_detached(&id, &b).ok();

    h.rt(&["update", "--memory", "32m", &id]).ok();
    let mem = || read_host(&id, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(mem(), "33554432");
    h.rt(&["update", "--pids-limit", "5", &id]).ok();
    assert_eq!(read_host(&id, "pids", "pids.max", "pids.max"), "5");
    // The earlier change stays when another one comes.
    assert_eq!(mem(), "33554432");
    let d = stats(&h, &id);
    assert_eq!(d["pids"]["limit"], 5, "{d}");
    assert_eq!(d["memory"]["usage"]["limit"], 33554432, "{d}");

    // 5 pids: the init and the subshell leave room for 3 sleepers, the 4th fork fails.
    fs::write(b.path_in_rootfs("/tmp/go"), "").unwrap();
    poll(T, "the forks to be done", || {
        b.path_in_rootfs("/tmp/done").exists().then_some(())
    });
    assert_eq!(read_or_empty(&b.path_in_rootfs("/tmp/forked")), "1\n2\n3\n");
    let err = read_or_empty(&b.path_in_rootfs("/tmp/err"));
    assert!(err.contains("fork"), "{err}");

    // -1 lifts the memory limit.
    h.rt(&["update", "--memory", "-1", &id]).ok();
    let unlimited = mem();
    assert!(
        unlimited == "max" || unlimited.parse::<u64>().unwrap() > 1 << 60,
        "{unlimited}"
    );
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn update_resources_from_stdin() {
    let h = Ctx::new("update_resources_from_stdin");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "100"]);
    h.run_detached(&id, &b).ok();

    let file = h.dir.join("resources.json");
    fs::write(
        &file,
        r#"{"memory":{"limit":50331648},"pids":{"limit":42},"cpu":{"shares":256}}"#,
    )
    .unwrap();
    let args = ["update", "--resources", "-", &id];
    let mut c = h.command(&args);
    c.stdin(File::open(&file).unwrap());
    h.rt_cmd(c, &args).ok();
    assert_eq!(
        read_host(&id, "memory", "memory.limit_in_bytes", "memory.max"),
        "50331648"
    );
    assert_eq!(read_host(&id, "pids", "pids.max", "pids.max"), "42");
    let shares = host_file(&id, "cpu", "cpu.shares", "cpu.weight");
    let expect = if shares.ends_with("cpu.shares") {
        "256"
    } else {
        "10"
    };
    assert_eq!(fs::read_to_string(&shares).unwrap().trim(), expect);

    // With --resources the other flags are ignored.
    let path = file.to_str().unwrap();
    h.rt(&["update", "-r", path, "--memory", "1g", &id]).ok();
    assert_eq!(
        read_host(&id, "memory", "memory.limit_in_bytes", "memory.max"),
        "50331648"
    );

    let bad = h.dir.join("bad.json");
    fs::write(&bad, "{bad").unwrap();
    let args = ["update", "--resources", "-", &id];
    let mut c = h.command(&args);
    c.stdin(File::open(&bad).unwrap());
    h.rt_cmd(c, &args).expect_error();
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn cpu_quota_throttles() {
    let h = Ctx::new("cpu_quota_throttles");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("while :; do :; done");
    h.run_detached(&id, &b).ok();
    let update = h.rt(&[
        "update",
        "--cpu-quota",
        "10000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    if !host::cgroup_has("cpu", "cpu.cfs_quota_us") && !host::cgroup_has("cpu", "cpu.max") {
        // CFS bandwidth control is a kernel option (CONFIG_CFS_BANDWIDTH).
        skip(
            "cpu_quota_throttles",
            "this kernel has no CFS bandwidth control (no cpu.cfs_quota_us): only the \
             refusal of the update is checked",
        );
        update.expect_code(1);
        assert_eq!(h.status(&id).as_deref(), Some("running"));
        h.delete_force(&id).ok();
        h.assert_nothing_left(&id);
        return;
    }
    update.ok();
    let quota = read_host(&id, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(quota == "10000" || quota == "10000 100000", "{quota}");
    let throttled = poll(Duration::from_secs(15), "throttled periods", || {
        let d = stats(&h, &id);
        let t = &d["cpu"]["throttling"];
        (t["throttledPeriods"].as_u64().unwrap_or(0) > 0).then(|| t.clone())
    });
    assert!(
        throttled["periods"].as_u64().unwrap_or(0) > 0,
        "{throttled}"
    );
    assert!(
        throttled["throttledTime"].as_u64().unwrap_or(0) > 0,
        "{throttled}"
    );
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn errors_on_missing_and_stopped_containers() {
    let h = Ctx::new("errors_on_missing_and_stopped_containers");
    let missing = "rt-test-no-such-container";
    for args in [
        vec!["pause", missing],
        vec!["resume", missing],
        vec!["ps", missing],
        vec!["events", "--stats", missing],
        vec!["update", "--memory", "64m", missing],
    ] {
        fails_with(&h.rt(&args), "container does not exist");
    }

    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    h.create_ok(&id, &b);
    h.start(&id).ok();
    h.wait_status(&id, "stopped", T);
    fails_with(&h.rt(&["pause", &id]), "container not running");
    fails_with(&h.rt(&["resume", &id]), "container not paused");
    fails_with(&h.rt(&["events", "--stats", &id]), "is not running");
    fails_with(
        &h.rt(&["update", "--memory", "64m", &id]),
        "container not running",
    );
    // Checked before the container's status, as runc does.
    fails_with(
        &h.rt(&["events", "--interval", "0s", &id]),
        "duration interval must be greater than 0",
    );
    fails_with(
        &h.rt(&["update", "--memory", "64x", &id]),
        "invalid value for memory: invalid size: '64x'",
    );
    fails_with(
        &h.rt(&["update", "--l3-cache-schema", "L3:0=f", &id]),
        "l3 cache schema is not enabled",
    );
    fails_with(
        &h.rt(&["update", "--mem-bw-schema", "MB:0=70", &id]),
        "memory bandwidth schema is not enabled",
    );
    // A stopped container has no processes: `null`, like a Go nil slice.
    let out = h.rt(&["ps", "-f", "json", &id]);
    out.ok();
    assert_eq!(out.stdout, "null\n");
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn cgroup_manager_disabled_creates_no_cgroup() {
    // crun's `--cgroup-manager=disabled` (which `make bench` uses for a like-for-like pair with
    // crun); runc has no such flag.
    if is_runc() {
        skip(
            "cgroup_manager_disabled_creates_no_cgroup",
            "runc has no --cgroup-manager flag",
        );
        return;
    }
    let h = Ctx::new("cgroup_manager_disabled_creates_no_cgroup");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("cat /proc/self/cgroup");
    // The memory limit is ignored, as crun ignores linux.resources without a manager.
    b.config["linux"]["resources"]["memory"] = json!({"limit": 1 << 30});
    b.save();
    let bundle = b.dir.to_str().unwrap();
    h.rt(&[
        "--cgroup-manager=disabled",
        "create",
        "--bundle",
        bundle,
        &id,
    ])
    .ok();
    h.record_pid(&id);
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new(), "cgroup made");
    fails_with(&h.rt(&["pause", &id]), "has no cgroup");
    h.start(&id).ok();
    h.wait_status(&id, "stopped", T);
    h.delete(&id).ok();
    h.assert_nothing_left(&id);

    // And `run`: the container stays in the caller's cgroups, never one named for it.
    let run_id = h.id();
    let mut b = h.bundle(&run_id);
    b.sh("cat /proc/self/cgroup");
    b.save();
    let bundle = b.dir.to_str().unwrap();
    let out = h.rt(&[
        "--cgroup-manager=disabled",
        "run",
        "--bundle",
        bundle,
        &run_id,
    ]);
    out.ok();
    assert!(
        !out.stdout.is_empty() && !out.stdout.contains("rt-test"),
        "container's /proc/self/cgroup: {}",
        out.stdout
    );
    h.assert_nothing_left(&run_id);
}
