//! What supervisors use around create/run: `run --keep`, `run --no-subreaper`, `run -t`
//! (and process.terminal) relayed to the caller's terminal, `create --pidfd-socket`, and
//! NOTIFY_SOCKET (sd_notify) passed through as runc does.

use integration::console::{open_pty, read_pty, recv_data_and_fds, recv_fd_and_data};
use integration::*;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn run_keep_leaves_the_stopped_container() {
    let h = Ctx::new("run_keep_leaves_the_stopped_container");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("exit 2");
    b.save();
    h.rt(&["run", "--keep", "--bundle", b.dir.to_str().unwrap(), &id])
        .expect_code(2);
    assert_eq!(h.status(&id).as_deref(), Some("stopped"));
    assert!(!cgroup_dirs(&id).is_empty(), "--keep keeps the cgroup too");
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn run_no_subreaper_still_gets_the_exit_status() {
    let h = Ctx::new("run_no_subreaper_still_gets_the_exit_status");
    let id = h.id();
    let mut b = h.bundle(&id);
    assert!(
        b.has_namespace("pid"),
        "the init is in its own pid namespace"
    );
    b.sh("exit 3");
    b.save();
    let out = h.rt(&[
        "run",
        "--no-subreaper",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    out.expect_code(3);
    h.assert_nothing_left(&id);
}

/// `run ARGS` with rt's stdio on a fresh pty of size rows×cols: exit code and what the
/// container wrote on its terminal.
fn run_on_a_pty(h: &Ctx, args: &[&str], rows: u16, cols: u16) -> (Option<i32>, String) {
    let (master, slave) = open_pty(rows, cols);
    let mut c = h.command(args);
    c.stdin(Stdio::from(slave.try_clone().unwrap()));
    c.stdout(Stdio::from(slave.try_clone().unwrap()));
    c.stderr(Stdio::from(slave));
    let mut child = c.spawn().unwrap();
    let status = wait_child(&mut child, T, "rt run on a pty");
    let text = read_pty(master, Duration::from_millis(500)).replace('\r', "");
    (status.code(), text)
}

#[test]
fn run_terminal_relayed_to_the_callers_terminal() {
    let h = Ctx::new("run_terminal_relayed_to_the_callers_terminal");
    // process.terminal from the config, no --console-socket: rt relays.
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["terminal"] = json!(true);
    b.sh("stty size; tty; exit 4");
    b.save();
    let bdir = b.dir.to_str().unwrap();
    let (code, text) = run_on_a_pty(&h, &["run", "--bundle", bdir, &id], 21, 66);
    assert_eq!(code, Some(4), "{text:?}");
    assert!(text.contains("21 66\n"), "window size copied: {text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    h.assert_nothing_left(&id);
    // `run -t` makes a terminal whatever the config says.
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("[ -t 0 ] && [ -t 1 ] && echo on-a-tty; stty size");
    b.save();
    let bdir = b.dir.to_str().unwrap();
    let (code, text) = run_on_a_pty(&h, &["run", "-t", "--bundle", bdir, &id], 30, 90);
    assert_eq!(code, Some(0), "{text:?}");
    assert!(text.contains("on-a-tty\n30 90\n"), "{text:?}");
    h.assert_nothing_left(&id);
}

#[test]
fn create_pidfd_socket_receives_the_init() {
    let h = Ctx::new("create_pidfd_socket_receives_the_init");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "1000"]);
    b.save();
    let sock_path = h.dir.join("pidfd.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        recv_fd_and_data(conn.as_raw_fd())
    });
    let bdir = b.dir.to_str().unwrap();
    let sp = sock_path.to_str().unwrap();
    h.rt(&["create", "--pidfd-socket", sp, "--bundle", bdir, &id])
        .ok();
    let pid = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
    h.track_pid(pid);
    let (pidfd, data) = receiver.join().unwrap().expect("a pidfd");
    assert_eq!(data, b"pidfd");
    pidfd_signal(&pidfd, 0).expect("pidfd_send_signal(0)");
    // It is the init: killing through it stops the container.
    pidfd_signal(&pidfd, libc::SIGKILL).expect("pidfd_send_signal(SIGKILL)");
    h.wait_status(&id, "stopped", T);
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
}

/// A fake systemd notify socket: every datagram received, as text; barrier fds are
/// closed at once, which is systemd's answer.
fn fake_systemd(path: &std::path::Path) -> std::sync::mpsc::Receiver<String> {
    let sock = UnixDatagram::bind(path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        let Ok((data, fds)) = recv_data_and_fds(sock.as_raw_fd()) else {
            return;
        };
        drop(fds);
        if tx
            .send(String::from_utf8_lossy(&data).into_owned())
            .is_err()
        {
            return;
        }
    });
    rx
}

#[test]
fn notify_socket_ready_is_passed_to_the_host() {
    let h = Ctx::new("notify_socket_ready_is_passed_to_the_host");
    let host = h.dir.join("systemd-notify.sock");
    let got = fake_systemd(&host);
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("echo \"$NOTIFY_SOCKET\" > /tmp/env; [ -S /run/notify/notify.sock ] && touch /tmp/sock-ok; sleep 1000");
    b.save();
    let bdir = b.dir.to_str().unwrap();
    let args = ["create", "--bundle", bdir, id.as_str()];
    let mut c = h.command(&args);
    c.env("NOTIFY_SOCKET", &host);
    h.rt_cmd(c, &args).ok();
    let pid = h.state_ok(&id)["pid"].as_i64().unwrap();
    h.track_pid(pid as i32);
    // `start` waits for the container's READY.
    let mut start = h.command(&["start", &id]);
    start.env("NOTIFY_SOCKET", &host).stdout(Stdio::null());
    let mut start = start.spawn().unwrap();
    poll(T, "the container to see its notify socket", || {
        b.path_in_rootfs("/tmp/sock-ok").exists().then_some(())
    });
    assert_eq!(
        read_or_empty(&b.path_in_rootfs("/tmp/env")),
        "/run/notify/notify.sock\n"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        start.try_wait().unwrap().is_none(),
        "start returned before READY"
    );
    // What sd_notify in the container does: a datagram to its $NOTIFY_SOCKET, which is
    // this file on the host side.
    // (Through the directory's fd: the path may be longer than a socket address holds.)
    let dir = std::fs::File::open(h.root.join(&id).join("notify")).unwrap();
    let container_sock = format!("/proc/self/fd/{}/notify.sock", dir.as_raw_fd());
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"STATUS=starting\nREADY=1", &container_sock)
        .unwrap();
    let status = wait_child(&mut start, T, "start");
    assert!(status.success());
    let msgs: Vec<String> = got.try_iter().collect();
    assert_eq!(
        msgs,
        [
            "READY=1\n".to_string(),
            format!("MAINPID={pid}\n"),
            "BARRIER=1".to_string()
        ]
    );
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn notify_socket_wait_ends_when_the_container_exits() {
    let h = Ctx::new("notify_socket_wait_ends_when_the_container_exits");
    let host = h.dir.join("systemd-notify.sock");
    let got = fake_systemd(&host);
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("exit 0");
    b.save();
    let bdir = b.dir.to_str().unwrap();
    let args = ["run", "--bundle", bdir, id.as_str()];
    let mut c = h.command(&args);
    c.env("NOTIFY_SOCKET", &host);
    h.rt_cmd(c, &args).ok();
    assert_eq!(got.try_iter().count(), 0, "no READY was sent");
    h.assert_nothing_left(&id);
}
