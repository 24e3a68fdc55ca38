//! virtio-pci (modern, virtio 1.x) transport for the same virtio-net device
//! model: a PCI function with one 64-bit memory BAR holding the common,
//! ISR, device and notify structures, described by vendor capabilities, and
//! INTx pin A. The register semantics are those of [`VirtioMmioNet`]; this
//! module maps PCI layout onto them, so both transports behave alike.

use super::virtio_mmio::{QUEUE_NOTIFY, VIRTIO_ID_NET, VirtioBackend, VirtioMmioNet};

pub const VENDOR_VIRTIO: u16 = 0x1af4;
/// 0x1040 + virtio device id 1 (net).
pub const DEVICE_VIRTIO_NET: u16 = 0x1041;
/// Size of BAR0.
pub const BAR_SIZE: u64 = 0x4000;
/// Offsets of the structures inside BAR0.
pub const COMMON_CFG: u64 = 0x0000;
pub const ISR_CFG: u64 = 0x1000;
pub const DEVICE_CFG: u64 = 0x2000;
pub const NOTIFY_CFG: u64 = 0x3000;
/// Bytes between two queues' notify addresses.
pub const NOTIFY_MULTIPLIER: u32 = 4;

const CAP_VENDOR: u8 = 0x09;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;
const BAR_MEM64: u32 = 0x4;
const CMD_MEMORY: u16 = 0x2;
const NO_VECTOR: u16 = 0xffff;

/// Guest address of queue `q`'s notify register for a BAR at `bar`.
pub fn notify_address(bar: u64, q: usize) -> u64 {
    bar + NOTIFY_CFG + q as u64 * u64::from(NOTIFY_MULTIPLIER)
}

/// One virtio-net PCI function.
pub struct VirtioPciNet<B: VirtioBackend> {
    dev: VirtioMmioNet<B>,
    config: [u8; 256],
    bar: u64,
    selected_index: u16,
}

impl<B: VirtioBackend> VirtioPciNet<B> {
    /// A device whose BAR0 is placed at `bar` and whose INTx pin A is `irq`.
    pub fn new(dev: VirtioMmioNet<B>, bar: u64, irq: u8) -> Self {
        let mut c = [0u8; 256];
        let id = dev.device_id();
        put16(&mut c, 0x00, VENDOR_VIRTIO);
        put16(&mut c, 0x02, 0x1040 + id as u16);
        put16(&mut c, 0x04, CMD_MEMORY);
        put16(&mut c, 0x06, 0x10); // capabilities list
        c[0x08] = 1; // revision: modern-only device
        let (class, subclass) = if id == VIRTIO_ID_NET {
            (0x02, 0x00) // network, Ethernet
        } else {
            (0x01, 0x00) // mass storage (as QEMU's virtio-blk)
        };
        c[0x0a] = subclass;
        c[0x0b] = class;
        c[0x0e] = 0x00; // header type 0
        put16(&mut c, 0x2c, VENDOR_VIRTIO);
        put16(&mut c, 0x2e, 0x0001);
        c[0x34] = 0x40;
        c[0x3c] = irq;
        c[0x3d] = 1; // INTA#
        let caps = [
            (0x40u8, CFG_COMMON, COMMON_CFG, 0x38u32, 0x50u8),
            (0x50, CFG_ISR, ISR_CFG, 4, 0x60),
            (0x60, CFG_DEVICE, DEVICE_CFG, 0x100, 0x70),
            (0x70, CFG_NOTIFY, NOTIFY_CFG, 0x1000, 0x00),
        ];
        for (at, kind, offset, len, next) in caps {
            let a = usize::from(at);
            c[a] = CAP_VENDOR;
            c[a + 1] = next;
            c[a + 2] = if kind == CFG_NOTIFY { 20 } else { 16 };
            c[a + 3] = kind;
            c[a + 4] = 0; // BAR0
            put32(&mut c, a + 8, offset as u32);
            put32(&mut c, a + 12, len);
            if kind == CFG_NOTIFY {
                put32(&mut c, a + 16, NOTIFY_MULTIPLIER);
            }
        }
        let mut d = VirtioPciNet {
            dev,
            config: c,
            bar,
            selected_index: 0,
        };
        d.set_bar(bar);
        d
    }

    fn set_bar(&mut self, addr: u64) {
        self.bar = addr & !(BAR_SIZE - 1);
        put32(&mut self.config, 0x10, (self.bar as u32) | BAR_MEM64);
        put32(&mut self.config, 0x14, (self.bar >> 32) as u32);
    }

    /// Current BAR0 address.
    pub fn bar(&self) -> u64 {
        self.bar
    }

    /// True when `addr` is inside BAR0 (and memory decoding is on).
    pub fn claims(&self, addr: u64) -> bool {
        get16(&self.config, 0x04) & CMD_MEMORY != 0
            && addr >= self.bar
            && addr < self.bar + BAR_SIZE
    }

    pub fn device(&self) -> &VirtioMmioNet<B> {
        &self.dev
    }

    /// Configuration space read of `data.len()` bytes at `offset`.
    pub fn config_read(&self, offset: usize, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.config.get(offset + i).copied().unwrap_or(0xff);
        }
    }

    /// Configuration space write; only command, BAR0 and the interrupt
    /// line are writable.
    pub fn config_write(&mut self, offset: usize, data: &[u8]) {
        let mut v = [0u8; 4];
        v[..data.len().min(4)].copy_from_slice(&data[..data.len().min(4)]);
        let v32 = u32::from_le_bytes(v);
        match (offset, data.len()) {
            (0x04, 2) | (0x04, 4) => put16(&mut self.config, 0x04, v32 as u16 & 0x7),
            (0x10, 4) => {
                // Sizing writes all ones; the mask reports the size.
                let low = (v32 as u64) & !(BAR_SIZE - 1) & 0xffff_fff0;
                self.set_bar((self.bar & !0xffff_ffff) | low);
            }
            (0x14, 4) => self.set_bar((self.bar & 0xffff_ffff) | (u64::from(v32) << 32)),
            (0x3c, 1) => self.config[0x3c] = data[0],
            _ => {}
        }
    }

    fn dev_read32(&mut self, mmio_off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.read(mmio_off, &mut b);
        u32::from_le_bytes(b)
    }

    fn dev_write32(&mut self, mmio_off: u64, v: u32) {
        self.dev.write(mmio_off, &v.to_le_bytes());
    }

    fn common_read(&mut self, off: u64) -> u64 {
        let sel_q = self.dev.selected_queue();
        match off {
            0x00 => 0, // device_feature_select is write-mostly; reads rarely used
            0x04 => u64::from(self.dev_read32(0x010)),
            0x10 | 0x1a => u64::from(NO_VECTOR),
            0x12 => self.dev.num_queues() as u64,
            0x14 => u64::from(self.dev_read32(0x070) as u8),
            0x15 => u64::from(self.dev_read32(0x0fc) as u8),
            0x18 => u64::from(self.dev.selected_queue_size()),
            0x1c => u64::from(self.dev_read32(0x044)),
            0x1e => sel_q.map_or(0, |_| u64::from(self.queue_index())),
            0x20 => sel_q.map_or(0, |q| q.desc),
            0x28 => sel_q.map_or(0, |q| q.avail),
            0x30 => sel_q.map_or(0, |q| q.used),
            0x24 => sel_q.map_or(0, |q| q.desc >> 32),
            0x2c => sel_q.map_or(0, |q| q.avail >> 32),
            0x34 => sel_q.map_or(0, |q| q.used >> 32),
            _ => 0,
        }
    }

    fn queue_index(&self) -> u16 {
        self.selected_index
    }

    fn common_write(&mut self, off: u64, v: u32) {
        match off {
            0x00 => self.dev_write32(0x014, v),
            0x08 => self.dev_write32(0x024, v),
            0x0c => self.dev_write32(0x020, v),
            0x14 => self.dev_write32(0x070, v & 0xff),
            0x16 => {
                self.selected_index = v as u16;
                self.dev_write32(0x030, v & 0xffff)
            }
            0x18 => self.dev_write32(0x038, v & 0xffff),
            0x1c => self.dev_write32(0x044, v & 0xffff),
            0x20 => self.dev_write32(0x080, v),
            0x24 => self.dev_write32(0x084, v),
            0x28 => self.dev_write32(0x090, v),
            0x2c => self.dev_write32(0x094, v),
            0x30 => self.dev_write32(0x0a0, v),
            0x34 => self.dev_write32(0x0a4, v),
            _ => {} // MSI-X vectors: not supported (INTx only)
        }
    }

    /// A guest read inside BAR0 at `offset`.
    pub fn bar_read(&mut self, offset: u64, data: &mut [u8]) {
        let v: u64 = match offset {
            o if o < COMMON_CFG + 0x38 => self.common_read(o),
            o if (ISR_CFG..ISR_CFG + 4).contains(&o) => {
                // Reading the ISR acknowledges it.
                let isr = self.dev.interrupt_status() & 3;
                self.dev.ack_interrupt(isr);
                u64::from(isr)
            }
            o if (DEVICE_CFG..DEVICE_CFG + 0x100).contains(&o) => {
                self.dev.read(0x100 + (o - DEVICE_CFG), data);
                return;
            }
            _ => 0,
        };
        let bytes = v.to_le_bytes();
        for (d, s) in data.iter_mut().zip(bytes.iter()) {
            *d = *s;
        }
    }

    /// A guest write inside BAR0 at `offset`.
    pub fn bar_write(&mut self, offset: u64, data: &[u8]) {
        let mut v = [0u8; 4];
        let n = data.len().min(4);
        v[..n].copy_from_slice(&data[..n]);
        let v = u32::from_le_bytes(v);
        match offset {
            o if o < COMMON_CFG + 0x38 => self.common_write(o, v),
            o if (NOTIFY_CFG..NOTIFY_CFG + 0x1000).contains(&o) => {
                // Reached only when the ioeventfd did not catch it (BAR moved).
                let q = (o - NOTIFY_CFG) / u64::from(NOTIFY_MULTIPLIER);
                self.dev_write32(QUEUE_NOTIFY, q as u32);
            }
            _ => {}
        }
    }
}

fn put16(c: &mut [u8], at: usize, v: u16) {
    c[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(c: &mut [u8], at: usize, v: u32) {
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get16(c: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([c[at], c[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio_mmio::{QueueConfig, features};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Recorder {
        log: Arc<Mutex<Vec<String>>>,
    }

    impl VirtioBackend for Recorder {
        fn device_features(&self) -> u64 {
            features::F_VERSION_1
        }
        fn activate(&mut self, acked: u64, q: &[QueueConfig]) -> Result<(), String> {
            self.log.lock().unwrap().push(format!(
                "activate {acked:#x} {:?}",
                q.iter()
                    .map(|q| (q.size, q.desc, q.avail, q.used))
                    .collect::<Vec<_>>()
            ));
            Ok(())
        }
        fn reset(&mut self) {}
        fn notify(&self, queue: u16) {
            self.log.lock().unwrap().push(format!("notify {queue}"));
        }
    }

    fn dev() -> (VirtioPciNet<Recorder>, Arc<Mutex<Vec<String>>>) {
        let r = Recorder::default();
        let log = r.log.clone();
        let mmio = VirtioMmioNet::new(r, "52:54:00:aa:bb:cc".parse().unwrap());
        (VirtioPciNet::new(mmio, 0xe000_0000, 5), log)
    }

    fn cfg32<B: VirtioBackend>(d: &VirtioPciNet<B>, off: usize) -> u32 {
        let mut b = [0u8; 4];
        d.config_read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn w<B: VirtioBackend>(d: &mut VirtioPciNet<B>, off: u64, v: u32, len: usize) {
        d.bar_write(off, &v.to_le_bytes()[..len]);
    }

    fn r<B: VirtioBackend>(d: &mut VirtioPciNet<B>, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        d.bar_read(off, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    #[test]
    fn header_identifies_a_modern_virtio_network_function_with_inta() {
        let (d, _) = dev();
        assert_eq!(cfg32(&d, 0), 0x1041_1af4);
        assert_eq!(cfg32(&d, 8) >> 8, 0x02_00_00, "class network/ethernet");
        assert_eq!(cfg32(&d, 8) & 0xff, 1, "revision 1");
        assert_eq!(cfg32(&d, 0x2c), 0x0001_1af4, "subsystem");
        assert_eq!(cfg32(&d, 0x3c) & 0xffff, 0x0105, "pin A, line 5");
        assert_ne!(cfg32(&d, 4) & (0x10 << 16), 0, "capability list present");
    }

    #[test]
    fn bar_sizing_reports_16k_and_relocation_moves_the_window() {
        let (mut d, _) = dev();
        assert_eq!(cfg32(&d, 0x10), 0xe000_0004);
        d.config_write(0x10, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(cfg32(&d, 0x10), 0xffff_c004, "size mask for 16 KiB, 64-bit");
        d.config_write(0x10, &0xe100_0000u32.to_le_bytes());
        d.config_write(0x14, &0u32.to_le_bytes());
        assert_eq!(d.bar(), 0xe100_0000);
        assert!(d.claims(0xe100_3fff));
        assert!(!d.claims(0xe000_0000));
        d.config_write(0x04, &0u16.to_le_bytes());
        assert!(!d.claims(0xe100_0000), "memory decoding off");
    }

    #[test]
    fn capability_chain_describes_common_isr_device_and_notify() {
        let (d, _) = dev();
        let mut at = (cfg32(&d, 0x34) & 0xff) as usize;
        let mut found = Vec::new();
        while at != 0 {
            let head = cfg32(&d, at);
            assert_eq!(head & 0xff, 0x09, "vendor capability");
            let kind = (head >> 24) as u8;
            let offset = cfg32(&d, at + 8);
            found.push((kind, offset));
            if kind == CFG_NOTIFY {
                assert_eq!(cfg32(&d, at + 16), NOTIFY_MULTIPLIER);
            }
            at = ((head >> 8) & 0xff) as usize;
        }
        assert_eq!(found, vec![(1, 0), (3, 0x1000), (4, 0x2000), (2, 0x3000)]);
    }

    #[test]
    fn common_config_drives_negotiation_and_starts_the_backend() {
        let (mut d, log) = dev();
        assert_eq!(r(&mut d, 0x12, 2), 2, "num_queues");
        w(&mut d, 0x14, 0, 1);
        w(&mut d, 0x14, 3, 1);
        w(&mut d, 0x00, 1, 4);
        let hi = r(&mut d, 0x04, 4);
        assert_eq!(hi & 1, 1, "VERSION_1 offered");
        w(&mut d, 0x08, 0, 4);
        w(&mut d, 0x0c, features::NET_F_MAC as u32, 4);
        w(&mut d, 0x08, 1, 4);
        w(&mut d, 0x0c, 1, 4);
        w(&mut d, 0x14, 0xb, 1);
        assert_eq!(r(&mut d, 0x14, 1), 0xb);
        for q in 0..2u32 {
            w(&mut d, 0x16, q, 2);
            assert_eq!(r(&mut d, 0x18, 2), 256, "max size until set");
            assert_eq!(r(&mut d, 0x1e, 2), u64::from(q), "notify offset");
            assert_eq!(r(&mut d, 0x1a, 2), 0xffff, "no MSI-X");
            w(&mut d, 0x18, 128, 2);
            w(&mut d, 0x20, 0x10000 * (q + 1), 4);
            w(&mut d, 0x24, 0, 4);
            w(&mut d, 0x28, 0x10800 * (q + 1), 4);
            w(&mut d, 0x30, 0x11000 * (q + 1), 4);
            w(&mut d, 0x1c, 1, 2);
            assert_eq!(r(&mut d, 0x20, 4), u64::from(0x10000 * (q + 1)));
        }
        w(&mut d, 0x14, 0xf, 1);
        assert!(d.device().is_active());
        assert_eq!(r(&mut d, ISR_CFG, 1), 1);
        let l = log.lock().unwrap();
        assert_eq!(
            l[0],
            format!(
                "activate {:#x} [(128, 65536, 67584, 69632), (128, 131072, 135168, 139264)]",
                features::F_VERSION_1 | features::NET_F_MAC
            )
        );
    }

    #[test]
    fn device_config_holds_the_mac_and_notify_writes_reach_the_backend() {
        let (mut d, log) = dev();
        let mut mac = [0u8; 6];
        d.bar_read(DEVICE_CFG, &mut mac);
        assert_eq!(mac, [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
        w(&mut d, NOTIFY_CFG + 4, 1, 2);
        assert_eq!(log.lock().unwrap().last().unwrap(), "notify 1");
        assert_eq!(notify_address(0xe000_0000, 1), 0xe000_3004);
    }

    /// A backend whose link flips once.
    struct Flap(std::sync::atomic::AtomicU32);

    impl VirtioBackend for Flap {
        fn device_features(&self) -> u64 {
            features::F_VERSION_1
        }
        fn activate(&mut self, _: u64, _: &[QueueConfig]) -> Result<(), String> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn notify(&self, _: u16) {}
        fn link_up(&self) -> bool {
            false
        }
        fn config_events(&self) -> u32 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[test]
    fn isr_reports_a_config_change_once_and_reading_it_acknowledges() {
        let mmio = VirtioMmioNet::new(
            Flap(std::sync::atomic::AtomicU32::new(0)),
            "52:54:00:aa:bb:cc".parse().unwrap(),
        );
        let mut d = VirtioPciNet::new(mmio, 0xe000_0000, 5);
        let mut isr = [0u8; 1];
        d.bar_read(ISR_CFG, &mut isr);
        assert_eq!(isr[0] & 2, 0);
        d.dev
            .backend()
            .0
            .store(1, std::sync::atomic::Ordering::SeqCst);
        d.bar_read(ISR_CFG, &mut isr);
        assert_eq!(isr[0] & 2, 2, "config change");
        d.bar_read(ISR_CFG, &mut isr);
        assert_eq!(isr[0] & 2, 0, "read acknowledged it");
        let mut st = [0u8; 2];
        d.bar_read(DEVICE_CFG + 6, &mut st);
        assert_eq!(u16::from_le_bytes(st), 0, "link down in device config");
    }

    #[test]
    fn a_block_device_is_a_mass_storage_function_with_one_queue() {
        struct Blk;
        impl VirtioBackend for Blk {
            fn device_id(&self) -> u32 {
                2
            }
            fn num_queues(&self) -> usize {
                1
            }
            fn config_space(&self) -> Option<Vec<u8>> {
                Some(vec![0x00, 0x08, 0, 0, 0, 0, 0, 0])
            }
            fn device_features(&self) -> u64 {
                features::F_VERSION_1
            }
            fn activate(&mut self, _: u64, q: &[QueueConfig]) -> Result<(), String> {
                assert_eq!(q.len(), 1);
                Ok(())
            }
            fn reset(&mut self) {}
            fn notify(&self, _: u16) {}
        }
        let mut d = VirtioPciNet::new(
            VirtioMmioNet::new(Blk, "52:54:00:00:00:01".parse().unwrap()),
            0xe000_0000,
            6,
        );
        assert_eq!(cfg32(&d, 0), 0x1042_1af4);
        assert_eq!(cfg32(&d, 8) >> 8, 0x01_00_00, "class mass storage");
        assert_eq!(r(&mut d, 0x12, 2), 1, "num_queues");
        let mut cap = [0u8; 8];
        d.bar_read(DEVICE_CFG, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), 0x800, "capacity from the device");
        w(&mut d, 0x16, 1, 2);
        assert_eq!(r(&mut d, 0x18, 2), 0, "no second queue");
    }
}
