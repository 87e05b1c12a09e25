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
            let mut ahci = Ich9Ahci::new(self.pci_intx_line(Q35_AHCI.device, 0), Box::new(dma));
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

    fn pciw_is_q35(&self) -> bool {
        self.pci
            .device::<kagami_devices::pci::q35::Q35Mch>(kagami_devices::pci::Q35_HOST)
            .is_some()
    }
}
