//! `rt kill`: signal the init through a pidfd (a recycled pid is never signalled), or with
//! --all every process of the container's cgroup.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::bail;
use crate::cgroups::kill::DEATH_WAIT;
use crate::cgroups::leftover::Leftover;
use crate::error::{Error, Result};
use crate::state::{State, StateDir, Status};
use crate::sys;

/// A signal by name (`KILL`, `SIGKILL`, `sigkill`) or number; 0 sends none and only
/// checks that the process is there, as kill(2).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=libc::SIGRTMAX()).contains(&n) {
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
    crate::trace::export::configure(&state.config.annotations, id);
    if all {
        // runc: --all on a stopped container succeeds. Its init is gone, but without a pid
        // namespace of its own other processes may live on in its cgroup: they go too.
        signal_all(&state, sig);
        if sig == libc::SIGKILL {
            if let Some(left) = wait_for_death(&state, Instant::now() + DEATH_WAIT) {
                // The signal is sent and takes effect when the kernel lets go: a warning.
                log::warn!("kill --all: container {id}: {left}");
            }
        }
        return Ok(());
    }
    if dir.status(&state) == Status::Stopped {
        bail!("container not running");
    }
    signal_init(&state, sig)?;
    if sig == libc::SIGKILL && crate::cgroups::is_frozen(&state.cgroup) {
        // runc does the same: a paused container's init dies of SIGKILL only once thawed
        // (v1), and whoever sent it waits for that exit.
        state.cgroup.thaw();
    }
    Ok(())
}

/// Wait until `deadline` for every process [`signal_all`] signalled to be gone; what is
/// still there then.
fn wait_for_death(state: &State, deadline: Instant) -> Option<Leftover> {
    let started = Instant::now();
    if state.cgroup.is_owned() {
        let alive = || crate::state::process_alive(state.pid, state.pid_start_time);
        return (state.cgroup.kill_owned_until(deadline).err())
            .map(|left| left.with_pid(&state.cgroup, state.pid, alive()));
    }
    let mut pause = Duration::from_millis(1);
    loop {
        let mut left = pidns_members(state);
        if crate::state::process_alive(state.pid, state.pid_start_time)
            && !left.contains(&state.pid)
        {
            left.push(state.pid);
        }
        if left.is_empty() {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(Leftover::of_pids(&state.cgroup, &left, started.elapsed()));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Whether the container has a pid namespace of its own, so that the init's death takes
/// every other process of the container with it (the kernel kills them).
pub fn init_kills_all(state: &State) -> bool {
    state.config.creates_namespace("pid")
}

/// Signal every process of the container, and never anybody else's: everything in the
/// cgroup tree rt made for it; in a cgroup that existed before (which other processes may
/// share: a slice, a pod's cgroup, even the root), only those in the container's own pid
/// namespace, or without one only the init. Processes may exit while we go through the
/// list: ESRCH is fine.
pub fn signal_all(state: &State, sig: i32) {
    if state.cgroup.is_owned() {
        for pid in state.cgroup.owned_pids() {
            let _ = sys::kill(pid, sig);
        }
        return;
    }
    for pid in pidns_members(state) {
        if pid != state.pid {
            let _ = sys::kill(pid, sig);
        }
    }
    // A frozen process dies only once thawed: the container's own directories thaw (what
    // `rt pause` froze), never a cgroup above them; and only while its init lives, since
    // a cgroup that is not rt's may hold others' processes once the container is gone.
    if signal_init(state, sig).is_ok() && sig == libc::SIGKILL {
        state.cgroup.thaw();
    }
}

/// The processes of a container that has a pid namespace of its own, found without a
/// cgroup rt owns: those of its cgroup tree (or, with no cgroup at all, as a rootless
/// container may have, of the whole host) that are in the init's pid namespace.
/// Nothing when the init is gone or shares the host's pid namespace.
pub fn pidns_members(state: &State) -> Vec<i32> {
    let alive = crate::state::process_alive(state.pid, state.pid_start_time);
    let Some(ns) = pid_namespace(state.pid).filter(|_| alive && init_kills_all(state)) else {
        return Vec::new();
    };
    let candidates = if state.cgroup.dirs.is_empty() {
        all_pids()
    } else {
        state.cgroup.tree_pids()
    };
    candidates
        .into_iter()
        .filter(|&pid| pid_namespace(pid).as_ref() == Some(&ns))
        .collect()
}

/// Every process of the host that /proc shows.
fn all_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// The pid namespace `pid` is in, as /proc names it ("pid:[4026531836]").
fn pid_namespace(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
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
