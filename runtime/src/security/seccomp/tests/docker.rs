//! Docker's default profile, as Docker renders it into config.json.

use serde_json::json;

use super::*;

#[test]
fn docker_profile_compiles() {
    let p = plan_of(docker());
    assert!(!p.needs_listener());
    assert!(p.instructions() > 300 && p.instructions() <= 4096, "{p:?}");
}

#[test]
fn docker_profile_denies_and_allows() {
    let p = plan_of(docker());
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let null_fd = null.as_raw_fd() as u64;
    let r = results(in_child(&p, || {
        let mut o = [0; N];
        o[0] = sys(libc::SYS_unshare, [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]);
        let (src, target, fs) = (c"none", c"/nonexistent-rt-seccomp-test", c"tmpfs");
        o[1] = sys(
            libc::SYS_mount,
            [
                src.as_ptr() as u64,
                target.as_ptr() as u64,
                fs.as_ptr() as u64,
                0,
                0,
                0,
            ],
        );
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
        o[2] = sys(libc::SYS_keyctl, [0, -3i64 as u64, 0, 0, 0, 0]);
        o[3] = sys0(libc::SYS_getpid);
        o[4] = sys(libc::SYS_write, [null_fd, c"x".as_ptr() as u64, 1, 0, 0, 0]);
        // The profile answers clone3 with ENOSYS (errnoRet 38).
        o[5] = sys0(libc::SYS_clone3);
        // Not in the profile and older than its newest syscall: the default action.
        o[6] = sys(libc::SYS_mount_setattr, [u64::MAX, 0, 0, 0, 0, 0]);
        // cachestat (451, Linux 6.5) is newer than the newest syscall the profile names.
        o[7] = sys(451, [u64::MAX, 0, 0, 0, 0, 0]);
        o[8] = sys(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]);
        o[9] = sys(libc::SYS_personality, [6, 0, 0, 0, 0, 0]);
        o[10] = sys0(libc::SYS_getppid);
        o
    }));
    assert_eq!(
        &r[..3],
        &[EPERM, EPERM, EPERM],
        "unshare, mount, keyctl: {r:?}"
    );
    assert!(r[3] > 0, "getpid: {r:?}");
    assert_eq!(r[4], 1, "write: {r:?}");
    assert_eq!(r[5], ENOSYS, "clone3: {r:?}");
    assert_eq!(r[6], EPERM, "mount_setattr: {r:?}");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(r[7], ENOSYS, "cachestat gets the -ENOSYS stub: {r:?}");
    assert!(r[8] >= 0, "personality(0xffffffff) is allowed: {r:?}");
    assert_eq!(r[9], EPERM, "personality(6) is not: {r:?}");
    assert_eq!(r[10], i64::from(std::process::id()), "getppid: {r:?}");
}

/// A 32-bit x86 syscall from this 64-bit process (int 0x80), integer arguments only.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, a1: u32) -> i64 {
    let ret: u32;
    // SAFETY: the i386 syscall ABI with integer arguments. rbx cannot be an asm operand,
    // so the first argument is swapped in and out of it; r8-r11 may be clobbered.
    unsafe {
        std::arch::asm!(
            "xchg {b}, rbx",
            "int 0x80",
            "xchg {b}, rbx",
            b = inout(reg) u64::from(a1) => _,
            inlateout("eax") nr => ret,
            in("ecx") 0u32,
            in("edx") 0u32,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    i64::from(ret as i32)
}

#[cfg(target_arch = "x86_64")]
fn x32(nr: libc::c_long) -> libc::c_long {
    nr | arch::X32_SYSCALL_BIT as libc::c_long
}

#[test]
#[cfg(target_arch = "x86_64")]
fn docker_profile_filters_x86_and_x32() {
    // Without IA32 emulation, int 0x80 faults: probe in a child.
    let ia32 = run(None, |_| [int80(20, 0); N], |_| {});
    let ia32 = matches!(ia32, End::Exited(0, Some(r)) if r[0] > 0);
    let p = plan_of(docker());
    let r = results(in_child(&p, || {
        let mut o = [0; N];
        o[0] = sys(
            x32(libc::SYS_unshare),
            [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0],
        );
        // Allowed: then x32 getpid works, or ENOSYS without CONFIG_X86_X32_ABI.
        o[1] = sys0(x32(libc::SYS_getpid));
        if ia32 {
            o[2] = int80(310, libc::CLONE_NEWNS as u32); // unshare
            o[3] = int80(20, 0); // getpid
        }
        o
    }));
    assert_eq!(r[0], EPERM, "x32 unshare: {r:?}");
    assert_ne!(r[1], EPERM, "x32 getpid: {r:?}");
    if ia32 {
        assert_eq!(r[2], EPERM, "i386 unshare: {r:?}");
        assert!(r[3] > 0, "i386 getpid: {r:?}");
    }

    // Architectures that are not filtered kill the thread (libseccomp's bad-arch action).
    let p =
        plan_of(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"]}));
    let end = in_child(&p, || [sys0(x32(libc::SYS_getpid)); N]);
    assert_eq!(end, End::Signaled(libc::SIGSYS));
    if ia32 {
        let end = in_child(&p, || [int80(20, 0); N]);
        assert_eq!(end, End::Signaled(libc::SIGSYS));
    }
}
