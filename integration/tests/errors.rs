//! Error cases: each must exit 1 with a one-line message on stderr and leave nothing behind
//! (no state dir under --root, no cgroup, no process).

use integration::*;
use serde_json::json;
use std::fs;

/// Create `id` from `b`, expect a clean failure, check that nothing is left.
#[track_caller]
fn create_fails(h: &Ctx, id: &str, b: &Bundle) -> Output {
    let out = h.create(id, b);
    out.expect_error();
    h.assert_nothing_left(id);
    assert_eq!(
        h.rt(&["list", "-q"]).stdout.trim(),
        "",
        "list must be empty"
    );
    out
}

#[test]
fn malformed_json_truncated() {
    let h = Ctx::new("malformed_json_truncated");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.source = ConfigSource::Raw("{\n  \"ociVersion\": \"1.2.0\",\n  \"process\": {\n".into());
    let out = create_fails(&h, &id, &b);
    if !is_runc() {
        // runc only says "unexpected EOF"; rt must point at the place.
        let m = out.stderr.to_lowercase();
        assert!(
            m.contains("line") && m.contains("column"),
            "no position in: {}",
            out.stderr
        );
    }
}

#[test]
fn malformed_json_syntax_error() {
    let h = Ctx::new("malformed_json_syntax_error");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.source = ConfigSource::Raw("{\n  \"ociVersion\": \"1.2.0\",,\n  \"process\": {}\n}\n".into());
    let out = create_fails(&h, &id, &b);
    if !is_runc() {
        let m = out.stderr.to_lowercase();
        assert!(
            m.contains("line 2") && m.contains("column"),
            "no position in: {}",
            out.stderr
        );
    }
}

#[test]
fn config_wrong_type() {
    let h = Ctx::new("config_wrong_type");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["args"] = json!("sh");
    create_fails(&h, &id, &b);
}

#[test]
fn config_missing_process_or_args() {
    let h = Ctx::new("config_missing_process_or_args");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["args"] = json!([]);
    create_fails(&h, &id, &b);
    b.config.as_object_mut().unwrap().remove("process");
    create_fails(&h, &id, &b);
}

#[test]
fn relative_cwd_rejected() {
    let h = Ctx::new("relative_cwd_rejected");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["cwd"] = json!("tmp");
    create_fails(&h, &id, &b);
}

#[test]
fn missing_config() {
    let h = Ctx::new("missing_config");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.source = ConfigSource::Missing;
    let out = create_fails(&h, &id, &b);
    assert!(
        out.stderr.contains("config.json"),
        "message should name config.json: {}",
        out.stderr
    );
}

#[test]
fn missing_bundle_dir() {
    let h = Ctx::new("missing_bundle_dir");
    let id = h.id();
    let nowhere = h.dir.join("no-such-bundle");
    h.rt(&["create", "--bundle", nowhere.to_str().unwrap(), &id])
        .expect_error();
    h.assert_nothing_left(&id);
}

#[test]
fn missing_rootfs() {
    let h = Ctx::new("missing_rootfs");
    let id = h.id();
    let b = h.bundle(&id);
    fs::remove_dir_all(b.rootfs()).unwrap();
    create_fails(&h, &id, &b);
}

#[test]
fn missing_executable() {
    let h = Ctx::new("missing_executable");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["/no/such/program"]);
    // runc 1.1 and rt both check the executable at create time.
    create_fails(&h, &id, &b);
    // And `run` fails the same way.
    let out = h.run(&id, &b);
    out.expect_error();
    h.assert_nothing_left(&id);
}

#[test]
fn unsupported_oci_version() {
    let h = Ctx::new("unsupported_oci_version");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["ociVersion"] = json!("0.1.0");
    if is_runc() {
        // runc 1.1.5 does not check ociVersion at all and runs the container.
        return;
    }
    let out = create_fails(&h, &id, &b);
    assert!(
        out.stderr.contains("0.1.0"),
        "message should name the version: {}",
        out.stderr
    );
}

#[test]
fn unknown_namespace_type() {
    let h = Ctx::new("unknown_namespace_type");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.namespace("bogus", None);
    create_fails(&h, &id, &b);
}

#[test]
fn nonexistent_namespace_path() {
    let h = Ctx::new("nonexistent_namespace_path");
    let id = h.id();
    let mut b = h.bundle(&id);
    let p = h.dir.join("no-such-ns");
    b.namespace("network", Some(p.to_str().unwrap()));
    create_fails(&h, &id, &b);
}

#[test]
fn namespace_path_not_a_namespace() {
    let h = Ctx::new("namespace_path_not_a_namespace");
    let id = h.id();
    let mut b = h.bundle(&id);
    let p = h.dir.join("regular-file");
    fs::write(&p, "").unwrap();
    b.namespace("network", Some(p.to_str().unwrap()));
    let out = h.create(&id, &b);
    if is_runc() {
        // runc 1.1.5 prints three log lines (nsexec fatal errors) here.
        out.expect_code(1);
    } else {
        out.expect_error();
    }
    h.assert_nothing_left(&id);
}

#[test]
fn unknown_container() {
    let h = Ctx::new("unknown_container");
    let id = h.id();
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        h.rt(&args).expect_error();
    }
    h.assert_nothing_left(&id);
}

#[test]
fn invalid_ids() {
    let h = Ctx::new("invalid_ids");
    let id = h.id();
    let b = h.bundle(&id);
    b.save();
    let long = "a".repeat(1024);
    for bad in ["", "a/b", "..", ".", "../x", long.as_str()] {
        let out = h.rt(&["create", "--bundle", b.dir.to_str().unwrap(), bad]);
        out.expect_error();
        let out = h.rt(&["run", "--bundle", b.dir.to_str().unwrap(), bad]);
        out.expect_error();
        // Nothing escaped --root nor got created under it.
        if h.root.exists() {
            let left: Vec<_> = fs::read_dir(&h.root)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(
                left.is_empty(),
                "left under --root for id {bad:?}: {left:?}"
            );
        }
        assert!(!h.dir.join("x").exists() && !h.dir.join("b").exists());
        h.assert_nothing_left(&id);
    }
}

#[test]
fn duplicate_id() {
    let h = Ctx::new("duplicate_id");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "100"]);
    h.create_ok(&id, &b);
    let before = h.state_ok(&id);

    let mut b2 = h.bundle(&id);
    b2.sh("echo second > /tmp/second");
    h.create(&id, &b2).expect_error();
    h.run(&id, &b2).expect_error();

    let after = h.state_ok(&id);
    assert_eq!(
        before["pid"], after["pid"],
        "the original container must be untouched"
    );
    assert_eq!(after["status"], "created");
    assert_eq!(before["bundle"], after["bundle"]);
    assert!(
        !b2.path_in_rootfs("/tmp/second").exists(),
        "second container ran"
    );
    assert_eq!(h.rt(&["list", "-q"]).stdout.lines().count(), 1);
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

#[test]
fn operations_after_run_fail() {
    let h = Ctx::new("operations_after_run_fail");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    h.run(&id, &b).ok();
    // After `run` the container is gone: start, state, kill, delete all fail.
    h.start(&id).expect_error();
    assert!(h.state(&id).is_none());
    h.kill(&id, "KILL").expect_error();
    h.delete(&id).expect_error();
    h.assert_nothing_left(&id);
}
