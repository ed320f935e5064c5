//! Waiting in the foreground for a container process (`run`, `exec` without -d): every
//! signal rt gets is forwarded to the process through its pidfd, and with a terminal the
//! pty master is wired to rt's own stdin/stdout (raw mode, window size kept in step).
//! The status returned is the process's exit code, or 128+N when signal N killed it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::sys;

/// Signals are blocked and queued on a signalfd from before the process is forked, so none
/// is lost between its start and the wait.
pub struct Foreground {
    sfd: SignalFd,
}

impl Foreground {
    pub fn begin() -> Result<Foreground> {
        let mut all = SigSet::all();
        all.remove(Signal::SIGKILL);
        all.remove(Signal::SIGSTOP);
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None)
            .ctx(|| "sigprocmask")?;
        let sfd = SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .ctx(|| "signalfd")?;
        Ok(Foreground { sfd })
    }

    /// Wait for `pid` (a child of rt) to exit, forwarding signals to it; with `tty` (the pty
    /// master) copy between it and rt's stdio meanwhile.
    pub fn wait(&self, pid: i32, tty: Option<OwnedFd>) -> Result<i32> {
        let pidfd = sys::pidfd_open(pid).ok();
        let relay = tty.map(TtyRelay::new).transpose()?;
        let mut stdin_open = relay.is_some();
        let mut master_open = relay.is_some();
        loop {
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            let (mut master_at, mut stdin_at) = (None, None);
            if let Some(r) = relay.as_ref().filter(|_| master_open) {
                master_at = Some(fds.len());
                fds.push(PollFd::new(r.master.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                stdin_at = Some(fds.len());
                fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("poll", e)),
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds.get(i))
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (sig_ready, master_ready, stdin_ready) =
                (ready(Some(0)), ready(master_at), ready(stdin_at));
            drop(fds);
            if let Some(r) = &relay {
                // The slave side closed (EIO): the process's output is complete.
                if master_ready && !r.pump_output() {
                    master_open = false;
                }
                if stdin_ready && !r.pump_input() {
                    stdin_open = false;
                }
            }
            if !sig_ready {
                continue;
            }
            while let Ok(Some(info)) = self.sfd.read_signal() {
                match info.ssi_signo as i32 {
                    libc::SIGCHLD => {
                        if let Some(status) = reap(pid) {
                            if let Some(r) = relay.as_ref().filter(|_| master_open) {
                                r.drain_output();
                            }
                            return Ok(status);
                        }
                    }
                    libc::SIGWINCH => {
                        if let Some(r) = &relay {
                            r.copy_window_size();
                        }
                    }
                    sig => {
                        if let Some(fd) = &pidfd {
                            let _ = sys::pidfd_send_signal(fd.as_raw_fd(), sig);
                        }
                    }
                }
            }
        }
    }
}

/// Reap every exited child (orphans of the container may land on a subreaper rt); the
/// status of `pid` once it has exited.
fn reap(pid: i32) -> Option<i32> {
    let target = Pid::from_raw(pid);
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == target => return Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == target => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// The pty master wired to rt's stdio; rt's terminal (if stdin is one) is put in raw mode
/// so keys reach the container untouched, and restored on drop.
struct TtyRelay {
    master: OwnedFd,
    saved: Option<Termios>,
}

impl TtyRelay {
    fn new(master: OwnedFd) -> Result<TtyRelay> {
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .ctx(|| "fcntl(O_NONBLOCK) on the pty master")?;
        let saved = termios::tcgetattr(stdin()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin(), SetArg::TCSANOW, &raw)
                .ctx(|| "tcsetattr: raw mode on stdin")?;
        }
        let relay = TtyRelay { master, saved };
        relay.copy_window_size();
        Ok(relay)
    }

    /// rt's window size onto the container's terminal.
    fn copy_window_size(&self) {
        let mut ws: libc::winsize = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a winsize into valid memory; TIOCSWINSZ reads one.
        unsafe {
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }

    /// stdin → master; false once stdin is at its end.
    fn pump_input(&self) -> bool {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(stdin(), &mut buf) {
            Ok(0) => false,
            Ok(n) => {
                write_all(self.master.as_fd(), &buf[..n]);
                true
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => true,
            Err(_) => false,
        }
    }

    /// master → stdout, what is there now.
    fn pump_output(&self) -> bool {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) => false,
            Ok(n) => {
                // SAFETY: fd 1 stays open for the life of the process.
                write_all(unsafe { BorrowedFd::borrow_raw(1) }, &buf[..n]);
                true
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => true,
            Err(_) => false,
        }
    }

    /// After the process exited: what it wrote may still be on its way through the pty.
    /// Read until the slave side is closed (EIO) or nothing came for 100 ms.
    fn drain_output(&self) {
        loop {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u8)) {
                Ok(n) if n > 0 => {
                    if !self.pump_output() {
                        return;
                    }
                }
                Err(Errno::EINTR) => {}
                _ => return,
            }
        }
    }
}

impl Drop for TtyRelay {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(stdin(), SetArg::TCSANOW, t);
        }
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u8));
            }
            Err(_) => return,
        }
    }
}
