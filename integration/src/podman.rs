//! Podman for tests: Debian's podman 4.3 (with conmon) on its own storage root, run root,
//! tmpdir and cgroup parent, `--runtime` rt, vfs storage (no overlay mounts to undo),
//! cgroupfs and file events (no systemd here), and a `localhost/busybox:rt` image
//! imported from the test rootfs. Everything it made is removed on drop.

use crate::containerd::run_with_timeout;
use crate::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const IMAGE: &str = "localhost/busybox:rt";
/// Made by podman at these fixed places whatever its other paths (network configs, the
/// blob info cache): removed afterwards when they were not there before.
const FIXED_DIRS: [&str; 2] = ["/run/containers", "/var/lib/containers"];

pub struct Podman {
    pub dir: PathBuf,
    /// The cgroup parent of every container (conmon's cgroup goes below it too).
    pub cgroup_parent: String,
    fixed_dirs_made: Vec<&'static str>,
}

impl Podman {
    pub fn new(name: &str) -> Podman {
        let tag = format!("rt-podman-{name}-{}", std::process::id());
        let dir = fresh_dir(&tag);
        let p = Podman {
            fixed_dirs_made: FIXED_DIRS
                .into_iter()
                .filter(|d| !Path::new(d).exists())
                .collect(),
            dir,
            cgroup_parent: tag,
        };
        let tar = p.dir.join("rootfs.tar");
        rootfs_tarball(&tar);
        let tar = tar.to_string_lossy().into_owned();
        p.podman(&["import", "--change", "CMD [\"/bin/sh\"]", &tar, IMAGE])
            .ok();
        p
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
            ])
            .args(args)
            .stdin(Stdio::null());
        run_with_timeout(c, &format!("podman {}", args.join(" ")), &self.dir)
    }

    /// `podman run --rm` with rt, no network, our cgroup parent, and rlimits this host can
    /// grant (podman's defaults exceed its hard limits), then ARGS.
    pub fn run(&self, args: &[&str]) -> Output {
        let flags = self.run_flags();
        let mut a = vec!["run", "--rm"];
        a.extend(flags.iter().map(String::as_str));
        a.extend_from_slice(args);
        self.podman(&a)
    }

    /// rt as the runtime, no network, our cgroup parent, and nofile/nproc limits within
    /// what this process may grant (without CAP_SYS_RESOURCE, its own hard limits).
    pub fn run_flags(&self) -> Vec<String> {
        let ulimit = |name: &str, resource, want: u64| {
            let (soft, hard) = crate::host::rlimit_within_reach(resource, want, want);
            format!("{name}={soft}:{hard}")
        };
        vec![
            "--runtime".into(),
            rt_bin().to_string_lossy().into_owned(),
            "--network".into(),
            "none".into(),
            "--cgroup-parent".into(),
            format!("/{}", self.cgroup_parent),
            "--ulimit".into(),
            ulimit("nofile", libc::RLIMIT_NOFILE, 1024),
            "--ulimit".into(),
            ulimit("nproc", libc::RLIMIT_NPROC, 4096),
        ]
    }

    pub fn inspect(&self, id: &str, template: &str) -> String {
        self.podman(&["inspect", "-f", template, id])
            .ok()
            .stdout
            .trim()
            .to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-f", "-t", "0", "--all"]);
        unmount_below(&self.dir);
        remove_cgroup_tree(&self.cgroup_parent);
        let _ = fs::remove_dir_all(&self.dir);
        for d in &self.fixed_dirs_made {
            let _ = fs::remove_dir_all(d);
        }
    }
}
