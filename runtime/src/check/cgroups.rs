//! Cgroups: which version the host runs, which hierarchies and controllers are mounted,
//! whether rt's own cgroup2 directory is delegated to the caller, and the cgroup2 features
//! rt uses or could (cgroup.kill, cgroup.freeze, CLONE_INTO_CGROUP). Nothing is written and
//! no cgroup is made: CLONE_INTO_CGROUP puts a child that exits at once into the cgroup rt
//! is already in.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};
use nix::unistd::{access, AccessFlags};

use super::{errno, host, io_error, raw, Item};
use crate::cgroups::{hierarchies, Hierarchy};

const AREA: &str = "cgroups";

/// The controllers config.json can use, with the fields each one serves.
const CONTROLLERS: [(&str, &[&str]); 10] = [
    (
        "cpu",
        &[
            "linux.resources.cpu.shares",
            "linux.resources.cpu.quota",
            "linux.resources.cpu.period",
            "linux.resources.cpu.burst",
            "linux.resources.cpu.idle",
            "linux.resources.cpu.realtimeRuntime",
        ],
    ),
    ("cpuacct", &["rt events --stats (cpu usage on cgroup v1)"]),
    (
        "cpuset",
        &["linux.resources.cpu.cpus", "linux.resources.cpu.mems"],
    ),
    ("memory", &["linux.resources.memory"]),
    ("devices", &["linux.resources.devices"]),
    ("blkio", &["linux.resources.blockIO"]),
    ("pids", &["linux.resources.pids"]),
    ("hugetlb", &["linux.resources.hugepageLimits"]),
    ("net_cls", &["linux.resources.network.classID"]),
    ("net_prio", &["linux.resources.network.priorities"]),
];

/// One line of /proc/cgroups: `subsys_name hierarchy num_cgroups enabled`.
#[derive(Debug, PartialEq, Eq)]
pub struct Subsystem {
    pub name: String,
    /// 0: not bound to a v1 hierarchy (unmounted, or in cgroup2).
    pub hierarchy: u32,
    pub enabled: bool,
}

pub fn parse_proc_cgroups(text: &str) -> Vec<Subsystem> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Subsystem {
                name: f.first()?.to_string(),
                hierarchy: f.get(1)?.parse().ok()?,
                enabled: *f.get(3)? == "1",
            })
        })
        .collect()
}

/// The cgroup2 path of the caller in /proc/self/cgroup (the `0::` line).
pub fn own_v2_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// What the probes share: the mounted hierarchies and rt's own cgroup2 directory.
struct Host {
    hierarchies: Vec<Hierarchy>,
    unified: Option<PathBuf>,
    /// rt's own directory in the cgroup2 hierarchy.
    own: Option<PathBuf>,
}

impl Host {
    fn read() -> (Host, String) {
        let (hierarchies, err) = match hierarchies() {
            Ok(h) => (h, String::new()),
            Err(e) => (Vec::new(), e.to_string()),
        };
        let unified = hierarchies
            .iter()
            .find(|h| h.unified)
            .map(|h| h.mountpoint.clone());
        let own_text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let own = match (&unified, own_v2_path(&own_text)) {
            (Some(root), Some(p)) => match p.trim_start_matches('/') {
                "" => Some(root.clone()),
                rel => Some(root.join(rel)),
            },
            _ => None,
        };
        (
            Host {
                hierarchies,
                unified,
                own,
            },
            err,
        )
    }

    fn v1(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| !h.unified && h.subsystems.split(',').any(|s| s == controller))
    }

    fn in_unified(&self, controller: &str) -> bool {
        let Some(root) = &self.unified else {
            return false;
        };
        let v2_name = if controller == "blkio" {
            "io"
        } else {
            controller
        };
        fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == v2_name)
    }

    /// A cgroup2 directory that may have `file` (cgroup.kill and cgroup.freeze are not in
    /// the root cgroup): rt's own if not the root, else an existing child of the root.
    /// Only looked at, never made.
    fn non_root_dir_with(&self, file: &str) -> Option<PathBuf> {
        let root = self.unified.as_ref()?;
        if let Some(own) = self.own.as_ref().filter(|o| *o != root) {
            return Some(own.clone());
        }
        fs::read_dir(root)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join(file).exists())
    }
}

pub fn probe(kernel: &str) -> Vec<Item> {
    let (host, err) = Host::read();
    let mut items = vec![version(&host), hierarchy_list(&host, &err)];
    let proc_cgroups = fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let subsystems = parse_proc_cgroups(&proc_cgroups);
    items.extend(
        CONTROLLERS
            .iter()
            .map(|(c, fields)| controller(&host, &subsystems, c, fields)),
    );
    items.push(blockio_weight(&host));
    items.push(delegation(&host));
    items.push(cgroup_file(
        &host,
        kernel,
        "cgroup.kill",
        (5, 14),
        &["rt kill --all", "rt delete --force"],
    ));
    items.push(freezer(&host, kernel));
    items.push(clone_into_cgroup(&host));
    items
}

fn version(host: &Host) -> Item {
    let item = Item::new(
        AREA,
        "cgroup.version",
        "statfs(/sys/fs/cgroup) magic; cgroup mounts in /proc/self/mountinfo",
    )
    .affects(&["linux.cgroupsPath", "linux.resources"])
    .needed_by_default();
    match statfs(Path::new("/sys/fs/cgroup")) {
        Ok(s) => {
            let magic = s.filesystem_type();
            let (value, what) = if magic == CGROUP2_SUPER_MAGIC {
                ("2", "cgroup2 (CGROUP2_SUPER_MAGIC): unified".to_string())
            } else if magic == CGROUP_SUPER_MAGIC {
                (
                    "1",
                    "cgroup (CGROUP_SUPER_MAGIC): one v1 hierarchy".to_string(),
                )
            } else if host.hierarchies.is_empty() {
                ("none", format!("magic {:#x}, no cgroup mounted", magic.0))
            } else if let Some(u) = &host.unified {
                let v1 = host.hierarchies.iter().any(|h| !h.unified);
                if v1 {
                    let fs = if magic == TMPFS_MAGIC {
                        "tmpfs".to_string()
                    } else {
                        format!("magic {:#x}", magic.0)
                    };
                    (
                        "hybrid",
                        format!("{fs} holding v1 hierarchies; cgroup2 at {}", u.display()),
                    )
                } else {
                    (
                        "2",
                        format!("magic {:#x}; cgroup2 at {}", magic.0, u.display()),
                    )
                }
            } else {
                (
                    "1",
                    format!("magic {:#x} (tmpfs) with v1 hierarchies only", magic.0),
                )
            };
            item.answer(value != "none", what).value(value)
        }
        Err(e) => item.answer(
            !host.hierarchies.is_empty(),
            format!("statfs: {}", errno(e)),
        ),
    }
}

fn hierarchy_list(host: &Host, err: &str) -> Item {
    let list: Vec<String> = host
        .hierarchies
        .iter()
        .map(|h| {
            if h.unified {
                format!("{} (cgroup2)", h.mountpoint.display())
            } else {
                format!("{} ({})", h.mountpoint.display(), h.subsystems)
            }
        })
        .collect();
    let item = Item::new(
        AREA,
        "cgroup.hierarchies",
        "cgroup and cgroup2 mounts reachable in /proc/self/mountinfo",
    )
    .affects(&["linux.resources"]);
    if !err.is_empty() {
        return item.answer(false, err);
    }
    item.answer(!list.is_empty(), format!("{} mounted", list.len()))
        .value(list.join(", "))
}

fn controller(host: &Host, subsystems: &[Subsystem], name: &str, fields: &[&str]) -> Item {
    let mut item = Item::new(
        AREA,
        format!("cgroup.controller.{name}"),
        "/proc/cgroups; v1 hierarchies in /proc/self/mountinfo; cgroup.controllers of the cgroup2 root",
    )
    .affects(fields);
    if name == "devices" {
        item = item.needed_by_default();
    }
    let known = subsystems.iter().find(|s| s.name == name);
    if let Some(h) = host.v1(name) {
        return item
            .answer(true, format!("cgroup v1 at {}", h.mountpoint.display()))
            .value("v1");
    }
    if name == "devices" && host.unified.is_some() {
        return devices_v2(item);
    }
    // cgroup2 counts cpu time in every cgroup (cpu.stat) without a controller.
    if name == "cpuacct" && host.unified.is_some() {
        return item
            .answer(
                true,
                "cgroup2: cpu.stat in every cgroup, no controller needed",
            )
            .value("v2");
    }
    if host.in_unified(name) {
        let root = host.unified.as_deref().unwrap_or(Path::new("?"));
        return item
            .answer(true, format!("cgroup2 at {}", root.display()))
            .value("v2");
    }
    let why = match known {
        Some(_) if matches!(name, "net_cls" | "net_prio") => {
            "a v1-only controller (cgroup2 has none), and no v1 hierarchy has it".to_string()
        }
        None => "not in /proc/cgroups (kernel without it)".to_string(),
        Some(s) if !s.enabled => {
            "disabled in /proc/cgroups (cgroup_disable= on the kernel command line?)".to_string()
        }
        Some(s) => format!(
            "enabled in /proc/cgroups (hierarchy {}) but mounted nowhere rt looks",
            s.hierarchy
        ),
    };
    item.answer(false, why)
}

/// cgroup v2 has no devices controller: an eBPF program does the work. Load the one the
/// default config's rule (deny everything) compiles to, never attached; it is gone when
/// its fd closes.
fn devices_v2(item: Item) -> Item {
    let mut item = item;
    item.probe = "cgroup2: bpf(BPF_PROG_LOAD) of the default config's BPF_PROG_TYPE_CGROUP_DEVICE program, never attached, then closed".into();
    let rule = crate::cgroups::devices_bpf::Rule {
        allow: false,
        kind: None,
        major: None,
        minor: None,
        access: "rwm".into(),
    };
    match crate::cgroups::devices_bpf::probe_load(&[rule]) {
        Ok(()) => item.answer(true, "loaded").value("v2 (eBPF)"),
        Err(e) => item.answer(false, e),
    }
}

/// linux.resources.blockIO.weight needs a weight file: v1 blkio.weight (CFQ, gone since
/// Linux 5.0) or blkio.bfq.weight; v2 io.weight (the io.cost model) or io.bfq.weight.
/// BFQ's files exist only while BFQ is offered (the scheduler lists below say).
fn blockio_weight(host: &Host) -> Item {
    let item = Item::new(AREA, "cgroup.blockio_weight", "").affects(&[
        "linux.resources.blockIO.weight",
        "linux.resources.blockIO.leafWeight",
        "linux.resources.blockIO.weightDevice",
    ]);
    let (dir, files): (PathBuf, [&str; 2]) = if let Some(h) = host.v1("blkio") {
        (h.mountpoint.clone(), ["blkio.weight", "blkio.bfq.weight"])
    } else if let Some(root) = host.unified.as_ref().filter(|_| host.in_unified("blkio")) {
        // io.weight is not in the root cgroup; io.cost.model (root only) says iocost is built.
        (root.clone(), ["io.cost.model", "io.bfq.weight"])
    } else {
        return Item {
            probe: "look for the blkio/io controller".into(),
            ..item
        }
        .answer(false, "no blkio (v1) or io (v2) controller mounted");
    };
    let mut item = item;
    item.probe = format!(
        "look for {} and {} in {}",
        files[0],
        files[1],
        dir.display()
    );
    let found: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| dir.join(f).exists())
        .collect();
    if found.is_empty() {
        item.answer(
            false,
            format!(
                "neither file: no weight-based IO control (needs the BFQ scheduler{})",
                if host.v1("blkio").is_some() {
                    ""
                } else {
                    " or the io.cost model"
                }
            ),
        )
    } else {
        item.answer(true, format!("found {}", found.join(", ")))
    }
}

fn delegation(host: &Host) -> Item {
    let item = Item::new(AREA, "cgroup.delegation", "read cgroup.subtree_control of rt's own cgroup2 directory; access(W_OK) on it and on the directory")
        .affects(&["linux.cgroupsPath (as a user other than root)", "linux.resources (rootless)"]);
    let Some(own) = &host.own else {
        return item.answer(false, "no cgroup2 hierarchy (nothing to delegate)");
    };
    let file = own.join("cgroup.subtree_control");
    let enabled = match fs::read_to_string(&file) {
        Ok(s) => s.trim().to_string(),
        Err(e) => return item.answer(false, format!("{}: {}", file.display(), io_error(&e))),
    };
    let writable = |p: &Path| access(p, AccessFlags::W_OK).map_err(errno);
    let result = match (writable(own), writable(&file)) {
        (Ok(()), Ok(())) => (true, format!("{}: writable by the caller", own.display())),
        (d, f) => (
            false,
            format!(
                "{}: not writable by the caller (directory: {}, subtree_control: {})",
                own.display(),
                d.err().unwrap_or("ok".into()),
                f.err().unwrap_or("ok".into())
            ),
        ),
    };
    let shown = if enabled.is_empty() {
        "(none)".to_string()
    } else {
        enabled
    };
    item.answer(result.0, result.1)
        .value(format!("subtree_control: {shown}"))
}

/// A cgroup2 interface file of non-root cgroups (`file`), added in Linux `since`.
fn cgroup_file(host: &Host, kernel: &str, file: &str, since: (u32, u32), affects: &[&str]) -> Item {
    let mut item = Item::new(AREA, file, "").affects(affects);
    let Some(root) = &host.unified else {
        item.probe = "look for a cgroup2 hierarchy".into();
        return item.answer(false, "no cgroup2 hierarchy");
    };
    match host.non_root_dir_with(file) {
        Some(dir) => {
            item.probe = format!(
                "look for {file} in {} (an existing non-root cgroup2 directory)",
                dir.display()
            );
            let there = dir.join(file).exists();
            item.answer(there, if there { "present" } else { "absent" })
        }
        None => {
            // No cgroup below the root exists and rt makes none: fall back on the version.
            item.probe = format!("no non-root cgroup2 directory below {} to look in (rt makes none): kernel release at least {}.{}", root.display(), since.0, since.1);
            let ok = host::kernel_at_least(kernel, since);
            item.answer(
                ok,
                format!(
                    "kernel {kernel}: {}",
                    if ok { "new enough" } else { "too old" }
                ),
            )
        }
    }
}

fn freezer(host: &Host, kernel: &str) -> Item {
    if let Some(h) = host.v1("freezer") {
        return Item::new(
            AREA,
            "cgroup.freezer",
            "v1 freezer controller in /proc/self/mountinfo",
        )
        .affects(&["rt pause", "rt resume", "rt checkpoint"])
        .answer(true, format!("v1 freezer at {}", h.mountpoint.display()))
        .value("v1");
    }
    let mut item = cgroup_file(
        host,
        kernel,
        "cgroup.freeze",
        (5, 2),
        &["rt pause", "rt resume", "rt checkpoint"],
    );
    item.name = "cgroup.freezer".into();
    item.probe = format!("no v1 freezer mounted; {}", item.probe);
    if item.available {
        item = item.value("v2");
    }
    item
}

fn clone_into_cgroup(host: &Host) -> Item {
    let mut item = Item::new(AREA, "cgroup.clone_into_cgroup", "");
    let Some(own) = &host.own else {
        item.probe = "look for rt's own cgroup2 directory".into();
        return item.answer(false, "no cgroup2 hierarchy");
    };
    item.probe = format!("clone3(CLONE_INTO_CGROUP) into rt's own cgroup2 directory {}; the child _exits at once and is reaped", own.display());
    let dir = match open(
        own.as_path(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return item.answer(false, format!("open: {}", errno(e))),
    };
    match raw::clone_into_cgroup(dir.as_raw_fd()) {
        Ok(()) => item.answer(true, "child started there and exited"),
        Err(e) => item.answer(false, errno(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroups_lines() {
        let text = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\nhugetlb\t0\t1\t1\nrdma\t0\t1\t0\nbroken\n";
        assert_eq!(
            parse_proc_cgroups(text),
            vec![
                Subsystem {
                    name: "cpuset".into(),
                    hierarchy: 3,
                    enabled: true
                },
                Subsystem {
                    name: "hugetlb".into(),
                    hierarchy: 0,
                    enabled: true
                },
                Subsystem {
                    name: "rdma".into(),
                    hierarchy: 0,
                    enabled: false
                },
            ]
        );
    }

    #[test]
    fn own_cgroup2_path() {
        assert_eq!(
            own_v2_path("4:memory:/a\n0::/user.slice/x\n"),
            Some("/user.slice/x")
        );
        assert_eq!(own_v2_path("4:memory:/a\n"), None);
    }
}
