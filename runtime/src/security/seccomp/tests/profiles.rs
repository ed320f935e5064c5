//! Profiles that must fail (naming the field), or pass, without a kernel round trip;
//! and the assembler's long jumps.

use serde_json::json;

use super::super::bpf::{Asm, Label};
use super::*;

#[test]
fn bad_profiles_fail_with_the_field() {
    let cases = [
        (json!({}), "linux.seccomp.defaultAction: required"),
        (
            json!({"defaultAction": "SCMP_ACT_FOO"}),
            "linux.seccomp.defaultAction: unsupported action \"SCMP_ACT_FOO\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}),
            "linux.seccomp.defaultErrnoRet: 1 is set, but SCMP_ACT_ALLOW takes no errno",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_FOO"]}),
            "linux.seccomp.architectures: unknown architecture \"SCMP_ARCH_FOO\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]}),
            "linux.seccomp.flags: unknown flag \"SECCOMP_FILTER_FLAG_FOO\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
            "linux.seccomp.listenerMetadata: set without listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_BAR"}]}),
            "linux.seccomp.syscalls[0].action: unsupported action \"SCMP_ACT_BAR\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG", "errnoRet": 5}]}),
            "linux.seccomp.syscalls[0].errnoRet: 5 is set, but SCMP_ACT_LOG takes no errno",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
            "linux.seccomp.syscalls[0].errnoRet: 70000 is out of range",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names: must name at least one syscall",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names: required",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index: 6 is out of range",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op: unsupported operator \"SCMP_CMP_XX\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].value: expected an unsigned integer, got -1",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath: required with SCMP_ACT_NOTIFY rules",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY cannot be used for \"write\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}),
            "linux.seccomp.syscalls: expected an array",
        ),
    ];
    for (v, want) in cases {
        let got = error_of(v.clone());
        assert!(got.starts_with(want), "{v}:\n got {got}\nwant {want}");
    }
}

#[test]
fn lenient_where_runc_is() {
    // Unknown syscalls and architectures this host cannot run are skipped; TSYNC is
    // accepted and ignored; unknown properties are ignored.
    plan_of(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_S390X"],
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "comment": "ignored",
        "syscalls": [{"names": ["no_such_syscall", "getpid"], "action": "SCMP_ACT_ALLOW", "comment": "x"}],
    }));
}

#[test]
fn long_jumps_are_relaxed() {
    let mut a = Asm::default();
    let far: Label = a.label();
    a.jump(0x15, 7, Some(far), None); // jeq #7
    for _ in 0..300 {
        a.ld(0);
    }
    a.place(far);
    a.ret(0);
    let prog = a.assemble().unwrap();
    assert_eq!(prog.len(), 304);
    let ja = (libc::BPF_JMP | libc::BPF_JA) as u16;
    assert_eq!(
        (prog[0].code, prog[0].jt, prog[0].jf, prog[0].k),
        (0x15, 0, 1, 7)
    );
    assert_eq!((prog[1].code, prog[1].k), (ja, 301), "jt: to the ret");
    assert_eq!(
        (prog[2].code, prog[2].k),
        (ja, 0),
        "jf: to the next instruction"
    );
}
