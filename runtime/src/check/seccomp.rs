//! Seccomp: the actions the kernel takes (its actions_avail file, and
//! SECCOMP_GET_ACTION_AVAIL per action), the filter flags it knows (probed as libseccomp
//! does), user notification, and the notification struct sizes. Nothing is installed.

use std::fs;

use nix::errno::Errno;

use super::{errno, io_error, raw, Item};
use crate::security::seccomp::{kernel, ACTIONS};

const AREA: &str = "seccomp";

pub fn probe() -> Vec<Item> {
    let mut items = vec![actions_avail()];
    items.extend(ACTIONS.iter().map(|a| action(a)));
    items.extend(kernel::FILTER_FLAGS.iter().map(|(n, bits)| flag(n, *bits)));
    items.push(notify());
    items.push(notif_sizes());
    items
}

fn actions_avail() -> Item {
    let file = "/proc/sys/kernel/seccomp/actions_avail";
    let item = Item::new(AREA, "seccomp.actions_avail", format!("read {file}"))
        .affects(&["linux.seccomp"]);
    match fs::read_to_string(file) {
        Ok(s) => item.answer(true, "read").value(s.trim()),
        Err(e) => item.answer(false, io_error(&e)),
    }
}

fn action(name: &str) -> Item {
    let field = format!("linux.seccomp.syscalls[].action={name}");
    let default = format!("linux.seccomp.defaultAction={name}");
    let item = Item::new(AREA, format!("seccomp.action.{name}"), "").affects(&[&field, &default]);
    let Some(ret) = kernel::action_ret(name) else {
        return Item {
            probe: "map to a SECCOMP_RET_* action".into(),
            ..item
        }
        .answer(false, "no kernel action for it");
    };
    let mut item = item;
    item.probe = format!("seccomp(SECCOMP_GET_ACTION_AVAIL, {ret:#010x})");
    match kernel::action_available(ret) {
        Ok(()) => item.answer(true, "0"),
        Err(e) => item.answer(false, errno(e)),
    }
}

fn flag(name: &str, bits: libc::c_ulong) -> Item {
    let probe = format!(
        "seccomp(SECCOMP_SET_MODE_FILTER, {bits:#x}, NULL): EFAULT means known, EINVAL unknown"
    );
    let e = kernel::probe_filter_flags(bits);
    let affects = if name == "SECCOMP_FILTER_FLAG_NEW_LISTENER" {
        vec!["linux.seccomp.listenerPath".to_string()]
    } else {
        vec![format!("linux.seccomp.flags={name}")]
    };
    let mut item =
        Item::new(AREA, format!("seccomp.flag.{name}"), probe).answer(e == Errno::EFAULT, errno(e));
    item.affects = affects;
    item
}

/// A seccomp agent needs both: the kernel's user_notif action and a listener fd
/// (SECCOMP_FILTER_FLAG_NEW_LISTENER).
fn notify() -> Item {
    let action = kernel::action_available(libc::SECCOMP_RET_USER_NOTIF);
    let listener = kernel::probe_filter_flags(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
    let ok = action.is_ok() && listener == Errno::EFAULT;
    let action_text = match action {
        Ok(()) => "ok".to_string(),
        Err(e) => errno(e),
    };
    Item::new(
        AREA,
        "seccomp.user_notification",
        "SECCOMP_GET_ACTION_AVAIL(SECCOMP_RET_USER_NOTIF) and SECCOMP_FILTER_FLAG_NEW_LISTENER",
    )
    .affects(&[
        "linux.seccomp.listenerPath",
        "linux.seccomp.listenerMetadata",
        "linux.seccomp.syscalls[].action=SCMP_ACT_NOTIFY",
    ])
    .answer(
        ok,
        format!(
            "user_notif: {action_text}; NEW_LISTENER: {}",
            errno(listener)
        ),
    )
}

fn notif_sizes() -> Item {
    let item = Item::new(
        AREA,
        "seccomp.notif_sizes",
        "seccomp(SECCOMP_GET_NOTIF_SIZES)",
    )
    .affects(&["linux.seccomp.listenerPath"]);
    match raw::seccomp_notif_sizes() {
        Ok((notif, resp, data)) => item.answer(true, "0").value(format!(
            "seccomp_notif {notif}, seccomp_notif_resp {resp}, seccomp_data {data}"
        )),
        Err(e) => item.answer(false, errno(e)),
    }
}
