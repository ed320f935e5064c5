//! `rt check`: what this host offers a container runtime, and why. Every item says which
//! probe was made (a file read, a system call, a child that unshares and exits), what came
//! back (the value, or the errno name and number), which config.json fields cannot work
//! without it, and whether the default config (what `rt spec` writes) needs it. The exit
//! status is 0 when everything the default config needs is there.
//!
//! Every probe leaves the host as it found it: no mount is attached (open_tree clones are
//! closed while still detached), no cgroup is made (CLONE_INTO_CGROUP goes into rt's own),
//! no setting is written, and every child forked for a probe is reaped before the next.

mod cgroups;
mod child;
mod host;
mod idmap;
mod namespaces;
mod raw;
mod report;
mod seccomp;
mod security;
mod syscalls;
mod tools;

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Serialize;

use crate::error::Result;

pub use namespaces::kernel_has as kernel_has_namespace;
pub use report::{json, text};

/// One thing the host has or lacks.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Stable, dotted: "namespace.time", "seccomp.action.SCMP_ACT_NOTIFY", "cgroup.kill".
    pub name: String,
    pub area: &'static str,
    pub available: bool,
    /// What there is, when that is more than yes or no (a version, a list, sizes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// How it was asked, in words.
    pub probe: String,
    /// What the host answered: a value, or an errno name and number.
    pub result: String,
    /// The config.json fields (or rt commands) that cannot work without it.
    pub affects: Vec<String>,
    /// Whether the config `rt spec` writes needs it.
    #[serde(rename = "defaultConfigNeeds")]
    pub default_config_needs: bool,
}

impl Item {
    fn new(area: &'static str, name: impl Into<String>, probe: impl Into<String>) -> Item {
        Item {
            name: name.into(),
            area,
            available: false,
            value: None,
            probe: probe.into(),
            result: String::new(),
            affects: Vec::new(),
            default_config_needs: false,
        }
    }

    fn answer(mut self, available: bool, result: impl Into<String>) -> Item {
        self.available = available;
        self.result = result.into();
        self
    }

    fn value(mut self, value: impl Into<String>) -> Item {
        self.value = Some(value.into());
        self
    }

    fn affects(mut self, fields: &[&str]) -> Item {
        self.affects.extend(fields.iter().map(|f| f.to_string()));
        self
    }

    fn needed_by_default(mut self) -> Item {
        self.default_config_needs = true;
        self
    }
}

/// Everything `rt check` found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel: String,
    /// The filesystem whose idmap support was probed, and why that one.
    pub rootfs: String,
    pub items: Vec<Item>,
}

impl Report {
    /// The items the default config needs and the host lacks.
    pub fn missing_for_default(&self) -> Vec<&Item> {
        self.items
            .iter()
            .filter(|i| i.default_config_needs && !i.available)
            .collect()
    }

    pub fn item(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.name == name)
    }

    /// 0 when everything the default config needs is there, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.missing_for_default().is_empty())
    }
}

/// Probe the host. `bundle`: probe idmapped mounts on its rootfs's filesystem (else on /).
pub fn run(bundle: Option<&Path>) -> Result<Report> {
    let rootfs = match bundle {
        Some(b) => crate::spec::Spec::load(b)?.rootfs(b)?,
        None => PathBuf::from("/"),
    };
    let kernel = host::kernel_release();
    let mut items = vec![host::kernel(&kernel)];
    items.extend(namespaces::probe());
    items.extend(cgroups::probe(&kernel));
    items.extend(seccomp::probe());
    items.extend(syscalls::probe(&rootfs));
    let (fs, idmap) = idmap::probe(&rootfs, bundle.is_some());
    items.push(idmap);
    items.extend(security::probe());
    items.extend(host::filesystems());
    items.extend(host::block_schedulers());
    items.push(host::intel_rdt());
    items.extend(tools::probe());
    Ok(Report {
        kernel,
        rootfs: fs,
        items,
    })
}

/// `rt check`: probe, print the report as `format` ("text" or "json"), return the exit
/// status.
pub fn print(bundle: Option<&Path>, format: &str) -> Result<u8> {
    let report = run(bundle)?;
    let out = if format == "json" {
        json(&report)
    } else {
        text(&report)
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Ok(report.exit_code())
}

/// An errno as the report shows it: name and number, e.g. "EINVAL (22)".
fn errno(e: Errno) -> String {
    format!("{e:?} ({})", e as i32)
}

/// A std I/O error the same way when it carries an errno.
fn io_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno(Errno::from_raw(n)),
        None => e.to_string(),
    }
}
