//! `rt update`: change the resource limits of a created, running or paused container.
//! The changes (from runc's flags, or a `linux.resources` JSON with `--resources FILE|-`)
//! are merged into the saved config the way runc merges them (a zero or empty value leaves
//! the setting as it is), applied to the cgroup, and saved in the state.

use std::io::Read;
use std::path::Path;

use crate::bail;
use crate::cgroups::resources::{Pids, Resources};
use crate::error::{Error, Result};
use crate::state::{StateDir, Status};

/// What the user asked for, as given on the command line (values still unparsed, so that
/// errors read like runc's).
#[derive(Debug, Default, Clone)]
pub struct UpdateRequest {
    /// `--resources`: a file, or "-" for stdin. The other resource flags are then ignored.
    pub resources: Option<String>,
    pub blkio_weight: Option<i64>,
    pub cpu_period: Option<String>,
    pub cpu_quota: Option<String>,
    pub cpu_burst: Option<String>,
    pub cpu_share: Option<String>,
    pub cpu_rt_period: Option<String>,
    pub cpu_rt_runtime: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub cpu_idle: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
}

pub fn update(root: &Path, id: &str, req: &UpdateRequest) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    let mut state = dir.load()?;
    let changes = match req.resources.as_deref().filter(|r| !r.is_empty()) {
        Some(source) => read_resources(source)?,
        None => from_flags(req)?,
    };
    // rt has no Intel RDT support: refuse these as runc does on a host without RDT.
    if req
        .l3_cache_schema
        .as_deref()
        .is_some_and(|v| !v.is_empty())
    {
        bail!("Intel RDT/CAT: l3 cache schema is not enabled (rt does not support Intel RDT)");
    }
    if req.mem_bw_schema.as_deref().is_some_and(|v| !v.is_empty()) {
        bail!(
            "Intel RDT/MBA: memory bandwidth schema is not enabled (rt does not support Intel RDT)"
        );
    }
    if matches!(dir.status(&state), Status::Stopped | Status::Creating) {
        bail!("container not running");
    }
    let linux = state.config.linux.get_or_insert_with(Default::default);
    let old = linux.resources.clone().unwrap_or_default();
    let merged = merge(&old, &changes);
    // Device rules are not re-applied (runc skips them too): rewriting them would cut the
    // container's device access for a moment.
    if let Err(e) = state.cgroup.update(&without_devices(&merged)) {
        if let Err(back) = state.cgroup.update(&without_devices(&old)) {
            log::warn!(
                "Setting back cgroup configs failed due to error: {back}, your state.json and actual configs might be inconsistent."
            );
        }
        return Err(e);
    }
    linux.resources = Some(merged);
    dir.save(&state)
}

fn without_devices(r: &Resources) -> Resources {
    let mut r = r.clone();
    r.devices.clear();
    r
}

/// `linux.resources` JSON from a file or ("-") stdin; only the first JSON value counts.
fn read_resources(source: &str) -> Result<Resources> {
    let text = if source == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io("read resources from stdin", e))?;
        s
    } else {
        std::fs::read_to_string(source).map_err(|e| Error::io(format!("open {source}"), e))?
    };
    parse_resources(&text)
}

pub fn parse_resources(text: &str) -> Result<Resources> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Resources>();
    match values.next() {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(Error::msg(format!("parse resources: {e}"))),
        None => Err(Error::msg("parse resources: EOF")),
    }
}

/// The resources runc's update flags describe; unset flags stay `None`.
pub fn from_flags(req: &UpdateRequest) -> Result<Resources> {
    let mut r = Resources::default();
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    if let Some(w) = req.blkio_weight.filter(|w| *w != 0) {
        // runc converts with Go's uint16(): wraps.
        r.block_io.get_or_insert_with(Default::default).weight = Some(w as u16);
    }
    if let Some(v) = given(&req.cpuset_cpus) {
        r.cpu.get_or_insert_with(Default::default).cpus = Some(v);
    }
    if let Some(v) = given(&req.cpuset_mems) {
        r.cpu.get_or_insert_with(Default::default).mems = Some(v);
    }
    if let Some(v) = given(&req.cpu_idle) {
        let idle =
            go_parse_int(&v).map_err(|e| Error::msg(format!("invalid value for cpu-idle: {e}")))?;
        r.cpu.get_or_insert_with(Default::default).idle = Some(idle);
    }
    for (opt, value) in [
        ("cpu-burst", &req.cpu_burst),
        ("cpu-period", &req.cpu_period),
        ("cpu-rt-period", &req.cpu_rt_period),
        ("cpu-share", &req.cpu_share),
    ] {
        if let Some(v) = given(value) {
            let n = go_parse_uint(&v)
                .map_err(|e| Error::msg(format!("invalid value for {opt}: {e}")))?;
            let cpu = r.cpu.get_or_insert_with(Default::default);
            match opt {
                "cpu-burst" => cpu.burst = Some(n),
                "cpu-period" => cpu.period = Some(n),
                "cpu-rt-period" => cpu.realtime_period = Some(n),
                _ => cpu.shares = Some(n),
            }
        }
    }
    for (opt, value) in [
        ("cpu-quota", &req.cpu_quota),
        ("cpu-rt-runtime", &req.cpu_rt_runtime),
    ] {
        if let Some(v) = given(value) {
            let n = go_parse_int(&v)
                .map_err(|e| Error::msg(format!("invalid value for {opt}: {e}")))?;
            let cpu = r.cpu.get_or_insert_with(Default::default);
            match opt {
                "cpu-quota" => cpu.quota = Some(n),
                _ => cpu.realtime_runtime = Some(n),
            }
        }
    }
    for (opt, value) in [
        ("memory", &req.memory),
        ("memory-swap", &req.memory_swap),
        ("memory-reservation", &req.memory_reservation),
    ] {
        if let Some(v) = given(value) {
            let n = if v == "-1" {
                -1
            } else {
                ram_in_bytes(&v).map_err(|e| Error::msg(format!("invalid value for {opt}: {e}")))?
            };
            let m = r.memory.get_or_insert_with(Default::default);
            match opt {
                "memory" => m.limit = Some(n),
                "memory-swap" => m.swap = Some(n),
                _ => m.reservation = Some(n),
            }
        }
    }
    if given(&req.kernel_memory).is_some() || given(&req.kernel_memory_tcp).is_some() {
        log::warn!("Kernel memory settings are ignored and will be removed");
    }
    if let Some(limit) = req.pids_limit.filter(|l| *l != 0) {
        r.pids = Some(Pids { limit });
    }
    Ok(r)
}

/// Merge `new` into `old` as runc's update does: a zero or empty value means "unchanged";
/// `unified` is replaced as a whole; device rules and settings update does not handle
/// (hugepages, network, rdma, swappiness, ...) are kept.
pub fn merge(old: &Resources, new: &Resources) -> Resources {
    let mut m = old.clone();
    let nz_u = |v: Option<u64>| v.filter(|v| *v != 0);
    let nz_i = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(w) = new
        .block_io
        .as_ref()
        .and_then(|b| b.weight)
        .filter(|w| *w != 0)
    {
        m.block_io.get_or_insert_with(Default::default).weight = Some(w);
    }
    if let Some(c) = &new.cpu {
        let mut set = |f: &mut dyn FnMut(&mut crate::cgroups::resources::Cpu)| {
            f(m.cpu.get_or_insert_with(Default::default))
        };
        if let Some(v) = nz_u(c.shares) {
            set(&mut |x| x.shares = Some(v));
        }
        if let Some(v) = nz_i(c.quota) {
            set(&mut |x| x.quota = Some(v));
        }
        if let Some(v) = nz_u(c.period) {
            set(&mut |x| x.period = Some(v));
        }
        if let Some(v) = c.burst {
            set(&mut |x| x.burst = Some(v));
        }
        if let Some(v) = nz_i(c.realtime_runtime) {
            set(&mut |x| x.realtime_runtime = Some(v));
        }
        if let Some(v) = nz_u(c.realtime_period) {
            set(&mut |x| x.realtime_period = Some(v));
        }
        if let Some(v) = c.cpus.clone().filter(|s| !s.is_empty()) {
            set(&mut |x| x.cpus = Some(v.clone()));
        }
        if let Some(v) = c.mems.clone().filter(|s| !s.is_empty()) {
            set(&mut |x| x.mems = Some(v.clone()));
        }
        if let Some(v) = c.idle {
            set(&mut |x| x.idle = Some(v));
        }
    }
    if let Some(n) = &new.memory {
        let had_swap = m
            .memory
            .as_ref()
            .and_then(|o| o.swap)
            .is_some_and(|s| s != 0 && s != -1);
        let mut set = |f: &mut dyn FnMut(&mut crate::cgroups::resources::Memory)| {
            f(m.memory.get_or_insert_with(Default::default))
        };
        if let Some(v) = nz_i(n.limit) {
            set(&mut |x| x.limit = Some(v));
            // Unlimited memory with a swap limit left in place cannot be: unlimited swap too.
            if v == -1 && nz_i(n.swap).is_none() && had_swap {
                set(&mut |x| x.swap = Some(-1));
            }
        }
        if let Some(v) = nz_i(n.reservation) {
            set(&mut |x| x.reservation = Some(v));
        }
        if let Some(v) = nz_i(n.swap) {
            set(&mut |x| x.swap = Some(v));
        }
        if let Some(v) = n.check_before_update {
            set(&mut |x| x.check_before_update = Some(v));
        }
    }
    if let Some(p) = new.pids.as_ref().filter(|p| p.limit != 0) {
        m.pids = Some(p.clone());
    }
    m.unified = new.unified.clone();
    m
}

/// Go's strconv.ParseUint(s, 10, 64), with its error text.
fn go_parse_uint(s: &str) -> std::result::Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse::<u64>()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// Go's strconv.ParseInt(s, 10, 64), with its error text.
fn go_parse_int(s: &str) -> std::result::Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
}

/// docker/go-units RAMInBytes, as runc 1.1 uses it: `^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$`,
/// units of 1024 ("64m", "1.5g", "512KiB", "100MB", "4096", "1 GB").
pub fn ram_in_bytes(s: &str) -> std::result::Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let b = s.as_bytes();
    let mut i = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if i == 0 {
        return Err(invalid());
    }
    while i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    let number = &s[..i];
    let mut rest = &b[i..];
    if rest.first() == Some(&b' ') {
        rest = &rest[1..];
    }
    let mut mult: u64 = 1;
    if let Some(u) = rest.first().map(|c| c.to_ascii_lowercase()) {
        let shift = match u {
            b'k' => Some(10),
            b'm' => Some(20),
            b'g' => Some(30),
            b't' => Some(40),
            b'p' => Some(50),
            _ => None,
        };
        if let Some(shift) = shift {
            mult = 1 << shift;
            rest = &rest[1..];
        }
    }
    if matches!(rest.first(), Some(b'i' | b'I')) {
        rest = &rest[1..];
    }
    if matches!(rest.first(), Some(b'b' | b'B')) {
        rest = &rest[1..];
    }
    if !rest.is_empty() {
        return Err(invalid());
    }
    let size: f64 = number
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {number:?}: invalid syntax"))?;
    Ok((size * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        let ok = [
            ("64m", 64 << 20),
            ("64M", 64 << 20),
            ("64MiB", 64 << 20),
            ("64MB", 64 << 20),
            ("64mb", 64 << 20),
            ("1g", 1 << 30),
            ("1.5m", 1_572_864),
            ("64K", 65_536),
            ("64kib", 65_536),
            ("64b", 64),
            ("64i", 64),
            ("64", 64),
            ("64 m", 64 << 20),
            ("64 ", 64),
            ("2t", 2 << 40),
            ("1p", 1 << 50),
            ("100000000", 100_000_000),
        ];
        for (s, n) in ok {
            assert_eq!(ram_in_bytes(s), Ok(n), "{s}");
        }
        for bad in ["64x", "m", "-2", "", "1.", "64mm", "64  m", "64bi", " 64"] {
            assert_eq!(
                ram_in_bytes(bad),
                Err(format!("invalid size: '{bad}'")),
                "{bad}"
            );
        }
        assert_eq!(
            ram_in_bytes("1.2.3m").unwrap_err(),
            "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax"
        );
    }

    #[test]
    fn go_integers() {
        assert_eq!(go_parse_uint("512"), Ok(512));
        assert_eq!(
            go_parse_uint("abc").unwrap_err(),
            "strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
        assert!(go_parse_uint("+5").is_err());
        assert!(go_parse_uint("-5").is_err());
        assert!(go_parse_uint("99999999999999999999")
            .unwrap_err()
            .ends_with("value out of range"));
        assert_eq!(go_parse_int("-1"), Ok(-1));
        assert_eq!(go_parse_int("+7"), Ok(7));
        assert_eq!(
            go_parse_int("abc").unwrap_err(),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
    }

    #[test]
    fn flags_to_resources() {
        let req = UpdateRequest {
            memory: Some("64m".into()),
            memory_swap: Some("-1".into()),
            cpu_quota: Some("10000".into()),
            cpu_period: Some("100000".into()),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(20),
            blkio_weight: Some(500),
            ..Default::default()
        };
        let r = from_flags(&req).unwrap();
        let m = r.memory.as_ref().unwrap();
        assert_eq!(
            (m.limit, m.swap, m.reservation),
            (Some(64 << 20), Some(-1), None)
        );
        let c = r.cpu.as_ref().unwrap();
        assert_eq!(
            (c.quota, c.period, c.cpus.as_deref()),
            (Some(10000), Some(100000), Some("0"))
        );
        assert_eq!(r.pids.as_ref().unwrap().limit, 20);
        assert_eq!(r.block_io.as_ref().unwrap().weight, Some(500));
        // Nothing given: nothing to change.
        let empty = from_flags(&UpdateRequest::default()).unwrap();
        assert!(empty.memory.is_none() && empty.cpu.is_none() && empty.pids.is_none());
        let bad = UpdateRequest {
            cpu_share: Some("abc".into()),
            ..Default::default()
        };
        assert_eq!(
            from_flags(&bad).unwrap_err().to_string(),
            "invalid value for cpu-share: strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
        let bad = UpdateRequest {
            memory: Some("64x".into()),
            ..Default::default()
        };
        assert_eq!(
            from_flags(&bad).unwrap_err().to_string(),
            "invalid value for memory: invalid size: '64x'"
        );
    }

    #[test]
    fn merge_keeps_what_is_not_changed() {
        let old = parse_resources(
            r#"{"devices":[{"allow":false,"access":"rwm"}],
                "memory":{"limit":16777216,"swap":33554432,"swappiness":10},
                "cpu":{"shares":512,"quota":20000,"period":100000},
                "pids":{"limit":10},
                "hugepageLimits":[{"pageSize":"2MB","limit":0}],
                "unified":{"memory.high":"100000000"}}"#,
        )
        .unwrap();
        let new = parse_resources(
            r#"{"memory":{"limit":33554432,"reservation":0,"swap":0},
                "cpu":{"shares":0,"quota":50000,"period":0,"cpus":""},
                "blockIO":{"weight":0},
                "pids":{"limit":0}}"#,
        )
        .unwrap();
        let m = merge(&old, &new);
        let mem = m.memory.as_ref().unwrap();
        assert_eq!(mem.limit, Some(33_554_432));
        assert_eq!(mem.swap, Some(33_554_432));
        assert_eq!(mem.swappiness, Some(10));
        let cpu = m.cpu.as_ref().unwrap();
        assert_eq!(
            (cpu.shares, cpu.quota, cpu.period),
            (Some(512), Some(50000), Some(100000))
        );
        assert!(cpu.cpus.is_none());
        assert_eq!(m.pids.as_ref().unwrap().limit, 10);
        assert!(m.block_io.is_none());
        assert_eq!(m.devices.len(), 1);
        assert_eq!(m.hugepage_limits.len(), 1);
        // runc replaces unified as a whole.
        assert!(m.unified.is_empty());

        // Unlimited memory lifts the swap limit too, unless swap is given.
        let unlimited = parse_resources(r#"{"memory":{"limit":-1}}"#).unwrap();
        assert_eq!(merge(&old, &unlimited).memory.unwrap().swap, Some(-1));
        let both = parse_resources(r#"{"memory":{"limit":-1,"swap":67108864}}"#).unwrap();
        assert_eq!(merge(&old, &both).memory.unwrap().swap, Some(67_108_864));
        // Nothing to change leaves sections absent.
        let nothing = merge(
            &Resources::default(),
            &from_flags(&UpdateRequest::default()).unwrap(),
        );
        assert!(nothing.memory.is_none() && nothing.cpu.is_none() && nothing.pids.is_none());
    }

    #[test]
    fn resources_json() {
        assert!(parse_resources("").unwrap_err().to_string().contains("EOF"));
        assert!(parse_resources("{bad").is_err());
        assert!(parse_resources(r#"{"memory":{"limit":"x"}}"#).is_err());
        // Unknown keys are ignored; trailing data after the first value too (Go's decoder).
        let r = parse_resources("{\"foo\":1,\"pids\":{\"limit\":5}}\n{garbage").unwrap();
        assert_eq!(r.pids.unwrap().limit, 5);
    }
}
