//! One tracked connection and its per-protocol state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::tcp::{self, Peer, TcpSeg, Update};
use crate::timeouts::TimeoutAttr;
use crate::tuple::Tuple;

/// Per-protocol state of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ProtoState {
    /// TCP: the original (0) and reply (1) sides.
    Tcp([Peer; 2]),
    /// ICMP queries: whether a reply was seen.
    Icmp { replied: bool },
    /// UDP, SCTP and other IP protocols: OVS's first/multiple/bidir states.
    Other(OtherState),
}

/// OVS's states for UDP and other connectionless protocols.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OtherState {
    First,
    Multiple,
    Bidir,
}

impl ProtoState {
    /// The state a connection starts in, from its first packet.
    pub(crate) fn new(t: &Tuple, seg: Option<&TcpSeg>) -> ProtoState {
        match seg {
            Some(s) => ProtoState::Tcp(tcp::new_conn(s)),
            None if t.is_icmp() => ProtoState::Icmp { replied: false },
            None => ProtoState::Other(OtherState::First),
        }
    }

    /// The timeout class the connection is in.
    pub(crate) fn timeout_attr(&self) -> TimeoutAttr {
        match self {
            ProtoState::Tcp(p) => {
                if p[1].state == tcp::TcpState::Closed && p[0].state <= tcp::TcpState::SynSent {
                    TimeoutAttr::TcpSynSent
                } else {
                    tcp::timeout_attr(p)
                }
            }
            ProtoState::Icmp { replied: false } => TimeoutAttr::IcmpFirst,
            ProtoState::Icmp { replied: true } => TimeoutAttr::IcmpReply,
            ProtoState::Other(OtherState::First) => TimeoutAttr::UdpFirst,
            ProtoState::Other(OtherState::Multiple) => TimeoutAttr::UdpSingle,
            ProtoState::Other(OtherState::Bidir) => TimeoutAttr::UdpMultiple,
        }
    }

    /// Updates the state with a packet in direction `reply`.
    pub(crate) fn update(&mut self, seg: Option<&TcpSeg>, reply: bool, seq_check: bool) -> Update {
        match (self, seg) {
            (ProtoState::Tcp(p), Some(s)) => tcp::update(p, s, reply, seq_check),
            (ProtoState::Tcp(_), None) => Update::Invalid,
            (ProtoState::Icmp { replied }, _) => {
                if reply {
                    *replied = true;
                }
                Update::Valid
            }
            (ProtoState::Other(st), _) => {
                if reply {
                    *st = OtherState::Bidir;
                    Update::Valid
                } else if *st == OtherState::First {
                    // As OVS: only the second packet of an unanswered
                    // connection is `+new`; later ones are `+est`.
                    *st = OtherState::Multiple;
                    Update::ValidNew
                } else {
                    Update::Valid
                }
            }
        }
    }
}

/// The mutable part of a connection, behind its lock.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// When the connection expires, in the caller's milliseconds.
    pub expiration: u64,
    /// `ct_label`, as two words to keep the entry 8-byte aligned.
    pub label: [u64; 2],
    pub mark: u32,
    pub proto: ProtoState,
    /// Removed from the table (a concurrent holder must ignore it).
    pub dead: bool,
}

impl ConnState {
    pub(crate) fn label(&self) -> u128 {
        u128::from(self.label[0]) << 64 | u128::from(self.label[1])
    }
    pub(crate) fn set_label(&mut self, v: u128) {
        self.label = [(v >> 64) as u64, v as u64];
    }
}

/// A tracked connection: its two immutable tuples, NAT flags and state.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Original direction, as the first packet had it (before NAT).
    pub orig: Tuple,
    /// Reply direction, as replies arrive (after NAT of the original).
    pub reply: Tuple,
    /// `nat::NAT_SRC` / `nat::NAT_DST`.
    pub nat: u8,
    /// Timeout policy id.
    pub tp: u8,
    /// Helper (`alg::Alg::code`), 0 for none: a control connection.
    pub alg: u8,
    /// What only ALG connections carry (boxed: other connections pay one
    /// pointer).
    pub ext: Option<Box<AlgExt>>,
    pub st: Mutex<ConnState>,
}

/// The ALG part of a connection.
#[derive(Debug, Default)]
pub(crate) struct AlgExt {
    /// For a connection an ALG expected: its control connection's original
    /// tuple (the connection is `+rel`).
    pub parent: Option<Tuple>,
    /// For an FTP control connection under NAT: how many bytes the
    /// payload rewrites added so far to each direction (original, reply);
    /// that direction's sequence numbers and the other's acknowledgements
    /// are shifted by it.
    pub skew: [AtomicI32; 2],
}

impl AlgExt {
    pub(crate) fn skew(&self, reply: bool) -> i32 {
        self.skew[usize::from(reply)].load(Ordering::Relaxed)
    }

    /// Adds `delta` to direction `reply`'s skew; returns the skew before.
    pub(crate) fn add_skew(&self, reply: bool, delta: i32) -> i32 {
        self.skew[usize::from(reply)].fetch_add(delta, Ordering::Relaxed)
    }
}

impl Conn {
    /// The control connection's original tuple, for an expected connection.
    pub(crate) fn parent(&self) -> Option<&Tuple> {
        self.ext.as_ref().and_then(|e| e.parent.as_ref())
    }

    /// The state, ignoring lock poisoning (a panic elsewhere leaves the
    /// plain-data state usable).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_second_packet_is_new_then_established_as_in_ovs() {
        let t = Tuple {
            proto: 17,
            ..Tuple::default()
        };
        let mut s = ProtoState::new(&t, None);
        assert_eq!(s.timeout_attr(), TimeoutAttr::UdpFirst);
        assert_eq!(s.update(None, false, true), Update::ValidNew);
        assert_eq!(s.timeout_attr(), TimeoutAttr::UdpSingle);
        let mut unanswered = s;
        assert_eq!(unanswered.update(None, false, true), Update::Valid);
        assert_eq!(s.update(None, true, true), Update::Valid);
        assert_eq!(s.update(None, false, true), Update::Valid);
        assert_eq!(s.timeout_attr(), TimeoutAttr::UdpMultiple);
    }
}
