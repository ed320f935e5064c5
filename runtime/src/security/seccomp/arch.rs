//! Architectures: the `SCMP_ARCH_*` names, which of them this host's kernel can run (each
//! needs a section in the filter), their audit numbers and their syscall tables.
//!
//! A filter only ever sees the ABIs of the host: an x86_64 kernel reports
//! `AUDIT_ARCH_X86_64` (x86_64 and x32, the latter with bit 30 set in the syscall number)
//! or `AUDIT_ARCH_I386`. Valid names of other architectures (say `SCMP_ARCH_S390X` on
//! x86_64) are accepted and skipped: their sections could never run.

use std::str::FromStr;

const AUDIT_ARCH_64BIT: u32 = 0x8000_0000;
const AUDIT_ARCH_LE: u32 = 0x4000_0000;
pub const AUDIT_ARCH_X86_64: u32 = 62 | AUDIT_ARCH_64BIT | AUDIT_ARCH_LE;
pub const AUDIT_ARCH_I386: u32 = 3 | AUDIT_ARCH_LE;
pub const AUDIT_ARCH_AARCH64: u32 = 183 | AUDIT_ARCH_64BIT | AUDIT_ARCH_LE;
pub const AUDIT_ARCH_ARM: u32 = 40 | AUDIT_ARCH_LE;
pub const AUDIT_ARCH_RISCV64: u32 = 243 | AUDIT_ARCH_64BIT | AUDIT_ARCH_LE;

/// x32 syscalls are x86_64 syscalls with this bit set in their number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One syscall ABI the filter can have a section for (each host constructs its own).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
    Riscv64,
}

/// Every architecture name of the runtime-spec (libseccomp 2.6).
const KNOWN: [&str; 23] = [
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// The ABIs this host runs, the native one first (libseccomp always filters the native one).
pub fn host_abis() -> &'static [Abi] {
    #[cfg(target_arch = "x86_64")]
    return &[Abi::X86_64, Abi::X86, Abi::X32];
    #[cfg(target_arch = "aarch64")]
    return &[Abi::Aarch64, Abi::Arm];
    #[cfg(target_arch = "riscv64")]
    return &[Abi::Riscv64];
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )))]
    return &[];
}

/// `Ok(Some(abi))` for an architecture this host runs, `Ok(None)` for a valid name of
/// another one, `Err(())` for a name that is no `SCMP_ARCH_*` at all.
pub fn parse(name: &str) -> Result<Option<Abi>, ()> {
    if !KNOWN.contains(&name) {
        return Err(());
    }
    Ok(host_abis().iter().copied().find(|a| a.name() == name))
}

impl Abi {
    pub fn name(self) -> &'static str {
        match self {
            Abi::X86_64 => "SCMP_ARCH_X86_64",
            Abi::X86 => "SCMP_ARCH_X86",
            Abi::X32 => "SCMP_ARCH_X32",
            Abi::Aarch64 => "SCMP_ARCH_AARCH64",
            Abi::Arm => "SCMP_ARCH_ARM",
            Abi::Riscv64 => "SCMP_ARCH_RISCV64",
        }
    }

    /// The `seccomp_data.arch` the kernel reports for a syscall made in this ABI.
    pub fn audit(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
            Abi::Riscv64 => AUDIT_ARCH_RISCV64,
        }
    }

    /// Whether syscall arguments are 64 bits wide. For 32-bit ABIs (x32 included, as
    /// libseccomp does) only the low 32 bits of an argument are compared.
    pub fn args_64(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::Aarch64 | Abi::Riscv64)
    }

    /// The syscall's number in this ABI (as the filter sees it: x32 numbers carry
    /// `X32_SYSCALL_BIT`), or None when the ABI has no such syscall.
    pub fn syscall(self, name: &str) -> Option<u32> {
        fn id<T: FromStr>(name: &str, id: fn(&T) -> i32) -> Option<u32> {
            // The tables spell syscalls that are Rust keywords as raw identifiers.
            let sysno = T::from_str(name)
                .or_else(|_| T::from_str(&format!("r#{name}")))
                .ok()?;
            u32::try_from(id(&sysno)).ok()
        }
        // Only the host's tables are built in (see Cargo.toml).
        match self {
            #[cfg(target_arch = "x86_64")]
            Abi::X86_64 => id(name, syscalls::x86_64::Sysno::id),
            #[cfg(target_arch = "x86_64")]
            Abi::X86 => id(name, syscalls::x86::Sysno::id),
            #[cfg(target_arch = "x86_64")]
            Abi::X32 => x32(name),
            #[cfg(target_arch = "aarch64")]
            Abi::Aarch64 => id(name, syscalls::aarch64::Sysno::id),
            #[cfg(target_arch = "aarch64")]
            Abi::Arm => id(name, syscalls::arm::Sysno::id),
            #[cfg(target_arch = "riscv64")]
            Abi::Riscv64 => id(name, syscalls::riscv64::Sysno::id),
            _ => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
/// The x32 table is the x86_64 one with the x32 bit, except for the syscalls that take
/// pointers to structures of different layout: those have numbers 512..=547 of their own,
/// and the x86_64-only entries do not exist (arch/x86/entry/syscalls/syscall_64.tbl).
fn x32(name: &str) -> Option<u32> {
    const OWN: [&str; 36] = [
        "rt_sigaction",
        "rt_sigreturn",
        "ioctl",
        "readv",
        "writev",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "execve",
        "ptrace",
        "rt_sigpending",
        "rt_sigtimedwait",
        "rt_sigqueueinfo",
        "sigaltstack",
        "timer_create",
        "mq_notify",
        "kexec_load",
        "waitid",
        "set_robust_list",
        "get_robust_list",
        "vmsplice",
        "move_pages",
        "preadv",
        "pwritev",
        "rt_tgsigqueueinfo",
        "recvmmsg",
        "sendmmsg",
        "process_vm_readv",
        "process_vm_writev",
        "setsockopt",
        "getsockopt",
        "io_setup",
        "io_submit",
        "execveat",
        "preadv2",
        "pwritev2",
    ];
    const X86_64_ONLY: [&str; 11] = [
        "uselib",
        "_sysctl",
        "create_module",
        "get_kernel_syms",
        "query_module",
        "nfsservctl",
        "set_thread_area",
        "get_thread_area",
        "epoll_ctl_old",
        "epoll_wait_old",
        "vserver",
    ];
    if let Some(i) = OWN.iter().position(|n| *n == name) {
        return Some((512 + i as u32) | X32_SYSCALL_BIT);
    }
    if X86_64_ONLY.contains(&name) {
        return None;
    }
    Abi::X86_64.syscall(name).map(|nr| nr | X32_SYSCALL_BIT)
}
