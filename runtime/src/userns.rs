//! The id maps of a new user namespace, written by rt from outside once the init has
//! unshared it: directly when rt may (as root, or a user mapping only their own id), else
//! by the setuid helpers `newuidmap`/`newgidmap` (package uidmap), which allow a user the
//! ranges /etc/subuid and /etc/subgid give them, as runc does.

use std::fs;
use std::process::Command;

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::spec::IdMapping;

/// uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    Uid,
    Gid,
}

impl Ids {
    fn file(self) -> &'static str {
        match self {
            Ids::Uid => "uid_map",
            Ids::Gid => "gid_map",
        }
    }

    fn helper(self) -> &'static str {
        match self {
            Ids::Uid => "newuidmap",
            Ids::Gid => "newgidmap",
        }
    }

    /// The config field of a map, below `owner` ("linux", or "mounts[2]").
    fn field(self, owner: &str) -> String {
        match self {
            Ids::Uid => format!("{owner}.uidMappings"),
            Ids::Gid => format!("{owner}.gidMappings"),
        }
    }

    /// The caller's own effective id of this kind.
    fn own(self) -> u32 {
        match self {
            Ids::Uid => nix::unistd::geteuid().as_raw(),
            Ids::Gid => nix::unistd::getegid().as_raw(),
        }
    }
}

/// Whether the kernel lets this caller write `map` itself: root may write any map; anyone
/// else only the one line mapping their own id (and, for gids, only once setgroups is
/// denied in the namespace).
pub fn writable_directly(ids: Ids, map: &[IdMapping]) -> bool {
    nix::unistd::geteuid().is_root() || matches!(map, [m] if m.size == 1 && m.host_id == ids.own())
}

/// Write both maps of `pid`'s new user namespace; errors name `owner`'s fields ("linux",
/// or "mounts[2]" for an idmapped mount's namespace).
pub fn write_maps(pid: i32, uids: &[IdMapping], gids: &[IdMapping], owner: &str) -> Result<()> {
    write(pid, Ids::Uid, uids, owner)?;
    if !nix::unistd::geteuid().is_root() && writable_directly(Ids::Gid, gids) {
        // An unprivileged gid_map is allowed only once the namespace can never call
        // setgroups: else a user could drop a group that denies them access.
        let path = format!("/proc/{pid}/setgroups");
        fs::write(&path, "deny").ctx(|| format!("write \"deny\" to {path}"))?;
    }
    write(pid, Ids::Gid, gids, owner)
}

fn write(pid: i32, ids: Ids, map: &[IdMapping], owner: &str) -> Result<()> {
    if map.is_empty() {
        return Ok(());
    }
    if writable_directly(ids, map) {
        let text: String = map
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect();
        let path = format!("/proc/{pid}/{}", ids.file());
        return fs::write(&path, &text)
            .ctx(|| format!("write {text:?} to {path} ({})", ids.field(owner)));
    }
    run_helper(pid, ids, map, owner)
}

/// `newuidmap PID ID HOSTID COUNT...`: it checks the ranges against /etc/subuid (or
/// subgid) for the caller, then writes the map with its own privilege.
fn run_helper(pid: i32, ids: Ids, map: &[IdMapping], owner: &str) -> Result<()> {
    let mut cmd = Command::new(ids.helper());
    cmd.arg(pid.to_string());
    for m in map {
        cmd.args([
            m.container_id.to_string(),
            m.host_id.to_string(),
            m.size.to_string(),
        ]);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{}: mapping more than the caller's own id (euid {}) without root needs {} (package uidmap) on PATH and a range in /etc/sub{}",
            ids.field(owner),
            ids.own(),
            ids.helper(),
            if ids == Ids::Uid { "uid" } else { "gid" }
        ),
        Err(e) => return Err(Error::io(format!("run {}", ids.helper()), e)),
    };
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{}: {} {} failed ({}): {} (is the range in /etc/sub{} for this user?)",
            ids.field(owner),
            ids.helper(),
            pid,
            out.status,
            why.trim(),
            if ids == Ids::Uid { "uid" } else { "gid" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(container_id: u32, host_id: u32, size: u32) -> IdMapping {
        IdMapping {
            container_id,
            host_id,
            size,
        }
    }

    #[test]
    fn own_single_id_is_written_directly() {
        let me = Ids::Uid.own();
        assert!(writable_directly(Ids::Uid, &[map(0, me, 1)]));
        if !nix::unistd::geteuid().is_root() {
            assert!(!writable_directly(Ids::Uid, &[map(0, me, 2)]));
            assert!(!writable_directly(
                Ids::Uid,
                &[map(0, me, 1), map(1, 100000, 10)]
            ));
        }
    }
}
