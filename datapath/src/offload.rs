//! Software completion of offloads a transmit queue cannot carry: filling
//! in a partial (NEEDS_CSUM) checksum and segmenting TCP super-frames
//! (virtio `GSO_TCPV4`/`GSO_TCPV6`) into MSS-sized frames.
//!
//! Segments are written into a scratch buffer owned by the transmit queue
//! and reused for every packet, so steady-state segmentation allocates
//! nothing.

use crate::packet::{Offload, Packet};
use crate::port::OffloadCaps;

/// Why an offload could not be completed (the frame is dropped and counted
/// as a transmit error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error(transparent)]
    CsumOutOfRange(#[from] wire::checksum::CsumOutOfRange),
    #[error("cannot segment frame: {0}")]
    Unsegmentable(&'static str),
    #[error("unsupported GSO type {0:#x}")]
    UnsupportedGso(u8),
}

use wire::checksum::{accumulate, finish, fold};

/// Completes a NEEDS_CSUM checksum in place (see
/// [`wire::checksum::complete_partial`] for the zero-result rule).
pub fn complete_csum(
    frame: &mut [u8],
    csum_start: u16,
    csum_offset: u16,
) -> Result<(), OffloadError> {
    Ok(wire::checksum::complete_partial(
        frame,
        csum_start,
        csum_offset,
    )?)
}

/// Completes the packet's pending (NEEDS_CSUM) checksum and clears the
/// flag, for a receiver that cannot take a partial checksum.
pub fn complete_packet_csum(pkt: &mut Packet) -> Result<(), OffloadError> {
    let o = pkt.offload;
    complete_csum(pkt.data_mut(), o.csum_start, o.csum_offset)?;
    pkt.offload.flags &= !Offload::F_NEEDS_CSUM;
    Ok(())
}

const ETH_HLEN: usize = 14;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Offsets of the headers of a TCP or UDP super-frame.
#[derive(Clone, Copy, Debug)]
struct L4Layout {
    l3: usize,
    l4: usize,
    /// End of the TCP header (start of the payload).
    hdrs: usize,
    v4: bool,
}

fn tcp_layout(frame: &[u8], o: &Offload, v4: bool) -> Result<L4Layout, OffloadError> {
    let short = OffloadError::Unsegmentable("truncated headers");
    let mut l3 = ETH_HLEN;
    let mut ethertype = u16::from_be_bytes([
        *frame.get(12).ok_or(short.clone())?,
        *frame.get(13).ok_or(short.clone())?,
    ]);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        let t = frame.get(l3 + 2..l3 + 4).ok_or(short.clone())?;
        ethertype = u16::from_be_bytes([t[0], t[1]]);
        l3 += 4;
    }
    let l4 = if v4 {
        if ethertype != 0x0800 {
            return Err(OffloadError::Unsegmentable("TCPv4 GSO on a non-IPv4 frame"));
        }
        let vihl = *frame.get(l3).ok_or(short.clone())?;
        let proto = *frame.get(l3 + 9).ok_or(short.clone())?;
        if vihl >> 4 != 4 || proto != 6 {
            return Err(OffloadError::Unsegmentable(
                "TCPv4 GSO without an IPv4/TCP header",
            ));
        }
        l3 + usize::from(vihl & 0x0f) * 4
    } else {
        if ethertype != 0x86dd {
            return Err(OffloadError::Unsegmentable("TCPv6 GSO on a non-IPv6 frame"));
        }
        let nh = *frame.get(l3 + 6).ok_or(short.clone())?;
        if nh == 6 {
            l3 + 40
        } else if o.flags & Offload::F_NEEDS_CSUM != 0 && usize::from(o.csum_start) > l3 + 40 {
            // Extension headers: trust the checksum start for the TCP header.
            usize::from(o.csum_start)
        } else {
            return Err(OffloadError::Unsegmentable(
                "TCPv6 GSO without a TCP header",
            ));
        }
    };
    let doff = *frame.get(l4 + 12).ok_or(short.clone())?;
    let thl = usize::from(doff >> 4) * 4;
    if thl < 20 || l4 + thl > frame.len() {
        return Err(short);
    }
    Ok(L4Layout {
        l3,
        l4,
        hdrs: l4 + thl,
        v4,
    })
}

/// Offsets of the headers of a UDP (GSO_UDP_L4) super-frame: the IP
/// version comes from the ethertype.
fn udp_layout(frame: &[u8], o: &Offload) -> Result<L4Layout, OffloadError> {
    let short = OffloadError::Unsegmentable("truncated headers");
    let mut l3 = ETH_HLEN;
    let be16 = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut ethertype = be16(12).ok_or(short.clone())?;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = be16(l3 + 2).ok_or(short.clone())?;
        l3 += 4;
    }
    let (v4, l4) = match ethertype {
        0x0800 => {
            let vihl = *frame.get(l3).ok_or(short.clone())?;
            if vihl >> 4 != 4 || *frame.get(l3 + 9).ok_or(short.clone())? != 17 {
                return Err(OffloadError::Unsegmentable(
                    "UDP GSO without an IPv4/UDP header",
                ));
            }
            (true, l3 + usize::from(vihl & 0x0f) * 4)
        }
        0x86dd => {
            let nh = *frame.get(l3 + 6).ok_or(short.clone())?;
            if nh == 17 {
                (false, l3 + 40)
            } else if o.flags & Offload::F_NEEDS_CSUM != 0 && usize::from(o.csum_start) > l3 + 40 {
                (false, usize::from(o.csum_start))
            } else {
                return Err(OffloadError::Unsegmentable("UDP GSO without a UDP header"));
            }
        }
        _ => return Err(OffloadError::Unsegmentable("UDP GSO on a non-IP frame")),
    };
    if l4 + 8 > frame.len() {
        return Err(short);
    }
    Ok(L4Layout {
        l3,
        l4,
        hdrs: l4 + 8,
        v4,
    })
}

/// Fills the L4 checksum (at `csum_at` within the L4 header, protocol
/// `proto`) of the segment `seg` from scratch, pseudo-header included.
fn l4_checksum_from_scratch(seg: &mut [u8], lay: &L4Layout, proto: u8, csum_at: usize) {
    let l4_len = seg.len() - lay.l4;
    seg[lay.l4 + csum_at] = 0;
    seg[lay.l4 + csum_at + 1] = 0;
    let mut sum = if lay.v4 {
        accumulate(0, &seg[lay.l3 + 12..lay.l3 + 20])
    } else {
        accumulate(0, &seg[lay.l3 + 8..lay.l3 + 40])
    };
    sum += u64::from(proto) + l4_len as u64;
    let csum = finish(accumulate(sum, &seg[lay.l4..]), proto == 17);
    seg[lay.l4 + csum_at..lay.l4 + csum_at + 2].copy_from_slice(&csum.to_be_bytes());
}

/// Fixes the IP header of a segment whose L3 packet is `l3_len` bytes.
fn fix_ip_header(seg: &mut [u8], lay: &L4Layout, l3_len: usize, id: u16) {
    if lay.v4 {
        seg[lay.l3 + 2..lay.l3 + 4].copy_from_slice(&(l3_len as u16).to_be_bytes());
        seg[lay.l3 + 4..lay.l3 + 6].copy_from_slice(&id.to_be_bytes());
        seg[lay.l3 + 10] = 0;
        seg[lay.l3 + 11] = 0;
        let c = !fold(accumulate(0, &seg[lay.l3..lay.l4]));
        seg[lay.l3 + 10..lay.l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        let plen = (l3_len - 40) as u16;
        seg[lay.l3 + 4..lay.l3 + 6].copy_from_slice(&plen.to_be_bytes());
    }
}

/// Reusable output area for segmentation.
#[derive(Default)]
pub struct Segmenter {
    buf: Vec<u8>,
    /// (start, len) of each segment in `buf`.
    segs: Vec<(usize, usize)>,
}

impl Segmenter {
    /// A segmenter with room for a 64 KiB super-frame cut into small segments.
    pub fn new() -> Segmenter {
        Segmenter {
            buf: Vec::with_capacity(96 * 1024),
            segs: Vec::with_capacity(64),
        }
    }

    /// Cuts the TCP super-frame `frame` into segments of at most
    /// `o.gso_size` payload bytes, with complete IP and TCP checksums.
    pub fn segment_tcp(&mut self, frame: &[u8], o: &Offload) -> Result<usize, OffloadError> {
        self.buf.clear();
        self.segs.clear();
        let v4 = match o.gso_type & !Offload::GSO_ECN {
            Offload::GSO_TCPV4 => true,
            Offload::GSO_TCPV6 => false,
            other => return Err(OffloadError::UnsupportedGso(other)),
        };
        let mss = usize::from(o.gso_size);
        if mss == 0 {
            return Err(OffloadError::Unsegmentable("gso_size is zero"));
        }
        let lay = tcp_layout(frame, o, v4)?;
        let hdr = &frame[..lay.hdrs];
        let payload = &frame[lay.hdrs..];
        let seq0 = u32::from_be_bytes([
            frame[lay.l4 + 4],
            frame[lay.l4 + 5],
            frame[lay.l4 + 6],
            frame[lay.l4 + 7],
        ]);
        let id0 = if v4 {
            u16::from_be_bytes([frame[lay.l3 + 4], frame[lay.l3 + 5]])
        } else {
            0
        };
        let n = payload.len().div_ceil(mss).max(1);
        for i in 0..n {
            let off = i * mss;
            let chunk = &payload[off.min(payload.len())..(off + mss).min(payload.len())];
            let start = self.buf.len();
            self.buf.extend_from_slice(hdr);
            self.buf.extend_from_slice(chunk);
            let seg = &mut self.buf[start..];
            let l3_len = seg.len() - lay.l3;
            fix_ip_header(seg, &lay, l3_len, id0.wrapping_add(i as u16));
            let seq = seq0.wrapping_add(off as u32);
            seg[lay.l4 + 4..lay.l4 + 8].copy_from_slice(&seq.to_be_bytes());
            if i + 1 < n {
                seg[lay.l4 + 13] &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                seg[lay.l4 + 13] &= !TCP_CWR;
            }
            l4_checksum_from_scratch(seg, &lay, 6, 16);
            self.segs.push((start, seg.len()));
        }
        Ok(n)
    }

    /// Cuts the UDP super-frame `frame` (`GSO_UDP_L4`) into datagrams of
    /// at most `o.gso_size` payload bytes, each with its own UDP header and
    /// complete IP and UDP checksums.
    pub fn segment_udp(&mut self, frame: &[u8], o: &Offload) -> Result<usize, OffloadError> {
        self.buf.clear();
        self.segs.clear();
        let mss = usize::from(o.gso_size);
        if mss == 0 {
            return Err(OffloadError::Unsegmentable("gso_size is zero"));
        }
        let lay = udp_layout(frame, o)?;
        let hdr = &frame[..lay.hdrs];
        let payload = &frame[lay.hdrs..];
        let id0 = if lay.v4 {
            u16::from_be_bytes([frame[lay.l3 + 4], frame[lay.l3 + 5]])
        } else {
            0
        };
        let n = payload.len().div_ceil(mss).max(1);
        for (i, chunk) in payload
            .chunks(mss)
            .chain(payload.is_empty().then_some(&payload[..0]))
            .enumerate()
        {
            let start = self.buf.len();
            self.buf.extend_from_slice(hdr);
            self.buf.extend_from_slice(chunk);
            let seg = &mut self.buf[start..];
            let l3_len = seg.len() - lay.l3;
            fix_ip_header(seg, &lay, l3_len, id0.wrapping_add(i as u16));
            let udp_len = (8 + chunk.len()) as u16;
            seg[lay.l4 + 4..lay.l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
            l4_checksum_from_scratch(seg, &lay, 17, 6);
            self.segs.push((start, seg.len()));
        }
        Ok(n)
    }

    /// The segments produced by the last [`Segmenter::segment_tcp`].
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.segs.iter().map(|&(s, l)| &self.buf[s..s + l])
    }
}

/// What [`TxOffload::prepare`] left to transmit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prepared {
    /// Send the packet itself, with its (possibly updated) `offload`.
    Single,
    /// Send the plain frames of [`TxOffload::segments`] instead.
    Segments(usize),
}

/// Per-transmit-queue offload completion.
pub struct TxOffload {
    caps: OffloadCaps,
    seg: Segmenter,
}

impl TxOffload {
    pub fn new(caps: OffloadCaps) -> TxOffload {
        TxOffload {
            caps,
            seg: Segmenter::new(),
        }
    }

    /// The queue's capabilities.
    pub fn caps(&self) -> OffloadCaps {
        self.caps
    }

    /// Completes in software whatever `pkt.offload` asks for and the queue
    /// cannot carry. On [`Prepared::Single`] the packet leaves with its
    /// `offload` (now within the caps); on [`Prepared::Segments`] the
    /// segments leave instead, without offload metadata.
    pub fn prepare(&mut self, pkt: &mut Packet) -> Result<Prepared, OffloadError> {
        let o = pkt.offload;
        let gso = o.gso_type & !Offload::GSO_ECN;
        if gso != Offload::GSO_NONE {
            let carried = match gso {
                Offload::GSO_TCPV4 | Offload::GSO_TCPV6 => self.caps.tx_tso,
                Offload::GSO_UDP_L4 => self.caps.tx_uso,
                _ => false,
            };
            if carried {
                return Ok(Prepared::Single);
            }
            let n = match gso {
                Offload::GSO_TCPV4 | Offload::GSO_TCPV6 => self.seg.segment_tcp(pkt.data(), &o)?,
                Offload::GSO_UDP_L4 => self.seg.segment_udp(pkt.data(), &o)?,
                // UFO (IP fragmentation of a large datagram) is not done.
                other => return Err(OffloadError::UnsupportedGso(other)),
            };
            return Ok(Prepared::Segments(n));
        }
        if o.flags & Offload::F_NEEDS_CSUM != 0 && !self.caps.tx_csum {
            complete_csum(pkt.data_mut(), o.csum_start, o.csum_offset)?;
            pkt.offload = Offload {
                flags: Offload::F_DATA_VALID,
                ..Offload::default()
            };
        }
        Ok(Prepared::Single)
    }

    /// The segments of the last [`Prepared::Segments`].
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.seg.segments()
    }
}

#[cfg(test)]
pub(crate) mod testframes {
    //! Hand-built frames with checksums computed byte pair by byte pair,
    //! independently of the code under test.

    pub fn naive_csum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map(|b| u32::from(*b)).unwrap_or(0);
            sum += hi | lo;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    /// Ethernet + IPv4 + TCP with `payload`, complete checksums.
    pub fn tcp4(payload: &[u8], seq: u32, flags: u8, id: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x08, 0x00]);
        let tot = (20 + 20 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&tot.to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        let c = naive_csum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&77u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
        let tcp_len = (20 + payload.len()) as u16;
        let pseudo = [&ip[12..20], &[0, 6], &tcp_len.to_be_bytes()[..]].concat();
        let c = naive_csum(&[&pseudo, &tcp, payload]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    /// Ethernet + IPv6 + TCP with `payload`, complete checksum.
    pub fn tcp6(payload: &[u8], seq: u32, flags: u8) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x86, 0xdd]);
        let plen = (20 + payload.len()) as u16;
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, 6, 64];
        ip[4..6].copy_from_slice(&plen.to_be_bytes());
        let mut src = [0u8; 16];
        src[0] = 0xfd;
        src[15] = 1;
        let mut dst = src;
        dst[15] = 2;
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        let pseudo = [
            &src[..],
            &dst[..],
            &[0, 0],
            &plen.to_be_bytes()[..],
            &[0, 0, 0, 6],
        ]
        .concat();
        let c = naive_csum(&[&pseudo, &tcp, payload]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    /// Turns a complete frame's TCP checksum into the partial form a sender
    /// with checksum offload produces (pseudo-header sum only).
    pub fn make_partial(frame: &mut [u8], l3: usize, l4: usize, v4: bool) {
        let tcp_len = (frame.len() - l4) as u16;
        let pseudo = if v4 {
            [
                &frame[l3 + 12..l3 + 20],
                &[0, 6],
                &tcp_len.to_be_bytes()[..],
            ]
            .concat()
        } else {
            [
                &frame[l3 + 8..l3 + 40],
                &[0, 0],
                &tcp_len.to_be_bytes()[..],
                &[0, 0, 0, 6],
            ]
            .concat()
        };
        let partial = !naive_csum(&[&pseudo]);
        frame[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
    }

    /// Ethernet + IPv4 + UDP with `payload`, complete checksums.
    pub fn udp4(payload: &[u8], id: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_B);
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x08, 0x00]);
        let tot = (20 + 8 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&tot.to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        let c = naive_csum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let ulen = (8 + payload.len()) as u16;
        let mut udp = vec![0x13, 0x88, 0x17, 0x70, 0, 0, 0, 0];
        udp[4..6].copy_from_slice(&ulen.to_be_bytes());
        let pseudo = [&ip[12..20], &[0, 17], &ulen.to_be_bytes()[..]].concat();
        let c = naive_csum(&[&pseudo, &udp, payload]);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&udp);
        f.extend_from_slice(payload);
        f
    }

    /// True when the IPv4 header checksum and the UDP checksum verify.
    pub fn udp4_valid(f: &[u8]) -> bool {
        let ip = &f[14..34];
        let udp = &f[34..];
        let ulen = (udp.len() as u16).to_be_bytes();
        let pseudo = [&ip[12..20], &[0, 17], &ulen[..]].concat();
        naive_csum(&[ip]) == 0 && naive_csum(&[&pseudo, udp]) == 0 && udp[4..6] == ulen
    }

    /// True when the IPv4 header checksum and the TCP checksum verify.
    pub fn tcp4_valid(f: &[u8]) -> bool {
        let ip = &f[14..34];
        let tcp = &f[34..];
        let tcp_len = (tcp.len() as u16).to_be_bytes();
        let pseudo = [&ip[12..20], &[0, 6], &tcp_len[..]].concat();
        naive_csum(&[ip]) == 0 && naive_csum(&[&pseudo, tcp]) == 0
    }

    /// True when the TCP checksum of an IPv6 frame verifies.
    pub fn tcp6_valid(f: &[u8]) -> bool {
        let ip = &f[14..54];
        let tcp = &f[54..];
        let tcp_len = (tcp.len() as u16).to_be_bytes();
        let pseudo = [&ip[8..40], &[0, 0], &tcp_len[..], &[0, 0, 0, 6]].concat();
        naive_csum(&[&pseudo, tcp]) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::testframes::*;
    use super::*;

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn partial_tcp4_checksum_is_completed_to_the_from_scratch_value() {
        let full = tcp4(&payload(1001), 1, 0x18, 9);
        let mut f = full.clone();
        make_partial(&mut f, 14, 34, true);
        assert_ne!(f, full);
        complete_csum(&mut f, 34, 16).unwrap();
        assert_eq!(f, full);
    }

    #[test]
    fn partial_tcp6_checksum_is_completed_to_the_from_scratch_value() {
        let full = tcp6(&payload(333), 5, 0x10);
        let mut f = full.clone();
        make_partial(&mut f, 14, 54, false);
        complete_csum(&mut f, 54, 16).unwrap();
        assert_eq!(f, full);
        assert!(tcp6_valid(&f));
    }

    #[test]
    fn tcp4_super_frame_is_cut_into_mss_segments_with_valid_headers() {
        let data = payload(4000);
        let mut f = tcp4(&data, 1000, 0x19 /* FIN|PSH|ACK */, 100);
        make_partial(&mut f, 14, 34, true);
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut s = Segmenter::new();
        assert_eq!(s.segment_tcp(&f, &o).unwrap(), 3);
        let segs: Vec<&[u8]> = s.segments().collect();
        let mut joined = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            assert!(tcp4_valid(seg), "segment {i} has a bad checksum");
            let plen = seg.len() - 54;
            assert_eq!(plen, if i < 2 { 1448 } else { 4000 - 2 * 1448 });
            assert_eq!(u16::from_be_bytes([seg[16], seg[17]]) as usize, 40 + plen);
            assert_eq!(u16::from_be_bytes([seg[18], seg[19]]), 100 + i as u16);
            let seq = u32::from_be_bytes([seg[38], seg[39], seg[40], seg[41]]);
            assert_eq!(seq, 1000 + (i * 1448) as u32);
            let flags = seg[47];
            if i < 2 {
                assert_eq!(flags, 0x10, "FIN/PSH only on the last segment");
            } else {
                assert_eq!(flags, 0x19);
            }
            joined.extend_from_slice(&seg[54..]);
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn tcp6_super_frame_is_cut_into_mss_segments_with_valid_checksums() {
        let data = payload(3000);
        let f = tcp6(&data, u32::MAX - 100, 0x18);
        let o = Offload {
            flags: 0,
            gso_type: Offload::GSO_TCPV6,
            hdr_len: 74,
            gso_size: 1000,
            csum_start: 0,
            csum_offset: 0,
        };
        let mut s = Segmenter::new();
        assert_eq!(s.segment_tcp(&f, &o).unwrap(), 3);
        for (i, seg) in s.segments().enumerate() {
            assert!(tcp6_valid(seg));
            assert_eq!(u16::from_be_bytes([seg[18], seg[19]]), 1020);
            let seq = u32::from_be_bytes([seg[58], seg[59], seg[60], seg[61]]);
            assert_eq!(
                seq,
                (u32::MAX - 100).wrapping_add(i as u32 * 1000),
                "sequence wraps"
            );
        }
    }

    #[test]
    fn udp_gso_super_frame_becomes_datagrams_with_their_own_udp_headers() {
        let data = payload(3000);
        let mut f = udp4(&data, 50);
        make_partial_udp(&mut f);
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_UDP_L4,
            hdr_len: 42,
            gso_size: 1200,
            csum_start: 34,
            csum_offset: 6,
        };
        let mut pkt = Packet::from_bytes(&f);
        pkt.offload = o;
        let mut tx = TxOffload::new(OffloadCaps::default());
        assert_eq!(tx.prepare(&mut pkt).unwrap(), Prepared::Segments(3));
        let mut joined = Vec::new();
        for (i, seg) in tx.segments().enumerate() {
            assert!(udp4_valid(seg), "datagram {i} is valid");
            assert_eq!(u16::from_be_bytes([seg[18], seg[19]]), 50 + i as u16);
            joined.extend_from_slice(&seg[42..]);
        }
        assert_eq!(joined, data);
        let uso = OffloadCaps {
            tx_uso: true,
            ..OffloadCaps::default()
        };
        assert_eq!(
            TxOffload::new(uso).prepare(&mut pkt).unwrap(),
            Prepared::Single
        );
    }

    #[test]
    fn ufo_super_frame_is_refused_not_mangled() {
        let mut pkt = Packet::from_bytes(&udp4(&payload(3000), 1));
        pkt.offload = Offload {
            gso_type: Offload::GSO_UDP,
            gso_size: 1200,
            ..Offload::default()
        };
        let r = TxOffload::new(OffloadCaps::default()).prepare(&mut pkt);
        assert_eq!(r, Err(OffloadError::UnsupportedGso(Offload::GSO_UDP)));
    }

    fn make_partial_udp(f: &mut [u8]) {
        let ulen = ((f.len() - 34) as u16).to_be_bytes();
        let pseudo = [&f[26..34], &[0, 17], &ulen[..]].concat();
        let partial = !naive_csum(&[&pseudo]);
        f[40..42].copy_from_slice(&partial.to_be_bytes());
    }

    #[test]
    fn truncated_super_frame_is_rejected() {
        let f = tcp4(&payload(100), 1, 0x10, 1);
        let o = Offload {
            gso_type: Offload::GSO_TCPV4,
            gso_size: 50,
            ..Offload::default()
        };
        let mut s = Segmenter::new();
        assert!(s.segment_tcp(&f[..40], &o).is_err());
        assert!(s.segment_tcp(&f[..12], &o).is_err());
        let zero_mss = Offload { gso_size: 0, ..o };
        assert!(s.segment_tcp(&f, &zero_mss).is_err());
    }

    #[test]
    fn prepare_keeps_offloads_the_queue_can_carry() {
        let mut pkt = Packet::from_bytes(&tcp4(&payload(3000), 1, 0x10, 1));
        pkt.offload = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            hdr_len: 54,
        };
        let before = pkt.offload;
        let caps = OffloadCaps {
            tx_csum: true,
            tx_tso: true,
            tx_uso: false,
        };
        assert_eq!(
            TxOffload::new(caps).prepare(&mut pkt).unwrap(),
            Prepared::Single
        );
        assert_eq!(pkt.offload, before);
        let mut plain = TxOffload::new(OffloadCaps::default());
        assert_eq!(plain.prepare(&mut pkt).unwrap(), Prepared::Segments(3));
        assert!(plain.segments().all(tcp4_valid));
    }

    #[test]
    fn prepare_completes_partial_checksum_for_a_queue_without_csum() {
        let full = tcp4(&payload(200), 1, 0x10, 1);
        let mut f = full.clone();
        make_partial(&mut f, 14, 34, true);
        let mut pkt = Packet::from_bytes(&f);
        pkt.offload = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Offload::default()
        };
        let mut tx = TxOffload::new(OffloadCaps::default());
        assert_eq!(tx.prepare(&mut pkt).unwrap(), Prepared::Single);
        assert_eq!(pkt.data(), &full[..]);
        assert_eq!(pkt.offload.flags & Offload::F_NEEDS_CSUM, 0);
    }
}
