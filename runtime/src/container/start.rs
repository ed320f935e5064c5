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
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
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
    release(&dir)?;
    drop(dir); // other commands may look at the container from now on
    hooks::run_all_warn(
        "poststart",
        &state.config.hooks().poststart,
        &state.hook_json(Status::Running),
    );
    if let Some(n) = notify {
        n.forward_ready(state.pid, || process_alive(state.pid, state.pid_start_time))?;
    }
    Ok(())
}

/// Write the byte the init waits for, and remove the fifo: its absence means "started".
pub fn release(dir: &StateDir) -> Result<()> {
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
    Ok(())
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
