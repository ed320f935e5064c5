//! Resource usage of a container's cgroup, in the shape `runc events` prints (runc 1.1's
//! `types.Stats`: same field names, same omitted-when-zero fields, same order), read from
//! cgroup v1 files or cgroup v2 files, each controller from the hierarchy that has it.
//! Also: every pid of the cgroup tree (`ps`) and the OOM counters (`events`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::Cgroup;
use crate::error::{Error, Result};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// runc fills this only for containers with a network namespace it configured: `null`.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// cgroup v1: memory+swap (memsw); v2 is reported the same way for compatibility.
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0: no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Intel RDT is not supported: always `{}`.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct IntelRdt {}

/// Clock ticks per second of cpuacct.stat (USER_HZ, 100 on Linux).
const USER_HZ: u64 = 100;

/// The container's usage now, each controller read from the hierarchy that drives it.
pub fn stats(cg: &Cgroup) -> Result<Stats> {
    if !cg.dirs.iter().any(|d| d.path.exists()) {
        return Err(Error::msg(format!(
            "cgroup of the container is gone ({})",
            cg.dirs
                .first()
                .map(|d| d.path.display().to_string())
                .unwrap_or_default()
        )));
    }
    let mut s = Stats::default();
    // cpu: v1 splits usage (cpuacct) and throttling (cpu); v2 has both in cpu.stat, which
    // exists even when the cpu controller is not enabled.
    match cg.controller_dir("cpuacct") {
        Some((dir, false)) => v1_cpuacct(dir, &mut s.cpu)?,
        _ => {
            if let Some(dir) = v2_dir(cg, "cpu") {
                v2_cpu(dir, &mut s.cpu)?;
            }
        }
    }
    if let Some((dir, false)) = cg.controller_dir("cpu") {
        v1_cpu_throttling(dir, &mut s.cpu.throttling)?;
    }
    // runc 1.1 reports cpuset only from v1.
    if let Some((dir, false)) = cg.controller_dir("cpuset") {
        s.cpuset = v1_cpuset(dir)?;
    }
    match cg.controller_dir("memory") {
        Some((dir, false)) => s.memory = v1_memory(dir)?,
        Some((dir, true)) => s.memory = v2_memory(dir)?,
        None => {}
    }
    match cg.controller_dir("pids") {
        Some((dir, false)) => s.pids = pids(dir)?,
        Some((dir, true)) => s.pids = pids(dir)?,
        None => {
            // v2 without the pids controller: count the processes (as runc does).
            if let Some(dir) = cg.unified_dir().filter(|_| cg.is_v2()) {
                s.pids.current = read_string(dir, "cgroup.procs")?.lines().count() as u64;
            }
        }
    }
    match cg.controller_dir("blkio") {
        Some((dir, false)) => s.blkio = v1_blkio(dir)?,
        _ => {
            if let Some((dir, true)) = cg.controller_dir("io") {
                s.blkio = v2_io(&read_optional(dir, "io.stat")?.unwrap_or_default())?;
            }
        }
    }
    if let Some((dir, unified)) = cg.controller_dir("hugetlb") {
        s.hugetlb = hugetlb(dir, unified)?;
    }
    Ok(s)
}

/// The unified directory when `controller`'s files are to be read there: the controller is
/// enabled in it, or (pure v2) the files exist without it.
fn v2_dir<'a>(cg: &'a Cgroup, controller: &str) -> Option<&'a Path> {
    match cg.controller_dir(controller) {
        Some((dir, true)) => Some(dir),
        Some((_, false)) => None,
        None => cg
            .unified_dir()
            .filter(|d| d.join(format!("{controller}.stat")).exists()),
    }
}

/// A cgroup number as runc reads it: "max" is u64::MAX, a negative value is 0.
pub fn parse_uint(s: &str) -> Result<u64> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    if let Ok(v) = s.parse::<u64>() {
        if !s.starts_with('+') {
            return Ok(v);
        }
    }
    if s.starts_with('-') && s.parse::<i64>().is_ok() {
        return Ok(0);
    }
    Err(Error::msg(format!("cannot parse {s:?} as a number")))
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, ...), in file order.
pub fn parse_key_values(text: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v), None) = (f.next(), f.next(), f.next()) else {
            return Err(Error::msg(format!("line {line:?} is not \"key value\"")));
        };
        out.push((k.to_string(), parse_uint(v)?));
    }
    Ok(out)
}

fn read_optional(dir: &Path, file: &str) -> Result<Option<String>> {
    match fs::read_to_string(dir.join(file)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", dir.join(file).display()), e)),
    }
}

fn read_string(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    fs::read_to_string(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))
}

/// A file holding one number; a missing file is an error.
fn read_uint(dir: &Path, file: &str) -> Result<u64> {
    let text = read_string(dir, file)?;
    parse_uint(&text).map_err(|e| e.context(dir.join(file).display()))
}

/// A file holding one number; a missing file reads 0.
fn read_uint_or_zero(dir: &Path, file: &str) -> Result<u64> {
    match read_optional(dir, file)? {
        Some(text) => parse_uint(&text).map_err(|e| e.context(dir.join(file).display())),
        None => Ok(0),
    }
}

fn key_values(dir: &Path, file: &str) -> Result<Vec<(String, u64)>> {
    let text = read_optional(dir, file)?.unwrap_or_default();
    parse_key_values(&text).map_err(|e| e.context(dir.join(file).display()))
}

/// cpuacct.stat ("user T\nsystem T", clock ticks) → (user, kernel) in nanoseconds.
pub fn parse_cpuacct_stat(text: &str) -> Result<(u64, u64)> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() < 4 || f[0] != "user" || f[2] != "system" {
        return Err(Error::msg(format!(
            "cpuacct.stat: expected \"user N system N\", got {text:?}"
        )));
    }
    let ticks = |s: &str| parse_uint(s).map(|t| t * 1_000_000_000 / USER_HZ);
    Ok((ticks(f[1])?, ticks(f[3])?))
}

/// cpuacct.usage_all ("cpu user system" header, then "N user system") → (kernel, user)
/// per cpu.
pub fn parse_cpuacct_usage_all(text: &str) -> Result<(Vec<u64>, Vec<u64>)> {
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 3 {
            continue;
        }
        kernel.push(parse_uint(f[2])?);
        user.push(parse_uint(f[1])?);
    }
    Ok((kernel, user))
}

fn v1_cpuacct(dir: &Path, cpu: &mut Cpu) -> Result<()> {
    let (user, kernel) = parse_cpuacct_stat(&read_string(dir, "cpuacct.stat")?)?;
    cpu.usage.user = user;
    cpu.usage.kernel = kernel;
    cpu.usage.total = read_uint(dir, "cpuacct.usage")?;
    cpu.usage.percpu = read_string(dir, "cpuacct.usage_percpu")?
        .split_whitespace()
        .map(parse_uint)
        .collect::<Result<_>>()?;
    if let Some(text) = read_optional(dir, "cpuacct.usage_all")? {
        let (k, u) = parse_cpuacct_usage_all(&text)?;
        cpu.usage.percpu_kernel = k;
        cpu.usage.percpu_user = u;
    }
    Ok(())
}

fn v1_cpu_throttling(dir: &Path, t: &mut Throttling) -> Result<()> {
    for (k, v) in key_values(dir, "cpu.stat")? {
        match k.as_str() {
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_time" => t.throttled_time = v,
            _ => {}
        }
    }
    Ok(())
}

/// cgroup v2 cpu.stat: microseconds, reported in nanoseconds.
fn v2_cpu(dir: &Path, cpu: &mut Cpu) -> Result<()> {
    for (k, v) in key_values(dir, "cpu.stat")? {
        match k.as_str() {
            "usage_usec" => cpu.usage.total = v.saturating_mul(1000),
            "user_usec" => cpu.usage.user = v.saturating_mul(1000),
            "system_usec" => cpu.usage.kernel = v.saturating_mul(1000),
            "nr_periods" => cpu.throttling.periods = v,
            "nr_throttled" => cpu.throttling.throttled_periods = v,
            "throttled_usec" => cpu.throttling.throttled_time = v.saturating_mul(1000),
            _ => {}
        }
    }
    Ok(())
}

/// A cpu or memory node list ("0-3,5") → each number.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u16>> {
    let ids = crate::id_list::parse(text, 1 << 16)
        .ok_or_else(|| Error::msg(format!("invalid cpu list {:?}", text.trim())))?;
    Ok(ids.into_iter().map(|n| n as u16).collect())
}

fn v1_cpuset(dir: &Path) -> Result<CpuSet> {
    let list = |file: &str| -> Result<Vec<u16>> {
        match read_optional(dir, file)? {
            Some(t) => parse_cpu_list(&t).map_err(|e| e.context(dir.join(file).display())),
            None => Ok(Vec::new()),
        }
    };
    let num = |file: &str| read_uint_or_zero(dir, file);
    Ok(CpuSet {
        cpus: list("cpuset.cpus")?,
        cpu_exclusive: num("cpuset.cpu_exclusive")?,
        mems: list("cpuset.mems")?,
        mem_hardwall: num("cpuset.mem_hardwall")?,
        mem_exclusive: num("cpuset.mem_exclusive")?,
        memory_migrate: num("cpuset.memory_migrate")?,
        memory_spread_page: num("cpuset.memory_spread_page")?,
        memory_spread_slab: num("cpuset.memory_spread_slab")?,
        memory_pressure: num("cpuset.memory_pressure")?,
        sched_load_balance: num("cpuset.sched_load_balance")?,
        sched_relax_domain_level: read_optional(dir, "cpuset.sched_relax_domain_level")?
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
    })
}

/// memory.<name>.{usage_in_bytes,max_usage_in_bytes,failcnt,limit_in_bytes}; an optional
/// counter set (memsw, kmem) that the kernel lacks reads as zeros.
fn v1_memory_entry(dir: &Path, prefix: &str, optional: bool) -> Result<MemoryEntry> {
    let f = |what: &str| format!("{prefix}.{what}");
    if optional && !dir.join(f("usage_in_bytes")).exists() {
        return Ok(MemoryEntry::default());
    }
    Ok(MemoryEntry {
        usage: read_uint(dir, &f("usage_in_bytes"))?,
        max: read_uint(dir, &f("max_usage_in_bytes"))?,
        failcnt: read_uint(dir, &f("failcnt"))?,
        limit: read_uint(dir, &f("limit_in_bytes"))?,
    })
}

fn v1_memory(dir: &Path) -> Result<Memory> {
    let raw: BTreeMap<String, u64> = key_values(dir, "memory.stat")?.into_iter().collect();
    Ok(Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: v1_memory_entry(dir, "memory", false)?,
        swap: v1_memory_entry(dir, "memory.memsw", true)?,
        kernel: v1_memory_entry(dir, "memory.kmem", true)?,
        kernel_tcp: v1_memory_entry(dir, "memory.kmem.tcp", true)?,
        raw,
    })
}

fn v2_memory(dir: &Path) -> Result<Memory> {
    let raw: BTreeMap<String, u64> = key_values(dir, "memory.stat")?.into_iter().collect();
    let events: BTreeMap<String, u64> = key_values(dir, "memory.events")?.into_iter().collect();
    let usage = MemoryEntry {
        usage: read_uint(dir, "memory.current")?,
        limit: read_uint(dir, "memory.max")?,
        max: read_uint_or_zero(dir, "memory.peak")?,
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    // v1 reports swap as memory+swap: do the same.
    let mut swap = MemoryEntry::default();
    if dir.join("memory.swap.current").exists() {
        swap.usage = read_uint(dir, "memory.swap.current")?.saturating_add(usage.usage);
        swap.limit = read_uint(dir, "memory.swap.max")?;
        if swap.limit != u64::MAX {
            swap.limit = swap.limit.saturating_add(usage.limit);
        }
        let swap_events: BTreeMap<String, u64> =
            key_values(dir, "memory.swap.events")?.into_iter().collect();
        swap.failcnt = swap_events.get("fail").copied().unwrap_or(0);
    }
    Ok(Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    })
}

/// pids.current and pids.max (same files in v1 and v2; "max" is no limit, reported as 0).
fn pids(dir: &Path) -> Result<Pids> {
    let max = read_string(dir, "pids.max")?;
    let limit = match max.trim() {
        "max" => 0,
        m => parse_uint(m).map_err(|e| e.context(dir.join("pids.max").display()))?,
    };
    Ok(Pids {
        current: read_uint(dir, "pids.current")?,
        limit,
    })
}

/// One blkio stats file ("MAJ:MIN Op N" or "MAJ:MIN N" lines, a final "Total N").
pub fn parse_blkio(text: &str) -> Result<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split([' ', ':']).filter(|s| !s.is_empty()).collect();
        if f.is_empty() || (f.len() == 2 && f[0] == "Total") {
            continue;
        }
        if f.len() < 3 {
            return Err(Error::msg(format!("invalid blkio line {line:?}")));
        }
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| Error::msg(format!("invalid blkio line {line:?}")))
        };
        let (op, value) = if f.len() == 4 {
            (f[2].to_string(), num(f[3])?)
        } else {
            (String::new(), num(f[2])?)
        };
        out.push(BlkioEntry {
            major: num(f[0])?,
            minor: num(f[1])?,
            op,
            value,
        });
    }
    Ok(out)
}

/// runc's order: the first group of files whose first file has entries wins (BFQ debug,
/// BFQ, CFQ, throttle recursive, throttle).
fn v1_blkio(dir: &Path) -> Result<Blkio> {
    type Field = fn(&mut Blkio) -> &mut Vec<BlkioEntry>;
    let bytes: Field = |b| &mut b.io_service_bytes_recursive;
    let serviced: Field = |b| &mut b.io_serviced_recursive;
    let queued: Field = |b| &mut b.io_queued_recursive;
    let service_time: Field = |b| &mut b.io_service_time_recursive;
    let wait_time: Field = |b| &mut b.io_wait_time_recursive;
    let merged: Field = |b| &mut b.io_merged_recursive;
    let time: Field = |b| &mut b.io_time_recursive;
    let sectors: Field = |b| &mut b.sectors_recursive;
    let groups: [&[(&str, Field)]; 5] = [
        &[
            ("blkio.bfq.sectors_recursive", sectors),
            ("blkio.bfq.io_service_time_recursive", service_time),
            ("blkio.bfq.io_wait_time_recursive", wait_time),
            ("blkio.bfq.io_merged_recursive", merged),
            ("blkio.bfq.io_queued_recursive", queued),
            ("blkio.bfq.time_recursive", time),
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.sectors_recursive", sectors),
            ("blkio.io_service_time_recursive", service_time),
            ("blkio.io_wait_time_recursive", wait_time),
            ("blkio.io_merged_recursive", merged),
            ("blkio.io_queued_recursive", queued),
            ("blkio.time_recursive", time),
            ("blkio.io_serviced_recursive", serviced),
            ("blkio.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", serviced),
            ("blkio.throttle.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced", serviced),
            ("blkio.throttle.io_service_bytes", bytes),
        ],
    ];
    let mut b = Blkio::default();
    for group in groups {
        for (i, (file, field)) in group.iter().enumerate() {
            let text = read_optional(dir, file)?.unwrap_or_default();
            let entries = parse_blkio(&text).map_err(|e| e.context(dir.join(file).display()))?;
            if entries.is_empty() {
                if i == 0 {
                    break; // this group is not what the kernel uses: try the next
                }
                return Ok(b);
            }
            *field(&mut b) = entries;
            if i == group.len() - 1 {
                return Ok(b);
            }
        }
    }
    Ok(b)
}

/// cgroup v2 io.stat ("MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...") in v1's shape:
/// bytes and operations, Read and Write, one entry each per device.
pub fn v2_io(text: &str) -> Result<Blkio> {
    let mut b = Blkio::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(dev) = f.next() else { continue };
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let parse = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| Error::msg(format!("io.stat: invalid line {line:?}")))
        };
        let (major, minor) = (parse(major)?, parse(minor)?);
        for item in f {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let (op, table) = match key {
                "rbytes" => ("Read", &mut b.io_service_bytes_recursive),
                "wbytes" => ("Write", &mut b.io_service_bytes_recursive),
                "rios" => ("Read", &mut b.io_serviced_recursive),
                "wios" => ("Write", &mut b.io_serviced_recursive),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: parse(value)?,
            });
        }
    }
    Ok(b)
}

/// Page sizes the directory has hugetlb files for ("2MB", "1GB"), from
/// `hugetlb.<size>.<suffix>` names.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let rd = fs::read_dir(dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
    let mut sizes: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| {
            let size = n.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    Ok(sizes)
}

fn hugetlb(dir: &Path, unified: bool) -> Result<BTreeMap<String, Hugetlb>> {
    let mut out = BTreeMap::new();
    if unified {
        for size in hugetlb_sizes(dir, ".current")? {
            let events: BTreeMap<String, u64> = key_values(dir, &format!("hugetlb.{size}.events"))?
                .into_iter()
                .collect();
            let h = Hugetlb {
                usage: read_uint(dir, &format!("hugetlb.{size}.current"))?,
                max: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            out.insert(size, h);
        }
    } else {
        for size in hugetlb_sizes(dir, ".usage_in_bytes")? {
            let h = Hugetlb {
                usage: read_uint(dir, &format!("hugetlb.{size}.usage_in_bytes"))?,
                max: read_uint(dir, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
                failcnt: read_uint(dir, &format!("hugetlb.{size}.failcnt"))?,
            };
            out.insert(size, h);
        }
    }
    Ok(out)
}

/// OOM counters of the container's memory cgroup, to notice OOM kills by polling.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OomCounters {
    /// Processes killed by the OOM killer (v1 memory.oom_control `oom_kill`, kernel ≥ 4.13;
    /// v2 memory.events `oom_kill`).
    pub kills: u64,
    /// Times the limit was hit with allocation failing (v2 memory.events `oom`); v1: 1 while
    /// the cgroup is under OOM (`under_oom`, seen when the OOM killer is disabled).
    pub ooms: u64,
}

impl OomCounters {
    /// Did an OOM happen between `self` (earlier) and `now`?
    pub fn oom_since(&self, now: &OomCounters) -> bool {
        now.kills > self.kills || now.ooms > self.ooms
    }
}

/// Parse v1 memory.oom_control or v2 memory.events.
pub fn parse_oom(text: &str, unified: bool) -> OomCounters {
    let mut c = OomCounters::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next().and_then(|v| v.parse::<u64>().ok())) else {
            continue;
        };
        match (k, unified) {
            ("oom_kill", _) => c.kills = v,
            ("oom", true) | ("under_oom", false) => c.ooms = v,
            _ => {}
        }
    }
    c
}

/// The OOM counters now; `None` when the memory cgroup cannot be read (gone).
pub fn oom_counters(cg: &Cgroup) -> Option<OomCounters> {
    let (dir, unified) = cg.controller_dir("memory")?;
    let file = if unified {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    let text = fs::read_to_string(dir.join(file)).ok()?;
    Some(parse_oom(&text, unified))
}

/// Every process in the container's cgroup and its sub-cgroups, as runc lists them: the
/// directory's cgroup.procs first, then each sub-directory's (depth first, by name).
/// v1 reads the devices hierarchy when there is one (as runc does).
pub fn all_pids(cg: &Cgroup) -> Result<Vec<i32>> {
    let dir = cg
        .v1_dir("devices")
        .or_else(|| cg.unified_dir().filter(|_| cg.is_v2()))
        .or_else(|| {
            cg.dirs
                .iter()
                .find(|d| !d.unified)
                .map(|d| d.path.as_path())
        })
        .or_else(|| cg.dirs.first().map(|d| d.path.as_path()))
        .ok_or_else(|| Error::msg("the container has no cgroup"))?;
    // The container's own directory must be readable; a sub-cgroup removed while we
    // walk is simply gone.
    let mut pids = super::tree::procs(dir).map_err(|e| {
        Error::io(
            format!(
                "unable to get all container pids: read {}",
                dir.join("cgroup.procs").display()
            ),
            e,
        )
    })?;
    for sub in super::tree::walk(dir).iter().skip(1) {
        pids.extend(super::tree::procs(sub).unwrap_or_default());
    }
    Ok(pids)
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
