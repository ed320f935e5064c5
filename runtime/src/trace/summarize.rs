//! `rt trace summarize FILE...`: per-step medians and p90 over many traced runs.
//!
//! A run is one command's root span (`args.run`). Within a run, the durations of a step
//! that happens several times (a mount, a cgroup write) are added up, so each row says
//! what that step cost a run; `--detail` keeps one row per detail instead (each mount's
//! destination). Rows come in the order the steps start in a typical run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use super::event::Event;
use crate::error::{Context, Error, Result};

#[derive(Debug, Default)]
struct Row {
    /// The step's key: "role name", or "role name detail" with --detail.
    key: String,
    /// Per run: the summed duration (µs), and the first start relative to the run's.
    per_run: HashMap<String, (u64, u64)>,
}

#[derive(Debug)]
pub struct Summary {
    pub runs: usize,
    pub rows: Vec<StepStats>,
}

#[derive(Debug, PartialEq)]
pub struct StepStats {
    pub role: String,
    pub name: String,
    pub detail: Option<String>,
    /// In how many runs the step happened.
    pub runs: usize,
    pub median_us: u64,
    pub p90_us: u64,
    pub median_offset_us: u64,
}

/// Read trace files (JSON lines as `--trace` writes them, or a JSON array of them).
pub fn summarize(files: &[PathBuf], by_detail: bool) -> Result<Summary> {
    let mut events = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).ctx(|| format!("read trace {}", f.display()))?;
        let values: Vec<String> = if text.trim_start().starts_with('[') {
            let all: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
                Error::msg(format!(
                    "trace {}: line {} column {}: {e}",
                    f.display(),
                    e.line(),
                    e.column()
                ))
            })?;
            all.iter().map(|v| v.to_string()).collect()
        } else {
            text.lines().map(String::from).collect()
        };
        for (n, line) in values.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            events.push(Event::parse(line).ok_or_else(|| {
                Error::msg(format!(
                    "trace {}: line {}: not a trace event (name, cat, ts, dur, args.run)",
                    f.display(),
                    n + 1
                ))
            })?);
        }
    }
    Ok(summarize_events(&events, by_detail))
}

fn summarize_events(events: &[Event], by_detail: bool) -> Summary {
    // Each run starts at its earliest event (its root span).
    let mut run_start: HashMap<&str, u64> = HashMap::new();
    for e in events {
        let s = run_start.entry(&e.args.run).or_insert(e.ts);
        *s = (*s).min(e.ts);
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut meta: Vec<(String, String, Option<String>)> = Vec::new();
    for e in events {
        let detail = if by_detail {
            e.args.detail.clone()
        } else {
            None
        };
        let key = format!("{}\0{}\0{}", e.cat, e.name, detail.as_deref().unwrap_or(""));
        let i = *index.entry(key.clone()).or_insert_with(|| {
            rows.push(Row {
                key,
                ..Row::default()
            });
            meta.push((e.cat.clone(), e.name.clone(), detail));
            rows.len() - 1
        });
        let offset = e.ts.saturating_sub(run_start[e.args.run.as_str()]);
        let slot = rows[i]
            .per_run
            .entry(e.args.run.clone())
            .or_insert((0, offset));
        slot.0 += e.dur;
        slot.1 = slot.1.min(offset);
    }
    let mut out: Vec<StepStats> = rows
        .iter()
        .zip(meta)
        .map(|(row, (role, name, detail))| {
            let mut durs: Vec<u64> = row.per_run.values().map(|v| v.0).collect();
            let mut offs: Vec<u64> = row.per_run.values().map(|v| v.1).collect();
            durs.sort_unstable();
            offs.sort_unstable();
            debug_assert!(!row.key.is_empty());
            StepStats {
                role,
                name,
                detail,
                runs: durs.len(),
                median_us: percentile(&durs, 50),
                p90_us: percentile(&durs, 90),
                median_offset_us: percentile(&offs, 50),
            }
        })
        .collect();
    out.sort_by_key(|s| s.median_offset_us);
    Summary {
        runs: run_start.len(),
        rows: out,
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

impl Summary {
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} run(s); per step: median and p90 of its time per run (µs), and when it starts (median µs after the run's start)\n",
            self.runs
        );
        let _ = writeln!(
            s,
            "{:>9} {:>9} {:>9} {:>5}  {:<5} STEP",
            "START", "MEDIAN", "P90", "RUNS", "BY"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:>9} {:>9} {:>9} {:>5}  {:<5} {}{}",
                r.median_offset_us,
                r.median_us,
                r.p90_us,
                r.runs,
                r.role,
                r.name,
                r.detail
                    .as_deref()
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default()
            );
        }
        s
    }

    pub fn json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "by": r.role, "step": r.name, "detail": r.detail, "runs": r.runs,
                    "median_us": r.median_us, "p90_us": r.p90_us, "start_us": r.median_offset_us,
                })
            })
            .collect();
        let mut s = serde_json::json!({ "runs": self.runs, "steps": rows }).to_string();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::Args;
    use super::*;

    fn ev(run: &str, name: &str, ts: u64, dur: u64) -> Event {
        Event {
            cat: "rt".into(),
            name: name.into(),
            ts,
            dur,
            pid: 1,
            args: Args {
                detail: Some(format!("{name}-detail")),
                run: run.into(),
                trace: String::new(),
                span: String::new(),
                parent: String::new(),
                start_ns: ts * 1000,
                end_ns: (ts + dur) * 1000,
            },
        }
    }

    #[test]
    fn repeated_steps_add_up_per_run_and_rows_follow_the_timeline() {
        let events = [
            ev("a", "create", 1000, 100),
            ev("a", "mount", 1010, 5),
            ev("a", "mount", 1020, 7),
            ev("a", "config-load", 1001, 3),
            ev("b", "create", 5000, 200),
            ev("b", "config-load", 5001, 5),
            ev("b", "mount", 5030, 20),
        ];
        let s = summarize_events(&events, false);
        assert_eq!(s.runs, 2);
        let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["create", "config-load", "mount"]);
        let mount = &s.rows[2];
        assert_eq!((mount.runs, mount.median_us, mount.p90_us), (2, 12, 20));
        assert_eq!(mount.detail, None);
        let by_detail = summarize_events(&events, true);
        assert_eq!(by_detail.rows[2].detail.as_deref(), Some("mount-detail"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), 5);
        assert_eq!(percentile(&v, 90), 9);
        assert_eq!(percentile(&[7], 90), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}
