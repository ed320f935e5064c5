//! The device controller of cgroup v2. Unlike v1 there are no `devices.allow`/`devices.deny`
//! files: access to device nodes is decided by an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup, which the kernel runs on every open
//! and mknod of a device node with a `struct bpf_cgroup_dev_ctx`:
//!
//! ```text
//! struct bpf_cgroup_dev_ctx { u32 access_type; /* (access << 16) | type */ u32 major; u32 minor; };
//! ```
//!
//! The program is generated here from the OCI `linux.resources.devices` rules and written
//! instruction by instruction, so no eBPF toolchain or library is needed.
//!
//! Semantics: the rules are read in order and, for every access bit asked for (m, r, w), the
//! LAST rule that matches the device and names that bit decides it; a bit no rule names is
//! denied. The request is allowed only if every bit it asks for is allowed. For requests of a
//! single bit this is exactly "last matching rule wins"; for `rw` it means an allow must cover
//! both bits (`(access & !rule_access) == 0`, as runc does), while two allows `r` and `w`
//! together also grant `rw`, as they would on cgroup v1. A leading
//! `{"allow": true, "access": "rwm"}` with no type therefore allows everything the later rules
//! do not take back, and a leading deny of everything (or no rule at all) means default deny.
//!
//! The program walks the rules backwards (last first) keeping the access bits not yet decided
//! in a register: an allow that matches clears its bits and returns 1 once none are left, a
//! deny that matches a bit still undecided returns 0, and falling off the end returns 0.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use nix::sys::stat::Mode;

/// One rule, as in linux.resources.devices: kind None or Some('a') = all types, 'c', 'b';
/// major/minor None or -1 = any; access any subset of "rwm" (the caller maps an absent
/// access to "rwm"; an empty string names no access and so has no effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Option<char>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode: class | size/op | mode/source.
    pub code: u8,
    /// Destination register in the low nibble, source register in the high one (on
    /// little-endian hosts; the C bitfields flip on big-endian ones, see `regs`).
    pub regs: u8,
    /// Jump offset, counted in instructions from the next one; memory offset for loads.
    pub off: i16,
    /// Immediate operand.
    pub imm: i32,
}

impl Insn {
    /// The destination register.
    pub fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0x0f
        } else {
            self.regs >> 4
        }
    }

    /// The source register.
    pub fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0x0f
        }
    }
}

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

// Registers. R1 holds the context pointer on entry and is free as scratch once the context
// has been read; R0 is the return value.
const R0: u8 = 0;
const CTX: u8 = 1;
const TMP: u8 = 1;
/// Device type (BPF_DEVCG_DEV_*).
const TYPE: u8 = 2;
/// Access bits asked for that no rule has decided yet.
const PENDING: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

// struct bpf_cgroup_dev_ctx.
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// `struct bpf_insn` packs both registers into one byte with C bitfields, whose order
/// follows the byte order.
fn regs(dst: u8, src: u8) -> u8 {
    if cfg!(target_endian = "little") {
        (src << 4) | dst
    } else {
        (dst << 4) | src
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: regs(dst, src),
        off,
        imm,
    }
}

/// dst = *(u32 *)(src + off)
fn load_word(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_W | BPF_MEM, dst, src, off, 0)
}

/// 32-bit ALU with an immediate; the result is zero-extended to 64 bits.
fn alu32_imm(op: u8, dst: u8, imm: u32) -> Insn {
    insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm as i32)
}

/// dst = (u32)src
fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}

/// Conditional jump against an immediate, which the kernel sign-extends to 64 bits. The
/// offset is filled in by `Block::finish`.
fn jump_imm(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm)
}

fn jump_reg(op: u8, dst: u8, src: u8) -> Insn {
    insn(BPF_JMP | op | BPF_X, dst, src, 0, 0)
}

fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

/// `return verdict;`
fn ret(allow: bool) -> [Insn; 2] {
    [alu32_imm(BPF_MOV, R0, u32::from(allow)), exit()]
}

/// A rule checked against the context: `None` matches anything.
#[derive(Debug, Clone, Copy)]
struct Match {
    allow: bool,
    kind: Option<u32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: u32,
}

fn parse_kind(kind: Option<char>) -> Result<Option<u32>, String> {
    match kind {
        None | Some('a') => Ok(None),
        Some('c') => Ok(Some(DEV_CHAR)),
        Some('b') => Ok(Some(DEV_BLOCK)),
        Some(k) => Err(format!("unknown device type {k:?} (want a, c or b)")),
    }
}

fn parse_number(what: &str, n: Option<i64>) -> Result<Option<u32>, String> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| format!("device {what} {n} out of range")),
    }
}

fn parse_access(access: &str) -> Result<u32, String> {
    access.chars().try_fold(0, |bits, c| match c {
        'm' => Ok(bits | ACC_MKNOD),
        'r' => Ok(bits | ACC_READ),
        'w' => Ok(bits | ACC_WRITE),
        _ => Err(format!("unknown device access {c:?} in {access:?}")),
    })
}

fn parse_rule(rule: &Rule) -> Result<Match, String> {
    Ok(Match {
        allow: rule.allow,
        kind: parse_kind(rule.kind)?,
        major: parse_number("major", rule.major)?,
        minor: parse_number("minor", rule.minor)?,
        access: parse_access(&rule.access)?,
    })
}

/// The instructions of one rule. Every "does not match" jump goes to the first instruction
/// after the block, which is only known once the block is complete.
#[derive(Default)]
struct Block {
    insns: Vec<Insn>,
    to_next: Vec<usize>,
}

impl Block {
    fn push(&mut self, i: Insn) {
        self.insns.push(i);
    }

    fn jump_to_next(&mut self, i: Insn) {
        self.to_next.push(self.insns.len());
        self.insns.push(i);
    }

    /// Skip the rest of the block unless `reg == value`, comparing all 32 bits: an
    /// immediate above i32::MAX would be sign-extended by the 64-bit jump and never match
    /// the zero-extended register, so such values go through the scratch register.
    fn unless_equal(&mut self, reg: u8, value: u32) {
        match i32::try_from(value) {
            Ok(imm) => self.jump_to_next(jump_imm(BPF_JNE, reg, imm)),
            Err(_) => {
                self.push(alu32_imm(BPF_MOV, TMP, value));
                self.jump_to_next(jump_reg(BPF_JNE, reg, TMP));
            }
        }
    }

    fn finish(mut self) -> Vec<Insn> {
        let len = self.insns.len();
        for &at in &self.to_next {
            self.insns[at].off = i16::try_from(len - at - 1).expect("a block is a few insns");
        }
        self.insns
    }
}

fn rule_block(m: &Match) -> Vec<Insn> {
    let mut b = Block::default();
    if let Some(kind) = m.kind {
        b.unless_equal(TYPE, kind);
    }
    if let Some(major) = m.major {
        b.unless_equal(MAJOR, major);
    }
    if let Some(minor) = m.minor {
        b.unless_equal(MINOR, minor);
    }
    if m.allow {
        // These bits are granted; any others asked for are left to earlier rules.
        b.push(alu32_imm(BPF_AND, PENDING, !m.access & ACC_ALL));
        b.jump_to_next(jump_imm(BPF_JNE, PENDING, 0));
        b.insns.extend(ret(true));
    } else {
        // Denied if it takes away a bit asked for that no later rule granted.
        b.push(mov32_reg(TMP, PENDING));
        b.push(alu32_imm(BPF_AND, TMP, m.access));
        b.jump_to_next(jump_imm(BPF_JEQ, TMP, 0));
        b.insns.extend(ret(false));
    }
    b.finish()
}

/// Read the context into registers once, before R1 is reused as scratch.
fn prologue() -> [Insn; 6] {
    [
        load_word(TYPE, CTX, 0),
        alu32_imm(BPF_AND, TYPE, 0xffff),
        load_word(PENDING, CTX, 0),
        alu32_imm(BPF_RSH, PENDING, 16),
        load_word(MAJOR, CTX, 4),
        load_word(MINOR, CTX, 8),
    ]
}

/// The program's instructions for `rules` (see the module documentation for the semantics).
pub fn build(rules: &[Rule]) -> Result<Vec<Insn>, String> {
    let mut matches = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        matches.push(parse_rule(rule).map_err(|e| format!("linux.resources.devices[{i}]: {e}"))?);
    }
    let mut insns = prologue().to_vec();
    // A rule naming no access decides nothing; leaving it out also keeps the verifier from
    // seeing a block whose checks cannot matter.
    for m in matches.iter().rev().filter(|m| m.access != 0) {
        insns.extend(rule_block(m));
    }
    insns.extend(ret(false));
    Ok(insns)
}

// bpf(2) commands, program and attach types, flags (linux/bpf.h).
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_PROG_DETACH: u32 = 9;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_PROG_QUERY: u32 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The kernel wants a GPL-compatible license string only for some helpers; we call none,
/// but a license is still required. Same as runc.
const LICENSE: &[u8] = b"Apache\0";
/// Shown by `bpftool prog` so an operator can tell whose program this is.
const PROG_NAME: &[u8] = b"rt_devices";
/// Room for the verifier's explanation when a load fails.
const LOG_SIZE: usize = 256 * 1024;
/// How much of the verifier log goes into the error: its end says what went wrong.
const LOG_TAIL: usize = 4096;
/// The kernel allows at most 64 programs per cgroup and attach type.
const MAX_PROGS: usize = 64;

// The members of `union bpf_attr` used here, with explicit padding so that every byte the
// kernel reads is initialised (it rejects non-zero bytes past the fields it knows).

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(2).
///
/// # Safety
///
/// `attr` must be the member of `union bpf_attr` that `cmd` expects, and every pointer in it
/// must point to memory that is valid, for the access the kernel makes, for the whole call.
unsafe fn bpf<T>(cmd: u32, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] struct of exactly the size passed;
    // the pointers inside it are the caller's responsibility (see above).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    Errno::result(r)
}

/// Take ownership of an fd returned by bpf(2).
fn owned_fd(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new fd and nothing else refers to it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// BPF_PROG_LOAD, with the verifier's log written to `log` if one is given.
fn prog_load(insns: &[Insn], log: Option<&mut [u8]>) -> Result<OwnedFd, Errno> {
    let mut prog_name = [0u8; 16];
    prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| Errno::E2BIG)?,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
    };
    // SAFETY: `insns`, `LICENSE` (NUL-terminated) and the log buffer outlive the call; the
    // kernel reads `insn_cnt` instructions and writes at most `log_size` log bytes.
    unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map(owned_fd)
}

/// Run `f` with RLIMIT_MEMLOCK raised, then put the limit back: kernels before 5.11 charge
/// BPF programs to it (often 64 KiB) and answer EPERM when it is exhausted. The limit only
/// matters while loading, so nothing else, the container least of all, sees the change.
fn with_memlock_raised<T>(f: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_MEMLOCK)?;
    setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY)
        .or_else(|_| setrlimit(Resource::RLIMIT_MEMLOCK, hard, hard))?;
    let r = f();
    let _ = setrlimit(Resource::RLIMIT_MEMLOCK, soft, hard);
    r
}

/// The end of the verifier's log, as text.
fn log_text(buf: &[u8]) -> String {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..len]);
    let text = text.trim_end();
    if text.len() <= LOG_TAIL {
        return text.to_string();
    }
    let mut start = text.len() - LOG_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// Load the program. On failure, the errno of the first attempt (the log buffer can change
/// it, e.g. to ENOSPC when the log is truncated) and the verifier's log from a second one.
fn load_program(insns: &[Insn]) -> Result<OwnedFd, (Errno, String)> {
    let first = match prog_load(insns, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    if first == Errno::EPERM {
        if let Ok(fd) = with_memlock_raised(|| prog_load(insns, None)) {
            return Ok(fd);
        }
    }
    let mut log = vec![0u8; LOG_SIZE];
    match prog_load(insns, Some(&mut log)) {
        Ok(fd) => Ok(fd),
        Err(_) => Err((first, log_text(&log))),
    }
}

fn attach_attr(cgroup: BorrowedFd, prog: BorrowedFd, flags: u32) -> AttachAttr {
    AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    }
}

/// BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI: the new program runs alongside those already
/// attached (a device is allowed only if all of them allow it) until they are detached.
fn prog_attach(cgroup: BorrowedFd, prog: BorrowedFd) -> Result<(), Errno> {
    let mut attr = attach_attr(cgroup, prog, BPF_F_ALLOW_MULTI);
    // SAFETY: the attr holds only integers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

fn prog_detach(cgroup: BorrowedFd, prog: BorrowedFd) -> Result<(), Errno> {
    let mut attr = attach_attr(cgroup, prog, 0);
    // SAFETY: the attr holds only integers.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// The ids of the device programs attached to the cgroup itself (not inherited ones).
fn prog_query(cgroup: BorrowedFd) -> Result<Vec<u32>, Errno> {
    let mut ids = vec![0u32; MAX_PROGS];
    // The limit of 64 could grow in a later kernel: ENOSPC then tells the real count.
    for _ in 0..4 {
        let mut attr = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            _pad: 0,
        };
        // SAFETY: `prog_ids` points to `prog_cnt` writable u32s that outlive the call.
        match unsafe { bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(Errno::ENOSPC) => ids = vec![0; attr.prog_cnt as usize + MAX_PROGS],
            Err(e) => return Err(e),
        }
    }
    Err(Errno::ENOSPC)
}

fn prog_get_fd_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: the attr holds only integers.
    unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }.map(owned_fd)
}

/// Detach the programs that were attached before ours. A program that is already gone
/// (ENOENT) needs nothing; one we may not open (EPERM/EACCES, e.g. labelled by an LSM for
/// systemd) is left, as runc does: it can only deny more, never allow more.
fn detach_old(cgroup: BorrowedFd, ids: &[u32]) -> Result<(), (u32, &'static str, Errno)> {
    for &id in ids {
        let prog = match prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::EPERM | Errno::EACCES) => continue,
            Err(e) => return Err((id, "BPF_PROG_GET_FD_BY_ID", e)),
        };
        match prog_detach(cgroup, prog.as_fd()) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err((id, "BPF_PROG_DETACH", e)),
        }
    }
    Ok(())
}

fn errno_text(e: Errno) -> String {
    format!("{e:?} ({})", e.desc())
}

/// Install the device filter for `rules` on the cgroup v2 directory `cgroup_dir`, replacing
/// any filter attached there before (an `update`). The new program is attached before the
/// old ones are detached, so the container is never without a filter; if detaching fails,
/// both stay attached, which is stricter, not looser.
pub fn apply(cgroup_dir: &Path, rules: &[Rule]) -> Result<(), String> {
    let insns = build(rules)?;
    let at = cgroup_dir.display();
    let fail = |call: &str, e: Errno| format!("bpf({call}) for {at}: {}", errno_text(e));
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = open(cgroup_dir, flags, Mode::empty())
        .map_err(|e| format!("open {at}: {}", errno_text(e)))?;
    let old = prog_query(dir.as_fd()).map_err(|e| fail("BPF_PROG_QUERY", e))?;
    let prog = load_program(&insns).map_err(|(e, log)| {
        let msg = fail("BPF_PROG_LOAD", e);
        if log.is_empty() {
            msg
        } else {
            format!("{msg}: {log}")
        }
    })?;
    prog_attach(dir.as_fd(), prog.as_fd()).map_err(|e| fail("BPF_PROG_ATTACH", e))?;
    detach_old(dir.as_fd(), &old).map_err(|(id, call, e)| {
        format!(
            "bpf({call}) of old program {id} for {at}: {}",
            errno_text(e)
        )
    })
}

#[cfg(test)]
mod tests {
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
}
