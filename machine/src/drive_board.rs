//! Disk controllers on the board (a child module of `board.rs`): the PIIX3
//! IDE function with its legacy ports on `-machine pc`, the ICH9 AHCI
//! function at 00:1f.2 on `-machine q35`, as QEMU places `if=ide` drives.
//!
//! Both replace or join the PCI functions of the chipset through
//! [`Board::add_pci_function`], so their BARs (IDE BAR4 bus master, AHCI
//! BAR5 ABAR) are mapped wherever the firmware or the kernel puts them.
//! Without firmware (direct kernel boot) nobody would program those BARs,
//! so [`Board::attach_disks`] does what SeaBIOS does: BAR at a fixed
//! address, I/O or memory decode and bus mastering on, IDE decode enabled.

use super::*;
use kagami_devices::pci::{Bdf, CMD_BUS_MASTER, CMD_IO, CMD_MEMORY, COMMAND, PC_IDE};
use kagami_devices::storage::{Drive, Ich9Ahci, Piix3IdePci};

/// Where the ICH9 AHCI function sits on `-machine q35` (as on QEMU).
pub const Q35_AHCI: Bdf = Bdf::new(0x1f, 2);
/// BAR addresses programmed for a direct kernel boot: inside the PCI I/O
/// and 32-bit memory windows the ACPI `_CRS` describes.
pub const IDE_BM_BASE: u16 = 0xc000;
pub const AHCI_ABAR: u32 = 0xfebf_0000;

/// The PIIX3's legacy IDE ports: (port, length, controller offset, name, IRQ).
const IDE_LEGACY: [(u16, u16, u16, &str, u8); 4] = [
    (0x1f0, 8, kagami_devices::storage::ide::PRIMARY, "IDE primary command block", 14),
    (0x3f6, 1, kagami_devices::storage::ide::PRIMARY_CONTROL, "IDE primary control", 14),
    (0x170, 8, kagami_devices::storage::ide::SECONDARY, "IDE secondary command block", 15),
    (
        0x376,
        1,
        kagami_devices::storage::ide::SECONDARY_CONTROL,
        "IDE secondary control",
        15,
    ),
];

impl Board {
    /// Attach the disk controller of this machine with `drives` (QEMU
    /// `index`, device): on pc the PIIX3 IDE function (index / 2 = channel,
    /// index % 2 = unit), on q35 ICH9 AHCI (index = port). `program_bars`:
    /// set up BARs and decode as firmware would (direct kernel boot).
    pub fn attach_disks(&mut self, drives: Vec<(u32, Drive)>, program_bars: bool) -> Result<(), String> {
        let dma = self
            .dma_memory()
            .ok_or("the disk controllers need the memory layout first (a wiring bug)")?;
        if self.pciw_is_q35() {
            let mut ahci = Ich9Ahci::new(self.pci_intx_line(Q35_AHCI.device, 0), self.msi.sender(), Box::new(dma));
            for (index, d) in drives {
                if index as usize >= kagami_devices::storage::ahci::PORTS {
                    return Err(format!("-drive index={index}: the AHCI controller has 6 ports"));
                }
                ahci.attach(index as usize, d);
            }
            self.add_pci_function(Q35_AHCI, Box::new(ahci));
            if program_bars {
                self.pci.config_write(0, Q35_AHCI, 0x24, 4, AHCI_ABAR);
                self.pci.config_write(0, Q35_AHCI, COMMAND, 2, (CMD_MEMORY | CMD_BUS_MASTER) as u32);
            }
        } else {
            let mut ide = Piix3IdePci::new(self.pins.line(14), self.pins.line(15), Box::new(dma));
            for (index, d) in drives {
                if index >= 4 {
                    return Err(format!("-drive index={index}: the IDE controller has 4 places (0 to 3)"));
                }
                ide.attach(index, d);
            }
            self.add_pci_function(PC_IDE, Box::new(ide));
            self.ports.retain(|r| r.dev != PortDev::IdeLegacy);
            for (start, len, offset, name, irq) in IDE_LEGACY {
                self.ports.push(PortRange {
                    start,
                    len,
                    dev: PortDev::IdeLegacy,
                    offset,
                    name,
                    irq: Some(irq),
                });
            }
            self.ports.sort_by_key(|r| r.start);
            if program_bars {
                self.pci.config_write(0, PC_IDE, 0x20, 4, IDE_BM_BASE as u32 | 1);
                // IDETIM bit 15 (IDE decode enable) for both channels, as SeaBIOS
                // sets it: Linux's ata_piix leaves a channel alone without it.
                self.pci.config_write(0, PC_IDE, 0x40, 2, 0x8000);
                self.pci.config_write(0, PC_IDE, 0x42, 2, 0x8000);
                self.pci.config_write(0, PC_IDE, COMMAND, 2, (CMD_IO | CMD_BUS_MASTER) as u32);
            }
        }
        self.after_pci_access();
        self.check_map()
    }

    /// A further ICH9 AHCI controller (QEMU's `-device ahci`) at PCI slot
    /// `slot` (function 0), or at the first free slot from 2 up when `None`.
    /// `abar` is the ABAR programmed for a direct kernel boot (`program_bars`).
    /// Returns the slot used.
    pub fn attach_ahci(&mut self, slot: Option<u8>, drives: Vec<(u32, Drive)>, program_bars: bool, abar: u32) -> Result<u8, String> {
        let taken = |b: &Board, s: u8| b.pci.functions().find(|(bdf, _)| bdf.device == s).map(|(_, d)| d.name());
        let slot = match slot {
            Some(s) if s >= 32 => return Err(format!("-device ahci: PCI slot {s:#x} does not exist (0 to 0x1f)")),
            Some(s) => match taken(self, s) {
                Some(name) => return Err(format!("-device ahci: PCI slot {s:#x} is taken by the {name}")),
                None => s,
            },
            None => (2..32)
                .find(|&s| taken(self, s).is_none())
                .ok_or("-device ahci: no free PCI slot left")?,
        };
        let dma = self
            .dma_memory()
            .ok_or("the disk controllers need the memory layout first (a wiring bug)")?;
        let mut ahci = Ich9Ahci::new(self.pci_intx_line(slot, 0), self.msi.sender(), Box::new(dma));
        for (index, d) in drives {
            if index as usize >= kagami_devices::storage::ahci::PORTS {
                return Err(format!("-device ahci: port {index} does not exist (0 to 5)"));
            }
            ahci.attach(index as usize, d);
        }
        let bdf = Bdf::new(slot, 0);
        self.add_pci_function(bdf, Box::new(ahci));
        if program_bars {
            self.pci.config_write(0, bdf, 0x24, 4, abar);
            self.pci.config_write(0, bdf, COMMAND, 2, (CMD_MEMORY | CMD_BUS_MASTER) as u32);
        }
        self.after_pci_access();
        self.check_map()?;
        Ok(slot)
    }

    fn pciw_is_q35(&self) -> bool {
        self.pci
            .device::<kagami_devices::pci::q35::Q35Mch>(kagami_devices::pci::Q35_HOST)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kagami_cpu::{GuestMemory, PhysMap, Region, RegionKind};
    use kagami_devices::storage::MemBackend;

    /// A q35 board with 2 MiB of RAM and one AHCI disk on port 0, BARs
    /// programmed as for a direct kernel boot.
    fn q35_with_disk() -> (Board, GuestMemory) {
        let mut b = Board::new(BoardConfig {
            ram_below_4g: 2 << 20,
            ram_above_4g: 0,
            serial: vec![None, None],
            debug_exit: None,
            debugcon: None,
            rtc_start: 0,
            q35: true,
        });
        let ram = 2u64 << 20;
        let mem = GuestMemory::new(ram).unwrap();
        let mut base = PhysMap::new();
        base.add(Region {
            start: 0,
            len: ram,
            backing: 0,
            kind: RegionKind::Ram,
        })
        .unwrap();
        b.chipset_power_on();
        b.set_memory_layout(MemLayout {
            base,
            mem: mem.clone(),
            rom_backing: None,
        });
        let disk = Drive::disk(Box::new(MemBackend::new(vec![0; 1 << 20])), "QM00001");
        b.attach_disks(vec![(0, disk)], true).unwrap();
        (b, mem)
    }

    fn cfg_write(b: &mut Board, reg: u8, size: u8, v: u32) {
        let addr = 0x8000_0000 | (Q35_AHCI.device as u32) << 11 | (Q35_AHCI.function as u32) << 8 | (reg as u32 & 0xfc);
        b.io_write(0xcf8, 4, addr);
        b.io_write(0xcfc + (reg as u16 & 3), size, v);
    }

    /// Run FLUSH CACHE in slot 0 of port 0 (command list at 0x1000, FIS area
    /// at 0x2000, command table at 0x3000).
    fn flush(b: &mut Board, mem: &GuestMemory) {
        let abar = AHCI_ABAR as u64;
        let port = abar + 0x100;
        b.mmio_write(abar + 0x04, 4, 0x8000_0002); // GHC: AE, IE
        b.mmio_write(port, 4, 0x1000);
        b.mmio_write(port + 0x08, 4, 0x2000);
        b.mmio_write(port + 0x14, 4, 0xffff_ffff);
        b.mmio_write(port + 0x18, 4, 0x11);
        mem.write(0x3000, &[0x27, 0x80, 0xe7, 0, 0, 0, 0, 0x40]);
        let mut hdr = [0u8; 16];
        hdr[0] = 5;
        hdr[8..12].copy_from_slice(&0x3000u32.to_le_bytes());
        mem.write(0x1000, &hdr);
        b.mmio_write(port + 0x38, 4, 1);
    }

    /// The AHCI function's MSI goes through the board to the local APIC as
    /// a message, and INTx (PIRQ → IOAPIC) stays quiet while MSI is on.
    #[test]
    fn ahci_msi_reaches_the_local_apic() {
        let (mut b, mem) = q35_with_disk();
        b.mmio_write(LAPIC_BASE + 0xf0, 4, 0x1ff); // software enable
        let o = kagami_devices::storage::ahci::MSI_CAP_OFFSET;
        cfg_write(&mut b, o + 4, 4, 0xfee0_0000);
        cfg_write(&mut b, o + 8, 4, 0);
        cfg_write(&mut b, o + 12, 2, 0x0045);
        cfg_write(&mut b, o + 2, 2, 1);
        flush(&mut b, &mem);
        assert!(b.interrupt_pending());
        assert_eq!(b.acknowledge_interrupt(), Some(0x45));
        assert_eq!(b.pciw.pirq_isa, 0, "no INTx");
        assert!(b.pci_isa_levels() == (0, 0), "no PIRQ asserted");
        // EOI; the condition is still pending (not acknowledged at the HBA):
        // no second message until software clears IS.
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        assert!(!b.interrupt_pending());
        b.mmio_write(AHCI_ABAR as u64 + 0x110, 4, 0xffff_ffff);
        b.mmio_write(AHCI_ABAR as u64 + 0x08, 4, 1);
        assert!(!b.interrupt_pending());
    }
}
