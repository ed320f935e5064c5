//! The container's root filesystem: propagation, the bind of the rootfs onto itself, the
//! configured mounts in order, /dev, pivot_root (or MS_MOVE + chroot with --no-pivot), then
//! masked and read-only paths and a read-only root.

pub mod devices;
pub mod idmap;
pub mod mounts;
pub mod no_pivot;
pub mod path;

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, fchdir, pivot_root};

use crate::cgroups::{Cgroup, Hierarchy};
use crate::error::{Context, Error, Result};
use crate::spec::{Device, Mount};
use path::{fd_path, Kind, Root};

/// Everything the init needs to build the rootfs, computed by the parent.
#[derive(Debug)]
pub struct RootfsPlan {
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub readonly: bool,
    /// linux.rootfsPropagation, when given: only then is it applied to the new `/` at the
    /// end (as runc), so that mounts' own propagation options stand otherwise.
    pub propagation: Option<MsFlags>,
    pub mounts: Vec<Mount>,
    /// linux.devices (the default devices are made too).
    pub devices: Vec<Device>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub in_userns: bool,
    pub new_cgroupns: bool,
    pub hierarchies: Vec<Hierarchy>,
    pub cgroup: Cgroup,
    pub no_pivot: bool,
    pub cwd: PathBuf,
    /// Whether the config mounts its own /dev from the host (then no devices are made).
    pub dev_is_bind: bool,
    /// SELinux context given to the filesystems mounted for the container.
    pub mount_label: Option<String>,
    /// The idmapped mounts, made by the parent (see idmap.rs): detached trees by index in
    /// `mounts`, attached by the init in their turn.
    pub idmapped: idmap::Detached,
}

/// Steps that run with the host's filesystem still visible (before pivot_root).
pub fn prepare(plan: &RootfsPlan) -> Result<()> {
    // An unbindable / would refuse the binds still to come (the rootfs's own first): it
    // stays a slave until the rootfs is /, then takes the configured propagation (finish).
    // Without one, / is a slave: host mounts reach the container, none go back.
    let setup = match plan.propagation {
        Some(p) if !p.contains(MsFlags::MS_UNBINDABLE) => p,
        _ => MsFlags::MS_SLAVE,
    };
    let _step = crate::trace::step("rootfs-prepare");
    log::debug!("rootfs: set / propagation {setup:?}");
    mounts::change("/", setup | MsFlags::MS_REC)
        .ctx(|| format!("mount / with the rootfsPropagation flags {setup:?}"))?;
    // Recursively slave or private, no mount here is shared any more: only a shared
    // propagation asks for the mount table (long on a busy host) to be read.
    if setup.contains(MsFlags::MS_SHARED) {
        make_rootfs_mount_private(&plan.rootfs)?;
    }
    mount(
        Some(&plan.rootfs),
        &plan.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount rootfs {} onto itself", plan.rootfs.display()))?;
    let root = Root::open(&plan.rootfs)?;
    for (i, m) in plan.mounts.iter().enumerate() {
        log::debug!("rootfs: mount {} ({:?})", m.destination, m.kind);
        let _mount = crate::trace::step_with("mount", || m.destination.clone());
        mount_entry(&root, plan, i, m).map_err(|e| {
            let e = e.within_field(format!("mounts[{i}]"));
            // Most filesystems refuse a mount from a user namespace (EPERM): say where.
            if plan.in_userns {
                e.context(format!("mounts[{i}], in a user namespace"))
            } else {
                e
            }
        })?;
    }
    if !plan.dev_is_bind {
        log::debug!("rootfs: create devices");
        let _devices = crate::trace::step("devices");
        devices::create(&root, &plan.devices, plan.in_userns)?;
        devices::symlinks(&root)?;
    }
    root.ensure(&plan.cwd, Kind::Dir)
        .map_err(|e| e.context("process.cwd"))?;
    Ok(())
}

fn mount_entry(root: &Root, plan: &RootfsPlan, index: usize, m: &Mount) -> Result<()> {
    // Never mounted without the mapping the config asks for.
    let detached = plan.idmapped.get(index);
    if idmap::requested(m) && detached.is_none() {
        return Err(Error::msg(format!(
            "mounts[{index}] ({}): idmapped, but the parent prepared no idmapped tree for it",
            m.destination
        )));
    }
    match m.kind.as_deref() {
        Some("cgroup") => return mount_cgroup(root, plan, m),
        Some(fstype @ ("proc" | "sysfs")) => {
            root.check_plain_dir(Path::new(&m.destination), fstype)?
        }
        _ => {}
    }
    let source = if mounts::is_bind(m) {
        mounts::bind_source(m, &plan.bundle)
    } else {
        m.source.as_deref().map(PathBuf::from)
    };
    // A bind of a file needs a file to mount on; everything else a directory.
    let kind = match &source {
        Some(s) if mounts::is_bind(m) => {
            let meta =
                fs::metadata(s).ctx(|| format!("mounts: stat bind source {}", s.display()))?;
            if meta.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            }
        }
        _ => Kind::Dir,
    };
    // A read-only /dev is filled first (devices, /dev/pts, ...) and made read-only in
    // finish(), as runc does.
    let writable;
    let m = if is_readonly_dev(m) {
        let mut rw = m.clone();
        rw.options.retain(|o| o != "ro");
        writable = rw;
        &writable
    } else {
        m
    };
    let labelled;
    let m = match plan.mount_label.as_deref().filter(|l| !l.is_empty()) {
        Some(label) if !mounts::is_bind(m) => {
            let mut with = m.clone();
            with.options.push(format!("context=\"{label}\""));
            labelled = with;
            &labelled
        }
        _ => m,
    };
    if let Some(tree) = detached {
        return mounts::attach_one(root, m, tree, source.as_deref(), kind);
    }
    match mounts::mount_one(root, m, source.as_deref(), kind) {
        // sysfs cannot be mounted in a user namespace that does not own the network
        // namespace: give the container a recursive read-only bind of the host's /sys.
        Err(_) if m.kind.as_deref() == Some("sysfs") && plan.in_userns => {
            let bind = Mount {
                destination: m.destination.clone(),
                kind: Some("bind".into()),
                source: Some("/sys".into()),
                options: ["rbind", "nosuid", "noexec", "nodev", "ro", "rro"]
                    .map(String::from)
                    .to_vec(),
                ..Mount::default()
            };
            mounts::mount_one(root, &bind, Some(Path::new("/sys")), Kind::Dir)
        }
        r => r,
    }
}

/// A "cgroup" mount: on a v2 host the unified hierarchy; on v1/hybrid a tmpfs with one
/// directory per hierarchy. With a cgroup namespace the kernel shows the container its own
/// cgroup as the root; without one, the container's own directories are bind-mounted.
fn mount_cgroup(root: &Root, plan: &RootfsPlan, m: &Mount) -> Result<()> {
    let o = mounts::parse_options(&m.options);
    let flags = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let dest = Path::new(&m.destination);
    let target = root
        .ensure_mount_target(dest, Kind::Dir)
        .map_err(|e| e.context(format!("mounts: destination {}", m.destination)))?;
    let unified_host = plan.hierarchies.len() == 1 && plan.hierarchies[0].unified;
    if unified_host {
        let parent = reopen(root, dest.parent().unwrap_or(Path::new("/")))?;
        let name = dest.file_name().map(PathBuf::from).unwrap_or_default();
        return mount_hierarchy(plan, &plan.hierarchies[0], 0, (&parent, &name), flags, dest);
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        flags - MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs for cgroups on {}", dest.display()))?;
    // The tmpfs is ours and new, nothing in it but what we make: work in it by name,
    // without resolving each path from the root again (16 system calls a hierarchy
    // fewer; 10 hierarchies here).
    let tmpfs = reopen(root, dest)?;
    for (i, h) in plan.hierarchies.iter().enumerate() {
        let name = h
            .mountpoint
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let shown = dest.join(&name);
        nix::sys::stat::mkdirat(&tmpfs, &name, Mode::from_bits_truncate(0o755))
            .ctx(|| format!("mkdir {}", shown.display()))?;
        mount_hierarchy(plan, h, i, (&tmpfs, &name), flags, &shown)?;
        // cpu,cpuacct is also reachable as cpu and cpuacct.
        let name = name.to_string_lossy().into_owned();
        if name.contains(',') {
            for part in name.split(',') {
                let _ = nix::unistd::symlinkat(name.as_str(), &tmpfs, part);
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let target = reopen(root, dest)?;
        mounts::change(&fd_path(&target), flags | MsFlags::MS_REMOUNT)
            .ctx(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}

/// Mount hierarchy `h` on the directory `at` (a directory fd and a name in it, resolved
/// without following a symlink).
fn mount_hierarchy(
    plan: &RootfsPlan,
    h: &Hierarchy,
    index: usize,
    at: (&std::os::fd::OwnedFd, &Path),
    flags: MsFlags,
    shown: &Path,
) -> Result<()> {
    let open_at = || {
        nix::fcntl::openat(
            at.0,
            at.1,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", shown.display()))
    };
    let target_fd = open_at()?;
    let target = fd_path(&target_fd);
    let target = target.as_path();
    if plan.new_cgroupns {
        let (fstype, data) = if h.unified {
            ("cgroup2", None)
        } else {
            ("cgroup", Some(h.subsystems.as_str()))
        };
        return mount(Some("cgroup"), target, Some(fstype), flags, data)
            .ctx(|| format!("mount {fstype} ({}) on {}", h.subsystems, shown.display()));
    }
    let Some(own) = plan.cgroup.dirs.get(index).map(|d| &d.path) else {
        return Ok(());
    };
    mount(
        Some(own),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind mount {} on {}", own.display(), shown.display()))?;
    // A fresh fd reaches the mount just made (the first one, the directory underneath).
    let mounted = open_at()?;
    mounts::change(
        &fd_path(&mounted),
        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
    )
    .ctx(|| format!("remount {}", shown.display()))
}

/// A fresh fd on `dest`, reaching the mount just made there (an fd opened before the mount
/// still refers to the directory underneath).
fn reopen(root: &Root, dest: &Path) -> Result<std::os::fd::OwnedFd> {
    root.open_path(dest)
        .map_err(|e| Error::sys(format!("openat2 {} after mounting it", dest.display()), e))
}

/// pivot_root refuses a new root whose parent mount is shared, and the bind of a shared
/// mount is shared too (rootfsPropagation "shared", or a host where / is shared): make
/// the mount the rootfs lies on private first. That is the rootfs itself when it is a
/// mount point (containerd's overlay is), else the mount it is a directory of.
fn make_rootfs_mount_private(rootfs: &Path) -> Result<()> {
    let mut best: Option<(PathBuf, bool)> = None;
    for m in crate::mountinfo::read_own()? {
        if rootfs.starts_with(&m.mountpoint)
            && best
                .as_ref()
                .is_none_or(|(b, _)| m.mountpoint.as_os_str().len() >= b.as_os_str().len())
        {
            let shared = m.optional.iter().any(|o| o.starts_with("shared:"));
            best = Some((m.mountpoint, shared));
        }
    }
    if let Some((mp, true)) = best {
        mounts::change(&mp, MsFlags::MS_PRIVATE).ctx(|| {
            format!(
                "make mount {} private (the rootfs lies on it)",
                mp.display()
            )
        })?;
    }
    Ok(())
}

/// Make the rootfs `/`: pivot_root and detach the old root, or with --no-pivot move the
/// rootfs over / and chroot (for a rootfs on an initramfs, where pivot_root is refused).
pub fn enter(plan: &RootfsPlan) -> Result<()> {
    let _step = crate::trace::step(if plan.no_pivot {
        "chroot"
    } else {
        "pivot-root"
    });
    if plan.no_pivot {
        return no_pivot::enter(&plan.rootfs);
    }
    let old = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "open old root /")?;
    let new = nix::fcntl::open(
        &plan.rootfs,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open rootfs {}", plan.rootfs.display()))?;
    fchdir(&new).ctx(|| "fchdir to the rootfs")?;
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
    // removes it without needing a directory for it inside the rootfs.
    pivot_root(".", ".").ctx(|| format!("pivot_root {}", plan.rootfs.display()))?;
    fchdir(&old).ctx(|| "fchdir to the old root")?;
    mounts::change(".", MsFlags::MS_SLAVE | MsFlags::MS_REC)
        .ctx(|| "make the old root a slave before unmounting it")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "umount the old root")?;
    chdir("/").ctx(|| "chdir /")
}

/// After pivot_root: read-only and masked paths, a read-only /dev or root, then the
/// configured propagation. Paths are the container's own now, so nothing can point back
/// out to the host.
pub fn finish(plan: &RootfsPlan) -> Result<()> {
    let _step = crate::trace::step("masked-readonly-paths");
    for p in &plan.readonly_paths {
        readonly_path(Path::new(p))?;
    }
    let mut null = None;
    for p in &plan.masked_paths {
        mask_path(Path::new(p), &mut null)?;
    }
    if plan.mounts.iter().any(is_readonly_dev) {
        let dev = Path::new("/dev");
        let flags =
            mounts::locked_flags(dev) | MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
        mounts::change(dev, flags).ctx(|| "remount /dev read-only (its mount says ro)")?;
    }
    if plan.readonly {
        let flags = mounts::locked_flags(Path::new("/"))
            | MsFlags::MS_RDONLY
            | MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT;
        mounts::change("/", flags).ctx(|| "remount / read-only (root.readonly)")?;
    }
    // Last: the new root could not be shared during pivot_root, and an unbindable one
    // would refuse the binds of the read-only and masked paths above. Only when given (a
    // mount's own propagation option stands otherwise), and not private: the root is
    // already (its mount was made private before the bind), as runc reasons.
    if let Some(p) = plan
        .propagation
        .filter(|p| !p.contains(MsFlags::MS_PRIVATE))
    {
        mounts::change("/", p).ctx(|| format!("set the rootfsPropagation {p:?} of the new /"))?;
    }
    Ok(())
}

/// A tmpfs on /dev with the `ro` option.
fn is_readonly_dev(m: &Mount) -> bool {
    m.destination.trim_end_matches('/') == "/dev"
        && m.kind.as_deref() == Some("tmpfs")
        && m.options.iter().any(|o| o == "ro")
}

fn readonly_path(p: &Path) -> Result<()> {
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::sys(
                format!("linux.readonlyPaths: bind mount {}", p.display()),
                e,
            ))
        }
    }
    let flags = mounts::locked_flags(p)
        | MsFlags::MS_RDONLY
        | MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_REC;
    mounts::change(p, flags)
        .ctx(|| format!("linux.readonlyPaths: remount {} read-only", p.display()))
}

/// `null`: the null device, opened (and checked) on first use, then shared by the files.
fn mask_path(p: &Path, null: &mut Option<std::os::fd::OwnedFd>) -> Result<()> {
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::io(
                format!("linux.maskedPaths: stat {}", p.display()),
                e,
            ))
        }
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        // Bind the null device itself, held by an fd, never whatever the path /dev/null
        // names at that moment (another container sharing /dev may swap it for a symlink:
        // CVE-2025-31133). Without a real null device, fail closed.
        let null = match null {
            Some(fd) => fd,
            None => null.insert(null_device()?),
        };
        mount(
            Some(&fd_path(null)),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    match r {
        Ok(()) => Ok(()),
        // The target vanished between stat and mount: nothing left to hide.
        // The target (or where its symlink points) does not exist: nothing to hide.
        Err(Errno::ENOENT) if fs::metadata(p).is_err() => Ok(()),
        Err(e) => Err(Error::sys(
            format!("linux.maskedPaths: mask {}", p.display()),
            e,
        )),
    }
}

/// An O_PATH fd on /dev/null, checked to be the character device 1:3.
fn null_device() -> Result<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    // Resolved inside the container's root, without magic links; whatever symlinks it
    // went through, the fd is then checked to be the real null device.
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "linux.maskedPaths: open /")?;
    let fd = crate::sys::open_in_root(
        std::os::fd::AsRawFd::as_raw_fd(&root),
        Path::new("dev/null"),
        libc::O_PATH,
    )
    .ctx(|| "linux.maskedPaths: open /dev/null")?;
    let st = nix::sys::stat::fstat(&fd).ctx(|| "linux.maskedPaths: fstat /dev/null")?;
    let is_chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_chr || libc::major(st.st_rdev) != 1 || libc::minor(st.st_rdev) != 3 {
        return Err(Error::msg(
            "linux.maskedPaths: /dev/null in the container is not the null device (1:3); refusing to mask with it",
        ));
    }
    Ok(fd)
}
