//! Programs and services outside the kernel: criu (for checkpoint and restore; `criu check`
//! runs with a time limit), systemd as PID 1 and the D-Bus system bus (for the systemd
//! cgroup driver).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{io_error, Item};

const AREA: &str = "tools";

/// `criu check` takes a fraction of a second, but it reads the whole kernel's state:
/// never let it hold `rt check` for long.
const CRIU_CHECK_LIMIT: Duration = Duration::from_secs(10);

/// criu caches what it learnt about the kernel here (on success): `rt check` leaves it only
/// where it was before.
const CRIU_CACHE: &str = "/run/criu.kdat";

pub fn probe() -> Vec<Item> {
    let mut items = criu();
    items.push(systemd());
    items.push(dbus());
    items
}

fn criu() -> Vec<Item> {
    let version = Item::new(
        AREA,
        "criu.version",
        "find criu ($RT_CRIU, PATH, /usr/sbin...); run `criu --version`",
    )
    .affects(&["rt checkpoint", "rt restore"]);
    let check = Item::new(
        AREA,
        "criu.check",
        format!(
            "run `criu check` (killed after {}s)",
            CRIU_CHECK_LIMIT.as_secs()
        ),
    )
    .affects(&["rt checkpoint", "rt restore"]);
    let bin = match crate::criu::find() {
        Ok(b) => b,
        Err(e) => {
            return vec![
                version.answer(false, e.to_string()),
                check.answer(false, "not run: no criu"),
            ]
        }
    };
    let version = match run_limited(&bin, &["--version"], CRIU_CHECK_LIMIT) {
        Ok((0, out)) => {
            let v = out
                .lines()
                .find_map(|l| l.strip_prefix("Version:"))
                .unwrap_or(out.trim())
                .trim()
                .to_string();
            version
                .answer(true, format!("{}: exit 0", bin.display()))
                .value(v)
        }
        Ok((code, out)) => version.answer(
            false,
            format!("{}: exit {code}: {}", bin.display(), last_line(&out)),
        ),
        Err(e) => version.answer(false, format!("{}: {e}", bin.display())),
    };
    let cache_was_there = Path::new(CRIU_CACHE).exists();
    let check = match run_limited(&bin, &["check"], CRIU_CHECK_LIMIT) {
        Ok((0, out)) => check.answer(true, format!("exit 0: {}", last_line(&out))),
        Ok((code, out)) => check.answer(false, format!("exit {code}: {}", last_line(&out))),
        Err(e) => check.answer(false, e),
    };
    if !cache_was_there {
        let _ = std::fs::remove_file(CRIU_CACHE);
    }
    vec![version, check]
}

fn last_line(out: &str) -> &str {
    out.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Run `bin args` with stdin closed and stdout+stderr captured; killed (it is our own
/// child) and reaped when it outlives `limit`. Returns the exit code (128+signal when
/// killed by one) and the output, stderr after stdout.
pub fn run_limited(bin: &Path, args: &[&str], limit: Duration) -> Result<(i32, String), String> {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {}", io_error(&e)))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer in {}s: killed", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("wait: {}", io_error(&e))),
        }
    };
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok((code, out))
}

fn systemd() -> Item {
    let there = Path::new("/run/systemd/system").is_dir();
    Item::new(
        AREA,
        "systemd.pid1",
        "look for the directory /run/systemd/system (sd_booted)",
    )
    .affects(&["--systemd-cgroup", "linux.cgroupsPath=slice:prefix:name"])
    .answer(
        there,
        if there {
            "present"
        } else {
            "absent: PID 1 is not systemd"
        },
    )
}

fn dbus() -> Item {
    let path = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| {
            a.strip_prefix("unix:path=")
                .map(|p| p.split([',', ';']).next().unwrap_or(p).to_string())
        })
        .unwrap_or_else(|| "/run/dbus/system_bus_socket".into());
    let item = Item::new(
        AREA,
        "dbus.system_bus",
        format!("connect(2) to {path}, then close"),
    )
    .affects(&["--systemd-cgroup (as a user other than root, or without /run/systemd/private)"]);
    match UnixStream::connect(&path) {
        Ok(_) => item.answer(true, "connected"),
        Err(e) => item.answer(false, io_error(&e)),
    }
}
