//! Which cgroup level an OOM came from: the container's own memory limit, or an ancestor's
//! (a pod-level or slice limit). Used by `rt events` and by the shim, which includes this
//! file by path: std only.
//!
//! The kernel counts a limit that was hit at the level whose limit it is:
//! - cgroup v2: `oom` in `memory.events.local` rises at the level that ran out (the
//!   hierarchical `memory.events` would count it at every level above as well).
//! - cgroup v1 has no such count, so it is inferred, in this order (the lowest level
//!   wins in each, as a charge is checked from the container up):
//!   1. `memory.failcnt` rose: a charge failed at this level's memory limit (a charge
//!      walks the page counters up and fails at the first level over its limit). v1 also
//!      counts failures that reclaim resolved, hence "rose since the last report".
//!   2. The peak (`memory.max_usage_in_bytes`, `memory.memsw.max_usage_in_bytes`) rose
//!      and is now at the limit: needed because a memory+swap limit is charged first and
//!      its failures are not counted anywhere (6.x tracks failcnt for `memory` only).
//!   3. The peak is at the limit, risen or not (a level that ran out before).
//!
//!   So v1 can name the wrong level: a container that filled its own limit earlier (page
//!   cache) looks hit when later an ancestor that had also run out before is the one.
//!
//! The OOM kill itself is counted in the victim's own cgroup (v1 `oom_kill`, v2
//! `memory.events` `oom_kill`), whichever level ran out: that says *that* the container
//! was OOM-killed, these counters say *where* the limit was.
//!
//! Rises are measured from the last report (or the watch's start): an ancestor's count
//! can rise a moment before the kill shows in the container.
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

/// What one level says about its limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    /// v2: `oom` of memory.events.local; v1: memory.failcnt.
    hits: u64,
    /// v1: the peak usage (memory + memory+swap); 0 on v2.
    peak: u64,
    /// v1: a peak is within SLACK of its limit.
    full: bool,
}

/// A charge fails when usage plus the charge would pass the limit: the peak then stays
/// a little below it.
const SLACK: u64 = 1 << 20;

/// Did a level hit its limit, given its counters (before, now)?
type Test = fn(&Counters, &Counters) -> bool;

/// The counters of each level, the container first, then its ancestors upwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    /// (path in the hierarchy, counters)
    levels: Vec<(String, Counters)>,
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
            levels.push((format!("/{}", rel.display()), counters(d, unified)));
        }
        Levels { levels }
    }

    /// The container's path in its hierarchy (`/rt-test/c1`); None when unread.
    pub fn container(&self) -> Option<&str> {
        self.levels.first().map(|(p, _)| p.as_str())
    }

    /// The level whose limit was hit between `self` (earlier) and `now` (see the module's
    /// doc for the order of the tests).
    pub fn hit_since(&self, now: &Levels) -> Level {
        let before = |path: &str| self.levels.iter().find(|(p, _)| p == path).map(|(_, c)| *c);
        let tests: [Test; 3] = [
            |b, n| n.hits > b.hits,
            |b, n| n.full && n.peak > b.peak,
            |_, n| n.full,
        ];
        for test in tests {
            for (i, (path, n)) in now.levels.iter().enumerate() {
                if before(path).is_some_and(|b| test(&b, n)) {
                    return match i {
                        0 => Level::Container,
                        _ => Level::Ancestor(path.clone()),
                    };
                }
            }
        }
        Level::Unknown
    }
}

/// The counters of one level; 0 (and not full) where a file is missing.
fn counters(dir: &Path, unified: bool) -> Counters {
    let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
    let num = |f: &str| read(f).and_then(|t| t.trim().parse::<u64>().ok());
    if unified {
        let text = read("memory.events.local")
            .or_else(|| read("memory.events"))
            .unwrap_or_default();
        let hits = text
            .lines()
            .find_map(|l| l.strip_prefix("oom "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        return Counters {
            hits,
            ..Counters::default()
        };
    }
    let mut c = Counters {
        hits: num("memory.failcnt").unwrap_or(0),
        ..Counters::default()
    };
    for prefix in ["memory", "memory.memsw"] {
        let peak = num(&format!("{prefix}.max_usage_in_bytes")).unwrap_or(0);
        // "Unlimited" is a huge number: never reached.
        let limit = num(&format!("{prefix}.limit_in_bytes")).unwrap_or(u64::MAX);
        c.peak += peak;
        c.full |= peak.saturating_add(SLACK) >= limit;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(v: &[(&str, u64, u64, bool)]) -> Levels {
        let levels = v
            .iter()
            .map(|&(p, hits, peak, full)| (p.to_string(), Counters { hits, peak, full }))
            .collect();
        Levels { levels }
    }

    #[test]
    fn the_lowest_level_whose_count_rose_is_the_one() {
        let before = levels(&[
            ("/pod/c", 3, 0, false),
            ("/pod", 7, 0, false),
            ("/", 0, 0, false),
        ]);
        let own = levels(&[("/pod/c", 4, 0, false), ("/pod", 7, 0, false)]);
        assert_eq!(before.hit_since(&own), Level::Container);
        let pod = levels(&[("/pod/c", 3, 0, false), ("/pod", 9, 0, false)]);
        assert_eq!(before.hit_since(&pod), Level::Ancestor("/pod".into()));
        let both = levels(&[("/pod/c", 5, 0, false), ("/pod", 9, 0, false)]);
        assert_eq!(before.hit_since(&both), Level::Container);
        assert_eq!(before.hit_since(&before), Level::Unknown);
        assert_eq!(before.hit_since(&Levels::default()), Level::Unknown);
        assert_eq!(Levels::default().hit_since(&own), Level::Unknown);
    }

    /// v1 with memory+swap limits: no failcnt; the peak that rose to its limit, else one
    /// at its limit.
    #[test]
    fn v1_peaks_at_the_limit() {
        let before = levels(&[("/pod/c", 0, 10, true), ("/pod", 0, 20, false)]);
        let pod = levels(&[("/pod/c", 0, 10, true), ("/pod", 0, 32, true)]);
        assert_eq!(before.hit_since(&pod), Level::Ancestor("/pod".into()));
        let own = levels(&[("/pod/c", 0, 10, true), ("/pod", 0, 20, true)]);
        assert_eq!(before.hit_since(&own), Level::Container);
        // A failcnt rise wins over any peak.
        let counted = levels(&[("/pod/c", 0, 10, true), ("/pod", 1, 20, false)]);
        assert_eq!(before.hit_since(&counted), Level::Ancestor("/pod".into()));
    }

    /// A fake hierarchy in a temp dir (same filesystem up to /, so every directory up to
    /// the filesystem's root is a level): v1 failcnt and peaks, v2 `oom` only.
    #[test]
    fn counters_are_read_per_level() {
        let base = std::env::temp_dir().join(format!("rt-oom-level-{}", std::process::id()));
        let c = base.join("pod/c");
        fs::create_dir_all(&c).unwrap();
        fs::write(c.join("memory.failcnt"), "2\n").unwrap();
        fs::write(c.join("memory.max_usage_in_bytes"), "16000000\n").unwrap();
        fs::write(c.join("memory.limit_in_bytes"), "16777216\n").unwrap();
        fs::write(base.join("pod/memory.failcnt"), "5\n").unwrap();
        fs::write(base.join("pod/memory.memsw.max_usage_in_bytes"), "1000\n").unwrap();
        let v1 = Levels::read(&c, false);
        assert!(v1.container().unwrap().ends_with("/pod/c"), "{v1:?}");
        let (hits, peak, full) = (2, 16000000, true);
        assert_eq!(v1.levels[0].1, Counters { hits, peak, full });
        let (hits, peak, full) = (5, 1000, false);
        assert_eq!(v1.levels[1].1, Counters { hits, peak, full });
        fs::write(
            c.join("memory.events.local"),
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n",
        )
        .unwrap();
        fs::write(base.join("pod/memory.events"), "oom 6\noom_kill 0\n").unwrap();
        let v2 = Levels::read(&c, true);
        assert_eq!((v2.levels[0].1.hits, v2.levels[1].1.hits), (2, 6));
        assert!(!v2.levels[0].1.full);
        assert_eq!(Levels::read(&base.join("gone"), true), Levels::default());
        fs::remove_dir_all(&base).unwrap();
    }
}
