//! Rootless: `rt` run by an ordinary user that each test creates (and removes), with the
//! config `rt spec --rootless` writes, as runc's users do.

use integration::user::TestUser;
use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// A user made for the test and the test's context (dropped first: its containers go
/// before the user does), or None, after saying why, when an unprivileged process may
/// not make a user namespace here.
fn setup(test: &str) -> Option<(TestUser, Ctx)> {
    if let Err(why) = host::unprivileged_user_namespaces() {
        skip(test, why);
        return None;
    }
    Some((TestUser::new(), Ctx::new(test)))
}

/// A bundle owned by `user`, its config written by `rt spec --rootless` run as the user,
/// then given `process.args` = `sh -c script`, no terminal and the test's marker.
fn rootless_bundle(h: &Ctx, user: &TestUser, id: &str, script: &str) -> Bundle {
    let mut b = h.bundle(id);
    user.give(&b.dir);
    let dir = b.dir.display().to_string();
    user.sh(h, &format!("cd {dir} && $RT spec --rootless")).ok();
    let text = fs::read_to_string(b.dir.join("config.json")).expect("spec wrote config.json");
    b.config = serde_json::from_str(&text).expect("spec --rootless is JSON");
    b.config["process"]["terminal"] = json!(false);
    b.sh(script);
    b.env(&format!("{MARK_VAR}={id}"));
    b
}

fn create_as(user: &TestUser, h: &Ctx, id: &str, b: &Bundle) -> Output {
    b.save();
    user.rt(h, &["create", "--bundle", &b.dir.display().to_string(), id])
}

fn run_as(user: &TestUser, h: &Ctx, id: &str, b: &Bundle) -> Output {
    b.save();
    user.rt(h, &["run", "--bundle", &b.dir.display().to_string(), id])
}

#[test]
fn spec_rootless_maps_the_caller_and_asks_for_nothing_privileged() {
    let Some((user, h)) = setup("spec_rootless_maps_the_caller_and_asks_for_nothing_privileged")
    else {
        return;
    };
    let id = h.id();
    let b = rootless_bundle(&h, &user, &id, "true");
    let linux = &b.config["linux"];
    let types: Vec<&str> = linux["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(types.contains(&"user"), "{types:?}");
    assert!(!types.contains(&"network"), "{types:?}");
    assert_eq!(
        linux["uidMappings"],
        json!([{ "containerID": 0, "hostID": user.uid, "size": 1 }])
    );
    assert_eq!(
        linux["gidMappings"],
        json!([{ "containerID": 0, "hostID": user.gid, "size": 1 }])
    );
    assert!(linux.get("resources").is_none(), "{linux}");
    let text = serde_json::to_string(&b.config["mounts"]).unwrap();
    assert!(!text.contains("gid=5"), "{text}");
}

#[test]
fn rootless_container_runs_as_the_user_with_usual_pieces() {
    let Some((user, h)) = setup("rootless_container_runs_as_the_user_with_usual_pieces") else {
        return;
    };
    let id = h.id();
    // A file of the default maskedPaths that this kernel has (they depend on its build).
    let masked = ["/proc/timer_list", "/proc/keys", "/proc/kcore"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a kernel with none of /proc/timer_list, keys, kcore");
    let b = rootless_bundle(
        &h,
        &user,
        &id,
        &format!(
            "id -u; cat /proc/self/uid_map; \
             grep ' /sys ' /proc/self/mountinfo | head -1; \
             stat -c 'null %t,%T' /dev/null; \
             echo masked $(wc -c < {masked}); \
             (echo h > /proc/sysrq-trigger) 2>/dev/null && echo sysrq written || echo sysrq refused"
        ),
    );
    let out = run_as(&user, &h, &id, &b);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "0", "{}", out.describe());
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &user.uid.to_string(), "1"], "{}", out.describe());
    // /sys cannot be mounted without a network namespace of the user's: a read-only bind.
    assert!(
        lines[2].contains(" ro,") || lines[2].contains(" ro "),
        "{}",
        out.describe()
    );
    // Device nodes are the host's, bind-mounted (no mknod without privilege).
    assert_eq!(lines[3], "null 1,3", "{}", out.describe());
    assert_eq!(lines[4], "masked 0", "{}", out.describe());
    assert_eq!(lines[5], "sysrq refused", "{}", out.describe());
    assert!(!h.root.join(&id).exists(), "run removes its state");
}

#[test]
fn state_goes_to_xdg_runtime_dir_and_users_are_apart() {
    let Some((user, h)) = setup("state_goes_to_xdg_runtime_dir_and_users_are_apart") else {
        return;
    };
    let other = TestUser::new();
    let id = h.id();
    let b = rootless_bundle(&h, &user, &id, "sleep 100");
    b.save();
    let dir = b.dir.display();
    // No --root: $XDG_RUNTIME_DIR/rt.
    user.sh(&h, &format!("$RT create --bundle {dir} {id}")).ok();
    let state = user.runtime_dir.join("rt").join(&id).join("state.json");
    let cleanup = |u: &TestUser| u.sh(&h, &format!("$RT delete --force {id}"));
    assert!(state.exists(), "{} missing", state.display());
    let listed = user.sh(&h, "$RT list -q");
    listed.ok();
    assert_eq!(listed.lines(), [id.as_str()], "{}", listed.describe());
    // Another user sees none of it: their own default root is empty, and the first
    // user's is closed to them.
    let theirs = other.sh(&h, "$RT list -q");
    theirs.ok();
    assert!(theirs.stdout.trim().is_empty(), "{}", theirs.describe());
    let root = user.runtime_dir.join("rt");
    let peek = other.sh(&h, &format!("$RT --root {} state {id}", root.display()));
    assert!(!peek.success(), "{}", peek.describe());
    assert_eq!(peek.lines().len(), 0, "{}", peek.describe());
    let kill = other.sh(&h, &format!("$RT --root {} kill {id} KILL", root.display()));
    assert!(!kill.success(), "{}", kill.describe());
    cleanup(&user).ok();
    assert!(!state.exists());
}

#[test]
fn rootless_lifecycle_exec_ps_kill_delete() {
    let Some((user, h)) = setup("rootless_lifecycle_exec_ps_kill_delete") else {
        return;
    };
    let id = h.id();
    let b = rootless_bundle(&h, &user, &id, "sleep 100 & exec sleep 101");
    create_as(&user, &h, &id, &b).ok();
    let st: Value = serde_json::from_str(&user.rt(&h, &["state", &id]).ok().stdout).unwrap();
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap() as i32;
    h.track_pid(pid);
    user.rt(&h, &["start", &id]).ok();
    let exec = user.rt(&h, &["exec", &id, "sh", "-c", "id -u; echo in"]);
    exec.ok();
    assert_eq!(exec.lines(), ["0", "in"], "{}", exec.describe());
    // No cgroup: ps finds the container's processes by its pid namespace.
    let ps = poll(Duration::from_secs(5), "two processes in ps", || {
        let out = user.rt(&h, &["ps", "--format", "json", &id]);
        let pids: Vec<i32> = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
        (pids.len() == 2).then_some(pids)
    });
    assert!(ps.contains(&pid), "{ps:?} lacks init {pid}");
    let pause = user.rt(&h, &["pause", &id]);
    if rt_has_delegated_cgroup(&h, &id) {
        pause.ok();
        user.rt(&h, &["resume", &id]).ok();
    } else {
        pause.expect_error();
        assert!(pause.stderr.contains("no cgroup"), "{}", pause.describe());
    }
    // criu needs the host's root: refused before anything is done.
    let img = h.dir.join("checkpoint-image");
    let ck = user.rt(
        &h,
        &[
            "checkpoint",
            "--image-path",
            &img.display().to_string(),
            &id,
        ],
    );
    ck.expect_error();
    assert!(
        ck.stderr.contains("checkpoint: not possible without root"),
        "{}",
        ck.describe()
    );
    assert!(!img.exists(), "checkpoint made {}", img.display());
    let st = user.rt(&h, &["state", &id]);
    assert!(st.stdout.contains("\"running\""), "{}", st.describe());
    user.rt(&h, &["kill", "--all", &id, "KILL"]).ok();
    poll(Duration::from_secs(5), "stopped", || {
        let out = user.rt(&h, &["state", &id]);
        out.stdout.contains("\"stopped\"").then_some(())
    });
    user.rt(&h, &["delete", &id]).ok();
    assert!(!h.root.join(&id).exists());
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || !is_alive(pid));
}

fn is_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Whether the container got a cgroup (a v2 host with a delegated subtree).
fn rt_has_delegated_cgroup(h: &Ctx, id: &str) -> bool {
    let state = fs::read_to_string(h.root.join(id).join("state.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&state).unwrap_or(Value::Null);
    v["cgroup"]["dirs"]
        .as_array()
        .is_some_and(|d| !d.is_empty())
}

#[test]
fn rootless_run_detached_with_console_socket() {
    let Some((user, h)) = setup("rootless_run_detached_with_console_socket") else {
        return;
    };
    let id = h.id();
    let mut b = rootless_bundle(&h, &user, &id, "tty; echo hello-tty; sleep 100");
    b.config["process"]["terminal"] = json!(true);
    let sock_dir = h.subdir("sock");
    let sock = sock_dir.join("console.sock");
    let console = integration::console::ConsoleSocket::listen(&sock);
    user.give(&sock_dir);
    b.save();
    let out = user.rt(
        &h,
        &[
            "run",
            "-d",
            "--console-socket",
            &sock.display().to_string(),
            "--bundle",
            &b.dir.display().to_string(),
            &id,
        ],
    );
    out.ok();
    let master = console
        .receive(Duration::from_secs(10))
        .expect("pty master");
    let text = integration::console::read_pty(master, Duration::from_secs(3));
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("hello-tty"), "{text:?}");
    user.rt(&h, &["delete", "--force", &id]).ok();
}

#[test]
fn subordinate_ids_are_mapped_with_newuidmap() {
    let Some((user, h)) = setup("subordinate_ids_are_mapped_with_newuidmap") else {
        return;
    };
    let id = h.id();
    let shared = h.subdir("shared");
    user.give(&shared);
    let mut b = rootless_bundle(
        &h,
        &user,
        &id,
        "cat /proc/self/uid_map /proc/self/setgroups; id -G; touch /shared/by-1000; \
         chown 1000:1000 /shared/by-1000; echo done",
    );
    let map = json!([
        { "containerID": 0, "hostID": user.uid, "size": 1 },
        { "containerID": 1, "hostID": user.subid_start, "size": 65536 }
    ]);
    let gmap = json!([
        { "containerID": 0, "hostID": user.gid, "size": 1 },
        { "containerID": 1, "hostID": user.subid_start, "size": 65536 }
    ]);
    b.config["linux"]["uidMappings"] = map;
    b.config["linux"]["gidMappings"] = gmap;
    b.config["process"]["user"] = json!({ "uid": 0, "gid": 0, "additionalGids": [10] });
    let caps = json!(["CAP_CHOWN"]);
    b.config["process"]["capabilities"] =
        json!({ "bounding": caps, "effective": caps, "permitted": caps });
    b.bind_host_dir(&shared, "/shared", false);
    let out = run_as(&user, &h, &id, &b);
    out.ok();
    let lines = out.lines();
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(lines[0]), ["0", &user.uid.to_string(), "1"]);
    assert_eq!(
        words(lines[1]),
        ["1", &user.subid_start.to_string(), "65536"]
    );
    // newgidmap leaves setgroups allowed: the additional group is set.
    assert_eq!(lines[2], "allow", "{}", out.describe());
    assert_eq!(words(lines[3]), ["0", "10"], "{}", out.describe());
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(shared.join("by-1000")).unwrap();
    assert_eq!(meta.uid(), user.subid_start + 999);
    assert_eq!(meta.gid(), user.subid_start + 999);

    // Without newuidmap on PATH: one clear line, and nothing left.
    let id2 = h.id();
    b.config["process"]["env"] = json!(["PATH=/bin"]);
    b.save();
    let dir = b.dir.display();
    let root = h.root.display();
    let out = user.sh(
        &h,
        &format!("PATH=/nonexistent exec $RT --root {root} run --bundle {dir} {id2}"),
    );
    out.expect_error();
    assert!(
        out.stderr.contains("linux.uidMappings") && out.stderr.contains("newuidmap"),
        "{}",
        out.describe()
    );
    assert!(!h.root.join(&id2).exists(), "state left behind");
}

#[test]
fn resources_are_ignored_with_a_warning_without_a_delegated_cgroup() {
    let Some((user, h)) = setup("resources_are_ignored_with_a_warning_without_a_delegated_cgroup")
    else {
        return;
    };
    let id = h.id();
    let mut b = rootless_bundle(&h, &user, &id, "echo ran");
    b.config["linux"]["resources"] =
        json!({ "pids": { "limit": 64 }, "memory": { "limit": 67108864 } });
    b.config["linux"]["cgroupsPath"] = json!(format!("/rt-test/{id}"));
    let out = run_as(&user, &h, &id, &b);
    out.ok();
    assert_eq!(out.lines(), ["ran"], "{}", out.describe());
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("level=warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.describe());
    assert!(
        warnings[0].contains("linux.resources ignored"),
        "{}",
        out.describe()
    );
    for h in host::cgroup_hierarchies() {
        let dir = h.mountpoint.join("rt-test").join(&id);
        assert!(!dir.exists(), "{} was made", dir.display());
    }
}

#[test]
fn what_needs_privilege_fails_clearly_and_leaves_nothing() {
    let Some((user, h)) = setup("what_needs_privilege_fails_clearly_and_leaves_nothing") else {
        return;
    };
    let mounts_before = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    // A filesystem only the host's root may mount.
    let id = h.id();
    let mut b = rootless_bundle(&h, &user, &id, "true");
    b.mount(json!({ "destination": "/mnt", "type": "debugfs", "source": "debugfs" }));
    let out = run_as(&user, &h, &id, &b);
    out.expect_error();
    assert!(
        out.stderr.contains("/mnt") && out.stderr.contains("EPERM"),
        "{}",
        out.describe()
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert!(!h.root.join(&id).exists());
    // A device node the host does not have: it cannot be made, only bound from the host.
    let id = h.id();
    let mut b = rootless_bundle(&h, &user, &id, "true");
    b.config["linux"]["devices"] = json!([
        { "path": "/dev/rt-no-such", "type": "c", "major": 1, "minor": 3, "fileMode": 438 }
    ]);
    let out = run_as(&user, &h, &id, &b);
    out.expect_error();
    assert!(
        out.stderr.contains("linux.devices: /dev/rt-no-such"),
        "{}",
        out.describe()
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert!(!h.root.join(&id).exists());
    // An idmapped bind: only the host's root may idmap a host filesystem.
    let id = h.id();
    let mut b = rootless_bundle(&h, &user, &id, "true");
    let vol = user.home.join("idmap-vol");
    fs::create_dir_all(&vol).unwrap();
    user.give(&vol);
    b.mount(
        json!({ "destination": "/mnt", "type": "bind", "source": vol,
                    "options": ["rbind", "idmap"] }),
    );
    let out = run_as(&user, &h, &id, &b);
    out.expect_error();
    assert!(
        out.stderr
            .contains("(/mnt): idmapped mounts need rt to run as the host's root"),
        "{}",
        out.describe()
    );
    assert!(!h.root.join(&id).exists());
    // Only the user's own gid mapped: the kernel denies setgroups in the namespace, so
    // extra groups cannot be set (newgidmap would allow them).
    let id = h.id();
    let mut b = rootless_bundle(&h, &user, &id, "true");
    b.config["process"]["user"] = json!({ "uid": 0, "gid": 0, "additionalGids": [0] });
    let out = run_as(&user, &h, &id, &b);
    out.expect_error();
    assert!(
        out.stderr.contains("process.user.additionalGids") && out.stderr.contains("newgidmap"),
        "{}",
        out.describe()
    );
    assert!(!h.root.join(&id).exists());
    // The systemd driver would need the user's own manager: refused before anything.
    let id = h.id();
    let b = rootless_bundle(&h, &user, &id, "true");
    b.save();
    let dir = b.dir.display().to_string();
    let out = user.rt(&h, &["--systemd-cgroup", "run", "--bundle", &dir, &id]);
    out.expect_error();
    assert!(
        out.stderr
            .contains("--systemd-cgroup: a container of a user other than root"),
        "{}",
        out.describe()
    );
    assert!(!h.root.join(&id).exists());
    let listed = user.rt(&h, &["list", "-q"]);
    assert!(listed.stdout.trim().is_empty(), "{}", listed.describe());
    let mounts_after = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(mounts_before, mounts_after);
}

/// An ICMP echo over a datagram socket (what `ping` uses without CAP_NET_RAW), built
/// static from C so that it runs in the busybox rootfs. Prints "pong" or the errno.
const PINGER: &str = r#"
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <arpa/inet.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (s < 0) { printf("socket: %s\n", strerror(errno)); return 1; }
    struct timeval tv = { 2, 0 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    struct icmphdr req = { .type = ICMP_ECHO };
    req.un.echo.sequence = htons(1);
    if (sendto(s, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        printf("sendto: %s\n", strerror(errno)); return 1;
    }
    char buf[128];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < (ssize_t)sizeof req) { printf("recv: %s\n", strerror(errno)); return 1; }
    printf(((struct icmphdr *)buf)->type == ICMP_ECHOREPLY ? "pong\n" : "other\n");
    return 0;
}
"#;

#[test]
fn ping_without_capabilities_through_ping_group_range() {
    let Some((user, h)) = setup("ping_without_capabilities_through_ping_group_range") else {
        return;
    };
    let id = h.id();
    let mut b = rootless_bundle(
        &h,
        &user,
        &id,
        "/pinger; cat /proc/sys/net/ipv4/ping_group_range",
    );
    let src = h.dir.join("pinger.c");
    fs::write(&src, PINGER).unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(b.path_in_rootfs("/pinger"))
        .arg(&src)
        .output()
        .expect("spawn cc (the Rust toolchain's linker)");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    user.give(&b.path_in_rootfs("/pinger"));
    // Its own network namespace (with only lo), owned by the user's namespace: the
    // sysctl is the container's to set. Without capabilities, as gid 0.
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "network" }));
    b.config["process"]["capabilities"] = json!({});
    b.config["linux"]["sysctl"] = json!({ "net.ipv4.ping_group_range": "0 0" });
    let out = run_as(&user, &h, &id, &b);
    out.ok();
    assert_eq!(out.lines(), ["pong", "0\t0"], "{}", out.describe());
    // Without the sysctl the same program is refused.
    let id = h.id();
    b.config["linux"]["sysctl"] = json!({});
    let out = run_as(&user, &h, &id, &b);
    assert!(out.stdout.starts_with("socket: "), "{}", out.describe());
}

/// podman rootless (its default mode) with `--runtime` rt: its own storage in the user's
/// home, cgroupfs (no systemd here) or none, run/exec/stop, a volume, `--userns=keep-id`.
/// podman runs rt as root of a user namespace it made from the user's subordinate ids.
#[test]
fn podman_rootless_runs_rt() {
    let Some((user, h)) = setup("podman_rootless_runs_rt") else {
        return;
    };
    let tar = h.dir.join("rootfs.tar");
    rootfs_tarball(&tar);
    let vol = user.home.join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("f"), "from-host\n").unwrap();
    user.give(&vol);
    let podman =
        "podman --runtime $RT --cgroup-manager cgroupfs --events-backend file --storage-driver vfs"
            .to_string();
    let run = "--network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096";
    let img = "localhost/busybox:rt";
    let sh = |script: &str| user.sh(&h, &format!("P=\"{podman}\"; {script}"));
    sh(&format!("$P import {} {img}", tar.display())).ok();

    let out = sh(&format!(
        "$P run --rm {run} {img} sh -c 'id -u; cat /proc/self/uid_map'"
    ));
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[0], "0", "{}", out.describe());
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(lines[1]), ["0", &user.uid.to_string(), "1"]);
    assert_eq!(
        words(lines[2]),
        ["1", &user.subid_start.to_string(), "65536"]
    );

    sh(&format!(
        "$P run -d --name c1 {run} -v {}:/vol {img} sleep 100",
        vol.display()
    ))
    .ok();
    let runtime = sh("$P inspect c1 --format '{{.OCIRuntime}}'");
    assert_eq!(
        runtime.stdout.trim(),
        rt_bin().display().to_string(),
        "{}",
        runtime.describe()
    );
    let exec = sh("$P exec c1 sh -c 'cat /vol/f; echo w > /vol/w; echo exec-ok'");
    exec.ok();
    assert_eq!(
        exec.lines(),
        ["from-host", "exec-ok"],
        "{}",
        exec.describe()
    );
    use std::os::unix::fs::MetadataExt;
    // The container's root is the user: what it writes is the user's.
    assert_eq!(fs::metadata(vol.join("w")).unwrap().uid(), user.uid);
    let ps = sh("$P ps --format '{{.Names}} {{.Status}}'");
    assert!(ps.stdout.starts_with("c1 Up"), "{}", ps.describe());
    sh("$P stop -t 1 c1").ok();
    let state = sh("$P inspect c1 --format '{{.State.Status}}'");
    assert_eq!(state.stdout.trim(), "exited", "{}", state.describe());
    sh("$P rm c1").ok();

    // keep-id: the user is itself inside, with podman's three-range map.
    let out = sh(&format!(
        "$P run --rm {run} --userns=keep-id -v {}:/vol {img} sh -c 'id -u; stat -c %u /vol/f'",
        vol.display()
    ));
    out.ok();
    let uid = user.uid.to_string();
    assert_eq!(
        out.lines(),
        [uid.as_str(), uid.as_str()],
        "{}",
        out.describe()
    );
}
