//! A test frontend (the vhost crate's `Frontend`) against real ports over a
//! unix socket: a well-behaved one moving frames both ways, and hostile ones
//! sending malformed memory tables and ring addresses. The port must report
//! errors and keep serving; the test process must not crash.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use datapath::packet::{Packet, PacketBatch};
use datapath::port::{Port, RxQueue};
use vhost::vhost_user::Frontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vhost_port::{VhostUserOptions, VhostUserPort};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

const MEM: u64 = 1 << 20;
const UVA: u64 = 0x7000_0000_0000;
const QSIZE: u16 = 256;
const F_VERSION_1: u64 = 1 << 32;

static N: AtomicUsize = AtomicUsize::new(0);

fn sock_path(tag: &str) -> PathBuf {
    let n = N.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!("/tmp/vh-{tag}-{}-{n}.sock", std::process::id()))
}

/// A server port `vh-TAG` with default options, listening on a fresh socket
/// path for `tag`.
fn server_port(tag: &str) -> (PathBuf, VhostUserPort) {
    let path = sock_path(tag);
    let port =
        VhostUserPort::server(&format!("vh-{tag}"), &path, VhostUserOptions::default()).unwrap();
    (path, port)
}

fn memfd(size: u64) -> File {
    let name = c"vh-test-mem";
    // SAFETY: `name` is a valid NUL-terminated string; the returned fd is
    // checked and then owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create failed");
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(size).unwrap();
    f
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The guest side: its memory (mapped here too) and a frontend connection.
struct Guest {
    fe: Frontend,
    mem: GuestMemoryMmap<()>,
    file: File,
    calls: Vec<EventFd>,
    kicks: Vec<EventFd>,
}

fn desc_gpa(q: usize) -> u64 {
    q as u64 * 0x4000
}

impl Guest {
    fn connect(path: &PathBuf) -> Guest {
        let fe = Frontend::connect(path, 2).expect("connect");
        Self::with(fe)
    }

    fn with(fe: Frontend) -> Guest {
        let file = memfd(MEM);
        let region =
            MmapRegion::from_file(FileOffset::new(file.try_clone().unwrap(), 0), MEM as usize)
                .unwrap();
        let mem = GuestMemoryMmap::from_regions(vec![
            GuestRegionMmap::new(region, GuestAddress(0)).unwrap(),
        ])
        .unwrap();
        Guest {
            fe,
            mem,
            file,
            calls: Vec::new(),
            kicks: Vec::new(),
        }
    }

    fn region(&self, size: u64) -> VhostUserMemoryRegionInfo {
        VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: UVA,
            mmap_offset: 0,
            mmap_handle: self.file.as_raw_fd(),
        }
    }

    fn negotiate(&mut self) {
        self.fe.set_owner().unwrap();
        let f = self.fe.get_features().unwrap();
        assert!(f & F_VERSION_1 != 0);
        // No PROTOCOL_FEATURES: rings are enabled as soon as they start.
        self.fe.set_features(F_VERSION_1).unwrap();
    }

    fn ring_config(&self, q: usize, desc_uva: u64) -> VringConfigData {
        VringConfigData {
            queue_max_size: QSIZE,
            queue_size: QSIZE,
            flags: 0,
            desc_table_addr: desc_uva,
            avail_ring_addr: UVA + desc_gpa(q) + 0x1000,
            used_ring_addr: UVA + desc_gpa(q) + 0x2000,
            log_addr: None,
        }
    }

    fn setup_ring(&mut self, q: usize, desc_uva: u64) -> Result<(), vhost::Error> {
        self.fe.set_vring_num(q, QSIZE)?;
        self.fe.set_vring_addr(q, &self.ring_config(q, desc_uva))?;
        self.fe.set_vring_base(q, 0)?;
        let call = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = EventFd::new(EFD_NONBLOCK).unwrap();
        self.fe.set_vring_call(q, &call)?;
        self.fe.set_vring_kick(q, &kick)?;
        self.calls.push(call);
        self.kicks.push(kick);
        Ok(())
    }

    fn start(&mut self) {
        self.negotiate();
        self.fe.set_mem_table(&[self.region(MEM)]).unwrap();
        for q in 0..2 {
            self.setup_ring(q, UVA + desc_gpa(q)).unwrap();
        }
    }

    /// Posts one buffer on ring `q` (descriptor `slot`).
    fn post(&self, q: usize, slot: u16, addr: u64, len: u32, flags: u16) {
        let d = desc_gpa(q);
        let at = GuestAddress(d + 16 * u64::from(slot));
        self.mem.write_obj(addr, at).unwrap();
        self.mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at.0 + 12)).unwrap();
        self.mem.write_obj(0u16, GuestAddress(at.0 + 14)).unwrap();
        let avail = d + 0x1000;
        let idx: u16 = self.mem.read_obj(GuestAddress(avail + 2)).unwrap();
        self.mem
            .write_obj(slot, GuestAddress(avail + 4 + 2 * u64::from(idx % QSIZE)))
            .unwrap();
        self.mem
            .write_obj(idx + 1, GuestAddress(avail + 2))
            .unwrap();
    }

    fn used_idx(&self, q: usize) -> u16 {
        self.mem
            .read_obj(GuestAddress(desc_gpa(q) + 0x2002))
            .unwrap()
    }
}

fn rx_until(rxq: &mut dyn RxQueue, n: usize) -> PacketBatch {
    let mut batch = PacketBatch::new();
    wait_for("frames from the guest", || {
        rxq.rx_batch(&mut batch).unwrap();
        batch.len() >= n
    });
    batch
}

#[test]
fn a_well_behaved_frontend_moves_frames_both_ways_and_can_reconnect() {
    let (path, port) = server_port("good");
    let mut rxq = port.open_rxq(0).unwrap();
    let mut txq = port.open_txq(0).unwrap();
    assert!(!port.link_up());

    for round in 0..2u8 {
        let mut g = Guest::connect(&path);
        g.start();
        wait_for("link up", || port.link_up());
        assert_eq!(port.status()["vring_layout"], "split");

        // Guest transmits: header + frame on ring 1.
        let frame: Vec<u8> = (0..60u8).map(|i| i ^ round).collect();
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(&frame);
        g.mem.write_slice(&buf, GuestAddress(0x1_0000)).unwrap();
        g.post(1, 0, 0x1_0000, buf.len() as u32, 0);
        let batch = rx_until(rxq.as_mut(), 1);
        assert_eq!(batch.packets()[0].data(), &frame[..]);
        assert_eq!(g.used_idx(1), 1);

        // Switch transmits into the guest's receive ring 0.
        g.post(0, 0, 0x2_0000, 2048, 2);
        let mut pkt = Packet::from_bytes(&frame);
        wait_for("guest receive", || {
            txq.send(&mut pkt).unwrap();
            txq.flush().unwrap();
            g.used_idx(0) == 1
        });
        let mut got = vec![0u8; 60];
        g.mem.read_slice(&mut got, GuestAddress(0x2_000c)).unwrap();
        assert_eq!(got, frame);
        assert!(g.calls[0].read().is_ok(), "guest was interrupted");

        drop(g);
        wait_for("link down", || !port.link_up());
    }
    assert_eq!(port.stats().snapshot().rx_packets, 2);
    assert!(port.stats().snapshot().tx_packets >= 2);
    drop(port);
    assert!(!path.exists(), "socket removed with the port");
}

#[test]
fn a_memory_table_larger_than_its_file_is_refused_and_the_port_serves_the_next_frontend() {
    let (path, port) = server_port("memtab");
    let mut rxq = port.open_rxq(0).unwrap();
    {
        let mut g = Guest::connect(&path);
        g.negotiate();
        // 1 GiB region over a 1 MiB file: touching the tail would SIGBUS.
        let _ = g.fe.set_mem_table(&[g.region(1 << 30)]);
        wait_for("error report", || port.last_error().is_some());
        let e = port.last_error().unwrap();
        assert!(e.contains("memory region"), "{e}");
        assert!(!port.link_up());
        let mut batch = PacketBatch::new();
        assert_eq!(rxq.rx_batch(&mut batch).unwrap(), 0);
    }
    // The next frontend works.
    let mut g = Guest::connect(&path);
    g.start();
    wait_for("link up", || port.link_up());
    let mut buf = vec![0u8; 12];
    buf.extend_from_slice(&[0xab; 60]);
    g.mem.write_slice(&buf, GuestAddress(0x1_0000)).unwrap();
    g.post(1, 0, 0x1_0000, buf.len() as u32, 0);
    let batch = rx_until(rxq.as_mut(), 1);
    assert_eq!(batch.packets()[0].data(), &[0xab; 60][..]);
}

#[test]
fn ring_addresses_outside_the_memory_table_are_refused() {
    let (path, port) = server_port("ringaddr");
    let mut g = Guest::connect(&path);
    g.negotiate();
    g.fe.set_mem_table(&[g.region(MEM)]).unwrap();
    g.fe.set_vring_num(0, QSIZE).unwrap();
    // A user address no region covers.
    let _ = g.fe.set_vring_addr(0, &g.ring_config(0, UVA + 4 * MEM));
    wait_for("error report", || port.last_error().is_some());
    assert!(!port.link_up());
}

#[test]
fn a_ring_running_off_the_end_of_guest_memory_stops_that_queue_and_counts_an_error() {
    let (path, port) = server_port("ringend");
    let mut rxq = port.open_rxq(0).unwrap();
    let mut g = Guest::connect(&path);
    g.negotiate();
    g.fe.set_mem_table(&[g.region(MEM)]).unwrap();
    g.setup_ring(0, UVA + desc_gpa(0)).unwrap();
    // Descriptor table starting 16 bytes before the end of memory.
    g.setup_ring(1, UVA + MEM - 16).unwrap();
    wait_for("link up", || port.link_up());
    let mut batch = PacketBatch::new();
    wait_for("rx error", || {
        let _ = rxq.rx_batch(&mut batch);
        port.stats().snapshot().rx_errors > 0
    });
    assert_eq!(batch.len(), 0);
    let e = port.last_error().unwrap();
    assert!(e.contains("stopped"), "{e}");
    // The queue stays stopped until the frontend sets it up again.
    assert!(!port.link_up());
}

#[test]
fn a_frontend_that_outlived_the_switch_resumes_its_ring_at_the_used_index() {
    let path = sock_path("outlive");
    let frame = |n: u8| {
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(&[n; 64]);
        buf
    };
    let mut g;
    {
        let port = VhostUserPort::server("vh-outlive", &path, VhostUserOptions::default()).unwrap();
        let mut rxq = port.open_rxq(0).unwrap();
        g = Guest::connect(&path);
        g.start();
        wait_for("link up", || port.link_up());
        for n in 0..3u8 {
            let addr = 0x1_0000 + 0x1000 * u64::from(n);
            g.mem.write_slice(&frame(n), GuestAddress(addr)).unwrap();
            g.post(1, u16::from(n), addr, frame(n).len() as u32, 0);
        }
        let batch = rx_until(rxq.as_mut(), 3);
        assert_eq!(batch.len(), 3);
        assert_eq!(g.used_idx(1), 3);
    }
    // The switch is gone and a new one serves the same socket; the guest
    // keeps its memory and rings and starts over with SET_VRING_BASE 0.
    let port = VhostUserPort::server("vh-outlive", &path, VhostUserOptions::default()).unwrap();
    let mut rxq = port.open_rxq(0).unwrap();
    g.fe = Frontend::connect(&path, 2).expect("connect");
    g.calls.clear();
    g.kicks.clear();
    g.start();
    wait_for("link up", || port.link_up());
    g.mem
        .write_slice(&frame(9), GuestAddress(0x2_0000))
        .unwrap();
    g.post(1, 3, 0x2_0000, frame(9).len() as u32, 0);
    let batch = rx_until(rxq.as_mut(), 1);
    std::thread::sleep(Duration::from_millis(100));
    let mut more = PacketBatch::new();
    rxq.rx_batch(&mut more).unwrap();
    assert_eq!(batch.len() + more.len(), 1, "old descriptors were replayed");
    assert_eq!(batch.packets()[0].data(), &[9u8; 64][..]);
    assert_eq!(g.used_idx(1), 4);
}

#[test]
fn a_client_port_connects_to_a_late_socket_and_reconnects_after_a_restart() {
    let path = sock_path("client");
    let port = VhostUserPort::client("vh-client", &path, VhostUserOptions::default()).unwrap();
    let mut rxq = port.open_rxq(0).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!port.link_up());
    for round in 0..2u8 {
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (stream, _) = listener.accept().unwrap();
        let mut g = Guest::with(Frontend::from_stream(stream, 2));
        g.start();
        wait_for("link up", || port.link_up());
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(&[round; 64]);
        g.mem.write_slice(&buf, GuestAddress(0x1_0000)).unwrap();
        g.post(1, 0, 0x1_0000, buf.len() as u32, 0);
        let batch = rx_until(rxq.as_mut(), 1);
        assert_eq!(batch.packets()[0].data(), &[round; 64][..]);
        drop(g);
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        wait_for("link down", || !port.link_up());
    }
}

#[test]
fn with_two_queue_pairs_each_receive_queue_polls_its_own_guest_ring() {
    let path = sock_path("mq");
    let opts = VhostUserOptions {
        n_pairs: 2,
        ..Default::default()
    };
    let port = VhostUserPort::server("vh-mq", &path, opts).unwrap();
    assert_eq!(port.info().n_rxq, 2);
    assert!(port.open_rxq(2).is_err());
    let mut rxq0 = port.open_rxq(0).unwrap();
    let mut rxq1 = port.open_rxq(1).unwrap();
    let mut g = Guest::with(Frontend::connect(&path, 4).unwrap());
    g.negotiate();
    g.fe.set_mem_table(&[g.region(MEM)]).unwrap();
    for q in 0..4 {
        g.setup_ring(q, UVA + desc_gpa(q)).unwrap();
    }
    wait_for("link up", || port.link_up());
    // A frame on the second pair's transmit ring (vring 3).
    let mut buf = vec![0u8; 12];
    buf.extend_from_slice(&[0x33; 60]);
    g.mem.write_slice(&buf, GuestAddress(0x1_0000)).unwrap();
    g.post(3, 0, 0x1_0000, buf.len() as u32, 0);
    let batch = rx_until(rxq1.as_mut(), 1);
    assert_eq!(batch.packets()[0].data(), &[0x33; 60][..]);
    let mut empty = PacketBatch::new();
    assert_eq!(rxq0.rx_batch(&mut empty).unwrap(), 0);
    assert_eq!(g.used_idx(3), 1);
}

const F_RING_PACKED: u64 = 1 << 34;
const P_AVAIL: u16 = 1 << 7;
const P_USED: u16 = 1 << 15;

impl Guest {
    /// Negotiates packed rings and sets both rings up at slot 0 with the
    /// wrap counters set (bit 15 of the base).
    fn start_packed(&mut self) {
        self.fe.set_owner().unwrap();
        let f = self.fe.get_features().unwrap();
        assert!(f & F_RING_PACKED != 0, "packed rings are offered");
        self.fe.set_features(F_VERSION_1 | F_RING_PACKED).unwrap();
        self.fe.set_mem_table(&[self.region(MEM)]).unwrap();
        for q in 0..2 {
            self.fe.set_vring_num(q, QSIZE).unwrap();
            self.fe
                .set_vring_addr(q, &self.ring_config(q, UVA + desc_gpa(q)))
                .unwrap();
            self.fe.set_vring_base(q, 1 << 15).unwrap();
            let call = EventFd::new(EFD_NONBLOCK).unwrap();
            let kick = EventFd::new(EFD_NONBLOCK).unwrap();
            self.fe.set_vring_call(q, &call).unwrap();
            self.fe.set_vring_kick(q, &kick).unwrap();
            self.calls.push(call);
            self.kicks.push(kick);
        }
    }

    /// Posts one buffer as packed descriptor number `n` of ring `q` (slot
    /// and wrap counter follow from `n`), buffer id = slot.
    fn post_packed(&self, q: usize, n: usize, addr: u64, len: u32, flags: u16) {
        let slot = (n % usize::from(QSIZE)) as u16;
        let wrap = (n / usize::from(QSIZE)).is_multiple_of(2);
        let at = GuestAddress(desc_gpa(q) + 16 * u64::from(slot));
        self.mem.write_obj(addr, at).unwrap();
        self.mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
        self.mem.write_obj(slot, GuestAddress(at.0 + 12)).unwrap();
        let avail = if wrap { P_AVAIL } else { P_USED };
        self.mem
            .write_obj(flags | avail, GuestAddress(at.0 + 14))
            .unwrap();
    }

    /// The (id, len) of packed descriptor number `n` of ring `q`, once used.
    fn used_packed(&self, q: usize, n: usize) -> Option<(u16, u32)> {
        let slot = (n % usize::from(QSIZE)) as u16;
        let wrap = (n / usize::from(QSIZE)).is_multiple_of(2);
        let at = desc_gpa(q) + 16 * u64::from(slot);
        let f: u16 = self.mem.read_obj(GuestAddress(at + 14)).unwrap();
        let want = if wrap { P_AVAIL | P_USED } else { 0 };
        if f & (P_AVAIL | P_USED) != want {
            return None;
        }
        let len: u32 = self.mem.read_obj(GuestAddress(at + 8)).unwrap();
        let id: u16 = self.mem.read_obj(GuestAddress(at + 12)).unwrap();
        Some((id, len))
    }
}

#[test]
fn a_packed_ring_frontend_moves_frames_both_ways_over_several_laps_and_gets_its_base_back() {
    let (path, port) = server_port("packed");
    let mut rxq = port.open_rxq(0).unwrap();
    let mut txq = port.open_txq(0).unwrap();
    let mut g = Guest::connect(&path);
    g.start_packed();
    wait_for("link up", || port.link_up());
    let st = port.status();
    assert_eq!(st["vring_layout"], "packed", "{st:?}");
    assert_eq!(st["status"], "connected");

    // Two and a half laps of the 256-entry rings, each way.
    let frames = 640;
    for n in 0..frames {
        let frame: Vec<u8> = (0..60u8).map(|i| i ^ n as u8).collect();
        let mut buf = vec![0u8; 12];
        buf.extend_from_slice(&frame);
        g.mem.write_slice(&buf, GuestAddress(0x1_0000)).unwrap();
        g.post_packed(1, n, 0x1_0000, buf.len() as u32, 0);
        let batch = rx_until(rxq.as_mut(), 1);
        assert_eq!(batch.packets()[0].data(), &frame[..], "frame {n}");
        let slot = (n % usize::from(QSIZE)) as u16;
        assert_eq!(g.used_packed(1, n), Some((slot, 0)), "frame {n}");

        g.post_packed(0, n, 0x2_0000, 2048, 2);
        let mut pkt = Packet::from_bytes(&frame);
        wait_for("guest receive", || {
            txq.send(&mut pkt).unwrap();
            txq.flush().unwrap();
            g.used_packed(0, n).is_some()
        });
        assert_eq!(g.used_packed(0, n), Some((slot, 72)), "frame {n}");
        let mut got = vec![0u8; 60];
        g.mem.read_slice(&mut got, GuestAddress(0x2_000c)).unwrap();
        assert_eq!(got, frame);
    }
    assert!(g.calls[0].read().is_ok(), "guest was interrupted");
    // 640 = 2 × 256 + 128: slot 128, wrap counter set again.
    for q in 0..2 {
        assert_eq!(g.fe.get_vring_base(q).unwrap(), 128 | 1 << 15);
    }
    assert_eq!(port.stats().snapshot().rx_packets, frames as u64);
    assert_eq!(port.stats().snapshot().rx_errors, 0);
}
