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
    if Path::new("/sys/fs/selinux/enforce").exists() {
        eprintln!("skipped: SELinux is enabled on this host; this test covers its absence");
        return;
    }
    let h = Ctx::new("selinux_label_refused");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    b.args(&["true"]);
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
        eprintln!("skipped for runc: 1.1.5 predates these runtime-spec 1.2 fields");
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
        eprintln!("skipped for runc: 1.1.5 predates these runtime-spec 1.2 fields");
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
