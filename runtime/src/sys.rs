//! Thin wrappers around the system calls that nix does not cover. Every `unsafe` block of
//! the runtime that is not a plain fork lives here, small and explained.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

pub fn cstr(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// openat2(2) with `RESOLVE_IN_ROOT`: `path` is resolved as if `root` were `/`, so no
/// symlink or `..` can lead out of it.
pub fn open_in_root(root: RawFd, path: &Path, flags: i32) -> Result<OwnedFd, Errno> {
    openat2(
        root,
        path,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// Like [`open_in_root`], but no symlink at all may be on the way (ELOOP if one is).
pub fn open_in_root_no_symlinks(root: RawFd, path: &Path, flags: i32) -> Result<OwnedFd, Errno> {
    openat2(
        root,
        path,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
    )
}

fn openat2(root: RawFd, path: &Path, flags: i32, resolve: u64) -> Result<OwnedFd, Errno> {
    loop {
        match openat2_once(root, path, flags, resolve) {
            // openat2 asks for a retry when a rename raced the lookup.
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// One openat2(2) call, close-on-exec, with the RESOLVE_* bits `resolve`; EAGAIN is
/// returned, not retried (RESOLVE_CACHED answers it for a lookup not in the cache).
pub fn openat2_once(root: RawFd, path: &Path, flags: i32, resolve: u64) -> Result<OwnedFd, Errno> {
    let c = cstr(path)?;
    // SAFETY: open_how is a plain C struct for which all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: `c` is a valid NUL-terminated string and `how` a valid open_how of the size
    // passed; the kernel returns a new fd that we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the fd was just returned by the kernel and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// MOUNT_ATTR_IDMAP (linux/mount.h): the mount takes the id mapping of `userns_fd`.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// struct mount_attr (linux/mount.h), as mount_setattr(2) reads it.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount `fd` (an O_PATH fd on its root) refers to: set the
/// MOUNT_ATTR_* bits `set`, clear `clear`, on every mount below it too when `recursive`.
pub fn mount_setattr(fd: RawFd, recursive: bool, set: u64, clear: u64) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    setattr(fd, recursive, &attr)
}

/// Give the detached mount `fd` (from [`open_tree_clone`]) the id mapping of the user
/// namespace `userns_fd`; every mount below it too when `recursive`.
pub fn mount_setattr_idmap(fd: RawFd, recursive: bool, userns_fd: RawFd) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns_fd as u64,
    };
    setattr(fd, recursive, &attr)
}

/// Change the propagation (MS_SLAVE, MS_PRIVATE…) of the mount `fd` refers to, and of
/// every mount below it when `recursive`; the only way to reach a detached tree.
pub fn mount_setattr_propagation(
    fd: RawFd,
    recursive: bool,
    propagation: u64,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation,
        userns_fd: 0,
    };
    setattr(fd, recursive, &attr)
}

/// Whether this kernel has mount_setattr(2) (Linux 5.12, the same release as idmapped
/// mounts): see [`mount_setattr_probe`].
pub fn has_mount_setattr() -> bool {
    mount_setattr_probe() != Errno::ENOSYS
}

/// mount_setattr(2) asked on fd -1: EBADF when the kernel has it, ENOSYS when not. Nothing
/// is changed either way.
pub fn mount_setattr_probe() -> Errno {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::MAX,
    };
    setattr(-1, false, &attr)
        .err()
        .unwrap_or(Errno::UnknownErrno)
}

fn setattr(fd: RawFd, recursive: bool, attr: &MountAttr) -> Result<(), Errno> {
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: an empty path with AT_EMPTY_PATH, and a valid mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// open_tree(2) flags (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;

/// open_tree(OPEN_TREE_CLONE): a detached copy of the mount at `path` (and of the mounts
/// below it when `recursive`, as rbind), held by the returned close-on-exec fd. It belongs
/// to no mount namespace until moved somewhere, and vanishes when its last fd closes.
pub fn open_tree_clone(path: &Path, recursive: bool) -> Result<OwnedFd, Errno> {
    let c = cstr(path)?;
    let flags = OPEN_TREE_CLONE
        | OPEN_TREE_CLOEXEC
        | if recursive {
            libc::AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
    // SAFETY: `c` is a valid NUL-terminated path; on success the kernel returns a new fd
    // that we own.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the fd was just returned by the kernel and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// move_mount(2) flags (linux/mount.h).
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Attach the detached mount `from` onto exactly the file or directory the fd `onto`
/// refers to (an O_PATH fd resolved inside the rootfs): no path is looked up again, so no
/// symlink swapped in meanwhile can send the mount elsewhere.
pub fn move_mount_onto(from: RawFd, onto: RawFd) -> Result<(), Errno> {
    // SAFETY: two empty paths with their EMPTY_PATH flags; plain integer fds otherwise.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            onto,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// pidfd_open(2): a handle on a process that cannot be confused with a later process that
/// reuses its pid.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    pidfd_open_flags(pid, 0)
}

/// pidfd_open(2) with flags (PIDFD_NONBLOCK, PIDFD_THREAD).
pub fn pidfd_open_flags(pid: i32, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the fd was just returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2) would".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// Mark every fd from `first` on close-on-exec, so only the ones below reach the program.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range only changes fd flags of this process.
    let r = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    Errno::result(r).map(drop)
}

fn prctl(op: i32, arg: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: the prctl operations used here take integer arguments only.
    let r = unsafe { libc::prctl(op, arg, 0, 0, 0) };
    Errno::result(r).map(drop)
}

/// The process's name (comm, at most 15 bytes), as ps and /proc/<pid>/stat show it.
pub fn set_name(name: &std::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    let r = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    Errno::result(r).map(drop)
}

pub fn set_child_subreaper() -> Result<(), Errno> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1)
}

pub fn set_keepcaps(on: bool) -> Result<(), Errno> {
    prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong)
}

pub fn set_no_new_privs() -> Result<(), Errno> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
}

pub fn set_dumpable(on: bool) -> Result<(), Errno> {
    prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong)
}

/// Kill this process when its parent dies (used for the short-lived intermediate child).
pub fn set_parent_death_signal(sig: i32) -> Result<(), Errno> {
    prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong)
}

/// setgroups(2) on the raw syscall: glibc's wrapper would try to sync all threads, and we
/// are single-threaded anyway.
pub fn setgroups(gids: &[u32]) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe a valid slice of gid_t.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) };
    Errno::result(r).map(drop)
}

/// Leave the child with no blocked signals and default dispositions, as a fresh program
/// expects (rt itself ignores SIGPIPE like every Rust program, and `run` blocks signals).
pub fn reset_signals() {
    // SAFETY: resetting dispositions and the mask has no memory-safety preconditions.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// fork(2). The caller is single-threaded (rt never starts a thread), so the child may
/// go on to run ordinary Rust code, allocations included.
pub fn fork() -> Result<Option<i32>, Errno> {
    // SAFETY: rt is single-threaded when it forks, so no lock can be held by another thread
    // in the child.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Like [`fork`], but the child becomes a child of our parent (CLONE_PARENT), as runc's
/// nsexec does: after a new pid namespace the container process is then still a child of
/// `rt`, which can wait for it without being a subreaper. The child's exit signal is ours.
pub fn fork_sibling() -> Result<Option<i32>, Errno> {
    // SAFETY: a raw clone without CLONE_VM and with no new stack is a fork: the child runs
    // on a copy of our stack. rt is single-threaded here, so no lock is held elsewhere.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match pid {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(pid as i32)),
    }
}

/// struct clone_args (linux/sched.h) up to `cgroup` (CLONE_ARGS_SIZE_VER2, Linux 5.7).
#[repr(C)]
#[derive(Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// CLONE_INTO_CGROUP (linux/sched.h, Linux 5.7).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A fork whose child is born in the cgroup2 directory `cgroup` (clone3 with
/// CLONE_INTO_CGROUP): it never runs anywhere else, and no process is moved (a move pays
/// the kernel's RCU grace period on the global threadgroup lock). With `sibling`, the
/// child becomes a child of our parent, as with [`fork_sibling`]. An error (ENOSYS or
/// E2BIG from a kernel older than 5.7, a refusal of that cgroup) makes no process.
pub fn fork_into_cgroup(
    cgroup: std::os::fd::BorrowedFd,
    sibling: bool,
) -> Result<Option<i32>, Errno> {
    use std::os::fd::AsRawFd;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP
            | if sibling {
                libc::CLONE_PARENT as u64
            } else {
                0
            },
        // CLONE_PARENT takes the parent's exit signal: clone3 wants 0 then.
        exit_signal: if sibling { 0 } else { libc::SIGCHLD as u64 },
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM and with no new stack this is a fork: the child runs on a
    // copy of our stack. rt is single-threaded here, so no lock is held elsewhere. `args`
    // is a valid clone_args of the size passed.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(pid as i32)),
    }
}

/// Read a /proc file whole, in as few reads as `expected` bytes allow. Such files say size
/// 0, and std's read_to_string then starts from a 32-byte probe and doubles: ten reads for
/// a 15 KiB mountinfo, each of which the kernel formats anew up to where it stopped.
pub fn read_proc(path: impl AsRef<Path>, expected: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(expected);
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Leave the process at once, without running destructors or atexit handlers that belong
/// to the parent's copy of the state.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Give the container its own session keyring, so keys of the host session do not leak
/// in (runc does the same unless --no-new-keyring).
pub fn join_session_keyring(name: &str) -> Result<(), Errno> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING) reads a NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
    Errno::result(r).map(drop)
}

/// kill(2) with any signal number (nix's Signal has no real-time signals).
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill(2) takes plain integers.
    Errno::result(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Close every fd from `first` on except those in `keep`. Anything inherited from the host
/// (the state directory's lock, whatever the caller leaked) would let a path like
/// `/proc/self/fd/N/..` — as process.cwd or process.args[0] — reach the host before
/// close-on-exec takes effect (CVE-2024-21626).
pub fn close_fds_except(first: i32, keep: &[i32]) -> Result<(), Errno> {
    let mut open = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?
    {
        let Ok(entry) = entry else { continue };
        if let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        {
            if fd >= first && !keep.contains(&fd) {
                open.push(fd);
            }
        }
    }
    for fd in open {
        // SAFETY: closing an fd of this process that no live object of the init uses (the
        // ones it uses are in `keep`; the read_dir handle above is closed, so EBADF on its
        // old number is harmless).
        unsafe { libc::close(fd) };
    }
    Ok(())
}
