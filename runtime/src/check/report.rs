//! How the report is printed: one line per item (text), or one JSON document.

use std::fmt::Write;

use serde_json::json;

use super::{Item, Report};

/// The JSON document: the kernel, the filesystem idmap was probed on, every item, what the
/// default config misses, and the exit status that follows.
pub fn json(r: &Report) -> String {
    let missing: Vec<&str> = r
        .missing_for_default()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let doc = json!({
        "kernel": r.kernel,
        "rootfs": r.rootfs,
        "defaultConfigOk": missing.is_empty(),
        "missingForDefaultConfig": missing,
        "items": r.items,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// One line per item: `yes`/`no` (`NO!` when the default config needs it), the name, the
/// value or result, then the probe and the fields it affects; a verdict at the end.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "# rt check: kernel {}; idmap probed on {}\n",
        r.kernel, r.rootfs
    );
    let width = r.items.iter().map(|i| i.name.len()).max().unwrap_or(0);
    let mut area = "";
    for i in &r.items {
        if i.area != area {
            area = i.area;
            let _ = writeln!(out, "# {area}");
        }
        let _ = writeln!(out, "{}", line(i, width));
    }
    out.push_str(&verdict(r));
    out
}

fn line(i: &Item, width: usize) -> String {
    let mark = match (i.available, i.default_config_needs) {
        (true, _) => "yes",
        (false, false) => "no ",
        (false, true) => "NO!",
    };
    let answer = match &i.value {
        Some(v) => format!("{v} ({})", i.result),
        None => i.result.clone(),
    };
    let mut l = format!("{mark} {:width$}  {answer}  [probe: {}]", i.name, i.probe);
    if !i.affects.is_empty() {
        let _ = write!(l, "  affects: {}", i.affects.join(", "));
    }
    if i.default_config_needs {
        l.push_str("  (default config needs it)");
    }
    l
}

fn verdict(r: &Report) -> String {
    let missing = r.missing_for_default();
    if missing.is_empty() {
        let absent = r.items.iter().filter(|i| !i.available).count();
        return format!(
            "# everything the default config (rt spec) needs is here; {absent} of {} items missing, none of them needed by it\n",
            r.items.len()
        );
    }
    let list: Vec<String> = missing
        .iter()
        .map(|i| format!("{} (affects {})", i.name, i.affects.join(", ")))
        .collect();
    format!(
        "# missing for the default config (rt spec): {}\n",
        list.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(available: bool) -> Report {
        let item = Item::new("namespaces", "namespace.pid", "unshare")
            .affects(&["linux.namespaces[type=pid]"])
            .needed_by_default()
            .answer(available, "EPERM (1)");
        Report {
            kernel: "6.1".into(),
            rootfs: "/ (ext4)".into(),
            items: vec![item],
        }
    }

    #[test]
    fn a_missing_need_fails_and_is_named() {
        let r = report(false);
        assert_eq!(r.exit_code(), 1);
        let t = text(&r);
        assert!(t.contains("NO! namespace.pid"), "{t}");
        assert!(t.contains("missing for the default config (rt spec): namespace.pid (affects linux.namespaces[type=pid])"), "{t}");
        let doc: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(doc["missingForDefaultConfig"][0], "namespace.pid");
        assert_eq!(doc["items"][0]["defaultConfigNeeds"], true);
    }

    #[test]
    fn all_there_exits_0() {
        let r = report(true);
        assert_eq!(r.exit_code(), 0);
        assert!(text(&r).contains("yes namespace.pid  EPERM (1)"));
    }
}
