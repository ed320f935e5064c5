//! Every wait of the shim on a child or a descriptor, each with a way out.
//!
//! - The reaper: one thread, woken by SIGCHLD, reaps every child of the shim (their
//!   subreaper) with `waitid(P_ALL)` and hands each exit to containerd-shim's monitor, to
//!   which the task service and each runtime call subscribe. It replaces the crate's reaper,
//!   which decodes statuses with nix: a child killed by a signal nix has no name for
//!   (SIGRTMIN..SIGRTMAX) was reaped and its exit dropped, so no TaskExit came and `Wait`
//!   (or a runtime call waiting for that child) never returned.
//! - [`ChildExit`]: a runtime process's exit, from the reaper's word or, when that does not
//!   come, from the child itself (a zombie nobody reaped is reaped here); never a busy loop
//!   (the crate's `wait_pid` spins at 100% CPU on a closed channel) and never for ever: an
//!   exit reaped elsewhere and never reported ends the wait with an error.
//! - [`poll_in`]: descriptors' readiness with a deadline, EINTR retried with the time left.

use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use containerd_shim::monitor::{
    monitor_notify_by_pid, monitor_subscribe, ExitEvent, Subject, Subscription, Topic,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// How long a wait sleeps between looks at the child itself when the reaper's word has not
/// come: the reaper's word ends a wait at once, this only bounds the fallbacks.
pub const TICK: Duration = Duration::from_millis(50);

/// How long the reaper's word may lag once the child is known to be reaped (by the reaper,
/// which sends its word right after): past that, the exit was lost.
pub const LOST_AFTER: Duration = Duration::from_secs(2);

/// The write end of the reaper's wake-up pipe, for the SIGCHLD handler (-1: none yet).
static WAKE: AtomicI32 = AtomicI32::new(-1);

/// SIGCHLD: wake the reaper. Async-signal-safe: one write(2), errno preserved.
extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = WAKE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: errno is thread-local; write(2) of one byte from a static buffer.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, b"c".as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Start the reaper thread (once: later calls return the first one's result).
pub fn start_reaper() -> Result<(), String> {
    static STARTED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    STARTED.get_or_init(start_reaper_once).clone()
}

fn start_reaper_once() -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| format!("pipe2: {e}"))?;
    WAKE.store(w.into_raw_fd(), Ordering::Relaxed);
    // A handler of our own (an inherited SIG_IGN would have the kernel reap children and
    // their statuses be lost); SA_RESTART, as the crate's reaper had it.
    let action = SigAction::new(
        SigHandler::Handler(on_sigchld),
        SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: the handler only calls write(2).
    unsafe { sigaction(Signal::SIGCHLD, &action) }
        .map_err(|e| format!("sigaction SIGCHLD: {e}"))?;
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || reap_forever(r))
        .map(drop)
        .map_err(|e| format!("start the reaper: {e}"))
}

/// Reap every child as it exits, and tell the monitor. Between exits it sleeps on the
/// wake-up pipe, which SIGCHLD fills: emptied before each look, so no exit goes unseen.
fn reap_forever(wake: OwnedFd) {
    let mut wake = std::fs::File::from(wake);
    let mut buf = [0u8; 64];
    loop {
        while matches!(std::io::Read::read(&mut wake, &mut buf), Ok(n) if n > 0) {}
        loop {
            match reap_one() {
                Ok(Some((pid, code))) => {
                    let _ = monitor_notify_by_pid(pid, code);
                }
                Err(Errno::EINTR) => {}
                // None exited yet, or no child at all: until the next SIGCHLD.
                Ok(None) | Err(Errno::ECHILD) => break,
                Err(e) => {
                    log::warn!("reaper: waitid: {e}");
                    std::thread::sleep(TICK);
                    break;
                }
            }
        }
        let ev = poll_in(&[wake.as_fd()], None);
        if ev[0].intersects(PollFlags::POLLERR | PollFlags::POLLNVAL) {
            // poll itself failed: look again later rather than at once.
            std::thread::sleep(TICK);
        }
    }
}

/// Reap one exited child, if any: its pid and status as containerd has it.
fn reap_one() -> Result<Option<(i32, i32)>, Errno> {
    // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes only into `info`.
    Errno::result(unsafe {
        libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG)
    })?;
    // SAFETY: waitid filled in a SIGCHLD siginfo, or left it zeroed (si_pid 0: none).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some((pid, status_code(info.si_code, status))))
}

/// containerd's exit status from a SIGCHLD siginfo: the exit code, or 128+N for signal N
/// (any N: real-time signals included).
pub fn status_code(si_code: i32, si_status: i32) -> i32 {
    if si_code == libc::CLD_EXITED {
        si_status
    } else {
        128 + si_status
    }
}

fn exit_code(st: ExitStatus) -> i32 {
    st.code()
        .unwrap_or_else(|| 128 + st.signal().unwrap_or_default())
}

/// Subscribe to exits; before the spawn, since the reaper may collect the exit at once.
pub fn subscribe() -> Result<Subscription, String> {
    monitor_subscribe(Topic::Pid).map_err(|e| format!("subscribe to exits: {e}"))
}

/// The exit of a child the shim spawned and waits for (a runtime process).
pub struct ChildExit {
    pid: i32,
    exits: Subscription,
    /// When the child was found reaped by someone else (its exit then must be on its way).
    reaped_elsewhere: Option<Instant>,
}

impl ChildExit {
    /// `exits` subscribed before `child` was spawned.
    pub fn new(child: &Child, exits: Subscription) -> ChildExit {
        ChildExit {
            pid: child.id() as i32,
            exits,
            reaped_elsewhere: None,
        }
    }

    /// The child's exit status if it has exited: the reaper's word within `wait`, else the
    /// zombie reaped here. `None` while it runs; an error once its exit was lost.
    pub fn check(&mut self, child: &mut Child, wait: Duration) -> Result<Option<i32>, String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.exits.rx.recv_timeout(left) {
                Ok(ExitEvent {
                    subject: Subject::Pid(pid),
                    exit_code,
                }) if pid == self.pid => return Ok(Some(exit_code)),
                // Another process's exit.
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => break,
                // No word will come: the child itself tells.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left);
                    break;
                }
            }
        }
        match child.try_wait() {
            Ok(Some(st)) => Ok(Some(exit_code(st))),
            Ok(None) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                let since = *self.reaped_elsewhere.get_or_insert_with(Instant::now);
                if since.elapsed() < LOST_AFTER {
                    Ok(None)
                } else {
                    Err(format!(
                        "process {} was reaped but its exit status never came",
                        self.pid
                    ))
                }
            }
            Err(e) => Err(format!("wait for process {}: {e}", self.pid)),
        }
    }

    /// Wait for the child's exit status.
    pub fn wait(&mut self, child: &mut Child) -> Result<i32, String> {
        loop {
            if let Some(code) = self.check(child, TICK)? {
                return Ok(code);
            }
        }
    }
}

/// Wait until one of `fds` is readable, hung up or in error, or `timeout` passed (`None`:
/// no timeout); the events of each (all empty at the timeout). Interrupted polls go on
/// with the time left; a failing poll reports every descriptor in error, so that no
/// caller polls it again and again.
pub fn poll_in(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Vec<PollFlags> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut pfds: Vec<PollFd> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let left = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(Instant::now()).as_millis();
                // Round up: a poll for less than a millisecond would not sleep at all.
                PollTimeout::try_from(ms.saturating_add(1)).unwrap_or(PollTimeout::MAX)
            }
        };
        match nix::poll::poll(&mut pfds, left) {
            Ok(_) => {
                return pfds
                    .iter()
                    .map(|p| p.revents().unwrap_or(PollFlags::POLLERR))
                    .collect()
            }
            Err(Errno::EINTR) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return vec![PollFlags::empty(); fds.len()];
                }
            }
            Err(_) => return vec![PollFlags::POLLERR; fds.len()],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::Command;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    /// Run `f` in a thread; its result, or a panic naming `what` after `limit` (a wait
    /// that would block or spin for ever fails the test instead of hanging it).
    pub(crate) fn within<T: Send + 'static>(
        limit: Duration,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("{what}: still waiting after {limit:?}"))
    }

    #[test]
    fn signals_are_128_plus_n_real_time_ones_too() {
        assert_eq!(status_code(libc::CLD_EXITED, 3), 3);
        assert_eq!(status_code(libc::CLD_KILLED, libc::SIGKILL), 137);
        assert_eq!(status_code(libc::CLD_DUMPED, libc::SIGSEGV), 139);
        assert_eq!(
            status_code(libc::CLD_KILLED, libc::SIGRTMIN() + 2),
            128 + 36
        );
    }

    /// No reaper at all (the `delete` action, or a reaper that missed it): the zombie is
    /// reaped by the wait itself.
    #[test]
    fn a_zombie_nobody_reaps_ends_the_wait() {
        let code = within(Duration::from_secs(10), "wait without a reaper", || {
            let sub = subscribe().unwrap();
            let mut child = sh("exit 7").spawn().unwrap();
            ChildExit::new(&child, sub).wait(&mut child)
        });
        assert_eq!(code, Ok(7));
    }

    /// The subscription's channel closed under the wait: containerd-shim's `wait_pid`
    /// loops on `recv()` errors at 100% CPU for ever; this wait still ends with the status.
    #[test]
    fn a_closed_channel_neither_spins_nor_blocks() {
        let code = within(Duration::from_secs(10), "wait on a closed channel", || {
            let sub = subscribe().unwrap();
            // What drops the sender: the monitor forgets the subscription.
            containerd_shim::monitor::MONITOR
                .lock()
                .unwrap()
                .unsubscribe(sub.id)
                .unwrap();
            let mut child = sh("kill -s KILL $$").spawn().unwrap();
            let started = Instant::now();
            let cpu = thread_cpu_time();
            let code = ChildExit::new(&child, sub).wait(&mut child);
            // Sleeping, not spinning: far less CPU than wall time.
            let (wall, used) = (started.elapsed(), thread_cpu_time() - cpu);
            (code, wall, used)
        });
        assert_eq!(code.0, Ok(137));
        assert!(code.2 < code.1 / 2 + Duration::from_millis(20), "{code:?}");
    }

    /// The child was reaped by someone else and its exit never reported: an error after
    /// LOST_AFTER, not a wait for ever.
    #[test]
    fn an_exit_lost_elsewhere_is_an_error() {
        let got = within(Duration::from_secs(10), "wait for a lost exit", || {
            let sub = subscribe().unwrap();
            let mut child = sh("exit 0").spawn().unwrap();
            let pid = child.id() as i32;
            // Someone else reaps it and tells no one.
            // SAFETY: waitpid of our own child.
            let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            assert_eq!(r, pid);
            ChildExit::new(&child, sub).wait(&mut child)
        });
        assert!(got.unwrap_err().contains("never came"));
    }

    /// The reaper's word ends the wait, and an exit by a real-time signal comes through as
    /// 128+N (the crate's reaper dropped it). The reaper reaps every child of the process,
    /// so this runs in a test process of its own (`reaper_in_a_process_of_its_own`).
    #[test]
    fn the_reaper_reports_real_time_signals() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "wait::tests::reaper_in_a_process_of_its_own"])
            .args(["--ignored", "--nocapture", "--test-threads", "1"])
            .env("RT_SHIM_REAPER_TEST", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run by the_reaper_reports_real_time_signals, in a process of its own"]
    fn reaper_in_a_process_of_its_own() {
        assert!(std::env::var_os("RT_SHIM_REAPER_TEST").is_some());
        start_reaper().unwrap();
        let rtmin2 = libc::SIGRTMIN() + 2;
        for (script, want) in [
            (format!("kill -{rtmin2} $$"), 128 + rtmin2),
            ("exit 9".to_string(), 9),
        ] {
            let code = within(Duration::from_secs(10), &script.clone(), move || {
                let sub = subscribe().unwrap();
                let mut child = sh(&script).spawn().unwrap();
                let mut exit = ChildExit::new(&child, sub);
                // The reaper's word, well before the fallback's first look.
                let code = exit.check(&mut child, Duration::from_secs(5));
                // It was the reaper's: the child is reaped already.
                assert!(child.try_wait().is_err());
                code
            });
            assert_eq!(code, Ok(Some(want)));
        }
    }

    #[test]
    fn poll_in_times_out_and_sees_hangups() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let t = Instant::now();
        let ev = poll_in(&[r.as_fd()], Some(Duration::from_millis(100)));
        assert!(ev[0].is_empty() && t.elapsed() >= Duration::from_millis(100));
        drop(w);
        let ev = poll_in(&[r.as_fd()], None);
        assert!(ev[0].contains(PollFlags::POLLHUP), "{ev:?}");
    }

    /// CPU time of the calling thread.
    fn thread_cpu_time() -> Duration {
        // SAFETY: an all-zero rusage is valid; getrusage fills it in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}
