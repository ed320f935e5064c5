//! One error type for the whole runtime: a single line for the user that names what
//! failed (file, field, value, syscall) and why (errno), and the same facts as fields for a
//! program (`--log-format json`).
//!
//! # The fields of an error
//!
//! With `--log-format json`, the error line carries, besides runc's `level`, `msg` (the
//! one line a person reads, exactly as in text mode) and `time`:
//!
//! | field        | what it is                                                          |
//! |--------------|---------------------------------------------------------------------|
//! | `step`       | the setup step in progress ("mount", "cgroup-write", "hook", …), or the command ("start", "kill", "delete", "state", …) outside any step; the same names as `--trace` |
//! | `path`       | the file the failed call was given (the first absolute path it names) |
//! | `field`      | the config.json field at fault ("process.args", "mounts[2]", "linux.sysctl") |
//! | `syscall`    | the failed system call ("mount", "openat2", "prctl", "write")       |
//! | `errno`      | its errno's name ("ENOENT")                                         |
//! | `errno_code` | its errno's number (2)                                              |
//! | `container`  | the container id the command was given                              |
//!
//! A field that is unknown is left out. The fields travel with the error: made in the
//! container's init (or an exec'd process before it execs), they cross to `rt` over the
//! init channel ([`Error::to_wire`]) and keep the step the child was in.

use std::fmt;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

pub mod derive;

#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    msg: String,
    /// Boxed: an Error is moved through every `?`; the fields are read once, at the end.
    fields: Box<Fields>,
}

/// The facts about an error that a program can read (see the module's documentation);
/// an empty string (or None) is unknown.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fields {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub step: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub syscall: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub errno: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_code: Option<i32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container: String,
}

/// An error as it crosses the init channel: its message and its fields.
#[derive(Serialize, Deserialize)]
struct Wire {
    msg: String,
    #[serde(flatten)]
    fields: Fields,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(msg: impl Into<String>) -> Self {
        let msg = msg.into();
        let field = derive::config_field(&msg).unwrap_or_default().to_string();
        Error::new(
            msg,
            Fields {
                field,
                ..Fields::default()
            },
        )
    }

    /// A failed system call: `what` names the call and its arguments.
    pub fn sys(what: impl fmt::Display, errno: Errno) -> Self {
        let what = what.to_string();
        Error::about(format!("{what}: {}", describe(errno)), &what).with_errno(errno)
    }

    /// A failed std I/O operation.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::sys(what, Errno::from_raw(code)),
            None => {
                let what = what.to_string();
                Error::about(format!("{what}: {err}"), &what)
            }
        }
    }

    /// An error whose fields come from `what`, the description of a failed call.
    fn about(msg: String, what: &str) -> Self {
        let fields = Fields {
            field: derive::config_field(what).unwrap_or_default().to_string(),
            syscall: derive::syscall(what).unwrap_or_default().to_string(),
            path: derive::first_path(what).unwrap_or_default(),
            ..Fields::default()
        };
        Error::new(msg, fields)
    }

    /// Every error names the step it was made in.
    fn new(msg: String, mut fields: Fields) -> Self {
        fields.step = crate::trace::current_step().to_string();
        Error {
            msg,
            fields: Box::new(fields),
        }
    }

    /// Prefix the message with more context ("create container x: <message>"). A context
    /// that names a config field gives the error its field, unless a closer one did.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        let ctx = ctx.to_string();
        if self.fields.field.is_empty() {
            if let Some(f) = derive::config_field(&ctx) {
                self.fields.field = f.to_string();
            }
        }
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }

    /// The file at fault, when the call's description does not start with it.
    pub fn with_path(mut self, path: impl fmt::Display) -> Self {
        self.fields.path = path.to_string();
        self
    }

    /// The config.json field at fault, when the message does not start with it.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.fields.field = field.into();
        self
    }

    /// The config.json field at fault when the error names none, or only its parent (a
    /// mount's error says "mounts: ..."; the loop over the mounts knows it is "mounts[2]").
    pub fn within_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        if field.starts_with(self.fields.field.as_str()) {
            self.fields.field = field;
        }
        self
    }

    /// The errno behind an error whose message words it its own way.
    pub fn with_errno(mut self, errno: Errno) -> Self {
        self.fields.errno = format!("{errno:?}");
        self.fields.errno_code = Some(errno as i32);
        self
    }

    /// The failed system call, when the call's description does not start with its name.
    pub fn with_syscall(mut self, syscall: &str) -> Self {
        self.fields.syscall = syscall.to_string();
        self
    }

    /// The container the command was about.
    pub fn with_container(mut self, id: &str) -> Self {
        self.fields.container = id.to_string();
        self
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The error as one JSON object, to cross the init channel. One datagram holds it:
    /// past [`WIRE_MAX`] bytes, its long strings (values quoted from the config) are cut as
    /// [`bounded`] cuts them for printing.
    pub fn to_wire(&self) -> String {
        let mut wire = Wire {
            msg: self.msg.clone(),
            fields: (*self.fields).clone(),
        };
        let text = serde_json::to_string(&wire).unwrap_or_default();
        if text.len() <= WIRE_MAX {
            return text;
        }
        for s in [&mut wire.msg, &mut wire.fields.path, &mut wire.fields.field] {
            *s = bounded(s).into_owned();
        }
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// The error that [`Error::to_wire`] sent; anything else is taken as a bare message.
    pub fn from_wire(text: &str) -> Self {
        match serde_json::from_str::<Wire>(text) {
            Ok(w) => Error {
                msg: w.msg,
                fields: Box::new(w.fields),
            },
            Err(_) => Error::msg(text),
        }
    }
}

/// The longest error that crosses the init channel (whose reader takes 64 KiB at most).
pub const WIRE_MAX: usize = 32 * 1024;

/// The longest message rt prints or logs. Errors quote values from config.json, which may
/// be megabytes long (a hostname, an env entry); the line a user reads must stay readable.
pub const MESSAGE_MAX: usize = 4096;

/// `msg` cut to [`MESSAGE_MAX`] bytes: its start and its end (which holds the errno), with
/// how much was left out in between.
pub fn bounded(msg: &str) -> std::borrow::Cow<'_, str> {
    if msg.len() <= MESSAGE_MAX {
        return msg.into();
    }
    let mut head = MESSAGE_MAX * 3 / 4;
    while !msg.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = msg.len() - MESSAGE_MAX / 8;
    while !msg.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{} [... {} bytes left out ...] {}",
        &msg[..head],
        tail - head,
        &msg[tail..]
    )
    .into()
}

/// "ENOENT (No such file or directory)": the errno's name and its meaning.
pub fn describe(errno: Errno) -> String {
    format!("{errno:?} ({})", errno.desc())
}

impl fmt::Display for Error {
    /// Always one line: a value from the config (a path, a hook's name) may hold line
    /// breaks, which are shown escaped, as `\n` (found by the fuzz tests).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.msg.contains(['\n', '\r']) {
            return f.write_str(&self.msg);
        }
        f.write_str(&self.msg.replace('\n', "\\n").replace('\r', "\\r"))
    }
}

impl std::error::Error for Error {}

/// Attach context to any result whose error can be described.
pub trait Context<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.context(what()))
    }
}

/// Return early with a formatted error.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::msg(format!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_records_its_errno_syscall_path_and_step() {
        let _step = crate::trace::step("mount");
        let e = Error::sys("mount /proc on /x", Errno::ENOENT);
        assert_eq!(
            e.to_string(),
            "mount /proc on /x: ENOENT (No such file or directory)"
        );
        let f = e.fields();
        assert_eq!(
            (f.step.as_str(), f.syscall.as_str(), f.path.as_str()),
            ("mount", "mount", "/proc")
        );
        assert_eq!((f.errno.as_str(), f.errno_code), ("ENOENT", Some(2)));
        assert_eq!(f.field, "");
    }

    #[test]
    fn io_errors_without_an_errno_have_none() {
        let err = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad");
        let e = Error::io("read /x/config.json", err);
        assert_eq!(e.to_string(), "read /x/config.json: bad");
        assert_eq!(e.fields().errno_code, None);
        assert_eq!(e.fields().syscall, "read");
        let e = Error::io("open /x", std::io::Error::from_raw_os_error(13));
        assert_eq!(e.fields().errno, "EACCES");
    }

    #[test]
    fn the_closest_field_wins_and_a_loop_can_make_it_precise() {
        let e = Error::msg("linux.resources.memory.limit: too low").context("linux.resources");
        assert_eq!(e.fields().field, "linux.resources.memory.limit");
        let e = Error::sys("open /x", Errno::EPERM).context("process.cwd");
        assert_eq!(e.fields().field, "process.cwd");
        let e = Error::sys("mounts: destination /x", Errno::ELOOP).within_field("mounts[2]");
        assert_eq!(e.fields().field, "mounts[2]");
        let e = Error::msg("process.args: empty").within_field("mounts[2]");
        assert_eq!(e.fields().field, "process.args");
        assert_eq!(Error::msg("no field here").fields().field, "");
    }

    #[test]
    fn an_error_crosses_the_channel_whole() {
        let e = {
            let _step = crate::trace::step("pivot-root");
            Error::sys("pivot_root . .", Errno::EINVAL)
                .context("linux.rootfsPropagation")
                .with_container("c1")
        };
        let back = Error::from_wire(&e.to_wire());
        assert_eq!(back, e);
        assert_eq!(back.fields().step, "pivot-root");
        // Anything else is a bare message.
        assert_eq!(Error::from_wire("plain words").to_string(), "plain words");
    }

    #[test]
    fn a_huge_error_is_cut_to_fit_one_datagram() {
        let value = "x".repeat(200_000);
        let e = Error::sys(format!("sethostname {value:?}"), Errno::EINVAL).with_path(&value);
        let wire = e.to_wire();
        assert!(wire.len() < WIRE_MAX, "{}", wire.len());
        let back = Error::from_wire(&wire);
        assert!(back.to_string().ends_with("EINVAL (Invalid argument)"));
        assert!(back.fields().path.contains("bytes left out"));
        assert_eq!(back.fields().errno_code, Some(22));
    }

    #[test]
    fn long_messages_are_cut_in_the_middle() {
        assert_eq!(bounded("short"), "short");
        let long = format!(
            "sethostname \"{}\": EINVAL (Invalid argument)",
            "é".repeat(40_000)
        );
        let b = bounded(&long);
        assert!(b.len() < MESSAGE_MAX + 100, "{}", b.len());
        assert!(b.starts_with("sethostname \"éé"));
        assert!(b.ends_with("\": EINVAL (Invalid argument)"));
        assert!(b.contains("bytes left out"));
    }
}
