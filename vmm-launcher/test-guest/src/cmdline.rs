//! Settings from the kernel command line the launcher passes:
//! `testguest.ip=`, `testguest.peer=`, `testguest.mode=ping|loop|echo`,
//! `testguest.count=`, `testguest.tries=`, `testguest.interval=` (TSC ticks), `testguest.transport=mmio|pci` and `virtio_mmio.device=4K@BASE:IRQ`.

#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Ping,
    Loop,
    /// No network: echo console input until 'q' (lifecycle tests).
    Echo,
    /// Exercise the first virtio-blk device (disk tests).
    Disk,
    /// Ping `count` times, one every `interval` TSC ticks, printing every
    /// reply and every link change (reconnect tests).
    PingLoop,
}

pub struct Config {
    pub ip: [u8; 4],
    pub peer: [u8; 4],
    pub mode: Mode,
    pub count: u32,
    pub tries: u32,
    /// TSC ticks between two pings in pingloop mode.
    pub interval: u64,
    pub mmio_base: usize,
    /// Every declared virtio-mmio window (the disk may be any of them).
    pub mmio_bases: [usize; 16],
    pub mmio_count: usize,
    /// Sector the disk test writes.
    pub write_sector: u64,
    /// Drive the virtio-pci function instead of virtio-mmio.
    pub pci: bool,
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let (digits, radix) = match s {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (s, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        v = v.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    Some(v)
}

fn parse_ip(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split(|&c| c == b'.');
    for o in out.iter_mut() {
        let v = parse_u64(parts.next()?)?;
        *o = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ip: [10, 9, 0, 10],
            peer: [10, 9, 0, 1],
            mode: Mode::Ping,
            count: 3,
            tries: 5,
            interval: 500_000_000,
            mmio_base: 0xd000_0000,
            mmio_bases: [0; 16],
            mmio_count: 0,
            write_sector: 8,
            pci: false,
        }
    }
}

impl Config {
    /// Reads `cmd_line_ptr` (offset 0x228) from the zero page.
    pub fn from_zero_page(zp: *const u8) -> Config {
        if zp.is_null() {
            return Config::default();
        }
        // SAFETY: the launcher put the zero page at zp; 0x228 is inside it.
        let ptr = unsafe { core::ptr::read_unaligned(zp.add(0x228) as *const u32) } as usize;
        if ptr == 0 {
            return Config::default();
        }
        let mut len = 0;
        // SAFETY: the command line is NUL terminated and at most 4 KiB long.
        while len < 4096 && unsafe { core::ptr::read_volatile((ptr + len) as *const u8) } != 0 {
            len += 1;
        }
        // SAFETY: ptr..ptr+len was just scanned and is identity-mapped RAM.
        let line = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
        Self::parse(line)
    }

    /// Parses a command line (defaults for what it does not set).
    pub fn parse(line: &[u8]) -> Config {
        let mut cfg = Config::default();
        let mut seen_mmio = false;
        for word in line.split(|&c| c == b' ') {
            let Some(eq) = word.iter().position(|&c| c == b'=') else {
                continue;
            };
            let (k, v) = (&word[..eq], &word[eq + 1..]);
            match k {
                b"testguest.ip" => cfg.ip = parse_ip(v).unwrap_or(cfg.ip),
                b"testguest.peer" => cfg.peer = parse_ip(v).unwrap_or(cfg.peer),
                b"testguest.mode" => {
                    cfg.mode = match v {
                        b"loop" => Mode::Loop,
                        b"echo" => Mode::Echo,
                        b"pingloop" => Mode::PingLoop,
                        b"disk" => Mode::Disk,
                        _ => Mode::Ping,
                    }
                }
                b"testguest.count" => {
                    cfg.count = parse_u64(v).map_or(cfg.count, |n| n.clamp(1, 1_000_000) as u32)
                }
                b"testguest.interval" => {
                    cfg.interval = parse_u64(v).map_or(cfg.interval, |n| n.max(1_000_000))
                }
                b"testguest.transport" => cfg.pci = v == b"pci",
                b"testguest.tries" => {
                    cfg.tries = parse_u64(v).map_or(cfg.tries, |n| n.clamp(1, 100) as u32)
                }
                b"testguest.write" => cfg.write_sector = parse_u64(v).unwrap_or(cfg.write_sector),
                b"virtio_mmio.device" => {
                    // 4K@0xd0000000:5 — the first device is the NIC.
                    if let Some(at) = v.iter().position(|&c| c == b'@') {
                        let rest = &v[at + 1..];
                        let end = rest.iter().position(|&c| c == b':').unwrap_or(rest.len());
                        if let Some(b) = parse_u64(&rest[..end]) {
                            if !seen_mmio {
                                cfg.mmio_base = b as usize;
                            }
                            if cfg.mmio_count < cfg.mmio_bases.len() {
                                cfg.mmio_bases[cfg.mmio_count] = b as usize;
                                cfg.mmio_count += 1;
                            }
                        }
                    }
                    seen_mmio = true;
                }
                _ => {}
            }
        }
        cfg
    }
}
