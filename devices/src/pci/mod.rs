//! PCI: the configuration-space model every PCI function shares, bus 0 with
//! configuration mechanism #1 and the PCIe ECAM, INTx routing, and the two
//! chipsets (`-machine pc`: i440FX + PIIX3/PIIX4; `-machine q35`: Q35 MCH +
//! ICH9 LPC).
//!
//! Follows the PCI Local Bus Specification 3.0 (§3.2.2.3.2 configuration
//! mechanism #1, §6 configuration space), PCI Express Base 4.0 §7.2.2
//! (ECAM) and the chipset datasheets named in each file.
//!
//! A function is a [`PciDevice`]: a [`ConfigSpace`] (bytes plus write
//! masks) and hooks for registers with side effects. The [`PciBus`] holds
//! the functions of bus 0 and answers configuration cycles from either
//! access method; the machine asks it where BARs are ([`PciBus::bar_mappings`])
//! when [`PciBus::take_changes`] says they moved.
//!
//! Left out: PCI-to-PCI bridges and buses other than 0 (configuration
//! cycles to them read all ones), MSI-X and multi-message MSI (single
//! message MSI is in [`msi`]), PCIe extended
//! capabilities beyond what a device puts in its 4 KiB space, power
//! management states.

//! # Wiring (what `machine/` does)
//!
//! Both machines: build the bus with [`pc_bus`] or [`q35_bus`]; map ports
//! 0xCF8 (1 port, offset [`bus::CONFIG_ADDRESS`]; dword accesses starting
//! there reach it, while byte accesses to 0xCF9 stay with the reset control
//! register) and 0xCFC–0xCFF (offset [`bus::CONFIG_DATA`]) onto the
//! [`PciBus`]. After every access to those ports or to the ECAM, call
//! [`PciBus::take_changes`]: `bars` → remap from [`PciBus::bar_mappings`];
//! `chipset` → re-read the host bridge (PAM, SMRAM, ECAM window) and the
//! south bridge (PIRQ routes, PM base) through [`PciBus::device`].
//!
//! INTx: a [`PciIntx`] whose outputs are four pins of the machine's
//! `IrqPins` bank (say 16–19 for PIRQA–D); give each PCI device
//! `intx.line(slot, pin)`. On `-machine pc` a PIRQ reaches the ISA IRQ its
//! PIIX3 route register names, for the 8259 and the IOAPIC input of the
//! same number alike ([`piix::Piix3Isa::isa_irq_levels`]); without firmware
//! the machine programs [10, 10, 11, 11] ([`piix::Piix3Isa::route_pirqs`]),
//! the GSIs the ACPI `_PRT` promises. On `-machine q35` PIRQ n is IOAPIC
//! input 16 + n ([`ich9::Ich9Lpc::pirq_gsi`]) and, for the 8259, the ISA
//! IRQ of its ICH9 route register ([`ich9::Ich9Lpc::isa_irq_levels`]).
//!
//! `-machine q35` also maps the ECAM: [`q35::Q35Mch::ecam_window`] (after
//! [`q35::Q35Mch::enable_ecam`] with [`q35::ECAM_BASE`] when booting without
//! firmware) as MMIO onto [`PciBus::ecam_read`]/[`PciBus::ecam_write`] with
//! the offset inside the window.
//!
//! BARs: the machine maps every [`BarMapping`] into its port or MMIO map
//! and sends accesses inside it to [`PciBus::bar_read`]/[`PciBus::bar_write`]
//! (offset from the BAR's base), which call the function's
//! [`PciDevice::bar_read`]/[`PciDevice::bar_write`]. A device model with
//! BARs is therefore one type: declare the BARs in its [`ConfigSpace`],
//! implement the two methods, and plug it in (kagami's board:
//! `Board::add_pci_function`, with `Board::pci_intx_line` for its INTx pin
//! and `Board::dma_memory` for bus-master DMA); machine/src/board_pci.rs
//! does the rest.

pub mod bus;
pub mod config;
pub mod i440fx;
pub mod ich9;
pub mod intx;
pub mod msi;
pub mod pam;
pub mod piix;
pub mod q35;

pub use bus::{BarMapping, Ecam, PciBus, PciChanges};
pub use config::{BarDecl, ConfigSpace, CONFIG_SIZE, PCIE_CONFIG_SIZE};
pub use intx::{pirq_index, PciIntx};
pub use msi::{MsiCapability, MsiMessage, MsiQueue, MsiSender};

use std::any::Any;

pub const VENDOR_ID: u16 = 0x00;
pub const DEVICE_ID: u16 = 0x02;
pub const COMMAND: u16 = 0x04;
pub const STATUS: u16 = 0x06;
pub const HEADER_TYPE: u16 = 0x0e;
pub const BAR0: u16 = 0x10;
pub const EXPANSION_ROM: u16 = 0x30;
pub const CAPABILITIES: u16 = 0x34;
pub const INTERRUPT_LINE: u16 = 0x3c;
pub const INTERRUPT_PIN: u16 = 0x3d;

/// Command register bits (§6.2.2).
pub const CMD_IO: u16 = 1 << 0;
pub const CMD_MEMORY: u16 = 1 << 1;
pub const CMD_BUS_MASTER: u16 = 1 << 2;
pub const CMD_INTX_DISABLE: u16 = 1 << 10;

pub const VENDOR_INTEL: u16 = 0x8086;

/// What a BAR decodes (§6.2.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BarKind {
    Io,
    Mem32 { prefetchable: bool },
    Mem64 { prefetchable: bool },
}

impl BarKind {
    /// The read-only low bits of the BAR.
    pub fn flag_bits(self) -> u32 {
        match self {
            BarKind::Io => 0x1,
            BarKind::Mem32 { prefetchable } => (prefetchable as u32) << 3,
            BarKind::Mem64 { prefetchable } => 0x4 | ((prefetchable as u32) << 3),
        }
    }
    pub fn is_64bit(self) -> bool {
        matches!(self, BarKind::Mem64 { .. })
    }
    pub fn is_io(self) -> bool {
        self == BarKind::Io
    }
}

/// Bus/device/function of a function on bus 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Bdf {
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    pub const fn new(device: u8, function: u8) -> Self {
        Bdf { device, function }
    }
    pub fn valid(self) -> bool {
        self.device < 32 && self.function < 8
    }
}

impl std::fmt::Display for Bdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00:{:02x}.{}", self.device, self.function)
    }
}

/// One PCI function.
///
/// The default methods give plain configuration-space behaviour; a device
/// with registers that do something (PAM, PIRQ routing, PM base) overrides
/// `config_write` and calls [`ConfigSpace::write`] itself.
pub trait PciDevice: Any + Send {
    /// Short name for the printed map and errors ("i440FX host bridge").
    fn name(&self) -> &'static str;
    fn config(&self) -> &ConfigSpace;
    fn config_mut(&mut self) -> &mut ConfigSpace;

    /// Read `size` bytes (1, 2 or 4) at `offset` (any alignment; the bus
    /// never crosses a dword).
    fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        self.config().read(offset, size)
    }
    /// Write the low `size` bytes of `value` at `offset`.
    fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        self.config_mut().write(offset, size, value)
    }
    /// Return to the power-on state (the chipset reset line).
    fn reset(&mut self) {
        self.config_mut().reset()
    }
    /// Check a saved configuration space for this device; the default
    /// checks size and read-only bits. Devices with register constraints
    /// beyond the masks add their own checks.
    fn validate_config(&self, bytes: &[u8]) -> Result<(), crate::snapshot::StateError> {
        self.config().validate(self.name(), bytes)
    }
    /// Load a validated configuration space, and recompute anything derived
    /// from it.
    fn load_config(&mut self, bytes: &[u8]) {
        self.config_mut().load(bytes)
    }
    /// Whether a register with an effect outside the function (PAM, PIRQ
    /// routing, ECAM base, PM base) changed since the last call.
    fn take_chipset_change(&mut self) -> bool {
        false
    }
    /// A read of `size` bytes (1, 2, 4 or 8) at `offset` inside BAR `bar`
    /// (0–5, or [`bus::ROM_BAR`] for the expansion ROM), once the machine
    /// has mapped it. Functions without BARs keep the default: open bus.
    fn bar_read(&mut self, bar: u8, offset: u64, size: u8) -> u64 {
        let _ = (bar, offset);
        if size >= 8 {
            !0
        } else {
            (1u64 << (8 * size)) - 1
        }
    }
    /// A write inside BAR `bar` (see [`PciDevice::bar_read`]).
    fn bar_write(&mut self, bar: u8, offset: u64, size: u8, value: u64) {
        let _ = (bar, offset, size, value);
    }
    /// INTx pin this function uses: 0 = INTA … 3 = INTD, `None` if none.
    fn interrupt_pin(&self) -> Option<u8> {
        match self.config().byte(INTERRUPT_PIN as usize) {
            p @ 1..=4 => Some(p - 1),
            _ => None,
        }
    }
}

/// Where `-machine pc` puts its chipset functions.
pub const PC_HOST: Bdf = Bdf::new(0, 0);
pub const PC_ISA: Bdf = Bdf::new(1, 0);
pub const PC_IDE: Bdf = Bdf::new(1, 1);
pub const PC_PM: Bdf = Bdf::new(1, 3);
/// Where `-machine q35` puts its chipset functions.
pub const Q35_HOST: Bdf = Bdf::new(0, 0);
pub const Q35_LPC: Bdf = Bdf::new(0x1f, 0);

/// Bus 0 of `-machine pc`: i440FX, PIIX3 ISA and IDE, PIIX4 PM.
pub fn pc_bus() -> PciBus {
    let mut bus = PciBus::new();
    bus.add(PC_HOST, Box::new(i440fx::I440fx::new()));
    bus.add(PC_ISA, Box::new(piix::Piix3Isa::new()));
    bus.add(PC_IDE, Box::new(piix::Piix3Ide::new()));
    bus.add(PC_PM, Box::new(piix::Piix4Pm::new()));
    bus
}

/// Bus 0 of `-machine q35`: the MCH and the ICH9 LPC bridge.
pub fn q35_bus() -> PciBus {
    let mut bus = PciBus::new();
    bus.add(Q35_HOST, Box::new(q35::Q35Mch::new()));
    bus.add(Q35_LPC, Box::new(ich9::Ich9Lpc::new()));
    bus
}

#[cfg(test)]
mod tests;
