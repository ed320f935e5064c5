//! Idmapped bind mounts (runtime-spec 1.2: `mounts[].uidMappings`/`gidMappings`, options
//! `idmap` and `ridmap`). rt makes them itself, before the init is forked: inside the
//! container's user namespace the kernel would refuse to idmap a host filesystem (that
//! needs CAP_SYS_ADMIN over the filesystem's own user namespace, the host's). Each source
//! is cloned into a detached tree (open_tree), given the mapping of a user namespace made
//! for it (mount_setattr MOUNT_ATTR_IDMAP), and handed to the init as an fd, which moves
//! it onto its target inside the rootfs like any other mount.
//!
//! Nothing is left on the host when create fails: a detached tree vanishes with its last
//! fd, and the helper processes that hold the mapping namespaces are killed and reaped
//! before `prepare` returns.

use std::collections::btree_map::{BTreeMap, Entry};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::rootfs::mounts;
use crate::spec::{IdMapping, Mount, Spec};
use crate::sys;

/// Whether a mount asks to be idmapped: by its own mappings or by an option.
pub fn requested(m: &Mount) -> bool {
    !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() || has_option(m).is_some()
}

/// `idmap` or `ridmap`, when the mount names one.
fn has_option(m: &Mount) -> Option<&str> {
    m.options
        .iter()
        .map(String::as_str)
        .find(|o| *o == "idmap" || *o == "ridmap")
}

/// The checks that need no system access, for `Spec::validate`: the runtime-spec's MUSTs
/// (uidMappings and gidMappings together; with `idmap`/`ridmap` and no mappings of its
/// own the container must have a user namespace to take them from), and what rt can do
/// (binds only, not both options at once).
pub fn validate(spec: &Spec, i: usize, m: &Mount) -> Result<()> {
    if !requested(m) {
        return Ok(());
    }
    let field = format!("mounts[{i}] ({})", m.destination);
    if m.uid_mappings.is_empty() != m.gid_mappings.is_empty() {
        bail!("{field}: uidMappings and gidMappings must be given together");
    }
    if m.options.iter().any(|o| o == "idmap") && m.options.iter().any(|o| o == "ridmap") {
        bail!(
            "{field}: both idmap and ridmap given; choose one (ridmap also maps the mounts below)"
        );
    }
    if !mounts::is_bind(m) {
        bail!(
            "{field}: only bind mounts can be idmapped (type {:?}, options {:?})",
            m.kind.as_deref().unwrap_or(""),
            m.options.join(",")
        );
    }
    if m.uid_mappings.is_empty() && !spec.has_namespace("user") {
        bail!(
            "{field}: {} without uidMappings/gidMappings needs the container's user namespace mappings, but it has no user namespace",
            has_option(m).unwrap_or("idmap")
        );
    }
    Ok(())
}

/// The detached, idmapped trees, by index in `mounts`, for the init to attach. The fds
/// are close-on-exec: the container's program never sees them.
#[derive(Debug, Default)]
pub struct Detached(BTreeMap<usize, OwnedFd>);

impl Detached {
    pub fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.get(&index)
    }

    /// The fds, for the init's list of fds to keep open until the mounts are done.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.0.values().map(AsRawFd::as_raw_fd).collect()
    }
}

/// Where an idmapped mount takes its mapping from.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum MapSource {
    /// These uid and gid mappings.
    Maps(Vec<IdMapping>, Vec<IdMapping>),
    /// The user namespace the container joins (linux.namespaces user with a path).
    Joined(String),
}

/// Clone and idmap the source of every mount of `list` that asks for it.
pub fn prepare(spec: &Spec, list: &[Mount], bundle: &Path) -> Result<Detached> {
    let mut out = Detached::default();
    // One user namespace per distinct mapping, for this create only.
    let mut namespaces: BTreeMap<MapSource, OwnedFd> = BTreeMap::new();
    for (i, m) in list.iter().enumerate() {
        if !requested(m) {
            continue;
        }
        // Valid (Spec::load checked it with `validate`).
        let field = format!("mounts[{i}] ({})", m.destination);
        if crate::rootless::is_rootless() {
            bail!(
                "{field}: idmapped mounts need rt to run as the host's root (it runs as euid {}, or in a user namespace): only the host's root may idmap a host filesystem",
                nix::unistd::geteuid()
            );
        }
        let source = map_source(spec, m).ok_or_else(|| {
            Error::msg(format!(
                "{field}: idmap without uidMappings/gidMappings, and the container has no user namespace mappings to take"
            ))
        })?;
        let userns = match namespaces.entry(source) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let fd = open_namespace(e.key(), &format!("mounts[{i}]"))
                    .map_err(|e| e.context(&field))?;
                e.insert(fd)
            }
        };
        let src = mounts::bind_source(m, bundle)
            .ok_or_else(|| Error::msg(format!("{field}: a bind mount needs a source")))?;
        let rbind = mounts::parse_options(&m.options)
            .flags
            .contains(nix::mount::MsFlags::MS_REC);
        let tree = sys::open_tree_clone(&src, rbind).ctx(|| {
            format!(
                "{field}: open_tree({}OPEN_TREE_CLONE) of source {}",
                if rbind { "AT_RECURSIVE|" } else { "" },
                src.display()
            )
        })?;
        // A clone of a shared mount is a peer of it: a mount the container made below its
        // volume would show on the host. A slave, as rt's other binds are (the container's
        // / is made rslave before them), gets the host's mounts and sends none back; the
        // mount's own propagation options apply once it is attached.
        sys::mount_setattr_propagation(tree.as_raw_fd(), true, libc::MS_SLAVE).ctx(
            || {
                format!(
                    "{field}: mount_setattr(AT_RECURSIVE, propagation MS_SLAVE) on the clone of source {}",
                    src.display()
                )
            },
        )?;
        let recursive = has_option(m) == Some("ridmap");
        sys::mount_setattr_idmap(tree.as_raw_fd(), recursive, userns.as_raw_fd()).map_err(|e| {
            let why = match e {
                Errno::EINVAL | Errno::EPERM | Errno::EOPNOTSUPP => {
                    " (the filesystem, or one below it, cannot be idmapped)"
                }
                _ => "",
            };
            Error::sys(
                format!(
                    "{field}: mount_setattr({}MOUNT_ATTR_IDMAP) on source {}{why}",
                    if recursive { "AT_RECURSIVE, " } else { "" },
                    src.display()
                ),
                e,
            )
        })?;
        log::debug!(
            "idmap: {field}: source {} cloned and idmapped",
            src.display()
        );
        out.0.insert(i, tree);
    }
    Ok(out)
}

/// A user namespace holding the mapping of `source`; `owner` names the mount's fields.
fn open_namespace(source: &MapSource, owner: &str) -> Result<OwnedFd> {
    match source {
        MapSource::Maps(uid, gid) => helper_namespace(uid, gid, owner)
            .map_err(|e| e.context("user namespace for the mapping")),
        MapSource::Joined(path) => fs::File::open(path)
            .map(OwnedFd::from)
            .ctx(|| format!("open the container's user namespace {path} for its mapping")),
    }
}

/// The mount's own mappings; else the container's: those of its new user namespace, or
/// the namespace it joins.
fn map_source(spec: &Spec, m: &Mount) -> Option<MapSource> {
    if !m.uid_mappings.is_empty() {
        return Some(MapSource::Maps(
            m.uid_mappings.clone(),
            m.gid_mappings.clone(),
        ));
    }
    let linux = spec.linux();
    if !linux.uid_mappings.is_empty() {
        return Some(MapSource::Maps(
            linux.uid_mappings.clone(),
            linux.gid_mappings.clone(),
        ));
    }
    linux
        .namespaces
        .iter()
        .find(|n| n.kind == "user")
        .and_then(|n| n.path.clone())
        .filter(|p| !p.is_empty())
        .map(MapSource::Joined)
}

/// A child that unshares a user namespace and waits; killed and reaped when dropped, so
/// that no error path leaves it behind.
struct Helper(i32);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.0), None);
    }
}

/// A user namespace with these mappings, held by an fd. Each entry goes into the map as
/// written ("containerID hostID size"): on a mount idmapped with it, a file the disk says
/// is containerID's is seen as hostID's, and hostID's writes land on disk as containerID.
pub(crate) fn helper_namespace(
    uid: &[IdMapping],
    gid: &[IdMapping],
    owner: &str,
) -> Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe2")?;
    let (hold_r, hold_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe2")?;
    let pid = match sys::fork().ctx(|| "fork the helper for an idmapped mount")? {
        None => {
            drop(ready_r);
            drop(hold_w);
            helper_child(ready_w, hold_r)
        }
        Some(pid) => pid,
    };
    let helper = Helper(pid);
    drop(ready_w);
    drop(hold_r);
    // The child says 0, or the errno of its unshare; EOF if it died first.
    let mut word = [0u8; 4];
    let n = nix::unistd::read(&ready_r, &mut word).ctx(|| "read from the helper")?;
    if n != word.len() {
        bail!("helper {pid} for an idmapped mount exited before making its user namespace");
    }
    let errno = i32::from_ne_bytes(word);
    if errno != 0 {
        return Err(Error::sys(
            "unshare(CLONE_NEWUSER) in the helper",
            Errno::from_raw(errno),
        ));
    }
    // Only the host's root gets here (rootless is refused above): written directly.
    crate::userns::write_maps(pid, uid, gid, owner)?;
    let path = format!("/proc/{pid}/ns/user");
    let fd = fs::File::open(&path).ctx(|| format!("open {path}"))?;
    drop(hold_w);
    drop(helper);
    Ok(OwnedFd::from(fd))
}

/// The helper's side: unshare, report, and wait until the parent lets go (closes the
/// pipe, or kills it); it dies with rt too.
fn helper_child(ready: OwnedFd, hold: OwnedFd) -> ! {
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    let errno = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        Ok(()) => 0,
        Err(e) => e as i32,
    };
    let _ = nix::unistd::write(&ready, &errno.to_ne_bytes());
    let mut byte = [0u8; 1];
    let _ = nix::unistd::read(&hold, &mut byte);
    sys::exit_now(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    fn mount(json: &str) -> Mount {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn validation_follows_the_spec() {
        let plain = spec(r#"{"ociVersion":"1.2.0"}"#);
        let userns = spec(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"user"}],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":10}],
                "gidMappings":[{"containerID":0,"hostID":1000,"size":10}]}}"#,
        );
        let map = r#"[{"containerID":0,"hostID":1000,"size":1}]"#;
        let err = |s: &Spec, m: &str| validate(s, 3, &mount(m)).unwrap_err().to_string();
        // uid without gid.
        let e = err(
            &plain,
            &format!(
                r#"{{"destination":"/d","source":"/s","options":["bind"],"uidMappings":{map}}}"#
            ),
        );
        assert!(
            e.starts_with("mounts[3] (/d): uidMappings and gidMappings"),
            "{e}"
        );
        // Not a bind.
        let e = err(
            &userns,
            r#"{"destination":"/d","type":"tmpfs","source":"tmpfs","options":["idmap"]}"#,
        );
        assert!(e.contains("only bind mounts"), "{e}");
        // idmap with no mapping anywhere.
        let e = err(
            &plain,
            r#"{"destination":"/d","source":"/s","options":["rbind","ridmap"]}"#,
        );
        assert!(e.contains("ridmap without uidMappings"), "{e}");
        // Both options.
        let e = err(
            &userns,
            r#"{"destination":"/d","source":"/s","options":["rbind","idmap","ridmap"]}"#,
        );
        assert!(e.contains("both idmap and ridmap"), "{e}");
        // Fine: the container's mappings, or the mount's own without a user namespace.
        validate(
            &userns,
            0,
            &mount(r#"{"destination":"/d","source":"/s","options":["bind","idmap"]}"#),
        )
        .unwrap();
        validate(
            &plain,
            0,
            &mount(&format!(
                r#"{{"destination":"/d","type":"bind","source":"/s","uidMappings":{map},"gidMappings":{map}}}"#
            )),
        )
        .unwrap();
    }

    #[test]
    fn map_source_prefers_the_mounts_own() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"user","path":"/proc/1/ns/user"}]}}"#,
        );
        let own = mount(
            r#"{"destination":"/d","source":"/s","options":["bind","idmap"],
                "uidMappings":[{"containerID":1,"hostID":2,"size":3}],
                "gidMappings":[{"containerID":4,"hostID":5,"size":6}]}"#,
        );
        let map = |container_id, host_id, size| IdMapping {
            container_id,
            host_id,
            size,
        };
        assert!(
            map_source(&s, &own) == Some(MapSource::Maps(vec![map(1, 2, 3)], vec![map(4, 5, 6)]))
        );
        let joined = mount(r#"{"destination":"/d","source":"/s","options":["bind","idmap"]}"#);
        assert!(map_source(&s, &joined) == Some(MapSource::Joined("/proc/1/ns/user".into())));
    }
}
