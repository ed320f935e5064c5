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
    /// root directory for storage of container state (this should be located in tmpfs)
    #[arg(long, global = true, default_value = "/run/rt")]
    pub root: PathBuf,
    /// set the log file to write rt logs to (default is '/dev/stderr')
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// set the log format ('text' (default), or 'json')
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// enable systemd cgroup support (not supported yet: refused with an error)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
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
