//! CRIU (checkpoint/restore in userspace), driven through its command line the way runc
//! drives it through RPC: which binary, the options both commands share, the mounts that
//! come from outside the container (`--ext-mount-map`), the stdio of the init
//! (`--external`/`--inherit-fd`), and an error that names the log and its last errors.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::bail;
use crate::cgroups::{self, Cgroup};
use crate::cli::CriuArgs;
use crate::error::{Context, Error, Result};
use crate::rootfs::mounts;
use crate::spec::Spec;

/// runc's file in the image directory: where fds 0-2 of the init pointed at dump time.
pub const DESCRIPTORS: &str = "descriptors.json";
/// rt's own: how each of fds 0-2 is handed back at restore (`--inherit-fd fd[N]:KEY`).
pub const STDIO: &str = "rt-stdio.json";

/// The criu binary: `$RT_CRIU`, else `criu` in `$PATH` or the usual sbin directories.
pub fn find() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RT_CRIU").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("RT_CRIU={}: no such file", p.display());
        }
        return Ok(p);
    }
    which("criu")
        .or_else(|| {
            ["/usr/sbin/criu", "/usr/local/sbin/criu", "/sbin/criu"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            Error::msg("criu not found in PATH (install criu, or set RT_CRIU to its path)")
        })
}

/// A program in `$PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Options both commands share, checked and with absolute paths.
#[derive(Debug, Clone)]
pub struct Options {
    pub image_dir: PathBuf,
    pub work_dir: PathBuf,
    args: Vec<String>,
}

impl Options {
    pub fn from_args(a: &CriuArgs) -> Result<Options> {
        if a.lazy_pages {
            bail!("--lazy-pages is not supported by rt (it needs criu's lazy-pages daemon and page server)");
        }
        let image_dir = crate::container::create::absolute(
            a.image_path
                .as_deref()
                .unwrap_or_else(|| Path::new("checkpoint")),
        )?;
        let work_dir = match &a.work_path {
            Some(w) => crate::container::create::absolute(w)?,
            None => image_dir.clone(),
        };
        let mut args = Vec::new();
        let mode = a.manage_cgroups_mode.as_deref().unwrap_or("soft");
        match mode {
            "soft" | "full" | "strict" | "ignore" => args.push(format!("--manage-cgroups={mode}")),
            other => {
                bail!("invalid --manage-cgroups-mode {other:?}: want soft, full, strict or ignore")
            }
        }
        for ns in &a.empty_ns {
            match ns.as_str() {
                "network" | "net" => args.extend(["--empty-ns".into(), "net".into()]),
                other => {
                    bail!("--empty-ns {other:?}: only \"network\" can be left empty (criu's limit)")
                }
            }
        }
        for (on, flag) in [
            (a.tcp_established, "--tcp-established"),
            (a.ext_unix_sk, "--ext-unix-sk"),
            (a.shell_job, "--shell-job"),
            (a.file_locks, "--file-locks"),
            (a.auto_dedup, "--auto-dedup"),
        ] {
            if on {
                args.push(flag.to_string());
            }
        }
        Ok(Options {
            image_dir,
            work_dir,
            args,
        })
    }

    /// `-D IMAGES -W WORK -o LOG -v4` and the shared flags.
    pub fn base_args(&self, log: &str) -> Vec<String> {
        let mut v = vec![
            "-D".to_string(),
            self.image_dir.display().to_string(),
            "-W".to_string(),
            self.work_dir.display().to_string(),
            "-o".to_string(),
            log.to_string(),
            "-v4".to_string(),
        ];
        v.extend(self.args.iter().cloned());
        v
    }

    pub fn log_path(&self, log: &str) -> PathBuf {
        self.work_dir.join(log)
    }

    /// mkdir -p both directories (0700, as runc).
    pub fn make_dirs(&self) -> Result<()> {
        for d in [&self.image_dir, &self.work_dir] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .ctx(|| format!("mkdir {}", d.display()))?;
        }
        Ok(())
    }
}

/// A mount whose source lies outside the container: criu records it by a key at dump
/// (the destination, as runc does) and binds `source` there again at restore.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtMount {
    pub dest: String,
    pub source: PathBuf,
}

/// Destination as the kernel shows it: absolute, no `.` or doubled slashes.
fn clean_dest(dest: &str) -> String {
    let mut out = String::new();
    for c in Path::new(dest).components() {
        if let std::path::Component::Normal(n) = c {
            out.push('/');
            out.push_str(&n.to_string_lossy());
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The external mounts of a container made by rt from `spec`: bind mounts, the cgroup
/// directories bound at the `cgroup` mount (no cgroup namespace), and the host's device
/// nodes bound in a user namespace. The masked files are added at dump time (key
/// `/dev/null`), see [`masked_files`].
pub fn external_mounts(spec: &Spec, bundle: &Path, cgroup: &Cgroup) -> Result<Vec<ExtMount>> {
    let mut out = Vec::new();
    let linux = spec.linux();
    for m in &spec.mounts {
        if mounts::is_bind(m) {
            let Some(source) = mounts::bind_source(m, bundle) else {
                continue;
            };
            out.push(ExtMount {
                dest: clean_dest(&m.destination),
                source,
            });
        } else if m.kind.as_deref() == Some("cgroup") && !spec.has_namespace("cgroup") {
            let hierarchies = cgroups::hierarchies()?;
            let unified_host = hierarchies.len() == 1 && hierarchies[0].unified;
            for dir in &cgroup.dirs {
                let dest = if unified_host {
                    clean_dest(&m.destination)
                } else {
                    let Some(h) = hierarchy_of(&hierarchies, &dir.path) else {
                        continue;
                    };
                    let name = h
                        .mountpoint
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    clean_dest(&format!("{}/{name}", m.destination))
                };
                out.push(ExtMount {
                    dest,
                    source: dir.path.clone(),
                });
            }
        }
    }
    let dev_is_bind = spec
        .mounts
        .iter()
        .any(|m| m.destination.trim_end_matches('/') == "/dev" && mounts::is_bind(m));
    if spec.has_namespace("user") && !dev_is_bind {
        for d in crate::rootfs::devices::with_defaults(&linux.devices) {
            out.push(ExtMount {
                dest: clean_dest(&d.path),
                source: PathBuf::from(&d.path),
            });
        }
    }
    for e in &out {
        if e.dest.contains(':') || e.source.to_string_lossy().contains(':') {
            bail!(
                "mount {} (source {}): criu's --ext-mount-map cannot name a path with ':'",
                e.dest,
                e.source.display()
            );
        }
    }
    Ok(out)
}

/// `linux.maskedPaths` that are files: rt binds /dev/null over them, which criu must be
/// told about as external mounts (key `/dev/null`, as runc does).
pub fn masked_files(spec: &Spec, pid: i32) -> Vec<String> {
    let mounted = mount_points(pid);
    spec.linux()
        .masked_paths
        .iter()
        .map(|p| clean_dest(p))
        .filter(|p| mounted.iter().any(|m| m == p))
        .filter(|p| fs::metadata(format!("/proc/{pid}/root{p}")).is_ok_and(|m| !m.is_dir()))
        .collect()
}

/// Mount points of `pid`'s mount namespace, as it sees them.
fn mount_points(pid: i32) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|s| s.replace("\\040", " "))
        .collect()
}

/// How one of the init's fds 0-2 is given back at restore: `--inherit-fd fd[fd]:key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StdioFd {
    pub fd: i32,
    pub key: String,
    /// Declared with `--external` at dump (a file or tty outside the container).
    pub external: bool,
}

/// Fds 0-2 of the init: pipes (criu knows them as `pipe:[inode]`), and files or ttys that
/// live outside the container's mounts (e.g. the host's /dev/null or a log file), which
/// criu dumps only as external resources. Also returns the readlink targets (runc's
/// descriptors.json).
pub fn stdio_of(pid: i32) -> (Vec<String>, Vec<StdioFd>) {
    let own_mounts: Vec<u64> = fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    let mut links = Vec::new();
    let mut out = Vec::new();
    for fd in 0..3 {
        let fd_path = format!("/proc/{pid}/fd/{fd}");
        let Ok(link) = fs::read_link(&fd_path) else {
            links.push(String::new());
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        links.push(link.clone());
        if link.starts_with("pipe:[") {
            out.push(StdioFd {
                fd,
                key: link,
                external: false,
            });
            continue;
        }
        if !link.starts_with('/') {
            continue; // sockets, anon inodes: criu's own business
        }
        let mnt_id = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:")?.trim().parse::<u64>().ok());
        let Some(mnt_id) = mnt_id else { continue };
        if own_mounts.contains(&mnt_id) {
            continue; // a file inside the container: criu reopens it by path
        }
        let Ok(meta) = fs::metadata(&fd_path) else {
            continue;
        };
        let is_tty = meta.file_type().is_char_device()
            && matches!(libc::major(meta.rdev()), 4 | 5 | 136..=143);
        let key = if is_tty {
            format!("tty[{:x}:{:x}]", meta.rdev(), meta.dev())
        } else {
            format!("file[{mnt_id:x}:{:x}]", meta.ino())
        };
        out.push(StdioFd {
            fd,
            key,
            external: true,
        });
    }
    (links, out)
}

/// Record the init's stdio in the image directory (runc's descriptors.json and rt's own).
pub fn save_stdio(image_dir: &Path, links: &[String], fds: &[StdioFd]) -> Result<()> {
    let write = |name: &str, text: String| {
        let p = image_dir.join(name);
        fs::write(&p, text).ctx(|| format!("write {}", p.display()))
    };
    write(
        DESCRIPTORS,
        serde_json::to_string(links).unwrap_or_default(),
    )?;
    write(STDIO, serde_json::to_string(fds).unwrap_or_default())
}

/// The stdio recorded at dump: rt's file, else the pipes of runc's descriptors.json.
pub fn load_stdio(image_dir: &Path) -> Result<Vec<StdioFd>> {
    let p = image_dir.join(STDIO);
    if let Ok(text) = fs::read_to_string(&p) {
        return serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("parse {}: {e}", p.display())));
    }
    let p = image_dir.join(DESCRIPTORS);
    let Ok(text) = fs::read_to_string(&p) else {
        return Ok(Vec::new());
    };
    let links: Vec<String> = serde_json::from_str(&text)
        .map_err(|e| Error::msg(format!("parse {}: {e}", p.display())))?;
    Ok(links
        .into_iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("pipe:"))
        .map(|(fd, key)| StdioFd {
            fd: fd as i32,
            key,
            external: false,
        })
        .collect())
}

/// `--cgroup-root` options that put the restored tasks into the new container's cgroup
/// (criu rewrites the dumped paths below it).
pub fn cgroup_root_args(cgroup: &Cgroup) -> Result<Vec<String>> {
    let hierarchies = cgroups::hierarchies()?;
    let mut out = Vec::new();
    for dir in &cgroup.dirs {
        let Some(h) = hierarchy_of(&hierarchies, &dir.path) else {
            continue;
        };
        let inner = Path::new("/").join(dir.path.strip_prefix(&h.mountpoint).unwrap_or(&dir.path));
        let inner = inner.display().to_string();
        out.push("--cgroup-root".to_string());
        if h.unified {
            out.push(inner);
        } else {
            out.push(format!("{}:{inner}", h.subsystems));
        }
    }
    Ok(out)
}

/// Where criu freezes the container while it dumps: the v1 freezer, else the v2 cgroup.
pub fn freezer_dir(cgroup: &Cgroup) -> Option<&Path> {
    cgroup
        .dirs
        .iter()
        .find(|d| !d.unified && d.subsystems.split(',').any(|s| s == "freezer"))
        .or_else(|| cgroup.dirs.iter().find(|d| d.unified))
        .map(|d| d.path.as_path())
}

/// criu locks the container's network during a dump with iptables by default; where no
/// `iptables-restore` exists, use nftables (criu is linked with libnftables).
pub fn network_lock_args() -> Vec<String> {
    if which("iptables-restore").is_some() {
        Vec::new()
    } else {
        vec!["--network-lock".into(), "nftables".into()]
    }
}

/// How criu's stdio is set up.
pub enum Stdio3 {
    /// stdin null, stdout and stderr captured (for the error message).
    Capture,
    /// rt's own (at restore: what the restored process inherits).
    Inherit,
}

/// Run `criu ARGS`; on failure, an error naming the log file and its last error lines.
/// `cgroup_procs`: cgroup.procs files criu moves itself into before it starts (so the
/// restored tasks are born in the container's cgroup, as runc does).
pub fn run(
    criu: &Path,
    what: &str,
    args: &[String],
    log: &Path,
    stdio: Stdio3,
    cgroup_procs: Vec<fs::File>,
) -> Result<()> {
    log::debug!("criu: {} {}", criu.display(), args.join(" "));
    let mut cmd = Command::new(criu);
    cmd.args(args);
    match stdio {
        Stdio3::Capture => {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        Stdio3::Inherit => {}
    }
    if !cgroup_procs.is_empty() {
        let fds: Vec<i32> = cgroup_procs.iter().map(|f| f.as_raw_fd()).collect();
        // SAFETY: the closure runs in the forked child before exec; it only calls write(2)
        // on fds opened before the fork, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &fds {
                    if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let capture = matches!(stdio, Stdio3::Capture);
    let mut run = || -> std::io::Result<(std::process::ExitStatus, String)> {
        if !capture {
            return Ok((cmd.status()?, String::new()));
        }
        let o = cmd.output()?;
        let mut text = String::from_utf8_lossy(&o.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stdout));
        Ok((o.status, text))
    };
    let (status, output) = run().ctx(|| format!("run {} {what}", criu.display()))?;
    drop(cgroup_procs);
    if status.success() {
        return Ok(());
    }
    Err(failure(what, status, log, &output))
}

/// "criu dump failed (exit status: 1): <last errors>; log: <path>" on one line.
fn failure(what: &str, status: std::process::ExitStatus, log: &Path, output: &str) -> Error {
    let errors = match fs::read_to_string(log) {
        Ok(text) => last_errors(&text, 3),
        Err(_) => last_errors(output, 3),
    };
    let errors = if errors.is_empty() {
        "no error in the log".to_string()
    } else {
        errors
    };
    Error::msg(format!(
        "criu {what} failed ({status}): {errors}; log: {}",
        log.display()
    ))
}

/// The last `n` error lines of a criu log joined with " | " (timestamps dropped), or its
/// last non-empty lines when it names no error.
pub fn last_errors(text: &str, n: usize) -> String {
    let strip = |l: &str| {
        let l = l.trim();
        // "(00.123456) Error (criu/mount.c:12): ..." → "Error (criu/mount.c:12): ..."
        match l.strip_prefix('(').and_then(|r| r.split_once(") ")) {
            Some((ts, rest)) if ts.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                rest.to_string()
            }
            _ => l.to_string(),
        }
    };
    let errors: Vec<String> = text
        .lines()
        .map(strip)
        .filter(|l| l.starts_with("Error") || l.contains(" Error ("))
        .collect();
    let pick = if errors.is_empty() {
        text.lines()
            .map(strip)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    } else {
        errors
    };
    let start = pick.len().saturating_sub(n);
    pick[start..].join(" | ")
}

/// The hierarchy a cgroup directory lives in: the deepest mount point above it.
fn hierarchy_of<'a>(
    hierarchies: &'a [cgroups::Hierarchy],
    dir: &Path,
) -> Option<&'a cgroups::Hierarchy> {
    hierarchies
        .iter()
        .filter(|h| dir.starts_with(&h.mountpoint))
        .max_by_key(|h| h.mountpoint.as_os_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_log() {
        let log = "(00.000010) Version: 3.17.1\n\
                   (00.001000) Error (criu/mount.c:1234): mnt: No mapping for 42:(null) mountpoint\n\
                   (00.002000) Warn  (criu/x.c:1): meh\n\
                   (00.003000) Error (criu/cr-dump.c:2099): Dumping FAILED.\n";
        assert_eq!(
            last_errors(log, 3),
            "Error (criu/mount.c:1234): mnt: No mapping for 42:(null) mountpoint | \
             Error (criu/cr-dump.c:2099): Dumping FAILED."
        );
        assert_eq!(last_errors("a\n\nb\n", 1), "b");
        assert_eq!(last_errors("", 3), "");
    }

    #[test]
    fn dests() {
        assert_eq!(clean_dest("/a//b/./c/"), "/a/b/c");
        assert_eq!(clean_dest("data"), "/data");
        assert_eq!(clean_dest("/"), "/");
    }
}
