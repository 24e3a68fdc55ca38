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
    /// The connection's helper (`ct(alg=...)`), if it is a control
    /// connection.
    pub helper: Option<crate::Alg>,
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
            helper: crate::Alg::from_code(c.alg),
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
        proto::UDPLITE => Some("udplite"),
        proto::DCCP => Some("dccp"),
        proto::IGMP => Some("igmp"),
        _ => None,
    }
}

struct TupleText<'a>(&'a Tuple);

impl fmt::Display for TupleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(f, "src={},dst={}", t.src_ip(), t.dst_ip())?;
        if t.is_icmp() {
            write!(
                f,
                ",id={},type={},code={}",
                t.sport,
                t.dport >> 8,
                t.dport & 0xff
            )
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
        if let Some(h) = self.helper {
            write!(f, ",helper={}", h.name())?;
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
    pub udplite: u64,
    pub sctp: u64,
    pub icmp: u64,
    /// Counted but, as in OVS, not printed.
    pub icmpv6: u64,
    pub dccp: u64,
    pub igmp: u64,
    pub other: u64,
    /// TCP connections by summary state (index: `TcpState as usize`), for
    /// the verbose form.
    pub tcp_states: [u64; 11],
}

impl CtStats {
    pub(crate) fn add(&mut self, e: &CtEntry) {
        self.total += 1;
        let n = match e.orig.proto {
            proto::TCP => &mut self.tcp,
            proto::UDP => &mut self.udp,
            proto::UDPLITE => &mut self.udplite,
            proto::SCTP => &mut self.sctp,
            proto::ICMP => &mut self.icmp,
            proto::ICMPV6 => &mut self.icmpv6,
            proto::DCCP => &mut self.dccp,
            proto::IGMP => &mut self.igmp,
            _ => &mut self.other,
        };
        *n += 1;
        if let Some(s) = e.tcp_summary_state() {
            self.tcp_states[s as usize] += 1;
        }
    }
}

/// The `ct-stats-show` text (without `verbose`): the total, then each
/// protocol that has connections.
impl fmt::Display for CtStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Connections Stats:")?;
        writeln!(f, "    Total: {}", self.total)?;
        let rows = [
            ("TCP", self.tcp),
            ("UDP", self.udp),
            ("UDPLITE", self.udplite),
            ("SCTP", self.sctp),
            ("ICMP", self.icmp),
            ("DCCP", self.dccp),
            ("IGMP", self.igmp),
            ("Other", self.other),
        ];
        for (name, n) in rows {
            if n != 0 {
                writeln!(f, "  {name}: {n}")?;
            }
        }
        Ok(())
    }
}
