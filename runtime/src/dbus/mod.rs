//! A minimal D-Bus client, enough to drive systemd's manager (org.freedesktop.systemd1)
//! for the systemd cgroup driver: connect to a unix socket, authenticate with EXTERNAL,
//! make method calls and receive signals. Written here rather than taken from a crate
//! (zbus, dbus) to keep rt small and quick to start, as youki does.

pub mod wire;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context, Error, Result};
pub use wire::{prop, Value};

/// Authentication, Hello and any one write may take this long (libdbus's default).
const TIMEOUT: Duration = Duration::from_secs(25);
/// How long a call waits for its reply before nudging the peer (then twice as long, up
/// to a second, until its timeout).
const FIRST_NUDGE: Duration = Duration::from_millis(20);
/// Signals kept while waiting for replies; a peer that floods us loses the oldest.
const MAX_QUEUED: usize = 4096;
/// How much one read(2) may add to the buffer.
const CHUNK: usize = 64 << 10;

pub struct Connection {
    sock: UnixStream,
    path: PathBuf,
    serial: u32,
    bus: bool,
    /// Bytes read but not yet parsed: the start of the next message(s).
    rbuf: Vec<u8>,
    signals: VecDeque<Signal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub path: String,
    pub interface: String,
    pub member: String,
    pub body: Vec<Value>,
}

/// A failed method call: the peer's error reply, or our own failure to make the call.
#[derive(Debug)]
pub enum CallError {
    /// `call` is "DEST PATH IFACE.MEMBER".
    Remote {
        name: String,
        message: String,
        call: String,
    },
    Local(Error),
}

impl CallError {
    /// Whether the peer replied with the error `name` (e.g. "org.freedesktop.systemd1.NoSuchUnit").
    pub fn is(&self, name: &str) -> bool {
        matches!(self, CallError::Remote { name: n, .. } if n == name)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Remote {
                name,
                message,
                call,
            } => write!(f, "{call}: {name}: {message}"),
            CallError::Local(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CallError {}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Local(e) => e,
            remote => Error::msg(remote.to_string()),
        }
    }
}

impl Connection {
    /// Connect to a unix socket, authenticate with EXTERNAL (the effective uid as hex
    /// ASCII), send BEGIN. `hello`: call org.freedesktop.DBus.Hello, needed on a message
    /// bus but not on systemd's private socket, which is peer-to-peer.
    pub fn connect(path: &Path, hello: bool) -> Result<Connection> {
        let what = || format!("D-Bus socket {}", path.display());
        let sock = UnixStream::connect(path).ctx(|| format!("connect to {}", what()))?;
        sock.set_read_timeout(Some(TIMEOUT)).ctx(what)?;
        sock.set_write_timeout(Some(TIMEOUT)).ctx(what)?;
        let mut conn = Connection {
            sock,
            path: path.to_path_buf(),
            serial: 0,
            bus: false,
            rbuf: Vec::new(),
            signals: VecDeque::new(),
        };
        conn.auth().ctx(what)?;
        if hello {
            let (dbus, path) = ("org.freedesktop.DBus", "/org/freedesktop/DBus");
            conn.call(dbus, path, dbus, "Hello", &[], TIMEOUT)
                .map_err(|e| Error::from(e).context(what()))?;
            conn.bus = true;
        }
        Ok(conn)
    }

    /// systemd's manager: for root its private socket when it exists (no dbus-daemon
    /// needed, as runc and systemctl do), else the system bus.
    pub fn systemd() -> Result<Connection> {
        let private = Path::new("/run/systemd/private");
        if nix::unistd::geteuid().is_root() && private.exists() {
            return Connection::connect(private, false);
        }
        let path = match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
            Ok(addr) => unix_path(&addr).ok_or_else(|| {
                Error::msg(format!(
                    "DBUS_SYSTEM_BUS_ADDRESS={addr:?}: no unix:path= address"
                ))
            })?,
            Err(_) => PathBuf::from("/run/dbus/system_bus_socket"),
        };
        Connection::connect(&path, true)
    }

    /// Whether this is a message bus (Hello was sent), where signals need AddMatch.
    pub fn is_bus(&self) -> bool {
        self.bus
    }

    fn auth(&mut self) -> Result<()> {
        let uid = nix::unistd::geteuid().as_raw();
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let auth = format!("\0AUTH EXTERNAL {hex}\r\n");
        self.sock.write_all(auth.as_bytes()).ctx(|| "send AUTH")?;
        // Byte by byte, to take nothing past the line; it is short.
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                bail!("authentication reply longer than 512 bytes");
            }
            let mut b = [0];
            self.sock
                .read_exact(&mut b)
                .ctx(|| "read authentication reply")?;
            line.push(b[0]);
        }
        let line = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        if !line.starts_with("OK ") {
            bail!("authentication as uid {uid} with EXTERNAL refused: {line:?}");
        }
        self.sock.write_all(b"BEGIN\r\n").ctx(|| "send BEGIN")
    }

    /// A method call; waits up to `timeout` for its reply. Signals that arrive meanwhile
    /// are kept for next_signal; replies to other calls (that timed out) are dropped.
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
        timeout: Duration,
    ) -> std::result::Result<Vec<Value>, CallError> {
        let call = format!("{dest} {path} {iface}.{member}");
        let local = |e: Error| CallError::Local(e.context(&call));
        let serial = self
            .send(dest, path, iface, member, args, 0)
            .map_err(local)?;
        let deadline = deadline(timeout);
        let mut nudge_in = FIRST_NUDGE;
        loop {
            let wait_until = deadline.min(Instant::now() + nudge_in);
            let Some((h, body)) = self.read_message(wait_until).map_err(local)? else {
                if Instant::now() < deadline {
                    self.nudge(dest).map_err(local)?;
                    nudge_in = (nudge_in * 2).min(Duration::from_secs(1));
                    continue;
                }
                let path = self.path.display();
                return Err(local(Error::msg(format!(
                    "no reply within {timeout:?} on D-Bus socket {path}"
                ))));
            };
            match h.kind {
                wire::SIGNAL => {
                    if self.signals.len() >= MAX_QUEUED {
                        log::warn!(
                            "D-Bus {}: over {MAX_QUEUED} signals queued, dropping the oldest",
                            self.path.display()
                        );
                        self.signals.pop_front();
                    }
                    self.signals.push_back(signal(h, body));
                }
                wire::METHOD_RETURN if h.reply_serial == Some(serial) => return Ok(body),
                wire::ERROR if h.reply_serial == Some(serial) => {
                    let message = body.first().and_then(Value::as_str).unwrap_or_default();
                    return Err(CallError::Remote {
                        name: h.error_name.unwrap_or_default(),
                        message: message.replace(['\r', '\n'], " "),
                        call,
                    });
                }
                _ => {} // a late reply or a call to us: nothing waits for it
            }
        }
    }

    /// Send one method call; its serial.
    fn send(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
        flags: u8,
    ) -> Result<u32> {
        self.serial = self.serial.checked_add(1).unwrap_or(1);
        let header = wire::Header {
            kind: wire::METHOD_CALL,
            flags,
            serial: self.serial,
            path: Some(path.into()),
            interface: Some(iface.into()),
            member: Some(member.into()),
            destination: (!dest.is_empty()).then(|| dest.into()),
            ..wire::Header::default()
        };
        let msg = wire::encode(&header, args)?;
        let what = || format!("write to D-Bus socket {}", self.path.display());
        self.sock.write_all(&msg).ctx(what)?;
        Ok(self.serial)
    }

    /// A Ping that wants no reply, to make the peer read its socket again. systemd 252's
    /// sd-bus leaves a message that arrived in the same read as our BEGIN in its buffer
    /// until more input comes (seen in the systemd guest: the first call unanswered for
    /// its whole timeout whenever systemd was busy); the ping is that input.
    fn nudge(&mut self, dest: &str) -> Result<()> {
        let peer = "org.freedesktop.DBus.Peer";
        self.send(dest, "/", peer, "Ping", &[], wire::NO_REPLY_EXPECTED)
            .map(drop)
    }

    /// The next signal, queued or read from the socket; None after `timeout`.
    pub fn next_signal(&mut self, timeout: Duration) -> Result<Option<Signal>> {
        if let Some(s) = self.signals.pop_front() {
            return Ok(Some(s));
        }
        let deadline = deadline(timeout);
        while let Some((h, body)) = self.read_message(deadline)? {
            if h.kind == wire::SIGNAL {
                return Ok(Some(signal(h, body)));
            }
        }
        Ok(None)
    }

    /// The next message, or None at `deadline`. A partial message stays buffered for the
    /// next read, so a timeout does not lose our place in the stream.
    fn read_message(&mut self, deadline: Instant) -> Result<Option<(wire::Header, Vec<Value>)>> {
        let what = || format!("read from D-Bus socket {}", self.path.display());
        loop {
            if self.rbuf.len() >= 16 {
                let len = wire::message_len(&self.rbuf).ctx(what)?;
                if self.rbuf.len() >= len {
                    let msg = wire::decode(&self.rbuf[..len]);
                    self.rbuf.drain(..len);
                    return msg.map(Some).ctx(what);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(deadline - now)).ctx(what)?;
            let old = self.rbuf.len();
            self.rbuf.resize(old + CHUNK, 0);
            let n = self.sock.read(&mut self.rbuf[old..]);
            self.rbuf.truncate(old + *n.as_ref().unwrap_or(&0));
            match n {
                Ok(0) => bail!("{}: connection closed by the peer", what()),
                Ok(_) => {}
                // The loop checks the deadline again.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io(what(), e)),
            }
        }
    }
}

fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    // A timeout too long to represent is as good as a year.
    now.checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(365 * 86400))
}

fn signal(h: wire::Header, body: Vec<Value>) -> Signal {
    // wire::decode checked that a signal has these.
    Signal {
        path: h.path.unwrap_or_default(),
        interface: h.interface.unwrap_or_default(),
        member: h.member.unwrap_or_default(),
        body,
    }
}

/// The socket of the first `unix:path=…` in a D-Bus address list such as
/// `unix:path=/run/dbus/system_bus_socket,guid=…;tcp:…`, with its %XX escapes undone.
fn unix_path(addr: &str) -> Option<PathBuf> {
    let path = addr
        .split(';')
        .filter_map(|a| a.strip_prefix("unix:"))
        .flat_map(|kv| kv.split(','))
        .find_map(|kv| kv.strip_prefix("path="))?;
    let mut out = Vec::new();
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const DBUS: &str = "org.freedesktop.DBus";
    const DBUS_PATH: &str = "/org/freedesktop/DBus";
    const T: Duration = Duration::from_secs(5);

    /// A private dbus-daemon, killed (it is our child) and its directory removed on drop.
    struct Daemon {
        child: Child,
        dir: PathBuf,
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Daemon {
        fn start() -> Option<Daemon> {
            let bin = Path::new("/usr/bin/dbus-daemon");
            if !bin.exists() {
                println!("SKIPPED dbus: /usr/bin/dbus-daemon not installed (package dbus-daemon)");
                return None;
            }
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("rt-dbus-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            // Our own configuration: the session one may be missing and its policy is not ours to rely on.
            let conf = dir.join("bus.conf");
            std::fs::write(
                &conf,
                format!(
                    r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                    dir.display()
                ),
            )
            .unwrap();
            let child = Command::new(bin)
                .arg(format!("--config-file={}", conf.display()))
                .args(["--nofork", "--nopidfile"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let mut d = Daemon { child, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !d.socket().exists() {
                if let Some(status) = d.child.try_wait().unwrap() {
                    panic!("dbus-daemon exited: {status}");
                }
                assert!(
                    Instant::now() < deadline,
                    "dbus-daemon did not create {}",
                    d.socket().display()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Some(d)
        }

        fn socket(&self) -> PathBuf {
            self.dir.join("bus")
        }
    }

    #[test]
    fn dbus_daemon_calls() {
        let Some(d) = Daemon::start() else { return };
        let mut c = Connection::connect(&d.socket(), true).unwrap();
        assert!(c.is_bus());

        let id = c.call(DBUS, DBUS_PATH, DBUS, "GetId", &[], T).unwrap();
        let id = id[0].as_str().unwrap();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );

        let names = c.call(DBUS, DBUS_PATH, DBUS, "ListNames", &[], T).unwrap();
        assert!(names[0]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str() == Some(DBUS)));

        let args = [Value::Str(DBUS.into()), Value::Str("Features".into())];
        let props = "org.freedesktop.DBus.Properties";
        let features = c.call(DBUS, DBUS_PATH, props, "Get", &args, T).unwrap();
        assert!(matches!(&features[0], Value::Variant(_)), "{features:?}");
        assert!(
            matches!(features[0].variant(), Value::Array(elem, _) if elem == "s"),
            "{features:?}"
        );

        let err = c
            .call(DBUS, DBUS_PATH, DBUS, "NoSuchMethod", &[], T)
            .unwrap_err();
        assert!(err.is("org.freedesktop.DBus.Error.UnknownMethod"), "{err}");
        let CallError::Remote { message, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(!message.is_empty() && err.to_string().contains(message.as_str()));
        let err = Error::from(err).to_string();
        assert!(err.starts_with("org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.NoSuchMethod: org.freedesktop.DBus.Error.UnknownMethod: "), "{err}");
        assert!(!err.contains('\n'));

        let err = Connection::connect(&d.dir.join("nothing"), true)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nothing") && err.contains("ENOENT"), "{err}");
    }

    #[test]
    fn dbus_daemon_signals() {
        let Some(d) = Daemon::start() else { return };
        let mut c = Connection::connect(&d.socket(), true).unwrap();
        let rule = "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'";
        c.call(
            DBUS,
            DBUS_PATH,
            DBUS,
            "AddMatch",
            &[Value::Str(rule.into())],
            T,
        )
        .unwrap();

        let mut other = Connection::connect(&d.socket(), true).unwrap();
        let args = [Value::Str("org.rt.Test".into()), Value::U32(0)];
        let reply = other
            .call(DBUS, DBUS_PATH, DBUS, "RequestName", &args, T)
            .unwrap();
        assert_eq!(reply, [Value::U32(1)]); // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER

        // A call nobody answers times out; the signals that came meanwhile stay queued.
        let quick = Duration::from_millis(200);
        let err = c.call("org.rt.Test", "/", "org.rt.Test", "Nothing", &[], quick);
        let err = err.unwrap_err();
        assert!(matches!(err, CallError::Local(_)), "{err}");
        assert!(err.to_string().contains("no reply within 200ms"), "{err}");

        // Before it: NameAcquired for our own unique name, NameOwnerChanged for the other's.
        loop {
            let s = c
                .next_signal(T)
                .unwrap()
                .expect("NameOwnerChanged for org.rt.Test");
            if s.member == "NameOwnerChanged" && s.body[0].as_str() == Some("org.rt.Test") {
                assert_eq!((s.path.as_str(), s.interface.as_str()), (DBUS_PATH, DBUS));
                break;
            }
        }
        let start = Instant::now();
        assert_eq!(c.next_signal(Duration::from_millis(200)).unwrap(), None);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn dbus_address() {
        let p = |a| unix_path(a).map(|p| p.display().to_string());
        assert_eq!(
            p("unix:path=/run/dbus/system_bus_socket").as_deref(),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(
            p("tcp:host=x;unix:guid=1,path=/a%20b").as_deref(),
            Some("/a b")
        );
        assert_eq!(p("unix:abstract=/x"), None);
        assert_eq!(p("unix:path=/a%2"), None);
    }
}
