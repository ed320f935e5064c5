//! Link rt's hot functions together (runtime/layout/order.py tells why and how the
//! list is made): lld's --symbol-ordering-file places the functions named in
//! runtime/layout/symbol-order.txt first in .text, in that order, so that a command
//! touches a few 64 KiB windows of the binary rather than nearly all of them. Only
//! where rustc links with lld by default (x86_64-unknown-linux-gnu since Rust 1.90) and
//! no linker is chosen in RUSTFLAGS; a name that is missing is ignored, so a stale list
//! costs memory, never a failed build.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("layout/symbol-order.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("link"))
        || !rustc_links_with_lld()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=rt=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bin=rt=-Wl,--no-warn-symbol-ordering");
}

/// rustc 1.90 or later (its default linker on this target is the bundled rust-lld).
fn rustc_links_with_lld() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut parts = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
