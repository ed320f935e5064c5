//! Holes a user can fall into with a valid config or an ordinary fault (issue 13), each
//! shown closed: rt never kills or changes what is not its container's, never leaves a
//! process behind when it is itself killed, never waits for ever on a frozen cgroup, and
//! gives the container no more than its config allows. Tests whose regression could kill
//! or change things outside the container run in a throwaway pid and mount namespace, on
//! a private cgroup hierarchy of their own (`Ctx::sh_in_throwaway_ns`).

use integration::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Docker's default capability set: enough for the container's root to make a user
/// namespace that maps itself (mapping uid 0 needs CAP_SETFCAP since Linux 5.12).
const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn set_caps(b: &mut Bundle, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(caps);
    }
    b.config["process"]["capabilities"]["ambient"] = json!([]);
}

#[test]
fn cgroups_path_root_is_refused_and_kills_nothing() {
    let h = Ctx::new("cgroups_path_root_is_refused");
    let mut cases = Vec::new();
    for path in ["/", "//", "/./"] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["linux"]["cgroupsPath"] = json!(path);
        // The create must fail anyway, after the cgroup is joined (the report had an
        // unknown capability; a missing program now): before the fix, its cleanup killed
        // every process listed in the root cgroup.
        b.args(&["/no/such/program"]);
        cases.push(format!(
            "$RT create --bundle {} {id} 2>>err; echo create=$?; \
             kill -0 $canary && echo canary-alive; [ -e {root}/{id} ] && echo state-left",
            b.saved(),
            root = h.root.display()
        ));
    }
    let script = format!(
        "sleep 1000 & canary=$!\n{}\ncat err >&2\n[ \"$(cat $CG/cgroup.procs | wc -l)\" -ge 2 ] && echo root-still-populated",
        cases.join("\n")
    );
    let Some(out) = h.sh_in_throwaway_ns(&script, true) else {
        return;
    };
    let want = ["create=1", "canary-alive"].repeat(3);
    let mut want: Vec<&str> = want.to_vec();
    want.push("root-still-populated");
    assert_eq!(out.lines(), want, "{}", out.describe());
    for line in out.stderr.lines() {
        assert!(
            line.contains("linux.cgroupsPath") && line.contains("root of the cgroup hierarchy"),
            "{}",
            out.describe()
        );
    }
    assert_eq!(out.stderr.lines().count(), 3, "{}", out.describe());
}

/// A `cgroupsPath` naming a cgroup that already holds other processes (a slice, a pod's
/// cgroup, a daemon's): create warns, as runc; kill --all, a failed create and
/// delete --force touch only the container's processes, with and without a pid namespace.
#[test]
fn shared_cgroup_processes_are_never_killed() {
    let h = Ctx::new("shared_cgroup_never_killed");
    let with_pidns = h.id();
    let mut b1 = h.bundle(&with_pidns);
    b1.config["linux"]["cgroupsPath"] = json!("/shared");
    b1.sh("sleep 1000 & exec sleep 1001");
    let no_pidns = h.id();
    let mut b2 = h.bundle(&no_pidns);
    b2.config["linux"]["cgroupsPath"] = json!("/shared");
    b2.remove_namespace("pid");
    b2.sh("sleep 1000 & exec sleep 1001");
    let failing = h.id();
    let mut b3 = h.bundle(&failing);
    b3.config["linux"]["cgroupsPath"] = json!("/shared");
    b3.args(&["/no/such/program"]);
    let script = format!(
        "mkdir $CG/shared\n\
         sleep 1000 & canary=$!; echo $canary > $CG/shared/cgroup.procs\n\
         alive() {{ kill -0 $canary && echo \"$1 canary-alive\"; }}\n\
         count() {{ cat $CG/shared/cgroup.procs | wc -l; }}\n\
         procs() {{ for i in $(seq 50); do [ $(count) = $1 ] && break; sleep 0.1; done; echo procs=$(count); }}\n\
         $RT run -d --bundle {b1} {with_pidns} 2>warn1; echo run1=$?; procs 3\n\
         $RT kill --all {with_pidns} KILL; echo killall1=$?; alive killall1; procs 1\n\
         $RT delete --force {with_pidns}; echo delete1=$?; alive delete1\n\
         $RT run -d --bundle {b2} {no_pidns} 2>warn2; echo run2=$?; procs 3\n\
         $RT kill --all {no_pidns} KILL; echo killall2=$?; alive killall2; procs 2\n\
         $RT delete --force {no_pidns}; echo delete2=$?; alive delete2\n\
         $RT create --bundle {b3} {failing} 2>err3; echo create3=$?; alive create3; procs 2\n\
         cat warn1 warn2 err3 >&2",
        b1 = b1.saved(),
        b2 = b2.saved(),
        b3 = b3.saved(),
    );
    let Some(out) = h.sh_in_throwaway_ns(&script, true) else {
        return;
    };
    assert_eq!(
        out.lines(),
        [
            // the canary, the container's init and its background sleep
            "run1=0",
            "procs=3",
            // both of the container's, found by their pid namespace
            "killall1=0",
            "killall1 canary-alive",
            "procs=1",
            "delete1=0",
            "delete1 canary-alive",
            "run2=0",
            "procs=3",
            // without a pid namespace of its own only the init can be told apart: the
            // background sleep stays (and dies with the throwaway namespace)
            "killall2=0",
            "killall2 canary-alive",
            "procs=2",
            "delete2=0",
            "delete2 canary-alive",
            "create3=1",
            "create3 canary-alive",
            "procs=2",
        ],
        "{}",
        out.describe()
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("container's cgroup is not empty"))
        .collect();
    // Both runs and the failing create (which gets as far as the cgroup).
    assert_eq!(warnings.len(), 3, "{}", out.describe());
    assert!(
        out.stderr.contains("/no/such/program"),
        "{}",
        out.describe()
    );
    for id in [&with_pidns, &no_pidns, &failing] {
        assert!(!h.root.join(id).exists(), "state of {id} left behind");
    }
}

/// SIGKILL to `rt create` at any moment before it returns must not leave the container's
/// init behind (it used to wait in poll for ever, reparented, outside any state), and
/// `delete --force` then removes whatever the killed create made.
#[test]
fn killed_create_leaves_no_process() {
    let h = Ctx::new("killed_create_leaves_no_process");
    // At fixed points: while the parent runs a prestart hook (the init waits for it) and
    // while the init runs a createContainer hook; the hook says when it has started.
    for kind in ["prestart", "createContainer"] {
        let id = h.id();
        let mut b = h.bundle(&id);
        let started = h.dir.join(format!("{id}.started"));
        // With an env of its own: the hook's sleep outlives the killed create on purpose,
        // and must not carry the harness's marker, which would inherit from rt.
        b.hook_value(
            kind,
            json!({ "path": "/bin/sh", "env": ["PATH=/usr/bin:/bin"],
                    "args": ["sh", "-c", format!("touch {}; exec sleep 2", started.display())] }),
        );
        b.args(&["sleep", "1000"]);
        let mut create = spawn_create(&h, &id, &b);
        poll(Duration::from_secs(20), "the hook to start", || {
            started.exists().then_some(())
        });
        kill_and_check(&h, &id, &mut create.0, &format!("during the {kind} hook"));
    }
    // At every millisecond of the first 25: each step of create, up to its return.
    for delay_ms in 0..25 {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "1000"]);
        let mut create = spawn_create(&h, &id, &b);
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill_and_check(&h, &id, &mut create.0, &format!("after {delay_ms} ms"));
    }
}

/// `rt create` of `b` in the background, its output discarded.
fn spawn_create(h: &Ctx, id: &str, b: &Bundle) -> ChildGuard {
    b.save();
    let mut c = h.command(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
    c.stdout(std::process::Stdio::null());
    c.stderr(std::process::Stdio::null());
    ChildGuard::spawn(&mut c)
}

/// SIGKILL the running `rt create`, then: no process of the container may outlive it
/// unless the container was fully created (then delete --force ends it), and
/// delete --force leaves nothing.
fn kill_and_check(h: &Ctx, id: &str, create: &mut Child, when: &str) {
    let _ = create.kill();
    let _ = create.wait();
    // A created container's init legitimately waits for `start`; anything else must die.
    let created = h.state(id).is_some_and(|s| s["status"] == "created");
    if !created {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut left = marked_processes(&h.name);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = marked_processes(&h.name);
        }
        assert!(
            left.is_empty(),
            "rt create killed {when}: its processes live on: {:?}",
            left.iter()
                .map(|p| (
                    p,
                    fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
        );
    }
    h.delete_force(id).ok();
    h.assert_nothing_left(id);
}

/// The freezer file of the container's cgroup on this host (v1 freezer.state, or v2
/// cgroup.freeze), and what freezes it; None when the host has no freezer.
fn freezer(id: &str) -> Option<(PathBuf, &'static str)> {
    if Path::new("/sys/fs/cgroup/freezer").is_dir() {
        let dir = Path::new("/sys/fs/cgroup/freezer/rt-test").join(id);
        return Some((dir.join("freezer.state"), "FROZEN"));
    }
    let unified = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.controllers").exists())?;
    let dir = unified.join("rt-test").join(id);
    // cgroup.freeze exists in every non-root cgroup of a kernel that has it (5.2+).
    let probe = unified.join("rt-test");
    let _ = fs::create_dir_all(&probe);
    probe
        .join("cgroup.freeze")
        .exists()
        .then(|| (dir.join("cgroup.freeze"), "1"))
}

/// [`freezer`], or None after saying the test is skipped.
fn freezer_or_skip(h: &Ctx, id: &str) -> Option<(PathBuf, &'static str)> {
    let found = freezer(id);
    if found.is_none() {
        skip(
            &h.name,
            "this host has no freezer (no v1 freezer, no cgroup.freeze)",
        );
    }
    found
}

/// A `cgroupsPath` naming a cgroup that exists and is frozen: the init would freeze as
/// soon as it joined and create would wait for ever. Refused before joining, in one line,
/// and the cgroup is left as it was.
#[test]
fn frozen_cgroup_is_refused() {
    let h = Ctx::new("frozen_cgroup_is_refused");
    let id = h.id();
    let Some((state_file, frozen)) = freezer_or_skip(&h, &id) else {
        return;
    };
    let dir = state_file.parent().unwrap().to_path_buf();
    fs::create_dir_all(&dir).unwrap();
    fs::write(&state_file, frozen).unwrap();
    let mut b = h.bundle(&id);
    b.args(&["true"]);
    let started = Instant::now();
    let out = h.run(&id, &b);
    let took = started.elapsed();
    let still = fs::read_to_string(&state_file).unwrap_or_default();
    let exists = dir.exists();
    // Thaw and remove the cgroup this test made before asserting.
    let _ = fs::write(&state_file, if frozen == "1" { "0" } else { "THAWED" });
    let _ = fs::remove_dir(&dir);
    out.expect_error();
    assert!(
        out.stderr
            .contains("container's cgroup unexpectedly frozen")
            && out.stderr.contains(&dir.display().to_string()),
        "{}",
        out.describe()
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(exists, "rt removed a cgroup it did not create");
    assert_eq!(still.trim(), frozen, "rt changed the freezer state");
    h.assert_nothing_left(&id);
}

/// The container's cgroup is frozen by someone else while create runs (here by a
/// createRuntime hook): create must not wait for ever; it fails, saying so, and removes
/// everything.
#[test]
fn cgroup_frozen_during_create_fails() {
    let h = Ctx::new("cgroup_frozen_during_create");
    let id = h.id();
    let Some((state_file, frozen)) = freezer_or_skip(&h, &id) else {
        return;
    };
    let mut b = h.bundle(&id);
    b.hook(
        "createRuntime",
        &format!("echo {frozen} > {}", state_file.display()),
    );
    b.args(&["true"]);
    assert_create_fails_with(&h, &id, &b, &["container's cgroup unexpectedly frozen"]);
}

/// With --no-pivot the host's mounts stay in the container's mount namespace under the
/// moved rootfs. A fully visible procfs among them let a user namespace made in the
/// container mount a fresh, unmasked procfs. It must be refused as with pivot_root.
#[test]
fn no_pivot_leaves_no_bare_procfs() {
    let h = Ctx::new("no_pivot_leaves_no_bare_procfs");
    for no_pivot in [false, true] {
        let id = h.id();
        let mut b = h.bundle(&id);
        set_caps(&mut b, &DOCKER_CAPS);
        b.sh("unshare -mrpf true && echo userns-ok; \
             unshare -mrpf sh -c 'mount -t proc none /proc && echo proc-mounted'");
        b.save();
        let mut args = vec!["run"];
        if no_pivot {
            args.push("--no-pivot");
        }
        let bundle = b.dir.display().to_string();
        args.extend(["--bundle", &bundle, &id]);
        let out = h.rt(&args);
        if !out.stdout.contains("userns-ok") {
            skip(
                &h.name,
                format!(
                    "a container cannot make a user namespace here: {}",
                    out.describe()
                ),
            );
            return;
        }
        assert_eq!(
            out.stdout,
            "userns-ok\n",
            "no_pivot={no_pivot}: {}",
            out.describe()
        );
        assert!(
            out.stderr.contains("permission denied"),
            "no_pivot={no_pivot}: {}",
            out.describe()
        );
        h.assert_nothing_left(&id);
    }
}

/// A node in `linux.devices` is only made: access is what `linux.resources.devices` (and
/// the default devices) allow, also after `rt update`.
#[test]
fn listed_device_gets_no_access_the_rules_deny() {
    let h = Ctx::new("listed_device_gets_no_access");
    let kmsg =
        json!([{ "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 420 }]);
    // Opened for writing (nothing is written): reading /dev/kmsg also needs CAP_SYSLOG
    // where dmesg_restrict is set, which would hide what the device cgroup says.
    let open = "(exec 3>/dev/kmsg) 2>/dev/null && echo opened || echo denied";
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["linux"]["devices"] = kmsg.clone();
    b.config["linux"]["resources"] = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    b.args(&["sleep", "1000"]);
    h.run_detached(&id, &b).ok();
    let exec = || h.rt(&["exec", &id, "sh", "-c", open]);
    assert_eq!(exec().ok().stdout, "denied\n");
    h.rt(&["update", "--memory", "67108864", &id]).ok();
    assert_eq!(exec().ok().stdout, "denied\n", "after rt update");
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
    // The same node opens when a rule allows it: the check above is the device cgroup's.
    let id2 = h.id();
    let mut b2 = h.bundle(&id2);
    b2.config["linux"]["devices"] = kmsg;
    b2.config["linux"]["resources"] = json!({ "devices": [
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "w" }
    ]});
    b2.sh(open);
    assert_eq!(h.run_ok(&id2, &b2), "opened\n");
    h.assert_nothing_left(&id2);
}

/// A container with its own cgroup namespace and a writable cgroup mount makes
/// sub-cgroups in every hierarchy and moves a process into them. `kill --all` reaches
/// it there, and `delete --force` removes the sub-cgroups, deepest first.
#[test]
fn sub_cgroups_made_by_the_container_are_removed() {
    let h = Ctx::new("sub_cgroups_are_removed");
    for pidns in [true, false] {
        let id = h.id();
        let b = h.sub_cgroup_bundle(&id, pidns);
        h.run_detached(&id, &b).ok();
        let hierarchies = cgroup_dirs(&id);
        assert!(!hierarchies.is_empty());
        let populated = || {
            hierarchies.iter().all(|d| {
                fs::read_to_string(d.join("sub/deeper/cgroup.procs"))
                    .is_ok_and(|p| !p.trim().is_empty())
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !populated() {
            assert!(
                Instant::now() < deadline,
                "the container did not fill its sub-cgroups: {}",
                read_or_empty(&b.path_in_rootfs("/move.err"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if pidns {
            h.delete_force(&id).ok();
        } else {
            // Without a pid namespace the init's death does not end the process in the
            // sub-cgroup: only kill --all can.
            h.rt(&["kill", "--all", &id, "KILL"]).ok();
            poll(Duration::from_secs(10), "every process to die", || {
                hierarchies
                    .iter()
                    .all(|d| cgroup_tree_is_empty(d))
                    .then_some(())
            });
            h.delete(&id).ok();
        }
        h.assert_nothing_left(&id);
    }
}

fn cgroup_tree_is_empty(dir: &Path) -> bool {
    let own = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let sub = fs::read_to_string(dir.join("sub/deeper/cgroup.procs")).unwrap_or_default();
    own.trim().is_empty() && sub.trim().is_empty()
}
