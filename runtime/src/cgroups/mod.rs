//! Placing the container in its cgroup, on every hierarchy the host mounts: v1 controllers
//! (one directory per hierarchy), cgroup v2 (one directory), or both on a hybrid host.
//! Resource limits are applied by the resources module on top of these paths.

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

/// Where a container's cgroup lives, remembered in the state for later commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// The container's directory in each hierarchy.
    pub dirs: Vec<PathBuf>,
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
pub fn plan(
    hierarchies: &[Hierarchy],
    cgroups_path: Option<&str>,
    id: &str,
) -> Result<CgroupPaths> {
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
        dirs.push(h.mountpoint.join(inner.trim_start_matches('/')));
    }
    Ok(CgroupPaths {
        dirs,
        created: Vec::new(),
    })
}

impl CgroupPaths {
    /// Make the directories (and any missing parents, remembered for removal).
    pub fn create(&mut self) -> Result<()> {
        for dir in self.dirs.clone() {
            let mut missing = Vec::new();
            let mut p = dir.as_path();
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
                    Err(e) => return Err(Error::io(format!("mkdir cgroup {}", d.display()), e)),
                }
            }
            inherit_cpuset_v1(&dir, 0)?;
        }
        Ok(())
    }

    /// Move `pid` (and so its future children) into the container's cgroup everywhere.
    pub fn apply(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
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
        fs::read_to_string(dir.join("cgroup.procs"))
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
                    // A parent shared with another container is not ours to remove.
                    Err(Errno::ENOTEMPTY) if !self.dirs.contains(dir) => break,
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
pub fn is_frozen(paths: &CgroupPaths) -> bool {
    paths.dirs.iter().any(|d| {
        fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    })
}

pub fn is_v2_unified_host() -> bool {
    nix::sys::statfs::statfs(Path::new("/sys/fs/cgroup"))
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Unfreeze the container (a frozen process cannot die of SIGKILL).
pub fn thaw(paths: &CgroupPaths) {
    for d in &paths.dirs {
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
