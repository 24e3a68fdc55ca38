//! TCP state and sequence/window tracking.
//!
//! Follows the semantics of OVS's userspace tracker, which adopts pf's
//! algorithm (after van Rooij's "Real Stateful TCP Packet Filtering"): each
//! side keeps the highest sequence it sent (`seqlo`), the highest sequence the
//! other side may send (`seqhi`), its largest window and its window scale. A
//! segment outside those bounds is invalid. With sequence checking disabled
//! (OVS's `dpctl/ct-disable-tcp-seq-chk`) only flags and states are checked.

use crate::timeouts::TimeoutAttr;

pub const FIN: u16 = 0x01;
pub const SYN: u16 = 0x02;
pub const RST: u16 = 0x04;
pub const PSH: u16 = 0x08;
pub const ACK: u16 = 0x10;
pub const URG: u16 = 0x20;

/// OVS's TCP state names (`ct_dpif_tcp_state`), in their order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
#[repr(u8)]
pub enum TcpState {
    #[default]
    Closed = 0,
    Listen,
    SynSent,
    SynRecv,
    Established,
    CloseWait,
    FinWait1,
    Closing,
    LastAck,
    FinWait2,
    TimeWait,
}

impl TcpState {
    /// The name OVS prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::TimeWait => "TIME_WAIT",
        }
    }
}

/// The fields of a TCP segment that tracking reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpSeg {
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub payload_len: u32,
    /// The window-scale option: `WS_SEEN | shift`, or 0 when absent.
    pub wscale: u8,
}

/// `TcpSeg::wscale` / `Peer::wscale` flag: the option was present.
pub const WS_SEEN: u8 = 0x80;
/// `Peer::wscale` flag: picked up mid-stream, scale unknown.
pub const WS_UNKNOWN: u8 = 0x40;
const WS_MASK: u8 = 0x0f;
const MAX_WSCALE: u8 = 14;
const MAX_ACK_WINDOW: i64 = 0xffff + 1500;

/// Parses the window-scale option out of TCP options bytes.
pub fn parse_wscale(opts: &[u8]) -> u8 {
    let mut i = 0;
    let mut ws = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                if kind == 3
                    && len == 3
                    && let Some(&shift) = opts.get(i + 2)
                {
                    ws = WS_SEEN | shift.min(MAX_WSCALE);
                }
                i += usize::from(len.max(2));
            }
        }
    }
    ws
}

/// Flag combinations that are never valid.
pub fn invalid_flags(f: u16) -> bool {
    if f & SYN != 0 {
        if f & (RST | FIN) != 0 {
            return true;
        }
    } else if f & (ACK | RST) == 0 {
        return true;
    }
    f & ACK == 0 && f & (FIN | PSH | URG) != 0
}

/// Whether a segment may create a connection (not a SYN+ACK, sane flags).
pub fn valid_new(seg: &TcpSeg) -> bool {
    let syn_ack = seg.flags & (SYN | ACK) == SYN | ACK;
    !invalid_flags(seg.flags) && !syn_ack
}

/// One side of a tracked TCP connection (12 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Peer {
    pub seqlo: u32,
    pub seqhi: u32,
    pub max_win: u16,
    pub wscale: u8,
    pub state: TcpState,
}

/// Outcome of updating a connection with a segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Update {
    /// In window: `+est`.
    Valid,
    /// Accepted but the connection is not yet answered: `+new`.
    ValidNew,
    /// `+inv`.
    Invalid,
    /// A SYN on a closed connection: start a new one.
    Reopen,
}

#[inline]
fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}
#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The peers of a connection created by its first segment.
pub fn new_conn(seg: &TcpSeg) -> [Peer; 2] {
    let mut src = Peer {
        seqlo: seg.seq,
        seqhi: seg.seq.wrapping_add(seg.payload_len).wrapping_add(1),
        ..Peer::default()
    };
    let mut dst = Peer::default();
    if seg.flags & SYN != 0 {
        src.seqhi = src.seqhi.wrapping_add(1);
        src.wscale = seg.wscale;
    } else {
        src.wscale = WS_UNKNOWN;
        dst.wscale = WS_UNKNOWN;
    }
    src.max_win = seg.win.max(1);
    if src.wscale & WS_MASK != 0 {
        let s = src.wscale & WS_MASK;
        src.max_win = u32::from(src.max_win).div_ceil(1 << s) as u16;
    }
    if seg.flags & FIN != 0 {
        src.seqhi = src.seqhi.wrapping_add(1);
    }
    dst.seqhi = 1;
    dst.max_win = 1;
    src.state = TcpState::SynSent;
    dst.state = TcpState::Closed;
    [src, dst]
}

/// The timeout class of a connection in these states.
pub fn timeout_attr(p: &[Peer; 2]) -> TimeoutAttr {
    let (a, b) = (p[0].state, p[1].state);
    if a >= TcpState::FinWait2 && b >= TcpState::FinWait2 {
        TimeoutAttr::TcpClose
    } else if a >= TcpState::Closing && b >= TcpState::Closing {
        TimeoutAttr::TcpTimeWait
    } else if a < TcpState::Established || b < TcpState::Established {
        TimeoutAttr::TcpSynRecv
    } else if a >= TcpState::Closing || b >= TcpState::Closing {
        TimeoutAttr::TcpFinWait
    } else {
        TimeoutAttr::TcpEstablished
    }
}

/// Updates the peers with a segment sent by the original side (`reply`
/// false) or the reply side. `seq_check` false skips window checks.
pub fn update(peers: &mut [Peer; 2], seg: &TcpSeg, reply: bool, seq_check: bool) -> Update {
    let f = seg.flags;
    if invalid_flags(f) {
        return Update::Invalid;
    }
    let [p0, p1] = peers;
    let (src, dst) = if reply { (p1, p0) } else { (p0, p1) };

    if f & (SYN | ACK) == SYN {
        if dst.state >= TcpState::FinWait2 && src.state >= TcpState::FinWait2 {
            src.state = TcpState::Closed;
            dst.state = TcpState::Closed;
            return Update::Reopen;
        }
        if src.state <= TcpState::SynSent {
            // A (re)transmitted SYN of a connection not yet answered.
            src.state = TcpState::SynSent;
            return Update::ValidNew;
        }
    }

    let (mut sws, mut dws) = (0u8, 0u8);
    if f & SYN == 0 {
        if src.wscale & WS_SEEN != 0 && dst.wscale & WS_SEEN != 0 {
            sws = src.wscale & WS_MASK;
            dws = dst.wscale & WS_MASK;
        } else if src.wscale & WS_UNKNOWN != 0 && dst.wscale & WS_UNKNOWN != 0 {
            sws = MAX_WSCALE;
            dws = MAX_WSCALE;
        }
    }

    let mut win = u32::from(seg.win);
    let orig_seq = seg.seq;
    let mut seq = seg.seq;
    let mut ack = seg.ack;
    let mut end = seq.wrapping_add(seg.payload_len);
    if f & SYN != 0 {
        end = end.wrapping_add(1);
    }
    if f & FIN != 0 {
        end = end.wrapping_add(1);
    }
    let mut check_ackskew = true;

    if src.state < TcpState::SynSent {
        // First segment from this side.
        if f & SYN != 0 && dst.wscale & WS_SEEN != 0 {
            src.wscale = seg.wscale;
            if src.wscale & WS_SEEN != 0 {
                sws = src.wscale & WS_MASK;
                win = win.div_ceil(1 << sws);
                dws = dst.wscale & WS_MASK;
            } else {
                dst.max_win = (u32::from(dst.max_win) << (dst.wscale & WS_MASK)).min(0xffff) as u16;
                dst.wscale = 0;
            }
        }
        src.seqlo = seq;
        src.state = TcpState::SynSent;
        let reach = end.wrapping_add((u32::from(dst.max_win) << dws).max(1));
        if src.seqhi == 1 || seq_ge(reach, src.seqhi) {
            src.seqhi = reach;
            check_ackskew = false;
        }
        if win > u32::from(src.max_win) {
            src.max_win = win.min(0xffff) as u16;
        }
    }

    if f & ACK == 0 || (ack == 0 && f & (ACK | RST) == ACK | RST) {
        ack = dst.seqlo;
    }
    if seq == end {
        seq = src.seqlo;
        end = seq;
    }

    let ackskew: i64 = if check_ackskew {
        i64::from(dst.seqlo.wrapping_sub(ack) as i32)
    } else {
        0
    };
    let back = u32::from(dst.max_win) << dws;
    let in_window = seq_ge(src.seqhi, end)
        && seq_ge(seq, src.seqlo.wrapping_sub(back))
        && ackskew >= -MAX_ACK_WINDOW
        && ackskew <= (MAX_ACK_WINDOW << sws)
        && (f & RST == 0
            || orig_seq == src.seqlo
            || orig_seq == src.seqlo.wrapping_add(1)
            || orig_seq.wrapping_add(1) == src.seqlo);

    let loose = (dst.state < TcpState::SynSent
        || dst.state >= TcpState::FinWait2
        || src.state >= TcpState::FinWait2)
        && seq_ge(src.seqhi.wrapping_add(MAX_ACK_WINDOW as u32), end)
        && seq_ge(seq, src.seqlo.wrapping_sub(MAX_ACK_WINDOW as u32));

    if in_window || !seq_check {
        slide(src, dst, win, sws, end, ack);
        if f & SYN != 0 && src.state < TcpState::SynSent {
            src.state = TcpState::SynSent;
        }
        if f & FIN != 0 && src.state < TcpState::Closing {
            src.state = TcpState::Closing;
        }
        if f & ACK != 0 {
            if dst.state == TcpState::SynSent {
                dst.state = TcpState::Established;
            } else if dst.state == TcpState::Closing {
                dst.state = TcpState::FinWait2;
            }
        }
        if f & RST != 0 {
            src.state = TcpState::TimeWait;
            dst.state = TcpState::TimeWait;
        }
    } else if loose {
        slide(src, dst, win, sws, end, ack);
        if f & FIN != 0 && src.state < TcpState::Closing {
            src.state = TcpState::Closing;
        }
        if f & RST != 0 {
            src.state = TcpState::TimeWait;
            dst.state = TcpState::TimeWait;
        }
    } else {
        return Update::Invalid;
    }
    Update::Valid
}

fn slide(src: &mut Peer, dst: &mut Peer, win: u32, sws: u8, end: u32, ack: u32) {
    if u32::from(src.max_win) < win {
        src.max_win = win.min(0xffff) as u16;
    }
    if seq_gt(end, src.seqlo) {
        src.seqlo = end;
    }
    let w = win << sws;
    if seq_ge(ack.wrapping_add(w), dst.seqhi) {
        dst.seqhi = ack.wrapping_add(w.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u16, seq: u32, ack: u32, len: u32) -> TcpSeg {
        TcpSeg {
            flags,
            seq,
            ack,
            win: 65535,
            payload_len: len,
            wscale: 0,
        }
    }

    #[test]
    fn handshake_data_and_close_walk_the_states() {
        let mut p = new_conn(&seg(SYN, 1000, 0, 0));
        assert_eq!(
            update(&mut p, &seg(SYN | ACK, 5000, 1001, 0), true, true),
            Update::Valid
        );
        assert_eq!(p[0].state, TcpState::Established);
        assert_eq!(
            update(&mut p, &seg(ACK, 1001, 5001, 0), false, true),
            Update::Valid
        );
        assert_eq!(p[1].state, TcpState::Established);
        assert_eq!(timeout_attr(&p), TimeoutAttr::TcpEstablished);
        assert_eq!(
            update(&mut p, &seg(ACK | PSH, 1001, 5001, 100), false, true),
            Update::Valid
        );
        assert_eq!(
            update(&mut p, &seg(ACK | FIN, 1101, 5001, 0), false, true),
            Update::Valid
        );
        assert_eq!(
            update(&mut p, &seg(ACK | FIN, 5001, 1102, 0), true, true),
            Update::Valid
        );
        assert_eq!(
            update(&mut p, &seg(ACK, 1102, 5002, 0), false, true),
            Update::Valid
        );
        assert_eq!(timeout_attr(&p), TimeoutAttr::TcpClose);
        assert_eq!(
            update(&mut p, &seg(SYN, 9000, 0, 0), false, true),
            Update::Reopen
        );
    }

    #[test]
    fn segment_far_outside_the_window_is_invalid_unless_seq_check_is_off() {
        let mut p = new_conn(&seg(SYN, 1000, 0, 0));
        update(&mut p, &seg(SYN | ACK, 5000, 1001, 0), true, true);
        update(&mut p, &seg(ACK, 1001, 5001, 0), false, true);
        let far = seg(ACK, 1001u32.wrapping_add(0x4000_0000), 5001, 10);
        let mut q = p;
        assert_eq!(update(&mut p, &far, false, true), Update::Invalid);
        assert_eq!(update(&mut q, &far, false, false), Update::Valid);
    }

    #[test]
    fn retransmitted_syn_before_an_answer_is_new() {
        let mut p = new_conn(&seg(SYN, 1000, 0, 0));
        assert_eq!(
            update(&mut p, &seg(SYN, 1000, 0, 0), false, true),
            Update::ValidNew
        );
    }

    #[test]
    fn bad_flag_combinations_are_refused() {
        assert!(invalid_flags(SYN | RST));
        assert!(invalid_flags(SYN | FIN));
        assert!(invalid_flags(0));
        assert!(invalid_flags(FIN));
        assert!(!invalid_flags(ACK | FIN));
        assert!(!valid_new(&seg(SYN | ACK, 1, 1, 0)));
        assert!(valid_new(&seg(SYN, 1, 0, 0)));
    }

    #[test]
    fn window_scale_option_is_parsed_after_nops() {
        assert_eq!(parse_wscale(&[1, 1, 3, 3, 7]), WS_SEEN | 7);
        assert_eq!(parse_wscale(&[2, 4, 5, 0xb4, 3, 3, 20]), WS_SEEN | 14);
        assert_eq!(parse_wscale(&[0, 3, 3, 7]), 0);
        assert_eq!(parse_wscale(&[3]), 0);
    }
}
