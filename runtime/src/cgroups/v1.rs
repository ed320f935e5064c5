//! cgroup v1: one hierarchy per controller (or group of controllers), each with its own
//! files and units.

use std::path::Path;

use super::resources::{DeviceRule, Resources};
use super::{weight_file, write};
use crate::error::{Error, Result};

/// Apply the resources that belong to `controller`, whose hierarchy holds `dir`.
pub fn set(controller: &str, dir: &Path, r: &Resources) -> Result<()> {
    match controller {
        "memory" => memory(dir, r),
        "cpu" => cpu(dir, r),
        "cpuset" => cpuset(dir, r),
        "pids" => match &r.pids {
            Some(p) => write(
                dir,
                "pids.max",
                if p.limit > 0 {
                    p.limit.to_string()
                } else {
                    "max".into()
                },
            ),
            None => Ok(()),
        },
        "blkio" => blkio(dir, r),
        "hugetlb" => {
            for h in &r.hugepage_limits {
                write(
                    dir,
                    &format!("hugetlb.{}.limit_in_bytes", h.page_size),
                    h.limit,
                )?;
            }
            Ok(())
        }
        "net_cls" => match r.network.as_ref().and_then(|n| n.class_id) {
            Some(id) => write(dir, "net_cls.classid", id),
            None => Ok(()),
        },
        "net_prio" => {
            for p in r.network.iter().flat_map(|n| &n.priorities) {
                write(
                    dir,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name, p.priority),
                )?;
            }
            Ok(())
        }
        "rdma" => super::v2::rdma(dir, r),
        "devices" => devices(dir, &r.devices),
        _ => Ok(()),
    }
}

fn memory(dir: &Path, r: &Resources) -> Result<()> {
    let Some(m) = &r.memory else { return Ok(()) };
    if m.check_before_update == Some(true) {
        if let Some(limit) = m.limit.filter(|l| *l > 0) {
            let usage: i64 = super::read_num(dir, "memory.usage_in_bytes").unwrap_or(0);
            if usage > limit {
                return Err(Error::msg(format!(
                    "linux.resources.memory.limit: {limit} is below the current usage {usage} (checkBeforeUpdate)"
                )));
            }
        }
    }
    if let Some(v) = m.reservation {
        write(dir, "memory.soft_limit_in_bytes", v)?;
    }
    // memory.memsw.limit_in_bytes (limit + swap) must stay >= memory.limit_in_bytes at
    // every moment: raise memsw first when growing, the limit first when shrinking.
    let memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    let swap = m.swap.filter(|_| memsw);
    let current: i64 = super::read_num(dir, "memory.limit_in_bytes").unwrap_or(i64::MAX);
    let growing = m.limit.is_some_and(|l| l < 0 || l > current);
    if growing {
        if let Some(s) = swap {
            write(dir, "memory.memsw.limit_in_bytes", s)?;
        }
    }
    if let Some(l) = m.limit {
        write(dir, "memory.limit_in_bytes", l)?;
    }
    if !growing {
        if let Some(s) = swap {
            write(dir, "memory.memsw.limit_in_bytes", s)?;
        }
    }
    if m.swap.is_some_and(|s| s != 0) && !memsw {
        log::warn!("linux.resources.memory.swap: this kernel has no swap accounting (memory.memsw.*), ignored");
    }
    if let Some(v) = m.swappiness {
        if v > 100 {
            return Err(Error::msg(format!(
                "linux.resources.memory.swappiness: {v} is above 100"
            )));
        }
        write(dir, "memory.swappiness", v)?;
    }
    if let Some(d) = m.disable_oom_killer {
        write(dir, "memory.oom_control", u8::from(d))?;
    }
    if m.kernel.is_some() || m.kernel_tcp.is_some() {
        log::warn!("linux.resources.memory.kernel/kernelTCP: deprecated by the kernel, ignored");
    }
    Ok(())
}

fn cpu(dir: &Path, r: &Resources) -> Result<()> {
    let Some(c) = &r.cpu else { return Ok(()) };
    if let Some(v) = c.shares.filter(|v| *v != 0) {
        write(dir, "cpu.shares", v)?;
    }
    if let Some(v) = c.period.filter(|v| *v != 0) {
        write(dir, "cpu.cfs_period_us", v)?;
    }
    if let Some(v) = c.quota.filter(|v| *v != 0) {
        write(dir, "cpu.cfs_quota_us", v)?;
    }
    if let Some(v) = c.burst {
        write(dir, "cpu.cfs_burst_us", v)?;
    }
    if let Some(v) = c.realtime_period.filter(|v| *v != 0) {
        write(dir, "cpu.rt_period_us", v)?;
    }
    if let Some(v) = c.realtime_runtime.filter(|v| *v != 0) {
        write(dir, "cpu.rt_runtime_us", v)?;
    }
    if let Some(v) = c.idle {
        write(dir, "cpu.idle", v)?;
    }
    Ok(())
}

fn cpuset(dir: &Path, r: &Resources) -> Result<()> {
    let Some(c) = &r.cpu else { return Ok(()) };
    if let Some(v) = c.cpus.as_deref().filter(|v| !v.is_empty()) {
        write(dir, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems.as_deref().filter(|v| !v.is_empty()) {
        write(dir, "cpuset.mems", v)?;
    }
    Ok(())
}

fn blkio(dir: &Path, r: &Resources) -> Result<()> {
    let Some(b) = &r.block_io else { return Ok(()) };
    if let Some(w) = b.weight.filter(|w| *w != 0) {
        write(
            dir,
            weight_file(dir, "blkio.weight", "blkio.bfq.weight", "weight")?,
            w,
        )?;
    }
    if let Some(w) = b.leaf_weight.filter(|w| *w != 0) {
        if !dir.join("blkio.leaf_weight").exists() {
            return Err(Error::msg(format!(
                "linux.resources.blockIO.leafWeight: this kernel has no blkio.leaf_weight in {} (only CFQ had it; Linux 5.0 removed CFQ)",
                dir.display()
            )));
        }
        write(dir, "blkio.leaf_weight", w)?;
    }
    for d in &b.weight_device {
        if let Some(w) = d.weight {
            let file = match weight_file(dir, "blkio.weight", "blkio.bfq.weight", "weightDevice")? {
                "blkio.weight" => "blkio.weight_device",
                _ => "blkio.bfq.weight_device",
            };
            write(dir, file, format!("{}:{} {w}", d.major, d.minor))?;
        }
        if let Some(w) = d.leaf_weight {
            write(
                dir,
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", d.major, d.minor),
            )?;
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            &b.throttle_read_bps_device,
        ),
        (
            "blkio.throttle.write_bps_device",
            &b.throttle_write_bps_device,
        ),
        (
            "blkio.throttle.read_iops_device",
            &b.throttle_read_iops_device,
        ),
        (
            "blkio.throttle.write_iops_device",
            &b.throttle_write_iops_device,
        ),
    ] {
        for d in list {
            write(dir, file, format!("{}:{} {}", d.major, d.minor, d.rate))?;
        }
    }
    Ok(())
}

/// The device cgroup: rules in order, each written to devices.allow or devices.deny
/// (a rule for all devices resets the list, as the kernel defines).
fn devices(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    for rule in rules.iter().filter(|r| r.is_for_the_device_cgroup()) {
        let kind = rule.kind.as_deref().unwrap_or("a");
        let access = rule
            .access
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or("rwm");
        let num = |n: Option<i64>| {
            n.filter(|n| *n >= 0)
                .map_or("*".to_string(), |n| n.to_string())
        };
        let line = if kind == "a" {
            "a".to_string()
        } else {
            format!("{kind} {}:{} {access}", num(rule.major), num(rule.minor))
        };
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(dir, file, &line)?;
    }
    Ok(())
}
