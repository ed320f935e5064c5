//! Lifecycle operations on containers, one file each: create, start, state/list, kill,
//! delete, run.

pub mod create;
pub mod delete;
pub mod kill;
pub mod query;
pub mod run;
pub mod start;
