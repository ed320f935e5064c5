//! The `mounts` of config.json: option parsing and mounting onto a target that was
//! resolved inside the rootfs.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::error::{Error, Result};
use crate::rootfs::path::{fd_path, Kind, Root};
use crate::spec::Mount;

/// A mount's options split the way mount(2) wants them.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// MS_* flags given with the mount (ro, nosuid, …; MS_BIND|MS_REC for rbind).
    pub flags: MsFlags,
    /// Flags that were cleared explicitly (rw, suid, …), for remounts.
    pub cleared: MsFlags,
    /// Propagation changes (private, rslave, …), applied after the mount.
    pub propagation: Vec<MsFlags>,
    /// Everything else, handed to the filesystem as data (mode=755,size=64k…).
    pub data: String,
}

/// The flag options: (name, flags set, flags cleared).
const FLAG_OPTIONS: &[(&str, MsFlags, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY, MsFlags::empty()),
    ("rw", MsFlags::empty(), MsFlags::MS_RDONLY),
    ("nosuid", MsFlags::MS_NOSUID, MsFlags::empty()),
    ("suid", MsFlags::empty(), MsFlags::MS_NOSUID),
    ("nodev", MsFlags::MS_NODEV, MsFlags::empty()),
    ("dev", MsFlags::empty(), MsFlags::MS_NODEV),
    ("noexec", MsFlags::MS_NOEXEC, MsFlags::empty()),
    ("exec", MsFlags::empty(), MsFlags::MS_NOEXEC),
    ("sync", MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
    ("async", MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
    ("dirsync", MsFlags::MS_DIRSYNC, MsFlags::empty()),
    ("remount", MsFlags::MS_REMOUNT, MsFlags::empty()),
    ("mand", MsFlags::MS_MANDLOCK, MsFlags::empty()),
    ("nomand", MsFlags::empty(), MsFlags::MS_MANDLOCK),
    ("atime", MsFlags::empty(), MsFlags::MS_NOATIME),
    ("noatime", MsFlags::MS_NOATIME, MsFlags::empty()),
    ("diratime", MsFlags::empty(), MsFlags::MS_NODIRATIME),
    ("nodiratime", MsFlags::MS_NODIRATIME, MsFlags::empty()),
    ("relatime", MsFlags::MS_RELATIME, MsFlags::empty()),
    ("norelatime", MsFlags::empty(), MsFlags::MS_RELATIME),
    ("strictatime", MsFlags::MS_STRICTATIME, MsFlags::empty()),
    ("nostrictatime", MsFlags::empty(), MsFlags::MS_STRICTATIME),
    ("bind", MsFlags::MS_BIND, MsFlags::empty()),
    (
        "rbind",
        MsFlags::MS_BIND.union(MsFlags::MS_REC),
        MsFlags::empty(),
    ),
    ("silent", MsFlags::MS_SILENT, MsFlags::empty()),
    ("loud", MsFlags::empty(), MsFlags::MS_SILENT),
];

/// Every option name rt understands (flags and propagation), for `rt features`.
pub fn known_options() -> Vec<&'static str> {
    let mut names: Vec<_> = FLAG_OPTIONS.iter().map(|(n, _, _)| *n).collect();
    names.extend(PROPAGATIONS.iter().map(|(n, _)| *n));
    names
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
    };
    let mut data = Vec::new();
    for opt in opts {
        let Some(&(_, set, clear)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == opt) else {
            if let Some(p) = propagation(opt) {
                o.propagation.push(p);
            } else if !opt.is_empty() {
                data.push(opt.as_str());
            }
            continue;
        };
        o.flags = (o.flags | set) - clear;
        o.cleared = (o.cleared | clear) - set;
    }
    o.data = data.join(",");
    o
}

/// Mount propagation by name, as in `rootfsPropagation` and mount options.
pub fn propagation(name: &str) -> Option<MsFlags> {
    PROPAGATIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

const PROPAGATIONS: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Change the flags or the propagation of an existing mount (mount(2) without source,
/// type or data).
pub fn change<P: ?Sized + nix::NixPath>(target: &P, flags: MsFlags) -> nix::Result<()> {
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// A bind mount's source on the host: relative sources are relative to the bundle.
pub fn bind_source(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    let src = m.source.as_deref()?;
    Some(if src.starts_with('/') {
        PathBuf::from(src)
    } else {
        bundle.join(src)
    })
}

/// Is this a bind mount (by type or options)?
pub fn is_bind(m: &Mount) -> bool {
    m.kind.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind")
}

/// The flags of an existing mount that an unprivileged remount must keep (the kernel locks
/// them when a user namespace is involved).
pub fn locked_flags(target: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(target) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

/// Mount `m` onto its destination, resolved inside the rootfs. `kind` says what to create
/// there if it is missing.
pub fn mount_one(root: &Root, m: &Mount, source: Option<&Path>, kind: Kind) -> Result<()> {
    let dest = Path::new(&m.destination);
    let fd = root
        .ensure(dest, kind)
        .map_err(|e| e.context(format!("mounts: destination {}", m.destination)))?;
    let target = fd_path(&fd);
    // Remounts and propagation changes must reach the new mount, which sits on top of what
    // `fd` refers to: resolve the destination again for them.
    let reopened: std::cell::Cell<Option<std::os::fd::OwnedFd>> = std::cell::Cell::new(None);
    let mounted = || -> Result<PathBuf> {
        let fd = root
            .open_path(dest)
            .map_err(|e| Error::sys(format!("openat2 {} after mounting it", m.destination), e))?;
        let p = fd_path(&fd);
        reopened.set(Some(fd));
        Ok(p)
    };
    let o = parse_options(&m.options);
    let fstype = m.kind.as_deref().unwrap_or("");
    let what = |call: &str| {
        format!(
            "{call} {} on {} (type {fstype:?}, options {:?})",
            source.map(|s| s.display().to_string()).unwrap_or_default(),
            m.destination,
            m.options.join(",")
        )
    };
    if is_bind(m) {
        let bind = MsFlags::MS_BIND | (o.flags & MsFlags::MS_REC);
        mount(source, &target, None::<&str>, bind, None::<&str>)
            .map_err(|e| Error::sys(what("mount"), e))?;
        // A bind mount takes its flags only through a remount.
        let extra = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() || !o.cleared.is_empty() {
            let target = mounted()?;
            let flags = ((locked_flags(&target) | extra) - o.cleared)
                | MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT;
            change(&target, flags).map_err(|e| Error::sys(what("remount"), e))?;
        }
    } else {
        let data = (!o.data.is_empty()).then_some(o.data.as_str());
        let src = source
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(fstype));
        mount(Some(&src), &target, Some(fstype), o.flags, data)
            .map_err(|e| Error::sys(what("mount"), e))?;
    }
    for p in &o.propagation {
        let target = mounted()?;
        change(&target, *p)
            .map_err(|e| Error::sys(what(&format!("set propagation {p:?} of")), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[&str]) -> Options {
        parse_options(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn splits_flags_data_and_propagation() {
        let o = opts(&["nosuid", "ro", "mode=755", "size=65536k", "rslave", "rw"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        assert_eq!(o.cleared, MsFlags::MS_RDONLY);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(opts(&["rbind"]).flags, MsFlags::MS_BIND | MsFlags::MS_REC);
    }
}
