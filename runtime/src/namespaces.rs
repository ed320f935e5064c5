//! Namespaces: which to create, which to join (by path), and in which order.

use std::fs::File;
use std::os::fd::AsFd;

use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Context, Error, Result};
use crate::spec::{Spec, NAMESPACE_TYPES};

pub fn flag(kind: &str) -> CloneFlags {
    match kind {
        "user" => CloneFlags::CLONE_NEWUSER,
        "pid" => CloneFlags::CLONE_NEWPID,
        "network" => CloneFlags::CLONE_NEWNET,
        "ipc" => CloneFlags::CLONE_NEWIPC,
        "uts" => CloneFlags::CLONE_NEWUTS,
        "cgroup" => CloneFlags::CLONE_NEWCGROUP,
        "mount" => CloneFlags::CLONE_NEWNS,
        // CLONE_NEWTIME is not in nix's CloneFlags on every version.
        "time" => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        _ => CloneFlags::empty(),
    }
}

/// The namespace types in `flags`, in the spec's order: "pid,ipc,uts,mount".
pub fn kinds(flags: CloneFlags) -> String {
    let named: Vec<&str> = NAMESPACE_TYPES
        .iter()
        .copied()
        .filter(|&kind| !flag(kind).is_empty() && flags.contains(flag(kind)))
        .collect();
    named.join(",")
}

/// A namespace to join, opened by the parent so a bad path fails before anything starts.
pub struct Join {
    pub kind: &'static str,
    pub path: String,
    pub file: File,
}

pub struct NamespacePlan {
    /// Joined namespaces in join order (user first).
    pub joins: Vec<Join>,
    /// Namespaces to create, as clone flags.
    pub new: CloneFlags,
}

impl NamespacePlan {
    pub fn from_spec(spec: &Spec) -> Result<NamespacePlan> {
        let mut joins = Vec::new();
        let mut new = CloneFlags::empty();
        for kind in NAMESPACE_TYPES {
            let Some(ns) = spec.linux().namespaces.iter().find(|n| n.kind == kind) else {
                continue;
            };
            match ns.path.as_deref() {
                Some(path) if !path.is_empty() => {
                    let file = open_namespace(kind, path)?;
                    joins.push(Join {
                        kind,
                        path: path.to_string(),
                        file,
                    });
                }
                _ => {
                    if kind == "time" && !std::path::Path::new("/proc/self/ns/time").exists() {
                        return Err(Error::msg(
                            "linux.namespaces: time namespaces are not supported by this kernel",
                        ));
                    }
                    new |= flag(kind);
                }
            }
        }
        Ok(NamespacePlan { joins, new })
    }

    pub fn creates(&self, kind: &str) -> bool {
        self.new.contains(flag(kind))
    }

    pub fn join_of(&self, kind: &str) -> Option<&Join> {
        self.joins.iter().find(|j| j.kind == kind)
    }
}

/// Open a namespace file given by path. Non-blocking, so that a FIFO there fails instead
/// of hanging `create` until some writer comes (found by the fuzz tests), and checked to
/// be a namespace (nsfs) so that any other file is refused naming the field.
fn open_namespace(kind: &str, path: &str) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ctx(|| format!("linux.namespaces: open {kind} namespace path {path}"))?;
    let fs = nix::sys::statfs::fstatfs(&file).map_err(|e| {
        Error::sys(
            format!("linux.namespaces: fstatfs {kind} namespace path {path}"),
            e,
        )
    })?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(Error::msg(format!(
            "linux.namespaces: {kind} namespace path {path} is not a namespace file (such as /proc/PID/ns/{})",
            if kind == "network" { "net" } else if kind == "mount" { "mnt" } else { kind }
        )));
    }
    Ok(file)
}

pub fn join(j: &Join) -> Result<()> {
    setns(j.file.as_fd(), flag(j.kind)).ctx(|| format!("setns {} namespace {}", j.kind, j.path))
}

/// rt in another pid namespace for one fork. A pid namespace applies to children only:
/// rt enters it (`enter` does the setns), forks the process straight in, and goes back to
/// its own with `leave` (in the parent; the child never returns to rt's code).
pub struct PidNsForFork {
    own: File,
}

impl PidNsForFork {
    pub fn enter(enter: impl FnOnce() -> Result<()>) -> Result<PidNsForFork> {
        let own = File::open("/proc/self/ns/pid").ctx(|| "open /proc/self/ns/pid")?;
        enter()?;
        Ok(PidNsForFork { own })
    }

    pub fn leave(self) -> Result<()> {
        setns(self.own.as_fd(), CloneFlags::CLONE_NEWPID)
            .ctx(|| "setns back to rt's own pid namespace")
    }
}

pub fn create(flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags).ctx(|| format!("unshare({flags:?})"))
}

/// A new network namespace starts with `lo` down; programs expect it up (runc does this).
pub fn loopback_up() -> Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "socket(AF_INET) to configure lo")?;
    // SAFETY: an all-zero ifreq is valid; we fill in the name and read/write the flags
    // through the SIOC[GS]IFFLAGS ioctls, which take a pointer to it.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Error::sys(
                "ioctl SIOCGIFFLAGS lo",
                nix::errno::Errno::last(),
            ));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Error::sys(
                "ioctl SIOCSIFFLAGS lo up",
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}
