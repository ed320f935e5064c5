//! A process's stdio as containerd hands it over: FIFO paths (opened here and passed
//! straight to the container, so nothing is lost when it exits fast), `file://PATH`
//! (appended to), `binary://PATH?args` (a logger process reading two pipes), or a pty
//! (`terminal`): the runtime sends its master over a console socket and the shim copies
//! between it and the FIFOs. stdin always goes through a pipe the shim holds, so CloseIO
//! can close it.
//!
//! The console socket is `<tmp>/rt-shim-<shim pid>-XXXXXX/pty.sock`, as runc's shim puts
//! its own in a temporary directory: a name made of the bundle and the exec id (64 hex
//! characters each under CRI, in containerd's `/run/containerd/io.containerd.runtime.v2.task/
//! <namespace>/<id>/`) does not fit in a unix socket address (108 bytes). The directory goes
//! as soon as the pty master came, or the runtime failed; a killed shim's are removed by the
//! next shim that makes a console socket and by containerd's `delete` after it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::poll::PollFlags;

use crate::runtime::{CallIo, Result};
use crate::wait::poll_in;

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

/// What the shim keeps of a process's stdio while it runs; dropped (the process deleted),
/// the thread copying its stdin ends.
#[derive(Default)]
pub struct Held {
    /// Our end of stdin (a pipe, or the pty master): dropped by CloseIO.
    pub stdin: Arc<Mutex<Option<File>>>,
    /// The pty master, for ResizePty.
    pub console: Option<Arc<File>>,
    /// The write end of the stdin copier's stop pipe: closing it ends the copier.
    stdin_stop: Mutex<Option<OwnedFd>>,
    /// A read end of the stdout and stderr FIFOs, never read: while the process lives its
    /// FIFOs always have a reader, so a write before the client's reader is open (or after
    /// the client went away) waits in the pipe instead of killing the process with
    /// SIGPIPE (seen under load in `make soak`: `ctr task exec` reported status 141).
    /// containerd's own shim holds one for the same reason.
    out_readers: Vec<File>,
    /// Output FIFOs whose relay thread may still wait for the client's reader.
    waiting_fifos: Vec<String>,
}

impl Drop for Held {
    /// A relay thread still waiting for the client's reader is let go: a reader opened for
    /// a moment ends its wait, and it then finds its pipe ended or the FIFO unread.
    fn drop(&mut self) {
        for fifo in &self.waiting_fifos {
            let _ = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(fifo);
        }
    }
}

impl Held {
    /// CloseIO: the process sees EOF on stdin and the copier stops.
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.stdin_stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// Names of console socket directories: `rt-shim-<shim pid>-XXXXXX`.
const CONSOLE_DIR_PREFIX: &str = "rt-shim-";

/// How long after the runtime's exit its connection to the console socket may take to show
/// (it is queued before the runtime exits: this is only slack).
const CONSOLE_CONNECT_GRACE: Duration = Duration::from_secs(2);

/// How long the pty master may take to come over an accepted connection (the runtime's
/// process sends it before the runtime reports success).
const CONSOLE_MASTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where console socket directories go: the temporary directory, unless its path leaves
/// too little of a socket address's 108 bytes.
fn console_base() -> PathBuf {
    let tmp = std::env::temp_dir();
    if tmp.as_os_str().len() <= 48 {
        tmp
    } else {
        PathBuf::from("/tmp")
    }
}

/// A console socket the runtime connects to (`--console-socket`), alone in a fresh
/// directory of the temporary directory (removed with the socket on drop).
pub struct ConsoleSocket {
    pub path: PathBuf,
    dir: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<ConsoleSocket> {
        // Console sockets a killed shim left behind, once per shim: only shims that make
        // console sockets read the temporary directory (containerd's `delete` after a
        // killed shim removes its own too).
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(remove_stale_console_dirs);
        let template =
            console_base().join(format!("{CONSOLE_DIR_PREFIX}{}-XXXXXX", std::process::id()));
        // Mode 0700: only we (and the runtime, run as us) get at the socket.
        let dir = mkdtemp(&template)?;
        let path = dir.join("pty.sock");
        match UnixListener::bind(&path) {
            Ok(listener) => Ok(ConsoleSocket {
                path,
                dir,
                listener,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("bind {}: {e}", path.display()))
            }
        }
    }

    /// The pty master the runtime sent. Called once the runtime has exited: its connection
    /// is queued by then, or never comes (no runtime is left to make it), and the master is
    /// on it or comes shortly (the process it was made for sent it). The socket and its
    /// directory go either way.
    pub fn receive(self) -> Result<File> {
        let ready = poll_in(&[self.listener.as_fd()], Some(CONSOLE_CONNECT_GRACE));
        if ready[0].is_empty() {
            return Err("the runtime exited without connecting to the console socket".into());
        }
        self.listener
            .set_nonblocking(true)
            .map_err(|e| format!("console socket: {e}"))?;
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| format!("accept on the console socket: {e}"))?;
        drop(self);
        let fd = recv_fd(&conn, CONSOLE_MASTER_TIMEOUT)?;
        Ok(File::from(fd))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// mkdtemp(3): a new directory (mode 0700) named after `template`, whose XXXXXX it fills.
fn mkdtemp(template: &Path) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let fail = |e: std::io::Error| format!("mkdtemp {}: {e}", template.display());
    let mut bytes = std::ffi::CString::new(template.as_os_str().as_encoded_bytes())
        .map_err(|e| fail(std::io::Error::other(e)))?
        .into_bytes_with_nul();
    // SAFETY: a NUL-terminated buffer that mkdtemp rewrites in place.
    if unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) }.is_null() {
        return Err(fail(std::io::Error::last_os_error()));
    }
    bytes.pop();
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// Remove the console socket directories of shims that are gone (killed before they could
/// remove their own); a live shim's stay.
pub fn remove_stale_console_dirs() {
    let Ok(entries) = std::fs::read_dir(console_base()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CONSOLE_DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let dead = !Path::new(&format!("/proc/{pid}")).exists();
        if dead && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Open the process's stdio for the runtime call that starts it; returns the call's stdio
/// and what the shim holds on to.
pub fn open(paths: &Paths, id: &str, namespace: &str) -> Result<(CallIo, Held)> {
    let mut io = CallIo::default();
    let mut held = Held::default();
    if paths.terminal {
        // The pty is wired up once its master arrives (see `attach_console`).
        return Ok((io, held));
    }
    if !paths.stdin.is_empty() {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
        let fifo = open_fifo(&paths.stdin)?;
        let w = File::from(w);
        *held.stdin.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(w.try_clone().map_err(|e| format!("dup: {e}"))?);
        copy_in_background(fifo, &held)?;
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
        io.stdout = Some(Stdio::from(open_output_fifo(&paths.stdout, &mut held)?));
    }
    if !paths.stderr.is_empty() {
        io.stderr = Some(Stdio::from(open_output_fifo(&paths.stderr, &mut held)?));
    }
    Ok((io, held))
}

/// Terminal: copy stdin FIFO → master and master → stdout FIFO.
pub fn attach_console(paths: &Paths, master: File, held: &mut Held) -> Result<()> {
    let master = Arc::new(master);
    if !paths.stdin.is_empty() {
        let fifo = open_fifo(&paths.stdin)?;
        let w = master.try_clone().map_err(|e| format!("dup: {e}"))?;
        *held.stdin.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        copy_in_background(fifo, held)?;
    }
    if !paths.stdout.is_empty() {
        let mut out = open_output_fifo(&paths.stdout, held)?;
        let mut m = master.try_clone().map_err(|e| format!("dup: {e}"))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; COPY_BUF];
            // EIO once every slave fd is closed: the process and its children are gone.
            loop {
                let n = match m.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                if out.write_all(&buf[..n]).is_err() {
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

/// FIFO → our end of stdin (`held.stdin`), until the FIFO ends, CloseIO closes our end, or
/// `held` is dropped with its process. We hold the FIFO open for reading and writing (so
/// that opening it never blocks), so its end is never seen as EOF: the stop pipe is the
/// copier's way out, where a read would wait for ever.
fn copy_in_background(from: File, held: &Held) -> Result<()> {
    let (stop_r, stop_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
    *held.stdin_stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop_w);
    let to = held.stdin.clone();
    std::thread::spawn(move || {
        copy_until_stopped(from, &to, stop_r.as_fd());
        // The client closed its stdin, or the process is gone: the container sees EOF.
        to.lock().unwrap_or_else(|e| e.into_inner()).take();
    });
    Ok(())
}

/// The copier's loop: `from` into `to` until `from` ends or fails, `to` is gone or fails, or
/// `stop` becomes readable or hangs up (its write end closed).
fn copy_until_stopped(mut from: File, to: &Mutex<Option<File>>, stop: BorrowedFd<'_>) {
    let mut buf = [0u8; COPY_BUF];
    loop {
        let ready = poll_in(&[from.as_fd(), stop], None);
        if !ready[1].is_empty() {
            return;
        }
        if ready[0].is_empty() {
            continue;
        }
        if !ready[0].contains(PollFlags::POLLIN) {
            // Hung up or in error with nothing to read.
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut guard = to.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = guard.as_mut() else { return };
        if w.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Open stdin's FIFO without blocking on its other end (O_RDWR never blocks on a FIFO),
/// then make it blocking again.
fn open_fifo(path: &str) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("open fifo {path}: {e}"))?;
    let flags = nix::fcntl::OFlag::empty();
    nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(|e| format!("fcntl {path}: {e}"))?;
    Ok(f)
}

/// An output FIFO's write end, for the process (or the pty copier). The FIFO must have a
/// reader whenever the process writes, and a writer when the client's reader comes, or
/// output is lost: a write with no reader kills the process with SIGPIPE, and a client
/// that opens its reader after the process is gone waits for a writer that never comes
/// (`make soak` saw both under load: `ctr task exec` status 141, and empty output).
/// - The client's reader is open (the usual case): the FIFO itself, written straight by
///   the process, so nothing is lost when it exits fast; a read end is kept in `held`
///   while the process is, so a client that goes away does not kill it.
/// - Not yet: the process writes into a pipe, and a thread waits for the client's reader,
///   then copies (see [`relay_when_read`]).
fn open_output_fifo(path: &str, held: &mut Held) -> Result<File> {
    let w = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(w) => w,
        // No reader yet (O_WRONLY|O_NONBLOCK fails with ENXIO instead of waiting).
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return relay_when_read(path, held),
        Err(e) => return Err(format!("open fifo {path}: {e}")),
    };
    nix::fcntl::fcntl(
        &w,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(|e| format!("fcntl {path}: {e}"))?;
    let r = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("open fifo {path}: {e}"))?;
    held.out_readers.push(r);
    Ok(w)
}

/// The process's output goes into a pipe; a thread opens the FIFO for writing, which
/// waits for the client's reader, then copies the pipe into it until the process and its
/// children closed the pipe. Should the client go away, the rest is read and dropped (the
/// process is not killed by SIGPIPE). A thread still waiting when the process is deleted
/// is let go by [`Held`]'s drop.
fn relay_when_read(path: &str, held: &mut Held) -> Result<File> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
    let fifo = path.to_owned();
    std::thread::spawn(move || {
        let mut from = File::from(r);
        let mut to = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&fifo)
            .ok();
        let mut buf = [0u8; COPY_BUF];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if to.as_mut().is_some_and(|t| t.write_all(&buf[..n]).is_err()) {
                to = None;
            }
        }
    });
    held.waiting_fifos.push(path.to_owned());
    Ok(File::from(w))
}

pub(crate) enum Logger {
    Binary(PathBuf, Vec<(String, String)>),
    File(PathBuf),
}

pub(crate) fn logger_kind(uri: &str) -> Option<Logger> {
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
    // A logger that cannot be run is told here: with pre_exec, std learns it only after the
    // fork, and then waits for the child, which the reaper may have reaped already.
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK)
        .map_err(|e| format!("start the logger {}: {e}", path.display()))?;
    c.spawn()
        .map_err(|e| format!("start the logger {}: {e}", path.display()))?;
    drop((out_r, err_r, ready_w));
    // Ready: fd 5 closed, by the logger or by its exit (our copy of the write end is gone).
    let mut ready = File::from(ready_r);
    let mut b = [0u8; 1];
    while let Err(e) = ready.read(&mut b) {
        if e.kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    Ok((out_w, err_w))
}

/// The fd that comes over `sock` within `timeout`.
fn recv_fd(sock: &UnixStream, timeout: Duration) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let ready = poll_in(&[sock.as_fd()], Some(timeout));
    if ready[0].is_empty() {
        return Err(format!(
            "no pty master on the console socket within {timeout:?}"
        ));
    }
    let mut data = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(|e| format!("recvmsg: {e}"))?,
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::tests::within;

    /// A FIFO as containerd makes stdin's, opened as the shim opens it (read and write).
    fn fifo(name: &str) -> (PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("rt-shimtest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stdin");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let f = open_fifo(path.to_str().unwrap()).unwrap();
        (dir, f)
    }

    fn output_fifo(name: &str) -> (PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("rt-shimtest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stdout");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = path.to_str().unwrap().to_owned();
        (dir, path)
    }

    fn client_reader(path: &str) -> File {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap()
    }

    /// The client's reader is there first (the usual case): the process writes the FIFO
    /// itself, and a client that goes away does not kill it with SIGPIPE (the shim holds
    /// a reader while the process lives).
    #[test]
    fn a_client_reader_that_leaves_does_not_kill_the_process() {
        let (dir, path) = output_fifo("out-early");
        let mut client = client_reader(&path);
        let mut held = Held::default();
        let mut w = open_output_fifo(&path, &mut held).unwrap();
        assert!(held.waiting_fifos.is_empty(), "the FIFO itself, no relay");
        w.write_all(b"one\n").unwrap();
        let mut got = [0u8; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one\n");
        drop(client);
        w.write_all(b"two\n")
            .expect("no EPIPE while the shim holds a reader");
        drop((w, held));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The client opens its reader late, after the process wrote and exited: it still
    /// reads everything, then EOF (the relay waited for it).
    #[test]
    fn a_late_client_reader_gets_all_the_output() {
        let (dir, path) = output_fifo("out-late");
        let mut held = Held::default();
        let mut w = open_output_fifo(&path, &mut held).unwrap();
        assert_eq!(held.waiting_fifos, std::slice::from_ref(&path), "relayed");
        w.write_all(b"written before the client came\n").unwrap();
        drop(w); // the process exits
        std::thread::sleep(std::time::Duration::from_millis(50));
        let p = path.clone();
        let got = within(
            Duration::from_secs(5),
            "the late client's read",
            move || {
                // A blocking open, as a client's: it returns once the relay is the writer.
                let mut client = OpenOptions::new().read(true).open(&p).unwrap();
                let mut got = String::new();
                client.read_to_string(&mut got).unwrap();
                got
            },
        );
        assert_eq!(got, "written before the client came\n");
        drop(held);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The copier's ways out: the stop pipe closed (the process deleted, or CloseIO) ends
    /// it though the FIFO never reports EOF (we hold it open for writing too); data is
    /// copied until then.
    #[test]
    fn the_stdin_copier_stops_when_told_though_its_fifo_never_ends() {
        let (dir, from) = fifo("copier");
        let mut client = OpenOptions::new()
            .write(true)
            .open(dir.join("stdin"))
            .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let (stop_r, stop_w) = nix::unistd::pipe().unwrap();
        let to = Arc::new(Mutex::new(Some(File::from(w))));
        let copier = std::thread::spawn({
            let to = to.clone();
            move || copy_until_stopped(from, &to, stop_r.as_fd())
        });
        client.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        File::from(r).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        // The client goes: no EOF for us (we are a writer too), the copier waits on.
        drop(client);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!copier.is_finished());
        drop(stop_w);
        within(Duration::from_secs(5), "the copier to stop", move || {
            copier.join().unwrap()
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Held dropped (its process deleted): the copier started for it ends, and so does
    /// one whose stdin CloseIO closed.
    #[test]
    fn the_stdin_copier_ends_with_its_held_or_close_io() {
        for close_io in [false, true] {
            let (dir, from) = fifo(&format!("held-{close_io}"));
            let (_r, w) = nix::unistd::pipe().unwrap();
            let held = Held::default();
            *held.stdin.lock().unwrap() = Some(File::from(w));
            copy_in_background(from, &held).unwrap();
            let to = held.stdin.clone();
            if close_io {
                held.close_stdin();
            } else {
                drop(held);
            }
            // The copier's last act: our end of stdin is dropped (the process sees EOF),
            // and its clone of the Arc goes with the thread.
            within(Duration::from_secs(5), "the copier to end", move || {
                while Arc::strong_count(&to) > 1 + usize::from(close_io) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                assert!(to.lock().unwrap().is_none());
            });
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// A console socket's path fits in a socket address whatever the bundle, and it goes
    /// with its directory when dropped (the runtime failed) or once received from.
    #[test]
    fn console_sockets_are_short_and_removed() {
        let c = ConsoleSocket::new().unwrap();
        assert!(c.path.as_os_str().len() < 108, "{}", c.path.display());
        let dir = c.dir.clone();
        assert!(c.path.exists());
        drop(c);
        assert!(!dir.exists());
        // A runtime that never connected: an error, not a wait for ever.
        let c = ConsoleSocket::new().unwrap();
        let dir = c.dir.clone();
        let got = within(Duration::from_secs(10), "receive", move || {
            c.receive().err()
        });
        assert!(got.unwrap().contains("without connecting"));
        assert!(!dir.exists());
        // One that connected and sent nothing, then went: an error too.
        let c = ConsoleSocket::new().unwrap();
        let conn = UnixStream::connect(&c.path).unwrap();
        drop(conn);
        let got = within(Duration::from_secs(10), "receive", move || {
            c.receive().err()
        });
        assert!(
            got.as_deref()
                .is_some_and(|e| e.contains("without sending")),
            "{got:?}"
        );
    }

    /// What a killed shim left is removed; a live process's stays.
    #[test]
    fn stale_console_dirs_go() {
        let base = console_base();
        // A pid that is not running: above pid_max.
        let stale = base.join(format!("{CONSOLE_DIR_PREFIX}99999999-abcdef"));
        let live = base.join(format!("{CONSOLE_DIR_PREFIX}{}-abcdef", std::process::id()));
        for d in [&stale, &live] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("pty.sock"), "").unwrap();
        }
        remove_stale_console_dirs();
        assert!(!stale.exists());
        assert!(live.exists());
        std::fs::remove_dir_all(&live).unwrap();
    }
}
