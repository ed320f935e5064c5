//! A small seeded fuzz driver for the stable toolchain (no libFuzzer): generate inputs
//! (random bytes, or structured mutations of real inputs), run a check on each, and fail
//! with the smallest input we can find when the check panics, allocates wildly, or does not
//! end in time.
//!
//! Shared by the fuzz tests of both crates (included with `#[path]`, so no crate of its
//! own): `runtime/src/fuzz/`, the seccomp tests of the `rt` library and the shim's.
//!
//! - `RT_FUZZ_CASES=N` runs N cases of every target (default: a short run each, for
//!   `make test`); `RT_FUZZ_SEED=S` replays one run. Without RT_FUZZ_CASES the seed is
//!   fixed (the short run is the same every time); with it, it is new each run and printed.
//! - Each case must end within `RT_FUZZ_CASE_SECS` (10 s): a worker thread runs the
//!   cases and the test thread fails the test with the input that hangs.
//! - Each case may allocate at most 32 MiB + 64 bytes per input byte at its peak
//!   (counted by this binary's global allocator, per thread).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// The largest input a target is given.
pub const MAX_INPUT: usize = 64 * 1024;
const MEM_BASE: isize = 32 << 20;
const MEM_PER_BYTE: isize = 64;
const SHRINK_TIME: Duration = Duration::from_secs(60);

// ---- allocation accounting: live bytes and their peak, per thread ----

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping
// touches only const-initialised thread-locals without destructors (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            note(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        note(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            note(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---- randomness ----

/// splitmix64: small, fast, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    pub fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len())]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// How many cases a target runs: RT_FUZZ_CASES, else its short default.
pub fn cases(default: usize) -> usize {
    env_num("RT_FUZZ_CASES").map_or(default, |n| n as usize)
}

fn seed_for(name: &str) -> u64 {
    if let Some(s) = env_num("RT_FUZZ_SEED") {
        return s;
    }
    // FNV-1a of the name: a fixed seed per target for the short run.
    let fixed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    if env_num("RT_FUZZ_CASES").is_some() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        fixed ^ now
    } else {
        fixed
    }
}

// ---- running ----

fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.try_with(Cell::get).unwrap_or(false) {
                previous(info)
            }
        }));
    });
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".into()
    }
}

/// Run `check` on `input` once: its peak allocation, or why it failed.
fn run_one(check: &(dyn Fn(&[u8]) + Send + Sync), input: &[u8]) -> Result<isize, String> {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    QUIET.with(|q| q.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| check(input)));
    QUIET.with(|q| q.set(false));
    let used = PEAK.with(Cell::get) - base;
    match r {
        Err(p) => Err(format!("panicked: {}", panic_text(&*p))),
        Ok(()) if used > MEM_BASE + MEM_PER_BYTE * input.len() as isize => Err(format!(
            "allocated {} KiB at its peak for a {}-byte input",
            used >> 10,
            input.len()
        )),
        Ok(()) => Ok(used),
    }
}

enum Msg {
    Start(usize, Vec<u8>),
    Failed(usize, Vec<u8>, String),
    Shrunk(Vec<u8>, String),
    Finished(Stats),
}

/// A target's check, shared with the worker thread.
type Check = Arc<dyn Fn(&[u8]) + Send + Sync>;

#[derive(Default)]
struct Stats {
    slowest: Duration,
    peak: isize,
    peak_len: usize,
    bytes: usize,
}

/// Fuzz one target: `default_cases` cases (or RT_FUZZ_CASES) of inputs made by `gen`,
/// each given to `check`, which panics on a finding. Fails the test with the (shrunk)
/// input of the first finding, or of a case that does not end in time.
pub fn run(
    name: &str,
    default_cases: usize,
    mut gen: impl FnMut(&mut Rng) -> Vec<u8> + Send + 'static,
    check: impl Fn(&[u8]) + Send + Sync + 'static,
) {
    quiet_panics();
    let n = cases(default_cases);
    let seed = seed_for(name);
    let limit = Duration::from_secs(env_num("RT_FUZZ_CASE_SECS").unwrap_or(10));
    let check: Check = Arc::new(check);
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-{name}"))
        .spawn(move || {
            let mut rng = Rng::new(seed);
            let mut stats = Stats::default();
            for i in 0..n {
                let mut input = gen(&mut rng);
                input.truncate(MAX_INPUT);
                let _ = tx.send(Msg::Start(i, input.clone()));
                let t0 = Instant::now();
                match run_one(&*check, &input) {
                    Ok(peak) => {
                        stats.slowest = stats.slowest.max(t0.elapsed());
                        stats.bytes += input.len();
                        if peak > stats.peak {
                            stats.peak = peak;
                            stats.peak_len = input.len();
                        }
                    }
                    Err(why) => {
                        let _ = tx.send(Msg::Failed(i, input.clone(), why));
                        let small = shrink(&input, &|c| run_one(&*check, c).is_err());
                        let why = run_one(&*check, &small).err().unwrap_or_default();
                        let _ = tx.send(Msg::Shrunk(small, why));
                        return;
                    }
                }
            }
            let _ = tx.send(Msg::Finished(stats));
        })
        .expect("spawn the fuzz worker");
    let t0 = Instant::now();
    let mut current: (usize, Vec<u8>) = (0, Vec::new());
    let mut failed: Option<(usize, Vec<u8>, String)> = None;
    loop {
        let wait = if failed.is_some() {
            SHRINK_TIME * 3
        } else {
            limit
        };
        match rx.recv_timeout(wait) {
            Ok(Msg::Start(i, input)) => current = (i, input),
            Ok(Msg::Failed(i, input, why)) => failed = Some((i, input, why)),
            Ok(Msg::Shrunk(small, why)) => {
                let (i, input, first) = failed.take().unwrap_or_default();
                let _ = worker.join();
                panic!(
                    "fuzz {name}: case {i} (seed {seed}) {first}\n  input ({} bytes): {}\n  shrunk ({} bytes, {why}): {}",
                    input.len(),
                    show(&input),
                    small.len(),
                    show(&small)
                );
            }
            Ok(Msg::Finished(s)) => {
                let _ = worker.join();
                eprintln!(
                    "fuzz {name}: {n} cases (seed {seed}) in {:.1} s, {} KiB of input; slowest case {} ms; peak allocation {} KiB (for a {}-byte input)",
                    t0.elapsed().as_secs_f64(),
                    s.bytes >> 10,
                    s.slowest.as_millis(),
                    s.peak >> 10,
                    s.peak_len
                );
                return;
            }
            Err(_) => match &failed {
                Some((i, input, why)) => panic!(
                    "fuzz {name}: case {i} (seed {seed}) {why}; shrinking it did not end\n  input: {}",
                    show(input)
                ),
                None => panic!(
                    "fuzz {name}: case {} (seed {seed}) did not end within {limit:?}\n  input ({} bytes): {}",
                    current.0,
                    current.1.len(),
                    show(&current.1)
                ),
            },
        }
    }
}

/// An input as a Rust literal to paste into a regression test.
pub fn show(input: &[u8]) -> String {
    let text = match std::str::from_utf8(input) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("bytes {input:02x?}"),
    };
    if text.len() > 6000 {
        format!("{}… (cut)", &text[..text.floor_char_boundary_compat(6000)])
    } else {
        text
    }
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

// ---- shrinking ----

/// The smallest input we find (within SHRINK_TIME) that still fails: JSON-aware
/// (remove members, elements; simplify values) when it parses, else byte ranges.
fn shrink(input: &[u8], fails: &dyn Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + SHRINK_TIME;
    let mut best = input.to_vec();
    'outer: while Instant::now() < deadline {
        for cand in candidates(&best) {
            if Instant::now() >= deadline {
                break 'outer;
            }
            if cand.len() < best.len() && fails(&cand) {
                best = cand;
                continue 'outer;
            }
        }
        break;
    }
    best
}

fn candidates(input: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<Value>(input) {
        let mut ptrs = Vec::new();
        pointers(&v, String::new(), &mut ptrs);
        for p in ptrs.iter().take(3000) {
            for simpler in simplify(&v, p) {
                out.push(serde_json::to_vec(&simpler).unwrap_or_default());
            }
        }
    }
    let mut k = input.len() / 2;
    while k > 0 {
        let mut at = 0;
        while at + k <= input.len() && out.len() < 20_000 {
            let mut c = input[..at].to_vec();
            c.extend_from_slice(&input[at + k..]);
            out.push(c);
            at += k;
        }
        k /= 2;
    }
    out
}

fn simplify(root: &Value, ptr: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let (parent, last) = match ptr.rfind('/') {
        Some(i) => (&ptr[..i], &ptr[i + 1..]),
        None => return out,
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    let mut removed = root.clone();
    match removed.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(&key);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
        }
        _ => {}
    }
    out.push(removed);
    let node = root.pointer(ptr).cloned().unwrap_or(Value::Null);
    let mut replace = |v: Value| {
        let mut r = root.clone();
        if let Some(slot) = r.pointer_mut(ptr) {
            *slot = v;
        }
        out.push(r);
    };
    match &node {
        Value::String(s) if !s.is_empty() => {
            let half: String = s.chars().take(s.chars().count() / 2).collect();
            replace(Value::String(half));
        }
        Value::Array(a) if !a.is_empty() => replace(a[0].clone()),
        Value::Object(m) if !m.is_empty() => {
            if let Some(first) = m.values().next() {
                replace(first.clone())
            }
        }
        _ => {}
    }
    replace(Value::Null);
    out
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// JSON pointers of every node below `v` (not `v` itself).
pub fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{at}/{}", escape(k));
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        _ => {}
    }
}

// ---- mutation ----

/// The words a target's inputs are made of: object keys and string values it knows.
#[derive(Default, Clone)]
pub struct Dict {
    pub keys: Vec<&'static str>,
    pub strings: Vec<&'static str>,
}

const SPECIAL_STRINGS: &[&str] = &[
    "",
    "/",
    ".",
    "..",
    "../../..",
    "/..",
    "//",
    "/proc/self/fd/0",
    "a\nb",
    "\0",
    "ü\u{202e}x",
    "-1",
    "18446744073709551616",
    "0x10",
    " ",
    "=",
    ",",
    ":",
    "a,b=c",
];

pub fn string(rng: &mut Rng, dict: &Dict) -> String {
    match rng.below(10) {
        0..=4 if !dict.strings.is_empty() => rng.pick(&dict.strings).to_string(),
        5 => "a".repeat(rng.below(2) * 4000 + rng.below(300)),
        6 if !dict.strings.is_empty() => {
            // A known word, changed a little.
            let mut s = rng.pick(&dict.strings).to_string();
            match rng.below(3) {
                0 => s.push_str(rng.pick::<&str>(SPECIAL_STRINGS)),
                1 => s.insert_str(0, rng.pick::<&str>(SPECIAL_STRINGS)),
                _ => s = s.to_lowercase(),
            }
            s
        }
        7 => {
            let n = rng.below(16);
            String::from_utf8_lossy(&rng.bytes(n)).into_owned()
        }
        _ => rng.pick(SPECIAL_STRINGS).to_string(),
    }
}

pub fn number(rng: &mut Rng) -> Value {
    let n: Value = match rng.below(16) {
        0 => 0.into(),
        1 => 1.into(),
        2 => (-1).into(),
        3 => i64::MIN.into(),
        4 => i64::MAX.into(),
        5 => u64::MAX.into(),
        6 => (1u64 << 31).into(),
        7 => (1u64 << 32).into(),
        8 => (-(1i64 << 31)).into(),
        9 => serde_json::json!(1.5),
        10 => serde_json::json!(1e300),
        11 => 65536.into(),
        12 => 4096.into(),
        13 => rng.next().into(),
        _ => (rng.below(1000) as i64 - 100).into(),
    };
    n
}

pub fn value(rng: &mut Rng, dict: &Dict, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => number(rng),
        3 | 4 => Value::String(string(rng, dict)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| value(rng, dict, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                let k = if dict.keys.is_empty() || rng.one_in(5) {
                    string(rng, dict)
                } else {
                    rng.pick(&dict.keys).to_string()
                };
                m.insert(k, value(rng, dict, depth - 1));
            }
            Value::Object(m)
        }
    }
}

/// One structured mutation somewhere in `v`.
pub fn mutate_json(rng: &mut Rng, v: &mut Value, dict: &Dict) {
    let mut ptrs = vec![String::new()];
    pointers(v, String::new(), &mut ptrs);
    let ptr = rng.pick(&ptrs).clone();
    let Some(node) = v.pointer_mut(&ptr) else {
        return;
    };
    match (rng.below(4), node) {
        (0, node) => *node = value(rng, dict, 2),
        (_, Value::String(s)) => *s = string(rng, dict),
        (_, n @ Value::Number(_)) => *n = number(rng),
        (_, Value::Bool(b)) => *b = !*b,
        (_, Value::Object(m)) => {
            if !m.is_empty() && rng.one_in(3) {
                let k = m
                    .keys()
                    .nth(rng.below(m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&k);
            } else {
                let k = if dict.keys.is_empty() || rng.one_in(6) {
                    string(rng, dict)
                } else {
                    rng.pick(&dict.keys).to_string()
                };
                m.insert(k, value(rng, dict, 2));
            }
        }
        (_, Value::Array(a)) => match rng.below(4) {
            0 if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            1 if !a.is_empty() => {
                let c = a[rng.below(a.len())].clone();
                a.insert(rng.below(a.len() + 1), c);
            }
            2 if !a.is_empty() => {
                // Many copies: lists far longer than real configs have.
                let c = a[rng.below(a.len())].clone();
                let n = rng.below(2000);
                a.extend(std::iter::repeat_n(c, n));
            }
            _ => a.push(value(rng, dict, 2)),
        },
        (_, node) => *node = value(rng, dict, 2),
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "\\",
    "\\u0000",
    "\\ud800",
    "1e999",
    "-0",
    "null",
    "true",
    "\u{feff}",
    "9999999999999999999999",
];

/// Byte-level damage: flips, inserts, deletes, duplicated ranges, JSON tokens.
pub fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = b.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                let n = rng.below(8) + 1;
                let ins = rng.bytes(n);
                b.splice(i..i, ins);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let j = (i + rng.below(64) + 1).min(len);
                b.drain(i..j);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let j = (i + rng.below(256) + 1).min(len);
                let dup = b[i..j].to_vec();
                b.splice(i..i, dup);
            }
            4 if len > 0 => b.truncate(rng.below(len)),
            _ => {
                let i = rng.below(len + 1);
                let t = rng.pick(TOKENS).as_bytes().to_vec();
                b.splice(i..i, t);
            }
        }
    }
}

/// The usual mix for a JSON target: 1/8 random bytes, 1/8 a damaged seed text, else a
/// seed with 1 to 6 structured mutations (1/16 of those then damaged too), sometimes
/// deeply nested.
pub fn json_input(rng: &mut Rng, seeds: &[Value], dict: &Dict) -> Vec<u8> {
    let seed = rng.pick(seeds);
    match rng.below(16) {
        0 | 1 => {
            let n = rng.below(512);
            rng.bytes(n)
        }
        2 | 3 => {
            let mut b = serde_json::to_vec_pretty(seed).unwrap_or_default();
            mutate_bytes(rng, &mut b);
            b
        }
        4 => {
            let depth = rng.below(200_000);
            let mut b = "[".repeat(depth).into_bytes();
            b.extend("]".repeat(rng.below(depth + 1)).as_bytes());
            b
        }
        _ => {
            let mut v = seed.clone();
            for _ in 0..=rng.below(6) {
                mutate_json(rng, &mut v, dict);
            }
            let mut b = if rng.one_in(2) {
                serde_json::to_vec(&v)
            } else {
                serde_json::to_vec_pretty(&v)
            }
            .unwrap_or_default();
            if rng.one_in(16) {
                mutate_bytes(rng, &mut b);
            }
            b
        }
    }
}
