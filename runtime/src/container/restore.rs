//! `rt restore`: a new container from a bundle whose process is brought back by
//! `criu restore` from a checkpoint's images, as runc does it: rt makes the state directory
//! and the cgroup, criu starts inside that cgroup and rebuilds the namespaces, mounts and
//! process tree (the root task a child of rt: --restore-sibling), then rt records the
//! state. In the foreground it waits, relays signals and deletes the container afterwards,
//! like `rt run`; with --detach it returns once the process is back. A failed restore
//! leaves nothing: no state directory, cgroup, mount (all made in a private mount
//! namespace) or process.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::bail;
use crate::cgroups::{self, Cgroup};
use crate::cli::RestoreArgs;
use crate::container::checkpoint::check_supported;
use crate::container::create::{absolute, effective_resources, write_pid_file};
use crate::container::delete;
use crate::container::foreground::Foreground;
use crate::criu::{self, Options, Stdio3};
use crate::error::{Context, Error, Result};
use crate::rootfs::mounts;
use crate::rootfs::path::{fd_path, Kind, Root};
use crate::spec::Spec;
use crate::state::{State, StateDir, Status};
use crate::{sys, timefmt};

const PID_FILE: &str = "criu-restore.pid";

/// Returns rt's exit status: 0 detached, else the restored program's (128+N if killed).
pub fn restore(root: &Path, a: &RestoreArgs) -> Result<i32> {
    crate::state::validate_id(&a.id)?;
    crate::rootless::refuse("restore", "criu needs the host's root")?;
    let opts = Options::from_args(&a.criu)?;
    if !opts.image_dir.is_dir() {
        bail!(
            "restore: image path {} does not exist or is not a directory",
            opts.image_dir.display()
        );
    }
    if !opts.image_dir.join("inventory.img").is_file() {
        bail!(
            "restore: {} holds no checkpoint (no inventory.img)",
            opts.image_dir.display()
        );
    }
    let bundle = absolute(&a.bundle)?;
    let spec = Spec::load(&bundle)?;
    spec.process()?;
    let rootfs = absolute(&spec.rootfs(&bundle)?)?;
    if !rootfs.is_dir() {
        bail!(
            "root.path: rootfs {} does not exist or is not a directory",
            rootfs.display()
        );
    }
    spec.require_mount_namespace()?;
    check_supported(&spec)?;
    if a.console_socket.is_some() {
        log::warn!("restore: --console-socket ignored: process.terminal is false");
    }
    let criu_bin = criu::find()?;
    fs::DirBuilder::new()
        .recursive(true)
        .create(&opts.work_dir)
        .ctx(|| format!("mkdir {}", opts.work_dir.display()))?;

    // In the foreground the restored init is our child: wait for it, relaying signals.
    let foreground = if a.detach {
        None
    } else {
        if !a.no_subreaper {
            sys::set_child_subreaper().ctx(|| "prctl(PR_SET_CHILD_SUBREAPER)")?;
        }
        Some(Foreground::begin()?)
    };

    let dir = StateDir::create(root, &a.id)?;
    let mut cgroup = Cgroup::default();
    let state = match restore_in(
        &dir,
        a,
        &opts,
        &criu_bin,
        &spec,
        &bundle,
        &rootfs,
        &mut cgroup,
    ) {
        Ok(state) => state,
        Err(e) => {
            // Anything criu may have left running sits in the cgroup: destroy kills it.
            if let Err(ce) = cgroup.destroy() {
                log::warn!("cleanup after failed restore: {ce}");
            }
            if let Err(de) = dir.remove() {
                log::warn!("cleanup after failed restore: {de}");
            }
            return Err(e);
        }
    };
    drop(dir); // other commands (kill, state) may look at the container from now on
    log::debug!(
        "restore: container {} restored, init pid {}",
        state.id,
        state.pid
    );
    let Some(foreground) = foreground else {
        return Ok(0);
    };
    let status = foreground.wait(state.pid, None)?;
    let dir = StateDir::open(root, &a.id)?;
    let state = dir.load()?;
    if dir.status(&state) != Status::Stopped {
        delete::kill_and_wait(&state)?;
    }
    delete::destroy(dir, &state)?;
    Ok(status)
}

#[allow(clippy::too_many_arguments)]
fn restore_in(
    dir: &StateDir,
    a: &RestoreArgs,
    opts: &Options,
    criu_bin: &Path,
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroup: &mut Cgroup,
) -> Result<State> {
    let hierarchies = cgroups::hierarchies()?;
    *cgroup = cgroups::plan(&hierarchies, spec.linux().cgroups_path.as_deref(), &a.id)?;
    cgroup.create()?;
    cgroup.set(&effective_resources(spec))?;

    prepare_root(spec, bundle, rootfs)?;

    let log = "restore.log";
    let pid_file = dir.path.join(PID_FILE);
    let mut args = vec!["restore".to_string()];
    args.extend(opts.base_args(log));
    args.extend([
        "--root".to_string(),
        rootfs.display().to_string(),
        "--restore-detached".into(),
        "--restore-sibling".into(),
        "--evasive-devices".into(),
        "--pidfile".into(),
        pid_file.display().to_string(),
    ]);
    args.extend(criu::cgroup_root_args(cgroup)?);
    for m in criu::external_mounts(spec, bundle, cgroup)? {
        args.extend([
            "--ext-mount-map".into(),
            format!("{}:{}", m.dest, m.source.display()),
        ]);
    }
    if spec
        .linux()
        .masked_paths
        .iter()
        .any(|p| !p.trim_matches('/').is_empty())
    {
        args.extend(["--ext-mount-map".into(), "/dev/null:/dev/null".into()]);
    }
    for s in criu::load_stdio(&opts.image_dir)? {
        args.extend(["--inherit-fd".into(), format!("fd[{}]:{}", s.fd, s.key)]);
    }
    // criu joins the container's cgroup before it forks the restored tasks.
    let procs = cgroup
        .dirs
        .iter()
        .map(|d| {
            let p = d.path.join("cgroup.procs");
            fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .ctx(|| format!("open {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let result = criu::run(
        criu_bin,
        "restore",
        &args,
        &opts.log_path(log),
        Stdio3::Inherit,
        procs,
    );
    // The bind of the rootfs was only for criu (it lives in our private mount namespace).
    let _ = umount2(rootfs, MntFlags::MNT_DETACH);
    result?;

    let text = fs::read_to_string(&pid_file)
        .ctx(|| format!("read criu's --pidfile {}", pid_file.display()))?;
    let _ = fs::remove_file(&pid_file);
    let pid: i32 = text.trim().parse().map_err(|_| {
        Error::msg(format!(
            "criu's --pidfile {}: not a pid: {text:?}",
            pid_file.display()
        ))
    })?;
    let pid_start_time = crate::state::proc_stat(pid)
        .map(|s| s.start_time)
        .ok_or_else(|| Error::msg(format!("restored init {pid} exited during restore")))?;
    let state = State {
        id: a.id.clone(),
        pid,
        pid_start_time,
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        created: timefmt::rfc3339_nanos(SystemTime::now()),
        cgroup: cgroup.clone(),
        config: spec.clone(),
        rdt: None,
        creating: false,
    };
    if let Err(e) = dir.save(&state) {
        let _ = sys::kill(pid, libc::SIGKILL);
        return Err(e);
    }
    if let Some(pid_file) = &a.pid_file {
        if let Err(e) = absolute(pid_file).and_then(|p| write_pid_file(&p, pid)) {
            let _ = sys::kill(pid, libc::SIGKILL);
            return Err(e);
        }
    }
    Ok(state)
}

/// In a mount namespace of our own (so nothing shows on the host and nothing outlives
/// rt): the rootfs bound onto itself, since criu needs a mount point as --root, and the
/// mount points of the configured mounts created in it, as `create` makes them (those on
/// a tmpfs come back with the tmpfs's content from the images; the cgroup mount points
/// with /sys).
fn prepare_root(spec: &Spec, bundle: &Path, rootfs: &Path) -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare(CLONE_NEWNS) for the restore")?;
    mounts::change("/", MsFlags::MS_REC | MsFlags::MS_SLAVE)
        .ctx(|| "make / a slave mount in rt's mount namespace")?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount rootfs {} onto itself", rootfs.display()))?;
    let root = Root::open(rootfs)?;
    let tmpfs: Vec<PathBuf> = spec
        .mounts
        .iter()
        .filter(|m| m.kind.as_deref() == Some("tmpfs"))
        .map(|m| Path::new("/").join(&m.destination))
        .collect();
    let mut temporary = Vec::new();
    for (i, m) in spec.mounts.iter().enumerate() {
        let dest = Path::new("/").join(&m.destination);
        if tmpfs.iter().any(|t| dest.starts_with(t) && &dest != t)
            || m.kind.as_deref() == Some("cgroup")
        {
            continue;
        }
        if !mounts::is_bind(m) {
            root.ensure(&dest, Kind::Dir)
                .map_err(|e| e.context(format!("mounts: mount point {}", m.destination)))?;
            continue;
        }
        let Some(source) = mounts::bind_source(m, bundle) else {
            continue;
        };
        let meta = fs::metadata(&source)
            .ctx(|| format!("mounts: stat bind source {}", source.display()))?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        let fd = root
            .ensure(&dest, kind)
            .map_err(|e| e.context(format!("mounts: mount point {}", m.destination)))?;
        // Later mounts below this bind need their mount points inside its source.
        let nested = spec.mounts[i + 1..]
            .iter()
            .any(|n| Path::new("/").join(&n.destination).starts_with(&dest));
        if nested && meta.is_dir() {
            mount(
                Some(&source),
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| {
                format!(
                    "bind {} on {} to make mount points",
                    source.display(),
                    m.destination
                )
            })?;
            temporary.push(dest);
        }
    }
    for dest in temporary.iter().rev() {
        if let Ok(fd) = root.open_path(dest) {
            let _ = umount2(&fd_path(&fd), MntFlags::MNT_DETACH);
        }
    }
    Ok(())
}
