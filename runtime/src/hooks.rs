//! OCI hooks: each runs with the container's state JSON on stdin, its own `args` and
//! `env`, and is killed when its `timeout` (seconds) passes. A hook with `env` gets
//! exactly that environment; one without gets the environment of whoever runs it, as
//! with runc: rt's own for the hooks rt runs on the host and for createContainer, and the
//! container process's (process.env) for startContainer, which runs just before it.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};
use crate::spec::Hook;
use crate::sys;

/// A hook's failure starts by naming the hook ("hooks.prestart[0] /bin/x: ..."), also when
/// it comes from the init as text: that is how `create` tells it from other errors.
const FAILURE_PREFIX: &str = "hooks.";

/// Whether `e` is the failure of a hook run by [`run_all`] or [`run_all_in`].
pub fn is_failure(e: &Error) -> bool {
    e.to_string().starts_with(FAILURE_PREFIX)
}

/// Run `hooks` in order; the first failure stops the rest and is returned.
pub fn run_all(phase: &str, hooks: &[Hook], state_json: &str) -> Result<()> {
    run_all_in(phase, hooks, state_json, None)
}

/// Like [`run_all`], giving `env` to the hooks that have no `env` of their own.
pub fn run_all_in(
    phase: &str,
    hooks: &[Hook],
    state_json: &str,
    env: Option<&[String]>,
) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        log::debug!("hooks: running {phase}[{i}] {}", hook.path);
        let _step = crate::trace::step_with("hook", || format!("{phase}[{i}] {}", hook.path));
        run(hook, state_json, env)
            .map_err(|e| e.context(format!("{FAILURE_PREFIX}{phase}[{i}] {}", hook.path)))?;
    }
    Ok(())
}

/// Run hooks whose failure the spec turns into a warning (poststart, poststop).
/// Every hook runs, whatever the ones before it did.
pub fn run_all_warn(phase: &str, hooks: &[Hook], state_json: &str) {
    for (i, hook) in hooks.iter().enumerate() {
        let _step = crate::trace::step_with("hook", || format!("{phase}[{i}] {}", hook.path));
        if let Err(e) = run(hook, state_json, None) {
            log::warn!("hooks.{phase}[{i}] {}: {e}", hook.path);
        }
    }
}

fn run(hook: &Hook, state_json: &str, inherited: Option<&[String]>) -> Result<()> {
    let mut cmd = Command::new(&hook.path);
    if let Some((argv0, rest)) = hook.args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    // Without either, the hook keeps the environment of this process.
    if let Some(env) = hook.env.as_deref().or(inherited) {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    // A traced command hands its trace context on: the hook's own spans can be children
    // of its step (OpenTelemetry's convention for processes).
    if let Some(tp) = crate::trace::traceparent() {
        cmd.env(crate::trace::PARENT_VAR, tp);
    }
    // Checked before the hook starts: an error after it would leave it running.
    let limit = match hook.timeout {
        Some(t) if t > 0 => Some(Duration::from_secs(t as u64)),
        Some(t) => {
            return Err(Error::msg(format!(
                "timeout: {t} must be greater than zero"
            )))
        }
        None => None,
    };
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::io("exec", e))?;
    let stdin = child.stdin.take();
    let status = match limit {
        // The state goes in within the timeout too: a hook that does not read a state
        // larger than the pipe holds (big annotations) must not hold us past it.
        Some(limit) => wait_timeout(&mut child, limit, stdin, state_json.as_bytes())?,
        None => {
            if let Some(mut stdin) = stdin {
                // A hook need not read its stdin: EPIPE is fine.
                let _ = stdin.write_all(state_json.as_bytes());
            }
            Some(child.wait().map_err(|e| Error::io("wait", e))?)
        }
    };
    match status {
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Error::msg(format!(
                "timed out after {}s and was killed",
                hook.timeout.unwrap_or(0)
            )))
        }
        Some(s) if s.success() => Ok(()),
        Some(s) => match s.signal() {
            Some(sig) => Err(Error::msg(format!("killed by signal {sig}"))),
            None => Err(Error::msg(format!(
                "exited with status {}",
                s.code().unwrap_or(-1)
            ))),
        },
    }
}

fn wait_timeout(
    child: &mut std::process::Child,
    limit: Duration,
    stdin: Option<std::process::ChildStdin>,
    mut data: &[u8],
) -> Result<Option<std::process::ExitStatus>> {
    // A timeout past what the clock can count (a huge `timeout` in config.json) is no
    // timeout at all, rather than a panic (found by the fuzz tests).
    let deadline = Instant::now().checked_add(limit);
    let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| Error::sys("pidfd_open", e))?;
    let mut stdin = stdin.filter(|s| {
        !data.is_empty()
            && nix::fcntl::fcntl(
                s,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .is_ok()
    });
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(None);
        }
        let ms = left.map_or(i32::MAX, |l| l.as_millis().min(i32::MAX as u128) as i32);
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if let Some(s) = &stdin {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
        }
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => continue,
            Ok(_) => {
                let exited = fds[0].any().unwrap_or(false);
                let writable = fds.get(1).and_then(PollFd::any).unwrap_or(false);
                if exited {
                    return child.wait().map(Some).map_err(|e| Error::io("wait", e));
                }
                if writable {
                    if let Some(s) = &mut stdin {
                        match s.write(data) {
                            Ok(n) => data = &data[n..],
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            // EPIPE: the hook closed its stdin, which it may.
                            Err(_) => data = &[],
                        }
                    }
                    if data.is_empty() {
                        // All written (or no reader left): close it, the hook sees EOF.
                        stdin = None;
                    }
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys(format!("poll pidfd {}", pidfd.as_raw_fd()), e)),
        }
    }
}
