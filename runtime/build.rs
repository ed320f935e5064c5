//! Linker options that make rt map less of itself, where rustc links with lld by default
//! (x86_64-unknown-linux-gnu since Rust 1.90) and no linker is chosen in RUSTFLAGS:
//!
//! - Link rt's hot functions together (runtime/layout/order.py tells why and how the
//!   list is made): lld's --symbol-ordering-file places the functions named in
//!   runtime/layout/symbol-order.txt first in .text, in that order, so that a command
//!   touches a few 64 KiB windows of the binary rather than nearly all of them. A name
//!   that is missing is ignored, so a stale list costs memory, never a failed build.
//! - Pack the relative relocations (-z pack-relative-relocs, DT_RELR): the static-pie
//!   binary relocates itself at every start, reading 82 KiB of RELA entries (3,500 of
//!   them, all relative) that RELR holds in under 1 KiB. Only with glibc 2.36 or later,
//!   whose startup code (static-pie too) applies DT_RELR.

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
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bin=rt=-Wl,-z,pack-relative-relocs");
    }
}

/// The glibc that rt links against (the build machine's, `getconf GNU_LIBC_VERSION`).
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    version(text.split_whitespace().nth(1).unwrap_or("")) >= (major, minor)
}

/// "1.95.0" -> (1, 95); anything else -> (0, 0).
fn version(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// rustc 1.90 or later (its default linker on this target is the bundled rust-lld).
fn rustc_links_with_lld() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    version(text.split_whitespace().nth(1).unwrap_or("")) >= (1, 90)
}
