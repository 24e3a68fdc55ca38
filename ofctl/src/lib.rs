//! Shared code of the ferrovs CLIs.

pub mod ofctl;
pub mod vsctl;
