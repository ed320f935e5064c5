//! Trace context and OpenTelemetry spans: `rt create/start/exec` given `TRACEPARENT` send
//! their steps as OTLP/JSON spans to the collector (or file) the config's annotations name,
//! as children of the caller's span; hooks get a `TRACEPARENT` whose parent is their step;
//! without a trace context nothing is sent and no trace memfd is made. Through the shim: a
//! ttrpc request carrying `traceparent` metadata gets a span of the shim's, parent of rt's.
//!
//! The collector is a thread here on 127.0.0.1 that stores each POST's JSON body.

use integration::*;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const ENDPOINT_ANNOTATION: &str = "io.github.rt.otlp.endpoint";
const FILE_ANNOTATION: &str = "io.github.rt.otlp.file";

fn traceparent() -> String {
    format!("00-{TRACE}-{PARENT}-01")
}

/// One request the collector got.
#[derive(Clone, Debug)]
struct Received {
    request_line: String,
    content_type: String,
    body: Value,
}

/// A tiny OTLP/HTTP collector: every request's JSON body, answered `200 OK` (or never
/// answered, with `silent`).
struct Collector {
    addr: String,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Collector {
    fn start(silent: bool) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                if let Some(r) = read_request(&mut conn) {
                    g.lock().unwrap().push(r);
                }
                if silent {
                    held.push(conn);
                } else {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
                }
            }
        });
        Collector { addr, got, stop }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The bodies, once there are `n` (the shim exports from a thread of its own).
    fn wait_for(&self, n: usize) -> Vec<Value> {
        poll(Duration::from_secs(10), &format!("{n} exports"), || {
            let got = self.received();
            (got.len() >= n).then(|| got.into_iter().map(|r| r.body).collect())
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn read_request(conn: &mut TcpStream) -> Option<Received> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let len: usize = header("content-length")?.parse().ok()?;
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        request_line: head.lines().next().unwrap_or_default().to_string(),
        content_type: header("content-type").unwrap_or_default(),
        body: serde_json::from_slice(&buf[head_end..head_end + len]).ok()?,
    })
}

/// A span of an export, flattened.
#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i64,
    start: u64,
    end: u64,
    attrs: HashMap<String, String>,
}

fn attrs_of(v: &Value) -> HashMap<String, String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let val = &a["value"];
            let s = val["stringValue"]
                .as_str()
                .or(val["intValue"].as_str())
                .unwrap_or_default();
            (
                a["key"].as_str().unwrap_or_default().to_string(),
                s.to_string(),
            )
        })
        .collect()
}

/// (resource attributes, spans) of one export.
fn spans_of(export: &Value) -> (HashMap<String, String>, Vec<Span>) {
    let rs = &export["resourceSpans"][0];
    let spans = rs["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no spans in {export}"))
        .iter()
        .map(|s| {
            let num = |k: &str| {
                s[k].as_str()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{k} of {s}"))
            };
            Span {
                trace: s["traceId"].as_str().unwrap_or_default().into(),
                id: s["spanId"].as_str().unwrap_or_default().into(),
                parent: s["parentSpanId"].as_str().unwrap_or_default().into(),
                name: s["name"].as_str().unwrap_or_default().into(),
                kind: s["kind"].as_i64().unwrap_or_default(),
                start: num("startTimeUnixNano"),
                end: num("endTimeUnixNano"),
                attrs: attrs_of(&s["attributes"]),
            }
        })
        .collect();
    (attrs_of(&rs["resource"]["attributes"]), spans)
}

/// Check one rt export: one trace, the root (named `root`) a child of `parent`, every
/// other span a child of a span in it that started no later (and, for rt's own steps,
/// ended no earlier); returns the spans.
#[track_caller]
fn check_tree(export: &Value, root: &str, parent: &str, id: &str) -> Vec<Span> {
    let (resource, spans) = spans_of(export);
    assert_eq!(resource["service.name"], "rt", "{resource:?}");
    assert_eq!(resource["container.id"], id, "{resource:?}");
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "span ids repeat: {spans:#?}");
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent == parent).collect();
    assert_eq!(roots.len(), 1, "one root, child of {parent}: {spans:#?}");
    let r = roots[0];
    assert_eq!(r.name, root);
    for s in &spans {
        assert_eq!(s.trace, TRACE, "{s:?}");
        assert_eq!((s.id.len(), s.kind), (16, 1), "{s:?}");
        assert!(s.start <= s.end, "{s:?}");
        if s.id == r.id {
            continue;
        }
        let p = by_id
            .get(s.parent.as_str())
            .unwrap_or_else(|| panic!("the parent of {s:?} is not in the export"));
        assert!(s.start >= p.start, "{s:?} starts before its parent {p:?}");
        if s.attrs["rt.role"] == "rt" {
            assert!(s.end <= p.end, "{s:?} ends after its parent {p:?}");
        }
        // Whatever the init or an exec'd process wrote before rt finished.
        assert!(s.end <= r.end, "{s:?} ends after the command {r:?}");
    }
    spans
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// `rt args` with `TRACEPARENT` set (or not) and no OTel variables from the test's own
/// environment.
fn rt_with(h: &Ctx, tp: Option<&str>, args: &[&str]) -> Output {
    let mut c = h.command(args);
    for v in [
        "TRACEPARENT",
        "RT_TRACE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        c.env_remove(v);
    }
    if let Some(tp) = tp {
        c.env("TRACEPARENT", tp);
    }
    h.rt_cmd(c, args)
}

/// The init's open files that are rt's trace memfd.
fn trace_memfds(pid: i64) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("/memfd:rt-trace"))
        .count()
}

fn init_pid(h: &Ctx, id: &str) -> i64 {
    h.state_ok(id)["pid"].as_i64().unwrap()
}

#[test]
fn create_start_exec_spans_reach_a_collector_as_children_of_the_callers_span() {
    let h = Ctx::new("otel_collector");
    let collector = Collector::start(false);
    let id = h.id();
    let mut b = h.bundle(&id);
    let hook_env = h.dir.join("hook.env");
    b.config["annotations"] = serde_json::json!({ ENDPOINT_ANNOTATION: collector.endpoint() });
    b.hook("createRuntime", &format!("env > {}", hook_env.display()));
    b.args(&["sleep", "1000"]);
    b.save();
    let tp = traceparent();
    let bundle = b.dir.to_str().unwrap();
    rt_with(&h, Some(&tp), &["create", "--bundle", bundle, &id]).ok();
    h.record_pid(&id);
    // The trace context made a memfd sink, which the init holds until it execs.
    assert_eq!(trace_memfds(init_pid(&h, &id)), 1);
    rt_with(&h, Some(&tp), &["start", &id]).ok();
    rt_with(&h, Some(&tp), &["exec", &id, "true"]).ok();
    // rt exports before it exits: the three are in.
    let got = collector.received();
    assert_eq!(got.len(), 3, "{got:#?}");
    for r in &got {
        assert_eq!(r.request_line, "POST /v1/traces HTTP/1.1");
        assert_eq!(r.content_type, "application/json");
    }

    let create = check_tree(&got[0].body, "create", PARENT, &id);
    let n = names(&create);
    for step in [
        "config-load",
        "validate",
        "fork",
        "cgroup-create",
        "cgroup-join",
        "mount",
        "pivot-root",
        "hook",
        "wait-init",
        "ready",
    ] {
        assert!(n.contains(&step), "no {step} in {n:?}");
    }
    let roles: Vec<&str> = create.iter().map(|s| s.attrs["rt.role"].as_str()).collect();
    assert!(
        roles.contains(&"init") && roles.contains(&"rt"),
        "{roles:?}"
    );
    let mount = create.iter().find(|s| s.name == "mount").unwrap();
    assert!(mount.attrs.contains_key("rt.detail"), "{mount:?}");

    // The hook's TRACEPARENT: this trace, its parent the hook's step.
    let env = fs::read_to_string(&hook_env).unwrap();
    let hook_tp = env
        .lines()
        .find_map(|l| l.strip_prefix("TRACEPARENT="))
        .unwrap_or_else(|| panic!("no TRACEPARENT in the hook's env:\n{env}"));
    let hook = create.iter().find(|s| s.name == "hook").unwrap();
    assert_eq!(hook_tp, format!("00-{TRACE}-{}-01", hook.id));

    let start = check_tree(&got[1].body, "start", PARENT, &id);
    for step in ["state-load", "release-init"] {
        assert!(names(&start).contains(&step), "{:?}", names(&start));
    }
    let exec = check_tree(&got[2].body, "exec", PARENT, &id);
    for step in [
        "state-load",
        "fork",
        "cgroup-join",
        "setns",
        "wait-exec",
        "exec",
    ] {
        assert!(names(&exec).contains(&step), "{:?}", names(&exec));
    }
    assert!(exec.iter().any(|s| s.attrs["rt.role"] == "exec"));
    // Three commands, three root spans of their own, each a child of the caller's span.
    let runs: std::collections::HashSet<&str> = [&create, &start, &exec]
        .iter()
        .map(|s| s.iter().find(|s| s.parent == PARENT).unwrap().id.as_str())
        .collect();
    assert_eq!(runs.len(), 3);

    h.kill(&id, "KILL").ok();
    h.wait_status(&id, "stopped", Duration::from_secs(10));
    h.delete(&id).ok();
    assert_eq!(
        collector.received().len(),
        3,
        "untraced commands export nothing"
    );
}

#[test]
fn without_a_trace_context_nothing_is_sent_and_no_memfd_is_made() {
    let h = Ctx::new("otel_no_context");
    let collector = Collector::start(false);
    let id = h.id();
    let mut b = h.bundle(&id);
    let spans = h.dir.join("spans.jsonl");
    b.config["annotations"] = serde_json::json!({
        ENDPOINT_ANNOTATION: collector.endpoint(),
        FILE_ANNOTATION: spans.display().to_string(),
    });
    b.args(&["sleep", "1000"]);
    b.save();
    rt_with(
        &h,
        None,
        &["create", "--bundle", b.dir.to_str().unwrap(), &id],
    )
    .ok();
    h.record_pid(&id);
    assert_eq!(trace_memfds(init_pid(&h, &id)), 0);
    rt_with(&h, None, &["start", &id]).ok();
    rt_with(&h, None, &["exec", &id, "true"]).ok();
    rt_with(&h, None, &["kill", &id, "KILL"]).ok();
    h.wait_status(&id, "stopped", Duration::from_secs(10));
    rt_with(&h, None, &["delete", &id]).ok();
    // An invalid context is none, and so is an unsampled one.
    let unsampled = format!("00-{TRACE}-{PARENT}-00");
    let id1 = h.id();
    b.args(&["true"]);
    b.config["linux"]["cgroupsPath"] = cgroups_path(&id1).into();
    b.save();
    rt_with(
        &h,
        Some(&unsampled),
        &["run", "--bundle", b.dir.to_str().unwrap(), &id1],
    )
    .ok();
    let id2 = h.id();
    b.config["linux"]["cgroupsPath"] = cgroups_path(&id2).into();
    b.save();
    let bad = Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01");
    rt_with(&h, bad, &["run", "--bundle", b.dir.to_str().unwrap(), &id2]).ok();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        collector.received().is_empty(),
        "{:?}",
        collector.received()
    );
    assert!(!spans.exists());
}

/// The file annotation, with a `--trace` file that already holds an earlier traced run:
/// each export has its own run's spans only.
#[test]
fn file_export_holds_each_runs_spans_once() {
    let h = Ctx::new("otel_file");
    let spans_file = h.dir.join("spans.jsonl");
    let trace_file = h.dir.join("trace.jsonl");
    let mut b = h.bundle("unused");
    b.config["annotations"] =
        serde_json::json!({ FILE_ANNOTATION: spans_file.display().to_string() });
    b.args(&["true"]);
    let tp = traceparent();
    let trace = trace_file.to_str().unwrap();
    for _ in 0..2 {
        let id = h.id();
        b.config["linux"]["cgroupsPath"] = cgroups_path(&id).into();
        b.save();
        let args = [
            "run",
            "--trace",
            trace,
            "--bundle",
            b.dir.to_str().unwrap(),
            &id,
        ];
        rt_with(&h, Some(&tp), &args).ok();
    }
    let text = fs::read_to_string(&spans_file).unwrap();
    let exports: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exports.len(), 2, "{text}");
    let mut seen = std::collections::HashSet::new();
    for (i, e) in exports.iter().enumerate() {
        let id = format!(
            "{}{}",
            h.name,
            if i == 0 {
                String::new()
            } else {
                format!("-{i}")
            }
        );
        let spans = check_tree(e, "run", PARENT, &id);
        assert!(names(&spans).contains(&"config-load"));
        for s in spans {
            assert!(seen.insert(s.id.clone()), "{s:?} exported twice");
        }
    }
    // The --trace file keeps every event of both runs.
    let events = fs::read_to_string(&trace_file).unwrap().lines().count();
    assert_eq!(events, seen.len());
}

/// A collector that takes the connection and never answers: the container is made all
/// the same, the export given up after the short timeout, with a warning.
#[test]
fn a_collector_that_never_answers_delays_a_create_only_briefly() {
    let h = Ctx::new("otel_silent");
    let collector = Collector::start(true);
    let id = h.id();
    let mut b = h.bundle(&id);
    b.config["annotations"] = serde_json::json!({ ENDPOINT_ANNOTATION: collector.endpoint() });
    b.args(&["sleep", "1000"]);
    b.save();
    let at = Instant::now();
    let out = rt_with(
        &h,
        Some(&traceparent()),
        &["create", "--bundle", b.dir.to_str().unwrap(), &id],
    );
    out.ok();
    h.record_pid(&id);
    let took = at.elapsed();
    assert!(took < Duration::from_secs(5), "create took {took:?}");
    assert!(out.stderr.contains("span export"), "{}", out.describe());
    assert_eq!(collector.received().len(), 1);
    assert_eq!(h.status(&id).as_deref(), Some("created"));
}

mod through_the_shim {
    use super::*;
    use containerd_shim_protos::api;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::ttrpc::context::Context;
    use containerd_shim_protos::ttrpc::{Client, Server};
    use containerd_shim_protos::{create_events, Events, TaskClient};
    use integration::containerd::shim_bin;
    use std::path::PathBuf;

    /// containerd's event service, as far as the shim needs one: every event accepted.
    struct EventSink;
    impl Events for EventSink {
        fn forward(
            &self,
            _ctx: &containerd_shim_protos::ttrpc::TtrpcContext,
            _req: api::ForwardRequest,
        ) -> containerd_shim_protos::ttrpc::Result<api::Empty> {
            Ok(api::Empty::default())
        }
    }

    /// A shim started by hand (`start`, as containerd does) in a bundle, and what to clean
    /// up after it: its container (through rt, in the shim's runtime root) and itself.
    struct Shim {
        client: TaskClient,
        pid: i32,
        id: String,
        rt_root: PathBuf,
        events: Option<Server>,
    }

    impl Shim {
        fn start(h: &Ctx, bundle: &std::path::Path, id: &str) -> Shim {
            let ns = format!("rt-otel-{}", std::process::id());
            let events_sock = h.dir.join("events.ttrpc");
            let mut events = Server::new()
                .bind(&format!("unix://{}", events_sock.display()))
                .unwrap()
                .register_service(create_events(Arc::new(EventSink)));
            events.start().unwrap();
            let out = Command::new(shim_bin())
                .args(["-namespace", &ns, "-id", id, "-address"])
                .arg(h.dir.join("containerd.sock"))
                .args(["-publish-binary", "/bin/false", "start"])
                .current_dir(bundle)
                .env("TTRPC_ADDRESS", &events_sock)
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .env_remove("TRACEPARENT")
                .output()
                .unwrap();
            assert!(out.status.success(), "shim start: {out:?}");
            let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let client = TaskClient::new(Client::connect(&address).unwrap());
            let pid = client
                .connect(Context::default(), &api::ConnectRequest::default())
                .unwrap()
                .shim_pid as i32;
            Shim {
                client,
                pid,
                id: id.to_string(),
                rt_root: PathBuf::from("/run/containerd/rt").join(ns),
                events: Some(events),
            }
        }
    }

    impl Drop for Shim {
        fn drop(&mut self) {
            let _ = self
                .client
                .shutdown(Context::default(), &api::ShutdownRequest::default());
            // What a failed test left: the container, then the shim (ours: we started it).
            let _ = Command::new(rt_bin())
                .arg("--root")
                .arg(&self.rt_root)
                .args(["delete", "--force", &self.id])
                .output();
            if reap_pid(self.pid, Duration::from_secs(2)).is_none() {
                // SAFETY: kill(2) of the shim this test started.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
            }
            let _ = fs::remove_dir_all(&self.rt_root);
            if let Some(e) = self.events.take() {
                e.shutdown();
            }
        }
    }

    /// A request context carrying containerd's span `span` of our trace.
    fn traced(span: &str) -> Context {
        let mut ctx = Context::default();
        ctx.metadata
            .insert("traceparent".into(), vec![format!("00-{TRACE}-{span}-01")]);
        ctx.timeout_nano = Duration::from_secs(30).as_nanos() as i64;
        ctx
    }

    #[test]
    fn a_traced_shim_request_parents_the_runtimes_spans() {
        let h = Ctx::new("otel_shim");
        let collector = Collector::start(false);
        let id = h.id();
        let mut b = h.bundle(&id);
        b.config["annotations"] = serde_json::json!({ ENDPOINT_ANNOTATION: collector.endpoint() });
        b.args(&["sleep", "1000"]);
        b.save();
        let shim = Shim::start(&h, &b.dir, &id);
        let c = &shim.client;
        // containerd's span for each request.
        let parents = [
            ("Create", "1000000000000001"),
            ("Start", "1000000000000002"),
            ("Exec", "1000000000000003"),
            ("Start", "1000000000000004"),
            ("Kill", "1000000000000005"),
            ("Delete", "1000000000000006"),
        ];
        let create = api::CreateTaskRequest {
            id: id.clone(),
            bundle: b.dir.display().to_string(),
            ..Default::default()
        };
        c.create(traced(parents[0].1), &create).unwrap();
        let start = api::StartRequest {
            id: id.clone(),
            ..Default::default()
        };
        c.start(traced(parents[1].1), &start).unwrap();
        let process = serde_json::json!({
            "args": ["true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
        });
        let exec = api::ExecProcessRequest {
            id: id.clone(),
            exec_id: "e1".into(),
            spec: MessageField::some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: process.to_string().into_bytes(),
                ..Default::default()
            }),
            ..Default::default()
        };
        c.exec(traced(parents[2].1), &exec).unwrap();
        let start_exec = api::StartRequest {
            id: id.clone(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        c.start(traced(parents[3].1), &start_exec).unwrap();
        let kill = api::KillRequest {
            id: id.clone(),
            signal: 9,
            ..Default::default()
        };
        c.kill(traced(parents[4].1), &kill).unwrap();
        let wait = api::WaitRequest {
            id: id.clone(),
            ..Default::default()
        };
        c.wait(Context::default(), &wait).unwrap();
        let delete = api::DeleteRequest {
            id: id.clone(),
            ..Default::default()
        };
        c.delete(traced(parents[5].1), &delete).unwrap();

        // Six shim spans, and rt's create, start, exec, kill and delete.
        let exports = collector.wait_for(11);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(collector.received().len(), 11);
        let (shim_exports, rt_exports): (Vec<&Value>, Vec<&Value>) = exports
            .iter()
            .partition(|e| spans_of(e).0["service.name"] == "containerd-shim-rt-v2");
        // Each shim span: a SERVER child of containerd's span for its request.
        let mut shim_span_of = HashMap::new();
        for (method, parent) in parents {
            let span = shim_exports
                .iter()
                .flat_map(|e| spans_of(e).1)
                .find(|s| s.parent == parent)
                .unwrap_or_else(|| panic!("no shim span for {method} (parent {parent})"));
            assert_eq!(span.name, format!("containerd.task.v2.Task/{method}"));
            assert_eq!((span.trace.as_str(), span.kind), (TRACE, 2), "{span:?}");
            assert_eq!(span.attrs["container.id"], id);
            assert!(span.start <= span.end);
            shim_span_of.insert(parent, span);
        }
        // rt's root of each command: a child of the shim's span of the request that ran it.
        let runs = [
            ("create", parents[0].1),
            ("start", parents[1].1),
            ("exec", parents[3].1),
            ("kill", parents[4].1),
            ("delete", parents[5].1),
        ];
        for (command, parent) in runs {
            let shim_span = &shim_span_of[parent];
            let export = rt_exports
                .iter()
                .find(|e| spans_of(e).1.iter().any(|s| s.parent == shim_span.id))
                .unwrap_or_else(|| panic!("no rt export under the shim's span for {command}"));
            let spans = check_tree(export, command, &shim_span.id, &id);
            let root = spans.iter().find(|s| s.parent == shim_span.id).unwrap();
            assert!(
                root.start >= shim_span.start && root.end <= shim_span.end,
                "rt {command} {root:?} outside the shim's span {shim_span:?}"
            );
        }
        assert_eq!(rt_exports.len(), runs.len());
        drop(shim);
    }
}
