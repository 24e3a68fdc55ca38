//! Ethernet (MAC) addresses.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address; prints as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not an Ethernet address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Ethernet address {0:?} (expected six hex octets separated by ':')")]
pub struct MacParseError(pub String);

impl MacAddr {
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The six octets.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// True for group (multicast and broadcast) addresses.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// The address as the low 48 bits of an integer.
    pub fn to_u64(self) -> u64 {
        self.0.iter().fold(0, |v, &b| (v << 8) | u64::from(b))
    }

    /// The address in the low 48 bits of `v` (higher bits ignored).
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(m: MacAddr) -> Self {
        m.0
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Six colon-separated octets of one or two hex digits each.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colon_separated_hex_and_prints_it_back_lowercase() {
        let mac: MacAddr = "52:54:00:AB:cd:0F".parse().unwrap();
        assert_eq!(mac.0, [0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]);
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(format!("{mac:?}"), "52:54:00:ab:cd:0f");
    }

    #[test]
    fn accepts_single_digit_octets() {
        let mac: MacAddr = "2:0:0:0:0:1".parse().unwrap();
        assert_eq!(mac.0, [2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn rejects_wrong_octet_count_bad_hex_signs_and_overlong_octets() {
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00:12:34:zz",
            "52:54:00:12:34:567",
            "52-54-00-12-34-56",
            "52:54:00:12::56",
            "52:54:00:12:34:+5",
        ] {
            assert!(
                bad.parse::<MacAddr>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn integer_form_round_trips_and_flags_group_addresses() {
        let m = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]);
        assert_eq!(m.to_u64(), 0x0180_c200_000e);
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert!(m.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
    }
}
