//! runtime-spec 1.3 requirements that had no test of their own (the README's MUST table
//! names each test here by its id).

use integration::mountinfo::{self, find_mount};
use integration::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// runtime/config-frozen: changes to config.json after create do not affect the container.
#[test]
fn config_is_frozen_at_create() {
    let h = Ctx::new("config_is_frozen_at_create");
    let id = h.id();
    let mut b = h.bundle(&id);
    fs::create_dir_all(b.path_in_rootfs("/out")).unwrap();
    b.sh("echo original > /out/ran");
    h.create_ok(&id, &b);
    let late = h.dir.join("late-poststop");
    b.sh("echo changed > /out/ran");
    b.hook("poststop", &format!("touch {}", late.display()));
    b.save();
    h.start(&id).ok();
    h.wait_status(&id, "stopped", T);
    h.delete(&id).ok();
    assert_eq!(read_or_empty(&b.path_in_rootfs("/out/ran")), "original\n");
    assert!(!late.exists(), "a hook added after create ran");
    h.assert_nothing_left(&id);
}

/// runtime/op-needs-id: state, start, kill and delete without a container id are errors.
#[test]
fn operations_need_an_id() {
    let h = Ctx::new("operations_need_an_id");
    for op in ["state", "start", "kill", "delete"] {
        let out = h.rt(&[op]);
        assert_eq!(out.code(), 1, "`rt {op}`: {}", out.describe());
        assert!(!out.stderr.trim().is_empty(), "`rt {op}`: no error message");
    }
}

/// runtime/state-fields: the config's annotations are in the state.
#[test]
fn annotations_are_in_the_state() {
    let h = Ctx::new("annotations_are_in_the_state");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["annotations"] = json!({ "com.example.key": "value" });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    assert_eq!(
        h.state_ok(&id)["annotations"],
        json!({ "com.example.key": "value" })
    );
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
}

/// config/extensibility, config/annotations-unknown: unknown properties (top level and in
/// linux) and unknown annotation keys are ignored, never an error.
#[test]
fn unknown_properties_are_ignored() {
    let h = Ctx::new("unknown_properties_are_ignored");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["xFuture"] = json!({ "anything": [1, 2] });
    b.config["linux"]["xFuture"] = json!("value");
    b.config["annotations"] = json!({ "x.unknown": "1" });
    b.sh("echo ran");
    assert_eq!(h.run_ok(&id, &b), "ran\n");
    h.assert_nothing_left(&id);
}

/// config/mount-dest-relative: a relative destination is taken relative to /.
#[test]
fn relative_mount_destination() {
    let h = Ctx::new("relative_mount_destination");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.mount(json!({ "destination": "reldata", "type": "tmpfs", "source": "tmpfs" }));
    b.sh("grep -c ' /reldata ' /proc/self/mountinfo");
    assert_eq!(h.run_ok(&id, &b), "1\n");
    h.assert_nothing_left(&id);
}

/// config/mount-opt-propagation: propagation options on a mount.
#[test]
fn propagation_mount_options() {
    let h = Ctx::new("propagation_mount_options");
    let src = h.subdir("prop-src");
    for (opt, want) in [("rshared", "shared"), ("private", "private")] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.mount(json!({ "destination": "/p", "type": "bind", "source": src, "options": ["rbind", opt] }));
        b.sh("cat /proc/self/mountinfo");
        let out = h.run_ok(&id, &b);
        let mounts = mountinfo::parse(&out);
        let p = find_mount(&mounts, "/p");
        assert_eq!(p.propagation(), want, "{opt}: {p:?}");
        h.assert_nothing_left(&id);
    }
}

/// config/console-size-ignore: consoleSize without terminal is ignored.
#[test]
fn console_size_without_terminal() {
    let h = Ctx::new("console_size_without_terminal");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["consoleSize"] = json!({ "height": 10, "width": 20 });
    b.sh("[ -t 1 ] && echo tty || echo no-tty");
    assert_eq!(h.run_ok(&id, &b), "no-tty\n");
    h.assert_nothing_left(&id);
}

/// config/rlimits-unmappable: an rlimit type with no kernel interface is an error.
#[test]
fn unknown_rlimit_type_is_an_error() {
    let h = Ctx::new("unknown_rlimit_type_is_an_error");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["rlimits"] = json!([{ "type": "RLIMIT_FOO", "hard": 1, "soft": 1 }]);
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["RLIMIT_FOO"]);
}

/// config/oom-score-unset: without oomScoreAdj the runtime leaves oom_score_adj alone (the
/// container inherits the caller's).
#[test]
fn oom_score_adj_unset_is_inherited() {
    let h = Ctx::new("oom_score_adj_unset");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["cat", "/proc/self/oom_score_adj"]);
    b.save();
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(format!(
        "echo 123 > /proc/self/oom_score_adj && exec {} --root {} run --bundle {} {id}",
        rt_bin().display(),
        h.root.display(),
        b.dir.display()
    ));
    c.env(MARK_VAR, h.name.as_str());
    c.stdin(std::process::Stdio::null());
    let out = h.rt_cmd(c, &["run", "(oom_score_adj 123)"]);
    assert_eq!(out.stdout, "123\n", "{}", out.describe());
    h.assert_nothing_left(&id);
}

/// linux/ns-path-type: a path that is not a namespace of the given type is an error.
#[test]
fn namespace_path_of_another_type() {
    let h = Ctx::new("namespace_path_of_another_type");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.namespace("uts", Some("/proc/self/ns/net"));
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["uts"]);
}

/// linux/ns-duplicate: a namespace type listed twice is an error.
#[test]
fn duplicate_namespace_is_an_error() {
    let h = Ctx::new("duplicate_namespace_is_an_error");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "network" }));
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["network"]);
}

/// linux/userns-no-chown: the rootfs and bind sources keep their owners.
#[test]
fn user_namespace_chowns_nothing() {
    let h = Ctx::new("user_namespace_chowns_nothing");
    if !std::path::Path::new("/proc/self/ns/user").exists() {
        skip(&h.name, "this kernel has no user namespaces");
        return;
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    let src = h.subdir("userns-src");
    b.bind_host_dir(&src, "/data", false);
    // The container's root (host uid 100000) cannot make it in a rootfs root owns.
    fs::create_dir_all(b.path_in_rootfs("/data")).unwrap();
    // Shifted: a chown to realize the mapping would make the host's root files 100000's.
    b.user_namespace(100000);
    b.args(&["true"]);
    let owners = |p: &std::path::Path| {
        let m = fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    let before = (
        owners(&b.rootfs()),
        owners(&src),
        owners(&b.path_in_rootfs("/bin/busybox")),
    );
    h.run_ok(&id, &b);
    let after = (
        owners(&b.rootfs()),
        owners(&src),
        owners(&b.path_in_rootfs("/bin/busybox")),
    );
    assert_eq!(before, after);
    h.assert_nothing_left(&id);
}

/// linux/dev-console: with a terminal, /dev/console is the container's pty.
#[test]
fn dev_console_is_the_terminal() {
    use integration::console::{read_pty, ConsoleSocket};
    let h = Ctx::new("dev_console_is_the_terminal");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["terminal"] = json!(true);
    b.sh("[ /dev/console -ef \"$(tty)\" ] && echo console-is-tty; stat -c %t /dev/console");
    b.save();
    let sock_path = h.dir.join("console.sock");
    let sock = ConsoleSocket::listen(&sock_path);
    let (bd, sp) = (b.dir.display().to_string(), sock_path.display().to_string());
    h.rt(&["create", "--bundle", &bd, "--console-socket", &sp, &id])
        .ok();
    h.record_pid(&id);
    let master = sock.receive(T).expect("pty master");
    h.start(&id).ok();
    let text = read_pty(master, T).replace('\r', "");
    // The pty's major (136, 0x88, shown in hex by stat %t).
    assert_eq!(text, "console-is-tty\n88\n");
    h.wait_status(&id, "stopped", T);
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
}

/// linux/memory-check-before-update: with checkBeforeUpdate, a limit below the current
/// usage is rejected, and the limit stays.
#[test]
fn memory_check_before_update() {
    let h = Ctx::new("memory_check_before_update");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "memory": { "limit": 268435456 } });
    // 24 MiB of tmpfs pages charged to the container's memory cgroup.
    b.sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; echo filled; sleep 1000");
    h.run_detached(&id, &b).ok();
    poll(T, "the container to fill /dev/shm", || {
        fs::metadata(b.path_in_rootfs("/dev/shm/fill")).ok();
        let usage = cgroup_dirs(&id)
            .into_iter()
            .find(|d| d.join("memory.usage_in_bytes").exists() || d.join("memory.current").exists())
            .and_then(|d| {
                fs::read_to_string(d.join("memory.usage_in_bytes"))
                    .or_else(|_| fs::read_to_string(d.join("memory.current")))
                    .ok()
            })?
            .trim()
            .parse::<u64>()
            .ok()?;
        (usage > 20 << 20).then_some(())
    });
    let res = h.dir.join("res.json");
    fs::write(
        &res,
        r#"{"memory":{"limit":8388608,"checkBeforeUpdate":true}}"#,
    )
    .unwrap();
    let out = h.rt(&["update", "--resources", res.to_str().unwrap(), &id]);
    out.expect_error();
    assert!(
        out.stderr.contains("checkBeforeUpdate"),
        "{}",
        out.describe()
    );
    let limit = cgroup_dirs(&id)
        .into_iter()
        .find_map(|d| {
            fs::read_to_string(d.join("memory.limit_in_bytes"))
                .or_else(|_| fs::read_to_string(d.join("memory.max")))
                .ok()
        })
        .unwrap();
    assert_eq!(limit.trim(), "268435456");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// linux/unified-missing-controller: a linux.resources.unified key for a controller that
/// is not there is an error.
#[test]
fn unified_key_for_a_missing_controller() {
    let h = Ctx::new("unified_missing_controller");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "unified": { "rtnosuchcontroller.max": "1" } });
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["rtnosuchcontroller.max"]);
}

/// linux/seccomp-listener-fail: failing to send to listenerPath is an error.
#[test]
fn seccomp_listener_path_missing() {
    let h = Ctx::new("seccomp_listener_path_missing");
    if !read_or_empty(std::path::Path::new(
        "/proc/sys/kernel/seccomp/actions_avail",
    ))
    .contains("user_notif")
    {
        skip(&h.name, "this kernel has no seccomp user notification");
        return;
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": h.dir.join("no-such.sock"),
        "syscalls": [{ "names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
    });
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["no-such.sock"]);
}
