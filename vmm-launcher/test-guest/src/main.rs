//! Freestanding x86-64 test guest for vmm-launcher.
//!
//! Entered in 64-bit mode with identity paging and `rsi` pointing at the
//! Linux zero page. Drives the first virtio-net device by polling (no
//! interrupts) on virtio-mmio, or on virtio-pci with
//! `testguest.transport=pci`, then either resolves and pings a peer (`testguest.mode=ping`,
//! the default) or sends frames and expects them back
//! (`testguest.mode=loop`, for a backend that reflects them), or, with
//! `testguest.mode=echo`, echoes console input until 'q'. Prints the
//! outcome on COM1 and resets the machine through the i8042.

#![no_std]
#![no_main]

mod blk;
mod cmdline;
mod net;
mod pci;
mod serial;
mod virtio;

use core::arch::{asm, global_asm};

use serial::{print, print_dec, print_ip, print_mac};

global_asm!(
    ".section .text._start",
    ".global _start",
    "_start:",
    "lea rsp, [rip + {stack} + {size}]",
    "mov rdi, rsi",
    "call {main}",
    "2: hlt",
    "jmp 2b",
    stack = sym STACK,
    size = const STACK_SIZE,
    main = sym guest_main,
);

const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

static mut STACK: Stack = Stack([0; STACK_SIZE]);

/// Reads the time stamp counter.
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc has no side effects beyond reading the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

fn poweroff() -> ! {
    // SAFETY: port I/O to the i8042 command port; 0xfe pulses reset.
    unsafe { asm!("out 0x64, al", in("al") 0xfeu8, options(nomem, nostack)) };
    loop {
        // SAFETY: halting with nothing left to do.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

fn fail(msg: &str) -> ! {
    print("TESTGUEST: FAIL ");
    print(msg);
    print("\n");
    poweroff()
}

extern "C" fn guest_main(zero_page: *const u8) -> ! {
    print("TESTGUEST: start\n");
    let cfg = cmdline::Config::from_zero_page(zero_page);
    if let cmdline::Mode::Echo = cfg.mode {
        run_echo();
    }
    if let cmdline::Mode::Disk = cfg.mode {
        match blk::run_disk(&cfg) {
            Ok(()) => print("TESTGUEST: PASS\n"),
            Err(e) => fail(e),
        }
        poweroff();
    }
    let probe = if cfg.pci {
        virtio::NetDevice::init_pci()
    } else {
        virtio::NetDevice::init_mmio(cfg.mmio_base)
    };
    let mut dev = match probe {
        Ok(d) => d,
        Err(e) => fail(e),
    };
    print("TESTGUEST: mac=");
    print_mac(&dev.mac);
    print(" ip=");
    print_ip(cfg.ip);
    print(" peer=");
    print_ip(cfg.peer);
    print(if cfg.pci {
        " transport=pci\n"
    } else {
        " transport=mmio\n"
    });
    match cfg.mode {
        cmdline::Mode::Ping => run_ping(&mut dev, &cfg),
        cmdline::Mode::Loop => run_loop(&mut dev, cfg.count),
        cmdline::Mode::PingLoop => run_ping_loop(&mut dev, &cfg),
        cmdline::Mode::Echo | cmdline::Mode::Disk => {}
    }
    poweroff()
}

const TIMEOUT_TSC: u64 = 4_000_000_000;

fn run_echo() -> ! {
    print("TESTGUEST: echo ready\n");
    loop {
        match serial::getc() {
            Some(b'q') => {
                print("TESTGUEST: bye\n");
                poweroff();
            }
            Some(c) => serial::putc_pub(c),
            None => {
                // Poll the UART about every millisecond.
                let start = rdtsc();
                while rdtsc().wrapping_sub(start) < 2_000_000 {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

fn run_ping(dev: &mut virtio::NetDevice, cfg: &cmdline::Config) {
    let mut frame = [0u8; 128];
    let mut peer_mac = None;
    for _attempt in 0..cfg.tries {
        let n = net::arp_request(&mut frame, &dev.mac, cfg.ip, cfg.peer);
        dev.send(&frame[..n]);
        let start = rdtsc();
        while rdtsc().wrapping_sub(start) < TIMEOUT_TSC && peer_mac.is_none() {
            dev.poll_rx(|f| {
                if let Some(m) = net::parse_arp_reply(f, cfg.ip, cfg.peer) {
                    peer_mac = Some(m);
                }
            });
        }
        if peer_mac.is_some() {
            break;
        }
    }
    let Some(peer_mac) = peer_mac else {
        fail("arp: no reply");
    };
    print("TESTGUEST: arp ok ");
    print_ip(cfg.peer);
    print(" is ");
    print_mac(&peer_mac);
    print("\n");
    let mut replies = 0u32;
    for seq in 1..=cfg.count as u16 {
        let n = net::icmp_echo_request(
            &mut frame, &dev.mac, &peer_mac, cfg.ip, cfg.peer, 0x4652, seq,
        );
        dev.send(&frame[..n]);
        let start = rdtsc();
        let mut got = false;
        while rdtsc().wrapping_sub(start) < TIMEOUT_TSC && !got {
            dev.poll_rx(|f| {
                if net::is_echo_reply(f, cfg.peer, cfg.ip, 0x4652, seq) {
                    got = true;
                }
            });
        }
        if got {
            replies += 1;
        }
    }
    if replies == 0 {
        fail("ping: no echo reply");
    }
    print("TESTGUEST: ping ok ");
    print_dec(u64::from(replies));
    print("/");
    print_dec(u64::from(cfg.count));
    print(" replies\n");
    print("TESTGUEST: PASS\n");
}

/// Resolves the peer, then pings it `count` times at a fixed pace,
/// printing `TESTGUEST: reply SEQ` for each answer and `TESTGUEST: link
/// down|up (config interrupt)` whenever the device's link changes. Sends
/// nothing while the link is down (as a driver with carrier off).
fn run_ping_loop(dev: &mut virtio::NetDevice, cfg: &cmdline::Config) {
    let mut frame = [0u8; 128];
    let mut peer_mac = None;
    let mut link = dev.link_up();
    let mut replies = 0u64;
    let mut seq: u32 = 0;
    while seq < cfg.count {
        let up = dev.link_up();
        let irq = dev.take_config_interrupt();
        if up != link || irq {
            print(if up {
                "TESTGUEST: link up"
            } else {
                "TESTGUEST: link down"
            });
            print(if irq { " (config interrupt)\n" } else { "\n" });
            link = up;
        }
        let start = rdtsc();
        if up {
            match peer_mac {
                None => {
                    let n = net::arp_request(&mut frame, &dev.mac, cfg.ip, cfg.peer);
                    dev.send(&frame[..n]);
                }
                Some(m) => {
                    seq += 1;
                    let n = net::icmp_echo_request(
                        &mut frame, &dev.mac, &m, cfg.ip, cfg.peer, 0x4653, seq as u16,
                    );
                    dev.send(&frame[..n]);
                }
            }
        }
        while rdtsc().wrapping_sub(start) < cfg.interval {
            dev.poll_rx(|f| {
                if peer_mac.is_none()
                    && let Some(m) = net::parse_arp_reply(f, cfg.ip, cfg.peer)
                {
                    peer_mac = Some(m);
                    print("TESTGUEST: arp ok\n");
                }
                if seq > 0 && net::is_echo_reply(f, cfg.peer, cfg.ip, 0x4653, seq as u16) {
                    replies += 1;
                    print("TESTGUEST: reply ");
                    print_dec(u64::from(seq));
                    print("\n");
                }
            });
        }
    }
    print("TESTGUEST: pingloop ");
    print_dec(replies);
    print("/");
    print_dec(u64::from(cfg.count));
    print(" replies\n");
    print("TESTGUEST: PASS\n");
}

fn run_loop(dev: &mut virtio::NetDevice, count: u32) {
    let mut frame = [0u8; 128];
    let mut seen = [false; 64];
    let count = count.min(64);
    let mut received = 0u32;
    // Frames sent before the backend's queues run are lost, as on a real
    // link: what has not come back is sent again, up to 8 times in all.
    const ROUNDS: u64 = 8;
    for _ in 0..ROUNDS {
        for seq in 0..count {
            if !seen[seq as usize] {
                let n = net::loop_frame(&mut frame, &dev.mac, seq);
                dev.send(&frame[..n]);
            }
        }
        let start = rdtsc();
        while rdtsc().wrapping_sub(start) < TIMEOUT_TSC * 2 / ROUNDS && received < count {
            dev.poll_rx(|f| {
                if let Some(seq) = net::parse_loop_frame(f)
                    && let Some(s) = seen.get_mut(seq as usize)
                    && !*s
                    && seq < count
                {
                    *s = true;
                    received += 1;
                }
            });
        }
        if received == count {
            break;
        }
    }
    print("TESTGUEST: loop ");
    print_dec(u64::from(received));
    print("/");
    print_dec(u64::from(count));
    print(" frames back\n");
    if received == count {
        print("TESTGUEST: PASS\n");
    } else {
        fail("loop: frames missing");
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    fail("panic")
}

// Freestanding memory primitives (no libc here).

/// # Safety
/// Standard memcpy contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: caller guarantees both ranges are valid and disjoint.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack))
    };
    dst
}

/// # Safety
/// Standard memmove contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize + n) {
        // SAFETY: forward copy is safe when dst is below src or disjoint.
        unsafe { memcpy(dst, src, n) }
    } else {
        let mut i = n;
        while i > 0 {
            i -= 1;
            // SAFETY: i < n, both ranges valid per contract.
            unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        }
        dst
    }
}

/// # Safety
/// Standard memset contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: caller guarantees dst..dst+n is valid.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack))
    };
    dst
}

/// # Safety
/// Standard memcmp contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, both ranges valid per contract.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// Standard bcmp contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the prebuilt libcore's unwind tables; never called with
/// panic=abort.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
