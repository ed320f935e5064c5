//! `--pidfd-socket PATH` (create, run, exec): a pidfd of the container process is sent over
//! the AF_UNIX socket at PATH (SCM_RIGHTS, with the name "pidfd" as data, as runc does), so
//! a supervisor can signal and wait for exactly that process, never a recycled pid.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};
use crate::sys;

pub fn send(path: &Path, pid: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(pid).map_err(|e| Error::sys(format!("pidfd_open {pid}"), e))?;
    let sock = UnixStream::connect(path)
        .ctx(|| format!("connect to --pidfd-socket {}", path.display()))?;
    let fds = [pidfd.as_raw_fd()];
    let iov = [IoSlice::new(b"pidfd")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(drop)
    .map_err(|e| {
        Error::sys(
            format!("sendmsg the pidfd to --pidfd-socket {}", path.display()),
            e,
        )
    })
}
