//! The system calls only `rt check` makes, each asked in a way that changes nothing: with
//! arguments the kernel refuses before acting (so the errno says whether it knows the
//! call), or with an effect confined to a child that exits at once.

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::sys::CloneArgs;

/// clone3 with a NULL argument of size 0: a kernel with clone3 refuses the size (EINVAL)
/// before doing anything; one without answers ENOSYS. No process is made.
pub fn clone3_probe() -> Errno {
    // SAFETY: a NULL pointer with size 0: the kernel rejects the size without reading it.
    let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<CloneArgs>(), 0usize) };
    if r >= 0 {
        // Cannot happen (no child is made with size 0), but never leave one behind.
        let _ = super::child::reap(r as i32);
        return Errno::UnknownErrno;
    }
    Errno::last()
}

/// clone3(CLONE_INTO_CGROUP) into the cgroup2 directory `cgroup` (an fd on it): the child
/// starts there and `_exit`s at once; it is reaped before this returns.
pub fn clone_into_cgroup(cgroup: RawFd) -> Result<(), Errno> {
    // SAFETY: rt check keeps the fd open while it asks.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(cgroup) };
    match crate::sys::fork_into_cgroup(fd, false)? {
        None => crate::sys::exit_now(0),
        Some(pid) => super::child::reap(pid).map(drop),
    }
}

/// move_mount with two bad fds: EBADF from a kernel that has it (Linux 5.2), ENOSYS from
/// one that has not. Nothing moves.
pub fn move_mount_probe() -> Errno {
    const EMPTY_PATHS: libc::c_uint = 0x04 | 0x40; // MOVE_MOUNT_F_ and _T_EMPTY_PATH
                                                   // SAFETY: two empty NUL-terminated paths and integer fds; -1 is never a valid fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            -1,
            c"".as_ptr(),
            -1,
            c"".as_ptr(),
            EMPTY_PATHS,
        )
    };
    if r == 0 {
        return Errno::UnknownErrno;
    }
    Errno::last()
}

/// seccomp(SECCOMP_GET_NOTIF_SIZES): the sizes of struct seccomp_notif, seccomp_notif_resp
/// and seccomp_data this kernel uses (a seccomp agent needs them).
pub fn seccomp_notif_sizes() -> Result<(u16, u16, u16), Errno> {
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: the kernel writes a struct seccomp_notif_sizes to the pointer, which is valid.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut libc::seccomp_notif_sizes,
        )
    };
    Errno::result(r).map(|_| {
        (
            sizes.seccomp_notif,
            sizes.seccomp_notif_resp,
            sizes.seccomp_data,
        )
    })
}

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the highest Landlock
/// ABI the kernel has; EOPNOTSUPP when Landlock is built in but not enabled at boot.
pub fn landlock_abi() -> Result<i64, Errno> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with this flag the kernel reads no ruleset (NULL, size 0) and makes no fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    Errno::result(r)
}
