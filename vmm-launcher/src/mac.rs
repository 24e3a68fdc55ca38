//! Ethernet MAC addresses as given on the command line.

use std::fmt;
use std::str::FromStr;

use crate::error::VmmError;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered unicast address derived from a VM name and NIC
    /// index, stable across restarts (QEMU's 52:54:00 prefix).
    pub fn derived(name: &str, index: usize) -> MacAddr {
        // FNV-1a: small, stable, no dependency.
        let mut h: u32 = 0x811c_9dc5;
        for b in name.bytes().chain(index.to_le_bytes()) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        let b = h.to_be_bytes();
        MacAddr([0x52, 0x54, 0x00, b[1], b[2], b[3]])
    }

    /// True for group (multicast/broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl FromStr for MacAddr {
    type Err = VmmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VmmError::BadMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        let mac = MacAddr(out);
        if mac.is_multicast() {
            return Err(VmmError::MulticastMac(s.to_string()));
        }
        Ok(mac)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colon_separated_hex_and_prints_it_back_lowercase() {
        let mac: MacAddr = "52:54:00:AB:cd:0F".parse().unwrap();
        assert_eq!(mac.0, [0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]);
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
    }

    #[test]
    fn accepts_single_digit_octets() {
        let mac: MacAddr = "2:0:0:0:0:1".parse().unwrap();
        assert_eq!(mac.0, [2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn rejects_wrong_octet_count_bad_hex_and_overlong_octets() {
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00:12:34:zz",
            "52:54:00:12:34:567",
            "52-54-00-12-34-56",
            "52:54:00:12::56",
        ] {
            assert!(
                matches!(bad.parse::<MacAddr>(), Err(VmmError::BadMac(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_multicast_addresses() {
        assert!(matches!(
            "01:00:5e:00:00:01".parse::<MacAddr>(),
            Err(VmmError::MulticastMac(_))
        ));
        assert!(matches!(
            "ff:ff:ff:ff:ff:ff".parse::<MacAddr>(),
            Err(VmmError::MulticastMac(_))
        ));
    }

    #[test]
    fn derived_addresses_are_stable_unicast_and_differ_per_nic() {
        let a = MacAddr::derived("vm1", 0);
        assert_eq!(a, MacAddr::derived("vm1", 0));
        assert_ne!(a, MacAddr::derived("vm1", 1));
        assert_ne!(a, MacAddr::derived("vm2", 0));
        assert_eq!(&a.0[..3], &[0x52, 0x54, 0x00]);
        assert!(!a.is_multicast());
    }
}
