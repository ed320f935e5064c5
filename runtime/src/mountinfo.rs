//! /proc/<pid>/mountinfo, one parsed line per mount (proc(5)):
//! `id parent maj:min root mountpoint options [optional fields...] - fstype source superopts`.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    pub parent: u64,
    /// The directory of the filesystem that is mounted ("/" for the whole of it).
    pub root: PathBuf,
    pub mountpoint: PathBuf,
    /// Propagation tags such as "shared:3" or "master:1".
    pub optional: Vec<String>,
    pub fstype: String,
    pub superopts: String,
}

/// The mounts of this process's mount namespace.
pub fn read_own() -> Result<Vec<Mount>> {
    let text = crate::sys::read_proc("/proc/self/mountinfo", 64 << 10)
        .ctx(|| "read /proc/self/mountinfo")?;
    Ok(parse(&text))
}

pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id = l.next()?.parse().ok()?;
    let parent = l.next()?.parse().ok()?;
    let _dev = l.next()?;
    let root = PathBuf::from(unescape(l.next()?));
    let mountpoint = PathBuf::from(unescape(l.next()?));
    let _options = l.next()?;
    let optional = l.map(str::to_string).collect();
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let _source = r.next();
    let superopts = r.next().unwrap_or("").to_string();
    Some(Mount {
        id,
        parent,
        root,
        mountpoint,
        optional,
        fstype,
        superopts,
    })
}

/// Those of `mounts` that `wanted` picks and that paths can still reach: a mount is
/// hidden when another one, not below it in the mount tree, sits on its mount point or on
/// a directory above it (a tmpfs mounted over /sys/fs/cgroup hides the cgroup hierarchies
/// mounted there before). Only the picked mounts are checked, each against all: a host
/// may have hundreds of mounts, and create asks this for its dozen cgroup hierarchies.
pub fn reachable(mounts: Vec<Mount>, wanted: impl Fn(&Mount) -> bool) -> Vec<Mount> {
    let parent: HashMap<u64, u64> = mounts.iter().map(|m| (m.id, m.parent)).collect();
    let ancestors = |m: &Mount| {
        let mut out = Vec::new();
        let mut id = m.parent;
        while !out.contains(&id) {
            out.push(id);
            match parent.get(&id) {
                Some(&p) => id = p,
                None => break,
            }
        }
        out
    };
    let keep: Vec<bool> = mounts
        .iter()
        .map(|m| {
            if !wanted(m) {
                return false;
            }
            let above = ancestors(m);
            !mounts.iter().any(|other| {
                other.id != m.id
                    && m.mountpoint.starts_with(&other.mountpoint)
                    && !above.contains(&other.id)
            })
        })
        .collect();
    mounts
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(m, _)| m)
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
pub fn unescape(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                    22 1 0:21 / /proc rw,nosuid - proc proc rw\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, 36);
        assert_eq!(m[0].root, PathBuf::from("/mnt1"));
        assert_eq!(m[0].mountpoint, PathBuf::from("/mnt two"));
        assert_eq!(m[0].optional, ["master:1", "shared:2"]);
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[0].superopts, "rw,errors=continue");
        assert_eq!(m[1].fstype, "proc");
        assert_eq!(m[1].parent, 1);
        assert!(m[1].optional.is_empty());
    }

    #[test]
    fn hidden_mounts() {
        // / ; a tmpfs at /sys/fs/cgroup with cpu below it; then a second tmpfs over
        // /sys/fs/cgroup (as a throwaway namespace may mount) with a named hierarchy in it.
        let text = "1 0 0:1 / / rw - ext4 /dev/vda rw\n\
                    2 1 0:2 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    3 2 0:3 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    4 2 0:4 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    5 4 0:5 / /sys/fs/cgroup/named rw - cgroup cgroup rw,name=x\n\
                    6 1 0:6 / /proc rw - proc proc rw\n";
        let ids: Vec<u64> = reachable(parse(text), |_| true)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, [1, 4, 5, 6]);
    }
}
