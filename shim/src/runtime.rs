//! Driving the OCI runtime through its command line, as containerd's runc shim does:
//! `rt --root R --log B/log.json --log-format json COMMAND …`. The binary is `rt` (found
//! next to the shim, else on PATH) unless the runc options name another (`BinaryName`),
//! so the same shim runs runc or crun too. A failed command's error is the last
//! `level=error` message of its JSON log, which is what the user gets to see.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use containerd_shim::monitor::{monitor_subscribe, wait_pid, Topic};

pub type Result<T> = std::result::Result<T, String>;

#[derive(Clone, Debug)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `<bundle>/log.json`.
    pub log: PathBuf,
}

/// Extra stdio for one runtime call: what the container process inherits.
#[derive(Default)]
pub struct CallIo {
    pub stdin: Option<Stdio>,
    pub stdout: Option<Stdio>,
    pub stderr: Option<Stdio>,
}

impl Runtime {
    pub fn new(
        binary_name: &str,
        root: &str,
        systemd_cgroup: bool,
        bundle: &Path,
        namespace: &str,
    ) -> Runtime {
        let binary = if binary_name.is_empty() {
            default_binary()
        } else {
            PathBuf::from(binary_name)
        };
        let root = if root.is_empty() {
            PathBuf::from("/run/containerd/rt").join(namespace)
        } else {
            PathBuf::from(root).join(namespace)
        };
        Runtime {
            binary,
            root,
            systemd_cgroup,
            log: bundle.join("log.json"),
        }
    }

    /// Run `args`; its stdout on success, the runtime's error message on failure.
    pub fn call(&self, args: &[&str]) -> Result<String> {
        self.call_with(args, CallIo::default())
    }

    pub fn call_with(&self, args: &[&str], io: CallIo) -> Result<String> {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root);
        c.arg("--log").arg(&self.log).args(["--log-format", "json"]);
        if self.systemd_cgroup {
            c.arg("--systemd-cgroup");
        }
        c.args(args);
        c.stdin(io.stdin.unwrap_or_else(Stdio::null));
        c.stdout(io.stdout.unwrap_or_else(Stdio::null));
        c.stderr(io.stderr.unwrap_or_else(Stdio::null));
        let what = format!("{} {}", self.binary.display(), args.join(" "));
        log::debug!("runtime: {what}");
        // Subscribe before spawning: the shim's reaper may collect the exit at once.
        let exits =
            monitor_subscribe(Topic::Pid).map_err(|e| format!("subscribe to exits: {e}"))?;
        let mut child = c.spawn().map_err(|e| format!("{what}: spawn: {e}"))?;
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        let code = wait_pid(child.id() as i32, exits);
        if code == 0 {
            Ok(out)
        } else {
            Err(self
                .last_error()
                .unwrap_or_else(|| format!("{what}: exit status {code}")))
        }
    }

    /// Like [`Runtime::call`] with stdout captured (for `ps` and `events --stats`).
    pub fn output(&self, args: &[&str]) -> Result<String> {
        self.call_with(
            args,
            CallIo {
                stdout: Some(Stdio::piped()),
                ..CallIo::default()
            },
        )
    }

    /// `features` (no state, no log: it may run outside any bundle).
    pub fn features(&self) -> Result<String> {
        let out = Command::new(&self.binary)
            .arg("features")
            .output()
            .map_err(|e| format!("{} features: {e}", self.binary.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} features: {}",
                self.binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The last error message in the runtime's JSON log.
    fn last_error(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        text.lines().rev().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["level"] == "error").then(|| v["msg"].as_str().unwrap_or_default().to_string())
        })
    }
}

/// `rt` next to this shim (they are installed together), else `rt` on PATH.
fn default_binary() -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        let beside = dir.join("rt");
        if beside.is_file() {
            return beside;
        }
    }
    PathBuf::from("rt")
}
