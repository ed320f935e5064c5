//! A FUSE filesystem that never answers FLUSH: a process that closes a file of it waits
//! for ever, and once it has received a signal it waits in uninterruptible sleep (D), which
//! not even SIGKILL ends (the kernel sends FLUSH with `force`: after the first signal it
//! waits with `wait_event`). That is how a dead network filesystem or a hung FUSE daemon
//! keeps a container's process alive, for the tests of "kill and delete never hang".
//!
//! The protocol is spoken raw on /dev/fuse (no libfuse): INIT, LOOKUP, GETATTR, OPEN,
//! READ and the like are answered, for one empty file, [`StuckFuse::FILE`]; FLUSH is
//! counted and left unanswered. [`StuckFuse::abort`] (also on drop) closes /dev/fuse,
//! which makes the kernel abort the connection and fail every waiting request, so the
//! process can die and the test leave nothing behind.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const OPEN: u32 = 14;
const READ: u32 = 15;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const ACCESS: u32 = 34;
const INTERRUPT: u32 = 36;
const DESTROY: u32 = 38;
const BATCH_FORGET: u32 = 42;

const ROOT: u64 = 1;
const FILE_NODE: u64 = 2;
/// struct fuse_in_header.
const IN_HEADER: usize = 40;

/// A mounted [`StuckFuse`] filesystem and the thread that serves it.
pub struct StuckFuse {
    mountpoint: PathBuf,
    stop: Arc<AtomicBool>,
    flushes: Arc<AtomicUsize>,
    server: Option<JoinHandle<()>>,
}

impl StuckFuse {
    /// The one file of the filesystem (empty, mode 0644).
    pub const FILE: &'static str = "stuck";

    /// Mount the filesystem on `mountpoint` (an existing directory) and serve it from a
    /// thread of this process.
    pub fn mount(mountpoint: &Path) -> io::Result<StuckFuse> {
        // Close-on-exec (std's default): no child may hold the device, or closing ours
        // would not abort the connection.
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")?;
        let opts = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            dev.as_raw_fd()
        );
        let target = CString::new(mountpoint.as_os_str().as_bytes())?;
        let (src, fstype, data) = (c"rt-stuck-fuse", c"fuse", CString::new(opts)?);
        // SAFETY: mount(2) with valid NUL-terminated strings.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flushes = Arc::new(AtomicUsize::new(0));
        let (s, f) = (stop.clone(), flushes.clone());
        let server = std::thread::spawn(move || serve(dev, &s, &f));
        Ok(StuckFuse {
            mountpoint: mountpoint.to_path_buf(),
            stop,
            flushes,
            server: Some(server),
        })
    }

    /// How many FLUSH requests arrived (and were left unanswered).
    pub fn flushes(&self) -> usize {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Abort the connection (every waiting request fails with ENOTCONN) and detach the
    /// mount. Idempotent.
    pub fn abort(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
        if let Ok(target) = CString::new(self.mountpoint.as_os_str().as_bytes()) {
            // SAFETY: umount2 with a valid NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

impl Drop for StuckFuse {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Read requests until asked to stop; then the device is closed (dropped), which aborts
/// the connection.
fn serve(mut dev: File, stop: &AtomicBool, flushes: &AtomicUsize) {
    let mut buf = vec![0u8; 128 * 1024 + 4096];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: dev.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd we own, with a timeout: the stop flag is seen.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        let n = match dev.read(&mut buf) {
            Ok(n) if n >= IN_HEADER => n,
            Ok(_) => continue,
            // ENOENT: the request was interrupted before we read it; EINTR, EAGAIN: retry.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return, // unmounted
            Err(_) => continue,
        };
        let req = &buf[..n];
        let opcode = u32_at(req, 4);
        let unique = u64_at(req, 8);
        let node = u64_at(req, 16);
        let body = &req[IN_HEADER..];
        let reply = match opcode {
            INIT => Some(Ok(init_out(u32_at(body, 8)))),
            LOOKUP => {
                let name = body.split(|b| *b == 0).next().unwrap_or_default();
                if node == ROOT && name == StuckFuse::FILE.as_bytes() {
                    Some(Ok(entry_out(FILE_NODE)))
                } else {
                    Some(Err(libc::ENOENT))
                }
            }
            GETATTR => Some(Ok(attr_out(node))),
            OPEN | OPENDIR => Some(Ok(vec![0u8; 16])), // fuse_open_out: fh 0, no flags
            READ | READDIR => Some(Ok(Vec::new())),    // end of file, of directory
            STATFS => Some(Ok(statfs_out())),
            RELEASE | RELEASEDIR | ACCESS => Some(Ok(Vec::new())),
            FLUSH => {
                flushes.fetch_add(1, Ordering::SeqCst);
                None
            }
            // These take no answer.
            FORGET | BATCH_FORGET | INTERRUPT | DESTROY => None,
            _ => Some(Err(libc::ENOSYS)),
        };
        if let Some(r) = reply {
            let (error, payload) = match r {
                Ok(p) => (0, p),
                Err(errno) => (-errno, Vec::new()),
            };
            let mut out = Vec::with_capacity(16 + payload.len());
            out.extend_from_slice(&(16 + payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&error.to_le_bytes());
            out.extend_from_slice(&unique.to_le_bytes());
            out.extend_from_slice(&payload);
            // ENOENT: the request was interrupted meanwhile; nothing to do.
            let _ = dev.write_all(&out);
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}

fn put(out: &mut [u8], at: usize, v: &[u8]) {
    out[at..at + v.len()].copy_from_slice(v);
}

/// struct fuse_init_out (64 bytes): protocol 7.31, no optional feature.
fn init_out(max_readahead: u32) -> Vec<u8> {
    let mut o = vec![0u8; 64];
    put(&mut o, 0, &7u32.to_le_bytes());
    put(&mut o, 4, &31u32.to_le_bytes());
    put(&mut o, 8, &max_readahead.to_le_bytes());
    put(&mut o, 20, &4096u32.to_le_bytes()); // max_write
    put(&mut o, 24, &1u32.to_le_bytes()); // time_gran
    o
}

/// struct fuse_attr (88 bytes) of the root directory or of the file.
fn attr(node: u64) -> Vec<u8> {
    let mut a = vec![0u8; 88];
    let (mode, nlink) = if node == ROOT {
        (0o040755u32, 2u32)
    } else {
        (0o100644, 1)
    };
    put(&mut a, 0, &node.to_le_bytes()); // ino
    put(&mut a, 60, &mode.to_le_bytes());
    put(&mut a, 64, &nlink.to_le_bytes());
    put(&mut a, 80, &4096u32.to_le_bytes()); // blksize
    a
}

/// struct fuse_entry_out (128 bytes), valid for a minute.
fn entry_out(node: u64) -> Vec<u8> {
    let mut e = vec![0u8; 40];
    put(&mut e, 0, &node.to_le_bytes());
    put(&mut e, 16, &60u64.to_le_bytes()); // entry_valid
    put(&mut e, 24, &60u64.to_le_bytes()); // attr_valid
    e.extend(attr(node));
    e
}

/// struct fuse_attr_out (104 bytes).
fn attr_out(node: u64) -> Vec<u8> {
    let mut o = vec![0u8; 16];
    put(&mut o, 0, &60u64.to_le_bytes()); // attr_valid
    o.extend(attr(node));
    o
}

/// struct fuse_statfs_out (80 bytes): an empty filesystem.
fn statfs_out() -> Vec<u8> {
    let mut o = vec![0u8; 80];
    put(&mut o, 40, &4096u32.to_le_bytes()); // bsize
    put(&mut o, 44, &255u32.to_le_bytes()); // namelen
    put(&mut o, 48, &4096u32.to_le_bytes()); // frsize
    o
}
