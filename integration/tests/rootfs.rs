//! Root filesystem: read-only root, mounts and their options, propagation, /dev, devices,
//! masked and read-only paths, symlink-safe mount destinations, --no-pivot.

use integration::mountinfo::{find_mount, parse as parse_mountinfo, MountInfo};
use integration::*;
use serde_json::json;
use std::fs;
use std::path::Path;

/// Split a run's output into the part before the `--mountinfo--` marker and the parsed
/// mountinfo after it.
fn split_mountinfo(out: &str) -> (String, Vec<MountInfo>) {
    let (a, b) = out.split_once("--mountinfo--\n").expect("mountinfo marker");
    (a.to_string(), parse_mountinfo(b))
}

const DUMP_MOUNTINFO: &str = "echo --mountinfo--; cat /proc/self/mountinfo";

#[test]
fn readonly_root() {
    let h = Ctx::new("readonly_root");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["root"]["readonly"] = json!(true);
    b.sh(&format!(
        "touch /x 2>/dev/null && echo writable || echo readonly; \
         touch /dev/shm/x && echo shm-writable; {DUMP_MOUNTINFO}"
    ));
    let out = h.run_ok(&id, &b);
    let (text, mi) = split_mountinfo(&out);
    assert_eq!(text, "readonly\nshm-writable\n");
    assert!(find_mount(&mi, "/").opts.contains(&"ro".to_string()));
    assert!(!b.path_in_rootfs("/x").exists());
}

#[test]
fn writable_root() {
    let h = Ctx::new("writable_root");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("touch /x && echo ok");
    assert_eq!(h.run_ok(&id, &b), "ok\n");
    assert!(b.path_in_rootfs("/x").exists());
}

#[test]
fn absolute_root_path() {
    let h = Ctx::new("absolute_root_path");
    let id = h.id();
    let mut b = h.bundle(&id);
    let moved = h.dir.join("elsewhere-rootfs");
    fs::rename(b.rootfs(), &moved).unwrap();
    b.config["root"]["path"] = json!(moved);
    b.sh("cat /etc/passwd | head -n 1");
    assert!(h.run_ok(&id, &b).starts_with("root:"));
}

#[test]
fn mounts_in_order_with_options() {
    let h = Ctx::new("mounts_in_order_with_options");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.mount(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=750"]
    }));
    // Mounted after /data, so it lands on top of the /data tmpfs and stays visible.
    b.mount(json!({
        "destination": "/data/sub", "type": "tmpfs", "source": "tmpfs",
        "options": ["size=512k", "mode=1777"]
    }));
    b.sh(&format!("stat -c '%a' /data /data/sub; {DUMP_MOUNTINFO}"));
    let out = h.run_ok(&id, &b);
    let (text, mi) = split_mountinfo(&out);
    assert_eq!(text, "750\n1777\n");
    let data = find_mount(&mi, "/data");
    assert_eq!(data.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(
            data.opts.contains(&o.to_string()),
            "{o} missing on /data: {data:?}"
        );
    }
    assert!(
        data.super_opts.contains(&"size=1024k".to_string()),
        "{data:?}"
    );
    assert!(
        data.super_opts.contains(&"mode=750".to_string()),
        "{data:?}"
    );
    let sub = find_mount(&mi, "/data/sub");
    assert!(sub.super_opts.contains(&"size=512k".to_string()), "{sub:?}");
    let di = mi.iter().position(|m| m.mount_point == "/data").unwrap();
    let si = mi
        .iter()
        .position(|m| m.mount_point == "/data/sub")
        .unwrap();
    assert!(di < si, "mounts must be performed in order");
    // The mount point was created inside the rootfs copy, not on the host.
    assert!(b.path_in_rootfs("/data").is_dir());
}

#[test]
fn bind_mounts_ro_and_rw() {
    let h = Ctx::new("bind_mounts_ro_and_rw");
    let id = h.id();
    let mut b = h.bundle(&id);
    let ro = h.subdir("host-ro");
    let rw = h.subdir("host-rw");
    fs::write(ro.join("file"), "from-host\n").unwrap();
    let hostfile = h.dir.join("single-file");
    fs::write(&hostfile, "single\n").unwrap();
    b.bind_host_dir(&ro, "/mnt/ro", true);
    b.bind_host_dir(&rw, "/mnt/rw", false);
    b.mount(json!({
        "destination": "/etc/bound-file", "type": "bind", "source": hostfile,
        "options": ["bind", "ro", "nosuid", "noexec"]
    }));
    b.sh(&format!(
        "cat /mnt/ro/file; touch /mnt/ro/new 2>/dev/null && echo ro-writable; \
         echo from-container > /mnt/rw/out; cat /etc/bound-file; {DUMP_MOUNTINFO}"
    ));
    let out = h.run_ok(&id, &b);
    let (text, mi) = split_mountinfo(&out);
    assert_eq!(text, "from-host\nsingle\n");
    assert!(!ro.join("new").exists());
    assert_eq!(
        fs::read_to_string(rw.join("out")).unwrap(),
        "from-container\n"
    );
    let m = find_mount(&mi, "/mnt/ro");
    assert!(m.opts.contains(&"ro".to_string()), "{m:?}");
    let m = find_mount(&mi, "/mnt/rw");
    assert!(m.opts.contains(&"rw".to_string()), "{m:?}");
    let m = find_mount(&mi, "/etc/bound-file");
    for o in ["ro", "nosuid", "noexec"] {
        assert!(m.opts.contains(&o.to_string()), "{o} missing: {m:?}");
    }
}

/// Every rootfsPropagation value. The bind of the rootfs comes first (an unbindable / used
/// to refuse it: EINVAL), then the container's / gets what the config asks for.
#[test]
fn rootfs_propagation() {
    // Is the host mount holding our temp dir shared? A slave of a private mount is private.
    let host_shared = {
        let mi = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
        let best = mi
            .iter()
            .filter(|m| std::path::Path::new("/tmp").starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.len())
            .unwrap();
        best.optional.iter().any(|o| o.starts_with("shared:"))
    };
    for prop in [
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
    ] {
        let h = Ctx::new(&format!("rootfs_propagation_{prop}"));
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["linux"]["rootfsPropagation"] = json!(prop);
        b.sh(DUMP_MOUNTINFO);
        let out = h.run_ok(&id, &b);
        let (_, mi) = split_mountinfo(&out);
        let root = find_mount(&mi, "/");
        let has = |p: &str| root.optional.iter().any(|o| o.starts_with(p));
        match prop.trim_start_matches('r') {
            "private" => assert!(!has("shared:") && !has("master:"), "{prop}: {root:?}"),
            "unbindable" => assert_eq!(root.propagation(), "unbindable", "{prop}: {root:?}"),
            "slave" => {
                assert!(!has("shared:"), "{prop}: {root:?}");
                if host_shared {
                    assert!(has("master:"), "{prop}: {root:?}");
                }
            }
            // runc 1.1.5 makes the rootfs's parent mount private before bind-mounting the
            // rootfs onto itself, so with a bundle on a private host mount its "/" never ends
            // up shared. The spec says rootfsPropagation sets the rootfs mount's propagation.
            _ if is_runc() => {}
            _ => assert!(has("shared:"), "{prop}: {root:?}"),
        }
    }
}

#[test]
fn dev_contents() {
    let h = Ctx::new("dev_contents");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh(&format!(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         stat -L -c '%n %t:%T' /dev/ptmx; \
         for l in fd stdin stdout stderr; do echo /dev/$l $(readlink /dev/$l); done; \
         echo x > /dev/null && echo null-ok; \
         head -c 3 /dev/zero | od -An -tx1; \
         echo x > /dev/full 2>/dev/null || echo full-enospc; \
         head -c 8 /dev/urandom | wc -c; \
         {DUMP_MOUNTINFO}"
    ));
    let out = h.run_ok(&id, &b);
    let (text, mi) = split_mountinfo(&out);
    let lines: Vec<&str> = text.lines().collect();
    let want = [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
        "/dev/ptmx 5:2",
        "/dev/fd /proc/self/fd",
        "/dev/stdin /proc/self/fd/0",
        "/dev/stdout /proc/self/fd/1",
        "/dev/stderr /proc/self/fd/2",
        "null-ok",
        " 00 00 00",
        "full-enospc",
        "8",
    ];
    assert_eq!(lines, want, "{text}");
    assert_eq!(find_mount(&mi, "/dev").fstype, "tmpfs");
    assert_eq!(find_mount(&mi, "/dev/pts").fstype, "devpts");
    assert_eq!(find_mount(&mi, "/dev/shm").fstype, "tmpfs");
    assert_eq!(find_mount(&mi, "/dev/mqueue").fstype, "mqueue");
}

#[test]
fn linux_devices() {
    let h = Ctx::new("linux_devices");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["devices"] = json!([
        { "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0 },
        { "path": "/dev/rt-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1000 },
        { "path": "/dev/sub/dir/rt-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600 }
    ]);
    // No CAP_DAC_OVERRIDE in the default capability set: use the root-owned rt-zero.
    b.sh(
        "stat -c '%n %F %t:%T %a %u:%g' /dev/fuse /dev/rt-null /dev/sub/dir/rt-zero; \
         head -c 5 /dev/sub/dir/rt-zero | wc -c",
    );
    let out = h.run_ok(&id, &b);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "/dev/fuse character special file a:e5 666 0:0",
            "/dev/rt-null character special file 1:3 640 1000:1000",
            "/dev/sub/dir/rt-zero character special file 1:5 600 0:0",
            "5"
        ]
    );
}

#[test]
fn masked_paths() {
    let h = Ctx::new("masked_paths");
    let id = h.id();
    let mut b = h.bundle(&id);
    fs::create_dir_all(b.path_in_rootfs("/masked-dir")).unwrap();
    fs::write(b.path_in_rootfs("/masked-dir/secret"), "secret").unwrap();
    fs::write(b.path_in_rootfs("/masked-file"), "secret").unwrap();
    b.config["linux"]["maskedPaths"] = json!([
        "/proc/kcore",
        "/proc/timer_list",
        "/proc/keys",
        "/proc/acpi",
        "/masked-dir",
        "/masked-file",
        "/does-not-exist"
    ]);
    b.sh("for f in /proc/kcore /proc/timer_list /proc/keys; do \
           [ -e $f ] && echo $f $(cat $f | wc -c); done; \
         [ -d /proc/acpi ] && echo /proc/acpi $(ls -A /proc/acpi | wc -l); \
         echo /masked-dir $(ls -A /masked-dir | wc -l); \
         echo /masked-file $(wc -c < /masked-file); \
         touch /masked-dir/x 2>/dev/null && echo dir-writable; \
         echo x > /masked-file 2>/dev/null; echo /masked-file $(wc -c < /masked-file)");
    let out = h.run_ok(&id, &b);
    let mut seen = Vec::new();
    for l in out.lines() {
        let (path, n) = l
            .split_once(' ')
            .unwrap_or_else(|| panic!("unexpected line {l:?}"));
        assert_eq!(n, "0", "{path} is not masked: {out}");
        seen.push(path);
    }
    for p in [
        "/proc/kcore",
        "/proc/timer_list",
        "/proc/keys",
        "/proc/acpi",
    ] {
        // Every masked path that exists on this kernel must have been reported (and empty).
        assert_eq!(
            std::path::Path::new(p).exists(),
            seen.contains(&p),
            "{p}: {out}"
        );
    }
    assert_eq!(seen.iter().filter(|p| **p == "/masked-file").count(), 2);
    // The rootfs itself is untouched.
    assert_eq!(
        fs::read_to_string(b.path_in_rootfs("/masked-file")).unwrap(),
        "secret"
    );
    assert!(!b.path_in_rootfs("/does-not-exist").exists());
}

#[test]
fn readonly_paths() {
    let h = Ctx::new("readonly_paths");
    let id = h.id();
    let mut b = h.bundle(&id);
    fs::create_dir_all(b.path_in_rootfs("/ro-dir")).unwrap();
    fs::write(b.path_in_rootfs("/ro-dir/f"), "content\n").unwrap();
    b.config["linux"]["readonlyPaths"] = json!(["/proc/sys", "/ro-dir", "/does-not-exist"]);
    b.sh(&format!(
        "cat /ro-dir/f; touch /ro-dir/x 2>/dev/null && echo ro-dir-writable; \
         echo 1 > /proc/sys/kernel/shmmni 2>/dev/null && echo proc-sys-writable; \
         touch /tmp/x && echo tmp-writable; {DUMP_MOUNTINFO}"
    ));
    let out = h.run_ok(&id, &b);
    let (text, mi) = split_mountinfo(&out);
    assert_eq!(text, "content\ntmp-writable\n");
    assert!(find_mount(&mi, "/ro-dir").opts.contains(&"ro".to_string()));
    assert!(find_mount(&mi, "/proc/sys")
        .opts
        .contains(&"ro".to_string()));
}

#[test]
fn symlink_mount_destination_stays_in_rootfs() {
    let h = Ctx::new("symlink_mount_destination_stays_in_rootfs");
    let id = h.id();
    let mut b = h.bundle(&id);
    // /evil points at an absolute host path; resolved on the host it would escape.
    let hostside = h.subdir("hostside");
    std::os::unix::fs::symlink(&hostside, b.path_in_rootfs("/evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", b.path_in_rootfs("/up")).unwrap();
    b.mount(json!({
        "destination": "/evil/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]
    }));
    b.mount(json!({
        "destination": "/up/y", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]
    }));
    b.sh(&format!(
        "touch /evil/x/inside /up/y/inside && echo ok; {DUMP_MOUNTINFO}"
    ));
    let out = h.run_ok(&id, &b);
    let (text, mi) = split_mountinfo(&out);
    assert_eq!(text, "ok\n");
    assert!(
        !hostside.join("x").exists(),
        "mount destination escaped the rootfs"
    );
    assert!(
        !std::path::Path::new("/y").exists(),
        "mount destination escaped the rootfs via .."
    );
    // Inside, the symlink resolves (chrooted) to a path in the rootfs where the tmpfs is.
    let inside = format!("{}/x", hostside.display());
    assert_eq!(find_mount(&mi, &inside).fstype, "tmpfs");
    assert_eq!(find_mount(&mi, "/y").fstype, "tmpfs");
    assert!(b.path_in_rootfs(&inside).is_dir());
}

#[test]
fn no_pivot() {
    let h = Ctx::new("no_pivot");
    let id = h.id();
    let mut b = h.bundle(&id);
    // A directory of the host's / that the rootfs lacks: the container must not see it.
    let rootfs = b.rootfs();
    let host_only = fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !rootfs.join(n).exists() && Path::new("/").join(n).is_dir())
        .min()
        .expect("the host's / has a directory the busybox rootfs lacks");
    b.sh(&format!(
        "[ -e '/{host_only}' ] && echo host-visible; [ -x /bin/busybox ] && echo ok; \
         cat /proc/self/cgroup >/dev/null && echo proc"
    ));
    b.save();
    let out = h.rt(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    out.ok();
    assert_eq!(out.stdout, "ok\nproc\n");
    h.assert_nothing_left(&id);
}
