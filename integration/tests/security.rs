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
