//! `process.terminal`: the init makes a pty inside the container's devpts, hands the master
//! to the caller over `--console-socket` (SCM_RIGHTS, as runc does) and makes the slave
//! its controlling terminal and stdio.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::spec::ConsoleSize;

/// Make the pty, send its master over `socket`, and wire the slave as the terminal. The
/// slave belongs to `uid`, the process's user (rt opens it as root); its group is the
/// one devpts gave it (the mount's `gid=`, the tty group).
pub fn setup(socket: RawFd, size: Option<ConsoleSize>, dev_console: bool, uid: u32) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "open /dev/ptmx in the container")?;
    grantpt(&master).ctx(|| "grantpt")?;
    unlockpt(&master).ctx(|| "unlockpt")?;
    let name = ptsname_r(&master).ctx(|| "ptsname")?;
    if let Some(sz) = size {
        let ws = libc::winsize {
            ws_row: sz.height,
            ws_col: sz.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize struct.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(Error::sys(
                "ioctl TIOCSWINSZ (process.consoleSize)",
                nix::errno::Errno::last(),
            ));
        }
    }
    let slave: OwnedFd = open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open pty slave {name}"))?;
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .ctx(|| format!("chown pty slave {name} to uid {uid} (process.user.uid)"))?;
    if dev_console {
        // /dev/console is the conventional name of a container's terminal.
        let console = Path::new("/dev/console");
        if !console.exists() {
            std::fs::File::create(console).ctx(|| "create /dev/console")?;
        }
        mount(
            Some(Path::new(&name)),
            console,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind mount {name} on /dev/console"))?;
    }
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "send the pty master over --console-socket")?;
    drop(master);
    // SAFETY: TIOCSCTTY on an open tty fd; we are a session leader (setsid was called).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::sys("ioctl TIOCSCTTY", nix::errno::Errno::last()));
    }
    nix::unistd::dup2_stdin(&slave).ctx(|| "dup2 pty slave to stdin")?;
    nix::unistd::dup2_stdout(&slave).ctx(|| "dup2 pty slave to stdout")?;
    nix::unistd::dup2_stderr(&slave).ctx(|| "dup2 pty slave to stderr")?;
    Ok(())
}

/// A connected socket pair standing in for --console-socket when rt itself relays the
/// terminal (`run`/`exec` in the foreground): (rt's end, the container process's end).
pub fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair(AF_UNIX) for the terminal", e))
}

/// The pty master sent by [`setup`] over our end of [`socket_pair`].
pub fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::os::fd::FromRawFd;
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive the pty master")?;
    for c in msg.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::msg(
        "the container process closed the terminal socket without sending the pty master",
    ))
}

/// The size of the terminal on rt's stdin, when it is one (and not 0×0): the size a
/// relayed container terminal starts with.
pub fn caller_window_size() -> Option<ConsoleSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into valid memory.
    let r = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some(ConsoleSize {
        height: ws.ws_row,
        width: ws.ws_col,
    })
}
