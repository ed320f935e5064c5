//! The `linux.seccomp` object of config.json, read field by field so that every error
//! names the field and the value. Unknown properties are ignored, as the spec requires.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::bail;
use crate::error::Result;

/// What the kernel does with a syscall (`SCMP_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Allow,
    Log,
    Notify,
}

impl Action {
    /// The filter's return value (`SECCOMP_RET_*` with its data).
    pub fn ret(self) -> u32 {
        match self {
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | u32::from(e),
            Action::Trace(v) => libc::SECCOMP_RET_TRACE | u32::from(v),
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Notify => libc::SECCOMP_RET_USER_NOTIF,
        }
    }
}

/// `SCMP_CMP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == valueTwo`.
    MaskedEq,
}

/// One entry of `syscalls[].args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub value: u64,
    pub value_two: u64,
    pub op: Op,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// "linux.seccomp.syscalls[3]", for messages.
    pub field: String,
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<Cond>,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub default: Action,
    pub architectures: Vec<String>,
    pub flags: Vec<String>,
    pub listener_path: Option<PathBuf>,
    pub listener_metadata: Option<String>,
    pub rules: Vec<Rule>,
}

const F: &str = "linux.seccomp";

pub fn parse(v: &Value) -> Result<Profile> {
    let o = object(v, F)?;
    let default_name = string(o, "defaultAction", F)?
        .ok_or_else(|| crate::error::Error::msg(format!("{F}.defaultAction: required")))?;
    let default = action(
        default_name,
        uint(o, "defaultErrnoRet", F)?,
        &format!("{F}.defaultAction"),
        &format!("{F}.defaultErrnoRet"),
    )?;
    let architectures = strings(o, "architectures", F)?;
    let flags = strings(o, "flags", F)?;
    let listener_path = string(o, "listenerPath", F)?
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let listener_metadata = string(o, "listenerMetadata", F)?
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let mut rules = Vec::new();
    if let Some(list) = o.get("syscalls").filter(|s| !s.is_null()) {
        let Some(list) = list.as_array() else {
            bail!("{F}.syscalls: expected an array, got {list}");
        };
        for (i, r) in list.iter().enumerate() {
            rules.push(rule(r, &format!("{F}.syscalls[{i}]"))?);
        }
    }
    Ok(Profile {
        default,
        architectures,
        flags,
        listener_path,
        listener_metadata,
        rules,
    })
}

fn rule(v: &Value, field: &str) -> Result<Rule> {
    let o = object(v, field)?;
    if o.get("names").is_none_or(Value::is_null) {
        bail!("{field}.names: required");
    }
    let names = strings(o, "names", field)?;
    if names.is_empty() {
        bail!("{field}.names: must name at least one syscall");
    }
    if names.iter().any(String::is_empty) {
        bail!("{field}.names: \"\" is not a syscall name");
    }
    let action_name = string(o, "action", field)?
        .ok_or_else(|| crate::error::Error::msg(format!("{field}.action: required")))?;
    let action = action(
        action_name,
        uint(o, "errnoRet", field)?,
        &format!("{field}.action"),
        &format!("{field}.errnoRet"),
    )?;
    let mut args = Vec::new();
    if let Some(list) = o.get("args").filter(|a| !a.is_null()) {
        let Some(list) = list.as_array() else {
            bail!("{field}.args: expected an array, got {list}");
        };
        for (i, a) in list.iter().enumerate() {
            args.push(cond(a, &format!("{field}.args[{i}]"))?);
        }
    }
    Ok(Rule {
        field: field.to_string(),
        names,
        action,
        args,
    })
}

fn cond(v: &Value, field: &str) -> Result<Cond> {
    let o = object(v, field)?;
    let index = uint(o, "index", field)?
        .ok_or_else(|| crate::error::Error::msg(format!("{field}.index: required")))?;
    if index > 5 {
        bail!("{field}.index: {index} is out of range (a syscall has arguments 0 to 5)");
    }
    let value = uint(o, "value", field)?
        .ok_or_else(|| crate::error::Error::msg(format!("{field}.value: required")))?;
    let value_two = uint(o, "valueTwo", field)?.unwrap_or(0);
    let op = match string(o, "op", field)? {
        Some("SCMP_CMP_NE") => Op::Ne,
        Some("SCMP_CMP_LT") => Op::Lt,
        Some("SCMP_CMP_LE") => Op::Le,
        Some("SCMP_CMP_EQ") => Op::Eq,
        Some("SCMP_CMP_GE") => Op::Ge,
        Some("SCMP_CMP_GT") => Op::Gt,
        Some("SCMP_CMP_MASKED_EQ") => Op::MaskedEq,
        Some(other) => bail!("{field}.op: unsupported operator {other:?}"),
        None => bail!("{field}.op: required"),
    };
    Ok(Cond {
        index: index as u8,
        value,
        value_two,
        op,
    })
}

/// An action name with its errnoRet. errnoRet defaults to EPERM for ERRNO and TRACE and
/// must not be given for the other actions (runtime-spec: "the runtime MUST print an
/// error and fail").
/// The action an `SCMP_ACT_*` name stands for (ERRNO and TRACE with data EPERM).
pub fn action_by_name(name: &str) -> Option<Action> {
    action(name, None, "", "").ok()
}

fn action(name: &str, errno_ret: Option<u64>, field: &str, errno_field: &str) -> Result<Action> {
    let data = || -> Result<u16> {
        match errno_ret {
            None => Ok(libc::EPERM as u16),
            Some(n) => u16::try_from(n).map_err(|_| {
                crate::error::Error::msg(format!(
                    "{errno_field}: {n} is out of range (the kernel takes at most 65535)"
                ))
            }),
        }
    };
    let a = match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_ERRNO" => Action::Errno(data()?),
        "SCMP_ACT_TRACE" => Action::Trace(data()?),
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => Action::Notify,
        other => bail!("{field}: unsupported action {other:?}"),
    };
    if let (Some(n), false) = (errno_ret, matches!(a, Action::Errno(_) | Action::Trace(_))) {
        bail!("{errno_field}: {n} is set, but {name} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)");
    }
    Ok(a)
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>> {
    match v.as_object() {
        Some(o) => Ok(o),
        None => bail!("{field}: expected an object, got {v}"),
    }
}

fn string<'a>(o: &'a Map<String, Value>, key: &str, field: &str) -> Result<Option<&'a str>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => bail!("{field}.{key}: expected a string, got {other}"),
    }
}

fn uint(o: &Map<String, Value>, key: &str, field: &str) -> Result<Option<u64>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) => Ok(Some(n)),
            None => bail!("{field}.{key}: expected an unsigned integer, got {v}"),
        },
    }
}

fn strings(o: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<String>> {
    let list = match o.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => bail!("{field}.{key}: expected an array of strings, got {other}"),
    };
    list.iter()
        .map(|s| match s {
            Value::String(s) => Ok(s.clone()),
            other => bail!("{field}.{key}: expected a string, got {other}"),
        })
        .collect()
}
