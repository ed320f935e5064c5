//! `rt run`: create and start; in the foreground, relay signals (and the terminal) to the
//! container, wait for it, delete it, and exit with its status (128+N when killed by
//! signal N, as runc).

use std::os::fd::AsRawFd;

use crate::console;
use crate::container::create::{create, CreateOpts, Created};
use crate::container::foreground::Foreground;
use crate::container::{delete, start};
use crate::error::{Context, Result};
use crate::state::{StateDir, Status};
use crate::sys;

pub struct RunOpts {
    pub create: CreateOpts,
    pub detach: bool,
    pub keep: bool,
    /// Do not become a subreaper: orphans of a container without its own pid namespace
    /// then go to the host's init instead of to rt.
    pub no_subreaper: bool,
}

/// Returns the exit status for rt itself.
pub fn run(opts: &RunOpts) -> Result<i32> {
    if opts.detach {
        let created = create(&opts.create)?;
        return start_created(&opts.create.root, created).map(|_| 0);
    }
    // The init is our child (see sys::fork_sibling) even with its own pid namespace; as
    // subreaper we also reap what the container leaves orphaned.
    if !opts.no_subreaper {
        sys::set_child_subreaper().ctx(|| "prctl(PR_SET_CHILD_SUBREAPER)")?;
    }
    let foreground = Foreground::begin()?;
    // Without --console-socket a terminal is relayed by rt itself, over a socket pair.
    let relay = match opts.create.console_socket {
        None => Some(console::socket_pair()?),
        Some(_) => None,
    };
    let mut create_opts = opts.create.clone();
    create_opts.console_fd = relay.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
    let created = create(&create_opts)?;
    let terminal = opts.create.force_terminal
        || created
            .state
            .config
            .process
            .as_ref()
            .is_some_and(|p| p.terminal);
    let ours = relay.map(|(ours, _theirs)| ours);
    let id = created.state.id.clone();
    let pid = created.state.pid;
    start_created(&opts.create.root, created)?;
    let tty = match ours.filter(|_| terminal) {
        Some(sock) => Some(console::receive_master(&sock)?),
        None => None,
    };
    let status = foreground.wait(pid, tty)?;
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

fn start_created(root: &std::path::Path, created: Created) -> Result<()> {
    let Created { dir, state } = created;
    if let Err(e) = start::launch(dir, &state) {
        if let Ok(dir) = StateDir::open(root, &state.id) {
            if dir.status(&state) != Status::Stopped {
                let _ = delete::kill_and_wait(&state);
            }
            let _ = delete::destroy(dir, &state);
        }
        return Err(e);
    }
    Ok(())
}
