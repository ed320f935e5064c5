//! Probes that would change the caller (unshare) run in a forked child that exits at once
//! and is reaped before the probe returns, so neither rt nor the host keeps anything.

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::sys;

/// Run `f` in a forked child and return what it returned (its exit status: 0, or an errno
/// number). `f` must only make system calls: the child leaves by `_exit`, running no
/// destructor of the parent's state.
pub fn exit_code_of(f: impl FnOnce() -> i32) -> Result<i32, Errno> {
    match sys::fork()? {
        None => sys::exit_now(f()),
        Some(pid) => reap(pid),
    }
}

/// Wait for the child `pid` (ours) and return its exit status; killed by a signal counts as
/// 128 + the signal, as a shell says.
pub fn reap(pid: i32) -> Result<i32, Errno> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
