//! Task metrics for containerd: `rt events --stats` (runc's stats JSON, read from v1 or v2
//! cgroup files by the runtime) turned into containerd's cgroups v1 Metrics message.

use containerd_shim::protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use serde_json::Value;

const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
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

pub fn from_runtime_stats(s: &Value) -> Result<Any, String> {
    let cpu = &s["cpu"];
    let mem = &s["memory"];
    let stats = &mem["stats"];
    let m = Metrics {
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
            rss: n(&stats["rss"]),
            mapped_file: n(&stats["mapped_file"]),
            pg_fault: n(&stats["pgfault"]),
            pg_maj_fault: n(&stats["pgmajfault"]),
            inactive_anon: n(&stats["inactive_anon"]),
            active_anon: n(&stats["active_anon"]),
            inactive_file: n(&stats["inactive_file"]),
            active_file: n(&stats["active_file"]),
            unevictable: n(&stats["unevictable"]),
            usage: entry(&mem["usage"]),
            swap: entry(&mem["swap_usage"]),
            kernel: entry(&mem["kernel_usage"]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let value = m
        .write_to_bytes()
        .map_err(|e| format!("encode metrics: {e}"))?;
    Ok(Any {
        type_url: METRICS_V1.to_string(),
        value,
        ..Default::default()
    })
}
