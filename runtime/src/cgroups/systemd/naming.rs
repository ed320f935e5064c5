//! How the systemd driver names things, as runc does: `cgroupsPath` is `slice:prefix:name`,
//! the container's unit is `prefix-name.scope` in that slice, and a slice's cgroup sits
//! below its parents' (`a-b-c.slice` is `a.slice/a-b.slice/a-b-c.slice`).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The slice a container goes into when `cgroupsPath` names none (runc's default for root).
pub const DEFAULT_SLICE: &str = "system.slice";
/// The unit name prefix when `cgroupsPath` is empty (runc's: its scopes are `runc-ID.scope`).
pub const DEFAULT_PREFIX: &str = "rt";

/// Where the container goes: its unit and the slice that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The parent slice, e.g. "system.slice" or "kubepods-besteffort-pod1234.slice".
    pub slice: String,
    /// The container's unit: "prefix-name.scope", or a slice when the name is one.
    pub unit: String,
}

/// Read `cgroupsPath` as the systemd driver does: empty means `system.slice:rt:ID`;
/// otherwise exactly three fields `slice:prefix:name`, an empty slice meaning
/// system.slice. A name ending in ".slice" asks for a slice rather than a scope.
pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Placement> {
    let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
        None => (DEFAULT_SLICE, DEFAULT_PREFIX, id),
        Some(p) => match p.split(':').collect::<Vec<_>>()[..] {
            [slice, prefix, name] => (
                if slice.is_empty() { DEFAULT_SLICE } else { slice },
                prefix,
                name,
            ),
            _ => {
                return Err(Error::msg(format!(
                    "linux.cgroupsPath: {p:?}: the systemd cgroup driver expects \"slice:prefix:name\" (e.g. \"system.slice:rt:{id}\")"
                )))
            }
        },
    };
    if name.is_empty() || name.contains('/') {
        return Err(Error::msg(format!(
            "linux.cgroupsPath: unit name {name:?} must be non-empty and have no \"/\""
        )));
    }
    if prefix.contains('/') {
        return Err(Error::msg(format!(
            "linux.cgroupsPath: unit prefix {prefix:?} must have no \"/\""
        )));
    }
    expand_slice(slice)?;
    let unit = if name.ends_with(".slice") {
        expand_slice(name)?;
        name.to_string()
    } else {
        // As runc, also with an empty prefix ("-name.scope"): the same config names the
        // same unit under either runtime.
        format!("{prefix}-{name}.scope")
    };
    Ok(Placement {
        slice: slice.to_string(),
        unit,
    })
}

/// The cgroup directory of a slice, relative to the hierarchy's root, as systemd makes
/// it: each dash-separated prefix is a parent slice. "-.slice" is the root slice.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = |why: &str| {
        Err(Error::msg(format!(
            "linux.cgroupsPath: slice {slice:?} {why}"
        )))
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return bad("must end in \".slice\"");
    };
    if slice.contains('/') {
        return bad("must have no \"/\"");
    }
    let mut path = PathBuf::new();
    if stem == "-" {
        return Ok(path);
    }
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return bad("has an empty part between dashes");
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

/// The container's cgroup relative to the hierarchy's root: its slice's, then the unit.
/// A slice named as the unit is its own path (its parents are in its name).
pub fn cgroup_path(p: &Placement) -> Result<PathBuf> {
    if p.unit.ends_with(".slice") {
        return expand_slice(&p.unit);
    }
    Ok(expand_slice(&p.slice)?.join(&p.unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(path: &str) -> (String, String, PathBuf) {
        let p = parse(Some(path), "id1").unwrap();
        let dir = cgroup_path(&p).unwrap();
        (p.slice, p.unit, dir)
    }

    #[test]
    fn clients_paths() {
        assert_eq!(
            placed("system.slice:docker:abc"),
            (
                "system.slice".into(),
                "docker-abc.scope".into(),
                "system.slice/docker-abc.scope".into()
            )
        );
        assert_eq!(
            placed("kubepods-besteffort-pod12.slice:cri-containerd:c1").2,
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-c1.scope"
            )
        );
        assert_eq!(
            placed("machine.slice:libpod:x").1,
            "libpod-x.scope".to_string()
        );
        // An empty slice is system.slice; an empty prefix is kept, as runc keeps it.
        assert_eq!(placed(":p:n").2, PathBuf::from("system.slice/p-n.scope"));
        assert_eq!(placed("a.slice::n").1, "-n.scope");
        // The root slice, and a slice as the unit.
        assert_eq!(placed("-.slice:p:n").2, PathBuf::from("p-n.scope"));
        assert_eq!(
            placed("x.slice:p:x-y.slice").2,
            PathBuf::from("x.slice/x-y.slice")
        );
    }

    #[test]
    fn defaults_when_empty() {
        for empty in [None, Some("")] {
            let p = parse(empty, "c9").unwrap();
            assert_eq!(p.slice, "system.slice");
            assert_eq!(p.unit, "rt-c9.scope");
        }
    }

    #[test]
    fn refused_shapes() {
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "nodot:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "a-.slice:p:n",
            "a/b.slice:p:n",
            "system.slice:p:",
            "system.slice:p:a/b",
            "system.slice:p/q:n",
        ] {
            assert!(parse(Some(bad), "id").is_err(), "{bad}");
        }
        let e = parse(Some("/rt/x"), "x").unwrap_err().to_string();
        assert!(e.contains("slice:prefix:name"), "{e}");
    }
}
