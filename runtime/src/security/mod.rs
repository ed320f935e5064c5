//! What the container's process may do: capabilities, rlimits, its user and groups.

pub mod capabilities;
pub mod rlimits;
pub mod user;
