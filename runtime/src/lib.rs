//! rt: an OCI container runtime. The `rt` binary is a thin CLI over this library.

pub mod cgroups;
pub mod check;
pub mod cli;
pub mod console;
pub mod container;
pub mod criu;
pub mod dbus;
pub mod error;
pub mod fault;
pub mod features;
/// Fuzz tests of the parsers of hostile input (`cargo test -p rt --lib fuzz`).
#[cfg(test)]
mod fuzz;
pub mod hooks;
pub mod id_list;
pub mod intelrdt;
pub mod logging;
pub mod mountinfo;
pub mod namespaces;
pub mod netdev;
pub mod notify_socket;
pub mod pidfd_socket;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod security;
pub mod spec;
pub mod spec_template;
pub mod state;
pub mod sys;
pub mod timefmt;
pub mod trace;
pub mod userns;
