//! The command line itself: --version, --help, logging (--log, --log-format, --debug),
//! --systemd-cgroup, flag placement, signal spellings, `delete --force` of nothing.
//! Where runc 1.1.5 defines the behaviour, the assertions are runc's.

use integration::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

const COMMANDS: [&str; 8] = [
    "create", "start", "run", "state", "kill", "delete", "list", "spec",
];

/// A logrus text line `time="…" level=… msg="…"[ more fields]`: (time, level, msg).
fn parse_logrus(line: &str) -> Option<(String, String, String)> {
    let rest = line.strip_prefix("time=\"")?;
    let (time, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(" level=")?;
    let (level, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("msg=")?;
    let msg = if rest.starts_with('"') {
        // A quoted Go string; find its end (an unescaped quote).
        let b = rest.as_bytes();
        let mut i = 1;
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        serde_json::from_str::<String>(rest.get(..=i)?).ok()?
    } else {
        rest.split(' ').next()?.to_string()
    };
    Some((time.to_string(), level.to_string(), msg))
}

/// A log line's time: RFC 3339 with seconds precision (`2026-11-25T17:48:40Z`).
#[track_caller]
fn assert_log_time(time: &str, line: &str) {
    match parse_rfc3339(time) {
        Some((frac, _)) if frac.is_empty() => {}
        _ => panic!("log time {time:?} is not RFC 3339 to the second in: {line}"),
    }
}

/// runc's keys (containerd reads them), in runc's order; rt adds an error's fields after
/// them (issue 18), runc none.
fn assert_runc_keys_first(line: &str) {
    let keys = json_keys_at(line, 1);
    assert_eq!(
        keys[..keys.len().min(3)],
        ["level", "msg", "time"],
        "{line}"
    );
    let extra = &keys[3..];
    if is_runc() {
        assert!(extra.is_empty(), "{line}");
    }
    const FIELDS: [&str; 7] = [
        "step",
        "path",
        "field",
        "syscall",
        "errno",
        "errno_code",
        "container",
    ];
    assert!(extra.iter().all(|k| FIELDS.contains(&k.as_str())), "{line}");
}

fn runtime_name() -> &'static str {
    if is_runc() {
        "runc"
    } else {
        "rt"
    }
}

#[test]
fn version() {
    let h = Ctx::new("version");
    for flag in ["--version", "-v"] {
        let out = h.rt(&[flag]);
        out.expect_code(0);
        let mut lines = out.stdout.lines();
        let first = lines.next().unwrap_or("");
        let want = format!("{} version ", runtime_name());
        assert!(
            first.starts_with(&want),
            "`{flag}`: first line {first:?} does not start with {want:?}"
        );
        assert!(first.len() > want.len(), "`{flag}`: no version number");
        // Docker and others parse the `commit:` line; `spec:` names the OCI version.
        let rest: Vec<&str> = lines.collect();
        assert!(
            rest.iter().any(|l| l.starts_with("commit: ")),
            "`{flag}`: no commit line:\n{}",
            out.stdout
        );
        assert!(
            rest.iter().any(|l| l.starts_with("spec: ")),
            "`{flag}`: no spec line:\n{}",
            out.stdout
        );
    }
}

#[test]
fn help_lists_commands() {
    let h = Ctx::new("help_lists_commands");
    for flag in ["--help", "-h"] {
        let out = h.rt(&[flag]);
        out.expect_code(0);
        for cmd in COMMANDS {
            let listed = out.stdout.lines().any(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.trim_end_matches(',') == cmd)
            });
            assert!(listed, "`{flag}` does not list `{cmd}`:\n{}", out.stdout);
        }
    }
}

#[test]
fn log_json_file_on_error() {
    let h = Ctx::new("log_json_file_on_error");
    let id = h.id();
    let log = h.dir.join("log.json");
    let out = h.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &id,
    ]);
    out.expect_code(1);
    assert_eq!(out.stdout, "");
    let text = fs::read_to_string(&log).expect("--log file written");
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "empty log file");
    for l in &lines {
        assert_runc_keys_first(l);
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_log_time(v["time"].as_str().expect("time is a string"), l);
    }
    let last: Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(last["level"], "error", "{text}");
    let msg = last["msg"].as_str().expect("msg is a string");
    assert!(!msg.is_empty());
    if is_runc() {
        assert_eq!(msg, "container does not exist");
    }
    // With --log, the error also goes to stderr, bare.
    assert_eq!(out.stderr, format!("{msg}\n"), "stderr with --log");
}

#[test]
fn log_text_file_on_error() {
    let h = Ctx::new("log_text_file_on_error");
    let id = h.id();
    let log = h.dir.join("log.txt");
    let out = h.rt(&["--log", log.to_str().unwrap(), "state", &id]);
    out.expect_code(1);
    assert_eq!(out.stdout, "");
    let text = fs::read_to_string(&log).expect("--log file written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "log file:\n{text}");
    let (time, level, msg) =
        parse_logrus(lines[0]).unwrap_or_else(|| panic!("not a logrus line: {}", lines[0]));
    assert_log_time(&time, lines[0]);
    assert_eq!(level, "error");
    assert!(!msg.is_empty());
    assert!(
        lines[0].ends_with(&format!("msg={}", serde_json::to_string(&msg).unwrap())),
        "msg is not quoted like logrus: {}",
        lines[0]
    );
    assert_eq!(out.stderr, format!("{msg}\n"), "stderr with --log");
}

#[test]
fn stderr_log_line_without_log_file() {
    let h = Ctx::new("stderr_log_line_without_log_file");
    let id = h.id();
    let out = h.rt(&["state", &id]);
    out.expect_error();
    assert_eq!(out.stdout, "");
    assert!(out.stderr.ends_with('\n'));
    let line = out.stderr.trim_end();
    let (time, level, msg) =
        parse_logrus(line).unwrap_or_else(|| panic!("not a logrus line: {line}"));
    assert_log_time(&time, line);
    assert_eq!(level, "error");
    assert!(!msg.is_empty());
    if is_runc() {
        assert_eq!(msg, "container does not exist");
    } else {
        assert!(msg.contains("does not exist"), "{line}");
    }

    // --log-format json without --log: one JSON line on stderr.
    let out = h.rt(&["--log-format", "json", "state", &id]);
    out.expect_error();
    let line = out.stderr.trim_end();
    assert_runc_keys_first(line);
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "error");
    assert_eq!(v["msg"].as_str(), Some(msg.as_str()));
    assert_log_time(v["time"].as_str().unwrap(), line);
}

#[test]
fn debug_logs_setup_steps() {
    let h = Ctx::new("debug_logs_setup_steps");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    b.save();
    let log = h.dir.join("debug.log");
    let out = h.rt(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "run",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    out.expect_code(0);
    let text = fs::read_to_string(&log).expect("--log file written");
    let debug: Vec<&str> = text
        .lines()
        .filter(|l| parse_logrus(l).is_some_and(|(_, level, _)| level == "debug"))
        .collect();
    assert!(!debug.is_empty(), "no level=debug lines:\n{text}");
    for l in text.lines() {
        let (time, _, _) = parse_logrus(l).unwrap_or_else(|| panic!("not a logrus line: {l}"));
        assert_log_time(&time, l);
    }
    if !is_runc() {
        let mounts = debug.iter().filter(|l| l.contains("mount")).count();
        let ns = debug
            .iter()
            .filter(|l| l.contains("namespace") || l.contains("unshare"))
            .count();
        assert!(
            mounts >= 3,
            "fewer than 3 debug lines about mounts:\n{text}"
        );
        assert!(ns >= 1, "no debug line about namespaces:\n{text}");
    }
    h.assert_nothing_left(&id);

    // Without --debug, a successful run logs nothing at debug level.
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    b.save();
    let log = h.dir.join("quiet.log");
    h.rt(&[
        "--log",
        log.to_str().unwrap(),
        "run",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ])
    .expect_code(0);
    let text = read_or_empty(&log);
    assert!(
        !text.contains("level=debug"),
        "debug lines without --debug:\n{text}"
    );
    h.assert_nothing_left(&id);
}

#[test]
fn systemd_cgroup_refused_cleanly() {
    // The systemd driver needs systemd as the host's init (the systemd guest of
    // vm/payload-systemd runs it for real); a cgroupsPath not of the form
    // "slice:prefix:name" is refused before anything is made, as runc refuses it.
    // Either way: exit 1, one line that says why, nothing left.
    let h = Ctx::new("systemd_cgroup_refused_cleanly");
    let systemd_here = std::path::Path::new("/run/systemd/system").is_dir();
    // crun's spelling of the same request is taken alike (runc has no such flag).
    let flags: &[&str] = if is_runc() {
        &["--systemd-cgroup"]
    } else {
        &["--systemd-cgroup", "--cgroup-manager=systemd"]
    };
    for flag in flags {
        let id = h.id();
        let mut cases = vec![(format!("/rt-test/{id}"), "slice:prefix:name")];
        if !systemd_here {
            cases.push((format!("system.slice:rt-test:{id}"), "systemd"));
        } else {
            println!("systemd runs here: its absence is not refused");
        }
        for (path, says) in cases {
            let mut b = h.bundle(&id);
            b.args(&["sleep", "100"]);
            b.config["linux"]["cgroupsPath"] = path.clone().into();
            b.save();
            let out = h.rt(&[flag, "create", "--bundle", b.dir.to_str().unwrap(), &id]);
            out.expect_error();
            assert!(
                out.stderr.contains(says) && out.stderr.trim().lines().count() == 1,
                "{flag} with {path}: one line that says {says:?}: {}",
                out.stderr
            );
            h.assert_nothing_left(&id);
        }
    }
    assert_eq!(h.rt(&["list", "-q"]).ok().stdout, "");
}

#[test]
fn flags_after_id() {
    let h = Ctx::new("flags_after_id");
    let elsewhere = h.subdir("cwd");
    for bflag in ["--bundle", "-b"] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.sh("exit 5");
        b.save();
        h.rt_in(&elsewhere, &["run", &id, bflag, b.dir.to_str().unwrap()])
            .expect_code(5);
        h.assert_nothing_left(&id);
    }
    // `delete ID --force`.
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "100"]);
    h.run_detached(&id, &b).ok();
    let pid = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
    h.rt(&["delete", &id]).expect_error();
    h.rt(&["delete", &id, "--force"]).ok();
    assert!(h.state(&id).is_none());
    h.reap(pid, T);
    h.assert_nothing_left(&id);
}

#[test]
fn kill_signal_spellings() {
    // runc 1.1.5 takes a number, or a name with or without SIG, in any case.
    let h = Ctx::new("kill_signal_spellings");
    for sig in ["9", "KILL", "SIGKILL", "sigkill", "kill", "SigKill"] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "100"]);
        h.run_detached(&id, &b).ok();
        let pid = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
        let out = h.kill(&id, sig);
        if !out.success() {
            h.delete_force(&id);
        }
        out.ok();
        h.wait_status(&id, "stopped", T);
        h.delete(&id).ok();
        h.reap(pid, T);
        h.assert_nothing_left(&id);
    }
}

#[test]
fn delete_force_unknown_container() {
    let h = Ctx::new("delete_force_unknown_container");
    let id = h.id();
    for flag in ["--force", "-f"] {
        let out = h.rt(&["delete", flag, &id]);
        out.expect_code(0);
        assert_eq!(out.stdout, "", "`{}`", out.cmdline);
        assert_eq!(out.stderr, "", "`{}`", out.cmdline);
    }
    // Without --force it is an error.
    h.rt(&["delete", &id]).expect_error();
    assert!(!Path::new(&h.root).join(&id).exists());
    h.assert_nothing_left(&id);
}
