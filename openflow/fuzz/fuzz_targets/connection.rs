//! A byte stream fed to a switch-side connection in arbitrary chunks must
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openflow::testing::MemAgent;
use openflow::{ConnConfig, OfConnection};

fuzz_target!(|data: &[u8]| {
    let mut agent = MemAgent::default();
    let mut c = OfConnection::new(ConnConfig::default(), 0);
    // A valid HELLO first so the rest reaches the dispatcher, in the
    // version the first byte picks (1.0, 1.3, 1.4 or 1.5: bundles, the
    // Nicira messages and every version's layouts are reachable).
    let (pick, rest) = data.split_first().unwrap_or((&0, &[]));
    let version = [1u8, 4, 5, 6][usize::from(*pick) % 4];
    c.receive(&[version, 0, 0, 8, 0, 0, 0, 1], &mut agent, 0);
    for (i, chunk) in rest.chunks(7).enumerate() {
        c.receive(chunk, &mut agent, i as u64);
        let _ = c.take_output();
    }
});
