//! Probes of what this host has (kernel features, cgroup files, devices, schedulers), so a
//! test checks what it needs and skips, saying why, only where the host truly lacks it.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A cgroup hierarchy mounted below /sys/fs/cgroup.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// Its controllers as `/proc/<pid>/cgroup` names them ("memory", "cpu,cpuacct",
    /// "name=systemd"); empty for cgroup2.
    pub controllers: String,
}

impl Hierarchy {
    pub fn is_unified(&self) -> bool {
        self.controllers.is_empty()
    }

    /// Does it hold v1 controller `ctrl` (or named hierarchy `name=…`)?
    pub fn has(&self, ctrl: &str) -> bool {
        !self.is_unified() && self.controllers.split(',').any(|c| c == ctrl)
    }
}

const V1_CONTROLLERS: [&str; 14] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The cgroup hierarchies this host mounts below /sys/fs/cgroup (v1 ones and cgroup2), from
/// /proc/self/mountinfo: co-mounted controllers (`cpu,cpuacct`) appear once, at their real
/// mount point.
pub fn cgroup_hierarchies() -> Vec<Hierarchy> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        let mut r = right.split(' ');
        let (fstype, opts) = (r.next().unwrap_or(""), r.nth(1).unwrap_or(""));
        if !Path::new(mp).starts_with("/sys/fs/cgroup") {
            continue;
        }
        let controllers = match fstype {
            "cgroup2" => String::new(),
            "cgroup" => opts
                .split(',')
                .filter(|o| o.starts_with("name=") || V1_CONTROLLERS.contains(o))
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        if !out.iter().any(|h| h.mountpoint == Path::new(mp)) {
            out.push(Hierarchy {
                mountpoint: PathBuf::from(mp),
                controllers,
            });
        }
    }
    out
}

/// Mount point of the v1 hierarchy holding controller `ctrl`, if the host mounts one.
pub fn v1_hierarchy(ctrl: &str) -> Option<PathBuf> {
    cgroup_hierarchies()
        .into_iter()
        .find(|h| h.has(ctrl))
        .map(|h| h.mountpoint)
}

/// Mount point of cgroup2 (/sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a
/// pure v2 one).
pub fn unified_hierarchy() -> Option<PathBuf> {
    cgroup_hierarchies()
        .into_iter()
        .find(Hierarchy::is_unified)
        .map(|h| h.mountpoint)
}

/// The hierarchy that drives controller `ctrl` (a v1 name: `blkio` is v2's `io`): its v1
/// hierarchy when mounted, else cgroup2 when it offers the controller.
pub fn controller_root(ctrl: &str) -> Option<PathBuf> {
    if let Some(p) = v1_hierarchy(ctrl) {
        return Some(p);
    }
    let unified = unified_hierarchy()?;
    let v2 = if ctrl == "blkio" { "io" } else { ctrl };
    let offered = fs::read_to_string(unified.join("cgroup.controllers")).ok()?;
    offered
        .split_whitespace()
        .any(|c| c == v2)
        .then_some(unified)
}

static PROBED: Mutex<Vec<(PathBuf, Vec<String>)>> = Mutex::new(Vec::new());
static PROBE_N: AtomicUsize = AtomicUsize::new(0);

/// The control files a new cgroup directly below hierarchy `root` gets. Many are absent from
/// a hierarchy's root (the kernel's CFTYPE_NOT_ON_ROOT: `blkio.bfq.weight`, `io.weight`…),
/// so a child is asked: `rt-probe-<pid>-<n>`, made here and removed at once (once per
/// hierarchy and test process). On cgroup2 the child only has the files of the controllers
/// that `root` enables in its `cgroup.subtree_control`.
pub fn child_cgroup_files(root: &Path) -> Vec<String> {
    let mut probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, files)) = probed.iter().find(|(p, _)| p == root) {
        return files.clone();
    }
    let n = PROBE_N.fetch_add(1, Ordering::SeqCst);
    let dir = root.join(format!("rt-probe-{}-{n}", std::process::id()));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("probe cgroup {}: {e}", dir.display()));
    let mut files: Vec<String> = fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for _ in 0..50 {
        if fs::remove_dir(&dir).is_ok() || !dir.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    probed.push((root.to_path_buf(), files.clone()));
    files
}

/// Does a container's cgroup for controller `ctrl` have control file `file` on this kernel
/// (e.g. `("cpu", "cpu.cfs_burst_us")`)? False too when no hierarchy drives `ctrl`.
pub fn cgroup_has(ctrl: &str, file: &str) -> bool {
    controller_root(ctrl).is_some_and(|root| child_cgroup_files(&root).iter().any(|f| f == file))
}

/// The I/O schedulers the block devices of this host offer (`/sys/block/*/queue/scheduler`),
/// sorted and without duplicates.
pub fn io_schedulers() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("queue/scheduler")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The file that takes `linux.resources.blockIO.weight` in a container's cgroup, where this
/// kernel has one: `blkio.weight` (CFQ, gone since Linux 5.0) or `blkio.bfq.weight` (BFQ);
/// on a cgroup2-only host `io.weight` (io.cost) or `io.bfq.weight`. `Err` says why there is
/// none: without BFQ (none/mq-deadline/kyber only) a blkio cgroup has no weight file.
pub fn blkio_weight_file() -> Result<&'static str, String> {
    let schedulers = || io_schedulers().join(", ");
    if let Some(root) = v1_hierarchy("blkio") {
        let files = child_cgroup_files(&root);
        return ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| files.iter().any(|x| x == f))
            .ok_or_else(|| {
                format!(
                    "a blkio cgroup has neither blkio.weight nor blkio.bfq.weight \
                     (I/O schedulers here: {})",
                    schedulers()
                )
            });
    }
    let Some(root) = controller_root("blkio") else {
        return Err("no blkio (io) controller on this host".into());
    };
    let delegated = fs::read_to_string(root.join("cgroup.subtree_control"))
        .is_ok_and(|s| s.split_whitespace().any(|c| c == "io"));
    if delegated {
        let files = child_cgroup_files(&root);
        if let Some(f) = ["io.weight", "io.bfq.weight"]
            .into_iter()
            .find(|f| files.iter().any(|x| x == f))
        {
            return Ok(f);
        }
    } else if root.join("io.cost.qos").exists() {
        // io.cost (the root-only io.cost.qos) gives every child an io.weight.
        return Ok("io.weight");
    } else if io_schedulers().iter().any(|s| s == "bfq") {
        return Ok("io.bfq.weight");
    }
    Err(format!(
        "neither io.weight (io.cost) nor io.bfq.weight (BFQ) on this kernel (I/O schedulers \
         here: {})",
        schedulers()
    ))
}

/// A block device that blkio throttling can name, as (major, minor, name): a whole disk with
/// a request queue (a partition, or a filesystem on no disk such as overlay or virtiofs,
/// cannot be throttled). The disk under `/` when there is one, else the first disk of
/// /sys/block, loop, ram and zram devices last.
pub fn throttleable_disk() -> Option<(u32, u32, String)> {
    let parse = |dev: &str| -> Option<(u32, u32)> {
        let (a, b) = dev.trim().split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let disk_of = |sys: PathBuf| -> Option<(u32, u32, String)> {
        // A partition's sysfs directory sits inside its disk's.
        let sys = fs::canonicalize(sys).ok()?;
        let disk = if sys.join("partition").exists() {
            sys.parent()?.to_path_buf()
        } else {
            sys
        };
        if !disk.join("queue").is_dir() {
            return None;
        }
        let (ma, mi) = parse(&fs::read_to_string(disk.join("dev")).ok()?)?;
        let name = disk.file_name()?.to_string_lossy().into_owned();
        Some((ma, mi, name))
    };
    if let Ok(m) = fs::metadata("/") {
        let (ma, mi) = (libc::major(m.dev()), libc::minor(m.dev()));
        if ma != 0 {
            if let Some(d) = disk_of(PathBuf::from(format!("/sys/dev/block/{ma}:{mi}"))) {
                return Some(d);
            }
        }
    }
    let mut disks: Vec<(u32, u32, String)> = fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| disk_of(e.path()))
        .collect();
    let late = |n: &str| ["loop", "ram", "zram"].iter().any(|p| n.starts_with(p));
    disks.sort_by_key(|(_, _, n)| (late(n), n.clone()));
    disks.into_iter().next()
}

/// A host character device that a container's root (uid 0, without CAP_DAC_OVERRIDE) can
/// open once the device cgroup lets it, and that is not one of the devices a container
/// always has: for tests of the device cgroup.
#[derive(Clone, Debug)]
pub struct CharDevice {
    pub path: &'static str,
    pub major: u32,
    pub minor: u32,
    /// Open it for writing (`/dev/kmsg`: reading it may need CAP_SYSLOG), else for reading.
    pub write: bool,
}

impl CharDevice {
    /// `access` of a device cgroup rule that allows the open.
    pub fn access(&self) -> &'static str {
        if self.write {
            "w"
        } else {
            "r"
        }
    }

    /// A shell redirection opening it as fd 3 (`3<path` or `3>path`).
    pub fn redirect(&self) -> String {
        format!("3{}{}", if self.write { '>' } else { '<' }, self.path)
    }
}

/// The first of /dev/loop-control, /dev/fuse, /dev/net/tun and /dev/kmsg (for writing) that
/// exists here as a character device that uid 0 may open by its owner, group and mode.
pub fn openable_char_device() -> Option<CharDevice> {
    let candidates = [
        ("/dev/loop-control", false),
        ("/dev/fuse", false),
        ("/dev/net/tun", false),
        ("/dev/kmsg", true),
    ];
    candidates.into_iter().find_map(|(path, write)| {
        let m = fs::metadata(path).ok()?;
        if !m.file_type().is_char_device() {
            return None;
        }
        let want = if write { 0o2 } else { 0o4 };
        let mode = m.mode();
        let allowed = if m.uid() == 0 {
            mode >> 6 & want != 0
        } else if m.gid() == 0 {
            mode >> 3 & want != 0
        } else {
            mode & want != 0
        };
        allowed.then(|| CharDevice {
            path,
            major: libc::major(m.rdev()),
            minor: libc::minor(m.rdev()),
            write,
        })
    })
}

/// Does this kernel have namespaces of type `ns` (as /proc/self/ns names it: "cgroup",
/// "time", "user"…)?
pub fn has_namespace(ns: &str) -> bool {
    Path::new("/proc/self/ns").join(ns).exists()
}

/// Run `cmd` (a probe); Ok, or why it failed (its last stderr line).
fn probe_cmd(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err
        .lines()
        .last()
        .unwrap_or("failed without a message")
        .to_string())
}

/// Can root make a user namespace here (CONFIG_USER_NS, `user.max_user_namespaces` > 0)?
/// Ok, or why not.
pub fn user_namespaces() -> Result<(), String> {
    if !has_namespace("user") {
        return Err("kernel without user namespaces".into());
    }
    probe_cmd(Command::new("unshare").args(["--user", "true"]))
        .map_err(|e| format!("root cannot make a user namespace: {e}"))
}

/// Can this kernel make idmapped mounts (mount_setattr, Linux 5.12)? Asked with fd -1, the
/// call says EBADF when it exists, ENOSYS when not; nothing changes either way.
pub fn idmapped_mounts() -> Result<(), String> {
    // struct mount_attr: attr_set (MOUNT_ATTR_IDMAP), attr_clr, propagation, userns_fd.
    let attr: [u64; 4] = [0x0010_0000, 0, 0, u64::MAX];
    // SAFETY: an empty path with AT_EMPTY_PATH and a mount_attr of the size passed; fd -1
    // refers to nothing.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    match (r, std::io::Error::last_os_error().raw_os_error()) {
        (-1, Some(libc::ENOSYS)) => {
            Err("kernel without mount_setattr (idmapped mounts need Linux 5.12)".into())
        }
        _ => Ok(()),
    }
}

/// Can a process without CAP_SYS_ADMIN make a user namespace (as a container's process
/// does)? Debian's `kernel.unprivileged_userns_clone`, `user.max_user_namespaces` or an LSM
/// may forbid it. Probed as uid 65534 with no capabilities: Ok, or why not.
pub fn unprivileged_user_namespaces() -> Result<(), String> {
    user_namespaces()?;
    probe_cmd(Command::new("setpriv").args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "unshare",
        "--user",
        "true",
    ]))
    .map_err(|e| format!("a process without CAP_SYS_ADMIN cannot make a user namespace: {e}"))
}

/// The interfaces every new network namespace of this kernel starts with, sorted: `lo`, plus
/// the fallback devices of loaded tunnel modules (`sit0`, `tunl0`, `gre0`…) unless
/// `net.core.fb_tunnels_only_for_init_net` keeps them out.
pub fn new_netns_interfaces() -> Vec<String> {
    let out = Command::new("unshare")
        .args(["--net", "cat", "/proc/net/dev"])
        .stdin(Stdio::null())
        .output()
        .expect("run unshare --net cat /proc/net/dev");
    assert!(
        out.status.success(),
        "unshare --net: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    v.sort();
    v
}

/// Is seccomp action `name` (as /proc/sys/kernel/seccomp/actions_avail spells it:
/// "user_notif", "log"…) available on this kernel?
pub fn seccomp_action(name: &str) -> bool {
    fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .is_ok_and(|s| s.split_whitespace().any(|a| a == name))
}

/// Is capability number `bit` in this process's effective set?
pub fn has_capability(bit: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    crate::status_field(&status, "CapEff")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .is_some_and(|m| m & (1u64 << bit) != 0)
}

/// CAP_SYS_RESOURCE: without it (as on some of these machines, even as root) no rlimit can
/// be raised above the caller's hard limit.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// This process's hard limit of `resource` (`libc::RLIMIT_*`).
pub fn rlimit_hard(resource: libc::__rlimit_resource_t) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid out pointer.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut r) }, 0);
    r.rlim_max
}

/// `(soft, hard)` for a container's rlimit of `resource` that the runtime (started by this
/// process) can set: as asked, or, when it cannot raise limits (no CAP_SYS_RESOURCE), both
/// capped at this process's hard limit.
pub fn rlimit_within_reach(
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
) -> (u64, u64) {
    if has_capability(CAP_SYS_RESOURCE) {
        return (soft, hard);
    }
    let max = rlimit_hard(resource);
    (soft.min(max), hard.min(max))
}

/// Swap that a memory limit does not cover: the host has swap, but no swap accounting
/// (`memory.memsw.*`, v1) to limit it, so a container over its memory limit swaps rather
/// than being OOM-killed unless its swappiness is 0. `Some(why)` then.
pub fn unaccounted_swap() -> Option<String> {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let swap_kb: u64 = crate::status_field(&meminfo, "SwapTotal")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    if swap_kb == 0 {
        return None;
    }
    let accounted = match v1_hierarchy("memory") {
        Some(_) => cgroup_has("memory", "memory.memsw.limit_in_bytes"),
        None => cgroup_has("memory", "memory.swap.max"),
    };
    (!accounted).then(|| {
        format!("{swap_kb} kB of swap and no swap accounting (memory.memsw.*): a memory limit does not stop a container from swapping")
    })
}

/// `criu check` on this machine: Ok, or why it fails.
pub fn criu_works() -> Result<(), String> {
    let out = Command::new("criu")
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run criu: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    Err(text
        .lines()
        .rfind(|l| l.contains("Error"))
        .unwrap_or("criu check failed")
        .to_string())
}

/// Does sysctl `name` (`net.ipv4.tcp_syncookies`) exist on this kernel?
pub fn has_sysctl(name: &str) -> bool {
    Path::new("/proc/sys").join(name.replace('.', "/")).exists()
}

/// `linux.resources.memory` of `limit` bytes and no swap, so that going over the limit gets
/// the container OOM-killed on any host: `swap` equal to the limit where the kernel accounts
/// swap, and swappiness 0 on cgroup v1 (a host with swap but no swap accounting would
/// otherwise let it swap).
pub fn memory_without_swap(limit: i64) -> serde_json::Value {
    let mut m = serde_json::json!({ "limit": limit });
    if cgroup_has("memory", "memory.memsw.limit_in_bytes")
        || cgroup_has("memory", "memory.swap.max")
    {
        m["swap"] = serde_json::json!(limit);
    }
    if v1_hierarchy("memory").is_some() {
        m["swappiness"] = serde_json::json!(0);
    }
    m
}
