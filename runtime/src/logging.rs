//! Logging the way runc does it, because containerd and Docker parse it: logrus text lines
//! (`time="…" level=error msg="…"`) or JSON lines (`{"level":"error","msg":"…","time":"…"}`),
//! to `--log FILE` or to stderr.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::SystemTime;

use log::LevelFilter;

use crate::error::{Context, Result};
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
                let line = serde_json::json!({ "level": level, "msg": msg.as_ref(), "time": time });
                writeln!(buf, "{line}")
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

/// logrus quotes a value when it has anything beyond a plain word.
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
