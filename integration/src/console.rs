//! `--console-socket` support: listen on a unix socket and receive the pty master that the
//! runtime sends with SCM_RIGHTS.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A console socket listening in a background thread for one connection.
pub struct ConsoleSocket {
    pub path: PathBuf,
    handle: Option<JoinHandle<Result<OwnedFd, String>>>,
    rx: mpsc::Receiver<()>,
}

impl ConsoleSocket {
    /// Bind `path` and start accepting in the background.
    pub fn listen(path: &Path) -> ConsoleSocket {
        let listener = UnixListener::bind(path).expect("bind console socket");
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            let r = recv_fd(stream.as_raw_fd());
            let _ = tx.send(());
            r
        });
        ConsoleSocket {
            path: path.to_path_buf(),
            handle: Some(handle),
            rx,
        }
    }

    /// Wait for the runtime to send the pty master.
    pub fn receive(mut self, timeout: Duration) -> Result<OwnedFd, String> {
        self.rx
            .recv_timeout(timeout)
            .map_err(|_| "no console fd received before the timeout".to_string())?;
        self.handle
            .take()
            .unwrap()
            .join()
            .map_err(|_| "receiver panicked".to_string())?
    }
}

/// Receive one file descriptor over a unix socket with recvmsg(2) / SCM_RIGHTS.
pub fn recv_fd(sock: i32) -> Result<OwnedFd, String> {
    recv_fd_and_data(sock).map(|(fd, _)| fd)
}

/// Receive one file descriptor and the bytes sent with it.
pub fn recv_fd_and_data(sock: i32) -> Result<(OwnedFd, Vec<u8>), String> {
    let (data, mut fds) = recv_data_and_fds(sock)?;
    if fds.is_empty() {
        return Err(format!(
            "no SCM_RIGHTS fd in message ({} data bytes)",
            data.len()
        ));
    }
    Ok((fds.remove(0), data))
}

/// Receive one message: its bytes and the fds that came with it (SCM_RIGHTS), if any.
pub fn recv_data_and_fds(sock: i32) -> Result<(Vec<u8>, Vec<OwnedFd>), String> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for a handful of fds.
    let mut cbuf = [0u64; 16];
    // SAFETY: zeroed msghdr is a valid initial value; we fill in the pointers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into cbuf.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32);
                fds.push(OwnedFd::from_raw_fd(fd));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((data[..n as usize].to_vec(), fds))
}

/// Read from a pty master until EOF/EIO (all slaves closed) or `timeout`, in a thread.
pub fn read_pty(master: OwnedFd, timeout: Duration) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut f = File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    let _ = tx.send(Some(out.clone()));
                }
                // EIO once the slave side is closed.
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut last = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(v)) => last = v,
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&last).into_owned()
}

/// A pty pair for a runtime's (or ctr's) own stdio: (master, slave), the slave with the
/// given window size.
pub fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds; the name and termios pointers may be null.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty just opened both.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}
