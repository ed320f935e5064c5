//! Running as a user other than root ("rootless", as runc says): where the state goes, and
//! whether the container can have a cgroup. The user namespace itself is ordinary config
//! (`rt spec --rootless` writes one); its id maps are written by [`crate::userns`].

use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use crate::cgroups::resources::Resources;
use crate::cgroups::{self, Cgroup, Driver};
use crate::error::Result;

/// Whether rt runs without the host root's privileges: as another user, or as root of a
/// user namespace (podman runs the runtime as root of its own, made with the user's
/// subordinate ids), where cgroups and /proc files of the host are just as out of reach.
pub fn is_rootless() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(|| !nix::unistd::geteuid().is_root() || in_user_namespace())
}

/// The initial user namespace maps every id to itself: "0 0 4294967295".
fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    }
}

/// A command that cannot work without the host's root: one line before anything is done.
pub fn refuse(what: &str, why: &str) -> Result<()> {
    if is_rootless() {
        crate::bail!("{what}: not possible without root ({why})");
    }
    Ok(())
}

/// `--root` when not given: /run/rt for root; for anyone else their own
/// `$XDG_RUNTIME_DIR/rt` (as runc uses `$XDG_RUNTIME_DIR/runc`), so two users' containers
/// never share a state directory.
pub fn default_state_root() -> PathBuf {
    if is_rootless() {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return Path::new(&dir).join("rt");
        }
    }
    PathBuf::from("/run/rt")
}

/// The cgroup drivers a rootless rt has: cgroupfs (in a delegated subtree) and none.
pub fn check_driver(driver: Driver) -> Result<()> {
    if driver == Driver::Systemd {
        crate::bail!(
            "--systemd-cgroup: a container of a user other than root would need the user's own systemd manager, which rt does not drive yet; use --cgroup-manager=cgroupfs with a delegated cgroupsPath, or disabled"
        );
    }
    Ok(())
}

/// Fit the planned cgroup to what this user may do. Without root a cgroup is only usable
/// where it was delegated: on a cgroup v2 host, a directory (or the nearest existing parent
/// of it) that the user may write, as a systemd user session or an administrator's
/// `chown` grants. Anywhere else (cgroup v1, or no delegation) the container gets no
/// cgroup and `linux.resources` is ignored with one warning, as runc does. Device rules
/// are dropped either way: a user can neither load a device BPF program nor make device
/// nodes, and the host's own permissions guard the nodes bind-mounted in.
pub fn fit_cgroup(cgroup: &mut Cgroup, resources: &mut Resources, configured: bool) {
    resources.devices.clear();
    if cgroup.dirs.is_empty() {
        return;
    }
    let why_not = if !cgroups::is_v2_unified_host() {
        Some("cgroup v1 cannot be delegated to a user".to_string())
    } else {
        let dir = &cgroup.dirs[0].path;
        (!delegated(dir)).then(|| {
            format!(
                "{} is not writable by uid {} (not delegated)",
                dir.display(),
                nix::unistd::geteuid()
            )
        })
    };
    if let Some(why) = why_not {
        if configured {
            log::warn!("rootless container without a cgroup ({why}): linux.resources ignored");
        } else {
            log::debug!("rootless container without a cgroup: {why}");
        }
        *cgroup = Cgroup::default();
    }
}

/// A directory the user can make and fill: the directory itself with a writable
/// cgroup.procs, or else its nearest existing parent, writable (mkdir makes the new
/// directory and its files the user's).
fn delegated(dir: &Path) -> bool {
    if dir.exists() {
        return access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_ok();
    }
    let parent = dir.ancestors().skip(1).find(|a| a.exists());
    parent.is_some_and(|p| {
        access(p, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
            && access(&p.join("cgroup.procs"), AccessFlags::W_OK).is_ok()
    })
}
