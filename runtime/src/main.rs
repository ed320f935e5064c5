//! The `rt` command: parse the command line, run the command, and on failure print one line
//! and exit 1 (runc's conventions, which containerd and Docker rely on).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use rt::cgroups::Driver;
use rt::cli::{Cli, Command};
use rt::container::create::{create, CreateOpts};
use rt::container::run::{run, RunOpts};
use rt::container::{delete, kill, query, start};
use rt::container::{events, exec, pause, ps, update};
use rt::error::{Error, Result};
use rt::{features, logging, spec_template};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let to_file = match logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Some(list) = rt::fault::init() {
        print!("{list}");
        return ExitCode::SUCCESS;
    }
    // As runc: an exec that could not start exits 255, its error prefixed.
    let failure = if matches!(cli.command, Some(Command::Exec(_))) {
        (Some("exec failed: "), 255)
    } else {
        (None, 1)
    };
    let container = cli
        .command
        .as_ref()
        .and_then(container_id)
        .map(str::to_string);
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(mut e) => {
            if let Some(id) = &container {
                e = e.with_container(id);
            }
            let line = format!("{}{e}", failure.0.unwrap_or(""));
            logging::error(&line, e.fields());
            if to_file {
                eprintln!("{}", rt::error::bounded(&line));
            }
            ExitCode::from(failure.1)
        }
    }
}

/// The container a command is about (its errors name it).
fn container_id(command: &Command) -> Option<&str> {
    let id = match command {
        Command::Create(a) => &a.id,
        Command::Run(a) => &a.create.id,
        Command::Start(a) | Command::State(a) | Command::Pause(a) | Command::Resume(a) => &a.id,
        Command::Kill(a) => &a.id,
        Command::Delete(a) => &a.id,
        Command::Ps(a) => a.args.first()?,
        Command::Events(a) => &a.id,
        Command::Update(a) => &a.id,
        Command::Exec(a) => a.args.first()?,
        Command::Checkpoint(a) => &a.id,
        Command::Restore(a) => &a.id,
        Command::List(_)
        | Command::Spec(_)
        | Command::Features
        | Command::Check(_)
        | Command::Trace(_) => return None,
    };
    Some(id.as_str()).filter(|id| !id.is_empty())
}

fn version() -> String {
    format!(
        "rt version {}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("RT_GIT_COMMIT").unwrap_or("unknown"),
        rt::state::OCI_VERSION
    )
}

fn dispatch(cli: Cli) -> Result<u8> {
    if cli.version {
        print!("{}", version());
        return Ok(0);
    }
    let Some(command) = cli.command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return Ok(0);
    };
    let root = cli.root.unwrap_or_else(rt::rootless::default_state_root);
    // runc's --systemd-cgroup is crun's --cgroup-manager=systemd.
    let cgroups = match cli.cgroup_manager {
        Driver::Cgroupfs if cli.systemd_cgroup => Driver::Systemd,
        other => other,
    };
    let (name, trace_file) = trace_target(&command);
    let span = rt::trace::start(name, trace_file.as_deref())?;
    let result = run_command(command, &root, cgroups);
    rt::trace::finish(span);
    result
}

/// The root step's name for a command (the `step` of an error made outside any setup
/// step), and the trace file its flags name.
fn trace_target(command: &Command) -> (&'static str, Option<std::path::PathBuf>) {
    match command {
        Command::Create(a) => ("create", a.trace.clone()),
        Command::Run(a) => ("run", a.create.trace.clone()),
        Command::Exec(a) => ("exec", a.trace.clone()),
        Command::Start(_) => ("start", None),
        Command::Kill(_) => ("kill", None),
        Command::Delete(_) => ("delete", None),
        Command::State(_) => ("state", None),
        Command::List(_) => ("list", None),
        Command::Spec(_) => ("spec", None),
        Command::Pause(_) => ("pause", None),
        Command::Resume(_) => ("resume", None),
        Command::Ps(_) => ("ps", None),
        Command::Events(_) => ("events", None),
        Command::Update(_) => ("update", None),
        Command::Features => ("features", None),
        Command::Checkpoint(_) => ("checkpoint", None),
        Command::Restore(_) => ("restore", None),
        Command::Check(_) => ("check", None),
        Command::Trace(_) => ("trace", None),
    }
}

fn run_command(command: Command, root: &std::path::Path, cgroups: Driver) -> Result<u8> {
    let root = root.to_path_buf();
    match command {
        Command::Create(a) => {
            create(&create_opts(&root, cgroups, a))?;
        }
        Command::Start(a) => start::start(&root, &a.id)?,
        Command::Run(a) => {
            let opts = RunOpts {
                create: CreateOpts {
                    force_terminal: a.tty,
                    ..create_opts(&root, cgroups, a.create)
                },
                detach: a.detach,
                keep: a.keep,
                no_subreaper: a.no_subreaper,
            };
            let status = run(&opts)?;
            return Ok(status.clamp(0, 255) as u8);
        }
        Command::State(a) => {
            let text = query::state(&root, &a.id)?;
            print_out(&text);
        }
        Command::Kill(a) => kill::kill(&root, &a.id, &a.signal, a.all)?,
        Command::Delete(a) => delete::delete(&root, &a.id, a.force)?,
        Command::List(a) => {
            let json = match a.format.as_str() {
                "table" => false,
                "json" => true,
                other => return Err(Error::msg(format!("invalid format option: {other}"))),
            };
            let mut out = std::io::stdout().lock();
            query::list(&root, json, a.quiet, &mut out)?;
        }
        Command::Spec(a) => spec_template::write(&a.bundle, a.rootless)?,
        Command::Pause(a) => pause::pause(&root, &a.id)?,
        Command::Resume(a) => pause::resume(&root, &a.id)?,
        Command::Ps(a) => {
            let mut out = std::io::stdout().lock();
            ps::ps(&root, &a.args[0], &a.format, &a.args[1..], &mut out)?;
        }
        Command::Events(a) => {
            let mut out = std::io::stdout().lock();
            events::events(&root, &a.id, a.interval, a.stats, &mut out)?;
        }
        Command::Update(a) => {
            let id = a.id.clone();
            update::update(&root, &id, &update_request(*a))?;
        }
        Command::Exec(a) => {
            let status = exec::exec(&exec_opts(&root, *a))?;
            return Ok(status.clamp(0, 255) as u8);
        }
        Command::Features => print_out(&features::json()),
        Command::Trace(rt::cli::TraceCommand::Summarize(a)) => {
            let summary = rt::trace::summarize::summarize(&a.files, a.detail)?;
            match a.format.as_str() {
                "text" => print_out(&summary.text()),
                "json" => print_out(&summary.json()),
                other => {
                    return Err(Error::msg(format!(
                        "invalid format option: {other} (text or json)"
                    )))
                }
            }
        }
        Command::Check(a) => return rt::check::print(a.bundle.as_deref(), &a.format),
        Command::Checkpoint(a) => rt::container::checkpoint::checkpoint(&root, &a)?,
        Command::Restore(a) => {
            match cgroups {
                Driver::Disabled => return Err(Error::msg(
                    "restore: --cgroup-manager=disabled is not supported (CRIU restores into cgroups)",
                )),
                Driver::Systemd => return Err(Error::msg(
                    "restore: the systemd cgroup driver is not supported for restore yet; restore with cgroupfs paths",
                )),
                Driver::Cgroupfs => {}
            }
            let status = rt::container::restore::restore(&root, &a)?;
            return Ok(status.clamp(0, 255) as u8);
        }
    }
    Ok(0)
}

fn create_opts(root: &std::path::Path, cgroups: Driver, a: rt::cli::CreateArgs) -> CreateOpts {
    CreateOpts {
        root: root.to_path_buf(),
        cgroups,
        id: a.id,
        bundle: a.bundle,
        console_socket: a.console_socket,
        pid_file: a.pid_file,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        pidfd_socket: a.pidfd_socket,
        ..CreateOpts::default()
    }
}

fn exec_opts(root: &std::path::Path, a: rt::cli::ExecArgs) -> exec::ExecOpts {
    let mut args = a.args.into_iter();
    exec::ExecOpts {
        root: root.to_path_buf(),
        id: args.next().unwrap_or_default(),
        args: args.collect(),
        process_file: a.process,
        tty: a.tty.then_some(true),
        console_socket: a.console_socket,
        cwd: a.cwd,
        env: a.env,
        user: a.user,
        additional_gids: a.additional_gids,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        apparmor: a.apparmor,
        process_label: a.process_label,
        detach: a.detach,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        cgroup: a.cgroup,
        pidfd_socket: a.pidfd_socket,
        ignore_paused: a.ignore_paused,
    }
}

fn update_request(a: rt::cli::UpdateArgs) -> update::UpdateRequest {
    update::UpdateRequest {
        resources: a.resources,
        blkio_weight: a.blkio_weight,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpu_burst: a.cpu_burst,
        cpu_share: a.cpu_share,
        cpu_rt_period: a.cpu_rt_period,
        cpu_rt_runtime: a.cpu_rt_runtime,
        cpuset_cpus: a.cpuset_cpus,
        cpuset_mems: a.cpuset_mems,
        cpu_idle: a.cpu_idle,
        kernel_memory: a.kernel_memory,
        kernel_memory_tcp: a.kernel_memory_tcp,
        memory: a.memory,
        memory_reservation: a.memory_reservation,
        memory_swap: a.memory_swap,
        pids_limit: a.pids_limit,
        l3_cache_schema: a.l3_cache_schema,
        mem_bw_schema: a.mem_bw_schema,
    }
}

fn print_out(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}
