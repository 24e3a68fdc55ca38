//! Ethernet MAC addresses for guest NICs ([`MacAddr`] itself lives in
//! `wire`, the home of frame primitives).

use crate::error::VmmError;

pub use wire::MacAddr;

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

/// A NIC's address from the command line: well formed and unicast.
pub fn parse_nic_mac(s: &str) -> Result<MacAddr, VmmError> {
    let mac: MacAddr = s.parse().map_err(|_| VmmError::BadMac(s.to_string()))?;
    if mac.is_multicast() {
        return Err(VmmError::MulticastMac(s.to_string()));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colon_separated_hex_and_prints_it_back_lowercase() {
        let mac: MacAddr = parse_nic_mac("52:54:00:AB:cd:0F").unwrap();
        assert_eq!(mac.0, [0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]);
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
    }

    #[test]
    fn accepts_single_digit_octets() {
        let mac: MacAddr = parse_nic_mac("2:0:0:0:0:1").unwrap();
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
                matches!(parse_nic_mac(bad), Err(VmmError::BadMac(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_multicast_addresses() {
        assert!(matches!(
            parse_nic_mac("01:00:5e:00:00:01"),
            Err(VmmError::MulticastMac(_))
        ));
        assert!(matches!(
            parse_nic_mac("ff:ff:ff:ff:ff:ff"),
            Err(VmmError::MulticastMac(_))
        ));
    }

    #[test]
    fn derived_addresses_are_stable_unicast_and_differ_per_nic() {
        let a = derived("vm1", 0);
        assert_eq!(a, derived("vm1", 0));
        assert_ne!(a, derived("vm1", 1));
        assert_ne!(a, derived("vm2", 0));
        assert_eq!(&a.0[..3], &[0x52, 0x54, 0x00]);
        assert!(!a.is_multicast());
    }
}
