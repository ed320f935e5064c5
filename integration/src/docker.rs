//! A private Docker daemon for tests: Debian's dockerd 20.10 with its own data-root,
//! exec-root, pidfile, socket and cgroup parent, rt added as runtime `rt`, no bridge and no
//! iptables (no packet leaves the machine), and a `busybox:rt` image imported from the test
//! rootfs (there is no registry). Everything it made is removed on drop: containers, the
//! daemon and its containerd, mounts, cgroups, files.

use crate::containerd::{run_with_timeout, T};
use crate::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const IMAGE: &str = "busybox:rt";
/// dockerd writes its libtrust key here whatever its other paths.
const KEY_JSON: &str = "/etc/docker/key.json";

pub struct Dockerd {
    pub dir: PathBuf,
    sock: PathBuf,
    pub cgroup_parent: String,
    daemon: Option<Child>,
    key_json_was_there: bool,
}

/// The Docker CLI of the daemon's version when installed (docker.io's), else PATH's.
fn docker_cli() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

impl Dockerd {
    pub fn start(name: &str) -> Dockerd {
        let tag = format!("rt-dockerd-{name}-{}", std::process::id());
        let dir = fresh_dir(&tag);
        let sock = dir.join("docker.sock");
        let log = fs::File::create(dir.join("dockerd.log")).unwrap();
        let mut d = Dockerd {
            key_json_was_there: Path::new(KEY_JSON).exists(),
            dir: dir.clone(),
            sock: sock.clone(),
            cgroup_parent: tag,
            daemon: None,
        };
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .arg(format!("--cgroup-parent={}", d.cgroup_parent))
            .arg(format!("--add-runtime=rt={}", rt_bin().display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd (apt-get install docker.io)");
        d.daemon = Some(child);
        poll(T, "dockerd's socket", || sock.exists().then_some(()));
        poll(T, "dockerd to answer", || {
            d.docker(&["version"]).success().then_some(())
        });
        let import = format!(
            "tar -C {} -c . | {} -H unix://{} import -c 'CMD [\"/bin/sh\"]' - {IMAGE}",
            rootfs_src().display(),
            docker_cli(),
            sock.display()
        );
        let out = Command::new("sh").arg("-c").arg(&import).output().unwrap();
        assert!(out.status.success(), "docker import: {out:?}");
        d
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_cli());
        c.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        let what = format!("docker {}", args.join(" "));
        run_with_timeout(self.command(args), &what, &self.dir)
    }

    /// `docker run --rm --runtime rt --network none ARGS...`
    pub fn run(&self, args: &[&str]) -> Output {
        let mut a = vec!["run", "--rm", "--runtime", "rt", "--network", "none"];
        a.extend_from_slice(args);
        self.docker(&a)
    }

    /// A field of `docker inspect` (a Go template such as `{{.State.Status}}`).
    pub fn inspect(&self, id: &str, template: &str) -> String {
        self.docker(&["inspect", "-f", template, id])
            .ok()
            .stdout
            .trim()
            .to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_log_tail(&self.dir.join("dockerd.log"), 60);
        }
        if let Some(mut d) = self.daemon.take() {
            let ids = self.docker(&["ps", "-aq"]).stdout.clone();
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = self.docker(&["rm", "-f", id]);
            }
            // SAFETY: kill(2) of the daemon this test started; it stops its containerd.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            if try_wait_child(&mut d, T, "dockerd").is_err() {
                let _ = d.kill();
                let _ = d.wait();
            }
        }
        unmount_below(&self.dir);
        remove_cgroup_tree(&self.cgroup_parent);
        let _ = fs::remove_dir_all(&self.dir);
        // dockerd's fixed paths, when it made them.
        if !self.key_json_was_there {
            let _ = fs::remove_file(KEY_JSON);
        }
        let _ = fs::remove_dir("/run/docker/plugins");
        let _ = fs::remove_dir("/run/docker");
    }
}
