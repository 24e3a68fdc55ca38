//! Arbitrary frames: flow key extraction and the rewrite actions never
//! panic, and rewrites keep valid checksums valid (see `flows_fuzz::packet`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flows_fuzz::packet(data));
