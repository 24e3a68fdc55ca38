//! Why a header could not be parsed or built.

use std::fmt;

/// The header a [`Error::Truncated`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Ethernet,
    Ipv4,
    Ipv6,
    Udp,
    Vxlan,
    Geneve,
    GeneveOption,
    Gre,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "Ethernet",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Udp => "UDP",
            Layer::Vxlan => "VXLAN",
            Layer::Geneve => "Geneve",
            Layer::GeneveOption => "Geneve option",
            Layer::Gre => "GRE",
        })
    }
}

/// A malformed, unexpected or unbuildable header. Decapsulation returns one
/// of these for every packet it drops, so callers can count them by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{layer} header truncated: needs {need} bytes, {have} present")]
    Truncated {
        layer: Layer,
        need: usize,
        have: usize,
    },
    #[error("not an IP frame (ethertype {0:#06x})")]
    NotIp(u16),
    #[error("malformed {layer} header: {why}")]
    Malformed { layer: Layer, why: &'static str },
    #[error("{0} checksum mismatch")]
    Checksum(Layer),
    #[error("outer packet is a fragment")]
    Fragment,
    #[error("not a tunnel packet (IP protocol {proto}, UDP port {port})")]
    NotTunnel { proto: u8, port: u16 },
    #[error("unsupported Geneve version {0}")]
    GeneveVersion(u8),
    #[error("Geneve option of {len} bytes overruns the {avail} option bytes left")]
    BadOptionLength { len: usize, avail: usize },
    #[error("unknown critical Geneve option class {class:#06x} type {typ:#04x}")]
    UnknownCriticalOption { class: u16, typ: u8 },
    #[error("tunnel key {got:#x} where the port expects {want:#x}")]
    WrongVni { got: u32, want: u32 },
    #[error("cannot build the header: {0}")]
    Unbuildable(&'static str),
}

pub(crate) fn need(layer: Layer, need: usize, have: usize) -> Result<(), Error> {
    if have < need {
        Err(Error::Truncated { layer, need, have })
    } else {
        Ok(())
    }
}
