//! Every rt command the harness runs also writes a JSON log (`--log <file> --log-format
//! json`, as containerd asks for one), so that each error a test expects can be checked
//! for its fields too (see [`check_fields`]): msg, step, container, errno, syscall, field.
//!
//! The tests read stderr as it was before: with `--log`, rt prints only the bare error on
//! stderr, so [`Output::stderr`](crate::Output) is rebuilt from the log, every line in the
//! logrus text form rt writes without `--log` (the error last, in place of the bare one);
//! what rt printed is kept in `Output::raw_stderr`. Not done for runc (its reference runs
//! stay as they were) nor for a command that sets its own `--log` or `--log-format`.
//!
//! `RT_IT_FIELDS_REPORT=<file>`: append one line per checked error (whether it was, the
//! test's line, the command, the JSON line), to count the paths the checks cover.

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How the harness's log files are named, to tell them from a test's own `--log`.
const SUFFIX: &str = ".rt-log.json";

/// The top-level config.json members an error message may start with.
const CONFIG_ROOTS: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "hostname",
    "domainname",
    "mounts",
    "hooks",
    "annotations",
    "linux",
];

/// The log file for a command with `args` run in `outdir`, or None when the command gets
/// none. The file is made writable by anyone: rootless tests run rt as another user.
pub fn new_log(outdir: &Path, n: usize, args: &[&str]) -> Option<PathBuf> {
    if crate::is_runc() || args.iter().any(|a| a.starts_with("--log")) {
        return None;
    }
    fs::create_dir_all(outdir).ok()?;
    let path = outdir.join(format!("{n}{SUFFIX}"));
    fs::write(&path, "").ok()?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).ok()?;
    Some(path)
}

/// The harness's log file among a command's arguments.
pub fn log_of(c: &std::process::Command) -> Option<PathBuf> {
    let mut args = c.get_args();
    while let Some(a) = args.next() {
        if a == "--log" {
            let p = PathBuf::from(args.next()?);
            return p.to_string_lossy().ends_with(SUFFIX).then_some(p);
        }
    }
    None
}

/// stderr as rt writes it without `--log`, from what it wrote with one (`stderr`) and the
/// log: the log's lines in logrus's text form, then stderr without the bare error (a
/// container's own output), then the error's log line. Lines a container wrote between
/// rt's log lines are not put back in between.
pub fn stderr_with_log(stderr: &str, log: &str) -> String {
    let entries: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last_error = entries.iter().rposition(|v| str_of(v, "level") == "error");
    let mut own = stderr;
    if let Some(i) = last_error {
        let bare = format!("{}\n", str_of(&entries[i], "msg"));
        own = stderr.strip_suffix(bare.as_str()).unwrap_or(stderr);
    }
    let text_line = |v: &Value| {
        format!(
            "time=\"{}\" level={} msg={}\n",
            str_of(v, "time"),
            str_of(v, "level"),
            Value::from(str_of(v, "msg"))
        )
    };
    let mut text = String::new();
    for (i, v) in entries.iter().enumerate() {
        if Some(i) != last_error {
            text.push_str(&text_line(v));
        }
    }
    text.push_str(own);
    if let Some(i) = last_error {
        text.push_str(&text_line(&entries[i]));
    }
    text
}

/// Check the JSON error line of a failed rt command against its one-line stderr: `msg` is
/// that line; `step` is set; `container` is one of the command's arguments; a message that
/// ends with an errno ("ENOENT (No such file or directory)") has `errno`, `errno_code` and
/// `syscall`; a message that starts with a config field has `field`. Returns what is wrong.
///
/// `stderr` is what rt printed (`Output::raw_stderr`). An rt that could not open the log
/// (EMFILE) has only stderr: then Value::Null, nothing checked.
pub fn check_fields(args: &[String], stderr: &str, log: &str) -> Result<Value, String> {
    let line = stderr.trim().lines().last().unwrap_or("");
    let entry = log
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| str_of(v, "level") == "error");
    let Some(entry) = entry else {
        if line.starts_with("open log file ") {
            return Ok(Value::Null);
        }
        return Err(format!("no error line in the JSON log:\n{log}"));
    };
    let problem = |what: &str| Err(format!("{what}: {entry}"));
    if str_of(&entry, "msg") != line {
        return problem(&format!("msg is not the stderr line {line:?}"));
    }
    if str_of(&entry, "time").is_empty() {
        return problem("no time");
    }
    if str_of(&entry, "step").is_empty() {
        return problem("no step");
    }
    let command = args.iter().find(|a| !a.starts_with('-'));
    let takes_id = !matches!(
        command.map(String::as_str),
        Some("list" | "spec" | "features" | "check" | "trace") | None
    );
    let container = str_of(&entry, "container");
    if takes_id && !args.iter().any(|a| a == container) {
        return problem("container is not the command's id");
    }
    if let Some(name) = errno_at_end(line) {
        if str_of(&entry, "errno") != name {
            return problem(&format!("errno is not {name}"));
        }
        if entry["errno_code"].as_i64().is_none_or(|c| c <= 0) {
            return problem("no errno_code");
        }
        if str_of(&entry, "syscall").is_empty() {
            return problem("no syscall");
        }
    }
    let msg = line.strip_prefix("exec failed: ").unwrap_or(line);
    if let Some(root) = config_root(msg) {
        let field = str_of(&entry, "field");
        if config_root(&format!("{field}:")) != Some(root) {
            return problem(&format!("field is not one of {root}"));
        }
    }
    Ok(entry)
}

/// One line in `$RT_IT_FIELDS_REPORT`, when it is set: whether the fields of the error
/// that the test at `at` expected were checked (`entry` is Null when there was no log).
pub fn report(at: &std::panic::Location, args: &[String], entry: &Value) {
    let Some(file) = std::env::var_os("RT_IT_FIELDS_REPORT") else {
        return;
    };
    let what = if entry.is_null() {
        "unverified (no log)"
    } else {
        "verified"
    };
    use std::io::Write;
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(file) {
        let _ = writeln!(f, "{what}\t{at}\t{}\t{entry}", args.join(" "));
    }
}

/// "ENOENT" when `line` ends with "ENOENT (No such file or directory)".
fn errno_at_end(line: &str) -> Option<&str> {
    let open = line.strip_suffix(')')?.rfind(" (")?;
    let name = line[..open].rsplit([' ', ':']).next()?;
    let ok = name.len() > 1
        && name.starts_with('E')
        && name[1..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    ok.then_some(name)
}

/// The config member a message starts with ("mounts" for "mounts[2] (/x): ...",
/// "process" for "process.args: ..."; a bare member only before a colon).
fn config_root(msg: &str) -> Option<&'static str> {
    CONFIG_ROOTS.iter().copied().find(|r| {
        msg.strip_prefix(r)
            .is_some_and(|rest| rest.starts_with(['.', '[', ':']))
    })
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_errno_at_the_end_is_found() {
        assert_eq!(
            errno_at_end("mount /a on /b: ENOENT (No such file or directory)"),
            Some("ENOENT")
        );
        assert_eq!(
            errno_at_end("x: E2BIG (Argument list too long)"),
            Some("E2BIG")
        );
        assert_eq!(errno_at_end("exec failed: no such (thing)"), None);
        assert_eq!(errno_at_end("container \"a\" does not exist"), None);
    }

    #[test]
    fn a_config_member_at_the_start_is_found() {
        assert_eq!(config_root("mounts[2] (/x): y"), Some("mounts"));
        assert_eq!(
            config_root("process.args: must not be empty"),
            Some("process")
        );
        assert_eq!(config_root("process: missing"), Some("process"));
        assert_eq!(config_root("process args cannot be empty"), None);
        assert_eq!(config_root("rootfs x"), None);
    }
}
