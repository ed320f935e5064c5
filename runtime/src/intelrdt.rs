//! `linux.intelRdt`: the container's class of service (CLOS) in the resctrl filesystem
//! (Intel RDT / AMD PQoS cache and memory-bandwidth allocation), by the rules of
//! runtime-spec 1.3: the group is `closID` (`/` = the default CLOS, the root) or the
//! container id; schemata are written l3CacheSchema, memBwSchema, then `schemata`; an
//! existing closID group must already hold them; the container id's group and the
//! monitoring group (`enableMonitoring`) are rt's, removed on delete, a closID group never.
//! Without a resctrl mount, intelRdt is an error; without intelRdt, resctrl is untouched.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::spec;

/// What create will do in resctrl, decided before anything starts.
#[derive(Debug, Clone)]
pub struct Plan {
    group: PathBuf,
    /// The group does not exist yet: create it.
    make_group: bool,
    /// Remove the group on delete: only the container id's group, which rt made.
    owned: bool,
    /// Lines for the group's schemata file, in the order the spec gives.
    schemata: Vec<String>,
    /// mon_groups/<container id>, with enableMonitoring.
    monitoring: Option<PathBuf>,
}

/// What the container holds in resctrl, kept in its state for exec and delete.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rdt {
    pub group: PathBuf,
    pub owned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<PathBuf>,
}

/// The resctrl mount of this mount namespace, if any.
pub fn resctrl_root() -> Result<Option<PathBuf>> {
    Ok(
        crate::mountinfo::reachable(crate::mountinfo::read_own()?, |m| m.fstype == "resctrl")
            .into_iter()
            .next()
            .map(|m| m.mountpoint),
    )
}

pub fn plan(rdt: &spec::IntelRdt, id: &str) -> Result<Plan> {
    let Some(root) = resctrl_root()? else {
        bail!(
            "linux.intelRdt: no resctrl filesystem is mounted (the kernel needs RDT support, CONFIG_X86_CPU_RESCTRL, and `mount -t resctrl resctrl /sys/fs/resctrl`)"
        );
    };
    plan_in(rdt, id, &root)
}

fn plan_in(rdt: &spec::IntelRdt, id: &str, root: &Path) -> Result<Plan> {
    let mut schemata = Vec::new();
    if let Some(l3) = rdt.l3_cache_schema.as_deref() {
        if l3.contains('\n') {
            bail!("linux.intelRdt.l3CacheSchema: {l3:?} must be one line");
        }
        if !l3.starts_with("L3") {
            log::warn!("linux.intelRdt.l3CacheSchema: {l3:?} should start with \"L3:\"");
        }
        schemata.push(l3.to_string());
    }
    if let Some(mb) = rdt.mem_bw_schema.as_deref() {
        if mb.contains('\n') || !mb.starts_with("MB:") {
            bail!("linux.intelRdt.memBwSchema: {mb:?} must be one line starting with \"MB:\"");
        }
        schemata.push(mb.to_string());
    }
    for line in &rdt.schemata {
        if line.contains('\n') {
            bail!("linux.intelRdt.schemata: {line:?} must be one line");
        }
        schemata.push(line.clone());
    }
    let (group, make_group, owned) = match rdt.clos_id.as_deref() {
        Some("/") => (root.to_path_buf(), false, false),
        Some(clos) => {
            if clos.is_empty() || clos.contains('/') || clos == "." || clos == ".." {
                bail!("linux.intelRdt.closID: {clos:?} is not a group name (or \"/\")");
            }
            let group = root.join(clos);
            let exists = group.is_dir();
            if !exists && schemata.is_empty() {
                bail!(
                    "linux.intelRdt.closID: {} does not exist, and no schemata are given to make it",
                    group.display()
                );
            }
            (group, !exists, false)
        }
        None => {
            let group = root.join(id);
            if group.exists() {
                bail!(
                    "linux.intelRdt: {} already exists (another container with id {id}?)",
                    group.display()
                );
            }
            (group, true, true)
        }
    };
    if !make_group && rdt.clos_id.as_deref().is_some_and(|c| c != "/") && !schemata.is_empty() {
        check_schemata(&group, &schemata)?;
    }
    let monitoring = rdt
        .enable_monitoring
        .unwrap_or(false)
        .then(|| group.join("mon_groups").join(id));
    Ok(Plan {
        group,
        make_group,
        owned,
        schemata,
        monitoring,
    })
}

/// An existing closID group must already hold the schemata asked for (the kernel prints
/// every domain; each requested line must be one of them, spaces aside).
fn check_schemata(group: &Path, want: &[String]) -> Result<()> {
    let file = group.join("schemata");
    let have = fs::read_to_string(&file).ctx(|| format!("read {}", file.display()))?;
    let norm = |s: &str| s.split_whitespace().collect::<String>();
    let have: Vec<String> = have.lines().map(norm).collect();
    for line in want {
        if !have.contains(&norm(line)) {
            bail!(
                "linux.intelRdt: {} has no line {line:?}: the existing closID group holds other schemata",
                file.display()
            );
        }
    }
    Ok(())
}

impl Plan {
    /// Make the groups, write the schemata and move `pid` in. On error, what was made is
    /// removed again.
    pub fn apply(&self, pid: i32) -> Result<Rdt> {
        let rdt = Rdt {
            group: self.group.clone(),
            owned: self.make_group && self.owned,
            monitoring: self.monitoring.clone(),
        };
        if self.make_group {
            fs::create_dir(&self.group)
                .ctx(|| format!("linux.intelRdt: mkdir {}", self.group.display()))?;
        }
        let made = Rdt {
            owned: self.make_group,
            monitoring: None,
            ..rdt.clone()
        };
        let result = self.fill(pid);
        if result.is_err() {
            made.remove_after_failure(self.monitoring.as_deref());
        }
        result.map(|_| rdt)
    }

    fn fill(&self, pid: i32) -> Result<()> {
        let file = self.group.join("schemata");
        for line in &self.schemata {
            fs::write(&file, format!("{line}\n"))
                .ctx(|| format!("linux.intelRdt: write {line:?} to {}", file.display()))?;
        }
        join(&self.group, pid)?;
        if let Some(mon) = &self.monitoring {
            // mon_groups is there in every resctrl group.
            fs::create_dir_all(mon).ctx(|| {
                format!(
                    "linux.intelRdt.enableMonitoring: mkdir {} (the limit of monitoring groups?)",
                    mon.display()
                )
            })?;
            join(mon, pid)?;
        }
        Ok(())
    }
}

fn join(group: &Path, pid: i32) -> Result<()> {
    let tasks = group.join("tasks");
    fs::write(&tasks, pid.to_string())
        .ctx(|| format!("linux.intelRdt: write {pid} to {}", tasks.display()))
}

impl Rdt {
    /// Move `pid` (an exec'd process) in with the container.
    pub fn join(&self, pid: i32) -> Result<()> {
        join(&self.group, pid)?;
        match &self.monitoring {
            Some(mon) => join(mon, pid),
            None => Ok(()),
        }
    }

    /// On delete: the monitoring group, and the group if rt made it for this container.
    pub fn remove(&self) -> Result<()> {
        if let Some(mon) = &self.monitoring {
            remove_dir(mon)?;
        }
        if self.owned {
            remove_dir(&self.group)?;
        }
        Ok(())
    }

    fn remove_after_failure(&self, monitoring: Option<&Path>) {
        if let Some(mon) = monitoring {
            let _ = fs::remove_dir(mon);
        }
        if self.owned {
            let _ = fs::remove_dir(&self.group);
        }
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("linux.intelRdt: rmdir {}", dir.display()),
            e,
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake resctrl tree: plain directories and files stand in for the kernel's.
    fn fake_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("rt-resctrl-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("mon_groups")).unwrap();
        fs::write(root.join("tasks"), "").unwrap();
        fs::write(root.join("schemata"), "L3:0=7ff;1=7ff\nMB:0=100;1=100\n").unwrap();
        root
    }

    fn rdt(
        clos: Option<&str>,
        l3: Option<&str>,
        mb: Option<&str>,
        more: &[&str],
    ) -> spec::IntelRdt {
        spec::IntelRdt {
            clos_id: clos.map(String::from),
            l3_cache_schema: l3.map(String::from),
            mem_bw_schema: mb.map(String::from),
            schemata: more.iter().map(|s| s.to_string()).collect(),
            enable_monitoring: None,
        }
    }

    #[test]
    fn container_group_with_schemata_in_order_and_monitoring() {
        let root = fake_root("own");
        let mut r = rdt(None, Some("L3:0=f0"), Some("MB:0=20"), &["L2:0=f"]);
        r.enable_monitoring = Some(true);
        let plan = plan_in(&r, "c1", &root).unwrap();
        assert_eq!(plan.schemata, ["L3:0=f0", "MB:0=20", "L2:0=f"]);
        let state = plan.apply(4242).unwrap();
        let group = root.join("c1");
        let mon = group.join("mon_groups/c1");
        // A plain file keeps the last write: the lines went one by one, `schemata` last.
        assert_eq!(
            fs::read_to_string(group.join("schemata")).unwrap(),
            "L2:0=f\n"
        );
        assert_eq!(fs::read_to_string(group.join("tasks")).unwrap(), "4242");
        assert_eq!(fs::read_to_string(mon.join("tasks")).unwrap(), "4242");
        assert!(state.owned);
        assert_eq!(state.monitoring.as_deref(), Some(mon.as_path()));
        assert!(
            plan_in(&r, "c1", &root).is_err(),
            "a second container with the same id"
        );
        // The kernel's groups hold no files rmdir could trip on; the fake ones do.
        for f in [
            mon.join("tasks"),
            group.join("tasks"),
            group.join("schemata"),
        ] {
            fs::remove_file(f).unwrap();
        }
        // rt removes the monitoring group, then its own group (the kernel's mon_groups
        // directory in it is the kernel's; the fake one goes by hand in between).
        Rdt {
            owned: false,
            ..state.clone()
        }
        .remove()
        .unwrap();
        assert!(!mon.exists());
        fs::remove_dir(group.join("mon_groups")).unwrap();
        Rdt {
            monitoring: None,
            ..state
        }
        .remove()
        .unwrap();
        assert!(!group.exists(), "the container's own group goes on delete");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn clos_id_rules() {
        let root = fake_root("clos");
        // An existing closID must hold the schemata asked for.
        fs::create_dir(root.join("gold")).unwrap();
        fs::write(
            root.join("gold/schemata"),
            "    L3:0=00f;1=00f\n      MB:0= 50;1= 50\n",
        )
        .unwrap();
        assert!(plan_in(
            &rdt(Some("gold"), Some("L3:0=00f;1=00f"), None, &[]),
            "c",
            &root
        )
        .is_ok());
        let e = plan_in(
            &rdt(Some("gold"), Some("L3:0=fff;1=00f"), None, &[]),
            "c",
            &root,
        )
        .unwrap_err();
        assert!(e.to_string().contains("holds other schemata"), "{e}");
        // Without schemata it must exist already; with them it is made, but never removed.
        let e = plan_in(&rdt(Some("silver"), None, None, &[]), "c", &root).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let p = plan_in(&rdt(Some("silver"), None, Some("MB:0=10"), &[]), "c", &root).unwrap();
        assert!(p.make_group && !p.owned);
        // "/" is the default CLOS, the root.
        let p = plan_in(&rdt(Some("/"), None, None, &[]), "c", &root).unwrap();
        assert_eq!(p.group, root);
        p.apply(7).unwrap();
        assert_eq!(fs::read_to_string(root.join("tasks")).unwrap(), "7");
        // memBwSchema must start with MB: and no value may hold a newline.
        assert!(plan_in(&rdt(None, None, Some("L3:0=1"), &[]), "c", &root).is_err());
        assert!(plan_in(&rdt(None, None, None, &["MB:0=1\nL3:0=1"]), "c", &root).is_err());
        assert!(plan_in(&rdt(Some("../x"), None, None, &[]), "c", &root).is_err());
        fs::remove_dir_all(&root).unwrap();
    }
}
