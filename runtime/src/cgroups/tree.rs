//! A cgroup directory and the sub-cgroups below it: the container may make its own (with a
//! cgroup namespace and a writable cgroup mount), so listing, killing and removing walk
//! the whole tree.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// Sub-cgroups nested deeper than this are not followed (the kernel's default
/// cgroup.max.depth is unlimited; a container making thousands is not worth walking).
const MAX_DEPTH: u32 = 64;

/// The processes listed in one directory's cgroup.procs. Pids the reader cannot see (a
/// process outside its pid namespace) read as 0 on cgroup v2: never a pid to signal.
pub fn procs(dir: &Path) -> std::io::Result<Vec<i32>> {
    Ok(fs::read_to_string(dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0)
        .collect())
}

/// `dir` and every sub-cgroup below it, parents before children, siblings by name.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk_into(dir, 0, &mut out);
    out
}

fn walk_into(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    // A directory's link count is 2 plus its subdirectories (cgroupfs keeps it so): one
    // stat spares reading the file list of a cgroup that has no sub-cgroup, the usual case.
    let no_subdirs = fs::metadata(dir).is_ok_and(|m| m.nlink() <= 2);
    if depth >= MAX_DEPTH || no_subdirs {
        return;
    }
    let mut subdirs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    subdirs.sort();
    for sub in subdirs {
        walk_into(&sub, depth + 1, out);
    }
}

/// Every process in `dirs` and their sub-cgroups, each once, in pid order.
pub fn pids<'a>(dirs: impl Iterator<Item = &'a Path>) -> Vec<i32> {
    procs_of(&dirs.flat_map(walk).collect::<Vec<_>>())
}

/// Every process listed in `dirs`' cgroup.procs, each once, in pid order (a sub-cgroup
/// removed meanwhile is skipped).
pub fn procs_of(dirs: &[PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs
        .iter()
        .flat_map(|d| procs(d).unwrap_or_default())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// rmdir `dir`, retrying while the kernel still counts a process that is exiting (EBUSY)
/// until `deadline`. A directory already gone is fine.
pub fn rmdir(dir: &Path, deadline: Instant) -> std::result::Result<(), Errno> {
    loop {
        match fs::remove_dir(dir).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0))) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY | Errno::ENOTEMPTY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e),
        }
    }
}
