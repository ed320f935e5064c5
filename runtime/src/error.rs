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
