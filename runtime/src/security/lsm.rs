//! Linux security modules: the AppArmor profile and SELinux labels of the config, applied
//! when the host has that LSM, refused with a clear error when it has not (a container
//! must never run with less confinement than its config asks for).

use std::fs;
use std::path::Path;

use crate::bail;
use crate::error::{Context, Result};
use crate::spec::{Process, Spec};

pub fn apparmor_enabled() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
        && Path::new("/proc/self/attr/apparmor").exists()
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuse a config that asks for an LSM this host does not run.
pub fn check(spec: &Spec) -> Result<()> {
    let mount_label = spec.linux().mount_label.as_deref();
    check_process(spec.process()?, mount_label)
}

/// The same for one process (an exec's): its profile and label, and the mount label.
pub fn check_process(p: &Process, mount_label: Option<&str>) -> Result<()> {
    if let Some(profile) = p.apparmor_profile.as_deref().filter(|s| !s.is_empty()) {
        if !apparmor_enabled() {
            bail!("process.apparmorProfile: {profile:?} requested, but AppArmor is not enabled on this host");
        }
    }
    if let Some(label) = p
        .selinux_label
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(mount_label.filter(|s| !s.is_empty()))
    {
        if !selinux_enabled() {
            bail!("process.selinuxLabel/linux.mountLabel: {label:?} requested, but SELinux is disabled or not supported on this host");
        }
    }
    Ok(())
}

/// Just before execve: the program starts confined by the profile / in the label.
pub fn apply_on_exec(apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if let Some(profile) = apparmor.filter(|s| !s.is_empty()) {
        let file = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        fs::write(file, format!("exec {profile}"))
            .ctx(|| format!("process.apparmorProfile: write \"exec {profile}\" to {file}"))?;
    }
    if let Some(label) = selinux.filter(|s| !s.is_empty()) {
        fs::write("/proc/self/attr/exec", label)
            .ctx(|| format!("process.selinuxLabel: write {label:?} to /proc/self/attr/exec"))?;
    }
    Ok(())
}
