//! Output on COM1 (polling the line status register).

use core::arch::asm;

const COM1: u16 = 0x3f8;

fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to the emulated UART.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port I/O to the emulated UART.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

fn putc(c: u8) {
    // Transmit holding register empty (LSR bit 5); bounded wait.
    for _ in 0..1000 {
        if inb(COM1 + 5) & 0x20 != 0 {
            break;
        }
    }
    outb(COM1, c);
}

/// A byte typed on the console, if any.
pub fn getc() -> Option<u8> {
    (inb(COM1 + 5) & 1 != 0).then(|| inb(COM1))
}

pub fn putc_pub(c: u8) {
    putc(c);
}

pub fn print(s: &str) {
    for b in s.bytes() {
        putc(b);
    }
}

pub fn print_dec(mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        putc(b);
    }
}

fn hex2(b: u8) {
    const H: &[u8; 16] = b"0123456789abcdef";
    putc(H[usize::from(b >> 4)]);
    putc(H[usize::from(b & 0xf)]);
}

pub fn print_mac(m: &[u8; 6]) {
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            putc(b':');
        }
        hex2(*b);
    }
}

pub fn print_ip(ip: [u8; 4]) {
    for (i, b) in ip.iter().enumerate() {
        if i > 0 {
            putc(b'.');
        }
        print_dec(u64::from(*b));
    }
}
