//! The filters are checked against the kernel: each test installs one in a forked child
//! (with no_new_privs), which makes raw syscalls and writes their results to a pipe.
//! Children make no allocation between fork and _exit unless a test says so.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::*;

mod actions;
mod docker;
/// The fuzz driver shared with the crate's other fuzz tests (src/fuzz/driver.rs).
use crate::fuzz::driver;
mod fuzz;
mod notify;
mod profiles;

const DOCKER: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/docker-20.10-default.json"
));

fn docker() -> Value {
    serde_json::from_str(DOCKER).unwrap()
}

const N: usize = 12;
type Results = [i64; N];

#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited(i32, Option<Results>),
    Signaled(i32),
}

const EPERM: i64 = -(libc::EPERM as i64);
const ENOSYS: i64 = -(libc::ENOSYS as i64);
const EDOM: i64 = -(libc::EDOM as i64);
const EXDEV: i64 = -(libc::EXDEV as i64);

/// A raw syscall: its result, or -errno. Tests only pass integers or valid pointers.
fn sys(nr: libc::c_long, a: [u64; 6]) -> i64 {
    // SAFETY: the callers pass integer arguments or pointers to live C strings.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        -(Errno::last() as i64)
    } else {
        r as i64
    }
}

fn sys0(nr: libc::c_long) -> i64 {
    sys(nr, [0; 6])
}

/// Fork; the child installs `plan` (if any) and runs `child`, the parent runs `parent` with
/// the child's pid, then collects the child's results and end.
fn run(
    plan: Option<&SeccompPlan>,
    child: impl FnOnce(Option<OwnedFd>) -> Results,
    parent: impl FnOnce(i32),
) -> End {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new fds, which we own from here on.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: see above.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child makes raw syscalls and leaves with _exit (see child_main).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        drop(r);
        child_main(plan, child, w.as_raw_fd());
    }
    drop(w);
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| parent(pid))) {
        // SAFETY: plain kill/waitpid of our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        resume_unwind(p);
    }
    let mut buf = Vec::new();
    std::fs::File::from(r).read_to_end(&mut buf).unwrap();
    let mut status = 0;
    // SAFETY: waitpid writes the status of our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFSIGNALED(status) {
        return End::Signaled(libc::WTERMSIG(status));
    }
    let results = (buf.len() == N * 8).then(|| {
        let mut out = [0i64; N];
        for (o, b) in out.iter_mut().zip(buf.chunks_exact(8)) {
            *o = i64::from_ne_bytes(b.try_into().unwrap());
        }
        out
    });
    End::Exited(libc::WEXITSTATUS(status), results)
}

fn child_main(
    plan: Option<&SeccompPlan>,
    f: impl FnOnce(Option<OwnedFd>) -> Results,
    w: RawFd,
) -> ! {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on valid arguments; _exit never returns.
    unsafe {
        // A filter that kills must not leave core files behind.
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            libc::_exit(90);
        }
    }
    let listener = match plan.map(install) {
        None => None,
        Some(Ok(l)) => l,
        // SAFETY: _exit is always safe.
        Some(Err(_)) => unsafe { libc::_exit(91) },
    };
    let out = match catch_unwind(AssertUnwindSafe(|| f(listener))) {
        Ok(o) => o,
        // SAFETY: _exit is always safe.
        Err(_) => unsafe { libc::_exit(92) },
    };
    let mut bytes = [0u8; N * 8];
    for (b, o) in bytes.chunks_exact_mut(8).zip(out) {
        b.copy_from_slice(&o.to_ne_bytes());
    }
    // SAFETY: writes our own stack buffer to our pipe, then leaves.
    unsafe {
        libc::write(w, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
    }
}

fn in_child(plan: &SeccompPlan, f: impl FnOnce() -> Results) -> End {
    run(Some(plan), |_| f(), |_| {})
}

fn results(end: End) -> Results {
    match end {
        End::Exited(0, Some(r)) => r,
        other => panic!("child ended with {other:?}"),
    }
}

fn plan_of(v: Value) -> SeccompPlan {
    plan(&v).unwrap_or_else(|e| panic!("{e}"))
}

fn error_of(v: Value) -> String {
    plan(&v).unwrap_err().to_string()
}
