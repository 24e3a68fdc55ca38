//! A byte stream cut into arbitrary chunks decodes to the same JSON-RPC
//! values as the stream fed at once (see `ovsdb_fuzz::framer`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ovsdb_fuzz::framer(data));
