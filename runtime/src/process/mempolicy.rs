//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA memory policy the container's
//! processes start with, set with set_mempolicy(2) just before execve (it survives exec
//! and is inherited by children). Parsed by the parent, so that a bad mode, flag or a node
//! this host does not have fails `create` before anything starts.

use std::path::Path;

use crate::bail;
use crate::error::{Error, Result};
use crate::spec;

#[derive(Debug, Clone, Default)]
pub struct MemoryPolicy {
    /// The mode with its MPOL_F_* flags, as set_mempolicy takes it.
    mode: i32,
    /// The node mask, one bit per node.
    nodemask: Vec<libc::c_ulong>,
    /// For error messages: the config's words.
    what: String,
}

pub const MODES: &[(&str, i32)] = &[
    ("MPOL_DEFAULT", 0),
    ("MPOL_PREFERRED", 1),
    ("MPOL_BIND", 2),
    ("MPOL_INTERLEAVE", 3),
    ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED_MANY", 5),
    ("MPOL_WEIGHTED_INTERLEAVE", 6),
];

pub const FLAGS: &[(&str, i32)] = &[
    ("MPOL_F_NUMA_BALANCING", 1 << 13),
    ("MPOL_F_RELATIVE_NODES", 1 << 14),
    ("MPOL_F_STATIC_NODES", 1 << 15),
];

const BITS: usize = libc::c_ulong::BITS as usize;

pub fn plan(p: Option<&spec::MemoryPolicy>) -> Result<Option<MemoryPolicy>> {
    plan_for(p, Path::new("/sys/devices/system/node"))
}

fn plan_for(p: Option<&spec::MemoryPolicy>, nodes_dir: &Path) -> Result<Option<MemoryPolicy>> {
    let Some(p) = p else { return Ok(None) };
    let Some(&(_, mut mode)) = MODES.iter().find(|(n, _)| *n == p.mode) else {
        bail!(
            "linux.memoryPolicy.mode: unknown mode {:?} (one of {})",
            p.mode,
            MODES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        );
    };
    for f in &p.flags {
        let Some(&(_, bit)) = FLAGS.iter().find(|(n, _)| n == f) else {
            bail!("linux.memoryPolicy.flags: unknown flag {f:?}");
        };
        mode |= bit;
    }
    let nodes = parse_nodes(p.nodes.as_deref().unwrap_or(""))?;
    let relative = mode & (1 << 14) != 0;
    // Relative node numbers are positions in the cpuset's allowed nodes, not node ids.
    if !relative {
        if let Some(n) = nodes
            .iter()
            .find(|n| !nodes_dir.join(format!("node{n}")).exists())
        {
            bail!(
                "linux.memoryPolicy.nodes: node {n} does not exist on this host (see {})",
                nodes_dir.display()
            );
        }
    }
    let mut nodemask = vec![0 as libc::c_ulong; nodes.iter().max().map_or(1, |m| m / BITS + 1)];
    for n in &nodes {
        nodemask[n / BITS] |= 1 << (n % BITS);
    }
    Ok(Some(MemoryPolicy {
        mode,
        nodemask,
        what: format!(
            "{} nodes {:?} flags {:?}",
            p.mode,
            p.nodes.as_deref().unwrap_or(""),
            p.flags
        ),
    }))
}

/// "0-3,7" → [0, 1, 2, 3, 7].
fn parse_nodes(text: &str) -> Result<Vec<usize>> {
    let bad = || {
        Error::msg(format!(
            "linux.memoryPolicy.nodes: cannot read {text:?} (e.g. \"0-3,7\")"
        ))
    };
    // 4096: the kernel's largest MAX_NUMNODES.
    crate::id_list::parse(text, 4096).ok_or_else(bad)
}

impl MemoryPolicy {
    pub fn apply(&self) -> Result<()> {
        // The kernel reads maxnode - 1 bits.
        let maxnode = (self.nodemask.len() * BITS + 1) as libc::c_ulong;
        // SAFETY: set_mempolicy reads `maxnode - 1` bits from a mask of that many bits.
        let r = unsafe {
            libc::syscall(
                libc::SYS_set_mempolicy,
                self.mode,
                self.nodemask.as_ptr(),
                maxnode,
            )
        };
        nix::errno::Errno::result(r).map(drop).map_err(|e| {
            Error::sys(
                format!("set_mempolicy {} (linux.memoryPolicy)", self.what),
                e,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: &str, nodes: &str, flags: &[&str]) -> spec::MemoryPolicy {
        spec::MemoryPolicy {
            mode: mode.into(),
            nodes: Some(nodes.into()),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn modes_flags_and_nodes() {
        let dir = std::env::temp_dir().join(format!("rt-numa-{}", std::process::id()));
        for n in [0, 1, 2, 3, 70] {
            std::fs::create_dir_all(dir.join(format!("node{n}"))).unwrap();
        }
        let p = plan_for(
            Some(&policy("MPOL_BIND", "0-2,70", &["MPOL_F_STATIC_NODES"])),
            &dir,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.mode, 2 | 1 << 15);
        assert_eq!(p.nodemask, vec![0b111, 1 << 6]);
        let e = plan_for(Some(&policy("MPOL_BIND", "5", &[])), &dir).unwrap_err();
        assert!(e.to_string().contains("node 5 does not exist"), "{e}");
        // Relative nodes are not node ids.
        assert!(plan_for(
            Some(&policy("MPOL_BIND", "5", &["MPOL_F_RELATIVE_NODES"])),
            &dir
        )
        .is_ok());
        assert!(plan_for(Some(&policy("MPOL_NOPE", "0", &[])), &dir).is_err());
        assert!(plan_for(Some(&policy("MPOL_BIND", "0", &["MPOL_F_NOPE"])), &dir).is_err());
        assert!(plan_for(Some(&policy("MPOL_BIND", "3-1", &[])), &dir).is_err());
        assert!(plan_for(Some(&policy("MPOL_BIND", "x", &[])), &dir).is_err());
        let local = plan_for(Some(&policy("MPOL_LOCAL", "", &[])), &dir)
            .unwrap()
            .unwrap();
        assert_eq!((local.mode, local.nodemask), (4, vec![0]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
