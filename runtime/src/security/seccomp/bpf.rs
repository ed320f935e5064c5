//! The classic-BPF program: a small assembler with labels, and the code generator.
//!
//! Layout of the program:
//!
//! ```text
//!   ld arch; jeq AUDIT_ARCH_X86_64 → S64; jeq AUDIT_ARCH_I386 → S32; ret <bad arch>
//! S64:
//!   ld nr; jset X32_BIT → SX32 (or ret <bad arch> when x32 is not filtered)
//!   [jgt <last syscall of the profile> → ret ERRNO(ENOSYS)]     runc's -ENOSYS stub
//!   binary search on nr (jge) down to leaves of at most 8 `jeq nr → target`
//!   each leaf is followed by `ret <default>` and by its targets: a `ret <action>` or the
//!   syscall's argument rules, tried in order, each falling through to the next on a miss
//! SX32: ... S32: ...
//! ```
//!
//! Every target sits close to its jump; a conditional jump that still ends up more than
//! 255 instructions from its target is rewritten as `jcond 0,1; ja T; ja F`.

use std::collections::BTreeMap;

use libc::sock_filter;

use super::arch::{Abi, X32_SYSCALL_BIT};
use super::profile::{Action, Cond, Op};

/// What a syscall number leads to in one section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An unconditional rule.
    Always(Action),
    /// Rules with argument conditions (ANDed within a rule), tried in order; the default
    /// action when none matches.
    Rules(Vec<(Vec<Cond>, Action)>),
}

/// The part of the filter for one ABI.
#[derive(Debug, Clone)]
pub struct Section {
    pub abi: Abi,
    pub syscalls: BTreeMap<u32, Entry>,
    /// Syscalls numbered above this one get ENOSYS instead of the default action.
    pub enosys_above: Option<u32>,
}

/// Syscalls per leaf of the binary search.
const LEAF: usize = 8;

pub fn compile(
    sections: &[Section],
    default: Action,
    bad_arch: u32,
) -> Result<Vec<sock_filter>, String> {
    let mut a = Asm::default();
    let find = |abi: Abi| sections.iter().find(|s| s.abi == abi);
    // One block per audit arch: x86_64 and x32 share AUDIT_ARCH_X86_64.
    let mut audits: Vec<u32> = Vec::new();
    for s in sections {
        if !audits.contains(&s.abi.audit()) {
            audits.push(s.abi.audit());
        }
    }
    let labels: Vec<Label> = audits.iter().map(|_| a.label()).collect();
    a.ld(OFF_ARCH);
    for (audit, l) in audits.iter().zip(&labels) {
        a.jump(JEQ, *audit, Some(*l), None);
    }
    a.ret(bad_arch);
    for (audit, l) in audits.iter().zip(&labels) {
        a.place(*l);
        a.ld(OFF_NR);
        if *audit == Abi::X86_64.audit() {
            let x32 = a.label();
            a.jump(JSET, X32_SYSCALL_BIT, Some(x32), None);
            match find(Abi::X86_64) {
                Some(s) => section(&mut a, s, default),
                None => a.ret(bad_arch),
            }
            a.place(x32);
            match find(Abi::X32) {
                Some(s) => section(&mut a, s, default),
                None => a.ret(bad_arch),
            }
        } else {
            for s in sections.iter().filter(|s| s.abi.audit() == *audit) {
                section(&mut a, s, default);
            }
        }
    }
    a.assemble()
}

/// With the syscall number in A.
fn section(a: &mut Asm, s: &Section, default: Action) {
    if let Some(last) = s.enosys_above {
        let rest = a.label();
        a.jump(JGT, last, None, Some(rest));
        a.ret(Action::Errno(libc::ENOSYS as u16).ret());
        a.place(rest);
    }
    let entries: Vec<(u32, &Entry)> = s.syscalls.iter().map(|(nr, e)| (*nr, e)).collect();
    if entries.is_empty() {
        a.ret(default.ret());
        return;
    }
    tree(a, &entries, s.abi.args_64(), default);
}

fn tree(a: &mut Asm, entries: &[(u32, &Entry)], args_64: bool, default: Action) {
    if entries.len() <= LEAF {
        return leaf(a, entries, args_64, default);
    }
    let mid = entries.len() / 2;
    let upper = a.label();
    a.jump(JGE, entries[mid].0, Some(upper), None);
    tree(a, &entries[..mid], args_64, default);
    a.place(upper);
    tree(a, &entries[mid..], args_64, default);
}

fn leaf(a: &mut Asm, entries: &[(u32, &Entry)], args_64: bool, default: Action) {
    // Syscalls of the leaf that end in the same `ret` share it.
    let mut targets: Vec<(&Entry, Label)> = Vec::new();
    let miss = a.label();
    for (i, (nr, e)) in entries.iter().enumerate() {
        let l = match targets
            .iter()
            .find(|(t, _)| matches!(t, Entry::Always(_)) && t == e)
        {
            Some((_, l)) => *l,
            None => {
                let l = a.label();
                targets.push((e, l));
                l
            }
        };
        let jf = (i + 1 == entries.len()).then_some(miss);
        a.jump(JEQ, *nr, Some(l), jf);
    }
    a.place(miss);
    a.ret(default.ret());
    for (e, l) in targets {
        a.place(l);
        match e {
            Entry::Always(act) => a.ret(act.ret()),
            Entry::Rules(rules) => {
                for (conds, act) in rules {
                    let next = a.label();
                    for c in conds {
                        cond(a, c, args_64, next);
                    }
                    a.ret(act.ret());
                    a.place(next);
                }
                a.ret(default.ret());
            }
        }
    }
}

/// Falls through when the condition holds, jumps to `miss` when not. 64-bit arguments are
/// compared as (high word, low word), as libseccomp does; 32-bit ABIs compare the low word.
fn cond(a: &mut Asm, c: &Cond, args_64: bool, miss: Label) {
    let (lo, hi) = arg_offsets(c.index);
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (vhi, vlo) = split(c.value);
    if c.op == Op::MaskedEq {
        let (dhi, dlo) = split(c.value_two);
        if args_64 {
            a.ld(hi);
            a.alu_and(vhi);
            a.jump(JEQ, dhi, None, Some(miss));
        }
        a.ld(lo);
        a.alu_and(vlo);
        a.jump(JEQ, dlo, None, Some(miss));
        return;
    }
    let hit = a.label();
    if args_64 {
        a.ld(hi);
        match c.op {
            Op::Eq => a.jump(JEQ, vhi, None, Some(miss)),
            Op::Ne => a.jump(JEQ, vhi, None, Some(hit)),
            Op::Gt | Op::Ge => {
                a.jump(JGT, vhi, Some(hit), None);
                a.jump(JEQ, vhi, None, Some(miss));
            }
            Op::Lt | Op::Le => {
                a.jump(JGT, vhi, Some(miss), None);
                a.jump(JEQ, vhi, None, Some(hit));
            }
            Op::MaskedEq => unreachable!(),
        }
    }
    // The high words are equal (or not compared): the low word decides.
    a.ld(lo);
    match c.op {
        Op::Eq => a.jump(JEQ, vlo, Some(hit), Some(miss)),
        Op::Ne => a.jump(JEQ, vlo, Some(miss), Some(hit)),
        Op::Gt => a.jump(JGT, vlo, Some(hit), Some(miss)),
        Op::Ge => a.jump(JGE, vlo, Some(hit), Some(miss)),
        Op::Lt => a.jump(JGE, vlo, Some(miss), Some(hit)),
        Op::Le => a.jump(JGT, vlo, Some(miss), Some(hit)),
        Op::MaskedEq => unreachable!(),
    }
    a.place(hit);
}

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// Offsets of the (low, high) 32-bit words of argument `i`.
fn arg_offsets(i: u8) -> (u32, u32) {
    let base = OFF_ARGS + 8 * u32::from(i);
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;

/// A position in the program, placed once; jumps may only go forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

enum Item {
    Stmt(u16, u32),
    /// A conditional jump; None is the next instruction.
    Jump(u16, u32, Option<Label>, Option<Label>),
    Place(Label),
}

#[derive(Default)]
pub struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    pub fn place(&mut self, l: Label) {
        self.items.push(Item::Place(l));
    }
    pub fn ld(&mut self, offset: u32) {
        self.items.push(Item::Stmt(LD_ABS, offset));
    }
    pub fn alu_and(&mut self, k: u32) {
        self.items.push(Item::Stmt(AND_K, k));
    }
    pub fn ret(&mut self, k: u32) {
        self.items.push(Item::Stmt(RET_K, k));
    }
    pub fn jump(&mut self, op: u16, k: u32, jt: Option<Label>, jf: Option<Label>) {
        self.items.push(Item::Jump(op, k, jt, jf));
    }

    /// Resolve the labels. Jumps too long for the 8-bit offsets of a conditional jump
    /// become `jcond 0,1; ja jt; ja jf` (32-bit offsets), until every offset fits.
    pub fn assemble(self) -> Result<Vec<sock_filter>, String> {
        let mut long = vec![false; self.items.len()];
        loop {
            let (at, labels, _) = self.layout(&long)?;
            let mut grew = false;
            for (i, item) in self.items.iter().enumerate() {
                if let (Item::Jump(_, _, jt, jf), false) = (item, long[i]) {
                    let next = at[i] + 1;
                    if [jt, jf]
                        .iter()
                        .any(|t| t.is_some_and(|l| labels[l.0] - next > 255))
                    {
                        long[i] = true;
                        grew = true;
                    }
                }
            }
            if !grew {
                return Ok(self.emit(&long, &at, &labels));
            }
        }
    }

    /// Addresses of items and labels for the given choice of long jumps.
    fn layout(&self, long: &[bool]) -> Result<(Vec<usize>, Vec<usize>, usize), String> {
        let mut at = Vec::with_capacity(self.items.len());
        let mut labels = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for (i, item) in self.items.iter().enumerate() {
            at.push(pc);
            match item {
                Item::Place(l) => labels[l.0] = pc,
                Item::Jump(..) if long[i] => pc += 3,
                _ => pc += 1,
            }
        }
        for (i, item) in self.items.iter().enumerate() {
            if let Item::Jump(_, _, jt, jf) = item {
                let next = at[i] + 1;
                for l in [jt, jf].into_iter().flatten() {
                    if labels[l.0] == usize::MAX || labels[l.0] < next {
                        return Err(format!(
                            "internal error: jump {i} to an unplaced or earlier label"
                        ));
                    }
                }
            }
        }
        Ok((at, labels, pc))
    }

    fn emit(&self, long: &[bool], at: &[usize], labels: &[usize]) -> Vec<sock_filter> {
        let ins = |code: u16, jt: u8, jf: u8, k: u32| sock_filter { code, jt, jf, k };
        let mut out = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            match item {
                Item::Place(_) => {}
                Item::Stmt(code, k) => out.push(ins(*code, 0, 0, *k)),
                Item::Jump(op, k, jt, jf) if long[i] => {
                    let after = at[i] + 3;
                    let target = |t: &Option<Label>| t.map_or(after, |l| labels[l.0]);
                    out.push(ins(*op, 0, 1, *k));
                    out.push(ins(JA, 0, 0, (target(jt) - (at[i] + 2)) as u32));
                    out.push(ins(JA, 0, 0, (target(jf) - after) as u32));
                }
                Item::Jump(op, k, jt, jf) => {
                    let off = |t: &Option<Label>| t.map_or(0, |l| (labels[l.0] - at[i] - 1) as u8);
                    out.push(ins(*op, off(jt), off(jf), *k));
                }
            }
        }
        out
    }
}
