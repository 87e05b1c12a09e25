//! The PIIX3 IDE PCI function (8086:7010 at 00:01.1 on `-machine pc`) with
//! its drives: the configuration space of `pci::piix::Piix3Ide` plus the
//! [`IdeController`] behind it. The legacy command/control blocks sit at
//! fixed ports (the function's programming interface 0x80: both channels in
//! compatibility mode, bus master capable); the bus-master block is BAR4.
//!
//! Offsets are the controller's (see [`super::ide`]): the machine maps
//! 0x1F0–0x1F7 → 0x00, 0x3F6 → 0x08, 0x170–0x177 → 0x10, 0x376 → 0x18,
//! and BAR4's 16 ports → 0x20–0x2F.

use super::ata::Drive;
use super::ide::{IdeController, BUS_MASTER};
use crate::bus::PortIoDevice;
use crate::dma::DmaMemory;
use crate::irq::IrqLine;
use crate::pci::{piix::Piix3Ide, ConfigSpace, PciDevice};

pub struct Piix3IdePci {
    cfg: ConfigSpace,
    pub ide: IdeController,
}

impl Piix3IdePci {
    pub fn new(irq14: Box<dyn IrqLine>, irq15: Box<dyn IrqLine>, dma: Box<dyn DmaMemory>) -> Self {
        Piix3IdePci {
            cfg: Piix3Ide::new().config().clone(),
            ide: IdeController::new(irq14, irq15, dma),
        }
    }

    /// `index` in QEMU's numbering: channel `index / 2`, unit `index % 2`.
    pub fn attach(&mut self, index: u32, drive: Drive) {
        self.ide.attach(index as usize / 2, index as usize % 2, drive);
    }

    /// Bus-master register access at `offset` inside BAR4.
    pub fn bus_master_read(&mut self, offset: u16, size: u8) -> u32 {
        self.ide.read(BUS_MASTER + (offset & 0xf), size)
    }
    pub fn bus_master_write(&mut self, offset: u16, size: u8, value: u32) {
        self.ide.write(BUS_MASTER + (offset & 0xf), size, value)
    }
}

/// The legacy ports (offsets 0x00–0x1F of the controller), always decoded
/// (kagami does not model the IDETIM decode-enable bits).
impl PortIoDevice for Piix3IdePci {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        self.ide.read(offset & 0x1f, size)
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        self.ide.write(offset & 0x1f, size, value)
    }
}

impl PciDevice for Piix3IdePci {
    fn name(&self) -> &'static str {
        "PIIX3 IDE"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn reset(&mut self) {
        self.cfg.reset();
        self.ide.reset();
    }
    fn bar_read(&mut self, bar: u8, offset: u64, size: u8) -> u64 {
        match bar {
            4 => self.bus_master_read(offset as u16, size.min(4)) as u64,
            _ => u64::MAX >> (64 - 8 * size.clamp(1, 8) as u32),
        }
    }
    fn bar_write(&mut self, bar: u8, offset: u64, size: u8, value: u64) {
        if bar == 4 {
            self.bus_master_write(offset as u16, size.min(4), value as u32)
        }
    }
}
