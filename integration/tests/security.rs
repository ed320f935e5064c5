//! The security surface: LSM labels are applied where the host runs that LSM and refused
//! with a clear error where it does not (never silently dropped).

use integration::*;
use serde_json::json;
use std::path::Path;

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
        && Path::new("/proc/self/attr/apparmor").exists()
}

#[test]
fn apparmor_profile() {
    let h = Ctx::new("apparmor_profile");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["cat", "/proc/self/attr/current"]);
    if apparmor_enabled() {
        // "unconfined" exists wherever AppArmor runs.
        b.config["process"]["apparmorProfile"] = json!("unconfined");
        assert!(h.run_ok(&id, &b).contains("unconfined"));
    } else {
        b.config["process"]["apparmorProfile"] = json!("docker-default");
        let out = h.create(&id, &b);
        out.expect_code(1);
        if !is_runc() {
            out.expect_error();
            assert!(
                out.stderr.contains("AppArmor is not enabled"),
                "{}",
                out.stderr
            );
        }
    }
    h.assert_nothing_left(&id);
}

#[test]
fn selinux_label_without_selinux_is_refused() {
    let h = Ctx::new("selinux_label_refused");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    if Path::new("/sys/fs/selinux/enforce").exists() {
        skip(
            "selinux_label_without_selinux_is_refused",
            "SELinux is enabled on this host; only the refusal of a label it does not know \
             is checked",
        );
        b.config["process"]["selinuxLabel"] = json!("system_u:system_r:rt_no_such_t:s0");
        assert_create_refused(&h, &id, &b);
        return;
    }
    b.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    let out = h.create(&id, &b);
    out.expect_error();
    assert!(
        out.stderr.to_lowercase().contains("selinux"),
        "{}",
        out.stderr
    );
    h.assert_nothing_left(&id);
}

/// runtime-spec 1.2 process attributes, seen from inside the container.
#[test]
fn io_priority_scheduler_personality_and_affinity() {
    if is_runc() {
        skip(
            "io_priority_scheduler_personality_and_affinity",
            "runc 1.1.5 predates these runtime-spec 1.2 fields",
        );
        return;
    }
    let h = Ctx::new("process_attrs_1_2");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_BE", "priority": 5 });
    b.config["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 3 });
    b.config["process"]["execCPUAffinity"] = json!({ "final": "0" });
    b.config["linux"]["personality"] = json!({ "domain": "LINUX32" });
    // /proc/self/stat: field 19 is nice, field 41 the policy (3 = SCHED_BATCH).
    b.sh(
        "ionice -p $$; taskset -p $$ | sed 's/.*: //'; cat /proc/self/personality; \
          cut -d' ' -f19,41 /proc/self/stat",
    );
    let out = h.run_ok(&id, &b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].contains("best-effort") && lines[0].contains('5'),
        "ionice: {out}"
    );
    assert_eq!(lines[1], "1", "affinity mask: {out}");
    assert_eq!(lines[2], "00000008", "personality: {out}");
    assert_eq!(lines[3], "3 3", "nice and policy: {out}");
    h.assert_nothing_left(&id);
}

#[test]
fn bad_process_attribute_fails_create_cleanly() {
    if is_runc() {
        skip(
            "bad_process_attribute_fails_create_cleanly",
            "runc 1.1.5 predates these runtime-spec 1.2 fields",
        );
        return;
    }
    let h = Ctx::new("bad_process_attribute");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_NOPE", "priority": 1 });
    b.args(&["true"]);
    let out = h.create(&id, &b);
    out.expect_error();
    assert!(
        out.stderr.contains("process.ioPriority.class"),
        "{}",
        out.stderr
    );
    h.assert_nothing_left(&id);
}

fn docker_profile() -> serde_json::Value {
    let p = workspace_dir().join("runtime/tests/data/docker-20.10-default.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Docker's default profile, as Docker renders it into config.json: a shell works, while
/// creating a user namespace (which needs no capability, so only seccomp can refuse it) is
/// refused with EPERM.
#[test]
fn docker_default_seccomp_profile() {
    let h = Ctx::new("docker_default_seccomp");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["seccomp"] = docker_profile();
    b.sh("echo shell-works; unshare -U true 2>&1; echo unshare=$?");
    let out = h.run_ok(&id, &b);
    assert!(out.starts_with("shell-works\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("unshare=1\n"), "{out}");
    h.assert_nothing_left(&id);
    // The same container without the profile may create the namespace, where the kernel
    // lets a process without CAP_SYS_ADMIN do so.
    if let Err(why) = host::unprivileged_user_namespaces() {
        skip(
            "docker_default_seccomp_profile",
            format!("{why}: the same unshare without the profile is not checked"),
        );
        return;
    }
    let id2 = h.id();
    let mut b2 = h.bundle(&id2);
    b2.sh("unshare -U true; echo unshare=$?");
    assert_eq!(h.run_ok(&id2, &b2), "unshare=0\n");
    h.assert_nothing_left(&id2);
}

/// A profile of our own: ERRNO with errnoRet and an argument condition, both with and
/// without NoNewPrivileges (the filter is installed at different points).
#[test]
fn seccomp_errno_and_args() {
    for nnp in [true, false] {
        let h = Ctx::new("seccomp_errno_and_args");
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18 },
                { "names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                  "args": [{ "index": 1, "value": 511, "op": "SCMP_CMP_EQ" }] },
                { "names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                  "args": [{ "index": 2, "value": 511, "op": "SCMP_CMP_EQ" }] }
            ]
        });
        // errno 18 is EXDEV; chmod 777 (511) is refused, chmod 755 is not.
        b.sh("mkdir /tmp/d 2>&1; touch /tmp/f; chmod 777 /tmp/f 2>&1; chmod 755 /tmp/f && echo chmod755-ok");
        let out = h.run_ok(&id, &b);
        assert!(
            out.contains("Invalid cross-device link"),
            "nnp={nnp}: {out}"
        );
        assert!(out.contains("Operation not permitted"), "nnp={nnp}: {out}");
        assert!(out.ends_with("chmod755-ok\n"), "nnp={nnp}: {out}");
        h.assert_nothing_left(&id);
    }
}

#[test]
fn bad_seccomp_profile_fails_create_cleanly() {
    let h = Ctx::new("bad_seccomp_profile");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_BOGUS" });
    b.args(&["true"]);
    let out = h.create(&id, &b);
    out.expect_code(1);
    if !is_runc() {
        out.expect_error();
        assert!(out.stderr.contains("defaultAction"), "{}", out.stderr);
    }
    h.assert_nothing_left(&id);
}

/// SCMP_ACT_NOTIFY: the listener fd and the container state reach listenerPath over
/// SCM_RIGHTS; a notified syscall waits for the agent (here: the agent closes the listener
/// without answering, so the syscall fails with ENOSYS).
#[test]
fn seccomp_notify_sends_listener() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;
    let h = Ctx::new("seccomp_notify");
    let id = h.id();
    let sock = h.dir.join("agent.sock");
    if !host::seccomp_action("user_notif") {
        // SECCOMP_RET_USER_NOTIF came with Linux 5.0.
        skip(
            "seccomp_notify_sends_listener",
            "this kernel has no seccomp user notification: only the refusal of \
             SCMP_ACT_NOTIFY is checked",
        );
        let mut b = h.bundle(&id);
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock.to_str().unwrap(),
            "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
        });
        b.args(&["true"]);
        assert_create_refused(&h, &id, &b);
        return;
    }
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || {
        let (stream, _) = listener.accept().map_err(|e| e.to_string())?;
        let (fd, data) = integration::console::recv_fd_and_data(stream.as_raw_fd())?;
        drop(fd); // no answer: the notified syscall gets ENOSYS
        Ok::<_, String>(String::from_utf8_lossy(&data).into_owned())
    });
    let mut b = h.bundle(&id);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "listenerMetadata": "hello-agent",
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
    });
    b.sh("mkdir /tmp/notified 2>&1; echo done");
    let out = h.run_ok(&id, &b);
    let sent = agent
        .join()
        .unwrap()
        .expect("the agent received the listener");
    let state: serde_json::Value = serde_json::from_str(&sent).expect("seccomp state JSON");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{sent}");
    assert_eq!(state["metadata"], json!("hello-agent"), "{sent}");
    assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{sent}");
    assert_eq!(state["state"]["id"], json!(id), "{sent}");
    assert!(out.contains("Function not implemented"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    h.assert_nothing_left(&id);
}
