//! One runtime invocation with what it cost: wall time and peak resident memory (the
//! largest of rt's and its waited-for children's, as time(1) reports it), for tests that
//! bound both on huge inputs.

use crate::{Ctx, Output};
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A finished invocation and its cost.
#[derive(Debug)]
pub struct Measured {
    pub out: Output,
    /// Peak RSS in KiB (ru_maxrss).
    pub max_rss_kb: u64,
    pub elapsed: Duration,
}

impl Ctx {
    /// Like [`Ctx::rt`], measured by `/usr/bin/time` (its child's peak RSS is rt's own: a
    /// child forked from this test process would count this process's memory too, since
    /// ru_maxrss survives fork and exec); killed after [`crate::CMD_TIMEOUT`].
    pub fn rt_measured(&self, args: &[&str]) -> Measured {
        let time = std::path::Path::new("/usr/bin/time");
        assert!(
            time.exists(),
            "/usr/bin/time is missing: install the `time` package (make deps)"
        );
        let rss_p = self
            .subdir("out-measured")
            .join(format!("{}.rss", crate::next_n()));
        let mut c = Command::new(time);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_p);
        c.arg(crate::rt_bin())
            .arg("--root")
            .arg(&self.root)
            .args(args);
        c.env(crate::MARK_VAR, self.name.as_str());
        c.stdin(Stdio::null());
        let start = Instant::now();
        let out = self.rt_cmd(c, args);
        let elapsed = start.elapsed();
        let text = fs::read_to_string(&rss_p).unwrap_or_default();
        // On failure time(1) writes "Command exited with non-zero status N" first.
        let max_rss_kb = text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no RSS from time(1): {text:?}\n{}", out.describe()));
        Measured {
            out,
            max_rss_kb,
            elapsed,
        }
    }
}
