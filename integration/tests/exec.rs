//! `exec`: a new process in a running container, with every flag runc has; exit statuses
//! (the process's, 255 when it could not start) and error messages as runc's.

use integration::console::{open_pty, read_pty, recv_fd_and_data, ConsoleSocket};
use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// A running container whose init sleeps: its id, init pid and bundle; `setup` may
/// change the bundle first.
fn sleeper(h: &Ctx, setup: impl FnOnce(&mut Bundle)) -> (String, i64, Bundle) {
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "1000"]);
    setup(&mut b);
    h.run_detached(&id, &b).ok();
    let pid = h.state_ok(&id)["pid"].as_i64().expect("pid");
    (id, pid, b)
}

/// `exec -d` with a pid file: the process's pid. It is our child once rt has exited (the
/// test is a subreaper), so the test reaps it: see [`end_exec`].
fn exec_detached(h: &Ctx, args: &[&str]) -> i32 {
    let p = h.dir.join(format!("exec-{}.pid", args.len()));
    let mut all = vec!["-d", "--pid-file", p.to_str().unwrap()];
    all.extend_from_slice(args);
    exec(h, &all).ok();
    let pid: i32 = fs::read_to_string(&p).unwrap().trim().parse().unwrap();
    h.track_pid(pid);
    pid
}

/// Kill (if still running) and reap a detached exec'd process: the container's init cannot
/// finish dying while a process of its pid namespace is an unreaped zombie.
fn end_exec(h: &Ctx, pid: i32) {
    // SAFETY: kill(2) of a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    h.reap(pid, T);
}

fn exec(h: &Ctx, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    h.rt(&all)
}

#[track_caller]
fn exec_fails(h: &Ctx, args: &[&str], needle: &str) {
    let out = exec(h, args);
    out.expect_code(255);
    assert!(
        out.stderr.contains("exec failed: ") && out.stderr.contains(needle),
        "expected \"exec failed: …{needle}…\":\n{}",
        out.describe()
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.describe());
}

fn finish(h: &Ctx, id: &str) {
    h.delete_force(id).ok();
    h.assert_nothing_left(id);
}

#[test]
fn exec_status_output_and_the_containers_pid_1() {
    let h = Ctx::new("exec_status_output_and_the_containers_pid_1");
    let (id, _, _) = sleeper(&h, |_| {});
    let out = exec(&h, &[&id, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    out.expect_code(7);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    exec(&h, &[&id, "sh", "-c", "kill -9 $$"]).expect_code(137);
    // In the container's pid namespace: PID 1 is the init, the exec'd ps is not 1.
    let ps = exec(&h, &[&id, "ps", "-o", "pid,args"]).ok().stdout.clone();
    let lines: Vec<&str> = ps.lines().map(str::trim).collect();
    assert!(lines.contains(&"1 sleep 1000"), "{ps}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("ps -o pid,args") && !l.starts_with("1 ")),
        "{ps}"
    );
    finish(&h, &id);
}

#[test]
fn exec_joins_every_namespace_the_cgroup_and_the_root() {
    let h = Ctx::new("exec_joins_every_namespace_the_cgroup_and_the_root");
    // Cgroup namespaces came with Linux 4.6: without them, the other types are checked.
    let cgroupns = host::has_namespace("cgroup");
    if !cgroupns {
        skip(
            "exec_joins_every_namespace_the_cgroup_and_the_root",
            "kernel without cgroup namespaces: the other namespace types are checked",
        );
    }
    let (id, pid, b) = sleeper(&h, |b| {
        if cgroupns {
            b.namespace("cgroup", None);
        }
    });
    let mut kinds = vec!["pid", "mnt", "net", "ipc", "uts"];
    if cgroupns {
        kinds.push("cgroup");
    }
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let out = exec(&h, &[&id, "sh", "-c", &script]).ok().stdout.clone();
    let inside: Vec<&str> = out.lines().collect();
    for (k, got) in kinds.iter().zip(&inside) {
        let want = fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
        assert_eq!(*got, want.to_str().unwrap(), "{k} namespace");
    }
    // The root is the container's.
    fs::write(b.path_in_rootfs("/marker"), "in-rootfs").unwrap();
    assert_eq!(exec(&h, &[&id, "cat", "/marker"]).ok().stdout, "in-rootfs");
    // The cgroup: the same as the init's, everywhere.
    let host_cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let epid = exec_detached(&h, &[&id, "sleep", "30"]);
    assert_eq!(
        fs::read_to_string(format!("/proc/{epid}/cgroup")).unwrap(),
        host_cg,
        "the exec'd process is in the container's cgroups"
    );
    end_exec(&h, epid);
    finish(&h, &id);
}

#[test]
fn exec_user_cwd_env_groups_caps_and_nnp() {
    let h = Ctx::new("exec_user_cwd_env_groups_caps_and_nnp");
    let (id, _, b) = sleeper(&h, |_| {});
    let out = exec(
        &h,
        &[
            "-u",
            "1000:1001",
            "--cwd",
            "/tmp",
            "-e",
            "FOO=bar",
            "--additional-gids",
            "10",
            "--additional-gids",
            "20",
            &id,
            "sh",
            "-c",
            "id -u; id -g; id -G; pwd; echo $FOO",
        ],
    );
    assert_eq!(out.ok().stdout, "1000\n1001\n1001 10 20\n/tmp\nbar\n");
    // Default: the config's capabilities (the harness gives a short list, no CAP_SYS_ADMIN).
    let caps = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([id.as_str(), "cat", "/proc/self/status"]);
        let status = exec(&h, &all).ok().stdout.clone();
        let eff = status_field(&status, "CapEff").unwrap().to_string();
        let nnp = status_field(&status, "NoNewPrivs").unwrap().to_string();
        (u64::from_str_radix(&eff, 16).unwrap(), nnp)
    };
    let (eff, nnp) = caps(&[]);
    assert_eq!(eff & (1 << 21), 0, "no CAP_SYS_ADMIN by default");
    let (eff_added, _) = caps(&["--cap", "CAP_SYS_ADMIN"]);
    assert_eq!(eff_added, eff | 1 << 21, "--cap adds exactly CAP_SYS_ADMIN");
    let config_nnp = b.config["process"]["noNewPrivileges"] == json!(true);
    assert_eq!(nnp, if config_nnp { "1" } else { "0" });
    assert_eq!(caps(&["--no-new-privs"]).1, "1");
    finish(&h, &id);
}

#[test]
fn exec_process_file() {
    let h = Ctx::new("exec_process_file");
    let (id, _, _) = sleeper(&h, |_| {});
    let p = h.dir.join("process.json");
    fs::write(
        &p,
        json!({
            "args": ["sh", "-c", "pwd; id -u; echo $ONLY"],
            "cwd": "/etc",
            "user": { "uid": 5, "gid": 6 },
            "env": ["PATH=/bin:/usr/bin", "ONLY=from-file"]
        })
        .to_string(),
    )
    .unwrap();
    let ps = p.to_str().unwrap();
    assert_eq!(
        exec(&h, &["--process", ps, &id]).ok().stdout,
        "/etc\n5\nfrom-file\n"
    );
    fs::write(&p, "{\n  \"args\": [\"true\"],\n  \"cwd\": \"/\",\n}").unwrap();
    exec_fails(&h, &["--process", ps, &id], "line 4 column 1");
    fs::write(
        &p,
        json!({ "args": ["true"], "cwd": "relative" }).to_string(),
    )
    .unwrap();
    exec_fails(&h, &["--process", ps, &id], "not an absolute path");
    exec_fails(
        &h,
        &["--process", h.dir.join("nope.json").to_str().unwrap(), &id],
        "nope.json",
    );
    finish(&h, &id);
}

#[test]
fn exec_errors_exit_255_and_leave_nothing() {
    let h = Ctx::new("exec_errors_exit_255_and_leave_nothing");
    exec_fails(
        &h,
        &["no-such-container", "true"],
        "container does not exist",
    );
    exec_fails(&h, &["bad/id", "true"], "bad/id");
    let (id, _, _) = sleeper(&h, |_| {});
    exec_fails(&h, &[&id], "process args cannot be empty");
    exec_fails(&h, &[&id, "no-such-program"], "executable file not found");
    exec_fails(&h, &["--cwd", "/no/such/dir", &id, "true"], "/no/such/dir");
    exec_fails(&h, &["-u", "root", &id, "true"], "invalid uid");
    exec_fails(&h, &["-t", "-d", &id, "true"], "cannot allocate tty");
    exec_fails(&h, &["--cgroup", "no-sub", &id, "true"], "does not exist");
    h.rt(&["pause", &id]).ok();
    exec_fails(&h, &[&id, "true"], "cannot exec in a paused container");
    h.rt(&["resume", &id]).ok();
    // Only the init is left in the container.
    let ps = exec(&h, &[&id, "ps", "-o", "pid"]).ok().stdout.clone();
    let pids: Vec<&str> = ps.split_whitespace().collect();
    assert_eq!(
        (pids.len(), pids[1]),
        (3, "1"),
        "the init and ps itself: {ps}"
    );
    h.kill(&id, "KILL").ok();
    h.wait_status(&id, "stopped", T);
    exec_fails(
        &h,
        &[&id, "true"],
        "cannot exec a container that has stopped",
    );
    finish(&h, &id);
}

#[test]
fn exec_into_a_user_namespace() {
    let h = Ctx::new("exec_into_a_user_namespace");
    let userns = |b: &mut Bundle| {
        b.user_namespace(200000);
    };
    if let Err(why) = host::user_namespaces() {
        skip(
            "exec_into_a_user_namespace",
            format!("{why}: only the refusal of a container with one is checked"),
        );
        let id = h.id();
        let mut b = h.bundle(&id);
        userns(&mut b);
        b.args(&["sleep", "1000"]);
        assert_create_refused(&h, &id, &b);
        return;
    }
    let (id, pid, _) = sleeper(&h, |b| {
        userns(b);
        let status = Command::new("chown")
            .args(["-R", "200000:200000"])
            .arg(b.rootfs())
            .status()
            .unwrap();
        assert!(status.success());
    });
    let out = exec(&h, &[&id, "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user; ps -o pid,args | grep '^ *1 '"]);
    let text = out.ok().stdout.clone();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"]
    );
    let want = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(lines[2], want.to_str().unwrap());
    assert_eq!(lines[3], "1 sleep 1000", "the init is visible: {text}");
    // On the host the exec'd process runs as the mapped uid.
    let epid = exec_detached(&h, &["-u", "7", &id, "sleep", "30"]);
    let st = fs::read_to_string(format!("/proc/{epid}/status")).unwrap();
    assert_eq!(
        status_field(&st, "Uid").unwrap().split_whitespace().next(),
        Some("200007")
    );
    end_exec(&h, epid);
    finish(&h, &id);
}

#[test]
fn exec_tty_over_a_console_socket_with_its_size() {
    let h = Ctx::new("exec_tty_over_a_console_socket_with_its_size");
    let (id, _, _) = sleeper(&h, |_| {});
    let p = h.dir.join("process.json");
    fs::write(
        &p,
        json!({
            "terminal": true,
            "consoleSize": { "height": 40, "width": 100 },
            "args": ["sh", "-c", "tty; stty size; [ -t 0 ] && echo stdin-is-tty"],
            "cwd": "/",
            "env": ["PATH=/bin:/usr/bin"]
        })
        .to_string(),
    )
    .unwrap();
    let sock_path = h.dir.join("console.sock");
    let sock = ConsoleSocket::listen(&sock_path);
    let epid = exec_detached(
        &h,
        &[
            "--console-socket",
            sock_path.to_str().unwrap(),
            "--process",
            p.to_str().unwrap(),
            &id,
        ],
    );
    let master = sock.receive(T).expect("pty master");
    let text = read_pty(master, T).replace('\r', "");
    end_exec(&h, epid);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{text:?}");
    assert_eq!(lines[1], "40 100", "{text:?}");
    assert_eq!(lines[2], "stdin-is-tty", "{text:?}");
    // A console socket without -d (or without a tty) is refused, as runc does.
    exec_fails(
        &h,
        &[
            "-t",
            "--console-socket",
            sock_path.to_str().unwrap(),
            &id,
            "true",
        ],
        "cannot use console socket",
    );
    finish(&h, &id);
}

#[test]
fn exec_tty_relayed_to_the_callers_terminal() {
    let h = Ctx::new("exec_tty_relayed_to_the_callers_terminal");
    let (id, _, _) = sleeper(&h, |_| {});
    let (master, slave) = open_pty(21, 66);
    let mut c = h.command(&[
        "exec",
        "-t",
        &id,
        "sh",
        "-c",
        "stty size; tty; read line; echo got:$line; exit 3",
    ]);
    c.stdin(Stdio::from(slave.try_clone().unwrap()));
    c.stdout(Stdio::from(slave.try_clone().unwrap()));
    c.stderr(Stdio::from(slave));
    let mut child = c.spawn().unwrap();
    // Type a line on "our" terminal: it must reach the container's.
    let mut w = fs::File::from(master.try_clone().unwrap());
    std::io::Write::write_all(&mut w, b"hello\r").unwrap();
    let status = wait_child(&mut child, T, "rt exec -t");
    let text = read_pty(master, Duration::from_millis(500)).replace('\r', "");
    assert_eq!(status.code(), Some(3), "{text:?}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines.contains(&"21 66"), "window size copied: {text:?}");
    assert!(lines.iter().any(|l| l.starts_with("/dev/pts/")), "{text:?}");
    assert!(lines.contains(&"got:hello"), "{text:?}");
    finish(&h, &id);
}

#[test]
fn exec_relays_signals_in_the_foreground() {
    let h = Ctx::new("exec_relays_signals_in_the_foreground");
    let (id, _, _) = sleeper(&h, |_| {});
    let out_path = h.dir.join("exec.out");
    let mut c = h.command(&[
        "exec",
        &id,
        "sh",
        "-c",
        "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    c.stdout(fs::File::create(&out_path).unwrap());
    let mut child = c.spawn().unwrap();
    poll(T, "the exec'd process to start", || {
        read_or_empty(&out_path).contains("ready").then_some(())
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_child(&mut child, T, "rt exec");
    assert_eq!(status.code(), Some(5));
    assert_eq!(read_or_empty(&out_path), "ready\ngot-term\n");
    finish(&h, &id);
}

#[test]
fn exec_preserve_fds() {
    let h = Ctx::new("exec_preserve_fds");
    let (id, _, _) = sleeper(&h, |_| {});
    let data = h.dir.join("data");
    fs::write(&data, "through-fd-3").unwrap();
    let script = format!(
        "exec 3<{} 4<{}; exec {} --root {} exec --preserve-fds 1 {id} sh -c 'cat <&3; cat <&4 || echo fd4-closed'",
        data.display(),
        data.display(),
        rt_bin().display(),
        h.root.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, "through-fd-3fd4-closed\n", "fd 3 kept, fd 4 closed");
    finish(&h, &id);
}

#[test]
fn exec_into_a_sub_cgroup() {
    let h = Ctx::new("exec_into_a_sub_cgroup");
    let (id, _, _) = sleeper(&h, |_| {});
    // v1: the pids hierarchy's sub-cgroup ("pids:sub"); pure v2: the one hierarchy ("sub").
    let dirs = cgroup_dirs(&id);
    let pids_dir = dirs.iter().find(|d| d.starts_with("/sys/fs/cgroup/pids"));
    let (base, arg) = match pids_dir {
        Some(d) => (d.clone(), "pids:sub".to_string()),
        None => (dirs[0].clone(), "sub".to_string()),
    };
    let sub = base.join("sub");
    fs::create_dir(&sub).unwrap();
    let epid = exec_detached(&h, &["--cgroup", &arg, &id, "sleep", "30"]);
    let procs = fs::read_to_string(sub.join("cgroup.procs")).unwrap();
    assert_eq!(
        procs.trim(),
        epid.to_string(),
        "the process is in the sub-cgroup"
    );
    end_exec(&h, epid);
    poll(T, "the sub-cgroup to empty", || {
        fs::read_to_string(sub.join("cgroup.procs"))
            .unwrap()
            .trim()
            .is_empty()
            .then_some(())
    });
    fs::remove_dir(&sub).unwrap();
    finish(&h, &id);
}

#[test]
fn exec_pidfd_socket_receives_a_pidfd_to_signal() {
    let h = Ctx::new("exec_pidfd_socket_receives_a_pidfd_to_signal");
    let (id, _, _) = sleeper(&h, |_| {});
    let sock_path = h.dir.join("pidfd.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let mut c = h.command(&[
        "exec",
        "--pidfd-socket",
        sock_path.to_str().unwrap(),
        &id,
        "sleep",
        "100",
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (pidfd, data) = recv_fd_and_data(conn.as_raw_fd()).unwrap();
    assert_eq!(data, b"pidfd");
    // The pidfd is the exec'd process: SIGKILL through it ends `rt exec` with 128+9.
    pidfd_signal(&pidfd, libc::SIGKILL).expect("pidfd_send_signal(SIGKILL)");
    assert_eq!(wait_child(&mut child, T, "rt exec").code(), Some(137));
    assert_eq!(
        h.status(&id).as_deref(),
        Some("running"),
        "only the exec'd process died"
    );
    finish(&h, &id);
}

#[test]
fn features_describes_what_rt_implements() {
    let h = Ctx::new("features_describes_what_rt_implements");
    let out = h.rt(&["features"]);
    let v: Value = serde_json::from_str(&out.ok().stdout).expect("features JSON");
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert!(v["ociVersionMax"].as_str().unwrap().starts_with("1."));
    assert_eq!(
        v["hooks"],
        json!([
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ])
    );
    let has = |ptr: &str, item: &str| {
        v.pointer(ptr)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == item))
    };
    for o in ["ro", "rbind", "nosuid", "rprivate", "strictatime"] {
        assert!(has("/mountOptions", o), "mount option {o}");
    }
    for o in ["idmap", "ridmap"] {
        assert!(has("/mountOptions", o), "mount option {o}");
    }
    for ns in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(has("/linux/namespaces", ns), "namespace {ns}");
    }
    assert!(has("/linux/capabilities", "CAP_SYS_ADMIN"));
    assert!(has("/linux/capabilities", "CAP_CHOWN"));
    assert_eq!(v["linux"]["cgroup"]["v1"], true);
    assert_eq!(v["linux"]["cgroup"]["v2"], true);
    assert_eq!(v["linux"]["cgroup"]["systemd"], true);
    assert_eq!(v["linux"]["cgroup"]["systemdUser"], false);
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    for a in [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        assert!(has("/linux/seccomp/actions", a), "action {a}");
    }
    assert!(has("/linux/seccomp/operators", "SCMP_CMP_MASKED_EQ"));
    #[cfg(target_arch = "x86_64")]
    assert!(has("/linux/seccomp/archs", "SCMP_ARCH_X86_64"));
    assert!(has(
        "/linux/seccomp/supportedFlags",
        "SECCOMP_FILTER_FLAG_LOG"
    ));
    let apparmor = std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists()
        && fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .unwrap()
            .trim()
            == "Y";
    assert_eq!(
        v["linux"]["apparmor"]["enabled"],
        apparmor && std::path::Path::new("/proc/self/attr/apparmor").exists()
    );
    assert_eq!(
        v["linux"]["selinux"]["enabled"],
        std::path::Path::new("/sys/fs/selinux/enforce").exists()
    );
    // intelRdt works where resctrl is mounted; it is refused elsewhere.
    let resctrl = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - resctrl "));
    assert_eq!(v["linux"]["intelRdt"]["enabled"], resctrl);
    assert_eq!(v["linux"]["intelRdt"]["schemata"], true);
    assert_eq!(v["linux"]["intelRdt"]["enableMonitoring"], true);
    assert_eq!(v["linux"]["netDevices"]["enabled"], true);
    for m in [
        "MPOL_DEFAULT",
        "MPOL_BIND",
        "MPOL_WEIGHTED_INTERLEAVE",
        "MPOL_LOCAL",
    ] {
        assert!(
            has("/linux/memoryPolicy/modes", m),
            "memory policy mode {m}"
        );
    }
    assert!(has("/linux/memoryPolicy/flags", "MPOL_F_STATIC_NODES"));
    for o in [
        "rro",
        "rnosuid",
        "rnoatime",
        "nosymfollow",
        "iversion",
        "defaults",
        "nofail",
    ] {
        assert!(has("/mountOptions", o), "mount option {o}");
    }
    // Idmapped bind mounts, wherever the kernel has mount_setattr.
    assert_eq!(
        v["linux"]["mountExtensions"]["idmap"]["enabled"],
        host::idmapped_mounts().is_ok()
    );
}

#[test]
fn exec_gets_the_seccomp_filter_rlimits_and_lsm_of_its_spec() {
    let h = Ctx::new("exec_gets_the_seccomp_filter_rlimits_and_lsm_of_its_spec");
    // Limits the runtime can set here (without CAP_SYS_RESOURCE: under our hard limit).
    let (soft, hard) = host::rlimit_within_reach(libc::RLIMIT_NOFILE, 1000, 2000);
    let (soft2, hard2) = host::rlimit_within_reach(libc::RLIMIT_NOFILE, 500, 600);
    let (id, _, _) = sleeper(&h, |b| {
        b.config["process"]["rlimits"] =
            json!([{ "type": "RLIMIT_NOFILE", "soft": soft, "hard": hard }]);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18 }
            ]
        });
    });
    // The container's seccomp filter applies to exec'd processes too (errno 18: EXDEV).
    let out = exec(
        &h,
        &[
            &id,
            "sh",
            "-c",
            "mkdir /tmp/d 2>&1; grep Seccomp: /proc/self/status",
        ],
    );
    let text = out.ok().stdout.clone();
    assert!(text.contains("Invalid cross-device link"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "filter mode: {text}");
    // The process spec's rlimits: the config's by default, a --process file's own.
    assert_eq!(
        exec(&h, &[&id, "sh", "-c", "ulimit -n; ulimit -H -n"])
            .ok()
            .stdout,
        format!("{soft}\n{hard}\n")
    );
    let p = h.dir.join("process.json");
    fs::write(
        &p,
        json!({
            "args": ["sh", "-c", "ulimit -n"],
            "cwd": "/",
            "rlimits": [{ "type": "RLIMIT_NOFILE", "soft": soft2, "hard": hard2 }]
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(
        exec(&h, &["--process", p.to_str().unwrap(), &id])
            .ok()
            .stdout,
        format!("{soft2}\n")
    );
    // An AppArmor profile or SELinux label that cannot be applied here fails the exec
    // (no LSM on this host, or no such profile/label on one that has it).
    exec_fails(&h, &["--apparmor", "rt-no-such-profile", &id, "true"], "");
    exec_fails(
        &h,
        &[
            "--process-label",
            "system_u:system_r:rt_no_such_t:s0",
            &id,
            "true",
        ],
        "",
    );
    finish(&h, &id);
}
