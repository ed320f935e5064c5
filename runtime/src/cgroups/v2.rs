//! cgroup v2 (unified): one directory, controllers enabled from the parents'
//! cgroup.subtree_control, values converted from the spec's v1-shaped units as runc does.

use std::path::Path;

use super::resources::{blkio_weight_to_io, shares_to_weight, v2_limit, Resources};
use super::write;
use crate::error::{Error, Result};

/// Apply the resources that belong to `controller` in the unified directory `dir`.
pub fn set(controller: &str, dir: &Path, r: &Resources) -> Result<()> {
    match controller {
        "memory" => memory(dir, r),
        "cpu" => cpu(dir, r),
        "cpuset" => {
            if let Some(c) = &r.cpu {
                if let Some(v) = c.cpus.as_deref().filter(|v| !v.is_empty()) {
                    write(dir, "cpuset.cpus", v)?;
                }
                if let Some(v) = c.mems.as_deref().filter(|v| !v.is_empty()) {
                    write(dir, "cpuset.mems", v)?;
                }
            }
            Ok(())
        }
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
        "io" => io(dir, r),
        "hugetlb" => {
            for h in &r.hugepage_limits {
                write(dir, &format!("hugetlb.{}.max", h.page_size), h.limit)?;
            }
            Ok(())
        }
        "rdma" => rdma(dir, r),
        _ => Ok(()),
    }
}

/// The controllers a set of resources needs in the unified hierarchy.
pub fn needed(r: &Resources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if r.memory.is_some() {
        out.push("memory");
    }
    if let Some(c) = &r.cpu {
        out.push("cpu");
        if c.cpus.is_some() || c.mems.is_some() {
            out.push("cpuset");
        }
    }
    if r.pids.is_some() {
        out.push("pids");
    }
    if r.block_io.is_some() {
        out.push("io");
    }
    if !r.hugepage_limits.is_empty() {
        out.push("hugetlb");
    }
    if !r.rdma.is_empty() {
        out.push("rdma");
    }
    for key in r.unified.keys() {
        if let Some((ctrl, _)) = key.split_once('.') {
            if !matches!(ctrl, "cgroup") {
                out.push(match ctrl {
                    "memory" => "memory",
                    "cpu" => "cpu",
                    "cpuset" => "cpuset",
                    "io" => "io",
                    "pids" => "pids",
                    "hugetlb" => "hugetlb",
                    "rdma" => "rdma",
                    "misc" => "misc",
                    _ => continue,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn memory(dir: &Path, r: &Resources) -> Result<()> {
    let Some(m) = &r.memory else { return Ok(()) };
    if m.check_before_update == Some(true) {
        if let Some(limit) = m.limit.filter(|l| *l > 0) {
            let usage: i64 = super::read_num(dir, "memory.current").unwrap_or(0);
            if usage > limit {
                return Err(Error::msg(format!(
                    "linux.resources.memory.limit: {limit} is below the current usage {usage} (checkBeforeUpdate)"
                )));
            }
        }
    }
    // The spec's swap is memory+swap (v1 memsw); v2's memory.swap.max is swap alone.
    if let Some(swap) = m.swap {
        let value = match (swap, m.limit) {
            (s, _) if s < 0 => "max".to_string(),
            (s, Some(l)) if l >= 0 => {
                if s < l {
                    return Err(Error::msg(format!(
                        "linux.resources.memory.swap: {s} is below memory.limit {l} (swap is memory+swap)"
                    )));
                }
                (s - l).to_string()
            }
            (_, _) => {
                return Err(Error::msg(
                    "linux.resources.memory.swap: needs memory.limit on cgroup v2",
                ))
            }
        };
        if dir.join("memory.swap.max").exists() {
            write(dir, "memory.swap.max", value)?;
        } else {
            log::warn!(
                "linux.resources.memory.swap: no swap accounting (memory.swap.max), ignored"
            );
        }
    }
    if let Some(l) = m.limit {
        write(dir, "memory.max", v2_limit(l))?;
    }
    if let Some(v) = m.reservation {
        write(dir, "memory.low", v2_limit(v))?;
    }
    if m.swappiness.is_some() {
        log::warn!("linux.resources.memory.swappiness: not supported by cgroup v2, ignored");
    }
    if m.disable_oom_killer == Some(true) {
        log::warn!("linux.resources.memory.disableOOMKiller: not supported by cgroup v2, ignored");
    }
    Ok(())
}

fn cpu(dir: &Path, r: &Resources) -> Result<()> {
    let Some(c) = &r.cpu else { return Ok(()) };
    if c.realtime_runtime.is_some_and(|v| v != 0) || c.realtime_period.is_some_and(|v| v != 0) {
        return Err(Error::msg(
            "linux.resources.cpu.realtimeRuntime/realtimePeriod: not supported by cgroup v2",
        ));
    }
    if let Some(s) = c.shares.filter(|s| *s != 0) {
        write(dir, "cpu.weight", shares_to_weight(s))?;
    }
    if c.quota.is_some() || c.period.is_some() {
        // cpu.max is "QUOTA PERIOD"; keep what is there for the half not given.
        let current = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
        let mut parts = current.split_whitespace();
        let cur_quota = parts.next().unwrap_or("max").to_string();
        let cur_period = parts.next().unwrap_or("100000").to_string();
        let quota = match c.quota {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            None => cur_quota,
        };
        let period = c
            .period
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .unwrap_or(cur_period);
        write(dir, "cpu.max", format!("{quota} {period}"))?;
    }
    if let Some(b) = c.burst {
        write(dir, "cpu.max.burst", b)?;
    }
    if let Some(i) = c.idle {
        write(dir, "cpu.idle", i)?;
    }
    Ok(())
}

fn io(dir: &Path, r: &Resources) -> Result<()> {
    let Some(b) = &r.block_io else { return Ok(()) };
    // io.weight exists with the cost-based controller; io.bfq.weight with BFQ (same range).
    if let Some(w) = b.weight.filter(|w| *w != 0) {
        let file = super::weight_file(dir, "io.weight", "io.bfq.weight", "weight")?;
        write(dir, file, blkio_weight_to_io(w))?;
    }
    for d in &b.weight_device {
        if let Some(w) = d.weight {
            let file = super::weight_file(dir, "io.weight", "io.bfq.weight", "weightDevice")?;
            write(
                dir,
                file,
                format!("{}:{} {}", d.major, d.minor, blkio_weight_to_io(w)),
            )?;
        }
    }
    if b.leaf_weight.is_some() {
        log::warn!("linux.resources.blockIO.leafWeight: not supported by cgroup v2, ignored");
    }
    for (key, list) in [
        ("rbps", &b.throttle_read_bps_device),
        ("wbps", &b.throttle_write_bps_device),
        ("riops", &b.throttle_read_iops_device),
        ("wiops", &b.throttle_write_iops_device),
    ] {
        for d in list {
            write(
                dir,
                "io.max",
                format!("{}:{} {key}={}", d.major, d.minor, d.rate),
            )?;
        }
    }
    Ok(())
}

/// rdma.max has the same format on v1 and v2.
pub fn rdma(dir: &Path, r: &Resources) -> Result<()> {
    for (device, limit) in &r.rdma {
        let mut line = device.clone();
        if let Some(h) = limit.hca_handles {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = limit.hca_objects {
            line.push_str(&format!(" hca_object={o}"));
        }
        write(dir, "rdma.max", line)?;
    }
    Ok(())
}

/// Raw `unified` keys, written last so they win over converted values.
pub fn unified(dir: &Path, r: &Resources) -> Result<()> {
    for (key, value) in &r.unified {
        if key.contains('/')
            || key.starts_with("cgroup.")
                && key != "cgroup.max.depth"
                && key != "cgroup.max.descendants"
        {
            return Err(Error::msg(format!(
                "linux.resources.unified: key {key:?} is not a controller file"
            )));
        }
        write(dir, key, value)?;
    }
    Ok(())
}
