//! `containerd-shim-rt-v2`: containerd's runtime v2 shim for `rt` (runtime type
//! `io.containerd.rt.v2`). containerd starts it with `start`, then talks to the server it
//! spawned over ttrpc; `delete` cleans up after a dead one. The protocol's types, flags
//! and the spawning of the server come from containerd's `containerd-shim` crate; the
//! bootstrap below, the ttrpc server and client (server.rs, wire.rs), the event publisher,
//! the reaper and the task logic (service.rs) are ours, and the runtime is driven through
//! its CLI.

mod events;
mod fault;
#[cfg(test)]
mod fuzz_tests;
mod logger;
mod metrics;
mod mount;
mod oom;
// Shared with the runtime (`rt events`): std only.
#[path = "../../runtime/src/cgroups/oom_level.rs"]
mod oom_level;
mod options;
// Shared with the runtime (OTLP/JSON spans and their export): std, log and serde_json only.
// The runtime uses all of it; the shim most (its spans are never INTERNAL).
#[allow(dead_code)]
#[path = "../../runtime/src/trace/otlp.rs"]
mod otlp;
mod runtime;
mod server;
mod service;
mod stdio;
#[cfg(test)]
mod test_dir;
mod trace;
mod wait;
mod wire;

fn main() {
    // One malloc arena for all threads: the shim's threads mostly sleep, and an arena
    // per thread (glibc's default) costs more memory than the contention it saves.
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    restore_tunables();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().skip(1).any(|a| a == "-v" || a == "--version") {
        println!("containerd-shim-rt-v2:");
        println!("  Version:  {}", env!("CARGO_PKG_VERSION"));
        println!("  Runtime:  io.containerd.rt.v2");
        return;
    }
    if args.iter().skip(1).any(|a| a == "-info" || a == "--info") {
        std::process::exit(match info() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("containerd-shim-rt-v2 -info: {e}");
                1
            }
        });
    }
    if let Err(e) = bootstrap() {
        eprintln!("io.containerd.rt.v2: {e}");
        std::process::exit(1);
    }
}

/// glibc keeps the stacks of threads that ended for new ones, with their top pages
/// resident (16-20 KiB each): the serving shim starts a thread per call, so it would keep
/// as many as it ever ran at once. With no cache an ended thread's stack is unmapped.
const STACK_CACHE: &str = "glibc.pthread.stack_cache_size=0";

/// The GLIBC_TUNABLES the shim had before `start` added ours, for the serving shim to give
/// back to what it runs (the runtime, loggers).
pub const SAVED_TUNABLES: &str = "RT_SHIM_GLIBC_TUNABLES";

/// GLIBC_TUNABLES for the serving shim, and what to restore.
pub fn serving_tunables() -> (String, String) {
    let saved = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let ours = if saved.is_empty() {
        STACK_CACHE.to_string()
    } else {
        format!("{saved}:{STACK_CACHE}")
    };
    (ours, saved)
}

/// In the serving shim, before any thread starts: glibc read its tunables at start-up;
/// the environment gets back what it was.
fn restore_tunables() {
    let Some(saved) = std::env::var_os(SAVED_TUNABLES) else {
        return;
    };
    std::env::remove_var(SAVED_TUNABLES);
    if saved.is_empty() {
        std::env::remove_var("GLIBC_TUNABLES");
    } else {
        std::env::set_var("GLIBC_TUNABLES", saved);
    }
}

/// SIGINT and SIGTERM do not stop a shim (containerd stops it with Shutdown, or SIGKILL):
/// a handler that does nothing, as the crate had, rather than SIG_IGN, which the runtime
/// and the containers it starts would inherit.
extern "C" fn ignore(_: libc::c_int) {}

/// What containerd asks of the binary: `start` (spawn the server, print its address),
/// `delete` (clean up after a server that died), or, with no action, serve.
fn bootstrap() -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let flags = containerd_shim::parse(&args[1..]).map_err(|e| e.to_string())?;
    if flags.namespace.is_empty() {
        return Err("Shim namespace cannot be empty".into());
    }
    let ttrpc_address =
        std::env::var("TTRPC_ADDRESS").map_err(|e| format!("TTRPC_ADDRESS: {e}"))?;
    let action = SigAction::new(
        SigHandler::Handler(ignore),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler does nothing.
        unsafe { sigaction(sig, &action) }.map_err(|e| format!("sigaction {sig}: {e}"))?;
    }
    // The runtime's processes and the containers' inits are reparented to the shim.
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "set child subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    let shim = service::Service::new(&flags).map_err(|e| format!("exit pipe: {e}"))?;
    match flags.action.as_str() {
        "start" => {
            let opts = containerd_shim::StartOpts {
                id: flags.id.clone(),
                publish_binary: flags.publish_binary.clone(),
                address: flags.address.clone(),
                ttrpc_address,
                namespace: flags.namespace.clone(),
                debug: flags.debug,
            };
            let address = shim.start_shim(opts).map_err(|e| e.to_string())?;
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, address.as_bytes()).map_err(|e| e.to_string())
        }
        "delete" => {
            use containerd_shim::protos::protobuf::Message;
            let response = shim.delete_shim();
            let mut out = std::io::stdout().lock();
            response
                .write_to_writer(&mut out)
                .map_err(|e| e.to_string())
        }
        _ => shim.serve(&ttrpc_address),
    }
}

/// `-info` (containerd 1.7+): the runtime-info message on stdout, with the runtime's
/// `features` document. The options containerd writes on stdin do not change it.
fn info() -> Result<(), String> {
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::protobuf::{Message, MessageField};
    use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    let mut options = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut options);
    let rt = runtime::Runtime::new("", "", false, std::path::Path::new("/tmp"), "info");
    let features = rt.features()?;
    let info = RuntimeInfo {
        name: "io.containerd.rt.v2".into(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }),
        features: MessageField::some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/features/Features".into(),
            value: features.into_bytes(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = info.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut std::io::stdout(), &bytes).map_err(|e| e.to_string())
}
