//! Driving the OCI runtime through its command line, as containerd's runc shim does:
//! `rt --root R --log B/log.json --log-format json COMMAND …`. The binary is `rt` (found
//! next to the shim, else on PATH) unless the runc options name another (`BinaryName`),
//! so the same shim runs runc or crun too. A failed command's error is the last
//! `level=error` message of its JSON log, which is what the user gets to see.
//!
//! A call ends with the runtime's exit: its stdout is read until EOF or until the runtime
//! has exited (a process it left behind holding the pipe keeps no call waiting), and its
//! exit status comes from the reaper or, failing that, from the child itself (wait.rs).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::wait::{self, ChildExit};

pub type Result<T> = std::result::Result<T, String>;

/// The bundle's record of the runtime a container was made with.
const SAVED: &str = "runtime.json";

#[derive(Clone, Debug)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `<bundle>/log.json`.
    pub log: PathBuf,
    /// The runtime's `TRACEPARENT`: the span of the request it runs for (trace.rs).
    pub traceparent: Option<String>,
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
            traceparent: None,
        }
    }

    /// This runtime for calls made under `span` (a copy: what the container keeps stays
    /// without, for later requests).
    pub fn traced(&self, span: Option<&crate::trace::RequestSpan>) -> Runtime {
        Runtime {
            traceparent: span.map(|s| s.traceparent()),
            ..self.clone()
        }
    }

    /// Record in `bundle` which runtime (binary, root, cgroup driver) the container is
    /// made with, for the `delete` of a shim that died: containerd's cleanup gives it no
    /// options, and with the defaults it would clean up in the wrong root, with the wrong
    /// binary, and leave the container running.
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let v = serde_json::json!({
            "binary": self.binary,
            "root": self.root,
            "systemd_cgroup": self.systemd_cgroup,
        });
        let file = bundle.join(SAVED);
        std::fs::write(&file, v.to_string()).map_err(|e| format!("write {}: {e}", file.display()))
    }

    /// The runtime [`Runtime::save`] recorded in `bundle`; else the defaults.
    pub fn saved(bundle: &Path, namespace: &str) -> Runtime {
        let mut rt = Runtime::new("", "", false, bundle, namespace);
        let text = std::fs::read_to_string(bundle.join(SAVED)).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let (Some(binary), Some(root)) = (v["binary"].as_str(), v["root"].as_str()) {
                rt.binary = PathBuf::from(binary);
                rt.root = PathBuf::from(root);
                rt.systemd_cgroup = v["systemd_cgroup"].as_bool().unwrap_or_default();
            }
        }
        rt
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
        if let Some(tp) = &self.traceparent {
            c.env("TRACEPARENT", tp);
        }
        c.stdin(io.stdin.unwrap_or_else(Stdio::null));
        c.stdout(io.stdout.unwrap_or_else(Stdio::null));
        c.stderr(io.stderr.unwrap_or_else(Stdio::null));
        let what = format!("{} {}", self.binary.display(), args.join(" "));
        log::debug!("runtime: {what}");
        // Subscribe before spawning: the shim's reaper may collect the exit at once.
        let exits = wait::subscribe()?;
        let mut child = c.spawn().map_err(|e| format!("{what}: spawn: {e}"))?;
        let mut exit = ChildExit::new(&child, exits);
        let mut out = Vec::new();
        let mut code = None;
        if let Some(stdout) = child.stdout.take() {
            code = read_until_exit(stdout, &mut child, &mut exit, &mut out)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        let code = match code {
            Some(code) => code,
            None => exit.wait(&mut child).map_err(|e| format!("{what}: {e}"))?,
        };
        if code == 0 {
            Ok(String::from_utf8_lossy(&out).into_owned())
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

/// The runtime's stdout into `out` until EOF, or until the runtime has exited: what it
/// wrote is in the pipe by then, and whoever else holds the pipe (a process it forked that
/// inherited its stdout) is not waited for. The exit status when the exit ended the read.
fn read_until_exit(
    stdout: ChildStdout,
    child: &mut Child,
    exit: &mut ChildExit,
    out: &mut Vec<u8>,
) -> Result<Option<i32>> {
    let mut pipe = File::from(OwnedFd::from(stdout));
    // Our end only: reads return what is there, never block.
    nix::fcntl::fcntl(
        &pipe,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| format!("fcntl O_NONBLOCK on its stdout: {e}"))?;
    loop {
        let ready = wait::poll_in(&[pipe.as_fd()], Some(wait::TICK));
        if !ready[0].is_empty() && drain(&mut pipe, out) {
            return Ok(None);
        }
        if let Some(code) = exit.check(child, Duration::ZERO)? {
            drain(&mut pipe, out);
            return Ok(Some(code));
        }
    }
}

/// Read what the pipe holds; true at EOF (or on an error: nothing more will come).
fn drain(pipe: &mut File, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::tests::within;
    use std::os::unix::fs::PermissionsExt;

    /// A runtime that is a script in a directory of its own.
    struct Fake {
        dir: PathBuf,
        rt: Runtime,
    }

    impl Fake {
        fn new(name: &str, script: &str) -> Fake {
            let dir =
                std::env::temp_dir().join(format!("rt-shimtest-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let binary = dir.join("runtime");
            let script = script.replace("DIR", &dir.display().to_string());
            std::fs::write(&binary, format!("#!/bin/sh\n{script}")).unwrap();
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
            let rt = Runtime::new(
                &binary.display().to_string(),
                &dir.display().to_string(),
                false,
                &dir,
                "ns",
            );
            Fake { dir, rt }
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            // The helper the script left running (ours: our script started it).
            if let Ok(pid) = std::fs::read_to_string(self.dir.join("helper.pid")) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    // SAFETY: kill(2) of the helper this test's script started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A runtime that leaves a process behind holding its stdout (a helper it forks, a hook
    /// that daemonizes): the call ends with the runtime's exit and returns its output; it
    /// used to read until the helper let go of the pipe.
    #[test]
    fn a_helper_holding_stdout_does_not_hold_the_call() {
        let fake = Fake::new(
            "helper",
            "echo '[1,2]'\nsleep 1000 &\necho $! > DIR/helper.pid\nexit 0\n",
        );
        let rt = fake.rt.clone();
        let out = within(Duration::from_secs(10), "runtime ps", move || {
            rt.output(&["ps", "--format", "json", "c1"])
        });
        assert_eq!(out.as_deref(), Ok("[1,2]\n"));
    }

    /// The same with a runtime that fails: its error (from its JSON log) comes back.
    #[test]
    fn a_failing_runtime_with_a_helper_holding_stdout() {
        let fake = Fake::new(
            "helper-fails",
            "echo '{\"level\":\"error\",\"msg\":\"no such container\"}' > DIR/log.json\n\
             sleep 1000 &\necho $! > DIR/helper.pid\nexit 1\n",
        );
        let rt = fake.rt.clone();
        let out = within(Duration::from_secs(10), "runtime ps", move || {
            rt.output(&["ps", "c1"])
        });
        assert_eq!(out, Err("no such container".to_string()));
    }

    /// What a shim that died recorded is what its `delete` uses; without a record, the
    /// defaults.
    #[test]
    fn the_runtime_is_saved_for_a_dead_shims_delete() {
        let fake = Fake::new("saved", "exit 0\n");
        let rt = Runtime::new("/opt/odd-rt", "/run/odd", true, &fake.dir, "ns");
        rt.save(&fake.dir).unwrap();
        let back = Runtime::saved(&fake.dir, "ns");
        assert_eq!(back.binary, PathBuf::from("/opt/odd-rt"));
        assert_eq!(back.root, PathBuf::from("/run/odd/ns"));
        assert!(back.systemd_cgroup);
        assert_eq!(back.log, fake.dir.join("log.json"));
        std::fs::remove_file(fake.dir.join(SAVED)).unwrap();
        let none = Runtime::saved(&fake.dir, "ns");
        assert_eq!(none.root, PathBuf::from("/run/containerd/rt/ns"));
        assert!(!none.systemd_cgroup);
    }

    /// A plain call (stdio not captured): the exit status, with or without output.
    #[test]
    fn exit_statuses() {
        let fake = Fake::new("status", "[ \"$7\" = ok ] && exit 0\nkill -s KILL $$\n");
        let rt = fake.rt.clone();
        let got = within(Duration::from_secs(10), "runtime calls", move || {
            (rt.call(&["ok"]), rt.call(&["bad"]))
        });
        assert_eq!(got.0, Ok(String::new()));
        assert!(got.1.unwrap_err().ends_with("exit status 137"));
    }
}
