//! Ports: the port description (ofp_port / ofp_phy_port) that features,
//! port-status and port-desc replies carry, PORT_STATUS, PORT_MOD and
//! QUEUE_GET_CONFIG. From 1.4 on, descriptions, port mods and port stats
//! end in properties, of which the Ethernet one is used.

use super::{MsgType, Version};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{Message, PortDesc, PortMod, PortStats, PortStatus};
use crate::wire::{Reader, Writer};

/// OFPPDPT_ETHERNET / OFPPMPT_ETHERNET / OFPPSPT_ETHERNET: the one
/// property of 1.4's port description, port mod and port stats.
const PROP_ETHERNET: u16 = 0;

/// 1.4's port description: a length, the common fields, then an Ethernet
/// property with the feature bits and speeds.
fn decode_port_desc14(r: &mut Reader) -> Result<PortDesc, DecodeError> {
    let port_no = r.u32()?;
    let len = usize::from(r.u16()?);
    if len < 40 {
        return Err(super::BAD_LEN);
    }
    let mut b = r.sub(len - 6)?;
    b.skip(2)?;
    let hw_addr = b.array()?;
    b.skip(2)?;
    let mut p = PortDesc {
        port_no,
        hw_addr,
        name: b.string(16)?,
        config: b.u32()?,
        state: b.u32()?,
        ..PortDesc::default()
    };
    for (ty, mut e) in super::read_props(b)? {
        if ty == PROP_ETHERNET {
            e.skip(4)?;
            p.curr = e.u32()?;
            p.advertised = e.u32()?;
            p.supported = e.u32()?;
            p.peer = e.u32()?;
            p.curr_speed = e.u32()?;
            p.max_speed = e.u32()?;
        }
    }
    Ok(p)
}

fn encode_port_desc14(w: &mut Writer, p: &PortDesc) {
    let start = w.len();
    w.u32(p.port_no);
    let at = w.len_placeholder();
    w.u16(0);
    w.bytes(&p.hw_addr);
    w.u16(0);
    w.string(&p.name, 16);
    w.u32(p.config);
    w.u32(p.state);
    super::put_prop(w, PROP_ETHERNET, |w| {
        w.u32(0);
        for x in [
            p.curr,
            p.advertised,
            p.supported,
            p.peer,
            p.curr_speed,
            p.max_speed,
        ] {
            w.u32(x);
        }
    });
    w.patch_len_since(at, start);
}

/// Reads one port description. 1.0 has a 16-bit port number and no
/// speeds; 1.3 a padded 32-bit one and current/maximum speed; 1.4 moves
/// features and speeds into a property.
pub fn decode_port_desc(v: Version, r: &mut Reader) -> Result<PortDesc, DecodeError> {
    if v.has_properties() {
        return decode_port_desc14(r);
    }
    let port_no = v.read_port(r)?;
    if !v.is_of10() {
        r.skip(4)?;
    }
    let hw_addr = r.array()?;
    if !v.is_of10() {
        r.skip(2)?;
    }
    let mut p = PortDesc {
        port_no,
        hw_addr,
        name: r.string(16)?,
        config: r.u32()?,
        state: r.u32()?,
        curr: r.u32()?,
        advertised: r.u32()?,
        supported: r.u32()?,
        peer: r.u32()?,
        curr_speed: 0,
        max_speed: 0,
    };
    if !v.is_of10() {
        p.curr_speed = r.u32()?;
        p.max_speed = r.u32()?;
    }
    Ok(p)
}

pub fn encode_port_desc(w: &mut Writer, v: Version, p: &PortDesc) -> Result<(), EncodeError> {
    if v.has_properties() {
        encode_port_desc14(w, p);
        return Ok(());
    }
    v.write_port(w, p.port_no)?;
    if !v.is_of10() {
        w.u32(0);
    }
    w.bytes(&p.hw_addr);
    if !v.is_of10() {
        w.u16(0);
    }
    w.string(&p.name, 16);
    for x in [p.config, p.state, p.curr, p.advertised, p.supported, p.peer] {
        w.u32(x);
    }
    if !v.is_of10() {
        w.u32(p.curr_speed);
        w.u32(p.max_speed);
    }
    Ok(())
}

pub fn decode(ty: MsgType, v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    Ok(match ty {
        MsgType::PortStatus => {
            let reason = r.u8()?;
            r.skip(7)?;
            let desc = decode_port_desc(v, &mut r)?;
            Message::PortStatus(PortStatus { reason, desc })
        }
        MsgType::PortMod => Message::PortMod(decode_port_mod(v, r)?),
        MsgType::QueueGetConfigRequest => Message::QueueGetConfigRequest {
            port: v.read_port(&mut r)?,
        },
        MsgType::QueueGetConfigReply => Message::QueueGetConfigReply {
            port: v.read_port(&mut r)?,
        },
        _ => return Err(OfError::BadType.into()),
    })
}

/// 1.3 pads the port number and the address and refuses trailing bytes;
/// 1.0 packs them and ignores what follows `advertise`.
fn decode_port_mod(v: Version, mut r: Reader) -> Result<PortMod, DecodeError> {
    let port_no = v.read_port(&mut r)?;
    if !v.is_of10() {
        r.skip(4)?;
    }
    let hw_addr = r.array()?;
    if !v.is_of10() {
        r.skip(2)?;
    }
    if v.has_properties() {
        let config = r.u32()?;
        let mask = r.u32()?;
        let mut advertise = 0;
        for (ty, mut p) in super::read_props(r)? {
            match ty {
                PROP_ETHERNET => advertise = p.u32()?,
                _ => return Err(OfError::BadPropertyType.into()),
            }
        }
        return Ok(PortMod {
            port_no,
            hw_addr,
            config,
            mask,
            advertise,
        });
    }
    let pm = PortMod {
        port_no,
        hw_addr,
        config: r.u32()?,
        mask: r.u32()?,
        advertise: r.u32()?,
    };
    if !v.is_of10() {
        r.skip(4)?;
        r.done()?;
    }
    Ok(pm)
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    match msg {
        Message::PortStatus(p) => {
            w.u8(p.reason);
            w.zeros(7);
            encode_port_desc(w, v, &p.desc)?;
        }
        Message::PortMod(p) => {
            v.write_port(w, p.port_no)?;
            if !v.is_of10() {
                w.u32(0);
            }
            w.bytes(&p.hw_addr);
            if !v.is_of10() {
                w.u16(0);
            }
            w.u32(p.config);
            w.u32(p.mask);
            if v.has_properties() {
                super::put_prop(w, PROP_ETHERNET, |w| w.u32(p.advertise));
            } else {
                w.u32(p.advertise);
                w.u32(0);
            }
        }
        Message::QueueGetConfigRequest { port } | Message::QueueGetConfigReply { port } => {
            v.write_port(w, *port)?;
            let pad = match (v.is_of10(), msg) {
                (true, Message::QueueGetConfigRequest { .. }) => 2,
                (true, _) => 6,
                (false, _) => 4,
            };
            w.zeros(pad);
        }
        _ => return Err(v.unsupported(msg.name())),
    }
    Ok(())
}

/// Size of one port-stats entry.
fn port_stats_len(v: Version) -> usize {
    if v.is_of10() { 104 } else { 112 }
}

/// 1.4's port-stats entry: a length, the port, the duration, eight
/// counters, then an Ethernet property with the four Ethernet error
/// counters.
fn decode_port_stats14(r: Reader) -> Result<Vec<PortStats>, DecodeError> {
    let mut out = Vec::new();
    for mut b in super::entries(r, 80)? {
        b.skip(4)?;
        let mut p = PortStats {
            port_no: b.u32()?,
            duration_sec: b.u32()?,
            duration_nsec: b.u32()?,
            ..PortStats::default()
        };
        for x in [
            &mut p.rx_packets,
            &mut p.tx_packets,
            &mut p.rx_bytes,
            &mut p.tx_bytes,
            &mut p.rx_dropped,
            &mut p.tx_dropped,
            &mut p.rx_errors,
            &mut p.tx_errors,
        ] {
            *x = b.u64()?;
        }
        for (ty, mut e) in super::read_props(b)? {
            if ty == PROP_ETHERNET {
                e.skip(4)?;
                p.rx_frame_err = e.u64()?;
                p.rx_over_err = e.u64()?;
                p.rx_crc_err = e.u64()?;
                p.collisions = e.u64()?;
            }
        }
        out.push(p);
    }
    Ok(out)
}

fn encode_port_stats14(w: &mut Writer, p: &PortStats) {
    let start = w.len();
    let at = w.len_placeholder();
    w.u16(0);
    w.u32(p.port_no);
    w.u32(p.duration_sec);
    w.u32(p.duration_nsec);
    for x in [
        p.rx_packets,
        p.tx_packets,
        p.rx_bytes,
        p.tx_bytes,
        p.rx_dropped,
        p.tx_dropped,
        p.rx_errors,
        p.tx_errors,
    ] {
        w.u64(x);
    }
    super::put_prop(w, PROP_ETHERNET, |w| {
        w.u32(0);
        for x in [p.rx_frame_err, p.rx_over_err, p.rx_crc_err, p.collisions] {
            w.u64(x);
        }
    });
    w.patch_len_since(at, start);
}

/// The entries of an OFPMP_PORT_STATS reply. 1.0 has a 16-bit port and no
/// duration; 1.4 moves the Ethernet error counters into a property.
pub fn decode_port_stats(v: Version, mut r: Reader) -> Result<Vec<PortStats>, DecodeError> {
    if v.has_properties() {
        return decode_port_stats14(r);
    }
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut b = r.sub(port_stats_len(v))?;
        let port_no = v.read_port(&mut b)?;
        b.skip(if v.is_of10() { 6 } else { 4 })?;
        let mut c = [0u64; 12];
        for x in &mut c {
            *x = b.u64()?;
        }
        let (duration_sec, duration_nsec) = if v.is_of10() {
            (0, 0)
        } else {
            (b.u32()?, b.u32()?)
        };
        out.push(PortStats {
            port_no,
            rx_packets: c[0],
            tx_packets: c[1],
            rx_bytes: c[2],
            tx_bytes: c[3],
            rx_dropped: c[4],
            tx_dropped: c[5],
            rx_errors: c[6],
            tx_errors: c[7],
            rx_frame_err: c[8],
            rx_over_err: c[9],
            rx_crc_err: c[10],
            collisions: c[11],
            duration_sec,
            duration_nsec,
        });
    }
    Ok(out)
}

pub fn encode_port_stats(w: &mut Writer, v: Version, p: &PortStats) -> Result<(), EncodeError> {
    if v.has_properties() {
        encode_port_stats14(w, p);
        return Ok(());
    }
    v.write_port(w, p.port_no)?;
    w.zeros(if v.is_of10() { 6 } else { 4 });
    for x in [
        p.rx_packets,
        p.tx_packets,
        p.rx_bytes,
        p.tx_bytes,
        p.rx_dropped,
        p.tx_dropped,
        p.rx_errors,
        p.tx_errors,
        p.rx_frame_err,
        p.rx_over_err,
        p.rx_crc_err,
        p.collisions,
    ] {
        w.u64(x);
    }
    if !v.is_of10() {
        w.u32(p.duration_sec);
        w.u32(p.duration_nsec);
    }
    Ok(())
}
