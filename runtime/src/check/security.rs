//! Security modules: which LSMs are active (securityfs's lsm file), AppArmor and SELinux
//! as rt sees them (the same functions `create` asks), and the Landlock ABI.

use std::fs;

use super::{errno, io_error, raw, Item};
use crate::security::lsm;

const AREA: &str = "security";

pub fn probe() -> Vec<Item> {
    vec![lsms(), apparmor(), selinux(), landlock()]
}

fn lsms() -> Item {
    let file = "/sys/kernel/security/lsm";
    let item = Item::new(AREA, "lsm.active", format!("read {file}"));
    match fs::read_to_string(file) {
        Ok(s) => item
            .answer(true, "read")
            .value(s.trim().trim_end_matches(',')),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => item.answer(
            false,
            format!(
                "{} (securityfs not mounted at /sys/kernel/security?)",
                io_error(&e)
            ),
        ),
        Err(e) => item.answer(false, io_error(&e)),
    }
}

fn apparmor() -> Item {
    Item::new(
        AREA,
        "lsm.apparmor",
        "read /sys/module/apparmor/parameters/enabled (Y) and look for /proc/self/attr/apparmor",
    )
    .affects(&["process.apparmorProfile"])
    .answer(
        lsm::apparmor_enabled(),
        match fs::read_to_string("/sys/module/apparmor/parameters/enabled") {
            Ok(s) => format!("enabled = {}", s.trim()),
            Err(e) => io_error(&e),
        },
    )
}

fn selinux() -> Item {
    let item = Item::new(AREA, "lsm.selinux", "read /sys/fs/selinux/enforce")
        .affects(&["process.selinuxLabel", "linux.mountLabel"]);
    let available = lsm::selinux_enabled();
    match fs::read_to_string("/sys/fs/selinux/enforce") {
        Ok(s) => {
            let mode = if s.trim() == "1" {
                "enforcing"
            } else {
                "permissive"
            };
            item.answer(available, format!("enforce = {}", s.trim()))
                .value(mode)
        }
        Err(e) => item.answer(available, io_error(&e)),
    }
}

fn landlock() -> Item {
    let item = Item::new(
        AREA,
        "landlock.abi",
        "landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)",
    )
    .affects(&[]);
    match raw::landlock_abi() {
        Ok(v) => item
            .answer(true, format!("ABI version {v}"))
            .value(v.to_string()),
        Err(e) => item.answer(false, errno(e)),
    }
}
