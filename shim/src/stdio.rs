//! A process's stdio as containerd hands it over: FIFO paths (opened here and passed
//! straight to the container, so nothing is lost when it exits fast), `file://PATH`
//! (appended to), `binary://PATH?args` (a logger process reading two pipes), or a pty
//! (`terminal`): the runtime sends its master over a console socket and the shim copies
//! between it and the FIFOs. stdin always goes through a pipe the shim holds, so CloseIO
//! can close it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use crate::runtime::{CallIo, Result};

/// Copy buffer of the relay threads: a pipe or pty hands over a few KiB per read, and each
/// thread's buffer is resident for as long as its process lives.
const COPY_BUF: usize = 4096;

/// The three paths containerd gave for a process.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What the shim keeps of a process's stdio while it runs.
#[derive(Default)]
pub struct Held {
    /// Our end of stdin (a pipe, or the pty master): dropped by CloseIO.
    pub stdin: Arc<Mutex<Option<File>>>,
    /// The pty master, for ResizePty.
    pub console: Option<Arc<File>>,
}

/// A console socket the runtime connects to (`--console-socket`).
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new(dir: &Path, name: &str) -> Result<ConsoleSocket> {
        let path = dir.join(format!("{name}.console.sock"));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        Ok(ConsoleSocket { path, listener })
    }

    /// The pty master the runtime sends.
    pub fn receive(self) -> Result<File> {
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| format!("accept on the console socket: {e}"))?;
        let _ = std::fs::remove_file(&self.path);
        let fd = recv_fd(conn.as_raw_fd())?;
        Ok(File::from(fd))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Open the process's stdio for the runtime call that starts it; returns the call's stdio
/// and what the shim holds on to.
pub fn open(paths: &Paths, id: &str, namespace: &str) -> Result<(CallIo, Held)> {
    let mut io = CallIo::default();
    let held = Held::default();
    if paths.terminal {
        // The pty is wired up once its master arrives (see `attach_console`).
        return Ok((io, held));
    }
    if !paths.stdin.is_empty() {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
        let fifo = open_fifo(&paths.stdin, false)?;
        let w = File::from(w);
        *held.stdin.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(w.try_clone().map_err(|e| format!("dup: {e}"))?);
        copy_in_background(fifo, held.stdin.clone());
        drop(w);
        io.stdin = Some(Stdio::from(r));
    }
    match logger_kind(&paths.stdout) {
        Some(Logger::Binary(path, args)) => {
            let (out, err) = spawn_binary_logger(&path, &args, id, namespace)?;
            io.stdout = Some(Stdio::from(out));
            io.stderr = Some(Stdio::from(err));
            return Ok((io, held));
        }
        Some(Logger::File(path)) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("open {}: {e}", path.display()))?;
            io.stderr = Some(Stdio::from(f.try_clone().map_err(|e| format!("dup: {e}"))?));
            io.stdout = Some(Stdio::from(f));
            return Ok((io, held));
        }
        None => {}
    }
    if !paths.stdout.is_empty() {
        io.stdout = Some(Stdio::from(open_fifo(&paths.stdout, true)?));
    }
    if !paths.stderr.is_empty() {
        io.stderr = Some(Stdio::from(open_fifo(&paths.stderr, true)?));
    }
    Ok((io, held))
}

/// Terminal: copy stdin FIFO → master and master → stdout FIFO.
pub fn attach_console(paths: &Paths, master: File, held: &mut Held) -> Result<()> {
    let master = Arc::new(master);
    if !paths.stdin.is_empty() {
        let fifo = open_fifo(&paths.stdin, false)?;
        let w = master.try_clone().map_err(|e| format!("dup: {e}"))?;
        *held.stdin.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        copy_in_background(fifo, held.stdin.clone());
    }
    if !paths.stdout.is_empty() {
        let mut out = open_fifo(&paths.stdout, true)?;
        let mut m = master.try_clone().map_err(|e| format!("dup: {e}"))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; COPY_BUF];
            // EIO once every slave fd is closed: the process and its children are gone.
            while let Ok(n) = m.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    held.console = Some(master);
    Ok(())
}

/// Set a pty's window size.
pub fn resize(console: &File, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize struct.
    if unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(format!(
            "ioctl TIOCSWINSZ: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// FIFO → our end of stdin, until the FIFO ends or CloseIO drops our end.
fn copy_in_background(mut from: File, to: Arc<Mutex<Option<File>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; COPY_BUF];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut guard = to.lock().unwrap_or_else(|e| e.into_inner());
            let Some(w) = guard.as_mut() else { break };
            if w.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        // The client closed its stdin: the container sees EOF.
        to.lock().unwrap_or_else(|e| e.into_inner()).take();
    });
}

/// Open a FIFO without blocking on its other end (O_RDWR never blocks on a FIFO); the
/// write side is then made blocking again.
fn open_fifo(path: &str, write: bool) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("open fifo {path}: {e}"))?;
    let flags = nix::fcntl::OFlag::empty();
    nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(|e| format!("fcntl {path}: {e}"))?;
    if write {
        // Reopen write-only so that our end counts as a writer only: the reader sees EOF
        // once the container closes it.
        let w = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| format!("open fifo {path}: {e}"))?;
        drop(f);
        return Ok(w);
    }
    Ok(f)
}

enum Logger {
    Binary(PathBuf, Vec<(String, String)>),
    File(PathBuf),
}

fn logger_kind(uri: &str) -> Option<Logger> {
    if let Some(rest) = uri.strip_prefix("binary://") {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let args = query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        return Some(Logger::Binary(PathBuf::from(path), args));
    }
    uri.strip_prefix("file://")
        .map(|p| Logger::File(PathBuf::from(p)))
}

/// containerd's binary logging protocol: the logger gets the container's stdout and
/// stderr as fds 3 and 4 and signals readiness by closing fd 5.
fn spawn_binary_logger(
    path: &Path,
    args: &[(String, String)],
    id: &str,
    namespace: &str,
) -> Result<(OwnedFd, OwnedFd)> {
    use std::os::unix::process::CommandExt;
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let mut c = std::process::Command::new(path);
    for (k, v) in args {
        c.arg(k);
        if !v.is_empty() {
            c.arg(v);
        }
    }
    c.env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace);
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    // SAFETY: between fork and exec only dup2, which is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn()
        .map_err(|e| format!("start the logger {}: {e}", path.display()))?;
    drop((out_r, err_r, ready_w));
    let mut ready = File::from(ready_r);
    let mut b = [0u8; 1];
    let _ = ready.read(&mut b);
    Ok((out_w, err_w))
}

fn recv_fd(sock: i32) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut data = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| format!("recvmsg: {e}"))?;
    for c in msg.cmsgs().map_err(|e| format!("recvmsg: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err("the runtime closed the console socket without sending the pty master".into())
}
