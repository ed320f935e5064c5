//! User namespaces run by root, and idmapped mounts: what a container mapped to a range of
//! host ids sees of the host's files, and how an idmapped bind (mounts[].uidMappings,
//! `idmap`, `ridmap`) makes a volume's owners the container's, as Kubernetes pods without
//! host users (hostUsers: false) need.
//!
//! The rootfs copies belong to the host's root, whom these containers do not map: they
//! read and run it as "others", and cannot make directories in it, so every mount point
//! is made on the host before the container starts.

use integration::mountinfo::{self, find_mount};
use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Whether user namespaces (and, with `idmap`, idmapped mounts) work here; says why not.
fn supported(h: &Ctx, idmap: bool) -> bool {
    let why = host::user_namespaces()
        .err()
        .or_else(|| idmap.then(host::idmapped_mounts).and_then(Result::err));
    match why {
        Some(why) => {
            skip(&h.name, why);
            false
        }
        None => true,
    }
}

/// A mount point made in the rootfs copy (the container's root could not make it there).
fn mount_point(b: &Bundle, inner: &str) {
    fs::create_dir_all(b.path_in_rootfs(inner)).unwrap();
}

fn owner(p: &Path) -> (u32, u32) {
    let m = fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// One mapping entry, as both uidMappings and gidMappings.
fn mapping(container: u32, host: u32, size: u32) -> Value {
    json!([{ "containerID": container, "hostID": host, "size": size }])
}

/// An idmapped bind of `source` at `dest` with `options` and, when given, its own mapping.
fn idmapped(dest: &str, source: &Path, options: &[&str], map: Option<Value>) -> Value {
    let mut m =
        json!({ "destination": dest, "type": "bind", "source": source, "options": options });
    if let Some(map) = map {
        m["uidMappings"] = map.clone();
        m["gidMappings"] = map;
    }
    m
}

/// A container mapped 0 → 100000 (65536 ids) sees the host's root files as nobody's,
/// its own ids as the map says, and cannot read a host root's 0600 file bound in.
#[test]
fn userns_with_a_host_range() {
    let h = Ctx::new("userns_with_a_host_range");
    if !supported(&h, false) {
        return;
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    b.user_namespace(100000);
    let secret = h.subdir("secret").join("key");
    fs::write(&secret, "host secret\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(b.path_in_rootfs("/key"), "").unwrap();
    b.mount(json!({ "destination": "/key", "type": "bind", "source": secret, "options": ["bind", "ro"] }));
    b.sh(
        "stat -c '%u:%g' /bin /key; cat /proc/self/uid_map /proc/self/gid_map; id -u; \
          cat /key 2>&1 || echo refused",
    );
    let out = h.run_ok(&id, &b);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["65534:65534"], "{out}");
    assert_eq!(lines[1], ["65534:65534"], "{out}");
    assert_eq!(lines[2], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[3], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[4], ["0"], "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert_eq!(lines.last().unwrap(), &["refused"], "{out}");
    assert!(!out.contains("host secret"), "{out}");
    h.assert_nothing_left(&id);
}

/// An idmapped bind with its own mapping (1000 → 100000) in a container mapped 0 → 100000:
/// the host's 1000:1000 files are root's inside, and root's writes land as 1000:1000.
#[test]
fn idmapped_bind_maps_a_volume_to_the_container() {
    let h = Ctx::new("idmapped_bind_maps_a_volume");
    if !supported(&h, true) {
        return;
    }
    let vol = h.subdir("vol");
    fs::write(vol.join("f"), "from the host\n").unwrap();
    for p in [&vol, &vol.join("f")] {
        chown(p, Some(1000), Some(1000)).unwrap();
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    b.user_namespace(100000);
    mount_point(&b, "/vol");
    b.mount(idmapped(
        "/vol",
        &vol,
        &["rbind", "idmap"],
        Some(mapping(1000, 100000, 1)),
    ));
    b.sh("stat -c '%u:%g' /vol /vol/f; cat /vol/f; echo inside > /vol/new && stat -c '%u:%g' /vol/new; \
          cat /proc/self/mountinfo");
    let out = h.run_ok(&id, &b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..4], ["0:0", "0:0", "from the host", "0:0"], "{out}");
    let mounts = mountinfo::parse(&out);
    let m = find_mount(&mounts, "/vol");
    assert!(m.has_opt("idmapped"), "{m:?}");
    assert_eq!(owner(&vol.join("new")), (1000, 1000));
    assert_eq!(fs::read_to_string(vol.join("new")).unwrap(), "inside\n");
    h.assert_nothing_left(&id);
}

/// `idmap` without mappings of its own takes the container's (0 → 100000): the host's
/// root files are root's inside. `ridmap` on an rbind maps the mount below too; `idmap`
/// on an rbind only the top one (the submount stays the host's: nobody inside).
#[test]
fn idmap_takes_the_container_mapping_and_ridmap_reaches_submounts() {
    let h = Ctx::new("idmap_and_ridmap");
    if !supported(&h, true) {
        return;
    }
    let vol = h.subdir("vol");
    let sub = vol.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let other = h.subdir("other");
    fs::write(other.join("g"), "below\n").unwrap();
    let st = Command::new("mount")
        .arg("--bind")
        .arg(&other)
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success(), "bind a directory below the volume");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.user_namespace(100000);
    mount_point(&b, "/r");
    mount_point(&b, "/n");
    mount_point(&b, "/plain");
    b.mount(idmapped("/r", &vol, &["rbind", "ridmap"], None));
    b.mount(idmapped("/n", &vol, &["rbind", "idmap"], None));
    b.bind_host_dir(&vol, "/plain", false);
    b.sh(
        "stat -c %u /r /r/sub /r/sub/g /n /n/sub /plain; cat /r/sub/g; \
          touch /r/sub/w && echo wrote-below; touch /n/sub/w 2>/dev/null || echo refused-below",
    );
    let out = h.run_ok(&id, &b);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "0",
            "0",
            "0",
            "0",
            "65534",
            "65534",
            "below",
            "wrote-below",
            "refused-below"
        ],
        "{out}"
    );
    // Through the recursively idmapped submount, root's write is the host's root's.
    assert_eq!(owner(&other.join("w")), (0, 0));
    h.assert_nothing_left(&id);
}

/// A source whose filesystem refuses idmapping (procfs), and an idmapped tmpfs, fail in
/// one line naming the mount; no state, container, process or mount stays behind.
#[test]
fn idmap_refusals_leave_nothing() {
    let h = Ctx::new("idmap_refusals_leave_nothing");
    if !supported(&h, true) {
        return;
    }
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let cases = [
        (
            json!({ "destination": "/p", "type": "bind", "source": "/proc", "options": ["rbind", "idmap"] }),
            vec!["mounts[7] (/p)", "mount_setattr", "source /proc", "EINVAL"],
        ),
        (
            json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"] }),
            vec!["mounts[7] (/t)", "only bind mounts can be idmapped"],
        ),
    ];
    for (m, needles) in cases {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.user_namespace(100000);
        mount_point(&b, "/p");
        mount_point(&b, "/t");
        b.mount(m);
        b.args(&["true"]);
        assert_create_fails_with(&h, &id, &b, &needles);
        let list = h.rt(&["list", "-q"]);
        assert_eq!(list.ok().stdout.trim(), "", "{}", list.describe());
    }
    // No mount of this test's (its bundles, or /proc cloned) reached the host's table.
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = h.dir.display().to_string();
    assert!(!after.contains(&dir), "{after}");
    let procs = |t: &str| t.lines().filter(|l| l.contains(" - proc ")).count();
    assert_eq!(procs(&before), procs(&after), "{after}");
}

/// A volume on a shared host mount: its idmapped clone is attached as a slave, as rt's
/// other binds are, so a mount the container makes inside it stays in the container. (A
/// clone is a peer of a shared source: such a mount used to appear on the host.)
#[test]
fn idmapped_volume_sends_no_mount_back_to_the_host() {
    let h = Ctx::new("idmapped_volume_no_mount_back");
    if !supported(&h, true) {
        return;
    }
    let vol = h.subdir("shared-vol");
    fs::create_dir_all(vol.join("x")).unwrap();
    for args in [&["--bind"][..], &["--make-shared"][..]] {
        let mut c = Command::new("mount");
        c.args(args).arg(&vol);
        if args == ["--bind"] {
            c.arg(&vol);
        }
        assert!(c.status().unwrap().success(), "{c:?}");
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    b.user_namespace(100000);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN"]);
    }
    mount_point(&b, "/vol");
    b.mount(idmapped("/vol", &vol, &["rbind", "idmap"], None));
    b.sh("mount -t tmpfs rt-idmap-inner /vol/x && echo mounted; cat /proc/self/mountinfo");
    let out = h.run_ok(&id, &b);
    assert!(out.starts_with("mounted\n"), "{out}");
    let mounts = mountinfo::parse(&out);
    assert_eq!(find_mount(&mounts, "/vol").propagation(), "slave", "{out}");
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains("rt-idmap-inner"), "{host}");
    h.assert_nothing_left(&id);
}

/// `rt features` says idmapped mounts work (mount_setattr is there) and lists the options.
#[test]
fn features_report_idmap() {
    let h = Ctx::new("features_report_idmap");
    let v: Value = serde_json::from_str(&h.rt(&["features"]).ok().stdout).unwrap();
    assert_eq!(
        v["linux"]["mountExtensions"]["idmap"]["enabled"],
        host::idmapped_mounts().is_ok()
    );
    let opts = v["mountOptions"].as_array().unwrap();
    for o in ["idmap", "ridmap"] {
        assert!(opts.iter().any(|x| x == o), "{o} in {opts:?}");
    }
}

/// Kubernetes without host users (hostUsers: false): a pod sandbox with its own user
/// namespace (0 → 200000), and an app container that joins it by path, with the
/// sandbox's network, ipc and uts namespaces, and no mappings of its own. Its volume, the
/// host's root files, is idmapped 0 → 200000: root's inside, and root's writes are the
/// host root's again; idmapped without a mapping, it takes the joined namespace's.
#[test]
fn pod_sandbox_userns_joined_with_an_idmapped_volume() {
    let h = Ctx::new("pod_sandbox_userns");
    if !supported(&h, true) {
        return;
    }
    let sandbox = h.id();
    let mut sb = h.bundle(&sandbox);
    sb.user_namespace(200000);
    sb.args(&["sleep", "1000"]);
    h.run_detached(&sandbox, &sb).ok();
    let spid = h.state_ok(&sandbox)["pid"].as_i64().unwrap();
    let ns = |t: &str| format!("/proc/{spid}/ns/{t}");

    let vol = h.subdir("volume");
    fs::write(vol.join("config"), "from the host\n").unwrap();
    let app = h.id();
    let mut ab = h.bundle(&app);
    ab.namespace("user", Some(&ns("user")));
    for (ty, file) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        ab.namespace(ty, Some(&ns(file)));
    }
    // The uts namespace is the sandbox's: its hostname is not the app's to set.
    ab.config.as_object_mut().unwrap().remove("hostname");
    mount_point(&ab, "/volume");
    mount_point(&ab, "/joined");
    ab.mount(idmapped(
        "/volume",
        &vol,
        &["rbind", "idmap"],
        Some(mapping(0, 200000, 65536)),
    ));
    // No mapping of its own: the one of the user namespace the container joins.
    ab.mount(idmapped("/joined", &vol, &["rbind", "idmap"], None));
    ab.sh(
        "stat -c '%u:%g' /joined/config /volume /volume/config; echo app > /volume/written; \
           cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/self/ns/net; id -u",
    );
    let out = h.run_ok(&app, &ab);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["0:0", "0:0", "0:0"], "{out}");
    let lines = &lines[1..];
    let sandbox_map = fs::read_to_string(format!("/proc/{spid}/uid_map")).unwrap();
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        sandbox_map.split_whitespace().collect::<Vec<_>>(),
        "{out}"
    );
    assert_eq!(
        sandbox_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"]
    );
    let link = |t: &str| fs::read_link(ns(t)).unwrap().to_string_lossy().into_owned();
    assert_eq!(lines[3], link("user"), "{out}");
    assert_eq!(lines[4], link("net"), "{out}");
    assert_eq!(lines[5], "0", "{out}");
    assert_eq!(owner(&vol.join("written")), (0, 0));
    // The sandbox is untouched: still running, in the same namespace.
    assert_eq!(h.status(&sandbox).as_deref(), Some("running"));
    h.delete_force(&sandbox).ok();
    h.assert_nothing_left(&sandbox);
}

/// The pod case driven through containerd 1.6 and our shim with `ctr` (its CRI passes no
/// user namespace options): a sandbox with `--uidmap`/`--gidmap` (containerd chowns its
/// snapshot to the range), and an app container that joins its user, network, ipc and uts
/// namespaces (`--with-ns`) with a volume bound `rbind:idmap`, taking the joined
/// namespace's mapping. The app's rootfs (`--rootfs`, a copy the host's root owns) has
/// the mount points containerd's default spec needs.
#[test]
fn pod_through_containerd_with_an_idmapped_volume() {
    use integration::containerd::{Containerd, IMAGE, RUNTIME};
    let h = Ctx::new("pod_through_containerd");
    if !supported(&h, true) {
        return;
    }
    if Command::new("ctr").arg("--version").output().is_err() {
        skip(&h.name, "no ctr (apt-get install containerd)");
        return;
    }
    // Started, with the image imported; stopped and cleaned up when dropped.
    let c = Containerd::start("userns-pod");
    c.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--uidmap",
        "0:200000:65536",
        "--gidmap",
        "0:200000:65536",
        IMAGE,
        "sandbox",
        "sleep",
        "1000",
    ])
    .ok();
    let spid: i32 = c
        .ctr(&["task", "ls"])
        .ok()
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("sandbox"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("the sandbox's pid in ctr task ls");
    let ns = |t: &str| format!("/proc/{spid}/ns/{t}");
    let vol = h.subdir("volume");
    fs::write(vol.join("config"), "from the host\n").unwrap();
    let rootfs = h.dir.join("app-rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs_src())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success());
    for d in ["run", "volume"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let with_ns: Vec<String> = [
        ("user", "user"),
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
    ]
    .iter()
    .map(|(ty, file)| format!("{ty}:{}", ns(file)))
    .collect();
    let mount = format!(
        "type=bind,src={},dst=/volume,options=rbind:idmap",
        vol.display()
    );
    let rootfs_s = rootfs.display().to_string();
    let mut args = vec!["run", "--rm", "--runtime", RUNTIME, "--mount", &mount];
    for n in &with_ns {
        args.extend(["--with-ns", n.as_str()]);
    }
    args.extend([
        "--rootfs",
        &rootfs_s,
        "app",
        "sh",
        "-c",
        "stat -c %u:%g /volume/config; echo app > /volume/written; cat /proc/self/uid_map; \
         readlink /proc/self/ns/user",
    ]);
    let out = c.ctr(&args);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0:0", "{}", out.describe());
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"],
        "{}",
        out.describe()
    );
    let user_ns = fs::read_link(ns("user")).unwrap();
    assert_eq!(lines[2], user_ns.to_string_lossy(), "{}", out.describe());
    assert_eq!(owner(&vol.join("written")), (0, 0));
    c.remove("sandbox");
}
