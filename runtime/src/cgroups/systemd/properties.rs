//! `linux.resources` as systemd unit properties, the way runc maps them: systemd then
//! knows the limits (`systemctl show`, and it keeps them when it rewrites the unit's
//! cgroup). rt still writes every cgroup file itself afterwards, so what the kernel
//! enforces is exactly what the config says, also where systemd has no property.

use crate::cgroups::resources::{
    blkio_weight_to_io, shares_to_weight, BlockIo, DeviceRule, Resources,
};
use crate::dbus::wire::{prop, Value};

/// systemd's "infinity" for a `t` (u64) limit.
const INFINITY: u64 = u64::MAX;

/// What the running systemd understands (properties newer than this version are left out:
/// an unknown property makes StartTransientUnit fail).
#[derive(Debug, Clone, Copy)]
pub struct Systemd {
    pub version: u32,
    /// The host mounts cgroup v2 only (the properties differ from v1's).
    pub v2: bool,
}

/// The properties every container unit has: accounting on (systemd then enables the
/// controllers down to the unit), the unit's own cgroup delegated to us.
pub fn common(description: String, v2: bool) -> Vec<Value> {
    let mut props = vec![
        prop("Description", Value::Str(description)),
        prop("Delegate", Value::Bool(true)),
        prop("DefaultDependencies", Value::Bool(false)),
        prop("MemoryAccounting", Value::Bool(true)),
        prop("CPUAccounting", Value::Bool(true)),
        prop("TasksAccounting", Value::Bool(true)),
    ];
    let io = if v2 {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    props.push(prop(io, Value::Bool(true)));
    props
}

/// The unit properties for `r`.
pub fn resources(r: &Resources, sd: Systemd, proc_devices: &str) -> Vec<Value> {
    let mut props = Vec::new();
    let mut set = |name: &str, v: Value| props.push(prop(name, v));
    if let Some(m) = &r.memory {
        if let Some(l) = m.limit.map(limit) {
            set(
                if sd.v2 { "MemoryMax" } else { "MemoryLimit" },
                Value::U64(l),
            );
        }
        if sd.v2 {
            if let Some(low) = m.reservation {
                set("MemoryLow", Value::U64(limit(low)));
            }
            // The spec's swap is memory+swap; MemorySwapMax is the swap alone.
            match (m.swap, m.limit) {
                (Some(s), _) if s < 0 => set("MemorySwapMax", Value::U64(INFINITY)),
                (Some(s), Some(l)) if l >= 0 && s >= l => {
                    set("MemorySwapMax", Value::U64((s - l) as u64))
                }
                _ => {}
            }
        }
    }
    if let Some(c) = &r.cpu {
        if let Some(shares) = c.shares.filter(|s| *s > 0) {
            if sd.v2 {
                set("CPUWeight", Value::U64(shares_to_weight(shares)));
            } else {
                set("CPUShares", Value::U64(shares));
            }
        }
        if let Some(q) = quota_per_sec(c.quota, c.period) {
            set("CPUQuotaPerSecUSec", Value::U64(q));
        }
        if let Some(p) = c.period.filter(|p| *p > 0 && sd.version >= 242) {
            set("CPUQuotaPeriodUSec", Value::U64(p));
        }
        if sd.v2 && sd.version >= 244 {
            for (name, list) in [("AllowedCPUs", &c.cpus), ("AllowedMemoryNodes", &c.mems)] {
                if let Some(bits) = list
                    .as_deref()
                    .filter(|l| !l.trim().is_empty())
                    .and_then(bitmask)
                {
                    set(
                        name,
                        Value::Array("y".into(), bits.into_iter().map(Value::Byte).collect()),
                    );
                }
            }
        }
    }
    if let Some(p) = &r.pids {
        // 0 and -1 both mean no limit to rt (runc writes 0 as "max" on v2 too).
        let max = if p.limit > 0 {
            p.limit as u64
        } else {
            INFINITY
        };
        set("TasksMax", Value::U64(max));
    }
    if let Some(w) = r
        .block_io
        .as_ref()
        .and_then(|b| b.weight)
        .filter(|w| *w > 0)
    {
        if sd.v2 {
            set("IOWeight", Value::U64(blkio_weight_to_io(w)));
        } else {
            set("BlockIOWeight", Value::U64(u64::from(w)));
        }
    }
    if let Some(b) = &r.block_io {
        block_io_devices(b, sd.v2, &mut set);
    }
    if sd.v2 {
        unified(&r.unified, &mut set);
    }
    props.extend(devices(&r.devices, proc_devices));
    props
}

/// Per-device IO weights and throttles: `a(st)` lists of a device path (systemd takes
/// `/dev/block/MAJOR:MINOR`) and a value. v1 systemd has no IOPS limits.
fn block_io_devices(b: &BlockIo, v2: bool, set: &mut impl FnMut(&str, Value)) {
    let entry = |major: i64, minor: i64, value: u64| {
        Value::Struct(vec![
            Value::Str(format!("/dev/block/{major}:{minor}")),
            Value::U64(value),
        ])
    };
    let weights: Vec<Value> = b
        .weight_device
        .iter()
        .filter_map(|d| {
            let w = d.weight.filter(|w| *w > 0)?;
            let value = if v2 {
                blkio_weight_to_io(w)
            } else {
                u64::from(w)
            };
            Some(entry(d.major, d.minor, value))
        })
        .collect();
    let throttles = [
        (
            &b.throttle_read_bps_device,
            "IOReadBandwidthMax",
            Some("BlockIOReadBandwidth"),
        ),
        (
            &b.throttle_write_bps_device,
            "IOWriteBandwidthMax",
            Some("BlockIOWriteBandwidth"),
        ),
        (&b.throttle_read_iops_device, "IOReadIOPSMax", None),
        (&b.throttle_write_iops_device, "IOWriteIOPSMax", None),
    ];
    let weight_name = if v2 {
        "IODeviceWeight"
    } else {
        "BlockIODeviceWeight"
    };
    let mut lists = vec![(Some(weight_name), weights)];
    for (list, v2_name, v1_name) in throttles {
        let name = if v2 { Some(v2_name) } else { v1_name };
        lists.push((
            name,
            list.iter()
                .map(|t| entry(t.major, t.minor, t.rate))
                .collect(),
        ));
    }
    for (name, entries) in lists {
        if let Some(name) = name.filter(|_| !entries.is_empty()) {
            set(name, Value::Array("(st)".into(), entries));
        }
    }
}

/// A limit in bytes or tasks: negative means none.
fn limit(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(INFINITY)
}

/// CPUQuotaPerSecUSec from quota/period (period 100 ms when unset); systemd keeps it in
/// whole 10 ms steps, so it is rounded up as runc does (the cgroup file gets the exact
/// value afterwards). A negative quota is no limit.
fn quota_per_sec(quota: Option<i64>, period: Option<u64>) -> Option<u64> {
    let q = quota?;
    if q < 0 {
        return Some(INFINITY);
    }
    if q == 0 {
        return None;
    }
    let period = period.filter(|p| *p > 0).unwrap_or(100_000);
    let per_sec = (q as u64).saturating_mul(1_000_000) / period;
    Some(per_sec.div_ceil(10_000) * 10_000)
}

/// "0-2,5" as systemd's CPU and NUMA node masks take it: bit n of byte n/8.
fn bitmask(list: &str) -> Option<Vec<u8>> {
    let ids = crate::id_list::parse(list, 1 << 16)?;
    let mut bits = vec![0u8; ids.iter().max().map_or(0, |m| m / 8 + 1)];
    for id in ids {
        bits[id / 8] |= 1 << (id % 8);
    }
    Some(bits)
}

/// The `unified` keys systemd has a property for (runc maps the same ones).
fn unified(map: &std::collections::BTreeMap<String, String>, set: &mut impl FnMut(&str, Value)) {
    for (key, value) in map {
        let value = value.trim();
        let bytes = || -> Option<u64> {
            if value == "max" {
                Some(INFINITY)
            } else {
                value.parse().ok()
            }
        };
        let name = match key.as_str() {
            "memory.high" => "MemoryHigh",
            "memory.low" => "MemoryLow",
            "memory.min" => "MemoryMin",
            "memory.max" => "MemoryMax",
            "memory.swap.max" => "MemorySwapMax",
            "pids.max" => "TasksMax",
            "cpu.weight" => "CPUWeight",
            _ => continue,
        };
        if let Some(v) = bytes() {
            set(name, Value::U64(v));
        }
    }
}

/// Device rules as DevicePolicy/DeviceAllow. systemd takes only an allow list over "deny
/// everything": when the rules say that, the list goes to systemd; rules it cannot say
/// (allow everything but a few) are left to rt's own device cgroup program alone.
/// Both programs apply, so systemd's must never deny what the rules allow.
fn devices(rules: &[DeviceRule], proc_devices: &str) -> Vec<Value> {
    let is_all = |r: &DeviceRule| {
        matches!(r.kind.as_deref(), None | Some("a"))
            && r.major.is_none_or(|m| m < 0)
            && r.minor.is_none_or(|m| m < 0)
    };
    let rules: Vec<&DeviceRule> = rules
        .iter()
        .filter(|r| r.is_for_the_device_cgroup())
        .collect();
    // Only what follows the last "everything" rule matters. When that allows everything
    // (perhaps with exceptions systemd cannot say), or there is none: no policy.
    let Some(start) = rules
        .iter()
        .rposition(|r| is_all(r))
        .filter(|i| !rules[*i].allow)
    else {
        return Vec::new();
    };
    let mut allow = Vec::new();
    for r in rules[start + 1..].iter().filter(|r| r.allow) {
        let access = r
            .access
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "rwm".into());
        for kind in match r.kind.as_deref() {
            Some("c") => &["char"][..],
            Some("b") => &["block"][..],
            _ => &["char", "block"][..],
        } {
            let spec = match (r.major.filter(|m| *m >= 0), r.minor.filter(|m| *m >= 0)) {
                (None, _) => Some(format!("{kind}-*")),
                (Some(major), None) => {
                    device_group(proc_devices, kind, major).map(|n| format!("{kind}-{n}"))
                }
                (Some(major), Some(minor)) => Some(format!("/dev/{kind}/{major}:{minor}")),
            };
            match spec {
                Some(s) => allow.push(Value::Struct(vec![Value::Str(s), Value::Str(access.clone())])),
                None => log::debug!("systemd: no name for {kind} major {} in /proc/devices: left to rt's own device rules", r.major.unwrap_or(-1)),
            }
        }
    }
    vec![
        prop("DevicePolicy", Value::Str("strict".into())),
        prop("DeviceAllow", Value::Array("(ss)".into(), allow)),
    ]
}

/// The driver name of `major` in /proc/devices' section for `kind` ("136" → "pts").
fn device_group(proc_devices: &str, kind: &str, major: i64) -> Option<String> {
    let header = if kind == "char" {
        "Character devices:"
    } else {
        "Block devices:"
    };
    proc_devices
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.trim().split_once(' '))
        .find(|(m, _)| m.parse::<i64>() == Ok(major))
        .map(|(_, name)| name.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::resources::{Cpu, Memory, Pids};

    const V2: Systemd = Systemd {
        version: 252,
        v2: true,
    };

    fn find<'a>(props: &'a [Value], name: &str) -> Option<&'a Value> {
        props.iter().find_map(|p| {
            let f = p.as_struct()?;
            (f[0].as_str() == Some(name)).then(|| f[1].variant())
        })
    }

    #[test]
    fn docker_like_limits() {
        let r = Resources {
            memory: Some(Memory {
                limit: Some(64 << 20),
                reservation: Some(32 << 20),
                swap: Some(128 << 20),
                ..Default::default()
            }),
            cpu: Some(Cpu {
                shares: Some(1024),
                quota: Some(50_000),
                period: Some(100_000),
                cpus: Some("0-1,9".into()),
                ..Default::default()
            }),
            pids: Some(Pids { limit: 50 }),
            ..Default::default()
        };
        let p = resources(&r, V2, "");
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(find(&p, "MemoryLow"), Some(&Value::U64(32 << 20)));
        assert_eq!(find(&p, "MemorySwapMax"), Some(&Value::U64(64 << 20)));
        assert_eq!(find(&p, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(find(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(50)));
        assert_eq!(
            find(&p, "AllowedCPUs"),
            Some(&Value::Array(
                "y".into(),
                vec![Value::Byte(0b11), Value::Byte(0b10)]
            ))
        );
        // v1 and an old systemd: v1 names, nothing it does not know.
        let p = resources(
            &r,
            Systemd {
                version: 241,
                v2: false,
            },
            "",
        );
        assert_eq!(find(&p, "MemoryLimit"), Some(&Value::U64(64 << 20)));
        assert_eq!(find(&p, "CPUShares"), Some(&Value::U64(1024)));
        for absent in [
            "MemoryMax",
            "CPUWeight",
            "CPUQuotaPeriodUSec",
            "AllowedCPUs",
        ] {
            assert_eq!(find(&p, absent), None, "{absent}");
        }
    }

    #[test]
    fn quota_rounding_and_unlimited() {
        assert_eq!(quota_per_sec(Some(12_345), Some(100_000)), Some(130_000));
        assert_eq!(quota_per_sec(Some(-1), None), Some(INFINITY));
        assert_eq!(quota_per_sec(None, Some(100_000)), None);
        assert_eq!(limit(-1), INFINITY);
        let r = Resources {
            pids: Some(Pids { limit: -1 }),
            unified: [
                ("memory.high".to_string(), "max".to_string()),
                ("io.max".into(), "x".into()),
            ]
            .into(),
            ..Default::default()
        };
        let p = resources(&r, V2, "");
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(find(&p, "MemoryHigh"), Some(&Value::U64(INFINITY)));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn block_io_devices_as_lists() {
        use crate::cgroups::resources::{ThrottleDevice, WeightDevice};
        let r = Resources {
            block_io: Some(BlockIo {
                weight_device: vec![WeightDevice {
                    major: 8,
                    minor: 0,
                    weight: Some(500),
                    leaf_weight: None,
                }],
                throttle_read_bps_device: vec![ThrottleDevice {
                    major: 8,
                    minor: 0,
                    rate: 1 << 20,
                }],
                throttle_write_iops_device: vec![ThrottleDevice {
                    major: 8,
                    minor: 16,
                    rate: 100,
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let entry = |dev: &str, v: u64| Value::Struct(vec![Value::Str(dev.into()), Value::U64(v)]);
        let list = |e| Some(Value::Array("(st)".into(), vec![e]));
        let p = resources(&r, V2, "");
        assert_eq!(
            find(&p, "IODeviceWeight").cloned(),
            list(entry("/dev/block/8:0", 4950))
        );
        assert_eq!(
            find(&p, "IOReadBandwidthMax").cloned(),
            list(entry("/dev/block/8:0", 1 << 20))
        );
        assert_eq!(
            find(&p, "IOWriteIOPSMax").cloned(),
            list(entry("/dev/block/8:16", 100))
        );
        assert_eq!(find(&p, "IOWriteBandwidthMax"), None);
        // v1: the BlockIO names, the weight as given, and no IOPS limits.
        let p = resources(
            &r,
            Systemd {
                version: 252,
                v2: false,
            },
            "",
        );
        assert_eq!(
            find(&p, "BlockIODeviceWeight").cloned(),
            list(entry("/dev/block/8:0", 500))
        );
        assert_eq!(
            find(&p, "BlockIOReadBandwidth").cloned(),
            list(entry("/dev/block/8:0", 1 << 20))
        );
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn device_rules() {
        let rule = |allow, kind: &str, major, minor| DeviceRule {
            allow,
            kind: Some(kind.into()),
            major,
            minor,
            access: Some("rwm".into()),
        };
        let proc_devices = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        let rules = [
            rule(false, "a", None, None),
            rule(true, "c", Some(1), Some(3)),
            rule(true, "c", Some(136), None),
            rule(true, "b", Some(8), None),
            rule(true, "c", Some(250), None),
            rule(false, "c", Some(1), Some(5)),
            rule(true, "p", None, None),
        ];
        let p = devices(&rules, proc_devices);
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        let allow: Vec<_> = find(&p, "DeviceAllow")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|e| e.as_struct().unwrap()[0].as_str().unwrap().to_string())
            .collect();
        assert_eq!(allow, ["/dev/char/1:3", "char-pts", "block-sd"]);
        // Allow all (with or without exceptions): no policy for systemd.
        assert!(devices(&[rule(true, "a", None, None)], "").is_empty());
        assert!(devices(
            &[
                rule(true, "a", None, None),
                rule(false, "c", Some(1), Some(3))
            ],
            ""
        )
        .is_empty());
        assert!(devices(&[], "").is_empty());
    }
}
