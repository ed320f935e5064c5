//! A private containerd for tests: its own temporary root, state, sockets and namespace,
//! `containerd-shim-rt-v2` (and rt) found on its PATH, a busybox image packed from the test
//! rootfs with umoci (there is no registry), `ctr` to drive it, and everything removed on
//! drop (tasks, containers, shims, mounts, cgroups, files).

use crate::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const T: Duration = Duration::from_secs(30);
pub const IMAGE: &str = "docker.io/library/busybox:latest";
/// The same rootfs whose entrypoint sleeps: a CRI pod sandbox.
pub const IMAGE_PAUSE: &str = "docker.io/library/busybox:pause";
pub const RUNTIME: &str = "io.containerd.rt.v2";

pub fn shim_bin() -> PathBuf {
    std::env::var_os("RT_SHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| rt_bin().with_file_name("containerd-shim-rt-v2"))
}

pub struct Containerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub ns: String,
    /// Removed (with its subdirectories) in every hierarchy on drop.
    pub cgroup_parent: String,
    /// Extra environment of the daemon (and so of the shims it starts), from the next
    /// `launch` on.
    pub env: Vec<(String, String)>,
    daemon: Option<Child>,
}

impl Containerd {
    pub fn start(name: &str) -> Containerd {
        Self::start_with(name, false)
    }

    /// With `cri`, containerd's CRI plugin serves on the same socket: runtime handler `rt`
    /// is our shim, the sandbox ("pause") image is `IMAGE_PAUSE`, images live in
    /// namespace k8s.io, and pods are to use `cgroup_parent` (no CNI: pods use the node's
    /// network).
    pub fn start_with(name: &str, cri: bool) -> Containerd {
        let dir = fresh_dir(&format!("rt-ctd-{name}-{}", std::process::id()));
        fs::create_dir_all(dir.join("bin")).unwrap();
        // containerd looks for containerd-shim-rt-v2 on its PATH; the shim finds rt beside it.
        std::os::unix::fs::symlink(shim_bin(), dir.join("bin/containerd-shim-rt-v2")).unwrap();
        let sock = dir.join("containerd.sock");
        let mut config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             [grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n\
             [debug]\n  level = \"debug\"\n",
            dir.display(),
            sock.display()
        );
        // Per test, not per process: Drop removes these cgroups, which must not be those
        // of another test's containers still starting.
        let tag = format!("rt-test-{name}-{}", std::process::id());
        let ns = if cri {
            let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
            config += &format!(
                "[{cri}]\n  sandbox_image = \"{IMAGE_PAUSE}\"\n  disable_apparmor = true\n\
                 # no CAP_SYS_RESOURCE here: keep the sandbox's oom_score_adj at ours\n\
                 restrict_oom_score_adj = true\n\
                 stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\
                 [{cri}.cni]\n  bin_dir = \"{0}/cni/bin\"\n  conf_dir = \"{0}/cni/conf\"\n\
                 [{cri}.containerd]\n  default_runtime_name = \"rt\"\n\
                 [{cri}.containerd.runtimes.rt]\n  runtime_type = \"io.containerd.rt.v2\"\n",
                dir.display()
            );
            "k8s.io".to_string()
        } else {
            config += "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n";
            tag.clone()
        };
        fs::write(dir.join("config.toml"), config).unwrap();
        let mut c = Containerd {
            dir,
            sock,
            ns,
            cgroup_parent: tag,
            env: Vec::new(),
            daemon: None,
        };
        c.launch();
        c.import_image();
        c
    }

    /// Start the daemon (again) and wait for its socket.
    pub fn launch(&mut self) {
        let _ = fs::remove_file(&self.sock);
        let path = format!(
            "{}:{}:{}",
            self.dir.join("bin").display(),
            rt_bin().parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (apt-get install containerd)");
        self.daemon = Some(child);
        poll(T, "containerd's socket", || {
            self.sock.exists().then_some(())
        });
        poll(T, "containerd to answer", || {
            self.ctr(&["version"]).success().then_some(())
        });
    }

    /// Stop the daemon (SIGTERM), leaving shims and containers running.
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGTERM);
    }

    /// Stop the daemon with signal `sig` (SIGKILL: it crashes), leaving shims and
    /// containers running.
    pub fn stop_with(&mut self, sig: i32) {
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: kill(2) of the daemon this test started.
            unsafe { libc::kill(d.id() as i32, sig) };
            wait_child(&mut d, T, "containerd");
        }
    }

    /// A busybox image: the test rootfs packed by umoci into an OCI layout, imported.
    pub fn import_image(&self) {
        let layout = self.dir.join("image");
        let img = format!("{}:latest", layout.display());
        let bundle = self.dir.join("image-bundle");
        let sh = format!(
            "set -e; umoci init --layout {l}; umoci new --image {img}; \
             umoci unpack --rootless --image {img} {b} >/dev/null; cp -a {src}/. {b}/rootfs/; \
             umoci repack --image {img} {b}; umoci config --image {img} --config.cmd /bin/sh; \
             umoci config --image {img} --tag pause --config.entrypoint /bin/sleep \
               --config.cmd 2147483647; \
             tar -C {l} -cf {l}.tar .",
            l = layout.display(),
            b = bundle.display(),
            src = rootfs_src().display()
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&sh)
            .output()
            .expect("umoci");
        assert!(out.status.success(), "build the image: {out:?}");
        let _ = fs::remove_dir_all(&bundle);
        let tar = format!("{}.tar", layout.display());
        self.ctr(&[
            "image",
            "import",
            "--base-name",
            "docker.io/library/busybox",
            &tar,
        ])
        .ok();
    }

    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.sock).arg("-n").arg(&self.ns);
        // The stdio FIFOs of run, exec and start go to our directory, not to containerd's
        // /run/containerd/fifo (ctr leaves them there after a detached run).
        let fifo_at = match args {
            ["run", ..] => Some(1),
            ["task" | "t" | "tasks", "exec" | "start", ..] => Some(2),
            _ => None,
        };
        match fifo_at {
            Some(n) => {
                c.args(&args[..n])
                    .arg("--fifo-dir")
                    .arg(self.dir.join("fifo"))
                    .args(&args[n..]);
            }
            None => {
                c.args(args);
            }
        }
        c.stdin(Stdio::null());
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        let c = self.ctr_command(args);
        run_with_timeout(c, &format!("ctr {}", args.join(" ")), &self.dir)
    }

    /// `ctr run -d` of `cmd` in a new container `id`.
    pub fn run_detached(&self, id: &str, cmd: &[&str]) {
        let mut args = vec!["run", "-d", "--runtime", RUNTIME, IMAGE, id];
        args.extend_from_slice(cmd);
        self.ctr(&args).ok();
    }

    /// `ctr events` running into a file: (the process, the file). Dropping it ends it.
    pub fn watch_events(&self) -> (ChildGuard, PathBuf) {
        let out = self.dir.join(format!("events-{}.txt", std::process::id()));
        let mut c = self.ctr_command(&["events"]);
        c.stdout(fs::File::create(&out).unwrap());
        let guard = ChildGuard::spawn(&mut c);
        // Subscribed before anything happens.
        std::thread::sleep(Duration::from_millis(200));
        (guard, out)
    }

    /// `ctr run --runtime io.containerd.runc.v2` with the runc options BinaryName and
    /// Root (`--runc-binary`, `--runc-root`), then ARGS.
    pub fn run_with_runc_options(&self, binary: &str, root: &Path, args: &[&str]) -> Output {
        let root = root.to_string_lossy();
        let mut a = vec!["run", "--runtime", "io.containerd.runc.v2"];
        a.extend(["--runc-binary", binary, "--runc-root", &root]);
        a.extend_from_slice(args);
        self.ctr(&a)
    }

    /// The runtime `binary` itself says task `id` runs, with its state under
    /// Root/<namespace> as the runc shim lays it out.
    pub fn assert_runtime_state_running(&self, binary: &str, root: &Path, id: &str) {
        let state = Command::new(binary)
            .arg("--root")
            .arg(root.join(&self.ns))
            .args(["state", id])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&state.stdout);
        assert!(
            state.status.success() && text.contains("\"status\": \"running\""),
            "{binary} state {id}: {text} {}",
            String::from_utf8_lossy(&state.stderr)
        );
    }

    /// `ctr task pause`, then `resume`, each checked in `ctr task ls`.
    pub fn pause_and_resume(&self, id: &str) {
        self.ctr(&["task", "pause", id]).ok();
        assert_eq!(self.task_status(id).as_deref(), Some("PAUSED"));
        self.ctr(&["task", "resume", id]).ok();
        assert_eq!(self.task_status(id).as_deref(), Some("RUNNING"));
    }

    /// `ctr task ps` lists the init (its pid from `ctr task ls`).
    pub fn ps_shows_init(&self, id: &str) {
        let init_pid = self
            .ctr(&["task", "ls"])
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            .unwrap_or_else(|| panic!("{id} in ctr task ls"));
        let ps = self.ctr(&["task", "ps", id]).ok().stdout.clone();
        assert!(
            ps.lines()
                .any(|l| l.split_whitespace().next() == Some(&init_pid)),
            "init {init_pid} in ctr task ps:\n{ps}"
        );
    }

    /// The bundle containerd makes for task `id`: `<state>/io.containerd.runtime.v2.task/<ns>/<id>`,
    /// containerd's own layout (`/run/containerd/...` on a real node).
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }

    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["task", "ls"]);
        out.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(2).unwrap_or(&"").to_string())
        })
    }

    pub fn remove(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if self.ctr(&["task", "rm", "-f", id]).success() || self.task_status(id).is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.ctr(&["container", "rm", id]);
    }

    /// Our shims serving this containerd (by executable: a test may install the shim
    /// under another name).
    pub fn shim_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        // Called from Drop too: a missing shim must not turn a failure into an abort.
        let shim = fs::canonicalize(shim_bin()).unwrap_or_else(|_| shim_bin());
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe == shim && cmd.contains(&*self.sock.to_string_lossy()) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_log_tail(&self.dir.join("containerd.log"), 80);
            // The runtime's own log of each task still there (init errors land here).
            let tasks = self.bundle_dir("");
            for task in fs::read_dir(tasks).into_iter().flatten().flatten() {
                let log = fs::read_to_string(task.path().join("log.json")).unwrap_or_default();
                if !log.is_empty() {
                    eprintln!("--- {}/log.json ---\n{log}", task.path().display());
                }
            }
        }
        if self.daemon.is_some() {
            let ids = self.ctr(&["container", "ls", "-q"]).stdout.clone();
            for id in ids.lines().filter(|l| !l.is_empty()) {
                self.remove(id);
            }
        }
        self.stop();
        for pid in self.shim_pids() {
            // SAFETY: kill(2) of a shim of this test's containerd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unmount_below(&self.dir);
        remove_cgroup_tree(&self.cgroup_parent);
        // The runtimes' state roots for our namespace (the shim's rt root, the runc
        // shim's), empty once every task is deleted.
        for root in ["/run/containerd/rt", "/run/containerd/runc"] {
            let _ = fs::remove_dir(Path::new(root).join(&self.ns));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn run_with_timeout(mut c: Command, what: &str, dir: &Path) -> Output {
    // Unique per call: tests run ctr from many threads at once.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_p = dir.join(format!("out-{n}.stdout"));
    let err_p = dir.join(format!("out-{n}.stderr"));
    c.stdout(fs::File::create(&out_p).unwrap());
    c.stderr(fs::File::create(&err_p).unwrap());
    let mut child = c.spawn().expect("spawn ctr");
    let status = wait_child(&mut child, T, what);
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    let o = Output {
        cmdline: what.to_string(),
        status,
        stdout: read(&out_p),
        stderr: read(&err_p),
        raw_stderr: String::new(),
        log: None,
        args: Vec::new(),
    };
    let _ = fs::remove_file(out_p);
    let _ = fs::remove_file(err_p);
    o
}
