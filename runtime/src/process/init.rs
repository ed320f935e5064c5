//! The container's init, from fork to execve. Stage 1 enters the namespaces (joining before
//! creating, user namespace first); stage 2 — the container's PID 1 when it has a pid
//! namespace — builds the rootfs, becomes the configured user, reports ready, and blocks on
//! exec.fifo until `rt start`. Every failure goes back to the parent as one line.
//!
//! rt is single-threaded when it forks, so this code may allocate; it never starts threads.

use std::fs;
use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::unistd::{setresgid, setresuid, Gid, Uid};

use super::channel::{Channel, Msg};
use super::{finish, InitPlan};
use crate::bail;
use crate::cgroups::self_join::SelfJoin;
use crate::error::{Context, Error, Result};
use crate::fault::{self, Step};
use crate::{hooks, namespaces, rootfs, sys};

/// The forked child's entry point. Never returns.
/// `born_in_cgroup`: forked into the container's cgroup2 directory (see `self_join`).
pub fn run(plan: &InitPlan, chan: &Channel, born_in_cgroup: bool) -> ! {
    crate::trace::in_child("init");
    if let Some(fd) = plan.state_lock_fd {
        // Our copy of rt's lock on the state directory: were we to outlive rt (stopped,
        // frozen), `delete` would wait for it for ever.
        // SAFETY: the fd is rt's lock fd, inherited by fork, and nothing here uses it.
        unsafe { libc::close(fd) };
    }
    let err = match stage1(plan, chan, born_in_cgroup) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // After create returned, nobody reads the channel: the log is the only witness.
    if chan.send_failure(&err).is_err() {
        crate::logging::error(&format!("container init: {err}"), err.fields());
    }
    crate::trace::flush();
    sys::exit_now(1)
}

enum Never {}

fn stage1(plan: &InitPlan, chan: &Channel, born_in_cgroup: bool) -> Result<Never> {
    die_with_parent(chan)?;
    // Nobody may ptrace or read /proc/<pid>/mem of the runtime while it works inside the
    // container (CVE-2016-9962); execve restores dumpability for the program.
    sys::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)")?;
    chan.expect(Msg::Go)?;
    if let super::CgroupJoin::First(join) = &plan.cgroup_join {
        join.join_self(born_in_cgroup)?;
    }
    fault::point(Step::InitStarted);
    plan.process.attrs.apply_initial()?;
    // Join first, while we still have the host's privileges; the pid namespace was joined
    // by the parent (it only applies to children).
    for j in plan.ns.joins.iter().filter(|j| j.kind != "pid") {
        log::debug!("init: join {} namespace {}", j.kind, j.path);
        let _step = crate::trace::step_with("setns", || j.kind.to_string());
        namespaces::join(j)?;
    }
    if plan.ns.creates("user") {
        log::debug!("init: new user namespace");
        // Without root, rt writes the maps as the same user, which /proc allows only
        // while this process is dumpable (else its files are the host root's), and so
        // does newuidmap. Nothing of the container is here yet to be read.
        if plan.rootless {
            sys::set_dumpable(true).ctx(|| "prctl(PR_SET_DUMPABLE, 1)")?;
        }
        crate::trace::step_with("unshare", || "user".into())
            .run(|| namespaces::create(CloneFlags::CLONE_NEWUSER))?;
        fault::point(Step::InitUserns);
        chan.send(&Msg::UserNsReady)?;
        crate::trace::step("wait-id-maps").run(|| chan.expect(Msg::MapsWritten))?;
        if plan.rootless {
            sys::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)")?;
        }
    }
    if plan.ns.creates("user") || plan.ns.join_of("user").is_some() {
        // Become the namespace's root, so the rest runs with its full capabilities.
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "setresgid 0 in the new user namespace (is container gid 0 mapped?)")?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "setresuid 0 in the new user namespace (is container uid 0 mapped?)")?;
        // A change of effective uid clears the parent-death signal.
        die_with_parent(chan)?;
    }
    let rest = plan.ns.new - CloneFlags::CLONE_NEWUSER;
    log::debug!("init: unshare {rest:?}");
    // One call for all: one unshare per namespace type (which would show each one's cost
    // in the trace) made create 1.4 ms slower here (9.0 vs 7.6 ms, make bench A/B).
    crate::trace::step_with("unshare", || namespaces::kinds(rest))
        .run(|| namespaces::create(rest))?;
    fault::point(Step::InitNamespaces);
    // rt sends this before it reads our next message (time offsets): wait for it first.
    let join = match plan.cgroup_join {
        super::CgroupJoin::Init => {
            crate::trace::step("wait-cgroup").run(|| chan.expect(Msg::CgroupMade))?;
            Some(SelfJoin::open(&plan.rootfs.cgroup)?)
        }
        _ => None,
    };
    if plan.ns.creates("time") && !plan.time_offsets.is_empty() {
        // Written by rt, from outside: this process is not dumpable, so its /proc files
        // belong to the host's root, whom a new user namespace does not map (EACCES).
        // Nobody is in the new time namespace yet (only children enter it).
        chan.send(&Msg::TimeNsReady)?;
        chan.expect(Msg::OffsetsWritten)?;
    }
    // New pid and time namespaces apply to children only: the init is a second child.
    if plan.ns.creates("pid") || plan.ns.creates("time") {
        super::continue_in_sibling(chan, "init", "the container init", join.as_ref())?;
        // A fork does not inherit the parent-death signal.
        die_with_parent(chan)?;
    } else {
        chan.send(&Msg::InitPid(0))?;
    }
    stage2(plan, chan)
}

/// The init's name until it execs the program (then the program's): `rt start` tells
/// an init that died before exec (a startContainer hook, or exec, failed) from a program
/// that ran and exited by it.
pub const INIT_NAME: &std::ffi::CStr = c"rt:[INIT]";

fn stage2(plan: &InitPlan, chan: &Channel) -> Result<Never> {
    sys::set_name(INIT_NAME).ctx(|| "prctl(PR_SET_NAME)")?;
    nix::unistd::setsid().ctx(|| "setsid")?;
    {
        use std::os::fd::AsRawFd;
        let mut keep = vec![
            chan.raw_fd(),
            plan.exec_fifo.as_raw_fd(),
            crate::logging::LOG_FD.load(std::sync::atomic::Ordering::Relaxed),
            crate::trace::fd(),
        ];
        keep.extend(plan.process.console_socket.as_ref().map(|s| s.as_raw_fd()));
        // The idmapped trees still to attach (close-on-exec: the program never has them).
        keep.extend(plan.rootfs.idmapped.raw_fds());
        sys::close_fds_except(3 + plan.process.preserve_fds as i32, &keep)
            .ctx(|| "close inherited fds")?;
    }
    if plan.new_keyring {
        match sys::join_session_keyring(&format!("_ses.{}", plan.id)) {
            // Keyrings may be unavailable (ENOSYS) or refused by a seccomp policy.
            Ok(()) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EACCES) => {}
            Err(e) => return Err(Error::sys("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", e)),
        }
    }
    if plan.ns.creates("network") {
        crate::trace::step("loopback-up").run(namespaces::loopback_up)?;
    }
    // Device nodes and mount targets get exactly the modes asked for.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    rootfs::prepare(&plan.rootfs)?;
    fault::point(Step::InitMountsDone);
    let mut states = (String::new(), String::new());
    if plan.sync_hooks {
        chan.send(&Msg::RuntimeHooks)?;
        let _step = crate::trace::step("wait-runtime-hooks");
        match chan.recv()? {
            Some(Msg::State(s)) => {
                let (creating, created) = s.split_once('\n').unwrap_or((&s, &s));
                states = (creating.to_string(), created.to_string());
            }
            Some(Msg::Failed(e)) => return Err(e),
            other => bail!("init channel: expected the state, got {other:?}"),
        }
    }
    fault::point(Step::InitBeforeContainerHooks);
    hooks::run_all("createContainer", &plan.create_container_hooks, &states.0)?;
    log::debug!("init: enter the rootfs");
    rootfs::enter(&plan.rootfs)?;
    fault::point(Step::InitPivoted);
    let sysctl = crate::trace::step("sysctl-hostname");
    for (key, value) in &plan.sysctl {
        // "a/b.c" names a sysctl whose components contain dots (e.g. VLAN interfaces).
        let rel = if key.contains('/') {
            key.clone()
        } else {
            key.replace('.', "/")
        };
        let path = format!("/proc/sys/{rel}");
        fs::write(&path, value).ctx(|| format!("linux.sysctl: write {value:?} to {path}"))?;
    }
    if let Some(h) = plan.hostname.as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("sethostname {h:?}"))?;
    }
    if let Some(d) = plan.domainname.as_deref().filter(|d| !d.is_empty()) {
        set_domainname(d)?;
    }
    drop(sysctl);
    rootfs::finish(&plan.rootfs)?;
    let pp = &plan.process;
    finish::terminal(pp, !plan.rootfs.dev_is_bind)?;
    finish::enter_cwd(pp)?;
    finish::apply_limits(pp)?;
    // From here rt's death is seen on the channel instead (a failed send, then no
    // `Created`): the seccomp filter that may go in next could deny the prctl.
    sys::set_parent_death_signal(0).ctx(|| "prctl(PR_SET_PDEATHSIG, 0)")?;
    let program = finish::drop_privileges(pp, chan)?;
    fault::point(Step::InitReady);
    crate::trace::mark("ready");
    // Written before rt create can return: the file holds the whole setup by then.
    crate::trace::flush();
    chan.send(&Msg::Ready)?;
    crate::trace::step("wait-start").run(|| wait_for_start(plan, chan))?;
    hooks::run_all_in(
        "startContainer",
        &plan.start_container_hooks,
        &states.1,
        Some(&program.env),
    )?;
    match finish::exec(pp, chan, program)? {}
}

/// Until the container is fully created, the init dies with `rt create`: a create killed
/// part way must not leave it behind, outside any state that `delete` could find. The
/// signal is set first, then the parent checked: it may have died just before.
fn die_with_parent(chan: &Channel) -> Result<()> {
    sys::set_parent_death_signal(libc::SIGKILL).ctx(|| "prctl(PR_SET_PDEATHSIG, SIGKILL)")?;
    if chan.peer_closed() {
        sys::exit_now(1);
    }
    Ok(())
}

/// Block until `rt start` writes into exec.fifo. Until rt says the container is recorded
/// (`Created`), the channel is watched too: if it closes first, `create` was killed
/// before it finished, and the init must not outlive it. Only poll and read here: a
/// seccomp filter may be in place already.
fn wait_for_start(plan: &InitPlan, chan: &Channel) -> Result<()> {
    let mut created = false;
    loop {
        let mut fds = [
            PollFd::new(plan.exec_fifo.as_fd(), PollFlags::POLLIN),
            PollFd::new(chan.as_fd(), PollFlags::POLLIN),
        ];
        let watched = if created { 1 } else { 2 };
        match poll(&mut fds[..watched], PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll exec.fifo", e)),
        }
        if !created && fds[1].any().unwrap_or(false) {
            match chan.recv_short() {
                Ok(Some(Msg::Created)) => created = true,
                // EOF (or anything else): rt died before the container was recorded.
                _ => sys::exit_now(1),
            }
            continue;
        }
        if fds[0].any().unwrap_or(false) {
            break;
        }
    }
    let mut byte = [0u8; 1];
    match nix::unistd::read(&plan.exec_fifo, &mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => bail!("exec.fifo closed without a start"),
        Err(e) => Err(Error::sys("read exec.fifo", e)),
    }
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: setdomainname reads `len` bytes from a valid buffer.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::errno::Errno::result(r)
        .map(drop)
        .ctx(|| format!("setdomainname {name:?}"))
}
