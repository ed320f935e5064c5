//! `rt start`: release the init blocked on exec.fifo, then run poststart hooks.

use std::io::Write;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::state::{process_alive, State, StateDir, Status};
use crate::{hooks, notify_socket};

pub fn start(root: &std::path::Path, id: &str) -> Result<()> {
    let loading = crate::trace::step("state-load");
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    drop(loading);
    crate::trace::export::configure(&state.config.annotations, id);
    match dir.status(&state) {
        Status::Created => {}
        Status::Stopped => bail!(
            "cannot start a container that has stopped (init {} {})",
            state.pid,
            crate::state::why_not_alive(state.pid, state.pid_start_time)
        ),
        _ => bail!("cannot start an already running container"),
    }
    launch(dir, &state)
}

/// Release the init, run the poststart hooks, and pass the container's READY on to
/// NOTIFY_SOCKET when there is one.
pub fn launch(dir: StateDir, state: &State) -> Result<()> {
    let notify = notify_socket::listen(&dir.path)?;
    crate::trace::step("release-init").run(|| release(&dir, state))?;
    // Other commands may look at the container from now on.
    drop(dir);
    // runtime-spec 1.3 (and runc): a failing poststart hook is an error that stops the
    // container; `delete` then destroys it and runs the poststop hooks.
    if let Err(e) = hooks::run_all(
        "poststart",
        &state.config.hooks().poststart,
        &state.hook_json(Status::Running),
    ) {
        crate::container::delete::kill_and_wait(state)?;
        return Err(e.context("the container was stopped"));
    }
    if let Some(n) = notify {
        n.forward_ready(state.pid, || process_alive(state.pid, state.pid_start_time))?;
    }
    Ok(())
}

/// Write the byte the init waits for, and remove the fifo: its absence means "started".
/// Returns once the program runs; an init that died before it could exec it (a failing
/// startContainer hook, a failed exec) is an error (runtime-spec: the container stops).
pub fn release(dir: &StateDir, state: &State) -> Result<()> {
    let fifo = dir.fifo();
    let fd = match open(
        &fifo,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // No reader: the init is gone.
        Err(Errno::ENXIO) => bail!(
            "cannot start a container that has stopped (no reader on {}: the init is gone)",
            fifo.display()
        ),
        Err(e) => return Err(Error::sys(format!("open {}", fifo.display()), e)),
    };
    let mut file = std::fs::File::from(fd);
    file.write_all(&[0])
        .ctx(|| format!("write {}", fifo.display()))?;
    std::fs::remove_file(&fifo).ctx(|| format!("remove {}", fifo.display()))?;
    wait_for_exec(&file);
    if died_before_exec(state) {
        bail!(
            "container init {} exited before running the program: a startContainer hook or the exec failed (the init's error is in rt's log)",
            state.pid
        );
    }
    Ok(())
}

/// The init still carries its own name: it never exec'd (exec renames the process before
/// it closes the close-on-exec fds, so once the fifo end is gone the name tells), and it
/// is dying or dead. A process already reaped tells nothing: the program may have run and
/// exited.
fn died_before_exec(state: &State) -> bool {
    crate::state::proc_stat(state.pid).is_some_and(|s| {
        s.start_time == state.pid_start_time
            && s.comm.as_bytes() == crate::process::init::INIT_NAME.to_bytes()
    })
}

/// The init holds the fifo's only read end, close-on-exec: it goes away when the init has
/// run the startContainer hooks and exec'd the program (or died trying). The kernel then
/// reports POLLERR on our write end, so poststart hooks really run after the program
/// started, as the spec orders them.
fn wait_for_exec(fifo: &std::fs::File) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}
