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
    /// Recursive attributes (rro, rnosuid, …): MOUNT_ATTR_* bits to set and to clear on
    /// the mount and every mount below it, with mount_setattr(AT_RECURSIVE).
    pub recursive_set: u64,
    pub recursive_clear: u64,
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
    ("iversion", MsFlags::MS_I_VERSION, MsFlags::empty()),
    ("noiversion", MsFlags::empty(), MsFlags::MS_I_VERSION),
    ("lazytime", MsFlags::MS_LAZYTIME, MsFlags::empty()),
    ("nolazytime", MsFlags::empty(), MsFlags::MS_LAZYTIME),
    ("nosymfollow", MS_NOSYMFOLLOW, MsFlags::empty()),
    ("symfollow", MsFlags::empty(), MS_NOSYMFOLLOW),
    // mount(8): rw, suid, dev, exec, auto, nouser, async: the kernel's defaults.
    ("defaults", MsFlags::empty(), MsFlags::empty()),
];

/// MS_NOSYMFOLLOW (Linux 5.10), which nix does not name.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Options that mean something to mount(8) only (fstab and the mount helper), never to
/// the kernel: accepted and left out, as mount(8) does.
const USERSPACE_OPTIONS: &[&str] = &[
    "auto", "noauto", "nofail", "user", "nouser", "users", "owner", "group", "_netdev",
];

/// Options that ask for an idmapped mount (idmap.rs): never handed to mount(2).
const IDMAP_OPTIONS: &[&str] = &["idmap", "ridmap"];

/// MOUNT_ATTR_* bits (linux/mount.h).
const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;
const ATTR_ATIME_MASK: u64 = 0x70;
const ATTR_RELATIME: u64 = 0x0;
const ATTR_NOATIME: u64 = 0x10;
const ATTR_STRICTATIME: u64 = 0x20;
const ATTR_NODIRATIME: u64 = 0x80;
const ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// The recursive options (runtime-spec 1.1, runc 1.1): (name, bits set, bits cleared).
const RECURSIVE_OPTIONS: &[(&str, u64, u64)] = &[
    ("rro", ATTR_RDONLY, 0),
    ("rrw", 0, ATTR_RDONLY),
    ("rnosuid", ATTR_NOSUID, 0),
    ("rsuid", 0, ATTR_NOSUID),
    ("rnodev", ATTR_NODEV, 0),
    ("rdev", 0, ATTR_NODEV),
    ("rnoexec", ATTR_NOEXEC, 0),
    ("rexec", 0, ATTR_NOEXEC),
    ("rnodiratime", ATTR_NODIRATIME, 0),
    ("rdiratime", 0, ATTR_NODIRATIME),
    ("rnosymfollow", ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, ATTR_NOSYMFOLLOW),
];

/// The recursive access-time options: one mode replaces the others (the kernel takes
/// them as an enum under MOUNT_ATTR__ATIME). atime and norelatime mean the kernel's
/// default (relatime) and strictatime, as for mount(8).
const RECURSIVE_ATIME: &[(&str, u64)] = &[
    ("rnoatime", ATTR_NOATIME),
    ("ratime", ATTR_RELATIME),
    ("rrelatime", ATTR_RELATIME),
    ("rnorelatime", ATTR_STRICTATIME),
    ("rstrictatime", ATTR_STRICTATIME),
    ("rnostrictatime", ATTR_RELATIME),
];

/// Every option name rt understands (flags and propagation), for `rt features`.
pub fn known_options() -> Vec<&'static str> {
    let mut names: Vec<_> = FLAG_OPTIONS.iter().map(|(n, _, _)| *n).collect();
    names.extend(PROPAGATIONS.iter().map(|(n, _)| *n));
    names.extend(RECURSIVE_OPTIONS.iter().map(|(n, _, _)| *n));
    names.extend(RECURSIVE_ATIME.iter().map(|(n, _)| *n));
    names.extend(USERSPACE_OPTIONS);
    names.extend(IDMAP_OPTIONS);
    names
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        recursive_set: 0,
        recursive_clear: 0,
    };
    let mut data = Vec::new();
    for opt in opts {
        let Some(&(_, set, clear)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == opt) else {
            if let Some(p) = propagation(opt) {
                o.propagation.push(p);
            } else if let Some(&(_, set, clear)) =
                RECURSIVE_OPTIONS.iter().find(|(n, _, _)| *n == opt)
            {
                o.recursive_set = (o.recursive_set | set) & !clear;
                o.recursive_clear = (o.recursive_clear | clear) & !set;
            } else if let Some(&(_, mode)) = RECURSIVE_ATIME.iter().find(|(n, _)| *n == opt) {
                o.recursive_clear |= ATTR_ATIME_MASK;
                o.recursive_set = (o.recursive_set & !ATTR_ATIME_MASK) | mode;
            } else if USERSPACE_OPTIONS.contains(&opt.as_str())
                || IDMAP_OPTIONS.contains(&opt.as_str())
                || opt.starts_with("x-")
            {
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
    place(root, m, source, kind, None)
}

/// Like [`mount_one`] for a bind (only binds are idmapped: `idmap::validate`), but what
/// goes onto the destination is `tree`, a detached mount the parent prepared (an idmapped
/// clone of `source`); then the same flags, propagation and recursive options as any bind.
pub fn attach_one(
    root: &Root,
    m: &Mount,
    tree: &std::os::fd::OwnedFd,
    source: Option<&Path>,
    kind: Kind,
) -> Result<()> {
    place(root, m, source, kind, Some(tree))
}

fn place(
    root: &Root,
    m: &Mount,
    source: Option<&Path>,
    kind: Kind,
    tree: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    let dest = Path::new(&m.destination);
    let fd = root
        .ensure_mount_target(dest, kind)
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
        match tree {
            // Onto the very directory `fd` holds: no path is looked up again.
            Some(tree) => crate::sys::move_mount_onto(
                std::os::fd::AsRawFd::as_raw_fd(tree),
                std::os::fd::AsRawFd::as_raw_fd(&fd),
            )
            .map_err(|e| Error::sys(what("move_mount of the idmapped clone of"), e))?,
            None => mount(source, &target, None::<&str>, bind, None::<&str>)
                .map_err(|e| Error::sys(what("mount"), e))?,
        }
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
    if o.recursive_set != 0 || o.recursive_clear != 0 {
        mounted()?;
        let fd = reopened.take().expect("mounted() keeps the fd");
        crate::sys::mount_setattr(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            true,
            o.recursive_set,
            o.recursive_clear,
        )
        .map_err(|e| {
            Error::sys(
                what(&format!(
                    "mount_setattr(AT_RECURSIVE, set {:#x}, clear {:#x}) for the recursive options of",
                    o.recursive_set, o.recursive_clear
                )),
                e,
            )
        })?;
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

    #[test]
    fn recursive_and_mount8_options() {
        let o = opts(&[
            "rbind", "rro", "rnosuid", "rnoatime", "rdev", "nofail", "defaults",
        ]);
        assert_eq!(o.recursive_set, ATTR_RDONLY | ATTR_NOSUID | ATTR_NOATIME);
        assert_eq!(o.recursive_clear, ATTR_NODEV | ATTR_ATIME_MASK);
        assert_eq!(o.data, "");
        // The last access-time mode wins; rrw undoes rro.
        let o = opts(&["rro", "rnoatime", "rstrictatime", "rrw"]);
        assert_eq!(o.recursive_set, ATTR_STRICTATIME);
        assert_eq!(o.recursive_clear, ATTR_ATIME_MASK | ATTR_RDONLY);
        let o = opts(&["iversion", "nosymfollow", "x-systemd.automount"]);
        assert_eq!(o.flags, MsFlags::MS_I_VERSION | MS_NOSYMFOLLOW);
        assert_eq!(o.data, "");
    }
}
