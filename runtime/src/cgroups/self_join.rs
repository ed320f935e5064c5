//! A container process that joins its cgroup by itself, with nothing moved from outside.
//!
//! Moving a process into a cgroup (a pid written to `cgroup.procs`) takes the kernel's
//! global threadgroup lock for writing, and the first such move after a quiet spell waits
//! for an RCU grace period under it: 5-25 ms on the development VM, more than all the rest
//! of a `create`, and it holds cgroup_mutex meanwhile, so no other cgroup work overlaps it.
//! Two ways around it, both as good as a move:
//! - v1: a single-threaded process that moves its only thread (`0`, itself, written to a
//!   hierarchy's `tasks` file) skips that lock (the kernel's self-migration shortcut), so
//!   the process writes itself into every v1 hierarchy;
//! - cgroup2 (a v2 host, or a hybrid host's unified hierarchy): the process is born there,
//!   by clone3 with CLONE_INTO_CGROUP (Linux 5.7), as crun does. On an older kernel (or
//!   should the kernel refuse the clone) it is forked as before and writes itself into
//!   `cgroup.procs`, which pays the grace period but is otherwise the same.
//!
//! The process writes before it makes or joins any namespace, or, as the init forked into
//! its new pid namespace, while it still has rt's credentials and view of the cgroup
//! filesystems: it opens each file as it writes it, one at a time, so a create needs one
//! fd more than without (the cgroup2 directory, for the clone).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::Cgroup;
use crate::error::{Context, Error, Result};

/// What a process needs to join `Cgroup` by itself.
#[derive(Debug)]
pub struct SelfJoin {
    /// Each v1 hierarchy's `tasks` file.
    tasks: Vec<PathBuf>,
    /// The cgroup2 directory, if the container has one.
    unified: Option<Unified>,
}

#[derive(Debug)]
struct Unified {
    /// O_PATH on the directory: clone3's CLONE_INTO_CGROUP takes it.
    dir: OwnedFd,
    path: PathBuf,
}

impl SelfJoin {
    /// Open the cgroup2 directory (the rest is opened as it is written).
    pub fn open(cgroup: &Cgroup) -> Result<SelfJoin> {
        let mut join = SelfJoin {
            tasks: Vec::new(),
            unified: None,
        };
        for d in &cgroup.dirs {
            if d.unified {
                let dir = open(
                    &d.path,
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open cgroup {}", d.path.display()))?;
                join.unified = Some(Unified {
                    dir,
                    path: d.path.clone(),
                });
            } else {
                join.tasks.push(d.path.join("tasks"));
            }
        }
        Ok(join)
    }

    /// The cgroup2 directory to be born in (clone3 CLONE_INTO_CGROUP), if any.
    pub fn birth_cgroup(&self) -> Option<BorrowedFd<'_>> {
        self.unified.as_ref().map(|u| u.dir.as_fd())
    }

    /// In the process itself, single-threaded, before it makes anything that should be
    /// charged to the container: move into every v1 hierarchy, and into the cgroup2 one
    /// unless `born_there`.
    pub fn join_self(&self, born_there: bool) -> Result<()> {
        let _step = crate::trace::step_with("cgroup-join", || self.describe(born_there));
        for path in &self.tasks {
            write_self(path)?;
        }
        if let Some(u) = self.unified.as_ref().filter(|_| !born_there) {
            write_self(&u.path.join("cgroup.procs"))?;
        }
        Ok(())
    }
}

impl SelfJoin {
    /// For the trace: how it joined.
    fn describe(&self, born_there: bool) -> String {
        let mut how = Vec::new();
        if let Some(u) = &self.unified {
            let verb = if born_there {
                "born in"
            } else {
                "wrote itself into"
            };
            how.push(format!("{verb} {}", u.path.display()));
        }
        if !self.tasks.is_empty() {
            how.push(format!(
                "wrote itself into {} v1 tasks files",
                self.tasks.len()
            ));
        }
        how.join("; ")
    }
}

/// Write 0 (the writer itself) into `path`.
fn write_self(path: &Path) -> Result<()> {
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", path.display()))?;
    loop {
        match nix::unistd::write(&fd, b"0") {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("write 0 (itself) to {}", path.display()),
                    e,
                ))
            }
            Ok(_) => return Ok(()),
        }
    }
}

/// Fork a process that joins `join` by itself: born in its cgroup2 directory when the
/// kernel can (the returned flag says so; the child must then call
/// [`SelfJoin::join_self`] with it), a plain fork (or sibling clone) otherwise.
pub fn fork(join: Option<&SelfJoin>, sibling: bool) -> nix::Result<(Option<i32>, bool)> {
    if let Some(fd) = join.and_then(SelfJoin::birth_cgroup) {
        match crate::sys::fork_into_cgroup(fd, sibling) {
            Ok(forked) => return Ok((forked, true)),
            // A kernel without clone3 (ENOSYS) or CLONE_INTO_CGROUP (E2BIG, EINVAL): the
            // child writes itself into cgroup.procs instead.
            Err(e @ (Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL)) => {
                log::debug!("clone3(CLONE_INTO_CGROUP): {e}; forking, then joining")
            }
            // Anything else is the fork's own failure (EAGAIN from a pids limit...), and
            // the first fork into a new pid namespace cannot be tried twice (the kernel
            // takes no more processes into it: ENOMEM).
            Err(e) => return Err(e),
        }
    }
    let forked = if sibling {
        crate::sys::fork_sibling()?
    } else {
        crate::sys::fork()?
    };
    Ok((forked, false))
}
