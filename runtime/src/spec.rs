//! The bundle's config.json: typed as the OCI runtime-spec (1.0.0 – 1.3.0) has it, loaded
//! with errors that name the file, the line and column, or the field and value.
//!
//! We keep our own serde types rather than a spec crate: plain public fields make the rest
//! of the runtime read simply, unknown values can be reported in our own words, and the
//! binary stays small (it is part of our start-up time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bail;
use crate::cgroups::resources::Resources;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub oci_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Root {
    pub path: String,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub destination: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Idmapped mounts (runtime-spec 1.2): the mapping the mount is given (rootfs/idmap.rs).
    #[serde(default, rename = "uidMappings", skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, rename = "gidMappings", skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<IoPriority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    #[serde(
        default,
        rename = "execCPUAffinity",
        skip_serializing_if = "Option::is_none"
    )]
    pub exec_cpu_affinity: Option<ExecCpuAffinity>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IoPriority {
    pub class: String,
    #[serde(default)]
    pub priority: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scheduler {
    pub policy: String,
    #[serde(default)]
    pub nice: i32,
    #[serde(default)]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub runtime: u64,
    #[serde(default)]
    pub deadline: u64,
    #[serde(default)]
    pub period: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecCpuAffinity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<String>,
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Personality {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hook {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// None (no `env` key) differs from an empty list: see hooks.rs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Typed by the seccomp module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_label: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_offsets: BTreeMap<String, TimeOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<Personality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<MemoryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<IntelRdt>,
    /// linux.netDevices (runtime-spec 1.3): host device name → its settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub net_devices: BTreeMap<String, NetDevice>,
}

/// linux.intelRdt.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntelRdt {
    #[serde(default, rename = "closID", skip_serializing_if = "Option::is_none")]
    pub clos_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l3_cache_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_bw_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemata: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_monitoring: Option<bool>,
}

/// One entry of linux.netDevices.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetDevice {
    /// The name in the container; the host's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// linux.memoryPolicy (runtime-spec 1.3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryPolicy {
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TimeOffset {
    #[serde(default)]
    pub secs: i64,
    #[serde(default)]
    pub nanosecs: u32,
}

/// The namespace types of the spec, in the order they are joined: user first (it decides
/// which privileges the others are joined with), mount last.
pub const NAMESPACE_TYPES: [&str; 8] = [
    "user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount",
];

impl Spec {
    /// Read and check `<bundle>/config.json`.
    pub fn load(bundle: &Path) -> Result<Spec> {
        let path = bundle.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let spec: Spec = serde_json::from_str(&text).map_err(|e| {
            Error::msg(format!("parse {}: {e}", path.display())).with_path(path.display())
        })?;
        spec.validate()
            .map_err(|e| e.context(format!("invalid {}", path.display())))?;
        Ok(spec)
    }

    pub fn process(&self) -> Result<&Process> {
        self.process
            .as_ref()
            .ok_or_else(|| Error::msg("process: missing (required to create a container)"))
    }

    pub fn linux(&self) -> &Linux {
        static EMPTY: std::sync::OnceLock<Linux> = std::sync::OnceLock::new();
        self.linux
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Linux::default))
    }

    pub fn hooks(&self) -> Hooks {
        self.hooks.clone().unwrap_or_default()
    }

    /// The rootfs as an absolute path (root.path is relative to the bundle).
    pub fn rootfs(&self, bundle: &Path) -> Result<PathBuf> {
        let root = match &self.root {
            Some(r) if !r.path.is_empty() => &r.path,
            _ => bail!("root.path: missing"),
        };
        Ok(bundle.join(root))
    }

    pub fn has_namespace(&self, kind: &str) -> bool {
        self.linux().namespaces.iter().any(|n| n.kind == kind)
    }

    /// Whether the container gets a new namespace of `kind` (listed without a path).
    pub fn creates_namespace(&self, kind: &str) -> bool {
        self.linux()
            .namespaces
            .iter()
            .any(|n| n.kind == kind && n.path.as_deref().is_none_or(str::is_empty))
    }

    /// rt sets up the rootfs, mounts and masked paths in the container's mount namespace;
    /// without one they would land in the caller's, the host's.
    pub fn require_mount_namespace(&self) -> Result<()> {
        if !self.has_namespace("mount") {
            bail!(
                "linux.namespaces: no \"mount\" namespace: rt needs one (new or joined by path), since without it the container's rootfs, mounts and masked paths would be set up in the caller's own mount namespace, the host's; add {{\"type\": \"mount\"}}"
            );
        }
        Ok(())
    }

    /// Checks that need no system access. Rootfs, namespace paths and the like are checked
    /// where they are opened.
    pub fn validate(&self) -> Result<()> {
        check_version(&self.oci_version)?;
        let linux = self.linux();
        let mut seen = Vec::new();
        for ns in &linux.namespaces {
            if !NAMESPACE_TYPES.contains(&ns.kind.as_str()) {
                bail!("linux.namespaces: unknown namespace type {:?}", ns.kind);
            }
            if seen.contains(&ns.kind) {
                bail!(
                    "linux.namespaces: namespace type {:?} listed twice",
                    ns.kind
                );
            }
            seen.push(ns.kind.clone());
        }
        if self.hostname.as_deref().is_some_and(|h| !h.is_empty()) && !self.has_namespace("uts") {
            bail!("hostname: cannot set hostname without a private UTS namespace");
        }
        if self.domainname.as_deref().is_some_and(|h| !h.is_empty()) && !self.has_namespace("uts") {
            bail!("domainname: cannot set domainname without a private UTS namespace");
        }
        for (field, value) in [
            ("hostname", &self.hostname),
            ("domainname", &self.domainname),
        ] {
            check_uts_name(field, value.as_deref().unwrap_or(""))?;
        }
        let new_userns = linux
            .namespaces
            .iter()
            .any(|n| n.kind == "user" && n.path.is_none());
        if new_userns && (linux.uid_mappings.is_empty() || linux.gid_mappings.is_empty()) {
            bail!("linux.uidMappings/gidMappings: required with a new user namespace");
        }
        let has_mappings = !linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty();
        if has_mappings && !new_userns {
            bail!("linux.uidMappings: set, but no new user namespace is requested");
        }
        if !linux.time_offsets.is_empty() && !self.has_namespace("time") {
            bail!("linux.timeOffsets: set, but no time namespace is requested");
        }
        for key in linux.sysctl.keys() {
            let needs = sysctl_namespace(&key.replace('/', ".")).ok_or_else(|| {
                Error::msg(format!(
                    "linux.sysctl: {key} is not in a separate kernel namespace (it would change the host)"
                ))
            })?;
            if !self.has_namespace(needs) {
                bail!(
                    "linux.sysctl: {key} requires a {needs} namespace (it would change the host)"
                );
            }
        }
        if let Some(p) = &self.process {
            if p.args.is_empty() {
                bail!("process.args: must not be empty");
            }
            if !p.cwd.starts_with('/') {
                bail!("process.cwd: {:?} is not an absolute path", p.cwd);
            }
            p.check_exec_size("process")?;
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if m.destination.is_empty() {
                bail!("mounts: a mount has an empty destination");
            }
            crate::rootfs::idmap::validate(self, i, m)?;
        }
        Ok(())
    }
}

/// The namespace a sysctl belongs to; None for a host-wide one, which a container may not
/// set (the list is the kernel's, as runc keeps it).
fn sysctl_namespace(key: &str) -> Option<&'static str> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if key.starts_with("net.") {
        Some("network")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some("uts")
    } else {
        None
    }
}

/// The kernel keeps a hostname or domainname in 64 bytes (__NEW_UTS_LEN): sethostname(2)
/// and setdomainname(2) refuse a longer one with EINVAL. Said here, before anything is made,
/// with the length rather than the (maybe huge) value.
const UTS_NAME_MAX: usize = 64;

fn check_uts_name(field: &str, value: &str) -> Result<()> {
    if value.len() > UTS_NAME_MAX {
        bail!(
            "{field}: {} bytes long, more than the kernel's limit of {UTS_NAME_MAX} (set{field}(2) would fail with EINVAL)",
            value.len()
        );
    }
    Ok(())
}

/// execve(2) copies args and env onto the new stack: at most 3/4 of _STK_LIM (8 MiB),
/// whatever RLIMIT_STACK is, counting each string with its NUL and one pointer per string.
const EXEC_ARGS_MAX: usize = 8 * 1024 * 1024 / 4 * 3;

impl Process {
    /// Refuse, before anything is created, args and env that execve(2) is sure to refuse
    /// with E2BIG: more than [`EXEC_ARGS_MAX`] in all, or one string longer than
    /// MAX_ARG_STRLEN (32 pages). A smaller RLIMIT_STACK lowers the kernel's limit further;
    /// that case still fails at exec, naming E2BIG.
    pub fn check_exec_size(&self, field: &str) -> Result<()> {
        // SAFETY: sysconf takes a constant and touches no memory of ours.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let max_strlen = page * 32;
        let strings = self.args.iter().map(|a| ("args", a));
        let strings = strings.chain(self.env.iter().map(|e| ("env", e)));
        let mut total = 0usize;
        for (i, (kind, s)) in strings.enumerate() {
            if s.len() + 1 > max_strlen {
                let index = if kind == "args" {
                    i
                } else {
                    i - self.args.len()
                };
                bail!(
                    "{field}.{kind}[{index}]: {} bytes long, more than execve(2) takes in one string ({max_strlen} with its NUL, MAX_ARG_STRLEN): it would fail with E2BIG",
                    s.len()
                );
            }
            total = total.saturating_add(s.len() + 1 + std::mem::size_of::<usize>());
        }
        if total > EXEC_ARGS_MAX {
            bail!(
                "{field}.args and {field}.env: {} strings, {total} bytes with their NULs and pointers, more than execve(2) takes ({EXEC_ARGS_MAX}, 3/4 of the 8 MiB stack limit): it would fail with E2BIG",
                self.args.len() + self.env.len()
            );
        }
        Ok(())
    }
}

/// Accept the releases this runtime implements: 1.0.0 through 1.3.x (and their -rc/-dev).
fn check_version(v: &str) -> Result<()> {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    match (parts.len(), num(0), num(1), num(2)) {
        (3, Some(1), Some(0..=3), Some(_)) => Ok(()),
        _ => bail!("ociVersion: unsupported version {v:?} (rt supports 1.0.0 through 1.3.x)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in [
            "1.0.0",
            "1.0.2-dev",
            "1.1.0",
            "1.2.0",
            "1.3.0",
            "1.1.0-rc.1",
        ] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", "0.1.0", "2.0.0", "1.4.0", "1.0", "x"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let dir = std::env::temp_dir().join(format!("rt-spec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            "{\n  \"ociVersion\": \"1.0.0\",\n  x\n}",
        )
        .unwrap();
        let err = Spec::load(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("line 3 column 3"), "{err}");
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn uts_names_and_exec_size_are_bounded() {
        let spec = |extra: &str| -> Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.2.0","process":{{"args":["sh"],"cwd":"/"}},"linux":{{"namespaces":[{{"type":"uts"}}]}}{extra}}}"#
            ))
            .unwrap()
        };
        assert!(spec(&format!(r#","hostname":"{}""#, "h".repeat(64)))
            .validate()
            .is_ok());
        let err = spec(&format!(r#","hostname":"{}""#, "h".repeat(65536)))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("hostname: 65536 bytes long"), "{err}");
        assert!(err.len() < 200, "the value is not repeated: {err}");
        let err = spec(&format!(r#","domainname":"{}""#, "d".repeat(65)))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("domainname: 65 bytes"), "{err}");

        let mut p = spec("").process.unwrap();
        p.env = vec!["A=b".into(); 1000];
        assert!(p.check_exec_size("process").is_ok());
        p.env = vec!["E=v".into(); 1_000_000];
        let err = p.check_exec_size("process").unwrap_err().to_string();
        assert!(
            err.contains("1000001 strings") && err.contains("E2BIG"),
            "{err}"
        );
        p.env = vec!["A=b".into(), format!("X={}", "x".repeat(200_000))];
        let err = p.check_exec_size("process").unwrap_err().to_string();
        assert!(err.starts_with("process.env[1]: 200002 bytes"), "{err}");
    }

    #[test]
    fn userns_needs_mappings() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"user"}]}}"#,
        )
        .unwrap();
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("uidMappings"));
    }
}
