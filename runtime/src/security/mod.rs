//! What the container's process may do: capabilities, rlimits, LSM labels, its user and groups.

pub mod capabilities;
pub mod lsm;
pub mod rlimits;
pub mod user;
