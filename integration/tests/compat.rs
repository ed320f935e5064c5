//! Side by side with runc: the same bundle is run through runc (/usr/sbin/runc, the
//! reference) and through the runtime under test (RT_BIN), each with its own `--root` and
//! container id, and what a user sees is compared: `state` and `list` output, exit statuses,
//! error exits, `spec` output.
//!
//! When /usr/sbin/runc is missing, only the RT_BIN half runs (with a note on stderr). When
//! RT_BIN is runc itself, runc is compared with runc.

use integration::*;
use serde_json::Value;
use std::cell::RefCell;
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);
const RUNC: &str = "/usr/sbin/runc";

/// One runtime of a comparison: its binary and its own `--root` inside the test dir. The
/// containers it creates are force-deleted when it is dropped (before the [`Ctx`], which
/// then reaps their init processes and removes their cgroups: every id comes from
/// [`Ctx::id`]).
struct Side<'a> {
    h: &'a Ctx,
    label: &'static str,
    bin: PathBuf,
    root: PathBuf,
    ids: RefCell<Vec<String>>,
}

impl<'a> Side<'a> {
    fn new(h: &'a Ctx, label: &'static str, bin: PathBuf) -> Side<'a> {
        let root = h.dir.join(format!("root-{label}"));
        Side {
            h,
            label,
            bin,
            root,
            ids: RefCell::new(Vec::new()),
        }
    }

    /// A `Command` for `<bin> --root <root> args...`, marked like the harness's own.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c.env(MARK_VAR, self.h.name.as_str());
        c.stdin(std::process::Stdio::null());
        c
    }

    fn run_cmd(&self, c: Command, args: &[&str]) -> Output {
        let mut out = self.h.rt_cmd(c, args);
        out.cmdline = format!("[{}] {} {}", self.label, self.bin.display(), args.join(" "));
        out
    }

    fn rt(&self, args: &[&str]) -> Output {
        self.run_cmd(self.command(args), args)
    }

    fn rt_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut c = self.command(args);
        c.current_dir(cwd);
        self.run_cmd(c, args)
    }

    /// A new container id (registered for cleanup here and in the Ctx).
    fn id(&self) -> String {
        let id = self.h.id();
        self.ids.borrow_mut().push(id.clone());
        id
    }

    fn create(&self, id: &str, b: &Bundle) -> Output {
        b.save();
        let out = self.rt(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        if out.success() {
            self.track(id);
        }
        out
    }

    fn run(&self, id: &str, b: &Bundle) -> Output {
        b.save();
        self.rt(&["run", "--bundle", b.dir.to_str().unwrap(), id])
    }

    /// Raw `state` output and its parse, or `None` if `state` fails.
    fn state(&self, id: &str) -> Option<(String, Value)> {
        let out = self.rt(&["state", id]);
        if !out.success() {
            return None;
        }
        let v = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "[{}] state {id}: invalid JSON ({e}):\n{}",
                self.label, out.stdout
            )
        });
        Some((out.stdout, v))
    }

    #[track_caller]
    fn state_ok(&self, id: &str) -> (String, Value) {
        match self.state(id) {
            Some(s) => s,
            None => panic!(
                "[{}] state {id} failed:\n{}",
                self.label,
                self.rt(&["state", id]).describe()
            ),
        }
    }

    fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .and_then(|(_, v)| v["status"].as_str().map(str::to_string))
    }

    #[track_caller]
    fn wait_status(&self, id: &str, status: &str) {
        poll(T, &format!("[{}] {id} to be {status}", self.label), || {
            (self.status(id).as_deref() == Some(status)).then_some(())
        })
    }

    fn track(&self, id: &str) {
        if let Some((_, st)) = self.state(id) {
            if let Some(pid) = st["pid"].as_i64() {
                self.h.track_pid(pid as i32);
            }
        }
    }

    /// Nothing of `id` is left: no state under this side's root, no cgroup, no process.
    #[track_caller]
    fn assert_nothing_left(&self, id: &str) {
        if !id.is_empty() && !id.contains('/') {
            let st = self.root.join(id);
            assert!(!st.exists(), "[{}] state dir {st:?} left", self.label);
        }
        self.h.assert_nothing_left(id);
    }
}

impl Drop for Side<'_> {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            self.track(id);
            let args = ["delete", "--force", id.as_str()];
            let _ = self.h.try_rt_cmd(self.command(&args), &args);
        }
    }
}

/// The runtime under test, then runc when it is installed (test `test` skips the runc half
/// otherwise).
fn sides<'a>(h: &'a Ctx, test: &str) -> Vec<Side<'a>> {
    let mut v = vec![Side::new(h, "rt", rt_bin())];
    if Path::new(RUNC).exists() {
        v.push(Side::new(h, "runc", PathBuf::from(RUNC)));
    } else {
        skip(
            test,
            format!("{RUNC} not found: only the runtime under test's half of the comparison runs"),
        );
    }
    v
}

/// Assert that every side observed the same `what`.
#[track_caller]
fn same<T: PartialEq + Debug>(sides: &[Side], what: &str, values: &[T]) {
    for (s, v) in sides.iter().zip(values).skip(1) {
        assert_eq!(
            &values[0],
            v,
            "{what}: {} ({}) and {} ({}) differ",
            sides[0].label,
            sides[0].bin.display(),
            s.label,
            s.bin.display()
        );
    }
}

/// `state` text with each top-level value replaced by `<key>`: the layout (key order,
/// indentation, trailing newline) without the values that legitimately differ.
fn skeleton(text: &str, v: &Value) -> String {
    let mut s = text.to_string();
    for (k, val) in v.as_object().expect("state is an object") {
        let from = format!("\"{k}\": {}", serde_json::to_string(val).unwrap());
        s = s.replacen(&from, &format!("\"{k}\": <{k}>"), 1);
    }
    s
}

#[test]
fn state_json_matches_runc() {
    let h = Ctx::new("state_json_matches_runc");
    let sides = sides(&h, "state_json_matches_runc");
    // Per side: (key order, skeleton) for created, running and stopped.
    let mut seen = Vec::new();
    for s in &sides {
        let id = s.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "100"]);
        s.create(&id, &b).ok();
        let bundle = fs::canonicalize(&b.dir).unwrap();

        let mut per = Vec::new();
        let mut statuses = Vec::new();
        let mut check = |s: &Side, expect: &str| {
            let (text, st) = s.state_ok(&id);
            let who = format!("[{}] state {id}", s.label);
            statuses.push(st["status"].as_str().unwrap_or("").to_string());
            assert_eq!(st["status"], expect, "{who}: {st}");
            assert_eq!(st["id"], id.as_str(), "{who}");
            let pid = st["pid"].as_i64().expect("pid is a number");
            if expect == "stopped" {
                assert_eq!(pid, 0, "{who}: a stopped container has pid 0");
            } else {
                assert!(pid > 0, "{who}: pid {pid}");
            }
            let bp = Path::new(st["bundle"].as_str().expect("bundle is a string"));
            assert!(bp.is_absolute(), "{who}: bundle not absolute: {bp:?}");
            assert_eq!(bp, bundle, "{who}");
            let rp = Path::new(st["rootfs"].as_str().expect("rootfs is a string"));
            assert!(rp.is_absolute(), "{who}: rootfs not absolute: {rp:?}");
            assert_eq!(rp, bundle.join("rootfs"), "{who}");
            let created = st["created"].as_str().expect("created is a string");
            let (frac, zone) = parse_rfc3339(created)
                .unwrap_or_else(|| panic!("{who}: created is not RFC 3339: {created}"));
            assert!(
                !frac.is_empty() && zone == "Z",
                "{who}: created is not RFC 3339 UTC with nanoseconds: {created}"
            );
            assert_eq!(st["owner"], "", "{who}: owner in state is empty");
            per.push((json_keys_at(&text, 1), skeleton(&text, &st)));
        };
        check(s, "created");
        s.rt(&["start", &id]).ok();
        check(s, "running");
        s.rt(&["kill", &id, "KILL"]).ok();
        s.wait_status(&id, "stopped");
        check(s, "stopped");
        assert_eq!(statuses, ["created", "running", "stopped"]);
        s.rt(&["delete", &id]).ok();
        assert!(s.state(&id).is_none(), "[{}] state after delete", s.label);
        seen.push(per);
    }
    let keys: Vec<_> = seen
        .iter()
        .map(|p| p.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())
        .collect();
    same(
        &sides,
        "state keys (in order) when created/running/stopped",
        &keys,
    );
    let skel: Vec<_> = seen
        .iter()
        .map(|p| p.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>())
        .collect();
    same(&sides, "state output layout", &skel);
}

/// Lay out `rows` the way runc's `list` does: Go's tabwriter with minwidth 12 and padding
/// 3, every column but the last padded to its widest cell + 3.
fn tabwriter(rows: &[Vec<String>]) -> String {
    let ncols = rows[0].len();
    let widths: Vec<usize> = (0..ncols - 1)
        .map(|i| rows.iter().map(|r| (r[i].len() + 3).max(12)).max().unwrap())
        .collect();
    let mut s = String::new();
    for r in rows {
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&format!("{:<w$}", r[i], w = *w));
        }
        s.push_str(&r[ncols - 1]);
        s.push('\n');
    }
    s
}

#[test]
fn list_matches_runc() {
    let h = Ctx::new("list_matches_runc");
    let sides = sides(&h, "list_matches_runc");

    // No containers (the root does not even exist yet).
    let empty: Vec<_> = sides
        .iter()
        .map(|s| s.rt(&["list"]).ok().stdout.clone())
        .collect();
    assert_eq!(
        empty[0],
        tabwriter(&[["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
            .map(String::from)
            .to_vec()])
    );
    same(&sides, "`list` with no containers", &empty);
    let null: Vec<_> = sides
        .iter()
        .map(|s| s.rt(&["list", "-f", "json"]).ok().stdout.clone())
        .collect();
    assert_eq!(null[0], "null\n", "`list -f json` with no containers");
    same(&sides, "`list -f json` with no containers", &null);
    let quiet: Vec<_> = sides
        .iter()
        .map(|s| s.rt(&["list", "-q"]).ok().stdout.clone())
        .collect();
    assert_eq!(quiet[0], "");
    same(&sides, "`list -q` with no containers", &quiet);

    // One created container per side.
    let mut headers = Vec::new();
    let mut json_keys = Vec::new();
    let mut owners = Vec::new();
    for s in &sides {
        let id = s.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "100"]);
        s.create(&id, &b).ok();
        let (_, st) = s.state_ok(&id);

        let table = s.rt(&["list"]).ok().stdout.clone();
        let rows: Vec<Vec<String>> = table
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        assert_eq!(rows.len(), 2, "[{}] list:\n{table}", s.label);
        assert!(
            rows.iter().all(|r| r.len() == 6),
            "[{}] list:\n{table}",
            s.label
        );
        assert_eq!(
            table,
            tabwriter(&rows),
            "[{}] list is not laid out like Go's tabwriter",
            s.label
        );
        let row = &rows[1];
        assert_eq!(row[0], id);
        assert_eq!(row[1], st["pid"].to_string());
        assert_eq!(row[2], "created");
        assert_eq!(row[3], st["bundle"].as_str().unwrap());
        assert_eq!(row[4], st["created"].as_str().unwrap());
        headers.push(rows[0].clone());
        owners.push(row[5].clone());

        let text = s.rt(&["list", "-f", "json"]).ok().stdout.clone();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("[{}] list -f json: {e}:\n{text}", s.label));
        let arr = v.as_array().expect("list -f json is an array");
        assert_eq!(arr.len(), 1, "[{}] {text}", s.label);
        assert_eq!(arr[0]["id"], id.as_str());
        assert_eq!(arr[0]["pid"], st["pid"]);
        assert_eq!(arr[0]["status"], "created");
        assert_eq!(arr[0]["bundle"], st["bundle"]);
        assert_eq!(arr[0]["rootfs"], st["rootfs"]);
        assert_eq!(arr[0]["created"], st["created"]);
        assert_eq!(arr[0]["owner"].as_str(), Some(row[5].as_str()));
        assert!(text.ends_with("]\n"), "[{}] {text:?}", s.label);
        json_keys.push(json_keys_at(&text, 2));

        s.rt(&["delete", "--force", &id]).ok();
        s.assert_nothing_left(&id);
    }
    same(&sides, "`list` header", &headers);
    same(
        &sides,
        "`list` OWNER of a container created by root",
        &owners,
    );
    same(
        &sides,
        "keys (in order) of a `list -f json` entry",
        &json_keys,
    );
}

#[test]
fn run_exit_status_matches_runc() {
    let h = Ctx::new("run_exit_status_matches_runc");
    let sides = sides(&h, "run_exit_status_matches_runc");
    // (script, keep the pid namespace, expected exit status)
    let cases: [(&str, bool, i32); 4] = [
        ("exit 0", true, 0),
        ("echo out; exit 7", true, 7),
        // Not a namespace init: SIGKILL kills it, and `run` exits 128 + 9.
        ("kill -9 $$; sleep 5", false, 137),
        // A pid-namespace init ignores SIGKILL sent from inside: the script carries on.
        ("kill -9 $$; exit 3", true, 3),
    ];
    for (script, pidns, expect) in cases {
        let mut codes = Vec::new();
        for s in &sides {
            let id = s.id();
            let mut b = h.bundle(&id);
            b.sh(script);
            if !pidns {
                b.remove_namespace("pid");
            }
            let out = s.run(&id, &b);
            out.expect_code(expect);
            if script.starts_with("echo out") {
                assert_eq!(out.stdout, "out\n", "[{}] {}", s.label, out.describe());
            }
            codes.push(out.code());
            s.assert_nothing_left(&id);
        }
        same(&sides, &format!("`run` exit status of {script:?}"), &codes);
    }
}

#[test]
fn error_exits_match_runc() {
    let h = Ctx::new("error_exits_match_runc");
    let sides = sides(&h, "error_exits_match_runc");
    let mut all = Vec::new();
    for s in &sides {
        let mut codes: Vec<(String, i32)> = Vec::new();
        let mut rec = |what: &str, out: &Output| {
            assert!(
                !out.stderr.trim().is_empty(),
                "`{}`: no error message",
                out.cmdline
            );
            codes.push((what.to_string(), out.code()));
        };
        // Unknown container.
        let nosuch = s.id();
        for args in [
            vec!["state", &nosuch],
            vec!["start", &nosuch],
            vec!["kill", &nosuch],
            vec!["kill", &nosuch, "KILL"],
            vec!["delete", &nosuch],
        ] {
            let out = s.rt(&args);
            out.expect_code(1);
            let what: Vec<&str> = args
                .iter()
                .map(|a| if *a == nosuch { "<unknown>" } else { a })
                .collect();
            rec(&what.join(" "), &out);
        }

        let id = s.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "100"]);
        s.create(&id, &b).ok();
        s.rt(&["start", &id]).ok();
        assert_eq!(s.status(&id).as_deref(), Some("running"));
        let pid = s.state_ok(&id).1["pid"].as_i64().unwrap() as i32;

        let out = s.rt(&["start", &id]);
        out.expect_code(1);
        rec("start <running>", &out);

        let out = s.rt(&["delete", &id]);
        out.expect_code(1);
        rec("delete <running>", &out);
        assert_eq!(s.status(&id).as_deref(), Some("running"));
        assert!(pid_alive(pid), "[{}] delete without -f killed it", s.label);

        let mut b2 = h.bundle(&id);
        b2.sh("echo second > /tmp/second");
        let out = s.create(&id, &b2);
        out.expect_code(1);
        rec("create <duplicate id>", &out);
        let out = s.run(&id, &b2);
        out.expect_code(1);
        rec("run <duplicate id>", &out);
        assert!(!b2.path_in_rootfs("/tmp/second").exists());
        assert_eq!(s.state_ok(&id).1["pid"].as_i64(), Some(pid as i64));

        let out = s.rt(&["create", "--bundle", b2.dir.to_str().unwrap(), "a/b"]);
        out.expect_code(1);
        rec("create a/b", &out);
        assert!(!s.root.join("a").exists(), "[{}] a/b created", s.label);

        let out = s.rt(&["kill", &id, "FOO"]);
        out.expect_code(1);
        rec("kill <running> FOO", &out);
        assert_eq!(s.status(&id).as_deref(), Some("running"));

        let listed = s.rt(&["list", "-q"]).ok().stdout.clone();
        assert_eq!(listed, format!("{id}\n"), "[{}] list -q", s.label);

        s.rt(&["delete", "-f", &id]).ok();
        h.reap(pid, T);
        s.assert_nothing_left(&id);
        all.push(codes);
    }
    same(&sides, "exit statuses of the error cases", &all);
}

#[test]
fn symlink_rootfs_rejected_like_runc() {
    // runc 1.1.5 refuses a root.path that is (or goes through) a symlink: "invalid rootfs:
    // not an absolute path, or a symlink".
    let h = Ctx::new("symlink_rootfs_rejected_like_runc");
    let sides = sides(&h, "symlink_rootfs_rejected_like_runc");
    let mut codes = Vec::new();
    for s in &sides {
        let id = s.id();
        let mut b = h.bundle(&id);
        b.args(&["true"]);
        let real = b.dir.join("real-rootfs");
        fs::rename(b.rootfs(), &real).unwrap();
        std::os::unix::fs::symlink("real-rootfs", b.rootfs()).unwrap();
        let out = s.run(&id, &b);
        codes.push(out.status.code());
        s.assert_nothing_left(&id);
    }
    if let Some(i) = sides.iter().position(|s| s.bin == Path::new(RUNC)) {
        assert_eq!(codes[i], Some(1), "runc accepted a symlinked rootfs");
    }
    same(
        &sides,
        "`run` exit status with a symlinked root.path",
        &codes,
    );
}

#[test]
fn log_time_zone_is_rfc3339() {
    // runc (logrus) stamps log lines with local time, honouring TZ; rt always uses UTC.
    // Both are RFC 3339, which is what containerd parses. `state.created` is UTC in both.
    let zone = "Asia/Tokyo";
    // Without tzdata runc cannot apply TZ (it logs in UTC): rt's UTC is still checked.
    let tzdata = Path::new("/usr/share/zoneinfo").join(zone).exists();
    if !tzdata {
        skip(
            "log_time_zone_is_rfc3339",
            format!("no tzdata for {zone}: runc's local time is not checked"),
        );
    }
    let h = Ctx::new("log_time_zone_matches_runc");
    let sides = sides(&h, "log_time_zone_is_rfc3339");
    let mut zones = Vec::new();
    for s in &sides {
        let id = s.id();
        let args = ["state", id.as_str()];
        let mut c = s.command(&args);
        c.env("TZ", zone);
        let out = s.run_cmd(c, &args);
        out.expect_code(1);
        let line = out.stderr.trim();
        let time = line
            .strip_prefix("time=\"")
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("[{}] not a logrus line: {line}", s.label));
        let (_, z) = parse_rfc3339(time)
            .unwrap_or_else(|| panic!("[{}] time is not RFC 3339: {time}", s.label));
        zones.push(z);
    }
    for (s, z) in sides.iter().zip(&zones) {
        if s.bin == Path::new(RUNC) {
            if tzdata {
                assert_eq!(z, "+09:00", "runc with TZ={zone}");
            }
        } else if !is_runc() {
            // A documented difference: rt stamps log lines in UTC whatever TZ says (it reads
            // no time zone database); containerd and Docker parse both forms.
            assert_eq!(z, "Z", "rt logs in UTC");
        }
    }
}

/// Run `spec [extra...]` in a fresh directory; returns the directory and config.json's text.
fn spec_in(s: &Side, dir_name: &str, extra: &[&str]) -> (PathBuf, String) {
    let dir = s.h.subdir(&format!("{dir_name}-{}", s.label));
    let mut args = vec!["spec"];
    args.extend_from_slice(extra);
    s.rt_in(&dir, &args).ok();
    let text = fs::read_to_string(dir.join("config.json"))
        .unwrap_or_else(|e| panic!("[{}] spec wrote no config.json: {e}", s.label));
    (dir, text)
}

fn parse(s: &Side, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("[{}] spec: {e}:\n{text}", s.label))
}

fn destinations(v: &Value) -> Vec<String> {
    v["mounts"]
        .as_array()
        .expect("mounts is an array")
        .iter()
        .map(|m| m["destination"].as_str().unwrap_or("").to_string())
        .collect()
}

fn namespace_types(v: &Value) -> Vec<String> {
    v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces is an array")
        .iter()
        .map(|n| n["type"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn spec_matches_runc() {
    let h = Ctx::new("spec_matches_runc");
    let sides = sides(&h, "spec_matches_runc");
    let mut keys = Vec::new();
    let mut dests = Vec::new();
    let mut nss = Vec::new();
    for s in &sides {
        let (dir, text) = spec_in(s, "spec", &[]);
        let v = parse(s, &text);
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        keys.push(k);
        dests.push(destinations(&v));
        nss.push(namespace_types(&v));
        assert_eq!(v["root"]["path"], "rootfs", "[{}]", s.label);

        // It refuses to overwrite config.json, whether found in cwd or via --bundle.
        let out = s.rt_in(&dir, &["spec"]);
        out.expect_code(1);
        assert!(
            !out.stderr.trim().is_empty(),
            "`{}`: no message",
            out.cmdline
        );
        let out = s.rt_in(&h.dir, &["spec", "--bundle", dir.to_str().unwrap()]);
        out.expect_code(1);
        assert_eq!(
            fs::read_to_string(dir.join("config.json")).unwrap(),
            text,
            "[{}] config.json was changed",
            s.label
        );
    }
    same(&sides, "`spec` top-level keys", &keys);
    same(&sides, "`spec` mount destinations", &dests);
    same(&sides, "`spec` namespaces", &nss);
}

#[test]
fn spec_rootless_matches_runc() {
    let h = Ctx::new("spec_rootless_matches_runc");
    let sides = sides(&h, "spec_rootless_matches_runc");
    let mut dests = Vec::new();
    let mut nss = Vec::new();
    for s in &sides {
        let (_, text) = spec_in(s, "rootless", &["--rootless"]);
        let v = parse(s, &text);
        let ns = namespace_types(&v);
        assert!(
            ns.iter().any(|t| t == "user"),
            "[{}] no user ns: {ns:?}",
            s.label
        );
        assert!(
            !ns.iter().any(|t| t == "network"),
            "[{}] rootless spec has a network ns: {ns:?}",
            s.label
        );
        for m in ["uidMappings", "gidMappings"] {
            let maps = v["linux"][m].as_array();
            assert!(
                maps.is_some_and(|a| !a.is_empty()),
                "[{}] rootless spec lacks linux.{m}",
                s.label
            );
        }
        dests.push(destinations(&v));
        nss.push(ns);
    }
    same(&sides, "`spec --rootless` namespaces", &nss);
    same(&sides, "`spec --rootless` mount destinations", &dests);
}

#[test]
fn spec_key_order_matches_runc() {
    // runc writes config.json in the spec's struct field order (ociVersion, process, root,
    // hostname, mounts, linux; user before args inside process, ...).
    let h = Ctx::new("spec_key_order_matches_runc");
    let sides = sides(&h, "spec_key_order_matches_runc");
    let mut order = Vec::new();
    for s in &sides {
        let (_, text) = spec_in(s, "order", &[]);
        parse(s, &text);
        order.push(json_keys(&text));
    }
    let top: Vec<Vec<String>> = order
        .iter()
        .map(|o| {
            o.iter()
                .filter(|(d, _)| *d == 1)
                .map(|(_, k)| k.clone())
                .collect()
        })
        .collect();
    same(&sides, "`spec` top-level key order", &top);
    same(&sides, "`spec` key order (all levels)", &order);
}

#[test]
fn exec_matches_runc() {
    let h = Ctx::new("exec_matches_runc");
    let sides = sides(&h, "exec_matches_runc");
    let ids: Vec<String> = sides
        .iter()
        .map(|s| {
            let id = s.id();
            let mut b = h.bundle(&id);
            b.args(&["sleep", "1000"]);
            b.save();
            s.rt(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id])
                .ok();
            s.track(&id);
            id
        })
        .collect();
    // (flags before the id, command after it)
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["sh", "-c", "echo out; echo err >&2; exit 7"]),
        (&[], &["sh", "-c", "kill -9 $$"]),
        (&[], &["env"]),
        (
            &["-u", "1000:1001", "--cwd", "/tmp", "-e", "A=b"],
            &["sh", "-c", "id; pwd; echo $A"],
        ),
        (&["-u", "7"], &["id"]),
        (
            &["--additional-gids", "10", "--additional-gids", "20"],
            &["id", "-G"],
        ),
        (
            &["--cap", "CAP_SYS_ADMIN"],
            &["grep", "^Cap", "/proc/self/status"],
        ),
        (
            &["--no-new-privs"],
            &["grep", "NoNewPrivs", "/proc/self/status"],
        ),
        (
            &[],
            &[
                "sh",
                "-c",
                "readlink /proc/1/exe; cat /proc/self/cgroup | wc -l",
            ],
        ),
        // Failures: exit 255 and "exec failed: " on both.
        (&[], &["no-such-program"]),
        (&[], &[]),
        (&["-t", "-d"], &["true"]),
    ];
    for (flags, cmd) in cases {
        let outs: Vec<Output> = sides
            .iter()
            .zip(&ids)
            .map(|(s, id)| {
                let mut args = vec!["exec"];
                args.extend_from_slice(flags);
                args.push(id);
                args.extend_from_slice(cmd);
                s.rt(&args)
            })
            .collect();
        let what = format!("exec {flags:?} ID {cmd:?}");
        let codes: Vec<i32> = outs.iter().map(Output::code).collect();
        same(&sides, &format!("{what}: exit status"), &codes);
        if codes[0] == 255 {
            for o in &outs {
                assert!(o.stderr.contains("exec failed: "), "{}", o.describe());
            }
        } else {
            // The container ids differ (and show in the env marker).
            let stdout: Vec<String> = outs
                .iter()
                .zip(&ids)
                .map(|(o, id)| o.stdout.replace(id.as_str(), "ID"))
                .collect();
            same(&sides, &format!("{what}: stdout"), &stdout);
            let stderr: Vec<&str> = outs.iter().map(|o| o.stderr.as_str()).collect();
            same(&sides, &format!("{what}: stderr"), &stderr);
        }
    }
}

/// Signal 0 sends nothing and probes (kill(2)); runc takes it. On a running container
/// `kill ID 0` and `kill --all ID 0` succeed and it runs on. Once it has stopped,
/// `kill ID 0` (like any signal) says it is not running, and `kill --all` succeeds: there
/// is nobody left to signal.
#[test]
fn kill_signal_zero_matches_runc() {
    let h = Ctx::new("kill_signal_zero_matches_runc");
    let sides = sides(&h, "kill_signal_zero_matches_runc");
    let mut all = Vec::new();
    for s in &sides {
        let id = s.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "100"]);
        s.create(&id, &b).ok();
        s.rt(&["start", &id]).ok();
        let pid = s.state_ok(&id).1["pid"].as_i64().unwrap() as i32;
        let mut codes = Vec::new();
        for args in [vec!["kill", &id, "0"], vec!["kill", "--all", &id, "0"]] {
            codes.push(s.rt(&args).code());
        }
        assert_eq!(s.status(&id).as_deref(), Some("running"), "[{}]", s.label);
        s.rt(&["kill", &id, "KILL"]).ok();
        s.wait_status(&id, "stopped");
        for args in [
            vec!["kill", &id, "0"],
            vec!["kill", "--all", &id, "0"],
            vec!["kill", &id, "TERM"],
            vec!["kill", "--all", &id, "TERM"],
        ] {
            codes.push(s.rt(&args).code());
        }
        s.rt(&["delete", &id]).ok();
        h.reap(pid, T);
        s.assert_nothing_left(&id);
        assert_eq!(codes, [0, 0, 1, 0, 1, 0], "[{}] exit statuses", s.label);
        all.push(codes);
    }
    same(&sides, "exit statuses of kill 0", &all);
}
