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

/// Whether this kernel loads the program for `rules` (BPF_PROG_LOAD only, never attached:
/// the program is gone when its fd closes here). What `rt check` asks on a cgroup2 host.
pub fn probe_load(rules: &[Rule]) -> Result<(), String> {
    let insns = build(rules)?;
    load_program(&insns).map(drop).map_err(|(e, log)| {
        let msg = format!("bpf(BPF_PROG_LOAD): {}", errno_text(e));
        if log.is_empty() {
            msg
        } else {
            format!("{msg}: {log}")
        }
    })
}

#[cfg(test)]
#[path = "devices_bpf_tests.rs"]
mod tests;
