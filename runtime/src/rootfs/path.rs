//! Paths inside the container's rootfs, resolved by the kernel with the rootfs as `/`
//! (openat2 RESOLVE_IN_ROOT): a symlink such as `/evil -> /` or `../../etc` inside the
//! rootfs can never lead a mount or a device node out of it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::sys;

/// The rootfs, held open for resolving paths in it.
pub struct Root {
    pub path: PathBuf,
    fd: OwnedFd,
}

/// What to make at a path that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open rootfs {}", path.display()), e))?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// An O_PATH fd on `inner` (a path in the container), resolved inside the rootfs.
    pub fn open_path(&self, inner: &Path) -> std::result::Result<OwnedFd, Errno> {
        sys::open_in_root(self.fd.as_raw_fd(), &relative(inner), libc::O_PATH)
    }

    /// A procfs or sysfs may only go on an ordinary directory, reached through no symlink
    /// (as runc since CVE-2019-19921: a symlink could send the mount elsewhere, over a
    /// path rt checks later). Missing is fine: it will be made a directory.
    pub fn check_plain_dir(&self, inner: &Path, fstype: &str) -> Result<()> {
        let refuse = |why: &str| {
            Err(Error::msg(format!(
                "mounts: {fstype} must be mounted on an ordinary directory, but {} in rootfs {} {why}",
                inner.display(),
                self.path.display()
            )))
        };
        match sys::open_in_root_no_symlinks(self.fd.as_raw_fd(), &relative(inner), libc::O_PATH) {
            Ok(fd) => match nix::sys::stat::fstat(&fd) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(()),
                Ok(_) => refuse("is not a directory"),
                Err(e) => Err(Error::sys(format!("fstat {}", inner.display()), e)),
            },
            Err(Errno::ENOENT) => Ok(()),
            Err(Errno::ELOOP) => refuse("is a symlink or goes through one"),
            Err(e) => Err(Error::sys(
                format!(
                    "openat2 {} in rootfs {}",
                    inner.display(),
                    self.path.display()
                ),
                e,
            )),
        }
    }

    /// Open `inner`, creating it (and its parents as directories) if missing. A dangling
    /// symlink on the way is followed inside the rootfs and its target created there.
    pub fn ensure(&self, inner: &Path, kind: Kind) -> Result<OwnedFd> {
        self.ensure_depth(inner, kind, 0)
    }

    fn ensure_depth(&self, inner: &Path, kind: Kind, depth: u32) -> Result<OwnedFd> {
        if depth > 40 {
            return Err(Error::sys(
                format!("create {} in the rootfs", inner.display()),
                Errno::ELOOP,
            ));
        }
        let what = || format!("{} in rootfs {}", inner.display(), self.path.display());
        match self.open_path(&relative(inner)) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("openat2 {}", what()), e)),
        }
        // What is missing is made along the path with its `..` taken lexically (never
        // above the rootfs, as the kernel's RESOLVE_IN_ROOT does): a dangling link such
        // as `/etc/hosts -> ../../../../host/file` is made at /host/file in the rootfs.
        let rel = lexically_clean(inner);
        let mut prefix = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        for (i, comp) in comps.iter().enumerate() {
            let Component::Normal(name) = comp else {
                continue;
            };
            let parent = self.open_dir(&prefix).map_err(|e| {
                Error::sys(
                    format!("openat2 {} (parent of {})", prefix.display(), what()),
                    e,
                )
            })?;
            prefix.push(name);
            let last = i + 1 == comps.len();
            let made = if last && kind == Kind::File {
                nix::fcntl::openat(
                    &parent,
                    *name,
                    nix::fcntl::OFlag::O_CREAT
                        | nix::fcntl::OFlag::O_EXCL
                        | nix::fcntl::OFlag::O_WRONLY
                        | nix::fcntl::OFlag::O_CLOEXEC
                        | nix::fcntl::OFlag::O_NOFOLLOW,
                    Mode::from_bits_truncate(0o644),
                )
                .map(drop)
            } else {
                nix::sys::stat::mkdirat(&parent, *name, Mode::from_bits_truncate(0o755))
            };
            match made {
                Ok(()) => {}
                Err(Errno::EEXIST) => {
                    // A dangling symlink: create what it points to, inside the rootfs.
                    if matches!(self.open_path(&prefix), Err(Errno::ENOENT)) {
                        if let Ok(target) = nix::fcntl::readlinkat(&parent, *name) {
                            let target = Path::new(&target);
                            let inner_target = if target.is_absolute() {
                                target.to_path_buf()
                            } else {
                                Path::new("/")
                                    .join(prefix.parent().unwrap_or(Path::new("")))
                                    .join(target)
                            };
                            self.ensure_depth(
                                &inner_target,
                                if last { kind } else { Kind::Dir },
                                depth + 1,
                            )?;
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::sys(
                        format!("create {} in {}", prefix.display(), what()),
                        e,
                    ))
                }
            }
        }
        self.open_path(&rel)
            .map_err(|e| Error::sys(format!("openat2 {} after creating it", what()), e))
    }

    /// [`Root::ensure`] for a mount's destination, which must not turn out to be the
    /// rootfs itself unless it says `/`: a symlink to `/..` or a `../..` in the image would
    /// otherwise cover the container's whole root with the mount, and the container would
    /// fail later, at exec, for no visible reason.
    pub fn ensure_mount_target(&self, inner: &Path, kind: Kind) -> Result<OwnedFd> {
        let fd = self.ensure(inner, kind)?;
        if relative(inner) != Path::new(".") && self.is_root(&fd) {
            return Err(Error::msg(format!(
                "resolves to the rootfs itself ({}), through a symlink or \"..\": refusing to mount over the container's whole root (say \"/\" if that is meant)",
                self.path.display()
            )));
        }
        Ok(fd)
    }

    /// Is `fd` the rootfs's top directory (same device and inode)?
    fn is_root(&self, fd: &OwnedFd) -> bool {
        match (nix::sys::stat::fstat(fd), nix::sys::stat::fstat(&self.fd)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }

    fn open_dir(&self, rel: &Path) -> std::result::Result<OwnedFd, Errno> {
        let p = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        sys::open_in_root(self.fd.as_raw_fd(), p, libc::O_PATH | libc::O_DIRECTORY)
    }
}

/// `/a/b` → `a/b`: container paths are taken relative to the rootfs.
fn relative(inner: &Path) -> PathBuf {
    let rel: PathBuf = inner
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// `inner` relative to the rootfs with `.` dropped and each `..` taking off the component
/// before it (none above the top).
fn lexically_clean(inner: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in inner.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The path through which a syscall that takes a path (mount, mknod's target…) reaches
/// exactly the file an fd refers to.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside() {
        let dir = std::env::temp_dir().join(format!("rt-path-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        std::os::unix::fs::symlink("/", dir.join("rootfs/evil")).unwrap();
        std::os::unix::fs::symlink("../../../..", dir.join("rootfs/up")).unwrap();
        let root = Root::open(&dir.join("rootfs")).unwrap();
        root.ensure(Path::new("/evil/made-by-rt-test"), Kind::Dir)
            .unwrap();
        root.ensure(Path::new("/up/x/file"), Kind::File).unwrap();
        assert!(dir.join("rootfs/made-by-rt-test").is_dir());
        assert!(dir.join("rootfs/x/file").is_file());
        assert!(!Path::new("/made-by-rt-test").exists());
        // Onto the rootfs itself only when the destination says so.
        std::os::unix::fs::symlink("/..", dir.join("rootfs/top")).unwrap();
        for dest in ["/top", "/up", "/x/..", "/evil"] {
            let err = root
                .ensure_mount_target(Path::new(dest), Kind::Dir)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("resolves to the rootfs itself"),
                "{dest}: {err}"
            );
        }
        assert!(root.ensure_mount_target(Path::new("/"), Kind::Dir).is_ok());
        assert!(root
            .ensure_mount_target(Path::new("/top/x"), Kind::Dir)
            .is_ok());
        // A dangling link whose `..`s climb past the top: made inside, at the rest.
        std::os::unix::fs::symlink("../../../../../host/f", dir.join("rootfs/x/dangling")).unwrap();
        root.ensure(Path::new("/x/dangling"), Kind::File).unwrap();
        assert!(dir.join("rootfs/host/f").is_file());
        assert_eq!(
            lexically_clean(Path::new("/a/./b/../../..")),
            Path::new(".")
        );
        assert_eq!(lexically_clean(Path::new("a/../../b/c/..")), Path::new("b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
