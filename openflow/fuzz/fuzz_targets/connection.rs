//! A byte stream fed to a switch-side connection in arbitrary chunks must
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openflow::testing::MemAgent;
use openflow::{ConnConfig, OfConnection};

fuzz_target!(|data: &[u8]| {
    let mut agent = MemAgent::default();
    let mut c = OfConnection::new(ConnConfig::default(), 0);
    // A valid 1.3 HELLO first so the rest reaches the dispatcher.
    c.receive(&[4, 0, 0, 8, 0, 0, 0, 1], &mut agent, 0);
    for (i, chunk) in data.chunks(7).enumerate() {
        c.receive(chunk, &mut agent, i as u64);
        let _ = c.take_output();
    }
});
