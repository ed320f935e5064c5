//! `process.rlimits`.

use crate::error::{Error, Result};
use crate::spec::Rlimit;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

pub fn plan(rlimits: &[Rlimit]) -> Result<Vec<(String, Limit)>> {
    for (i, r) in rlimits.iter().enumerate() {
        if rlimits[..i].iter().any(|o| o.kind == r.kind) {
            return Err(Error::msg(format!(
                "process.rlimits: {} is listed twice (the spec allows one entry per type)",
                r.kind
            )));
        }
    }
    rlimits
        .iter()
        .map(|r| {
            let resource = match r.kind.as_str() {
                "RLIMIT_AS" => libc::RLIMIT_AS,
                "RLIMIT_CORE" => libc::RLIMIT_CORE,
                "RLIMIT_CPU" => libc::RLIMIT_CPU,
                "RLIMIT_DATA" => libc::RLIMIT_DATA,
                "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
                "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
                "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
                "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
                "RLIMIT_NICE" => libc::RLIMIT_NICE,
                "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
                "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
                "RLIMIT_RSS" => libc::RLIMIT_RSS,
                "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
                "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
                "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
                "RLIMIT_STACK" => libc::RLIMIT_STACK,
                other => {
                    return Err(Error::msg(format!(
                        "process.rlimits: unknown type {other:?}"
                    )))
                }
            };
            if r.soft > r.hard {
                return Err(Error::msg(format!(
                    "process.rlimits: {} soft limit {} is above its hard limit {}",
                    r.kind, r.soft, r.hard
                )));
            }
            Ok((
                r.kind.clone(),
                Limit {
                    resource,
                    soft: r.soft,
                    hard: r.hard,
                },
            ))
        })
        .collect()
}

pub fn apply(limits: &[(String, Limit)]) -> Result<()> {
    for (name, l) in limits {
        let rl = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(l.resource, &rl) } != 0 {
            let e = nix::errno::Errno::last();
            let hint = if e == nix::errno::Errno::EPERM {
                " (raising a hard limit needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            return Err(Error::sys(
                format!("setrlimit {name} soft={} hard={}{hint}", l.soft, l.hard),
                e,
            ));
        }
    }
    Ok(())
}
