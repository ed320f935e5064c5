//! Fuzzing the seccomp compiler (issue 17): random profiles (syscall names, args,
//! operators, actions, architectures, flags), mutations of Docker's profile and random
//! bytes. For every input: no panic, errors in one line; for every profile that compiles,
//! a program the kernel would take (at most BPF_MAXINSNS, only the instructions seccomp
//! allows, loads inside seccomp_data, jumps forward and inside, ends in a return) that, run
//! by a small interpreter, does what the profile says for the syscalls it does not name
//! and for those with an unconditional rule; one in 25 is also loaded into the kernel
//! in a child.

use serde_json::{json, Value};

use super::super::arch;
use super::super::profile::{self, Action};
use super::driver::{self, Dict, Rng};
use super::*;

const ARCHES: [&str; 9] = [
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_BOGUS",
];

fn names() -> Vec<&'static str> {
    let mut n: Vec<&'static str> = syscalls::Sysno::iter().map(|s| s.name()).collect();
    n.extend(["", "nosuchcall", "socketcall", "ipc", "WRITE", "read "]);
    n
}

fn some<T: Copy>(rng: &mut Rng, from: &[T], max: usize) -> Vec<T> {
    (0..rng.below(max + 1)).map(|_| *rng.pick(from)).collect()
}

fn action(rng: &mut Rng) -> &'static str {
    match rng.below(20) {
        0 => "SCMP_ACT_BOGUS",
        // NOTIFY has its own rules (listenerPath, no handoff syscalls): less often.
        1 => "SCMP_ACT_NOTIFY",
        _ => rng.pick::<&str>(&ACTIONS),
    }
}

fn errno(rng: &mut Rng, v: &mut Value, key: &str) {
    if rng.one_in(4) {
        v[key] = json!(*rng.pick(&[0u64, 1, 38, 4095, 65535, 65536, u64::MAX]));
    }
}

/// A random profile, built from the spec's vocabulary.
fn profile(rng: &mut Rng, names: &[&'static str]) -> Value {
    let mut p = json!({"defaultAction": action(rng)});
    errno(rng, &mut p, "defaultErrnoRet");
    if rng.one_in(2) {
        p["architectures"] = json!(some(rng, &ARCHES, 4));
    }
    if rng.one_in(3) {
        let mut flags: Vec<&str> = some(rng, &KNOWN_FLAGS, 3);
        if rng.one_in(8) {
            flags.push("SECCOMP_FILTER_FLAG_BOGUS");
        }
        p["flags"] = json!(flags);
    }
    if rng.one_in(3) {
        p["listenerPath"] = json!("/run/agent.sock");
    }
    let rules = if rng.one_in(20) {
        rng.below(3000)
    } else {
        rng.below(40)
    };
    let ops = OPERATORS;
    let list: Vec<Value> = (0..rules)
        .map(|_| {
            let mut r = json!({"names": some(rng, names, 6), "action": action(rng)});
            errno(rng, &mut r, "errnoRet");
            if rng.one_in(3) {
                let args: Vec<Value> = (0..rng.below(5))
                    .map(|_| {
                        let mut a = json!({
                            "index": rng.below(7),
                            "value": driver::number(rng),
                            "op": if rng.one_in(30) { "SCMP_CMP_BOGUS" } else { *rng.pick(&ops) },
                        });
                        if rng.one_in(2) {
                            a["valueTwo"] = driver::number(rng);
                        }
                        if rng.one_in(5) {
                            // Mostly valid numbers: the comparisons are what is under test.
                            a["value"] = json!(rng.next());
                        }
                        a
                    })
                    .collect();
                r["args"] = json!(args);
            }
            r
        })
        .collect();
    p["syscalls"] = json!(list);
    p
}

fn dict(names: &[&'static str]) -> Dict {
    let mut strings = names.to_vec();
    strings.extend(ACTIONS);
    strings.extend(OPERATORS);
    strings.extend(KNOWN_FLAGS);
    strings.extend(ARCHES);
    Dict {
        keys: vec![
            "defaultAction",
            "defaultErrnoRet",
            "architectures",
            "flags",
            "listenerPath",
            "listenerMetadata",
            "syscalls",
            "names",
            "action",
            "errnoRet",
            "args",
            "index",
            "value",
            "valueTwo",
            "op",
        ],
        strings,
    }
}

// ---- the checks ----

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const JUMPS: [u16; 4] = [
    (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
    (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16,
    (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
    (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16,
];
/// sizeof(struct seccomp_data).
const DATA_LEN: u32 = 64;

/// What the kernel's seccomp_check_filter and bpf_check_classic ask of a program.
fn verify(prog: &[libc::sock_filter]) {
    let len = prog.len();
    assert!(
        (1..=libc::BPF_MAXINSNS as usize).contains(&len),
        "{len} instructions"
    );
    for (pc, i) in prog.iter().enumerate() {
        let inside = |off: usize| pc + 1 + off < len;
        match i.code {
            LD_W_ABS => assert!(
                i.k < DATA_LEN && i.k % 4 == 0,
                "{pc}: load at {} outside seccomp_data",
                i.k
            ),
            ALU_AND_K | RET_K => {}
            JA => assert!(inside(i.k as usize), "{pc}: ja {} out of the program", i.k),
            c if JUMPS.contains(&c) => assert!(
                inside(usize::from(i.jt)) && inside(usize::from(i.jf)),
                "{pc}: jump {}/{} out of the program",
                i.jt,
                i.jf
            ),
            c => panic!("{pc}: instruction {c:#x} seccomp does not allow"),
        }
    }
    assert_eq!(
        prog[len - 1].code,
        RET_K,
        "the program does not end in a return"
    );
}

/// Run the program on one syscall (classic BPF as the kernel runs it).
fn interpret(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; DATA_LEN as usize];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let k = i.k as usize;
                a = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            }
            ALU_AND_K => a &= i.k,
            JA => pc += i.k as usize,
            RET_K => return i.k,
            code => {
                let hit = match code & 0xf0 {
                    0x10 => a == i.k,
                    0x20 => a > i.k,
                    0x30 => a >= i.k,
                    _ => a & i.k != 0,
                };
                pc += usize::from(if hit { i.jt } else { i.jf });
            }
        }
    }
}

/// The filter against the profile, for the native ABI: a syscall the profile does not
/// name (with an action other than the default) gets the default action (or ENOSYS above
/// the profile's last syscall, runc's stub); one with an unconditional rule gets the
/// action of the first such rule, whatever its arguments; another architecture is killed.
fn check_semantics(v: &Value, plan: &SeccompPlan, rng: &mut Rng) {
    let p = profile::parse(v).expect("a compiled profile parses");
    let native = arch::host_abis()[0];
    let prog = &plan.program;
    let mut first_always: BTreeMap<u32, Action> = BTreeMap::new();
    let mut named: Vec<u32> = Vec::new();
    let mut last = 0;
    for r in &p.rules {
        for nr in r.names.iter().filter_map(|n| native.syscall(n)) {
            last = last.max(nr);
            if r.action != p.default {
                named.push(nr);
                if r.args.is_empty() {
                    first_always.entry(nr).or_insert(r.action);
                }
            }
        }
    }
    let listed = p
        .architectures
        .iter()
        .any(|a| arch::parse(a) == Ok(Some(native)));
    let stub = listed
        && last > 0
        && match p.default {
            Action::Allow | Action::Log | Action::Trace(_) => false,
            Action::Errno(e) => i32::from(e) != libc::ENOSYS,
            _ => true,
        };
    let args = |rng: &mut Rng| [0; 6].map(|_: u64| if rng.one_in(2) { rng.next() } else { 0 });
    for _ in 0..32 {
        let nr = if rng.one_in(4) {
            rng.below(1000) as u32
        } else {
            *rng.pick(&[0u32, 1, 59, 435, 999, last, last + 1])
        };
        if named.contains(&nr) {
            continue;
        }
        let want = if stub && nr > last {
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        } else {
            p.default.ret()
        };
        let got = interpret(prog, nr, native.audit(), args(rng));
        assert_eq!(
            got, want,
            "syscall {nr} (unnamed; last named {last}, stub {stub})"
        );
    }
    for (nr, a) in &first_always {
        let got = interpret(prog, *nr, native.audit(), args(rng));
        assert_eq!(got, a.ret(), "syscall {nr} with an unconditional rule");
    }
    let got = interpret(prog, 1, 0xdead_beef, [0; 6]);
    assert_eq!(
        got,
        libc::SECCOMP_RET_KILL_THREAD,
        "an unknown architecture"
    );
}

/// How many inputs compiled (reported, so that a generator that stops reaching the
/// compiler shows).
static COMPILED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check(bytes: &[u8], n: u64) {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let plan = match plan(&v) {
        Ok(p) => p,
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains(['\n', '\r']) && !s.is_empty(), "error {s:?}");
            return;
        }
    };
    COMPILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    verify(&plan.program);
    let mut rng = Rng::new(n);
    check_semantics(&v, &plan, &mut rng);
    // One in 25 (no NOTIFY: nobody would answer) goes into the kernel.
    if n.is_multiple_of(25) && !plan.needs_listener() {
        let end = in_child(&plan, || [0; N]);
        assert!(
            !matches!(end, End::Exited(91, _)),
            "the kernel refused the program ({} instructions)",
            plan.program.len()
        );
    }
}

#[test]
fn fuzz_seccomp_compiler() {
    let names = names();
    let seeds = vec![docker(), profile(&mut Rng::new(1), &names)];
    let dict = dict(&names);
    driver::run(
        "seccomp",
        600,
        move |rng| {
            if rng.one_in(2) {
                serde_json::to_vec(&profile(rng, &names)).unwrap()
            } else {
                driver::json_input(rng, &seeds, &dict)
            }
        },
        |b| {
            // A per-input seed for the interpreter's syscalls: the same input, the same run.
            let n = b
                .iter()
                .fold(0u64, |h, x| h.wrapping_mul(31).wrapping_add(u64::from(*x)));
            check(b, n)
        },
    );
    let compiled = COMPILED.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("fuzz seccomp: {compiled} inputs compiled into a filter");
    assert!(compiled > 0, "no input compiled: the generator is broken");
}
