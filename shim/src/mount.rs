//! The container's rootfs mount, as containerd's `containerd-shim` crate does it (the same
//! option table and steps), in the calling thread. The crate forks a process for every
//! mount, which it needs only to chdir for an overlay whose options do not fit in a page
//! (the lowerdirs are then made relative): such a mount still goes to the crate.

use std::path::Path;

use nix::mount::{mount, MsFlags};

/// An option that is a mount flag: whether it clears the flag, and the flag.
fn flag(option: &str) -> Option<(bool, MsFlags)> {
    Some(match option {
        "async" => (true, MsFlags::MS_SYNCHRONOUS),
        "atime" => (true, MsFlags::MS_NOATIME),
        "bind" => (false, MsFlags::MS_BIND),
        "defaults" => (false, MsFlags::empty()),
        "dev" => (true, MsFlags::MS_NODEV),
        "diratime" => (true, MsFlags::MS_NODIRATIME),
        "dirsync" => (false, MsFlags::MS_DIRSYNC),
        "exec" => (true, MsFlags::MS_NOEXEC),
        "mand" => (false, MsFlags::MS_MANDLOCK),
        "noatime" => (false, MsFlags::MS_NOATIME),
        "nodev" => (false, MsFlags::MS_NODEV),
        "nodiratime" => (false, MsFlags::MS_NODIRATIME),
        "noexec" => (false, MsFlags::MS_NOEXEC),
        "nomand" => (true, MsFlags::MS_MANDLOCK),
        "norelatime" => (true, MsFlags::MS_RELATIME),
        "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
        "nosuid" => (false, MsFlags::MS_NOSUID),
        "rbind" => (false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
        "relatime" => (false, MsFlags::MS_RELATIME),
        "remount" => (false, MsFlags::MS_REMOUNT),
        "ro" => (false, MsFlags::MS_RDONLY),
        "rw" => (true, MsFlags::MS_RDONLY),
        "strictatime" => (false, MsFlags::MS_STRICTATIME),
        "suid" => (true, MsFlags::MS_NOSUID),
        "sync" => (false, MsFlags::MS_SYNCHRONOUS),
        _ => return None,
    })
}

/// Mount `source` (of type `fs_type`, with containerd's `options`) on `target`.
pub fn mount_rootfs(
    fs_type: &str,
    source: &str,
    options: &[String],
    target: &Path,
) -> Result<(), String> {
    // The crate's test, with its 512 bytes of slack.
    // SAFETY: sysconf only reads a constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    };
    let size: usize = options.iter().map(String::len).sum();
    if fs_type == "overlay" && size >= page - 512 {
        return containerd_shim::mount::mount_rootfs(Some(fs_type), Some(source), options, target)
            .map_err(|e| e.to_string());
    }
    let (flags, data) = parse(options);
    if data.len() > page {
        return Err("mount option is too long".into());
    }
    let data = (!data.is_empty()).then_some(data.as_str());
    let propagation =
        MsFlags::MS_SHARED | MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE | MsFlags::MS_UNBINDABLE;
    // Mount with no propagation first (or remount with changed data).
    let oflags = flags.difference(propagation);
    if !flags.contains(MsFlags::MS_REMOUNT) || data.is_some() {
        mount(Some(source), target, Some(fs_type), oflags, data)
            .map_err(|e| format!("mount {source} on {}: {e}", target.display()))?;
    }
    // Then the propagation type.
    if flags.intersects(propagation) {
        let p = flags.intersection(propagation | MsFlags::MS_REC | MsFlags::MS_SILENT);
        mount(None::<&str>, target, None::<&str>, p, None::<&str>)
            .map_err(|e| format!("propagation of {}: {e}", target.display()))?;
    }
    // A read-only bind is made so by a remount.
    if oflags.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            oflags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(|e| format!("read-only {}: {e}", target.display()))?;
    }
    Ok(())
}

/// The options as mount flags, and the rest as the mount's data.
fn parse(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        match flag(o) {
            Some((true, f)) => flags.remove(f),
            Some((false, f)) => flags.insert(f),
            None => data.push(o),
        }
    }
    (flags, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_flags_and_data() {
        let opts = |o: &[&str]| parse(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            opts(&["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l"]),
            (
                MsFlags::empty(),
                "index=off,workdir=/w,upperdir=/u,lowerdir=/l".into()
            )
        );
        assert_eq!(
            opts(&["rbind", "ro", "nosuid"]),
            (
                MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
                String::new()
            )
        );
        // Later options win: rw clears an earlier ro.
        assert_eq!(
            opts(&["ro", "rw", "bind"]),
            (MsFlags::MS_BIND, String::new())
        );
    }
}
