//! An ordinary user made for one test (useradd, with subordinate id ranges) and removed
//! with everything it ran when the test ends, to drive `rt` and podman without root.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{Ctx, Output, MARK_VAR};

static N: AtomicUsize = AtomicUsize::new(0);

pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Its XDG_RUNTIME_DIR (mode 0700, its own), as a login session would have.
    pub runtime_dir: PathBuf,
    /// The first of its subordinate uids and gids (/etc/subuid, /etc/subgid).
    pub subid_start: u32,
}

impl TestUser {
    /// `useradd` a user named `rtu<pid>x<n>`; its home and runtime dir live in `/tmp`.
    /// Panics (the test fails) when the host cannot add users.
    pub fn new() -> TestUser {
        let name = format!(
            "rtu{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let home = PathBuf::from(format!("/tmp/{name}-home"));
        let _ = fs::remove_dir_all(&home);
        let out = Command::new("useradd")
            .args(["--create-home", "--home-dir"])
            .arg(&home)
            .args(["--shell", "/bin/sh", &name])
            .output()
            .expect("spawn useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |file: &str, at: usize| -> Option<u32> {
            fs::read_to_string(file)
                .ok()?
                .lines()
                .find(|l| l.split(':').next() == Some(name.as_str()))?
                .split(':')
                .nth(at)?
                .parse()
                .ok()
        };
        let mut user = TestUser {
            uid: field("/etc/passwd", 2).expect("new user in /etc/passwd"),
            gid: field("/etc/passwd", 3).expect("new user in /etc/passwd"),
            subid_start: 0,
            runtime_dir: PathBuf::from(format!("/tmp/{name}-xdg")),
            home,
            name: name.clone(),
        };
        // useradd gives a new user ranges when login.defs says so (Debian's does); add
        // one otherwise, past every range the files hold.
        user.subid_start = match (field("/etc/subuid", 1), field("/etc/subgid", 1)) {
            (Some(u), Some(g)) if u == g => u,
            _ => {
                let start = next_free_subid_range();
                let range = format!("{start}-{}", start + 65535);
                let st = Command::new("usermod")
                    .args(["--add-subuids", &range, "--add-subgids", &range, &name])
                    .status()
                    .expect("spawn usermod");
                assert!(st.success(), "usermod --add-subuids {range} {name}");
                start
            }
        };
        let _ = fs::remove_dir_all(&user.runtime_dir);
        fs::create_dir(&user.runtime_dir).expect("mkdir XDG_RUNTIME_DIR");
        fs::set_permissions(
            &user.runtime_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod XDG_RUNTIME_DIR");
        user.give(&user.runtime_dir.clone());
        user
    }

    /// chown -R `path` to the user.
    pub fn give(&self, path: &Path) {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .status()
            .expect("spawn chown");
        assert!(st.success(), "chown -R {}", path.display());
    }

    /// Make `cmd` run as the user: its ids (no supplementary groups), and the environment
    /// of a login: HOME, USER, XDG_RUNTIME_DIR, a PATH with newuidmap.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
    }

    /// `sh -c script` as the user, with a bounded wait and captured output.
    pub fn sh(&self, h: &Ctx, script: &str) -> Output {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        self.apply(&mut c);
        c.env(MARK_VAR, h.name.as_str())
            .env("RT", crate::rt_bin())
            .current_dir(&self.home);
        h.rt_cmd(c, &["(as user)", script])
    }

    /// `rt --root <h.root> args...` as the user; the state root is made the user's.
    pub fn rt(&self, h: &Ctx, args: &[&str]) -> Output {
        if !h.root.exists() {
            fs::create_dir_all(&h.root).expect("mkdir state root");
            self.give(&h.root);
        }
        let mut c = h.command(args);
        self.apply(&mut c);
        c.env(MARK_VAR, h.name.as_str());
        h.rt_cmd(c, args)
    }

    /// The user's processes still running (all of them were started by this test).
    fn processes(&self) -> Vec<i32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                use std::os::unix::fs::MetadataExt;
                fs::metadata(format!("/proc/{pid}"))
                    .map(|m| m.uid() == self.uid)
                    .unwrap_or(false)
            })
            .collect()
    }
}

impl Default for TestUser {
    fn default() -> Self {
        Self::new()
    }
}

/// The first id past every range in /etc/subuid and /etc/subgid (at least 200000).
fn next_free_subid_range() -> u32 {
    let mut end = 200_000u32;
    for file in ["/etc/subuid", "/etc/subgid"] {
        for line in fs::read_to_string(file).unwrap_or_default().lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(s), Some(n)) = (f.get(1), f.get(2)) {
                if let (Ok(s), Ok(n)) = (s.parse::<u32>(), n.parse::<u32>()) {
                    end = end.max(s.saturating_add(n));
                }
            }
        }
    }
    end
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Every process of this user is one the test started (the user is the test's).
        for _ in 0..20 {
            let left = self.processes();
            if left.is_empty() {
                break;
            }
            for pid in left {
                // SAFETY: kill(2) of a process of the test's own user.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .output();
        let _ = fs::remove_dir_all(&self.home);
        let _ = fs::remove_dir_all(&self.runtime_dir);
    }
}
