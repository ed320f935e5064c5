//! The shim: bootstrap (`start`/`delete`) and the Task service containerd calls over
//! ttrpc. Containers and their exec'd processes are kept in one table under a mutex; the
//! exit of any process the shim reaps (it is their subreaper) is matched to it by pid,
//! recorded, signalled to `Wait` callers and published as TaskExit — never before the
//! process's TaskStart / TaskExecStarted.

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use containerd_shim::api;
use containerd_shim::monitor::{monitor_subscribe, ExitEvent, Subject, Topic};
use containerd_shim::protos::events::task as ev;
use containerd_shim::protos::protobuf::{well_known_types::timestamp::Timestamp, MessageField};
use containerd_shim::protos::shim::oci::CheckpointOptions;
use containerd_shim::{DeleteResponse, Flags, StartOpts, TtrpcContext, TtrpcResult};

use crate::events::{Event, Publisher};
use crate::oom::OomWatcher;
use crate::oom_level::Level;
use crate::options::{checkpoint_options, runc_options};
use crate::runtime::Runtime;
use crate::server::{no_such_method, unary, Dispatch, Exit, Reply};
use crate::stdio::{self, ConsoleSocket, Held, Paths};
use crate::trace::RequestSpan;

/// How long an exit of an unknown pid is kept for a process whose pid file is still to be
/// read (that happens right after the runtime call that started it); older ones are of
/// runtime processes, and would be taken for a later process that reuses the pid.
const EARLY_EXIT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The CRI annotation naming a container's pod sandbox: one shim per pod.
const SANDBOX_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

struct Proc {
    pid: i32,
    paths: Paths,
    held: Held,
    status: Status,
    /// TaskStart / TaskExecStarted was published: TaskExit may follow.
    started: bool,
    exit: Option<(u32, Timestamp)>,
    /// exec: the process spec, until it is started.
    spec_file: Option<PathBuf>,
    /// `Wait` calls parked until the exit: answered then, with no thread held meanwhile.
    waiters: Vec<Reply>,
}

impl Proc {
    fn new(paths: Paths) -> Proc {
        Proc {
            pid: 0,
            paths,
            held: Held::default(),
            status: Status::Created,
            started: false,
            exit: None,
            spec_file: None,
            waiters: Vec::new(),
        }
    }

    /// Record the exit; the parked `Wait` calls to answer (once the table is unlocked: an
    /// answer is a write to containerd's socket).
    fn set_exit(&mut self, code: u32) -> Waiters {
        self.exit = Some((code, now()));
        self.status = Status::Stopped;
        self.waiters_to_answer()
    }

    fn waiters_to_answer(&mut self) -> Waiters {
        let (code, at) = self.exit.clone().unwrap_or_default();
        Waiters(std::mem::take(&mut self.waiters), code, at)
    }
}

/// `Wait` calls and the exit to answer them with.
#[must_use]
struct Waiters(Vec<Reply>, u32, Timestamp);

impl Waiters {
    fn answer(self) {
        for reply in self.0 {
            reply.send(wait_response(self.1, &self.2));
        }
    }
}

fn wait_response(code: u32, at: &Timestamp) -> TtrpcResult<Vec<u8>> {
    use containerd_shim::protos::protobuf::Message;
    let res = api::WaitResponse {
        exit_status: code,
        exited_at: MessageField::some(at.clone()),
        ..Default::default()
    };
    res.write_to_bytes().map_err(|e| err(e.to_string()))
}

struct Container {
    bundle: PathBuf,
    runtime: Runtime,
    init: Proc,
    execs: HashMap<String, Proc>,
    rootfs_mounted: bool,
    /// Created from a checkpoint: the init is restored by Start, as the runc shim does.
    restore: Option<Restore>,
}

/// Where a container created from a checkpoint is restored from.
#[derive(Clone, Debug, Default, PartialEq)]
struct Restore {
    image_path: String,
    /// The runc options of the create (no_pivot_root, criu_work_path).
    opts: api::Options,
}

#[derive(Default)]
struct Table {
    containers: HashMap<String, Container>,
    /// Exits of pids not (yet) known: a process may die before its pid file is read. Every
    /// runtime process's exit lands here too, so entries are kept only for EARLY_EXIT_TTL.
    early_exits: HashMap<i32, (i32, std::time::Instant)>,
}

#[derive(Clone)]
pub struct Service {
    table: Arc<Mutex<Table>>,
    exit: Arc<Exit>,
    namespace: String,
    id: String,
    debug: bool,
    /// The ttrpc socket this shim serves on (`unix:///run/containerd/s/…`).
    socket: String,
    /// Set by the serving shim; shared with the Shim instance, which flushes it on exit.
    publisher: Arc<OnceLock<Publisher>>,
    oom: Option<Arc<OomWatcher>>,
}

/// An exec id names files in the bundle (`<id>.process.json`, `<id>.pid`): one plain
/// name, never a path. containerd checks ids too; the shim does not rely on it.
fn is_plain_name(id: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_+-.".contains(c);
    !id.is_empty() && id != "." && id != ".." && id.len() <= 1024 && id.chars().all(ok)
}

fn err(msg: impl Into<String>) -> containerd_shim::protos::ttrpc::Error {
    use containerd_shim::protos::ttrpc::{get_status, Code, Error};
    Error::RpcStatus(get_status(Code::UNKNOWN, msg.into()))
}

fn not_found(what: &str) -> containerd_shim::protos::ttrpc::Error {
    use containerd_shim::protos::ttrpc::{get_status, Code, Error};
    Error::RpcStatus(get_status(Code::NOT_FOUND, format!("{what}: not found")))
}

pub(crate) fn now() -> Timestamp {
    containerd_shim::util::timestamp().unwrap_or_default()
}

impl Service {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish<E: Event>(&self, event: &E) {
        if let Some(p) = self.publisher.get() {
            if let Err(e) = p.publish(event) {
                log::warn!("{e}");
            }
        }
    }

    fn publish_exit(&self, cid: &str, exec_id: &str, p: &Proc) {
        let Some((code, at)) = &p.exit else { return };
        // An OOM kill behind this exit is reported first, even when the exit was reaped
        // before the watcher read the kernel's notification.
        if let Some(w) = &self.oom {
            w.flush(cid);
        }
        let e = ev::TaskExit {
            container_id: cid.to_string(),
            id: if exec_id.is_empty() {
                cid.to_string()
            } else {
                exec_id.to_string()
            },
            pid: p.pid as u32,
            exit_status: *code,
            exited_at: MessageField::some(at.clone()),
            ..Default::default()
        };
        self.publish(&e);
    }

    /// Record an exit the reaper saw.
    fn on_exit(&self, pid: i32, code: i32) {
        let mut t = self.lock();
        let mut found = None;
        for (cid, c) in t.containers.iter_mut() {
            if c.init.pid == pid && c.init.exit.is_none() {
                found = Some((cid.clone(), String::new()));
            }
            for (eid, p) in c.execs.iter() {
                if p.pid == pid && p.exit.is_none() {
                    found = Some((cid.clone(), eid.clone()));
                }
            }
        }
        let Some((cid, eid)) = found else {
            t.early_exits
                .retain(|_, (_, at)| at.elapsed() < EARLY_EXIT_TTL);
            t.early_exits.insert(pid, (code, std::time::Instant::now()));
            return;
        };
        let c = t.containers.get_mut(&cid).expect("found above");
        let p = if eid.is_empty() {
            &mut c.init
        } else {
            c.execs.get_mut(&eid).expect("found above")
        };
        let waiters = p.set_exit(code as u32);
        if p.started {
            self.publish_exit(&cid, &eid, p);
        }
        drop(t);
        waiters.answer();
    }

    /// A process's pid became known: take an exit that came before it. The `Wait` calls to
    /// answer then.
    fn adopt_early_exit(t: &mut Table, cid: &str, eid: &str) -> Option<Waiters> {
        let pid = {
            let c = &t.containers[cid];
            if eid.is_empty() {
                c.init.pid
            } else {
                c.execs[eid].pid
            }
        };
        let (code, _) = t.early_exits.remove(&pid)?;
        let c = t.containers.get_mut(cid).expect("present");
        let p = if eid.is_empty() {
            &mut c.init
        } else {
            c.execs.get_mut(eid).expect("present")
        };
        Some(p.set_exit(code as u32))
    }

    /// TaskOOM for the container whose init is `pid`, from the shared watcher.
    fn watch_oom(&self, id: &str, pid: i32) {
        if let Some(w) = &self.oom {
            if let Err(e) = w.add(id, pid) {
                log::warn!("no OOM events for {id}: {e}");
            }
        }
    }

    fn watch_exits(self) {
        let Ok(sub) = monitor_subscribe(Topic::Pid) else {
            log::error!("cannot subscribe to process exits");
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("exits".into())
            .spawn(move || {
                while let Ok(ExitEvent { subject, exit_code }) = sub.rx.recv() {
                    if let Subject::Pid(pid) = subject {
                        self.on_exit(pid, exit_code);
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!("no thread for process exits: {e}");
        }
    }
}

/// `rt checkpoint` for containerd's request: the image goes to the options' image path
/// when set, else to the request's path.
fn checkpoint_args(id: &str, path: &str, work: &Path, o: &CheckpointOptions) -> Vec<String> {
    let image = if o.image_path.is_empty() {
        path
    } else {
        &o.image_path
    };
    let mut args: Vec<String> = vec!["checkpoint".into(), "--image-path".into(), image.into()];
    args.extend(["--work-path".into(), work.display().to_string()]);
    if !o.exit {
        args.push("--leave-running".into());
    }
    for (on, flag) in [
        (o.open_tcp, "--tcp-established"),
        (o.external_unix_sockets, "--ext-unix-sk"),
        (o.terminal, "--shell-job"),
        (o.file_locks, "--file-locks"),
    ] {
        if on {
            args.push(flag.into());
        }
    }
    for ns in &o.empty_namespaces {
        args.extend(["--empty-ns".into(), ns.clone()]);
    }
    if !o.cgroups_mode.is_empty() {
        args.extend(["--manage-cgroups-mode".into(), o.cgroups_mode.clone()]);
    }
    args.push(id.into());
    args
}

/// The pod a container belongs to, from its config's annotations; else itself.
fn grouping(id: &str) -> String {
    let config = std::fs::read_to_string("config.json").unwrap_or_default();
    // Parsed only when it may be there (CRI's containers).
    if !config.contains(SANDBOX_ANNOTATION) {
        return id.to_string();
    }
    let v: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
    v["annotations"][SANDBOX_ANNOTATION]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(id)
        .to_string()
}

impl Service {
    pub fn new(args: &Flags) -> std::io::Result<Service> {
        Ok(Service {
            table: Arc::default(),
            exit: Arc::new(Exit::new()?),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            debug: args.debug,
            socket: args.socket.clone(),
            publisher: Arc::default(),
            oom: None,
        })
    }

    /// `start`: spawn the serving shim (or find the one serving this container's pod) and
    /// return its address.
    pub fn start_shim(&self, opts: StartOpts) -> Result<String, containerd_shim::Error> {
        let group = grouping(&opts.id);
        let (tunables, saved) = crate::serving_tunables();
        let vars = vec![
            ("GLIBC_TUNABLES", tunables.as_str()),
            (crate::SAVED_TUNABLES, saved.as_str()),
        ];
        let (_pid, address) = containerd_shim::spawn(opts, &group, vars)?;
        // The bundle's `address` file: containerd reconnects through it after a restart,
        // and the shim removes its socket by it on the way out.
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    /// containerd cleans up after a shim that died: the container is removed the hard way.
    pub fn delete_shim(&self) -> DeleteResponse {
        // The runtime's exit comes from the reaper here too, at once.
        if let Err(e) = crate::wait::start_reaper() {
            log::warn!("{e}");
        }
        let bundle = std::env::current_dir().unwrap_or_default();
        let rt = Runtime::saved(&bundle, &self.namespace);
        if let Err(e) = rt.call(&["delete", "--force", &self.id]) {
            log::warn!("delete --force {}: {e}", self.id);
        }
        let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        // Console sockets the dead shim left behind.
        stdio::remove_stale_console_dirs();
        // The dead shim's socket, named in the bundle's address file — unless a shim still
        // answers on it (a pod's shim serving its other containers).
        if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
            let socket = address.trim().trim_start_matches("unix://").to_string();
            if std::os::unix::net::UnixStream::connect(&socket).is_err() {
                let _ = std::fs::remove_file(&socket);
            }
        }
        DeleteResponse {
            // containerd's TaskExit for the task names its init.
            pid: read_pid(&bundle.join("init.pid")).unwrap_or_default() as u32,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: MessageField::some(now()),
            ..Default::default()
        }
    }

    /// The serving shim: the task service on our socket until containerd shuts it down.
    pub fn serve(&self, ttrpc_address: &str) -> Result<(), String> {
        if self.socket.is_empty() {
            return Err("Shim socket cannot be empty".into());
        }
        let task = self.create_task_service(ttrpc_address);
        let Some(listener) = listen(&self.socket)? else {
            // Another shim serves this address (this container's pod): it serves this
            // container too.
            server_started();
            return Ok(());
        };
        server_started();
        crate::server::serve(listener, Arc::new(task), &self.exit);
        // The last events (the TaskDelete before Shutdown) go out before the shim does,
        // unless containerd does not take them within a few seconds.
        if let Some(p) = self.publisher.get() {
            if !p.flush(std::time::Duration::from_secs(5)) {
                log::warn!("exiting with events containerd did not take");
            }
        }
        // Our socket, named by our flags: the `address` file of the bundle we started in is
        // gone when that container was deleted first (a pod's shim outlives it).
        let _ = std::fs::remove_file(self.socket.trim_start_matches("unix://"));
        Ok(())
    }

    fn create_task_service(&self, ttrpc_address: &str) -> Service {
        // Only the serving shim logs, into the bundle's `log` FIFO.
        crate::logger::init(self.debug);
        let mut s = self.clone();
        match Publisher::start(ttrpc_address, &self.namespace) {
            Ok(p) => {
                let _ = self.publisher.set(p);
            }
            Err(e) => log::error!("events will not reach containerd: {e}"),
        }
        let me = s.clone();
        let publish_oom = move |id: &str, level: &Level, cgroup: Option<&str>| {
            // TaskOOM carries only the container id: the level goes to the log.
            let at = match level {
                Level::Ancestor(p) => p.as_str(),
                _ => cgroup.unwrap_or("?"),
            };
            log::info!("{id}: OOM kill; memory limit hit: {} ({at})", level.name());
            me.publish(&ev::TaskOOM {
                container_id: id.to_string(),
                ..Default::default()
            })
        };
        match OomWatcher::start(publish_oom) {
            Ok(w) => s.oom = Some(w),
            Err(e) => log::error!("no OOM events: {e}"),
        }
        s.clone().watch_exits();
        if let Err(e) = crate::wait::start_reaper() {
            log::error!("{e}");
        }
        s
    }
}

/// The listening socket at `socket` (`unix://PATH`); None when a shim already serves there
/// (the address is then written to the bundle for this container too). A socket left by a
/// shim that died is replaced.
fn listen(socket: &str) -> Result<Option<UnixListener>, String> {
    let path = Path::new(socket.trim_start_matches("unix://"));
    let bind = || {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        UnixListener::bind(path)
    };
    let e = match bind() {
        Ok(l) => return Ok(Some(l)),
        Err(e) => e,
    };
    if e.kind() != std::io::ErrorKind::AddrInUse {
        return Err(format!("listen on {}: {e}", path.display()));
    }
    // Whoever holds it may still be starting: a second to answer, as the crate gave it.
    for _ in 0..200 {
        if UnixStream::connect(path).is_ok() {
            containerd_shim::util::write_address(socket).map_err(|e| e.to_string())?;
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path).map_err(|e| format!("remove {}: {e}", path.display()))?;
    }
    bind()
        .map(Some)
        .map_err(|e| format!("listen on {}: {e}", path.display()))
}

/// Tell `start`, which reads our stdout until it closes, that the server is up: our stdout
/// becomes our stderr (/dev/null).
fn server_started() {
    // SAFETY: dup2 of our own standard descriptors.
    if unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
        log::error!("dup2: {}", std::io::Error::last_os_error());
    }
}

/// containerd's Task service.
const TASK_SERVICE: &str = "containerd.task.v2.Task";

impl Dispatch for Service {
    fn call(&self, ctx: &TtrpcContext, service: &str, method: &str, payload: &[u8], reply: Reply) {
        use containerd_shim::Task;
        if service != TASK_SERVICE {
            return reply.send(Err(no_such_method(service, method)));
        }
        if method == "Wait" {
            return self.wait_for_exit(payload, reply);
        }
        let result = match method {
            "State" => unary(payload, |r| self.state(ctx, r)),
            "Create" => unary(payload, |r| self.create(ctx, r)),
            "Start" => unary(payload, |r| self.start(ctx, r)),
            "Delete" => unary(payload, |r| self.delete(ctx, r)),
            "Pids" => unary(payload, |r| self.pids(ctx, r)),
            "Pause" => unary(payload, |r| self.pause(ctx, r)),
            "Resume" => unary(payload, |r| self.resume(ctx, r)),
            "Checkpoint" => unary(payload, |r| self.checkpoint(ctx, r)),
            "Kill" => unary(payload, |r| self.kill(ctx, r)),
            "Exec" => unary(payload, |r| self.exec(ctx, r)),
            "ResizePty" => unary(payload, |r| self.resize_pty(ctx, r)),
            "CloseIO" => unary(payload, |r| self.close_io(ctx, r)),
            "Update" => unary(payload, |r| self.update(ctx, r)),
            "Stats" => unary(payload, |r| self.stats(ctx, r)),
            "Connect" => unary(payload, |r| self.connect(ctx, r)),
            "Shutdown" => unary(payload, |r| self.shutdown(ctx, r)),
            _ => Err(no_such_method(service, method)),
        };
        reply.send(result)
    }
}

impl Service {
    /// `Wait`: the process's exit, at once if it has exited; else the call is parked with
    /// the process and answered when it exits (no thread waits meanwhile).
    fn wait_for_exit(&self, payload: &[u8], reply: Reply) {
        use containerd_shim::protos::protobuf::Message;
        let req = match api::WaitRequest::parse_from_bytes(payload) {
            Ok(r) => r,
            Err(e) => return reply.send(Err(err(format!("WaitRequest: {e}")))),
        };
        let mut t = self.lock();
        let p = match proc_of_mut(&mut t, &req.id, &req.exec_id) {
            Ok(p) => p,
            Err(e) => {
                drop(t);
                return reply.send(Err(e));
            }
        };
        match p.exit.clone() {
            Some((code, at)) => {
                drop(t);
                reply.send(wait_response(code, &at));
            }
            None => p.waiters.push(reply),
        }
    }
}

impl containerd_shim::Task for Service {
    fn create(
        &self,
        ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        let bundle = PathBuf::from(&req.bundle);
        let span = RequestSpan::start(ctx, "Create", &req.id, "", || Some(bundle.clone()));
        let opts = runc_options(&req.options);
        let runtime = Runtime::new(
            &opts.binary_name,
            &opts.root,
            opts.systemd_cgroup,
            &bundle,
            &self.namespace,
        );
        // Before anything exists to clean up: the `delete` of a shim that dies from here on
        // needs it. Without options it would record the defaults, which is what `delete`
        // takes when there is no record: one file less to make per container.
        if !opts.binary_name.is_empty() || !opts.root.is_empty() || opts.systemd_cgroup {
            runtime.save(&bundle).map_err(err)?;
        }
        let rootfs = bundle.join("rootfs");
        let mut rootfs_mounted = false;
        for m in &req.rootfs {
            crate::mount::mount_rootfs(&m.type_, &m.source, &m.options, &rootfs)
                .map_err(|e| err(format!("mount rootfs {} ({}): {e}", m.source, m.type_)))?;
            rootfs_mounted = true;
        }
        let paths = Paths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        // From a checkpoint, nothing runs until Start restores it (pid 0 until then).
        let restore = (!req.checkpoint.is_empty()).then(|| Restore {
            image_path: req.checkpoint.clone(),
            opts: opts.clone(),
        });
        let result = match restore {
            Some(_) => Ok((0, Held::default())),
            None => {
                let traced = runtime.traced(span.as_ref());
                self.launch_init(&req.id, &bundle, &traced, &paths, &opts, None)
            }
        };
        let (pid, held) = match result {
            Ok(v) => {
                crate::fault::stop_at("create");
                v
            }
            Err(e) => {
                if rootfs_mounted {
                    let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
                }
                return Err(err(e));
            }
        };
        let mut init = Proc::new(paths.clone());
        init.pid = pid;
        init.held = held;
        let mut t = self.lock();
        t.containers.insert(
            req.id.clone(),
            Container {
                bundle: bundle.clone(),
                runtime,
                init,
                execs: HashMap::new(),
                rootfs_mounted,
                restore,
            },
        );
        let waiters = Self::adopt_early_exit(&mut t, &req.id, "");
        let e = ev::TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(ev::TaskIO {
                stdin: paths.stdin,
                stdout: paths.stdout,
                stderr: paths.stderr,
                terminal: paths.terminal,
                ..Default::default()
            }),
            pid: pid as u32,
            ..Default::default()
        };
        self.publish(&e);
        drop(t);
        if let Some(w) = waiters {
            w.answer();
        }
        if pid > 0 {
            self.watch_oom(&req.id, pid);
        }
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn start(&self, ctx: &TtrpcContext, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        let span = self.request_span(ctx, "Start", &req.id, &req.exec_id);
        if req.exec_id.is_empty() {
            let runtime = self.container_runtime(&req.id)?.traced(span.as_ref());
            // Holding the table while `start` runs keeps a fast exit's TaskExit after TaskStart.
            let mut t = self.lock();
            let c = t
                .containers
                .get_mut(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            let mut waiters = None;
            match c.restore.take() {
                Some(r) => {
                    let (bundle, paths) = (c.bundle.clone(), c.init.paths.clone());
                    let launched =
                        self.launch_init(&req.id, &bundle, &runtime, &paths, &r.opts, Some(&r));
                    let (pid, held) = launched.map_err(|e| {
                        c.restore = Some(r);
                        err(e)
                    })?;
                    (c.init.pid, c.init.held) = (pid, held);
                    waiters = Self::adopt_early_exit(&mut t, &req.id, "");
                    self.watch_oom(&req.id, pid);
                }
                None => {
                    runtime.call(&["start", &req.id]).map_err(err)?;
                    crate::fault::stop_at("start");
                }
            }
            let c = t
                .containers
                .get_mut(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            let p = &mut c.init;
            p.started = true;
            if p.exit.is_none() {
                p.status = Status::Running;
            }
            let pid = p.pid;
            self.publish(&ev::TaskStart {
                container_id: req.id.clone(),
                pid: pid as u32,
                ..Default::default()
            });
            self.publish_exit(&req.id, "", &t.containers[&req.id].init);
            drop(t);
            if let Some(w) = waiters {
                w.answer();
            }
            return Ok(api::StartResponse {
                pid: pid as u32,
                ..Default::default()
            });
        }
        let (runtime, bundle, paths, spec_file) = {
            let t = self.lock();
            let c = t
                .containers
                .get(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            let p = c
                .execs
                .get(&req.exec_id)
                .ok_or_else(|| not_found(&req.exec_id))?;
            (
                c.runtime.traced(span.as_ref()),
                c.bundle.clone(),
                p.paths.clone(),
                p.spec_file.clone(),
            )
        };
        let spec_file =
            spec_file.ok_or_else(|| err(format!("exec {} was started already", req.exec_id)))?;
        let pid_file = bundle.join(format!("{}.pid", req.exec_id));
        let (io, mut held) = stdio::open(&paths, &req.id, &self.namespace).map_err(err)?;
        let console = if paths.terminal {
            Some(ConsoleSocket::new().map_err(err)?)
        } else {
            None
        };
        let mut args = vec!["exec", "--process"];
        let spec_s = spec_file.to_string_lossy().into_owned();
        let pid_s = pid_file.to_string_lossy().into_owned();
        args.extend([spec_s.as_str(), "--detach", "--pid-file", pid_s.as_str()]);
        let sock_s = console
            .as_ref()
            .map(|c| c.path.to_string_lossy().into_owned());
        if let Some(s) = &sock_s {
            args.extend(["--console-socket", s.as_str()]);
        }
        args.push(&req.id);
        let mut t = self.lock();
        runtime.call_with(&args, io).map_err(err)?;
        if let Some(c) = console {
            let master = c.receive().map_err(err)?;
            stdio::attach_console(&paths, master, &mut held).map_err(err)?;
        }
        let pid = read_pid(&pid_file).map_err(err)?;
        let _ = std::fs::remove_file(&spec_file);
        let c = t
            .containers
            .get_mut(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        let p = c
            .execs
            .get_mut(&req.exec_id)
            .ok_or_else(|| not_found(&req.exec_id))?;
        p.pid = pid;
        p.held = held;
        p.started = true;
        p.status = Status::Running;
        p.spec_file = None;
        let waiters = Self::adopt_early_exit(&mut t, &req.id, &req.exec_id);
        self.publish(&ev::TaskExecStarted {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            pid: pid as u32,
            ..Default::default()
        });
        self.publish_exit(
            &req.id,
            &req.exec_id,
            &t.containers[&req.id].execs[&req.exec_id],
        );
        drop(t);
        if let Some(w) = waiters {
            w.answer();
        }
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn delete(
        &self,
        ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        let span = self.request_span(ctx, "Delete", &req.id, &req.exec_id);
        if !req.exec_id.is_empty() {
            let mut t = self.lock();
            let c = t
                .containers
                .get_mut(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            let mut p = c
                .execs
                .remove(&req.exec_id)
                .ok_or_else(|| not_found(&req.exec_id))?;
            let (code, at) = p.exit.clone().unwrap_or_default();
            drop(t);
            // Waits on a process deleted before it exited get what Delete says.
            Waiters(std::mem::take(&mut p.waiters), code, at.clone()).answer();
            return Ok(api::DeleteResponse {
                pid: p.pid as u32,
                exit_status: code,
                exited_at: MessageField::some(at),
                ..Default::default()
            });
        }
        let runtime = self.container_runtime(&req.id)?.traced(span.as_ref());
        runtime.call(&["delete", "--force", &req.id]).map_err(err)?;
        if let Some(w) = &self.oom {
            w.remove(&req.id);
        }
        let mut t = self.lock();
        let mut c = t
            .containers
            .remove(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        drop(t);
        if c.rootfs_mounted {
            let _ = nix::mount::umount2(&c.bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        }
        let (code, at) = c
            .init
            .exit
            .clone()
            .unwrap_or_else(|| (128 + libc::SIGKILL as u32, now()));
        self.publish(&ev::TaskDelete {
            container_id: req.id.clone(),
            pid: c.init.pid as u32,
            exit_status: code,
            exited_at: MessageField::some(at.clone()),
            id: req.id.clone(),
            ..Default::default()
        });
        // Waits on processes that had not exited (their exit would no longer find them)
        // get the status Delete reports: they were killed with the container.
        for p in std::iter::once(&mut c.init).chain(c.execs.values_mut()) {
            let (code, at) = p.exit.clone().unwrap_or_else(|| (code, at.clone()));
            Waiters(std::mem::take(&mut p.waiters), code, at).answer();
        }
        Ok(api::DeleteResponse {
            pid: c.init.pid as u32,
            exit_status: code,
            exited_at: MessageField::some(at),
            ..Default::default()
        })
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let runtime = self.container_runtime(&req.id)?;
        let out = runtime
            .output(&["ps", "--format", "json", &req.id])
            .map_err(err)?;
        let pids: Vec<u32> =
            serde_json::from_str(&out).map_err(|e| err(format!("ps --format json: {e}")))?;
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| containerd_shim::protos::types::task::ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    /// `rt checkpoint` into the path containerd gives (criu's images), leaving the task
    /// running unless the options say exit, as the runc shim does.
    fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        let (runtime, bundle) = self.runtime_and_bundle(&req.id)?;
        let opts = checkpoint_options(&req.options);
        // criu's work files (dump.log) go to a directory of the bundle unless asked to keep
        // them elsewhere; a failed dump's log is kept in the bundle for the error message.
        let scratch = bundle.join("criu-work");
        let work = match opts.work_path.as_str() {
            "" => scratch.clone(),
            w => PathBuf::from(w),
        };
        let args = checkpoint_args(&req.id, &req.path, &work, &opts);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = runtime.call(&args);
        if let Err(e) = result {
            let kept = bundle.join("criu-dump.log");
            let _ = std::fs::copy(work.join("dump.log"), &kept);
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(err(format!("{e} (criu log: {})", kept.display())));
        }
        let _ = std::fs::remove_dir_all(&scratch);
        Ok(api::Empty::default())
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        self.freeze(&req.id, true)
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        self.freeze(&req.id, false)
    }

    fn kill(&self, ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let span = self.request_span(ctx, "Kill", &req.id, &req.exec_id);
        if req.exec_id.is_empty() {
            let runtime = self.container_runtime(&req.id)?.traced(span.as_ref());
            let sig = req.signal.to_string();
            let mut args = vec!["kill"];
            if req.all {
                args.push("--all");
            }
            args.extend([req.id.as_str(), sig.as_str()]);
            if let Err(e) = runtime.call(&args) {
                // A container that already stopped is no error to containerd.
                if !self.stopped(&req.id, "") {
                    return Err(err(e));
                }
            }
            return Ok(api::Empty::default());
        }
        let t = self.lock();
        let c = t
            .containers
            .get(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        let p = c
            .execs
            .get(&req.exec_id)
            .ok_or_else(|| not_found(&req.exec_id))?;
        if p.exit.is_none() && p.pid > 0 {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::try_from(req.signal as i32)
                    .map_err(|e| err(e.to_string()))?,
            )
            .map_err(|e| err(format!("kill {}: {e}", p.pid)))?;
        }
        Ok(api::Empty::default())
    }

    fn exec(&self, ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let _span = self.request_span(ctx, "Exec", &req.id, &req.exec_id);
        let mut t = self.lock();
        let c = t
            .containers
            .get_mut(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        if !is_plain_name(&req.exec_id) {
            return Err(err(format!("invalid exec id {:?}", req.exec_id)));
        }
        if c.execs.contains_key(&req.exec_id) {
            return Err(err(format!("exec {} already exists", req.exec_id)));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let spec_file = c.bundle.join(format!("{}.process.json", req.exec_id));
        std::fs::write(&spec_file, spec)
            .map_err(|e| err(format!("write {}: {e}", spec_file.display())))?;
        let mut p = Proc::new(Paths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        });
        p.spec_file = Some(spec_file);
        c.execs.insert(req.exec_id.clone(), p);
        self.publish(&ev::TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        });
        Ok(api::Empty::default())
    }

    fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        let t = self.lock();
        let p = proc_of(&t, &req.id, &req.exec_id)?;
        if let Some(console) = &p.held.console {
            stdio::resize(console, req.width, req.height).map_err(err)?;
        }
        Ok(api::Empty::default())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        let t = self.lock();
        let p = proc_of(&t, &req.id, &req.exec_id)?;
        if req.stdin {
            p.held.close_stdin();
        }
        Ok(api::Empty::default())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let (runtime, bundle) = self.runtime_and_bundle(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let file = bundle.join("update-resources.json");
        std::fs::write(&file, resources)
            .map_err(|e| err(format!("write {}: {e}", file.display())))?;
        let f = file.to_string_lossy().into_owned();
        let result = runtime.call(&["update", "--resources", &f, &req.id]);
        let _ = std::fs::remove_file(&file);
        result.map_err(err)?;
        Ok(api::Empty::default())
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let t = self.lock();
        let c = t
            .containers
            .get(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        let p = proc_of(&t, &req.id, &req.exec_id)?;
        let status = match p.status {
            Status::Created => api::Status::CREATED,
            Status::Running => api::Status::RUNNING,
            Status::Paused => api::Status::PAUSED,
            Status::Stopped => api::Status::STOPPED,
        };
        let (code, at) = p.exit.clone().unwrap_or_default();
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid as u32,
            status: status.into(),
            stdin: p.paths.stdin.clone(),
            stdout: p.paths.stdout.clone(),
            stderr: p.paths.stderr.clone(),
            terminal: p.paths.terminal,
            exit_status: code,
            exited_at: if p.exit.is_some() {
                MessageField::some(at)
            } else {
                MessageField::none()
            },
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let t = self.lock();
        let task_pid = t
            .containers
            .get(&req.id)
            .map(|c| c.init.pid as u32)
            .unwrap_or_default();
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        // One shim may hold a whole pod: it stays while any container does.
        if self.lock().containers.is_empty() {
            self.exit.request();
        }
        Ok(api::Empty::default())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let runtime = self.container_runtime(&req.id)?;
        let out = runtime
            .output(&["events", "--stats", &req.id])
            .map_err(err)?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| err(format!("events --stats: {e}")))?;
        let v2 = crate::metrics::host_is_v2();
        let events = if v2 {
            let pid = self.lock().containers.get(&req.id).map(|c| c.init.pid);
            pid.map(memory_events).unwrap_or_default()
        } else {
            String::new()
        };
        let any = crate::metrics::from_runtime_stats(&v["data"], v2, &events).map_err(err)?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }
}

/// memory.events of the memory cgroup `pid` is in (empty when there is none).
fn memory_events(pid: i32) -> String {
    crate::oom::memory_cgroup_of(pid)
        .ok()
        .and_then(|d| std::fs::read_to_string(d.path.join("memory.events")).ok())
        .unwrap_or_default()
}

fn proc_of_mut<'a>(t: &'a mut Table, id: &str, exec_id: &str) -> TtrpcResult<&'a mut Proc> {
    let c = t.containers.get_mut(id).ok_or_else(|| not_found(id))?;
    if exec_id.is_empty() {
        Ok(&mut c.init)
    } else {
        c.execs.get_mut(exec_id).ok_or_else(|| not_found(exec_id))
    }
}

fn proc_of<'a>(t: &'a Table, id: &str, exec_id: &str) -> TtrpcResult<&'a Proc> {
    let c = t.containers.get(id).ok_or_else(|| not_found(id))?;
    if exec_id.is_empty() {
        Ok(&c.init)
    } else {
        c.execs.get(exec_id).ok_or_else(|| not_found(exec_id))
    }
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a pid: {text:?}", path.display()))
}

impl Service {
    /// The shim's span for a request on a known container, when it carries a trace
    /// context (trace.rs); the table is looked at only then.
    fn request_span(
        &self,
        ctx: &TtrpcContext,
        method: &'static str,
        id: &str,
        exec_id: &str,
    ) -> Option<RequestSpan> {
        RequestSpan::start(ctx, method, id, exec_id, || {
            self.lock().containers.get(id).map(|c| c.bundle.clone())
        })
    }

    fn runtime_and_bundle(&self, id: &str) -> TtrpcResult<(Runtime, PathBuf)> {
        let t = self.lock();
        let c = t.containers.get(id).ok_or_else(|| not_found(id))?;
        Ok((c.runtime.clone(), c.bundle.clone()))
    }

    fn container_runtime(&self, id: &str) -> TtrpcResult<Runtime> {
        let t = self.lock();
        t.containers
            .get(id)
            .map(|c| c.runtime.clone())
            .ok_or_else(|| not_found(id))
    }

    /// Pause (`rt pause`, TaskPaused) or resume (`rt resume`, TaskResumed).
    fn freeze(&self, id: &str, pause: bool) -> TtrpcResult<api::Empty> {
        let verb = if pause { "pause" } else { "resume" };
        self.container_runtime(id)?.call(&[verb, id]).map_err(err)?;
        let container_id = id.to_string();
        if pause {
            self.set_status(id, Status::Paused);
            let e = ev::TaskPaused {
                container_id,
                ..Default::default()
            };
            self.publish(&e);
        } else {
            self.set_status(id, Status::Running);
            let e = ev::TaskResumed {
                container_id,
                ..Default::default()
            };
            self.publish(&e);
        }
        Ok(api::Empty::default())
    }

    fn set_status(&self, id: &str, s: Status) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            if c.init.exit.is_none() {
                c.init.status = s;
            }
        }
    }

    fn stopped(&self, id: &str, exec_id: &str) -> bool {
        let t = self.lock();
        proc_of(&t, id, exec_id)
            .map(|p| p.exit.is_some())
            .unwrap_or(true)
    }

    /// `rt create` (or `rt restore` from a checkpoint) with the process's stdio; the init's
    /// pid and what the shim holds.
    fn launch_init(
        &self,
        id: &str,
        bundle: &Path,
        runtime: &Runtime,
        paths: &Paths,
        opts: &api::Options,
        restore: Option<&Restore>,
    ) -> Result<(i32, Held), String> {
        let (io, mut held) = stdio::open(paths, id, &self.namespace)?;
        let console = if paths.terminal {
            Some(ConsoleSocket::new()?)
        } else {
            None
        };
        let pid_file = bundle.join("init.pid");
        let sock = console.as_ref().map(|c| c.path.as_path());
        let args = init_args(id, bundle, &pid_file, sock, opts, restore);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        runtime.call_with(&args, io)?;
        if let Some(c) = console {
            let master = c.receive()?;
            stdio::attach_console(paths, master, &mut held)?;
        }
        Ok((read_pid(&pid_file)?, held))
    }
}

/// The runtime command that makes a container's init: `create`, or `restore --detach`
/// from a checkpoint image (the shim, as subreaper, reaps the restored tree).
fn init_args(
    id: &str,
    bundle: &Path,
    pid_file: &Path,
    console_socket: Option<&Path>,
    opts: &api::Options,
    restore: Option<&Restore>,
) -> Vec<String> {
    let mut args: Vec<String> = match restore {
        None => vec!["create".into()],
        Some(r) => {
            let mut a = vec!["restore".into(), "--detach".into(), "--no-subreaper".into()];
            a.extend(["--image-path".into(), r.image_path.clone()]);
            if !r.opts.criu_work_path.is_empty() {
                a.extend(["--work-path".into(), r.opts.criu_work_path.clone()]);
            }
            a
        }
    };
    args.extend(["--bundle".into(), bundle.display().to_string()]);
    args.extend(["--pid-file".into(), pid_file.display().to_string()]);
    if let Some(s) = console_socket {
        args.extend(["--console-socket".into(), s.display().to_string()]);
    }
    if opts.no_pivot_root {
        args.push("--no-pivot".into());
    }
    if opts.no_new_keyring && restore.is_none() {
        args.push("--no-new-keyring".into());
    }
    args.push(id.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::protobuf::Message;

    /// Exec ids become file names in the bundle: a path is refused (found by fuzzing).
    #[test]
    fn exec_ids_are_plain_names() {
        for ok in ["e1", "exec-0.a_b", "64hex0123456789abcdef"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/etc/x", "a\nb", "a b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    /// The runc options containerd passes (ctr --runc-binary, the CRI runtime's options):
    /// BinaryName, Root and SystemdCgroup choose the runtime the shim drives.
    #[test]
    fn runc_options_choose_the_runtime() {
        let o = api::Options {
            binary_name: "/usr/sbin/runc".into(),
            root: "/run/other".into(),
            systemd_cgroup: true,
            ..Default::default()
        };
        let any = MessageField::some(Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        });
        let parsed = runc_options(&any);
        let rt = Runtime::new(
            &parsed.binary_name,
            &parsed.root,
            parsed.systemd_cgroup,
            Path::new("/b"),
            "ns",
        );
        assert_eq!(rt.binary, PathBuf::from("/usr/sbin/runc"));
        assert_eq!(rt.root, PathBuf::from("/run/other/ns"));
        assert!(rt.systemd_cgroup);
        assert_eq!(rt.log, PathBuf::from("/b/log.json"));
        // Anything else: rt with containerd's defaults.
        let none = runc_options(&MessageField::none());
        let rt = Runtime::new(&none.binary_name, &none.root, false, Path::new("/b"), "ns");
        assert_eq!(rt.root, PathBuf::from("/run/containerd/rt/ns"));
        assert!(rt.binary.ends_with("rt"));
    }

    /// containerd's checkpoint options become runc's checkpoint flags; the task keeps
    /// running unless `exit` is set.
    #[test]
    fn checkpoint_options_become_flags() {
        let o = CheckpointOptions {
            open_tcp: true,
            file_locks: true,
            empty_namespaces: vec!["network".into()],
            cgroups_mode: "soft".into(),
            ..Default::default()
        };
        let any = MessageField::some(Any {
            type_url: "containerd.runc.v1.CheckpointOptions".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        });
        let args = checkpoint_args("c1", "/img", Path::new("/w"), &checkpoint_options(&any));
        assert_eq!(
            args.join(" "),
            "checkpoint --image-path /img --work-path /w --leave-running --tcp-established \
             --file-locks --empty-ns network --manage-cgroups-mode soft c1"
        );
        let exit = CheckpointOptions {
            exit: true,
            image_path: "/other".into(),
            ..Default::default()
        };
        let args = checkpoint_args("c1", "/img", Path::new("/w"), &exit);
        assert_eq!(
            args.join(" "),
            "checkpoint --image-path /other --work-path /w c1"
        );
    }

    /// A task created from a checkpoint is restored (detached; the shim reaps) instead
    /// of created; everything else about its init is the same.
    #[test]
    fn init_is_created_or_restored() {
        let opts = api::Options {
            no_pivot_root: true,
            no_new_keyring: true,
            ..Default::default()
        };
        let (b, pid) = (Path::new("/b"), Path::new("/b/init.pid"));
        let sock = Some(Path::new("/b/c.sock"));
        assert_eq!(
            init_args("c1", b, pid, sock, &opts, None).join(" "),
            "create --bundle /b --pid-file /b/init.pid --console-socket /b/c.sock --no-pivot \
             --no-new-keyring c1"
        );
        let opts = api::Options {
            criu_work_path: "/w".into(),
            ..opts
        };
        let r = Restore {
            image_path: "/img".into(),
            opts: opts.clone(),
        };
        assert_eq!(
            init_args("c1", b, pid, None, &opts, Some(&r)).join(" "),
            "restore --detach --no-subreaper --image-path /img --work-path /w --bundle /b \
             --pid-file /b/init.pid --no-pivot c1"
        );
    }
}
