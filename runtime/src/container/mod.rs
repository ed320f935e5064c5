//! Lifecycle operations on containers, one file each: create, start, state/list, kill,
//! delete, run, exec (and the foreground wait `run` and `exec` share).

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod foreground;
pub mod kill;
pub mod pause;
pub mod ps;
pub mod query;
pub mod restore;
pub mod run;
pub mod start;
pub mod update;
