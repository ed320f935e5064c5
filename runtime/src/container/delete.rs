//! `rt delete`: remove a stopped (or, with --force, a running) container: its processes,
//! cgroup and state directory, then the poststop hooks.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::bail;
use crate::container::kill::signal_init;
use crate::error::Result;
use crate::hooks;
use crate::state::{process_alive, State, StateDir, Status};
use crate::sys;

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match StateDir::open(root, id) {
        Ok(d) => d,
        // runc: --force on a container that does not exist is not an error.
        Err(_) if force && crate::state::validate_id(id).is_ok() => {
            return remove_leftover(root, id)
        }
        Err(e) => return Err(e),
    };
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Stopped => {}
        // A created container never ran its program: deleting it is always allowed.
        Status::Created => kill_and_wait(&state)?,
        // Left by a `create` that was itself killed mid-way (its lock is gone: a running
        // create would still hold it), with an init that outlived it. Through the pidfd
        // and the start time, never a process that took over the pid.
        Status::Creating if force => {
            let _ = signal_init(&state, libc::SIGKILL);
        }
        _ if force => kill_and_wait(&state)?,
        s => bail!(
            "cannot delete container {id} that is not stopped: {}",
            s.as_str()
        ),
    }
    destroy(dir, &state)
}

/// A directory without state.json: what a `create` killed part way left (its init died
/// with it), or a create still running, which holds the lock until it is done.
fn remove_leftover(root: &Path, id: &str) -> Result<()> {
    let Some(dir) = StateDir::open_leftover(root, id)? else {
        return Ok(());
    };
    if dir.has_state() {
        // The create finished while we waited for its lock: a container like any other.
        drop(dir);
        return match StateDir::open(root, id) {
            Ok(_) => delete(root, id, true),
            Err(_) => Ok(()),
        };
    }
    if let Some(cgroup) = dir.load_leftover_cgroup() {
        log::debug!("delete: removing the cgroup of a create that did not finish");
        // Its init got SIGKILL when rt died (the parent-death signal), but a frozen
        // process dies only once thawed: the rmdir would then find it there for ever.
        cgroup.thaw();
        cgroup.remove_leftover();
    }
    dir.remove()
}

/// Remove what the container holds; the container is stopped.
pub fn destroy(dir: StateDir, state: &State) -> Result<()> {
    if !state.cgroup.is_owned() && !crate::container::kill::init_kills_all(state) {
        log::debug!(
            "delete: the container's cgroup existed before it and it has no pid namespace of its own: only its init was killed"
        );
    }
    state.cgroup.destroy()?;
    if let Some(r) = &state.rdt {
        r.remove()?;
    }
    hooks::run_all_warn(
        "poststop",
        &state.config.hooks().poststop,
        &state.hook_json(Status::Stopped),
    );
    dir.remove()
}

/// SIGKILL the init and wait (up to 10 s) until it is gone.
pub fn kill_and_wait(state: &State) -> Result<()> {
    state.cgroup.thaw();
    let pidfd = sys::pidfd_open(state.pid).ok();
    if signal_init(state, libc::SIGKILL).is_err() && process_alive(state.pid, state.pid_start_time)
    {
        bail!("failed to kill container init {}", state.pid);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(state.pid, state.pid_start_time) {
        if Instant::now() > deadline {
            bail!("container init {} did not exit after SIGKILL", state.pid);
        }
        match &pidfd {
            // The pidfd becomes readable when the process exits.
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Ok(())
}
