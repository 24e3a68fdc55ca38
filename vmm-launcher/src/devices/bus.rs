//! Routes port I/O and MMIO exits to the emulated devices.

use std::sync::{Arc, Mutex};

use super::console::SerialDevice;
use super::i8042::{self, I8042, I8042Action};
use super::pci::PciBus;
use super::virtio_mmio::{VirtioBackend, VirtioMmioNet};
use super::virtio_pci::VirtioPciNet;
use crate::layout::{COM1_PORT, VIRTIO_MMIO_SIZE};

/// What the vCPU loop must do after an access.
#[derive(Debug, PartialEq, Eq)]
pub enum BusAction {
    Continue,
    /// The guest asked to reset (or power off) the machine.
    Reset,
}

const PCI_CONFIG_ADDRESS: u16 = 0xcf8;
const PCI_CONFIG_END: u16 = 0xd00;

/// All devices of one VM.
pub struct Bus<B: VirtioBackend> {
    pub serial: Arc<Mutex<SerialDevice>>,
    i8042: I8042,
    virtio: Vec<(u64, Mutex<VirtioMmioNet<B>>)>,
    pci: Mutex<PciBus<B>>,
}

impl<B: VirtioBackend> Bus<B> {
    pub fn new(serial: Arc<Mutex<SerialDevice>>) -> Self {
        Bus {
            serial,
            i8042: I8042,
            virtio: Vec::new(),
            pci: Mutex::new(PciBus::new()),
        }
    }

    /// Adds a virtio-pci function; returns its PCI slot.
    pub fn add_pci(&mut self, dev: VirtioPciNet<B>) -> u8 {
        match self.pci.get_mut() {
            Ok(bus) => bus.add(dev),
            Err(p) => p.into_inner().add(dev),
        }
    }

    /// Adds a virtio-mmio device at `base`.
    pub fn add_virtio(&mut self, base: u64, dev: VirtioMmioNet<B>) {
        self.virtio.push((base, Mutex::new(dev)));
    }

    fn virtio_at(&self, addr: u64) -> Option<(u64, &Mutex<VirtioMmioNet<B>>)> {
        self.virtio
            .iter()
            .find(|(base, _)| addr >= *base && addr < base + VIRTIO_MMIO_SIZE)
            .map(|(base, d)| (addr - base, d))
    }

    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        match port {
            p if (COM1_PORT..COM1_PORT + 8).contains(&p) && data.len() == 1 => {
                if let Ok(mut s) = self.serial.lock() {
                    data[0] = s.read((p - COM1_PORT) as u8);
                }
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT if data.len() == 1 => {
                data[0] = self.i8042.read(port);
            }
            p if (PCI_CONFIG_ADDRESS..PCI_CONFIG_END).contains(&p) => match self.pci.lock() {
                Ok(mut pci) => pci.pio_read(p, data),
                Err(_) => data.fill(0xff),
            },
            // Nothing there: all ones, like an empty ISA bus.
            _ => data.fill(0xff),
        }
    }

    pub fn pio_write(&self, port: u16, data: &[u8]) -> BusAction {
        match port {
            p if (COM1_PORT..COM1_PORT + 8).contains(&p) && data.len() == 1 => {
                if let Ok(mut s) = self.serial.lock()
                    && let Err(e) = s.write((p - COM1_PORT) as u8, data[0])
                {
                    tracing::debug!("serial write: {e:?}");
                }
                BusAction::Continue
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT if data.len() == 1 => {
                match self.i8042.write(port, data[0]) {
                    I8042Action::Reset => BusAction::Reset,
                    I8042Action::None => BusAction::Continue,
                }
            }
            p if (PCI_CONFIG_ADDRESS..PCI_CONFIG_END).contains(&p) => {
                if let Ok(mut pci) = self.pci.lock() {
                    pci.pio_write(p, data);
                }
                BusAction::Continue
            }
            _ => BusAction::Continue,
        }
    }

    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.virtio_at(addr) {
            Some((off, d)) => {
                if let Ok(mut d) = d.lock() {
                    d.read(off, data);
                }
            }
            None => {
                data.fill(0xff);
                if let Ok(mut pci) = self.pci.lock()
                    && let Some((d, off)) = pci.bar_at(addr)
                {
                    d.bar_read(off, data);
                }
            }
        }
    }

    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        if let Some((off, d)) = self.virtio_at(addr) {
            if let Ok(mut d) = d.lock() {
                d.write(off, data);
            }
        } else if let Ok(mut pci) = self.pci.lock()
            && let Some((d, off)) = pci.bar_at(addr)
        {
            d.bar_write(off, data);
        }
    }

    /// Stops every device's queues (VM teardown).
    pub fn reset_devices(&self) {
        for (_, d) in &self.virtio {
            if let Ok(mut d) = d.lock() {
                d.write(0x70, &0u32.to_le_bytes());
            }
        }
        if let Ok(mut pci) = self.pci.lock() {
            pci.reset_all();
        }
    }
}
