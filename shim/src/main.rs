//! `containerd-shim-rt-v2`: containerd's runtime v2 shim for `rt` (runtime type
//! `io.containerd.rt.v2`). containerd starts it with `start`, then talks to the server it
//! spawned over ttrpc; `delete` cleans up after a dead one. The protocol plumbing (flags,
//! ttrpc server, event publisher, reaper) comes from containerd's `containerd-shim` crate;
//! the task logic is ours (`service.rs`), and the runtime is driven through its CLI.

mod events;
mod fault;
#[cfg(test)]
mod fuzz_tests;
mod logger;
mod metrics;
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
mod service;
mod stdio;
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
    // Our own non-blocking logger replaces the crate's (see logger.rs), and our own reaper
    // the crate's SIGCHLD loop (see wait.rs).
    let config = containerd_shim::Config {
        no_setup_logger: true,
        no_reaper: true,
        ..Default::default()
    };
    containerd_shim::run::<service::Service>("io.containerd.rt.v2", Some(config))
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
