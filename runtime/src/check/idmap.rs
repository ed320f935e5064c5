//! Idmapped mounts on the filesystem of the rootfs (the bundle's with `-b`, else /): a
//! user namespace held by a forked helper (rt's own, as `create` makes them), a detached
//! open_tree clone of the rootfs, mount_setattr(MOUNT_ATTR_IDMAP) on the clone. The clone is
//! never attached anywhere and vanishes when closed; the helper is killed and reaped.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{errno, Item};
use crate::mountinfo::{self, Mount};
use crate::spec::IdMapping;
use crate::sys;

/// The mount `path` is on: the one with the longest mount point above it (the last such
/// in mount order, as the one mounted over the others is what a path reaches).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts.iter().filter(|m| path.starts_with(&m.mountpoint)) {
        if best.is_none_or(|b| m.mountpoint.as_os_str().len() >= b.mountpoint.as_os_str().len()) {
            best = Some(m);
        }
    }
    best
}

/// Returns the probed filesystem in words, and the item.
pub fn probe(rootfs: &Path, from_bundle: bool) -> (String, Item) {
    let path = std::fs::canonicalize(rootfs).unwrap_or_else(|_| PathBuf::from(rootfs));
    let mounts = mountinfo::read_own().unwrap_or_default();
    let fstype = mount_of(&mounts, &path)
        .map(|m| format!("{} (mounted at {})", m.fstype, m.mountpoint.display()))
        .unwrap_or_else(|| "unknown filesystem".into());
    let whose = if from_bundle {
        "the bundle's rootfs"
    } else {
        "no -b bundle given"
    };
    let fs = format!("{} ({whose}): {fstype}", path.display());
    let item = Item::new(
        "mounts",
        "mount.idmap",
        format!("{fs}: open_tree(OPEN_TREE_CLONE) of it, mount_setattr(MOUNT_ATTR_IDMAP) with the user namespace of a forked helper (0 -> 65534, size 1); the clone is closed unattached, the helper reaped"),
    )
    .affects(&["mounts[].uidMappings", "mounts[].gidMappings", "mounts[].options=idmap", "mounts[].options=ridmap"]);
    (fs, answer(item, &path))
}

fn answer(item: Item, path: &Path) -> Item {
    if crate::rootless::is_rootless() {
        return item.answer(
            false,
            "not asked: idmapping a host filesystem needs the host's root",
        );
    }
    let map = [IdMapping {
        container_id: 0,
        host_id: 65534,
        size: 1,
    }];
    let userns = match crate::rootfs::idmap::helper_namespace(&map, &map, "rt check") {
        Ok(fd) => fd,
        Err(e) => return item.answer(false, format!("user namespace helper: {e}")),
    };
    let tree = match sys::open_tree_clone(path, false) {
        Ok(t) => t,
        Err(e) => return item.answer(false, format!("open_tree: {}", errno(e))),
    };
    match sys::mount_setattr_idmap(tree.as_raw_fd(), false, userns.as_raw_fd()) {
        Ok(()) => item.answer(true, "idmapped"),
        Err(e) => item.answer(false, format!("mount_setattr: {}", errno(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_mount_holds_the_path() {
        let mounts = mountinfo::parse(
            "1 0 8:1 / / rw - ext4 /dev/vda rw\n\
             2 1 0:5 / /tmp rw - tmpfs tmpfs rw\n\
             3 2 0:6 / /tmp/x rw - overlay overlay rw\n",
        );
        let fs = |p: &str| mount_of(&mounts, Path::new(p)).map(|m| m.fstype.as_str());
        assert_eq!(fs("/tmp/x/rootfs"), Some("overlay"));
        assert_eq!(fs("/tmp/xy"), Some("tmpfs"));
        assert_eq!(fs("/work"), Some("ext4"));
    }
}
