//! Starting the container's init: the plan computed by the parent, the channel, and the
//! init sequence that runs in the child.

pub mod attrs;
pub mod channel;
pub mod finish;
pub mod init;
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
    /// None when the container shares the caller's mount namespace setup (joined mount ns).
    pub rootfs: Option<RootfsPlan>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: BTreeMap<String, String>,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    /// Whether the parent has hooks to run at the createRuntime point.
    pub sync_hooks: bool,
    /// The read end of exec.fifo, opened by the parent: `start` writes a byte into it.
    pub exec_fifo: OwnedFd,
    pub new_keyring: bool,
    /// The program the init becomes.
    pub process: ProcessPlan,
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

/// Go on in a sibling (CLONE_PARENT: rt stays its parent and can wait for it), as new pid
/// and time namespaces apply only to children: the intermediate process reports the
/// sibling's pid to rt and ends. The sibling waits until that report is sent, so that none
/// of its own messages can reach rt first (rt would then finish the handshake still
/// taking the short-lived intermediate for the container process).
pub(crate) fn continue_in_sibling(chan: &channel::Channel, what: &str) -> crate::error::Result<()> {
    use crate::error::Context;
    let (reported_r, reported_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe2")?;
    match crate::sys::fork_sibling().ctx(|| format!("clone(CLONE_PARENT) {what}"))? {
        Some(pid) => {
            drop(reported_r);
            let sent = chan.send(&channel::Msg::InitPid(pid));
            drop(reported_w);
            crate::sys::exit_now(if sent.is_ok() { 0 } else { 1 })
        }
        None => {
            drop(reported_w);
            let mut byte = [0u8; 1];
            // EOF once the intermediate has sent the pid (or is gone).
            while let Err(nix::errno::Errno::EINTR) = nix::unistd::read(&reported_r, &mut byte) {}
            Ok(())
        }
    }
}
