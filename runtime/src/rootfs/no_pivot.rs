//! `--no-pivot`: the rootfs is moved over `/` and chrooted into, for a rootfs that
//! pivot_root refuses (one on an initramfs). The host's mounts then stay in the container's
//! mount namespace, under the moved rootfs: no path reaches them, but the kernel still
//! counts them. A fully visible procfs or sysfs among them lets a user namespace made in
//! the container mount a fresh, unmasked procfs or sysfs (the kernel's mount_too_revealing
//! check passes because one is "already visible"). So they go first, as runc does too.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot};

use super::mounts;
use crate::error::{Context, Error, Result};

pub fn enter(rootfs: &Path) -> Result<()> {
    hide_host_proc_and_sys(rootfs)?;
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .ctx(|| "mount --move rootfs to / (no-pivot)")?;
    chroot(".").ctx(|| "chroot .")?;
    chdir("/").ctx(|| "chdir /")
}

/// Detach every whole procfs and sysfs mounted outside the rootfs; where the kernel will
/// not let one go (a mount locked by a user namespace), cover it with an empty tmpfs so it
/// no longer counts as fully visible.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let revealing: Vec<_> = crate::mountinfo::read_own()?
        .into_iter()
        .filter(|m| matches!(m.fstype.as_str(), "proc" | "sysfs"))
        .filter(|m| m.root == Path::new("/") && !m.mountpoint.starts_with(rootfs))
        .collect();
    for m in revealing {
        let p = &m.mountpoint;
        log::debug!(
            "no-pivot: detach the host's {} at {}",
            m.fstype,
            p.display()
        );
        // Our unmount must not propagate back to the host's namespace.
        match mounts::change(p, MsFlags::MS_SLAVE | MsFlags::MS_REC) {
            Ok(()) => {}
            // Gone with a parent detached a moment ago (e.g. /proc/sys/fs/binfmt_misc).
            Err(Errno::ENOENT | Errno::EINVAL) if !p.exists() => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("no-pivot: make {} a slave before detaching it", p.display()),
                    e,
                ))
            }
        }
        match umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::EPERM) => mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0,mode=000"),
            )
            .ctx(|| format!("no-pivot: cover the host's {} at {}", m.fstype, p.display()))?,
            Err(e) => {
                return Err(Error::sys(
                    format!(
                        "no-pivot: detach the host's {} at {}",
                        m.fstype,
                        p.display()
                    ),
                    e,
                ))
            }
        }
    }
    Ok(())
}
