//! Task metrics for containerd: `rt events --stats` (runc's stats JSON, read from v1 or v2
//! cgroup files by the runtime) turned into the Metrics message containerd expects for the
//! host's cgroup mode: `io.containerd.cgroups.v1.Metrics` on a v1 or hybrid host,
//! `io.containerd.cgroups.v2.Metrics` on a pure v2 host (as the runc shim decides).

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics,
    PidsStat, Throttle,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{CodedOutputStream, Message, MessageField};
use serde_json::Value;

const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";
const METRICS_V2: &str = "io.containerd.cgroups.v2.Metrics";

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The Metrics of one container. `memory_events` is the v2 cgroup's memory.events (runc's
/// stats JSON has no place for it); unused on v1.
pub fn from_runtime_stats(s: &Value, v2: bool, memory_events: &str) -> Result<Any, String> {
    let (type_url, value) = if v2 {
        (METRICS_V2, encode_v2(s, memory_events))
    } else {
        let bytes = v1(s)
            .write_to_bytes()
            .map_err(|e| format!("encode metrics: {e}"))?;
        (METRICS_V1, bytes)
    };
    Ok(Any {
        type_url: type_url.to_string(),
        value,
        ..Default::default()
    })
}

/// A pure cgroup v2 host, as containerd tells it: cgroup2 mounted at /sys/fs/cgroup.
pub fn host_is_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn entry(v: &Value) -> MessageField<MemoryEntry> {
    MessageField::some(MemoryEntry {
        limit: n(&v["limit"]),
        usage: n(&v["usage"]),
        max: n(&v["max"]),
        failcnt: n(&v["failcnt"]),
        ..Default::default()
    })
}

fn blkio_entries(v: &Value) -> Vec<BlkIOEntry> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|e| BlkIOEntry {
            op: e["op"].as_str().unwrap_or_default().to_string(),
            major: n(&e["major"]),
            minor: n(&e["minor"]),
            value: n(&e["value"]),
            ..Default::default()
        })
        .collect()
}

fn v1(s: &Value) -> Metrics {
    let cpu = &s["cpu"];
    let mem = &s["memory"];
    let raw = &mem["raw"];
    let r = |k: &str| n(&raw[k]);
    let b = &s["blkio"];
    Metrics {
        hugetlb: s["hugetlb"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(size, h)| HugetlbStat {
                usage: n(&h["usage"]),
                max: n(&h["max"]),
                failcnt: n(&h["failcnt"]),
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: MessageField::some(PidsStat {
            current: n(&s["pids"]["current"]),
            limit: n(&s["pids"]["limit"]),
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: n(&cpu["usage"]["total"]),
                kernel: n(&cpu["usage"]["kernel"]),
                user: n(&cpu["usage"]["user"]),
                per_cpu: cpu["usage"]["percpu"]
                    .as_array()
                    .map(|a| a.iter().map(n).collect())
                    .unwrap_or_default(),
                ..Default::default()
            }),
            throttling: MessageField::some(Throttle {
                periods: n(&cpu["throttling"]["periods"]),
                throttled_periods: n(&cpu["throttling"]["throttled_periods"]),
                throttled_time: n(&cpu["throttling"]["throttled_time"]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            cache: n(&mem["cache"]),
            rss: r("rss"),
            rss_huge: r("rss_huge"),
            mapped_file: r("mapped_file"),
            dirty: r("dirty"),
            writeback: r("writeback"),
            pg_pg_in: r("pgpgin"),
            pg_pg_out: r("pgpgout"),
            pg_fault: r("pgfault"),
            pg_maj_fault: r("pgmajfault"),
            inactive_anon: r("inactive_anon"),
            active_anon: r("active_anon"),
            inactive_file: r("inactive_file"),
            active_file: r("active_file"),
            unevictable: r("unevictable"),
            hierarchical_memory_limit: r("hierarchical_memory_limit"),
            hierarchical_swap_limit: r("hierarchical_memsw_limit"),
            total_cache: r("total_cache"),
            total_rss: r("total_rss"),
            total_rss_huge: r("total_rss_huge"),
            total_mapped_file: r("total_mapped_file"),
            total_dirty: r("total_dirty"),
            total_writeback: r("total_writeback"),
            total_pg_pg_in: r("total_pgpgin"),
            total_pg_pg_out: r("total_pgpgout"),
            total_pg_fault: r("total_pgfault"),
            total_pg_maj_fault: r("total_pgmajfault"),
            total_inactive_anon: r("total_inactive_anon"),
            total_active_anon: r("total_active_anon"),
            total_inactive_file: r("total_inactive_file"),
            total_active_file: r("total_active_file"),
            total_unevictable: r("total_unevictable"),
            usage: entry(&mem["usage"]),
            swap: entry(&mem["swap"]),
            kernel: entry(&mem["kernel"]),
            kernel_tcp: entry(&mem["kernelTCP"]),
            ..Default::default()
        }),
        blkio: MessageField::some(BlkIOStat {
            io_service_bytes_recursive: blkio_entries(&b["ioServiceBytesRecursive"]),
            io_serviced_recursive: blkio_entries(&b["ioServicedRecursive"]),
            io_queued_recursive: blkio_entries(&b["ioQueueRecursive"]),
            io_service_time_recursive: blkio_entries(&b["ioServiceTimeRecursive"]),
            io_wait_time_recursive: blkio_entries(&b["ioWaitTimeRecursive"]),
            io_merged_recursive: blkio_entries(&b["ioMergedRecursive"]),
            io_time_recursive: blkio_entries(&b["ioTimeRecursive"]),
            sectors_recursive: blkio_entries(&b["sectorsRecursive"]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// memory.stat keys in the field order of the v2 MemoryStat message (fields 1 to 31).
const V2_MEMORY_STAT: [&str; 31] = [
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
];

/// memory.events keys in the field order of the v2 MemoryEvents message.
const V2_MEMORY_EVENTS: [&str; 5] = ["low", "high", "max", "oom", "oom_kill"];

/// A protobuf message under construction. The crates generate no type for containerd's
/// cgroups v2 Metrics, so its few messages (field numbers from containerd/cgroups
/// cgroup2/stats/metrics.proto) are written field by field; proto3 leaves zeros out.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            // Writing into a Vec cannot fail.
            let mut os = CodedOutputStream::vec(&mut self.0);
            let _ = os.write_uint64(field, v).and_then(|()| os.flush());
            drop(os);
        }
        self
    }

    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        let mut os = CodedOutputStream::vec(&mut self.0);
        let _ = os.write_bytes(field, b).and_then(|()| os.flush());
        drop(os);
        self
    }

    fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

fn encode_v2(s: &Value, memory_events: &str) -> Vec<u8> {
    let cpu = &s["cpu"];
    let mem = &s["memory"];
    let raw = &mem["raw"];
    let usec = |ns: &Value| n(ns) / 1000;
    let mut m = Msg::default();

    let mut pids = Msg::default();
    pids.uint(1, n(&s["pids"]["current"]))
        .uint(2, n(&s["pids"]["limit"]));
    m.msg(1, &pids);

    let mut c = Msg::default();
    c.uint(1, usec(&cpu["usage"]["total"]))
        .uint(2, usec(&cpu["usage"]["user"]))
        .uint(3, usec(&cpu["usage"]["kernel"]))
        .uint(4, n(&cpu["throttling"]["periods"]))
        .uint(5, n(&cpu["throttling"]["throttled_periods"]))
        .uint(6, usec(&cpu["throttling"]["throttled_time"]));
    m.msg(2, &c);

    let mut memory = Msg::default();
    for (i, key) in V2_MEMORY_STAT.iter().enumerate() {
        memory.uint(i as u32 + 1, n(&raw[key]));
    }
    // rt, like runc, reports swap as memory+swap on v2 too: take memory out again.
    let (usage, swap) = (&mem["usage"], &mem["swap"]);
    let swap_limit = match n(&swap["limit"]) {
        u64::MAX => u64::MAX,
        l => l.saturating_sub(n(&usage["limit"])),
    };
    memory
        .uint(32, n(&usage["usage"]))
        .uint(33, n(&usage["limit"]))
        .uint(34, n(&swap["usage"]).saturating_sub(n(&usage["usage"])))
        .uint(35, swap_limit)
        .uint(36, n(&usage["max"]));
    m.msg(4, &memory);

    // One IOEntry per device, from the Read/Write rows of bytes and operations.
    let mut devices: Vec<(u64, u64, [u64; 4])> = Vec::new();
    for (table, read_slot) in [("ioServiceBytesRecursive", 0), ("ioServicedRecursive", 2)] {
        for e in s["blkio"][table].as_array().into_iter().flatten() {
            let dev = (n(&e["major"]), n(&e["minor"]));
            let slot = match e["op"].as_str() {
                Some("Read") => read_slot,
                Some("Write") => read_slot + 1,
                _ => continue,
            };
            let i = match devices.iter().position(|d| (d.0, d.1) == dev) {
                Some(i) => i,
                None => {
                    devices.push((dev.0, dev.1, [0; 4]));
                    devices.len() - 1
                }
            };
            devices[i].2[slot] = n(&e["value"]);
        }
    }
    let mut io = Msg::default();
    for (major, minor, [rbytes, wbytes, rios, wios]) in devices {
        let mut e = Msg::default();
        e.uint(1, major)
            .uint(2, minor)
            .uint(3, rbytes)
            .uint(4, wbytes)
            .uint(5, rios)
            .uint(6, wios);
        io.msg(1, &e);
    }
    m.msg(6, &io);

    for (size, h) in s["hugetlb"].as_object().into_iter().flatten() {
        let mut e = Msg::default();
        e.uint(1, n(&h["usage"])).uint(2, n(&h["max"]));
        e.bytes(3, size.as_bytes());
        m.msg(7, &e);
    }

    let mut events = Msg::default();
    for line in memory_events.lines() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next().and_then(|v| v.parse().ok())) else {
            continue;
        };
        if let Some(i) = V2_MEMORY_EVENTS.iter().position(|e| *e == k) {
            events.uint(i as u32 + 1, v);
        }
    }
    m.msg(8, &events);
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::CodedInputStream;

    /// (field number, value) pairs of an encoded message: varints as numbers,
    /// length-delimited fields as their bytes.
    #[derive(Debug, PartialEq)]
    enum F {
        N(u64),
        B(Vec<u8>),
    }

    fn fields(b: &[u8]) -> Vec<(u32, F)> {
        let mut is = CodedInputStream::from_bytes(b);
        let mut out = Vec::new();
        while !is.eof().unwrap() {
            let tag = is.read_raw_varint32().unwrap();
            let (field, wire) = (tag >> 3, tag & 7);
            match wire {
                0 => out.push((field, F::N(is.read_raw_varint64().unwrap()))),
                2 => out.push((field, F::B(is.read_bytes().unwrap()))),
                w => panic!("unexpected wire type {w}"),
            }
        }
        out
    }

    fn sub(fs: &[(u32, F)], field: u32) -> Vec<(u32, F)> {
        match fs.iter().find(|(f, _)| *f == field) {
            Some((_, F::B(b))) => fields(b),
            other => panic!("field {field}: {other:?}"),
        }
    }

    fn sample() -> Value {
        serde_json::json!({
            "cpu": {"usage": {"total": 5_000_000, "user": 3_000_000, "kernel": 2_000_000},
                    "throttling": {"periods": 10, "throttled_periods": 2, "throttled_time": 7_000}},
            "memory": {"cache": 4096,
                       "usage": {"usage": 1_000_000, "limit": 8_000_000, "max": 1_500_000, "failcnt": 1},
                       "swap": {"usage": 1_200_000, "limit": 16_000_000, "failcnt": 0},
                       "kernel": {"usage": 300},
                       "kernelTCP": {"usage": 0},
                       "raw": {"anon": 700_000, "file": 4096, "pgfault": 42, "rss": 777,
                               "total_rss": 888, "hierarchical_memory_limit": 8_000_000,
                               "thp_collapse_alloc": 3}},
            "pids": {"current": 3, "limit": 64},
            "blkio": {"ioServiceBytesRecursive": [
                          {"major": 8, "minor": 0, "op": "Read", "value": 512},
                          {"major": 8, "minor": 0, "op": "Write", "value": 1024}],
                      "ioServicedRecursive": [
                          {"major": 8, "minor": 0, "op": "Read", "value": 1},
                          {"major": 8, "minor": 0, "op": "Write", "value": 2}]},
            "hugetlb": {"2MB": {"usage": 2_097_152, "failcnt": 0}}
        })
    }

    #[test]
    fn v1_reads_runc_stats_json_keys() {
        let any = from_runtime_stats(&sample(), false, "").unwrap();
        assert_eq!(any.type_url, METRICS_V1);
        let m = Metrics::parse_from_bytes(&any.value).unwrap();
        let mem = m.memory.as_ref().unwrap();
        assert_eq!(mem.rss, 777);
        assert_eq!(mem.total_rss, 888);
        assert_eq!(mem.pg_fault, 42);
        assert_eq!(mem.hierarchical_memory_limit, 8_000_000);
        assert_eq!(mem.usage.usage, 1_000_000);
        assert_eq!(mem.usage.max, 1_500_000);
        assert_eq!(mem.swap.usage, 1_200_000);
        assert_eq!(mem.kernel.usage, 300);
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.cpu.throttling.throttled_periods, 2);
        assert_eq!(m.pids.limit, 64);
        let io = &m.blkio.io_service_bytes_recursive;
        assert_eq!(io.len(), 2);
        assert_eq!(
            (io[1].op.as_str(), io[1].major, io[1].value),
            ("Write", 8, 1024)
        );
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
        assert_eq!(m.hugetlb[0].usage, 2_097_152);
    }

    #[test]
    fn v2_fields_follow_containerd_cgroup2_metrics_proto() {
        let events = "low 0\nhigh 5\nmax 6\noom 1\noom_kill 1\n";
        let any = from_runtime_stats(&sample(), true, events).unwrap();
        assert_eq!(any.type_url, METRICS_V2);
        let m = fields(&any.value);
        assert_eq!(sub(&m, 1), vec![(1, F::N(3)), (2, F::N(64))]);
        assert_eq!(
            sub(&m, 2),
            vec![
                (1, F::N(5000)),
                (2, F::N(3000)),
                (3, F::N(2000)),
                (4, F::N(10)),
                (5, F::N(2)),
                (6, F::N(7)),
            ]
        );
        let mem = sub(&m, 4);
        let get = |f: u32| mem.iter().find(|(k, _)| *k == f).map(|(_, v)| v);
        assert_eq!(get(1), Some(&F::N(700_000)), "anon");
        assert_eq!(get(2), Some(&F::N(4096)), "file");
        assert_eq!(get(18), Some(&F::N(42)), "pgfault");
        assert_eq!(get(31), Some(&F::N(3)), "thp_collapse_alloc");
        assert_eq!(get(32), Some(&F::N(1_000_000)), "usage");
        assert_eq!(get(33), Some(&F::N(8_000_000)), "usage_limit");
        assert_eq!(get(34), Some(&F::N(200_000)), "swap_usage without memory");
        assert_eq!(get(35), Some(&F::N(8_000_000)), "swap_limit without memory");
        assert_eq!(get(36), Some(&F::N(1_500_000)), "max_usage");
        let io = sub(&m, 6);
        assert_eq!(io.len(), 1, "one device");
        let F::B(dev) = &io[0].1 else { panic!() };
        assert_eq!(
            fields(dev),
            vec![
                (1, F::N(8)),
                (3, F::N(512)),
                (4, F::N(1024)),
                (5, F::N(1)),
                (6, F::N(2)),
            ]
        );
        assert_eq!(
            sub(&m, 7),
            vec![(1, F::N(2_097_152)), (3, F::B(b"2MB".to_vec()))]
        );
        assert_eq!(
            sub(&m, 8),
            vec![(2, F::N(5)), (3, F::N(6)), (4, F::N(1)), (5, F::N(1))]
        );
    }
}
