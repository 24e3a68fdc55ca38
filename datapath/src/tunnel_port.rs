//! The datapath side of a tunnel Interface (`vxlan`, `geneve`, `gre`).
//!
//! A tunnel port has no device: with native tunnelling, received tunnel
//! packets arrive on the underlay bridge's ports and are popped there
//! (`DpAction::TnlPop`, re-entering on this port's number), and translation
//! turns output to a tunnel port into `DpAction::TnlPush` out of the
//! underlay. A frame given to the port itself (an action list the slow
//! path did not rewrite) is counted as a transmit drop.

use std::sync::Arc;

use crate::packet::Packet;
use crate::port::{Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};

/// A tunnel port: no receive queues; transmit drops and counts.
pub struct TunnelPort {
    name: String,
    stats: Arc<PortStats>,
}

impl TunnelPort {
    pub fn new(name: &str) -> Arc<TunnelPort> {
        Arc::new(TunnelPort {
            name: name.to_string(),
            stats: Arc::new(PortStats::default()),
        })
    }
}

impl Port for TunnelPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.name.clone(),
            kind: PortKind::Tunnel,
            mac: None,
            mtu: 65000,
            n_rxq: 0,
        }
    }

    fn stats(&self) -> Arc<PortStats> {
        self.stats.clone()
    }

    fn link_up(&self) -> bool {
        true
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError> {
        Err(PortError::Invalid {
            port: self.name.clone(),
            msg: format!("a tunnel port has no receive queue {q}"),
        })
    }

    fn open_txq(&self, _pmd: usize) -> Result<Box<dyn TxQueue>, PortError> {
        Ok(Box::new(DropTx {
            stats: self.stats.clone(),
            dropped: 0,
        }))
    }
}

struct DropTx {
    stats: Arc<PortStats>,
    dropped: u64,
}

impl TxQueue for DropTx {
    fn send(&mut self, _pkt: &mut Packet) -> Result<(), PortError> {
        self.dropped += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PortError> {
        PortStats::add(&self.stats.tx_dropped, self.dropped);
        self.dropped = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn tunnel_port_has_no_rx_queue_and_counts_what_it_cannot_send() {
        let p = TunnelPort::new("vx0");
        assert_eq!(p.info().kind, PortKind::Tunnel);
        assert_eq!(p.info().n_rxq, 0);
        assert!(p.open_rxq(0).is_err());
        let mut tx = p.open_txq(0).unwrap();
        let mut pkt = Packet::from_bytes(&[0u8; 60]);
        tx.send(&mut pkt).unwrap();
        tx.send(&mut pkt).unwrap();
        tx.flush().unwrap();
        assert_eq!(p.stats().tx_dropped.load(Ordering::Relaxed), 2);
    }
}
