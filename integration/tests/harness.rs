//! Self-tests of the harness: the guard cleans up after a panicking test, and leftover
//! detection sees container processes.

use integration::*;
use std::path::PathBuf;

#[test]
fn guard_cleans_up_after_panic() {
    let mut seen: Option<(String, PathBuf, i32)> = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let h = Ctx::new("guard_cleans_up_after_panic");
        let id = h.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "100"]);
        h.run_detached(&id, &b).ok();
        let pid = h.state_ok(&id)["pid"].as_i64().unwrap() as i32;
        assert!(
            !marked_processes(&id).is_empty(),
            "marker not found in container env"
        );
        assert!(!cgroup_dirs(&id).is_empty());
        seen = Some((id, h.dir.clone(), pid));
        panic!("deliberate");
    }));
    assert!(r.is_err());
    let (id, dir, pid) = seen.unwrap();
    assert!(!dir.exists(), "temp dir left: {}", dir.display());
    assert!(cgroup_dirs(&id).is_empty(), "cgroups left");
    assert!(marked_processes(&id).is_empty(), "processes left");
    assert!(proc_state(pid).is_none(), "init {pid} not reaped");
}
