//! Each action, errnoRet, argument conditions and how rules combine.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{json, Value};

use super::*;

fn one_rule(default: &str, rule: Value) -> SeccompPlan {
    plan_of(json!({"defaultAction": default, "syscalls": [rule]}))
}

#[test]
fn errno_and_default_errno_ret() {
    let p = plan_of(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EXDEV,
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM},
            {"names": ["getgid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid", "write", "exit_group", "exit", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
        ],
    }));
    let r = results(in_child(&p, || {
        let mut o = [0; N];
        o[0] = sys0(libc::SYS_getppid);
        o[1] = sys0(libc::SYS_getgid);
        o[2] = sys0(libc::SYS_getuid);
        o[3] = sys0(libc::SYS_getpid);
        o
    }));
    assert_eq!(&r[..3], &[EDOM, EPERM, EXDEV], "{r:?}");
    assert!(r[3] > 0, "{r:?}");
}

#[test]
fn argument_operators() {
    const V: u64 = 0x1_0000_0005;
    const MASK: u64 = 0xf_0000_000f;
    const INPUTS: [u64; N] = [
        0,
        5,
        6,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0004,
        V,
        0x1_0000_0006,
        0x2_0000_0005,
        0xffff_ffff_0000_0005,
        u64::MAX,
        0x1_0000_0015,
    ];
    type Holds = fn(u64) -> bool;
    let ops: [(&str, Holds); 7] = [
        ("SCMP_CMP_EQ", |x| x == V),
        ("SCMP_CMP_NE", |x| x != V),
        ("SCMP_CMP_LT", |x| x < V),
        ("SCMP_CMP_LE", |x| x <= V),
        ("SCMP_CMP_GE", |x| x >= V),
        ("SCMP_CMP_GT", |x| x > V),
        ("SCMP_CMP_MASKED_EQ", |x| x & MASK == V),
    ];
    for (op, holds) in ops {
        let value = if op == "SCMP_CMP_MASKED_EQ" { MASK } else { V };
        let p = one_rule(
            "SCMP_ACT_ALLOW",
            json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM,
                   "args": [{"index": 2, "value": value, "valueTwo": V, "op": op}]}),
        );
        let r = results(in_child(&p, || {
            INPUTS.map(|x| sys(libc::SYS_getppid, [0, 0, x, 0, 0, 0]))
        }));
        for (x, got) in INPUTS.iter().zip(r) {
            assert_eq!(got == EDOM, holds(*x), "{op} on {x:#x}: got {got}");
        }
    }
}

#[test]
fn rules_combine_like_libseccomp() {
    let errno = |names: &[&str], e: i32, args: Value| json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": e, "args": args});
    let eq = |index: u32, value: u64| json!({"index": index, "value": value, "op": "SCMP_CMP_EQ"});
    let p = plan_of(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        // Different arguments: ANDed.
        errno(&["getppid"], libc::EDOM, json!([eq(0, 1), eq(1, 2)])),
        // The same argument twice: each its own rule (ORed), as runc does.
        errno(&["getuid"], libc::EDOM, json!([eq(0, 1), eq(0, 2)])),
        // A later rule without args replaces the rules with args.
        errno(&["getgid"], libc::EDOM, json!([eq(0, 1)])),
        errno(&["getgid"], libc::EXDEV, json!(null)),
        // A rule without args wins over later ones.
        errno(&["geteuid"], libc::EXDEV, json!(null)),
        errno(&["geteuid"], libc::EDOM, json!([eq(0, 1)])),
        // Rules with args are tried in order.
        errno(&["getegid"], libc::EDOM, json!([eq(0, 1)])),
        errno(&["getegid"], libc::EXDEV, json!([eq(1, 1)])),
    ]}));
    let call = |nr, a0: u64, a1: u64| sys(nr, [a0, a1, 0, 0, 0, 0]);
    let r = results(in_child(&p, || {
        [
            call(libc::SYS_getppid, 1, 2),
            call(libc::SYS_getppid, 1, 3),
            call(libc::SYS_getppid, 0, 2),
            call(libc::SYS_getuid, 1, 0),
            call(libc::SYS_getuid, 2, 0),
            call(libc::SYS_getuid, 3, 0),
            call(libc::SYS_getgid, 1, 0),
            call(libc::SYS_geteuid, 1, 0),
            call(libc::SYS_getegid, 1, 1),
            call(libc::SYS_getegid, 0, 1),
            call(libc::SYS_getegid, 0, 0),
            0,
        ]
    }));
    assert_eq!(r[0], EDOM, "{r:?}");
    assert!(r[1] > 0 && r[2] > 0, "{r:?}");
    assert_eq!(&r[3..5], &[EDOM, EDOM], "{r:?}");
    assert!(r[5] >= 0, "{r:?}");
    assert_eq!(&r[6..10], &[EXDEV, EXDEV, EDOM, EXDEV], "{r:?}");
    assert!(r[10] >= 0, "{r:?}");
}

#[test]
fn kill_actions_kill_with_sigsys() {
    for act in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL",
    ] {
        let p = one_rule(
            "SCMP_ACT_ALLOW",
            json!({"names": ["getppid"], "action": act}),
        );
        let end = in_child(&p, || [sys0(libc::SYS_getppid); N]);
        assert_eq!(end, End::Signaled(libc::SIGSYS), "{act}");
    }
}

static TRAPPED: AtomicI64 = AtomicI64::new(-1);

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // siginfo's _sigsys: { void *_call_addr; int _syscall; unsigned _arch; } after the
    // three ints of the header (and padding): the syscall number is at byte 24.
    // SAFETY: the kernel passes a valid siginfo_t for SIGSYS.
    let nr = unsafe { *(info as *const u8).add(24).cast::<i32>() };
    TRAPPED.store(i64::from(nr), Ordering::SeqCst);
}

#[test]
fn trap_delivers_sigsys() {
    let p = one_rule(
        "SCMP_ACT_ALLOW",
        json!({"names": ["getppid"], "action": "SCMP_ACT_TRAP"}),
    );
    let r = results(in_child(&p, || {
        // SAFETY: installs a handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
        }
        sys0(libc::SYS_getppid);
        [TRAPPED.load(Ordering::SeqCst); N]
    }));
    assert_eq!(r[0], libc::SYS_getppid, "the handler saw syscall {}", r[0]);
}

#[test]
fn log_allows_and_trace_without_tracer_is_enosys() {
    let p = plan_of(json!({"defaultAction": "SCMP_ACT_LOG", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
        {"names": ["getuid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
        {"names": ["getgid"], "action": "SCMP_ACT_ERRNO"},
    ]}));
    let r = results(in_child(&p, || {
        let mut o = [0; N];
        o[0] = sys0(libc::SYS_getppid);
        o[1] = sys0(libc::SYS_getuid);
        o[2] = sys0(libc::SYS_getgid);
        o[3] = sys0(libc::SYS_getpid);
        o
    }));
    assert_eq!(r[0], i64::from(std::process::id()), "{r:?}");
    assert_eq!(&r[1..3], &[ENOSYS, EPERM], "{r:?}");
    assert!(r[3] > 0, "{r:?}");
}

#[test]
fn flags_reach_the_kernel() {
    let p = plan_of(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}],
    }));
    let r = results(in_child(&p, || [sys0(libc::SYS_getppid); N]));
    assert_eq!(r[0], EPERM);
}
