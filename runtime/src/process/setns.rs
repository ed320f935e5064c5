//! The forked child of `rt exec`: it enters a running container — its cgroup (done by the
//! parent before "go"), every namespace of the container's init at once through a pidfd,
//! the init's root — then, for a pid or time namespace, forks once more so that it really is
//! inside, and becomes the process like the init would ([`super::finish`]).

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::CloneFlags;

use super::channel::{Channel, Msg};
use super::{finish, ProcessPlan};
use crate::error::{Context, Result};
use crate::fault::{self, Step};
use crate::{namespaces, sys};

pub struct ExecPlan {
    /// A pidfd of the container's init: joining through it cannot reach a recycled pid.
    pub init_pidfd: OwnedFd,
    /// The container's namespaces, as CLONE_NEW* flags.
    pub ns: CloneFlags,
    /// Those the process is born in (rt entered them for the fork: a pid namespace).
    pub born_in: CloneFlags,
    /// The init's root directory (/proc/<pid>/root): under --no-pivot it is not the root
    /// of the container's mount namespace, so it is entered explicitly.
    pub root: OwnedFd,
    pub process: ProcessPlan,
    /// The container's cgroup (or the --cgroup one), joined by the process itself first.
    pub cgroup_join: crate::cgroups::self_join::SelfJoin,
}

/// The forked child's entry point. Never returns.
/// `born_in_cgroup`: forked into the container's cgroup2 directory (see `self_join`).
pub fn run(plan: &ExecPlan, chan: &Channel, born_in_cgroup: bool) -> ! {
    crate::trace::in_child("exec");
    let err = match enter(plan, chan, born_in_cgroup) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.send_failure(&err);
    crate::trace::flush();
    sys::exit_now(1)
}

fn enter(plan: &ExecPlan, chan: &Channel, born_in_cgroup: bool) -> Result<Infallible> {
    // As for the init (CVE-2016-9962): nobody in the container may ptrace us before execve.
    sys::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)")?;
    chan.expect(Msg::Go)?;
    // Before the namespaces: from inside the container's cgroup namespace the kernel
    // would not see the cgroup we come from. The children (the process itself, with a
    // pid namespace) inherit the group.
    plan.cgroup_join.join_self(born_in_cgroup)?;
    fault::point(Step::ExecChildInCgroup);
    plan.process.attrs.apply_initial()?;
    // One call joins them all, the user namespace first, as the kernel orders it.
    let joining = crate::trace::step("setns");
    let ns = plan.ns - plan.born_in;
    nix::sched::setns(plan.init_pidfd.as_fd(), ns)
        .ctx(|| format!("setns(pidfd of the container init, {ns:?})"))?;
    nix::unistd::fchdir(&plan.root).ctx(|| "fchdir to the container's root")?;
    nix::unistd::chroot(".").ctx(|| "chroot to the container's root")?;
    drop(joining);
    fault::point(Step::ExecChildJoined);
    // New pid and time namespaces apply to children only.
    if ns.intersects(CloneFlags::CLONE_NEWPID | namespaces::flag("time")) {
        super::continue_in_sibling(chan, "exec", "the process in the container", None)?;
    } else {
        chan.send(&Msg::InitPid(0))?;
    }
    nix::unistd::setsid().ctx(|| "setsid")?;
    let pp = &plan.process;
    let mut keep = vec![
        chan.raw_fd(),
        crate::logging::LOG_FD.load(std::sync::atomic::Ordering::Relaxed),
        crate::trace::fd(),
    ];
    keep.extend(pp.console_socket.as_ref().map(|s| s.as_raw_fd()));
    sys::close_fds_except(3 + pp.preserve_fds as i32, &keep).ctx(|| "close inherited fds")?;
    finish::terminal(pp, false)?;
    finish::enter_cwd(pp)?;
    finish::apply_limits(pp)?;
    let program = finish::drop_privileges(pp, chan)?;
    fault::point(Step::ExecChildReady);
    // Once this is sent the process is committed: an `rt exec` killed from here on leaves
    // it running, as runc's does (waiting for a word back from rt would close that gap
    // only to open the same one after the word, and costs a round trip per exec).
    chan.send(&Msg::Ready)?;
    finish::exec(pp, chan, program)
}
