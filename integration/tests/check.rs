//! `rt check`: the JSON document's shape, each answer against a probe the test makes itself
//! (statfs of /sys/fs/cgroup, /proc/self/ns, actions_avail, the LSM list, uname, the block
//! schedulers, criu, systemd), the exit status, the text format, `-b`, agreement with
//! `rt features`, and that nothing is left behind (mounts, processes, criu's cache).

use integration::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

/// `rt check --format json` (and the extra args): the document and the output.
fn check_json(h: &Ctx, extra: &[&str]) -> (Value, Output) {
    let mut args = vec!["check", "--format", "json"];
    args.extend_from_slice(extra);
    let out = h.rt(&args);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("rt check JSON: {e}\n{}", out.describe()));
    (v, out)
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().expect("items array")
}

fn item<'a>(v: &'a Value, name: &str) -> &'a Value {
    items(v)
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no item {name} in {v:#}"))
}

fn available(v: &Value, name: &str) -> bool {
    item(v, name)["available"]
        .as_bool()
        .unwrap_or_else(|| panic!("{name}: available is not a bool"))
}

fn value<'a>(v: &'a Value, name: &str) -> &'a str {
    item(v, name)["value"].as_str().unwrap_or("")
}

#[test]
fn check_json_shape_and_exit_status() {
    let h = Ctx::new("check_json_shape");
    let (v, out) = check_json(&h, &[]);
    // Everything the default config needs is on this host: exit 0, nothing missing.
    out.expect_code(0);
    assert_eq!(v["defaultConfigOk"], true, "{v:#}");
    assert_eq!(v["missingForDefaultConfig"], serde_json::json!([]));
    assert!(v["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(v["rootfs"].as_str().is_some_and(|r| r.starts_with("/ ")));
    let mut names = BTreeSet::new();
    for i in items(&v) {
        let name = i["name"].as_str().expect("name");
        assert!(names.insert(name.to_string()), "{name} twice");
        assert!(i["area"].as_str().is_some_and(|a| !a.is_empty()), "{i}");
        assert!(i["available"].is_boolean(), "{i}");
        assert!(i["probe"].as_str().is_some_and(|p| !p.is_empty()), "{i}");
        assert!(i["result"].is_string(), "{i}");
        assert!(i["affects"].is_array(), "{i}");
        assert!(i["defaultConfigNeeds"].is_boolean(), "{i}");
        assert!(i.get("value").is_none_or(Value::is_string), "{i}");
    }
    // The items the brief names are all there.
    for n in [
        "kernel.version",
        "namespace.time",
        "userns.unprivileged",
        "cgroup.version",
        "cgroup.hierarchies",
        "cgroup.delegation",
        "cgroup.kill",
        "cgroup.clone_into_cgroup",
        "cgroup.freezer",
        "seccomp.actions_avail",
        "seccomp.action.SCMP_ACT_NOTIFY",
        "seccomp.flag.SECCOMP_FILTER_FLAG_NEW_LISTENER",
        "seccomp.user_notification",
        "seccomp.notif_sizes",
        "syscall.pidfd_open",
        "syscall.pidfd_send_signal",
        "syscall.pidfd_open.PIDFD_THREAD",
        "syscall.clone3",
        "syscall.openat2.RESOLVE_IN_ROOT",
        "syscall.mount_setattr",
        "syscall.open_tree",
        "syscall.move_mount",
        "mount.idmap",
        "landlock.abi",
        "lsm.active",
        "lsm.apparmor",
        "lsm.selinux",
        "criu.version",
        "criu.check",
        "systemd.pid1",
        "dbus.system_bus",
    ] {
        assert!(names.contains(n), "{n} missing from {names:?}");
    }
    // A missing time namespace names the fields it breaks.
    let affects = item(&v, "namespace.time")["affects"].to_string();
    assert!(affects.contains("linux.timeOffsets"), "{affects}");
    // The default config's namespaces are marked as needed by it, time is not.
    assert_eq!(item(&v, "namespace.pid")["defaultConfigNeeds"], true);
    assert_eq!(item(&v, "namespace.time")["defaultConfigNeeds"], false);
}

/// statfs(2) magic of a path.
fn fs_magic(p: &str) -> i64 {
    let c = std::ffi::CString::new(p).unwrap();
    // SAFETY: all-zero is a valid statfs; the kernel fills it from a valid path.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `s` a valid out-pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    assert_eq!(r, 0, "statfs {p}");
    s.f_type as i64
}

#[test]
fn check_answers_match_independent_probes() {
    let h = Ctx::new("check_independent");
    let (v, _) = check_json(&h, &[]);

    // cgroup version: the magic of /sys/fs/cgroup, and a cgroup2 hierarchy beside v1 ones.
    const CGROUP2: i64 = 0x6367_7270;
    const TMPFS: i64 = 0x0102_1994;
    let hier = host::cgroup_hierarchies();
    let want = match fs_magic("/sys/fs/cgroup") {
        CGROUP2 => "2",
        TMPFS if hier.iter().any(|x| x.is_unified()) && hier.iter().any(|x| !x.is_unified()) => {
            "hybrid"
        }
        _ => "1",
    };
    assert_eq!(value(&v, "cgroup.version"), want);
    for (ctrl, hierarchy) in [
        ("memory", "memory"),
        ("pids", "pids"),
        ("devices", "devices"),
    ] {
        if host::v1_hierarchy(hierarchy).is_some() {
            assert_eq!(value(&v, &format!("cgroup.controller.{ctrl}")), "v1");
        }
    }
    assert_eq!(
        available(&v, "cgroup.blockio_weight"),
        host::blkio_weight_file().is_ok(),
        "{}",
        item(&v, "cgroup.blockio_weight")
    );

    // Namespaces: as root, each type the kernel lists can be made.
    for (kind, proc_name) in [
        ("cgroup", "cgroup"),
        ("ipc", "ipc"),
        ("mount", "mnt"),
        ("network", "net"),
        ("pid", "pid"),
        ("time", "time"),
        ("user", "user"),
        ("uts", "uts"),
    ] {
        assert_eq!(
            available(&v, &format!("namespace.{kind}")),
            host::has_namespace(proc_name),
            "{kind}"
        );
    }

    // Seccomp actions: the kernel's own list, and each action as it spells it.
    let avail = fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    assert_eq!(value(&v, "seccomp.actions_avail"), avail.trim());
    for (spec, kernel) in [
        ("SCMP_ACT_ALLOW", "allow"),
        ("SCMP_ACT_ERRNO", "errno"),
        ("SCMP_ACT_KILL_PROCESS", "kill_process"),
        ("SCMP_ACT_KILL_THREAD", "kill_thread"),
        ("SCMP_ACT_LOG", "log"),
        ("SCMP_ACT_NOTIFY", "user_notif"),
        ("SCMP_ACT_TRACE", "trace"),
        ("SCMP_ACT_TRAP", "trap"),
    ] {
        assert_eq!(
            available(&v, &format!("seccomp.action.{spec}")),
            host::seccomp_action(kernel),
            "{spec}"
        );
    }

    // LSMs: securityfs's list when it is mounted.
    match fs::read_to_string("/sys/kernel/security/lsm") {
        Ok(list) => {
            assert!(available(&v, "lsm.active"));
            assert_eq!(value(&v, "lsm.active"), list.trim().trim_end_matches(','));
        }
        Err(_) => assert!(!available(&v, "lsm.active")),
    }
    assert_eq!(
        available(&v, "lsm.selinux"),
        Path::new("/sys/fs/selinux/enforce").exists()
    );

    // Kernel release: uname -r.
    let uname = Command::new("uname").arg("-r").output().expect("uname -r");
    assert_eq!(
        value(&v, "kernel.version"),
        String::from_utf8_lossy(&uname.stdout).trim()
    );

    // Block devices: each scheduler file that check reports, read here.
    let mut seen = 0;
    for i in items(&v) {
        let name = i["name"].as_str().unwrap_or("");
        let Some(dev) = name
            .strip_prefix("block.")
            .and_then(|n| n.strip_suffix(".scheduler"))
        else {
            continue;
        };
        seen += 1;
        let text = fs::read_to_string(format!("/sys/block/{dev}/queue/scheduler")).unwrap();
        let active = text
            .split_whitespace()
            .find(|w| w.starts_with('['))
            .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
            .unwrap_or("?");
        assert_eq!(i["value"], active, "{name}");
        assert_eq!(
            i["available"],
            text.split_whitespace()
                .any(|w| w.trim_matches(|c| c == '[' || c == ']') == "bfq"),
            "{name}"
        );
    }
    // Every disk with a scheduler (loop devices without a file behind them aside) is listed.
    let disks = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("queue/scheduler").exists())
        .filter(|e| {
            !e.file_name().to_string_lossy().starts_with("loop")
                || e.path().join("loop/backing_file").exists()
        })
        .count();
    assert_eq!(seen, disks);

    // criu: there when `criu --version` runs.
    let criu = Command::new("criu").arg("--version").output();
    assert_eq!(
        available(&v, "criu.version"),
        criu.is_ok_and(|o| o.status.success())
    );
    assert_eq!(
        available(&v, "criu.check"),
        host::criu_works().is_ok(),
        "{}",
        item(&v, "criu.check")
    );

    // systemd as PID 1.
    assert_eq!(
        available(&v, "systemd.pid1"),
        Path::new("/run/systemd/system").is_dir()
    );
    // mount_setattr, as the harness probes it.
    assert_eq!(
        available(&v, "syscall.mount_setattr"),
        host::idmapped_mounts().is_ok()
    );
}

#[test]
fn check_text_has_one_item_a_line() {
    let h = Ctx::new("check_text");
    let (v, _) = check_json(&h, &[]);
    let out = h.rt(&["check"]);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), items(&v).len(), "{}", out.stdout);
    for i in items(&v) {
        let name = i["name"].as_str().unwrap();
        let mark = match (i["available"].as_bool(), i["defaultConfigNeeds"].as_bool()) {
            (Some(true), _) => "yes",
            (_, Some(true)) => "NO!",
            _ => "no ",
        };
        let prefix = format!("{mark} {name} ");
        let found: Vec<&&str> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(found.len(), 1, "{prefix:?} in\n{}", out.stdout);
        assert!(
            found[0].contains(&format!("[probe: {}]", i["probe"].as_str().unwrap())),
            "{}",
            found[0]
        );
    }
    let last = out.stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("# everything the default config (rt spec) needs is here"),
        "{last}"
    );
}

#[test]
fn check_with_a_bundle_probes_its_rootfs() {
    let h = Ctx::new("check_bundle");
    let id = h.id();
    let b = h.bundle(&id);
    b.save();
    let bundle = b.dir.to_str().unwrap();
    let (v, out) = check_json(&h, &["-b", bundle]);
    out.expect_code(0);
    let rootfs = fs::canonicalize(b.rootfs()).unwrap();
    let said = v["rootfs"].as_str().unwrap();
    assert!(
        said.starts_with(&format!("{} (the bundle's rootfs)", rootfs.display())),
        "{said}"
    );
    let idmap = item(&v, "mount.idmap");
    assert!(
        idmap["probe"]
            .as_str()
            .unwrap()
            .contains(&rootfs.display().to_string()),
        "{idmap}"
    );
    assert!(
        item(&v, "syscall.open_tree")["probe"]
            .as_str()
            .unwrap()
            .contains(&b.rootfs().display().to_string()),
        "{v:#}"
    );
    // A bundle without config.json: one line of error, exit 1.
    let empty = h.subdir("no-config");
    h.rt(&["check", "-b", empty.to_str().unwrap()])
        .expect_error();
}

#[test]
fn check_agrees_with_features() {
    let h = Ctx::new("check_features");
    let (c, _) = check_json(&h, &[]);
    let f: Value = serde_json::from_str(&h.rt(&["features"]).ok().stdout).expect("features");
    let list = |p: &str| -> BTreeSet<String> {
        f.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let checked = |prefix: &str| -> BTreeSet<String> {
        items(&c)
            .iter()
            .filter(|i| i["available"] == true)
            .filter_map(|i| i["name"].as_str()?.strip_prefix(prefix).map(String::from))
            .filter(|n| !n.contains('.'))
            .collect()
    };
    assert_eq!(list("/linux/namespaces"), checked("namespace."));
    assert_eq!(list("/linux/seccomp/actions"), checked("seccomp.action."));
    let known = list("/linux/seccomp/knownFlags");
    let kernel_flags: BTreeSet<String> = checked("seccomp.flag.")
        .intersection(&known)
        .cloned()
        .collect();
    assert_eq!(list("/linux/seccomp/supportedFlags"), kernel_flags);
    assert_eq!(
        f["linux"]["seccomp"]["enabled"],
        available(&c, "seccomp.action.SCMP_ACT_ALLOW")
    );
    assert_eq!(
        f["linux"]["apparmor"]["enabled"],
        available(&c, "lsm.apparmor")
    );
    assert_eq!(
        f["linux"]["selinux"]["enabled"],
        available(&c, "lsm.selinux")
    );
    assert_eq!(
        f["linux"]["intelRdt"]["enabled"],
        available(&c, "intelrdt.resctrl")
    );
    let idmap = f["linux"]["mountExtensions"]["idmap"]["enabled"] == true;
    assert_eq!(idmap, available(&c, "syscall.mount_setattr"));
    if available(&c, "mount.idmap") {
        assert!(idmap, "check idmapped / but features says no idmap");
    }
    // features says which cgroup versions rt drives; the host's must be among them.
    let version = value(&c, "cgroup.version");
    if matches!(version, "1" | "hybrid") {
        assert_eq!(f["linux"]["cgroup"]["v1"], true);
    }
    if matches!(version, "2" | "hybrid") {
        assert_eq!(f["linux"]["cgroup"]["v2"], true);
    }
}

/// In a throwaway pid and mount namespace (so that other work on the machine changes
/// neither): the mount table is the same after `rt check`, and no process of it is left
/// (an orphan would be reparented to the namespace's init, the script's shell).
#[test]
fn check_leaves_nothing_behind() {
    let h = Ctx::new("check_leaves_nothing");
    let kdat = Path::new("/run/criu.kdat").exists();
    let script = r#"
cat /proc/self/mountinfo > before
$RT check --format json > out.json; echo "rc=$?"
cat /proc/self/mountinfo > after
cmp -s before after && echo SAME-MOUNTS
for p in /proc/[0-9]*; do
  [ "${p#/proc/}" = "$$" ] || echo "left: ${p#/proc/} $(cat $p/comm 2>/dev/null)"
done
echo done
"#;
    let out = h
        .sh_in_throwaway_ns(script, false)
        .expect("throwaway namespace");
    assert!(out.stdout.contains("rc=0"), "{}", out.describe());
    assert!(out.stdout.contains("SAME-MOUNTS"), "{}", out.describe());
    assert!(!out.stdout.contains("left:"), "{}", out.describe());
    assert!(out.stdout.contains("done"), "{}", out.describe());
    // criu check's cache is only where it was before.
    assert_eq!(Path::new("/run/criu.kdat").exists(), kdat);
    // And on the host: no process of this test's is alive once rt check returned.
    h.rt(&["check"]).expect_code(0);
    assert_eq!(marked_processes(&h.name), Vec::<i32>::new());
}
