//! virtio-mmio (version 2) transport of a virtio-net device whose queues are
//! served elsewhere (a vhost-user backend). Only the register file lives
//! here: features, queue configuration, status and the config space (MAC).

use crate::mac::MacAddr;

/// Device id of a network card.
pub const VIRTIO_ID_NET: u32 = 1;
/// Number of virtqueues (one rx/tx pair).
pub const NUM_QUEUES: usize = 2;
/// Largest queue the driver may configure.
pub const QUEUE_MAX: u16 = 256;
/// Offset of the QueueNotify register (target of the kick ioeventfds).
pub const QUEUE_NOTIFY: u64 = 0x50;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x4652_5653; // "FRVS"
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
const STATUS_FAILED: u32 = 0x80;
const CONFIG_SPACE: u64 = 0x100;
const NET_S_LINK_UP: u16 = 1;

/// Feature bits this transport understands.
pub mod features {
    pub const NET_F_CSUM: u64 = 1 << 0;
    pub const NET_F_GUEST_CSUM: u64 = 1 << 1;
    pub const NET_F_MAC: u64 = 1 << 5;
    pub const NET_F_GUEST_TSO4: u64 = 1 << 7;
    pub const NET_F_GUEST_TSO6: u64 = 1 << 8;
    pub const NET_F_GUEST_ECN: u64 = 1 << 9;
    pub const NET_F_GUEST_UFO: u64 = 1 << 10;
    pub const NET_F_HOST_TSO4: u64 = 1 << 11;
    pub const NET_F_HOST_TSO6: u64 = 1 << 12;
    pub const NET_F_HOST_ECN: u64 = 1 << 13;
    pub const NET_F_HOST_UFO: u64 = 1 << 14;
    pub const NET_F_MRG_RXBUF: u64 = 1 << 15;
    pub const NET_F_STATUS: u64 = 1 << 16;
    pub const F_NOTIFY_ON_EMPTY: u64 = 1 << 24;
    pub const F_ANY_LAYOUT: u64 = 1 << 27;
    pub const RING_F_INDIRECT_DESC: u64 = 1 << 28;
    pub const RING_F_EVENT_IDX: u64 = 1 << 29;
    pub const F_VERSION_1: u64 = 1 << 32;
}

impl VirtioBackend for Box<dyn VirtioBackend> {
    fn device_id(&self) -> u32 {
        (**self).device_id()
    }
    fn num_queues(&self) -> usize {
        (**self).num_queues()
    }
    fn config_space(&self) -> Option<Vec<u8>> {
        (**self).config_space()
    }
    fn device_features(&self) -> u64 {
        (**self).device_features()
    }
    fn activate(&mut self, acked: u64, queues: &[QueueConfig]) -> Result<(), String> {
        (**self).activate(acked, queues)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn notify(&self, queue: u16) {
        (**self).notify(queue)
    }
    fn link_up(&self) -> bool {
        (**self).link_up()
    }
    fn config_events(&self) -> u32 {
        (**self).config_events()
    }
}

/// One virtqueue as the driver configured it (guest physical addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub size: u16,
    pub ready: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

/// The device model behind a virtio transport (net by default; a block
/// device overrides the id, queue count and config space).
pub trait VirtioBackend: Send {
    /// Virtio device id (1 net, 2 block).
    fn device_id(&self) -> u32 {
        VIRTIO_ID_NET
    }
    /// Number of virtqueues (at most [`NUM_QUEUES`]).
    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }
    /// The device-specific config space; `None` for the net layout (MAC,
    /// status, one queue pair, MTU) built by the transport.
    fn config_space(&self) -> Option<Vec<u8>> {
        None
    }
    /// Feature bits offered to the driver (transport/device bits included).
    fn device_features(&self) -> u64;
    /// The driver set DRIVER_OK: start the queues.
    fn activate(&mut self, acked: u64, queues: &[QueueConfig]) -> Result<(), String>;
    /// The driver reset the device: stop the queues.
    fn reset(&mut self);
    /// A notification reached the VMM instead of the ioeventfd.
    fn notify(&self, queue: u16);
    /// Link state for the config space (VIRTIO_NET_S_LINK_UP).
    fn link_up(&self) -> bool {
        true
    }
    /// A counter bumped on every configuration change (link up or down);
    /// the transport raises the config-change interrupt bit when it moves.
    fn config_events(&self) -> u32 {
        0
    }
}

/// Register state of one virtio-mmio net device.
pub struct VirtioMmioNet<B: VirtioBackend> {
    backend: B,
    mac: MacAddr,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: [QueueConfig; NUM_QUEUES],
    status: u32,
    active: bool,
    config_generation: u32,
    /// Config-change interrupt pending (InterruptStatus bit 1).
    config_irq: bool,
    seen_config_events: u32,
}

fn set_half(word: &mut u64, high: bool, value: u32) {
    if high {
        *word = (*word & 0xffff_ffff) | (u64::from(value) << 32);
    } else {
        *word = (*word & !0xffff_ffff) | u64::from(value);
    }
}

impl<B: VirtioBackend> VirtioMmioNet<B> {
    pub fn new(backend: B, mac: MacAddr) -> Self {
        VirtioMmioNet {
            backend,
            mac,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: [QueueConfig::default(); NUM_QUEUES],
            status: 0,
            active: false,
            config_generation: 0,
            config_irq: false,
            seen_config_events: 0,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Size of the selected queue as configured (the maximum until the
    /// driver sets one); 0 for a queue that does not exist.
    pub fn selected_queue_size(&self) -> u16 {
        if self.queue_sel as usize >= self.backend.num_queues() {
            return 0;
        }
        match self.queues.get(self.queue_sel as usize) {
            Some(q) if q.size != 0 => q.size,
            Some(_) => QUEUE_MAX,
            None => 0,
        }
    }

    /// Selected queue as configured (for transports that read it back).
    pub fn selected_queue(&self) -> Option<QueueConfig> {
        self.queues.get(self.queue_sel as usize).copied()
    }

    fn offered(&self) -> u64 {
        if self.backend.device_id() == VIRTIO_ID_NET {
            self.backend.device_features() | features::NET_F_MAC | features::NET_F_STATUS
        } else {
            self.backend.device_features()
        }
    }

    /// Picks up configuration changes the backend made since the last look.
    fn sync_config_events(&mut self) {
        let ev = self.backend.config_events();
        if ev != self.seen_config_events {
            self.seen_config_events = ev;
            self.config_irq = true;
            self.config_generation = self.config_generation.wrapping_add(1);
        }
    }

    /// InterruptStatus: bit 0 used buffers, bit 1 configuration change.
    pub fn interrupt_status(&mut self) -> u32 {
        self.sync_config_events();
        u32::from(self.active) | (u32::from(self.config_irq) << 1)
    }

    /// Acknowledges interrupt bits (InterruptACK, or a PCI ISR read).
    pub fn ack_interrupt(&mut self, bits: u32) {
        if bits & 2 != 0 {
            self.config_irq = false;
        }
    }

    fn config_space(&self) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[..6].copy_from_slice(&self.mac.0);
        let status = if self.backend.link_up() {
            NET_S_LINK_UP
        } else {
            0
        };
        c[6..8].copy_from_slice(&status.to_le_bytes());
        c[8..10].copy_from_slice(&1u16.to_le_bytes()); // max_virtqueue_pairs
        c[10..12].copy_from_slice(&1500u16.to_le_bytes()); // mtu
        c
    }

    fn queue(&mut self) -> Option<&mut QueueConfig> {
        let n = self.backend.num_queues().min(NUM_QUEUES);
        self.queues[..n].get_mut(self.queue_sel as usize)
    }

    /// Number of virtqueues of the device.
    pub fn num_queues(&self) -> usize {
        self.backend.num_queues().min(NUM_QUEUES)
    }

    /// Virtio device id.
    pub fn device_id(&self) -> u32 {
        self.backend.device_id()
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let q = self.queues[..self.num_queues()].get(self.queue_sel as usize);
        match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => self.backend.device_id(),
            0x00c => VENDOR_ID,
            0x010 => match self.device_features_sel {
                0 => self.offered() as u32,
                1 => (self.offered() >> 32) as u32,
                _ => 0,
            },
            0x034 => q.map_or(0, |_| u32::from(QUEUE_MAX)),
            0x044 => q.map_or(0, |q| u32::from(q.ready)),
            // Used-buffer notification: the backend signals the irqfd
            // directly, so report it whenever the device runs; drivers
            // re-check the used rings anyway. Bit 1: config change.
            0x060 => u32::from(self.active) | (u32::from(self.config_irq) << 1),
            0x070 => self.status,
            0x0fc => self.config_generation,
            _ => 0,
        }
    }

    /// A guest read of `data.len()` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.sync_config_events();
        if offset >= CONFIG_SPACE {
            let cfg = match self.backend.config_space() {
                Some(c) => c,
                None => self.config_space().to_vec(),
            };
            for (i, b) in data.iter_mut().enumerate() {
                *b = cfg
                    .get((offset - CONFIG_SPACE) as usize + i)
                    .copied()
                    .unwrap_or(0);
            }
            return;
        }
        let v = if data.len() == 4 {
            self.read_reg(offset)
        } else {
            0
        };
        let bytes = v.to_le_bytes();
        for (d, s) in data.iter_mut().zip(bytes.iter()) {
            *d = *s;
        }
    }

    /// A guest write at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_SPACE || data.len() != 4 {
            return; // config space is read-only for net; other sizes invalid
        }
        let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        match offset {
            0x014 => self.device_features_sel = v,
            // Features are frozen once FEATURES_OK is set.
            0x020 if self.status & STATUS_FEATURES_OK == 0 => {
                let high = match self.driver_features_sel {
                    0 => false,
                    1 => true,
                    _ => return,
                };
                set_half(&mut self.driver_features, high, v);
            }
            0x024 => self.driver_features_sel = v,
            0x030 => self.queue_sel = v,
            0x038 => {
                if let Some(q) = self.queue() {
                    q.size = (v as u16).min(QUEUE_MAX);
                }
            }
            0x044 => {
                if let Some(q) = self.queue() {
                    q.ready = v == 1;
                }
            }
            QUEUE_NOTIFY => self.backend.notify(v as u16),
            0x064 => self.ack_interrupt(v),
            0x070 => self.write_status(v),
            0x080 | 0x084 | 0x090 | 0x094 | 0x0a0 | 0x0a4 => {
                let high = offset & 4 != 0;
                if let Some(q) = self.queue() {
                    let field = match offset & !4 {
                        0x080 => &mut q.desc,
                        0x090 => &mut q.avail,
                        _ => &mut q.used,
                    };
                    set_half(field, high, v);
                }
            }
            _ => {}
        }
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            if self.active {
                self.backend.reset();
            }
            self.active = false;
            self.status = 0;
            self.driver_features = 0;
            self.queues = [QueueConfig::default(); NUM_QUEUES];
            self.config_generation = self.config_generation.wrapping_add(1);
            return;
        }
        let mut v = v;
        if v & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 {
            let unknown = self.driver_features & !self.offered();
            if unknown != 0 || self.driver_features & features::F_VERSION_1 == 0 {
                tracing::warn!(
                    driver = format_args!("{:#x}", self.driver_features),
                    device = self.backend.device_id(),
                    "virtio: driver accepted features we did not offer (or not VERSION_1)"
                );
                v &= !STATUS_FEATURES_OK;
            }
        }
        if v & STATUS_DRIVER_OK != 0 && !self.active {
            let n = self.num_queues();
            match self
                .backend
                .activate(self.driver_features, &self.queues[..n])
            {
                Ok(()) => self.active = true,
                Err(e) => {
                    tracing::error!(
                        device = self.backend.device_id(),
                        "virtio: cannot start the queues: {e}"
                    );
                    v |= STATUS_FAILED;
                }
            }
        }
        self.status = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Default, Clone)]
    struct Recorder {
        log: Arc<Mutex<Vec<String>>>,
        fail: bool,
    }

    impl VirtioBackend for Recorder {
        fn device_features(&self) -> u64 {
            features::F_VERSION_1 | features::NET_F_MRG_RXBUF
        }
        fn activate(&mut self, acked: u64, q: &[QueueConfig]) -> Result<(), String> {
            self.log.lock().unwrap().push(format!(
                "activate {acked:#x} {:?}",
                q.iter()
                    .map(|q| (q.size, q.desc, q.avail, q.used))
                    .collect::<Vec<_>>()
            ));
            if self.fail {
                Err("nope".into())
            } else {
                Ok(())
            }
        }
        fn reset(&mut self) {
            self.log.lock().unwrap().push("reset".into());
        }
        fn notify(&self, queue: u16) {
            self.log.lock().unwrap().push(format!("notify {queue}"));
        }
    }

    fn rd(d: &mut VirtioMmioNet<Recorder>, off: u64) -> u32 {
        let mut b = [0u8; 4];
        d.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(d: &mut VirtioMmioNet<Recorder>, off: u64, v: u32) {
        d.write(off, &v.to_le_bytes());
    }

    fn dev(fail: bool) -> (VirtioMmioNet<Recorder>, Arc<Mutex<Vec<String>>>) {
        let r = Recorder {
            fail,
            ..Default::default()
        };
        let log = r.log.clone();
        (
            VirtioMmioNet::new(r, "52:54:00:12:34:56".parse().unwrap()),
            log,
        )
    }

    #[test]
    fn identifies_as_a_version_2_network_device() {
        let (mut d, _) = dev(false);
        assert_eq!(rd(&mut d, 0), 0x7472_6976);
        assert_eq!(rd(&mut d, 4), 2);
        assert_eq!(rd(&mut d, 8), VIRTIO_ID_NET);
    }

    #[test]
    fn config_space_holds_the_mac_and_link_up() {
        let (mut d, _) = dev(false);
        let mut mac = [0u8; 6];
        for (i, b) in mac.iter_mut().enumerate() {
            let mut one = [0u8; 1];
            d.read(0x100 + i as u64, &mut one);
            *b = one[0];
        }
        assert_eq!(mac, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let mut st = [0u8; 2];
        d.read(0x106, &mut st);
        assert_eq!(u16::from_le_bytes(st), 1);
    }

    #[test]
    fn features_include_mac_status_and_backend_bits_across_both_words() {
        let (mut d, _) = dev(false);
        wr(&mut d, 0x14, 0);
        let lo = rd(&mut d, 0x10);
        wr(&mut d, 0x14, 1);
        let hi = rd(&mut d, 0x10);
        let all = u64::from(lo) | (u64::from(hi) << 32);
        assert_eq!(
            all,
            features::F_VERSION_1
                | features::NET_F_MRG_RXBUF
                | features::NET_F_MAC
                | features::NET_F_STATUS
        );
    }

    fn negotiate(d: &mut VirtioMmioNet<Recorder>, accept: u64) {
        wr(d, 0x70, 0);
        wr(d, 0x70, 1);
        wr(d, 0x70, 3);
        wr(d, 0x24, 0);
        wr(d, 0x20, accept as u32);
        wr(d, 0x24, 1);
        wr(d, 0x20, (accept >> 32) as u32);
        wr(d, 0x70, 0xb);
    }

    #[test]
    fn driver_ok_activates_the_backend_with_the_configured_queues() {
        let (mut d, log) = dev(false);
        negotiate(&mut d, features::F_VERSION_1 | features::NET_F_MAC);
        assert_eq!(rd(&mut d, 0x70), 0xb, "FEATURES_OK accepted");
        for q in 0..2u32 {
            wr(&mut d, 0x30, q);
            assert_eq!(rd(&mut d, 0x34), 256);
            wr(&mut d, 0x38, 64);
            wr(&mut d, 0x80, 0x1000 * (q + 1));
            wr(&mut d, 0x84, 0);
            wr(&mut d, 0x90, 0x1400 * (q + 1));
            wr(&mut d, 0xa0, 0x1800 * (q + 1));
            wr(&mut d, 0xa4, 1);
            wr(&mut d, 0x44, 1);
        }
        wr(&mut d, 0x70, 0xf);
        assert!(d.is_active());
        assert_eq!(rd(&mut d, 0x60) & 1, 1);
        let l = log.lock().unwrap();
        assert_eq!(
            l[0],
            format!(
                "activate {:#x} [(64, 4096, 5120, {}), (64, 8192, 10240, {})]",
                features::F_VERSION_1 | features::NET_F_MAC,
                0x1_0000_1800u64,
                0x1_0000_3000u64
            )
        );
    }

    #[test]
    fn features_we_did_not_offer_are_refused_at_features_ok() {
        let (mut d, _) = dev(false);
        negotiate(&mut d, features::F_VERSION_1 | features::NET_F_GUEST_TSO4);
        assert_eq!(rd(&mut d, 0x70) & STATUS_FEATURES_OK, 0);
    }

    #[test]
    fn failing_backend_sets_device_failed_and_reset_stops_it() {
        let (mut d, _) = dev(true);
        negotiate(&mut d, features::F_VERSION_1);
        wr(&mut d, 0x70, 0xf);
        assert_ne!(rd(&mut d, 0x70) & STATUS_FAILED, 0);
        assert!(!d.is_active());

        let (mut d, log) = dev(false);
        negotiate(&mut d, features::F_VERSION_1);
        wr(&mut d, 0x70, 0xf);
        wr(&mut d, 0x70, 0);
        assert!(!d.is_active());
        assert_eq!(rd(&mut d, 0x70), 0);
        assert_eq!(log.lock().unwrap().last().unwrap(), "reset");
    }

    #[test]
    fn out_of_range_queue_select_and_odd_sizes_are_ignored() {
        let (mut d, log) = dev(false);
        wr(&mut d, 0x30, 7);
        assert_eq!(rd(&mut d, 0x34), 0);
        wr(&mut d, 0x38, 64);
        d.write(0x70, &[1, 0]);
        assert_eq!(rd(&mut d, 0x70), 0);
        wr(&mut d, QUEUE_NOTIFY, 1);
        assert_eq!(log.lock().unwrap().last().unwrap(), "notify 1");
    }

    /// A backend whose link the test flips.
    struct Flappy {
        link: Arc<std::sync::atomic::AtomicBool>,
        events: Arc<std::sync::atomic::AtomicU32>,
    }

    impl VirtioBackend for Flappy {
        fn device_features(&self) -> u64 {
            features::F_VERSION_1
        }
        fn activate(&mut self, _: u64, _: &[QueueConfig]) -> Result<(), String> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn notify(&self, _: u16) {}
        fn link_up(&self) -> bool {
            self.link.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn config_events(&self) -> u32 {
            self.events.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[test]
    fn link_changes_show_in_config_space_with_a_config_interrupt_until_acked() {
        use std::sync::atomic::Ordering::SeqCst;
        let link = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let events = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut d = VirtioMmioNet::new(
            Flappy {
                link: link.clone(),
                events: events.clone(),
            },
            "52:54:00:12:34:56".parse().unwrap(),
        );
        let status = |d: &mut VirtioMmioNet<Flappy>| {
            let mut st = [0u8; 2];
            d.read(0x106, &mut st);
            u16::from_le_bytes(st)
        };
        let isr = |d: &mut VirtioMmioNet<Flappy>| {
            let mut b = [0u8; 4];
            d.read(0x60, &mut b);
            u32::from_le_bytes(b)
        };
        assert_eq!(status(&mut d), 1);
        assert_eq!(isr(&mut d) & 2, 0);
        let generation = {
            let mut b = [0u8; 4];
            d.read(0xfc, &mut b);
            u32::from_le_bytes(b)
        };
        link.store(false, SeqCst);
        events.fetch_add(1, SeqCst);
        assert_eq!(status(&mut d), 0, "link down in config space");
        assert_eq!(isr(&mut d) & 2, 2, "config change pending");
        let mut b = [0u8; 4];
        d.read(0xfc, &mut b);
        assert_ne!(u32::from_le_bytes(b), generation, "config generation moved");
        d.write(0x64, &2u32.to_le_bytes());
        assert_eq!(isr(&mut d) & 2, 0, "acknowledged");
        link.store(true, SeqCst);
        events.fetch_add(1, SeqCst);
        assert_eq!(status(&mut d), 1);
        assert_eq!(isr(&mut d) & 2, 2);
    }
}
