//! The `strata` command as a library: `strata up` ([`up::start`]) and the single-component
//! commands, so that tests can start the whole system in-process exactly as the command does.

pub mod branch;
pub mod checkpoint;
pub mod components;
pub mod shutdown;
pub mod up;
