//! Test harness for driving an OCI runtime binary (`rt`, or `runc` as the reference) the way a
//! user would: as a subprocess, with a per-test `--root`, bundle and container ids.
//!
//! Environment:
//! - `RT_BIN`: the runtime under test (default `<workspace>/target/release/rt`).
//! - `RT_TEST_ROOTFS`: a busybox rootfs (default `<workspace>/spec-examples/rootfs`).
//!
//! Every test builds a [`Ctx`]; it is a guard whose `Drop` (which also runs when the test
//! panics) force-deletes the test's containers, reaps their init processes, removes their
//! cgroups, unmounts whatever is left below the test's temp dir and removes that dir.

pub mod console;
pub mod containerd;
pub mod docker;
pub mod error_log;
pub mod fuse;
pub mod host;
pub mod measure;
pub mod mountinfo;
pub mod podman;
pub mod user;

use serde_json::{json, Value};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// How long any single runtime invocation may take before the harness kills it.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variable set on every runtime invocation and in every container's environment,
/// so that processes belonging to a test's container can be found in `/proc/*/environ`.
pub const MARK_VAR: &str = "RT_IT_ID";

/// Say that a test skips a check, and why: the host lacks what it needs. Written to the
/// real stderr (libtest's capture only takes `print!`/`eprint!`), so that `make test`
/// shows every skip and its reason even when the test passes.
pub fn skip(test: &str, why: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// An empty /tmp/<name>, whatever an earlier run with the same name left there.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from("/tmp").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// Root of the cargo workspace.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration crate lives inside the workspace")
        .to_path_buf()
}

/// The runtime binary under test.
pub fn rt_bin() -> PathBuf {
    match std::env::var_os("RT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_dir().join("target/release/rt"),
    }
}

/// True when the runtime under test is runc (the reference), used to gate assertions on
/// behaviour where runc 1.1.5 lacks a feature or deviates from the OCI runtime spec.
pub fn is_runc() -> bool {
    let bin = rt_bin();
    let resolved = fs::canonicalize(&bin).unwrap_or(bin);
    resolved
        .file_name()
        .map(|n| n.to_string_lossy().starts_with("runc"))
        .unwrap_or(false)
}

/// The source rootfs that bundles copy. Panics with instructions when it is missing.
pub fn rootfs_src() -> PathBuf {
    let p = match std::env::var_os("RT_TEST_ROOTFS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_dir().join("spec-examples/rootfs"),
    };
    if !p.join("bin/busybox").exists() {
        panic!(
            "test rootfs not found at {} (no bin/busybox): run `make rootfs` in {} \
             (or point RT_TEST_ROOTFS at a busybox rootfs)",
            p.display(),
            workspace_dir().display()
        );
    }
    p
}

/// The test rootfs as a tar file at `dest` (for `podman import`, `docker import`).
pub fn rootfs_tarball(dest: &Path) {
    let out = Command::new("tar")
        .arg("-C")
        .arg(rootfs_src())
        .arg("-cf")
        .arg(dest)
        .arg(".")
        .output()
        .expect("spawn tar");
    assert!(out.status.success(), "tar the rootfs: {out:?}");
}

static SUBREAPER: Once = Once::new();

/// Make the test process a child subreaper, so that detached containers (whose runtime
/// process exits) are reparented to us and can be reaped by pid.
pub fn ensure_subreaper() {
    SUBREAPER.call_once(|| {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(r, 0, "prctl(PR_SET_CHILD_SUBREAPER) failed");
    });
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next_n() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// Result of one runtime invocation.
#[derive(Debug)]
pub struct Output {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command's JSON log (see [`error_log`]); None when the harness gave it none.
    pub log: Option<String>,
    /// stderr as the command wrote it (`stderr` is rebuilt when there is a log).
    pub raw_stderr: String,
    /// The command's arguments (after `--root`).
    pub args: Vec<String>,
}

impl Output {
    /// Exit code; panics if the runtime was killed by a signal.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(c) => c,
            None => panic!(
                "`{}` was killed by a signal: {:?}\n{}",
                self.cmdline,
                self.status,
                self.describe()
            ),
        }
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (with the command's output) unless it exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        if !self.success() {
            panic!(
                "`{}` failed: {:?}\n{}",
                self.cmdline,
                self.status,
                self.describe()
            );
        }
        self
    }

    /// Panics unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        if self.status.code() != Some(code) {
            panic!(
                "`{}`: expected exit code {code}, got {:?}\n{}",
                self.cmdline,
                self.status,
                self.describe()
            );
        }
        self
    }

    /// Panics unless the command failed with exit code 1 and a non-empty, single-line error
    /// message on stderr, whose JSON log line (when the harness asked for one) carries the
    /// error's fields ([`error_log::check_fields`]).
    #[track_caller]
    pub fn expect_error(&self) -> &Self {
        self.expect_code(1);
        let msg = self.stderr.trim();
        assert!(
            !msg.is_empty(),
            "`{}`: expected an error message on stderr",
            self.cmdline
        );
        assert_eq!(
            msg.lines().count(),
            1,
            "`{}`: expected a one-line error message, got:\n{}",
            self.cmdline,
            self.stderr
        );
        if self.log.is_some() {
            self.error_fields();
        }
        self
    }

    /// The JSON log's error line, checked as [`Output::expect_error`] checks it.
    #[track_caller]
    pub fn error_fields(&self) -> Value {
        let log = self
            .log
            .as_deref()
            .unwrap_or_else(|| panic!("`{}`: the harness gave it no JSON log", self.cmdline));
        let entry = error_log::check_fields(&self.args, &self.raw_stderr, log)
            .unwrap_or_else(|e| panic!("`{}`: the error's fields: {e}", self.cmdline));
        error_log::report(std::panic::Location::caller(), &self.args, &entry);
        entry
    }

    /// Panics unless it exited `code` with exactly `stdout` and `stderr` containing
    /// `stderr_part`: the usual check of a client's `run`.
    #[track_caller]
    pub fn expect_run(&self, code: i32, stdout: &str, stderr_part: &str) -> &Self {
        self.expect_code(code);
        assert_eq!(
            self.stdout,
            stdout,
            "`{}`\n{}",
            self.cmdline,
            self.describe()
        );
        assert!(
            self.stderr.contains(stderr_part),
            "`{}`: {stderr_part:?} not on stderr\n{}",
            self.cmdline,
            self.describe()
        );
        self
    }

    /// The lines of stdout, for exact checks of a script's output.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Wait for `child` with a deadline; kill it (by its pid, it is our child) when exceeded.
pub fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    try_wait_child(child, timeout, what).unwrap_or_else(|e| panic!("{e}"))
}

/// Non-panicking [`wait_child`].
pub fn try_wait_child(
    child: &mut Child,
    timeout: Duration,
    what: &str,
) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| format!("wait `{what}`: {e}"))?
        {
            return Ok(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let st = child.wait();
            return Err(format!(
                "`{what}` did not finish within {timeout:?} (killed: {st:?})"
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A helper process started by a test; killed (by its pid) and reaped when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    #[track_caller]
    pub fn spawn(c: &mut Command) -> ChildGuard {
        ChildGuard(c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}")))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll `f` until it returns `Some`, or panic after `timeout`.
#[track_caller]
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// An OCI bundle: a directory holding a copy of the test rootfs and a config.json generated
/// from `config` when the bundle is used by a [`Ctx`] helper.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    pub source: ConfigSource,
}

/// What the bundle's config.json is made of when written.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigSource {
    /// `Bundle::config` serialized.
    Json,
    /// This exact text (for malformed-config tests).
    Raw(String),
    /// No config.json at all.
    Missing,
}

impl Bundle {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Host path of a path inside the rootfs copy (`p` absolute inside the container).
    pub fn path_in_rootfs(&self, p: &str) -> PathBuf {
        self.rootfs().join(p.trim_start_matches('/'))
    }

    /// Write config.json and return the bundle's directory, for a script.
    pub fn saved(&self) -> String {
        self.save();
        self.dir.display().to_string()
    }

    /// Write config.json according to `source`.
    pub fn save(&self) {
        let path = self.dir.join("config.json");
        match &self.source {
            ConfigSource::Json => {
                let text = serde_json::to_string_pretty(&self.config).unwrap();
                fs::write(&path, text).unwrap();
            }
            ConfigSource::Raw(t) => fs::write(&path, t).unwrap(),
            ConfigSource::Missing => match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => panic!("remove {}: {e}", path.display()),
            },
        }
    }

    /// Set `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Set `process.args` to `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Append to `process.env`.
    pub fn env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(kv));
        self
    }

    /// Append a mount.
    pub fn mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Remove the namespace of type `ty` from `linux.namespaces`.
    pub fn remove_namespace(&mut self, ty: &str) -> &mut Self {
        self.namespaces().retain(|n| n["type"] != ty);
        self
    }

    /// Add (or replace) a namespace entry of type `ty`, optionally with a path to join.
    pub fn namespace(&mut self, ty: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(ty);
        let mut ns = json!({ "type": ty });
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        self.namespaces().push(ns);
        self
    }

    /// A new user namespace whose ids 0-65535 are the host's `host_id` and up.
    pub fn user_namespace(&mut self, host_id: u32) -> &mut Self {
        self.namespace("user", None);
        let map = json!([{ "containerID": 0, "hostID": host_id, "size": 65536 }]);
        self.config["linux"]["uidMappings"] = map.clone();
        self.config["linux"]["gidMappings"] = map;
        self
    }

    pub fn has_namespace(&self, ty: &str) -> bool {
        self.config["linux"]["namespaces"]
            .as_array()
            .map(|a| a.iter().any(|n| n["type"] == ty))
            .unwrap_or(false)
    }

    fn namespaces(&mut self) -> &mut Vec<Value> {
        self.config["linux"]["namespaces"].as_array_mut().unwrap()
    }

    /// Add a hook of `kind` (e.g. "prestart") running `/bin/sh -c script` on the host.
    pub fn hook(&mut self, kind: &str, script: &str) -> &mut Self {
        self.hook_value(
            kind,
            json!({ "path": "/bin/sh", "args": ["sh", "-c", script] }),
        )
    }

    /// Add a hook entry given as raw JSON.
    pub fn hook_value(&mut self, kind: &str, hook: Value) -> &mut Self {
        if !self.config["hooks"].is_object() {
            self.config["hooks"] = json!({});
        }
        let hooks = &mut self.config["hooks"];
        if !hooks[kind].is_array() {
            hooks[kind] = json!([]);
        }
        hooks[kind].as_array_mut().unwrap().push(hook);
        self
    }

    /// Bind-mount host directory `host` (created if missing) at `dest`, read-only if `ro`.
    pub fn bind_host_dir(&mut self, host: &Path, dest: &str, ro: bool) -> &mut Self {
        fs::create_dir_all(host).unwrap();
        let mut opts = vec!["rbind"];
        if ro {
            opts.push("ro");
        }
        self.mount(json!({ "destination": dest, "type": "bind", "source": host, "options": opts }))
    }
}

/// Base config.json: `runc spec` output, with terminal false, ociVersion 1.2.0 and a writable
/// root (tests that want a read-only root set it). Namespaces: pid, network, ipc, uts, mount.
pub fn base_config() -> Value {
    let mut v: Value = serde_json::from_str(RUNC_SPEC).expect("embedded spec parses");
    v["ociVersion"] = json!("1.2.0");
    v["process"]["terminal"] = json!(false);
    v["root"]["readonly"] = json!(false);
    v
}

const RUNC_SPEC: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": true,
    "user": { "uid": 0, "gid": 0 },
    "args": [ "sh" ],
    "env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "TERM=xterm"
    ],
    "cwd": "/",
    "capabilities": {
      "bounding": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "effective": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "permitted": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "ambient": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ]
    },
    "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": true },
  "hostname": "runc",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" ] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": [ "nosuid", "noexec", "nodev" ] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": [ "nosuid", "noexec", "nodev", "ro" ] },
    { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
      "options": [ "nosuid", "noexec", "nodev", "relatime", "ro" ] }
  ],
  "linux": {
    "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
    "namespaces": [
      { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" },
      { "type": "mount" }
    ],
    "maskedPaths": [
      "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
      "/proc/scsi"
    ],
    "readonlyPaths": [
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
    ]
  }
}"#;

/// What [`Ctx::sh_in_throwaway_ns`] calls its script (it may create containers: it holds
/// the cgroup lock as `create` does).
const THROWAWAY: &str = "(throwaway namespace)";

/// Per-test context and cleanup guard.
pub struct Ctx {
    pub name: String,
    /// `/tmp/rt-it-<name>-<pid>-<n>`: everything the test creates on disk lives here.
    pub dir: PathBuf,
    /// The runtime's `--root` (state directory).
    pub root: PathBuf,
    ids: Mutex<Vec<String>>,
    pids: Mutex<Vec<i32>>,
}

impl Ctx {
    /// New context for test `name` (use the test function's name).
    pub fn new(name: &str) -> Ctx {
        ensure_subreaper();
        // Fail early, with instructions, when the rootfs or the runtime is missing.
        rootfs_src();
        let bin = rt_bin();
        if !bin.exists() {
            panic!(
                "runtime binary {} not found: build it (`cargo build --release -p rt`) or set \
                 RT_BIN (e.g. RT_BIN=/usr/sbin/runc)",
                bin.display()
            );
        }
        let n = next_n();
        let name = format!("{}-{}-{}", sanitize(name), std::process::id(), n);
        let dir = fresh_dir(&format!("rt-it-{name}"));
        let root = dir.join("state");
        Ctx {
            name,
            dir,
            root,
            ids: Mutex::new(Vec::new()),
            pids: Mutex::new(Vec::new()),
        }
    }

    /// A new unique container id, registered for cleanup.
    pub fn id(&self) -> String {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let id = if ids.is_empty() {
            self.name.clone()
        } else {
            format!("{}-{}", self.name, ids.len())
        };
        ids.push(id.clone());
        id
    }

    /// Register an id (e.g. a deliberately odd one) for cleanup.
    pub fn track_id(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.to_string());
    }

    /// Register a pid to reap at cleanup (a container init reparented to us).
    pub fn track_pid(&self, pid: i32) {
        if pid > 0 {
            let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }

    /// A new bundle for container `id`: a rootfs copy and the base config with
    /// `linux.cgroupsPath = /rt-test/<id>` and `RT_IT_ID=<id>` in the environment.
    pub fn bundle(&self, id: &str) -> Bundle {
        let src = rootfs_src();
        let dir = self.dir.join(format!("bundle-{}", next_n()));
        fs::create_dir_all(&dir).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(dir.join("rootfs"))
            .status()
            .expect("spawn cp");
        assert!(st.success(), "cp -a {} failed", src.display());
        let mut config = base_config();
        config["linux"]["cgroupsPath"] = json!(cgroups_path(id));
        config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(format!("{MARK_VAR}={id}")));
        Bundle {
            dir,
            config,
            source: ConfigSource::Json,
        }
    }

    /// A bundle whose container (a cgroup namespace, the cgroup mount writable, a pid
    /// namespace only with `pidns`) makes `sub/deeper` below its own cgroup in every
    /// hierarchy and moves a `sleep 1000` there, then sleeps itself (`sleep 1001`).
    pub fn sub_cgroup_bundle(&self, id: &str, pidns: bool) -> Bundle {
        let mut b = self.bundle(id);
        b.namespace("cgroup", None);
        if !pidns {
            b.remove_namespace("pid");
        }
        for m in b.config["mounts"].as_array_mut().unwrap() {
            if m["type"] == "cgroup" {
                m["options"] = json!(["nosuid", "noexec", "nodev"]);
            }
        }
        // A v1 cpuset sub-cgroup takes no process until it has cpus and mems.
        let script = "exec 2>/move.err; for d in /sys/fs/cgroup/*; do [ -L $d ] && continue; \
                      mkdir -p $d/sub/deeper || exit 1; \
                      for f in cpuset.cpus cpuset.mems; do [ -e $d/$f ] || continue; \
                      cat $d/$f > $d/sub/$f; cat $d/$f > $d/sub/deeper/$f; done; \
                      echo $$ > $d/sub/deeper/cgroup.procs || exit 1; done; \
                      exec sleep 1000";
        fs::write(b.path_in_rootfs("/move.sh"), script).unwrap();
        b.sh("sh /move.sh & exec sleep 1001");
        b
    }

    /// A fresh subdirectory of the test dir.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A `Command` for `RT_BIN --root <root> args...` (with `--log <file> --log-format
    /// json` for rt: see [`error_log`]).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(rt_bin());
        c.arg("--root").arg(&self.root);
        if let Some(log) = error_log::new_log(&self.dir.join("out"), next_n(), args) {
            c.arg("--log").arg(log).args(["--log-format", "json"]);
        }
        c.args(args);
        c.env(MARK_VAR, self.name.as_str());
        c.stdin(Stdio::null());
        c
    }

    /// Run the runtime with `args`, capturing output (in files, so that a container
    /// inheriting the runtime's stdio cannot block us) and waiting at most [`CMD_TIMEOUT`].
    pub fn rt(&self, args: &[&str]) -> Output {
        self.rt_cmd(self.command(args), args)
    }

    /// Like [`Ctx::rt`] but in working directory `cwd`.
    pub fn rt_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut c = self.command(args);
        c.current_dir(cwd);
        self.rt_cmd(c, args)
    }

    /// Run a prepared command (see [`Ctx::command`]) with captured output.
    pub fn rt_cmd(&self, c: Command, args: &[&str]) -> Output {
        self.try_rt_cmd(c, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Non-panicking [`Ctx::rt_cmd`] (for cleanup paths).
    pub fn try_rt_cmd(&self, mut c: Command, args: &[&str]) -> Result<Output, String> {
        let n = next_n();
        let outdir = self.dir.join("out");
        fs::create_dir_all(&outdir).map_err(|e| format!("mkdir {}: {e}", outdir.display()))?;
        let out_p = outdir.join(format!("{n}.stdout"));
        let err_p = outdir.join(format!("{n}.stderr"));
        let cmdline = format!("{} {}", rt_bin().display(), args.join(" "));
        let file = |p: &Path| File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
        c.stdout(file(&out_p)?);
        c.stderr(file(&err_p)?);
        let creates = matches!(
            args.first(),
            Some(&"create") | Some(&"run") | Some(&THROWAWAY)
        );
        let lock = if creates {
            Some(CgroupLock::shared())
        } else {
            None
        };
        let mut child = c.spawn().map_err(|e| format!("spawn `{cmdline}`: {e}"))?;
        let status = try_wait_child(&mut child, CMD_TIMEOUT, &cmdline)?;
        drop(lock);
        let read =
            |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
        let log = error_log::log_of(&c).map(|p| read(&p));
        let stderr = read(&err_p);
        Ok(Output {
            cmdline,
            status,
            stdout: read(&out_p),
            stderr: match &log {
                Some(log) => error_log::stderr_with_log(&stderr, log),
                None => stderr.clone(),
            },
            raw_stderr: stderr,
            log,
            args: args.iter().map(|a| a.to_string()).collect(),
        })
    }

    /// Run the shell `script` in a throwaway pid and mount namespace (`unshare --pid --fork
    /// --mount --mount-proc --kill-child`), for a test that, if rt regressed, could kill or
    /// change things outside its container: a kill there reaches only the namespace's own
    /// processes (cgroup.procs lists nobody else to a reader inside it), and a mount stays
    /// in it. The namespace ends with the script: every process in it dies.
    ///
    /// In the script, `$RT` is the runtime with this context's `--root`. With `fake_cgroups`,
    /// the host's cgroup mounts are detached (in the namespace only) and /sys/fs/cgroup
    /// holds one private named v1 hierarchy
    /// with no controller, `$CG`: rt then sees only that, so a regression that picked the
    /// wrong cgroup could neither write a host limit nor kill a host process. Its sub-cgroups
    /// are removed when the script ends. Returns None (after saying why) when this kernel
    /// cannot mount such a hierarchy (cgroup_no_v1=named).
    pub fn sh_in_throwaway_ns(&self, script: &str, fake_cgroups: bool) -> Option<Output> {
        let mut full = String::from("set -u\n");
        let hierarchy = fake_cgroups.then(|| format!("rtsafe-{}-{}", std::process::id(), next_n()));
        if let Some(name) = &hierarchy {
            full.push_str(&format!(
                "CG=/sys/fs/cgroup/{name}\n\
                 umount -l /sys/fs/cgroup 2>/dev/null; \
                 mount -t tmpfs -o mode=755 rt-safety /sys/fs/cgroup && mkdir $CG && \
                 mount -t cgroup -o none,name={name} cgroup $CG || {{ echo NO-NAMED-HIERARCHY; exit 0; }}\n\
                 cleanup() {{ for p in $(cat $(find $CG -mindepth 1 -name cgroup.procs) 2>/dev/null); do \
                 [ $p != $$ ] && kill -9 $p 2>/dev/null; done; \
                 for i in 1 2 3 4 5 6 7 8 9 10; do find $CG -mindepth 1 -depth -type d -exec rmdir {{}} + 2>/dev/null && break; sleep 0.2; done; }}\n\
                 trap cleanup EXIT\n"
            ));
        }
        full.push_str(script);
        let mut c = Command::new("unshare");
        c.args([
            "--pid",
            "--fork",
            "--mount",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            &full,
        ]);
        c.env(
            "RT",
            format!("{} --root {}", rt_bin().display(), self.root.display()),
        );
        c.env(MARK_VAR, self.name.as_str());
        c.stdin(Stdio::null());
        // The script's own files (relative paths) go to a directory of this test's.
        c.current_dir(self.subdir(&format!("sh-{}", next_n())));
        let out = self.rt_cmd(c, &[THROWAWAY, script]);
        if let Some(name) = &hierarchy {
            release_named_hierarchy(name);
        }
        if out.stdout.contains("NO-NAMED-HIERARCHY") {
            skip(
                &self.name,
                format!(
                    "this kernel cannot mount a named cgroup v1 hierarchy: {}",
                    out.stderr.trim()
                ),
            );
            return None;
        }
        Some(out)
    }

    /// `create --bundle <b> id` (config written first). Records the init pid on success.
    pub fn create(&self, id: &str, b: &Bundle) -> Output {
        b.save();
        let out = self.rt(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        if out.success() {
            self.record_pid(id);
        }
        out
    }

    /// `create` that must succeed.
    #[track_caller]
    pub fn create_ok(&self, id: &str, b: &Bundle) {
        self.create(id, b).ok();
    }

    pub fn start(&self, id: &str) -> Output {
        self.rt(&["start", id])
    }

    /// `run --bundle <b> id` in the foreground: the container's stdout/stderr are captured
    /// in the returned output and its exit status is the runtime's.
    pub fn run(&self, id: &str, b: &Bundle) -> Output {
        b.save();
        self.rt(&["run", "--bundle", b.dir.to_str().unwrap(), id])
    }

    /// `run` that must exit 0; returns the container's stdout.
    #[track_caller]
    pub fn run_ok(&self, id: &str, b: &Bundle) -> String {
        self.run(id, b).ok().stdout.clone()
    }

    /// `run -d`. Records the init pid on success.
    pub fn run_detached(&self, id: &str, b: &Bundle) -> Output {
        b.save();
        let out = self.rt(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), id]);
        if out.success() {
            self.record_pid(id);
        }
        out
    }

    /// Parsed `state id`, or `None` if the command fails.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.rt(&["state", id]);
        if !out.success() {
            return None;
        }
        Some(
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("state {id}: invalid JSON ({e}):\n{}", out.stdout)),
        )
    }

    #[track_caller]
    pub fn state_ok(&self, id: &str) -> Value {
        match self.state(id) {
            Some(v) => v,
            None => panic!("state {id} failed:\n{}", self.rt(&["state", id]).describe()),
        }
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .and_then(|v| v["status"].as_str().map(str::to_string))
    }

    /// Wait until `state id` reports `status`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) {
        poll(timeout, &format!("container {id} to be {status}"), || {
            (self.status(id).as_deref() == Some(status)).then_some(())
        })
    }

    pub fn kill(&self, id: &str, sig: &str) -> Output {
        self.rt(&["kill", id, sig])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.rt(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.rt(&["delete", "--force", id])
    }

    /// Track the init pid of container `id` (from `state`) for cleanup.
    pub fn record_pid(&self, id: &str) {
        if let Some(st) = self.state(id) {
            if let Some(pid) = st["pid"].as_i64() {
                self.track_pid(pid as i32);
            }
        }
    }

    /// Wait for the (reparented) process `pid` to exit and reap it. Returns its wait status
    /// or `None` if it is not our child.
    pub fn reap(&self, pid: i32, timeout: Duration) -> Option<i32> {
        reap_pid(pid, timeout)
    }

    /// Assert that nothing of container `id` remains: no state dir under `--root`, no cgroup
    /// directory, no process carrying the id's marker or this context's runtime marker (so
    /// call it when no other container of this context is alive).
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str) {
        if !id.is_empty() && !id.contains('/') && id != "." && id != ".." {
            let st = self.root.join(id);
            assert!(!st.exists(), "state dir {} left behind", st.display());
        }
        let cgs = cgroup_dirs(id);
        assert!(cgs.is_empty(), "cgroup dirs left behind: {cgs:?}");
        // Give a dying process a moment to disappear before declaring it left behind.
        // Container processes carry `RT_IT_ID=<id>`; runtime processes (and their children
        // before the container's execve) carry `RT_IT_ID=<ctx name>`.
        for mark in [id, self.name.as_str()] {
            let procs = poll_procs(mark, Duration::from_secs(2));
            assert!(
                procs.is_empty(),
                "processes left behind for {id}: {procs:?}"
            );
        }
    }
}

fn poll_procs(id: &str, timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let p = marked_processes(id);
        if p.is_empty() || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for id in &ids {
            let state = self.try_rt_cmd(self.command(&["state", id]), &["state", id]);
            if let Some(out) = state.ok().filter(|o| o.success()) {
                if let Ok(st) = serde_json::from_str::<Value>(&out.stdout) {
                    if let Some(pid) = st["pid"].as_i64() {
                        self.track_pid(pid as i32);
                    }
                }
            }
            let args = ["delete", "--force", id.as_str()];
            let _ = self.try_rt_cmd(self.command(&args), &args);
        }
        let pids = self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for pid in pids {
            if reap_pid(pid, Duration::from_secs(2)).is_none() {
                // Still alive and still our child: it is the container init we started.
                if is_our_live_child(pid) {
                    // SAFETY: plain kill(2) of a process that is our own (reparented) child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    reap_pid(pid, Duration::from_secs(2));
                }
            }
        }
        for id in &ids {
            remove_cgroups(id);
        }
        remove_cgroup_parents();
        unmount_below(&self.dir);
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != ErrorKind::NotFound {
                eprintln!("warning: cannot remove {}: {e}", self.dir.display());
            }
        }
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.chars().take(40).collect()
}

/// `linux.cgroupsPath` for container `id`.
pub fn cgroups_path(id: &str) -> String {
    format!("/rt-test/{id}")
}

/// Mount points of cgroup hierarchies below /sys/fs/cgroup (v1 controllers and unified).
fn cgroup_roots() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                v.push(p);
            }
        }
    }
    v
}

/// Existing cgroup directories of container `id`.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Vec::new();
    }
    cgroup_roots()
        .into_iter()
        .map(|r| r.join("rt-test").join(id))
        .filter(|p| p.exists())
        .collect()
}

/// A named v1 hierarchy outlives its last mount when it still had a sub-cgroup then, and
/// a sub-cgroup removed a moment before may still count: it would stay, empty, listed in
/// every process's /proc/self/cgroup. Mount it again (in a private mount namespace) and
/// unmount it until the kernel has let it go.
fn release_named_hierarchy(name: &str) {
    let listed = || {
        fs::read_to_string("/proc/self/cgroup")
            .is_ok_and(|t| t.lines().any(|l| l.ends_with(&format!(":name={name}:/"))))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed() {
        if Instant::now() > deadline {
            eprintln!("warning: cgroup hierarchy name={name} is still there");
            return;
        }
        let script = format!(
            "d=$(mktemp -d) && mount -t cgroup -o none,name={name} cgroup $d && umount $d; rmdir $d"
        );
        let _ = Command::new("unshare")
            .args(["--mount", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// rmdir a cgroup directory and its sub-cgroups (deepest first).
fn rmdir_cgroup_tree(p: &Path) {
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        match fs::remove_dir(p) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!("warning: cannot remove cgroup {}", p.display());
}

fn remove_cgroups(id: &str) {
    for p in cgroup_dirs(id) {
        rmdir_cgroup_tree(&p);
    }
}

/// Remove the shared `/rt-test` parents when no other test is creating containers right now.
fn remove_cgroup_parents() {
    if let Some(_lock) = CgroupLock::try_exclusive() {
        for r in cgroup_roots() {
            let _ = fs::remove_dir(r.join("rt-test"));
        }
    }
}

/// A flock on /tmp/rt-it.lock: `create`/`run` hold it shared, so removing the shared
/// `/rt-test` cgroup parents (exclusive) never races with a runtime creating a cgroup below.
struct CgroupLock {
    _file: File,
}

impl CgroupLock {
    fn open() -> File {
        File::options()
            .create(true)
            .append(true)
            .open("/tmp/rt-it.lock")
            .expect("open /tmp/rt-it.lock")
    }

    fn shared() -> CgroupLock {
        let f = Self::open();
        use std::os::fd::AsRawFd;
        // SAFETY: flock on an fd we own.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH) };
        CgroupLock { _file: f }
    }

    fn try_exclusive() -> Option<CgroupLock> {
        let f = Self::open();
        use std::os::fd::AsRawFd;
        // SAFETY: flock on an fd we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (r == 0).then_some(CgroupLock { _file: f })
    }
}

/// waitpid(pid, WNOHANG) until it is reaped or `timeout` passes. Returns the raw wait status,
/// or `None` if it is not (or no longer) our child or still running at the deadline.
pub fn reap_pid(pid: i32, timeout: Duration) -> Option<i32> {
    if pid <= 0 {
        return None;
    }
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on one specific pid (never -1) with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(status);
        }
        if r < 0 || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Is `pid` a live (not yet reaped) child of this process?
fn is_our_live_child(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(std::process::id() as i32)
}

/// Fields of /proc/<pid>/stat after the command name: (state, ppid).
pub fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Is `pid` alive (exists and is not a zombie)?
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Pids of live processes whose environment carries `RT_IT_ID=<id>` (set on the runtime
/// invocations and in container environments by the harness).
pub fn marked_processes(id: &str) -> Vec<i32> {
    let needle = format!("{MARK_VAR}={id}");
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if !pid_alive(pid) {
            continue;
        }
        if let Ok(env) = fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                v.push(pid);
            }
        }
    }
    v
}

/// Lazily unmount every mount point at or below `dir` (deepest first).
pub fn unmount_below(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.as_os_str().as_bytes();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| {
            let b = p.as_bytes();
            b.starts_with(prefix) && (b.len() == prefix.len() || b[prefix.len()] == b'/')
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = CString::new(p).unwrap();
        // SAFETY: umount2 with a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Write an executable shell script at `path`.
pub fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Read a file to a string, or "" if it does not exist.
pub fn read_or_empty(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// Parse a hex capability mask line (`CapEff:\t0000000000000020`) from /proc/<pid>/status
/// text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Object keys of a JSON text in document order, each with its nesting depth (1 = a key of
/// the top-level object, 2 = a key of an object inside it, ...). `serde_json::Value` sorts
/// keys, so tests that compare key order with runc's output use this on the raw text.
pub fn json_keys(text: &str) -> Vec<(usize, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut stack: Vec<u8> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if expect_key {
                    let end = i.min(b.len());
                    out.push((stack.len(), text[start..end].to_string()));
                    expect_key = false;
                }
            }
            b'{' => {
                stack.push(b'{');
                expect_key = true;
            }
            b'[' => {
                stack.push(b'[');
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = stack.last() == Some(&b'{'),
            _ => {}
        }
        i += 1;
    }
    out
}

/// The keys at nesting `depth` of a JSON text, in document order (see [`json_keys`]).
pub fn json_keys_at(text: &str, depth: usize) -> Vec<String> {
    json_keys(text)
        .into_iter()
        .filter(|(d, _)| *d == depth)
        .map(|(_, k)| k)
        .collect()
}

/// Split an RFC 3339 timestamp as Go writes it (`2026-11-25T17:48:40.852899346Z`,
/// `2026-11-25T17:48:40Z`, `2026-11-26T02:48:40+09:00`) into (fraction digits, zone).
/// `None` if `s` is not of that shape.
pub fn parse_rfc3339(s: &str) -> Option<(String, String)> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = String::new();
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        frac = r[..n].to_string();
        rest = &r[n..];
    }
    let zb = rest.as_bytes();
    let zone_ok = rest == "Z"
        || (zb.len() == 6
            && (zb[0] == b'+' || zb[0] == b'-')
            && zb[1..3].iter().all(u8::is_ascii_digit)
            && zb[3] == b':'
            && zb[4..6].iter().all(u8::is_ascii_digit));
    zone_ok.then(|| (frac, rest.to_string()))
}

/// pidfd_send_signal(2) through a pidfd a test received (0 only checks the process).
pub fn pidfd_signal(pidfd: &std::os::fd::OwnedFd, sig: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal on an fd we own, with no siginfo.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Remove cgroup `name` (a directory directly below each hierarchy's root) and its
/// subdirectories, in every hierarchy: a test daemon's cgroup parent.
pub fn remove_cgroup_tree(name: &str) {
    for ctrl in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let parent = ctrl.path().join(name);
        for sub in fs::read_dir(&parent).into_iter().flatten().flatten() {
            if sub.path().is_dir() {
                let _ = fs::remove_dir(sub.path());
            }
        }
        let _ = fs::remove_dir(&parent);
    }
}

/// The last `n` lines of a daemon's log, printed when a test fails (its only trace).
pub fn print_log_tail(path: &Path, n: usize) {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    eprintln!(
        "--- {} (last {n} lines) ---\n{}",
        path.display(),
        tail.join("\n")
    );
}

/// The exec's shell command for [`assert_exec_inside`].
pub const EXEC_INSIDE: &str = "echo in-exec; ps -o pid,args; exit 5";

/// An exec of [`EXEC_INSIDE`] ran in the container: status 5, its output, and the
/// container's PID 1 (`pid1`, as `ps -o pid,args` shows it) visible from it.
#[track_caller]
pub fn assert_exec_inside(out: &Output, pid1: &str) {
    out.expect_code(5);
    assert!(out.stdout.starts_with("in-exec\n"), "{}", out.describe());
    assert!(
        out.stdout.lines().any(|l| l.trim() == format!("1 {pid1}")),
        "the exec sees the container's PID 1 ({pid1}): {}",
        out.describe()
    );
}

/// `create` of `b` must fail with a one-line error holding each of `needles`, and leave
/// nothing behind.
#[track_caller]
pub fn assert_create_fails_with(h: &Ctx, id: &str, b: &Bundle, needles: &[&str]) -> Output {
    let out = h.create(id, b);
    out.expect_error();
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "{n:?} not in the error:\n{}",
            out.describe()
        );
    }
    h.assert_nothing_left(id);
    out
}

/// `create` of `b` must be refused, as the runtime refuses what this host cannot do: exit 1
/// with (for rt) a one-line message (runc may log several lines), nothing left behind.
#[track_caller]
pub fn assert_create_refused(h: &Ctx, id: &str, b: &Bundle) -> Output {
    let out = h.create(id, b);
    if is_runc() {
        out.expect_code(1);
    } else {
        out.expect_error();
    }
    h.assert_nothing_left(id);
    out
}
