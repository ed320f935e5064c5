//! One error type for the whole runtime: a single line for the user that names what
//! failed (file, field, value, syscall) and why (errno).

use std::fmt;

use nix::errno::Errno;

#[derive(Debug)]
pub struct Error(String);

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// A failed system call: `what` names the call and its arguments.
    pub fn sys(what: impl fmt::Display, errno: Errno) -> Self {
        Error(format!("{what}: {}", describe(errno)))
    }

    /// A failed std I/O operation.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::sys(what, Errno::from_raw(code)),
            None => Error(format!("{what}: {err}")),
        }
    }

    /// Prefix the message with more context ("create container x: <message>").
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        Error(format!("{ctx}: {}", self.0))
    }
}

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
        if !self.0.contains(['\n', '\r']) {
            return f.write_str(&self.0);
        }
        f.write_str(&self.0.replace('\n', "\\n").replace('\r', "\\r"))
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
