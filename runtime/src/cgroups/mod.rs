//! Placing the container in its cgroup, on every hierarchy the host mounts: v1 controllers
//! (one directory per hierarchy), cgroup v2 (one directory), or both on a hybrid host.
//! Each controller is driven in the hierarchy that has it: a v1 hierarchy when one is
//! mounted for it, else the unified one (so a hybrid host's v2-only controllers work too).

pub mod devices_bpf;
pub mod resources;
pub mod stats;
pub mod v1;
pub mod v2;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// One mounted cgroup hierarchy of the host.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// cgroup2 (unified) rather than a v1 hierarchy.
    pub unified: bool,
    /// v1: the controllers or `name=` of the hierarchy, e.g. "cpu,cpuacct", "name=systemd".
    pub subsystems: String,
}

/// The container's directory in one hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupDir {
    pub path: PathBuf,
    /// In the cgroup v2 (unified) hierarchy.
    pub unified: bool,
    /// v1: the hierarchy's controllers, e.g. "cpu,cpuacct".
    pub subsystems: String,
}

/// Where a container's cgroup lives, remembered in the state for later commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cgroup {
    /// The container's directory in each hierarchy.
    pub dirs: Vec<CgroupDir>,
    /// Directories rt made (the leaf and any parents that did not exist), deepest first:
    /// removed on delete so nothing is left behind.
    pub created: Vec<PathBuf>,
}

/// The cgroup hierarchies mounted on this host, from /proc/self/mountinfo.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let text = fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in text.lines() {
        // mountinfo: id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        let (fstype, _source, superopts) = (r.next(), r.next(), r.next().unwrap_or(""));
        let unified = match fstype {
            Some("cgroup2") => true,
            Some("cgroup") => false,
            _ => continue,
        };
        let Some(mountpoint) = left.split(' ').nth(4) else {
            continue;
        };
        let subsystems = superopts
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
            .filter(|o| is_subsystem_option(o))
            .collect::<Vec<_>>()
            .join(",");
        out.push(Hierarchy {
            mountpoint: PathBuf::from(unescape(mountpoint)),
            unified,
            subsystems,
        });
    }
    Ok(out)
}

fn is_subsystem_option(o: &str) -> bool {
    o.starts_with("name=")
        || matches!(
            o,
            "cpu"
                | "cpuacct"
                | "cpuset"
                | "memory"
                | "devices"
                | "freezer"
                | "net_cls"
                | "net_prio"
                | "blkio"
                | "perf_event"
                | "hugetlb"
                | "pids"
                | "rdma"
                | "misc"
        )
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The caller's own cgroup in a hierarchy (for relative cgroupsPath), from /proc/self/cgroup.
fn own_cgroup(h: &Hierarchy) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let matches = if h.unified {
            ctrls.is_empty()
        } else {
            !ctrls.is_empty() && ctrls == h.subsystems
        };
        if matches {
            return path.to_string();
        }
    }
    "/".to_string()
}

/// The container's cgroup path inside every hierarchy, as runc derives it: an absolute
/// `cgroupsPath` is taken as is; a relative or empty one goes below the caller's cgroup.
pub fn plan(hierarchies: &[Hierarchy], cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
    let rel = match cgroups_path {
        Some(p) if !p.is_empty() => p,
        _ => id,
    };
    if rel.split('/').any(|c| c == "..") {
        return Err(Error::msg(format!(
            "linux.cgroupsPath: {rel:?} must not contain \"..\""
        )));
    }
    let mut dirs = Vec::new();
    for h in hierarchies {
        let inner = if rel.starts_with('/') {
            rel.to_string()
        } else {
            format!("{}/{rel}", own_cgroup(h).trim_end_matches('/'))
        };
        dirs.push(CgroupDir {
            path: h.mountpoint.join(inner.trim_start_matches('/')),
            unified: h.unified,
            subsystems: h.subsystems.clone(),
        });
    }
    Ok(Cgroup {
        dirs,
        created: Vec::new(),
    })
}

impl Cgroup {
    /// Make the directories (and any missing parents, remembered for removal).
    pub fn create(&mut self) -> Result<()> {
        for dir in self.dirs.iter().map(|d| d.path.clone()).collect::<Vec<_>>() {
            self.make_dir_all(&dir)?;
            inherit_cpuset_v1(&dir, 0)?;
        }
        Ok(())
    }

    /// mkdir -p, remembering what it made. A parent shared with another container may be
    /// removed by that container's delete between our look and our mkdir (ENOENT): then
    /// look again.
    fn make_dir_all(&mut self, dir: &Path) -> Result<()> {
        let mut attempt = 0;
        'again: loop {
            let mut missing = Vec::new();
            let mut p = dir;
            while !p.exists() {
                missing.push(p.to_path_buf());
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
            for d in missing.iter().rev() {
                match fs::create_dir(d) {
                    Ok(()) => self.created.insert(0, d.clone()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 10 => {
                        attempt += 1;
                        continue 'again;
                    }
                    Err(e) => return Err(Error::io(format!("mkdir cgroup {}", d.display()), e)),
                }
            }
            return Ok(());
        }
    }

    /// Move `pid` (and so its future children) into the container's cgroup everywhere.
    pub fn apply(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.path.join("cgroup.procs");
            fs::write(&procs, pid.to_string())
                .ctx(|| format!("write {pid} to {}", procs.display()))?;
        }
        Ok(())
    }

    /// Every process in the container's cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        fs::read_to_string(dir.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Remove what create() made. Processes still inside are killed first; a cgroup
    /// whose last process is exiting stays busy for a moment, so retry briefly.
    pub fn destroy(&self) -> Result<()> {
        for pid in self.pids() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        for dir in &self.created {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match fs::remove_dir(dir)
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
                {
                    Ok(()) | Err(Errno::ENOENT) => break,
                    // A parent shared with another container is not ours to remove
                    // (cgroupfs says EBUSY, not ENOTEMPTY, for a parent with children).
                    Err(Errno::ENOTEMPTY | Errno::EBUSY)
                        if !self.dirs.iter().any(|d| &d.path == dir) =>
                    {
                        break
                    }
                    Err(Errno::EBUSY) | Err(Errno::ENOTEMPTY) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => return Err(Error::sys(format!("rmdir cgroup {}", dir.display()), e)),
                }
            }
        }
        Ok(())
    }
}

/// Whether the container's freezer says it is frozen (v1 freezer.state, v2 cgroup.freeze).
pub fn is_frozen(cg: &Cgroup) -> bool {
    match cg.v1_dir("freezer") {
        Some(dir) => {
            fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        }
        None => cg.unified_dir().is_some_and(|dir| {
            fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        }),
    }
}

pub fn is_v2_unified_host() -> bool {
    nix::sys::statfs::statfs(Path::new("/sys/fs/cgroup"))
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Unfreeze the container (a frozen process cannot die of SIGKILL).
pub fn thaw(cg: &Cgroup) {
    for d in cg.dirs.iter().map(|d| &d.path) {
        let v1 = d.join("freezer.state");
        if v1.exists() {
            let _ = fs::write(&v1, "THAWED");
        }
        let v2 = d.join("cgroup.freeze");
        if v2.exists() {
            let _ = fs::write(&v2, "0");
        }
    }
}

/// A new v1 cpuset cgroup starts with no cpus and no memory nodes, and refuses processes
/// until it has some: give it its parent's.
fn inherit_cpuset_v1(dir: &Path, depth: u32) -> Result<()> {
    if depth > 64 || !dir.join("cgroup.clone_children").exists() {
        return Ok(()); // not v1 (or absurdly deep)
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let Ok(current) = fs::read_to_string(&own) else {
            continue;
        };
        if !current.trim().is_empty() {
            continue;
        }
        // A parent made a moment ago by a concurrent `create` may not have its values yet.
        let Some(parent_dir) = dir.parent() else {
            continue;
        };
        inherit_cpuset_v1(parent_dir, depth + 1)?;
        let parent = parent_dir.join(file);
        let value = fs::read_to_string(&parent).ctx(|| format!("read {}", parent.display()))?;
        fs::write(&own, value.trim())
            .ctx(|| format!("write {:?} to {}", value.trim(), own.display()))?;
    }
    Ok(())
}

/// Write one cgroup file, the error naming the value and the path.
pub fn write(dir: &Path, file: &str, value: impl std::fmt::Display) -> Result<()> {
    let path = dir.join(file);
    let value = value.to_string();
    fs::write(&path, &value).ctx(|| format!("write {value:?} to {}", path.display()))
}

/// Read a cgroup file holding one number.
pub fn read_num<T: std::str::FromStr>(dir: &Path, file: &str) -> Option<T> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

const V2_CONTROLLERS: [&str; 8] = [
    "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

impl Cgroup {
    /// The v1 directory of the hierarchy that has `controller` (v2 names accepted: `io`
    /// is v1's `blkio`).
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        let controller = if controller == "io" {
            "blkio"
        } else {
            controller
        };
        self.dirs
            .iter()
            .find(|d| !d.unified && d.subsystems.split(',').any(|s| s == controller))
            .map(|d| d.path.as_path())
    }

    /// The unified directory, when the host mounts cgroup2.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.unified)
            .map(|d| d.path.as_path())
    }

    /// A pure cgroup v2 host (no v1 hierarchy at all).
    pub fn is_v2(&self) -> bool {
        self.dirs.iter().all(|d| d.unified)
    }

    /// Where `controller` is driven: its v1 hierarchy, else the unified one.
    pub fn controller_dir(&self, controller: &str) -> Option<(&Path, bool)> {
        if let Some(d) = self.v1_dir(controller) {
            return Some((d, false));
        }
        let u = self.unified_dir()?;
        let enabled = fs::read_to_string(u.join("cgroup.controllers")).unwrap_or_default();
        enabled
            .split_whitespace()
            .any(|c| c == controller)
            .then_some((u, true))
    }

    /// Make the unified controllers the container needs available in its directory, by
    /// enabling them in every ancestor's cgroup.subtree_control. On a pure v2 host all
    /// are enabled (stats need them); on a hybrid host only those a limit needs.
    pub fn enable_v2_controllers(&self, r: &resources::Resources) -> Result<()> {
        let Some(dir) = self.dirs.iter().find(|d| d.unified) else {
            return Ok(());
        };
        let wanted: Vec<&str> = if self.is_v2() {
            V2_CONTROLLERS.to_vec()
        } else {
            v2::needed(r)
                .into_iter()
                .filter(|c| self.v1_dir(c).is_none())
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let root = hierarchies()?
            .into_iter()
            .filter(|h| h.unified && dir.path.starts_with(&h.mountpoint))
            .map(|h| h.mountpoint)
            .max_by_key(|m| m.as_os_str().len())
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        let mut ancestors: Vec<&Path> = dir
            .path
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(&root))
            .collect();
        ancestors.reverse();
        for a in ancestors {
            let available = fs::read_to_string(a.join("cgroup.controllers")).unwrap_or_default();
            let enabled = fs::read_to_string(a.join("cgroup.subtree_control")).unwrap_or_default();
            for c in &wanted {
                let has = |list: &str| list.split_whitespace().any(|x| x == *c);
                if has(&available) && !has(&enabled) {
                    write(a, "cgroup.subtree_control", format!("+{c}"))?;
                }
            }
        }
        Ok(())
    }

    /// Apply `linux.resources`: each controller in the hierarchy that has it.
    pub fn set(&self, r: &resources::Resources) -> Result<()> {
        self.enable_v2_controllers(r)?;
        for d in &self.dirs {
            if d.unified {
                continue;
            }
            for ctrl in d.subsystems.split(',') {
                v1::set(ctrl, &d.path, r)?;
            }
        }
        if let Some(u) = self.unified_dir() {
            for ctrl in V2_CONTROLLERS {
                if self.v1_dir(ctrl).is_some() {
                    continue;
                }
                match self.controller_dir(ctrl) {
                    Some((dir, true)) => v2::set(ctrl, dir, r)?,
                    _ if v2::needed(r).contains(&ctrl) => {
                        return Err(Error::msg(format!(
                            "linux.resources: the {ctrl} controller is not available on this host ({} has no {ctrl})",
                            u.join("cgroup.controllers").display()
                        )))
                    }
                    _ => {}
                }
            }
            if self.v1_dir("devices").is_none() && !r.devices.is_empty() {
                devices_bpf::apply(u, &bpf_rules(&r.devices)).map_err(Error::msg)?;
            }
            v2::unified(u, r)?;
        } else if !r.unified.is_empty() {
            return Err(Error::msg(
                "linux.resources.unified: this host has no cgroup v2 hierarchy",
            ));
        }
        Ok(())
    }

    /// Freeze or thaw every process of the container, waiting until the kernel says done.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if self.dirs.is_empty() {
            return Err(Error::msg(
                "pause/resume: the container has no cgroup (created with --cgroup-manager=disabled)",
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(dir) = self.v1_dir("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            loop {
                write(dir, "freezer.state", want)?;
                let now = fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
                if now.trim() == want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(Error::msg(format!(
                        "{}: still {} after 10s",
                        dir.join("freezer.state").display(),
                        now.trim()
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let Some(dir) = self
            .unified_dir()
            .filter(|d| d.join("cgroup.freeze").exists())
        else {
            return Err(Error::msg(
                "pause/resume: no freezer on this host (v1 freezer or cgroup.freeze)",
            ));
        };
        write(dir, "cgroup.freeze", u8::from(frozen))?;
        let want = format!("frozen {}", u8::from(frozen));
        loop {
            let events = fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
            if events.lines().any(|l| l.trim() == want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::msg(format!(
                    "{}: not {want} after 10s",
                    dir.join("cgroup.events").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The spec's device rules in the form the eBPF program builder takes.
fn bpf_rules(rules: &[resources::DeviceRule]) -> Vec<devices_bpf::Rule> {
    rules
        .iter()
        .map(|r| devices_bpf::Rule {
            allow: r.allow,
            kind: r.kind.as_deref().and_then(|k| k.chars().next()),
            major: r.major,
            minor: r.minor,
            access: r
                .access
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "rwm".into()),
        })
        .collect()
}
