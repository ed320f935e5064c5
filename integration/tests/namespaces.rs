//! Namespaces: new ones per type, and joining existing ones by path.

use integration::*;
use serde_json::json;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn host_ns(ty: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{ty}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `run` a script printing `readlink /proc/self/ns/<ty>` for each type, one per line.
fn container_ns(h: &Ctx, b: &mut Bundle, id: &str, types: &[&str]) -> Vec<String> {
    let script: String = types
        .iter()
        .map(|t| format!("readlink /proc/self/ns/{t}; "))
        .collect();
    b.sh(&script);
    h.run_ok(id, b).lines().map(str::to_string).collect()
}

#[test]
fn new_namespaces_differ_from_host() {
    let h = Ctx::new("new_namespaces_differ_from_host");
    let id = h.id();
    let mut b = h.bundle(&id);
    let mut types = vec!["pid", "net", "ipc", "uts", "mnt"];
    // Cgroup namespaces came with Linux 4.6.
    if host::has_namespace("cgroup") {
        b.namespace("cgroup", None);
        types.push("cgroup");
    } else {
        skip(
            "new_namespaces_differ_from_host",
            "kernel without cgroup namespaces: the other types are checked",
        );
    }
    let inside = container_ns(&h, &mut b, &id, &types);
    assert_eq!(inside.len(), types.len(), "{inside:?}");
    for (t, ns) in types.iter().zip(&inside) {
        assert_ne!(ns, &host_ns(t), "{t} namespace must be new");
        assert!(ns.starts_with(&format!("{t}:[")), "{ns}");
    }
}

#[test]
fn omitted_namespaces_are_shared_with_host() {
    let h = Ctx::new("omitted_namespaces_are_shared_with_host");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.remove_namespace("ipc")
        .remove_namespace("uts")
        .remove_namespace("network");
    // No uts namespace: setting a hostname is an error, so drop it.
    b.config.as_object_mut().unwrap().remove("hostname");
    // Without its own network namespace a container cannot mount a fresh sysfs; this test is
    // about namespaces, so leave /sys (and the masks below it) out.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
    b.config["linux"]["maskedPaths"] = json!([]);
    let types = ["ipc", "uts", "net", "pid", "mnt"];
    let inside = container_ns(&h, &mut b, &id, &types);
    assert_eq!(inside[0], host_ns("ipc"));
    assert_eq!(inside[1], host_ns("uts"));
    assert_eq!(inside[2], host_ns("net"));
    assert_ne!(inside[3], host_ns("pid"));
    assert_ne!(inside[4], host_ns("mnt"));
}

#[test]
fn pid_namespace_init_is_pid_1() {
    let h = Ctx::new("pid_namespace_init_is_pid_1");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("echo $$; ls /proc | grep -c '^[0-9]'");
    let out = h.run_ok(&id, &b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    // Only the shell, ls and grep (and maybe nothing else) are visible.
    let n: u32 = lines[1].parse().unwrap();
    assert!(
        n <= 3,
        "too many processes visible in the pid namespace: {n}"
    );
}

#[test]
fn uts_hostname_and_domainname() {
    let h = Ctx::new("uts_hostname_and_domainname");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["hostname"] = json!("rt-test-host");
    b.config["domainname"] = json!("rt-test.example");
    b.sh("hostname; cat /proc/sys/kernel/domainname");
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = h.run_ok(&id, &b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "rt-test-host");
    // runc 1.1.5 ignores `domainname` (support arrived in runc 1.2); the spec requires it.
    if !is_runc() {
        assert_eq!(lines[1], "rt-test.example");
    }
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_before
    );
}

#[test]
fn network_namespace_has_only_lo() {
    let h = Ctx::new("network_namespace_has_only_lo");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh(
        "echo --; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort; echo --; \
          cat /sys/class/net/lo/flags",
    );
    let out = h.run_ok(&id, &b);
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    let devices: Vec<&str> = parts[1].lines().collect();
    // What any new network namespace holds here: lo, and the fallback devices of the tunnel
    // modules this kernel has loaded (sit0, tunl0, gre0...), none of the host's own.
    let fresh = host::new_netns_interfaces();
    assert!(fresh.iter().any(|d| d == "lo"), "{fresh:?}");
    assert_eq!(
        devices, fresh,
        "a new network namespace must hold what the kernel puts in every one: {out}"
    );
    let flags = u32::from_str_radix(parts[2].trim().trim_start_matches("0x"), 16).unwrap();
    assert!(
        flags & libc::IFF_UP as u32 != 0,
        "lo should be up (flags {flags:#x})"
    );
}

#[test]
fn mount_namespace_hides_container_mounts() {
    let h = Ctx::new("mount_namespace_hides_container_mounts");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "100"]);
    h.create_ok(&id, &b);
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = b.dir.to_str().unwrap();
    let leaked: Vec<&str> = host.lines().filter(|l| l.contains(prefix)).collect();
    assert!(
        leaked.is_empty(),
        "container mounts visible on the host: {leaked:?}"
    );
    let pid = h.state_ok(&id)["pid"].as_i64().unwrap();
    let inner = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        inner.lines().any(|l| l.split(' ').nth(4) == Some("/proc")),
        "{inner}"
    );
    h.delete_force(&id).ok();
}

#[test]
fn cgroup_namespace_shows_root() {
    let h = Ctx::new("cgroup_namespace_shows_root");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.namespace("cgroup", None);
    if !host::has_namespace("cgroup") {
        skip(
            "cgroup_namespace_shows_root",
            "kernel without cgroup namespaces: only the refusal of one is checked",
        );
        b.args(&["true"]);
        assert_create_refused(&h, &id, &b);
        return;
    }
    b.sh("cat /proc/self/cgroup");
    let out = h.run_ok(&id, &b);
    assert!(!out.is_empty());
    for l in out.lines() {
        let path = l.splitn(3, ':').nth(2).unwrap();
        assert_eq!(path, "/", "cgroup namespace root expected: {out}");
    }
}

#[test]
fn without_cgroup_namespace_path_is_cgroups_path() {
    let h = Ctx::new("without_cgroup_namespace_path_is_cgroups_path");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.remove_namespace("cgroup");
    b.sh("cat /proc/self/cgroup");
    let out = h.run_ok(&id, &b);
    let want = cgroups_path(&id);
    // Every hierarchy the host mounts at /sys/fs/cgroup shows the container's cgroupsPath
    // (a named hierarchy mounted elsewhere, or none, is none of the runtime's business).
    let mounted = host::cgroup_hierarchies();
    assert!(!mounted.is_empty(), "no cgroup hierarchy at /sys/fs/cgroup");
    for hier in &mounted {
        let line = out
            .lines()
            .find(|l| {
                let ctrls = l.split(':').nth(1).unwrap_or("-");
                if hier.is_unified() {
                    ctrls.is_empty()
                } else {
                    !ctrls.is_empty() && ctrls.split(',').all(|c| hier.has(c))
                }
            })
            .unwrap_or_else(|| panic!("no line for {hier:?} in:\n{out}"));
        assert!(line.ends_with(&format!(":{want}")), "{hier:?}: {out}");
    }
}

/// A user namespace cannot be made here: a container asking for one is refused cleanly.
/// `Some(why)` then (the caller skips the rest), `None` when user namespaces work.
fn user_namespaces_missing(test: &str, h: &Ctx) -> Option<String> {
    let why = host::user_namespaces().err()?;
    skip(test, format!("{why}: only the refusal of one is checked"));
    let id = h.id();
    let mut b = h.bundle(&id);
    b.user_namespace(100000);
    b.args(&["true"]);
    assert_create_refused(h, &id, &b);
    Some(why)
}

#[test]
fn user_namespace_mappings() {
    let h = Ctx::new("user_namespace_mappings");
    if user_namespaces_missing("user_namespace_mappings", &h).is_some() {
        return;
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    let st = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    b.user_namespace(100000);
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; echo ready > /tmp/ready; exec sleep 100");
    h.run_detached(&id, &b).ok();
    let ready = b.path_in_rootfs("/tmp/ready");
    poll(T, "container to be ready", || ready.exists().then_some(()));
    let pid = h.state_ok(&id)["pid"].as_i64().unwrap();
    // Seen from the host, the container's root is uid 100000.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<&str> = status_field(&status, "Uid")
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(uids, ["100000"; 4]);
    let uid_map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let m: Vec<&str> = uid_map.split_whitespace().collect();
    assert_eq!(m, ["0", "100000", "65536"]);
    assert_ne!(
        fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
        fs::read_link("/proc/self/ns/user").unwrap()
    );
    h.delete_force(&id).ok();
}

#[test]
fn user_namespace_id_inside() {
    let h = Ctx::new("user_namespace_id_inside");
    if user_namespaces_missing("user_namespace_id_inside", &h).is_some() {
        return;
    }
    let id = h.id();
    let mut b = h.bundle(&id);
    let st = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    b.user_namespace(100000);
    b.sh("cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g");
    let out = h.run_ok(&id, &b);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "100000", "65536"]);
    assert_eq!(lines[2], ["0"]);
    assert_eq!(lines[3], ["0"]);
}

#[test]
fn join_network_namespace_of_container() {
    let h = Ctx::new("join_network_namespace_of_container");
    let a = h.id();
    let mut ba = h.bundle(&a);
    ba.args(&["sleep", "100"]);
    h.run_detached(&a, &ba).ok();
    let apid = h.state_ok(&a)["pid"].as_i64().unwrap();
    let a_net = fs::read_link(format!("/proc/{apid}/ns/net")).unwrap();
    let a_uts = fs::read_link(format!("/proc/{apid}/ns/uts")).unwrap();

    let bid = h.id();
    let mut bb = h.bundle(&bid);
    bb.namespace("network", Some(&format!("/proc/{apid}/ns/net")));
    let out = container_ns(&h, &mut bb, &bid, &["net", "uts"]);
    assert_eq!(
        out[0],
        a_net.to_string_lossy(),
        "must join a's network namespace"
    );
    assert_ne!(out[1], a_uts.to_string_lossy(), "uts must still be new");
    h.delete_force(&a).ok();
}

#[test]
fn join_namespaces_of_host_process() {
    let h = Ctx::new("join_namespaces_of_host_process");
    // A process of our own in fresh net and uts namespaces.
    let holder = ChildGuard::spawn(
        Command::new("unshare")
            .args([
                "--net",
                "--uts",
                "sh",
                "-c",
                "hostname held-uts; exec sleep 100",
            ])
            .stdin(Stdio::null()),
    );
    let hp = holder.pid();
    let want_net = poll(T, "unshare to enter its namespaces", || {
        let net = fs::read_link(format!("/proc/{hp}/ns/net")).ok()?;
        let comm = fs::read_to_string(format!("/proc/{hp}/comm")).ok()?;
        (net.to_string_lossy() != host_ns("net") && comm.trim() == "sleep").then_some(net)
    });
    let id = h.id();
    let mut b = h.bundle(&id);
    b.namespace("network", Some(&format!("/proc/{hp}/ns/net")));
    b.namespace("uts", Some(&format!("/proc/{hp}/ns/uts")));
    b.config.as_object_mut().unwrap().remove("hostname");
    b.sh("readlink /proc/self/ns/net; hostname");
    let out = h.run(&id, &b);
    drop(holder);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, [want_net.to_string_lossy().as_ref(), "held-uts"]);
}

#[test]
fn time_namespace_offsets() {
    if is_runc() {
        // runc 1.1.5 does not know the "time" namespace type (added in runc 1.2).
        skip(
            "time_namespace_offsets",
            "runc 1.1.5 does not know time namespaces",
        );
        return;
    }
    let h = Ctx::new("time_namespace_offsets");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.namespace("time", None);
    let year = 365 * 24 * 3600;
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": { "secs": year, "nanosecs": 0 },
        "boottime": { "secs": year, "nanosecs": 0 }
    });
    if !host::has_namespace("time") {
        skip(
            "time_namespace_offsets",
            "kernel without time namespaces (Linux 5.6, CONFIG_TIME_NS): only the refusal \
             of one is checked",
        );
        b.args(&["true"]);
        let out = assert_create_refused(&h, &id, &b);
        assert!(
            out.stderr
                .contains("time namespaces are not supported by this kernel"),
            "{}",
            out.stderr
        );
        return;
    }
    b.sh("readlink /proc/self/ns/time; cut -d. -f1 /proc/uptime");
    let out = h.run_ok(&id, &b);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], host_ns("time"));
    let uptime: i64 = lines[1].parse().unwrap();
    assert!(
        uptime >= year,
        "boottime offset not applied: uptime {uptime}"
    );
}
