//! An in-memory OpenFlow switch on 127.0.0.1:PORT for poking at it with
//! `ofctl` or `ovs-ofctl`: `cargo run -p openflow --example mem_switch -- 16653`.

use std::sync::{Arc, Mutex};

use openflow::testing::MemAgent;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    let p = openflow::testing::serve_tcp_on(agent, port).expect("serve");
    println!("serving on 127.0.0.1:{p}");
    loop {
        std::thread::park();
    }
}
