//! Building and recognising the few frames the test guest uses.

const ETH_ARP: u16 = 0x0806;
const ETH_IPV4: u16 = 0x0800;
/// IEEE local experimental ethertype, for loop frames.
const ETH_LOOP: u16 = 0x88b5;
const LOOP_MAGIC: &[u8; 8] = b"FRVSLOOP";

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn eth(b: &mut [u8], dst: &[u8; 6], src: &[u8; 6], ethertype: u16) {
    b[0..6].copy_from_slice(dst);
    b[6..12].copy_from_slice(src);
    put16(b, 12, ethertype);
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let w = if pair.len() == 2 {
            u16::from_be_bytes([pair[0], pair[1]])
        } else {
            u16::from(pair[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// "Who has `target`? Tell `ip`", broadcast. Returns the frame length.
pub fn arp_request(b: &mut [u8; 128], mac: &[u8; 6], ip: [u8; 4], target: [u8; 4]) -> usize {
    b.fill(0);
    eth(b, &[0xff; 6], mac, ETH_ARP);
    put16(b, 14, 1); // Ethernet
    put16(b, 16, ETH_IPV4);
    b[18] = 6;
    b[19] = 4;
    put16(b, 20, 1); // request
    b[22..28].copy_from_slice(mac);
    b[28..32].copy_from_slice(&ip);
    b[38..42].copy_from_slice(&target);
    60
}

/// The sender MAC of an ARP reply from `peer` to `ip`.
pub fn parse_arp_reply(f: &[u8], ip: [u8; 4], peer: [u8; 4]) -> Option<[u8; 6]> {
    if get16(f, 12)? != ETH_ARP || get16(f, 20)? != 2 || f.len() < 42 {
        return None;
    }
    if f[28..32] != peer || f[38..42] != ip {
        return None;
    }
    let mut m = [0u8; 6];
    m.copy_from_slice(&f[22..28]);
    Some(m)
}

/// ICMP echo request with a 32-byte payload. Returns the frame length.
pub fn icmp_echo_request(
    b: &mut [u8; 128],
    mac: &[u8; 6],
    dst_mac: &[u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    seq: u16,
) -> usize {
    const PAYLOAD: usize = 32;
    let ip_len = 20 + 8 + PAYLOAD;
    b.fill(0);
    eth(b, dst_mac, mac, ETH_IPV4);
    let ip = 14;
    b[ip] = 0x45;
    put16(b, ip + 2, ip_len as u16);
    put16(b, ip + 4, seq);
    b[ip + 6] = 0x40; // DF
    b[ip + 8] = 64;
    b[ip + 9] = 1; // ICMP
    b[ip + 12..ip + 16].copy_from_slice(&src);
    b[ip + 16..ip + 20].copy_from_slice(&dst);
    let c = checksum(&b[ip..ip + 20]);
    put16(b, ip + 10, c);
    let icmp = ip + 20;
    b[icmp] = 8;
    put16(b, icmp + 4, id);
    put16(b, icmp + 6, seq);
    for i in 0..PAYLOAD {
        b[icmp + 8 + i] = b'a' + (i % 26) as u8;
    }
    let c = checksum(&b[icmp..icmp + 8 + PAYLOAD]);
    put16(b, icmp + 2, c);
    14 + ip_len
}

/// True for an ICMP echo reply from `from` to `to` with this id and seq
/// and a valid ICMP checksum.
pub fn is_echo_reply(f: &[u8], from: [u8; 4], to: [u8; 4], id: u16, seq: u16) -> bool {
    let check = || -> Option<bool> {
        if get16(f, 12)? != ETH_IPV4 {
            return Some(false);
        }
        let ip = 14;
        let ihl = usize::from(*f.get(ip)? & 0xf) * 4;
        let total = usize::from(get16(f, ip + 2)?);
        if *f.get(ip + 9)? != 1
            || f.get(ip + 12..ip + 16)? != from
            || f.get(ip + 16..ip + 20)? != to
        {
            return Some(false);
        }
        let icmp = f.get(ip + ihl..ip + total)?;
        Some(
            icmp.first() == Some(&0)
                && get16(icmp, 4)? == id
                && get16(icmp, 6)? == seq
                && checksum(icmp) == 0,
        )
    };
    check().unwrap_or(false)
}

/// A frame to ourselves-and-back: experimental ethertype, magic, seq.
pub fn loop_frame(b: &mut [u8; 128], mac: &[u8; 6], seq: u32) -> usize {
    b.fill(0);
    eth(b, &[0x02, 0, 0, 0, 0, 0x01], mac, ETH_LOOP);
    b[14..22].copy_from_slice(LOOP_MAGIC);
    b[22..26].copy_from_slice(&seq.to_be_bytes());
    64
}

/// The sequence number of a loop frame (whatever the MACs became).
pub fn parse_loop_frame(f: &[u8]) -> Option<u32> {
    if get16(f, 12)? != ETH_LOOP || f.get(14..22)? != LOOP_MAGIC {
        return None;
    }
    let s = f.get(22..26)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}
