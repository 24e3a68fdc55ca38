//! Shared code of the ferrovs CLIs.

pub mod vsctl;
pub mod ofctl;
