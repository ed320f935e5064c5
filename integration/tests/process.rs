//! The container process: args, env, cwd, user, umask, rlimits, no_new_privs, oom score,
//! sysctls, capabilities, terminal.

use integration::console::{read_pty, ConsoleSocket};
use integration::*;
use serde_json::json;
use std::fs;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// Capability numbers (linux/capability.h).
fn cap_bit(name: &str) -> u32 {
    match name {
        "CAP_CHOWN" => 0,
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_KILL" => 5,
        "CAP_SETGID" => 6,
        "CAP_SETUID" => 7,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_ADMIN" => 21,
        "CAP_AUDIT_WRITE" => 29,
        _ => panic!("unknown capability {name}"),
    }
}

fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| m | 1u64 << cap_bit(n))
}

fn parse_mask(status: &str, key: &str) -> u64 {
    let v = status_field(status, key).unwrap_or_else(|| panic!("{key} missing in:\n{status}"));
    u64::from_str_radix(v, 16).unwrap()
}

#[test]
fn args_are_passed_verbatim() {
    let h = Ctx::new("args_are_passed_verbatim");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&[
        "sh",
        "-c",
        "printf '[%s]' \"$0\" \"$@\"; echo",
        "zero",
        "one two",
        "",
        "*",
    ]);
    assert_eq!(h.run_ok(&id, &b), "[zero][one two][][*]\n");
}

#[test]
fn program_found_via_path() {
    let h = Ctx::new("program_found_via_path");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.args(&["echo", "via-path"]);
    assert_eq!(h.run_ok(&id, &b), "via-path\n");
}

#[test]
fn env_is_exact() {
    let h = Ctx::new("env_is_exact");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.env("FOO=bar baz").env("EMPTY=").env("WITH_EQ=a=b");
    b.args(&["env"]);
    let out = h.run_ok(&id, &b);
    let lines: Vec<&str> = out.lines().collect();
    for want in ["FOO=bar baz", "EMPTY=", "WITH_EQ=a=b", "TERM=xterm"] {
        assert!(lines.contains(&want), "{want} missing from:\n{out}");
    }
    assert!(lines.iter().any(|l| l.starts_with("PATH=/usr/local/sbin:")));
    // Nothing of the runtime's own environment leaks in (the harness sets a marker there
    // with a different value than the container's).
    let marks: Vec<&&str> = lines.iter().filter(|l| l.starts_with(MARK_VAR)).collect();
    assert_eq!(marks, [&format!("{MARK_VAR}={id}").as_str()]);
}

#[test]
fn cwd_is_honoured() {
    let h = Ctx::new("cwd_is_honoured");
    let id = h.id();
    let mut b = h.bundle(&id);
    fs::create_dir_all(b.path_in_rootfs("/srv/app")).unwrap();
    b.config["process"]["cwd"] = json!("/srv/app");
    b.sh("pwd; touch here");
    assert_eq!(h.run_ok(&id, &b), "/srv/app\n");
    assert!(b.path_in_rootfs("/srv/app/here").exists());
}

#[test]
fn user_uid_gid_additional_gids() {
    let h = Ctx::new("user_uid_gid_additional_gids");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 20] });
    b.sh("id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status");
    let out = h.run_ok(&id, &b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let status = lines[2..].join("\n");
    let ws = |k: &str| -> Vec<String> {
        status_field(&status, k)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(ws("Uid"), ["1000"; 4]);
    assert_eq!(ws("Gid"), ["1000"; 4]);
    assert_eq!(ws("Groups"), ["10", "20"]);
}

#[test]
fn user_root_has_no_supplementary_groups() {
    let h = Ctx::new("user_root_has_no_supplementary_groups");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("grep -E '^Groups:' /proc/self/status");
    let out = h.run_ok(&id, &b);
    assert_eq!(
        status_field(&out, "Groups").unwrap(),
        "",
        "host groups leaked: {out}"
    );
}

#[test]
fn umask() {
    let h = Ctx::new("umask");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["user"]["umask"] = json!(0o027);
    b.sh("umask; touch /tmp/f; mkdir /tmp/d; stat -c %a /tmp/f /tmp/d");
    assert_eq!(h.run_ok(&id, &b), "0027\n640\n750\n");
}

#[test]
fn default_umask_is_0022() {
    let h = Ctx::new("default_umask_is_0022");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.sh("umask");
    assert_eq!(h.run_ok(&id, &b), "0022\n");
}

#[test]
fn rlimits() {
    let h = Ctx::new("rlimits");
    let id = h.id();
    let mut b = h.bundle(&id);
    // Without CAP_SYS_RESOURCE (missing on some of these machines, even for root) a limit
    // cannot go above the caller's hard limit: keep under it there.
    let nofile = host::rlimit_within_reach(libc::RLIMIT_NOFILE, 1000, 2000);
    let nproc = host::rlimit_within_reach(libc::RLIMIT_NPROC, 300, 400);
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": nofile.0, "hard": nofile.1 },
        { "type": "RLIMIT_CORE", "soft": 0, "hard": 0 },
        { "type": "RLIMIT_NPROC", "soft": nproc.0, "hard": nproc.1 }
    ]);
    b.sh("ulimit -n; ulimit -H -n; grep -E '^Max (open files|core file size|processes)' /proc/self/limits");
    let out = h.run_ok(&id, &b);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], [nofile.0.to_string()]);
    assert_eq!(lines[1], [nofile.1.to_string()]);
    let limit = |name: &str| -> (String, String) {
        let l = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {out}"));
        let f: Vec<&str> = l[name.len()..].split_whitespace().collect();
        (f[0].to_string(), f[1].to_string())
    };
    let pair = |(s, h): (u64, u64)| (s.to_string(), h.to_string());
    assert_eq!(limit("Max open files"), pair(nofile));
    assert_eq!(limit("Max core file size"), ("0".into(), "0".into()));
    assert_eq!(limit("Max processes"), pair(nproc));
}

#[test]
fn rlimit_above_hard_limit_fails() {
    let h = Ctx::new("rlimit_above_hard_limit_fails");
    let hard = host::rlimit_hard(libc::RLIMIT_NOFILE);
    // A limit the kernel refuses to anyone: RLIMIT_NOFILE above fs.nr_open.
    let nr_open: u64 = fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut too_high = vec![nr_open + 1];
    if host::has_capability(host::CAP_SYS_RESOURCE) || hard == libc::RLIM_INFINITY {
        skip(
            "rlimit_above_hard_limit_fails",
            "CAP_SYS_RESOURCE available (or no hard limit): limits can be raised, only one \
             above fs.nr_open is checked",
        );
    } else {
        // Without CAP_SYS_RESOURCE: anything above our hard limit.
        too_high.push(hard + 1);
    }
    for n in too_high {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": n, "hard": n }]);
        b.args(&["true"]);
        let out = h.create(&id, &b);
        out.expect_code(1);
        h.assert_nothing_left(&id);
    }
}

#[test]
fn no_new_privileges() {
    let h = Ctx::new("no_new_privileges");
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.sh("grep NoNewPrivs /proc/self/status");
        let out = h.run_ok(&id, &b);
        assert_eq!(
            status_field(&out, "NoNewPrivs"),
            Some(want),
            "nnp={nnp}: {out}"
        );
    }
}

#[test]
fn oom_score_adj() {
    let h = Ctx::new("oom_score_adj");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.args(&["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(h.run_ok(&id, &b), "500\n");
}

#[test]
fn sysctl() {
    let h = Ctx::new("sysctl");
    let id = h.id();
    let mut b = h.bundle(&id);
    let host_shmmax = fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let host_fwd = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    b.config["linux"]["sysctl"] = json!({
        "kernel.shmmax": "123456789",
        "net.ipv4.ip_forward": "1"
    });
    let mut script = "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward".to_string();
    let mut want = "123456789\n1\n".to_string();
    // The slash spelling, on a sysctl the kernel may lack (CONFIG_SYN_COOKIES).
    if host::has_sysctl("net.ipv4.tcp_syncookies") {
        b.config["linux"]["sysctl"]["net/ipv4/tcp_syncookies"] = json!("0");
        script += " /proc/sys/net/ipv4/tcp_syncookies";
        want += "0\n";
    } else {
        skip(
            "sysctl",
            "kernel without net.ipv4.tcp_syncookies: the slash spelling is not checked",
        );
    }
    b.sh(&script);
    assert_eq!(h.run_ok(&id, &b), want);
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
}

#[test]
fn sysctl_outside_namespace_rejected() {
    let h = Ctx::new("sysctl_outside_namespace_rejected");
    let id = h.id();
    let mut b = h.bundle(&id);
    // No network namespace: changing net.* would change the host; must be refused.
    b.remove_namespace("network");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
    b.args(&["true"]);
    let before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    h.create(&id, &b).expect_error();
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        before
    );
    h.assert_nothing_left(&id);
}

#[test]
fn capabilities_root() {
    let h = Ctx::new("capabilities_root");
    let id = h.id();
    let mut b = h.bundle(&id);
    let set = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set
    });
    b.args(&["cat", "/proc/self/status"]);
    let st = h.run_ok(&id, &b);
    let m = cap_mask(&set);
    assert_eq!(parse_mask(&st, "CapBnd"), m, "bounding");
    // uid 0 execve: permitted/effective become the bounding set (no file caps needed).
    assert_eq!(parse_mask(&st, "CapPrm"), m, "permitted");
    assert_eq!(parse_mask(&st, "CapEff"), m, "effective");
    assert_eq!(parse_mask(&st, "CapAmb"), 0, "ambient");
    assert_eq!(parse_mask(&st, "CapInh"), 0, "inheritable");
}

#[test]
fn capabilities_non_root_with_ambient() {
    let h = Ctx::new("capabilities_non_root_with_ambient");
    let id = h.id();
    let mut b = h.bundle(&id);
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
    ];
    let permitted = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let inheritable = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let ambient = ["CAP_NET_BIND_SERVICE"];
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    b.config["process"]["capabilities"] = json!({
        "bounding": bounding, "effective": permitted, "permitted": permitted,
        "inheritable": inheritable, "ambient": ambient
    });
    b.args(&["cat", "/proc/self/status"]);
    let st = h.run_ok(&id, &b);
    // Non-root execve without file caps: P' = E' = ambient.
    assert_eq!(parse_mask(&st, "CapBnd"), cap_mask(&bounding), "bounding");
    assert_eq!(
        parse_mask(&st, "CapInh"),
        cap_mask(&inheritable),
        "inheritable"
    );
    assert_eq!(parse_mask(&st, "CapAmb"), cap_mask(&ambient), "ambient");
    assert_eq!(parse_mask(&st, "CapPrm"), cap_mask(&ambient), "permitted");
    assert_eq!(parse_mask(&st, "CapEff"), cap_mask(&ambient), "effective");
}

#[test]
fn capabilities_are_enforced() {
    let h = Ctx::new("capabilities_are_enforced");
    let id = h.id();
    let mut b = h.bundle(&id);
    // Default spec: no CAP_CHOWN, no CAP_DAC_OVERRIDE.
    fs::write(b.path_in_rootfs("/tmp/owned"), "x").unwrap();
    b.sh("chown 1000 /tmp/owned 2>/dev/null && echo chown-ok || echo chown-denied");
    assert_eq!(h.run_ok(&id, &b), "chown-denied\n");
}

#[test]
fn terminal_with_console_socket() {
    let h = Ctx::new("terminal_with_console_socket");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["terminal"] = json!(true);
    b.sh("tty; [ -t 0 ] && [ -t 1 ] && echo is-a-tty; stty size; echo done");
    b.config["process"]["consoleSize"] = json!({ "height": 33, "width": 111 });
    b.save();
    let sock_path = h.dir.join("console.sock");
    let sock = ConsoleSocket::listen(&sock_path);
    let bdir = b.dir.to_str().unwrap();
    let sp = sock_path.to_str().unwrap();
    h.rt(&["create", "--bundle", bdir, "--console-socket", sp, &id])
        .ok();
    h.track_pid(h.state_ok(&id)["pid"].as_i64().unwrap() as i32);
    let master = sock.receive(T).expect("pty master over the console socket");
    h.start(&id).ok();
    let text = read_pty(master, T).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{text:?}"
    );
    assert!(lines.contains(&"is-a-tty"), "{text:?}");
    // runc 1.1.5 ignores process.consoleSize (it only uses it for `exec --tty`).
    if !is_runc() {
        assert!(
            lines.contains(&"33 111"),
            "consoleSize not applied: {text:?}"
        );
    }
    assert_eq!(lines.last(), Some(&"done"), "{text:?}");
    h.wait_status(&id, "stopped", T);
    h.delete(&id).ok();
}

#[test]
fn terminal_without_console_socket_fails() {
    let h = Ctx::new("terminal_without_console_socket_fails");
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["process"]["terminal"] = json!(true);
    b.args(&["true"]);
    h.create(&id, &b).expect_error();
    h.assert_nothing_left(&id);
}
