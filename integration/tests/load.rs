//! Load (issue 17): many commands at once. 50 creates of distinct ids together; on one
//! id, two starts, two deletes, and kill racing delete. One wins, the others fail with a
//! clear one-line error (or succeed as a no-op where runc does), nothing hangs or
//! panics, and the state stays consistent: readable, or gone.

use integration::*;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Not one command may take longer than this (the point of these tests is "never hangs").
const BOUND: Duration = Duration::from_secs(30);

/// Run every command of `cmds` at the same moment (threads behind a barrier); their
/// outputs, in order, each checked to have ended within [`BOUND`] and without a panic.
fn at_once(h: &Ctx, cmds: &[Vec<String>]) -> Vec<Output> {
    let barrier = Barrier::new(cmds.len());
    let outs: Vec<(Output, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = cmds
            .iter()
            .map(|args| {
                let barrier = &barrier;
                s.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    barrier.wait();
                    let t = Instant::now();
                    let out = h.rt(&args);
                    (out, t.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    outs.into_iter()
        .map(|(out, took)| {
            assert!(took < BOUND, "`{}` took {took:?}", out.cmdline);
            out.code(); // not killed by a signal
            assert!(!out.stderr.contains("panicked"), "{}", out.describe());
            out
        })
        .collect()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A failure as the runtime must report one: exit 1, one line, with `what` in it.
#[track_caller]
fn assert_clear_error(out: &Output, what: &[&str]) {
    out.expect_error();
    assert!(
        what.iter().any(|w| out.stderr.contains(w)),
        "`{}`: expected one of {what:?}:\n{}",
        out.cmdline,
        out.describe()
    );
}

fn listed(h: &Ctx) -> Vec<String> {
    h.rt(&["list", "-q"])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

/// 50 `rt create`s of distinct ids at once: all succeed, all are listed as created, 50
/// `rt delete`s at once remove them all, and nothing is left.
#[test]
fn fifty_creates_at_once() {
    let h = Ctx::new("fifty_creates_at_once");
    let ids: Vec<String> = (0..50).map(|_| h.id()).collect();
    let bundles: Vec<Bundle> = ids
        .iter()
        .map(|id| {
            let mut b = h.bundle(id);
            b.args(&["sleep", "1000"]);
            b.save();
            b
        })
        .collect();
    let creates: Vec<Vec<String>> = ids
        .iter()
        .zip(&bundles)
        .map(|(id, b)| args(&["create", "--bundle", b.dir.to_str().unwrap(), id]))
        .collect();
    let t = Instant::now();
    let outs = at_once(&h, &creates);
    let took = t.elapsed();
    for (id, out) in ids.iter().zip(&outs) {
        out.ok();
        h.record_pid(id);
    }
    eprintln!("50 creates at once: {took:?}");
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed(&h), want);
    for id in &ids {
        assert_eq!(h.status(id).as_deref(), Some("created"), "{id}");
    }
    let deletes: Vec<Vec<String>> = ids.iter().map(|id| args(&["delete", id])).collect();
    let t = Instant::now();
    for out in at_once(&h, &deletes) {
        out.ok();
    }
    eprintln!("50 deletes at once: {:?}", t.elapsed());
    assert!(listed(&h).is_empty());
    for id in &ids {
        h.assert_nothing_left(id);
    }
}

/// Two `rt start`s of one created container at once, ten times: exactly one succeeds,
/// the other says in one line that the container already runs, and the program ran once.
#[test]
fn two_starts_at_once() {
    let h = Ctx::new("two_starts_at_once");
    let _ = h.id(); // the context's own name marks rt's processes, not a container's
    for round in 0..10 {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.sh("echo ran >> /ran.log; exec sleep 1000");
        h.create_ok(&id, &b);
        let outs = at_once(&h, &[args(&["start", &id]), args(&["start", &id])]);
        let won: Vec<&Output> = outs.iter().filter(|o| o.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: one start wins: {outs:#?}");
        let lost = outs.iter().find(|o| !o.success()).unwrap();
        assert_clear_error(lost, &["already running"]);
        let log = b.path_in_rootfs("/ran.log");
        poll(Duration::from_secs(10), "the program to run", || {
            log.exists().then_some(())
        });
        // Long enough for a second run to show, were there one.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(read_or_empty(&log), "ran\n", "round {round}: ran once");
        assert_eq!(h.status(&id).as_deref(), Some("running"));
        h.delete_force(&id).ok();
        h.assert_nothing_left(&id);
    }
}

/// Two `rt delete`s of one stopped container at once, ten times: one wins, the other
/// says the container does not exist (runc's error); two `delete --force` both succeed
/// (runc: --force of a missing container is no error). The state is gone either way.
#[test]
fn two_deletes_at_once() {
    let h = Ctx::new("two_deletes_at_once");
    let _ = h.id();
    for round in 0..20 {
        let force = round % 2 == 1;
        let id = h.id();
        let mut b = h.bundle(&id);
        b.args(&["true"]);
        h.create_ok(&id, &b);
        h.start(&id).ok();
        h.wait_status(&id, "stopped", Duration::from_secs(10));
        let del = if force {
            args(&["delete", "--force", &id])
        } else {
            args(&["delete", &id])
        };
        let outs = at_once(&h, &[del.clone(), del]);
        let won = outs.iter().filter(|o| o.success()).count();
        if force {
            assert_eq!(won, 2, "round {round}: both --force succeed: {outs:#?}");
        } else {
            assert_eq!(won, 1, "round {round}: one delete wins: {outs:#?}");
            let lost = outs.iter().find(|o| !o.success()).unwrap();
            assert_clear_error(lost, &["does not exist"]);
        }
        assert!(h.state(&id).is_none(), "round {round}: state gone");
        h.assert_nothing_left(&id);
    }
}

/// `kill` (of the init, or --all) racing `delete` (plain, or --force) on a running
/// container, 24 times: neither hangs nor panics; each succeeds or fails in one clear
/// line; afterwards the container is gone, or its state is readable and a final
/// `delete --force` removes it; nothing is left.
#[test]
fn kill_racing_delete() {
    let h = Ctx::new("kill_racing_delete");
    let _ = h.id();
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..24 {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "1000"]);
        h.create_ok(&id, &b);
        h.start(&id).ok();
        let kill = match round % 3 {
            0 => args(&["kill", &id, "KILL"]),
            1 => args(&["kill", "--all", &id, "KILL"]),
            _ => args(&["kill", &id, "TERM"]),
        };
        let delete = if round % 2 == 0 {
            args(&["delete", "--force", &id])
        } else {
            args(&["delete", &id])
        };
        let outs = at_once(&h, &[kill, delete]);
        for out in &outs {
            if !out.success() {
                assert_clear_error(
                    out,
                    &["does not exist", "not running", "not stopped", "stopped"],
                );
            }
        }
        let key = format!(
            "{} {}: kill {} / delete {}",
            ["kill KILL", "kill --all KILL", "kill TERM"][round % 3],
            if round % 2 == 0 { "--force" } else { "plain" },
            if outs[0].success() { "ok" } else { "error" },
            if outs[1].success() { "ok" } else { "error" }
        );
        *outcomes.entry(key).or_default() += 1;
        match h.state(&id) {
            None => assert!(!h.root.join(&id).exists(), "round {round}: no state, a dir"),
            Some(st) => {
                let status = st["status"].as_str().unwrap_or_default().to_string();
                assert!(
                    ["running", "stopped"].contains(&status.as_str()),
                    "round {round}: {st}"
                );
                assert!(!outs[1].success(), "round {round}: deleted yet still there");
            }
        }
        h.delete_force(&id).ok();
        assert!(h.state(&id).is_none());
        h.assert_nothing_left(&id);
    }
    eprintln!("kill racing delete, outcomes: {outcomes:#?}");
}
