//! `rt exec`: run another process in a running container, as runc does it. The process
//! (from --process FILE, or the container's own process with the command line's
//! overrides) joins the container's cgroup, all its namespaces and its root, and gets the
//! capabilities, seccomp filter, rlimits, NoNewPrivs and LSM label of its process spec.
//! In the foreground rt relays signals (and the terminal) and exits with its status.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::bail;
use crate::cgroups::self_join::{self, SelfJoin};
use crate::cgroups::{Cgroup, CgroupDir};
use crate::container::create;
use crate::container::foreground::Foreground;
use crate::error::{Context, Error, Result};
use crate::fault::{self, Step};
use crate::process::channel::{self, Channel, Msg};
use crate::process::setns::{self, ExecPlan};
use crate::process::{attrs, ProcessPlan};
use crate::security::{capabilities, lsm, rlimits, seccomp};
use crate::spec::{Process, Spec};
use crate::state::{process_alive, State, StateDir, Status};
use crate::{console, namespaces, pidfd_socket, sys};

#[derive(Debug, Default)]
pub struct ExecOpts {
    pub root: PathBuf,
    pub id: String,
    /// --process: a process.json, used as it is (runc ignores the other flags and args).
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    /// -t given on the command line (Some(true)); None leaves the process spec's value.
    pub tty: Option<bool>,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub cgroup: Vec<String>,
    pub pidfd_socket: Option<PathBuf>,
    pub ignore_paused: bool,
}

/// Returns rt's exit status: the process's in the foreground, 0 with --detach.
pub fn exec(opts: &ExecOpts) -> Result<i32> {
    let loading = crate::trace::step("state-load");
    let dir = StateDir::open_unlocked(&opts.root, &opts.id)?;
    let state = dir.load()?;
    drop(loading);
    crate::trace::export::configure(&state.config.annotations, &opts.id);
    let planning = crate::trace::step("plan");
    match dir.status(&state) {
        Status::Stopped => bail!("cannot exec a container that has stopped"),
        Status::Paused if !opts.ignore_paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => {}
    }
    let mut process = process_spec(opts, &state.config)?;
    if process.terminal && opts.console_socket.is_none() {
        // Relayed to our terminal: the container's starts at its size (before the
        // program can look), and follows it on SIGWINCH.
        process.console_size = console::caller_window_size().or(process.console_size);
    }
    if process.terminal && opts.detach && opts.console_socket.is_none() {
        bail!("cannot allocate tty if rt will detach without setting console socket");
    }
    if (!opts.detach || !process.terminal) && opts.console_socket.is_some() {
        bail!("cannot use console socket if rt will not detach or allocate tty");
    }
    let linux = state.config.linux();
    lsm::check_process(&process, linux.mount_label.as_deref())?;
    // Pin the init first, then make sure it is still the container's.
    let init_pidfd = sys::pidfd_open(state.pid)
        .map_err(|e| Error::sys(format!("pidfd_open {} (the container init)", state.pid), e))?;
    if !process_alive(state.pid, state.pid_start_time) {
        bail!("cannot exec a container that has stopped");
    }
    let root_path = format!("/proc/{}/root", state.pid);
    let root = open(
        Path::new(&root_path),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {root_path}"))?;
    let cgroup = target_cgroup(&state.cgroup, &opts.cgroup)?;
    let (console_socket, relay_end) = match (&opts.console_socket, process.terminal) {
        (Some(path), true) => {
            let s = UnixStream::connect(path)
                .ctx(|| format!("connect to --console-socket {}", path.display()))?;
            (Some(OwnedFd::from(s)), None)
        }
        (None, true) => {
            let (ours, theirs) = console::socket_pair()?;
            (Some(theirs), Some(ours))
        }
        _ => (None, None),
    };
    let ns = linux
        .namespaces
        .iter()
        .fold(CloneFlags::empty(), |f, n| f | namespaces::flag(&n.kind));
    // A pid namespace applies to children only: rt enters the container's for the fork,
    // so that the one process it forks is born inside (no intermediate process to fork
    // it), then goes back to its own. Only as the host's root: not with a time namespace,
    // whose setns would change rt's own clocks too, nor a user namespace, whose pid
    // namespace rt may not enter from outside without root, nor rootless (podman's rt
    // may enter the container's but not go back to its own: EPERM). Then the child joins
    // first and forks once more.
    let born_in = if ns.intersects(namespaces::flag("time") | CloneFlags::CLONE_NEWUSER)
        || crate::rootless::is_rootless()
    {
        CloneFlags::empty()
    } else {
        ns & CloneFlags::CLONE_NEWPID
    };
    let plan = ExecPlan {
        init_pidfd,
        ns,
        born_in,
        root,
        process: ProcessPlan {
            caps: capabilities::plan(process.capabilities.as_ref())?,
            rlimits: rlimits::plan(&process.rlimits)?,
            attrs: attrs::plan(
                process.io_priority.as_ref(),
                process.scheduler.as_ref(),
                linux.personality.as_ref(),
                process.exec_cpu_affinity.as_ref(),
                linux.memory_policy.as_ref(),
            )?,
            seccomp: crate::trace::step("seccomp-compile")
                .run(|| linux.seccomp.as_ref().map(seccomp::plan).transpose())?,
            spec: process,
            console_socket,
            preserve_fds: opts.preserve_fds,
            extra_env: Vec::new(),
        },
        cgroup_join: SelfJoin::open(&cgroup)?,
    };
    log::debug!(
        "exec: into container {} (init {}): namespaces {:?}, cgroup {:?}",
        opts.id,
        state.pid,
        plan.ns,
        cgroup.dirs.iter().map(|d| &d.path).collect::<Vec<_>>()
    );
    let foreground = if opts.detach {
        None
    } else {
        Some(Foreground::begin()?)
    };
    drop(planning);
    let (parent_end, child_end) = channel::pair()?;
    let forking = crate::trace::step("fork");
    let pidns = if plan.born_in.is_empty() {
        None
    } else {
        Some(namespaces::PidNsForFork::enter(|| {
            nix::sched::setns(&plan.init_pidfd, plan.born_in).ctx(|| {
                format!(
                    "setns(pidfd of the container init, {:?}) for the fork",
                    plan.born_in
                )
            })
        })?)
    };
    let forked = self_join::fork(Some(&plan.cgroup_join), false);
    if let Ok((None, born_in_cgroup)) = forked {
        drop(parent_end);
        setns::run(&plan, &child_end, born_in_cgroup)
    }
    if let Some(pidns) = pidns {
        pidns.leave()?;
    }
    let c1 = forked
        .ctx(|| "fork the exec's process")?
        .0
        .unwrap_or_default();
    drop(forking);
    drop(child_end);
    fault::point(Step::ExecForked);
    let seccomp = plan.process.seccomp;
    // Our copy of the process's end of the terminal socket: the master comes on ours.
    drop(plan.process.console_socket);
    let started = drive(&parent_end, c1, seccomp.as_ref(), &state);
    let pid = match started {
        Ok(pid) => pid,
        Err(e) => {
            let _ = kill(Pid::from_raw(c1), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(c1), None);
            return Err(e);
        }
    };
    if pid != c1 {
        let _ = waitpid(Pid::from_raw(c1), None);
    }
    log::debug!("exec: process {pid} started in container {}", opts.id);
    if let Some(path) = &opts.pid_file {
        create::write_pid_file(&create::absolute(path)?, pid)?;
    }
    if let Some(path) = &opts.pidfd_socket {
        pidfd_socket::send(path, pid)?;
    }
    let Some(fg) = foreground else {
        return Ok(0);
    };
    let tty = relay_end
        .as_ref()
        .map(console::receive_master)
        .transpose()?;
    fg.wait(pid, tty)
}

/// The parent's side: let the child go (it joins the cgroup by itself), answer its
/// requests, and come back with the process's pid once it has exec'd.
fn drive(
    chan: &Channel,
    c1: i32,
    seccomp: Option<&seccomp::SeccompPlan>,
    state: &State,
) -> Result<i32> {
    // Its children (the process itself, with a pid namespace) inherit the group.
    if let Some(r) = &state.rdt {
        r.join(c1)?;
    }
    chan.send(&Msg::Go)?;
    let mut pid = c1;
    let mut ready = false;
    let _step = crate::trace::step("wait-exec");
    loop {
        match chan.recv()? {
            Some(Msg::InitPid(p)) => {
                if p > 0 {
                    pid = p;
                }
            }
            Some(Msg::SeccompListener) => {
                let Some(fd) = chan.take_fd() else {
                    bail!("exec channel: the seccomp listener arrived without its fd");
                };
                if let Some(seccomp) = seccomp {
                    seccomp::send_listener(seccomp, fd, pid, &state.hook_json(Status::Running))?;
                }
                chan.send(&Msg::ListenerSent)?;
            }
            Some(Msg::Ready) => {
                // The child goes on to exec whatever becomes of rt now.
                fault::point(Step::ExecReady);
                ready = true;
            }
            Some(Msg::Failed(e)) => {
                if pid != c1 {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(pid), None);
                }
                return Err(e);
            }
            Some(other) => bail!("exec channel: unexpected message {other:?}"),
            // The channel is close-on-exec: it closes when the program starts.
            None if ready => return Ok(pid),
            None => bail!("the exec'd process exited during setup without reporting why"),
        }
    }
}

/// The process to run, as runc builds it: --process FILE as is, else the container's
/// process with the command line's args, cwd, env, user, caps and flags.
pub fn process_spec(opts: &ExecOpts, config: &Spec) -> Result<Process> {
    let p = match &opts.process_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .ctx(|| format!("read --process {}", path.display()))?;
            serde_json::from_str::<Process>(&text).map_err(|e| {
                Error::msg(format!(
                    "--process {}: invalid JSON at line {} column {}: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                ))
            })?
        }
        None => {
            let mut p = config.process()?.clone();
            p.args = opts.args.clone();
            p.terminal = opts.tty.unwrap_or(false);
            if let Some(cwd) = &opts.cwd {
                p.cwd = cwd.clone();
            }
            if let Some(profile) = &opts.apparmor {
                p.apparmor_profile = Some(profile.clone());
            }
            if let Some(label) = &opts.process_label {
                p.selinux_label = Some(label.clone());
            }
            for cap in &opts.caps {
                let caps = p.capabilities.get_or_insert_with(Default::default);
                caps.bounding.push(cap.clone());
                caps.effective.push(cap.clone());
                caps.permitted.push(cap.clone());
                // Ambient needs the capability inheritable, which --cap does not add: only
                // where the spec already has inheritable ones (runc's rule).
                if !caps.inheritable.is_empty() {
                    caps.ambient.push(cap.clone());
                }
            }
            crate::process::override_env(&mut p.env, &opts.env);
            if opts.no_new_privs {
                p.no_new_privileges = true;
            }
            if let Some(user) = &opts.user {
                let (uid, gid) = match user.split_once(':') {
                    Some((u, g)) => (u, Some(g)),
                    None => (user.as_str(), None),
                };
                p.user.uid = uid
                    .parse()
                    .map_err(|_| Error::msg(format!("--user: invalid uid {uid:?} (a number)")))?;
                if let Some(g) = gid {
                    p.user.gid = g
                        .parse()
                        .map_err(|_| Error::msg(format!("--user: invalid gid {g:?} (a number)")))?;
                }
            }
            p.user.additional_gids.extend(&opts.additional_gids);
            p
        }
    };
    if p.args.is_empty() {
        bail!("process args cannot be empty");
    }
    if p.cwd.is_empty() {
        bail!("process.cwd: must not be empty");
    }
    if !p.cwd.starts_with('/') {
        bail!("process.cwd: {:?} is not an absolute path", p.cwd);
    }
    p.check_exec_size("process")?;
    Ok(p)
}

/// The container's cgroup, or with --cgroup a sub-cgroup of it: `PATH` for every
/// hierarchy, or `CTRL[,CTRL]:PATH` for the v1 hierarchies of those controllers.
fn target_cgroup(cg: &Cgroup, requests: &[String]) -> Result<Cgroup> {
    let mut dirs: Vec<CgroupDir> = cg.dirs.clone();
    for req in requests {
        let (ctrls, sub) = match req.split_once(':') {
            Some((c, p)) => (Some(c), p),
            None => (None, req.as_str()),
        };
        let rel = Path::new(sub.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!("--cgroup {req:?}: the path must stay below the container's cgroup");
        }
        let mut matched = false;
        for (dir, orig) in dirs.iter_mut().zip(&cg.dirs) {
            let applies = match ctrls {
                None => true,
                Some(c) => {
                    !orig.unified
                        && c.split(',')
                            .any(|want| orig.subsystems.split(',').any(|have| have == want))
                }
            };
            if applies {
                let path = orig.path.join(rel);
                if !path.is_dir() {
                    bail!("--cgroup {req:?}: {} does not exist", path.display());
                }
                dir.path = path;
                matched = true;
            }
        }
        if !matched {
            bail!("--cgroup {req:?}: the container has no cgroup for those controllers");
        }
    }
    Ok(Cgroup {
        dirs,
        created: Vec::new(),
        systemd: None,
    })
}
