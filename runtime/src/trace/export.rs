//! This command's steps as OpenTelemetry spans, when the caller gave a trace context
//! (`TRACEPARENT`) and a place for them: the container's annotations
//! ([`otlp::ENDPOINT_ANNOTATION`], [`otlp::FILE_ANNOTATION`]), else the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
//!
//! The spans are the trace sink's events of this run (the root span's id is in each), read
//! back at the end of the command: rt's own, and those the container's init or an exec'd
//! process wrote before rt finished (their setup; the init's later steps are not in it).
//!
//! Without a trace context nothing here runs: [`configure`] returns at once and
//! [`super::finish`] does not call [`export`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::fd::RawFd;

use super::event::Event;
use super::otlp::{self, Attr, SpanOut, Target};

/// rt's name in the spans' resource.
const SERVICE: &str = "rt";

struct Config {
    targets: Vec<Target>,
    container_id: String,
}

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

/// Note where the spans of the command on container `id` go, from its annotations. Only
/// with a trace context; without one this is a single check.
pub fn configure(annotations: &BTreeMap<String, String>, id: &str) {
    if !super::has_context() {
        return;
    }
    let targets = otlp::annotation_targets(|k| annotations.get(k).cloned());
    CONFIG.with(|c| {
        *c.borrow_mut() = Some(Config {
            targets,
            container_id: id.to_string(),
        })
    });
}

/// Send the spans of run `run` (the root span's id) found in the sink from offset `from`.
pub(super) fn export(sink: RawFd, from: u64, run: u64) {
    let config = CONFIG.with(|c| c.borrow_mut().take());
    let container_id = config.as_ref().map(|c| c.container_id.clone());
    let mut targets = config.map(|c| c.targets).unwrap_or_default();
    if targets.is_empty() {
        match otlp::env_target(|k| std::env::var(k).ok()) {
            Some(Ok(t)) => targets.push(t),
            Some(Err(e)) => log::warn!("{e}"),
            None => {}
        }
    }
    if targets.is_empty() {
        return;
    }
    let text = read_from(sink, from);
    let spans = spans_of(&String::from_utf8_lossy(&text), run);
    let mut resource = vec![("process.pid", Attr::Int(i64::from(std::process::id())))];
    if let Some(id) = container_id {
        resource.push(("container.id", Attr::Str(id)));
    }
    let body = otlp::request(SERVICE, resource, &spans).to_string();
    otlp::export(&targets, &body);
}

/// The events of run `run` among the sink's lines, as spans.
fn spans_of(text: &str, run: u64) -> Vec<SpanOut> {
    let run = format!("{run:016x}");
    text.lines()
        .filter(|l| l.contains(&run))
        .filter_map(Event::parse)
        .filter(|e| e.args.run == run)
        .filter_map(span_of)
        .collect()
}

fn span_of(e: Event) -> Option<SpanOut> {
    let a = e.args;
    let hex64 = |v: &str| u64::from_str_radix(v, 16).ok();
    let mut attributes = vec![
        ("rt.role", Attr::Str(e.cat)),
        ("process.pid", Attr::Int(e.pid)),
    ];
    if let Some(d) = a.detail {
        attributes.push(("rt.detail", Attr::Str(d)));
    }
    Some(SpanOut {
        trace_id: u128::from_str_radix(&a.trace, 16).ok()?,
        span_id: hex64(&a.span)?,
        parent: hex64(&a.parent)?,
        name: e.name,
        kind: otlp::KIND_INTERNAL,
        start_ns: a.start_ns,
        end_ns: a.end_ns,
        attributes,
    })
}

/// The sink's bytes from `from` to its end (it is a memfd or a regular file).
fn read_from(fd: RawFd, mut from: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `fd` is the open trace sink; the buffer is valid for its length.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), from as i64) };
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        if n < 0 {
            log::warn!(
                "span export: read the trace sink: {}",
                nix::errno::Errno::last()
            );
        }
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
        from += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_runs_events_become_spans() {
        let line = |run: &str, span: &str, detail: &str| {
            format!(
                "{{\"name\":\"mount\",\"cat\":\"init\",\"ph\":\"X\",\"ts\":1,\"dur\":1,\"pid\":42,\"tid\":42,\"args\":{{{detail}\"trace\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span\":\"{span}\",\"parent\":\"00f067aa0ba902b7\",\"run\":\"{run}\",\"start_ns\":10,\"end_ns\":20}}}}\n"
            )
        };
        let text = line(
            "0000000000000001",
            "00000000000000a1",
            "\"detail\":\"/proc\",",
        ) + &line("0000000000000002", "00000000000000b1", "")
            + "not json\n"
            + &line("0000000000000001", "00000000000000a2", "");
        let spans = spans_of(&text, 1);
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!((s.span_id, s.parent), (0xa1, 0x00f067aa0ba902b7));
        assert_eq!(s.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!((s.start_ns, s.end_ns, s.name.as_str()), (10, 20, "mount"));
        assert!(matches!(&s.attributes[2], ("rt.detail", Attr::Str(d)) if d == "/proc"));
        assert_eq!(spans[1].span_id, 0xa2);
    }
}
