//! The host itself: kernel release, the filesystem types the kernel can mount, and the IO
//! schedulers of its block devices (linux.resources.blockIO.weight needs BFQ, or on cgroup
//! v2 the io.cost model).

use std::fs;

use super::{io_error, Item};

const AREA: &str = "host";

/// The filesystems the default config mounts (mounts[].type), cgroup or cgroup2 aside.
const DEFAULT_FILESYSTEMS: [&str; 5] = ["proc", "tmpfs", "devpts", "mqueue", "sysfs"];

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn kernel(release: &str) -> Item {
    let machine = nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    Item::new(AREA, "kernel.version", "uname(2)")
        .answer(!release.is_empty(), format!("machine {machine}"))
        .value(release)
}

/// "6.1.0-13-amd64" → (6, 1); None if it does not start with two numbers.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn kernel_at_least(release: &str, wanted: (u32, u32)) -> bool {
    parse_release(release).is_some_and(|v| v >= wanted)
}

/// The filesystem types of /proc/filesystems ("nodev\tproc" → "proc").
pub fn parse_filesystems(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect()
}

pub fn filesystems() -> Vec<Item> {
    let text = fs::read_to_string("/proc/filesystems");
    let known = text.as_deref().map(parse_filesystems).unwrap_or_default();
    let mut items: Vec<Item> = DEFAULT_FILESYSTEMS
        .iter()
        .map(|fs| {
            let item = Item::new(AREA, format!("filesystem.{fs}"), "/proc/filesystems")
                .affects(&[&format!("mounts[type={fs}]")])
                .needed_by_default();
            match &text {
                Err(e) => item.answer(false, io_error(e)),
                Ok(_) if known.contains(fs) => item.answer(true, "listed"),
                Ok(_) => item.answer(false, "not listed"),
            }
        })
        .collect();
    // The default config's /sys/fs/cgroup mount takes whichever the host runs.
    let cg: Vec<&str> = ["cgroup", "cgroup2"]
        .into_iter()
        .filter(|f| known.contains(f))
        .collect();
    items.push(
        Item::new(
            AREA,
            "filesystem.cgroup",
            "/proc/filesystems: cgroup or cgroup2",
        )
        .affects(&["mounts[type=cgroup]"])
        .needed_by_default()
        .answer(
            !cg.is_empty(),
            if cg.is_empty() {
                "neither listed".into()
            } else {
                format!("listed: {}", cg.join(", "))
            },
        ),
    );
    items
}

/// linux.intelRdt works where the resctrl filesystem is mounted (as `create` finds it).
pub fn intel_rdt() -> Item {
    let item = Item::new(
        AREA,
        "intelrdt.resctrl",
        "a resctrl mount in /proc/self/mountinfo",
    )
    .affects(&["linux.intelRdt"]);
    match crate::intelrdt::resctrl_root() {
        Ok(Some(p)) => item.answer(true, format!("mounted at {}", p.display())),
        Ok(None) => item.answer(false, "not mounted"),
        Err(e) => item.answer(false, e.to_string()),
    }
}

/// The offered schedulers of a queue/scheduler file and the active one (in brackets).
pub fn parse_scheduler(text: &str) -> (Vec<String>, Option<String>) {
    let mut offered = Vec::new();
    let mut active = None;
    for word in text.split_whitespace() {
        let name = word
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if word.starts_with('[') {
            active = Some(name.clone());
        }
        offered.push(name);
    }
    (offered, active)
}

/// Block devices a container's IO can reach: not an unattached loop device (no backing
/// file), and with a request queue that has a scheduler (zram and the like have none).
fn in_use(dev: &str) -> bool {
    let sys = std::path::Path::new("/sys/block").join(dev);
    let loop_unused = dev.starts_with("loop") && !sys.join("loop/backing_file").exists();
    !loop_unused && sys.join("queue/scheduler").exists()
}

/// One item per block device in use: its schedulers, and whether BFQ (which gives weights
/// to cgroups) is among them.
pub fn block_schedulers() -> Vec<Item> {
    let mut devices: Vec<String> = fs::read_dir("/sys/block")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    devices.sort();
    devices
        .iter()
        .filter(|dev| in_use(dev))
        .map(|dev| {
            let file = format!("/sys/block/{dev}/queue/scheduler");
            let item = Item::new(
                AREA,
                format!("block.{dev}.scheduler"),
                format!("read {file}"),
            )
            .affects(&[
                "linux.resources.blockIO.weight",
                "linux.resources.blockIO.weightDevice",
            ]);
            match fs::read_to_string(&file) {
                Ok(text) => {
                    let (offered, active) = parse_scheduler(&text);
                    let bfq = offered.iter().any(|s| s == "bfq");
                    let active = active.unwrap_or_else(|| "?".into());
                    item.answer(
                        bfq,
                        format!(
                            "{}; active {active}; {}",
                            text.trim(),
                            if bfq {
                                "BFQ offered"
                            } else {
                                "no BFQ: no IO weights"
                            }
                        ),
                    )
                    .value(active)
                }
                Err(e) => item.answer(false, io_error(&e)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.1.0-13-amd64"), Some((6, 1)));
        assert_eq!(parse_release("5.14"), Some((5, 14)));
        assert_eq!(parse_release("junk"), None);
        assert!(kernel_at_least("6.18.44-fc", (5, 14)));
        assert!(!kernel_at_least("5.4.0", (5, 14)));
    }

    #[test]
    fn filesystems_list() {
        let text = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n";
        assert_eq!(parse_filesystems(text), vec!["sysfs", "tmpfs", "ext4"]);
    }

    #[test]
    fn scheduler_lines() {
        let (offered, active) = parse_scheduler("none [mq-deadline] kyber bfq\n");
        assert_eq!(offered, vec!["none", "mq-deadline", "kyber", "bfq"]);
        assert_eq!(active.as_deref(), Some("mq-deadline"));
        assert_eq!(parse_scheduler("none\n").1, None);
    }
}
