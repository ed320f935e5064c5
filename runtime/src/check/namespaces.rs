//! Namespaces: does the kernel have each type (/proc/self/ns/<name>), can this caller make
//! one (unshare in a child that exits at once), and how many may exist
//! (/proc/sys/user/max_<name>_namespaces); the sysctls that keep unprivileged users from
//! making user namespaces.

use std::fs;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::unshare;

use super::{child, errno, Item};
use crate::spec::NAMESPACE_TYPES;

const AREA: &str = "namespaces";

/// The namespaces the config `rt spec` writes asks for.
const DEFAULT_CONFIG: [&str; 5] = ["pid", "network", "ipc", "uts", "mount"];

/// The name /proc/self/ns and /proc/sys/user use for a config's namespace type.
fn proc_name(kind: &str) -> &str {
    match kind {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

/// Whether this kernel has namespaces of `kind` (a config type: "network", "mount", ...):
/// /proc/self/ns lists exactly the types it was built with.
pub fn kernel_has(kind: &str) -> bool {
    Path::new("/proc/self/ns").join(proc_name(kind)).exists()
}

pub fn probe() -> Vec<Item> {
    let mut items: Vec<Item> = NAMESPACE_TYPES.iter().map(|k| namespace(k)).collect();
    items.push(unprivileged_userns());
    items
}

fn namespace(kind: &str) -> Item {
    let name = proc_name(kind);
    let flag = crate::namespaces::flag(kind);
    let max_file = format!("/proc/sys/user/max_{name}_namespaces");
    let probe = format!(
        "/proc/self/ns/{name} exists; unshare(CLONE_NEW{}) in a forked child that exits at once; read {max_file}",
        flag_suffix(kind)
    );
    let mut item = Item::new(AREA, format!("namespace.{kind}"), probe);
    item = match kind {
        "time" => item.affects(&["linux.namespaces[type=time]", "linux.timeOffsets"]),
        "user" => item.affects(&[
            "linux.namespaces[type=user]",
            "linux.uidMappings",
            "linux.gidMappings",
            "rt spec --rootless",
        ]),
        "network" => item.affects(&["linux.namespaces[type=network]", "linux.netDevices"]),
        "uts" => item.affects(&["linux.namespaces[type=uts]", "hostname", "domainname"]),
        _ => item.affects(&[&format!("linux.namespaces[type={kind}]")]),
    };
    if DEFAULT_CONFIG.contains(&kind) {
        item = item.needed_by_default();
    }
    if !kernel_has(kind) {
        return item.answer(
            false,
            format!("/proc/self/ns/{name}: absent (kernel without it)"),
        );
    }
    let unshared = child::exit_code_of(|| match unshare(flag) {
        Ok(()) => 0,
        Err(e) => e as i32,
    });
    let max = fs::read_to_string(&max_file).map(|s| s.trim().to_string());
    let max_text = match &max {
        Ok(v) => format!("max {v}"),
        Err(e) => format!("{max_file}: {}", super::io_error(e)),
    };
    match unshared {
        Ok(0) => item.answer(true, format!("present; unshare ok; {max_text}")),
        Ok(code) => item.answer(
            false,
            format!(
                "present; unshare failed: {}; {max_text}",
                errno(Errno::from_raw(code))
            ),
        ),
        Err(e) => item.answer(false, format!("present; fork failed: {}", errno(e))),
    }
}

fn flag_suffix(kind: &str) -> &'static str {
    match kind {
        "user" => "USER",
        "pid" => "PID",
        "network" => "NET",
        "ipc" => "IPC",
        "uts" => "UTS",
        "cgroup" => "CGROUP",
        "time" => "TIME",
        "mount" => "NS",
        _ => "?",
    }
}

/// Debian's kernel.unprivileged_userns_clone and Ubuntu's
/// kernel.apparmor_restrict_unprivileged_userns, where the kernel has them: either can
/// keep a user other than root from making a user namespace (rootless containers).
fn unprivileged_userns() -> Item {
    let sysctls = [
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        (
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1",
        ),
    ];
    let probe = format!("read {} and {} (when present)", sysctls[0].0, sysctls[1].0);
    let item = Item::new(AREA, "userns.unprivileged", probe).affects(&[
        "linux.namespaces[type=user] (as a user other than root)",
        "rt spec --rootless",
    ]);
    let mut found = Vec::new();
    let mut allowed = true;
    for (file, denies) in sysctls {
        if let Ok(v) = fs::read_to_string(file) {
            let v = v.trim().to_string();
            allowed &= v != denies;
            found.push(format!("{file} = {v}"));
        }
    }
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        allowed = false;
        found.push("/proc/sys/user/max_user_namespaces = 0".into());
    }
    if found.is_empty() {
        return item.answer(
            kernel_has("user"),
            "neither sysctl present: no restriction beyond max_user_namespaces",
        );
    }
    item.answer(allowed && kernel_has("user"), found.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_names_of_config_types() {
        assert_eq!(proc_name("network"), "net");
        assert_eq!(proc_name("mount"), "mnt");
        assert_eq!(proc_name("time"), "time");
        for k in NAMESPACE_TYPES {
            assert_ne!(flag_suffix(k), "?", "{k}");
        }
    }
}
