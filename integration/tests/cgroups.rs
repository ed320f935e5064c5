//! linux.resources biting for real: each limit is set, then shown to hold from inside the
//! container (or read back from the host's cgroup files where the kernel gives no other
//! sign). Runs on this host's cgroup v1 hierarchies (and the v2 one for what lives only
//! there); the cgroup v2 guest (vm/) covers pure v2.

use integration::*;
use serde_json::json;
use std::fs;
use std::path::PathBuf;

/// The host-side file of controller `ctrl` for container `id`: its v1 hierarchy when
/// mounted, else the unified one.
fn host_file(ctrl: &str, id: &str, file: &str) -> PathBuf {
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/{ctrl}"));
    let base = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    };
    base.join("rt-test").join(id).join(file)
}

fn read_host(ctrl: &str, id: &str, file: &str) -> String {
    let p = host_file(ctrl, id, file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn memory_limit_oom_kills() {
    let h = Ctx::new("memory_limit_oom_kills");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "memory": { "limit": 16 * 1024 * 1024 } });
    // dd needs a 64 MiB buffer: over the 16 MiB limit it is OOM-killed.
    b.sh("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?");
    let out = h.run_ok(&id, &b);
    assert_eq!(
        out.trim(),
        "dd=137",
        "dd must be SIGKILLed by the OOM killer"
    );
    h.assert_nothing_left(&id);
}

#[test]
fn memory_limit_is_written() {
    let h = Ctx::new("memory_limit_is_written");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({
        "memory": { "limit": 33554432, "reservation": 16777216, "swappiness": 10 }
    });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    assert_eq!(
        read_host("memory", &id, "memory.limit_in_bytes"),
        "33554432"
    );
    assert_eq!(
        read_host("memory", &id, "memory.soft_limit_in_bytes"),
        "16777216"
    );
    assert_eq!(read_host("memory", &id, "memory.swappiness"), "10");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn pids_limit_stops_forks() {
    let h = Ctx::new("pids_limit_stops_forks");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "pids": { "limit": 5 } });
    // Start sleepers until a fork fails; with 5 pids (sh itself is one) only 4 succeed.
    // pids.max first (cat is a fork), then sleepers, numbered, until a fork fails (busybox
    // sh gives up there): with 5 pids and sh itself being one, exactly 4 start.
    b.sh(
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
          for i in 1 2 3 4 5 6 7 8; do sleep 5 & echo $i; done",
    );
    let out = h.run(&id, &b);
    assert_eq!(
        out.stdout, "5\n1\n2\n3\n4\n",
        "forks past pids.limit must fail"
    );
    assert!(out.stderr.contains("can't fork"), "{}", out.stderr);
    h.assert_nothing_left(&id);
}

#[test]
fn cpuset_is_visible_in_status() {
    let h = Ctx::new("cpuset_is_visible_in_status");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "cpu": { "cpus": "0", "mems": "0" } });
    b.sh("grep Cpus_allowed_list /proc/self/status");
    assert_eq!(h.run_ok(&id, &b).trim(), "Cpus_allowed_list:\t0");
    h.assert_nothing_left(&id);
}

#[test]
fn cpu_values_are_written() {
    let h = Ctx::new("cpu_values_are_written");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({
        "cpu": { "shares": 512, "quota": 20000, "period": 100000 }
    });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    assert_eq!(read_host("cpu", &id, "cpu.shares"), "512");
    assert_eq!(read_host("cpu", &id, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read_host("cpu", &id, "cpu.cfs_period_us"), "100000");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn denied_device_cannot_be_opened() {
    let h = Ctx::new("denied_device_cannot_be_opened");
    let id = h.id();
    let mut b = h.bundle(&id);
    // /dev/loop-control (c 10:237) bind-mounted from the host: the node is there, the
    // device cgroup decides. The default devices (null, zero, ...) stay allowed.
    b.mount(json!({ "destination": "/dev/loop-control", "type": "bind", "source": "/dev/loop-control", "options": ["bind"] }));
    b.config["linux"]["resources"] = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    b.sh("(exec 3</dev/loop-control) 2>/dev/null && echo open || echo denied; head -c 1 /dev/zero | wc -c");
    assert_eq!(h.run_ok(&id, &b), "denied\n1\n");
    // With an allow rule for it, the same node opens.
    let id2 = h.id();
    let mut b2 = h.bundle(&id2);
    // An explicit allow rule opens it again (no rules at all still denies it, as runc).
    b2.config["linux"]["resources"] = json!({ "devices": [
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 10, "minor": 237, "access": "rw" }
    ]});
    b2.mount(json!({ "destination": "/dev/loop-control", "type": "bind", "source": "/dev/loop-control", "options": ["bind"] }));
    b2.sh("(exec 3</dev/loop-control) 2>/dev/null && echo open || echo denied");
    assert_eq!(h.run_ok(&id2, &b2), "open\n");
    h.assert_nothing_left(&id);
    h.assert_nothing_left(&id2);
}

#[test]
fn blkio_throttle_is_written() {
    let h = Ctx::new("blkio_throttle_is_written");
    let id = h.id();
    let mut b = h.bundle(&id);
    // The device of the root filesystem.
    let dev = fs::metadata("/").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.dev()
    });
    let dev = dev.unwrap();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    b.config["linux"]["resources"] = json!({ "blockIO": {
        "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 1048576 }],
        "throttleWriteIOPSDevice": [{ "major": major, "minor": minor, "rate": 100 }]
    }});
    b.args(&["true"]);
    let created = h.create(&id, &b);
    if !created.success() && created.stderr.contains("ENOENT") {
        // A device without a request queue (e.g. an overlay) cannot be throttled.
        eprintln!(
            "skipped: {major}:{minor} cannot be throttled here: {}",
            created.stderr
        );
        return;
    }
    created.ok();
    assert_eq!(
        read_host("blkio", &id, "blkio.throttle.read_bps_device"),
        format!("{major}:{minor} 1048576")
    );
    assert_eq!(
        read_host("blkio", &id, "blkio.throttle.write_iops_device"),
        format!("{major}:{minor} 100")
    );
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn network_classid_and_priorities_are_written() {
    if !std::path::Path::new("/sys/fs/cgroup/net_cls").is_dir() {
        eprintln!("skipped: this host mounts no net_cls hierarchy");
        return;
    }
    let h = Ctx::new("network_classid_and_priorities");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "network": { "classID": 1048577 } });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    assert_eq!(read_host("net_cls", &id, "net_cls.classid"), "1048577");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn unknown_controller_value_fails_cleanly() {
    let h = Ctx::new("unknown_controller_value_fails_cleanly");
    let id = h.id();
    let mut b = h.bundle(&id);
    // cpuset.cpus naming a CPU that does not exist: the kernel refuses it.
    b.config["linux"]["resources"] = json!({ "cpu": { "cpus": "4095" } });
    b.args(&["true"]);
    let out = h.create(&id, &b);
    if is_runc() {
        out.expect_code(1); // runc adds a warning line before its error
    } else {
        out.expect_error();
    }
    assert!(out.stderr.contains("cpuset.cpus"), "{}", out.stderr);
    h.assert_nothing_left(&id);
}

#[test]
fn blkio_weight_is_written() {
    let h = Ctx::new("blkio_weight_is_written");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "blockIO": { "weight": 500 } });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    // Kernels whose block layer uses BFQ only have the bfq file.
    let plain = host_file("blkio", &id, "blkio.weight");
    let file = if plain.exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    let got = read_host("blkio", &id, file);
    // blkio.bfq.weight reads "default 500" on newer kernels.
    assert!(got == "500" || got == "default 500", "{file}: {got:?}");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn memory_swap_and_oom_killer_settings_are_written() {
    let h = Ctx::new("memory_swap_and_oom_killer");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({
        "memory": { "limit": 33554432, "swap": 67108864, "disableOOMKiller": true }
    });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    if host_file("memory", &id, "memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read_host("memory", &id, "memory.memsw.limit_in_bytes"),
            "67108864"
        );
    }
    let oom = read_host("memory", &id, "memory.oom_control");
    assert!(oom.lines().any(|l| l == "oom_kill_disable 1"), "{oom}");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn cpu_burst_idle_and_realtime_are_written() {
    let h = Ctx::new("cpu_burst_idle_and_realtime");
    let id = h.id();
    let mut b = h.bundle(&id);
    // A realtime budget must fit in the parent's: the test parent (/rt-test) gets none by
    // default, so only the period (always allowed) and a zero runtime are set here.
    b.config["linux"]["resources"] = json!({
        "cpu": { "quota": 50000, "period": 100000, "burst": 20000, "idle": 1, "realtimePeriod": 500000 }
    });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    assert_eq!(read_host("cpu", &id, "cpu.rt_period_us"), "500000");
    // burst and idle came with runtime-spec 1.1; runc 1.1.5 ignores them.
    if !is_runc() {
        assert_eq!(read_host("cpu", &id, "cpu.cfs_burst_us"), "20000");
        assert_eq!(read_host("cpu", &id, "cpu.idle"), "1");
    }
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}
