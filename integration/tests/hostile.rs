//! Hostile bundles and exhausted hosts (issue 17): a rootfs made of symlink tricks, huge
//! configs, and create with no pids, no space, a read-only state directory or no free fds.
//! Each either works as it should or fails with one line (naming the field, the syscall
//! and the errno), exit 1, and leaves nothing: no state directory, cgroup, process or mount.
//!
//! The symlink tricks run in a throwaway pid and mount namespace, so that a regression
//! could not mount over the host; their mount table is compared before and after, and a
//! canary directory the symlinks point at is compared byte for byte.
//! The CVE replays of rootfs symlinks (`/evil -> /`, links to host paths, masked paths,
//! /dev/null, /dev/console) are in cve.rs; this file adds the image-layout tricks.

use integration::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// "Never hangs": the bound on every huge input.
const BOUND: Duration = Duration::from_secs(60);

/// Every file, directory and symlink below `dir`, with the file contents and link targets.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                fs::read_to_string(&p).unwrap_or_else(|_| "(binary)".into())
            };
            out.insert(p, what);
        }
    }
    out
}

/// Mount points of the test's own mount namespace at or below `dir`.
fn own_mounts_below(dir: &Path) -> Vec<String> {
    let d = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| {
            mp.strip_prefix(d)
                .is_some_and(|r| r.is_empty() || r.starts_with('/'))
        })
        .map(str::to_string)
        .collect()
}

/// What `run` of a bundle did in a throwaway namespace.
struct Attempt {
    code: i32,
    stdout: String,
    stderr: String,
    /// Mount points that appeared or vanished in the namespace rt was started from.
    mounts_changed: Vec<String>,
    /// rt processes (`rt`, `rt:[INIT]`…) still in the namespace after `run` returned.
    left_processes: String,
}

/// `run` the bundle in a throwaway pid and mount namespace, with its mount table taken
/// before and after (made private first, so that mounts of other work on the host do not
/// show as changes).
fn attempt(h: &Ctx, id: &str, b: &Bundle) -> Attempt {
    let d = h.subdir(&format!("attempt-{id}"));
    let dd = d.display();
    let script = format!(
        "mount --make-rprivate / && cut -d' ' -f5 /proc/self/mountinfo | sort > {dd}/before\n\
         $RT run --bundle {} {id} > {dd}/stdout 2> {dd}/stderr; echo $? > {dd}/rc\n\
         cut -d' ' -f5 /proc/self/mountinfo | sort > {dd}/after\n\
         for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null); \
         case \"$c\" in rt*) echo \"$c\";; esac; done > {dd}/procs\n",
        b.saved()
    );
    let out = h
        .sh_in_throwaway_ns(&script, false)
        .expect("a throwaway namespace without fake cgroups always runs");
    let read = |f: &str| fs::read_to_string(d.join(f)).unwrap_or_default();
    let code = read("rc").trim().parse().unwrap_or_else(|_| {
        panic!("the script did not run rt:\n{}", out.describe());
    });
    let (before, after) = (read("before"), read("after"));
    let before: Vec<&str> = before.lines().collect();
    let after: Vec<&str> = after.lines().collect();
    // A mount of other work on the host vanishes from the copy too when its mount point is
    // removed (the kernel detaches mounts on a deleted directory in every namespace): only
    // a vanished mount whose directory is still there counts.
    let mut mounts_changed: Vec<String> = before
        .iter()
        .filter(|m| !after.contains(m) && Path::new(m).exists())
        .chain(after.iter().filter(|m| !before.contains(m)))
        .map(|m| m.to_string())
        .collect();
    mounts_changed.sort();
    Attempt {
        code,
        stdout: read("stdout"),
        stderr: read("stderr"),
        mounts_changed,
        left_processes: read("procs"),
    }
}

enum Expect {
    /// The container runs and prints this.
    Runs(String),
    /// create fails with one line holding each of these.
    Fails(Vec<String>),
}

/// One image trick: build the bundle (`setup` gets the bundle and the canary directory,
/// which holds `canary-file`), run it, check the outcome and that neither the canary nor
/// the mount tables changed and nothing is left.
fn trick(h: &Ctx, name: &str, setup: impl FnOnce(&mut Bundle, &Path) -> Expect) {
    let id = h.id();
    let mut b = h.bundle(&id);
    let canary = h.subdir(&format!("canary-{name}"));
    fs::write(canary.join("canary-file"), "host data\n").unwrap();
    let expect = setup(&mut b, &canary);
    let before = snapshot(&canary);
    let a = attempt(h, &id, &b);
    let what = format!(
        "{name}: exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
        a.code, a.stdout, a.stderr
    );
    match expect {
        Expect::Runs(stdout) => {
            assert_eq!(a.code, 0, "{what}");
            assert_eq!(a.stdout, stdout, "{what}");
        }
        Expect::Fails(needles) => {
            assert_eq!(a.code, 1, "{what}");
            assert_eq!(a.stderr.trim().lines().count(), 1, "one line: {what}");
            for n in &needles {
                assert!(a.stderr.contains(n.as_str()), "{n:?} not in: {what}");
            }
        }
    }
    assert_eq!(snapshot(&canary), before, "{name}: the host canary changed");
    assert_eq!(
        a.mounts_changed,
        Vec::<String>::new(),
        "{name}: mounts changed"
    );
    assert_eq!(own_mounts_below(&h.dir), Vec::<String>::new(), "{name}");
    assert_eq!(a.left_processes, "", "{name}: processes left");
    h.assert_nothing_left(&id);
}

/// A tmpfs mount at `dest`.
fn tmpfs(dest: &str) -> Value {
    json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"] })
}

/// Replace the rootfs entry `inner` (a directory or file of the image) with a symlink.
fn link(b: &Bundle, inner: &str, target: impl AsRef<Path>) {
    let p = b.path_in_rootfs(inner);
    if p.is_dir() && !p.is_symlink() {
        fs::remove_dir_all(&p).unwrap();
    } else {
        let _ = fs::remove_file(&p);
    }
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    symlink(target, &p).unwrap();
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `/proc -> /` and `/sys` dangling: proc and sysfs go only on plain directories
/// (CVE-2019-19921), so create fails naming the mount and the path.
#[test]
fn proc_and_sys_symlinks_are_refused() {
    let h = Ctx::new("hostile_proc_sys");
    trick(&h, "proc-to-root", |b, _| {
        link(b, "/proc", "/");
        Expect::Fails(strings(&[
            "proc must be mounted on an ordinary directory",
            "/proc",
            "symlink",
        ]))
    });
    let tag = format!("rt-hostile-nonexistent-{}", std::process::id());
    trick(&h, "sys-dangling", |b, _| {
        link(b, "/sys", format!("/{tag}/sys"));
        Expect::Fails(strings(&[
            "sysfs must be mounted on an ordinary directory",
            "/sys",
        ]))
    });
    assert!(!Path::new("/").join(&tag).exists());
}

/// `/dev -> /etc`: the /dev tmpfs and the device nodes land on the image's /etc, inside
/// the rootfs; the image's own files underneath are untouched.
#[test]
fn dev_symlink_to_etc_stays_in_rootfs() {
    let h = Ctx::new("hostile_dev_etc");
    let mut etc = PathBuf::new();
    let mut passwd = String::new();
    trick(&h, "dev-to-etc", |b, _| {
        link(b, "/dev", "/etc");
        etc = b.path_in_rootfs("/etc");
        passwd = fs::read_to_string(etc.join("passwd")).unwrap();
        b.sh("test -c /etc/null && test -c /dev/null && cut -d' ' -f5 /proc/self/mountinfo | grep -x /etc");
        Expect::Runs("/etc\n".into())
    });
    assert_eq!(fs::read_to_string(etc.join("passwd")).unwrap(), passwd);
    assert!(
        !etc.join("null").exists(),
        "device nodes went into the image"
    );
}

/// A mount destination that is a looping symlink (a -> b -> a), or goes through one: ELOOP,
/// naming the destination.
#[test]
fn looping_symlink_destinations_fail_with_eloop() {
    let h = Ctx::new("hostile_loop");
    for dest in ["/a", "/a/x"] {
        trick(&h, &format!("loop{}", dest.replace('/', "-")), |b, _| {
            symlink("b", b.path_in_rootfs("/a")).unwrap();
            symlink("a", b.path_in_rootfs("/b")).unwrap();
            b.mount(tmpfs(dest));
            Expect::Fails(strings(&[&format!("mounts: destination {dest}"), "ELOOP"]))
        });
    }
}

/// A destination that is a symlink to `/..` or to `../../..` resolves to the rootfs
/// itself: refused in one line (a mount there would cover the whole image, and the
/// container would then fail at exec for no visible reason). Below such a link, the mount
/// lands in the rootfs and nothing is made outside it.
#[test]
fn dotdot_symlink_destinations_stay_in_rootfs() {
    let h = Ctx::new("hostile_dotdot");
    for (name, target) in [("abs", "/.."), ("rel", "../../..")] {
        trick(&h, &format!("onto-root-{name}"), |b, _| {
            symlink(target, b.path_in_rootfs("/up")).unwrap();
            b.mount(tmpfs("/up"));
            Expect::Fails(strings(&[
                "mounts: destination /up",
                "resolves to the rootfs itself",
            ]))
        });
        let tag = format!("rt-hostile-{name}-{}", std::process::id());
        let mut inside = PathBuf::new();
        let mut bundle_dir = PathBuf::new();
        trick(&h, &format!("below-root-{name}"), |b, _| {
            symlink(target, b.path_in_rootfs("/up")).unwrap();
            b.mount(tmpfs(&format!("/up/{tag}")));
            b.sh(&format!(
                "touch /{tag}/ok && cut -d' ' -f5 /proc/self/mountinfo | grep -x /{tag}"
            ));
            inside = b.path_in_rootfs(&format!("/{tag}"));
            bundle_dir = b.dir.clone();
            Expect::Runs(format!("/{tag}\n"))
        });
        assert!(inside.is_dir(), "the destination was made in the rootfs");
        // Where `..` would have led on the host.
        let mut outside = vec![
            PathBuf::from("/").join(&tag),
            PathBuf::from("/tmp").join(&tag),
        ];
        outside.extend(bundle_dir.ancestors().map(|a| a.join(&tag)));
        for p in outside {
            assert!(!p.exists(), "{} made outside the rootfs", p.display());
        }
    }
}

/// Destinations that are, or go through, symlinks to absolute host paths (the canary):
/// a tmpfs and a bind of a file below such a link, and a deep destination under a
/// symlinked directory that does not exist, all land at those paths inside the rootfs;
/// the host's directory is untouched.
#[test]
fn host_path_symlink_destinations_stay_in_rootfs() {
    let h = Ctx::new("hostile_hostpath");
    let src = h.dir.join("bind-file");
    fs::write(&src, "bound\n").unwrap();
    let mut inside = PathBuf::new();
    let mut canary_dir = PathBuf::new();
    trick(&h, "host-paths", |b, canary| {
        let c = canary.display().to_string();
        symlink(canary, b.path_in_rootfs("/hostabs")).unwrap();
        symlink(canary.join("sub"), b.path_in_rootfs("/vol")).unwrap();
        symlink("usr/share", b.path_in_rootfs("/rel")).unwrap();
        b.mount(tmpfs("/hostabs/t"));
        b.mount(json!({ "destination": "/hostabs/f", "type": "bind", "source": src, "options": ["bind", "ro"] }));
        b.mount(tmpfs("/vol/deep/m"));
        b.mount(tmpfs("/rel/x"));
        b.sh(&format!(
            "cat /hostabs/f && cut -d' ' -f5 /proc/self/mountinfo | grep -e '^{c}' -e '^/usr/share'"
        ));
        inside = b.path_in_rootfs(&c);
        canary_dir = canary.to_path_buf();
        Expect::Runs(format!(
            "bound\n{c}/t\n{c}/f\n{c}/sub/deep/m\n/usr/share/x\n"
        ))
    });
    assert!(inside.join("t").is_dir() && inside.join("f").is_file());
    assert!(inside.join("sub/deep/m").is_dir());
    assert!(!canary_dir.join("sub").exists());
    assert_eq!(fs::read_to_string(&src).unwrap(), "bound\n");
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf of the image are symlinks out (to a host
/// file, through `..`, dangling) and the config binds files onto them, as Docker and
/// containerd do: the binds land on files made inside the rootfs, the host files are
/// untouched. Through a magic link (`/proc/self/root/...`) the bind is refused: ELOOP.
#[test]
fn etc_file_symlinks_out_of_the_rootfs() {
    let h = Ctx::new("hostile_etc_files");
    let files = h.subdir("container-files");
    for (name, text) in [
        ("hostname", "container-name\n"),
        ("hosts", "127.0.0.1 c\n"),
        ("resolv.conf", "nameserver 127.0.0.1\n"),
    ] {
        fs::write(files.join(name), text).unwrap();
    }
    let bind = |b: &mut Bundle, name: &str| {
        b.mount(json!({
            "destination": format!("/etc/{name}"), "type": "bind",
            "source": files.join(name), "options": ["rbind", "ro"]
        }));
    };
    trick(&h, "etc-files", |b, canary| {
        fs::write(canary.join("hostname"), "host-name\n").unwrap();
        link(b, "/etc/hostname", canary.join("hostname"));
        link(
            b,
            "/etc/hosts",
            format!("../../../../../../../..{}/hosts", canary.display()),
        );
        link(b, "/etc/resolv.conf", canary.join("missing-resolv"));
        for name in ["hostname", "hosts", "resolv.conf"] {
            bind(b, name);
        }
        b.sh("cat /etc/hostname /etc/hosts /etc/resolv.conf");
        Expect::Runs("container-name\n127.0.0.1 c\nnameserver 127.0.0.1\n".into())
    });
    trick(&h, "etc-magic-link", |b, canary| {
        link(
            b,
            "/etc/resolv.conf",
            format!("/proc/self/root{}/canary-file", canary.display()),
        );
        bind(b, "resolv.conf");
        Expect::Fails(strings(&["mounts: destination /etc/resolv.conf", "ELOOP"]))
    });
}

/// A measured invocation finished within [`BOUND`] and its peak RSS stayed below `limit`
/// bytes; says what it took, also relative to the config's `size`.
fn assert_bounded(m: &measure::Measured, size: u64, limit: u64, what: &str) {
    eprintln!(
        "{what}: {:.2} s, peak RSS {} KiB ({:.2}x the config's {size} bytes)",
        m.elapsed.as_secs_f64(),
        m.max_rss_kb,
        (m.max_rss_kb * 1024) as f64 / size as f64,
    );
    assert!(m.elapsed < BOUND, "{what}: took {:?}", m.elapsed);
    assert!(
        m.max_rss_kb * 1024 < limit,
        "{what}: peak RSS {} KiB, over the bound of {} KiB",
        m.max_rss_kb,
        limit / 1024
    );
}

fn config_size(b: &Bundle) -> u64 {
    fs::metadata(b.dir.join("config.json")).unwrap().len()
}

/// A 100 MB config.json (one giant annotation): the container runs, within the time bound,
/// with rt's peak memory a small multiple of the config (measured: see the README).
#[test]
fn config_of_100_mb_runs_in_bounded_time_and_memory() {
    let h = Ctx::new("hostile_100mb");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["annotations"] = json!({ "org.example.huge": "x".repeat(100_000_000) });
    b.args(&["true"]);
    b.save();
    let size = config_size(&b);
    assert!(size > 100_000_000);
    let m = h.rt_measured(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    m.out.ok();
    assert_bounded(&m, size, 4 * size, "run with a 100 MB config");
    h.assert_nothing_left(&id);
}

/// 10 000 tmpfs mounts on distinct directories: all made (the container counts them), in
/// bounded time and memory, and gone with the container.
#[test]
fn ten_thousand_mounts() {
    let h = Ctx::new("hostile_10k_mounts");
    let id = h.id();
    let mut b = h.bundle(&id);
    for i in 0..10_000 {
        b.mount(json!({ "destination": format!("/mnt/m{i}"), "type": "tmpfs", "source": "tmpfs", "options": ["size=4k"] }));
    }
    b.sh("grep -c ' /mnt/m[0-9]* ' /proc/self/mountinfo");
    b.save();
    let size = config_size(&b);
    let m = h.rt_measured(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    m.out.ok();
    assert_eq!(m.out.stdout, "10000\n");
    // A small config: rt's own baseline dominates, so the bound is absolute.
    assert_bounded(&m, size, 100 << 20, "run with 10 000 mounts");
    assert_eq!(own_mounts_below(&h.dir), Vec::<String>::new());
    h.assert_nothing_left(&id);
}

/// A 64 KiB hostname (the kernel keeps 64 bytes): create fails in one short line naming
/// the field, the length and the limit, not quoting 64 KiB back.
#[test]
fn hostname_of_64_kib_is_refused_in_one_short_line() {
    let h = Ctx::new("hostile_hostname");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["hostname"] = json!("h".repeat(65536));
    let out = assert_create_fails_with(&h, &id, &b, &["hostname: 65536 bytes long", "64"]);
    assert!(out.stderr.len() < 400, "{}", out.stderr.len());
    // The limit itself still works.
    b.config["hostname"] = json!("h".repeat(64));
    b.args(&["hostname"]);
    assert_eq!(h.run_ok(&id, &b), format!("{}\n", "h".repeat(64)));
    h.assert_nothing_left(&id);
}

/// 1 000 000 env entries, and one 200 KB entry: execve would fail with E2BIG, so create
/// refuses them up front in one line naming the field and E2BIG, in bounded time and
/// memory, before anything is made. The same for `exec --process`.
#[test]
fn a_million_env_entries_fail_fast_with_e2big() {
    let h = Ctx::new("hostile_env");
    let id = h.id();
    let mut b = h.bundle(&id);
    let env = b.config["process"]["env"].as_array_mut().unwrap();
    env.extend((0..1_000_000).map(|i| json!(format!("E{i}=v"))));
    b.save();
    let size = config_size(&b);
    let m = h.rt_measured(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    m.out.expect_error();
    for n in ["process.args and process.env", "strings", "E2BIG"] {
        assert!(m.out.stderr.contains(n), "{n:?}: {}", m.out.describe());
    }
    assert_bounded(&m, size, 10 * size, "create with 1 000 000 env entries");
    h.assert_nothing_left(&id);

    let mut b = h.bundle(&id);
    b.env(&format!("BIG={}", "x".repeat(200_000)));
    let out = assert_create_fails_with(&h, &id, &b, &["process.env[", "200004 bytes", "E2BIG"]);
    assert!(out.stderr.len() < 400);

    // exec: the same check on --process.
    let mut b = h.bundle(&id);
    b.args(&["sleep", "60"]);
    h.create_ok(&id, &b);
    let mut p = b.config["process"].clone();
    p["args"] = json!(["true"]);
    p["env"] = json!((0..1_000_000)
        .map(|i| format!("E{i}=v"))
        .collect::<Vec<_>>());
    let pf = h.dir.join("process.json");
    fs::write(&pf, p.to_string()).unwrap();
    let out = h.rt(&["exec", "--process", pf.to_str().unwrap(), &id]);
    out.expect_code(255);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.describe());
    assert!(out.stderr.contains("E2BIG"), "{}", out.describe());
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// Where the pids controller is: v1's own hierarchy or a v2 tree that has it.
fn pids_hierarchy() -> Option<PathBuf> {
    let v1 = PathBuf::from("/sys/fs/cgroup/pids");
    if v1.join("cgroup.procs").exists() && !v1.join("cgroup.controllers").exists() {
        return Some(v1);
    }
    let v2 = PathBuf::from("/sys/fs/cgroup");
    let ctrls = fs::read_to_string(v2.join("cgroup.subtree_control")).unwrap_or_default();
    ctrls.split_whitespace().any(|c| c == "pids").then_some(v2)
}

/// No pids left: rt create runs in a pids cgroup of the test's own with pids.max 1, 2, …
/// Every failure is one line naming fork or clone and EAGAIN, and leaves nothing; once
/// enough pids are allowed, create succeeds.
#[test]
fn no_pids_left_during_create() {
    let h = Ctx::new("hostile_pids");
    let Some(hier) = pids_hierarchy() else {
        skip(&h.name, "no pids cgroup controller on this host");
        return;
    };
    let cg = PidsCgroup(hier.join(format!("rt-hostile-{}", h.name)));
    fs::create_dir(&cg.0).unwrap();
    let cg = &cg.0;
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "60"]);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.save();
    let mut failures = 0;
    let mut created = false;
    for max in 1..=12 {
        fs::write(cg.join("pids.max"), max.to_string()).unwrap();
        let mut c = h.command(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        let procs = cg.join("cgroup.procs");
        // SAFETY: between fork and exec only write(2)s through an fd opened before fork.
        let f = fs::OpenOptions::new().write(true).open(&procs).unwrap();
        unsafe {
            c.pre_exec(move || {
                use std::io::Write;
                (&f).write_all(b"0")
            });
        }
        let out = h.rt_cmd(c, &["create", &id]);
        if out.success() {
            created = true;
            break;
        }
        out.expect_error();
        eprintln!("pids.max {max}: {}", out.stderr.trim());
        assert!(
            out.stderr.contains("EAGAIN")
                && (out.stderr.contains("fork") || out.stderr.contains("clone")),
            "pids.max {max}: {}",
            out.describe()
        );
        failures += 1;
        h.assert_nothing_left(&id);
    }
    assert!(failures > 0, "no create failed for want of pids");
    assert!(created, "create never succeeded, even with 12 pids");
    h.record_pid(&id);
    h.delete_force(&id).ok();
    h.assert_nothing_left(&id);
}

/// The test's own pids cgroup, removed (once empty) even when the test fails.
struct PidsCgroup(PathBuf);

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("pids.max"), "max");
        for _ in 0..50 {
            if fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: cannot remove {}", self.0.display());
    }
}

/// One `create` per setting of the state directory, each in a throwaway mount namespace:
/// the script prints, per attempt, `RC <code>`, `ERR <stderr>`, and `LEFT <state dir
/// entries>|<cgroup dirs>|<rt processes>`.
fn state_dir_script(h: &Ctx, id: &str, b: &Bundle, setups: &[String]) -> String {
    let rt = rt_bin().display().to_string();
    let small = h.dir.join("small-root");
    let sr = small.display();
    let mut s = format!("mkdir -p {sr}\n");
    for setup in setups {
        s.push_str(&format!(
            "umount {sr} 2>/dev/null; {setup}\n\
             {rt} --root {sr}/state create --bundle {} {id} > out 2> err; echo \"RC $?\"\n\
             echo \"ERR $(cat err)\"\n\
             echo \"LEFT $(ls -A {sr}/state 2>/dev/null | tr '\\n' ' ')|$(ls -d /sys/fs/cgroup/*/rt-test/{id} 2>/dev/null | wc -l)|\
             $(for p in /proc/[0-9]*; do case \"$(cat $p/comm 2>/dev/null)\" in rt*) echo -n x;; esac; done)\"\n\
             {rt} --root {sr}/state delete --force {id} 2>/dev/null\n",
            b.dir.display()
        ));
    }
    s.push_str(&format!("umount {sr}; true\n"));
    s
}

/// The attempts of [`state_dir_script`]: (exit code, stderr, what was left).
fn attempts(out: &Output) -> Vec<(i32, String, String)> {
    let mut v = Vec::new();
    let mut lines = out.stdout.lines();
    while let Some(l) = lines.next() {
        let Some(rc) = l.strip_prefix("RC ") else {
            continue;
        };
        let err = lines
            .next()
            .and_then(|l| l.strip_prefix("ERR "))
            .unwrap_or("");
        let left = lines
            .next()
            .and_then(|l| l.strip_prefix("LEFT "))
            .unwrap_or("?");
        v.push((rc.parse().unwrap(), err.to_string(), left.to_string()));
    }
    v
}

/// ENOSPC on the state directory: a 64 KiB tmpfs as `--root`, filled to leave 0 to 8
/// pages (and one with no inodes left). Each create succeeds or fails in one line naming
/// the file and ENOSPC, leaving no state directory, cgroup or process.
#[test]
fn enospc_on_the_state_directory() {
    let h = Ctx::new("hostile_enospc");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "60"]);
    b.save();
    let sr = h.dir.join("small-root").display().to_string();
    let mut setups: Vec<String> = (0..=8)
        .map(|free| {
            format!(
                "mount -t tmpfs -o size=64k tmpfs {sr} && mkdir {sr}/state && \
                 dd if=/dev/zero of={sr}/fill bs=4k count={} 2>/dev/null",
                16 - free
            )
        })
        .collect();
    setups.push(format!(
        "mount -t tmpfs -o size=1m,nr_inodes=2 tmpfs {sr} && mkdir {sr}/state"
    ));
    let out = h
        .sh_in_throwaway_ns(&state_dir_script(&h, &id, &b, &setups), false)
        .unwrap();
    let tries = attempts(&out);
    assert_eq!(tries.len(), setups.len(), "{}", out.describe());
    for (i, (rc, err, _)) in tries.iter().enumerate() {
        eprintln!("setup {i}: exit {rc} {err}");
    }
    let mut enospc = 0;
    for (i, (rc, err, left)) in tries.iter().enumerate() {
        if *rc == 0 {
            continue;
        }
        assert_eq!(*rc, 1, "attempt {i}: {err}");
        assert!(
            err.contains("ENOSPC") && !err.contains('\n'),
            "attempt {i}: {err}"
        );
        assert_eq!(left, "|0|", "attempt {i} left something ({err})");
        enospc += 1;
    }
    assert!(enospc >= 2, "{}", out.describe());
    assert_eq!(tries.last().unwrap().0, 1, "no inodes: create must fail");
    h.assert_nothing_left(&id);
}

/// A read-only `--root` (a read-only tmpfs, a read-only bind of a directory, and a root
/// still to be made on a read-only filesystem): one line naming the path and EROFS,
/// nothing left; `list` on it still works.
#[test]
fn read_only_state_directory() {
    let h = Ctx::new("hostile_ro_root");
    let id = h.id();
    let b = h.bundle(&id);
    b.save();
    let sr = h.dir.join("small-root").display().to_string();
    let ro_dir = h.subdir("ro-dir");
    fs::create_dir(ro_dir.join("state")).unwrap();
    let setups = [
        format!("mount -t tmpfs tmpfs {sr} && mkdir {sr}/state && mount -o remount,ro {sr}"),
        format!(
            "mount --bind {} {sr} && mount -o remount,bind,ro {sr}",
            ro_dir.display()
        ),
        format!("mount -t tmpfs -o ro tmpfs {sr}"),
    ];
    let script = state_dir_script(&h, &id, &b, &setups)
        + &format!(
            "mount -t tmpfs tmpfs {sr} && mkdir {sr}/state && mount -o remount,ro {sr} && \
             {} --root {sr}/state list -q; echo \"LIST $?\"; umount {sr}\n",
            rt_bin().display()
        );
    let out = h.sh_in_throwaway_ns(&script, false).unwrap();
    let tries = attempts(&out);
    assert_eq!(tries.len(), setups.len(), "{}", out.describe());
    for (i, (rc, err, left)) in tries.iter().enumerate() {
        assert_eq!(*rc, 1, "attempt {i}: {err}");
        assert!(
            err.contains("EROFS") && err.contains(&sr),
            "attempt {i}: {err}"
        );
        assert_eq!(left, "|0|", "attempt {i} left something ({err})");
    }
    assert!(out.stdout.contains("LIST 0"), "{}", out.describe());
    assert_eq!(
        snapshot(&ro_dir).len(),
        1,
        "the bound directory was written to"
    );
    h.assert_nothing_left(&id);
}

/// EMFILE: create with RLIMIT_NOFILE 3 to 16. Each fails in one line naming EMFILE and
/// leaving nothing (the state directory included, which the cleanup needs an fd to walk),
/// or succeeds.
#[test]
fn emfile_during_create() {
    let h = Ctx::new("hostile_emfile");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["sleep", "60"]);
    // The config's own RLIMIT_NOFILE (1024) could not be raised above the test's limit.
    b.config["process"]
        .as_object_mut()
        .unwrap()
        .remove("rlimits");
    b.save();
    let mut emfile = 0;
    let mut created = false;
    for n in 3..=16u64 {
        let mut c = h.command(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = h.rt_cmd(c, &["create", &id]);
        if out.success() {
            created = true;
            h.record_pid(&id);
            h.delete_force(&id).ok();
        } else {
            out.expect_error();
            eprintln!("nofile {n}: {}", out.stderr.trim());
            assert!(
                out.stderr.contains("EMFILE"),
                "nofile {n}: {}",
                out.describe()
            );
            emfile += 1;
        }
        h.assert_nothing_left(&id);
    }
    assert!(emfile >= 3, "too few EMFILE failures: {emfile}");
    assert!(created, "create never succeeded with 16 fds");
}
