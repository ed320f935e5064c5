//! `rt state` and `rt list`: read-only views, in runc's formats.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::state::{list_ids, StateDir};

/// The OCI state JSON, pretty-printed like runc's (two spaces, no trailing newline).
pub fn state(root: &Path, id: &str) -> Result<String> {
    let dir = StateDir::open_unlocked(root, id)?;
    let state = dir.load()?;
    let status = dir.status(&state);
    let oci = state.oci(status, String::new());
    serde_json::to_string_pretty(&oci).map_err(|e| Error::msg(format!("encode state: {e}")))
}

#[derive(Serialize)]
struct Entry {
    #[serde(rename = "ociVersion")]
    oci_version: String,
    id: String,
    pid: i32,
    status: String,
    bundle: String,
    rootfs: String,
    created: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<String, String>,
    owner: String,
}

fn entries(root: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for id in list_ids(root)? {
        // A container deleted while we list is simply not listed.
        let Ok(dir) = StateDir::open_unlocked(root, &id) else {
            continue;
        };
        let Ok(state) = dir.load() else { continue };
        let status = dir.status(&state);
        let oci = state.oci(status, dir.owner());
        out.push(Entry {
            oci_version: oci.oci_version.to_string(),
            id: oci.id.to_string(),
            pid: oci.pid,
            status: oci.status.to_string(),
            bundle: oci.bundle.display().to_string(),
            rootfs: oci.rootfs.display().to_string(),
            created: oci.created.to_string(),
            annotations: oci.annotations.clone(),
            owner: oci.owner,
        });
    }
    Ok(out)
}

pub fn list(root: &Path, json: bool, quiet: bool, out: &mut dyn Write) -> Result<()> {
    let entries = entries(root)?;
    let w = |out: &mut dyn Write, s: String| {
        out.write_all(s.as_bytes())
            .map_err(|e| Error::io("write to stdout", e))
    };
    if quiet {
        for e in &entries {
            w(out, format!("{}\n", e.id))?;
        }
        return Ok(());
    }
    if json {
        // runc prints `null` for no containers (a nil Go slice).
        let text = if entries.is_empty() {
            "null".to_string()
        } else {
            serde_json::to_string(&entries).map_err(|e| Error::msg(format!("encode list: {e}")))?
        };
        return w(out, format!("{text}\n"));
    }
    let rows: Vec<[String; 6]> =
        std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from))
            .chain(entries.iter().map(|e| {
                [
                    e.id.clone(),
                    e.pid.to_string(),
                    e.status.clone(),
                    e.bundle.clone(),
                    e.created.clone(),
                    e.owner.clone(),
                ]
            }))
            .collect();
    // Go's tabwriter(minwidth 12, padding 3): each column as wide as its widest cell + 3,
    // at least 12; the last column unpadded.
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max((c.len() + 3).max(12));
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 5 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<width$}", width = widths[i]));
            }
        }
        w(out, format!("{line}\n"))?;
    }
    Ok(())
}
