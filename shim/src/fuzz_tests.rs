//! Fuzzing the shim's request decoding (issue 17): what containerd sends arrives as a ttrpc
//! request (service, method, protobuf payload); the payload is decoded into the Task
//! service's request types, and the shim's own decoding of their contents (the runc or
//! runtimeoptions options of a Create, the checkpoint options, the stdout URI's logger)
//! runs before any call to rt. Inputs: random bytes, and byte-level mutations of real
//! requests. For each: no panic, time and memory bounded (fuzz/driver.rs of the runtime).

#[path = "../../runtime/src/fuzz/driver.rs"]
mod driver;

use containerd_shim::api;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::ttrpc;
use driver::Rng;

use crate::options::{checkpoint_options, runc_options};

const METHODS: [&str; 17] = [
    "State",
    "Create",
    "Start",
    "Delete",
    "Pids",
    "Pause",
    "Resume",
    "Checkpoint",
    "Kill",
    "Exec",
    "ResizePty",
    "CloseIO",
    "Update",
    "Wait",
    "Stats",
    "Connect",
    "Shutdown",
];

fn any(type_url: &str, value: Vec<u8>) -> MessageField<Any> {
    MessageField::some(Any {
        type_url: type_url.into(),
        value,
        ..Default::default()
    })
}

/// The options of a Create in each shape containerd sends them, sometimes damaged.
fn options(rng: &mut Rng) -> MessageField<Any> {
    match rng.below(4) {
        0 => MessageField::none(),
        1 => {
            let o = api::Options {
                binary_name: "/usr/bin/rt".into(),
                root: "/run/rt".into(),
                systemd_cgroup: rng.one_in(2),
                ..Default::default()
            };
            any("containerd.runc.v1.Options", o.write_to_bytes().unwrap())
        }
        2 => {
            // runtimeoptions.v1.Options: TypeUrl (1), ConfigPath (2), ConfigBody (3).
            let body = [
                "SystemdCgroup = true",
                "BinaryName = \"/opt/rt\" # c",
                "Root='/x'",
                "[t]\nx=1",
                "=",
                "\u{0}=\u{0}",
                "NoPivotRoot = tru",
            ];
            let mut text = String::new();
            for _ in 0..rng.below(6) {
                text.push_str(rng.pick::<&str>(&body));
                text.push('\n');
            }
            let mut v = vec![0x1a];
            put_varint(&mut v, text.len() as u64);
            v.extend(text.as_bytes());
            if rng.one_in(3) {
                // A ConfigPath: the shim reads that file (a missing one, or /dev/null).
                let p = *rng.pick(&["/nonexistent/rt.toml", "/dev/null", ""]);
                v.push(0x12);
                put_varint(&mut v, p.len() as u64);
                v.extend(p.as_bytes());
            }
            any("runtimeoptions.v1.Options", v)
        }
        _ => {
            let n = rng.below(64);
            any("containerd.runc.v1.Options", rng.bytes(n))
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A real request of the Task service, encoded as containerd sends it.
fn request(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    let stdout = *rng.pick(&[
        "",
        "/run/fifo/stdout",
        "binary:///usr/bin/logger?a=b&c&=&d==e",
        "file:///var/log/x",
        "binary://",
        "file://",
    ]);
    match rng.below(4) {
        0 => {
            let r = api::CreateTaskRequest {
                id: "c1".into(),
                bundle: "/run/containerd/b/c1".into(),
                stdout: stdout.into(),
                stderr: "/run/fifo/stderr".into(),
                terminal: rng.one_in(4),
                options: options(rng),
                rootfs: vec![containerd_shim::protos::types::mount::Mount {
                    type_: "overlay".into(),
                    source: "overlay".into(),
                    options: vec!["lowerdir=/a:/b".into(), "upperdir=/u".into()],
                    ..Default::default()
                }],
                ..Default::default()
            };
            ("Create", r.write_to_bytes().unwrap())
        }
        1 => {
            let spec = serde_json::json!({"args": ["sh"], "cwd": "/", "env": ["A=1"]});
            let r = api::ExecProcessRequest {
                id: "c1".into(),
                exec_id: "e1".into(),
                stdout: stdout.into(),
                terminal: rng.one_in(4),
                spec: any(
                    "types.containerd.io/opencontainers/runtime-spec/1/Process",
                    spec.to_string().into_bytes(),
                ),
                ..Default::default()
            };
            ("Exec", r.write_to_bytes().unwrap())
        }
        2 => {
            let r = api::CheckpointTaskRequest {
                id: "c1".into(),
                path: "/img".into(),
                options: any("containerd.runc.v1.CheckpointOptions", {
                    let n = rng.below(32);
                    rng.bytes(n)
                }),
                ..Default::default()
            };
            ("Checkpoint", r.write_to_bytes().unwrap())
        }
        _ => {
            let r = api::KillRequest {
                id: "c1".into(),
                exec_id: "e1".into(),
                signal: 9,
                all: true,
                ..Default::default()
            };
            ("Kill", r.write_to_bytes().unwrap())
        }
    }
}

/// A ttrpc request frame's body: service, method, payload (and sometimes metadata).
fn frame(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(8) {
        let n = rng.below(2048);
        return rng.bytes(n);
    }
    let (method, mut payload) = request(rng);
    let method = if rng.one_in(8) {
        *rng.pick(&METHODS)
    } else {
        method
    };
    if rng.one_in(2) {
        driver::mutate_bytes(rng, &mut payload);
    }
    let r = ttrpc::Request {
        service: "containerd.task.v2.Task".into(),
        method: method.into(),
        payload,
        timeout_nano: rng.next() as i64,
        ..Default::default()
    };
    let mut b = r.write_to_bytes().unwrap();
    if rng.one_in(4) {
        driver::mutate_bytes(rng, &mut b);
    }
    b
}

/// Decode the frame as the ttrpc server and the Task service would, then run the
/// shim's own decoding of what it carries.
fn check(bytes: &[u8]) {
    let Ok(req) = ttrpc::Request::parse_from_bytes(bytes) else {
        return;
    };
    let p = &req.payload[..];
    match req.method.as_str() {
        "Create" => {
            if let Ok(r) = api::CreateTaskRequest::parse_from_bytes(p) {
                let o = runc_options(&r.options);
                let _ = crate::runtime::Runtime::new(
                    &o.binary_name,
                    &o.root,
                    o.systemd_cgroup,
                    std::path::Path::new(&r.bundle),
                    "fuzz",
                );
                let _ = crate::stdio::logger_kind(&r.stdout);
            }
        }
        "Exec" => {
            if let Ok(r) = api::ExecProcessRequest::parse_from_bytes(p) {
                let _ = crate::stdio::logger_kind(&r.stdout);
                let _ = r.spec.as_ref().map(|a| a.value.len());
            }
        }
        "Checkpoint" => {
            if let Ok(r) = api::CheckpointTaskRequest::parse_from_bytes(p) {
                let _ = checkpoint_options(&r.options);
            }
        }
        "Update" => {
            let _ = api::UpdateTaskRequest::parse_from_bytes(p);
        }
        "Kill" => {
            let _ = api::KillRequest::parse_from_bytes(p);
        }
        "ResizePty" => {
            let _ = api::ResizePtyRequest::parse_from_bytes(p);
        }
        _ => {
            let _ = api::StateRequest::parse_from_bytes(p);
            let _ = api::StartRequest::parse_from_bytes(p);
            let _ = api::DeleteRequest::parse_from_bytes(p);
            let _ = api::WaitRequest::parse_from_bytes(p);
            let _ = api::CloseIORequest::parse_from_bytes(p);
            let _ = api::PidsRequest::parse_from_bytes(p);
            let _ = api::StatsRequest::parse_from_bytes(p);
        }
    }
}

#[test]
fn fuzz_shim_requests() {
    driver::run("shim_requests", 3000, frame, check);
}

/// The options and checkpoint options of a Create alone: random bytes in every Any shape.
#[test]
fn fuzz_shim_options() {
    driver::run(
        "shim_options",
        3000,
        |rng| {
            let n = rng.below(512);
            let mut b = vec![rng.below(3) as u8];
            b.extend(rng.bytes(n));
            b
        },
        |b| {
            let url = match b.first() {
                Some(0) => "containerd.runc.v1.Options",
                Some(1) => "runtimeoptions.v1.Options",
                _ => "containerd.runc.v1.CheckpointOptions",
            };
            let a = any(url, b.get(1..).unwrap_or_default().to_vec());
            let _ = runc_options(&a);
            let _ = checkpoint_options(&a);
        },
    );
}
