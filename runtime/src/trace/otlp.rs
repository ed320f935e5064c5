//! Spans on the wire: OTLP/JSON (an `ExportTraceServiceRequest` in the protobuf JSON
//! mapping OTLP specifies: hex trace and span ids, 64-bit numbers as strings, enums as
//! integers), sent to an OTLP/HTTP collector (`POST /v1/traces`) or appended to a file
//! as one line per export (the OpenTelemetry Collector's file exporter format).
//!
//! Plain `http://` only: no TLS client here (a collector on the node, or an agent next to
//! it, is the expected peer). A failed export is a warning, never an error, and short
//! timeouts keep a dead collector from holding a container up.
//!
//! std, `log` and `serde_json` only: the shim includes this file too (`#[path]`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

/// A collector that does not accept the connection in this time is taken for absent.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Per read or write of the request and the status line.
const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the OTLP/HTTP path goes when an endpoint names the collector only
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`'s rule).
pub const TRACES_PATH: &str = "/v1/traces";

/// OTLP's SpanKind values.
pub const KIND_INTERNAL: u8 = 1;
pub const KIND_SERVER: u8 = 2;

/// An attribute's value.
pub enum Attr {
    Str(String),
    Int(i64),
}

/// One finished span.
pub struct SpanOut {
    pub trace_id: u128,
    pub span_id: u64,
    /// 0: a root span.
    pub parent: u64,
    pub name: String,
    pub kind: u8,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Attr)>,
}

/// Where spans go.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Http(HttpTarget),
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpTarget {
    /// `host:port`, for the connection and the Host header.
    pub authority: String,
    pub path: String,
}

/// An `http://host[:port][/path]` URL. With `signal_path`, the URL names the collector
/// and `/v1/traces` is added to its path (`OTEL_EXPORTER_OTLP_ENDPOINT`); without, the
/// path is used as it is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
pub fn http_target(url: &str, signal_path: bool) -> Result<HttpTarget, String> {
    let rest = url.trim().strip_prefix("http://").ok_or_else(|| {
        format!("OTLP endpoint {url:?}: only http:// is supported (no TLS client)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "OTLP endpoint {url:?}: no host (or user info, refused)"
        ));
    }
    // No port: HTTP's own (a bracketed IPv6 address keeps its colons inside the brackets).
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let path = if signal_path {
        format!("{}{TRACES_PATH}", path.trim_end_matches('/'))
    } else if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    Ok(HttpTarget { authority, path })
}

/// A container annotation naming an `http://host:port` OTLP/HTTP collector (`/v1/traces`
/// is added unless the path ends with it already).
pub const ENDPOINT_ANNOTATION: &str = "io.github.rt.otlp.endpoint";
/// A container annotation naming an absolute path to which each export is appended as one
/// OTLP/JSON line. (Whoever writes config.json can run hooks as root already: a file
/// named here is no new power.)
pub const FILE_ANNOTATION: &str = "io.github.rt.otlp.file";

/// The targets a container's annotations name (`get` reads one); what is wrong is logged.
pub fn annotation_targets(get: impl Fn(&str) -> Option<String>) -> Vec<Target> {
    let mut targets = Vec::new();
    if let Some(url) = get(ENDPOINT_ANNOTATION) {
        let signal_path = !url.trim_end_matches('/').ends_with(TRACES_PATH);
        match http_target(&url, signal_path) {
            Ok(t) => targets.push(Target::Http(t)),
            Err(e) => log::warn!("{ENDPOINT_ANNOTATION}: {e}"),
        }
    }
    if let Some(path) = get(FILE_ANNOTATION) {
        if path.starts_with('/') {
            targets.push(Target::File(PathBuf::from(path)));
        } else {
            log::warn!("{FILE_ANNOTATION}: {path:?} is not an absolute path: not used");
        }
    }
    targets
}

/// The collector the standard OpenTelemetry variables name, if any (`get` reads one).
pub fn env_target(get: impl Fn(&str) -> Option<String>) -> Option<Result<Target, String>> {
    let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let (url, signal_path) = match non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Some(u) => (u, false),
        None => (non_empty("OTEL_EXPORTER_OTLP_ENDPOINT")?, true),
    };
    Some(http_target(&url, signal_path).map(Target::Http))
}

/// The `ExportTraceServiceRequest` of `spans`, from one service.
pub fn request(service: &str, resource: Vec<(&'static str, Attr)>, spans: &[SpanOut]) -> Value {
    let mut res = vec![("service.name", Attr::Str(service.to_string()))];
    res.extend(resource);
    json!({
        "resourceSpans": [{
            "resource": {"attributes": attributes(&res)},
            "scopeSpans": [{
                "scope": {"name": service, "version": env!("CARGO_PKG_VERSION")},
                "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
            }],
        }],
    })
}

fn span_json(s: &SpanOut) -> Value {
    let mut v = json!({
        "traceId": format!("{:032x}", s.trace_id),
        "spanId": format!("{:016x}", s.span_id),
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": attributes(&s.attributes),
    });
    if s.parent != 0 {
        v["parentSpanId"] = Value::from(format!("{:016x}", s.parent));
    }
    v
}

fn attributes(attrs: &[(&'static str, Attr)]) -> Value {
    attrs
        .iter()
        .map(|(k, a)| match a {
            Attr::Str(s) => json!({"key": k, "value": {"stringValue": s}}),
            Attr::Int(i) => json!({"key": k, "value": {"intValue": i.to_string()}}),
        })
        .collect()
}

/// Send `body` to every target; a failure is logged, never returned.
pub fn export(targets: &[Target], body: &str) {
    for t in targets {
        let sent = match t {
            Target::Http(h) => post(h, body),
            Target::File(p) => append(p, body),
        };
        if let Err(e) = sent {
            log::warn!("span export: {e}");
        }
    }
}

/// One HTTP/1.1 POST; Ok when the collector answers 2xx.
pub fn post(t: &HttpTarget, body: &str) -> Result<(), String> {
    let what = format!("POST http://{}{}", t.authority, t.path);
    let addr = t
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("{what}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what}: no address"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_nodelay(true);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        t.path,
        t.authority,
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("{what}: {e}"))?;
    let status = status_line(&mut s).map_err(|e| format!("{what}: {e}"))?;
    match status.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(format!("{what}: the collector answered {status:?}")),
    }
}

/// The response's first line (the rest is not needed).
fn status_line(s: &mut TcpStream) -> std::io::Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.contains(&b'\n') && got.len() < 4096 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let line = got.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim_end().to_string())
}

/// One line per export, in one write on an O_APPEND file (concurrent exports never mix).
pub fn append(path: &std::path::Path, body: &str) -> Result<(), String> {
    let mut line = String::with_capacity(body.len() + 1);
    line.push_str(body);
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("append to {}: {e}", path.display()))
}

/// Whether a `traceparent`'s caller records this trace (the `sampled` flag): spans of an
/// unsampled trace would be dropped anyway, so none are made.
pub fn is_sampled(v: &str) -> bool {
    let flags = v.trim().split('-').nth(3).unwrap_or_default();
    u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1)
}

/// "00-<trace id>-<parent id>-<flags>" → (trace id, parent span id).
pub fn parse_traceparent(v: &str) -> Option<(u128, u64)> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    };
    if !(hex(version, 2) && version != "ff" && hex(trace, 32) && hex(span, 16) && hex(flags, 2)) {
        return None;
    }
    // Version 00 has exactly four fields; later versions may add more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
    let span = u64::from_str_radix(span, 16).ok().filter(|&s| s != 0)?;
    Some((trace, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sampled_flag_counts() {
        let tp =
            |flags: &str| format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
        assert!(is_sampled(&tp("01")) && is_sampled(&tp("03")));
        assert!(!is_sampled(&tp("00")) && !is_sampled(&tp("02")) && !is_sampled(""));
    }

    #[test]
    fn endpoints_are_http_urls() {
        let t = |u, p| http_target(u, p).map(|h| (h.authority, h.path));
        let ok = |a: &str, p: &str| Ok((a.to_string(), p.to_string()));
        assert_eq!(
            t("http://127.0.0.1:4318", true),
            ok("127.0.0.1:4318", "/v1/traces")
        );
        assert_eq!(
            t("http://127.0.0.1:4318/", true),
            ok("127.0.0.1:4318", "/v1/traces")
        );
        assert_eq!(
            t("http://c:4318/otlp/", true),
            ok("c:4318", "/otlp/v1/traces")
        );
        assert_eq!(
            t("http://c:4318/x/traces", false),
            ok("c:4318", "/x/traces")
        );
        assert_eq!(t("http://c", false), ok("c:80", "/"));
        assert_eq!(t("http://[::1]:4318", true), ok("[::1]:4318", "/v1/traces"));
        assert_eq!(t("http://[::1]", true), ok("[::1]:80", "/v1/traces"));
        for bad in ["https://c:4318", "c:4318", "http://", "http://u@c:1/"] {
            assert!(http_target(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn annotations_name_a_collector_and_a_file() {
        let get = |pairs: &'static [(&str, &str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let http = |a: &str, p: &str| {
            Target::Http(HttpTarget {
                authority: a.into(),
                path: p.into(),
            })
        };
        assert_eq!(
            annotation_targets(get(&[
                (ENDPOINT_ANNOTATION, "http://127.0.0.1:4318"),
                (FILE_ANNOTATION, "/tmp/spans.jsonl"),
            ])),
            [
                http("127.0.0.1:4318", "/v1/traces"),
                Target::File("/tmp/spans.jsonl".into())
            ]
        );
        assert_eq!(
            annotation_targets(get(&[(ENDPOINT_ANNOTATION, "http://c:1/v1/traces")])),
            [http("c:1", "/v1/traces")]
        );
        const WRONG: &[(&str, &str)] = &[
            (ENDPOINT_ANNOTATION, "https://c:1"),
            (FILE_ANNOTATION, "spans.jsonl"),
        ];
        assert_eq!(annotation_targets(get(WRONG)), []);
    }

    #[test]
    fn the_signal_endpoint_wins_over_the_collector_endpoint() {
        let vars = |pairs: &'static [(&str, &str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(env_target(vars(&[])), None);
        assert_eq!(
            env_target(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1")])),
            Some(Ok(Target::Http(HttpTarget {
                authority: "a:1".into(),
                path: "/v1/traces".into()
            })))
        );
        let both = env_target(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/t"),
        ]));
        assert_eq!(
            both,
            Some(Ok(Target::Http(HttpTarget {
                authority: "b:2".into(),
                path: "/t".into()
            })))
        );
    }

    #[test]
    fn a_request_in_the_otlp_json_mapping() {
        let span = SpanOut {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0xab,
            parent: 0x00f067aa0ba902b7,
            name: "mount".into(),
            kind: KIND_INTERNAL,
            start_ns: 1_700_000_000_000_000_001,
            end_ns: 1_700_000_000_000_000_002,
            attributes: vec![
                ("rt.detail", Attr::Str("/proc".into())),
                ("process.pid", Attr::Int(7)),
            ],
        };
        let v = request(
            "rt",
            vec![("container.id", Attr::Str("c1".into()))],
            &[span],
        );
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "rt"
        );
        assert_eq!(rs["resource"]["attributes"][1]["key"], "container.id");
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["spanId"], "00000000000000ab");
        assert_eq!(s["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(s["kind"], 1);
        assert_eq!(s["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(s["attributes"][1]["value"]["intValue"], "7");
    }

    /// A collector that answers 200, and one that refuses: Ok, then an error (quickly).
    #[test]
    fn post_reads_the_status() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"{}") {
                let n = c.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let t = HttpTarget {
            authority: authority.clone(),
            path: "/v1/traces".into(),
        };
        assert_eq!(post(&t, "{}"), Ok(()));
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Content-Type: application/json\r\n"), "{req}");
        assert!(req.contains("Content-Length: 2\r\n"), "{req}");
        // Nobody listens there any more.
        let at = std::time::Instant::now();
        assert!(post(&t, "{}").is_err());
        assert!(at.elapsed() < Duration::from_secs(2));
    }
}
