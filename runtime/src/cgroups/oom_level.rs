//! Which cgroup level an OOM came from: the container's own memory limit, or an ancestor's
//! (a pod-level or slice limit). Used by `rt events` and by the shim, which includes this
//! file by path: std only.
//!
//! The kernel counts a limit that was hit at the level whose limit it is:
//! - cgroup v2: `oom` in `memory.events.local` rises at the level that ran out (the
//!   hierarchical `memory.events` would count it at every level above as well).
//! - cgroup v1: `memory.failcnt` (and `memory.memsw.failcnt`): a charge walks the page
//!   counters from the container up and fails at the first level over its limit, which
//!   counts the failure. v1 also counts failures that reclaim then resolved, so a level
//!   counts as hit when its count rose since the last look; when several rose, the lowest
//!   (the charge was checked there first).
//!
//! The OOM kill itself is counted in the victim's own cgroup (v1 `oom_kill`, v2
//! `memory.events` `oom_kill`), whichever level ran out: that says *that* the container
//! was OOM-killed, these counters say *where* the limit was.
//!
//! Only reads: from the container's directory up to, not including, the hierarchy's root
//! (the last directory on the same filesystem), which has no limit.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Where the memory limit behind an OOM was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// The container's own limit.
    Container,
    /// An ancestor's limit; its path in the hierarchy (`/kubepods/pod1`).
    Ancestor(String),
    /// No level's counter rose (the cgroup is gone, or nothing was counted).
    Unknown,
}

impl Level {
    pub fn name(&self) -> &'static str {
        match self {
            Level::Container => "container",
            Level::Ancestor(_) => "ancestor",
            Level::Unknown => "unknown",
        }
    }
}

/// The limit-hit counter of each level, the container first, then its ancestors upwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    /// (path in the hierarchy, counter)
    levels: Vec<(String, u64)>,
}

impl Levels {
    /// The counters now of the memory cgroup `dir` (`unified`: cgroup v2) and its
    /// ancestors. Empty when `dir` cannot be read.
    pub fn read(dir: &Path, unified: bool) -> Levels {
        let mut levels = Vec::new();
        let Ok(meta) = fs::metadata(dir) else {
            return Levels::default();
        };
        let mut chain = vec![dir];
        let mut cur = dir;
        while let Some(parent) = cur.parent() {
            match fs::metadata(parent) {
                Ok(m) if m.dev() == meta.dev() => {
                    chain.push(parent);
                    cur = parent;
                }
                _ => break,
            }
        }
        // `cur` is the hierarchy's root; it is not a level.
        let root = cur;
        for d in chain.iter().filter(|d| **d != root) {
            let rel = d.strip_prefix(root).unwrap_or(d);
            levels.push((format!("/{}", rel.display()), counter(d, unified)));
        }
        Levels { levels }
    }

    /// The container's path in its hierarchy (`/rt-test/c1`); None when unread.
    pub fn container(&self) -> Option<&str> {
        self.levels.first().map(|(p, _)| p.as_str())
    }

    /// The level whose limit was hit between `self` (earlier) and `now`: the lowest whose
    /// counter rose.
    pub fn hit_since(&self, now: &Levels) -> Level {
        for (i, (path, n)) in now.levels.iter().enumerate() {
            let rose = self
                .levels
                .iter()
                .find(|(p, _)| p == path)
                .is_some_and(|(_, before)| n > before);
            if rose {
                return match i {
                    0 => Level::Container,
                    _ => Level::Ancestor(path.clone()),
                };
            }
        }
        Level::Unknown
    }
}

/// v2: `oom` of memory.events.local (memory.events on kernels without it); v1:
/// memory.failcnt + memory.memsw.failcnt. 0 where a file is missing.
fn counter(dir: &Path, unified: bool) -> u64 {
    let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
    if unified {
        let text = read("memory.events.local")
            .or_else(|| read("memory.events"))
            .unwrap_or_default();
        return text
            .lines()
            .find_map(|l| l.strip_prefix("oom "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
    }
    ["memory.failcnt", "memory.memsw.failcnt"]
        .iter()
        .filter_map(|f| read(f)?.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(v: &[(&str, u64)]) -> Levels {
        Levels {
            levels: v.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn the_lowest_level_that_rose_is_the_one() {
        let before = levels(&[("/pod/c", 3), ("/pod", 7), ("/", 0)]);
        let own = levels(&[("/pod/c", 4), ("/pod", 7)]);
        assert_eq!(before.hit_since(&own), Level::Container);
        let pod = levels(&[("/pod/c", 3), ("/pod", 9)]);
        assert_eq!(before.hit_since(&pod), Level::Ancestor("/pod".into()));
        let both = levels(&[("/pod/c", 5), ("/pod", 9)]);
        assert_eq!(before.hit_since(&both), Level::Container);
        assert_eq!(before.hit_since(&before), Level::Unknown);
        assert_eq!(before.hit_since(&Levels::default()), Level::Unknown);
        assert_eq!(Levels::default().hit_since(&own), Level::Unknown);
    }

    /// A fake hierarchy in a temp dir (same filesystem up to /, so every directory up to
    /// the filesystem's root is a level): v1 sums the failcnts, v2 reads `oom` only.
    #[test]
    fn counters_are_read_per_level() {
        let base = std::env::temp_dir().join(format!("rt-oom-level-{}", std::process::id()));
        let c = base.join("pod/c");
        fs::create_dir_all(&c).unwrap();
        fs::write(c.join("memory.failcnt"), "2\n").unwrap();
        fs::write(c.join("memory.memsw.failcnt"), "1\n").unwrap();
        fs::write(base.join("pod/memory.failcnt"), "5\n").unwrap();
        let v1 = Levels::read(&c, false);
        assert!(v1.container().unwrap().ends_with("/pod/c"), "{v1:?}");
        assert_eq!(v1.levels[0].1, 3);
        assert_eq!(v1.levels[1].1, 5);
        fs::write(
            c.join("memory.events.local"),
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n",
        )
        .unwrap();
        fs::write(base.join("pod/memory.events"), "oom 6\noom_kill 0\n").unwrap();
        let v2 = Levels::read(&c, true);
        assert_eq!((v2.levels[0].1, v2.levels[1].1), (2, 6));
        assert_eq!(Levels::read(&base.join("gone"), true), Levels::default());
        fs::remove_dir_all(&base).unwrap();
    }
}
