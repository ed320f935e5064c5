//! A fault-injection hook for tests: with `RT_SHIM_FAULT_STOP_AT=create` (or `start`) in
//! its environment (containerd's, which shims inherit), the serving shim stops itself
//! (SIGSTOP) right after `rt create` (`rt start`) succeeded and before containerd hears of
//! it, so that a test can kill it at that moment and check what containerd's cleanup
//! leaves. Unset, as it always is outside tests, it costs one environment lookup.

use std::sync::OnceLock;

pub fn stop_at(step: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("RT_SHIM_FAULT_STOP_AT").ok());
    if at.as_deref() == Some(step) {
        log::warn!("RT_SHIM_FAULT_STOP_AT={step}: stopping here");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}
