//! What is left of a container that SIGKILL could not end in time, in one line: each
//! process, its state, where the kernel holds it (/proc/PID/wchan), its cgroup, and for a
//! frozen one the freezer cgroup that holds it and whether rt may thaw it.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{tree, Cgroup};
use crate::state::proc_stat;

/// Processes named one by one; the rest are counted.
const SHOWN: usize = 4;

/// Processes still there after SIGKILL, each with the cgroup it was found in.
#[derive(Debug)]
pub struct Leftover {
    procs: Vec<String>,
    waited: Duration,
}

impl Leftover {
    /// The processes of `tree` (the container's cgroups and their sub-cgroups), each named
    /// with the deepest directory that lists it.
    pub fn of_tree(cg: &Cgroup, tree: &[PathBuf], waited: Duration) -> Leftover {
        let mut found: Vec<(i32, &Path)> = Vec::new();
        for dir in tree {
            for pid in tree::procs(dir).unwrap_or_default() {
                match found.iter_mut().find(|(p, _)| *p == pid) {
                    Some(entry) if depth(dir) > depth(entry.1) => entry.1 = dir,
                    Some(_) => {}
                    None => found.push((pid, dir)),
                }
            }
        }
        found.sort_by_key(|(pid, _)| *pid);
        Leftover::new(
            cg,
            found.into_iter().map(|(p, d)| (p, Some(d))).collect(),
            waited,
        )
    }

    /// `pids` of a container whose cgroup rt does not own (or that has none).
    pub fn of_pids(cg: &Cgroup, pids: &[i32], waited: Duration) -> Leftover {
        let dir = cg.dirs.first().map(|d| d.path.as_path());
        Leftover::new(cg, pids.iter().map(|&p| (p, dir)).collect(), waited)
    }

    /// Name `pid` too, when it is alive and not named yet: a container's init that has
    /// left its cgroup but still waits in the kernel for its pid namespace to empty.
    pub fn with_pid(mut self, cg: &Cgroup, pid: i32, alive: bool) -> Leftover {
        let named = format!("pid {pid} (");
        if alive && !self.procs.iter().any(|p| p.starts_with(&named)) {
            let freezer = FreezerMount::find();
            self.procs
                .insert(0, describe(pid, None, cg, freezer.as_ref()));
        }
        self
    }

    fn new(cg: &Cgroup, pids: Vec<(i32, Option<&Path>)>, waited: Duration) -> Leftover {
        let freezer = FreezerMount::find();
        Leftover {
            procs: pids
                .into_iter()
                .map(|(pid, dir)| describe(pid, dir, cg, freezer.as_ref()))
                .collect(),
            waited,
        }
    }
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.procs.len();
        write!(
            f,
            "{n} process{} still there {:.1}s after SIGKILL: {}",
            if n == 1 { "" } else { "es" },
            self.waited.as_secs_f32(),
            self.procs
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )?;
        if n > SHOWN {
            write!(f, "; and {} more", n - SHOWN)?;
        }
        Ok(())
    }
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// "pid 1234 (cat) in uninterruptible sleep (D) in request_wait_answer, cgroup /sys/...".
fn describe(pid: i32, dir: Option<&Path>, cg: &Cgroup, freezer: Option<&FreezerMount>) -> String {
    let Some(st) = proc_stat(pid) else {
        return format!("pid {pid} (exited just now)");
    };
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan"))
        .ok()
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty() && w != "0")
        .map(|w| format!(" in {w}"))
        .unwrap_or_default();
    let cgroup = dir
        .map(|d| format!(", cgroup {}", d.display()))
        .unwrap_or_default();
    let what = match freezer.and_then(|f| f.frozen_by(pid, cg)) {
        Some(why) => format!("frozen ({}){wchan} {why}", st.state),
        None => format!("{}{wchan}", state_words(st.state)),
    };
    format!("pid {pid} ({}) {what}{cgroup}", st.comm)
}

fn state_words(state: char) -> String {
    match state {
        'D' => "in uninterruptible sleep (D)".into(),
        'S' => "sleeping (S)".into(),
        'R' => "running (R)".into(),
        'T' | 't' => format!("stopped ({state})"),
        'Z' => "a zombie (Z)".into(),
        c => format!("in state {c}"),
    }
}

/// The v1 freezer hierarchy's mount point, when the host has one (on cgroup v2 a frozen
/// task dies of SIGKILL: the freezer is never why one is left).
struct FreezerMount(PathBuf);

impl FreezerMount {
    fn find() -> Option<FreezerMount> {
        super::hierarchies()
            .ok()?
            .into_iter()
            .find(|h| !h.unified && h.subsystems.split(',').any(|s| s == "freezer"))
            .map(|h| FreezerMount(h.mountpoint))
    }

    /// Why `pid` is frozen: "by <dir> (FROZEN)" naming the cgroups from its own up whose
    /// freezer.self_freezing is 1, or None when its freezer cgroup is THAWED.
    fn frozen_by(&self, pid: i32, cg: &Cgroup) -> Option<String> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rel = text.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == "freezer").then_some(path)
        })?;
        let own = self.0.join(rel.trim_start_matches('/'));
        let state = fs::read_to_string(own.join("freezer.state")).ok()?;
        if state.trim() == "THAWED" {
            return None;
        }
        let holders: Vec<String> = own
            .ancestors()
            .take_while(|a| a.starts_with(&self.0) && *a != self.0)
            .filter(|a| {
                fs::read_to_string(a.join("freezer.self_freezing")).is_ok_and(|s| s.trim() == "1")
            })
            .map(|a| {
                let st = fs::read_to_string(a.join("freezer.state")).unwrap_or_default();
                // A frozen ancestor may be a pod's, an admin's, or a parent shared with
                // other containers: not the container's to thaw.
                let whose = if cg.dirs.iter().any(|d| a.starts_with(&d.path)) {
                    ""
                } else {
                    ", an ancestor rt does not thaw"
                };
                format!("{} ({}{whose})", a.display(), st.trim())
            })
            .collect();
        Some(if holders.is_empty() {
            format!("by {} ({})", own.display(), state.trim())
        } else {
            format!("by {}", holders.join(" and "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_process_and_counts_the_rest() {
        let me = std::process::id() as i32;
        let cg = Cgroup::default();
        let one = Leftover::of_pids(&cg, &[me], Duration::from_millis(5000)).to_string();
        assert!(
            one.starts_with(&format!(
                "1 process still there 5.0s after SIGKILL: pid {me} ("
            )),
            "{one}"
        );
        // The test's own process runs (R) or sleeps (S): its state is in words.
        assert!(
            one.contains("running (R)") || one.contains("sleeping (S)"),
            "{one}"
        );
        let many = Leftover::of_pids(&cg, &[me; 6], Duration::from_secs(1)).to_string();
        assert!(many.starts_with("6 processes still there"), "{many}");
        assert!(many.ends_with("; and 2 more"), "{many}");
        assert_eq!(many.matches(&format!("pid {me} (")).count(), SHOWN);
        // A pid already named is not named twice; a dead one is not added.
        let with = Leftover::of_pids(&cg, &[me], Duration::ZERO).with_pid(&cg, me, true);
        assert_eq!(with.procs.len(), 1);
        let gone = Leftover::of_pids(&cg, &[me], Duration::ZERO).with_pid(&cg, 1, false);
        assert_eq!(gone.procs.len(), 1);
    }

    #[test]
    fn states_in_words() {
        assert_eq!(state_words('D'), "in uninterruptible sleep (D)");
        assert_eq!(state_words('t'), "stopped (t)");
        assert_eq!(state_words('I'), "in state I");
    }
}
