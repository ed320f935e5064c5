//! `rt create`: validate the bundle, plan the container, fork the init, drive it through
//! the handshake until it waits for `start`, then record the state. On any failure nothing
//! is left behind: no process, cgroup, or state directory.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{open, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{mkfifo, Pid};

use crate::bail;
use crate::cgroups::resources::{DeviceRule, Resources};
use crate::cgroups::self_join::{self, SelfJoin};
use crate::cgroups::{self, Cgroup};
use crate::error::{Context, Error, Result};
use crate::fault::{self, Step};
use crate::namespaces::{self, NamespacePlan};
use crate::process::channel::{self, Channel, Msg};
use crate::process::{init, CgroupJoin, InitPlan, ProcessPlan};
use crate::rootfs::{devices, idmap, mounts, RootfsPlan};
use crate::security::{capabilities, rlimits};
use crate::spec::Spec;
use crate::state::{State, StateDir, Status};
use crate::{hooks, sys, timefmt};

#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// --pidfd-socket: a pidfd of the init goes there once it is set up.
    pub pidfd_socket: Option<PathBuf>,
    /// Who makes the cgroup (`--systemd-cgroup`, `--cgroup-manager`); with
    /// `Driver::Disabled` there is none and linux.resources is ignored.
    pub cgroups: cgroups::Driver,
    /// `run -t`: a terminal whatever process.terminal says.
    pub force_terminal: bool,
    /// An already connected socket for the pty master, borrowed from the caller: `run`
    /// relaying the terminal itself.
    pub console_fd: Option<std::os::fd::RawFd>,
}

pub struct Created {
    pub dir: StateDir,
    pub state: State,
}

pub fn create(opts: &CreateOpts) -> Result<Created> {
    crate::state::validate_id(&opts.id)?;
    let bundle = absolute(&opts.bundle)?;
    let spec = crate::trace::step("config-load").run(|| Spec::load(&bundle))?;
    crate::trace::export::configure(&spec.annotations, &opts.id);
    let validate = crate::trace::step("validate");
    spec.process()?;
    let rootfs = absolute(&spec.rootfs(&bundle)?)?;
    if !rootfs.is_dir() {
        return Err(Error::msg(format!(
            "root.path: rootfs {} does not exist or is not a directory",
            rootfs.display()
        ))
        .with_path(rootfs.display()));
    }
    // As runc: the rootfs path must not go through a symlink, which could be swapped
    // between our checks and the mounts.
    match fs::canonicalize(&rootfs) {
        Ok(real) if real == rootfs => {}
        Ok(real) => bail!(
            "root.path: invalid rootfs {}: it goes through a symlink (to {}); give the real path",
            rootfs.display(),
            real.display()
        ),
        Err(e) => {
            return Err(Error::io(
                format!("root.path: resolve {}", rootfs.display()),
                e,
            ))
        }
    }
    refuse_unimplemented(&spec)?;
    spec.require_mount_namespace()?;
    drop(validate);
    let dir = crate::trace::step("state-dir").run(|| StateDir::create(&opts.root, &opts.id))?;
    fault::point(Step::CreateLocked);
    let mut cgroup = Cgroup::default();
    let mut init_pid = None;
    let mut hook_failed = None;
    match spawn(
        opts,
        &spec,
        &bundle,
        &rootfs,
        &dir,
        &mut cgroup,
        &mut init_pid,
        &mut hook_failed,
    ) {
        Ok(state) => Ok(Created { dir, state }),
        Err(e) => {
            if let Some(pid) = init_pid {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if let Err(ce) = cgroup.destroy() {
                log::warn!("cleanup after failed create: {ce}");
            }
            if let Err(de) = dir.remove() {
                log::warn!("cleanup after failed create: {de}");
            }
            // A failing prestart, createRuntime or createContainer hook goes on with the
            // destruction and the poststop hooks (runtime-spec lifecycle steps 12-13).
            if let Some(stopped) = hook_failed {
                hooks::run_all_warn("poststop", &spec.hooks().poststop, &stopped);
            }
            Err(e)
        }
    }
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().ctx(|| "getcwd")?;
    let joined = cwd.join(p);
    // Tidy "." and ".." lexically; the bundle need not be canonical, only absolute.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    opts: &CreateOpts,
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    dir: &StateDir,
    cgroup: &mut Cgroup,
    init_pid: &mut Option<i32>,
    hook_failed: &mut Option<String>,
) -> Result<State> {
    let linux = spec.linux();
    let planning = crate::trace::step("plan");
    let mut process = spec.process()?.clone();
    process.terminal |= opts.force_terminal;
    if process.terminal && opts.console_fd.is_some() {
        // Relayed by `run` to its terminal: start at that terminal's size.
        process.console_size = crate::console::caller_window_size().or(process.console_size);
    }
    let ns = NamespacePlan::from_spec(spec)?;
    let rootless = crate::rootless::is_rootless();
    if rootless {
        crate::rootless::check_driver(opts.cgroups)?;
    }
    let hierarchies = cgroups::hierarchies()?;
    *cgroup = cgroups::plan_with(
        opts.cgroups,
        &hierarchies,
        linux.cgroups_path.as_deref(),
        &opts.id,
    )?;
    let mut resources = effective_resources(spec);
    if rootless {
        crate::rootless::fit_cgroup(cgroup, &mut resources, linux.resources.is_some());
    }
    let join_at = cgroup_join_at(cgroup, &ns);
    let hooks = spec.hooks();

    let fifo_path = dir.fifo();
    mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .ctx(|| format!("mkfifo {}", fifo_path.display()))?;
    let exec_fifo: OwnedFd = open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", fifo_path.display()))?;
    let console_socket = match &opts.console_socket {
        Some(path) => {
            let path = absolute(path)?;
            let s = UnixStream::connect(&path)
                .ctx(|| format!("connect to --console-socket {}", path.display()))?;
            Some(OwnedFd::from(s))
        }
        None => match opts.console_fd {
            Some(fd) => {
                // SAFETY: the caller keeps `fd` open for the whole of create.
                let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                Some(
                    borrowed
                        .try_clone_to_owned()
                        .ctx(|| "dup the terminal socket")?,
                )
            }
            None => None,
        },
    };
    if process.terminal && console_socket.is_none() {
        bail!("process.terminal: true needs --console-socket");
    }
    let (listen_fds, mut extra_env) = listen_fds();
    let mut mounts = spec.mounts.clone();
    if crate::notify_socket::host_socket().is_some() {
        let (mount, env) = crate::notify_socket::prepare(&dir.path)?;
        mounts.push(mount);
        extra_env.push(env);
    }
    // Here, with the host's privileges: the init could not idmap a host filesystem.
    let idmapped = idmap::prepare(spec, &spec.mounts, bundle)?;
    let rootfs_plan = RootfsPlan {
        rootfs: rootfs.to_path_buf(),
        bundle: bundle.to_path_buf(),
        readonly: spec.root.as_ref().is_some_and(|r| r.readonly),
        propagation: match linux.rootfs_propagation.as_deref() {
            None | Some("") => None,
            Some(p) => Some(mounts::propagation(p).ok_or_else(|| {
                Error::msg(format!("linux.rootfsPropagation: unknown value {p:?}"))
            })?),
        },
        mounts,
        devices: linux.devices.clone(),
        masked_paths: linux.masked_paths.clone(),
        readonly_paths: linux.readonly_paths.clone(),
        // rt itself may be in one: podman runs it as root of its own user namespace.
        in_userns: spec.has_namespace("user") || rootless,
        new_cgroupns: ns.creates("cgroup"),
        hierarchies,
        cgroup: cgroup.clone(),
        no_pivot: opts.no_pivot,
        cwd: PathBuf::from(&process.cwd),
        mount_label: linux.mount_label.clone(),
        dev_is_bind: spec
            .mounts
            .iter()
            .any(|m| m.destination.trim_end_matches('/') == "/dev" && mounts::is_bind(m)),
        idmapped,
    };
    let attrs = crate::process::attrs::plan(
        process.io_priority.as_ref(),
        process.scheduler.as_ref(),
        linux.personality.as_ref(),
        process.exec_cpu_affinity.as_ref(),
        linux.memory_policy.as_ref(),
    )?;
    let mut plan = InitPlan {
        id: opts.id.clone(),
        time_offsets: linux.time_offsets.clone(),
        // Also in a mount namespace joined by path: the rootfs is set up inside it.
        rootfs: rootfs_plan,
        ns,
        hostname: spec.hostname.clone(),
        domainname: spec.domainname.clone(),
        sysctl: linux.sysctl.clone(),
        create_container_hooks: hooks.create_container.clone(),
        start_container_hooks: hooks.start_container.clone(),
        sync_hooks: !(hooks.prestart.is_empty()
            && hooks.create_runtime.is_empty()
            && hooks.create_container.is_empty()
            && hooks.start_container.is_empty()),
        exec_fifo,
        state_lock_fd: dir.lock_fd(),
        new_keyring: !opts.no_new_keyring,
        rootless,
        process: ProcessPlan {
            caps: capabilities::plan(process.capabilities.as_ref())?,
            rlimits: rlimits::plan(&process.rlimits)?,
            attrs,
            seccomp: crate::trace::step("seccomp-compile").run(|| {
                linux
                    .seccomp
                    .as_ref()
                    .map(crate::security::seccomp::plan)
                    .transpose()
            })?,
            spec: process,
            console_socket,
            preserve_fds: opts.preserve_fds + listen_fds,
            extra_env,
        },
        cgroup_join: match join_at {
            JoinAt::Init => CgroupJoin::Init,
            _ => CgroupJoin::Not,
        },
    };

    drop(planning);
    // With the init joining after its namespaces, the cgroup is made while the first child
    // makes them (a new network namespace alone takes ~0.7 ms), after the fork.
    if join_at != JoinAt::Init {
        make_cgroup(dir, cgroup, &resources)?;
        if join_at == JoinAt::FirstChild {
            plan.cgroup_join = CgroupJoin::First(SelfJoin::open(cgroup)?);
        }
    }
    crate::netdev::check(&linux.net_devices, spec.creates_namespace("network"))?;
    // Refused now when the host has no resctrl: nothing has started yet.
    let rdt = linux
        .intel_rdt
        .as_ref()
        .map(|r| crate::intelrdt::plan(r, &opts.id))
        .transpose()?;
    let (parent_end, child_end) = channel::pair()?;
    let first = crate::trace::step("fork").run(|| fork_init(&plan, parent_end, child_end))?;
    let (chan, c1) = first;
    *init_pid = Some(c1);
    fault::point(Step::CreateForked);
    if join_at == JoinAt::Start {
        crate::trace::step("cgroup-join").run(|| cgroup.join_init(c1, &resources))?;
    }
    chan.send(&Msg::Go)?;
    if join_at == JoinAt::Init {
        if let Err(e) = make_cgroup(dir, cgroup, &resources) {
            // Gone before the channel closes: the first child, waiting for this word,
            // would report the closed channel as an error of its own.
            let _ = kill(Pid::from_raw(c1), Signal::SIGKILL);
            return Err(e);
        }
        if let Err(e) = chan.send(&Msg::CgroupMade) {
            // The first child failed meanwhile: its own error is on the channel.
            return Err(match chan.recv() {
                Ok(Some(Msg::Failed(failed))) => failed,
                _ => e,
            });
        }
    }
    let mut state = State {
        id: opts.id.clone(),
        pid: c1,
        pid_start_time: 0,
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        created: timefmt::rfc3339_nanos(SystemTime::now()),
        cgroup: cgroup.clone(),
        config: spec.clone(),
        rdt: None,
        creating: false,
    };
    let result = handshake(
        spec,
        plan.process.seccomp.as_ref(),
        &chan,
        c1,
        cgroup,
        rdt.as_ref(),
        &mut state,
        dir,
    );
    if let Err(e) = &result {
        if hooks::is_failure(e) {
            *hook_failed = Some(state.hook_json(Status::Stopped));
        }
        let _ = kill(Pid::from_raw(c1), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(state.pid), Signal::SIGKILL);
        // A frozen process dies only once thawed.
        cgroup.kill_owned();
        if let Some(r) = &state.rdt {
            if let Err(e) = r.remove() {
                log::warn!("cleanup after failed create: {e}");
            }
        }
    }
    // The intermediate child (if any) has exited or is about to; reap it either way.
    if state.pid != c1 || result.is_err() {
        reap_within(c1, std::time::Duration::from_secs(5));
    }
    *init_pid = Some(state.pid);
    result?;
    fault::point(Step::CreateHandshakeDone);
    state.pid_start_time = crate::state::proc_stat(state.pid)
        .map(|s| s.start_time)
        .ok_or_else(|| Error::msg(format!("container init {} exited during create", state.pid)))?;
    state.creating = false;
    crate::trace::step("state-save").run(|| dir.save(&state))?;
    fault::point(Step::CreateStateSaved);
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(&absolute(pid_file)?, state.pid)?;
    }
    if let Some(path) = &opts.pidfd_socket {
        crate::pidfd_socket::send(&absolute(path)?, state.pid)?;
    }
    // The container is recorded: from now on the init outlives us.
    chan.send(&Msg::Created)?;
    log::debug!(
        "create: container {} created, init pid {}",
        state.id,
        state.pid
    );
    Ok(state)
}

/// waitpid for our child `pid`, but no longer than `timeout`: a child frozen in a cgroup
/// rt may not thaw (one it did not create) cannot die, and create must still end.
fn reap_within(pid: i32, timeout: std::time::Duration) {
    if let Ok(fd) = sys::pidfd_open(pid) {
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = nix::poll::PollTimeout::try_from(timeout).unwrap_or(nix::poll::PollTimeout::MAX);
        if !matches!(nix::poll::poll(&mut fds, ms), Ok(1)) {
            log::warn!("create: child {pid} did not exit (frozen in a cgroup rt did not create?); it dies when thawed");
            return;
        }
    }
    let _ = waitpid(Pid::from_raw(pid), None);
}

/// Make the container's cgroup directories and set its limits (nothing for a systemd
/// unit, made when it starts).
fn make_cgroup(dir: &StateDir, cgroup: &mut Cgroup, resources: &Resources) -> Result<()> {
    if cgroup.dirs.is_empty() {
        return Ok(());
    }
    let _step = crate::trace::step("cgroup-create");
    // Recorded first, so that `delete --force` finds what to remove when this create is
    // killed before it saves the state.
    dir.save_leftover_cgroup(&cgroup.as_planned())?;
    cgroup.prepare(resources)?;
    fault::point(Step::CreateCgroupMade);
    Ok(())
}

/// Who puts the init in its cgroups, and when.
///
/// Not rt by moving it: a move pays the kernel's RCU grace period (see `self_join`). The
/// process joins by itself, born in its cgroup2 directory and writing itself into each v1
/// hierarchy, before it does anything the container should be charged for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum JoinAt {
    /// rt, before the first child is told to go on: with a systemd unit (systemd moves
    /// the process as it starts the unit, and the init's cgroup mount needs the unit's
    /// directory), or without any cgroup.
    Start,
    /// The first child, by itself, before it makes or joins any namespace: it is the init
    /// (no pid or time namespace to fork into), or a cgroup namespace (whose root is where
    /// its creator is) or a user namespace (whose credentials the kernel would check) needs
    /// it there first.
    FirstChild,
    /// The init, by itself, as it is forked into the new pid (or time) namespace: the
    /// first child is never counted in the container's cgroup, so a pids limit of 1 holds.
    Init,
}

fn cgroup_join_at(cgroup: &Cgroup, ns: &NamespacePlan) -> JoinAt {
    let needs_first = |kind| ns.creates(kind) || ns.join_of(kind).is_some();
    if cgroup.dirs.is_empty() || cgroup.systemd.is_some() {
        JoinAt::Start
    } else if needs_first("cgroup")
        || needs_first("user")
        || !(ns.creates("pid") || ns.creates("time"))
    {
        JoinAt::FirstChild
    } else {
        JoinAt::Init
    }
}

/// Fork the first child; in the parent, come back with the channel and its pid.
fn fork_init(plan: &InitPlan, parent_end: Channel, child_end: Channel) -> Result<(Channel, i32)> {
    let pidns = match plan.ns.join_of("pid") {
        Some(j) => Some(namespaces::PidNsForFork::enter(|| namespaces::join(j))?),
        None => None,
    };
    let join_now = match &plan.cgroup_join {
        CgroupJoin::First(join) => Some(join),
        _ => None,
    };
    let forked = self_join::fork(join_now, false).ctx(|| "fork the container's first process");
    if let Ok((None, born_in_cgroup)) = forked {
        drop(parent_end);
        init::run(plan, &child_end, born_in_cgroup);
    }
    if let Some(pidns) = pidns {
        pidns.leave()?;
    }
    drop(child_end);
    let pid = forked?.0.unwrap_or_default();
    Ok((parent_end, pid))
}

/// The parent's side of the handshake, message by message.
#[allow(clippy::too_many_arguments)]
fn handshake(
    spec: &Spec,
    seccomp: Option<&crate::security::seccomp::SeccompPlan>,
    chan: &Channel,
    c1: i32,
    cgroup: &Cgroup,
    rdt: Option<&crate::intelrdt::Plan>,
    state: &mut State,
    dir: &StateDir,
) -> Result<()> {
    let linux = spec.linux();
    let hooks = spec.hooks();
    loop {
        let msg = next_message(chan, cgroup)?;
        log::debug!("create: init says {msg:?}");
        match msg {
            Some(Msg::UserNsReady) => {
                crate::trace::step("id-maps").run(|| {
                    crate::userns::write_maps(c1, &linux.uid_mappings, &linux.gid_mappings, "linux")
                })?;
                fault::point(Step::CreateMapsWritten);
                chan.send(&Msg::MapsWritten)?;
            }
            Some(Msg::TimeNsReady) => {
                crate::trace::step("time-offsets")
                    .run(|| write_time_offsets(c1, &linux.time_offsets))?;
                chan.send(&Msg::OffsetsWritten)?;
            }
            Some(Msg::InitPid(pid)) => {
                if pid > 0 {
                    state.pid = pid;
                }
                if let Some(r) = rdt {
                    state.rdt = Some(r.apply(state.pid)?);
                }
                // Before any hook: prestart hooks find the devices in the container.
                crate::netdev::move_all(&linux.net_devices, state.pid)?;
                fault::point(Step::CreateInitJoined);
                // Visible to `rt state` (as "creating") while hooks and setup run; with
                // the init's start time, so that a `delete --force` after a killed
                // create never signals another process that took over its pid.
                state.pid_start_time = crate::state::proc_stat(state.pid)
                    .map(|s| s.start_time)
                    .ok_or_else(|| {
                        Error::msg(format!("container init {} exited during create", state.pid))
                    })?;
                state.creating = true;
                crate::trace::step("state-save").run(|| dir.save(state))?;
                fault::point(Step::CreateStateCreating);
            }
            Some(Msg::RuntimeHooks) => {
                fault::point(Step::CreateBeforeHooks);
                let creating = state.hook_json(Status::Creating);
                let run = hooks::run_all("prestart", &hooks.prestart, &creating).and_then(|_| {
                    hooks::run_all("createRuntime", &hooks.create_runtime, &creating)
                });
                if let Err(e) = run {
                    let _ = chan.send_failure(&e);
                    return Err(e);
                }
                // createContainer and startContainer run in the container's namespaces.
                let both = format!(
                    "{}\n{}",
                    state.hook_json_in_container(Status::Creating),
                    state.hook_json_in_container(Status::Created)
                );
                chan.send(&Msg::State(both))?;
            }
            Some(Msg::SeccompListener) => {
                let Some(fd) = chan.take_fd() else {
                    bail!("init channel: the seccomp listener arrived without its fd");
                };
                if let Some(seccomp) = seccomp {
                    let creating = state.hook_json(Status::Creating);
                    crate::security::seccomp::send_listener(seccomp, fd, state.pid, &creating)?;
                }
                chan.send(&Msg::ListenerSent)?;
            }
            Some(Msg::Ready) => return Ok(()),
            Some(Msg::Failed(e)) => return Err(e),
            Some(other) => bail!("init channel: unexpected message {other:?}"),
            None => bail!("container init exited during setup without reporting why"),
        }
    }
}

/// The init's next message. Every wait on the init has a way out: its death closes the
/// channel, and a cgroup frozen under it (by someone else: it would stop the init for
/// ever) is looked for every second.
fn next_message(chan: &Channel, cgroup: &Cgroup) -> Result<Option<Msg>> {
    let _step = crate::trace::step("wait-init");
    while !chan.wait_readable(std::time::Duration::from_secs(1))? {
        cgroup
            .check_not_frozen()
            .ctx(|| "the container init stopped during create")?;
    }
    chan.recv()
}

/// linux.timeOffsets into the child's new time namespace (its time_for_children), before
/// any process has entered it: /proc/<pid>/timens_offsets.
fn write_time_offsets(
    pid: i32,
    offsets: &std::collections::BTreeMap<String, crate::spec::TimeOffset>,
) -> Result<()> {
    let mut text = String::new();
    for (clock, off) in offsets {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => bail!("linux.timeOffsets: unknown clock {other:?} (monotonic or boottime)"),
        };
        text.push_str(&format!("{name} {} {}\n", off.secs, off.nanosecs));
    }
    let path = format!("/proc/{pid}/timens_offsets");
    fs::write(&path, &text).ctx(|| format!("write {text:?} to {path} (linux.timeOffsets)"))
}

/// Socket activation: fds handed to rt via LISTEN_FDS go on to the container's program.
fn listen_fds() -> (u32, Vec<String>) {
    match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(n) if n > 0 => (
            n,
            vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()],
        ),
        _ => (0, Vec::new()),
    }
}

/// Written through a temporary file and a rename, as runc does, so a reader never sees a
/// partial pid.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    fs::write(&tmp, pid.to_string()).ctx(|| format!("write --pid-file {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(|| format!("rename to --pid-file {}", path.display()))
}

/// Security settings this host cannot honour are refused rather than silently dropped: a container must never run with less confinement than its
/// config asks for.
fn refuse_unimplemented(spec: &Spec) -> Result<()> {
    crate::security::lsm::check(spec)
}

/// The resources to apply: the config's, with the device rules completed the way runc
/// completes them: deny all first, then the config's own rules, then the devices every
/// container needs (null, zero, full, tty, random, urandom, ptmx, pts, console). A node
/// listed in `linux.devices` is only created: access to it is what the rules allow.
pub(crate) fn effective_resources(spec: &Spec) -> Resources {
    let mut r = spec.linux().resources.clone().unwrap_or_default();
    // Whatever the config says, a container starts from "no device" (runc does the same).
    r.devices.insert(
        0,
        DeviceRule {
            allow: false,
            access: Some("rwm".into()),
            ..DeviceRule::default()
        },
    );
    let rule = |kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| DeviceRule {
        allow: true,
        kind: Some(kind.to_string()),
        major,
        minor,
        access: Some(access.to_string()),
    };
    // mknod of any device is harmless without read/write access.
    r.devices.push(rule("c", None, None, "m"));
    r.devices.push(rule("b", None, None, "m"));
    for d in devices::defaults() {
        r.devices
            .push(rule("c", Some(d.major), Some(d.minor), "rwm"));
    }
    r.devices.push(rule("c", Some(5), Some(2), "rwm")); // /dev/ptmx
    r.devices.push(rule("c", Some(136), None, "rwm")); // /dev/pts/*
    r.devices.push(rule("c", Some(5), Some(1), "rwm")); // /dev/console
    r
}
