//! What the container's process may do: capabilities, rlimits, seccomp, LSM labels, its user and
//! groups.

pub mod capabilities;
pub mod lsm;
pub mod rlimits;
pub mod seccomp;
pub mod user;
