//! `rt features`: the OCI runtime features document (runtime-spec features.md), built from
//! the same tables the runtime uses (mount options, namespaces, seccomp actions and
//! architectures) and from what this host's kernel offers, so it cannot claim more than rt
//! does here.

use serde_json::{json, Value};

use crate::rootfs::mounts;
use crate::security::{lsm, seccomp};
use crate::spec::NAMESPACE_TYPES;

/// The document, pretty-printed as runc prints it.
pub fn json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

pub fn document() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": mounts::known_options(),
        "linux": {
            "namespaces": namespaces(),
            "capabilities": capabilities(),
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": true,
                "systemdUser": false,
                "rdma": true,
            },
            // What the profile compiler takes *and* this kernel runs (`rt check` asks the
            // same questions: SECCOMP_GET_ACTION_AVAIL per action).
            "seccomp": {
                "enabled": seccomp::kernel::filter_available(),
                "actions": seccomp::kernel::kernel_actions(),
                "operators": seccomp::OPERATORS,
                "archs": seccomp::host_arch_names(),
                "knownFlags": seccomp::KNOWN_FLAGS,
                "supportedFlags": seccomp::supported_flags(),
            },
            "apparmor": { "enabled": lsm::apparmor_enabled() },
            "selinux": { "enabled": lsm::selinux_enabled() },
            // linux.intelRdt works where resctrl is mounted (elsewhere it is refused).
            "intelRdt": {
                "enabled": crate::intelrdt::resctrl_root().ok().flatten().is_some(),
                "schemata": true,
                "enableMonitoring": true,
            },
            "netDevices": { "enabled": true },
            "memoryPolicy": {
                "modes": crate::process::mempolicy::MODES.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                "flags": crate::process::mempolicy::FLAGS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            },
            // Idmapped bind mounts need mount_setattr (Linux 5.12).
            "mountExtensions": { "idmap": { "enabled": crate::sys::has_mount_setattr() } },
        },
        "annotations": {
            "io.github.rt.version": env!("CARGO_PKG_VERSION"),
        },
    })
}

/// The namespace types rt can create here: those this kernel was built with (it lists
/// them in /proc/self/ns; time needs Linux 5.6, user CONFIG_USER_NS), as `rt check` sees
/// them.
fn namespaces() -> Vec<&'static str> {
    NAMESPACE_TYPES
        .iter()
        .copied()
        .filter(|k| crate::check::kernel_has_namespace(k))
        .collect()
}

/// Every capability this kernel knows, in number order.
fn capabilities() -> Vec<String> {
    let mut caps: Vec<_> = caps::runtime::thread_all_supported().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    caps.iter().map(|c| c.to_string()).collect()
}
