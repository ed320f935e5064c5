//! The five capability sets of `process.capabilities`, applied around the switch to the
//! container's user: bounding set dropped first (it needs CAP_SETPCAP), keep-caps across
//! setuid, then inheritable/permitted/effective, then ambient.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::{Error, Result};
use crate::spec::Capabilities;

/// Parsed, ready-to-apply sets (computed by the parent, so a bad name fails early).
#[derive(Debug, Clone, Default)]
pub struct CapPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
    /// Every capability this kernel knows: the bounding set drops those not asked for.
    pub supported: CapsHashSet,
}

/// The capabilities this kernel knows: from /proc/sys/kernel/cap_last_cap (one read),
/// else by asking prctl(PR_CAPBSET_READ) about each (forty-odd calls).
fn kernel_supported() -> CapsHashSet {
    caps::runtime::procfs_all_supported(None)
        .unwrap_or_else(|_| caps::runtime::thread_all_supported())
}

pub fn plan(spec: Option<&Capabilities>) -> Result<Option<CapPlan>> {
    let Some(c) = spec else { return Ok(None) };
    let supported = kernel_supported();
    let parse = |field: &str, names: &[String]| -> Result<CapsHashSet> {
        let mut set = CapsHashSet::new();
        for name in names {
            // runtime-spec 1.3: a capability that cannot be mapped or granted is logged as
            // a warning, and the container is created without it (runc does the same).
            let Ok(cap) = Capability::from_str(name) else {
                log::warn!("process.capabilities.{field}: unknown capability {name:?}, ignored");
                continue;
            };
            // A capability this kernel does not know cannot be granted; runc skips it too.
            if supported.contains(&cap) {
                set.insert(cap);
            } else {
                log::warn!(
                    "process.capabilities.{field}: {name} is not supported by this kernel, skipped"
                );
            }
        }
        Ok(set)
    };
    Ok(Some(CapPlan {
        bounding: parse("bounding", &c.bounding)?,
        effective: parse("effective", &c.effective)?,
        inheritable: parse("inheritable", &c.inheritable)?,
        permitted: parse("permitted", &c.permitted)?,
        ambient: parse("ambient", &c.ambient)?,
        supported,
    }))
}

/// Before setuid: shrink the bounding set (needs CAP_SETPCAP, which root still has).
pub fn drop_bounding(p: &CapPlan) -> Result<()> {
    for &cap in &p.supported {
        if !p.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| Error::msg(format!("prctl(PR_CAPBSET_DROP, {cap}): {e}")))?;
        }
    }
    Ok(())
}

/// After setuid (with keep-caps on): set the remaining sets.
pub fn apply(p: &CapPlan) -> Result<()> {
    let set = |which: CapSet, caps: &CapsHashSet, field: &str| {
        caps::set(None, which, caps)
            .map_err(|e| Error::msg(format!("capset process.capabilities.{field}: {e}")))
    };
    // Inheritable first (may need caps that permitted is about to lose), effective before
    // permitted (effective must stay a subset of permitted).
    set(CapSet::Inheritable, &p.inheritable, "inheritable")?;
    let effective: CapsHashSet = p.effective.intersection(&p.permitted).copied().collect();
    set(CapSet::Effective, &effective, "effective")?;
    set(CapSet::Permitted, &p.permitted, "permitted")?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::msg(format!("clear ambient capabilities: {e}")))?;
    for cap in &p.ambient {
        // The kernel only raises an ambient cap that is permitted and inheritable; runc
        // skips the others, and so do we (with a note in the debug log).
        if !(p.permitted.contains(cap) && p.inheritable.contains(cap)) {
            log::debug!("process.capabilities.ambient: {cap} is not in both permitted and inheritable, skipped");
            continue;
        }
        caps::raise(None, CapSet::Ambient, *cap)
            .map_err(|e| Error::msg(format!("process.capabilities.ambient: raise {cap}: {e}")))?;
    }
    Ok(())
}
