//! Starting the container's init: the plan computed by the parent, the channel, and the
//! init sequence that runs in the child.

pub mod attrs;
pub mod channel;
pub mod finish;
pub mod init;
pub mod mempolicy;
pub mod setns;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use crate::namespaces::NamespacePlan;
use crate::rootfs::RootfsPlan;
use crate::security::capabilities::CapPlan;
use crate::security::rlimits::Limit;
use crate::spec::{Hook, Process, TimeOffset};

/// Everything the init does, decided before it is forked: the child only executes it.
pub struct InitPlan {
    pub id: String,
    pub ns: NamespacePlan,
    pub time_offsets: BTreeMap<String, TimeOffset>,
    /// The rootfs, set up in the container's mount namespace (new, or joined by path).
    pub rootfs: RootfsPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: BTreeMap<String, String>,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    /// Whether the parent has hooks to run at the createRuntime point.
    pub sync_hooks: bool,
    /// The read end of exec.fifo, opened by the parent: `start` writes a byte into it.
    pub exec_fifo: OwnedFd,
    /// rt's flock on the state directory, which the child closes first thing.
    pub state_lock_fd: Option<std::os::fd::RawFd>,
    pub new_keyring: bool,
    /// rt runs without the host root's privileges ([`crate::rootless::is_rootless`]).
    pub rootless: bool,
    /// The program the init becomes.
    pub process: ProcessPlan,
    /// How the container's process joins its cgroup (see create.rs `JoinAt`).
    pub cgroup_join: CgroupJoin,
}

/// How the init joins its cgroup by itself (see `cgroups::self_join`).
pub enum CgroupJoin {
    /// It does not: rt puts it there (a systemd unit), or there is no cgroup.
    Not,
    /// The first child, before it makes or joins any namespace, with the files rt opened.
    First(crate::cgroups::self_join::SelfJoin),
    /// The init as it is forked into its new pid (or time) namespace, once rt says the
    /// cgroup is made (rt makes it meanwhile): the first child opens the files then, with
    /// rt's view and privileges still (no cgroup or user namespace in this case).
    Init,
}

/// The program a container process becomes, and its credentials and limits: shared by
/// the init (`create`) and by `exec`.
pub struct ProcessPlan {
    pub spec: Process,
    pub caps: Option<CapPlan>,
    pub rlimits: Vec<(String, Limit)>,
    /// I/O priority, scheduler, personality, CPU affinity.
    pub attrs: attrs::Attrs,
    /// The compiled seccomp filter (linux.seccomp).
    pub seccomp: Option<crate::security::seccomp::SeccompPlan>,
    /// Where the pty master goes when `spec.terminal` (a connected socket).
    pub console_socket: Option<OwnedFd>,
    /// fds 3..3+n reach the program (--preserve-fds and LISTEN_FDS).
    pub preserve_fds: u32,
    /// Extra environment (LISTEN_FDS/LISTEN_PID, NOTIFY_SOCKET) appended to the spec's.
    pub extra_env: Vec<String>,
}

/// Set each `NAME=VALUE` of `overrides` in `env`, in place of any entry of the same name
/// (getenv would find the first of two, so a later value must replace, not follow).
pub fn override_env(env: &mut Vec<String>, overrides: &[String]) {
    for kv in overrides {
        let name = kv.split_once('=').map_or(kv.as_str(), |(n, _)| n);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != name);
        env.push(kv.clone());
    }
}

/// Go on in a sibling (CLONE_PARENT: rt stays its parent and can wait for it), as new pid
/// and time namespaces apply only to children: the intermediate process reports the
/// sibling's pid to rt and ends. The sibling waits until that report is sent, so that none
/// of its own messages can reach rt first (rt would then finish the handshake still
/// taking the short-lived intermediate for the container process).
///
/// `role` ("init" or "exec") goes on doing the steps, and naming them in its errors. With
/// `join`, the sibling joins that cgroup by itself (born in it where the kernel can).
pub(crate) fn continue_in_sibling(
    chan: &channel::Channel,
    role: &'static str,
    what: &str,
    join: Option<&crate::cgroups::self_join::SelfJoin>,
) -> crate::error::Result<()> {
    use crate::error::Context;
    let (reported_r, reported_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe2")?;
    let step = crate::trace::step("fork-init");
    let (forked, born_in_cgroup) = crate::cgroups::self_join::fork(join, true)
        .ctx(|| format!("clone(CLONE_PARENT) {what}"))?;
    match forked {
        Some(pid) => {
            drop(step);
            crate::trace::flush();
            drop(reported_r);
            let sent = chan.send(&channel::Msg::InitPid(pid));
            // The child's pid as we see it, for its trace (in its pid namespace it is 1).
            let _ = nix::unistd::write(&reported_w, &pid.to_ne_bytes());
            drop(reported_w);
            crate::sys::exit_now(if sent.is_ok() { 0 } else { 1 })
        }
        None => {
            std::mem::forget(step);
            drop(reported_w);
            let mut pid = [0u8; 4];
            // The pid then EOF once the intermediate has sent it to rt (or EOF if gone).
            let n = loop {
                match nix::unistd::read(&reported_r, &mut pid) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other.unwrap_or(0),
                }
            };
            crate::trace::in_sibling(role, (n == pid.len()).then(|| u32::from_ne_bytes(pid)));
            while let Err(nix::errno::Errno::EINTR) = nix::unistd::read(&reported_r, &mut pid) {}
            match join {
                Some(join) => join.join_self(born_in_cgroup),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn override_env_replaces_by_name() {
        let mut env: Vec<String> = ["PATH=/bin", "A=1", "B=2", "A=3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        super::override_env(&mut env, &["A=new".into(), "C=4".into(), "PATH=/x".into()]);
        assert_eq!(env, ["B=2", "A=new", "C=4", "PATH=/x"]);
    }
}
