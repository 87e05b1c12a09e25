//! PCI bus 0: the functions on it, configuration mechanism #1 (ports
//! 0xCF8–0xCFF) and the PCIe enhanced configuration access mechanism.
//!
//! PCI Local Bus Specification 3.0 §3.2.2.3.2: CONFIG_ADDRESS is a dword
//! register (bit 31 enable, bits 23:16 bus, 15:11 device, 10:8 function,
//! 7:2 register); only dword accesses reach it, byte and word accesses to
//! 0xCF8–0xCFB go elsewhere (0xCF9 is the reset control register, which the
//! machine maps separately). CONFIG_DATA at 0xCFC–0xCFF takes byte, word and
//! dword accesses at any offset, the offset selecting the byte within the
//! addressed dword. PCI Express Base 4.0 §7.2.2 (ECAM): offset =
//! bus << 20 | device << 15 | function << 12 | register.
//!
//! Functions other than 0 answer only when function 0 exists (§6.2.1,
//! the multifunction rule), and the bus sets function 0's header-type bit 7
//! when its slot has other functions. Cycles to other buses or to empty
//! slots read all ones and writes vanish (master abort).
//!
//! Offset layout of the port device: 0–3 CONFIG_ADDRESS (port 0xCF8,
//! dword only), 4–7 CONFIG_DATA (ports 0xCFC–0xCFF).

use super::{BarKind, Bdf, PciDevice, BAR0, CMD_IO, CMD_MEMORY, COMMAND, EXPANSION_ROM};
use crate::bus::{MmioDevice, PortIoDevice};
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const CONFIG_ADDRESS: u16 = 0;
pub const CONFIG_DATA: u16 = 4;
/// Size of the port window (0xCF8–0xCFF).
pub const PORT_SPAN: u16 = 8;

/// [`BarMapping::bar`] of an expansion ROM.
pub const ROM_BAR: u8 = 6;

/// Bytes of ECAM per bus.
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

/// Where one enabled BAR is decoded, as the machine should map it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarMapping {
    pub bdf: Bdf,
    /// 0–5, or [`ROM_BAR`] for the expansion ROM (map it read-only).
    pub bar: u8,
    pub kind: BarKind,
    /// Guest-physical address (memory) or port (I/O).
    pub addr: u64,
    pub size: u64,
}

/// What changed since the machine last asked ([`PciBus::take_changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PciChanges {
    /// A command register or BAR was written: re-read [`PciBus::bar_mappings`].
    pub bars: bool,
    /// A chipset register with a machine-visible effect changed (PAM,
    /// SMRAM, PCIEXBAR, PIRQ routing, PM base): re-read the chipset state.
    pub chipset: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionState {
    pub bdf: Bdf,
    pub config: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub config_address: u32,
    pub functions: Vec<FunctionState>,
}

/// Bits of CONFIG_ADDRESS that hold something; 30:24 and 1:0 are reserved
/// and read as 0.
const ADDRESS_MASK: u32 = 0x80ff_fffc;

pub struct PciBus {
    functions: BTreeMap<Bdf, Box<dyn PciDevice>>,
    config_address: u32,
    changes: PciChanges,
}

impl Default for PciBus {
    fn default() -> Self {
        Self::new()
    }
}

impl PciBus {
    pub fn new() -> Self {
        PciBus {
            functions: BTreeMap::new(),
            config_address: 0,
            changes: PciChanges::default(),
        }
    }

    /// Plug `dev` in at `bdf`. Panics if the slot is taken or out of range:
    /// that is a wiring bug in the machine, not guest input.
    pub fn add(&mut self, bdf: Bdf, dev: Box<dyn PciDevice>) {
        assert!(bdf.valid(), "no PCI function {bdf}");
        assert!(
            !self.functions.contains_key(&bdf),
            "PCI {bdf} is taken by {}",
            self.functions[&bdf].name()
        );
        self.functions.insert(bdf, dev);
        let multi = self.functions.keys().filter(|b| b.device == bdf.device).count() > 1;
        if let Some(f0) = self.functions.get_mut(&Bdf::new(bdf.device, 0)) {
            f0.config_mut().set_multifunction(multi);
        }
        self.changes.bars = true;
    }

    /// Every function, in bus order (for the printed map).
    pub fn functions(&self) -> impl Iterator<Item = (Bdf, &dyn PciDevice)> {
        self.functions.iter().map(|(b, d)| (*b, d.as_ref()))
    }

    /// The function at `bdf` as its concrete type.
    pub fn device<T: PciDevice>(&self, bdf: Bdf) -> Option<&T> {
        let d: &dyn std::any::Any = self.functions.get(&bdf)?.as_ref();
        d.downcast_ref()
    }
    pub fn device_mut<T: PciDevice>(&mut self, bdf: Bdf) -> Option<&mut T> {
        let d: &mut dyn std::any::Any = self.functions.get_mut(&bdf)?.as_mut();
        d.downcast_mut()
    }

    /// The function a configuration cycle reaches, honouring the
    /// function-0 rule.
    fn target(&mut self, bus: u8, bdf: Bdf) -> Option<&mut Box<dyn PciDevice>> {
        if bus != 0 || !bdf.valid() || !self.functions.contains_key(&Bdf::new(bdf.device, 0)) {
            return None;
        }
        self.functions.get_mut(&bdf)
    }

    /// A configuration read of `size` bytes at `reg` of `bus:bdf`; `reg +
    /// size` stays inside one dword.
    pub fn config_read(&mut self, bus: u8, bdf: Bdf, reg: u16, size: u8) -> u32 {
        let ones = if size >= 4 { !0 } else { (1u32 << (8 * size)) - 1 };
        match self.target(bus, bdf) {
            Some(d) if (reg as usize) < d.config().size() => d.config_read(reg, size) & ones,
            _ => ones,
        }
    }

    pub fn config_write(&mut self, bus: u8, bdf: Bdf, reg: u16, size: u8, value: u32) {
        let Some(d) = self.target(bus, bdf) else { return };
        if reg as usize >= d.config().size() {
            return;
        }
        d.config_write(reg, size, value);
        let end = reg + size as u16;
        let touches = |lo: u16, hi: u16| reg < hi && end > lo;
        if touches(COMMAND, COMMAND + 2) || touches(BAR0, BAR0 + 24) || touches(EXPANSION_ROM, EXPANSION_ROM + 4) {
            self.changes.bars = true;
        }
        if self.functions.get_mut(&bdf).expect("target exists").take_chipset_change() {
            self.changes.chipset = true;
        }
    }

    /// An access inside BAR `bar` of `bdf`, at `offset` from its base (the
    /// machine's port and MMIO maps send decoded BAR accesses here).
    pub fn bar_read(&mut self, bdf: Bdf, bar: u8, offset: u64, size: u8) -> u64 {
        match self.functions.get_mut(&bdf) {
            Some(d) => d.bar_read(bar, offset, size),
            None => {
                if size >= 8 {
                    !0
                } else {
                    (1u64 << (8 * size)) - 1
                }
            }
        }
    }

    pub fn bar_write(&mut self, bdf: Bdf, bar: u8, offset: u64, size: u8, value: u64) {
        if let Some(d) = self.functions.get_mut(&bdf) {
            d.bar_write(bar, offset, size, value);
        }
    }

    /// Unplug the function at `bdf`, e.g. to replace a configuration-only
    /// chipset function (PIIX3 IDE) with a full device model; the next
    /// [`PciBus::take_changes`] reports a BAR change so its ranges go away.
    pub fn remove(&mut self, bdf: Bdf) -> Option<Box<dyn PciDevice>> {
        let d = self.functions.remove(&bdf)?;
        let multi = self.functions.keys().filter(|b| b.device == bdf.device).count() > 1;
        if let Some(f0) = self.functions.get_mut(&Bdf::new(bdf.device, 0)) {
            f0.config_mut().set_multifunction(multi);
        }
        self.changes.bars = true;
        Some(d)
    }

    /// What changed since the last call (cheap; call after every access to
    /// the configuration ports or the ECAM).
    pub fn take_changes(&mut self) -> PciChanges {
        std::mem::take(&mut self.changes)
    }

    /// Every BAR whose decode is enabled in its function's command register,
    /// with a non-zero address. The machine maps these and unmaps the rest.
    pub fn bar_mappings(&self) -> Vec<BarMapping> {
        let mut out = Vec::new();
        for (bdf, d) in &self.functions {
            let c = d.config();
            let cmd = c.u16(COMMAND as usize);
            for i in 0..6 {
                let (Some(decl), Some(addr)) = (c.bar_decl(i), c.bar_address(i)) else {
                    continue;
                };
                let enabled = if decl.kind.is_io() {
                    cmd & CMD_IO != 0
                } else {
                    cmd & CMD_MEMORY != 0
                };
                if enabled && addr != 0 {
                    out.push(BarMapping {
                        bdf: *bdf,
                        bar: i as u8,
                        kind: decl.kind,
                        addr,
                        size: decl.size,
                    });
                }
            }
            // The ROM decodes when both its enable bit and memory space are on.
            if let (Some((addr, size)), true) = (c.rom(), cmd & CMD_MEMORY != 0) {
                if addr != 0 {
                    out.push(BarMapping {
                        bdf: *bdf,
                        bar: ROM_BAR,
                        kind: BarKind::Mem32 { prefetchable: false },
                        addr,
                        size,
                    });
                }
            }
        }
        out
    }

    /// The bus as text for `kagami --print-machine`: one line per function,
    /// then its decoded BARs.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let maps = self.bar_mappings();
        for (bdf, d) in &self.functions {
            let c = d.config();
            s += &format!("  {bdf}  {:04x}:{:04x}  {}", c.u16(0), c.u16(2), d.name());
            if let Some(p) = d.interrupt_pin() {
                s += &format!("  INT{}", (b'A' + p) as char);
            }
            s += "\n";
            for m in maps.iter().filter(|m| m.bdf == *bdf) {
                let what = if m.kind.is_io() { "I/O" } else { "MMIO" };
                let bar = if m.bar == ROM_BAR {
                    "ROM".to_string()
                } else {
                    format!("BAR{}", m.bar)
                };
                s += &format!("      {bar} {what} {:#x}-{:#x}\n", m.addr, m.addr + m.size - 1);
            }
        }
        s
    }

    /// The chipset reset line: every function to its power-on state.
    pub fn reset(&mut self) {
        self.config_address = 0;
        for d in self.functions.values_mut() {
            d.reset();
        }
        self.changes = PciChanges { bars: true, chipset: true };
    }

    /// The `bus`, `bdf` and register CONFIG_ADDRESS selects, if enabled.
    fn decode_address(&self) -> Option<(u8, Bdf, u16)> {
        let a = self.config_address;
        if a & 0x8000_0000 == 0 {
            return None;
        }
        Some((
            (a >> 16) as u8,
            Bdf::new(((a >> 11) & 0x1f) as u8, ((a >> 8) & 7) as u8),
            (a & 0xfc) as u16,
        ))
    }

    /// ECAM read at `offset` inside the window (one bus per MiB).
    pub fn ecam_read(&mut self, offset: u64, size: u8) -> u64 {
        if size == 8 {
            return self.ecam_read(offset, 4) | (self.ecam_read(offset.wrapping_add(4), 4) << 32);
        }
        let (bus, bdf, reg) = ecam_decode(offset);
        if (reg & 3) as u8 + size > 4 {
            // Misaligned across a dword: no configuration cycle.
            return if size >= 4 { 0xffff_ffff } else { (1u64 << (8 * size)) - 1 };
        }
        self.config_read(bus, bdf, reg, size) as u64
    }

    pub fn ecam_write(&mut self, offset: u64, size: u8, value: u64) {
        if size == 8 {
            self.ecam_write(offset, 4, value & 0xffff_ffff);
            self.ecam_write(offset.wrapping_add(4), 4, value >> 32);
            return;
        }
        let (bus, bdf, reg) = ecam_decode(offset);
        if (reg & 3) as u8 + size > 4 {
            return;
        }
        self.config_write(bus, bdf, reg, size, value as u32);
    }
}

fn ecam_decode(offset: u64) -> (u8, Bdf, u16) {
    (
        (offset >> 20) as u8,
        Bdf::new(((offset >> 15) & 0x1f) as u8, ((offset >> 12) & 7) as u8),
        (offset & 0xfff) as u16,
    )
}

/// Configuration mechanism #1 (offsets: see the module docs).
impl PortIoDevice for PciBus {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        match offset {
            CONFIG_ADDRESS if size == 4 => self.config_address,
            4..=7 => {
                let byte = offset - CONFIG_DATA;
                let ones = if size >= 4 { !0 } else { (1u32 << (8 * size)) - 1 };
                let Some((bus, bdf, reg)) = self.decode_address() else {
                    return ones;
                };
                // Bytes past 0xCFF are not part of this window.
                let n = size.min(4 - byte as u8);
                let v = self.config_read(bus, bdf, reg + byte, n);
                let hi = if n >= 4 { 0 } else { ones & !((1u32 << (8 * n)) - 1) };
                v | hi
            }
            _ => {
                if size >= 4 {
                    !0
                } else {
                    (1u32 << (8 * size)) - 1
                }
            }
        }
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) {
        match offset {
            CONFIG_ADDRESS if size == 4 => self.config_address = value & ADDRESS_MASK,
            4..=7 => {
                let byte = offset - CONFIG_DATA;
                if let Some((bus, bdf, reg)) = self.decode_address() {
                    let n = size.min(4 - byte as u8);
                    self.config_write(bus, bdf, reg + byte, n, value);
                }
            }
            _ => {}
        }
    }
}

/// The ECAM window as an MMIO device borrowing the bus:
/// `Ecam(&mut bus).read(offset, size)`. Offset 0 is bus 0, device 0,
/// function 0, register 0 (the PCIEXBAR base).
pub struct Ecam<'a>(pub &'a mut PciBus);

impl MmioDevice for Ecam<'_> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        self.0.ecam_read(offset, size)
    }
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        self.0.ecam_write(offset, size, value)
    }
}

/// Saves CONFIG_ADDRESS and every function's configuration space. Devices
/// that hold state outside configuration space snapshot it themselves.
impl Snapshot for PciBus {
    type State = State;
    fn save(&self) -> State {
        State {
            config_address: self.config_address,
            functions: self
                .functions
                .iter()
                .map(|(b, d)| FunctionState {
                    bdf: *b,
                    config: d.config().bytes().to_vec(),
                })
                .collect(),
        }
    }

    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        check("pci-bus", s.config_address & !ADDRESS_MASK == 0, || {
            format!("CONFIG_ADDRESS {:#x} has reserved bits set", s.config_address)
        })?;
        check("pci-bus", s.functions.len() == self.functions.len(), || {
            format!("{} functions saved, {} present", s.functions.len(), self.functions.len())
        })?;
        for f in &s.functions {
            let Some(d) = self.functions.get(&f.bdf) else {
                return Err(StateError::new("pci-bus", format!("no function at {}", f.bdf)));
            };
            d.validate_config(&f.config)?;
        }
        self.config_address = s.config_address;
        for f in &s.functions {
            let d = self.functions.get_mut(&f.bdf).expect("validated above");
            d.load_config(&f.config);
            d.take_chipset_change();
        }
        self.changes = PciChanges { bars: true, chipset: true };
        Ok(())
    }
}
