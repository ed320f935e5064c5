//! Fault injection for tests: `RT_FAULT_STOP_AT=<step>` makes the process (rt itself, or
//! the container init or exec child it forked) that reaches that step of `create` or
//! `exec` say so on stderr and wait there, so that a test can SIGKILL rt (or the child)
//! exactly at that step and check that `delete --force` still leaves nothing behind.
//! `RT_FAULT_STOP_AT=list` prints the steps, one a line. A test hook, not an interface
//! for users: the README names it only where it tells how the tests work (Reliability).
//!
//! The waiting process blocks SIGCONT and waits for it (sigwaitinfo): the test resumes it
//! with SIGCONT, as if it had only been slow, or kills it. (SIGSTOP would not do: a pid
//! namespace's init cannot stop itself, the kernel drops the signal.) Everything here
//! after the fork is async-signal-safe: getpid, write, sigprocmask, sigwaitinfo on
//! stack buffers, no allocation.
//!
//! Unset, a step costs one relaxed atomic load.

use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable naming the step to stop at.
pub const VAR: &str = "RT_FAULT_STOP_AT";

/// Where a `create` or an `exec` can be stopped, in the order they are reached. The
/// `Init*` and `ExecChild*` steps are in the forked child, the others in rt itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// create: the state directory is made and locked; nothing else exists yet.
    CreateLocked,
    /// create: the cgroup is made (and recorded in cgroup.json) and its limits set.
    CreateCgroupMade,
    /// create: the init is forked; it waits for "go".
    CreateForked,
    /// init: running, in its cgroup when the first child joins it (see create.rs JoinAt),
    /// no namespace made yet.
    InitStarted,
    /// init: in its new user namespace, whose maps are not written yet.
    InitUserns,
    /// create: the user namespace's id maps are written.
    CreateMapsWritten,
    /// init: every namespace is made or joined (before the pid/time namespace's fork).
    InitNamespaces,
    /// create: the init's pid is known (it joins its cgroup by itself); state.json not written yet.
    CreateInitJoined,
    /// create: state.json says "creating".
    CreateStateCreating,
    /// init: the rootfs mounts are done, before the prestart/createRuntime hooks.
    InitMountsDone,
    /// create: before the prestart and createRuntime hooks.
    CreateBeforeHooks,
    /// init: before the createContainer hooks.
    InitBeforeContainerHooks,
    /// init: after pivot_root (or chroot), in the container's root.
    InitPivoted,
    /// init: the user, limits and seccomp are in place; before it says "ready".
    InitReady,
    /// create: the handshake is done; before state.json is written as created.
    CreateHandshakeDone,
    /// create: state.json is written; the init has not yet been told (it still dies if
    /// rt dies).
    CreateStateSaved,
    /// exec: the child is forked, not yet in the container's cgroup.
    ExecForked,
    /// exec child: in the container's cgroup (it joins by itself), no namespace joined yet.
    ExecChildInCgroup,
    /// exec child: in the container's namespaces and root.
    ExecChildJoined,
    /// exec child: ready to exec, before it says so.
    ExecChildReady,
    /// exec: the child said it is ready and goes on to exec (committed: from here a
    /// killed rt leaves the process running, unreported, as runc's would).
    ExecReady,
}

/// Every step, for tests to go through.
pub const STEPS: &[Step] = &[
    Step::CreateLocked,
    Step::CreateCgroupMade,
    Step::CreateForked,
    Step::InitStarted,
    Step::InitUserns,
    Step::CreateMapsWritten,
    Step::InitNamespaces,
    Step::CreateInitJoined,
    Step::CreateStateCreating,
    Step::InitMountsDone,
    Step::CreateBeforeHooks,
    Step::InitBeforeContainerHooks,
    Step::InitPivoted,
    Step::InitReady,
    Step::CreateHandshakeDone,
    Step::CreateStateSaved,
    Step::ExecForked,
    Step::ExecChildInCgroup,
    Step::ExecChildJoined,
    Step::ExecChildReady,
    Step::ExecReady,
];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::CreateLocked => "create-locked",
            Step::CreateCgroupMade => "create-cgroup-made",
            Step::CreateForked => "create-forked",
            Step::InitStarted => "init-started",
            Step::InitUserns => "init-userns",
            Step::CreateMapsWritten => "create-maps-written",
            Step::InitNamespaces => "init-namespaces",
            Step::CreateInitJoined => "create-init-joined",
            Step::CreateStateCreating => "create-state-creating",
            Step::InitMountsDone => "init-mounts-done",
            Step::CreateBeforeHooks => "create-before-hooks",
            Step::InitBeforeContainerHooks => "init-before-container-hooks",
            Step::InitPivoted => "init-pivoted",
            Step::InitReady => "init-ready",
            Step::CreateHandshakeDone => "create-handshake-done",
            Step::CreateStateSaved => "create-state-saved",
            Step::ExecForked => "exec-forked",
            Step::ExecChildInCgroup => "exec-child-in-cgroup",
            Step::ExecChildJoined => "exec-child-joined",
            Step::ExecChildReady => "exec-child-ready",
            Step::ExecReady => "exec-ready",
        }
    }
}

const NONE: u8 = u8::MAX;
static TARGET: AtomicU8 = AtomicU8::new(NONE);

/// Read `RT_FAULT_STOP_AT` (once, at start, before any fork). Returns the list of steps
/// to print when it says `list`.
pub fn init() -> Option<String> {
    let want = std::env::var(VAR).ok()?;
    if want == "list" {
        let names: Vec<&str> = STEPS.iter().map(|s| s.name()).collect();
        return Some(names.join("\n") + "\n");
    }
    if let Some(step) = STEPS.iter().find(|s| s.name() == want) {
        TARGET.store(*step as u8, Ordering::Relaxed);
    } else {
        log::warn!("{VAR}={want:?} names no step (RT_FAULT_STOP_AT=list lists them)");
    }
    None
}

/// A step of `create` or `exec`: wait here when it is the one asked for.
#[inline]
pub fn point(step: Step) {
    if TARGET.load(Ordering::Relaxed) == step as u8 {
        stop(step);
    }
}

/// Say "rt-fault: stopped at <step> pid <pid>" on stderr and wait for SIGCONT.
#[cold]
fn stop(step: Step) {
    let mut buf = [0u8; 128];
    let mut len = 0;
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    for part in [
        b"rt-fault: stopped at ".as_slice(),
        step.name().as_bytes(),
        b" pid ",
    ] {
        len += copy(&mut buf[len..], part);
    }
    len += format_u32(&mut buf[len..], pid.unsigned_abs());
    len += copy(&mut buf[len..], b"\n");
    // SAFETY: write of an initialized stack buffer; sigset_t is plain data that the
    // sig* calls initialize; the old mask is restored before returning.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCONT);
        // Blocked before it is said: a test that heard it finds SIGCONT blocked.
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        libc::write(2, buf.as_ptr().cast(), len);
        while libc::sigwaitinfo(&set, std::ptr::null_mut()) < 0 {}
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

fn copy(dst: &mut [u8], src: &[u8]) -> usize {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    n
}

fn format_u32(dst: &mut [u8], mut v: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    digits[..n].reverse();
    copy(dst, &digits[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_listed() {
        let mut names: Vec<&str> = STEPS.iter().map(|s| s.name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        for (i, s) in STEPS.iter().enumerate() {
            assert_eq!(*s as usize, i, "STEPS is in declaration order");
        }
    }

    #[test]
    fn numbers() {
        let mut b = [0u8; 16];
        let n = format_u32(&mut b, 4194304);
        assert_eq!(&b[..n], b"4194304");
        let n = format_u32(&mut b, 0);
        assert_eq!(&b[..n], b"0");
    }
}
