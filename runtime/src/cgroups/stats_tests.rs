//! Tests of stats.rs (kept apart: the module itself stays readable).
use super::super::CgroupDir;
use super::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rt-stats-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

fn v1_dir(path: &Path, subsystems: &str) -> CgroupDir {
    CgroupDir {
        path: path.to_path_buf(),
        unified: false,
        subsystems: subsystems.into(),
    }
}

#[test]
fn numbers_as_runc_reads_them() {
    assert_eq!(parse_uint("42\n").unwrap(), 42);
    assert_eq!(parse_uint("max").unwrap(), u64::MAX);
    assert_eq!(parse_uint("-1").unwrap(), 0);
    assert!(parse_uint("+1").is_err());
    assert!(parse_uint("x").is_err());
    assert_eq!(
        parse_key_values("a 1\nb 2\n\n").unwrap(),
        vec![("a".into(), 1), ("b".into(), 2)]
    );
    assert!(parse_key_values("a 1 2").is_err());
    assert_eq!(parse_cpu_list("0-2,5\n").unwrap(), vec![0, 1, 2, 5]);
    assert_eq!(parse_cpu_list("").unwrap(), Vec::<u16>::new());
    assert!(parse_cpu_list("3-1").is_err());
    assert_eq!(
        parse_cpuacct_stat("user 5\nsystem 7\n").unwrap(),
        (50_000_000, 70_000_000)
    );
    assert!(parse_cpuacct_stat("system 5\nuser 7\n").is_err());
}

#[test]
fn blkio_lines() {
    let text = "8:0 Read 100\n8:0 Write 50\n8:0 Total 150\n8:16 7\nTotal 150\n";
    let e = parse_blkio(text).unwrap();
    assert_eq!(e.len(), 4);
    assert_eq!(
        e[0],
        BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 100
        }
    );
    assert_eq!(e[3].op, "");
    assert_eq!(e[3].value, 7);
    assert!(parse_blkio("8:0\n").is_err());
    let b = v2_io("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n").unwrap();
    let j = serde_json::to_string(&b).unwrap();
    assert_eq!(
        j,
        r#"{"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":4096},{"major":8,"op":"Write","value":8192}],"ioServicedRecursive":[{"major":8,"op":"Read","value":1},{"major":8,"op":"Write","value":2}]}"#
    );
}

#[test]
fn blkio_group_order() {
    let t = TempDir::new();
    // BFQ files exist but are empty (no I/O yet); throttle files have data.
    write_files(
        &t.0,
        &[
            ("blkio.bfq.io_serviced_recursive", ""),
            ("blkio.bfq.io_service_bytes_recursive", ""),
            (
                "blkio.throttle.io_serviced_recursive",
                "254:0 Read 3\nTotal 3\n",
            ),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "254:0 Read 4096\nTotal 4096\n",
            ),
        ],
    );
    let b = v1_blkio(&t.0).unwrap();
    assert_eq!(b.io_serviced_recursive[0].value, 3);
    assert_eq!(b.io_service_bytes_recursive[0].value, 4096);
    // Nothing anywhere: {}.
    let empty = TempDir::new();
    assert_eq!(
        serde_json::to_string(&v1_blkio(&empty.0).unwrap()).unwrap(),
        "{}"
    );
}

#[test]
fn v1_stats_from_files() {
    let t = TempDir::new();
    let cpu = t.sub("cpu,cpuacct");
    write_files(
        &cpu,
        &[
            ("cpuacct.stat", "user 2\nsystem 3\n"),
            ("cpuacct.usage", "123456\n"),
            ("cpuacct.usage_percpu", "100000 23456 \n"),
            (
                "cpuacct.usage_all",
                "cpu user system\n0 60000 40000\n1 20000 3456\n",
            ),
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 4\nthrottled_time 5000\nnr_bursts 0\n",
            ),
        ],
    );
    let mem = t.sub("memory");
    write_files(
        &mem,
        &[
            ("memory.stat", "cache 4096\nrss 8192\ntotal_rss 8192\n"),
            ("memory.usage_in_bytes", "65536\n"),
            ("memory.max_usage_in_bytes", "131072\n"),
            ("memory.failcnt", "2\n"),
            ("memory.limit_in_bytes", "16777216\n"),
            ("memory.kmem.tcp.usage_in_bytes", "0\n"),
            ("memory.kmem.tcp.max_usage_in_bytes", "0\n"),
            ("memory.kmem.tcp.failcnt", "0\n"),
            ("memory.kmem.tcp.limit_in_bytes", "9223372036854771712\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ],
    );
    let pids = t.sub("pids");
    write_files(
        &pids,
        &[
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
            ("cgroup.procs", "7\n8\n"),
        ],
    );
    let cpuset = t.sub("cpuset");
    write_files(
        &cpuset,
        &[
            ("cpuset.cpus", "0-1\n"),
            ("cpuset.mems", "0\n"),
            ("cpuset.sched_load_balance", "1\n"),
            ("cpuset.sched_relax_domain_level", "-1\n"),
        ],
    );
    let hugetlb = t.sub("hugetlb");
    write_files(
        &hugetlb,
        &[
            ("hugetlb.2MB.usage_in_bytes", "2097152\n"),
            ("hugetlb.2MB.max_usage_in_bytes", "4194304\n"),
            ("hugetlb.2MB.failcnt", "1\n"),
            ("hugetlb.2MB.limit_in_bytes", "9223372036854771712\n"),
            ("hugetlb.2MB.rsvd.usage_in_bytes", "0\n"),
        ],
    );
    let cg = Cgroup {
        dirs: vec![
            v1_dir(&cpu, "cpu,cpuacct"),
            v1_dir(&mem, "memory"),
            v1_dir(&pids, "pids"),
            v1_dir(&cpuset, "cpuset"),
            v1_dir(&hugetlb, "hugetlb"),
        ],
        created: Vec::new(),
        systemd: None,
    };
    let s = stats(&cg).unwrap();
    let j = serde_json::to_string(&s).unwrap();
    assert_eq!(
        j,
        concat!(
            r#"{"cpu":{"usage":{"total":123456,"percpu":[100000,23456],"percpu_kernel":[40000,3456],"#,
            r#""percpu_user":[60000,20000],"kernel":30000000,"user":20000000},"#,
            r#""throttling":{"periods":10,"throttledPeriods":4,"throttledTime":5000}},"#,
            r#""cpuset":{"cpus":[0,1],"cpu_exclusive":0,"mems":[0],"mem_hardwall":0,"mem_exclusive":0,"#,
            r#""memory_migrate":0,"memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,"#,
            r#""sched_load_balance":1,"sched_relax_domain_level":-1},"#,
            r#""memory":{"cache":4096,"usage":{"limit":16777216,"usage":65536,"max":131072,"failcnt":2},"#,
            r#""swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"#,
            r#""kernelTCP":{"limit":9223372036854771712,"failcnt":0},"#,
            r#""raw":{"cache":4096,"rss":8192,"total_rss":8192}},"#,
            r#""pids":{"current":2},"blkio":{},"#,
            r#""hugetlb":{"2MB":{"usage":2097152,"max":4194304,"failcnt":1}},"#,
            r#""intel_rdt":{},"network_interfaces":null}"#
        )
    );
    assert_eq!(oom_counters(&cg), Some(OomCounters { kills: 3, ooms: 0 }));
    // No devices hierarchy and not v2: the first v1 directory.
    fs::write(cpu.join("cgroup.procs"), "7\n").unwrap();
    let sub = t.sub("cpu,cpuacct/sub");
    fs::write(sub.join("cgroup.procs"), "9\n").unwrap();
    assert_eq!(all_pids(&cg).unwrap(), vec![7, 9]);
}

#[test]
fn v2_stats_from_files() {
    let t = TempDir::new();
    let d = t.sub("c");
    write_files(
        &d,
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n"),
            ("cgroup.procs", "10\n11\n"),
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 8\nnr_throttled 3\nthrottled_usec 250\n",
            ),
            ("memory.stat", "anon 8192\nfile 4096\n"),
            ("memory.current", "12288\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "20480\n"),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n"),
            ("memory.swap.current", "100\n"),
            ("memory.swap.max", "max\n"),
            ("memory.swap.events", "high 0\nmax 0\nfail 0\n"),
            ("pids.current", "2\n"),
            ("pids.max", "10\n"),
            ("io.stat", "254:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.events", "max 4\n"),
            ("hugetlb.2MB.rsvd.current", "0\n"),
        ],
    );
    let cg = Cgroup {
        dirs: vec![CgroupDir {
            path: d.clone(),
            unified: true,
            subsystems: String::new(),
        }],
        created: Vec::new(),
        systemd: None,
    };
    let s = stats(&cg).unwrap();
    assert_eq!(s.cpu.usage.total, 1_500_000);
    assert_eq!(s.cpu.usage.user, 1_000_000);
    assert_eq!(s.cpu.usage.kernel, 500_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 3);
    assert_eq!(s.cpu.throttling.throttled_time, 250_000);
    assert_eq!(s.memory.cache, 4096);
    assert_eq!(s.memory.usage.usage, 12288);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.max, 20480);
    assert_eq!(s.memory.usage.failcnt, 5);
    assert_eq!(s.memory.swap.usage, 12388);
    assert_eq!(s.memory.swap.limit, u64::MAX);
    assert_eq!(
        s.pids,
        Pids {
            current: 2,
            limit: 10
        }
    );
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.hugetlb["2MB"].failcnt, 4);
    assert_eq!(s.cpuset, CpuSet::default());
    assert_eq!(oom_counters(&cg), Some(OomCounters { kills: 1, ooms: 2 }));
    assert_eq!(all_pids(&cg).unwrap(), vec![10, 11]);
}

#[test]
fn oom_detection() {
    let before = parse_oom("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", false);
    let after = parse_oom("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", false);
    assert!(before.oom_since(&after));
    assert!(!after.oom_since(&after));
    let hung = parse_oom("oom_kill_disable 1\nunder_oom 1\n", false);
    assert!(before.oom_since(&hung));
    let v2 = parse_oom("low 0\nhigh 0\nmax 9\noom 1\noom_kill 0\n", true);
    assert_eq!(v2, OomCounters { kills: 0, ooms: 1 });
}

#[test]
fn missing_cgroup_is_an_error() {
    let cg = Cgroup {
        dirs: vec![v1_dir(Path::new("/nonexistent/rt-test/x"), "memory")],
        created: Vec::new(),
        systemd: None,
    };
    assert!(stats(&cg).is_err());
}
