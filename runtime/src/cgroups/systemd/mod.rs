//! The systemd cgroup driver (`--systemd-cgroup`, `--cgroup-manager=systemd`): on a host
//! whose cgroups systemd owns, the container's processes go into a transient unit that
//! systemd starts for us over D-Bus (`StartTransientUnit`), with its cgroup delegated to
//! us. From then on the unit's cgroup is driven like any other (limits written, freezer,
//! stats, kill); only its start, its limits' update and its end go through systemd.

pub mod naming;
pub mod properties;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use super::{Cgroup, CgroupDir, Hierarchy};
use crate::dbus::wire::{prop, Value};
use crate::dbus::{CallError, Connection};
use crate::error::{Error, Result};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a call, or a unit's start or stop job, may take (runc waits 30 s too).
const TIMEOUT: Duration = Duration::from_secs(30);

/// The systemd unit that holds a container, remembered in its state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Unit {
    /// "prefix-name.scope" (or a slice, when cgroupsPath's name is one).
    pub name: String,
    /// The slice it is in.
    pub slice: String,
}

/// Whether systemd is the host's init (what systemd's own sd_booted() checks).
pub fn is_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The container's unit and its cgroup in every hierarchy. The unit's directory is the
/// container's own (rt empties and removes it); the slices above belong to systemd.
pub fn plan(hierarchies: &[Hierarchy], cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
    // The config first, as runc: a path of the wrong shape is wrong on any host.
    let placement = naming::parse(cgroups_path, id)?;
    if !is_running() {
        return Err(Error::msg(
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the cgroupfs driver (leave out --systemd-cgroup)",
        ));
    }
    placed(hierarchies, placement)
}

fn placed(hierarchies: &[Hierarchy], placement: naming::Placement) -> Result<Cgroup> {
    let rel = naming::cgroup_path(&placement)?;
    let dirs: Vec<CgroupDir> = hierarchies
        .iter()
        .map(|h| CgroupDir {
            path: h.mountpoint.join(&rel),
            unified: h.unified,
            subsystems: h.subsystems.clone(),
        })
        .collect();
    // The unit's directories are the container's. On v1, so are the slice directories rt
    // is about to make in the hierarchies systemd leaves alone (it makes those for the
    // unit in its own): removed on delete once empty. Deepest first.
    let mut created: Vec<PathBuf> = dirs.iter().map(|d| d.path.clone()).collect();
    let unmanaged = dirs.iter().filter(|d| !makes_dir(d));
    for d in unmanaged {
        let mut missing = Vec::new();
        super::missing_up_to_existing(&d.path, &mut missing);
        created.extend(missing.into_iter().filter(|m| *m != d.path));
    }
    created.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(Cgroup {
        created,
        dirs,
        systemd: Some(Unit {
            name: placement.unit,
            slice: placement.slice,
        }),
    })
}

/// Whether systemd makes the unit's directory in this hierarchy: the unified one, its own
/// v1 one (name=systemd) and those of the v1 controllers it drives (a delegated unit gets
/// them all). rt makes it in the others (cpuset, freezer, ...).
pub(super) fn makes_dir(d: &CgroupDir) -> bool {
    d.unified
        || d.subsystems.split(',').any(|c| {
            matches!(
                c,
                "name=systemd" | "cpu" | "cpuacct" | "blkio" | "memory" | "devices" | "pids"
            )
        })
}

impl Unit {
    pub(super) fn is_scope(&self) -> bool {
        self.name.ends_with(".scope")
    }

    /// Start the unit with `pid` in it (a scope takes its processes at start; a slice
    /// takes none, the caller moves `pid` in) and the limits of `r` as its properties;
    /// return once systemd says the start job is done.
    pub fn start(&self, pid: i32, r: &Resources) -> Result<()> {
        let mut bus = Manager::connect()?;
        let v2 = super::is_v2_unified_host();
        let mut props = properties::common(format!("rt container {}", self.name), v2);
        if self.is_scope() {
            props.push(prop("Slice", Value::Str(self.slice.clone())));
            let pid = u32::try_from(pid).unwrap_or_default();
            props.push(prop(
                "PIDs",
                Value::Array("u".into(), vec![Value::U32(pid)]),
            ));
        } else {
            props.push(prop("Wants", Value::Str(self.slice.clone())));
        }
        props.extend(bus.resource_properties(r, v2));
        log::debug!(
            "systemd: start {} in {} for pid {pid}",
            self.name,
            self.slice
        );
        let args = [
            Value::Str(self.name.clone()),
            Value::Str("replace".into()),
            Value::Array("(sv)".into(), props),
            Value::Array("(sa(sv))".into(), Vec::new()),
        ];
        let job = match bus.call("StartTransientUnit", &args) {
            // A unit of that name left failed by an earlier container: reset, try again.
            Err(e) if e.is("org.freedesktop.systemd1.UnitExists") => {
                bus.reset_failed(&self.name);
                bus.call("StartTransientUnit", &args)
            }
            other => other,
        }
        .map_err(|e| Error::from(e).context(format!("systemd: start unit {}", self.name)))?;
        let result = bus.wait_for_job(&job)?;
        if result != "done" {
            return Err(Error::msg(format!(
                "systemd: start unit {} in {}: job {job} ended {result:?} (journalctl -u {} tells why)",
                self.name, self.slice, self.name
            )));
        }
        Ok(())
    }

    /// Stop the unit (its processes are gone by now: rt killed them) and forget a failed
    /// one, so that no unit is left behind. A unit systemd already collected is fine.
    pub fn stop(&self) -> Result<()> {
        let mut bus = Manager::connect()?;
        let args = [Value::Str(self.name.clone()), Value::Str("replace".into())];
        match bus.call("StopUnit", &args) {
            Ok(job) => {
                bus.wait_for_job(&job)?;
            }
            Err(e) if e.is("org.freedesktop.systemd1.NoSuchUnit") => {}
            Err(e) => {
                return Err(Error::from(e).context(format!("systemd: stop unit {}", self.name)))
            }
        }
        bus.reset_failed(&self.name);
        Ok(())
    }

    /// New limits (`rt update`): systemd learns them as runtime properties of the unit.
    pub fn set_properties(&self, r: &Resources) -> Result<()> {
        let mut bus = Manager::connect()?;
        let props = bus.resource_properties(r, super::is_v2_unified_host());
        if props.is_empty() {
            return Ok(());
        }
        let args = [
            Value::Str(self.name.clone()),
            Value::Bool(true),
            Value::Array("(sv)".into(), props),
        ];
        bus.call("SetUnitProperties", &args).map(drop).map_err(|e| {
            Error::from(e).context(format!("systemd: set properties of {}", self.name))
        })
    }
}

/// A connection to systemd's manager, subscribed to its job signals.
struct Manager {
    bus: Connection,
}

impl Manager {
    fn connect() -> Result<Manager> {
        let mut bus = Connection::systemd().map_err(|e| e.context("systemd: connect"))?;
        if bus.is_bus() {
            let rule = "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";
            bus.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                &[Value::Str(rule.into())],
                TIMEOUT,
            )
            .map_err(|e| Error::from(e).context("systemd: AddMatch for JobRemoved"))?;
        }
        let mut m = Manager { bus };
        // systemd sends job signals only to subscribed clients.
        m.call("Subscribe", &[])
            .map_err(|e| Error::from(e).context("systemd: Subscribe"))?;
        Ok(m)
    }

    /// A Manager method; the reply's first value as a string (a job's object path).
    fn call(&mut self, method: &str, args: &[Value]) -> std::result::Result<String, CallError> {
        let reply = self.bus.call(DEST, PATH, MANAGER, method, args, TIMEOUT)?;
        Ok(reply
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// systemd's version number ("252.22-1~deb12u1" → 252); 0 when it cannot be read,
    /// which leaves out every property newer systemds added.
    fn version(&mut self) -> u32 {
        let args = [Value::Str(MANAGER.into()), Value::Str("Version".into())];
        let reply = self.bus.call(
            DEST,
            PATH,
            "org.freedesktop.DBus.Properties",
            "Get",
            &args,
            TIMEOUT,
        );
        let text = reply
            .ok()
            .and_then(|r| {
                r.first()
                    .and_then(|v| v.variant().as_str().map(String::from))
            })
            .unwrap_or_default();
        leading_number(&text)
    }

    /// `r` as properties this systemd knows (its version decides which).
    fn resource_properties(&mut self, r: &Resources, v2: bool) -> Vec<Value> {
        let systemd = properties::Systemd {
            version: self.version(),
            v2,
        };
        let proc_devices = fs::read_to_string("/proc/devices").unwrap_or_default();
        properties::resources(r, systemd, &proc_devices)
    }

    /// Wait for systemd's JobRemoved signal for `job`; its result ("done", "failed", ...).
    fn wait_for_job(&mut self, job: &str) -> Result<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::msg(format!(
                    "systemd: job {job} not done after {}s",
                    TIMEOUT.as_secs()
                )));
            }
            let Some(signal) = self.bus.next_signal(left)? else {
                continue;
            };
            // JobRemoved(u id, o job, s unit, s result)
            if signal.member == "JobRemoved"
                && signal.body.get(1).and_then(Value::as_str) == Some(job)
            {
                let result = signal.body.get(3).and_then(Value::as_str).unwrap_or("");
                return Ok(result.to_string());
            }
        }
    }

    /// Forget a failed unit; nothing to do for one that is not failed or gone.
    fn reset_failed(&mut self, unit: &str) {
        if let Err(e) = self.call("ResetFailedUnit", &[Value::Str(unit.into())]) {
            log::debug!("systemd: reset-failed {unit}: {e}");
        }
    }
}

fn leading_number(text: &str) -> u32 {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers() {
        assert_eq!(leading_number("252.22-1~deb12u1"), 252);
        assert_eq!(leading_number("v255"), 0);
        assert_eq!(leading_number(""), 0);
    }

    #[test]
    fn planned_dirs_are_the_units_own() {
        let h = |m: &str, unified| Hierarchy {
            mountpoint: m.into(),
            unified,
            subsystems: if unified {
                String::new()
            } else {
                "memory".into()
            },
        };
        let hs = [
            h("/sys/fs/cgroup/memory", false),
            h("/sys/fs/cgroup/unified", true),
        ];
        let p = naming::parse(Some("a-b.slice:pre:c1"), "c1").unwrap();
        let cg = placed(&hs, p).unwrap();
        let want = [
            "/sys/fs/cgroup/memory/a.slice/a-b.slice/pre-c1.scope",
            "/sys/fs/cgroup/unified/a.slice/a-b.slice/pre-c1.scope",
        ];
        let dirs: Vec<_> = cg.dirs.iter().map(|d| d.path.to_str().unwrap()).collect();
        assert_eq!(dirs, want);
        // The unit's directories are the container's; the slices are systemd's.
        assert!(cg.is_owned());
        assert_eq!(cg.created.len(), 2);
        let unit = cg.systemd.unwrap();
        assert_eq!(
            (unit.name.as_str(), unit.slice.as_str()),
            ("pre-c1.scope", "a-b.slice")
        );
    }

    #[test]
    fn v1_slices_rt_makes_are_its_own() {
        let root = std::env::temp_dir().join(format!("rt-sd-v1-{}", std::process::id()));
        let h = |name: &str, subsystems: &str| Hierarchy {
            mountpoint: root.join(name),
            unified: false,
            subsystems: subsystems.into(),
        };
        let hs = [h("memory", "memory"), h("freezer", "freezer")];
        for name in ["memory", "freezer"] {
            fs::create_dir_all(root.join(name)).unwrap();
        }
        let p = naming::parse(Some("a-b.slice:pre:c1"), "c1").unwrap();
        let cg = placed(&hs, p).unwrap();
        fs::remove_dir_all(&root).unwrap();
        // systemd makes memory's slices; freezer's are rt's, removed after the unit's.
        let unit = "a.slice/a-b.slice/pre-c1.scope";
        assert_eq!(
            cg.created,
            [
                root.join("memory").join(unit),
                root.join("freezer").join(unit),
                root.join("freezer/a.slice/a-b.slice"),
                root.join("freezer/a.slice"),
            ]
        );
        assert!(cg.is_owned());
    }

    #[test]
    fn refused_without_systemd() {
        if is_running() {
            println!("systemd runs here: the refusal is checked on hosts without it");
            return;
        }
        let e = plan(&[], Some("system.slice:x:y"), "y")
            .unwrap_err()
            .to_string();
        assert!(e.contains("systemd is not running"), "{e}");
    }
}
