//! linux.resources biting for real: each limit is set, then shown to hold from inside the
//! container (or read back from the host's cgroup files where the kernel gives no other
//! sign). Runs on this host's cgroup v1 hierarchies (and the v2 one for what lives only
//! there); the cgroup v2 guest (vm/) covers pure v2.

use integration::*;
use serde_json::json;
use std::fs;
use std::path::PathBuf;

/// The host-side file of controller `ctrl` for container `id`: in its v1 hierarchy when
/// mounted (wherever it is mounted: `cpu` may be `cpu,cpuacct`), else in the unified one.
fn host_file(ctrl: &str, id: &str, file: &str) -> PathBuf {
    let base = host::controller_root(ctrl)
        .unwrap_or_else(|| panic!("no cgroup hierarchy drives {ctrl} on this host"));
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
    // No swap either (see host::memory_without_swap): the limit must end in an OOM kill.
    b.config["linux"]["resources"] =
        json!({ "memory": host::memory_without_swap(16 * 1024 * 1024) });
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
    // CFS bandwidth control (quota, period) is a kernel option (CONFIG_CFS_BANDWIDTH).
    let bandwidth = host::cgroup_has("cpu", "cpu.cfs_quota_us");
    b.config["linux"]["resources"] = if bandwidth {
        json!({ "cpu": { "shares": 512, "quota": 20000, "period": 100000 } })
    } else {
        json!({ "cpu": { "shares": 512 } })
    };
    b.args(&["true"]);
    h.create_ok(&id, &b);
    assert_eq!(read_host("cpu", &id, "cpu.shares"), "512");
    if bandwidth {
        assert_eq!(read_host("cpu", &id, "cpu.cfs_quota_us"), "20000");
        assert_eq!(read_host("cpu", &id, "cpu.cfs_period_us"), "100000");
    } else {
        skip(
            "cpu_values_are_written",
            "this kernel has no CFS bandwidth control (no cpu.cfs_quota_us): quota and \
             period not checked",
        );
    }
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn denied_device_cannot_be_opened() {
    let h = Ctx::new("denied_device_cannot_be_opened");
    let id = h.id();
    let mut b = h.bundle(&id);
    // A host device node (/dev/loop-control, or another this host has and root may open)
    // bind-mounted from the host: the node is there, the device cgroup decides. The default
    // devices (null, zero, ...) stay allowed.
    let dev = host::openable_char_device();
    let bind = |b: &mut Bundle, d: &host::CharDevice| {
        b.mount(
            json!({ "destination": d.path, "type": "bind", "source": d.path, "options": ["bind"] }),
        );
    };
    let try_open = |d: &host::CharDevice| {
        format!(
            "(exec {}) 2>/dev/null && echo open || echo denied",
            d.redirect()
        )
    };
    b.config["linux"]["resources"] = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    let Some(dev) = dev else {
        skip(
            "denied_device_cannot_be_opened",
            "none of /dev/loop-control, /dev/fuse, /dev/net/tun, /dev/kmsg is a device root \
             may open here: only the default devices under a deny-all rule are checked",
        );
        b.sh("head -c 1 /dev/zero | wc -c; echo x > /dev/null && echo null-ok");
        assert_eq!(h.run_ok(&id, &b), "1\nnull-ok\n");
        h.assert_nothing_left(&id);
        return;
    };
    bind(&mut b, &dev);
    b.sh(&format!("{}; head -c 1 /dev/zero | wc -c", try_open(&dev)));
    assert_eq!(h.run_ok(&id, &b), "denied\n1\n", "{dev:?}");
    // With an allow rule for it, the same node opens.
    let id2 = h.id();
    let mut b2 = h.bundle(&id2);
    // An explicit allow rule opens it again (no rules at all still denies it, as runc).
    b2.config["linux"]["resources"] = json!({ "devices": [
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": dev.major, "minor": dev.minor, "access": dev.access() }
    ]});
    bind(&mut b2, &dev);
    b2.sh(&try_open(&dev));
    assert_eq!(h.run_ok(&id2, &b2), "open\n", "{dev:?}");
    h.assert_nothing_left(&id);
    h.assert_nothing_left(&id2);
}

#[test]
fn blkio_throttle_is_written() {
    let h = Ctx::new("blkio_throttle_is_written");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    let throttle = |major: u32, minor: u32| {
        json!({ "blockIO": {
            "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 1048576 }],
            "throttleWriteIOPSDevice": [{ "major": major, "minor": minor, "rate": 100 }]
        }})
    };
    // A whole disk (the one under / where it is one): partitions and filesystems on no
    // disk (overlay, virtiofs) cannot be throttled.
    let disk = host::throttleable_disk();
    let throttling = host::cgroup_has("blkio", "blkio.throttle.read_bps_device");
    let (Some((major, minor, _)), true) = (&disk, throttling) else {
        let why = if throttling {
            "no whole disk with a request queue in /sys/block"
        } else {
            "no blkio throttling (blkio.throttle.*) in this kernel"
        };
        skip(
            "blkio_throttle_is_written",
            format!("{why}: only the refusal of a throttle that cannot be applied is checked"),
        );
        // Device 0:0 is no block device: the kernel refuses the rule, and so must create.
        b.config["linux"]["resources"] = throttle(0, 0);
        assert_create_refused(&h, &id, &b);
        return;
    };
    let (major, minor) = (*major, *minor);
    b.config["linux"]["resources"] = throttle(major, minor);
    h.create_ok(&id, &b);
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
    let h = Ctx::new("network_classid_and_priorities");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["resources"] = json!({ "network": { "classID": 1048577 } });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    if host::v1_hierarchy("net_cls").is_some() {
        assert_eq!(read_host("net_cls", &id, "net_cls.classid"), "1048577");
    } else {
        // As runc: a controller the host does not mount is not asked for.
        skip(
            "network_classid_and_priorities_are_written",
            "this host mounts no net_cls hierarchy: only that the classID is accepted is \
             checked",
        );
    }
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
    // Which weight file a blkio cgroup has depends on the I/O schedulers: blkio.weight
    // (CFQ, before Linux 5.0) or blkio.bfq.weight (BFQ); with neither (none, mq-deadline
    // and kyber only) there is no weight to write.
    let file = match host::blkio_weight_file() {
        Ok(file) => file,
        Err(why) => {
            let out = h.create(&id, &b);
            if is_runc() {
                out.expect_code(1);
            } else {
                out.expect_error();
                assert!(
                    out.stderr.contains(
                        "this kernel has no blkio weight: no BFQ scheduler for any device"
                    ),
                    "{}",
                    out.stderr
                );
            }
            h.assert_nothing_left(&id);
            skip(
                "blkio_weight_is_written",
                format!("{why}: the write itself cannot be checked on this kernel (no BFQ)"),
            );
            return;
        }
    };
    h.create_ok(&id, &b);
    let got = read_host("blkio", &id, file);
    // blkio.bfq.weight (and io.bfq.weight) read "default 500" on newer kernels.
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
    if host::cgroup_has("memory", "memory.memsw.limit_in_bytes") {
        assert_eq!(
            read_host("memory", &id, "memory.memsw.limit_in_bytes"),
            "67108864"
        );
    } else {
        // Without swap accounting the swap limit is ignored (with a warning), as runc does.
        skip(
            "memory_swap_and_oom_killer_settings_are_written",
            "this kernel has no swap accounting (memory.memsw.*): the swap limit is not \
             checked",
        );
    }
    assert_eq!(
        read_host("memory", &id, "memory.limit_in_bytes"),
        "33554432"
    );
    let oom = read_host("memory", &id, "memory.oom_control");
    assert!(oom.lines().any(|l| l == "oom_kill_disable 1"), "{oom}");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn cpu_burst_idle_and_realtime_are_written() {
    let test = "cpu_burst_idle_and_realtime_are_written";
    let h = Ctx::new("cpu_burst_idle_and_realtime");
    // Each needs the kernel to have it: (config field, value, cgroup file, what lacks).
    // burst and idle came with runtime-spec 1.1; runc 1.1.5 ignores them.
    let mut fields: Vec<(&str, u64, &str, &str)> = vec![(
        "realtimePeriod",
        500000,
        "cpu.rt_period_us",
        "realtime group scheduling (CONFIG_RT_GROUP_SCHED)",
    )];
    if !is_runc() {
        fields.push((
            "burst",
            20000,
            "cpu.cfs_burst_us",
            "CFS burst (Linux 5.14 and CONFIG_CFS_BANDWIDTH)",
        ));
        fields.push(("idle", 1, "cpu.idle", "SCHED_IDLE cgroups (Linux 5.15)"));
    }
    let (present, missing): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .partition(|(_, _, file, _)| host::cgroup_has("cpu", file));
    let bandwidth = host::cgroup_has("cpu", "cpu.cfs_quota_us");
    let id = h.id();
    let mut b = h.bundle(&id);
    // A realtime budget must fit in the parent's: the test parent (/rt-test) gets none by
    // default, so only the period (always allowed) and a zero runtime are set here.
    let mut cpu = if bandwidth {
        json!({ "quota": 50000, "period": 100000 })
    } else {
        json!({})
    };
    for (field, value, _, _) in &present {
        cpu[*field] = json!(value);
    }
    b.config["linux"]["resources"] = json!({ "cpu": cpu });
    b.args(&["true"]);
    h.create_ok(&id, &b);
    for (_, value, file, _) in &present {
        assert_eq!(read_host("cpu", &id, file), value.to_string(), "{file}");
    }
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
    // Where the kernel lacks one, asking for it is refused, never silently dropped.
    for (field, value, file, what) in &missing {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["linux"]["resources"] = json!({ "cpu": { *field: value } });
        b.args(&["true"]);
        skip(
            test,
            format!(
                "this kernel has no {what} (no {file}): linux.resources.cpu.{field} is only \
                 checked to be refused"
            ),
        );
        assert_create_refused(&h, &id, &b);
    }
}
