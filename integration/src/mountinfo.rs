//! /proc/<pid>/mountinfo as the tests read it, from a container's output or the host.

/// One parsed mountinfo line.
#[derive(Debug)]
pub struct MountInfo {
    pub mount_point: String,
    /// The per-mount options (field 6: ro, nosuid, noatime...).
    pub opts: Vec<String>,
    /// The optional fields: shared:N, master:N, propagate_from:N, unbindable.
    pub optional: Vec<String>,
    pub fstype: String,
    pub super_opts: Vec<String>,
}

impl MountInfo {
    pub fn has_opt(&self, opt: &str) -> bool {
        self.opts.iter().any(|o| o == opt)
    }

    /// Whether an optional field starts with `prefix` ("shared:", "master:", "unbindable").
    pub fn has_optional(&self, prefix: &str) -> bool {
        self.optional.iter().any(|o| o.starts_with(prefix))
    }

    /// The mount's propagation: "shared", "slave", "unbindable" or "private".
    pub fn propagation(&self) -> &'static str {
        if self.has_optional("shared:") {
            "shared"
        } else if self.has_optional("master:") {
            "slave"
        } else if self.has_optional("unbindable") {
            "unbindable"
        } else {
            "private"
        }
    }
}

/// Every mount of a mountinfo text (lines that are not mountinfo lines are skipped).
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                mount_point: f.get(4)?.to_string(),
                opts: f.get(5)?.split(',').map(str::to_string).collect(),
                optional: f[6..].iter().map(|s| s.to_string()).collect(),
                fstype: r.first()?.to_string(),
                super_opts: r
                    .get(2)
                    .map(|s| s.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The last (topmost) mount at `mp`: the one paths reach.
pub fn find_mount<'a>(m: &'a [MountInfo], mp: &str) -> &'a MountInfo {
    m.iter()
        .rev()
        .find(|x| x.mount_point == mp)
        .unwrap_or_else(|| panic!("no mount at {mp} in {m:#?}"))
}
