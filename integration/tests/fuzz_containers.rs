//! Fuzzed containers (issue 17): a valid config with random structured mutations
//! (cgroupsPath, namespaces, mounts, process fields, linux.resources values, devices,
//! masked paths, seccomp, ...), each run through `rt create` and `rt delete --force`.
//! Every run ends within its bound, exits 0 or 1 with a one-line error and no panic, and
//! leaves nothing: no state directory, new mount (other helpers may unmount theirs meanwhile:
//! only additions count), cgroup or process, and a canary process
//! next to the containers survives.
//!
//! It all happens in a throwaway pid and mount namespace (`Ctx::sh_in_throwaway_ns`): a
//! mutated cgroupsPath once made a runtime kill every process of the root cgroup. Half
//! the cases run on a fake cgroup hierarchy where cgroupsPath is mutated freely ("/",
//! "..", relative paths, systemd's shape); the other half on the host's cgroups, with
//! cgroupsPath kept below /rt-test/<id> and the resources mutated.
//!
//! The mutations never point rt at the host's own things: no hooks, no netDevices, bind
//! sources only inside the test's directory, namespace paths only to files that are no
//! namespace. `RT_FUZZ_CONTAINERS=N` runs N cases (default 50); `RT_FUZZ_SEED` replays.

#[path = "../../runtime/src/fuzz/driver.rs"]
mod driver;

use driver::Rng;
use integration::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

/// Each rt call of a case is killed after this long: a hang is a finding.
const CALL_LIMIT_S: u32 = 20;
/// Cases per throwaway namespace: the whole script must end within the harness's bound on
/// one command (CMD_TIMEOUT), even with a case that hangs.
const BATCH: usize = 10;

fn pick_str(rng: &mut Rng, from: &[&str]) -> String {
    rng.pick(from).to_string()
}

/// A string the config could hold where a path or name is expected.
fn junk(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "x".repeat(rng.below(5000)),
        1 => "a\nb".into(),
        2 => "\u{0}".into(),
        _ => pick_str(
            rng,
            &[
                "",
                "/",
                "..",
                "../../..",
                "/..",
                "relative",
                "/nonexistent/x",
                "//",
            ],
        ),
    }
}

fn cgroups_path(rng: &mut Rng, id: &str, fake: bool) -> Value {
    if !fake {
        let sub = pick_str(rng, &["", "/a", "/a/b", "/./a", "//a"]);
        return json!(format!("/rt-test/{id}{sub}"));
    }
    match rng.below(4) {
        0 => Value::Null,
        1 => json!(junk(rng)),
        _ => json!(pick_str(
            rng,
            &[
                "",
                "/",
                "//",
                "/.",
                "/./.",
                ".",
                "..",
                "../..",
                "/a/../..",
                "rel/x",
                "/ok/x",
                "a:b:c",
                "system.slice:rt:x",
                "/ok/../../x",
                "/ok/./y",
            ]
        )),
    }
}

fn mount(rng: &mut Rng, scratch: &Path) -> Value {
    let kind = pick_str(
        rng,
        &[
            "bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "none",
            "bogus",
        ],
    );
    // Bind sources only inside this test's directory.
    let source = match rng.below(4) {
        0 => scratch.to_string_lossy().into_owned(),
        1 => scratch.join("missing").to_string_lossy().into_owned(),
        2 => "tmpfs".into(),
        _ => junk(rng).trim_start_matches('/').to_string(),
    };
    let dest = match rng.below(3) {
        0 => junk(rng),
        _ => pick_str(
            rng,
            &[
                "/m",
                "/proc",
                "/dev",
                "/dev/shm",
                "/",
                "/etc/passwd",
                "/m/../../x",
                "/sys/fs/cgroup",
                "/tmp",
            ],
        ),
    };
    let mut options: Vec<String> = (0..rng.below(5))
        .map(|_| {
            pick_str(
                rng,
                &[
                    "ro",
                    "rw",
                    "bind",
                    "rbind",
                    "nosuid",
                    "nodev",
                    "noexec",
                    "rprivate",
                    "rshared",
                    "rslave",
                    "private",
                    "unbindable",
                    "rro",
                    "rnoexec",
                    "mode=755",
                    "size=1k",
                    "size=x",
                    "idmap",
                    "ridmap",
                    "x-foo",
                    "strictatime",
                    "nosymfollow",
                    "remount",
                    "bogus=1",
                    "",
                ],
            )
        })
        .collect();
    if kind == "bind" && rng.one_in(2) {
        options.push("rbind".into());
    }
    let mut m = json!({"destination": dest, "type": kind, "source": source, "options": options});
    if rng.one_in(8) {
        m["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        m["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    }
    m
}

fn resources(rng: &mut Rng) -> Value {
    let num = |rng: &mut Rng| {
        json!(*rng.pick(&[
            0i64,
            -1,
            1,
            4096,
            1 << 20,
            64 << 20,
            1 << 40,
            i64::MAX,
            i64::MIN,
            100,
            1024,
            50_000
        ]))
    };
    let mut r = json!({});
    for _ in 0..=rng.below(4) {
        match rng.below(10) {
            0 => {
                r["memory"] = json!({"limit": num(rng), "reservation": num(rng), "swap": num(rng)})
            }
            1 => r["memory"]["swappiness"] = json!(*rng.pick(&[0u64, 60, 100, 101, u64::MAX])),
            2 => {
                r["cpu"] = json!({"shares": num(rng), "quota": num(rng), "period": num(rng),
                    "cpus": pick_str(rng, &["0", "0-1", "0-99999", "x", ""]), "mems": pick_str(rng, &["0", "1", "", "0-"])})
            }
            3 => r["pids"] = json!({"limit": num(rng)}),
            4 => {
                r["blockIO"] = json!({"weight": *rng.pick(&[0u64, 10, 1000, 65535]),
                    "weightDevice": [{"major": num(rng), "minor": num(rng), "weight": 100}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": num(rng)}]})
            }
            5 => {
                r["hugepageLimits"] = json!([{"pageSize": pick_str(rng, &["2MB", "1GB", "3KB", ""]), "limit": num(rng)}])
            }
            6 => {
                r["devices"] = json!([{"allow": rng.one_in(2), "type": pick_str(rng, &["a", "c", "b", "p", "x", ""]),
                    "major": num(rng), "minor": num(rng), "access": pick_str(rng, &["rwm", "r", "", "xyz"])}])
            }
            7 => {
                let key = pick_str(
                    rng,
                    &[
                        "memory.max",
                        "pids.max",
                        "cgroup.procs",
                        "../x",
                        "",
                        ".",
                        "cpu.weight",
                        "cgroup.max.depth",
                    ],
                );
                r["unified"] = json!({key: pick_str(rng, &["1", "max", "", "x"])});
            }
            8 => {
                r["network"] =
                    json!({"classID": num(rng), "priorities": [{"name": "lo", "priority": 1}]})
            }
            _ => r["rdma"] = json!({"mlx5_0": {"hcaHandles": 1, "hcaObjects": num(rng)}}),
        }
    }
    r
}

/// 1 to 4 random mutations of a valid config.
fn mutate(rng: &mut Rng, c: &mut Value, id: &str, fake: bool, scratch: &Path, fifo: &Path) {
    let n = 1 + rng.below(4);
    for _ in 0..n {
        match rng.below(14) {
            0 | 1 => c["linux"]["cgroupsPath"] = cgroups_path(rng, id, fake),
            2 => {
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                match rng.below(4) {
                    0 if !ns.is_empty() => {
                        ns.remove(rng.below(ns.len()));
                    }
                    1 => ns.push(json!({"type": pick_str(rng, &["user", "pid", "cgroup", "time", "bogus", "mount"])})),
                    // Paths to files that are no namespace (a FIFO must not hang rt).
                    _ if !ns.is_empty() => {
                        let i = rng.below(ns.len());
                        let path = match rng.below(3) {
                            0 => fifo.to_string_lossy().into_owned(),
                            1 => "/dev/null".into(),
                            _ => junk(rng),
                        };
                        ns[i]["path"] = json!(path);
                    }
                    _ => {}
                }
            }
            3 | 4 => {
                let m = mount(rng, scratch);
                let mounts = c["mounts"].as_array_mut().unwrap();
                if rng.one_in(4) && !mounts.is_empty() {
                    let i = rng.below(mounts.len());
                    mounts[i]["options"] = m["options"].clone();
                } else {
                    mounts.push(m);
                }
            }
            5 => {
                let p = &mut c["process"];
                match rng.below(8) {
                    0 => {
                        let j = junk(rng);
                        p["args"] = rng
                            .pick(&[json!([]), json!([""]), json!(["/nonexistent"]), json!([j])])
                            .clone()
                    }
                    1 => {
                        p["cwd"] = json!(pick_str(
                            rng,
                            &["", "relative", "/nonexistent", "/etc/passwd", "/proc/self"]
                        ))
                    }
                    2 => p["env"].as_array_mut().unwrap().push(json!(junk(rng))),
                    3 => {
                        p["user"] = json!({"uid": rng.next() as u32, "gid": rng.next() as u32,
                            "additionalGids": [rng.next() as u32], "umask": rng.next() as u32})
                    }
                    4 => {
                        p["rlimits"] = json!([{"type": pick_str(rng, &["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_BOGUS", "RLIMIT_CORE"]),
                            "hard": *rng.pick(&[0u64, 1, 1024, 20000, 20001, u64::MAX]), "soft": *rng.pick(&[0u64, 1, 1024, u64::MAX])}])
                    }
                    5 => p["capabilities"]["bounding"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!(pick_str(
                            rng,
                            &["CAP_SYS_ADMIN", "CAP_BOGUS", "", "cap_kill"]
                        ))),
                    6 => {
                        p["oomScoreAdj"] =
                            json!(*rng.pick(&[-1001i64, -1000, 0, 1000, 1001, i64::MAX]))
                    }
                    _ => {
                        p["scheduler"] = json!({"policy": pick_str(rng, &["SCHED_OTHER", "SCHED_FIFO", "SCHED_IDLE", "SCHED_BOGUS"]),
                            "priority": *rng.pick(&[0i64, 1, 99, 100, -1]), "nice": *rng.pick(&[0i64, 19, -20, 100])})
                    }
                }
            }
            6 | 7 => {
                if !fake {
                    c["linux"]["resources"] = resources(rng);
                }
            }
            8 => c["hostname"] = json!(junk(rng)),
            9 => c["linux"]["maskedPaths"]
                .as_array_mut()
                .unwrap()
                .push(json!(junk(rng))),
            10 => c["linux"]["readonlyPaths"]
                .as_array_mut()
                .unwrap()
                .push(json!(junk(rng))),
            11 => {
                c["linux"]["devices"] = json!([{"path": pick_str(rng, &["/dev/fz", "/dev/../../fz", "fz", "/dev/null", ""]),
                    "type": pick_str(rng, &["c", "b", "p", "u", "x"]), "major": rng.below(300), "minor": rng.below(300),
                    "fileMode": rng.next() as u32 & 0o7777}])
            }
            12 => {
                c["linux"]["seccomp"] = json!({"defaultAction": pick_str(rng, &["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_BOGUS"]),
                    "architectures": [pick_str(rng, &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_BOGUS"])],
                    "syscalls": [{"names": [pick_str(rng, &["mkdir", "getpid", "nosuch", "write"])], "action": pick_str(rng, &["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_KILL"])}]})
            }
            _ => {
                c["linux"]["rootfsPropagation"] = json!(pick_str(
                    rng,
                    &["shared", "rshared", "slave", "private", "bogus", ""]
                ));
            }
        }
    }
}

/// A container id unlike the context's name: the first id is the name itself, and the
/// runtime (and the namespace's shell) carry the name as their marker, which would pass
/// for a process of that container.
fn case_id(h: &Ctx) -> String {
    loop {
        let id = h.id();
        if id != h.name {
            return id;
        }
    }
}

fn next_batch() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn cases() -> usize {
    std::env::var("RT_FUZZ_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// One throwaway namespace running `ids.len()` cases; per case a line of verdicts.
fn run_batch(h: &Ctx, fake: bool, rng: &mut Rng, n: usize) -> Vec<(String, Value)> {
    let scratch = h.subdir(&format!("scratch-{}", next_batch()));
    let fifo = scratch.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let shared = h.bundle("unused");
    let rootfs = shared.rootfs();
    let mut script = String::from(
        "sleep 1000 & canary=$!\ncat /proc/self/mountinfo > mi.before\nleft() { for f in $(grep -lzx \"RT_IT_ID=$1\" /proc/[0-9]*/environ 2>/dev/null); do p=${f#/proc/}; p=${p%/environ}; [ $p != $$ ] && echo \"$p:$(tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline)\"; done; }\n",
    );
    let mut cases = Vec::new();
    for i in 0..n {
        let id = case_id(h);
        let mut config = base_config();
        config["root"]["path"] = json!(rootfs.to_string_lossy());
        config["process"]["args"] = json!(["sleep", "1000"]);
        config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(format!("{MARK_VAR}={id}")));
        config["linux"]["cgroupsPath"] = json!(format!("/rt-test/{id}"));
        mutate(rng, &mut config, &id, fake, &scratch, &fifo);
        let dir = h.subdir(&format!("case-{}", next_batch()));
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        let d = dir.display();
        let cg_check = if fake {
            // Every sub-cgroup of the fake hierarchy must be gone; removed here so that one
            // finding does not repeat in every later case.
            format!("[ -n \"$(find $CG -mindepth 1 -type d)\" ] && echo \"{i} cgroup-left\" && find $CG -mindepth 1 -depth -type d -exec rmdir {{}} + 2>/dev/null\n")
        } else {
            String::new()
        };
        script.push_str(&format!(
            "timeout -s KILL {CALL_LIMIT_S} $RT create --bundle {d} {id} > {d}/create.out 2> {d}/create.err; echo \"{i} create=$?\"\n\
             timeout -s KILL {CALL_LIMIT_S} $RT delete --force {id} > /dev/null 2> {d}/delete.err; echo \"{i} delete=$?\"\n\
             [ -e {root}/{id} ] && echo \"{i} state-left\"\n\
             cat /proc/self/mountinfo > mi.now; added=$(diff mi.before mi.now | grep '^>' | tr '\\n' ' '); cp mi.now mi.before; [ -z \"$added\" ] || echo \"{i} mounts-left $added\"\n\
             l=$(left {id}); [ -z \"$l\" ] || echo \"{i} processes-left $l\"\n\
             kill -0 $canary 2>/dev/null || echo \"{i} canary-dead\"\n{cg_check}",
            root = h.root.display(),
        ));
        cases.push((id, config, dir));
    }
    let Some(out) = h.sh_in_throwaway_ns(&script, fake) else {
        return Vec::new();
    };
    let lines = out.lines();
    let mut results = Vec::new();
    for (i, (id, config, dir)) in cases.into_iter().enumerate() {
        let mine: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{i} ")))
            .collect();
        let what = format!(
            "case {i} ({}) of {}:\n{}\n  rt said: {}\n  config: {}",
            if fake { "fake cgroups" } else { "host cgroups" },
            out.describe(),
            mine.join(", "),
            fs::read_to_string(dir.join("create.err"))
                .unwrap_or_default()
                .trim(),
            serde_json::to_string(&config).unwrap()
        );
        let create = mine
            .iter()
            .find_map(|l| l.strip_prefix("create="))
            .unwrap_or("missing");
        let delete = mine
            .iter()
            .find_map(|l| l.strip_prefix("delete="))
            .unwrap_or("missing");
        assert!(
            create == "0" || create == "1",
            "create exited {create} (137: killed after {CALL_LIMIT_S} s) — {what}"
        );
        assert!(
            delete == "0" || delete == "1",
            "delete --force exited {delete} — {what}"
        );
        if create == "0" {
            assert_eq!(
                delete, "0",
                "delete --force of a created container failed — {what}"
            );
        }
        for file in ["create.err", "delete.err"] {
            let err = fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(!err.contains("panicked at"), "{file}: a panic — {what}");
        }
        if create == "1" {
            let err = fs::read_to_string(dir.join("create.err")).unwrap_or_default();
            // Warnings may come first (a capability skipped...); the error is the last line.
            let errors: Vec<&str> = err
                .lines()
                .filter(|l| !l.contains("level=warn") && !l.starts_with("warn"))
                .collect();
            assert_eq!(errors.len(), 1, "not one line of error — {what}");
        }
        for finding in [
            "state-left",
            "mounts-left",
            "processes-left",
            "canary-dead",
            "cgroup-left",
        ] {
            assert!(
                !mine.iter().any(|l| l.starts_with(finding)),
                "{finding} — {what}"
            );
        }
        h.assert_nothing_left(&id);
        results.push((create.to_string(), config));
    }
    results
}

#[test]
fn fuzzed_configs_create_and_delete_leave_nothing() {
    let h = Ctx::new("fuzz_containers");
    let n = cases();
    let seed = std::env::var("RT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(17u64);
    let mut rng = Rng::new(seed);
    let mut results = Vec::new();
    let mut left = n;
    while left > 0 {
        // Alternate: fake cgroups with free cgroupsPaths, host cgroups with free resources.
        let fake = ((n - left) / BATCH).is_multiple_of(2);
        let k = left.min(BATCH);
        results.extend(run_batch(&h, fake, &mut rng, k));
        left -= k;
    }
    let created = results.iter().filter(|(c, _)| c == "0").count();
    eprintln!(
        "fuzz_containers: {} cases (seed {seed}): {created} created and deleted, {} refused in one line",
        results.len(),
        results.len() - created
    );
}
