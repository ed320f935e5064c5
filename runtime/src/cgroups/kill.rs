//! Ending every process of the container's cgroup tree within a bounded time (issue 17:
//! kill and delete never hang), and saying what is left when the kernel cannot end it.
//!
//! SIGKILL goes to every process first (and through `cgroup.kill` where the unified
//! hierarchy has it: the whole subtree at once, a child forked meanwhile included), then
//! the container's freezers are thawed: a task the v1 freezer holds does not die of SIGKILL
//! until it is thawed, and thawing only after the signal means it never runs user code
//! again. A frozen *ancestor* is never thawed: rt did not make it, or shares it with other
//! containers (a pod's, an admin's); what it holds is reported instead, as is a task in
//! uninterruptible sleep (a FUSE or NFS server that does not answer), which nothing ends.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{leftover::Leftover, thaw_dir, tree, Cgroup};

/// How long `delete` and `kill --all ... KILL` wait, in all, for the container's processes
/// to die (they normally take milliseconds; a process freeing gigabytes, some more).
pub const DEATH_WAIT: Duration = Duration::from_secs(5);

/// How long an emptied cgroup directory may refuse rmdir (EBUSY) after its last process
/// exited: the kernel lets go of it a moment later.
pub const RMDIR_WAIT: Duration = Duration::from_secs(2);

impl Cgroup {
    /// SIGKILL every process in the cgroups rt made for the container and the sub-cgroups
    /// below them, thaw them, and repeat until they are empty or `deadline` passes. Returns
    /// the tree as last seen (parents first), or what SIGKILL could not end in time.
    pub fn kill_owned_until(&self, deadline: Instant) -> Result<Vec<PathBuf>, Leftover> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let tree: Vec<PathBuf> = self.owned_dirs().flat_map(tree::walk).collect();
            let pids = tree::procs_of(&tree);
            if pids.is_empty() {
                return Ok(tree);
            }
            if Instant::now() >= deadline {
                return Err(Leftover::of_tree(self, &tree, started.elapsed()));
            }
            for dir in self.owned_dirs().filter(|d| self.is_unified(d)) {
                cgroup_kill(dir);
            }
            for pid in pids {
                let _ = crate::sys::kill(pid, libc::SIGKILL);
            }
            // Each round: a freezer written meanwhile (by the container, in a sub-cgroup
            // of its own) must not keep a process from its death either.
            self.thaw();
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Unfreeze the container so that its processes can die: the directories rt made and
    /// every sub-cgroup below them (parents first: a v1 child cannot thaw while its parent
    /// is frozen), and the container's own directories when they existed before (what
    /// `rt pause` froze). Never an ancestor: see the module's comment.
    pub fn thaw(&self) {
        for d in self.freezer_dirs() {
            if self.owned_dirs().any(|o| o == d) {
                tree::walk(d).iter().for_each(|sub| thaw_dir(sub));
            } else {
                thaw_dir(d);
            }
        }
    }

    fn is_unified(&self, dir: &Path) -> bool {
        self.dirs.iter().any(|d| d.unified && d.path == dir)
    }
}

/// cgroup.kill (Linux 5.14): SIGKILL to every process of the subtree, in the kernel, so
/// that none escapes by forking while rt reads cgroup.procs. Without it (an older kernel)
/// the per-pid kill of the caller does the work.
fn cgroup_kill(dir: &Path) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
    {
        let _ = f.write_all(b"1");
    }
}
