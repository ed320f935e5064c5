//! The command line, shaped like runc's: argument structs only, no logic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "rt",
    about = "rt - an Open Container Initiative runtime",
    long_about = "rt is a command line client for running applications packaged according to the \
Open Container Initiative (OCI) format. It is a compliant implementation of the OCI runtime \
specification and takes the same commands and flags as runc.\n\n\
To start a new instance of a container:\n\n    # rt run [ -b bundle ] <container-id>",
    disable_version_flag = true
)]
pub struct Cli {
    /// root directory for storage of container state (this should be located in tmpfs);
    /// default /run/rt, or $XDG_RUNTIME_DIR/rt when run by a user other than root
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// set the log file to write rt logs to (default is '/dev/stderr')
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// set the log format ('text' (default), or 'json')
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// use the systemd cgroup driver (cgroupsPath "slice:prefix:name", a transient scope)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// cgroup manager, as crun's flag: 'cgroupfs' (default), 'systemd' (as
    /// --systemd-cgroup), or 'disabled' to create containers without cgroups
    /// (linux.resources and cgroupsPath are then ignored)
    #[arg(
        long = "cgroup-manager",
        global = true,
        value_enum,
        default_value = "cgroupfs"
    )]
    pub cgroup_manager: crate::cgroups::Driver,
    /// print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

// Each subcommand's arguments are built only when it is the one run (clap's `defer`):
// building all 19 on every run cost ~200 KiB of peak RSS (their code and heap). Not a
// doc comment: clap would take it for help text.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// create a container
    Create(CreateArgs),
    /// executes the user defined process in a created container
    Start(IdArg),
    /// create and run a container
    Run(RunArgs),
    /// output the state of a container
    State(IdArg),
    /// kill sends the specified signal (default: SIGTERM) to the container's init process
    Kill(KillArgs),
    /// delete any resources held by the container often used with detached container
    Delete(DeleteArgs),
    /// lists containers started by rt with the given root
    List(ListArgs),
    /// create a new specification file
    Spec(SpecArgs),
    /// pause suspends all processes inside the container
    Pause(IdArg),
    /// resumes all processes that have been previously paused
    Resume(IdArg),
    /// ps displays the processes running inside a container
    Ps(PsArgs),
    /// display container events such as OOM notifications, cpu, memory, and IO usage statistics
    Events(EventsArgs),
    /// update container resource constraints
    Update(Box<UpdateArgs>),
    /// execute new process inside the container
    Exec(Box<ExecArgs>),
    /// show the enabled features
    Features,
    /// check what this host supports, and why (exit 1 if the default config cannot run)
    Check(CheckArgs),
    /// checkpoint a running container (with CRIU)
    Checkpoint(CheckpointArgs),
    /// restore a container from a previous checkpoint (with CRIU)
    Restore(RestoreArgs),
    /// read the traces written by --trace
    #[command(subcommand)]
    Trace(TraceCommand),
}

#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// per-step median and p90 over the runs in trace files
    Summarize(SummarizeArgs),
}

#[derive(Args, Debug)]
pub struct SummarizeArgs {
    /// one row per detail (each mount's destination, each hook) rather than per step
    #[arg(long)]
    pub detail: bool,
    /// text (default) or json
    #[arg(long, default_value = "text")]
    pub format: String,
    /// trace files (JSON lines from --trace)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// path to the root of the bundle directory, defaults to the current directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// specify the file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// do not use pivot root to jail process inside rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the init process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// append a JSON line per setup step (start, duration in µs, process) to FILE
    /// (also $RT_TRACE); `rt trace summarize` reads it
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// the container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
    /// disable the use of the subreaper used to reap reparented processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// allocate a pseudo-TTY whatever process.terminal says (rt's addition; without
    /// --console-socket the pty is wired to rt's own stdin/stdout)
    #[arg(short = 't', long)]
    pub tty: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the exec process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// current working directory in the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// path to the process.json
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// specify the file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// set the asm process label for the process commonly used with selinux
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// set the apparmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// set the no new privileges value for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// add a capability to the bounding set for the process
    #[arg(short, long = "cap")]
    pub cap: Vec<String>,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// append a JSON line per setup step (start, duration in µs, process) to FILE
    /// (also $RT_TRACE); `rt trace summarize` reads it
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// the container id, then the command and its arguments
    #[arg(value_name = "CONTAINER_ID COMMAND [ARGS]", required = true, num_args = 1..,
          trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct IdArg {
    /// the container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// send the specified signal to all processes inside the container
    #[arg(short, long)]
    pub all: bool,
    /// the container id
    pub id: String,
    /// the signal (name or number), default SIGTERM
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Forcibly deletes the container if it is still running (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// the container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// select one of: table or json (default: "table")
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// display only container IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// path to the root of the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// output format: text (default) or json
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// probe idmapped mounts on the filesystem of this bundle's rootfs (default: /)
    #[arg(short, long)]
    pub bundle: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// select one of: table or json (default: "table")
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// the container id, then options for ps (default: -ef): everything after the id goes
    /// to ps, as with runc
    #[arg(value_name = "CONTAINER_ID [PS_OPTIONS]", required = true, num_args = 1..,
          trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// set the stats collection interval (a Go duration: 5s, 100ms, 1m)
    #[arg(long, default_value = "5s", allow_hyphen_values = true,
          value_parser = crate::container::events::parse_go_duration)]
    pub interval: i64,
    /// display the container's stats then exit
    #[arg(long)]
    pub stats: bool,
    /// the container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// path to the file containing the resources to update or '-' to read from the standard
    /// input (a linux.resources JSON; unchanged values can be omitted). All other resource
    /// options are then ignored.
    #[arg(short, long)]
    pub resources: Option<String>,
    /// Specifies per cgroup weight, range is from 10 to 1000
    #[arg(long = "blkio-weight", allow_hyphen_values = true)]
    pub blkio_weight: Option<i64>,
    /// CPU CFS period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long = "cpu-period", allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period
    #[arg(long = "cpu-burst", allow_hyphen_values = true)]
    pub cpu_burst: Option<String>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long = "cpu-share", allow_hyphen_values = true)]
    pub cpu_share: Option<String>,
    /// CPU realtime period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<String>,
    /// CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<String>,
    /// CPU(s) to use
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<String>,
    /// (obsoleted; do not use)
    #[arg(long = "kernel-memory", hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// (obsoleted; do not use)
    #[arg(long = "kernel-memory-tcp", hide = true, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (in bytes)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation or soft_limit (in bytes)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Total memory usage (memory + swap); set '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids allowed in the container
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// The string of Intel RDT/CAT L3 cache schema (Intel RDT is not supported)
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// The string of Intel RDT/MBA memory bandwidth schema (Intel RDT is not supported)
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// the container id
    pub id: String,
}

// Options that `checkpoint` and `restore` share (runc's names). Not a doc comment: with
// `defer`, a flattened struct's doc would become the subcommand's about line in its help.
#[derive(Args, Debug, Clone, Default)]
pub struct CriuArgs {
    /// path for saving (checkpoint) or reading (restore) criu image files (default ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// path for saving work files and logs (default: the image path)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// allow open tcp connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// handle file locks, for safety
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: 'soft' (default), 'full', 'strict' or 'ignore'
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// create a namespace, but don't restore its properties (only "network")
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// enable auto deduplication of memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// use userfaultfd to lazily restore memory pages (not supported: refused)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// path for previous criu image files in pre-dump (relative to the image path)
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// leave the process running after checkpointing
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// dump container's memory information only, leave the container running after this
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// criu writes \0 to this FD once lazy-pages is ready (needs --lazy-pages: refused)
    #[arg(long = "status-fd", allow_hyphen_values = true)]
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of the page server (not supported: refused)
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// the container id
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// path to the root of the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// specify the file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// disable the use of the subreaper used to reap reparented processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// do not use pivot root to jail process inside rootfs (accepted; criu sets up the root)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// the container id
    pub id: String,
}
