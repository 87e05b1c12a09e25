//! QEMU's `pc-testdev` (hw/misc/pc-testdev.c), the ISA test device that
//! kvm-unit-tests and similar suites drive:
//!
//! | where | what |
//! |---|---|
//! | ports 0xE0–0xE3 | a 32-bit scratch register: an access of N bytes at port 0xE0 + k reads or replaces bytes k..k+N of it |
//! | ports 0xE4–0xE7 | "flush page": a dword write names a guest page whose host mapping QEMU re-protects; nothing a guest can observe, so it is accepted and ignored |
//! | ports 0xE8–0xEB | the same scratch register, reached byte by byte (QEMU splits wider accesses into bytes; the result is the same) |
//! | ports 0x2000–0x2017 | IRQ line window: a byte write at 0x2000 + n sets ISA IRQ line n to (value != 0) |
//! | MMIO 0xFF000000, 64 KiB | a scratch memory window for MMIO tests |
//!
//! Port offsets inside this device: 0–11 the three register windows
//! (port 0xE0 + offset), [`IRQ_OFFSET`] + n the IRQ line window. The MMIO
//! window is the device's [`MmioDevice`] side, offset 0 = 0xFF000000.
//!
//! kagami drives ISA IRQs 0–15 (each line wire-ORed with the board's other
//! sources for that IRQ); QEMU's window is 24 bytes but its ISA bus only
//! has 16 IRQs, so writes to lines 16–23 are ignored here.

use crate::bus::{MmioDevice, PortIoDevice};
use crate::irq::IrqLine;
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};

/// Where QEMU puts the windows.
pub const PORT_BASE: u16 = 0xe0;
pub const PORT_SPAN: u16 = 12;
pub const IRQ_PORT: u16 = 0x2000;
pub const IRQ_SPAN: u16 = 24;
pub const MMIO_BASE: u64 = 0xff00_0000;
pub const MMIO_SIZE: u64 = 0x1_0000;
/// Device offset of the IRQ line window.
pub const IRQ_OFFSET: u16 = 0x10;
/// ISA IRQ lines the window drives.
pub const IRQ_LINES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub scratch: u32,
    /// The 64 KiB MMIO window.
    pub iomem: Vec<u8>,
    /// Bit n: the level the device drives on ISA IRQ n.
    pub irq_levels: u16,
}

pub struct PcTestdev {
    scratch: u32,
    iomem: Vec<u8>,
    irq_levels: u16,
    irqs: Vec<Box<dyn IrqLine>>,
}

/// Prints the snapshot state without the 64 KiB window.
impl std::fmt::Debug for PcTestdev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcTestdev")
            .field("scratch", &self.scratch)
            .field("irq_levels", &self.irq_levels)
            .finish()
    }
}

fn ones(size: u8) -> u64 {
    if size >= 8 {
        !0
    } else {
        (1u64 << (8 * size)) - 1
    }
}

impl PcTestdev {
    /// `irqs[n]` is ISA IRQ line n (16 lines).
    pub fn new(irqs: Vec<Box<dyn IrqLine>>) -> Self {
        assert_eq!(irqs.len(), IRQ_LINES, "pc-testdev drives ISA IRQs 0-15");
        PcTestdev {
            scratch: 0,
            iomem: vec![0; MMIO_SIZE as usize],
            irq_levels: 0,
            irqs,
        }
    }

    fn scratch_read(&self, byte: u16, size: u8) -> u32 {
        let shift = 8 * (byte as u32 & 3);
        let mask = (ones(size.min(4)) as u32).checked_shl(shift).unwrap_or(0);
        (self.scratch & mask) >> shift
    }

    fn scratch_write(&mut self, byte: u16, size: u8, value: u32) {
        let shift = 8 * (byte as u32 & 3);
        let mask = (ones(size.min(4)) as u32).checked_shl(shift).unwrap_or(0);
        self.scratch = (self.scratch & !mask) | ((value << shift) & mask);
    }

    fn set_irq(&mut self, n: usize, level: bool) {
        if n >= IRQ_LINES || ((self.irq_levels >> n) & 1 != 0) == level {
            return;
        }
        self.irq_levels ^= 1 << n;
        self.irqs[n].set_level(level);
    }
}

impl PortIoDevice for PcTestdev {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        match offset {
            // Accesses that run past the dword read the bytes inside it.
            0..=3 => self.scratch_read(offset, size),
            8..=11 => self.scratch_read(offset - 8, size),
            _ => ones(size.min(4)) as u32,
        }
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) {
        match offset {
            0..=3 => self.scratch_write(offset, size, value),
            // Flush page: no guest-visible effect (see the module docs).
            4..=7 => {}
            8..=11 => self.scratch_write(offset - 8, size, value),
            o if (IRQ_OFFSET..IRQ_OFFSET + IRQ_SPAN).contains(&o) => {
                // Byte accesses only (QEMU's valid sizes); a wider write sets line n from its low byte.
                self.set_irq((o - IRQ_OFFSET) as usize, value & 0xff != 0)
            }
            _ => {}
        }
    }
}

impl MmioDevice for PcTestdev {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let (o, n) = (offset as usize, size as usize);
        let Some(bytes) = self.iomem.get(o..o + n) else {
            return ones(size);
        };
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(bytes);
        u64::from_le_bytes(v)
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        let (o, n) = (offset as usize, size as usize);
        if let Some(bytes) = self.iomem.get_mut(o..o + n) {
            bytes.copy_from_slice(&value.to_le_bytes()[..n]);
        }
    }
}

impl Snapshot for PcTestdev {
    type State = State;
    fn save(&self) -> State {
        State {
            scratch: self.scratch,
            iomem: self.iomem.clone(),
            irq_levels: self.irq_levels,
        }
    }

    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        check("pc-testdev", s.iomem.len() == MMIO_SIZE as usize, || {
            format!("MMIO window of {} bytes", s.iomem.len())
        })?;
        self.scratch = s.scratch;
        self.iomem.copy_from_slice(&s.iomem);
        for n in 0..IRQ_LINES {
            let level = (s.irq_levels >> n) & 1 != 0;
            // Drive every line to the saved level (the wiring is new).
            self.irqs[n].set_level(level);
        }
        self.irq_levels = s.irq_levels;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::IrqPins;

    fn dev() -> (PcTestdev, IrqPins) {
        let pins = IrqPins::new();
        let d = PcTestdev::new((0..16).map(|n| pins.line(n)).collect());
        (d, pins)
    }

    #[test]
    fn scratch_register_by_size_and_offset() {
        let (mut d, _) = dev();
        PortIoDevice::write(&mut d, 0, 4, 0x1122_3344);
        assert_eq!(PortIoDevice::read(&mut d, 0, 4), 0x1122_3344);
        assert_eq!(PortIoDevice::read(&mut d, 1, 1), 0x33);
        assert_eq!(PortIoDevice::read(&mut d, 2, 2), 0x1122);
        PortIoDevice::write(&mut d, 3, 1, 0xab);
        assert_eq!(PortIoDevice::read(&mut d, 0, 4), 0xab22_3344);
        // The byte window sees the same register.
        assert_eq!(PortIoDevice::read(&mut d, 8, 4), 0xab22_3344);
        PortIoDevice::write(&mut d, 9, 2, 0xbeef);
        assert_eq!(PortIoDevice::read(&mut d, 0, 4), 0xabbe_ef44);
        // Flush page: accepted, nothing changes.
        PortIoDevice::write(&mut d, 4, 4, 0x1000);
        assert_eq!(PortIoDevice::read(&mut d, 0, 4), 0xabbe_ef44);
        assert_eq!(PortIoDevice::read(&mut d, 4, 4), 0xffff_ffff);
    }

    #[test]
    fn irq_window_drives_isa_lines() {
        let (mut d, pins) = dev();
        PortIoDevice::write(&mut d, IRQ_OFFSET + 14, 1, 1);
        assert_eq!(pins.levels(), 1 << 14);
        PortIoDevice::write(&mut d, IRQ_OFFSET + 3, 1, 0x80);
        assert_eq!(pins.levels(), 1 << 14 | 1 << 3);
        PortIoDevice::write(&mut d, IRQ_OFFSET + 14, 1, 0);
        assert_eq!(pins.levels(), 1 << 3);
        PortIoDevice::write(&mut d, IRQ_OFFSET + 20, 1, 1);
        assert_eq!(pins.levels(), 1 << 3, "lines past 15 are not ISA IRQs");
        let s = d.save();
        let (mut e, pins2) = dev();
        e.restore(&s).unwrap();
        assert_eq!(pins2.levels(), 1 << 3);
    }

    #[test]
    fn mmio_window_is_memory() {
        let (mut d, _) = dev();
        MmioDevice::write(&mut d, 0x10, 8, 0x0102_0304_0506_0708);
        assert_eq!(MmioDevice::read(&mut d, 0x10, 8), 0x0102_0304_0506_0708);
        assert_eq!(MmioDevice::read(&mut d, 0x12, 2), 0x0506);
        MmioDevice::write(&mut d, 0xffff, 1, 0x5a);
        assert_eq!(MmioDevice::read(&mut d, 0xffff, 1), 0x5a);
        assert_eq!(MmioDevice::read(&mut d, 0xfffe, 4), 0xffff_ffff, "past the window");
        let mut s = d.save();
        s.iomem.pop();
        assert!(d.restore(&s).is_err());
    }
}
