//! The last steps of any container process, the init's and an exec's alike: its terminal,
//! working directory, limits and credentials, then the seccomp filter, the LSM label and
//! execve. They run in the forked child, inside the container's namespaces and root.

use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::channel::{Channel, Msg};
use super::ProcessPlan;
use crate::bail;
use crate::error::{Context, Error, Result};
use crate::{console, security, sys};

/// The program to run and its environment, found before credentials are dropped.
pub struct Program {
    pub path: PathBuf,
    pub env: Vec<String>,
}

/// Make the pty and hand its master out when `terminal` is set; `dev_console` also binds
/// the slave on /dev/console (the init of a container whose /dev is ours).
pub fn terminal(plan: &ProcessPlan, dev_console: bool) -> Result<()> {
    if !plan.spec.terminal {
        return Ok(());
    }
    let Some(sock) = &plan.console_socket else {
        bail!("process.terminal: true needs --console-socket");
    };
    console::setup(
        sock.as_raw_fd(),
        plan.spec.console_size,
        dev_console,
        plan.spec.user.uid,
    )
}

/// chdir to process.cwd, which must stay inside the container's root.
pub fn enter_cwd(plan: &ProcessPlan) -> Result<()> {
    let cwd = &plan.spec.cwd;
    nix::unistd::chdir(Path::new(cwd))
        .ctx(|| format!("chdir to process.cwd {cwd}"))
        .map_err(|e| e.with_field("process.cwd"))?;
    // getcwd says "(unreachable)" (or fails) for a directory outside the root.
    match nix::unistd::getcwd() {
        Ok(real)
            if !real
                .as_os_str()
                .as_encoded_bytes()
                .starts_with(b"(unreachable)") =>
        {
            Ok(())
        }
        _ => bail!("process.cwd: {cwd} resolves outside the container's root"),
    }
}

/// rlimits, oomScoreAdj, I/O priority and scheduler, while we still may raise them.
pub fn apply_limits(plan: &ProcessPlan) -> Result<()> {
    security::rlimits::apply(&plan.rlimits)?;
    plan.attrs.apply_privileged()?;
    if let Some(adj) = plan.spec.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("write {adj} to /proc/self/oom_score_adj (process.oomScoreAdj)"))?;
    }
    Ok(())
}

/// Find the program, then become the configured user with the configured capabilities
/// (and NoNewPrivs). The seccomp filter goes in here or in [`exec`], whichever lets rt's
/// own remaining steps run unfiltered.
pub fn drop_privileges(plan: &ProcessPlan, chan: &Channel) -> Result<Program> {
    let p = &plan.spec;
    let env = environment(plan);
    let path = find_program(&p.args[0], &env)?;
    // Only the fds below 3+n reach the program (CVE-2024-21626). Marked now, before any
    // filter: close_range is missing from profiles written before Linux 5.9. Whatever rt
    // opens from here on is close-on-exec.
    sys::cloexec_from(3 + plan.preserve_fds).ctx(|| "close_range(CLOSE_RANGE_CLOEXEC)")?;
    // Without NoNewPrivs the filter needs CAP_SYS_ADMIN, which the user switch may drop:
    // install it now (the spec's order; what follows it is listed in the README). With
    // NoNewPrivs it waits until just before execve.
    if !p.no_new_privileges {
        install_seccomp(plan, chan)?;
    }
    let _step = crate::trace::step("user-capabilities");
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
    Ok(Program { path, env })
}

/// The final attributes, the LSM label, a deferred seccomp filter, and execve. With
/// NoNewPrivs the filter goes in last: every argument of execve is ready before it, so
/// that the only system call the filter sees from rt is execve itself (a profile that
/// denies anything else rt would do cannot make the start fail).
pub fn exec(
    plan: &ProcessPlan,
    chan: &Channel,
    program: Program,
) -> Result<std::convert::Infallible> {
    let p = &plan.spec;
    plan.attrs.apply_final()?;
    security::lsm::apply_on_exec(p.apparmor_profile.as_deref(), p.selinux_label.as_deref())?;
    sys::reset_signals();
    let to_c = |s: &[u8]| {
        CString::new(s).map_err(|_| {
            Error::msg(format!(
                "NUL byte in {:?} (process.args or process.env)",
                String::from_utf8_lossy(s)
            ))
        })
    };
    let path = to_c(program.path.as_os_str().as_bytes())?;
    let args = p
        .args
        .iter()
        .map(|a| to_c(a.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let env = program
        .env
        .iter()
        .map(|e| to_c(e.as_bytes()))
        .collect::<Result<Vec<_>>>()?;
    let argv = null_terminated(&args);
    let envp = null_terminated(&env);
    // Written out before a deferred filter, which should see execve alone from rt.
    crate::trace::mark("exec");
    crate::trace::flush();
    if p.no_new_privileges && !plan.seccomp.as_ref().is_some_and(|s| s.needs_listener()) {
        install_seccomp(plan, chan)?;
    }
    // SAFETY: path, argv and envp are NUL-terminated strings and NULL-terminated arrays
    // of them, alive for the call; execve only returns on failure.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(Error::sys(
        format!("exec {}", program.path.display()),
        nix::errno::Errno::last(),
    ))
}

/// The pointer array execve takes, built before the filter goes in (no allocation after).
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// process.env, plus HOME from the container's /etc/passwd when not set (as runc does).
fn environment(plan: &ProcessPlan) -> Vec<String> {
    let mut env = plan.spec.env.clone();
    super::override_env(&mut env, &plan.extra_env);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            security::user::home_of(plan.spec.user.uid)
        ));
    }
    env
}

/// Resolve the program like execvp would, in the container's PATH, so a missing program is
/// reported by `create` (or `exec`) rather than lost after the process started.
fn find_program(name: &str, env: &[String]) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    // runc's words, which clients match; the fields say what failed.
    if name.contains('/') {
        if let Err(e) = fs::metadata(name) {
            let err = Error::msg(format!(
                "exec: {name:?}: no such file or directory (process.args[0])"
            ))
            .with_field("process.args[0]")
            .with_path(name)
            .with_syscall("stat");
            return Err(match e.raw_os_error() {
                Some(code) => err.with_errno(nix::errno::Errno::from_raw(code)),
                None => err,
            });
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
    Err(Error::msg(format!(
        "exec: {name:?}: executable file not found in $PATH (process.args[0])"
    ))
    .with_field("process.args[0]"))
}

/// Install linux.seccomp; a notify listener goes to the parent, which hands it to
/// listenerPath with the container state.
fn install_seccomp(plan: &ProcessPlan, chan: &Channel) -> Result<()> {
    let Some(seccomp) = &plan.seccomp else {
        return Ok(());
    };
    log::debug!("install the seccomp filter");
    let _step = crate::trace::step("seccomp-install");
    if let Some(listener) = security::seccomp::install(seccomp)? {
        chan.send_with_fd(&Msg::SeccompListener, &listener)?;
        chan.expect(Msg::ListenerSent)?;
    }
    Ok(())
}
