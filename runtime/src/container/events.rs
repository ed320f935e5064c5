//! `rt events`: runc's JSON event stream on stdout, one object per line: a `stats` event
//! every interval, an `oom` event when the container's memory cgroup runs out of memory.
//! With `--stats`, one stats event and exit.
//!
//! OOM events come from polling the cgroup's OOM counters every 100 ms (v1
//! memory.oom_control `oom_kill` and `under_oom`, v2 memory.events `oom_kill` and `oom`):
//! one event per OOM kill seen in a poll, or for an OOM without a kill (the OOM killer
//! disabled) once no kill followed by the next poll. The counters are read once more after
//! the container stopped, so an OOM kill of its last process is reported before the stream
//! ends (status 0, when the container stops or its cgroup disappears).
//!
//! Unlike runc's, the oom event has `data`: which cgroup level's memory limit was hit,
//! `{"level":"container","cgroup":"/rt-test/c1"}` or `{"level":"ancestor","cgroup":"/pod"}`
//! (a pod or slice limit), `{"level":"unknown"}` when no level counted it (see
//! cgroups::oom_level).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bail;
use crate::cgroups::oom_level::{Level, Levels};
use crate::cgroups::stats::{oom_counters, stats, OomCounters, Stats};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::state::{StateDir, Status};

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Stats(&'a Stats),
    Oom(OomData<'a>),
}

/// Where the memory limit behind an OOM was.
#[derive(Serialize)]
struct OomData<'a> {
    level: &'static str,
    /// The cgroup whose limit was hit, as a path in its hierarchy.
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<&'a str>,
}

/// How often the OOM counters and the container's liveness are checked.
const POLL: Duration = Duration::from_millis(100);

/// `interval_ns`: from [`parse_go_duration`]; must be positive.
pub fn events(
    root: &Path,
    id: &str,
    interval_ns: i64,
    stats_only: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let dir = StateDir::open_unlocked(root, id)?;
    if interval_ns <= 0 {
        bail!("duration interval must be greater than 0");
    }
    let state = dir.load()?;
    if dir.status(&state) == Status::Stopped {
        bail!("container with id {id} is not running");
    }
    let cg = &state.cgroup;
    if stats_only {
        let s = stats(cg)?;
        emit(out, id, Some(Data::Stats(&s)))?;
        return Ok(());
    }
    let interval = Duration::from_nanos(interval_ns as u64);
    let tick = POLL.min(interval);
    let mut oom = OomWatch::new(cg);
    let mut next_stats = Instant::now() + interval;
    let gone = || dir.status(&state) == Status::Stopped || !cg.dirs.iter().any(|d| d.path.exists());
    loop {
        let stopped = gone();
        // Checked after noticing the stop too: an OOM kill of the init stops the container.
        if let Some(level) = oom.check(stopped) {
            if !emit_oom(out, id, &level, oom.container())? {
                return Ok(());
            }
        }
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next_stats {
            match stats(cg) {
                Ok(s) => {
                    if !emit(out, id, Some(Data::Stats(&s)))? {
                        return Ok(());
                    }
                }
                Err(e) => log::error!("{e}"),
            }
            next_stats += interval;
            // Fell behind (suspended, slow machine): don't burst to catch up.
            if next_stats < Instant::now() {
                next_stats = Instant::now() + interval;
            }
        }
        let until_stats = next_stats.saturating_duration_since(Instant::now());
        std::thread::sleep(tick.min(until_stats).max(Duration::from_millis(1)));
    }
}

/// The container's OOM counters between polls, and each level's limit-hit counters.
struct OomWatch<'a> {
    cg: &'a Cgroup,
    last: Option<OomCounters>,
    /// Each level's counters at the start or the last report: what a rise is measured
    /// against.
    levels: Levels,
    /// An OOM (`oom`/`under_oom` rose) whose kill has not been counted yet, and its level.
    pending: Option<Level>,
}

impl<'a> OomWatch<'a> {
    fn new(cg: &'a Cgroup) -> Self {
        let mut w = OomWatch {
            cg,
            last: oom_counters(cg),
            levels: Levels::default(),
            pending: None,
        };
        w.levels = w.read_levels();
        w
    }

    fn read_levels(&self) -> Levels {
        match self.cg.controller_dir("memory") {
            Some((dir, unified)) => Levels::read(dir, unified),
            None => Levels::default(),
        }
    }

    fn container(&self) -> Option<&str> {
        self.levels.container()
    }

    /// One poll: the level of an OOM to report now. The OOM counter rises before the
    /// kill is counted: one OOM with a kill is one event, an OOM whose kill does not come
    /// by the next poll (or before the end, `last`) is reported on its own.
    fn check(&mut self, last: bool) -> Option<Level> {
        let Some(now) = oom_counters(self.cg) else {
            // The cgroup is gone: nothing more will be counted.
            return self.pending.take();
        };
        let before = self.last.replace(now);
        let levels = self.read_levels();
        let Some(before) = before else {
            // First readable poll: the baseline.
            self.levels = levels;
            return None;
        };
        let killed = now.kills > before.kills;
        let oomed = now.ooms > before.ooms;
        let report = if killed || oomed {
            let level = self
                .pending
                .take()
                .unwrap_or_else(|| self.levels.hit_since(&levels));
            if killed || last {
                Some(level)
            } else {
                self.pending = Some(level);
                None
            }
        } else {
            self.pending.take()
        };
        // The baseline moves only with a report: an ancestor's count rises when its limit
        // is hit, which can be a poll before the kill shows in the container.
        if report.is_some() && levels.container().is_some() {
            self.levels = levels;
        }
        report
    }
}

/// Write one event line. `Ok(false)`: stdout is closed (the reader went away).
fn emit(out: &mut dyn Write, id: &str, data: Option<Data>) -> Result<bool> {
    let kind = match data {
        Some(Data::Stats(_)) => "stats",
        _ => "oom",
    };
    let ev = Event { kind, id, data };
    let mut line =
        serde_json::to_string(&ev).map_err(|e| Error::msg(format!("encode event: {e}")))?;
    line.push('\n');
    match out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("write to stdout", e)),
    }
}

/// An oom event; `container`: the container's cgroup path, named when its own limit was hit.
fn emit_oom(out: &mut dyn Write, id: &str, level: &Level, container: Option<&str>) -> Result<bool> {
    let cgroup = match level {
        Level::Container => container,
        Level::Ancestor(p) => Some(p.as_str()),
        Level::Unknown => None,
    };
    let data = OomData {
        level: level.name(),
        cgroup,
    };
    emit(out, id, Some(Data::Oom(data)))
}

/// A Go duration (`time.ParseDuration`): an optional sign, then one or more decimal numbers
/// with optional fraction, each with a unit (ns, us, µs, μs, ms, s, m, h), e.g. "5s",
/// "1.5h", "1h30m", "100ms"; "0" alone needs no unit. Returns nanoseconds.
pub fn parse_go_duration(orig: &str) -> std::result::Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u128 = 0;
        for c in &b[..int_len] {
            v = v * 10 + u128::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        // Fraction digits beyond what fits are dropped, as Go does.
        let (mut frac, mut scale, mut frac_len, mut had_point) = (0u128, 1u128, 0usize, false);
        if let Some(rest) = s.strip_prefix('.') {
            had_point = true;
            let digits = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
            for c in rest.bytes().take(digits) {
                if frac < (1 << 62) {
                    frac = frac * 10 + u128::from(c - b'0');
                    scale *= 10;
                }
            }
            frac_len = digits;
            s = &rest[digits..];
        }
        if int_len == 0 && (!had_point || frac_len == 0) {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let unit: u128 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            u => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        s = &s[unit_len..];
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            v += (frac as f64 * (unit as f64 / scale as f64)) as u128;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = [
            ("5s", 5_000_000_000),
            ("100ms", 100_000_000),
            ("1m", 60_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("10us", 10_000),
            ("10µs", 10_000),
            ("10μs", 10_000),
            ("7ns", 7),
            ("0", 0),
            ("+0", 0),
            ("-1s", -1_000_000_000),
            ("0s", 0),
            ("2h45m30.5s", 9_930_500_000_000),
        ];
        for (s, ns) in ok {
            assert_eq!(parse_go_duration(s), Ok(ns), "{s}");
        }
        for bad in [
            "",
            "xyz",
            "5",
            "1.5",
            "s",
            ".s",
            "5 s",
            "5S",
            "1d",
            "-",
            "9999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(
            parse_go_duration("5x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
    }

    #[test]
    fn event_lines() {
        let mut out = Vec::new();
        assert!(emit_oom(&mut out, "c1", &Level::Container, Some("/rt/c1")).unwrap());
        let s = Stats::default();
        assert!(emit(&mut out, "c1", Some(Data::Stats(&s))).unwrap());
        let pod = Level::Ancestor("/pod".into());
        assert!(emit_oom(&mut out, "c1", &pod, Some("/pod/c1")).unwrap());
        assert!(emit_oom(&mut out, "c1", &Level::Unknown, None).unwrap());
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"type":"oom","id":"c1","data":{"level":"container","cgroup":"/rt/c1"}}"#
        );
        assert_eq!(
            lines[2],
            r#"{"type":"oom","id":"c1","data":{"level":"ancestor","cgroup":"/pod"}}"#
        );
        assert_eq!(
            lines[3],
            r#"{"type":"oom","id":"c1","data":{"level":"unknown"}}"#
        );
        assert!(lines[1].starts_with(r#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}}"#), "{}", lines[1]);
    }
}
