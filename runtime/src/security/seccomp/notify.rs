//! Handing the SCMP_ACT_NOTIFY listener to the seccomp agent: one connection to
//! `listenerPath` (AF_UNIX, SOCK_STREAM) carrying the "container process state" JSON with
//! the fd in SCM_RIGHTS, then closed (runtime-spec config-linux.md#the-container-process-state).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{send, sendmsg, ControlMessage, MsgFlags, UnixAddr};
use serde_json::{Map, Value};

use super::SeccompPlan;
use crate::error::{Context, Error, Result};

/// Send the listener fd with the container state JSON to listenerPath over SCM_RIGHTS, as
/// the runtime-spec describes (the "seccomp state" JSON: ociVersion, fds ["seccompFd"], pid,
/// metadata, state{...}). `state_json` is the container's state (`rt state` output).
pub fn send_listener(
    plan: &SeccompPlan,
    listener: OwnedFd,
    pid: i32,
    state_json: &str,
) -> Result<()> {
    let Some(path) = plan.listener_path() else {
        crate::bail!("linux.seccomp.listenerPath: not set, nowhere to send the seccomp listener");
    };
    let payload = process_state(plan, pid, state_json)?;
    let what = || {
        format!(
            "linux.seccomp.listenerPath: send the seccomp listener to {}",
            path.display()
        )
    };
    let stream = UnixStream::connect(path)
        .ctx(|| format!("linux.seccomp.listenerPath: connect to {}", path.display()))?;
    let fds = [listener.as_raw_fd()];
    let sent = loop {
        match sendmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &[IoSlice::new(&payload)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            r => break r.ctx(what)?,
        }
    };
    // The fd went with the first part; the rest of a long state follows as plain data.
    let mut rest = &payload[sent..];
    while !rest.is_empty() {
        match send(stream.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
            Err(Errno::EINTR) => continue,
            r => rest = &rest[r.ctx(what)?..],
        }
    }
    // Dropping the stream closes the connection, as the spec asks; the agent holds its
    // own copy of the listener now.
    Ok(())
}

fn process_state(plan: &SeccompPlan, pid: i32, state_json: &str) -> Result<Vec<u8>> {
    let state: Value = serde_json::from_str(state_json).map_err(|e| {
        Error::msg(format!(
            "seccomp listener: the container state is not JSON: {e}"
        ))
    })?;
    let version = state
        .get("ociVersion")
        .and_then(Value::as_str)
        .unwrap_or(crate::state::OCI_VERSION)
        .to_string();
    let mut m = Map::new();
    m.insert("ociVersion".into(), version.into());
    m.insert("fds".into(), vec!["seccompFd"].into());
    m.insert("pid".into(), pid.into());
    if let Some(meta) = plan.listener_metadata() {
        m.insert("metadata".into(), meta.into());
    }
    m.insert("state".into(), state);
    serde_json::to_vec(&Value::Object(m)).map_err(|e| {
        Error::msg(format!(
            "seccomp listener: encode the container process state: {e}"
        ))
    })
}
