//! The channel between `rt create` (parent) and the container's init (child): a
//! SOCK_SEQPACKET socketpair carrying small tagged messages, one per datagram, so each
//! setup step can be acknowledged and each failure reported with its cause.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};

use crate::error::{Error, Result};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: go on (see create.rs `JoinAt` for where the cgroup is then).
    Go,
    /// Parent → child: the cgroup is made and its limits set: the init may join it.
    CgroupMade,
    /// Child → parent: a new user namespace exists; write its id maps.
    UserNsReady,
    /// Parent → child: the id maps are written.
    MapsWritten,
    /// Child → parent: a new time namespace exists (for its children); write its offsets.
    TimeNsReady,
    /// Parent → child: linux.timeOffsets are written.
    OffsetsWritten,
    /// Child → parent: the container's init has this pid (in the parent's pid namespace);
    /// 0 means the child that the parent forked is itself the init.
    InitPid(i32),
    /// Child → parent: mounts are done, run prestart and createRuntime hooks now.
    RuntimeHooks,
    /// Parent → child: the hooks ran.
    HooksDone,
    /// Child → parent: everything is set up; the init now waits for `start`.
    Ready,
    /// Parent → child: the container is recorded (state, pid file): the init no longer
    /// dies with `rt create`. Until it comes, a closed channel means create was killed.
    Created,
    /// Parent → child: the container's state, for startContainer hooks.
    State(String),
    /// Child → parent: the seccomp notify listener (the fd travels with SCM_RIGHTS and is
    /// picked up with `take_fd`).
    SeccompListener,
    /// Parent → child: the listener was handed to listenerPath.
    ListenerSent,
    /// Either way: a step failed (the error keeps its fields across: see
    /// [`Error::to_wire`]).
    Failed(Error),
}

pub struct Channel {
    fd: OwnedFd,
    /// An fd that came with the last message received.
    received_fd: std::cell::Cell<Option<OwnedFd>>,
}

/// A connected pair: (parent's end, child's end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair(AF_UNIX, SOCK_SEQPACKET)", e))?;
    let new = |fd| Channel {
        fd,
        received_fd: std::cell::Cell::new(None),
    };
    Ok((new(a), new(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let (tag, payload): (u8, Vec<u8>) = match msg {
            Msg::Go => (b'G', vec![]),
            Msg::CgroupMade => (b'g', vec![]),
            Msg::UserNsReady => (b'U', vec![]),
            Msg::MapsWritten => (b'M', vec![]),
            Msg::TimeNsReady => (b'T', vec![]),
            Msg::OffsetsWritten => (b't', vec![]),
            Msg::InitPid(p) => (b'P', p.to_string().into_bytes()),
            Msg::RuntimeHooks => (b'H', vec![]),
            Msg::HooksDone => (b'h', vec![]),
            Msg::Ready => (b'R', vec![]),
            Msg::Created => (b'C', vec![]),
            Msg::State(s) => (b'S', s.as_bytes().to_vec()),
            Msg::SeccompListener => (b'L', vec![]),
            Msg::ListenerSent => (b'l', vec![]),
            Msg::Failed(e) => (b'F', e.to_wire().into_bytes()),
        };
        let mut buf = Vec::with_capacity(1 + payload.len());
        buf.push(tag);
        buf.extend_from_slice(&payload);
        self.send_raw(&buf)
    }

    /// One datagram: a tag and its payload.
    fn send_raw(&self, buf: &[u8]) -> Result<()> {
        loop {
            match send(self.fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("send on init channel", e)),
            }
        }
    }

    /// The next message; None when the other side closed its end (it exited).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut reset_seen = false;
        let n = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    for c in msg.cmsgs().into_iter().flatten() {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for fd in fds {
                                // SAFETY: the kernel just installed this fd for us.
                                self.received_fd
                                    .set(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
                            }
                        }
                    }
                    break msg.bytes;
                }
                Err(Errno::EINTR) => continue,
                // The other side closed its end with a message of ours unread: the kernel
                // reports that once, before the messages it sent first, which are still
                // queued (its failure report among them); the next read gets them.
                Err(Errno::ECONNRESET) if !reset_seen => reset_seen = true,
                Err(e) => return Err(Error::sys("recvmsg on init channel", e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        decode(&buf[..n]).map(Some)
    }

    /// The next message, read with read(2) alone: for the init once its seccomp filter,
    /// which may refuse recvmsg, is in place. Only for messages with a short payload (under
    /// 64 bytes); None when the other side closed its end.
    pub fn recv_short(&self) -> Result<Option<Msg>> {
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return decode(&buf[..n]).map(Some),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("read on init channel", e)),
            }
        }
    }

    /// Report a failure with its fields.
    pub fn send_failure(&self, err: &Error) -> Result<()> {
        let mut buf = vec![b'F'];
        buf.extend_from_slice(err.to_wire().as_bytes());
        self.send_raw(&buf)
    }

    /// Send a message with an fd attached (SCM_RIGHTS).
    pub fn send_with_fd(&self, msg: &Msg, fd: &OwnedFd) -> Result<()> {
        let tag = match msg {
            Msg::SeccompListener => b'L',
            other => return Err(Error::msg(format!("init channel: {other:?} carries no fd"))),
        };
        let buf = [tag];
        let iov = [std::io::IoSlice::new(&buf)];
        let fds = [fd.as_raw_fd()];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("sendmsg on init channel", e)),
            }
        }
    }

    /// Wait up to `timeout` for a message (or the other side's exit) to be readable.
    pub fn wait_readable(&self, timeout: std::time::Duration) -> Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) => Ok(n > 0),
            Err(Errno::EINTR) => Ok(false),
            Err(e) => Err(Error::sys("poll on init channel", e)),
        }
    }

    /// Whether the other side has closed its end (it exited): the kernel marks a
    /// SOCK_SEQPACKET socket hung up when its peer goes.
    pub fn peer_closed(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::empty())];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            && fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// The fd that came with the last message, if any.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.received_fd.take()
    }

    /// Wait for one particular message; a failure report or EOF becomes an error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Failed(e)) => Err(e),
            Some(m) => Err(Error::msg(format!(
                "init channel: expected {want:?}, got {m:?}"
            ))),
            None => Err(Error::msg(format!(
                "init channel: the other side exited while waiting for {want:?}"
            ))),
        }
    }
}

/// A message as it came off the socket: its tag byte, then its payload. `buf` is not empty.
fn decode(buf: &[u8]) -> Result<Msg> {
    let payload = String::from_utf8_lossy(&buf[1..]).into_owned();
    Ok(match buf[0] {
        b'G' => Msg::Go,
        b'g' => Msg::CgroupMade,
        b'U' => Msg::UserNsReady,
        b'M' => Msg::MapsWritten,
        b'T' => Msg::TimeNsReady,
        b't' => Msg::OffsetsWritten,
        b'P' => Msg::InitPid(payload.parse().unwrap_or(-1)),
        b'H' => Msg::RuntimeHooks,
        b'h' => Msg::HooksDone,
        b'R' => Msg::Ready,
        b'C' => Msg::Created,
        b'S' => Msg::State(payload),
        b'L' => Msg::SeccompListener,
        b'l' => Msg::ListenerSent,
        b'F' => Msg::Failed(Error::from_wire(&payload)),
        t => return Err(Error::msg(format!("init channel: unknown message tag {t}"))),
    })
}
