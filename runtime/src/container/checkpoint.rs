//! `rt checkpoint`: dump a running container with `criu dump` (or `criu pre-dump`), as
//! runc does. Without --leave-running (and --pre-dump) criu kills the container after a
//! successful dump and rt then destroys it, as runc does: a later `rt restore` makes a new
//! container from the images.

use std::path::Path;

use crate::bail;
use crate::cli::CheckpointArgs;
use crate::container::delete;
use crate::criu::{self, Options, Stdio3};
use crate::error::Result;
use crate::spec::Spec;
use crate::state::{StateDir, Status};

pub fn checkpoint(root: &Path, a: &CheckpointArgs) -> Result<()> {
    crate::state::validate_id(&a.id)?;
    crate::rootless::refuse("checkpoint", "criu needs the host's root")?;
    let opts = Options::from_args(&a.criu)?;
    if a.page_server.is_some() {
        bail!("--page-server is not supported by rt");
    }
    if a.status_fd.is_some_and(|fd| fd >= 0) {
        bail!("--status-fd is only meaningful with --lazy-pages, which rt does not support");
    }
    let dir = StateDir::open(root, &a.id)?;
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Running | Status::Paused => {}
        s => bail!(
            "cannot checkpoint container {}: it is {}, not running",
            a.id,
            s.as_str()
        ),
    }
    check_supported(&state.config)?;
    let criu_bin = criu::find()?;
    opts.make_dirs()?;

    let (action, log) = if a.pre_dump {
        ("pre-dump", "pre-dump.log")
    } else {
        ("dump", "dump.log")
    };
    let mut args = vec![action.to_string(), "-t".into(), state.pid.to_string()];
    args.extend(opts.base_args(log));
    if let Some(parent) = &a.parent_path {
        // criu takes it relative to the image directory (e.g. ../pre), as runc passes it.
        args.extend(["--prev-images-dir".into(), parent.display().to_string()]);
    }
    if a.pre_dump || a.parent_path.is_some() {
        args.push("--track-mem".into());
    }
    if a.leave_running && !a.pre_dump {
        args.push("--leave-running".into());
    }
    if let Some(freezer) = criu::freezer_dir(&state.cgroup) {
        args.extend(["--freeze-cgroup".into(), freezer.display().to_string()]);
    }
    if state.config.has_namespace("network") && !opts_empty_net(&args) {
        args.extend(criu::network_lock_args());
    }
    for m in criu::external_mounts(&state.config, &state.bundle, &state.cgroup)? {
        args.extend(["--ext-mount-map".into(), format!("{}:{}", m.dest, m.dest)]);
    }
    for p in criu::masked_files(&state.config, state.pid) {
        args.extend(["--ext-mount-map".into(), format!("{p}:/dev/null")]);
    }
    if !a.pre_dump {
        let (links, stdio) = criu::stdio_of(state.pid);
        for s in stdio.iter().filter(|s| s.external) {
            args.extend(["--external".into(), s.key.clone()]);
        }
        criu::save_stdio(&opts.image_dir, &links, &stdio)?;
    }
    criu::run(
        &criu_bin,
        action,
        &args,
        &opts.log_path(log),
        Stdio3::Capture,
        Vec::new(),
    )?;
    log::debug!(
        "checkpoint: container {} dumped to {}",
        a.id,
        opts.image_dir.display()
    );
    if a.pre_dump || a.leave_running {
        return Ok(());
    }
    // criu killed the container's processes once the images were complete.
    if crate::state::process_alive(state.pid, state.pid_start_time) {
        delete::kill_and_wait(&state)?;
    }
    delete::destroy(dir, &state)
}

fn opts_empty_net(args: &[String]) -> bool {
    args.windows(2)
        .any(|w| w[0] == "--empty-ns" && w[1] == "net")
}

/// What rt does not checkpoint: terminals (the pty master lives outside, held by the
/// caller of --console-socket) and namespaces joined by path (criu would need them named as
/// external resources).
pub(crate) fn check_supported(spec: &Spec) -> Result<()> {
    if spec.process.as_ref().is_some_and(|p| p.terminal) {
        bail!("process.terminal: containers with a terminal cannot be checkpointed or restored by rt yet");
    }
    for ns in &spec.linux().namespaces {
        if ns.path.as_deref().is_some_and(|p| !p.is_empty()) {
            bail!(
                "linux.namespaces: the container joins the {} namespace {}; rt cannot checkpoint or restore a container that shares a namespace",
                ns.kind,
                ns.path.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(())
}
