//! `rt kill`: signal the init through a pidfd (a recycled pid is never signalled), or with
//! --all every process of the container's cgroup.

use std::os::fd::AsRawFd;

use nix::sys::signal::Signal;

use crate::bail;
use crate::error::{Error, Result};
use crate::state::{State, StateDir, Status};
use crate::sys;

/// A signal by name (`KILL`, `SIGKILL`, `sigkill`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal: {s}");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if let Some(off) = name
        .strip_prefix("SIGRTMIN+")
        .and_then(|n| n.parse::<i32>().ok())
    {
        let sig = libc::SIGRTMIN() + off;
        if sig <= libc::SIGRTMAX() {
            return Ok(sig);
        }
    }
    if let Some(off) = name
        .strip_prefix("SIGRTMAX-")
        .and_then(|n| n.parse::<i32>().ok())
    {
        let sig = libc::SIGRTMAX() - off;
        if sig >= libc::SIGRTMIN() {
            return Ok(sig);
        }
    }
    match name.as_str() {
        "SIGRTMIN" => return Ok(libc::SIGRTMIN()),
        "SIGRTMAX" => return Ok(libc::SIGRTMAX()),
        _ => {}
    }
    name.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::msg(format!("invalid signal: {s}")))
}

pub fn kill(root: &std::path::Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    if dir.status(&state) == Status::Stopped {
        bail!("container not running");
    }
    if all {
        // Processes may exit while we go through the list: ESRCH is fine.
        for pid in state.cgroup.pids() {
            let _ = sys::kill(pid, sig);
        }
        return Ok(());
    }
    signal_init(&state, sig)
}

/// Send `sig` to the container's init, making sure it is still the same process.
pub fn signal_init(state: &State, sig: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(state.pid)
        .map_err(|e| Error::sys(format!("pidfd_open {}", state.pid), e))?;
    // The pidfd pins the process; re-check it is ours before signalling.
    if !crate::state::process_alive(state.pid, state.pid_start_time) {
        bail!("container not running");
    }
    sys::pidfd_send_signal(pidfd.as_raw_fd(), sig).map_err(|e| {
        Error::sys(
            format!("pidfd_send_signal to pid {} signal {sig}", state.pid),
            e,
        )
    })
}
