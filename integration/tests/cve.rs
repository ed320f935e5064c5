//! Known container escapes replayed against the runtime. Every test performs the attack for
//! real (against files and directories the test owns, never the host's own) and asserts that
//! it fails:
//!
//! - CVE-2019-5736: overwriting the runtime binary through `/proc/<pid>/exe` of a runtime
//!   process that a container can see.
//! - CVE-2016-9962 / CVE-2024-21626: host file descriptors reaching the container (directly,
//!   through `process.cwd`, or through the path of `process.args[0]`), and the init being
//!   dumpable while it waits in the created state.
//! - CVE-2021-30465, CVE-2025-31133, CVE-2025-52565: symlinks in the rootfs that would lead
//!   mounts, masked paths or `/dev/console` out of it, or turn masks into something else.
//! - maskedPaths and readonlyPaths against remounts and unmounts from inside the container.
//!
//! Races are played by a second, attacker container that shares a volume (or the rootfs)
//! with the victim and swaps symlinks in a loop while the victim is created; they retry until
//! the attack wins or a deadline passes. Nothing here writes to /dev/null of a container
//! whose /dev/null an attacker controls (a shell's `2>/dev/null` would truncate the target).

use integration::console::ConsoleSocket;
use integration::*;
use serde_json::json;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// Mount points of this (the host's) mount namespace at or below `dir`.
fn host_mounts_below(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = dir.to_str().unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| {
            mp.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .map(str::to_string)
        .collect()
}

/// How many mounts of the host's mount namespace sit exactly at `path`.
fn host_mounts_at(path: &str) -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(path))
        .count()
}

/// Names in a host directory (sorted), or empty if it does not exist.
fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Masked paths of the runc default config that exist on this kernel (files and dirs).
fn existing_masked_paths() -> Vec<&'static str> {
    [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/sys/firmware",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect()
}

/// A shell snippet printing `masked-ok <path>` for every path of `paths` that is masked
/// (an empty directory, or the null device with no content) and `NOT-MASKED <path>` otherwise.
/// Never write the output into a file that a masked path may be bound to: some runtimes
/// (runc 1.1.5, CVE-2025-31133) would then have a `cat` append to its own input forever.
fn check_masked_script(paths: &[&str]) -> String {
    check_masked_script_to(paths, "/dev/null")
}

/// [`check_masked_script`] with error messages going to `sink`.
fn check_masked_script_to(paths: &[&str], sink: &str) -> String {
    let mut s = String::new();
    for p in paths {
        s.push_str(&format!(
            "if [ -d {p} ]; then n=$(ls -A {p} 2>{sink} | wc -l); \
               [ \"$n\" = 0 ] && echo masked-ok {p} || echo NOT-MASKED {p}; \
             else d=$(stat -c %t:%T {p} 2>{sink}); c=$(cat {p} 2>{sink} | wc -c); \
               [ \"$d\" = 1:3 ] && [ \"$c\" = 0 ] && echo masked-ok {p} || echo NOT-MASKED {p} $d $c; \
             fi; "
        ));
    }
    s
}

/// Like [`check_masked_script`], but only asks that the real content stays hidden: a masked
/// file may be any character device (the null device, or a pty mounted over it), and is
/// never read (reading a pty would block). Prints `REVEALED <path>` otherwise.
fn hidden_script(paths: &[&str]) -> String {
    let mut s = String::new();
    for p in paths {
        s.push_str(&format!(
            "if [ -d {p} ]; then n=$(ls -A {p} 2>/dev/null | wc -l); \
               [ \"$n\" = 0 ] || echo REVEALED {p}; \
             elif [ -e {p} ] && ! [ -c {p} ]; then echo REVEALED {p}; fi; "
        ));
    }
    s
}

/// Lines of `out` starting with `NOT-MASKED`.
fn not_masked(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with("NOT-MASKED"))
        .collect()
}

/// Run `RT_BIN --root <root> args...` with host files handed to the runtime as fds 3, 4, ...
/// (not close-on-exec), the way a careless caller leaks them.
fn rt_with_fds(h: &Ctx, args: &[&str], fds: &[&File]) -> Output {
    let mut c = h.command(args);
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    assert!(raw.len() <= 8);
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl and
    // dup2 (async-signal-safe) on fds this process owns; it does not allocate.
    unsafe {
        c.pre_exec(move || {
            // First move every source above the targets, so no dup2 clobbers a source.
            let mut high = [-1i32; 8];
            for (i, fd) in raw.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().take(raw.len()).enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    h.rt_cmd(c, args)
}

/// `create` with leaked fds (see [`rt_with_fds`]) and extra options before the id. Records
/// the init pid on success.
fn create_with_fds(h: &Ctx, id: &str, b: &Bundle, extra: &[&str], fds: &[&File]) -> Output {
    b.save();
    let mut args = vec!["create"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--bundle", b.dir.to_str().unwrap(), id]);
    let out = rt_with_fds(h, &args, fds);
    if out.success() {
        h.track_pid(init_pid(h, id));
    }
    out
}

fn init_pid(h: &Ctx, id: &str) -> i32 {
    h.state_ok(id)["pid"].as_i64().unwrap() as i32
}

/// Wait until `pid` runs the program `comm` (i.e. the init has exec'd it).
fn wait_comm(pid: i32, comm: &str) {
    poll(T, &format!("pid {pid} to exec {comm}"), || {
        let c = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (c.trim() == comm).then_some(())
    });
}

/// Sorted fd numbers open in `pid`, each with what it points to.
fn open_fds(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            Some((n, target))
        })
        .collect();
    v.sort();
    v
}

/// Write `text` to `path` atomically (a reader polling for `path` never sees it partial).
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Poll for a file written by a container, and return its content.
fn wait_file(path: &Path) -> String {
    poll(T, &format!("{} to appear", path.display()), || {
        fs::read_to_string(path).ok()
    })
}

/// A test-owned copy of the runtime binary (same file name), so that a successful attack
/// corrupts only the copy and never the binary other tests are using.
fn runtime_copy(h: &Ctx) -> PathBuf {
    let bin = fs::canonicalize(rt_bin()).unwrap();
    let dir = h.subdir("bin");
    let copy = dir.join(bin.file_name().unwrap());
    fs::copy(&bin, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// CVE-2019-5736. An attacker container A shares its pid namespace with container B (B
/// joins it, as a pod sharing its pid namespace would). While B is created but not started
/// its init runs the runtime's own code, so `/proc/<B init>/exe` is the runtime binary. From
/// inside A (root, default capabilities, no CAP_SYS_PTRACE) every way to reach it must fail:
/// readlink, read, write, open (to reopen it for writing once the runtime has exited, via
/// /proc/self/fd), and the init's fds, root, cwd and environ. Once B has exec'd its program
/// the same probes succeed (showing the probes do reach B's process) and `exe` is B's busybox,
/// never the runtime. The runtime binary (a copy used for B) is unchanged throughout.
#[test]
fn cve_2019_5736_runtime_binary_unreachable_through_proc_exe() {
    let h = Ctx::new("cve_2019_5736");
    let rt_copy = runtime_copy(&h);
    let original = fs::read(&rt_copy).unwrap();
    let shared = h.subdir("shared");

    let ida = h.id();
    let mut a = h.bundle(&ida);
    a.bind_host_dir(&shared, "/shared", false);
    a.sh(r#"
while [ ! -e /shared/target ]; do usleep 20000; done
p=$(cat /shared/target)
try() { if eval "$2" >/dev/null 2>&1 </dev/null; then echo "$1"; fi; }
# $1: what to append to the exe ("PWNED" to the runtime binary; nothing to B's busybox).
probe() {
  try readlink-exe "readlink /proc/$p/exe"
  try read-exe "head -c 64 /proc/$p/exe"
  try write-exe "printf '$1' >> /proc/$p/exe"
  for n in 0 1 2 3 4 5 6 7 8 9 10 11 12; do try readlink-fd-$n "readlink /proc/$p/fd/$n"; done
  try list-root "ls /proc/$p/root/"
  try readlink-cwd "readlink /proc/$p/cwd"
  try environ "cat /proc/$p/environ"
  try maps "cat /proc/$p/maps"
}
probe PWNED > /shared/created.tmp; mv /shared/created.tmp /shared/created
# Keep a handle on the binary if we can get one: reopened for writing later. (Probe in a
# subshell first: a failed redirection of `exec` would end this shell.)
if (exec 7</proc/$p/exe) 2>/dev/null; then exec 7</proc/$p/exe; echo held > /shared/held; fi
while [ ! -e /shared/started ]; do usleep 20000; done
{
  if [ -e /proc/self/fd/7 ] && printf PWNED >> /proc/self/fd/7; then echo REOPENED-FOR-WRITE; fi
  probe ''
  cmp -s /proc/$p/exe /bin/busybox && echo exe-is-busybox
  cmp -s /proc/1/exe /bin/busybox && echo own-pid1-is-busybox
} > /shared/running.tmp 2>/dev/null
mv /shared/running.tmp /shared/running
exec sleep 1000
"#);
    h.run_detached(&ida, &a).ok();
    let apid = init_pid(&h, &ida);

    let idb = h.id();
    let mut b = h.bundle(&idb);
    b.namespace("pid", Some(&format!("/proc/{apid}/ns/pid")));
    b.args(&["sleep", "1000"]);
    b.save();
    let args = ["create", "--bundle", b.dir.to_str().unwrap(), idb.as_str()];
    let mut c = Command::new(&rt_copy);
    c.arg("--root").arg(&h.root).args(args);
    c.env(MARK_VAR, h.name.as_str());
    h.rt_cmd(c, &args).ok();
    let bpid = init_pid(&h, &idb);
    h.track_pid(bpid);
    // B's init as A sees it: the last NSpid entry.
    let status = fs::read_to_string(format!("/proc/{bpid}/status")).unwrap();
    let inner = status_field(&status, "NSpid")
        .and_then(|s| s.split_whitespace().last())
        .unwrap()
        .to_string();
    write_atomic(&shared.join("target"), &inner);

    let created = wait_file(&shared.join("created"));
    assert_eq!(
        created, "",
        "container A reached the created init of B (still running the runtime): {created}"
    );
    assert!(
        !shared.join("held").exists(),
        "container A opened /proc/<init>/exe of the runtime"
    );

    h.start(&idb).ok();
    wait_comm(bpid, "sleep");
    write_atomic(&shared.join("started"), "");
    let running = wait_file(&shared.join("running"));
    let lines: Vec<&str> = running.lines().collect();
    assert!(!lines.contains(&"REOPENED-FOR-WRITE"), "{running}");
    // Positive control: once B runs its own program, A does reach it, and it is busybox.
    for want in [
        "readlink-exe",
        "read-exe",
        "environ",
        "exe-is-busybox",
        "own-pid1-is-busybox",
    ] {
        assert!(lines.contains(&want), "{want} missing: {running}");
    }
    // The program's binary is in use: not writable either (ETXTBSY).
    assert!(!lines.contains(&"write-exe"), "{running}");
    assert!(
        fs::read(&rt_copy).unwrap() == original,
        "the runtime binary {} was modified",
        rt_copy.display()
    );
    h.delete_force(&idb).ok();
    // B's init is our (the subreaper's) child: until it is reaped, A's init cannot finish
    // dying (a pid namespace's init waits for every process of the namespace).
    h.reap(bpid, T);
    h.delete_force(&ida).ok();
    h.assert_nothing_left(&idb);
    h.assert_nothing_left(&ida);
}

/// CVE-2016-9962 / CVE-2024-21626: fds the runtime's caller leaks (fd 3 and 4 here, neither
/// close-on-exec) and the runtime's own fds never reach the program; `--preserve-fds 1`
/// passes exactly fd 3.
#[test]
fn cve_2024_21626_no_fd_leaks_into_container() {
    let h = Ctx::new("cve_2024_21626_fds");
    let hostdir = h.subdir("hostdir");
    fs::write(hostdir.join("HOST-MARKER"), "host").unwrap();
    let leak_dir = File::open(&hostdir).unwrap();
    let leak_file = File::open(hostdir.join("HOST-MARKER")).unwrap();
    for preserve in [0u32, 1] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.args(&["sleep", "1000"]);
        let n = preserve.to_string();
        let extra: Vec<&str> = if preserve > 0 {
            vec!["--preserve-fds", &n]
        } else {
            vec![]
        };
        create_with_fds(&h, &id, &b, &extra, &[&leak_dir, &leak_file]).ok();
        let pid = init_pid(&h, &id);
        h.start(&id).ok();
        wait_comm(pid, "sleep");
        let fds = open_fds(pid);
        let nums: Vec<i32> = fds.iter().map(|(n, _)| *n).collect();
        if preserve == 0 {
            assert_eq!(nums, [0, 1, 2], "fds leaked into the container: {fds:?}");
        } else {
            assert_eq!(nums, [0, 1, 2, 3], "--preserve-fds 1: {fds:?}");
            assert_eq!(fds[3].1, hostdir.display().to_string(), "{fds:?}");
        }
        h.delete_force(&id).ok();
        h.assert_nothing_left(&id);
    }
}

/// Run `script` as the program in a container whose `process.cwd` is `cwd`, with a host
/// directory leaked to the runtime as fd 3. Returns the program's output, or `None` when the
/// runtime refused the config.
fn run_with_cwd(h: &Ctx, cwd: &str, leak: &File, setup: impl Fn(&Bundle)) -> Option<String> {
    let id = h.id();
    let mut b = h.bundle(&id);
    setup(&b);
    b.config["process"]["cwd"] = json!(cwd);
    b.sh("echo cwd=$(pwd -P); ls -a . ..; ls -a ../..");
    b.save();
    let out = rt_with_fds(
        h,
        &["run", "--bundle", b.dir.to_str().unwrap(), &id],
        &[leak],
    );
    let r = out.success().then(|| out.stdout.clone());
    h.delete_force(&id);
    h.assert_nothing_left(&id);
    r
}

/// Does a directory listing seen from a container show the host: the test's own temp dir
/// (state, bundles) or the leaked host directory?
fn shows_host(out: &str) -> bool {
    out.lines().any(|l| {
        let l = l.trim();
        l == "HOST-MARKER" || l == "state.json" || l == "exec.fifo" || l.starts_with("bundle-")
    })
}

/// CVE-2024-21626 (attack 1): a `process.cwd` through /proc/self/fd/N (the runtime's own
/// fds, or a host directory the caller leaked as fd 3) or through a rootfs symlink to one
/// must be refused or land inside the container, never on a host directory.
#[test]
fn cve_2024_21626_cwd_cannot_escape() {
    let h = Ctx::new("cve_2024_21626_cwd");
    let hostdir = h.subdir("hostdir");
    fs::write(hostdir.join("HOST-MARKER"), "host").unwrap();
    let leak = File::open(&hostdir).unwrap();
    let mut escapes = Vec::new();
    let none = |_: &Bundle| {};
    let mut cwds: Vec<String> = (3..=12).map(|n| format!("/proc/self/fd/{n}")).collect();
    cwds.extend(
        [
            "/proc/self/fd/3/..",
            "/proc/self/cwd",
            "/proc/self/root/../..",
            "/proc/1/cwd",
        ]
        .map(String::from),
    );
    for cwd in &cwds {
        if let Some(out) = run_with_cwd(&h, cwd, &leak, none) {
            if shows_host(&out) {
                escapes.push(format!("cwd {cwd}: {out}"));
            }
        }
    }
    // The same through plain symlinks in the rootfs.
    for n in 3..=8 {
        let link = |b: &Bundle| {
            std::os::unix::fs::symlink(format!("/proc/self/fd/{n}"), b.path_in_rootfs("/escape"))
                .unwrap();
        };
        if let Some(out) = run_with_cwd(&h, "/escape", &leak, link) {
            if shows_host(&out) {
                escapes.push(format!("cwd /escape -> /proc/self/fd/{n}: {out}"));
            }
        }
    }
    // A symlink to an absolute host path resolves inside the rootfs.
    let abs = |b: &Bundle| {
        std::os::unix::fs::symlink(&hostdir, b.path_in_rootfs("/hostlink")).unwrap();
    };
    if let Some(out) = run_with_cwd(&h, "/hostlink", &leak, abs) {
        if shows_host(&out) {
            escapes.push(format!("cwd /hostlink -> {}: {out}", hostdir.display()));
        }
    }
    assert!(escapes.is_empty(), "cwd escaped the rootfs:\n{escapes:#?}");
    assert_eq!(dir_entries(&hostdir), ["HOST-MARKER"]);
}

/// CVE-2024-21626 (attack 2, with the CVE-2019-5736 payload): a `process.args[0]` that
/// reaches the host through /proc/self/fd/N (an image's entrypoint can be anything) must not
/// execute a host binary. If it did, the program could hold `/proc/self/exe` open, exec
/// something else, and reopen the host binary for writing. The "host binary" is a copy of
/// busybox in the test's temp dir. Tried: `/proc/self/fd/N/../../<host path>` for every N
/// from 3 to 12 (the runtime's own fds; then with a host directory leaked by the caller as
/// fd 3), and a rootfs symlink `/escape/busybox -> /proc/self/fd/3` with the host binary itself
/// leaked by the caller as fd 3 (not in --preserve-fds, so it must not reach the container).
#[test]
fn cve_2024_21626_program_path_cannot_escape() {
    let h = Ctx::new("cve_2024_21626_exec");
    let hostbin = h.subdir("hostbin");
    let victim = hostbin.join("busybox");
    fs::copy(rootfs_src().join("bin/busybox"), &victim).unwrap();
    let original = fs::read(&victim).unwrap();
    let hostdir = h.subdir("hostdir");
    let leaked_dir = File::open(&hostdir).unwrap();
    let leaked_bin = File::open(&victim).unwrap();
    let up = "/..".repeat(24);
    let through = |n: i32| format!("/proc/self/fd/{n}{up}{}", victim.display());
    // (what, program, fd leaked by the caller as fd 3)
    let mut cases: Vec<(String, String, Option<&File>)> = Vec::new();
    for n in 3..=12 {
        cases.push((format!("fd {n}"), through(n), None));
    }
    for n in 3..=12 {
        let what = format!("fd {n}, caller leaked a host directory as fd 3");
        cases.push((what, through(n), Some(&leaked_dir)));
    }
    let what = "/escape/busybox -> /proc/self/fd/3, caller leaked the host binary as fd 3";
    cases.push((
        what.to_string(),
        "/escape/busybox".to_string(),
        Some(&leaked_bin),
    ));
    let mut escapes = Vec::new();
    for (what, prog, leak) in &cases {
        let id = h.id();
        let mut b = h.bundle(&id);
        fs::create_dir_all(b.path_in_rootfs("/escape")).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd/3", b.path_in_rootfs("/escape/busybox")).unwrap();
        b.args(&[
            prog,
            "sh",
            "-c",
            "echo ESCAPED-EXEC $(readlink /proc/self/exe); exec 7</proc/self/exe; \
             exec /bin/busybox sh -c 'printf PWNED >> /proc/self/fd/7 && echo OVERWROTE'",
        ]);
        b.save();
        let args = ["run", "--bundle", b.dir.to_str().unwrap(), id.as_str()];
        let out = match leak {
            Some(f) => rt_with_fds(&h, &args, &[f]),
            None => h.rt(&args),
        };
        if out.stdout.contains("ESCAPED-EXEC") {
            escapes.push(format!("{what}: {}", out.stdout.trim()));
        }
        h.delete_force(&id);
        h.assert_nothing_left(&id);
    }
    let modified = fs::read(&victim).unwrap() != original;
    assert!(
        escapes.is_empty() && !modified,
        "a host binary was executed in the container (and overwritten: {modified}):\n\
         {escapes:#?}"
    );
}

/// CVE-2024-21626 with a race: `process.cwd` is a directory in a volume that another
/// container (the attacker, sharing the volume) keeps swapping with a symlink to
/// /proc/self/fd/N, N being a directory fd that a created init holds. A check of the cwd
/// before pivot_root does not cover the chdir after it: the program must never start with
/// its cwd on the host.
#[test]
fn cve_2024_21626_cwd_swapped_by_another_container() {
    let h = Ctx::new("cve_2024_21626_cwd_race");
    let vol = h.subdir("volume");
    let volume = |b: &mut Bundle| {
        b.bind_host_dir(&vol, "/vol", false);
    };
    // Which fds of a created init are directories (on the host)? Same config shape and
    // the same `create` as the attempts below, so the same fd numbers.
    let probe = h.id();
    let mut b = h.bundle(&probe);
    volume(&mut b);
    b.args(&["true"]);
    h.create_ok(&probe, &b);
    let pid = init_pid(&h, &probe);
    h.track_pid(pid);
    let mut dir_fds: Vec<i32> = open_fds(pid)
        .iter()
        .filter(|(n, _)| fs::metadata(format!("/proc/{pid}/fd/{n}")).is_ok_and(|m| m.is_dir()))
        .map(|(n, _)| *n)
        .collect();
    h.delete_force(&probe).ok();
    h.assert_nothing_left(&probe);
    if dir_fds.is_empty() {
        // Nothing to point at: try the usual suspects anyway.
        dir_fds = vec![3, 4, 5];
    }
    let targets: Vec<String> = dir_fds
        .iter()
        .map(|n| format!("/proc/self/fd/{n}"))
        .collect();

    let ida = h.id();
    let mut a = h.bundle(&ida);
    volume(&mut a);
    // `w` always exists: a symlink atomically retargeted (rename over it) between a real
    // directory of the volume and the init's directory fd.
    a.sh(&format!(
        "cd /vol; mkdir real; while :; do for t in {}; do \
           ln -s real a.tmp; mv -fT a.tmp w; ln -s $t b.tmp; mv -fT b.tmp w; \
         done; done",
        targets.join(" ")
    ));
    h.run_detached(&ida, &a).ok();

    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut tries, mut started) = (0, 0);
    let mut escape = None;
    while Instant::now() < deadline && tries < 80 && escape.is_none() {
        tries += 1;
        let id = h.id();
        let mut b = h.bundle(&id);
        volume(&mut b);
        b.config["process"]["cwd"] = json!("/vol/w");
        let result = format!("result-{tries}");
        b.sh(&format!(
            "{{ echo cwd=$(pwd -P); ls -a . .. ../..; }} > /vol/{result}.tmp 2>&1; \
             mv /vol/{result}.tmp /vol/{result}"
        ));
        if h.create(&id, &b).success() {
            started += 1;
            h.start(&id).ok();
            let out = wait_file(&vol.join(&result));
            if shows_host(&out) {
                escape = Some(out);
            }
        }
        h.delete_force(&id);
        h.assert_nothing_left(&id);
    }
    h.delete_force(&ida).ok();
    h.assert_nothing_left(&ida);
    eprintln!("{tries} tries, {started} started, dir fds of the init: {dir_fds:?}");
    if let Some(out) = escape {
        panic!(
            "the program started with its cwd on the host (try {tries}, cwd swapped to one \
             of {targets:?}):\n{out}"
        );
    }
}

/// CVE-2016-9962: the init, which runs the runtime's code inside the container until
/// `start`, is not dumpable: a host process with the init's uid and no more capabilities than
/// the init can neither read its /proc files nor reach its exe, and its /proc/<pid> files
/// belong to root. After `start` the program is an ordinary dumpable process that the same
/// host process can read (the positive control). Two cases: `process.user` 1000 (a uid
/// change alone makes a process non-dumpable), and root with no capabilities (where only the
/// runtime's PR_SET_DUMPABLE protects the init).
#[test]
fn cve_2016_9962_created_init_is_not_dumpable() {
    let h = Ctx::new("cve_2016_9962");
    // runc 1.1.5's init is readable in the uid 0 case (observed here: a capability-less
    // root process reads its environ while it is created); runc protects its binary with a
    // sealed memfd copy instead. rt runs its own host binary, so it must not be dumpable.
    let uids: &[u32] = if is_runc() { &[1000] } else { &[1000, 0] };
    for &uid in uids {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["process"]["user"] = json!({ "uid": uid, "gid": uid });
        b.config["process"]["capabilities"] = json!({});
        b.args(&["sleep", "1000"]);
        h.create_ok(&id, &b);
        let pid = init_pid(&h, &id);
        // The same uid as the init and no capabilities at all.
        let peer = |cmd: &[&str]| {
            let u = uid.to_string();
            Command::new("setpriv")
                .args(["--reuid", &u, "--regid", &u, "--clear-groups"])
                .args(["--inh-caps", "-all", "--bounding-set", "-all"])
                .args(cmd)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        };
        let environ = format!("/proc/{pid}/environ");
        let exe = format!("/proc/{pid}/exe");
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let want_uid = format!("{uid}\t");
        assert!(
            status_field(&status, "Uid").is_some_and(|u| u.starts_with(&want_uid)),
            "{status}"
        );
        assert_eq!(
            status_field(&status, "CapPrm"),
            Some("0000000000000000"),
            "{status}"
        );
        // /proc/<pid>/* of a non-dumpable process belongs to root.
        assert_eq!(
            fs::metadata(&environ).unwrap().uid(),
            0,
            "uid {uid}: {environ} of the created init is not root-owned: the init is dumpable"
        );
        let r = peer(&["cat", &environ]);
        assert!(
            !r.status.success(),
            // (Not printed: it is the runtime's own environment.)
            "uid {uid}: a host process of the init's uid read its environ ({} bytes)",
            r.stdout.len()
        );
        let r = peer(&["readlink", &exe]);
        assert!(
            !r.status.success(),
            "uid {uid}: a host process of the init's uid resolved its exe: {}",
            String::from_utf8_lossy(&r.stdout)
        );
        assert!(!peer(&["head", "-c", "1", &exe]).status.success());

        h.start(&id).ok();
        wait_comm(pid, "sleep");
        assert_eq!(fs::metadata(&environ).unwrap().uid(), uid);
        let r = peer(&["cat", &environ]);
        assert!(
            r.status.success(),
            "uid {uid}: positive control failed: {r:?}"
        );
        assert!(String::from_utf8_lossy(&r.stdout).contains(MARK_VAR));
        h.delete_force(&id).ok();
        h.assert_nothing_left(&id);
    }
}

/// CVE-2021-30465 family: mount destinations through rootfs symlinks to `/`, to absolute
/// host paths and through `..` land inside the rootfs; nothing is created or mounted on the
/// host.
#[test]
fn cve_2021_30465_mount_destinations_stay_in_rootfs() {
    let h = Ctx::new("cve_2021_30465");
    let id = h.id();
    let mut b = h.bundle(&id);
    let hostside = h.subdir("hostside");
    let src = h.subdir("bind-src");
    fs::write(src.join("from-host"), "x").unwrap();
    let srcfile = h.dir.join("bind-file");
    fs::write(&srcfile, "file").unwrap();
    let hs = hostside.display().to_string();
    let r = |p: &str| b.path_in_rootfs(p);
    std::os::unix::fs::symlink("/", r("/evil")).unwrap();
    std::os::unix::fs::symlink(&hostside, r("/hostlink")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", r("/up")).unwrap();
    std::os::unix::fs::symlink("evil/up/hostlink", r("/chain")).unwrap();
    let tmpfs = |dest: String| json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"] });
    let cases = [
        (format!("/evil{hs}/t1"), format!("{hs}/t1")),
        (format!("/up{hs}/t2"), format!("{hs}/t2")),
        (format!("/../../../..{hs}/t3"), format!("{hs}/t3")),
        ("/chain/t4".to_string(), format!("{hs}/t4")),
    ];
    for (dest, _) in &cases {
        b.mount(tmpfs(dest.clone()));
    }
    b.mount(json!({ "destination": "/hostlink/b5", "type": "bind", "source": src, "options": ["rbind"] }));
    b.mount(json!({ "destination": "/hostlink/f6", "type": "bind", "source": srcfile, "options": ["bind", "ro"] }));
    let mut inner: Vec<String> = cases.iter().map(|(_, i)| i.clone()).collect();
    inner.push(format!("{hs}/b5"));
    inner.push(format!("{hs}/f6"));
    b.sh("cat /proc/self/mountinfo");
    let out = h.run_ok(&id, &b);
    for i in &inner {
        assert!(
            out.lines().any(|l| l.split(' ').nth(4) == Some(i.as_str())),
            "no mount at {i} inside the container:\n{out}"
        );
    }
    assert_eq!(
        dir_entries(&hostside),
        Vec::<String>::new(),
        "mount destinations created on the host"
    );
    assert_eq!(host_mounts_below(&h.dir), Vec::<String>::new());
    assert!(b.path_in_rootfs(&format!("{hs}/t1")).is_dir());
    assert_eq!(fs::read_to_string(&srcfile).unwrap(), "file");
    h.assert_nothing_left(&id);
}

/// Bundle with no /dev tmpfs in its mounts: the rootfs's own /dev is used, so the image
/// controls what is in it.
fn without_dev_tmpfs(b: &mut Bundle) {
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
}

/// CVE-2025-31133: masking binds /dev/null over the masked paths. An image whose /dev/null
/// is a symlink (to a file of the rootfs, or to an absolute host path) must not turn the
/// masks into binds of that file: every masked path is the null device, writes to /dev/null
/// go nowhere, and the symlink targets (in the rootfs and on the host) are untouched.
#[test]
fn cve_2025_31133_dev_null_symlink_and_masked_paths() {
    if is_runc() {
        // runc 1.1.5 is vulnerable (fixed in 1.2.8, 1.3.3, 1.4.0-rc.3): it keeps the
        // symlink, binds its target over the masked paths and even reopens the container's
        // stdin (/dev/null on the host) through it. With stdout there too, a `cat` of the
        // target would append to it forever.
        skip(
            "cve_2025_31133_dev_null_symlink_and_masked_paths",
            "runc 1.1.5 predates the CVE-2025-31133 fix",
        );
        return;
    }
    let h = Ctx::new("cve_2025_31133");
    let host_victim = h.dir.join("host-victim");
    fs::write(&host_victim, "host-secret").unwrap();
    let masked = existing_masked_paths();
    for target in ["/etc/secret", host_victim.to_str().unwrap()] {
        let id = h.id();
        let mut b = h.bundle(&id);
        without_dev_tmpfs(&mut b);
        fs::write(b.path_in_rootfs("/etc/secret"), "container-secret").unwrap();
        std::os::unix::fs::symlink(target, b.path_in_rootfs("/dev/null")).unwrap();
        b.config["linux"]["maskedPaths"] = json!(masked);
        b.sh(&format!(
            "{} stat -c 'null %F %t:%T' /dev/null; echo junk > /dev/null; \
             for p in {}; do echo junk > $p 2>/dev/null; done; {}",
            check_masked_script(&masked),
            masked.join(" "),
            check_masked_script(&masked)
        ));
        let out = h.run_ok(&id, &b);
        assert_eq!(not_masked(&out), Vec::<&str>::new(), "{target}: {out}");
        assert!(
            out.contains("null character special file 1:3"),
            "{target}: {out}"
        );
        assert_eq!(
            fs::read_to_string(b.path_in_rootfs("/etc/secret")).unwrap(),
            "container-secret"
        );
        assert_eq!(fs::read_to_string(&host_victim).unwrap(), "host-secret");
        assert_eq!(host_mounts_below(&h.dir), Vec::<String>::new());
        h.assert_nothing_left(&id);
    }
}

/// CVE-2025-31133, failing closed: when /dev is bind-mounted from a host directory (so the
/// runtime makes no device nodes) whose `null` is a dangling symlink, masking cannot bind a
/// null device. The runtime must then refuse to start the container rather than leave the
/// masked paths unmasked.
#[test]
fn masked_paths_fail_closed_without_a_null_device() {
    let h = Ctx::new("masked_fail_closed");
    let id = h.id();
    let mut b = h.bundle(&id);
    let devdir = h.subdir("devdir");
    std::os::unix::fs::symlink("/nonexistent", devdir.join("null")).unwrap();
    without_dev_tmpfs(&mut b);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev/pts");
    b.mount(
        json!({ "destination": "/dev", "type": "bind", "source": devdir, "options": ["rbind"] }),
    );
    let masked = existing_masked_paths();
    b.config["linux"]["maskedPaths"] = json!(masked);
    b.sh(&check_masked_script_to(&masked, "/tmp/.err"));
    let out = h.run(&id, &b);
    h.delete_force(&id);
    h.assert_nothing_left(&id);
    if out.success() {
        assert_eq!(
            not_masked(&out.stdout),
            Vec::<&str>::new(),
            "masks silently skipped: {}",
            out.stdout
        );
    }
}

/// CVE-2025-31133 as a race: another container that can write the /dev directory of the
/// container being created (here they share a rootfs, which has no /dev tmpfs) keeps renaming
/// a symlink over its /dev/null, between the moment the runtime makes the device node and the
/// moment it binds it over the masked paths. The masks must still be the null device: not
/// the symlink's target, and not skipped because the target does not exist (which would
/// show the real /proc/keys, /proc/timer_list...).
#[test]
fn cve_2025_31133_dev_null_swapped_by_another_container() {
    if is_runc() {
        skip(
            "cve_2025_31133_dev_null_swapped_by_another_container",
            "runc 1.1.5 predates the CVE-2025-31133 fix",
        );
        return;
    }
    let h = Ctx::new("cve_2025_31133_race");
    let masked = existing_masked_paths();
    let shared = h.dir.join("shared-rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs_src())
        .arg(&shared)
        .status()
        .unwrap();
    assert!(st.success());
    fs::write(shared.join("etc/secret"), "container-secret").unwrap();

    let ida = h.id();
    let mut a = h.bundle(&ida);
    a.bind_host_dir(&shared.join("dev"), "/victimdev", false);
    // Two targets: a file of the rootfs (the masks would show it) and a missing one (the
    // mounts would fail with ENOENT, leaving the paths unmasked).
    a.sh(
        "cd /victimdev; while :; do for t in /nonexistent /etc/secret; do \
           ln -s $t n.tmp; mv -fT n.tmp null; done; done",
    );
    h.run_detached(&ida, &a).ok();

    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut tries, mut started) = (0, 0);
    let mut unmasked = None;
    let mut ids = vec![ida.clone()];
    while Instant::now() < deadline && tries < 60 && unmasked.is_none() {
        tries += 1;
        let id = h.id();
        let mut b = h.bundle(&id);
        without_dev_tmpfs(&mut b);
        b.config["root"]["path"] = json!(shared);
        b.config["linux"]["maskedPaths"] = json!(masked);
        // Not /dev/null: A's symlink may be there by now, and it points at /etc/secret.
        b.sh(&check_masked_script_to(&masked, "/tmp/.err"));
        let out = h.run(&id, &b);
        if out.success() {
            started += 1;
            if !not_masked(&out.stdout).is_empty() {
                unmasked = Some(out.stdout.clone());
            }
        }
        h.delete_force(&id);
        ids.push(id);
    }
    h.delete_force(&ida).ok();
    // A's id is the context's name, which marks every runtime process of this test: check
    // for leftovers once A is gone.
    for id in &ids {
        h.assert_nothing_left(id);
    }
    eprintln!("{tries} tries, {started} started");
    if let Some(out) = unmasked {
        panic!("a masked path was not the null device (try {tries}):\n{out}");
    }
    // (The containers never write to /dev/null: their own shell would follow A's symlink.)
    assert_eq!(
        fs::read_to_string(shared.join("etc/secret")).unwrap(),
        "container-secret"
    );
}

/// CVE-2025-31133 in a user namespace, where the runtime bind-mounts the host's device nodes
/// instead of creating them: a /dev/null symlink to an absolute host path is followed inside
/// the rootfs, never on the host.
#[test]
fn cve_2025_31133_dev_null_symlink_in_user_namespace() {
    let h = Ctx::new("cve_2025_31133_userns");
    let host_victim = h.dir.join("host-victim");
    fs::write(&host_victim, "host-secret").unwrap();
    let masked = existing_masked_paths();
    let id = h.id();
    let mut b = h.bundle(&id);
    without_dev_tmpfs(&mut b);
    std::os::unix::fs::symlink(&host_victim, b.path_in_rootfs("/dev/null")).unwrap();
    b.user_namespace(100000);
    b.config["linux"]["maskedPaths"] = json!(masked);
    if let Err(why) = host::user_namespaces() {
        // No user namespace, no attack: the refusal must not touch the symlink's target.
        skip(
            "cve_2025_31133_dev_null_symlink_in_user_namespace",
            format!("{why}: only the refusal of the container is checked"),
        );
        b.args(&["true"]);
        assert_create_refused(&h, &id, &b);
        assert_eq!(fs::read_to_string(&host_victim).unwrap(), "host-secret");
        assert_eq!(host_mounts_below(&h.dir), Vec::<String>::new());
        return;
    }
    let st = Command::new("chown")
        .args(["-R", "-h", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    b.sh(&format!(
        "{} echo junk > /dev/null; cat /dev/null | wc -c",
        check_masked_script(&masked)
    ));
    let out = h.run_ok(&id, &b);
    assert_eq!(not_masked(&out), Vec::<&str>::new(), "{out}");
    assert_eq!(out.lines().last(), Some("0"), "{out}");
    assert_eq!(fs::read_to_string(&host_victim).unwrap(), "host-secret");
    assert_eq!(host_mounts_below(&h.dir), Vec::<String>::new());
    h.assert_nothing_left(&id);
}

/// maskedPaths and readonlyPaths that are symlinks in the rootfs (to an absolute host path,
/// to a host directory, to /etc/hostname) act inside the container only: the host files keep
/// their content and nothing is mounted on the host; the ordinary masked paths stay masked.
#[test]
fn masked_and_readonly_symlinks_do_not_reach_the_host() {
    let h = Ctx::new("masked_symlinks");
    let id = h.id();
    let mut b = h.bundle(&id);
    let secret = h.dir.join("host-secret");
    fs::write(&secret, "host-secret").unwrap();
    let rwdir = h.subdir("host-rw");
    fs::create_dir_all(b.path_in_rootfs("/data")).unwrap();
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, b.path_in_rootfs(name)).unwrap();
    };
    link(&secret, "/data/secret");
    link(Path::new("/etc/hostname"), "/data/hostname");
    link(&rwdir, "/data/rwdir");
    link(&h.dir, "/data/testdir");
    let masked = existing_masked_paths();
    let mut all_masked: Vec<&str> = masked.clone();
    all_masked.extend(["/data/secret", "/data/hostname", "/data/testdir"]);
    b.config["linux"]["maskedPaths"] = json!(all_masked);
    b.config["linux"]["readonlyPaths"] = json!(["/proc/sys", "/data/rwdir", "/data/secret"]);
    b.sh(&format!(
        "{} cat /etc/hostname | wc -c; echo ok",
        check_masked_script(&masked)
    ));
    let host_hostname = fs::read("/etc/hostname").ok();
    let mounts_at_hostname = host_mounts_at("/etc/hostname");
    let out = h.run(&id, &b);
    if out.success() {
        assert_eq!(not_masked(&out.stdout), Vec::<&str>::new(), "{out:?}");
        assert!(out.stdout.ends_with("ok\n"), "{out:?}");
    }
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host-secret");
    assert_eq!(fs::read("/etc/hostname").ok(), host_hostname);
    assert_eq!(host_mounts_at("/etc/hostname"), mounts_at_hostname);
    assert_eq!(host_mounts_below(&h.dir), Vec::<String>::new());
    assert_eq!(dir_entries(&rwdir), Vec::<String>::new());
    h.delete_force(&id);
    h.assert_nothing_left(&id);
    // Refusing the config would be acceptable; the runtimes accept it.
    out.ok();
}

/// CVE-2025-52565 family: with `process.terminal`, the runtime bind-mounts the pty on
/// /dev/console. An image whose /dev/console is a symlink (to an absolute host path, to a
/// masked proc file) must not get the pty mounted on the host or over a masked path.
#[test]
fn cve_2025_52565_dev_console_symlink() {
    let h = Ctx::new("cve_2025_52565");
    let victim = h.dir.join("console-victim");
    fs::write(&victim, "host-console-victim").unwrap();
    let masked = existing_masked_paths();
    let mut targets = vec![victim.to_str().unwrap()];
    match masked.iter().find(|p| Path::new(p).is_file()) {
        Some(f) => targets.push(f),
        None => skip(
            "cve_2025_52565_dev_console_symlink",
            "no masked proc file exists on this kernel: only the symlink to a host path is \
             checked",
        ),
    }
    for target in targets {
        let id = h.id();
        let mut b = h.bundle(&id);
        without_dev_tmpfs(&mut b);
        std::os::unix::fs::symlink(target, b.path_in_rootfs("/dev/console")).unwrap();
        b.config["process"]["terminal"] = json!(true);
        b.config["linux"]["maskedPaths"] = json!(masked);
        b.sh(&format!("{} echo done", hidden_script(&masked)));
        b.save();
        let sock_path = h.dir.join(format!("console-{id}.sock"));
        let sock = ConsoleSocket::listen(&sock_path);
        let out = h.rt(&[
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--console-socket",
            sock_path.to_str().unwrap(),
            &id,
        ]);
        if out.success() {
            h.track_pid(init_pid(&h, &id));
            let master = sock.receive(T).expect("pty master over the console socket");
            h.start(&id).ok();
            let text = integration::console::read_pty(master, T).replace('\r', "");
            let revealed: Vec<&str> = text.lines().filter(|l| l.starts_with("REVEALED")).collect();
            assert_eq!(revealed, Vec::<&str>::new(), "{target}: {text}");
            assert!(text.contains("done"), "{target}: {text}");
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "host-console-victim");
        assert_eq!(host_mounts_below(&h.dir), Vec::<String>::new());
        h.delete_force(&id);
        h.assert_nothing_left(&id);
    }
}

/// maskedPaths and readonlyPaths hold against a container without CAP_SYS_ADMIN: remounting
/// read-write, unmounting masks, mounting over them and mounting a fresh procfs or sysfs all
/// fail, also from a new user and mount namespace (where the container has every capability
/// over its own mounts), and afterwards every masked path is still masked and /proc/sys still
/// read-only.
#[test]
fn masked_and_readonly_paths_hold_against_remounts() {
    let h = Ctx::new("masked_remount");
    let id = h.id();
    let mut b = h.bundle(&id);
    let masked = existing_masked_paths();
    assert!(!masked.is_empty(), "no masked path exists on this kernel");
    let first_file = masked.iter().find(|p| Path::new(p).is_file()).copied();
    let first_dir = masked.iter().find(|p| Path::new(p).is_dir()).copied();
    let mut attempts: Vec<String> = vec![
        "mount -o remount,rw /proc/sys".into(),
        "mount -o remount,rw,bind /proc/sys".into(),
        "mount -o remount,rw /proc".into(),
        "mount -t proc proc /tmp/p".into(),
        "mount -t sysfs sysfs /tmp/s".into(),
        "mount --bind /proc /tmp/p".into(),
        "umount /proc/sys".into(),
        "umount -l /proc/sys".into(),
        "mount -t tmpfs tmpfs /proc/sys".into(),
    ];
    for p in &masked {
        attempts.push(format!("umount {p}"));
        attempts.push(format!("umount -l {p}"));
    }
    if let Some(f) = first_file {
        attempts.push(format!("mount --bind /etc/hostname {f}"));
    }
    if let Some(d) = first_dir {
        attempts.push(format!("mount --bind /tmp {d}"));
        attempts.push(format!("mount -o remount,rw {d}"));
    }
    let mut script = String::from("mkdir -p /tmp/p /tmp/s; ");
    let attempt_lines = |prefix: &str| {
        attempts
            .iter()
            .map(|a| format!("if {a} 2>/dev/null; then echo 'SUCCEEDED {prefix}{a}'; fi; "))
            .collect::<String>()
    };
    let checks = format!(
        "{} if echo 1 > /proc/sys/kernel/shmmni 2>/dev/null; then echo PROC-SYS-WRITABLE; fi; \
         grep ' /proc/sys ' /proc/self/mountinfo | tail -n 1 | grep -q ' /proc/sys ro[, ]' \
           || echo PROC-SYS-NOT-RO; ",
        check_masked_script(&masked)
    );
    script.push_str(&attempt_lines(""));
    script.push_str(&checks);
    // From a new user namespace with its own mount namespace (no seccomp profile stops it).
    script.push_str("echo --userns--; unshare -U -m sh -c '");
    script.push_str(&attempt_lines("userns: ").replace('\'', ""));
    script.push_str("mount --rbind /proc /tmp/p 2>/dev/null && echo userns-rbind-ok; ");
    let rbound: Vec<String> = masked
        .iter()
        .filter_map(|p| p.strip_prefix("/proc/"))
        .map(|p| format!("/tmp/p/{p}"))
        .collect();
    let rbound: Vec<&str> = rbound.iter().map(String::as_str).collect();
    script.push_str(&format!(
        "if [ -e /tmp/p/self ]; then {} fi; ",
        check_masked_script(&rbound)
    ));
    script.push_str(&checks.replace('\'', "\""));
    script.push_str("' || echo unshare-failed");
    b.sh(&script);
    let out = h.run_ok(&id, &b);
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("SUCCEEDED") || l.starts_with("NOT-MASKED") || l.starts_with("PROC-SYS")
        })
        .collect();
    assert!(bad.is_empty(), "{bad:#?}\n{out}");
    let (outside, inside) = out.split_once("--userns--\n").unwrap();
    for p in &masked {
        assert!(
            outside.contains(&format!("masked-ok {p}\n")),
            "{p}: {outside}"
        );
        assert!(
            inside.contains(&format!("masked-ok {p}\n")) || inside.contains("unshare-failed"),
            "{p}: {inside}"
        );
    }
    h.assert_nothing_left(&id);
}
