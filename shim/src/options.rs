//! The options containerd sends with a Create (and a Checkpoint), packed in an Any.
//!
//! For the runc runtime types containerd sends runc's own `containerd.runc.v1.Options`
//! (BinaryName, Root, SystemdCgroup, ...). For any other runtime type, ours included
//! (`io.containerd.rt.v2`), containerd 1.6 decodes the runtime's TOML options into
//! `runtimeoptions.v1.Options` instead: only `TypeUrl` and `ConfigPath` (1.7 adds
//! `ConfigBody`, the options section itself) — a `SystemdCgroup = true` written there
//! directly is dropped on the way. So for our runtime type the runc option keys are read
//! from the file at `ConfigPath`, or from `ConfigBody`, as `Key = value` TOML lines.

use containerd_shim::api;
use containerd_shim::protos::protobuf::rt::WireType;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{CodedInputStream, Message, MessageField};
use containerd_shim::protos::shim::oci::CheckpointOptions;

const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";

/// Options containerd packs in an Any, when they are of type `name` (else the defaults).
fn options<M: Message + Default>(any: &MessageField<Any>, name: &str) -> M {
    match any.as_ref() {
        Some(a) if a.type_url.ends_with(name) => M::parse_from_bytes(&a.value).unwrap_or_default(),
        _ => M::default(),
    }
}

/// The runc options of a Create, from either shape containerd sends them in.
pub fn runc_options(any: &MessageField<Any>) -> api::Options {
    match any.as_ref() {
        Some(a) if a.type_url.ends_with(RUNTIME_OPTIONS) => {
            let (path, body) = runtime_options(&a.value);
            let text = if path.is_empty() {
                body
            } else {
                std::fs::read_to_string(&path).unwrap_or_else(|e| {
                    log::warn!("options: ConfigPath {path}: {e}; using the defaults");
                    String::new()
                })
            };
            from_toml(&text)
        }
        _ => options(any, RUNC_OPTIONS),
    }
}

pub fn checkpoint_options(any: &MessageField<Any>) -> CheckpointOptions {
    options(any, "containerd.runc.v1.CheckpointOptions")
}

/// `runtimeoptions.v1.Options`' `config_path` (field 2) and `config_body` (field 3);
/// empty where absent or unreadable. (The message is not in containerd-shim-protos.)
fn runtime_options(bytes: &[u8]) -> (String, String) {
    let mut input = CodedInputStream::from_bytes(bytes);
    let (mut path, mut body) = (String::new(), String::new());
    while let Ok(Some(tag)) = input.read_raw_tag_or_eof() {
        let ok = match tag {
            // field 2 / 3, wire type 2 (length-delimited)
            0x12 => input.read_string().map(|s| path = s),
            0x1a => input.read_string().map(|s| body = s),
            _ => match WireType::new(tag & 7) {
                Some(wire_type) => input.skip_field(wire_type),
                None => break,
            },
        };
        if ok.is_err() {
            break;
        }
    }
    (path, body)
}

/// The runc option keys of a TOML options section (`SystemdCgroup = true`,
/// `BinaryName = "/usr/local/bin/rt"`, ...); other lines and tables are ignored.
fn from_toml(text: &str) -> api::Options {
    let mut o = api::Options::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.split('#').next().unwrap_or("").trim();
        let string = || value.trim_matches(|c| c == '"' || c == '\'').to_string();
        let boolean = value == "true";
        match key.trim() {
            "BinaryName" => o.binary_name = string(),
            "Root" => o.root = string(),
            "SystemdCgroup" => o.systemd_cgroup = boolean,
            "NoPivotRoot" => o.no_pivot_root = boolean,
            "NoNewKeyring" => o.no_new_keyring = boolean,
            "CriuPath" => o.criu_path = string(),
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, value: Vec<u8>) -> MessageField<Any> {
        MessageField::some(Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        })
    }

    /// A runtimeoptions.v1.Options as containerd encodes it.
    fn runtime_options_bytes(type_url: &str, path: &str, body: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, s) in [(0x0a, type_url), (0x12, path), (0x1a, body)] {
            if !s.is_empty() {
                out.push(tag);
                out.push(s.len() as u8);
                out.extend(s.as_bytes());
            }
        }
        out
    }

    #[test]
    fn runc_options_as_runc_sends_them() {
        let o = api::Options {
            binary_name: "/usr/sbin/runc".into(),
            systemd_cgroup: true,
            ..Default::default()
        };
        let parsed = runc_options(&any(
            "containerd.runc.v1.Options",
            o.write_to_bytes().unwrap(),
        ));
        assert_eq!(parsed.binary_name, "/usr/sbin/runc");
        assert!(parsed.systemd_cgroup);
        assert_eq!(runc_options(&MessageField::none()), api::Options::default());
    }

    #[test]
    fn runtime_options_from_body_or_file() {
        let toml =
            "# ours\nSystemdCgroup = true\nBinaryName = \"/opt/rt\" # a comment\n[other]\nx = 1\n";
        let url = "runtimeoptions.v1.Options";
        let parsed = runc_options(&any(url, runtime_options_bytes("", "", toml)));
        assert!(parsed.systemd_cgroup);
        assert_eq!(parsed.binary_name, "/opt/rt");
        assert!(!parsed.no_pivot_root);

        let file = std::env::temp_dir().join(format!("rt-shim-opts-{}", std::process::id()));
        std::fs::write(&file, "NoPivotRoot = true\nRoot = '/run/x'\n").unwrap();
        let bytes = runtime_options_bytes("t", file.to_str().unwrap(), "SystemdCgroup = true");
        let parsed = runc_options(&any(url, bytes));
        std::fs::remove_file(&file).unwrap();
        // The file wins over the body, as containerd documents.
        assert!(parsed.no_pivot_root && !parsed.systemd_cgroup);
        assert_eq!(parsed.root, "/run/x");
        // Garbage is the defaults, never a panic.
        assert_eq!(
            runc_options(&any(url, vec![0x12, 0xff])),
            api::Options::default()
        );
    }
}
