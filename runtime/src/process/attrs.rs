//! Process attributes of runtime-spec 1.2: I/O priority, scheduler, personality and the CPU
//! affinity the program starts with. Parsed by the parent (bad values fail `create` before
//! anything starts), applied by the init just before execve.

use crate::bail;
use crate::error::{Error, Result};
use crate::spec::{ExecCpuAffinity, IoPriority, MemoryPolicy, Personality, Scheduler};

#[derive(Debug, Clone, Default)]
pub struct Attrs {
    /// ioprio_set value: class << 13 | level.
    ioprio: Option<i32>,
    sched: Option<SchedAttr>,
    personality: Option<libc::c_ulong>,
    affinity_final: Option<libc::cpu_set_t>,
    affinity_initial: Option<libc::cpu_set_t>,
    mempolicy: Option<super::mempolicy::MemoryPolicy>,
}

/// struct sched_attr of sched_setattr(2).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

pub fn plan(
    io: Option<&IoPriority>,
    sched: Option<&Scheduler>,
    personality: Option<&Personality>,
    affinity: Option<&ExecCpuAffinity>,
    memory_policy: Option<&MemoryPolicy>,
) -> Result<Attrs> {
    let mut a = Attrs {
        mempolicy: super::mempolicy::plan(memory_policy)?,
        ..Attrs::default()
    };
    if let Some(io) = io {
        let class = match io.class.as_str() {
            "IOPRIO_CLASS_RT" => 1,
            "IOPRIO_CLASS_BE" => 2,
            "IOPRIO_CLASS_IDLE" => 3,
            other => bail!("process.ioPriority.class: unknown class {other:?}"),
        };
        if !(0..=7).contains(&io.priority) {
            bail!(
                "process.ioPriority.priority: {} is outside 0..7",
                io.priority
            );
        }
        a.ioprio = Some(class << 13 | io.priority);
    }
    if let Some(s) = sched {
        let policy = match s.policy.as_str() {
            "SCHED_OTHER" => 0,
            "SCHED_FIFO" => 1,
            "SCHED_RR" => 2,
            "SCHED_BATCH" => 3,
            "SCHED_ISO" => 4,
            "SCHED_IDLE" => 5,
            "SCHED_DEADLINE" => 6,
            other => bail!("process.scheduler.policy: unknown policy {other:?}"),
        };
        let mut flags = 0u64;
        for f in &s.flags {
            flags |= match f.as_str() {
                "SCHED_FLAG_RESET_ON_FORK" => 0x01,
                "SCHED_FLAG_RECLAIM" => 0x02,
                "SCHED_FLAG_DL_OVERRUN" => 0x04,
                "SCHED_FLAG_KEEP_POLICY" => 0x08,
                "SCHED_FLAG_KEEP_PARAMS" => 0x10,
                "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
                "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
                other => bail!("process.scheduler.flags: unknown flag {other:?}"),
            };
        }
        a.sched = Some(SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy,
            flags,
            nice: s.nice,
            priority: s.priority.max(0) as u32,
            runtime: s.runtime,
            deadline: s.deadline,
            period: s.period,
        });
    }
    if let Some(p) = personality {
        let mut value = match p.domain.as_str() {
            "LINUX" => 0x0000,
            "LINUX32" => 0x0008,
            other => bail!("linux.personality.domain: unknown domain {other:?}"),
        };
        for f in &p.flags {
            // The spec leaves flags open; the kernel's names are accepted.
            value |= match f.as_str() {
                "ADDR_NO_RANDOMIZE" => 0x0040000,
                "ADDR_COMPAT_LAYOUT" => 0x0200000,
                "READ_IMPLIES_EXEC" => 0x0400000,
                "ADDR_LIMIT_32BIT" => 0x0800000,
                "SHORT_INODE" => 0x1000000,
                "WHOLE_SECONDS" => 0x2000000,
                "STICKY_TIMEOUTS" => 0x4000000,
                "ADDR_LIMIT_3GB" => 0x8000000,
                other => bail!("linux.personality.flags: unknown flag {other:?}"),
            };
        }
        a.personality = Some(value);
    }
    if let Some(aff) = affinity {
        a.affinity_initial = aff
            .initial
            .as_deref()
            .map(|c| cpu_set("initial", c))
            .transpose()?;
        a.affinity_final = aff
            .final_
            .as_deref()
            .map(|c| cpu_set("final", c))
            .transpose()?;
    }
    Ok(a)
}

/// "0-3,7" → a cpu_set_t.
fn cpu_set(field: &str, list: &str) -> Result<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let bad = || {
        Error::msg(format!(
            "process.execCPUAffinity.{field}: bad CPU list {list:?}"
        ))
    };
    for cpu in crate::id_list::parse(list, libc::CPU_SETSIZE as usize).ok_or_else(bad)? {
        // SAFETY: `cpu` is below CPU_SETSIZE (id_list::parse's limit).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Ok(set)
}

fn set_affinity(set: &libc::cpu_set_t, field: &str) -> Result<()> {
    // SAFETY: sched_setaffinity reads a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    nix::errno::Errno::result(r).map(drop).map_err(|e| {
        Error::sys(
            format!("sched_setaffinity (process.execCPUAffinity.{field})"),
            e,
        )
    })
}

impl Attrs {
    /// While the runtime works inside the container (set as early as possible).
    pub fn apply_initial(&self) -> Result<()> {
        match &self.affinity_initial {
            Some(set) => set_affinity(set, "initial"),
            None => Ok(()),
        }
    }

    /// While the process still has the capabilities they may need (an IOPRIO_CLASS_RT
    /// priority needs CAP_SYS_ADMIN, a realtime policy CAP_SYS_NICE, as in runc): both
    /// outlive the user switch and execve.
    pub fn apply_privileged(&self) -> Result<()> {
        if let Some(v) = self.ioprio {
            // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, 0 = self, value) takes integers.
            let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, v) };
            nix::errno::Errno::result(r)
                .map_err(|e| Error::sys(format!("ioprio_set {v:#x} (process.ioPriority)"), e))?;
        }
        if let Some(attr) = &self.sched {
            // SAFETY: sched_setattr reads a valid sched_attr whose size field is set.
            let r =
                unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
            nix::errno::Errno::result(r).map_err(|e| {
                Error::sys(
                    format!("sched_setattr policy {} (process.scheduler)", attr.policy),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Just before execve: what the program starts with.
    pub fn apply_final(&self) -> Result<()> {
        if let Some(m) = &self.mempolicy {
            m.apply()?;
        }
        if let Some(p) = self.personality {
            // SAFETY: personality(2) takes an integer.
            if unsafe { libc::personality(p) } < 0 {
                return Err(Error::sys(
                    format!("personality {p:#x} (linux.personality)"),
                    nix::errno::Errno::last(),
                ));
            }
        }
        match &self.affinity_final {
            Some(set) => set_affinity(set, "final"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        let io = IoPriority {
            class: "IOPRIO_CLASS_BE".into(),
            priority: 3,
        };
        assert_eq!(
            plan(Some(&io), None, None, None, None).unwrap().ioprio,
            Some(2 << 13 | 3)
        );
        let bad = IoPriority {
            class: "X".into(),
            priority: 0,
        };
        assert!(plan(Some(&bad), None, None, None, None).is_err());
        let set = cpu_set("final", "0-1,3").unwrap();
        // SAFETY: indexes below CPU_SETSIZE.
        let has = |c| unsafe { libc::CPU_ISSET(c, &set) };
        assert!(has(0) && has(1) && has(3) && !has(2));
        assert!(cpu_set("final", "3-1").is_err());
        let p = Personality {
            domain: "LINUX32".into(),
            flags: vec![],
        };
        assert_eq!(
            plan(None, None, Some(&p), None, None).unwrap().personality,
            Some(8)
        );
    }
}
