//! Management views: connection entries in `dpctl/dump-conntrack` format
//! and per-protocol counts for `dpctl/ct-stats-show`.

use std::fmt;

use crate::conn::{Conn, ProtoState};
use crate::tcp::TcpState;
use crate::tuple::{Tuple, proto};

/// A snapshot of one connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CtEntry {
    pub orig: Tuple,
    pub reply: Tuple,
    pub zone: u16,
    pub mark: u32,
    pub label: u128,
    /// TCP: the original and reply sides' states.
    pub tcp_state: Option<(TcpState, TcpState)>,
    /// Milliseconds (caller's clock) when the entry expires.
    pub expiration: u64,
}

impl CtEntry {
    pub(crate) fn of(c: &Conn) -> CtEntry {
        let st = c.lock();
        CtEntry {
            orig: c.orig,
            reply: c.reply,
            zone: c.orig.zone,
            mark: st.mark,
            label: st.label(),
            tcp_state: match st.proto {
                ProtoState::Tcp(p) => Some((p[0].state, p[1].state)),
                _ => None,
            },
            expiration: st.expiration,
        }
    }

    /// The TCP state OVS prints without `--more`: the further-along side's,
    /// with FIN_WAIT_2 shown as TIME_WAIT and SYN_RECV as ESTABLISHED.
    pub fn tcp_summary_state(&self) -> Option<TcpState> {
        let (a, b) = self.tcp_state?;
        Some(match a.max(b) {
            TcpState::FinWait2 => TcpState::TimeWait,
            TcpState::SynRecv => TcpState::Established,
            s => s,
        })
    }
}

/// The protocol name OVS prints.
pub fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        proto::ICMP => Some("icmp"),
        proto::ICMPV6 => Some("icmpv6"),
        proto::TCP => Some("tcp"),
        proto::UDP => Some("udp"),
        proto::SCTP => Some("sctp"),
        _ => None,
    }
}

struct TupleText<'a>(&'a Tuple);

impl fmt::Display for TupleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(f, "src={},dst={}", t.src_ip(), t.dst_ip())?;
        if t.is_icmp() {
            write!(f, ",id={}", t.sport)
        } else {
            write!(f, ",sport={},dport={}", t.sport, t.dport)
        }
    }
}

/// One line of `ovs-appctl dpctl/dump-conntrack`.
impl fmt::Display for CtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match proto_name(self.orig.proto) {
            Some(n) => f.write_str(n)?,
            None => write!(f, "{}", self.orig.proto)?,
        }
        write!(
            f,
            ",orig=({}),reply=({})",
            TupleText(&self.orig),
            TupleText(&self.reply)
        )?;
        if self.zone != 0 {
            write!(f, ",zone={}", self.zone)?;
        }
        if self.mark != 0 {
            write!(f, ",mark={}", self.mark)?;
        }
        if self.label != 0 {
            write!(f, ",labels={:#x}", self.label)?;
        }
        if let Some(s) = self.tcp_summary_state() {
            write!(f, ",protoinfo=(state={})", s.name())?;
        }
        Ok(())
    }
}

/// Connection counts for `dpctl/ct-stats-show`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtStats {
    pub total: u64,
    pub tcp: u64,
    pub udp: u64,
    pub sctp: u64,
    pub icmp: u64,
    pub icmpv6: u64,
    pub other: u64,
    /// TCP connections by summary state (index: `TcpState as usize`).
    pub tcp_states: [u64; 11],
}

impl CtStats {
    pub(crate) fn add(&mut self, e: &CtEntry) {
        self.total += 1;
        match e.orig.proto {
            proto::TCP => self.tcp += 1,
            proto::UDP => self.udp += 1,
            proto::SCTP => self.sctp += 1,
            proto::ICMP => self.icmp += 1,
            proto::ICMPV6 => self.icmpv6 += 1,
            _ => self.other += 1,
        }
        if let Some(s) = e.tcp_summary_state() {
            self.tcp_states[s as usize] += 1;
        }
    }
}

/// The `ct-stats-show` text: total, then each protocol with connections,
/// TCP broken down by state.
impl fmt::Display for CtStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Connections Stats:")?;
        writeln!(f, "    Total: {}", self.total)?;
        let rows = [
            ("TCP", self.tcp),
            ("UDP", self.udp),
            ("SCTP", self.sctp),
            ("ICMP", self.icmp),
            ("ICMPV6", self.icmpv6),
            ("OTHER", self.other),
        ];
        for (name, n) in rows {
            if n == 0 {
                continue;
            }
            writeln!(f, "    {name}: {n}")?;
            if name == "TCP" {
                for (i, &k) in self.tcp_states.iter().enumerate() {
                    if k > 0 {
                        let s = ALL_TCP_STATES[i];
                        writeln!(f, "      {}: {k}", s.name())?;
                    }
                }
            }
        }
        Ok(())
    }
}

const ALL_TCP_STATES: [TcpState; 11] = [
    TcpState::Closed,
    TcpState::Listen,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::Established,
    TcpState::CloseWait,
    TcpState::FinWait1,
    TcpState::Closing,
    TcpState::LastAck,
    TcpState::FinWait2,
    TcpState::TimeWait,
];
