//! Ports with no device: tunnel Interfaces (`vxlan`, `geneve`, `gre`) and
//! patch ports. Both only keep counters and are always up.
//!
//! With native tunnelling, received tunnel packets arrive on the underlay
//! bridge's ports and are popped there (`DpAction::TnlPop`, re-entering on
//! the tunnel port's number), and translation turns output to a tunnel port
//! into `DpAction::TnlPush` out of the underlay. A patch port has no
//! datapath port at all: an output to it continues in the peer bridge's
//! pipeline, and the switch credits its counters. A frame handed to a
//! deviceless port's own transmit queue (an action list the slow path did
//! not rewrite) is counted as a transmit drop.

use std::sync::Arc;

use crate::packet::Packet;
use crate::port::{Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};

/// What a deviceless port stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deviceless {
    Tunnel,
    Patch,
}

impl Deviceless {
    fn what(self) -> &'static str {
        match self {
            Deviceless::Tunnel => "tunnel",
            Deviceless::Patch => "patch",
        }
    }

    /// The MTU OVS reports for such a port.
    fn mtu(self) -> u32 {
        match self {
            Deviceless::Tunnel => 65000,
            Deviceless::Patch => 65535,
        }
    }
}

/// A port with no device: no receive queues; transmit drops and counts.
pub struct DevicelessPort {
    name: String,
    role: Deviceless,
    stats: Arc<PortStats>,
}

impl DevicelessPort {
    pub fn new(name: &str, role: Deviceless) -> Arc<DevicelessPort> {
        Arc::new(DevicelessPort {
            name: name.to_string(),
            role,
            stats: Arc::new(PortStats::default()),
        })
    }
}

impl Port for DevicelessPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.name.clone(),
            kind: PortKind::Tunnel,
            mac: None,
            mtu: self.role.mtu(),
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
            msg: format!("a {} port has no receive queue {q}", self.role.what()),
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
    fn a_deviceless_port_has_no_rx_queue_and_counts_what_it_cannot_send() {
        for (role, mtu) in [(Deviceless::Tunnel, 65000), (Deviceless::Patch, 65535)] {
            let p = DevicelessPort::new("vx0", role);
            assert_eq!(p.info().kind, PortKind::Tunnel);
            assert_eq!((p.info().n_rxq, p.info().mtu), (0, mtu));
            assert!(p.link_up());
            assert!(p.open_rxq(0).is_err());
            let mut tx = p.open_txq(0).unwrap();
            let mut pkt = Packet::from_bytes(&[0u8; 60]);
            tx.send(&mut pkt).unwrap();
            tx.send(&mut pkt).unwrap();
            tx.flush().unwrap();
            assert_eq!(p.stats().tx_dropped.load(Ordering::Relaxed), 2);
        }
    }
}
