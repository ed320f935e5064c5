//! The spec's corners (issue 14): valid, ordinary configs and client habits that rt got
//! wrong, each with the behaviour the spec (or runc, where it is silent) asks for.

use integration::mountinfo::{self, find_mount};
use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn data(name: &str) -> Value {
    let p = workspace_dir().join("runtime/tests/data").join(name);
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// Profiles written before 2020 deny close_range and every later call; a tight allow-list
/// denies all but what busybox `sh -c` needs. rt must make no call they may deny after
/// installing them: with NoNewPrivileges only execve follows the filter.
#[test]
fn older_and_tight_seccomp_profiles_start() {
    let h = Ctx::new("older_and_tight_seccomp_profiles");
    let cases = [
        ("docker-17.06-like.json", true),
        ("docker-17.06-like.json", false),
        ("docker-19.03-like.json", true),
        ("docker-19.03-like.json", false),
        ("busybox-sh-allowlist.json", true),
    ];
    for (profile, nnp) in cases {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["linux"]["seccomp"] = data(profile);
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.sh("echo ok");
        let out = h.run(&id, &b);
        assert_eq!(
            (out.code(), out.stdout.as_str()),
            (0, "ok\n"),
            "{profile}, noNewPrivileges {nnp}: {}",
            out.describe()
        );
        h.assert_nothing_left(&id);
    }
}

/// The filter is really in place: the tight profile denies what it does not list.
#[test]
fn tight_seccomp_profile_denies_the_rest() {
    let h = Ctx::new("tight_seccomp_profile_denies");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["seccomp"] = data("busybox-sh-allowlist.json");
    // chdir is not on the list (nor fork: a shell builtin it must be).
    b.sh("cd /tmp && echo moved || echo denied");
    let out = h.run(&id, &b);
    assert_eq!(out.stdout, "denied\n", "{}", out.describe());
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.describe()
    );
    h.assert_nothing_left(&id);
}

/// `rt exec -e NAME=VALUE` for a NAME the container's process.env has: the command
/// line's value wins, once.
#[test]
fn exec_env_overrides_process_env() {
    let h = Ctx::new("exec_env_overrides_process_env");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.env("FOO=from-spec").env("KEEP=kept");
    b.args(&["sleep", "1000"]);
    h.run_detached(&id, &b).ok();
    // `env` itself, not through a shell: sh would keep the last of two FOOs and hide the
    // duplicate (getenv in most programs finds the first).
    let out = h.rt(&["exec", "-e", "FOO=from-cli", &id, "env"]);
    let env = out.ok().stdout.clone();
    let foo: Vec<&str> = env.lines().filter(|l| l.starts_with("FOO=")).collect();
    assert_eq!(foo, ["FOO=from-cli"], "{env}");
    assert!(env.lines().any(|l| l == "KEEP=kept"), "{env}");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// A startContainer hook without `env` sees the container process's environment (it runs
/// just before the program, in the container; runc runs it from its init after setting
/// process.env); one with `env` sees exactly that list.
#[test]
fn start_container_hook_environment() {
    let h = Ctx::new("start_container_hook_environment");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.env("FOO=bar");
    fs::create_dir_all(b.path_in_rootfs("/hooklog")).unwrap();
    // `ls` needs PATH: an empty environment made this hook fail, and the container with it.
    b.hook(
        "startContainer",
        "echo \"$FOO\" > /hooklog/inherited; ls / >/dev/null && echo found-ls >> /hooklog/inherited",
    );
    b.hook_value(
        "startContainer",
        json!({ "path": "/bin/busybox", "args": ["sh", "-c", "/bin/busybox env > /hooklog/own"],
                "env": ["ONLY=this"] }),
    );
    b.args(&["true"]);
    h.run_ok(&id, &b);
    assert_eq!(
        read_or_empty(&b.path_in_rootfs("/hooklog/inherited")),
        "bar\nfound-ls\n"
    );
    let own = read_or_empty(&b.path_in_rootfs("/hooklog/own"));
    assert!(own.lines().any(|l| l == "ONLY=this"), "{own}");
    // busybox sh adds PWD, SHLVL and a default PATH of its own; nothing of process.env.
    assert!(!own.contains("FOO="), "{own}");
    h.assert_nothing_left(&id);
}

/// A FIFO (type `p`) in linux.devices and in linux.resources.devices: the node is made;
/// the device cgroup, which knows only b and c, gets no rule for it (runc drops these).
#[test]
fn fifo_devices_need_no_cgroup_rule() {
    let h = Ctx::new("fifo_devices_need_no_cgroup_rule");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["devices"] =
        json!([{ "path": "/dev/rt-fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 438 }]);
    b.config["linux"]["resources"] = json!({ "devices": [
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "p", "major": 0, "minor": 0, "access": "rwm" }
    ]});
    b.sh("[ -p /dev/rt-fifo ] && echo fifo");
    assert_eq!(h.run_ok(&id, &b), "fifo\n");
    h.assert_nothing_left(&id);
}

/// /proc or /sys in the rootfs as a symlink (to another directory of the rootfs, or a
/// loop): refused as runc does since CVE-2019-19921, naming the path, nothing left.
#[test]
fn proc_or_sys_symlink_is_refused() {
    let h = Ctx::new("proc_or_sys_symlink_is_refused");
    for (dir, target, fstype) in [
        ("proc", "tmp", "proc"),
        ("proc", "proc", "proc"),
        ("sys", "proc", "sysfs"),
    ] {
        let id = h.id();
        let mut b = h.bundle(&id);
        let p = b.path_in_rootfs(&format!("/{dir}"));
        fs::remove_dir_all(&p).unwrap();
        std::os::unix::fs::symlink(target, &p).unwrap();
        b.args(&["true"]);
        let what = format!("{fstype} must be mounted on an ordinary directory");
        let path = format!("/{dir} in rootfs");
        assert_create_fails_with(&h, &id, &b, &[&what, &path]);
    }
}

/// rootfsPropagation rshared where / is shared and the rootfs is itself a mount point
/// under a shared parent (containerd's overlay, a Kubernetes pod with a Bidirectional
/// volume): pivot_root used to fail with EINVAL. A mount made on the host under the
/// volume's source appears in the container, and one made in the container appears on
/// the host. In a throwaway mount namespace whose / is made shared.
#[test]
fn rshared_rootfs_on_a_shared_mount_point() {
    let h = Ctx::new("rshared_rootfs_on_a_shared_mount");
    let id = h.id();
    let mut b = h.bundle(&id);
    let top = h.subdir("shared");
    let vol = h.subdir("vol");
    b.config["root"]["path"] = json!(top.join("rootfs"));
    b.config["linux"]["rootfsPropagation"] = json!("rshared");
    b.mount(
        json!({ "destination": "/vol", "type": "bind", "source": vol,
                    "options": ["rbind", "rshared"] }),
    );
    let caps = ["CAP_SYS_ADMIN", "CAP_KILL", "CAP_AUDIT_WRITE"];
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(caps);
    }
    b.sh(
        "mkdir -p /vol/from-container && mount -t tmpfs c /vol/from-container && \
         touch /vol/from-container/made-inside; \
         i=0; while [ ! -e /vol/from-host/made-outside ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; \
         [ -e /vol/from-host/made-outside ] && echo host-mount-seen",
    );
    b.save();
    let script = format!(
        "mount --make-rshared / && mount -t tmpfs t {top} && mount --make-shared {top} && \
         mkdir {top}/rootfs && mount --bind {rootfs} {top}/rootfs || exit 9\n\
         mkdir -p {vol}/from-host\n\
         $RT run -d --bundle {bundle} {id} || exit 8\n\
         mount -t tmpfs h {vol}/from-host && touch {vol}/from-host/made-outside\n\
         i=0; while [ ! -e {vol}/from-container/made-inside ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n\
         [ -e {vol}/from-container/made-inside ] && echo container-mount-seen\n\
         i=0; while $RT state {id} | grep -q running && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n\
         $RT delete --force {id}; echo deleted=$?",
        top = top.display(),
        rootfs = b.rootfs().display(),
        vol = vol.display(),
        bundle = b.dir.display(),
    );
    // The container's stdout is the script's: its line comes in between.
    let out = h
        .sh_in_throwaway_ns(&script, false)
        .expect("no fake cgroups asked for");
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["container-mount-seen", "deleted=0", "host-mount-seen"],
        "{}",
        out.describe()
    );
    h.assert_nothing_left(&id);
}

/// A tmpfs /dev with `ro`: filled first (devices, /dev/pts...), then made read-only, as
/// runc does; it used to fail with EROFS making /dev/pts.
#[test]
fn readonly_dev_is_filled_then_read_only() {
    let h = Ctx::new("readonly_dev");
    let id = h.id();
    let mut b = h.bundle(&id);
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    b.sh(
        "[ -c /dev/null ] && [ -d /dev/pts ] && echo filled; echo x > /dev/null && echo null-ok; \
         touch /dev/new 2>/dev/null || echo dev-read-only",
    );
    assert_eq!(h.run_ok(&id, &b), "filled\nnull-ok\ndev-read-only\n");
    h.assert_nothing_left(&id);
}

/// No mount namespace in linux.namespaces: refused in one line that names the field and
/// says why (the container's mounts would land in the caller's namespace, the host's).
#[test]
fn no_mount_namespace_is_refused_clearly() {
    let h = Ctx::new("no_mount_namespace_is_refused");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.remove_namespace("mount");
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["linux.namespaces", "\\\"mount\\\"", "host"]);
}

/// A mount namespace joined by path: the rootfs is set up inside it and the program runs
/// there (it used to run in the joined namespace's own root: "not found"). The namespace
/// is a throwaway one made by the test.
#[test]
fn join_mount_namespace_by_path() {
    let h = Ctx::new("join_mount_namespace_by_path");
    let mut holder = ChildGuard::spawn(
        std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "1000"])
            .stdout(std::process::Stdio::null()),
    );
    let pid = holder.pid();
    // unshare execs sleep once the namespace is made.
    poll(T, "the namespace holder", || {
        let me = fs::read_link("/proc/self/ns/mnt").ok()?;
        let its = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?;
        (me != its).then_some(())
    });
    let id = h.id();
    let mut b = h.bundle(&id);
    b.namespace("mount", Some(&format!("/proc/{pid}/ns/mnt")));
    fs::write(b.path_in_rootfs("/marker"), "in the rootfs\n").unwrap();
    b.sh("cat /marker");
    let out = h.run(&id, &b);
    let _ = holder.0.kill();
    let _ = holder.0.wait();
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert_eq!(out.stdout, "in the rootfs\n", "{}", out.describe());
    h.assert_nothing_left(&id);
}

/// process.ioPriority IOPRIO_CLASS_RT needs CAP_SYS_ADMIN: set while the init still has
/// it (it used to fail with EPERM after the capabilities were dropped).
#[test]
fn io_priority_realtime_class() {
    let h = Ctx::new("io_priority_realtime_class");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_RT", "priority": 3 });
    b.args(&["sleep", "1000"]);
    h.run_detached(&id, &b).ok();
    let pid = h.state_ok(&id)["pid"].as_i64().unwrap();
    let out = std::process::Command::new("ionice")
        .args(["-p", &pid.to_string()])
        .output()
        .expect("ionice (util-linux)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "realtime: prio 3"
    );
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// linux.timeOffsets with a user namespace: rt writes them from outside (the init is not
/// dumpable, so its /proc files belong to the host's root, unmapped in the new user
/// namespace: EACCES), after unshare(CLONE_NEWTIME) and before anybody enters it.
#[test]
fn time_offsets_with_a_user_namespace() {
    let h = Ctx::new("time_offsets_with_a_user_namespace");
    if !Path::new("/proc/self/timens_offsets").exists() {
        skip(&h.name, "this kernel has no time namespaces");
        return;
    }
    for userns in [false, true] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.namespace("time", None);
        b.config["linux"]["timeOffsets"] = json!({
            "boottime": { "secs": 1337, "nanosecs": 3141519 },
            "monotonic": { "secs": 7881, "nanosecs": 2718281 }
        });
        if userns {
            b.user_namespace(100000);
            let st = std::process::Command::new("chown")
                .args(["-R", "100000:100000"])
                .arg(b.rootfs())
                .status()
                .unwrap();
            assert!(st.success());
        }
        b.sh("cat /proc/self/timens_offsets");
        let out = h.run(&id, &b);
        assert_eq!(
            out.stdout,
            "monotonic        7881   2718281\nboottime         1337   3141519\n",
            "user namespace {userns}: {}",
            out.describe()
        );
        h.assert_nothing_left(&id);
    }
}

/// Recursive mount attributes (runtime-spec 1.1): `rro`, `rnosuid`, `rnoexec`, `rnodev`,
/// `rnoatime` on a bind reach every submount (mount_setattr AT_RECURSIVE); a submount
/// of an `rro` bind used to stay writable.
#[test]
fn recursive_mount_attributes_reach_submounts() {
    let h = Ctx::new("recursive_mount_attributes");
    let host = h.subdir("tree");
    fs::create_dir_all(host.join("sub")).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "rt-sub", host.join("sub").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs below the test dir");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.mount(
        json!({ "destination": "/data", "type": "bind", "source": host,
        "options": ["rbind", "rro", "rnosuid", "rnoexec", "rnodev", "rnoatime"] }),
    );
    b.sh("touch /data/x 2>/dev/null && echo top-writable; \
         touch /data/sub/x 2>/dev/null && echo sub-writable; cat /proc/self/mountinfo");
    let out = h.run(&id, &b);
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert!(
        !out.stdout.contains("writable"),
        "a mount stayed writable:\n{}",
        out.stdout
    );
    let mounts = mountinfo::parse(&out.stdout);
    for dest in ["/data", "/data/sub"] {
        let m = find_mount(&mounts, dest);
        for want in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
            assert!(m.has_opt(want), "{dest}: {want} not in {m:?}");
        }
    }
    h.assert_nothing_left(&id);
}

/// Options mount(8) knows that are no filesystem's data: `defaults`, `iversion`,
/// `noiversion`, `lazytime`, and the fstab-only `nofail`, `auto`, `x-*` (they used to reach
/// the filesystem as data: EINVAL). `nosymfollow` stops symlinks on that mount.
#[test]
fn mount8_options_and_nosymfollow() {
    let h = Ctx::new("mount8_options_and_nosymfollow");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.mount(
        json!({ "destination": "/m8", "type": "tmpfs", "source": "tmpfs",
        "options": ["defaults", "iversion", "noiversion", "lazytime", "nofail", "auto",
                    "x-systemd.automount", "size=1m"] }),
    );
    b.mount(
        json!({ "destination": "/nosym", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosymfollow"] }),
    );
    b.sh("echo hi > /m8/f && cat /m8/f; ln -s /m8/f /nosym/link; \
         cat /nosym/link 2>/dev/null || echo symlink-stopped; cat /proc/self/mountinfo");
    let out = h.run(&id, &b);
    assert_eq!(out.code(), 0, "{}", out.describe());
    assert!(
        out.stdout.starts_with("hi\nsymlink-stopped\n"),
        "{}",
        out.describe()
    );
    assert!(
        find_mount(&mountinfo::parse(&out.stdout), "/nosym").has_opt("nosymfollow"),
        "{}",
        out.stdout
    );
    h.assert_nothing_left(&id);
}

/// Idmapped mounts rt cannot make are refused in one line naming the mount, before
/// anything is mounted: not a bind, uidMappings without gidMappings (the spec wants both),
/// idmap without mappings in a container without a user namespace to take them from, and
/// a source whose filesystem refuses idmapping (procfs). Nothing is left behind.
#[test]
fn idmapped_mounts_refused_where_they_cannot_be() {
    let h = Ctx::new("idmapped_mounts_refused");
    if let Err(why) = host::idmapped_mounts() {
        skip(&h.name, why);
        return;
    }
    let host = h.subdir("idmap-src");
    let mapping = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    let cases = [
        (
            json!({ "destination": "/i", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                    "uidMappings": mapping, "gidMappings": mapping }),
            vec!["mounts[7] (/i)", "only bind mounts can be idmapped"],
        ),
        (
            json!({ "destination": "/i", "type": "bind", "source": host, "options": ["rbind", "idmap"],
                    "uidMappings": mapping }),
            vec![
                "mounts[7] (/i)",
                "uidMappings and gidMappings must be given together",
            ],
        ),
        (
            json!({ "destination": "/i", "type": "bind", "source": host, "options": ["bind", "idmap"] }),
            vec!["mounts[7] (/i)", "no user namespace"],
        ),
        (
            json!({ "destination": "/i", "type": "bind", "source": "/proc", "options": ["rbind", "ridmap"],
                    "uidMappings": mapping, "gidMappings": mapping }),
            vec!["mounts[7] (/i)", "source /proc", "mount_setattr", "EINVAL"],
        ),
    ];
    for (m, needles) in cases {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.mount(m);
        b.args(&["true"]);
        assert_create_fails_with(&h, &id, &b, &needles);
    }
}

/// With `terminal` and a non-root user, the pty slave belongs to that user and to the
/// group devpts's `gid=` option names (5 in the base config), for the init and for
/// `exec -t`: it used to stay root's.
#[test]
fn terminal_belongs_to_the_process_user() {
    use integration::console::{read_pty, ConsoleSocket};
    let h = Ctx::new("terminal_belongs_to_the_user");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    b.sh("stat -c 'init %u:%g' $(tty); sleep 1000");
    b.save();
    let sock_path = h.dir.join("init.sock");
    let sock = ConsoleSocket::listen(&sock_path);
    let bdir = b.dir.display().to_string();
    let sp = sock_path.display().to_string();
    h.rt(&["create", "--bundle", &bdir, "--console-socket", &sp, &id])
        .ok();
    h.record_pid(&id);
    let master = sock.receive(T).expect("the init's pty master");
    h.start(&id).ok();
    let reader = std::thread::spawn(move || read_pty(master, Duration::from_secs(3)));
    let exec_path = h.dir.join("exec.sock");
    let exec_sock = ConsoleSocket::listen(&exec_path);
    let ep = exec_path.display().to_string();
    let pid_file = h.dir.join("exec.pid");
    let pf = pid_file.display().to_string();
    let mut exec = h.command(&[
        "exec",
        "-t",
        "-d",
        "--pid-file",
        &pf,
        "--console-socket",
        &ep,
        "-u",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "stat -c 'exec %u:%g' $(tty); sleep 1",
    ]);
    exec.stdout(std::process::Stdio::null());
    let st = exec.status().unwrap();
    assert!(st.success(), "exec -t -d");
    let exec_master = exec_sock.receive(T).expect("the exec's pty master");
    let exec_text = read_pty(exec_master, Duration::from_secs(3)).replace('\r', "");
    let init_text = reader.join().unwrap().replace('\r', "");
    // The exec'd process is our child (rt forks it as a sibling): reap it, or the
    // container's init could not finish dying.
    let exec_pid: i32 = read_or_empty(&pid_file).trim().parse().unwrap();
    h.reap(exec_pid, T);
    assert!(init_text.contains("init 1000:5"), "{init_text:?}");
    assert!(exec_text.contains("exec 1000:5"), "{exec_text:?}");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// A failing startContainer hook (runtime-spec: error, the container stops): `rt start`
/// used to succeed with the program never run. `rt start` now waits for the program to
/// be exec'd (the init's close-on-exec fifo end goes) and sees the init died before it.
#[test]
fn failing_start_container_hook_fails_start() {
    let h = Ctx::new("failing_start_container_hook");
    let id = h.id();
    let mut b = h.bundle(&id);
    fs::create_dir_all(b.path_in_rootfs("/hooklog")).unwrap();
    b.hook("startContainer", "exit 3");
    b.sh("echo ran > /hooklog/program");
    h.create_ok(&id, &b);
    let out = h.start(&id);
    out.expect_error();
    assert!(
        out.stderr.contains("exited before running the program"),
        "{}",
        out.describe()
    );
    assert!(!b.path_in_rootfs("/hooklog/program").exists());
    assert_eq!(h.status(&id).as_deref(), Some("stopped"));
    h.delete(&id).ok();
    h.assert_nothing_left(&id);
    // A program that runs and exits at once is no failure.
    let id2 = h.id();
    let mut b2 = h.bundle(&id2);
    b2.args(&["true"]);
    h.create_ok(&id2, &b2);
    h.start(&id2).ok();
    h.wait_status(&id2, "stopped", T);
    h.delete(&id2).ok();
    h.assert_nothing_left(&id2);
}

/// linux.memoryPolicy (runtime-spec 1.3): each mode, with a flag, as the program's
/// /proc/self/numa_maps shows it; a node the host does not have fails create cleanly.
#[test]
fn memory_policy_modes() {
    let h = Ctx::new("memory_policy_modes");
    if !Path::new("/proc/self/numa_maps").exists()
        || !Path::new("/sys/devices/system/node/node0").exists()
    {
        skip(
            &h.name,
            "this kernel has no NUMA (no /proc/self/numa_maps or node0)",
        );
        return;
    }
    for (mode, nodes, flags, want) in [
        ("MPOL_DEFAULT", "", vec![], "default"),
        ("MPOL_BIND", "0", vec![], "bind:0"),
        (
            "MPOL_BIND",
            "0",
            vec!["MPOL_F_STATIC_NODES"],
            "bind=static:0",
        ),
        ("MPOL_INTERLEAVE", "0", vec![], "interleave:0"),
        ("MPOL_PREFERRED", "0", vec![], "prefer:0"),
        ("MPOL_LOCAL", "", vec![], "local"),
    ] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["linux"]["memoryPolicy"] = json!({ "mode": mode, "nodes": nodes, "flags": flags });
        b.args(&["head", "-n1", "/proc/self/numa_maps"]);
        let out = h.run(&id, &b);
        let policy = out
            .stdout
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        assert_eq!(policy, want, "{mode} {flags:?}: {}", out.describe());
        h.assert_nothing_left(&id);
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["memoryPolicy"] = json!({ "mode": "MPOL_BIND", "nodes": "99" });
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["node 99 does not exist"]);
}

/// linux.netDevices (runtime-spec 1.3): one end of a veth pair is moved into the
/// container's network namespace and renamed; it keeps its MTU and its permanent global
/// address, and is up. A device that is not there fails create cleanly. All in a
/// throwaway network namespace of the test's own (this kernel may have no `dummy`).
#[test]
fn net_devices_are_moved_in() {
    let h = Ctx::new("net_devices_are_moved_in");
    let id = h.id();
    let mut b = h.bundle(&id);
    // A second device under a %d template: the kernel picks the number.
    b.config["linux"]["netDevices"] =
        json!({ "rtv0": { "name": "eth-rt" }, "rtv4": { "name": "net%d" } });
    b.sh(
        "cat /sys/class/net/eth-rt/mtu; ip -o -4 addr show dev eth-rt | \
         sed 's/.*inet \\([^ ]*\\).*/\\1/'; ip link show eth-rt | grep -o 'UP' | head -1; \
         ls /sys/class/net | grep '^net'",
    );
    let missing = h.id();
    let mut b2 = h.bundle(&missing);
    b2.config["linux"]["netDevices"] = json!({ "rt-nodev0": {} });
    b2.args(&["true"]);
    // A name the container's namespace already has (lo): an error, the device stays.
    let clash = h.id();
    let mut b3 = h.bundle(&clash);
    b3.config["linux"]["netDevices"] = json!({ "rtv2": { "name": "lo" } });
    b3.args(&["true"]);
    let script = format!(
        "unshare --net sh -c '\
           ip link add rtv0 type veth peer name rtv1 && ip link set rtv0 mtu 1400 && \
           ip addr add 192.0.2.10/24 dev rtv0 && \
           ip link add rtv4 type veth peer name rtv5 || exit 9; \
           $RT run --bundle {b} {id}; echo run=$?; \
           ip link show rtv0 >/dev/null 2>&1 || echo moved-out-of-here; \
           i=0; while ip link show rtv1 >/dev/null 2>&1 && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
           ip link show rtv1 >/dev/null 2>&1 || echo destroyed-with-the-namespace; \
           ip link show rtv0 >/dev/null 2>&1 && echo rtv0-came-back; \
           $RT create --bundle {b2} {missing} 2>err; echo create=$?; cat err >&2; \
           ip link add rtv2 type veth peer name rtv3 || exit 9; \
           $RT create --bundle {b3} {clash} 2>err; echo clash=$?; cat err >&2; \
           ip link show rtv2 >/dev/null && echo rtv2-stays'",
        b = b.saved(),
        b2 = b2.saved(),
        b3 = b3.saved(),
    );
    let Some(out) = h.sh_in_throwaway_ns(&script, false) else {
        return;
    };
    assert_eq!(
        out.lines(),
        [
            "1400",
            "192.0.2.10/24",
            "UP",
            "net0",
            "run=0",
            "moved-out-of-here",
            // Not moved back before deletion (the spec's rule): the veth went with the
            // container's namespace, its peer too.
            "destroyed-with-the-namespace",
            "create=1",
            "clash=1",
            "rtv2-stays"
        ],
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("no network device") && out.stderr.contains("rt-nodev0"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("already has a device named"),
        "{}",
        out.describe()
    );
    h.assert_nothing_left(&id);
    h.assert_nothing_left(&missing);
    h.assert_nothing_left(&clash);
}

/// linux.intelRdt where no resctrl filesystem is mounted (this host has none, and most
/// have no RDT): an error that says so, and nothing left. The write path is unit-tested
/// against a fake resctrl tree (runtime/src/intelrdt.rs).
#[test]
fn intel_rdt_without_resctrl_is_an_error() {
    let h = Ctx::new("intel_rdt_without_resctrl");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    if mounts.lines().any(|l| l.contains(" - resctrl ")) {
        skip(
            &h.name,
            "resctrl is mounted here: the refusal cannot be shown",
        );
        return;
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["intelRdt"] = json!({ "closID": "gold", "l3CacheSchema": "L3:0=f" });
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["no resctrl filesystem is mounted"]);
}

/// runtime-spec 1.3: a capability that cannot be mapped is logged as a warning and the
/// container runs without it (it used to fail create).
#[test]
fn unknown_capability_is_a_warning() {
    let h = Ctx::new("unknown_capability_is_a_warning");
    let id = h.id();
    let mut b = h.bundle(&id);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_KILL", "CAP_NOT_A_CAPABILITY"]);
    }
    b.sh("grep CapEff /proc/self/status");
    let out = h.run(&id, &b);
    assert_eq!(out.code(), 0, "{}", out.describe());
    // CAP_KILL (5) alone.
    assert_eq!(
        out.stdout,
        "CapEff:\t0000000000000020\n",
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("level=warning") && out.stderr.contains("CAP_NOT_A_CAPABILITY"),
        "{}",
        out.describe()
    );
    h.assert_nothing_left(&id);
}

/// Two rlimits of one type: an error (the spec allows one per type), nothing left.
#[test]
fn duplicate_rlimit_is_an_error() {
    let h = Ctx::new("duplicate_rlimit_is_an_error");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 },
        { "type": "RLIMIT_NOFILE", "hard": 512, "soft": 512 }
    ]);
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["RLIMIT_NOFILE is listed twice"]);
}

/// A file the rootfs already has where a linux.devices entry goes must be that device
/// (runtime-spec: an error otherwise; it used to be replaced); the same device is kept
/// and given the mode asked for.
#[test]
fn existing_file_at_a_device_path() {
    let h = Ctx::new("existing_file_at_a_device_path");
    let id = h.id();
    let mut b = h.bundle(&id);
    fs::create_dir_all(b.path_in_rootfs("/probe")).unwrap();
    fs::write(b.path_in_rootfs("/probe/file"), "data").unwrap();
    b.config["linux"]["devices"] =
        json!([{ "path": "/probe/file", "type": "c", "major": 1, "minor": 3 }]);
    b.args(&["true"]);
    assert_create_fails_with(
        &h,
        &id,
        &b,
        &["/probe/file exists in the rootfs and is not the requested device"],
    );
    assert_eq!(
        fs::read_to_string(b.path_in_rootfs("/probe/file")).unwrap(),
        "data"
    );
    // The very device already there: kept, with the mode asked for.
    let id2 = h.id();
    let mut b2 = h.bundle(&id2);
    fs::create_dir_all(b2.path_in_rootfs("/probe")).unwrap();
    let st = std::process::Command::new("mknod")
        .args(["-m", "600"])
        .arg(b2.path_in_rootfs("/probe/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success());
    b2.config["linux"]["devices"] =
        json!([{ "path": "/probe/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438 }]);
    b2.sh("stat -c '%a %t:%T' /probe/null");
    assert_eq!(h.run_ok(&id2, &b2), "666 1:3\n");
    h.assert_nothing_left(&id2);
}
