//! Shared test helpers.

pub use openflow::testing::MemAgent;
