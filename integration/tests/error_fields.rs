//! Errors a program can read (issue 18): with `--log-format json`, an error's line carries
//! `step`, `path`, `field`, `syscall`, `errno`, `errno_code` and `container` besides runc's
//! `level`, `msg` and `time`. A few representative failures, with the exact values. (The
//! harness runs every rt command with a JSON log and `expect_error` checks the fields of
//! every error the other tests expect; see integration/src/error_log.rs.)
//!
//! The fields are rt's: under runc these tests only say they skip.

use integration::*;
use serde_json::{json, Value};

/// The error's JSON line, checked by the harness (msg is the printed line, and so on);
/// None under runc.
#[track_caller]
fn fields(out: &Output, code: i32) -> Option<Value> {
    out.expect_code(code);
    if is_runc() {
        skip("error_fields", "runc's log lines carry no fields");
        return None;
    }
    assert_eq!(
        out.raw_stderr.trim().lines().count(),
        1,
        "{}",
        out.describe()
    );
    Some(out.error_fields())
}

/// `want`'s keys have exactly these values in `got`; `absent` keys are not there.
#[track_caller]
fn assert_fields(got: &Value, want: Value, absent: &[&str]) {
    for (k, v) in want.as_object().expect("an object") {
        assert_eq!(&got[k], v, "{k} in {got}");
    }
    for k in absent {
        assert!(got.get(k).is_none(), "{k} in {got}");
    }
}

fn index_of_next_mount(b: &Bundle) -> usize {
    b.config["mounts"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_bad_config_field_is_named() {
    let h = Ctx::new("error_fields_config");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["cwd"] = json!("tmp");
    let Some(f) = fields(&h.create(&id, &b), 1) else {
        return;
    };
    assert_fields(
        &f,
        json!({"step": "config-load", "field": "process.cwd", "container": id}),
        &["errno", "errno_code", "syscall"],
    );
    h.assert_nothing_left(&id);
}

#[test]
fn a_missing_rootfs_gives_its_path() {
    let h = Ctx::new("error_fields_rootfs");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["root"]["path"] = json!("no-such-rootfs");
    let Some(f) = fields(&h.create(&id, &b), 1) else {
        return;
    };
    let path = b.dir.join("no-such-rootfs").display().to_string();
    assert_fields(
        &f,
        json!({"step": "validate", "field": "root.path", "path": path, "container": id}),
        &["errno"],
    );
}

/// The init fails, in its mount step: the fields cross the init channel to rt.
#[test]
fn a_bind_source_missing_in_the_init() {
    let h = Ctx::new("error_fields_bind_source");
    let id = h.id();
    let mut b = h.bundle(&id);
    let i = index_of_next_mount(&b);
    b.mount(json!({
        "destination": "/mnt",
        "type": "bind",
        "source": "/no-such-rt-bind-source",
        "options": ["bind"]
    }));
    let Some(f) = fields(&h.create(&id, &b), 1) else {
        return;
    };
    assert_fields(
        &f,
        json!({
            "step": "mount",
            "path": "/no-such-rt-bind-source",
            "field": format!("mounts[{i}]"),
            "syscall": "stat",
            "errno": "ENOENT",
            "errno_code": 2,
            "container": id,
        }),
        &[],
    );
    h.assert_nothing_left(&id);
}

#[test]
fn a_mount_refused_in_the_init() {
    let h = Ctx::new("error_fields_mount");
    let id = h.id();
    let mut b = h.bundle(&id);
    let i = index_of_next_mount(&b);
    b.mount(json!({"destination": "/mnt", "type": "no-such-fs", "source": "none"}));
    let Some(f) = fields(&h.create(&id, &b), 1) else {
        return;
    };
    assert_fields(
        &f,
        json!({
            "step": "mount",
            "path": "/mnt",
            "field": format!("mounts[{i}]"),
            "syscall": "mount",
            "errno": "ENODEV",
            "errno_code": 19,
            "container": id,
        }),
        &[],
    );
    h.assert_nothing_left(&id);
}

#[test]
fn an_unknown_container_is_named_with_the_command() {
    let h = Ctx::new("error_fields_unknown");
    let id = h.id();
    for command in ["start", "state", "kill", "delete", "pause", "ps"] {
        let Some(f) = fields(&h.rt(&[command, &id]), 1) else {
            return;
        };
        // start reads the state in a step of its own (traced); the others in none.
        let step = if command == "start" {
            "state-load"
        } else {
            command
        };
        assert_fields(
            &f,
            json!({"step": step, "container": id}),
            &["errno", "syscall", "field"],
        );
    }
}

/// A running container, `sleep 1000`.
fn sleeper(h: &Ctx) -> String {
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "1000"]);
    h.run_detached(&id, &b).ok();
    id
}

#[test]
fn a_bad_signal_and_failed_execs() {
    let h = Ctx::new("error_fields_kill_exec");
    let id = sleeper(&h);
    let Some(f) = fields(&h.kill(&id, "NOSUCHSIG"), 1) else {
        h.delete_force(&id);
        return;
    };
    assert_fields(&f, json!({"step": "kill", "container": id}), &["errno"]);

    // The exec'd child fails: its error crosses the exec channel, with rt's "exec failed: "
    // before it and exit code 255, as runc.
    let f = fields(&h.rt(&["exec", &id, "/no/such/program"]), 255).unwrap();
    assert_fields(
        &f,
        json!({
            "step": "exec",
            "path": "/no/such/program",
            "field": "process.args[0]",
            "syscall": "stat",
            "errno": "ENOENT",
            "errno_code": 2,
            "container": id,
        }),
        &[],
    );
    let f = fields(&h.rt(&["exec", "--cwd", "/no/such/dir", &id, "true"]), 255).unwrap();
    assert_fields(
        &f,
        json!({
            "step": "exec",
            "path": "/no/such/dir",
            "field": "process.cwd",
            "syscall": "chdir",
            "errno": "ENOENT",
            "container": id,
        }),
        &[],
    );
    h.kill(&id, "KILL").ok();
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// Text mode stays runc's one line, without fields.
#[test]
fn text_errors_stay_one_line() {
    let h = Ctx::new("error_fields_text");
    let id = h.id();
    let out = h.rt(&["--log-format", "text", "state", &id]);
    out.expect_error();
    let line = out.stderr.trim();
    assert!(line.starts_with("time=\""), "{line}");
    assert!(!line.contains("errno") && !line.contains("step"), "{line}");
}
