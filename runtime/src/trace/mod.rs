//! The per-step trace of a command (`rt create --trace FILE`, or `RT_TRACE=FILE` for
//! clients that cannot add flags): every setup step, in every process that does one (rt,
//! the container's init, an exec'd process before it execs), as one JSON line with its
//! start and duration in µs. The lines are Chrome/Perfetto "complete events"
//! (`"ph":"X"`), so `jq -s . FILE` opens in a trace viewer; `rt trace summarize` reads
//! them back.
//!
//! Each event also names its span, its parent span and its trace (W3C ids), so a trace
//! context given in `TRACEPARENT` makes the steps children of the caller's span, and
//! sends them as OpenTelemetry spans where the config says (export.rs).
//!
//! The step in progress is kept whether tracing is on or not (one thread-local store per
//! step): an error names the step it happened in.
//!
//! Events are buffered per process and written with one `write` on an `O_APPEND` file at
//! a few points (before the init says ready, before exec, at the end of the command), so
//! the processes' lines never interleave within a line. Off, a step costs a thread-local
//! read and store.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Context, Result};

pub mod event;
pub mod export;
pub mod otlp;
pub mod summarize;

pub use otlp::parse_traceparent;

/// The environment variable naming the trace file when no `--trace` is given.
pub const FILE_VAR: &str = "RT_TRACE";
/// The W3C trace context of the caller (OpenTelemetry's convention for processes).
pub const PARENT_VAR: &str = "TRACEPARENT";

/// The trace sink (-1: tracing is off). Inherited by the init across fork; close-on-exec.
static FD: AtomicI32 = AtomicI32::new(-1);

/// Past this many buffered bytes, events are written out at once.
const BUFFER_LIMIT: usize = 64 * 1024;

struct Tracer {
    trace_id: u128,
    /// The caller's span (from TRACEPARENT), parent of the command's root span; 0: none.
    remote_parent: u64,
    /// Where this command's events begin in the sink (a trace file may hold older runs).
    sink_start: u64,
    /// The command's root span: every event carries it, to tell one run from another.
    run: u64,
    /// Open spans, innermost last.
    stack: Vec<u64>,
    /// "rt", "init" or "exec": who does the steps.
    role: &'static str,
    /// The process's pid as rt's pid namespace sees it (not the container's 1).
    pid: u32,
    buf: Vec<u8>,
    next: u64,
    seed: u64,
}

thread_local! {
    static CURRENT: Cell<&'static str> = const { Cell::new("") };
    static TRACER: RefCell<Option<Tracer>> = const { RefCell::new(None) };
}

/// One step: ends (and is recorded, when tracing is on) when dropped.
#[must_use = "a step ends when its guard is dropped"]
pub struct Span {
    name: &'static str,
    previous: &'static str,
    /// Some only while tracing is on.
    rec: Option<Recording>,
}

struct Recording {
    detail: Option<String>,
    start_ns: u64,
    id: u64,
    parent: u64,
}

/// Start the command's trace, when asked for: `file` (from `--trace`) or `$RT_TRACE`
/// names the file; `$TRACEPARENT` alone traces into memory, for the span export. Returns
/// the command's root span (named after the command), which is the current step even when
/// nothing is traced; end it with [`finish`]. A context whose `sampled` flag is off is
/// ignored.
pub fn start(command: &'static str, file: Option<&Path>) -> Result<Option<Span>> {
    // Before anything can fail: an unwritable trace file is an error of this command too.
    CURRENT.with(|c| c.set(command));
    let env_file = std::env::var_os(FILE_VAR).filter(|v| !v.is_empty());
    let file = file.or(env_file.as_deref().map(Path::new));
    // An unsampled context is none: its spans would be dropped.
    let parent = std::env::var(PARENT_VAR)
        .ok()
        .filter(|v| otlp::is_sampled(v))
        .and_then(|v| parse_traceparent(&v));
    let mut sink_start = 0;
    let fd: OwnedFd = match (file, parent) {
        (Some(path), _) => {
            // Read back at the end for the span export when there is a trace context.
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(parent.is_some())
                .open(path)
                .ctx(|| format!("open trace file {}", path.display()))?;
            if parent.is_some() {
                sink_start = f.metadata().map(|m| m.len()).unwrap_or(0);
            }
            f.into()
        }
        (None, Some(_)) => memfd()?,
        (None, None) => return Ok(Some(step(command))),
    };
    let seed = now_ns() ^ (u64::from(std::process::id()) << 32);
    let (trace_id, remote_parent) = match parent {
        Some(p) => p,
        None => (
            u128::from(mix(seed)) << 64 | u128::from(mix(seed ^ 0x5555)),
            0,
        ),
    };
    TRACER.with(|t| {
        *t.borrow_mut() = Some(Tracer {
            trace_id,
            remote_parent,
            sink_start,
            run: 0,
            stack: Vec::new(),
            role: "rt",
            pid: std::process::id(),
            buf: Vec::with_capacity(16 * 1024),
            next: 1,
            seed,
        })
    });
    FD.store(fd.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(fd);
    let root = step(command);
    TRACER.with(|t| {
        if let (Some(t), Some(r)) = (t.borrow_mut().as_mut(), root.rec.as_ref()) {
            t.run = r.id;
        }
    });
    Ok(Some(root))
}

/// End the command's root span, write out what is buffered, and with a trace context
/// export the run's spans.
pub fn finish(root: Option<Span>) {
    drop(root);
    flush();
    if !has_context() {
        return;
    }
    let run = TRACER.with(|t| t.borrow().as_ref().map(|t| (t.sink_start, t.run)));
    if let Some((from, run)) = run {
        export::export(fd(), from, run);
    }
}

/// Whether the caller gave a trace context (TRACEPARENT): only then are spans exported.
pub fn has_context() -> bool {
    enabled() && TRACER.with(|t| t.borrow().as_ref().is_some_and(|t| t.remote_parent != 0))
}

/// Whether this process traces.
pub fn enabled() -> bool {
    FD.load(Ordering::Relaxed) >= 0
}

/// The trace sink's fd, which a forked child must keep open (-1 when off).
pub fn fd() -> RawFd {
    FD.load(Ordering::Relaxed)
}

/// Begin a step.
pub fn step(name: &'static str) -> Span {
    begin(name, None::<fn() -> String>)
}

/// Begin a step with a detail (a mount's destination, a hook's path, a cgroup file),
/// computed only when tracing is on.
pub fn step_with<D: FnOnce() -> String>(name: &'static str, detail: D) -> Span {
    begin(name, Some(detail))
}

fn begin<D: FnOnce() -> String>(name: &'static str, detail: Option<D>) -> Span {
    let previous = CURRENT.with(|c| c.replace(name));
    let rec = if enabled() {
        TRACER.with(|t| {
            let mut t = t.borrow_mut();
            let t = t.as_mut()?;
            let id = t.new_id();
            let parent = t.stack.last().copied().unwrap_or(t.remote_parent);
            t.stack.push(id);
            Some(Recording {
                detail: detail.map(|d| d()),
                start_ns: now_ns(),
                id,
                parent,
            })
        })
    } else {
        None
    };
    Span {
        name,
        previous,
        rec,
    }
}

impl Span {
    /// Run `f` as this step.
    pub fn run<T>(self, f: impl FnOnce() -> T) -> T {
        let out = f();
        drop(self);
        out
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
        if let Some(rec) = self.rec.take() {
            let end = now_ns();
            TRACER.with(|t| {
                if let Some(t) = t.borrow_mut().as_mut() {
                    if let Some(pos) = t.stack.iter().rposition(|&s| s == rec.id) {
                        t.stack.truncate(pos);
                    }
                    t.record(self.name, &rec, end);
                }
            });
        }
    }
}

/// A moment rather than a step (the exec of the program: nothing of rt's runs after it).
pub fn mark(name: &'static str) {
    drop(step(name));
}

/// The step in progress in this process ("" outside any), for errors to name.
pub fn current_step() -> &'static str {
    CURRENT.with(|c| c.get())
}

/// The W3C `traceparent` for a process started now (a hook), its parent the step in
/// progress; None when tracing is off.
pub fn traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    TRACER.with(|t| {
        let t = t.borrow();
        let t = t.as_ref()?;
        let span = t.stack.last().copied().unwrap_or(t.remote_parent);
        Some(format!("00-{:032x}-{:016x}-01", t.trace_id, span))
    })
}

/// In a child just forked (by plain fork, so it still sees its own pid): its steps are
/// done by `role`, as children of the command's root span, and what the parent had
/// buffered is the parent's to write.
pub fn in_child(role: &'static str) {
    CURRENT.with(|c| c.set(role));
    forked(role, std::process::id());
}

/// In the second child of a pid namespace, whose own pid there is 1: `host_pid` is what
/// its parent saw (when it could tell), and what the trace shows.
pub fn in_sibling(role: &'static str, host_pid: Option<u32>) {
    CURRENT.with(|c| c.set(role));
    forked(role, host_pid.unwrap_or_else(std::process::id));
}

fn forked(role: &'static str, pid: u32) {
    if !enabled() {
        return;
    }
    TRACER.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            t.role = role;
            t.pid = pid;
            t.buf.clear();
            t.stack.truncate(1);
            t.seed = mix(t.seed ^ u64::from(pid));
        }
    });
}

/// Write what is buffered, in one write (the file is O_APPEND: lines of concurrent
/// processes never mix). Errors are ignored: a trace must never fail a container.
pub fn flush() {
    let fd = fd();
    if fd < 0 {
        return;
    }
    TRACER.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            write_all(fd, &t.buf);
            t.buf.clear();
        }
    });
}

impl Tracer {
    fn new_id(&mut self) -> u64 {
        self.next += 1;
        // Never 0 (W3C: an all-zero id is invalid).
        mix(self.seed.wrapping_add(self.next)) | 1
    }

    fn record(&mut self, name: &str, rec: &Recording, end_ns: u64) {
        use std::io::Write as _;
        let pid = self.pid;
        let b = &mut self.buf;
        // Straight into the buffer: no line or value is built on the side.
        let _ = write!(
            b,
            "{{\"name\":\"{name}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{pid},\"tid\":{pid},\"args\":{{",
            self.role,
            rec.start_ns / 1000,
            end_ns.saturating_sub(rec.start_ns) / 1000,
        );
        if let Some(d) = &rec.detail {
            b.extend_from_slice(b"\"detail\":");
            let _ = serde_json::to_writer(&mut *b, d.as_str());
            b.push(b',');
        }
        let _ = writeln!(
            b,
            "\"trace\":\"{:032x}\",\"span\":\"{:016x}\",\"parent\":\"{:016x}\",\"run\":\"{:016x}\",\"start_ns\":{},\"end_ns\":{end_ns}}}}}",
            self.trace_id,
            rec.id,
            rec.parent,
            if self.run == 0 { rec.id } else { self.run },
            rec.start_ns,
        );
        if b.len() > BUFFER_LIMIT {
            write_all(fd(), b);
            b.clear();
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// splitmix64: spreads a counter into ids that look random and do not repeat.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `fd` is the open trace sink; the buffer is valid for its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// An anonymous file for a trace that is only exported, never kept.
fn memfd() -> Result<OwnedFd> {
    // SAFETY: memfd_create reads a NUL-terminated name and returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"rt-trace".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(crate::error::Error::sys(
            "memfd_create rt-trace",
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_only_valid_headers() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(ok),
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7))
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later")
                .is_some()
        );
    }

    #[test]
    fn the_current_step_nests_and_unwinds() {
        assert_eq!(current_step(), "");
        {
            let _a = step("outer");
            assert_eq!(current_step(), "outer");
            {
                let _b = step_with("inner", || unreachable!("no detail when off"));
                assert_eq!(current_step(), "inner");
            }
            assert_eq!(current_step(), "outer");
        }
        assert_eq!(current_step(), "");
    }
}
