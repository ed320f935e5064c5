//! SCMP_ACT_NOTIFY: the listener reaches an agent at listenerPath, which answers.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use serde_json::{json, Value};

use super::*;

#[test]
fn notify_hands_the_listener_to_the_agent() {
    let dir = std::env::temp_dir().join(format!("rt-seccomp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock);
    let agent = UnixListener::bind(&sock).unwrap();
    let p = plan_of(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta=1",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }));
    assert!(p.needs_listener());
    let state = r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":1,"bundle":"/b"}"#;
    let target = c"/nonexistent-rt-seccomp-test/d";
    let end = run(
        Some(&p),
        |listener| {
            // This child allocates (JSON) after fork; glibc's malloc is fork-safe.
            let Some(listener) = listener else {
                return [1; N];
            };
            // SAFETY: getpid cannot fail.
            let pid = unsafe { libc::getpid() };
            if send_listener(&p, listener, pid, state).is_err() {
                return [2; N];
            }
            [sys(libc::SYS_mkdir, [target.as_ptr() as u64, 0o755, 0, 0, 0, 0]); N]
        },
        |pid| agent_answers_mkdir(&agent, pid),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(results(end)[0], EXDEV);
}

/// The agent: take the listener and the process state, answer mkdir with EXDEV.
fn agent_answers_mkdir(agent: &UnixListener, pid: i32) {
    use nix::poll::{poll, PollFd, PollFlags};
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let wait_readable = |fd: std::os::fd::BorrowedFd| {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, 10_000u16).unwrap(), 1, "timed out");
    };
    wait_readable(std::os::fd::AsFd::as_fd(agent));
    let (mut conn, _) = agent.accept().unwrap();
    let mut data = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (n, fd) = {
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg.cmsgs().unwrap().find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        });
        (msg.bytes, fd.expect("no fd in SCM_RIGHTS"))
    };
    // SAFETY: the fd just arrived through SCM_RIGHTS and is ours.
    let listener = unsafe { OwnedFd::from_raw_fd(fd) };
    data.truncate(n);
    conn.read_to_end(&mut data).unwrap();
    let st: Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(st["ociVersion"], "1.2.0");
    assert_eq!(st["fds"], json!(["seccompFd"]));
    assert_eq!(st["pid"], pid);
    assert_eq!(st["metadata"], "meta=1");
    assert_eq!(st["state"]["id"], "c1");

    wait_readable(std::os::fd::AsFd::as_fd(&listener));
    // SAFETY: all-zero is a valid seccomp_notif, and the kernel wants it zeroed.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV fills the seccomp_notif we pass.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req,
        )
    };
    assert_eq!(r, 0, "SECCOMP_IOCTL_NOTIF_RECV: {}", Errno::last());
    assert_eq!(req.pid as i32, pid);
    assert_eq!(i64::from(req.data.nr), libc::SYS_mkdir);
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error: -libc::EXDEV,
        flags: 0,
    };
    // SAFETY: NOTIF_SEND reads the seccomp_notif_resp we pass.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    };
    assert_eq!(r, 0, "SECCOMP_IOCTL_NOTIF_SEND: {}", Errno::last());
}
