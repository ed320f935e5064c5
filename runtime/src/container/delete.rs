//! `rt delete`: remove a stopped (or, with --force, a running) container: its processes,
//! cgroup and state directory, then the poststop hooks.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::bail;
use crate::cgroups::kill::DEATH_WAIT;
use crate::cgroups::leftover::Leftover;
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
    crate::trace::export::configure(&state.config.annotations, id);
    // One deadline for killing and for emptying the cgroup, not one after the other.
    let deadline = Instant::now() + DEATH_WAIT;
    match dir.status(&state) {
        Status::Stopped => {}
        // A created container never ran its program: deleting it is always allowed.
        Status::Created => kill_and_wait_until(&state, deadline)?,
        // Left by a `create` that was itself killed mid-way (its lock is gone: a running
        // create would still hold it), with an init that outlived it. Through the pidfd
        // and the start time, never a process that took over the pid.
        Status::Creating if force => {
            let _ = signal_init(&state, libc::SIGKILL);
        }
        _ if force => kill_and_wait_until(&state, deadline)?,
        s => bail!(
            "cannot delete container {id} that is not stopped: {}",
            s.as_str()
        ),
    }
    destroy_until(dir, &state, deadline)
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
    destroy_until(dir, state, Instant::now() + DEATH_WAIT)
}

/// [`destroy`], processes still in the container's cgroup given until `deadline` to die.
/// When the kernel keeps one, nothing is removed (the state stays, so that a later
/// delete can finish) and the error says what is left.
fn destroy_until(dir: StateDir, state: &State, deadline: Instant) -> Result<()> {
    if !state.cgroup.is_owned() && !crate::container::kill::init_kills_all(state) {
        log::debug!(
            "delete: the container's cgroup existed before it and it has no pid namespace of its own: only its init was killed"
        );
    }
    state
        .cgroup
        .destroy_until(deadline)
        .map_err(|e| e.context(format!("container {}", state.id)))?;
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

/// What a delete that could not end every process leaves, and how to finish it.
const KEPT: &str = "the container is kept: delete it again once they are gone";

/// SIGKILL the container and wait (up to [`DEATH_WAIT`]) until it is gone.
pub fn kill_and_wait(state: &State) -> Result<()> {
    kill_and_wait_until(state, Instant::now() + DEATH_WAIT)
}

/// SIGKILL the container's init (and, in a cgroup rt made, every other process of it at
/// once: it is going anyway) and wait until `deadline` for them to be gone. When they are
/// not, the error says which are left, in which state, and why.
pub fn kill_and_wait_until(state: &State, deadline: Instant) -> Result<()> {
    let pidfd = sys::pidfd_open(state.pid).ok();
    if signal_init(state, libc::SIGKILL).is_err() && process_alive(state.pid, state.pid_start_time)
    {
        bail!("failed to kill container init {}", state.pid);
    }
    let started = Instant::now();
    if state.cgroup.is_owned() {
        if let Err(left) = state.cgroup.kill_owned_until(deadline) {
            let alive = process_alive(state.pid, state.pid_start_time);
            let left = left.with_pid(&state.cgroup, state.pid, alive);
            bail!("container {}: {left}; {KEPT}", state.id);
        }
    } else {
        // What `rt pause` froze: the container's own directories, never an ancestor.
        state.cgroup.thaw();
    }
    while process_alive(state.pid, state.pid_start_time) {
        if Instant::now() >= deadline {
            let left = Leftover::of_pids(&state.cgroup, &[state.pid], started.elapsed());
            bail!("container {}: {left}; {KEPT}", state.id);
        }
        match &pidfd {
            // The pidfd becomes readable when the process exits.
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(20u16));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Ok(())
}
