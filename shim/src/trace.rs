//! Trace context through the shim. containerd 1.7+/2.x with tracing on puts the W3C
//! `traceparent` of its span in each ttrpc request's metadata. A request that carries one
//! gets a span of the shim's (a child of containerd's; OpenTelemetry's RPC conventions:
//! SERVER, named `containerd.task.v2.Task/<Method>`), the runtime it runs gets that span
//! as its `TRACEPARENT` (so rt's steps are children of it), and the span is exported like
//! rt's: to where the container's annotations say (otlp.rs), else to where
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` say, from a
//! thread of its own (the reply does not wait for the collector).
//!
//! A request without `traceparent` (or with an unsampled one) costs one metadata lookup,
//! and nothing else happens.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::TtrpcContext;

use crate::otlp::{self, Attr, SpanOut, Target};

/// The metadata key (gRPC and ttrpc metadata keys are lower case).
const METADATA_KEY: &str = "traceparent";
/// The shim's name in the spans' resource.
const SERVICE: &str = "containerd-shim-rt-v2";
/// The ttrpc service containerd calls.
const RPC_SERVICE: &str = "containerd.task.v2.Task";

/// The shim's span for one request; exported when dropped (the handler's end).
pub struct RequestSpan {
    trace_id: u128,
    id: u64,
    parent: u64,
    method: &'static str,
    start_ns: u64,
    container_id: String,
    exec_id: String,
    /// Read from the bundle at the start: containerd may remove it right after a Delete.
    targets: Vec<Target>,
}

impl RequestSpan {
    /// The span of request `method` on container `id` (`exec_id`: "" for the init), when
    /// the request carries a trace context; `bundle` is asked for only then.
    pub fn start(
        ctx: &TtrpcContext,
        method: &'static str,
        id: &str,
        exec_id: &str,
        bundle: impl FnOnce() -> Option<std::path::PathBuf>,
    ) -> Option<RequestSpan> {
        Self::from_metadata(&ctx.metadata, method, id, exec_id, bundle)
    }

    fn from_metadata(
        metadata: &HashMap<String, Vec<String>>,
        method: &'static str,
        id: &str,
        exec_id: &str,
        bundle: impl FnOnce() -> Option<std::path::PathBuf>,
    ) -> Option<RequestSpan> {
        let header = metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(METADATA_KEY))?
            .1
            .first()?;
        // Unsampled: containerd records nothing of this trace, nor do we (nor rt).
        if !otlp::is_sampled(header) {
            return None;
        }
        let Some((trace_id, parent)) = otlp::parse_traceparent(header) else {
            log::debug!("{method}: ignoring an invalid traceparent {header:?}");
            return None;
        };
        Some(RequestSpan {
            trace_id,
            id: new_span_id(),
            parent,
            method,
            start_ns: now_ns(),
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            targets: bundle().map(|b| targets_of(&b)).unwrap_or_default(),
        })
    }

    /// The `traceparent` for a process started under this span (the runtime).
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.id)
    }
}

impl Drop for RequestSpan {
    fn drop(&mut self) {
        let mut attributes = vec![
            ("rpc.system", Attr::Str("ttrpc".into())),
            ("rpc.service", Attr::Str(RPC_SERVICE.into())),
            ("rpc.method", Attr::Str(self.method.into())),
            (
                "container.id",
                Attr::Str(std::mem::take(&mut self.container_id)),
            ),
        ];
        if !self.exec_id.is_empty() {
            let exec_id = std::mem::take(&mut self.exec_id);
            attributes.push(("containerd.exec.id", Attr::Str(exec_id)));
        }
        let span = SpanOut {
            trace_id: self.trace_id,
            span_id: self.id,
            parent: self.parent,
            name: format!("{RPC_SERVICE}/{}", self.method),
            kind: otlp::KIND_SERVER,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attributes,
        };
        let mut targets = std::mem::take(&mut self.targets);
        let spawned = std::thread::Builder::new()
            .name("span-export".into())
            .spawn(move || {
                if targets.is_empty() {
                    match otlp::env_target(|k| std::env::var(k).ok()) {
                        Some(Ok(t)) => targets.push(t),
                        Some(Err(e)) => log::warn!("{e}"),
                        None => return,
                    }
                }
                let resource = vec![("process.pid", Attr::Int(i64::from(std::process::id())))];
                let body = otlp::request(SERVICE, resource, &[span]).to_string();
                otlp::export(&targets, &body);
            });
        if let Err(e) = spawned {
            log::warn!("span export: spawn a thread: {e}");
        }
    }
}

/// Where the container's annotations (its bundle's config.json) send spans.
fn targets_of(bundle: &Path) -> Vec<Target> {
    let text = std::fs::read_to_string(bundle.join("config.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let annotations = &v["annotations"];
    otlp::annotation_targets(|k| annotations[k].as_str().map(str::to_string))
}

/// A fresh span id: the counter through a randomly keyed hash (std's RandomState), never 0.
fn new_span_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    h.finish() | 1
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect()
    }

    #[test]
    fn a_request_with_a_traceparent_gets_a_child_span() {
        let md = metadata(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        let mut asked = false;
        let span = RequestSpan::from_metadata(&md, "Create", "c1", "", || {
            asked = true;
            None
        })
        .expect("a span");
        assert!(asked);
        let tp = span.traceparent();
        let (trace, parent) = otlp::parse_traceparent(&tp).expect("a valid traceparent");
        assert_eq!(trace, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parent, span.id);
        assert_ne!(span.id, 0x00f067aa0ba902b7);
        // Nowhere to export to (no annotations; the test's environment names no collector).
        std::mem::forget(span);
    }

    #[test]
    fn no_traceparent_no_span_and_no_bundle_read() {
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        for md in [
            &[][..],
            &[("traceparent", "garbage")][..],
            &[("traceparent", unsampled)][..],
        ] {
            let md = metadata(md);
            let span = RequestSpan::from_metadata(&md, "Start", "c1", "", || {
                panic!("the bundle is read only for a traced request")
            });
            assert!(span.is_none());
        }
    }

    #[test]
    fn span_ids_differ() {
        let ids: std::collections::HashSet<u64> = (0..1000).map(|_| new_span_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
