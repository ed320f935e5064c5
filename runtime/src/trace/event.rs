//! One line of a trace file read back, by `rt trace summarize` and by the span export: the
//! fields [`super::Tracer`]'s `record` writes. The ids and exact times are optional here,
//! so that summarize also reads files written by other tools with only the Chrome fields
//! and `args.run` (the export skips events without them).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Event {
    pub name: String,
    /// The role that did the step: rt, init, exec (floor for bench/floor.c).
    pub cat: String,
    /// Start and duration, µs.
    pub ts: u64,
    pub dur: u64,
    #[serde(default)]
    pub pid: i64,
    pub args: Args,
}

#[derive(Debug, Deserialize)]
pub struct Args {
    #[serde(default)]
    pub detail: Option<String>,
    /// The command's root span (hex): one run.
    pub run: String,
    #[serde(default)]
    pub trace: String,
    #[serde(default)]
    pub span: String,
    #[serde(default)]
    pub parent: String,
    #[serde(default)]
    pub start_ns: u64,
    #[serde(default)]
    pub end_ns: u64,
}

impl Event {
    /// The event on one line, or None when the line is not one.
    pub fn parse(line: &str) -> Option<Event> {
        serde_json::from_str(line).ok()
    }
}
