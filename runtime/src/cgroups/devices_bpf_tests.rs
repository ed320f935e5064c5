//! Tests of devices_bpf.rs (kept apart: the module itself stays readable).
use super::*;

const M: u32 = ACC_MKNOD;
const R: u32 = ACC_READ;
const W: u32 = ACC_WRITE;
const C: u32 = DEV_CHAR;
const B: u32 = DEV_BLOCK;

fn rule(allow: bool, kind: Option<char>, major: i64, minor: i64, access: &str) -> Rule {
    Rule {
        allow,
        kind,
        major: Some(major),
        minor: Some(minor),
        access: access.to_string(),
    }
}

fn allow(kind: char, major: i64, minor: i64, access: &str) -> Rule {
    rule(true, Some(kind), major, minor, access)
}

fn deny(kind: char, major: i64, minor: i64, access: &str) -> Rule {
    rule(false, Some(kind), major, minor, access)
}

fn allow_all() -> Rule {
    Rule {
        allow: true,
        kind: None,
        major: None,
        minor: None,
        access: "rwm".into(),
    }
}

fn deny_all() -> Rule {
    Rule {
        allow: false,
        ..allow_all()
    }
}

/// A register of the interpreter: the context pointer or a number.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Ctx,
    Num(u64),
}

fn num(regs: &[Option<Val>; 11], r: u8) -> u64 {
    match regs[r as usize] {
        Some(Val::Num(n)) => n,
        other => panic!("r{r} used as a number but holds {other:?}"),
    }
}

/// Run `prog` as the kernel would for one device access, for the instructions `build`
/// emits. Like the verifier, it refuses reads of unset registers, loads from anything
/// but the context, backward or out-of-range jumps and unknown opcodes.
fn run(prog: &[Insn], access: u32, kind: u32, major: u32, minor: u32) -> bool {
    let ctx = [(access << 16) | kind, major, minor];
    let mut regs: [Option<Val>; 11] = [None; 11];
    regs[CTX as usize] = Some(Val::Ctx);
    let mut pc = 0usize;
    loop {
        let i = *prog.get(pc).expect("ran off the end of the program");
        let (dst, src) = (i.dst(), i.src());
        pc += 1;
        let mut jump = |taken: bool| {
            assert!(i.off >= 0, "backward jump at {}", pc - 1);
            if taken {
                pc += i.off as usize;
            }
            assert!(pc < prog.len(), "jump out of the program");
        };
        match i.code {
            0x61 => {
                assert_eq!(regs[src as usize], Some(Val::Ctx), "load from non-context");
                assert!(matches!(i.off, 0 | 4 | 8), "bad context offset {}", i.off);
                regs[dst as usize] = Some(Val::Num(u64::from(ctx[i.off as usize / 4])));
            }
            0xb4 => regs[dst as usize] = Some(Val::Num(u64::from(i.imm as u32))),
            0xbc => regs[dst as usize] = Some(Val::Num(num(&regs, src) & 0xffff_ffff)),
            0x54 => {
                let v = num(&regs, dst) as u32 & i.imm as u32;
                regs[dst as usize] = Some(Val::Num(u64::from(v)));
            }
            0x74 => {
                let v = (num(&regs, dst) as u32) >> (i.imm as u32);
                regs[dst as usize] = Some(Val::Num(u64::from(v)));
            }
            // 64-bit compares: the immediate is sign-extended.
            0x15 => jump(num(&regs, dst) == i.imm as i64 as u64),
            0x55 => jump(num(&regs, dst) != i.imm as i64 as u64),
            0x5d => jump(num(&regs, dst) != num(&regs, src)),
            0x95 => {
                let r0 = num(&regs, R0);
                assert!(r0 <= 1, "return value {r0}");
                return r0 == 1;
            }
            op => panic!("opcode {op:#x} not expected at {}", pc - 1),
        }
    }
}

/// The verifier rejects programs with instructions no path reaches, or that can run
/// past the end; check both structurally, as its CFG pass does.
fn assert_well_formed(prog: &[Insn]) {
    let mut seen = vec![false; prog.len()];
    let mut todo = vec![0usize];
    while let Some(pc) = todo.pop() {
        assert!(pc < prog.len(), "control flow leaves the program");
        if std::mem::replace(&mut seen[pc], true) {
            continue;
        }
        let i = prog[pc];
        if i.code == BPF_JMP | BPF_EXIT {
            continue;
        }
        todo.push(pc + 1);
        if i.code & 0x07 == BPF_JMP {
            todo.push((pc as i64 + 1 + i64::from(i.off)) as usize);
        }
    }
    let dead: Vec<_> = (0..prog.len()).filter(|&pc| !seen[pc]).collect();
    assert!(dead.is_empty(), "unreachable instructions {dead:?}");
}

/// An independent statement of the semantics: each bit asked for is decided by the
/// last rule matching the device that names it.
fn reference(rules: &[Rule], access: u32, kind: u32, major: u32, minor: u32) -> bool {
    let rules: Vec<Match> = rules.iter().map(|r| parse_rule(r).unwrap()).collect();
    let fits = |m: &Match| {
        m.kind.is_none_or(|k| k == kind)
            && m.major.is_none_or(|v| v == major)
            && m.minor.is_none_or(|v| v == minor)
    };
    [M, R, W]
        .iter()
        .filter(|&&bit| access & bit != 0)
        .all(|&bit| {
            let last = rules.iter().rev().find(|m| fits(m) && m.access & bit != 0);
            last.is_some_and(|m| m.allow)
        })
}

fn check(rules: &[Rule]) -> Vec<Insn> {
    let prog = build(rules).unwrap();
    assert_well_formed(&prog);
    prog
}

#[test]
fn no_rules_denies_everything() {
    let p = check(&[]);
    for access in [M, R, W, R | W, R | W | M] {
        assert!(!run(&p, access, C, 1, 3));
        assert!(!run(&p, access, B, 8, 0));
    }
}

#[test]
fn deny_all_denies_everything() {
    let p = check(&[deny_all()]);
    assert!(!run(&p, R, C, 1, 3));
    assert!(!run(&p, M, B, 8, 0));
}

#[test]
fn allow_all_allows_everything() {
    let p = check(&[allow_all()]);
    for access in [M, R, W, R | W, R | W | M] {
        assert!(run(&p, access, C, 1, 3));
        assert!(run(&p, access, B, 259, 1_000_000));
    }
}

fn runc_defaults() -> Vec<Rule> {
    vec![
        deny_all(),
        allow('c', -1, -1, "m"),
        allow('b', -1, -1, "m"),
        allow('c', 1, 3, "rwm"),
        allow('c', 1, 5, "rwm"),
        allow('c', 1, 7, "rwm"),
        allow('c', 5, 0, "rwm"),
        allow('c', 1, 8, "rwm"),
        allow('c', 1, 9, "rwm"),
        allow('c', 136, -1, "rwm"),
        allow('c', 5, 2, "rwm"),
        allow('c', 10, 200, "rwm"),
    ]
}

#[test]
fn runc_default_list() {
    let mut rules = runc_defaults();
    rules.push(deny('c', 1, 9, "rwm")); // take /dev/urandom back
    let p = check(&rules);
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (5, 0), (1, 8), (5, 2), (10, 200)] {
        assert!(run(&p, R | W, C, major, minor), "c {major}:{minor}");
    }
    assert!(run(&p, R | W, C, 136, 0), "pts 0");
    assert!(run(&p, R, C, 136, 42), "pts 42");
    assert!(!run(&p, R, C, 1, 9), "urandom was denied last");
    assert!(!run(&p, M, C, 1, 9), "even mknod: the deny names m");
    assert!(run(&p, M, C, 4, 1), "mknod of any char device");
    assert!(run(&p, M, B, 8, 0), "mknod of any block device");
    assert!(!run(&p, R, B, 8, 0), "no reading /dev/sda");
    assert!(!run(&p, R | M, C, 4, 1), "m alone is allowed, r is not");
    assert!(!run(&p, W, C, 10, 229), "fuse is not in the list");
}

#[test]
fn last_matching_rule_wins() {
    let p = check(&[allow('c', 1, 3, "rwm"), deny('c', 1, 3, "rwm")]);
    assert!(!run(&p, R, C, 1, 3));
    let p = check(&[deny('c', 1, 3, "rwm"), allow('c', 1, 3, "rwm")]);
    assert!(run(&p, R, C, 1, 3));
    // Allow everything, then take one device away, then give it back read-only.
    let p = check(&[allow_all(), deny('c', 1, 3, "rwm"), allow('c', 1, 3, "r")]);
    assert!(run(&p, R, C, 1, 3));
    assert!(!run(&p, W, C, 1, 3));
    assert!(!run(&p, R | W, C, 1, 3));
    assert!(run(&p, R | W, C, 1, 5));
}

#[test]
fn access_must_be_a_subset_of_an_allow() {
    let p = check(&[allow('c', 1, 3, "r")]);
    assert!(run(&p, R, C, 1, 3));
    assert!(!run(&p, W, C, 1, 3));
    assert!(!run(&p, R | W, C, 1, 3));
    assert!(!run(&p, M, C, 1, 3));
    let p = check(&[allow('c', 1, 3, "rw")]);
    assert!(run(&p, R | W, C, 1, 3));
    assert!(!run(&p, R | M, C, 1, 3));
    // Two allows together cover rw, as on cgroup v1.
    let p = check(&[allow('c', 1, 3, "r"), allow('c', 1, 3, "w")]);
    assert!(run(&p, R | W, C, 1, 3));
    // A deny of one bit refuses any request that includes it.
    let p = check(&[allow('c', 1, 3, "rwm"), deny('c', 1, 3, "w")]);
    assert!(run(&p, R, C, 1, 3));
    assert!(!run(&p, R | W, C, 1, 3));
    assert!(!run(&p, W, C, 1, 3));
}

#[test]
fn wildcards() {
    let p = check(&[allow('c', 4, -1, "rw")]);
    assert!(run(&p, R, C, 4, 0));
    assert!(run(&p, W, C, 4, 63));
    assert!(!run(&p, R, C, 5, 0));
    assert!(!run(&p, R, B, 4, 0), "type still matters");
    let p = check(&[allow('b', -1, 0, "r")]);
    assert!(run(&p, R, B, 8, 0));
    assert!(run(&p, R, B, 259, 0));
    assert!(!run(&p, R, B, 8, 1));
    let p = check(&[Rule {
        kind: Some('a'),
        ..allow('a', 1, -1, "r")
    }]);
    assert!(run(&p, R, C, 1, 3));
    assert!(run(&p, R, B, 1, 0));
    assert!(!run(&p, R, C, 2, 0));
    let p = check(&[Rule {
        major: None,
        minor: None,
        ..allow('c', 0, 0, "r")
    }]);
    assert!(run(&p, R, C, 7, 7));
    assert!(!run(&p, R, B, 7, 7));
}

#[test]
fn numbers_above_i32_max_compare_as_u32() {
    let big = 4_000_000_000u32;
    let p = check(&[allow('c', i64::from(big), i64::from(big), "r")]);
    assert!(run(&p, R, C, big, big));
    assert!(!run(&p, R, C, big, 0));
}

#[test]
fn empty_access_has_no_effect() {
    let p = check(&[allow_all(), deny('c', 1, 3, "")]);
    assert!(run(&p, R, C, 1, 3));
}

#[test]
fn invalid_rules_are_refused() {
    let bad = |r: Rule| build(&[r]).unwrap_err();
    assert!(bad(allow('x', 1, 3, "r")).contains("device type"));
    assert!(bad(allow('c', -2, 3, "r")).contains("major -2"));
    assert!(bad(allow('c', 1, 1 << 40, "r")).contains("minor"));
    let e = bad(allow('c', 1, 3, "rx"));
    assert!(
        e.starts_with("linux.resources.devices[0]") && e.contains("'x'"),
        "{e}"
    );
}

#[test]
fn program_agrees_with_reference_semantics() {
    let sets = vec![
        runc_defaults(),
        vec![allow_all(), deny('c', -1, -1, "w"), allow('c', 1, -1, "rw")],
        vec![
            deny('b', 8, -1, "m"),
            allow('b', 8, 0, "rwm"),
            deny('b', -1, 0, "r"),
        ],
        vec![
            allow('c', 1, 3, "m"),
            allow('c', 1, 3, "w"),
            deny('c', 1, -1, "m"),
        ],
    ];
    for rules in &sets {
        let p = check(rules);
        for kind in [C, B] {
            for (major, minor) in [(1, 3), (1, 5), (8, 0), (8, 1), (136, 2), (9, 0)] {
                for access in 1..=ACC_ALL {
                    assert_eq!(
                        run(&p, access, kind, major, minor),
                        reference(rules, access, kind, major, minor),
                        "{rules:?} access {access} {kind} {major}:{minor}"
                    );
                }
            }
        }
    }
}

#[test]
fn verifier_log_keeps_the_end() {
    let mut buf = vec![b'x'; LOG_TAIL + 100];
    buf.extend(b"the real reason\n\0garbage");
    let text = log_text(&buf);
    assert!(text.starts_with("...") && text.ends_with("the real reason"));
    assert_eq!(text.len(), LOG_TAIL + 3);
    assert_eq!(log_text(b"short\n\0"), "short");
}

// ---- on a real cgroup (root only) ----

/// A cgroup v2 directory to experiment in: the unified hierarchy of a hybrid host, or
/// the root of a pure v2 one.
fn cgroup2_root() -> Option<&'static Path> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| statfs(*p).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC))
}

/// Removes the test cgroup even when an assertion fails.
struct TestCgroup(std::path::PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// How opening a device went in the child, packed into two bits of its exit status.
fn open_code(path: &std::ffi::CStr) -> i32 {
    // SAFETY: open/close with a valid NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        return 0;
    }
    if Errno::last() == Errno::EPERM {
        1
    } else {
        2
    }
}

/// Fork a child that joins `cgroup` and opens /dev/zero and /dev/null; their outcomes
/// (0 opened, 1 EPERM, 2 other error). The child does only async-signal-safe calls, as
/// the test harness has other threads running.
fn child_opens(cgroup: &Path) -> (i32, i32) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
    let (zero, null) = (c"/dev/zero", c"/dev/null");
    // SAFETY: the child calls only open/write/close/_exit before it exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        // SAFETY: as above; "0" moves the writing process itself.
        let joined = unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let ok = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            ok
        };
        let code = if joined {
            open_code(zero) | (open_code(null) << 2)
        } else {
            100
        };
        // SAFETY: _exit has no preconditions and skips the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    let nix::sys::wait::WaitStatus::Exited(_, code) = status else {
        panic!("child: {status:?}");
    };
    assert_ne!(code, 100, "child could not join {}", cgroup.display());
    (code & 3, code >> 2)
}

fn attached(cgroup: &Path) -> usize {
    let dir = std::fs::File::open(cgroup).unwrap();
    prog_query(dir.as_fd()).unwrap().len()
}

#[test]
fn apply_filters_a_real_cgroup() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: attaching BPF programs to a cgroup needs root");
        return;
    }
    let Some(root) = cgroup2_root() else {
        eprintln!("skipping: no cgroup2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup");
        return;
    };
    let dir = root.join(format!("rt-bpf-test-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let cg = TestCgroup(dir);

    apply(&cg.0, &[deny_all(), allow('c', 1, 3, "rwm")]).unwrap();
    assert_eq!(
        child_opens(&cg.0),
        (1, 0),
        "/dev/zero denied, /dev/null allowed"
    );
    assert_eq!(attached(&cg.0), 1);

    // An update replaces the filter rather than adding a second one.
    apply(&cg.0, &[allow('c', 1, 3, "r"), allow('c', 1, 5, "r")]).unwrap();
    assert_eq!(child_opens(&cg.0), (0, 0), "both allowed after the update");
    assert_eq!(attached(&cg.0), 1);

    // Every shape of block `build` emits passes the verifier.
    let mut rules = runc_defaults();
    rules.extend([
        deny('c', 1, 9, "w"),
        allow('b', 4_000_000_000, -1, "r"),
        deny('b', -1, 3_000_000_000, "rwm"),
        Rule {
            kind: None,
            ..deny('a', 10, 200, "m")
        },
    ]);
    load_program(&build(&rules).unwrap()).unwrap();

    // The verifier's reason is part of a load error (R0 is never set here).
    let (e, log) = load_program(&[exit()]).unwrap_err();
    assert_eq!(e, Errno::EACCES);
    assert!(log.contains("R0"), "verifier log: {log}");
}

#[test]
fn apply_names_the_path_on_error() {
    let e = apply(Path::new("/nonexistent/rt-bpf"), &[]).unwrap_err();
    assert!(e.starts_with("open /nonexistent/rt-bpf: ENOENT"), "{e}");
    // Not a cgroup: the kernel refuses the query (EBADF as root, EPERM otherwise).
    let e = apply(Path::new("/"), &[]).unwrap_err();
    assert!(e.starts_with("bpf(BPF_PROG_QUERY) for /: E"), "{e}");
}
