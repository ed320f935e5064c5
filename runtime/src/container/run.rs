//! `rt run`: create and start; in the foreground, relay signals to the container, wait for
//! it, delete it, and exit with its status (128+N when killed by signal N, as runc).

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::container::create::{create, CreateOpts};
use crate::container::{delete, kill, start};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::state::{StateDir, Status};
use crate::sys;

pub struct RunOpts {
    pub create: CreateOpts,
    pub detach: bool,
    pub keep: bool,
}

/// Returns the exit status for rt itself.
pub fn run(opts: &RunOpts) -> Result<i32> {
    if opts.detach {
        let created = create(&opts.create)?;
        return start_created(&opts.create.root, created).map(|_| 0);
    }
    // The init is our grandchild when it has its own pid namespace: be its subreaper so we
    // can wait for it. Signals are taken through a signalfd and relayed.
    sys::set_child_subreaper().ctx(|| "prctl(PR_SET_CHILD_SUBREAPER)")?;
    let mut all = SigSet::all();
    all.remove(Signal::SIGKILL);
    all.remove(Signal::SIGSTOP);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None).ctx(|| "sigprocmask")?;
    let sfd = SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC).ctx(|| "signalfd")?;
    let created = create(&opts.create)?;
    let id = created.state.id.clone();
    let state = created.state.clone();
    start_created(&opts.create.root, created)?;
    let status = wait_relaying(&sfd, &state)?;
    if !opts.keep {
        let dir = StateDir::open(&opts.create.root, &id)?;
        let state = dir.load()?;
        if dir.status(&state) != Status::Stopped {
            delete::kill_and_wait(&state)?;
        }
        delete::destroy(dir, &state)?;
    }
    Ok(status)
}

fn start_created(root: &std::path::Path, created: crate::container::create::Created) -> Result<()> {
    let crate::container::create::Created { dir, state } = created;
    let result = start::release(&dir);
    drop(dir); // other commands may look at the container from now on
    if let Err(e) = result {
        if let Ok(dir) = StateDir::open(root, &state.id) {
            let _ = delete::destroy(dir, &state);
        }
        return Err(e);
    }
    hooks::run_all_warn(
        "poststart",
        &state.config.hooks().poststart,
        &state.hook_json(Status::Running),
    );
    Ok(())
}

fn wait_relaying(sfd: &SignalFd, state: &crate::state::State) -> Result<i32> {
    let init = Pid::from_raw(state.pid);
    loop {
        let Some(info) = sfd
            .read_signal()
            .map_err(|e| Error::sys("read signalfd", e))?
        else {
            continue;
        };
        let sig = info.ssi_signo as i32;
        if sig != libc::SIGCHLD {
            // Forward everything else to the container, as runc does.
            let _ = kill::signal_init(state, sig);
            continue;
        }
        // Reap every exited child (orphans of the container land here too).
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == init => return Ok(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
