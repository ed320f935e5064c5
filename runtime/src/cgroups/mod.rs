//! Placing the container in its cgroup, on every hierarchy the host mounts: v1 controllers
//! (one directory per hierarchy), cgroup v2 (one directory), or both on a hybrid host.
//! Each controller is driven in the hierarchy that has it: a v1 hierarchy when one is
//! mounted for it, else the unified one (so a hybrid host's v2-only controllers work too).
//! Who makes the container's cgroup is the driver's choice: rt itself (cgroupfs), or
//! systemd, as a transient unit (`systemd`); either way rt drives the cgroup files.

pub mod devices_bpf;
pub mod kill;
pub mod leftover;
pub mod oom_level;
pub mod resources;
pub mod self_join;
pub mod stats;
pub mod systemd;
pub mod tree;
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
    /// The systemd unit that holds the container, with the systemd driver: systemd makes
    /// and removes its cgroup; rt starts and stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
}

/// Who makes the container's cgroup (`--cgroup-manager`, named as crun names them).
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Driver {
    /// rt makes the directories itself (runc's default).
    #[default]
    Cgroupfs,
    /// systemd, as a transient unit (`--systemd-cgroup`).
    Systemd,
    /// No cgroup at all (`--cgroup-manager=disabled`, as crun).
    Disabled,
}

/// The container's cgroup as `driver` places it (nothing with `Driver::Disabled`).
pub fn plan_with(
    driver: Driver,
    hierarchies: &[Hierarchy],
    cgroups_path: Option<&str>,
    id: &str,
) -> Result<Cgroup> {
    match driver {
        Driver::Cgroupfs => plan(hierarchies, cgroups_path, id),
        Driver::Systemd => systemd::plan(hierarchies, cgroups_path, id),
        Driver::Disabled => Ok(Cgroup::default()),
    }
}

/// The cgroup hierarchies mounted on this host, from /proc/self/mountinfo.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let mut out = Vec::new();
    let cgroupfs = |m: &crate::mountinfo::Mount| matches!(m.fstype.as_str(), "cgroup" | "cgroup2");
    for m in crate::mountinfo::reachable(crate::mountinfo::read_own()?, cgroupfs) {
        let unified = m.fstype == "cgroup2";
        let subsystems = m
            .superopts
            .split(',')
            .filter(|o| is_subsystem_option(o))
            .collect::<Vec<_>>()
            .join(",");
        out.push(Hierarchy {
            mountpoint: m.mountpoint,
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
/// The root of a hierarchy is refused: it holds every process of the host, and a
/// container's cgroup must be one that can be emptied and removed.
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
        // "/", "//", "/./." and a relative "." from a caller in the root all name the root.
        let inner: PathBuf = inner
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if inner.as_os_str().is_empty() {
            return Err(Error::msg(format!(
                "linux.cgroupsPath: {rel:?} names the root of the cgroup hierarchy {}, which holds every process of the host; give the container a cgroup of its own (e.g. \"/rt/{id}\")",
                h.mountpoint.display()
            )));
        }
        dirs.push(CgroupDir {
            path: h.mountpoint.join(inner),
            unified: h.unified,
            subsystems: h.subsystems.clone(),
        });
    }
    Ok(Cgroup {
        dirs,
        created: Vec::new(),
        systemd: None,
    })
}

impl Cgroup {
    /// Make the directories (and any missing parents, remembered for removal).
    pub fn create(&mut self) -> Result<()> {
        for d in self.dirs.clone() {
            let dir = &d.path;
            let _step = crate::trace::step_with("cgroup-mkdir", || dir.display().to_string());
            // The parent usually exists: one mkdir, and the stats of make_dir_all only
            // when it does not.
            match fs::create_dir(dir) {
                Ok(()) => self.created.insert(0, dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => self.make_dir_all(dir)?,
            }
            if !d.unified && d.subsystems.split(',').any(|s| s == "cpuset") {
                inherit_cpuset_v1(dir, 0)?;
            }
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
            missing_up_to_existing(dir, &mut missing);
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

    /// This cgroup as `create` is about to make it: the directories that do not exist yet
    /// (deepest first) are the ones it will make. (A systemd unit's are known from the plan.)
    pub fn as_planned(&self) -> Cgroup {
        if self.systemd.is_some() {
            return self.clone();
        }
        let mut missing = Vec::new();
        for d in &self.dirs {
            missing_up_to_existing(&d.path, &mut missing);
        }
        missing.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        Cgroup {
            dirs: self.dirs.clone(),
            created: missing,
            systemd: None,
        }
    }

    /// Remove what a `create` killed part way made, as recorded by [`Cgroup::as_planned`].
    /// Its init died with it, so nothing should run there; and since another create may
    /// have made one of these directories meanwhile, nothing is killed: a directory still
    /// in use stays (rmdir refuses it).
    pub fn remove_leftover(&self) {
        if let Some(unit) = &self.systemd {
            if let Err(e) = unit.stop() {
                log::warn!("delete: {e}");
            }
        }
        if let Err((dir, e)) = self.remove_created(Instant::now() + Duration::from_secs(2)) {
            log::warn!(
                "delete: leave cgroup {}: rmdir: {}",
                dir.display(),
                crate::error::describe(e)
            );
        }
    }

    /// rmdir the directories rt made, deepest first. Only the container's own directory
    /// is waited for (until `deadline`); a parent that still has children is shared with
    /// another container, not ours to remove (cgroupfs says EBUSY, not ENOTEMPTY, for a
    /// parent with children).
    /// The usual end, a container whose processes are all gone and that made no
    /// sub-cgroup: each directory rt made goes at the first rmdir, nothing listed or read
    /// (a parent still shared with another container stays). False at the first one that
    /// does not: then the whole tree is walked, killed and removed.
    fn remove_created_at_once(&self) -> bool {
        self.created.iter().all(|dir| match fs::remove_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                !self.is_leaf(dir)
                    && matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY))
            }
        })
    }

    fn remove_created(&self, deadline: Instant) -> std::result::Result<(), (&Path, Errno)> {
        for dir in &self.created {
            let leaf = self.is_leaf(dir);
            match tree::rmdir(dir, if leaf { deadline } else { Instant::now() }) {
                Ok(()) => {}
                Err(Errno::ENOTEMPTY | Errno::EBUSY) if !leaf => {}
                Err(e) => return Err((dir, e)),
            }
        }
        Ok(())
    }

    /// Before the container's first process exists: make the directories and set the
    /// limits. A systemd unit starts only with its first process: then all is done in
    /// [`Cgroup::join_init`].
    pub fn prepare(&mut self, r: &resources::Resources) -> Result<()> {
        if self.systemd.is_some() {
            return Ok(());
        }
        self.create()?;
        self.check_not_frozen()?;
        self.warn_if_not_empty();
        self.set(r)
    }

    /// Put the container's first process `pid` in its cgroup. With systemd: start the
    /// unit with it, then move it into the hierarchies systemd leaves alone (v1 ones it
    /// has no controller for), and write the limits to the cgroup files as well (runc
    /// does too: systemd has no property for some, and rounds others).
    pub fn join_init(&self, pid: i32, r: &resources::Resources) -> Result<()> {
        let Some(unit) = &self.systemd else {
            return self.apply(pid);
        };
        unit.start(pid, r)?;
        for d in &self.dirs {
            // A scope holds its processes wherever systemd makes its directory.
            if unit.is_scope() && systemd::makes_dir(d) {
                continue;
            }
            fs::create_dir_all(&d.path)
                .map_err(|e| Error::io(format!("mkdir cgroup {}", d.path.display()), e))?;
            inherit_cpuset_v1(&d.path, 0)?;
            write(&d.path, "cgroup.procs", pid)?;
        }
        self.check_not_frozen()?;
        self.set(r)
    }

    /// New limits for a running container (`rt update`): the systemd unit's properties
    /// too, when there is one.
    pub fn update(&self, r: &resources::Resources) -> Result<()> {
        if let Some(unit) = &self.systemd {
            unit.set_properties(r)?;
        }
        self.set(r)
    }

    /// Move `pid` (and so its future children) into the container's cgroup everywhere.
    pub fn apply(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.path.join("cgroup.procs");
            let _step = crate::trace::step_with("cgroup-procs", || procs.display().to_string());
            fs::write(&procs, pid.to_string())
                .ctx(|| format!("write {pid} to {}", procs.display()))?;
        }
        Ok(())
    }

    /// The container's directories that rt made for it, as opposed to a `cgroupsPath`
    /// that named a cgroup which already existed (shared with other processes, perhaps
    /// a systemd slice or a pod's cgroup). Only these are rt's to empty and remove.
    pub fn owned_dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs
            .iter()
            .map(|d| d.path.as_path())
            .filter(|p| self.created.iter().any(|c| c == p))
    }

    /// Whether rt made the container's cgroup (in every hierarchy it is in).
    pub fn is_owned(&self) -> bool {
        !self.dirs.is_empty() && self.owned_dirs().count() == self.dirs.len()
    }

    /// Every process in the cgroups rt made for the container and in the sub-cgroups the
    /// container made below them, in every hierarchy (a process may have been moved to a
    /// sub-cgroup of one hierarchy only). Nothing when rt made none.
    pub fn owned_pids(&self) -> Vec<i32> {
        tree::pids(self.owned_dirs())
    }

    /// Every process in the container's cgroup tree, owned or not (to be filtered by the
    /// caller when the cgroup is shared).
    pub fn tree_pids(&self) -> Vec<i32> {
        tree::pids(self.dirs.iter().map(|d| d.path.as_path()))
    }

    /// [`Cgroup::kill_owned_until`] with the usual wait; what is left is only logged (the
    /// caller, a failed create, has an error of its own to report). Returns the tree as
    /// last seen.
    pub fn kill_owned(&self) -> Vec<PathBuf> {
        self.kill_owned_until(Instant::now() + kill::DEATH_WAIT)
            .unwrap_or_else(|left| {
                log::warn!("cgroup: {left}");
                Vec::new()
            })
    }

    /// Remove what create() made: the processes in the container's own cgroups are killed,
    /// the sub-cgroups the container made go deepest first, then the directories rt made.
    /// A cgroup that existed before (named by `cgroupsPath`) is left as it was: nothing in
    /// it is killed or removed.
    pub fn destroy(&self) -> Result<()> {
        self.destroy_until(Instant::now() + kill::DEATH_WAIT)
    }

    /// [`Cgroup::destroy`], its processes given until `deadline` to die. When some do not
    /// (frozen by an ancestor, in uninterruptible sleep), nothing is removed and the error
    /// says what is left; a later delete finishes the work once the kernel lets them go.
    pub fn destroy_until(&self, deadline: Instant) -> Result<()> {
        if self.systemd.is_none() && self.remove_created_at_once() {
            return Ok(());
        }
        let tree = self
            .kill_owned_until(deadline)
            .map_err(|left| Error::msg(format!("{left}; its cgroup is kept")))?;
        let deadline = Instant::now() + kill::RMDIR_WAIT;
        for sub in tree.iter().rev().filter(|d| !self.is_leaf(d)) {
            tree::rmdir(sub, deadline)
                .map_err(|e| Error::sys(format!("rmdir sub-cgroup {}", sub.display()), e))?;
        }
        if let Some(unit) = &self.systemd {
            unit.stop()?;
        }
        self.remove_created(deadline)
            .map_err(|(dir, e)| Error::sys(format!("rmdir cgroup {}", dir.display()), e))
    }

    /// The directories where a freezer can stop the container's processes: the v1
    /// freezer hierarchy's, and the unified one's (cgroup.freeze, also on a hybrid host).
    fn freezer_dirs(&self) -> impl Iterator<Item = &Path> {
        self.v1_dir("freezer").into_iter().chain(self.unified_dir())
    }

    fn is_leaf(&self, dir: &Path) -> bool {
        self.dirs.iter().any(|d| d.path == dir)
    }

    /// Refuse a cgroup that is frozen before the init joins it: the init would freeze
    /// the moment it joined and `create` would wait for it for ever. A new directory below
    /// a frozen parent is frozen too, so this is checked after the directories are made.
    pub fn check_not_frozen(&self) -> Result<()> {
        for d in self.freezer_dirs() {
            if let Some(why) = frozen_because(d) {
                return Err(Error::msg(format!(
                    "container's cgroup unexpectedly frozen: {why}"
                )));
            }
        }
        Ok(())
    }

    /// runc warns when the container's cgroup already holds processes (it shares them
    /// with the container: limits, pause, stats). A directory rt just made is empty.
    pub fn warn_if_not_empty(&self) {
        for d in self.dirs.iter().filter(|d| !self.created.contains(&d.path)) {
            let n = tree::procs(&d.path).map(|p| p.len()).unwrap_or(0);
            if n > 0 {
                log::warn!(
                    "container's cgroup is not empty: {n} process(es) found in {}",
                    d.path.display()
                );
                return;
            }
        }
    }
}

/// Why `dir` is frozen (v1 freezer.state FROZEN or FREEZING, which a child of a frozen
/// parent reads too; v2 cgroup.events "frozen 1", set for a child of a frozen parent, or
/// cgroup.freeze 1), or None.
fn frozen_because(dir: &Path) -> Option<String> {
    let v1 = dir.join("freezer.state");
    if let Ok(s) = fs::read_to_string(&v1) {
        let s = s.trim();
        return (s != "THAWED").then(|| format!("{} is {s}", v1.display()));
    }
    let events = dir.join("cgroup.events");
    if fs::read_to_string(&events).is_ok_and(|e| e.lines().any(|l| l.trim() == "frozen 1")) {
        return Some(format!("{} says frozen 1", events.display()));
    }
    let freeze = dir.join("cgroup.freeze");
    if fs::read_to_string(&freeze).is_ok_and(|s| s.trim() == "1") {
        return Some(format!("{} is 1", freeze.display()));
    }
    None
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

/// Thaw one cgroup directory, v1 or unified, whichever freezer file it has.
fn thaw_dir(d: &Path) {
    // Written without O_CREAT: cgroupfs has the file or it does not.
    let write = |file: &str, value: &[u8]| {
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new().write(true).open(d.join(file)) {
            let _ = f.write_all(value);
        }
    };
    write("freezer.state", b"THAWED");
    write("cgroup.freeze", b"0");
}

/// Push onto `missing` the directories from `dir` up to the first that exists (deepest
/// first), skipping those already there: what a mkdir -p of `dir` would make.
pub(super) fn missing_up_to_existing(dir: &Path, missing: &mut Vec<PathBuf>) {
    let mut p = dir;
    while !p.exists() && !missing.iter().any(|m| m == p) {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
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
    let _step = crate::trace::step_with("cgroup-write", || format!("{}={value}", path.display()));
    fs::write(&path, &value).ctx(|| format!("write {value:?} to {}", path.display()))
}

/// The file that takes a block IO weight in `dir`: `plain` (v1 `blkio.weight` with CFQ,
/// v2 `io.weight` with the cost model) or BFQ's (`*.bfq.weight`). Only asked for when the
/// config sets a weight: a kernel with neither gets an error that says so, rather than the
/// EACCES a write to a missing cgroup file gives.
pub fn weight_file(
    dir: &Path,
    plain: &'static str,
    bfq: &'static str,
    field: &str,
) -> Result<&'static str> {
    if dir.join(plain).exists() {
        Ok(plain)
    } else if dir.join(bfq).exists() {
        Ok(bfq)
    } else {
        Err(Error::msg(format!(
            "linux.resources.blockIO.{field}: this kernel has no blkio weight: no BFQ scheduler for any device (neither {plain} nor {bfq} in {})",
            dir.display()
        )))
    }
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
        let needed = v2::needed(r);
        let wanted: Vec<&str> = if self.is_v2() {
            V2_CONTROLLERS.to_vec()
        } else {
            needed
                .iter()
                .copied()
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
                    match write(a, "cgroup.subtree_control", format!("+{c}")) {
                        // Wanted for stats only: a subtree delegated to a user may not
                        // enable some (cpuset needs the host's root), and no limit needs it.
                        Err(e) if !needed.contains(c) => {
                            log::debug!("cgroup: {c} not enabled (no limit needs it): {e}")
                        }
                        r => r?,
                    }
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
                "pause/resume: the container has no cgroup (created with --cgroup-manager=disabled, or by a user without a delegated cgroup)",
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
        .filter(|r| r.is_for_the_device_cgroup())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hierarchy(mountpoint: &str) -> Hierarchy {
        Hierarchy {
            mountpoint: PathBuf::from(mountpoint),
            unified: false,
            subsystems: "cpu".into(),
        }
    }

    #[test]
    fn the_root_of_a_hierarchy_is_refused() {
        let h = [hierarchy("/sys/fs/cgroup/cpu")];
        for path in ["/", "//", "/./", "/.//."] {
            let e = plan(&h, Some(path), "c1").unwrap_err().to_string();
            assert!(
                e.contains("root of the cgroup hierarchy /sys/fs/cgroup/cpu"),
                "{path}: {e}"
            );
        }
        let ok = plan(&h, Some("/a/./b/"), "c1").unwrap();
        assert_eq!(ok.dirs[0].path, PathBuf::from("/sys/fs/cgroup/cpu/a/b"));
        assert!(plan(&h, Some("/a/../b"), "c1").is_err());
    }

    #[test]
    fn ownership_is_what_rt_made() {
        let dir = std::env::temp_dir().join(format!("rt-cg-own-{}", std::process::id()));
        let existing = dir.join("existing");
        fs::create_dir_all(&existing).unwrap();
        let h = [hierarchy(dir.to_str().unwrap())];
        // A cgroup that exists already is not the container's to empty or remove.
        let shared = plan(&h, Some("/existing"), "c1").unwrap().as_planned();
        assert!(shared.created.is_empty() && !shared.is_owned());
        // Missing directories, parents included, are rt's, deepest first.
        let own = plan(&h, Some("/new/leaf"), "c1").unwrap().as_planned();
        assert_eq!(own.created, [dir.join("new/leaf"), dir.join("new")]);
        assert!(own.is_owned());
        assert_eq!(own.owned_dirs().collect::<Vec<_>>(), [dir.join("new/leaf")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn frozen_states() {
        let dir = std::env::temp_dir().join(format!("rt-cg-frozen-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(frozen_because(&dir), None);
        for (file, text, frozen) in [
            ("freezer.state", "THAWED\n", false),
            ("freezer.state", "FREEZING\n", true),
            ("freezer.state", "FROZEN\n", true),
        ] {
            fs::write(dir.join(file), text).unwrap();
            assert_eq!(frozen_because(&dir).is_some(), frozen, "{text}");
        }
        fs::remove_file(dir.join("freezer.state")).unwrap();
        fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 1\n").unwrap();
        assert!(frozen_because(&dir).unwrap().contains("frozen 1"));
        fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        fs::write(dir.join("cgroup.freeze"), "0\n").unwrap();
        assert_eq!(frozen_because(&dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
