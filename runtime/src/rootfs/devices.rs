//! /dev inside the container: the default devices every container gets, `linux.devices`,
//! and the conventional symlinks. In a user namespace mknod is not allowed, so the host's
//! device nodes are bind-mounted instead (as runc does).

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::{mknodat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

use crate::error::{Error, Result};
use crate::rootfs::path::{fd_path, Kind, Root};
use crate::spec::Device;

/// The devices the runtime-spec says every Linux container has.
pub fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: format!("/dev/{name}"),
        kind: "c".into(),
        major,
        minor,
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(0),
    })
    .collect()
}

/// The default devices, overridden by `listed` (linux.devices) entries of the same path,
/// then the rest of `listed`.
pub fn with_defaults(listed: &[Device]) -> Vec<Device> {
    let mut out: Vec<_> = defaults()
        .into_iter()
        .filter(|d| !listed.iter().any(|l| l.path == d.path))
        .collect();
    out.extend(listed.iter().cloned());
    out
}

/// Make the default devices and `listed` (linux.devices). A file the rootfs already has
/// where a listed device goes must be that device (runtime-spec: an error otherwise); a
/// default device replaces whatever is there.
pub fn create(root: &Root, listed: &[Device], in_userns: bool) -> Result<()> {
    for dev in &with_defaults(listed) {
        if in_userns {
            bind_host_device(root, dev)?;
        } else {
            let strict = listed.iter().any(|l| l.path == dev.path);
            make_node(root, dev, strict)?;
        }
    }
    Ok(())
}

fn make_node(root: &Root, dev: &Device, strict: bool) -> Result<()> {
    let path = Path::new(&dev.path);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::msg(format!(
            "linux.devices: bad path {:?}",
            dev.path
        )));
    };
    let kind = match dev.kind.as_str() {
        "c" | "u" => SFlag::S_IFCHR,
        "b" => SFlag::S_IFBLK,
        "p" => SFlag::S_IFIFO,
        other => {
            return Err(Error::msg(format!(
                "linux.devices: {}: unknown type {other:?}",
                dev.path
            )))
        }
    };
    let dir = root.ensure(parent, Kind::Dir)?;
    let mode = Mode::from_bits_truncate(dev.file_mode.unwrap_or(0o666) & 0o7777);
    let devno = nix::sys::stat::makedev(dev.major as u64, dev.minor as u64);
    let existing =
        nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok();
    match existing {
        Some(st) if strict => {
            let same_type = st.st_mode & libc::S_IFMT == kind.bits();
            let same_number = kind == SFlag::S_IFIFO || st.st_rdev == devno;
            if !(same_type && same_number) {
                return Err(Error::msg(format!(
                    "linux.devices: {} exists in the rootfs and is not the requested device ({} {}:{}): mode {:o}, device {}:{}",
                    dev.path,
                    dev.kind,
                    dev.major,
                    dev.minor,
                    st.st_mode,
                    libc::major(st.st_rdev),
                    libc::minor(st.st_rdev)
                )));
            }
            // The right device already: it only gets the mode and owner asked for.
            nix::sys::stat::fchmodat(
                &dir,
                name,
                mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| Error::sys(format!("chmod {}", dev.path), e))?;
            return chown_node(&dir, name, dev);
        }
        // Replace whatever the rootfs has there (never following a symlink: unlinkat).
        Some(_) => {
            let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        None => {}
    }
    mknodat(&dir, name, kind, mode, devno).map_err(|e| {
        Error::sys(
            format!(
                "mknod {} ({} {}:{})",
                dev.path, dev.kind, dev.major, dev.minor
            ),
            e,
        )
    })?;
    chown_node(&dir, name, dev)
}

fn chown_node(dir: &std::os::fd::OwnedFd, name: &std::ffi::OsStr, dev: &Device) -> Result<()> {
    fchownat(
        dir,
        name,
        dev.uid.map(Uid::from_raw),
        dev.gid.map(Gid::from_raw),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::sys(format!("chown {}", dev.path), e))
}

/// In a user namespace no device node can be made: the host's node of the same path is
/// bind-mounted, and it must be the device the config names.
fn bind_host_device(root: &Root, dev: &Device) -> Result<()> {
    let host = PathBuf::from(&dev.path);
    let mut errno = None;
    let why = match nix::sys::stat::stat(&host) {
        Err(e) => {
            errno = Some(e);
            Some(crate::error::describe(e))
        }
        Ok(st) => {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            let want = match dev.kind.as_str() {
                "b" => SFlag::S_IFBLK,
                "p" => SFlag::S_IFIFO,
                _ => SFlag::S_IFCHR,
            };
            let (major, minor) = (
                nix::sys::stat::major(st.st_rdev) as i64,
                nix::sys::stat::minor(st.st_rdev) as i64,
            );
            let same = kind == want
                && (want == SFlag::S_IFIFO || (major, minor) == (dev.major, dev.minor));
            (!same).then(|| format!("the host's is not {} {}:{}", dev.kind, dev.major, dev.minor))
        }
    };
    if let Some(why) = why {
        let err = Error::msg(format!(
            "linux.devices: {}: in a user namespace devices cannot be made, only bind-mounted from the host's {}: {why}",
            dev.path, dev.path
        ))
        .with_path(host.display());
        return Err(match errno {
            Some(e) => err.with_syscall("stat").with_errno(e),
            None => err,
        });
    }
    let target = root.ensure(Path::new(&dev.path), Kind::File)?;
    nix::mount::mount(
        Some(&host),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        Error::sys(
            format!("bind mount host device {} into the container", dev.path),
            e,
        )
    })
}

/// /dev/fd, /dev/std{in,out,err}, /dev/ptmx (→ the container's devpts) and /dev/core.
pub fn symlinks(root: &Root) -> Result<()> {
    let dev = root.ensure(Path::new("/dev"), Kind::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlinkat(target, &dev, name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("symlink /dev/{name} -> {target}"), e)),
        }
    }
    // /dev/ptmx must reach the container's own devpts instance.
    let _ = nix::unistd::unlinkat(&dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
    symlinkat("pts/ptmx", &dev, "ptmx").map_err(|e| Error::sys("symlink /dev/ptmx -> pts/ptmx", e))
}
