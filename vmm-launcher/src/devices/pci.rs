//! PCI configuration mechanism #1 (ports 0xcf8/0xcfc) for bus 0: a host
//! bridge at 00.0 and the virtio-pci functions behind it.

use super::virtio_mmio::VirtioBackend;
use super::virtio_pci::VirtioPciNet;

pub const CONFIG_ADDRESS: u16 = 0xcf8;
pub const CONFIG_DATA: u16 = 0xcfc;

/// Bus 0 with its devices (slot number = index + 1).
pub struct PciBus<B: VirtioBackend> {
    address: u32,
    host_bridge: [u8; 64],
    devices: Vec<VirtioPciNet<B>>,
}

impl<B: VirtioBackend> Default for PciBus<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: VirtioBackend> PciBus<B> {
    pub fn new() -> Self {
        let mut hb = [0u8; 64];
        hb[0..2].copy_from_slice(&0x8086u16.to_le_bytes()); // Intel
        hb[2..4].copy_from_slice(&0x0d57u16.to_le_bytes());
        hb[0x0b] = 0x06; // bridge
        hb[0x0a] = 0x00; // host bridge
        PciBus {
            address: 0,
            host_bridge: hb,
            devices: Vec::new(),
        }
    }

    /// Adds a function; returns its slot number.
    pub fn add(&mut self, dev: VirtioPciNet<B>) -> u8 {
        self.devices.push(dev);
        self.devices.len() as u8
    }

    fn target(&self) -> Option<(u8, usize)> {
        if self.address & 0x8000_0000 == 0 {
            return None;
        }
        let bus = (self.address >> 16) & 0xff;
        let slot = ((self.address >> 11) & 0x1f) as u8;
        let func = (self.address >> 8) & 0x7;
        (bus == 0 && func == 0).then_some((slot, (self.address & 0xfc) as usize))
    }

    pub fn pio_read(&mut self, port: u16, data: &mut [u8]) {
        if port == CONFIG_ADDRESS && data.len() == 4 {
            data.copy_from_slice(&self.address.to_le_bytes());
            return;
        }
        data.fill(0xff);
        if !(CONFIG_DATA..CONFIG_DATA + 4).contains(&port) {
            return;
        }
        let Some((slot, reg)) = self.target() else {
            return;
        };
        let offset = reg + usize::from(port - CONFIG_DATA);
        match slot {
            0 => {
                for (i, b) in data.iter_mut().enumerate() {
                    *b = self.host_bridge.get(offset + i).copied().unwrap_or(0);
                }
            }
            s => {
                if let Some(d) = self.devices.get(usize::from(s) - 1) {
                    d.config_read(offset, data);
                }
            }
        }
    }

    pub fn pio_write(&mut self, port: u16, data: &[u8]) {
        if port == CONFIG_ADDRESS && data.len() == 4 {
            self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            return;
        }
        if !(CONFIG_DATA..CONFIG_DATA + 4).contains(&port) {
            return;
        }
        if let Some((slot, reg)) = self.target()
            && slot > 0
            && let Some(d) = self.devices.get_mut(usize::from(slot) - 1)
        {
            d.config_write(reg + usize::from(port - CONFIG_DATA), data);
        }
    }

    /// The function whose BAR holds `addr`, with the offset inside it.
    pub fn bar_at(&mut self, addr: u64) -> Option<(&mut VirtioPciNet<B>, u64)> {
        self.devices.iter_mut().find(|d| d.claims(addr)).map(|d| {
            let off = addr - d.bar();
            (d, off)
        })
    }

    /// Resets every function (VM teardown).
    pub fn reset_all(&mut self) {
        for d in &mut self.devices {
            d.bar_write(0x14, &[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio_mmio::{QueueConfig, VirtioMmioNet};

    struct Nop;
    impl VirtioBackend for Nop {
        fn device_features(&self) -> u64 {
            1 << 32
        }
        fn activate(&mut self, _: u64, _: &[QueueConfig]) -> Result<(), String> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn notify(&self, _: u16) {}
    }

    fn read_cfg(bus: &mut PciBus<Nop>, slot: u32, reg: u32) -> u32 {
        bus.pio_write(
            CONFIG_ADDRESS,
            &(0x8000_0000 | (slot << 11) | reg).to_le_bytes(),
        );
        let mut b = [0u8; 4];
        bus.pio_read(CONFIG_DATA, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn conf1_address_register_reads_back_as_linux_probes_it() {
        let mut bus: PciBus<Nop> = PciBus::new();
        bus.pio_write(CONFIG_ADDRESS, &0x8000_0000u32.to_le_bytes());
        let mut b = [0u8; 4];
        bus.pio_read(CONFIG_ADDRESS, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x8000_0000);
    }

    #[test]
    fn bus_has_a_host_bridge_the_virtio_function_and_nothing_else() {
        let mut bus = PciBus::new();
        let mmio = VirtioMmioNet::new(Nop, "52:54:00:00:00:01".parse().unwrap());
        let slot = bus.add(VirtioPciNet::new(mmio, 0xe000_0000, 5));
        assert_eq!(slot, 1);
        assert_eq!(read_cfg(&mut bus, 0, 0), 0x0d57_8086);
        assert_eq!(read_cfg(&mut bus, 0, 8) >> 16, 0x0600, "host bridge class");
        assert_eq!(read_cfg(&mut bus, 1, 0), 0x1041_1af4);
        assert_eq!(read_cfg(&mut bus, 2, 0), 0xffff_ffff, "empty slot");
        // Byte access at an offset inside the dword.
        bus.pio_write(
            CONFIG_ADDRESS,
            &(0x8000_0000u32 | (1 << 11) | 0x3c).to_le_bytes(),
        );
        let mut pin = [0u8; 1];
        bus.pio_read(CONFIG_DATA + 1, &mut pin);
        assert_eq!(pin[0], 1);
        assert!(bus.bar_at(0xe000_0010).is_some());
        assert!(bus.bar_at(0xe000_4000).is_none());
    }
}
