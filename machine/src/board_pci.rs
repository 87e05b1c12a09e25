//! PCI wiring of the board (a child module of `board.rs`, so it sees the
//! board's private fields): BAR decoding in the port and MMIO maps, INTx →
//! PIRQ → 8259/IOAPIC routing, the host bridge's PAM and SMRAM control of
//! 0xA0000–0xFFFFF, the Q35 ECAM window and the ACPI PM block's base.
//!
//! The guide this follows is the doc comment of `kagami_devices::pci`.
//! After every configuration access (ports 0xCF8/0xCFC or the ECAM) the
//! board calls [`Board::after_pci_access`]:
//! - BAR or command-register writes rebuild the dynamic entries of the port
//!   and MMIO maps from `PciBus::bar_mappings` (only decoded BARs: the
//!   command register's I/O and memory enables are honoured there). A BAR
//!   that would overlap a built-in device or another BAR is left unmapped,
//!   the built-in device wins (as on QEMU, where ISA devices are not
//!   shadowed by a misprogrammed BAR).
//! - Chipset writes re-read the PIRQ route registers (PIIX3 0x60–0x63,
//!   ICH9 0x60–0x63/0x68–0x6B), PAM0–6 and SMRAM, PCIEXBAR and PM base.
//!
//! Memory: PAM changes produce a new `PhysMap` that the machine hands to
//! the CPU (`Cpu::set_phys_map` flushes the TLB and decoded blocks); the
//! board asks the CPU to leave its run slice (`stop_requested`) until the
//! machine has taken it with [`Board::take_phys_map`]. A PAM segment whose
//! reads go to the ROM image and writes to DRAM (RE=0, WE=1, 440FX datasheet
//! §3.2.18) is mapped as ROM; its writes arrive here as MMIO and are stored
//! into the DRAM behind it.

use super::*;
use kagami_cpu::{GuestMemory, PhysMap, Region, RegionKind};
use kagami_devices::pci::pam::{PamSegment, PAM_SEGMENTS};
use kagami_devices::pci::{i440fx::I440fx, ich9::Ich9Lpc, piix::Piix3Isa, piix::Piix4Pm, q35::Q35Mch};
use kagami_devices::pci::{BarMapping, Bdf, PciDevice, PciIntx, PC_HOST, PC_ISA, PC_PM, Q35_HOST, Q35_LPC};
use kagami_devices::{DmaError, DmaMemory};
use std::sync::{Arc, Mutex};

/// Pins of the board's `IrqPins` bank that carry PIRQA–H (ISA IRQs use 0–15).
pub const PIRQ_PIN_BASE: u8 = 16;

/// 0xA0000–0xBFFFF: the VGA window, or SMRAM when the host bridge opens it.
const SMRAM_START: u64 = 0xa_0000;
const SMRAM_LEN: u64 = 0x2_0000;
/// 0xC0000–0xFFFFF: the PAM-controlled BIOS area.
pub const BIOS_AREA_START: u64 = 0xc_0000;
pub const BIOS_AREA_LEN: u64 = 0x4_0000;

/// What the board needs to build the physical memory map.
#[derive(Clone)]
pub struct MemLayout {
    /// RAM and ROM everywhere except 0xA0000–0xFFFFF.
    pub base: PhysMap,
    /// The guest memory; DRAM below 1 MiB is at backing offset = address.
    pub mem: GuestMemory,
    /// Backing offset of the 256 KiB ROM image seen at 0xC0000–0xFFFFF
    /// while PAM sends reads to the PCI side (`None`: no image; such reads
    /// are open bus).
    pub rom_backing: Option<u64>,
}

/// The board's PCI wiring state (see the module docs).
pub struct PciWiring {
    pub(super) intx: PciIntx,
    q35: bool,
    /// The ACPI PM block's port range, moved to the south bridge's PM base.
    pm_range: Option<PortRange>,
    /// q35: SMI_EN/SMI_STS at PM base + 0x30.
    pub(super) smi_en: kagami_devices::pci::ich9::Ich9SmiEn,
    /// Decoded BARs; `PortDev::PciBar(i)` / `MmioDev::PciBar(i)` index this.
    pub(super) bars: Vec<BarMapping>,
    /// ISA IRQs PCI interrupts currently hold high (bit n = IRQ n).
    pub(super) pirq_isa: u16,
    /// q35: PIRQ levels last sent to IOAPIC inputs 16–23.
    pirq_gsi: u8,
    /// A PIRQ route register changed: recompute the PCI interrupt levels.
    pub(super) pirq_dirty: bool,
    pam: [PamSegment; PAM_SEGMENTS],
    smram_open: bool,
    layout: Option<MemLayout>,
    pending_map: Option<PhysMap>,
    /// The current map as bus masters see it.
    dma_map: Arc<Mutex<PhysMap>>,
}

/// Guest-physical memory for bus masters (fw_cfg DMA, disk controllers):
/// the RAM and ROM of the current memory map; writes to ROM and any access
/// to a hole or MMIO fail. Clones share the map, which follows PAM changes.
#[derive(Clone)]
pub struct GuestDma {
    mem: GuestMemory,
    map: Arc<Mutex<PhysMap>>,
}

impl GuestDma {
    /// The pieces of `addr..addr+len`: (backing offset, offset in the
    /// access, length); fails if any byte is not mapped (or, when `write`,
    /// not RAM).
    fn pieces(&self, addr: u64, len: usize, write: bool) -> Result<Vec<(u64, usize, usize)>, DmaError> {
        let err = DmaError { addr, len };
        let map = self.map.lock().unwrap();
        let end = addr.checked_add(len as u64).ok_or(err)?;
        let mut pieces = Vec::new();
        let mut a = addr;
        while a < end {
            let r = map.lookup(a).ok_or(err)?;
            if write && r.kind != RegionKind::Ram {
                return Err(err);
            }
            let n = (r.start + r.len).min(end) - a;
            pieces.push((r.backing + (a - r.start), (a - addr) as usize, n as usize));
            a += n;
        }
        Ok(pieces)
    }
}

impl DmaMemory for GuestDma {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        for (b, o, n) in self.pieces(addr, buf.len(), false)? {
            self.mem.read(b, &mut buf[o..o + n]);
        }
        Ok(())
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        // GuestMemory::write tells the CPU about written code pages.
        for (b, o, n) in self.pieces(addr, data.len(), true)? {
            self.mem.write(b, &data[o..o + n]);
        }
        Ok(())
    }
}

impl PciWiring {
    pub(super) fn new(q35: bool, pins: &IrqPins, ports: &[PortRange]) -> PciWiring {
        let n = if q35 { 8 } else { 4 };
        let intx = PciIntx::new((0..n).map(|p| pins.line(PIRQ_PIN_BASE + p)).collect());
        PciWiring {
            intx,
            q35,
            pm_range: ports.iter().find(|r| r.dev == PortDev::AcpiPm).copied(),
            smi_en: Default::default(),
            bars: Vec::new(),
            pirq_isa: 0,
            pirq_gsi: 0,
            pirq_dirty: true,
            pam: kagami_devices::pci::pam::decode(&[0; 7]),
            smram_open: false,
            layout: None,
            pending_map: None,
            dma_map: Arc::new(Mutex::new(PhysMap::new())),
        }
    }

    /// Whether the CPU must leave its slice to pick up a new memory map.
    pub(super) fn map_pending(&self) -> bool {
        self.pending_map.is_some()
    }
}

fn ranges_overlap(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

impl Board {
    /// The interrupt line a PCI function in `slot` drives for its INTx pin
    /// `pin` (0 = INTA): level high = asserted. Shared lines are wire-ORed.
    pub fn pci_intx_line(&self, slot: u8, pin: u8) -> Box<dyn IrqLine> {
        self.pciw.intx.line(slot, pin)
    }

    /// Plug a PCI function into bus 0 at `bdf`, replacing what is there
    /// (e.g. the configuration-only PIIX3 IDE at 00:01.1). Its BARs, as
    /// declared in its `ConfigSpace`, are mapped whenever the guest enables
    /// them, and accesses reach its `PciDevice::bar_read`/`bar_write` with
    /// the offset inside the BAR. Give it [`Board::pci_intx_line`] for its
    /// interrupt pin.
    pub fn add_pci_function(&mut self, bdf: Bdf, dev: Box<dyn PciDevice>) {
        self.pci.remove(bdf);
        self.pci.add(bdf, dev);
        self.after_pci_access();
    }

    /// Put the chipset in its power-on state (PAM all to the ROM side, PIRQ
    /// routing off, PM base and ECAM as after reset) for external firmware,
    /// undoing what `Board::new` programs for a direct kernel boot.
    pub fn chipset_power_on(&mut self) {
        self.pci.reset();
        self.after_pci_access();
    }

    /// What a BIOS leaves behind before it starts an OS, for a direct
    /// kernel boot: PAM all DRAM read/write and SMRAM closed.
    pub(super) fn program_pam_as_firmware(pci: &mut kagami_devices::pci::PciBus) {
        let pam0 = if pci.device::<Q35Mch>(Q35_HOST).is_some() {
            kagami_devices::pci::q35::PAM0
        } else {
            kagami_devices::pci::i440fx::PAM0
        } as u16;
        let host = Bdf::new(0, 0);
        pci.config_write(0, host, pam0, 1, 0x30);
        for i in 1..7u16 {
            pci.config_write(0, host, pam0 + i, 1, 0x33);
        }
    }

    /// Hand the board the memory layout; it builds the map the CPU uses
    /// (take it with [`Board::take_phys_map`]) and rebuilds it whenever the
    /// PAM or SMRAM registers change.
    pub fn set_memory_layout(&mut self, layout: MemLayout) {
        self.pciw.layout = Some(layout);
        self.read_memory_controls();
        self.rebuild_phys_map();
    }

    /// PCI interrupt routing as it stands, for the printed map.
    pub(super) fn describe_pci_irqs(&self) -> String {
        let route = |p: u8| {
            let irq = if self.pciw.q35 {
                self.pci.device::<Ich9Lpc>(Q35_LPC).and_then(|l| l.pirq_isa_irq(p))
            } else {
                self.pci.device::<Piix3Isa>(PC_ISA).and_then(|i| i.pirq_isa_irq(p))
            };
            let name = (b'A' + p) as char;
            match irq {
                Some(i) => format!("{name}->IRQ {i}"),
                None => format!("{name}->off"),
            }
        };
        let n = if self.pciw.q35 { 8 } else { 4 };
        let routes: Vec<String> = (0..n).map(route).collect();
        if self.pciw.q35 {
            format!(
                "PCI INTx: slot s pin p -> PIRQ (s+p) mod 4; PIRQA-H -> IOAPIC inputs 16-23; 8259 through ICH9 PIRQx_ROUT: {}\n",
                routes.join(", ")
            )
        } else {
            format!(
                "PCI INTx: slot s pin p -> PIRQ (s+p) mod 4 -> PIIX3 PIRQRC, same ISA IRQ on 8259 and IOAPIC: {}\n",
                routes.join(", ")
            )
        }
    }

    /// Attach QEMU's fw_cfg at ports 0x510–0x511 (selector, data) and
    /// 0x514–0x51B (DMA address, big-endian), as on QEMU's PC machines.
    pub fn attach_fw_cfg(&mut self, fw: kagami_devices::FwCfg) {
        use kagami_devices::fw_cfg::{DMA_ADDRESS, SELECTOR};
        self.fw_cfg = Some(fw);
        self.ports.retain(|r| r.dev != PortDev::FwCfg);
        for (start, len, offset, name) in [
            (0x510, 2, SELECTOR, "fw_cfg selector/data"),
            (0x514, 8, DMA_ADDRESS, "fw_cfg DMA address"),
        ] {
            self.ports.push(PortRange {
                start,
                len,
                dev: PortDev::FwCfg,
                offset,
                name,
                irq: None,
            });
        }
        self.ports.sort_by_key(|r| r.start);
    }

    /// Attach QEMU's pc-testdev: its registers at ports 0xE0-0xEB, its
    /// IRQ line window at 0x2000-0x2017 (driving ISA IRQs 0-15) and its
    /// 64 KiB scratch MMIO window at 0xFF000000. A clash with another
    /// device (isa-debugcon on 0xE9) is reported by [`Board::check_map`].
    pub fn attach_pc_testdev(&mut self) {
        use kagami_devices::testdev::*;
        let irqs = (0..IRQ_LINES as u8).map(|n| self.pins.line(n)).collect();
        self.testdev = Some(kagami_devices::PcTestdev::new(irqs));
        for (start, len, offset, name) in [
            (PORT_BASE, PORT_SPAN, 0, "pc-testdev registers"),
            (IRQ_PORT, IRQ_SPAN, IRQ_OFFSET, "pc-testdev IRQ lines"),
        ] {
            self.ports.push(PortRange {
                start,
                len,
                dev: PortDev::Testdev,
                offset,
                name,
                irq: None,
            });
        }
        self.ports.sort_by_key(|r| r.start);
        self.mmio.push(MmioRange {
            start: MMIO_BASE,
            len: MMIO_SIZE,
            dev: MmioDev::Testdev,
            name: "pc-testdev scratch memory",
        });
        self.mmio.sort_by_key(|r| r.start);
    }

    /// Guest memory for a bus-master device (after [`Board::set_memory_layout`]).
    pub fn dma_memory(&self) -> Option<GuestDma> {
        let l = self.pciw.layout.as_ref()?;
        Some(GuestDma {
            mem: l.mem.clone(),
            map: self.pciw.dma_map.clone(),
        })
    }

    /// The physical memory map, once after each change: give it to
    /// `Cpu::set_phys_map`.
    pub fn take_phys_map(&mut self) -> Option<PhysMap> {
        self.pciw.pending_map.take()
    }

    /// Call after every access to the configuration ports or the ECAM.
    pub(super) fn after_pci_access(&mut self) {
        let ch = self.pci.take_changes();
        if ch.chipset {
            self.pciw.pirq_dirty = true;
            if self.read_memory_controls() {
                self.rebuild_phys_map();
            }
        }
        if ch.bars || ch.chipset {
            self.rebuild_io_maps();
        }
        if self.pciw.pirq_dirty {
            self.sync_irqs();
        }
    }

    /// Re-read PAM and SMRAM from the host bridge; true if they changed.
    fn read_memory_controls(&mut self) -> bool {
        let (pam, smram) = if let Some(h) = self.pci.device::<I440fx>(PC_HOST) {
            (h.pam(), h.smram_open())
        } else if let Some(h) = self.pci.device::<Q35Mch>(Q35_HOST) {
            (h.pam(), h.smram_open())
        } else {
            return false;
        };
        let changed = pam != self.pciw.pam || smram != self.pciw.smram_open;
        self.pciw.pam = pam;
        self.pciw.smram_open = smram;
        changed
    }

    fn rebuild_phys_map(&mut self) {
        let Some(l) = &self.pciw.layout else { return };
        let mut m = l.base.clone();
        let ram_end = l.mem.len();
        let mut add = |start: u64, len: u64, backing: u64, kind: RegionKind| {
            if backing + len <= ram_end {
                // The layout leaves this area to us, so this cannot overlap.
                let _ = m.add(Region { start, len, backing, kind });
            }
        };
        if self.pciw.smram_open {
            add(SMRAM_START, SMRAM_LEN, SMRAM_START, RegionKind::Ram);
        }
        for s in self.pciw.pam {
            match (s.access.read_ram, s.access.write_ram) {
                (true, true) => add(s.start, s.len, s.start, RegionKind::Ram),
                // Writes to a ROM region reach the bus and vanish.
                (true, false) => add(s.start, s.len, s.start, RegionKind::Rom),
                // Reads from the ROM image; writes (if WE) caught in `pam_write`.
                (false, _) => {
                    if let Some(rom) = l.rom_backing {
                        add(s.start, s.len, rom + (s.start - BIOS_AREA_START), RegionKind::Rom)
                    }
                }
            }
        }
        *self.pciw.dma_map.lock().unwrap() = m.clone();
        self.pciw.pending_map = Some(m);
    }

    /// A write the CPU sent to the bus inside 0xC0000–0xFFFFF: stored into
    /// DRAM if the segment's PAM field has WE set but not RE. Returns
    /// whether the address is in the BIOS area at all.
    pub(super) fn pam_write(&mut self, addr: u64, size: u8, value: u64) -> bool {
        if !(BIOS_AREA_START..BIOS_AREA_START + BIOS_AREA_LEN).contains(&addr) {
            return false;
        }
        let Some(l) = &self.pciw.layout else { return true };
        let bytes = value.to_le_bytes();
        for (k, b) in bytes.iter().take(size as usize).enumerate() {
            let a = addr + k as u64;
            if let Some(s) = self.pciw.pam.iter().find(|s| (s.start..s.start + s.len).contains(&a)) {
                if s.access.write_ram && !s.access.read_ram {
                    l.mem.write(a, std::slice::from_ref(b));
                }
            }
        }
        true
    }

    /// Rebuild the port and MMIO maps: built-in ranges (the ACPI PM block
    /// at the south bridge's PM base), the Q35 ECAM window, decoded BARs.
    fn rebuild_io_maps(&mut self) {
        let pm_base = if let Some(p) = self.pci.device::<Piix4Pm>(PC_PM) {
            p.pm_base()
        } else if let Some(l) = self.pci.device::<Ich9Lpc>(Q35_LPC) {
            l.pm_base()
        } else {
            Some(ACPI_PM_BASE)
        };
        // Everything but the dynamic entries stays (other code may have
        // added ranges since `Board::new`).
        let mut ports: Vec<PortRange> = self
            .ports
            .iter()
            .filter(|r| !matches!(r.dev, PortDev::PciBar(_) | PortDev::AcpiPm | PortDev::SmiEn))
            .copied()
            .collect();
        if let (Some(mut r), Some(b)) = (self.pciw.pm_range, pm_base) {
            r.start = b;
            if b as u32 + r.len as u32 <= 0x1_0000
                && !ports
                    .iter()
                    .any(|o| ranges_overlap(o.start as u64, o.len as u64, r.start as u64, r.len as u64))
            {
                ports.push(r);
            }
        }
        // ICH9's PM block also holds SMI_EN (see `Ich9SmiEn`), unless the
        // PM device itself covers that offset.
        if let (true, Some(b)) = (self.pciw.q35, pm_base) {
            let start = b as u32 + kagami_devices::pci::ich9::SMI_EN_OFFSET as u32;
            if start + 8 <= 0x1_0000 && !ports.iter().any(|o| ranges_overlap(o.start as u64, o.len as u64, start as u64, 8)) {
                ports.push(PortRange {
                    start: start as u16,
                    len: 8,
                    dev: PortDev::SmiEn,
                    offset: 0,
                    name: "ICH9 SMI_EN/SMI_STS",
                    irq: None,
                });
            }
        }
        let mut mmio: Vec<MmioRange> = self
            .mmio
            .iter()
            .filter(|r| !matches!(r.dev, MmioDev::PciBar(_) | MmioDev::Ecam))
            .copied()
            .collect();
        if let Some((start, len)) = self.pci.device::<Q35Mch>(Q35_HOST).and_then(|m| m.ecam_window()) {
            if !mmio.iter().any(|o| ranges_overlap(o.start, o.len, start, len)) {
                mmio.push(MmioRange {
                    start,
                    len,
                    dev: MmioDev::Ecam,
                    name: "PCIe ECAM (Q35 MCH)",
                });
            }
        }
        let mut bars = Vec::new();
        for b in self.pci.bar_mappings() {
            if b.kind.is_io() {
                if b.addr + b.size > 0x1_0000 || ports.iter().any(|o| ranges_overlap(o.start as u64, o.len as u64, b.addr, b.size)) {
                    continue;
                }
                ports.push(PortRange {
                    start: b.addr as u16,
                    len: b.size as u16,
                    dev: PortDev::PciBar(bars.len() as u16),
                    offset: 0,
                    name: "PCI BAR (I/O)",
                    irq: None,
                });
            } else {
                if b.addr.checked_add(b.size).is_none() || mmio.iter().any(|o| ranges_overlap(o.start, o.len, b.addr, b.size)) {
                    continue;
                }
                mmio.push(MmioRange {
                    start: b.addr,
                    len: b.size,
                    dev: MmioDev::PciBar(bars.len() as u16),
                    name: "PCI BAR (memory)",
                });
            }
            bars.push(b);
        }
        ports.sort_by_key(|r| r.start);
        mmio.sort_by_key(|r| r.start);
        self.ports = ports;
        self.mmio = mmio;
        self.pciw.bars = bars;
    }

    /// A port access inside a decoded I/O BAR.
    pub(super) fn pci_bar_io_read(&mut self, idx: u16, offset: u16, size: u8) -> u32 {
        let b = self.pciw.bars[idx as usize];
        let n = size.min(b.size.saturating_sub(offset as u64).min(4) as u8).max(1);
        self.pci.bar_read(b.bdf, b.bar, offset as u64, n) as u32
    }

    pub(super) fn pci_bar_io_write(&mut self, idx: u16, offset: u16, size: u8, value: u32) {
        let b = self.pciw.bars[idx as usize];
        self.pci.bar_write(b.bdf, b.bar, offset as u64, size, value as u64)
    }

    pub(super) fn pci_bar_mmio_read(&mut self, idx: u16, offset: u64, size: u8) -> u64 {
        let b = self.pciw.bars[idx as usize];
        self.pci.bar_read(b.bdf, b.bar, offset, size)
    }

    pub(super) fn pci_bar_mmio_write(&mut self, idx: u16, offset: u64, size: u8, value: u64) {
        let b = self.pciw.bars[idx as usize];
        self.pci.bar_write(b.bdf, b.bar, offset, size, value)
    }

    /// The ISA IRQs PCI interrupts hold high and, on q35, the IOAPIC
    /// inputs 16–23, from the PIRQ levels and the route registers.
    pub(super) fn pci_isa_levels(&self) -> (u16, u8) {
        let levels = (self.pins.levels() >> PIRQ_PIN_BASE) as u8;
        if self.pciw.q35 {
            let isa = self.pci.device::<Ich9Lpc>(Q35_LPC).map_or(0, |l| l.isa_irq_levels(levels));
            (isa, levels)
        } else {
            let isa = self.pci.device::<Piix3Isa>(PC_ISA).map_or(0, |i| i.isa_irq_levels(levels));
            (isa, 0)
        }
    }

    /// Drive the 8259 and IOAPIC inputs whose PCI contribution changed
    /// (called from `sync_irqs` after the ISA pins were replayed, with
    /// `isa` from [`Board::pci_isa_levels`] taken before the replay).
    /// On `-machine pc` a routed PIRQ reaches the PIC and the IOAPIC input
    /// of the same ISA IRQ (PIIX3 datasheet §2.2.12 PIRQRC); on q35 the
    /// 8259 gets the ICH9-routed ISA IRQ and the IOAPIC sees PIRQA–H on
    /// inputs 16–23 (ICH9 datasheet §5.8, "PIRQ routing").
    pub(super) fn apply_pci_irqs(&mut self, isa: u16, gsi: u8, old_isa: u16) {
        let changed = isa ^ old_isa;
        let isa_pins = self.pins.levels() as u16;
        for n in 0..16u8 {
            if changed & (1 << n) == 0 || n == 2 {
                continue;
            }
            let level = (isa | isa_pins) & (1 << n) != 0;
            self.pic.set_irq(n, level);
            if !self.pciw.q35 {
                self.ioapic.set_irq(isa_irq_to_gsi(n), level);
            }
        }
        let gchanged = gsi ^ self.pciw.pirq_gsi;
        for p in 0..8u8 {
            if gchanged & (1 << p) != 0 {
                self.ioapic.set_irq(Ich9Lpc::pirq_gsi(p) as u8, gsi & (1 << p) != 0);
            }
        }
        self.pciw.pirq_gsi = gsi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kagami_cpu::Cpu;
    use kagami_devices::pci::config::{ConfigSpace, CONFIG_SIZE};
    use kagami_devices::pci::BarKind;
    use kagami_devices::DmaMemory;

    /// A function with a 16-port I/O BAR0 and a 4 KiB memory BAR1 that
    /// records accesses and answers reads with bar << 16 | offset.
    struct Probe {
        cfg: ConfigSpace,
        log: Arc<Mutex<Vec<(u8, u64, u8, Option<u64>)>>>,
    }

    impl Probe {
        fn new(log: Arc<Mutex<Vec<(u8, u64, u8, Option<u64>)>>>) -> Probe {
            let mut cfg = ConfigSpace::new(CONFIG_SIZE, 0x1234, 0x5678, 0, 0xff_00_00);
            cfg.declare_bar(0, BarKind::Io, 16);
            cfg.declare_bar(1, BarKind::Mem32 { prefetchable: false }, 0x1000);
            cfg.set_interrupt_pin(1);
            Probe { cfg, log }
        }
    }

    impl PciDevice for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn config(&self) -> &ConfigSpace {
            &self.cfg
        }
        fn config_mut(&mut self) -> &mut ConfigSpace {
            &mut self.cfg
        }
        fn bar_read(&mut self, bar: u8, offset: u64, size: u8) -> u64 {
            self.log.lock().unwrap().push((bar, offset, size, None));
            ((bar as u64) << 16) | offset
        }
        fn bar_write(&mut self, bar: u8, offset: u64, size: u8, value: u64) {
            self.log.lock().unwrap().push((bar, offset, size, Some(value)));
        }
    }

    fn board(q35: bool) -> Board {
        Board::new(BoardConfig {
            ram_below_4g: 2 << 20,
            ram_above_4g: 0,
            serial: vec![None, None],
            debug_exit: None,
            debugcon: None,
            rtc_start: 0,
            q35,
        })
    }

    fn cfg_write(b: &mut Board, dev: u8, reg: u8, size: u8, v: u32) {
        b.io_write(0xcf8, 4, 0x8000_0000 | (dev as u32) << 11 | (reg as u32 & 0xfc));
        b.io_write(0xcfc + (reg as u16 & 3), size, v);
    }

    fn cfg_read(b: &mut Board, dev: u8, reg: u8) -> u32 {
        b.io_write(0xcf8, 4, 0x8000_0000 | (dev as u32) << 11 | reg as u32);
        b.io_read(0xcfc, 4)
    }

    #[test]
    fn bar_sizing_mapping_and_moving_route_accesses() {
        for q35 in [false, true] {
            let mut b = board(q35);
            let log = Arc::new(Mutex::new(Vec::new()));
            b.add_pci_function(Bdf::new(3, 0), Box::new(Probe::new(log.clone())));
            // Sizing: all ones, read back the size mask with the type flags.
            cfg_write(&mut b, 3, 0x10, 4, !0);
            cfg_write(&mut b, 3, 0x14, 4, !0);
            assert_eq!(cfg_read(&mut b, 3, 0x10), 0xffff_fff1);
            assert_eq!(cfg_read(&mut b, 3, 0x14), 0xffff_f000);
            cfg_write(&mut b, 3, 0x10, 4, 0xc000);
            cfg_write(&mut b, 3, 0x14, 4, 0xfe00_0000);
            // Decoding is off until the command register enables it.
            assert_eq!(b.io_read(0xc004, 2), 0xffff);
            assert_eq!(b.mmio_read(0xfe00_0010, 4), 0xffff_ffff);
            assert!(log.lock().unwrap().is_empty());
            cfg_write(&mut b, 3, 0x04, 2, 0x1); // I/O only
            assert_eq!(b.io_read(0xc004, 2), 4);
            assert_eq!(b.mmio_read(0xfe00_0010, 4), 0xffff_ffff, "memory decode still off");
            cfg_write(&mut b, 3, 0x04, 2, 0x3);
            assert_eq!(b.mmio_read(0xfe00_0010, 4), 0x1_0010);
            b.io_write(0xc00f, 1, 0xab);
            b.mmio_write(0xfe00_0ff8, 8, 0x1122_3344_5566_7788);
            assert_eq!(
                *log.lock().unwrap(),
                vec![
                    (0, 4, 2, None),
                    (1, 0x10, 4, None),
                    (0, 0xf, 1, Some(0xab)),
                    (1, 0xff8, 8, Some(0x1122_3344_5566_7788))
                ]
            );
            assert!(b.describe().contains("0xc000-0xc00f"), "{}", b.describe());
            let routing = if q35 {
                "8259 through ICH9 PIRQx_ROUT: A->off"
            } else {
                "A->IRQ 10, B->IRQ 10, C->IRQ 11, D->IRQ 11"
            };
            assert!(b.describe().contains(routing), "{}", b.describe());
            // Move both: the old ranges are unclaimed, the new ones answer.
            cfg_write(&mut b, 3, 0x10, 4, 0xd000);
            cfg_write(&mut b, 3, 0x14, 4, 0xfe10_0000);
            assert_eq!(b.io_read(0xc004, 2), 0xffff);
            assert_eq!(b.mmio_read(0xfe00_0010, 4), 0xffff_ffff);
            assert_eq!(b.io_read(0xd002, 1), 2);
            assert_eq!(b.mmio_read(0xfe10_0020, 4), 0x1_0020);
            // A BAR over a built-in device (COM1's 0x3f8 is not on here,
            // but the PIT at 0x40 is) stays unmapped; the device keeps it.
            cfg_write(&mut b, 3, 0x10, 4, 0x40);
            assert_eq!(b.io_read(0x44, 1), 0xff, "nothing at 0x44 but the BAR, which is not mapped");
            b.check_map().unwrap();
        }
    }

    /// The ACPI PM block follows the PIIX4 PMBA / ICH9 PMBASE register.
    #[test]
    fn acpi_pm_block_follows_the_pm_base() {
        for (q35, dev, reg) in [(false, 1u8, 0x40u8), (true, 0x1f, 0x40)] {
            let mut b = board(q35);
            let func = if q35 { 0 } else { 3 };
            let addr = 0x8000_0000 | (dev as u32) << 11 | func << 8 | reg as u32;
            assert_ne!(b.io_read(ACPI_PM_BASE + 8, 4), 0xffff_ffff, "PM timer at 0x608");
            b.io_write(0xcf8, 4, addr);
            b.io_write(0xcfc, 4, 0xb001);
            assert_eq!(b.io_read(ACPI_PM_BASE + 8, 4), 0xffff_ffff, "moved away");
            assert_ne!(b.io_read(0xb008, 4), 0xffff_ffff, "PM timer at 0xb008");
            b.check_map().unwrap();
            if q35 {
                // SMI_EN follows: APMC_EN stays set (no SMM), other bits store.
                assert_eq!(b.io_read(0xb030, 4), 0x20);
                b.io_write(0xb030, 1, 0x01);
                assert_eq!(b.io_read(0xb030, 4), 0x21);
                assert_eq!(b.io_read(0xb034, 4), 0, "SMI_STS");
            } else {
                assert_eq!(b.io_read(0xb030, 4), 0xffff_ffff, "no SMI_EN on the PIIX4");
            }
        }
    }

    /// pc-testdev: scratch register, IRQ line window into the 8259, MMIO
    /// scratch memory; its ports clash with isa-debugcon's default 0xE9.
    #[test]
    fn pc_testdev_is_wired() {
        let mut b = board(false);
        b.attach_pc_testdev();
        b.check_map().unwrap();
        b.io_write(0xe0, 4, 0xdead_beef);
        assert_eq!(b.io_read(0xe8, 2), 0xbeef);
        init_pics(&mut b);
        b.io_write(0x2000 + 5, 1, 1);
        assert_eq!(b.acknowledge_interrupt(), Some(0x25));
        b.io_write(0x2000 + 5, 1, 0);
        b.mmio_write(0xff00_0100, 4, 0x1234_5678);
        assert_eq!(b.mmio_read(0xff00_0102, 2), 0x1234);
        assert!(b.describe().contains("pc-testdev IRQ lines"));
        let out = kagami_devices::SharedBuffer::new();
        let mut c = Board::new(BoardConfig {
            ram_below_4g: 2 << 20,
            ram_above_4g: 0,
            serial: vec![None, None],
            debug_exit: None,
            debugcon: Some((0xe9, out.sink())),
            rtc_start: 0,
            q35: false,
        });
        c.attach_pc_testdev();
        let e = c.check_map().unwrap_err();
        assert!(e.contains("isa-debugcon") && e.contains("pc-testdev"), "{e}");
    }

    fn apic_mode(b: &mut Board) {
        b.mmio_write(LAPIC_BASE + 0xf0, 4, 0x1ff);
        b.mmio_write(LAPIC_BASE + 0x350, 4, 0x1_0700);
    }

    fn ioapic_entry(b: &mut Board, pin: u64, entry: u64) {
        b.mmio_write(IOAPIC_BASE, 4, 0x11 + 2 * pin);
        b.mmio_write(IOAPIC_BASE + 0x10, 4, entry >> 32);
        b.mmio_write(IOAPIC_BASE, 4, 0x10 + 2 * pin);
        b.mmio_write(IOAPIC_BASE + 0x10, 4, entry & 0xffff_ffff);
    }

    fn init_pics(b: &mut Board) {
        for (p, v) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 4),
            (0x21, 1),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 2),
            (0xa1, 1),
            (0x21, 0x00),
            (0xa1, 0x00),
        ] {
            b.io_write(p, 1, v);
        }
    }

    /// INTA of slot 2 is PIRQC (swizzle). On pc the firmware-programmed
    /// route sends it to ISA IRQ 11 for both the 8259 and the IOAPIC; a
    /// guest reroute follows at once. On q35 it is IOAPIC input 18, and the
    /// 8259 sees it at the ICH9 route.
    #[test]
    fn pirq_reaches_pic_and_ioapic() {
        // pc, 8259 path.
        let mut b = board(false);
        init_pics(&mut b);
        b.io_write(0x4d1, 1, 0x0c); // ELCR: IRQ 10, 11 level
        let mut line = b.pci_intx_line(2, 0);
        line.set_level(true);
        assert!(b.interrupt_pending());
        assert_eq!(b.acknowledge_interrupt(), Some(0x28 + 3));
        b.io_write(0xa0, 1, 0x20);
        b.io_write(0x20, 1, 0x20);
        assert!(b.interrupt_pending(), "level-triggered, still asserted");
        line.set_level(false);
        assert!(!b.interrupt_pending());
        // Reroute PIRQC to IRQ 5 through PIIX3 PIRQRC[C] (0x62).
        cfg_write(&mut b, 1, 0x62, 1, 5);
        b.io_write(0x4d0, 1, 0x20);
        line.set_level(true);
        assert_eq!(b.acknowledge_interrupt(), Some(0x25));
        line.set_level(false);
        b.io_write(0x20, 1, 0x20);
        // Routing disabled (bit 7): nothing arrives.
        cfg_write(&mut b, 1, 0x62, 1, 0x80);
        line.set_level(true);
        assert!(!b.interrupt_pending());
        line.set_level(false);

        // pc, IOAPIC path: same ISA IRQ number.
        let mut b = board(false);
        apic_mode(&mut b);
        ioapic_entry(&mut b, 11, 0x8000 | 0x61); // level, active high
        let mut line = b.pci_intx_line(2, 0);
        line.set_level(true);
        assert_eq!(b.acknowledge_interrupt(), Some(0x61));
        line.set_level(false);
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        assert!(!b.interrupt_pending());

        // q35: IOAPIC input 16 + PIRQ, 8259 through PIRQC_ROUT (0x62).
        let mut b = board(true);
        apic_mode(&mut b);
        ioapic_entry(&mut b, 18, 0x8000 | 0x62);
        let mut line = b.pci_intx_line(2, 0);
        line.set_level(true);
        assert_eq!(b.acknowledge_interrupt(), Some(0x62));
        line.set_level(false);
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        assert!(!b.interrupt_pending());
        let mut b = board(true);
        init_pics(&mut b);
        b.io_write(0x4d0, 1, 0x40);
        cfg_write(&mut b, 0x1f, 0x62, 1, 6);
        let mut line = b.pci_intx_line(2, 0);
        line.set_level(true);
        assert_eq!(b.acknowledge_interrupt(), Some(0x26));
    }

    fn pam_board() -> (Board, GuestMemory) {
        let mut b = board(false);
        let ram = 2u64 << 20;
        let mem = GuestMemory::new(ram + BIOS_AREA_LEN).unwrap();
        let mut base = PhysMap::new();
        for (start, len) in [(0, 0xa_0000), (0x10_0000, ram - 0x10_0000)] {
            base.add(Region {
                start,
                len,
                backing: start,
                kind: RegionKind::Ram,
            })
            .unwrap();
        }
        // ROM image: 0xee everywhere; DRAM below: 0x11.
        mem.write(ram, &vec![0xee; BIOS_AREA_LEN as usize]);
        mem.write(BIOS_AREA_START, &vec![0x11; BIOS_AREA_LEN as usize]);
        b.chipset_power_on();
        b.set_memory_layout(MemLayout {
            base,
            mem: mem.clone(),
            rom_backing: Some(ram),
        });
        (b, mem)
    }

    #[test]
    fn pam_modes_switch_reads_and_writes_between_rom_and_ram() {
        let (mut b, mem) = pam_board();
        let mut cpu = Cpu::new(mem.clone(), b.take_phys_map().unwrap());
        let f = 0xf_1234;
        let byte = |mem: &GuestMemory, a: u64| {
            let mut x = [0u8];
            mem.read(a, &mut x);
            x[0]
        };
        // Power-on: reads from the ROM, writes dropped.
        assert_eq!(cpu.read_phys(&mut b, f, 1), 0xee);
        cpu.write_phys(&mut b, f, 1, 0x55);
        assert_eq!(byte(&mem, f), 0x11, "DRAM untouched");
        assert_eq!(cpu.read_phys(&mut b, f, 1), 0xee);
        assert!(b.take_phys_map().is_none());
        // F segment WE only (PAM0 = 0x20): ROM reads, writes reach DRAM.
        cfg_write(&mut b, 0, 0x59, 1, 0x20);
        assert!(b.stop_requested(), "the CPU must pick up the new map");
        cpu.set_phys_map(b.take_phys_map().unwrap());
        assert!(!b.stop_requested());
        cpu.write_phys(&mut b, f, 2, 0x7766);
        assert_eq!(cpu.read_phys(&mut b, f, 2), 0xeeee);
        assert_eq!((byte(&mem, f), byte(&mem, f + 1)), (0x66, 0x77));
        // RE only (0x10): DRAM reads, writes dropped (the shadowed BIOS).
        cfg_write(&mut b, 0, 0x59, 1, 0x10);
        cpu.set_phys_map(b.take_phys_map().unwrap());
        assert_eq!(cpu.read_phys(&mut b, f, 2), 0x7766);
        cpu.write_phys(&mut b, f, 1, 0x99);
        assert_eq!(cpu.read_phys(&mut b, f, 1), 0x66);
        // Bus masters see the same map: DRAM reads, no writes to ROM.
        let dma = b.dma_memory().unwrap();
        let mut two = [0u8; 2];
        dma.read(f, &mut two).unwrap();
        assert_eq!(two, [0x66, 0x77]);
        assert!(dma.write(f, &[1]).is_err());
        dma.write(0x9_fffe, &[5, 5]).unwrap();
        assert!(dma.write(0x9_ffff, &[5, 5]).is_err(), "runs into the VGA hole");
        // RE+WE (0x30): ordinary RAM.
        cfg_write(&mut b, 0, 0x59, 1, 0x30);
        cpu.set_phys_map(b.take_phys_map().unwrap());
        cpu.write_phys(&mut b, f, 1, 0x99);
        assert_eq!(cpu.read_phys(&mut b, f, 1), 0x99);
        // PAM1 low field (0xC0000–0xC3FFF) alone: its neighbour keeps ROM.
        cfg_write(&mut b, 0, 0x5a, 1, 0x03);
        cpu.set_phys_map(b.take_phys_map().unwrap());
        assert_eq!(cpu.read_phys(&mut b, 0xc_3fff, 1), 0x11);
        assert_eq!(cpu.read_phys(&mut b, 0xc_4000, 1), 0xee);
        // SMRAM: the VGA window until D_OPEN with G_SMRAME shows DRAM.
        assert_eq!(cpu.read_phys(&mut b, 0xa_0000, 1), 0xff);
        cfg_write(&mut b, 0, 0x72, 1, 0x4a);
        cpu.set_phys_map(b.take_phys_map().unwrap());
        cpu.write_phys(&mut b, 0xa_0000, 1, 0x42);
        assert_eq!(cpu.read_phys(&mut b, 0xa_0000, 1), 0x42);
        cfg_write(&mut b, 0, 0x72, 1, 0x0a);
        cpu.set_phys_map(b.take_phys_map().unwrap());
        assert_eq!(cpu.read_phys(&mut b, 0xa_0000, 1), 0xff);
        assert_eq!(byte(&mem, 0xa_0000), 0x42);
    }

    /// Direct kernel boot: the board leaves PAM as a BIOS would (DRAM).
    #[test]
    fn direct_boot_pam_is_ram_and_q35_pam_decodes() {
        let mut b = board(true);
        let mem = GuestMemory::new(2 << 20).unwrap();
        b.set_memory_layout(MemLayout {
            base: PhysMap::new(),
            mem: mem.clone(),
            rom_backing: None,
        });
        let m = b.take_phys_map().unwrap();
        let r = m.lookup(0xf_fff0).unwrap();
        assert_eq!((r.kind, r.backing), (RegionKind::Ram, 0xf_0000));
        // Q35 PAM0 is at 0x90: RE only for the F segment.
        cfg_write(&mut b, 0, 0x90, 1, 0x10);
        let m = b.take_phys_map().unwrap();
        assert_eq!(m.lookup(0xf_fff0).unwrap().kind, RegionKind::Rom);
        // No ROM image: RE=0 leaves the segment to the bus (open bus).
        cfg_write(&mut b, 0, 0x90, 1, 0x00);
        assert!(b.take_phys_map().unwrap().lookup(0xf_fff0).is_none());
    }
}
