//! Fuzz tests of the runtime's parsers of hostile input (issue 17): config.json loading,
//! validation and planning; mount options; the state file; hooks and `exec --process`
//! JSON. The seccomp compiler has its own, inside the crate
//! (src/security/seccomp/tests/fuzz.rs), to look at the compiled program.
//!
//! Each target: no panic, every error one line, each case ends in time and allocates within
//! bounds (see driver.rs). A short run in `cargo test`; `RT_FUZZ_CASES=N` runs longer.
//! The seeds are in src/fuzz/corpus (see its README). Every finding is a named regression test
//! at the end of this file.

pub(crate) mod driver;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cgroups::{self, Hierarchy};
use crate::spec::{Hook, Process, Spec};
use driver::{Dict, Rng};
use serde_json::{json, Value};

const CORPUS: [&str; 6] = [
    include_str!("corpus/spec-hello.json"),
    include_str!("corpus/spec-hooks.json"),
    include_str!("corpus/spec-readonly.json"),
    include_str!("corpus/spec-shell.json"),
    include_str!("corpus/spec-userns.json"),
    include_str!("corpus/docker-20.10-config.json"),
];

fn corpus() -> Vec<Value> {
    CORPUS
        .iter()
        .map(|t| serde_json::from_str(t).expect("corpus JSON"))
        .collect()
}

/// A scratch directory of one test (bundles, state dirs, a FIFO), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("rt-fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A FIFO in `dir`: opening it for reading blocks until a writer comes, unless done right.
fn fifo_in(dir: &Path) -> &'static str {
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    Box::leak(fifo.to_string_lossy().into_owned().into_boxed_str())
}

/// Every word of config.json the runtime knows, for structured mutations.
fn config_dict(extra: &[&'static str]) -> Dict {
    let mut strings: Vec<&'static str> = vec![
        "user",
        "pid",
        "network",
        "ipc",
        "uts",
        "cgroup",
        "time",
        "mount",
        "bind",
        "rbind",
        "tmpfs",
        "proc",
        "sysfs",
        "devpts",
        "cgroup2",
        "mqueue",
        "overlay",
        "none",
        "/dev",
        "/proc",
        "/sys",
        "/tmp",
        "/dev/null",
        "/proc/self/ns/net",
        "/bin/sh",
        "rootfs",
        "1.0.0",
        "1.2.0",
        "1.3.0",
        "1.4.0",
        "2.0.0",
        "CAP_SYS_ADMIN",
        "CAP_KILL",
        "CAP_BOGUS",
        "RLIMIT_NOFILE",
        "RLIMIT_CPU",
        "RLIMIT_BOGUS",
        "SCHED_FIFO",
        "SCHED_DEADLINE",
        "SCHED_FLAG_RESET_ON_FORK",
        "IOPRIO_CLASS_RT",
        "LINUX",
        "LINUX32",
        "ADDR_NO_RANDOMIZE",
        "MPOL_BIND",
        "MPOL_INTERLEAVE",
        "MPOL_F_STATIC_NODES",
        "0-3",
        "0-1,7",
        "1-0",
        "0-99999",
        "c",
        "b",
        "u",
        "p",
        "a",
        "rwm",
        "r",
        "x",
        "net.ipv4.ip_forward",
        "kernel.shmmax",
        "kernel.hostname",
        "fs.mqueue.msg_max",
        "vm.swappiness",
        "/rt-test/x",
        "rt-test",
        "system.slice:rt:x",
        "x.slice:p:c",
        ":",
        "memory.max",
        "cgroup.procs",
        "../x",
        "SECCOMP_FILTER_FLAG_LOG",
        "lo",
        "eth0",
        "max",
        "1:2",
        "8:0",
    ];
    strings.extend(crate::rootfs::mounts::known_options());
    strings.extend(crate::security::seccomp::ACTIONS);
    strings.extend(crate::security::seccomp::OPERATORS);
    strings.extend(extra);
    Dict {
        keys: vec![
            "ociVersion",
            "root",
            "path",
            "readonly",
            "mounts",
            "destination",
            "type",
            "source",
            "options",
            "uidMappings",
            "gidMappings",
            "containerID",
            "hostID",
            "size",
            "process",
            "terminal",
            "consoleSize",
            "height",
            "width",
            "user",
            "uid",
            "gid",
            "umask",
            "additionalGids",
            "args",
            "env",
            "cwd",
            "capabilities",
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
            "rlimits",
            "hard",
            "soft",
            "noNewPrivileges",
            "apparmorProfile",
            "oomScoreAdj",
            "selinuxLabel",
            "ioPriority",
            "class",
            "priority",
            "scheduler",
            "policy",
            "nice",
            "flags",
            "runtime",
            "deadline",
            "period",
            "execCPUAffinity",
            "initial",
            "final",
            "hostname",
            "domainname",
            "hooks",
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
            "timeout",
            "annotations",
            "linux",
            "sysctl",
            "resources",
            "cgroupsPath",
            "namespaces",
            "devices",
            "major",
            "minor",
            "fileMode",
            "seccomp",
            "defaultAction",
            "defaultErrnoRet",
            "architectures",
            "syscalls",
            "names",
            "action",
            "errnoRet",
            "index",
            "value",
            "valueTwo",
            "op",
            "listenerPath",
            "rootfsPropagation",
            "maskedPaths",
            "readonlyPaths",
            "mountLabel",
            "timeOffsets",
            "secs",
            "nanosecs",
            "personality",
            "domain",
            "memoryPolicy",
            "mode",
            "nodes",
            "intelRdt",
            "closID",
            "netDevices",
            "name",
            "memory",
            "limit",
            "reservation",
            "swap",
            "kernel",
            "swappiness",
            "disableOOMKiller",
            "useHierarchy",
            "checkBeforeUpdate",
            "cpu",
            "shares",
            "quota",
            "burst",
            "realtimeRuntime",
            "realtimePeriod",
            "cpus",
            "mems",
            "idle",
            "pids",
            "blockIO",
            "weight",
            "leafWeight",
            "weightDevice",
            "throttleReadBpsDevice",
            "rate",
            "hugepageLimits",
            "pageSize",
            "network",
            "classID",
            "priorities",
            "rdma",
            "hcaHandles",
            "hcaObjects",
            "unified",
            "allow",
            "access",
        ],
        strings,
    }
}

/// An error the runtime prints must be one line.
fn one_line(what: &str, e: impl std::fmt::Display) {
    let s = e.to_string();
    assert!(
        !s.contains(['\n', '\r']),
        "{what}: a multi-line error: {s:?}"
    );
    assert!(!s.is_empty(), "{what}: an empty error");
}

/// This host's cgroup hierarchies as the runtime sees them, plus a v2-only host's shape.
fn hierarchies() -> &'static [Hierarchy] {
    static H: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    H.get_or_init(|| {
        let mut h = cgroups::hierarchies().unwrap_or_default();
        h.push(Hierarchy {
            mountpoint: "/fuzz/unified".into(),
            unified: true,
            subsystems: String::new(),
        });
        h
    })
}

/// Everything `rt create` derives from a config before it touches the system, with the
/// safety properties that must hold whatever the config says.
fn plan_all(spec: &Spec) {
    let linux = spec.linux();
    if let Err(e) = crate::namespaces::NamespacePlan::from_spec(spec) {
        one_line("namespaces", e);
    }
    if let Err(e) = spec.rootfs(Path::new("/bundle")) {
        one_line("root.path", e);
    }
    if let Some(p) = &spec.process {
        if let Err(e) = crate::security::capabilities::plan(p.capabilities.as_ref()) {
            one_line("capabilities", e);
        }
        if let Err(e) = crate::security::rlimits::plan(&p.rlimits) {
            one_line("rlimits", e);
        }
        if let Err(e) = crate::process::attrs::plan(
            p.io_priority.as_ref(),
            p.scheduler.as_ref(),
            linux.personality.as_ref(),
            p.exec_cpu_affinity.as_ref(),
            linux.memory_policy.as_ref(),
        ) {
            one_line("process attributes", e);
        }
    }
    if let Some(s) = &linux.seccomp {
        if let Err(e) = crate::security::seccomp::plan(s) {
            one_line("seccomp", e);
        }
    }
    if let Some(p) = linux.rootfs_propagation.as_deref() {
        let _ = crate::rootfs::mounts::propagation(p);
    }
    for m in &spec.mounts {
        check_mount_options(&m.options);
        let _ = crate::rootfs::mounts::bind_source(m, Path::new("/bundle"));
    }
    // The device cgroup program, from the config's rules as the cgroup code maps them.
    if let Some(r) = &linux.resources {
        let rules: Vec<_> = r
            .devices
            .iter()
            .filter(|d| d.is_for_the_device_cgroup())
            .map(|d| cgroups::devices_bpf::Rule {
                allow: d.allow,
                kind: d.kind.as_deref().and_then(|k| k.chars().next()),
                major: d.major,
                minor: d.minor,
                access: d
                    .access
                    .clone()
                    .filter(|a| !a.is_empty())
                    .unwrap_or("rwm".into()),
            })
            .collect();
        let _ = cgroups::devices_bpf::build(&rules);
    }
    check_cgroup_plan(linux.cgroups_path.as_deref());
}

/// Whatever cgroupsPath says, the container's cgroup is strictly below the root of every
/// hierarchy: never the root itself (which holds every process of the host: a mutated
/// cgroupsPath once made a runtime kill them all), never outside it.
fn check_cgroup_plan(path: Option<&str>) {
    match cgroups::plan(hierarchies(), path, "fuzz-id") {
        Err(e) => one_line("cgroupsPath", e),
        Ok(cg) => {
            for d in &cg.dirs {
                let h = hierarchies()
                    .iter()
                    .find(|h| d.path.starts_with(&h.mountpoint) && d.unified == h.unified)
                    .unwrap_or_else(|| {
                        panic!(
                            "cgroupsPath {path:?}: {} is in no hierarchy",
                            d.path.display()
                        )
                    });
                let below = d.path.strip_prefix(&h.mountpoint).unwrap();
                assert!(
                    below.components().count() > 0
                        && below
                            .components()
                            .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "cgroupsPath {path:?}: planned {} (not strictly below {})",
                    d.path.display(),
                    h.mountpoint.display()
                );
            }
        }
    }
}

/// Mount options: whatever the strings, the split keeps its invariants.
fn check_mount_options(opts: &[String]) {
    let o = crate::rootfs::mounts::parse_options(opts);
    assert!(
        (o.flags & o.cleared).is_empty(),
        "options {opts:?}: flags both set and cleared: {o:?}"
    );
    assert_eq!(
        o.recursive_set & o.recursive_clear & !0x70,
        0,
        "options {opts:?}: recursive attributes both set and cleared: {o:?}"
    );
    for p in &o.propagation {
        assert!(!p.is_empty(), "options {opts:?}: an empty propagation");
    }
    // What goes to the filesystem as data is exactly the options rt does not know.
    let known = crate::rootfs::mounts::known_options();
    for d in o.data.split(',').filter(|d| !d.is_empty()) {
        assert!(
            !known.contains(&d) || opts.iter().any(|o| o.contains(',') && o.contains(d)),
            "options {opts:?}: the known option {d:?} went to the filesystem as data"
        );
    }
}

/// How many inputs were valid configs (reported, so that a generator that stops reaching
/// the planners shows).
static VALID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check_config(bytes: &[u8]) {
    let spec: Spec = match serde_json::from_slice(bytes) {
        Ok(s) => s,
        Err(e) => return one_line("parse", e),
    };
    // state.json keeps the config: what was read must write and read back the same.
    let text = serde_json::to_vec(&spec).expect("a parsed config serializes");
    let back: Spec = serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("a parsed config does not read back: {e}"));
    assert_eq!(
        serde_json::to_vec(&back).unwrap(),
        text,
        "the config changes when written and read back"
    );
    match spec.validate() {
        Err(e) => one_line("validate", e),
        Ok(()) => {
            VALID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            plan_all(&spec)
        }
    }
}

/// `Spec::load` of a bundle with these bytes as config.json: the same verdict as parsing
/// and validating, in one line.
fn check_load(dir: &Path, bytes: &[u8]) {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), bytes).unwrap();
    let direct = serde_json::from_slice::<Spec>(bytes)
        .ok()
        .map(|s| s.validate().is_ok());
    match Spec::load(&bundle) {
        Ok(_) => assert_eq!(direct, Some(true), "load accepted what validate refuses"),
        Err(e) => {
            // Not UTF-8 is refused by load (read_to_string) though serde might take it.
            if std::str::from_utf8(bytes).is_ok() {
                assert_ne!(direct, Some(true), "load refused a valid config: {e}");
            }
            one_line("load", e);
        }
    }
}

#[test]
fn fuzz_config_json() {
    let dir = Scratch::new("config");
    let seeds = corpus();
    let dict = config_dict(&[fifo_in(&dir.0)]);
    let path = dir.0.clone();
    driver::run(
        "config_json",
        1500,
        move |rng| driver::json_input(rng, &seeds, &dict),
        move |b| {
            check_config(b);
            // One case in 16 goes through the file as `rt create` reads it.
            if b.len().is_multiple_of(16) {
                check_load(&path, b);
            }
        },
    );
    let valid = VALID.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("fuzz config_json: {valid} inputs were valid configs");
    assert!(valid > 0, "no valid config: the generator is broken");
}

// ---- mount options ----

fn option_words() -> Vec<&'static str> {
    let mut w = crate::rootfs::mounts::known_options();
    w.extend([
        "mode=755",
        "size=64k",
        "uid=0",
        "gid=5",
        "x-foo",
        "x-",
        "",
        ",",
        "ro,rw",
        "=",
        "idmap=",
        "private,",
        "lowerdir=/a:/b",
        "RO",
        "rro ",
        "\0",
        "nr_inodes=1k",
    ]);
    w
}

fn mount_options_input(rng: &mut Rng) -> Vec<u8> {
    let words = option_words();
    let n = if rng.one_in(50) {
        rng.below(5000)
    } else {
        rng.below(12)
    };
    let opts: Vec<String> = (0..n)
        .map(|_| match rng.below(8) {
            0 => driver::string(rng, &Dict::default()),
            1 => format!("{}{}", rng.pick(&words), rng.pick(&words)),
            _ => rng.pick(&words).to_string(),
        })
        .collect();
    let mut v = json!({"destination": "/m", "type": "bind", "source": "/s", "options": opts});
    if rng.one_in(4) {
        v["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    }
    if rng.one_in(4) {
        v["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    }
    if rng.one_in(3) {
        v["type"] = json!(rng.pick(&["tmpfs", "none", "proc", "", "bind"]));
    }
    serde_json::to_vec(&v).unwrap()
}

fn check_mount(bytes: &[u8]) {
    let Ok(m) = serde_json::from_slice::<crate::spec::Mount>(bytes) else {
        return;
    };
    check_mount_options(&m.options);
    for p in &m.options {
        let _ = crate::rootfs::mounts::propagation(p);
    }
    let _ = crate::rootfs::mounts::is_bind(&m);
    // The idmap checks, with and without a user namespace.
    for spec in [
        json!({"ociVersion": "1.2.0"}),
        json!({"ociVersion": "1.2.0", "linux": {"namespaces": [{"type": "user"}, {"type": "mount"}]}}),
    ] {
        let spec: Spec = serde_json::from_value(spec).unwrap();
        if let Err(e) = crate::rootfs::idmap::validate(&spec, 0, &m) {
            one_line("idmap", e);
        }
    }
}

#[test]
fn fuzz_mount_options() {
    driver::run("mount_options", 3000, mount_options_input, check_mount);
}

// ---- state.json ----

/// A real state.json: a config from the corpus in the state rt writes.
fn state_seeds() -> Vec<Value> {
    corpus()
        .into_iter()
        .map(|config| {
            json!({
                "id": "c1", "pid": 4242, "pid_start_time": 123456, "bundle": "/b",
                "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00.000000000Z",
                "cgroup": {"dirs": [{"path": "/sys/fs/cgroup/memory/rt-test/c1", "unified": false,
                    "subsystems": "memory"}], "created": ["/sys/fs/cgroup/memory/rt-test/c1"]},
                "config": config,
            })
        })
        .collect()
}

fn check_state(dir: &Path, bytes: &[u8]) {
    let root = dir.join("root");
    let dir = root.join("c1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(crate::state::STATE_FILE), bytes).unwrap();
    std::fs::write(dir.join(crate::state::LEFTOVER_CGROUP), bytes).unwrap();
    let sd = crate::state::StateDir::open_unlocked(&root, "c1").expect("open the state dir");
    let _ = sd.load_leftover_cgroup();
    match sd.load() {
        Err(e) => one_line("state", e),
        Ok(st) => {
            // What every command then does with it without touching the container.
            let _ = sd.status(&st);
            let _ = st.hook_json(crate::state::Status::Stopped);
            let _ = serde_json::to_vec(&st.oci(crate::state::Status::Running, "root".into()))
                .expect("the OCI state serializes");
            // The state must survive its own save.
            let text = serde_json::to_vec(&st).expect("a loaded state serializes");
            let again: crate::state::State = serde_json::from_slice(&text)
                .unwrap_or_else(|e| panic!("state does not read back: {e}"));
            assert_eq!(serde_json::to_vec(&again).unwrap(), text);
        }
    }
}

#[test]
fn fuzz_state_file() {
    let dir = Scratch::new("state");
    let path = dir.0.clone();
    let seeds = state_seeds();
    let mut dict = config_dict(&[]);
    dict.keys.extend([
        "id",
        "pid",
        "pid_start_time",
        "bundle",
        "rootfs",
        "created",
        "cgroup",
        "dirs",
        "unified",
        "subsystems",
        "config",
        "rdt",
        "systemd",
    ]);
    driver::run(
        "state_file",
        1500,
        move |rng| driver::json_input(rng, &seeds, &dict),
        move |b| check_state(&path, b),
    );
}

// ---- hooks and exec --process ----

fn process_seeds() -> Vec<Value> {
    corpus()
        .into_iter()
        .filter_map(|c| c.get("process").cloned())
        .collect()
}

/// `rt exec --process FILE`: the file is read, checked and planned as exec does it.
fn check_process(dir: &Path, bytes: &[u8]) {
    let file = dir.join("process.json");
    std::fs::write(&file, bytes).unwrap();
    let opts = crate::container::exec::ExecOpts {
        process_file: Some(file),
        ..Default::default()
    };
    let config = Spec::default();
    let p: Process = match crate::container::exec::process_spec(&opts, &config) {
        Ok(p) => p,
        Err(e) => return one_line("exec --process", e),
    };
    if let Err(e) = crate::security::capabilities::plan(p.capabilities.as_ref()) {
        one_line("capabilities", e);
    }
    if let Err(e) = crate::security::rlimits::plan(&p.rlimits) {
        one_line("rlimits", e);
    }
    if let Err(e) = crate::process::attrs::plan(
        p.io_priority.as_ref(),
        p.scheduler.as_ref(),
        None,
        p.exec_cpu_affinity.as_ref(),
        None,
    ) {
        one_line("process attributes", e);
    }
    let mut env = p.env.clone();
    crate::process::override_env(&mut env, &["A=1".into(), "PATH=/x".into(), "=".into()]);
}

#[test]
fn fuzz_exec_process_json() {
    let dir = Scratch::new("process");
    let path = dir.0.clone();
    let seeds = process_seeds();
    let dict = config_dict(&[]);
    driver::run(
        "exec_process_json",
        1500,
        move |rng| driver::json_input(rng, &seeds, &dict),
        move |b| check_process(&path, b),
    );
}

fn hook_seeds() -> Vec<Value> {
    vec![
        json!({"path": "/bin/true"}),
        json!({"path": "/bin/true", "args": ["true", "a"], "env": ["A=1"], "timeout": 5}),
        json!({"path": "/bin/false", "timeout": 1}),
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"], "env": []}),
    ]
}

fn hook_dict() -> Dict {
    Dict {
        keys: vec!["path", "args", "env", "timeout"],
        strings: vec![
            "/bin/true",
            "/bin/false",
            "true",
            "A=1",
            "=",
            "A",
            "A=\0",
            "PATH=/bin",
            "",
            "relative",
            "/nonexistent",
            "/",
            "/dev/null",
            "/bin/true\0x",
        ],
    }
}

/// A hook as config.json gives it, run as the runtime runs hooks. Only programs that end
/// at once are allowed to run: the path is forced to /bin/true or /bin/false unless the
/// mutation made it one that cannot run (absent, not executable, invalid).
fn check_hook(bytes: &[u8]) {
    let mut hooks: Vec<Hook> = match serde_json::from_slice::<Hook>(bytes) {
        Ok(h) => vec![h],
        Err(_) => match serde_json::from_slice::<Vec<Hook>>(bytes) {
            Ok(list) => list,
            Err(e) => return one_line("parse", e),
        },
    };
    hooks.truncate(4);
    for h in &mut hooks {
        let runnable = Path::new(&h.path).is_file();
        if runnable && h.path != "/bin/false" {
            h.path = "/bin/true".into();
        }
        // /bin/true ignores args and env; cap the timeout's real use at its end.
    }
    if let Err(e) = crate::hooks::run_all("prestart", &hooks, "{\"id\":\"x\"}") {
        assert!(
            crate::hooks::is_failure(&e),
            "a hook error not marked as one: {e}"
        );
        one_line("hook", e);
    }
    crate::hooks::run_all_warn("poststop", &hooks, "{}");
}

#[test]
fn fuzz_hooks() {
    let seeds = hook_seeds();
    let dict = hook_dict();
    driver::run(
        "hooks",
        300,
        move |rng| {
            let mut b = driver::json_input(rng, &seeds, &dict);
            if rng.one_in(8) {
                // A timeout far beyond any clock.
                let v = json!({"path": "/bin/true", "timeout": driver::number(rng)});
                b = serde_json::to_vec(&v).unwrap();
            }
            b
        },
        check_hook,
    );
}

// ---- regressions: inputs the fuzzers found, minimized ----

/// A hook path with a line break made a two-line error (now escaped: `\n`).
#[test]
fn regression_hook_path_with_a_line_break_is_one_line() {
    check_hook(br#"{"path":"\n"}"#);
}

/// A hook timeout beyond what the clock counts panicked on the deadline's overflow.
#[test]
fn regression_hook_timeout_beyond_the_clock() {
    check_hook(br#"{"path":"/bin/true","timeout":9223372036854775807}"#);
}

/// A namespace path naming a FIFO made `rt create` hang in open(2) until a writer came
/// (found by the fuzzed containers): now refused at once as no namespace file.
#[test]
fn regression_namespace_path_to_a_fifo_does_not_hang() {
    let dir = Scratch::new("ns-fifo");
    let fifo = fifo_in(&dir.0);
    let spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.2.0",
        "linux": {"namespaces": [{"type": "uts", "path": fifo}, {"type": "mount"}]}
    }))
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(
            crate::namespaces::NamespacePlan::from_spec(&spec)
                .err()
                .map(|e| e.to_string()),
        );
    });
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("opening a FIFO as a namespace path hangs");
    let err = err.expect("a FIFO accepted as a namespace");
    assert!(err.contains("is not a namespace file"), "{err}");
    one_line("namespaces", err);
}

/// A hook that does not read its stdin, given a state larger than a pipe holds (big
/// annotations), held `create` past the hook's timeout: the state was written before the
/// timeout began. Now it is written within it, and the hook is killed in time.
#[test]
fn regression_hook_timeout_holds_while_the_state_does_not_fit_the_pipe() {
    let hook: Hook = serde_json::from_value(
        json!({"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 30"], "timeout": 1}),
    )
    .unwrap();
    let state = format!("{{\"annotations\":{{\"a\":\"{}\"}}}}", "x".repeat(1 << 20));
    let t0 = std::time::Instant::now();
    let err = crate::hooks::run_all("prestart", &[hook], &state).unwrap_err();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "the hook's 1 s timeout took {:?}",
        t0.elapsed()
    );
    assert!(err.to_string().contains("timed out"), "{err}");
}

/// A hook with a timeout still gets the whole state on its stdin.
#[test]
fn hooks_with_a_timeout_read_the_whole_state() {
    let dir = Scratch::new("hook-stdin");
    let out = dir.0.join("got");
    let hook: Hook = serde_json::from_value(json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {}", out.display())],
        "timeout": 10
    }))
    .unwrap();
    let state = format!("{{\"a\":\"{}\"}}", "y".repeat(300_000));
    crate::hooks::run_all("prestart", &[hook], &state).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), state);
}
