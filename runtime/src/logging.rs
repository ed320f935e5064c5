//! Logging the way runc does it, because containerd and Docker parse it: logrus text lines
//! (`time="…" level=error msg="…"`) or JSON lines (`{"level":"error","msg":"…","time":"…"}`),
//! to `--log FILE` or to stderr.
//!
//! In JSON, the final error's line also carries the error's fields (`step`, `path`,
//! `field`, `syscall`, `errno`, `errno_code`, `container`: see [`crate::error`]) after
//! runc's three, which stay as runc writes them (containerd reads `msg`). Text lines stay
//! runc's: one line, no fields.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::SystemTime;

use log::LevelFilter;

use crate::error::{Context, Fields, Result};
use crate::timefmt::rfc3339_secs;

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The --log file's fd (-1 without one): the container init must keep it open.
pub static LOG_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Install the global logger. Returns whether a log file is in use (runc then also prints
/// the fatal error, bare, on stderr).
pub fn init(file: Option<&str>, format: LogFormat, debug: bool) -> Result<bool> {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
    builder.format(move |buf, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let time = rfc3339_secs(SystemTime::now());
        let msg = record.args().to_string();
        let msg = crate::error::bounded(&msg);
        match format {
            LogFormat::Json => {
                writeln!(
                    buf,
                    "{}",
                    json_line(level, &msg, &time, record.key_values())
                )
            }
            LogFormat::Text => writeln!(buf, "time=\"{time}\" level={level} msg={}", quote(&msg)),
        }
    });
    let to_file = match file {
        Some(path) if !path.is_empty() => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ctx(|| format!("open log file {path}"))?;
            use std::os::fd::AsRawFd;
            LOG_FD.store(f.as_raw_fd(), std::sync::atomic::Ordering::Relaxed);
            builder.target(env_logger::Target::Pipe(Box::new(f)));
            true
        }
        _ => {
            builder.target(env_logger::Target::Stderr);
            false
        }
    };
    builder.write_style(env_logger::WriteStyle::Never);
    // A second init (tests) is harmless: keep the first logger.
    let _ = builder.try_init();
    Ok(to_file)
}

/// runc's JSON line (`level`, `msg`, `time`, in that order), then the record's fields.
fn json_line(level: &str, msg: &str, time: &str, fields: &dyn log::kv::Source) -> String {
    let mut line = serde_json::json!({ "level": level, "msg": msg, "time": time });
    if let Some(obj) = line.as_object_mut() {
        let _ = fields.visit(&mut JsonFields(obj));
    }
    line.to_string()
}

/// Log an error (its one-line message) with its fields.
pub fn error(msg: &str, fields: &Fields) {
    let logger = log::logger();
    let kv = ErrorFields(fields);
    let mut builder = log::Record::builder();
    builder
        .level(log::Level::Error)
        .target(module_path!())
        .key_values(&kv);
    let metadata = log::Metadata::builder()
        .level(log::Level::Error)
        .target(module_path!())
        .build();
    if logger.enabled(&metadata) {
        // format_args! lives only for the statement that uses it.
        logger.log(&builder.args(format_args!("{msg}")).build());
    }
}

/// An error's fields as a log record's key-values, the unknown ones left out.
struct ErrorFields<'a>(&'a Fields);

impl log::kv::Source for ErrorFields<'_> {
    fn visit<'kvs>(
        &'kvs self,
        visitor: &mut dyn log::kv::VisitSource<'kvs>,
    ) -> std::result::Result<(), log::kv::Error> {
        use log::kv::{Key, Value};
        let f = self.0;
        for (key, value) in [
            ("step", &f.step),
            ("path", &f.path),
            ("field", &f.field),
            ("syscall", &f.syscall),
            ("errno", &f.errno),
        ] {
            if !value.is_empty() {
                visitor.visit_pair(Key::from_str(key), Value::from(value.as_str()))?;
            }
        }
        if let Some(code) = f.errno_code {
            visitor.visit_pair(Key::from_str("errno_code"), Value::from(code))?;
        }
        if !f.container.is_empty() {
            visitor.visit_pair(
                Key::from_str("container"),
                Value::from(f.container.as_str()),
            )?;
        }
        Ok(())
    }
}

/// Adds a record's key-values to its JSON line: numbers as numbers, the rest as (bounded)
/// strings; never over runc's own keys.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> std::result::Result<(), log::kv::Error> {
        let key = key.as_str();
        if matches!(key, "level" | "msg" | "time") {
            return Ok(());
        }
        let value = match (value.to_i64(), value.to_borrowed_str()) {
            (Some(n), _) => serde_json::Value::from(n),
            (None, Some(s)) => serde_json::Value::from(crate::error::bounded(s).as_ref()),
            (None, None) => serde_json::Value::from(value.to_string()),
        };
        self.0.insert(key.to_string(), value);
        Ok(())
    }
}

/// logrus quotes a value when it has anything beyond a plain word.
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_has_runcs_keys_then_the_known_fields() {
        let fields = Fields {
            step: "mount".into(),
            path: "/x".into(),
            field: "mounts[2]".into(),
            syscall: "mount".into(),
            errno: "ENOENT".into(),
            errno_code: Some(2),
            container: "c1".into(),
        };
        let line = json_line("error", "m", "2024-01-01T00:00:00Z", &ErrorFields(&fields));
        assert_eq!(
            line,
            r#"{"level":"error","msg":"m","time":"2024-01-01T00:00:00Z","step":"mount","path":"/x","field":"mounts[2]","syscall":"mount","errno":"ENOENT","errno_code":2,"container":"c1"}"#
        );
        let line = json_line("error", "m", "t", &ErrorFields(&Fields::default()));
        assert_eq!(line, r#"{"level":"error","msg":"m","time":"t"}"#);
    }
}
