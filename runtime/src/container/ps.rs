//! `rt ps`: the processes of a container's cgroup (or pid namespace, when it has no
//! cgroup), as a JSON array of pids or as the host's `ps` output filtered to them (runc's
//! behaviour and messages).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::bail;
use crate::cgroups::stats::all_pids;
use crate::error::{Error, Result};
use crate::state::{StateDir, Status};

/// The container's pids: every process of its cgroup tree. A stopped container whose
/// cgroup is gone has none.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let dir = StateDir::open_unlocked(root, id)?;
    let state = dir.load()?;
    let stopped = dir.status(&state) == Status::Stopped;
    if stopped && !state.cgroup.dirs.iter().any(|d| d.path.exists()) {
        return Ok(Vec::new());
    }
    if state.cgroup.dirs.is_empty() {
        // No cgroup (rootless, or --cgroup-manager=disabled): the init's pid namespace
        // tells who belongs; without one, the init alone.
        let members = super::kill::pidns_members(&state);
        return Ok(if members.is_empty() {
            vec![state.pid]
        } else {
            members
        });
    }
    all_pids(&state.cgroup)
}

pub fn ps(
    root: &Path,
    id: &str,
    format: &str,
    ps_args: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let pids = pids(root, id)?;
    let w = |out: &mut dyn Write, s: &str| {
        out.write_all(s.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Error::io("write to stdout", e))
    };
    match format {
        "table" => {}
        "json" => return w(out, &format!("{}\n", pids_json(&pids))),
        _ => bail!("invalid format option"),
    }
    let default_args = ["-ef".to_string()];
    let args = if ps_args.is_empty() {
        &default_args[..]
    } else {
        ps_args
    };
    let output = run_ps(args)?;
    w(out, &filter_ps_output(&output, &pids)?)
}

/// runc encodes a Go slice: `null` when empty.
pub fn pids_json(pids: &[i32]) -> String {
    if pids.is_empty() {
        "null".to_string()
    } else {
        serde_json::to_string(pids).unwrap_or_default()
    }
}

/// Run the host's `ps` with `args`, stdout and stderr together (as runc does).
fn run_ps(args: &[String]) -> Result<String> {
    let (reader, writer) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", e))?;
    let writer2: OwnedFd = writer.try_clone().map_err(|e| Error::io("dup pipe", e))?;
    let mut child = Command::new("ps")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .spawn()
        .map_err(|e| Error::io("exec: \"ps\"", e))?;
    let mut output = Vec::new();
    // The write ends went with the (dropped) Command: EOF comes when ps exits.
    let mut reader = std::fs::File::from(reader);
    let read = reader.read_to_end(&mut output);
    let status = child.wait().map_err(|e| Error::io("wait for ps", e))?;
    read.map_err(|e| Error::io("read ps output", e))?;
    let output = String::from_utf8_lossy(&output).into_owned();
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exit status {c}"),
            None => format!("ps: {status}"),
        };
        bail!("{how}: {output}");
    }
    Ok(output)
}

/// The index of the "PID" column in ps's header line.
pub fn pid_index(header: &str) -> Result<usize> {
    header
        .split_whitespace()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::msg("couldn't find PID field in ps output"))
}

/// The header line and the lines whose PID column is one of `pids`, each ending in '\n'.
pub fn filter_ps_output(output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = output.split('\n');
    let header = lines.next().unwrap_or("");
    let idx = pid_index(header)?;
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let field = line.split_whitespace().nth(idx).unwrap_or("");
        let pid: i32 = field.parse().map_err(|_| {
            Error::msg(format!(
                "unable to parse pid: strconv.Atoi: parsing {field:?}: invalid syntax"
            ))
        })?;
        if pids.contains(&pid) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS_EF: &str = "UID        PID  PPID  C STIME TTY          TIME CMD\n\
root         1     0  0 10:00 ?        00:00:01 /sbin/init\n\
root      4242     1  0 10:01 ?        00:00:00 sh -c while :; do sleep 1; done\n\
root      4250  4242  0 10:01 ?        00:00:00 sleep 1\n\
root      4300     1  0 10:02 ?        00:00:00 4242 is not my pid\n";

    #[test]
    fn filters_by_the_pid_column() {
        let out = filter_ps_output(PS_EF, &[4242, 4250]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("UID        PID"));
        assert!(lines[1].contains("sh -c"));
        assert!(lines[2].contains("sleep 1"));
        // Only the header when nothing matches.
        assert_eq!(filter_ps_output(PS_EF, &[]).unwrap().lines().count(), 1);
    }

    #[test]
    fn pid_column_anywhere() {
        let text =
            "  PID TTY      STAT   TIME COMMAND\n  12 ?        Ss     0:00 sh\n  13 ?  S 0:00 x\n";
        assert_eq!(pid_index(text.lines().next().unwrap()).unwrap(), 0);
        assert_eq!(filter_ps_output(text, &[13]).unwrap().lines().count(), 2);
        assert!(pid_index("USER COMMAND").is_err());
        let err = filter_ps_output("PID CMD\nabc x\n", &[1]).unwrap_err();
        assert!(err.to_string().starts_with("unable to parse pid"), "{err}");
    }

    #[test]
    fn json_like_go() {
        assert_eq!(pids_json(&[]), "null");
        assert_eq!(pids_json(&[12, 13]), "[12,13]");
    }
}
