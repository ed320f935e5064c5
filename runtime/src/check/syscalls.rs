//! The newer system calls rt uses or a config may need: pidfd_open and
//! pidfd_send_signal, clone3, openat2 and each of its RESOLVE_* flags, mount_setattr,
//! open_tree and move_mount. Each is asked so that nothing changes: on rt itself (signal 0),
//! on fds the kernel refuses (-1), or on a detached mount tree closed at once.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{errno, raw, Item};
use crate::sys;

const AREA: &str = "syscalls";

/// RESOLVE_* flags of openat2 (linux/openat2.h); rt needs the first three to resolve paths
/// inside the rootfs.
const RESOLVE_FLAGS: [(&str, u64, bool); 6] = [
    ("RESOLVE_IN_ROOT", libc::RESOLVE_IN_ROOT, true),
    ("RESOLVE_NO_MAGICLINKS", libc::RESOLVE_NO_MAGICLINKS, true),
    ("RESOLVE_NO_SYMLINKS", libc::RESOLVE_NO_SYMLINKS, true),
    ("RESOLVE_NO_XDEV", libc::RESOLVE_NO_XDEV, false),
    ("RESOLVE_BENEATH", libc::RESOLVE_BENEATH, false),
    ("RESOLVE_CACHED", 0x20, false),
];

/// What rt resolves with openat2 inside the rootfs.
const ROOTFS_PATHS: [&str; 4] = [
    "root.path",
    "mounts[].destination",
    "linux.maskedPaths",
    "linux.readonlyPaths",
];

pub fn probe(rootfs: &Path) -> Vec<Item> {
    let mut items = pidfd();
    items.push(clone3());
    items.extend(openat2());
    items.push(mount_setattr());
    items.push(open_tree(rootfs));
    items.push(move_mount());
    items
}

fn pidfd() -> Vec<Item> {
    let me = nix::unistd::getpid().as_raw();
    let open = Item::new(
        AREA,
        "syscall.pidfd_open",
        "pidfd_open(getpid(), 0), then close",
    )
    .affects(&["rt kill", "rt exec", "rt start"])
    .needed_by_default();
    let signal = Item::new(
        AREA,
        "syscall.pidfd_send_signal",
        "pidfd_send_signal(pidfd of rt itself, signal 0)",
    )
    .affects(&["rt kill"])
    .needed_by_default();
    let thread = Item::new(
        AREA,
        "syscall.pidfd_open.PIDFD_THREAD",
        "pidfd_open(gettid(), PIDFD_THREAD), then close (Linux 6.9)",
    );
    let mut items = Vec::new();
    match sys::pidfd_open(me) {
        Ok(fd) => {
            items.push(open.answer(true, "fd"));
            items.push(match sys::pidfd_send_signal(fd.as_raw_fd(), 0) {
                Ok(()) => signal.answer(true, "0"),
                Err(e) => signal.answer(false, errno(e)),
            });
        }
        Err(e) => {
            items.push(open.answer(false, errno(e)));
            items.push(signal.answer(false, "not asked: no pidfd"));
        }
    }
    let tid = nix::unistd::gettid().as_raw();
    items.push(
        match sys::pidfd_open_flags(tid, libc::O_EXCL as libc::c_uint) {
            Ok(_) => thread.answer(true, "fd"),
            Err(e) => thread.answer(false, errno(e)),
        },
    );
    items
}

fn clone3() -> Item {
    let e = raw::clone3_probe();
    Item::new(
        AREA,
        "syscall.clone3",
        "clone3(NULL, 0): EINVAL (the size refused) means the kernel has it, ENOSYS not",
    )
    .answer(e == Errno::EINVAL, errno(e))
}

fn openat2() -> Vec<Item> {
    let base = Item::new(
        AREA,
        "syscall.openat2",
        "openat2(fd of \"/\", \".\", O_PATH|O_DIRECTORY, resolve 0)",
    )
    .affects(&ROOTFS_PATHS)
    .needed_by_default();
    let root = match nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return vec![base.answer(false, format!("open /: {}", errno(e)))],
    };
    let ask = |resolve: u64| {
        sys::openat2_once(
            root.as_raw_fd(),
            Path::new("."),
            libc::O_PATH | libc::O_DIRECTORY,
            resolve,
        )
        .map(drop)
    };
    let mut items = vec![match ask(0) {
        Ok(()) => base.answer(true, "fd"),
        Err(e) => base.answer(false, errno(e)),
    }];
    for (name, bit, needed) in RESOLVE_FLAGS {
        let mut item = Item::new(
            AREA,
            format!("syscall.openat2.{name}"),
            format!(
                "openat2(fd of \"/\", \".\", O_PATH|O_DIRECTORY, {name}): EINVAL means unknown"
            ),
        );
        if needed {
            item = item.affects(&ROOTFS_PATHS).needed_by_default();
        }
        items.push(match ask(bit) {
            Ok(()) => item.answer(true, "fd"),
            // Known, but refused this lookup (RESOLVE_CACHED: "." was not in the cache).
            Err(e) if e != Errno::EINVAL && e != Errno::ENOSYS => item.answer(true, errno(e)),
            Err(e) => item.answer(false, errno(e)),
        });
    }
    items
}

fn mount_setattr() -> Item {
    let e = sys::mount_setattr_probe();
    Item::new(AREA, "syscall.mount_setattr", "mount_setattr(-1, \"\", AT_EMPTY_PATH, MOUNT_ATTR_IDMAP): ENOSYS means the kernel lacks it, any other errno that it has it")
        .affects(&["mounts[].uidMappings", "mounts[].gidMappings", "mounts[].options=idmap"])
        .answer(e != Errno::ENOSYS, errno(e))
}

fn open_tree(rootfs: &Path) -> Item {
    let item = Item::new(
        AREA,
        "syscall.open_tree",
        format!(
            "open_tree({}, OPEN_TREE_CLONE), then close: the detached copy vanishes",
            rootfs.display()
        ),
    )
    .affects(&["mounts[].uidMappings", "mounts[].options=idmap"]);
    match sys::open_tree_clone(rootfs, false) {
        Ok(_tree) => item.answer(true, "fd"),
        Err(e) => item.answer(false, errno(e)),
    }
}

fn move_mount() -> Item {
    let e = raw::move_mount_probe();
    Item::new(AREA, "syscall.move_mount", "move_mount(-1, \"\", -1, \"\", F_EMPTY_PATH|T_EMPTY_PATH): EBADF means the kernel has it, ENOSYS not")
        .affects(&["mounts[].uidMappings", "mounts[].options=idmap"])
        .answer(e == Errno::EBADF, errno(e))
}
