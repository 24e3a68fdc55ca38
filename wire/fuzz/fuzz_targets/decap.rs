//! Arbitrary frames through tunnel decapsulation (see `wire_fuzz::decap`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wire_fuzz::decap(data));
