//! The state directory: `<root>/<id>/` holds `state.json` (written atomically) and, while the
//! container is created but not started, `exec.fifo`. A flock on the directory serializes
//! commands on one container.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::bail;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::spec::Spec;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// The cgroup a `create` made, written before state.json exists: a create killed before
/// it saved the state leaves this for `delete --force` to clean up.
pub const LEFTOVER_CGROUP: &str = "cgroup.json";
/// The spec version the state we print complies with.
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What rt remembers of a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot, /proc/<pid>/stat field 22): tells our
    /// process from a later one that reuses its pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub cgroup: Cgroup,
    pub config: Spec,
    /// The container's resctrl groups (linux.intelRdt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdt: Option<crate::intelrdt::Rdt>,
    /// Saved by a `create` still setting the container up (see [`StateDir::status`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

/// The OCI state, in runc's field order and format.
#[derive(Debug, Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: &'a std::collections::BTreeMap<String, String>,
    pub owner: String,
}

impl State {
    pub fn oci(&self, status: Status, owner: String) -> OciState<'_> {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid,
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.config.annotations,
            owner,
        }
    }

    /// The state JSON handed to hooks on stdin.
    pub fn hook_json(&self, status: Status) -> String {
        self.hook_json_with_pid(status, self.pid)
    }

    /// The state JSON for hooks that run in the container's namespaces (createContainer,
    /// startContainer): the spec gives them the pid as the container sees it.
    pub fn hook_json_in_container(&self, status: Status) -> String {
        self.hook_json_with_pid(status, pid_in_own_namespace(self.pid).unwrap_or(self.pid))
    }

    fn hook_json_with_pid(&self, status: Status, pid: i32) -> String {
        let mut s = self.oci(status, String::new());
        s.pid = pid; // poststop hooks still learn which pid it was
        serde_json::to_string(&s).unwrap_or_default()
    }
}

/// `pid` as the innermost pid namespace it is in sees it (the last NSpid of its status).
fn pid_in_own_namespace(pid: i32) -> Option<i32> {
    let status = crate::sys::read_proc(format!("/proc/{pid}/status"), 4096).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// A container id as runc accepts it: letters, digits and `_ + - .`, not `.`/`..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+-.".contains(c);
    if id.is_empty() || id == "." || id == ".." || id.len() > 1024 || !id.chars().all(ok_char) {
        bail!("invalid container ID format: {id:?}");
    }
    Ok(())
}

/// One container's directory under `--root`. Commands that change the container hold an
/// exclusive flock on it for their lifetime; readers (`state`, `list`) take none, since
/// state.json is only ever replaced whole, and a hook calling `rt state` during `create`
/// must not deadlock.
pub struct StateDir {
    pub path: PathBuf,
    _lock: Option<Flock<File>>,
}

impl StateDir {
    /// Make the directory of a new container; an existing one means a duplicate id.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx(|| format!("mkdir {}", root.display()))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with id exists: {id}")
            }
            Err(e) => return Err(Error::io(format!("mkdir {}", path.display()), e)),
        }
        Self::lock(path, false)
    }

    /// Open and lock the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        let dir = Self::open_unlocked(root, id)?;
        Self::lock(dir.path, true)
    }

    /// Open an existing container's directory for reading only.
    pub fn open_unlocked(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() {
            bail!("container does not exist: {id}");
        }
        Ok(StateDir { path, _lock: None })
    }

    /// Lock a container's directory whether or not it holds state.json (what a killed
    /// `create` leaves); None when there is no such directory.
    pub fn open_leftover(root: &Path, id: &str) -> Result<Option<StateDir>> {
        validate_id(id)?;
        let path = root.join(id);
        // Removed by a concurrent delete while we looked or waited for its lock: gone;
        // made anew by a create meanwhile: lock that one.
        for _ in 0..3 {
            if !path.is_dir() {
                return Ok(None);
            }
            if let Ok(d) = Self::lock(path.clone(), false) {
                return Ok(Some(d));
            }
        }
        Self::lock(path, false).map(Some)
    }

    pub fn has_state(&self) -> bool {
        self.path.join(STATE_FILE).exists()
    }

    fn lock(path: PathBuf, must_exist: bool) -> Result<StateDir> {
        let gone = |path: &Path| {
            Error::msg(format!(
                "container does not exist: {}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ))
        };
        let dir = match File::open(&path) {
            Ok(d) => d,
            // Removed by a concurrent delete since the caller looked.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone(&path)),
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        let lock = Flock::lock(dir, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("flock {}", path.display()), e))?;
        // A concurrent delete may have removed it while we waited for the lock, and a
        // create may even have made a new one of the same name since: the lock is only
        // good for the directory that is still at `path`.
        let same = match (lock.metadata(), fs::metadata(&path)) {
            (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
            _ => false,
        };
        if !same || (must_exist && !path.join(STATE_FILE).exists()) {
            return Err(gone(&path));
        }
        Ok(StateDir {
            path,
            _lock: Some(lock),
        })
    }

    /// The fd holding the lock, for a forked child to close: a child that outlives rt
    /// (stopped, frozen) must not keep the container locked.
    pub fn lock_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.lock_ref().map(|l| l.as_raw_fd())
    }

    fn lock_ref(&self) -> Option<&File> {
        self._lock.as_deref()
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<State> {
        let file = self.path.join(STATE_FILE);
        // Streamed: state.json holds the whole config, which may be large.
        let f = File::open(&file).ctx(|| format!("read {}", file.display()))?;
        serde_json::from_reader(std::io::BufReader::new(f))
            .map_err(|e| Error::msg(format!("parse {}: {e}", file.display())))
    }

    /// Write state.json through a temporary file and rename, so a reader never sees half.
    /// Streamed (the config may be large); a failed write (ENOSPC) removes the temporary
    /// file, which would otherwise hold on to the space.
    pub fn save(&self, state: &State) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let written = (|| {
            let f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(f);
            serde_json::to_writer(&mut w, state).map_err(|e| match e.io_error_kind() {
                Some(_) => Error::io(format!("write {}", tmp.display()), e.into()),
                None => Error::msg(format!("encode state: {e}")),
            })?;
            w.flush().ctx(|| format!("write {}", tmp.display()))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, self.path.join(STATE_FILE))
            .ctx(|| format!("rename {} to {STATE_FILE}", tmp.display()))
    }

    /// Record the cgroup `create` made before there is a state (see [`LEFTOVER_CGROUP`]).
    pub fn save_leftover_cgroup(&self, cgroup: &Cgroup) -> Result<()> {
        let file = self.path.join(LEFTOVER_CGROUP);
        let data =
            serde_json::to_vec(cgroup).map_err(|e| Error::msg(format!("encode cgroup: {e}")))?;
        fs::write(&file, data).ctx(|| format!("write {}", file.display()))
    }

    /// The cgroup recorded by a `create` that did not get as far as state.json.
    pub fn load_leftover_cgroup(&self) -> Option<Cgroup> {
        let text = fs::read_to_string(self.path.join(LEFTOVER_CGROUP)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn remove(self) -> Result<()> {
        let StateDir { path, _lock: lock } = self;
        match fs::remove_dir_all(&path) {
            // Walking the directory takes an fd; at the open-file limit (EMFILE), the
            // lock's is the one to give back. A concurrent delete that gets the lock then
            // finds the directory gone or removes it itself.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                drop(lock);
                match fs::remove_dir_all(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(Error::io(format!("remove {}", path.display()), e))
                    }
                    _ => Ok(()),
                }
            }
            r => r.ctx(|| format!("remove {}", path.display())),
        }
    }

    /// The user owning the state directory, by name (as `runc list` shows it).
    pub fn owner(&self) -> String {
        let uid = fs::metadata(&self.path).map(|m| m.uid()).unwrap_or(0);
        user_name(uid)
    }

    /// Where the container stands now: derived from its process and the exec fifo, never
    /// stored, so it cannot go stale.
    pub fn status(&self, state: &State) -> Status {
        // Saved before the init finished its setup: create is still running (or died).
        // (A start time of 0 is how rt before the `creating` flag saved this state.)
        if state.creating || state.pid_start_time == 0 {
            let alive = if state.pid_start_time == 0 {
                state.pid > 0 && proc_stat(state.pid).is_some_and(|s| s.state != 'Z')
            } else {
                process_alive(state.pid, state.pid_start_time)
            };
            return if alive {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !process_alive(state.pid, state.pid_start_time) {
            return Status::Stopped;
        }
        if crate::cgroups::is_frozen(&state.cgroup) {
            return Status::Paused;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        Status::Running
    }
}

/// Is `pid` still the process we started (same start time) and not a zombie?
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some(s) => s.state != 'Z' && s.state != 'X' && s.start_time == start_time,
        None => false,
    }
}

/// Why process_alive() said no, for error messages.
pub fn why_not_alive(pid: i32, start_time: u64) -> &'static str {
    match proc_stat(pid) {
        None => "is gone",
        Some(s) if matches!(s.state, 'Z' | 'X') => "has exited",
        Some(s) if start_time != 0 && s.start_time != start_time => {
            "is gone (its pid is another process now)"
        }
        Some(_) => "died during create",
    }
}

/// What rt reads of /proc/<pid>/stat.
pub struct ProcStat {
    /// The command name (field 2, without its parentheses).
    pub comm: String,
    /// The state letter (field 3): R, S, D, Z, X...
    pub state: char,
    /// Start time in clock ticks after boot (field 22): with the pid, names one process.
    pub start_time: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = crate::sys::read_proc(format!("/proc/{pid}/stat"), 1024).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let comm = text.get(open + 1..close)?.to_string();
    let mut fields = text.get(close + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    // The fields start at field 3; start time is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat {
        comm,
        state,
        start_time,
    })
}

fn user_name(uid: u32) -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .next()
        .unwrap_or_else(|| uid.to_string())
}

/// Ids of all containers under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", root.display()), e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-1_2.3+x", "A"] {
            assert!(validate_id(ok).is_ok());
        }
        for bad in ["", ".", "..", "a/b", "a b", "a\nb", &"x".repeat(1025)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_lock_holds_only_for_the_directory_still_there() {
        let root = std::env::temp_dir().join(format!("rt-state-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let held = StateDir::create(&root, "c").unwrap();
        fs::write(held.path.join(STATE_FILE), "{}").unwrap();
        // A second command opens the directory and waits for the lock...
        let r = root.clone();
        let waiter = std::thread::spawn(move || StateDir::open(&r, "c").map(|d| d.path));
        std::thread::sleep(std::time::Duration::from_millis(200));
        // ...while it is replaced by another container's of the same id.
        fs::rename(root.join("c"), root.join("old")).unwrap();
        fs::create_dir(root.join("c")).unwrap();
        fs::write(root.join("c").join(STATE_FILE), "{}").unwrap();
        drop(held);
        let got = waiter.join().unwrap();
        assert!(got.is_err(), "locked a directory no longer at its path");
        assert!(got.err().unwrap().to_string().contains("does not exist"));
        // Gone altogether: no leftover either.
        fs::remove_dir_all(root.join("c")).unwrap();
        assert!(StateDir::open_leftover(&root, "c").unwrap().is_none());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn own_stat() {
        let stat = proc_stat(std::process::id() as i32).unwrap();
        let (state, start) = (stat.state, stat.start_time);
        assert!("RS".contains(state), "{state}");
        assert!(start > 0);
        assert!(!stat.comm.is_empty());
        assert!(process_alive(std::process::id() as i32, start));
        assert!(!process_alive(std::process::id() as i32, start + 1));
    }
}
