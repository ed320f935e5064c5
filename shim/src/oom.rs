//! TaskOOM: the shim watches every container's memory cgroup itself, one thread for all of
//! them, woken by the kernel (no helper process or polling per container).
//!
//! - cgroup v1: an eventfd registered on `memory.oom_control` through
//!   `cgroup.event_control`; the kernel signals it at each OOM of the cgroup or of an
//!   ancestor, *before* the victim is chosen and killed, and once more when the cgroup is
//!   removed (told apart by the directory being gone).
//! - cgroup v2: inotify on `memory.events`; an OOM kill raises its `oom_kill` count.
//!
//! An OOM is reported when the container's kill count (`oom_kill`) rose, once per rise,
//! so a notification for an ancestor's OOM that killed elsewhere reports nothing. After a
//! v1 wakeup the kill is awaited a little (`KILL_WAIT`). The kernel counts the kill before
//! it sends SIGKILL, so a process's exit comes after its kill is countable: the service
//! calls [`OomWatcher::flush`] before publishing a TaskExit, which reports an OOM the thread
//! has not got to yet. Reports are made under the watcher's lock, so TaskOOM always
//! precedes the TaskExit it caused, whichever path reports it.
//!
//! Each report also says which cgroup level's limit was hit (see oom_level.rs); TaskOOM
//! carries only the container id, so the level is logged.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::oom_level::{Level, Levels};

/// The epoll key of the inotify descriptor; v1 eventfds use their fd number.
const INOTIFY_KEY: u64 = u64::MAX;

/// How long after a v1 OOM notification the container's kill count is watched for a rise
/// (the kernel notifies before it picks and kills the victim).
const KILL_WAIT: Duration = Duration::from_millis(500);
/// How often, meanwhile.
const KILL_POLL: Duration = Duration::from_millis(10);

enum Kind {
    V1 {
        efd: EventFd,
        /// Held open: the registration lives as long as this descriptor.
        _oom_control: File,
    },
    V2 {
        wd: WatchDescriptor,
    },
}

struct Watch {
    id: String,
    /// The container's memory cgroup.
    dir: PathBuf,
    kind: Kind,
    /// The kill count already reported (or seen when the watch began).
    reported: u64,
    /// Each level's limit-hit counters at the last report: what a rise is measured against.
    levels: Levels,
    /// v1: a notification came; its kill is awaited until then.
    awaiting_kill: Option<Instant>,
}

impl Watch {
    fn unified(&self) -> bool {
        matches!(self.kind, Kind::V2 { .. })
    }

    /// The OOM to report now: the kill count rose since the last report. Its level.
    fn check(&mut self) -> Option<Level> {
        let kills = oom_kills(&self.dir, self.unified());
        if kills <= self.reported {
            return None;
        }
        self.reported = kills;
        self.awaiting_kill = None;
        let now = Levels::read(&self.dir, self.unified());
        let level = self.levels.hit_since(&now);
        if now.container().is_some() {
            self.levels = now;
        }
        Some(level)
    }
}

type OnOom = Box<dyn Fn(&str, &Level, Option<&str>) + Send + Sync>;

pub struct OomWatcher {
    epoll: Epoll,
    inotify: Inotify,
    /// By epoll key (v1: the eventfd's number) or, for v2, a number above any fd.
    watches: Mutex<HashMap<u64, Watch>>,
    next_v2_key: std::sync::atomic::AtomicU64,
    /// Called under the lock of `watches`: reports are never interleaved.
    on_oom: OnOom,
}

impl OomWatcher {
    /// Start the watching thread; `on_oom` gets the id of each container OOM-killed, the
    /// level whose limit was hit, and the container's memory cgroup path in its hierarchy.
    pub fn start(
        on_oom: impl Fn(&str, &Level, Option<&str>) + Send + Sync + 'static,
    ) -> Result<Arc<OomWatcher>, String> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| format!("epoll_create1: {e}"))?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| format!("inotify_init1: {e}"))?;
        epoll
            .add(
                inotify.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY_KEY),
            )
            .map_err(|e| format!("epoll_ctl inotify: {e}"))?;
        let w = Arc::new(OomWatcher {
            epoll,
            inotify,
            watches: Mutex::default(),
            next_v2_key: (1 << 32).into(),
            on_oom: Box::new(on_oom),
        });
        let me = w.clone();
        std::thread::Builder::new()
            .name("oom".into())
            .spawn(move || me.run())
            .map_err(|e| format!("start the OOM watcher: {e}"))?;
        Ok(w)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Watch>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Report `w`'s OOM if its kill count rose. Call with the lock held.
    fn report(&self, w: &mut Watch) {
        if let Some(level) = w.check() {
            let levels = &w.levels;
            (self.on_oom)(&w.id, &level, levels.container());
        }
    }

    /// Watch the memory cgroup of container `id`, whose init is `pid`.
    pub fn add(&self, id: &str, pid: i32) -> Result<(), String> {
        let dir = memory_cgroup_of(pid)?;
        if dir.unified {
            self.add_v2(id, dir.path)
        } else {
            self.add_v1(id, dir.path)
        }
    }

    fn insert(&self, key: u64, id: &str, dir: PathBuf, kind: Kind) {
        let unified = matches!(kind, Kind::V2 { .. });
        let w = Watch {
            id: id.to_string(),
            reported: oom_kills(&dir, unified),
            levels: Levels::read(&dir, unified),
            dir,
            kind,
            awaiting_kill: None,
        };
        self.lock().insert(key, w);
    }

    fn add_v1(&self, id: &str, dir: PathBuf) -> Result<(), String> {
        let control = dir.join("memory.oom_control");
        let oom_control =
            File::open(&control).map_err(|e| format!("open {}: {e}", control.display()))?;
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
            .map_err(|e| format!("eventfd: {e}"))?;
        let event_control = dir.join("cgroup.event_control");
        let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
        fs::write(&event_control, line)
            .map_err(|e| format!("write {}: {e}", event_control.display()))?;
        let key = efd.as_raw_fd() as u64;
        self.epoll
            .add(efd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, key))
            .map_err(|e| format!("epoll_ctl eventfd: {e}"))?;
        let kind = Kind::V1 {
            efd,
            _oom_control: oom_control,
        };
        self.insert(key, id, dir, kind);
        Ok(())
    }

    fn add_v2(&self, id: &str, dir: PathBuf) -> Result<(), String> {
        let events = dir.join("memory.events");
        let wd = self
            .inotify
            .add_watch(&events, AddWatchFlags::IN_MODIFY)
            .map_err(|e| format!("inotify_add_watch {}: {e}", events.display()))?;
        let key = self
            .next_v2_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.insert(key, id, dir, Kind::V2 { wd });
        Ok(())
    }

    /// Report an OOM kill of container `id` not reported yet: called before publishing a
    /// process's exit, which may be reaped before the kernel's notification is read.
    pub fn flush(&self, id: &str) {
        let mut watches = self.lock();
        for w in watches.values_mut().filter(|w| w.id == id) {
            self.report(w);
        }
    }

    /// Stop watching container `id` (it is being deleted).
    pub fn remove(&self, id: &str) {
        let mut watches = self.lock();
        let keys: Vec<u64> = watches
            .iter()
            .filter(|(_, w)| w.id == id)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            match watches.remove(&k).map(|w| w.kind) {
                Some(Kind::V1 { efd, .. }) => {
                    let _ = self.epoll.delete(efd.as_fd());
                }
                Some(Kind::V2 { wd }) => {
                    let _ = self.inotify.rm_watch(wd);
                }
                None => {}
            }
        }
    }

    fn run(&self) {
        let mut events = [EpollEvent::empty(); 16];
        loop {
            // Short waits only while a v1 notification's kill is awaited.
            let awaiting = self.lock().values().any(|w| w.awaiting_kill.is_some());
            let timeout = if awaiting {
                EpollTimeout::try_from(KILL_POLL).unwrap_or(EpollTimeout::ZERO)
            } else {
                EpollTimeout::NONE
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("OOM watcher: epoll_wait: {e}");
                    return;
                }
            };
            for ev in &events[..n] {
                if ev.data() == INOTIFY_KEY {
                    self.v2_events();
                } else {
                    self.v1_event(ev.data());
                }
            }
            if awaiting {
                self.awaited_kills();
            }
        }
    }

    /// An eventfd fired: an OOM here or in an ancestor, or the cgroup went away (then
    /// forget it).
    fn v1_event(&self, key: u64) {
        let mut watches = self.lock();
        let Some(w) = watches.get_mut(&key) else {
            return;
        };
        if let Kind::V1 { efd, .. } = &w.kind {
            let _ = efd.read();
        }
        if w.dir.exists() {
            w.awaiting_kill = Some(Instant::now() + KILL_WAIT);
            self.report(w);
            return;
        }
        if let Some(Kind::V1 { efd, .. }) = watches.remove(&key).map(|w| w.kind) {
            let _ = self.epoll.delete(efd.as_fd());
        }
    }

    /// v1 notifications whose kill has not been counted yet: report it when it is; after
    /// KILL_WAIT the OOM killed elsewhere (an ancestor's limit, another container).
    fn awaited_kills(&self) {
        let mut watches = self.lock();
        for w in watches.values_mut() {
            let Some(until) = w.awaiting_kill else {
                continue;
            };
            self.report(w);
            if w.awaiting_kill.is_some() && Instant::now() >= until {
                log::debug!("{}: an OOM notification without a kill here", w.id);
                w.awaiting_kill = None;
            }
        }
    }

    /// memory.events changed somewhere: report the containers whose oom_kill count went up.
    fn v2_events(&self) {
        let mut changed = Vec::new();
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            changed.extend(events.into_iter().map(|e| e.wd));
        }
        let mut watches = self.lock();
        for w in watches.values_mut() {
            if matches!(&w.kind, Kind::V2 { wd } if changed.contains(wd)) {
                self.report(w);
            }
        }
    }
}

/// The OOM kill count of memory cgroup `dir`: `oom_kill` of v1 memory.oom_control (kernel
/// 4.13 and later) or v2 memory.events. 0 when unreadable.
fn oom_kills(dir: &Path, unified: bool) -> u64 {
    let file = if unified {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, PartialEq)]
pub struct MemoryCgroup {
    pub path: PathBuf,
    pub unified: bool,
}

/// The memory cgroup directory of process `pid` (also where Stats finds memory.events).
pub fn memory_cgroup_of(pid: i32) -> Result<MemoryCgroup, String> {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("read /proc/{pid}/cgroup: {e}"))?;
    if let Some(found) = memory_cgroup_where_usual(&cgroup) {
        return Ok(found);
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    memory_cgroup(&cgroup, &mountinfo).ok_or_else(|| format!("no memory cgroup for pid {pid}"))
}

/// The memory cgroup where hierarchies are usually mounted: v1's memory controller at
/// /sys/fs/cgroup/memory, else the unified hierarchy at /sys/fs/cgroup, each checked to be
/// that kind of cgroup file system with the cgroup's directory in it. Our mountinfo (read
/// otherwise) holds every container's rootfs: reading it at each container's start made
/// starting N containers cost O(N^2).
fn memory_cgroup_where_usual(cgroup: &str) -> Option<MemoryCgroup> {
    use nix::sys::statfs::{statfs, FsType, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    let is = |dir: &str, magic: FsType| statfs(dir).is_ok_and(|s| s.filesystem_type() == magic);
    let entry = |want: &dyn Fn(&str) -> bool| {
        cgroup.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            want(ctrls).then_some(path)
        })
    };
    let (base, path, unified, probe) = match entry(&|c| c.split(',').any(|c| c == "memory")) {
        Some(p) => ("/sys/fs/cgroup/memory", p, false, "memory.oom_control"),
        None => (
            "/sys/fs/cgroup",
            entry(&|c| c.is_empty())?,
            true,
            "memory.events",
        ),
    };
    let magic = if unified {
        CGROUP2_SUPER_MAGIC
    } else {
        CGROUP_SUPER_MAGIC
    };
    let dir = Path::new(base).join(path.trim_start_matches('/'));
    (is(base, magic) && dir.join(probe).exists()).then_some(MemoryCgroup { path: dir, unified })
}

/// The memory cgroup directory of a process, from its /proc/PID/cgroup and our mountinfo:
/// the v1 memory hierarchy when there is one, else the unified hierarchy.
fn memory_cgroup(cgroup: &str, mountinfo: &str) -> Option<MemoryCgroup> {
    let mounts: Vec<(&str, &str, &str)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split(' ');
            let (fstype, _source, opts) = (r.next()?, r.next()?, r.next()?);
            let mut f = left.split(' ');
            let root = f.nth(3)?;
            let mountpoint = f.next()?;
            Some((fstype, opts, mountpoint)).filter(|_| root == "/")
        })
        .collect();
    let entry = |want: &dyn Fn(&str) -> bool| {
        cgroup.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            want(ctrls).then_some(path)
        })
    };
    if let Some(path) = entry(&|c| c.split(',').any(|c| c == "memory")) {
        let (_, _, mp) = mounts
            .iter()
            .find(|(t, o, _)| *t == "cgroup" && o.split(',').any(|o| o == "memory"))?;
        return Some(MemoryCgroup {
            path: Path::new(mp).join(path.trim_start_matches('/')),
            unified: false,
        });
    }
    let path = entry(&|c| c.is_empty())?;
    let (_, _, mp) = mounts.iter().find(|(t, _, _)| *t == "cgroup2")?;
    Some(MemoryCgroup {
        path: Path::new(mp).join(path.trim_start_matches('/')),
        unified: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
";

    #[test]
    fn v1_memory_hierarchy_wins_on_a_hybrid_host() {
        let cgroup = "5:cpu:/ns/c1\n4:memory:/ns/c1\n0::/ns/c1\n";
        assert_eq!(
            memory_cgroup(cgroup, MOUNTINFO),
            Some(MemoryCgroup {
                path: "/sys/fs/cgroup/memory/ns/c1".into(),
                unified: false
            })
        );
    }

    #[test]
    fn unified_on_a_v2_host() {
        let mountinfo = "31 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            memory_cgroup("0::/ns/c1\n", mountinfo),
            Some(MemoryCgroup {
                path: "/sys/fs/cgroup/ns/c1".into(),
                unified: true
            })
        );
        assert_eq!(memory_cgroup("0::/x\n", "nothing\n"), None);
    }

    /// The watch fires on a real v2 memory.events-like file: any IN_MODIFY counts only
    /// when oom_kill went up.
    #[test]
    fn inotify_counts_oom_kills() {
        let dir = std::env::temp_dir().join(format!("rt-shim-oom-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("memory.events"), "oom 0\noom_kill 0\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let w = OomWatcher::start(move |id: &str, _: &Level, _: Option<&str>| {
            tx.send(id.to_string()).unwrap()
        })
        .unwrap();
        w.add_v2("c1", dir.clone()).unwrap();
        fs::write(dir.join("memory.events"), "oom 1\noom_kill 0\n").unwrap();
        fs::write(dir.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        let got = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(got, "c1");
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        // A kill that the exit path flushes before the thread reads it: reported once.
        fs::write(dir.join("memory.events"), "oom 2\noom_kill 2\n").unwrap();
        w.flush("c1");
        let got = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(got, "c1");
        w.flush("c1");
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        w.remove("c1");
        fs::write(dir.join("memory.events"), "oom 3\noom_kill 3\n").unwrap();
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
