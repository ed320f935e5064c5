//! What an error's own words say about it: the config.json field a message starts with,
//! and the system call and path that a failed call's description (`what` in
//! [`Error::sys`](super::Error::sys)) names. Call sites write these descriptions for people
//! ("mount /proc on /x", "linux.sysctl: write \"1\" to /proc/sys/..."); reading them back
//! here keeps the ~550 call sites as they are, and a call site that knows better sets the
//! field itself.

/// The top-level config.json members that an error may name.
const CONFIG_ROOTS: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "hostname",
    "domainname",
    "mounts",
    "hooks",
    "annotations",
    "linux",
];

/// The config.json field that `text` starts with ("mounts[3]" in "mounts[3] (/x): ...",
/// "linux.seccomp.flags" in "linux.seccomp.flags: unknown flag ..."). A bare top-level
/// name counts only when a colon follows it ("process: missing"), so that a sentence that
/// happens to begin with "process" or "root" names no field.
pub fn config_field(text: &str) -> Option<&str> {
    let root_len = ident_len(text);
    if !CONFIG_ROOTS.contains(&&text[..root_len]) {
        return None;
    }
    let mut end = root_len;
    loop {
        let rest = &text[end..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let n = ident_len(after_dot);
            if n == 0 {
                break;
            }
            end += 1 + n;
        } else if rest.starts_with('[') {
            // An index ("[3]") or a key ("[\"net.ipv4.ip_forward\"]").
            match rest.find(']') {
                Some(close) => end += close + 1,
                None => break,
            }
        } else {
            break;
        }
    }
    let next = text[end..].chars().next();
    let ok = if end == root_len {
        next == Some(':')
    } else {
        matches!(next, None | Some(':' | ' ' | ',' | '/'))
    };
    ok.then(|| &text[..end])
}

/// The system call that `what` names: the first word of `what`, or of a part of it after
/// a ": " (past a field: "linux.sysctl: write ...", "mounts[2] (/x): mount_setattr(...)"),
/// when that is a syscall's name ("mount", "openat2", "prctl(PR_SET_DUMPABLE, 0)" →
/// "prctl"), or one of the few words the messages use for one ("remount" and "bind
/// mount" are mount(2)).
pub fn syscall(what: &str) -> Option<&'static str> {
    what.split(": ").find_map(first_word_syscall)
}

fn first_word_syscall(part: &str) -> Option<&'static str> {
    let end = part
        .find(|c: char| c.is_whitespace() || matches!(c, '(' | ':' | ','))
        .unwrap_or(part.len());
    let word = &part[..end];
    let second = part[end..].split_whitespace().next().unwrap_or("");
    let alias = match word {
        "remount" | "mask" => Some("mount"),
        "bind" if second == "mount" => Some("mount"),
        "create" => Some("open"),
        "exec" | "run" => Some("execve"),
        "wait" => Some("waitpid"),
        _ => None,
    };
    alias.or_else(|| SYSCALLS.iter().copied().find(|&s| s == word))
}

/// The first absolute path in `what`, bare (`/x`) or quoted (`"/a b"`, as `{:?}` shows it).
pub fn first_path(what: &str) -> Option<String> {
    let bytes = what.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let starts_word = i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'(' | b'=');
        if !starts_word {
            continue;
        }
        if b == b'/' {
            let rest = &what[i..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, ',' | ')'))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(':');
            return Some(if path.is_empty() { "/" } else { path }.to_string());
        }
        if b == b'"' && bytes.get(i + 1) == Some(&b'/') {
            return Some(quoted(&what[i..]));
        }
    }
    None
}

/// The string that `text` starts with, quoted as `{:?}` or JSON quote it (unescaped; what
/// JSON cannot read is kept as written).
fn quoted(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut end = 1;
    while end < bytes.len() && bytes[end] != b'"' {
        end += if bytes[end] == b'\\' { 2 } else { 1 };
    }
    let end = end.min(bytes.len() - 1);
    let literal = &text[..=end];
    serde_json::from_str::<String>(literal)
        .unwrap_or_else(|_| literal.trim_matches('"').to_string())
}

fn ident_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// The system calls (and the few libc calls, like grantpt) that rt's messages name.
const SYSCALLS: &[&str] = &[
    "access",
    "bind",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "clone",
    "clone3",
    "close",
    "close_range",
    "connect",
    "dup",
    "dup2",
    "dup3",
    "execve",
    "faccessat",
    "fchdir",
    "fchmod",
    "fchown",
    "fcntl",
    "flock",
    "fork",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fstat",
    "fstatfs",
    "ftruncate",
    "getcwd",
    "getxattr",
    "grantpt",
    "ioctl",
    "ioprio_set",
    "keyctl",
    "kill",
    "lchown",
    "link",
    "listen",
    "lsetxattr",
    "lstat",
    "memfd_create",
    "mkdir",
    "mkdirat",
    "mkfifo",
    "mknod",
    "mknodat",
    "mount",
    "mount_setattr",
    "move_mount",
    "open",
    "open_tree",
    "openat",
    "openat2",
    "personality",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pivot_root",
    "poll",
    "prctl",
    "prlimit",
    "ptsname",
    "read",
    "readlink",
    "recv",
    "recvmsg",
    "rename",
    "rmdir",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setscheduler",
    "seccomp",
    "send",
    "sendmsg",
    "set_mempolicy",
    "setdomainname",
    "setgroups",
    "sethostname",
    "setns",
    "setresgid",
    "setresuid",
    "setrlimit",
    "setsid",
    "setxattr",
    "sigprocmask",
    "signalfd",
    "socket",
    "socketpair",
    "stat",
    "statfs",
    "symlink",
    "symlinkat",
    "tcgetattr",
    "tcsetattr",
    "truncate",
    "umount",
    "umount2",
    "unlink",
    "unlinkat",
    "unlockpt",
    "unshare",
    "utimensat",
    "waitpid",
    "write",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_the_config_field_it_starts_with() {
        for (text, field) in [
            ("process.args: must not be empty", Some("process.args")),
            (
                "linux.maskedPaths: stat /x: ENOENT",
                Some("linux.maskedPaths"),
            ),
            ("mounts[3] (/x): mount ...", Some("mounts[3]")),
            ("mounts[2], in a user namespace", Some("mounts[2]")),
            (
                "linux.resources.devices[0]: bad",
                Some("linux.resources.devices[0]"),
            ),
            (
                "linux.sysctl[\"net.ipv4.ip_forward\"]: x",
                Some("linux.sysctl[\"net.ipv4.ip_forward\"]"),
            ),
            (
                "linux.uidMappings/gidMappings: required",
                Some("linux.uidMappings"),
            ),
            ("process: missing", Some("process")),
            ("hostname: cannot set hostname", Some("hostname")),
            ("ociVersion: unsupported version", Some("ociVersion")),
            ("root.path", Some("root.path")),
            // Sentences that merely begin with a member's name.
            ("process args cannot be empty", None),
            ("root directory is busy", None),
            ("rootfs: missing", None),
            ("mount /proc on /x", None),
            ("container \"c1\" does not exist", None),
            ("", None),
        ] {
            assert_eq!(config_field(text), field, "{text:?}");
        }
    }

    #[test]
    fn the_syscall_is_the_first_word_when_it_names_one() {
        for (what, want) in [
            ("mount /proc on /x", Some("mount")),
            ("open /etc/passwd", Some("open")),
            ("openat2 dev/null in /r", Some("openat2")),
            ("prctl(PR_SET_DUMPABLE, 0)", Some("prctl")),
            ("unshare(CLONE_NEWNS)", Some("unshare")),
            ("pivot_root . .", Some("pivot_root")),
            ("setns net namespace /proc/1/ns/net", Some("setns")),
            (
                "write \"100\" to /sys/fs/cgroup/pids/x/pids.max",
                Some("write"),
            ),
            ("linux.sysctl: write \"1\" to /proc/sys/x", Some("write")),
            ("linux.maskedPaths: mask /proc/kcore", Some("mount")),
            (
                "mounts[7] (/i): mount_setattr(AT_RECURSIVE, MOUNT_ATTR_IDMAP) on /proc",
                Some("mount_setattr"),
            ),
            ("remount /x read-only", Some("mount")),
            ("bind mount /a on /b", Some("mount")),
            ("bind /run/notify.sock", Some("bind")),
            ("create /x/state.json.tmp", Some("open")),
            ("socketpair(AF_UNIX, SOCK_SEQPACKET)", Some("socketpair")),
            ("the container init stopped during create", None),
            ("parse /x/config.json", None),
            ("mounting", None),
        ] {
            assert_eq!(syscall(what), want, "{what:?}");
        }
    }

    #[test]
    fn the_path_is_the_first_absolute_one() {
        for (what, path) in [
            ("mount /proc on /x", Some("/proc")),
            ("mount proc on /x (type proc)", Some("/x")),
            (
                "write \"100\" to /sys/fs/cgroup/a b",
                Some("/sys/fs/cgroup/a"),
            ),
            ("open \"/a b/c\\\"d\"", Some("/a b/c\"d")),
            ("linux.maskedPaths: open /", Some("/")),
            ("stat /x: not a directory", Some("/x")),
            (
                "setns(pidfd of the container init, /proc/1)",
                Some("/proc/1"),
            ),
            ("prctl(PR_SET_DUMPABLE, 0)", None),
            ("write 1 to cgroup.procs", None),
            ("open dev/null in rootfs", None),
            ("path=/run/x", Some("/run/x")),
        ] {
            assert_eq!(first_path(what).as_deref(), path, "{what:?}");
        }
    }
}
