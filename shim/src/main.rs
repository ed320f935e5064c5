//! `containerd-shim-rt-v2`: containerd's runtime v2 shim for `rt` (runtime type
//! `io.containerd.rt.v2`). containerd starts it with `start`, then talks to the server it
//! spawned over ttrpc; `delete` cleans up after a dead one. The protocol plumbing (flags,
//! ttrpc server, event publisher, reaper) comes from containerd's `containerd-shim` crate;
//! the task logic is ours (`service.rs`), and the runtime is driven through its CLI.

mod metrics;
mod runtime;
mod service;
mod stdio;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().skip(1).any(|a| a == "-v" || a == "--version") {
        println!("containerd-shim-rt-v2:");
        println!("  Version:  {}", env!("CARGO_PKG_VERSION"));
        println!("  Runtime:  io.containerd.rt.v2");
        return;
    }
    containerd_shim::run::<service::Service>("io.containerd.rt.v2", None)
}
