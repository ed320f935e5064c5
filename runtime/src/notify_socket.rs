//! sd_notify pass-through, as runc does it, for containers run by systemd units of
//! Type=notify. When rt is called with NOTIFY_SOCKET set, the container gets its own
//! datagram socket, `<state dir>/notify/notify.sock`, bind-mounted read-only at
//! /run/notify with NOTIFY_SOCKET=/run/notify/notify.sock in its environment. `start`
//! (or `run`) binds that socket before releasing the container, waits for the first
//! `READY=` datagram, and tells the host socket `READY=…` and `MAINPID=<init pid>`,
//! then waits for systemd's barrier. If the container exits first, it just returns.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};
use crate::spec::Mount;

/// Where the container sees its notify socket.
pub const IN_CONTAINER: &str = "/run/notify/notify.sock";

/// The host's socket, from rt's environment.
pub fn host_socket() -> Option<PathBuf> {
    std::env::var_os("NOTIFY_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("notify")
}

/// `create`: the directory for the container's socket, the mount and the environment
/// entry that expose it in the container.
pub fn prepare(state_dir: &Path) -> Result<(Mount, String)> {
    let d = dir(state_dir);
    std::fs::create_dir(&d).ctx(|| format!("mkdir {}", d.display()))?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
        .ctx(|| format!("chmod 0755 {}", d.display()))?;
    let mount = Mount {
        destination: "/run/notify".into(),
        source: Some(d.to_string_lossy().into_owned()),
        kind: Some("bind".into()),
        options: ["bind", "nosuid", "noexec", "nodev", "ro"]
            .map(String::from)
            .to_vec(),
        ..Mount::default()
    };
    Ok((mount, format!("NOTIFY_SOCKET={IN_CONTAINER}")))
}

/// The container's socket, bound: call before the container's program may run.
pub struct Listener {
    sock: UnixDatagram,
    host: PathBuf,
}

/// `start`/`run`: bind the container's socket if `create` prepared one and rt has a host
/// socket to tell.
pub fn listen(state_dir: &Path) -> Result<Option<Listener>> {
    let (Some(host), true) = (host_socket(), dir(state_dir).is_dir()) else {
        return Ok(None);
    };
    let path = dir(state_dir).join("notify.sock");
    let _ = std::fs::remove_file(&path);
    // A socket address holds 108 bytes; a deep --root may need more. Bind through the
    // directory's fd instead of its path.
    let d = dir(state_dir);
    let dir_fd = nix::fcntl::open(
        &d,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", d.display()))?;
    let short = format!("/proc/self/fd/{}/notify.sock", dir_fd.as_raw_fd());
    let sock = UnixDatagram::bind(&short).ctx(|| format!("bind {}", path.display()))?;
    // Any user in the container may notify, as with systemd's own socket.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
        .ctx(|| format!("chmod 0777 {}", path.display()))?;
    Ok(Some(Listener { sock, host }))
}

impl Listener {
    /// Forward the container's READY to the host; give up when `alive` says the
    /// container is gone.
    pub fn forward_ready(&self, pid: i32, alive: impl Fn() -> bool) -> Result<()> {
        self.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .ctx(|| "set a timeout on the notify socket")?;
        let mut buf = [0u8; 4096];
        let ready = loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if let Some(line) = text.lines().find(|l| l.starts_with("READY=")) {
                        break line.to_string();
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    if !alive() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(Error::io("recv on the notify socket", e)),
            }
        };
        let client = UnixDatagram::unbound().ctx(|| "socket(AF_UNIX, SOCK_DGRAM)")?;
        let host = self.host.display();
        client
            .send_to(format!("{ready}\n").as_bytes(), &self.host)
            .ctx(|| format!("send {ready:?} to NOTIFY_SOCKET {host}"))?;
        client
            .send_to(format!("MAINPID={pid}\n").as_bytes(), &self.host)
            .ctx(|| format!("send MAINPID to NOTIFY_SOCKET {host}"))?;
        barrier(&client, &self.host)
    }
}

/// sd_notify_barrier: send BARRIER=1 with the write end of a pipe and wait (up to 30 s)
/// for systemd to close it, so it has seen everything sent before.
fn barrier(client: &UnixDatagram, host: &Path) -> Result<()> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe2")?;
    let addr = nix::sys::socket::UnixAddr::new(host).ctx(|| "NOTIFY_SOCKET address")?;
    let fds = [w.as_raw_fd()];
    sendmsg(
        client.as_raw_fd(),
        &[IoSlice::new(b"BARRIER=1")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        Some(&addr),
    )
    .map_err(|e| {
        Error::sys(
            format!("sendmsg BARRIER=1 to NOTIFY_SOCKET {}", host.display()),
            e,
        )
    })?;
    drop(w);
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(30_000u16)) {
        Ok(0) => log::warn!("NOTIFY_SOCKET: no answer to BARRIER=1 within 30s; ignored"),
        Ok(_) => {}
        Err(e) => return Err(Error::sys("poll the notify barrier pipe", e)),
    }
    Ok(())
}
