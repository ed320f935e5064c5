//! What this kernel's seccomp offers, asked without installing anything: which actions it
//! takes (SECCOMP_GET_ACTION_AVAIL) and which filter flags it knows (a NULL program with
//! the flag: EFAULT means the flag passed the kernel's checks, EINVAL that it did not, as
//! libseccomp probes them). `rt features` and `rt check` both answer from here.

use nix::errno::Errno;

use super::profile;

/// Every filter flag the kernel may know, with its bits as probed (WAIT_KILLABLE_RECV is
/// only valid together with NEW_LISTENER, so it is asked with it).
pub const FILTER_FLAGS: [(&str, libc::c_ulong); 6] = [
    ("SECCOMP_FILTER_FLAG_TSYNC", libc::SECCOMP_FILTER_FLAG_TSYNC),
    ("SECCOMP_FILTER_FLAG_LOG", libc::SECCOMP_FILTER_FLAG_LOG),
    (
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    ),
    (
        "SECCOMP_FILTER_FLAG_NEW_LISTENER",
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
    ),
    (
        "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
        libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
    ),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    ),
];

/// seccomp(SECCOMP_SET_MODE_FILTER, `flags`, NULL): the errno says whether the kernel
/// knows the flags (EFAULT: yes, it got as far as reading the NULL program; EINVAL: no;
/// ENOSYS: no seccomp at all). Nothing is installed whatever the answer.
pub fn probe_filter_flags(flags: libc::c_ulong) -> Errno {
    // SAFETY: with a NULL program the kernel only validates the flags and fails on the
    // copy of the program; nothing is installed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::c_void>(),
        )
    };
    if r >= 0 {
        return Errno::UnknownErrno;
    }
    Errno::last()
}

/// The flag named `name` of [`FILTER_FLAGS`] is known to this kernel.
pub fn has_filter_flag(name: &str) -> bool {
    FILTER_FLAGS
        .iter()
        .find(|(n, _)| *n == name)
        .is_some_and(|(_, bits)| probe_filter_flags(*bits) == Errno::EFAULT)
}

/// The kernel's SECCOMP_RET_* action (no data) of an `SCMP_ACT_*` name of the spec.
pub fn action_ret(name: &str) -> Option<u32> {
    let a = profile::action_by_name(name)?;
    Some(a.ret() & libc::SECCOMP_RET_ACTION_FULL)
}

/// seccomp(SECCOMP_GET_ACTION_AVAIL) for the SECCOMP_RET_* action `ret`: Ok when the kernel
/// takes it, EOPNOTSUPP when not (ENOSYS/EINVAL: no seccomp, or older than Linux 4.14).
pub fn action_available(ret: u32) -> Result<(), Errno> {
    // SAFETY: the kernel reads one u32 from a valid pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &ret as *const u32,
        )
    };
    Errno::result(r).map(drop)
}

/// The kernel filters system calls at all: it takes SECCOMP_RET_ALLOW.
pub fn filter_available() -> bool {
    action_available(libc::SECCOMP_RET_ALLOW).is_ok()
}

/// Those of the compiler's actions that this kernel takes too.
pub fn kernel_actions() -> Vec<&'static str> {
    super::ACTIONS
        .iter()
        .copied()
        .filter(|a| action_ret(a).is_some_and(|r| action_available(r).is_ok()))
        .collect()
}

/// The flags of `linux.seccomp.flags` rt takes that this kernel knows.
pub fn supported_flags() -> Vec<&'static str> {
    super::KNOWN_FLAGS
        .iter()
        .copied()
        .filter(|f| has_filter_flag(f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_of_the_compiler_maps_to_a_kernel_action() {
        for a in super::super::ACTIONS {
            assert!(action_ret(a).is_some(), "{a}");
        }
        assert_eq!(action_ret("SCMP_ACT_ERRNO"), Some(libc::SECCOMP_RET_ERRNO));
        assert_eq!(
            action_ret("SCMP_ACT_KILL"),
            Some(libc::SECCOMP_RET_KILL_THREAD)
        );
        assert_eq!(action_ret("SCMP_ACT_BOGUS"), None);
    }

    #[test]
    fn every_known_flag_is_probed() {
        for f in super::super::KNOWN_FLAGS {
            assert!(FILTER_FLAGS.iter().any(|(n, _)| *n == f), "{f}");
        }
    }
}
