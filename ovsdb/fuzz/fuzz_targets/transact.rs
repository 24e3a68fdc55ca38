//! Transactions built from arbitrary bytes never panic the engine and leave
//! the database consistent (see `ovsdb_fuzz::transact`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ovsdb_fuzz::transact(data));
