//! The container's init, from fork to execve. Stage 1 enters the namespaces (joining before
//! creating, user namespace first); stage 2 — the container's PID 1 when it has a pid
//! namespace — builds the rootfs, becomes the configured user, reports ready, and blocks on
//! exec.fifo until `rt start`. Every failure goes back to the parent as one line.
//!
//! rt is single-threaded when it forks, so this code may allocate; it never starts threads.

use std::ffi::CString;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::unistd::{execve, setresgid, setresuid, Gid, Uid};

use super::channel::{Channel, Msg};
use super::InitPlan;
use crate::bail;
use crate::error::{Context, Error, Result};
use crate::{console, hooks, namespaces, rootfs, security, sys};

/// The forked child's entry point. Never returns.
pub fn run(plan: &InitPlan, chan: &Channel) -> ! {
    let err = match stage1(plan, chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.send(&Msg::Failed(err.to_string()));
    sys::exit_now(1)
}

enum Never {}

fn stage1(plan: &InitPlan, chan: &Channel) -> Result<Never> {
    // Nobody may ptrace or read /proc/<pid>/mem of the runtime while it works inside the
    // container (CVE-2016-9962); execve restores dumpability for the program.
    sys::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)")?;
    chan.expect(Msg::Go)?;
    plan.attrs.apply_initial()?;
    // Join first, while we still have the host's privileges; the pid namespace was joined
    // by the parent (it only applies to children).
    for j in plan.ns.joins.iter().filter(|j| j.kind != "pid") {
        log::debug!("init: join {} namespace {}", j.kind, j.path);
        namespaces::join(j)?;
    }
    if plan.ns.creates("user") {
        log::debug!("init: new user namespace");
        namespaces::create(CloneFlags::CLONE_NEWUSER)?;
        chan.send(&Msg::UserNsReady)?;
        chan.expect(Msg::MapsWritten)?;
    }
    if plan.ns.creates("user") || plan.ns.join_of("user").is_some() {
        // Become the namespace's root, so the rest runs with its full capabilities.
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "setresgid 0 in the new user namespace (is container gid 0 mapped?)")?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "setresuid 0 in the new user namespace (is container uid 0 mapped?)")?;
    }
    let rest = plan.ns.new - CloneFlags::CLONE_NEWUSER;
    log::debug!("init: unshare {rest:?}");
    namespaces::create(rest)?;
    if plan.ns.creates("time") {
        write_time_offsets(plan)?;
    }
    // New pid and time namespaces apply to children only: the init is a second child.
    if plan.ns.creates("pid") || plan.ns.creates("time") {
        if let Some(pid) = sys::fork().ctx(|| "fork the container init")? {
            chan.send(&Msg::InitPid(pid))?;
            sys::exit_now(0);
        }
    } else {
        chan.send(&Msg::InitPid(0))?;
    }
    stage2(plan, chan)
}

fn write_time_offsets(plan: &InitPlan) -> Result<()> {
    let mut text = String::new();
    for (clock, off) in &plan.time_offsets {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => bail!("linux.timeOffsets: unknown clock {other:?}"),
        };
        text.push_str(&format!("{name} {} {}\n", off.secs, off.nanosecs));
    }
    if !text.is_empty() {
        fs::write("/proc/self/timens_offsets", &text)
            .ctx(|| format!("write {text:?} to /proc/self/timens_offsets"))?;
    }
    Ok(())
}

fn stage2(plan: &InitPlan, chan: &Channel) -> Result<Never> {
    nix::unistd::setsid().ctx(|| "setsid")?;
    {
        use std::os::fd::AsRawFd;
        let mut keep = vec![
            chan.raw_fd(),
            plan.exec_fifo.as_raw_fd(),
            crate::logging::LOG_FD.load(std::sync::atomic::Ordering::Relaxed),
        ];
        keep.extend(plan.console_socket.as_ref().map(|s| s.as_raw_fd()));
        sys::close_fds_except(3 + plan.preserve_fds as i32, &keep).ctx(|| "close inherited fds")?;
    }
    if plan.new_keyring {
        match sys::join_session_keyring(&format!("_ses.{}", plan.id)) {
            // Keyrings may be unavailable (ENOSYS) or refused by a seccomp policy.
            Ok(()) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EACCES) => {}
            Err(e) => return Err(Error::sys("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", e)),
        }
    }
    if plan.ns.creates("network") {
        namespaces::loopback_up()?;
    }
    // Device nodes and mount targets get exactly the modes asked for.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    if let Some(r) = &plan.rootfs {
        rootfs::prepare(r)?;
    }
    let mut states = (String::new(), String::new());
    if plan.sync_hooks {
        chan.send(&Msg::RuntimeHooks)?;
        match chan.recv()? {
            Some(Msg::State(s)) => {
                let (creating, created) = s.split_once('\n').unwrap_or((&s, &s));
                states = (creating.to_string(), created.to_string());
            }
            Some(Msg::Failed(e)) => return Err(Error::msg(e)),
            other => bail!("init channel: expected the state, got {other:?}"),
        }
    }
    hooks::run_all("createContainer", &plan.create_container_hooks, &states.0)?;
    if let Some(r) = &plan.rootfs {
        log::debug!("init: enter the rootfs");
        rootfs::enter(r)?;
    }
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
    if let Some(r) = &plan.rootfs {
        rootfs::finish(r)?;
    }
    let p = &plan.process;
    if p.terminal {
        let Some(sock) = &plan.console_socket else {
            bail!("process.terminal: true needs --console-socket");
        };
        use std::os::fd::AsRawFd;
        console::setup(
            sock.as_raw_fd(),
            p.console_size,
            plan.rootfs.as_ref().is_some_and(|r| !r.dev_is_bind),
        )?;
    }
    let cwd = Path::new(&p.cwd);
    nix::unistd::chdir(cwd).ctx(|| format!("chdir to process.cwd {}", p.cwd))?;
    // The cwd must be inside the container's root: getcwd says "(unreachable)" (or fails)
    // for a directory outside it.
    match nix::unistd::getcwd() {
        Ok(real)
            if !real
                .as_os_str()
                .as_encoded_bytes()
                .starts_with(b"(unreachable)") => {}
        _ => bail!(
            "process.cwd: {} resolves outside the container's root",
            p.cwd
        ),
    }
    security::rlimits::apply(&plan.rlimits)?;
    if let Some(adj) = p.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("write {adj} to /proc/self/oom_score_adj (process.oomScoreAdj)"))?;
    }
    let env = environment(plan);
    let program = find_program(&p.args[0], &env)?;
    // Without NoNewPrivs the filter needs CAP_SYS_ADMIN, which the user switch may drop:
    // install it now. With NoNewPrivs it waits until just before execve, so that rt's own
    // steps are not filtered.
    if !p.no_new_privileges {
        install_seccomp(plan, chan)?;
    }
    if let Some(caps) = &plan.caps {
        sys::set_keepcaps(true).ctx(|| "prctl(PR_SET_KEEPCAPS, 1)")?;
        security::capabilities::drop_bounding(caps)?;
        security::user::switch(&p.user)?;
        sys::set_keepcaps(false).ctx(|| "prctl(PR_SET_KEEPCAPS, 0)")?;
        security::capabilities::apply(caps)?;
    } else {
        security::user::switch(&p.user)?;
    }
    let umask = p.user.umask.unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask & 0o777));
    if p.no_new_privileges {
        sys::set_no_new_privs().ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)")?;
        // A notify listener must reach the parent before it leaves: install now.
        if plan.seccomp.as_ref().is_some_and(|s| s.needs_listener()) {
            install_seccomp(plan, chan)?;
        }
    }
    chan.send(&Msg::Ready)?;
    wait_for_start(plan)?;
    hooks::run_all("startContainer", &plan.start_container_hooks, &states.1)?;
    plan.attrs.apply_final()?;
    security::lsm::apply_on_exec(p.apparmor_profile.as_deref(), p.selinux_label.as_deref())?;
    if p.no_new_privileges && !plan.seccomp.as_ref().is_some_and(|s| s.needs_listener()) {
        install_seccomp(plan, chan)?;
    }
    exec(plan, &program, env)
}

/// Block until `rt start` writes into exec.fifo.
fn wait_for_start(plan: &InitPlan) -> Result<()> {
    loop {
        let mut fds = [PollFd::new(plan.exec_fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll exec.fifo", e)),
        }
    }
    let mut byte = [0u8; 1];
    match nix::unistd::read(&plan.exec_fifo, &mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => bail!("exec.fifo closed without a start"),
        Err(e) => Err(Error::sys("read exec.fifo", e)),
    }
}

fn exec(plan: &InitPlan, program: &Path, env: Vec<String>) -> Result<Never> {
    sys::reset_signals();
    sys::cloexec_from(3 + plan.preserve_fds).ctx(|| "close_range(CLOSE_RANGE_CLOEXEC)")?;
    let to_c = |s: &str| CString::new(s).map_err(|_| Error::msg(format!("NUL byte in {s:?}")));
    let path = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| Error::msg("NUL byte in the program path"))?;
    let args = plan
        .process
        .args
        .iter()
        .map(|a| to_c(a))
        .collect::<Result<Vec<_>>>()?;
    let env = env.iter().map(|e| to_c(e)).collect::<Result<Vec<_>>>()?;
    let e = execve(&path, &args, &env).unwrap_err();
    Err(Error::sys(format!("exec {}", program.display()), e))
}

/// process.env, plus HOME from the container's /etc/passwd when not set (as runc does).
fn environment(plan: &InitPlan) -> Vec<String> {
    let mut env = plan.process.env.clone();
    env.extend(plan.extra_env.iter().cloned());
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            security::user::home_of(plan.process.user.uid)
        ));
    }
    env
}

/// Resolve the program like execvp would, in the container's PATH, so a missing program is
/// reported by `create` rather than lost after `start`.
fn find_program(name: &str, env: &[String]) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        if fs::metadata(name).is_err() {
            bail!("exec: {name:?}: no such file or directory (process.args[0])");
        }
        return Ok(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("exec: {name:?}: executable file not found in $PATH (process.args[0])")
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: setdomainname reads `len` bytes from a valid buffer.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::errno::Errno::result(r)
        .map(drop)
        .ctx(|| format!("setdomainname {name:?}"))
}

/// Install linux.seccomp; a notify listener goes to the parent, which hands it to
/// listenerPath with the container state.
fn install_seccomp(plan: &InitPlan, chan: &Channel) -> Result<()> {
    let Some(seccomp) = &plan.seccomp else {
        return Ok(());
    };
    log::debug!("init: install the seccomp filter");
    if let Some(listener) = security::seccomp::install(seccomp)? {
        chan.send_with_fd(&Msg::SeccompListener, &listener)?;
        chan.expect(Msg::ListenerSent)?;
    }
    Ok(())
}
