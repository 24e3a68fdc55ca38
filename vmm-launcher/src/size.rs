//! Memory sizes as written on the command line ("512M", "2G", "1048576").

use crate::error::VmmError;

/// Parses a size in bytes; suffixes K, M, G, T (optionally followed by "iB"
/// or "B") are powers of 1024. A bare number is taken as MiB, like QEMU's -m.
pub fn parse_size(s: &str) -> Result<u64, VmmError> {
    let bad = || VmmError::BadMemorySize(s.to_string());
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits_end == 0 {
        return Err(bad());
    }
    let (num, suffix) = t.split_at(digits_end);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let suffix = suffix.trim_end_matches("iB").trim_end_matches('B');
    let shift = match suffix {
        "" | "M" | "m" => 20,
        "K" | "k" => 10,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary_multiples_and_bare_numbers_are_mib() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096K").unwrap(), 4 << 20);
        assert_eq!(parse_size("256").unwrap(), 256 << 20);
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        for bad in ["", "M", "12X", "-1G", "1.5G", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
