//! The shim's log: logrus-style lines into the `log` FIFO containerd reads in the bundle
//! of the container that started the shim. Writes never block: when the FIFO is full (or
//! containerd stopped reading it, as it does once that container is deleted while the
//! pod's shim lives on) the line is dropped, and once containerd has closed it for good
//! (EPIPE) logging stops — a blocked or SIGPIPE-looping logger would stall the reaper
//! thread and with it every exit the shim waits for.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

struct FifoLog {
    /// None once containerd closed its end: each write would then raise SIGPIPE, which
    /// the shim's signal thread logs, which writes again — a loop that starves the reaper.
    file: Mutex<Option<File>>,
}

impl log::Log for FifoLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!(
            "time=\"{}\" level={} msg={:?}\n",
            rfc3339_now(),
            r.level().as_str().to_lowercase(),
            r.args().to_string()
        );
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = f.as_mut() else { return };
        match file.write_all(line.as_bytes()) {
            // No reader any more: stop logging for good.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => *f = None,
            // Full (EAGAIN): this line is dropped.
            _ => {}
        }
    }

    fn flush(&self) {}
}

/// Log into `./log` (the shim's working directory is the bundle) at info, or debug with
/// containerd's -debug.
pub fn init(debug: bool) {
    let Ok(file) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("log")
    else {
        return;
    };
    if log::set_boxed_logger(Box::new(FifoLog {
        file: Mutex::new(Some(file)),
    }))
    .is_ok()
    {
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}

/// UTC now as RFC 3339 with nanoseconds (logrus's format).
fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_now_is_well_formed() {
        let t = super::rfc3339_now();
        assert_eq!(t.len(), 30, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
    }
}
