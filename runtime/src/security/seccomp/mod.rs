//! `linux.seccomp`: the syscall filter of the container's process.
//!
//! The runtime's parent compiles the profile into a BPF program with [`plan`] before it
//! forks, so a bad profile fails `rt create` early and the container init only has to
//! [`install`] it, just before execve. With `SCMP_ACT_NOTIFY` rules, install returns the
//! listener fd, which the runtime hands to the seccomp agent at `listenerPath` with
//! [`send_listener`].
//!
//! Semantics follow runc (libseccomp):
//! - `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`; errnoRet defaults to EPERM for ERRNO and
//!   TRACE and is an error on any other action.
//! - The native architecture is always filtered; `architectures` adds others. A syscall of
//!   an architecture that is not filtered kills the thread (libseccomp's bad-arch action).
//!   Valid names of architectures this host cannot run are skipped; unknown names fail.
//! - Unknown syscall names are skipped (debug log). Rules whose action is the default
//!   action are skipped. Per syscall, the first rule without args wins over every other
//!   rule for it; rules with args are tried in profile order, the first match wins.
//! - The args of one rule are ANDed, unless two of them test the same argument: then, as
//!   runc does, each arg becomes a rule of its own (ORed).
//! - Unless the default action allows (ALLOW, LOG, TRACE) or already is ERRNO(ENOSYS),
//!   syscalls numbered above the last one the profile names (per listed architecture) get
//!   ENOSYS, so that programs fall back from syscalls newer than the profile (runc's stub).
//!
//! Not supported: the socketcall(2)/ipc(2) multiplexers of 32-bit x86 are filtered as the
//! syscalls they are, not per operation as libseccomp does; syscalls newer than the tables
//! of the `syscalls` crate count as unknown.

mod arch;
mod bpf;
pub mod kernel;
mod notify;
mod profile;
#[cfg(test)]
mod tests;

use std::collections::btree_map::Entry as MapEntry;
use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::bail;
use crate::error::{Error, Result};
use bpf::{Entry, Section};
use profile::{Action, Cond, Profile};

pub use kernel::supported_flags;
pub use notify::send_listener;

/// Syscalls the runtime itself may need after install, to hand the listener fd over:
/// notifying them would hang the container's start (runc refuses `write` for this reason).
pub const HANDOFF_SYSCALLS: [&str; 3] = ["write", "sendmsg", "sendto"];

/// Compiled once by the parent before fork (so the child only installs it).
#[derive(Clone)]
pub struct SeccompPlan {
    program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_LOG / SPEC_ALLOW, and NEW_LISTENER with NOTIFY rules.
    flags: libc::c_ulong,
    /// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, dropped (with a warning) by a kernel
    /// without it (before 6.0).
    wait_killable: bool,
    notify: bool,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
}

impl fmt::Debug for SeccompPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeccompPlan")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("wait_killable", &self.wait_killable)
            .field("notify", &self.notify)
            .field("listener_path", &self.listener_path)
            .field("listener_metadata", &self.listener_metadata)
            .finish()
    }
}

impl SeccompPlan {
    /// Whether the profile has SCMP_ACT_NOTIFY rules (install then returns a listener).
    pub fn needs_listener(&self) -> bool {
        self.notify
    }

    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// Length of the BPF program (the kernel takes at most 4096 instructions).
    pub fn instructions(&self) -> usize {
        self.program.len()
    }
}

/// Read and compile `linux.seccomp` (the semantics are in the module's doc). Fails on
/// anything this runtime or kernel cannot enforce, naming the field and the value.
pub fn plan(seccomp: &serde_json::Value) -> Result<SeccompPlan> {
    let p = profile::parse(seccomp)?;
    if p.default == Action::Notify {
        bail!("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action (the runtime itself could no longer run)");
    }
    let notify = p.rules.iter().any(|r| r.action == Action::Notify);
    for r in p.rules.iter().filter(|r| r.action == Action::Notify) {
        if let Some(n) = r
            .names
            .iter()
            .find(|n| HANDOFF_SYSCALLS.contains(&n.as_str()))
        {
            bail!("{}.names: SCMP_ACT_NOTIFY cannot be used for {n:?}: the runtime needs it to pass the seccomp listener on", r.field);
        }
    }
    if notify && p.listener_path.is_none() {
        bail!("linux.seccomp.listenerPath: required with SCMP_ACT_NOTIFY rules (where to send the seccomp listener)");
    }
    if p.listener_metadata.is_some() && p.listener_path.is_none() {
        bail!("linux.seccomp.listenerMetadata: set without listenerPath");
    }
    let (flags, wait_killable) = flags(&p, notify)?;
    check_actions(&p)?;
    let sections = sections(&p)?;
    let program = bpf::compile(&sections, p.default, libc::SECCOMP_RET_KILL_THREAD)
        .map_err(|e| Error::msg(format!("linux.seccomp: {e}")))?;
    if program.len() > libc::BPF_MAXINSNS as usize {
        bail!(
            "linux.seccomp: the compiled filter has {} instructions, more than the kernel's limit of {}",
            program.len(),
            libc::BPF_MAXINSNS
        );
    }
    log::debug!(
        "seccomp: {} rules compiled into {} BPF instructions",
        p.rules.len(),
        program.len()
    );
    Ok(SeccompPlan {
        program,
        flags,
        wait_killable,
        notify,
        listener_path: p.listener_path,
        listener_metadata: p.listener_metadata,
    })
}

/// The actions the profile compiler takes (see `profile::action`).
pub const ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// The argument comparisons the compiler takes.
pub const OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// The `flags` values [`flags`] accepts.
pub const KNOWN_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// The architectures whose system calls the filter checks on this host.
pub fn host_arch_names() -> Vec<&'static str> {
    arch::host_abis().iter().map(|a| a.name()).collect()
}

fn flags(p: &Profile, notify: bool) -> Result<(libc::c_ulong, bool)> {
    let mut flags = if notify {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    let mut wait_killable = false;
    for f in &p.flags {
        match f.as_str() {
            // runc accepts and ignores it: the init is single-threaded, and TSYNC would
            // conflict with NEW_LISTENER.
            "SECCOMP_FILTER_FLAG_TSYNC" => {}
            "SECCOMP_FILTER_FLAG_LOG" => flags |= libc::SECCOMP_FILTER_FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => flags |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only meaningful (and only accepted by the kernel) with a listener.
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" if notify => wait_killable = true,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => log::debug!(
                "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no SCMP_ACT_NOTIFY rule"
            ),
            other => bail!("linux.seccomp.flags: unknown flag {other:?}"),
        }
    }
    Ok((flags, wait_killable))
}

/// Actions newer than seccomp itself must be known to the kernel: it would treat an
/// unknown return value as KILL_PROCESS.
fn check_actions(p: &Profile) -> Result<()> {
    let used = std::iter::once(("linux.seccomp.defaultAction".to_string(), p.default)).chain(
        p.rules
            .iter()
            .map(|r| (format!("{}.action", r.field), r.action)),
    );
    for (field, a) in used {
        let name = match a {
            Action::Log => "SCMP_ACT_LOG (Linux 4.14)",
            Action::KillProcess => "SCMP_ACT_KILL_PROCESS (Linux 4.14)",
            Action::Notify => "SCMP_ACT_NOTIFY (Linux 5.0)",
            _ => continue,
        };
        let ret = a.ret();
        // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from the pointer, which is valid.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_ACTION_AVAIL,
                0,
                &ret as *const u32,
            )
        };
        if r != 0 && Errno::last() == Errno::EOPNOTSUPP {
            bail!("{field}: {name} is not supported by this kernel");
        }
    }
    Ok(())
}

/// The rules of each ABI of the host, by syscall number.
fn sections(p: &Profile) -> Result<Vec<Section>> {
    let host = arch::host_abis();
    if host.is_empty() {
        bail!("linux.seccomp: seccomp is not supported on this host architecture by rt");
    }
    let mut abis = vec![host[0]];
    let mut listed = Vec::new();
    for name in &p.architectures {
        match arch::parse(name) {
            Err(()) => bail!("linux.seccomp.architectures: unknown architecture {name:?}"),
            Ok(None) => {
                log::debug!("linux.seccomp.architectures: {name} is not run by this host, skipped")
            }
            Ok(Some(abi)) => {
                listed.push(abi);
                if !abis.contains(&abi) {
                    abis.push(abi);
                }
            }
        }
    }
    let stub = match p.default {
        Action::Allow | Action::Log | Action::Trace(_) => false,
        Action::Errno(e) => i32::from(e) != libc::ENOSYS,
        _ => true,
    };
    for r in &p.rules {
        for name in &r.names {
            if !abis.iter().any(|a| a.syscall(name).is_some()) {
                log::debug!("{}.names: unknown syscall {name:?} skipped", r.field);
            }
        }
    }
    let mut out = Vec::new();
    for abi in abis {
        let mut syscalls = BTreeMap::new();
        let mut last = 0;
        for r in &p.rules {
            for nr in r.names.iter().filter_map(|n| abi.syscall(n)) {
                last = last.max(nr);
                if r.action != p.default {
                    add(&mut syscalls, nr, r.action, &r.args);
                }
            }
        }
        let enosys_above = (stub && listed.contains(&abi) && last > 0).then_some(last);
        out.push(Section {
            abi,
            syscalls,
            enosys_above,
        });
    }
    Ok(out)
}

/// Add one rule for one syscall, the way libseccomp merges rules.
fn add(syscalls: &mut BTreeMap<u32, Entry>, nr: u32, action: Action, args: &[Cond]) {
    let mut seen = [false; 6];
    let same_arg_twice = args
        .iter()
        .any(|c| std::mem::replace(&mut seen[usize::from(c.index)], true));
    let rules: Vec<(Vec<Cond>, Action)> = if same_arg_twice {
        args.iter().map(|c| (vec![*c], action)).collect()
    } else {
        vec![(args.to_vec(), action)]
    };
    match syscalls.entry(nr) {
        MapEntry::Vacant(v) => {
            v.insert(if args.is_empty() {
                Entry::Always(action)
            } else {
                Entry::Rules(rules)
            });
        }
        // A rule without args already covers every call.
        MapEntry::Occupied(o) if matches!(o.get(), Entry::Always(_)) => {}
        MapEntry::Occupied(mut o) => {
            if args.is_empty() {
                o.insert(Entry::Always(action));
            } else if let Entry::Rules(list) = o.get_mut() {
                list.extend(rules);
            }
        }
    }
}

/// Install in the calling thread (the container init, just before execve; NoNewPrivs or
/// CAP_SYS_ADMIN as the kernel requires — if noNewPrivileges is false the caller still has
/// CAP_SYS_ADMIN at that point). Returns the notify listener fd when the profile has
/// SCMP_ACT_NOTIFY rules. Allocates nothing unless it fails.
pub fn install(plan: &SeccompPlan) -> Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: plan.program.len() as libc::c_ushort,
        filter: plan.program.as_ptr() as *mut libc::sock_filter,
    };
    let mut flags = plan.flags;
    if plan.wait_killable {
        flags |= libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
    loop {
        // SAFETY: `prog` points into `plan.program`, which outlives the call; the kernel
        // copies the program. With NEW_LISTENER the result is a new fd that we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r >= 0 {
            if !plan.notify {
                return Ok(None);
            }
            // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the kernel returned a fresh
            // (close-on-exec) fd that nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }));
        }
        let e = Errno::last();
        if e == Errno::EINVAL && flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
            log::warn!("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported by this kernel, ignored");
            flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
            continue;
        }
        let hint = match e {
            Errno::EACCES => " (loading a filter needs no_new_privs or CAP_SYS_ADMIN)",
            Errno::EINVAL if flags & !libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 => {
                " (does this kernel support linux.seccomp.flags?)"
            }
            Errno::EBUSY => " (another seccomp listener is already installed)",
            _ => "",
        };
        return Err(Error::sys(
            format!("seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x}) for linux.seccomp{hint}"),
            e,
        ));
    }
}
