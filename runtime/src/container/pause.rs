//! `rt pause` / `rt resume`: freeze or thaw every process of the container through its
//! cgroup freezer (v1 freezer.state, v2 cgroup.freeze).

use std::path::Path;

use crate::bail;
use crate::cgroups;
use crate::error::Result;
use crate::state::{State, StateDir, Status};

/// The status as runc sees it for pause/resume: a frozen container is paused even when it
/// was never started (runc allows pausing a created container).
fn status(dir: &StateDir, state: &State) -> Status {
    match dir.status(state) {
        Status::Created if cgroups::is_frozen(&state.cgroup) => Status::Paused,
        s => s,
    }
}

/// Freeze a running (or created) container; anything else is "container not running".
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    match status(&dir, &state) {
        Status::Running | Status::Created => state.cgroup.freeze(true),
        _ => bail!("container not running"),
    }
}

/// Thaw a paused container; anything else is "container not paused".
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    match status(&dir, &state) {
        Status::Paused => state.cgroup.freeze(false),
        _ => bail!("container not paused"),
    }
}
