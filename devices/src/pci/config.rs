//! A function's configuration space as bytes plus per-bit write rules.
//!
//! PCI Local Bus Specification 3.0 §6.1–6.2 (the type 0 header) and PCI
//! Express Base 4.0 §7.2 (4 KiB extended space). Every byte has a mask of
//! bits software may write (`wmask`) and of bits that clear when written
//! with 1 (`w1cmask`, the status register's error bits); every other bit is
//! read-only. BARs are ordinary bytes whose `wmask` leaves the size bits
//! and the type flags read-only, so "write all ones, read back" sizing falls
//! out of the masks (§6.2.5.1).

use super::{BarKind, COMMAND, HEADER_TYPE, INTERRUPT_LINE, INTERRUPT_PIN, STATUS};
use crate::snapshot::StateError;

/// Conventional PCI: 256 bytes. PCI Express: 4096.
pub const CONFIG_SIZE: usize = 256;
pub const PCIE_CONFIG_SIZE: usize = 4096;

/// One declared BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarDecl {
    pub kind: BarKind,
    /// Power of two; at least 4 for I/O, 16 for memory.
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct ConfigSpace {
    bytes: Vec<u8>,
    wmask: Vec<u8>,
    w1cmask: Vec<u8>,
    power_on: Vec<u8>,
    bars: [Option<BarDecl>; 6],
    rom_size: Option<u64>,
    last_cap: Option<u8>,
}

impl ConfigSpace {
    /// A type 0 header with the identity registers filled in. `size` is
    /// [`CONFIG_SIZE`] or [`PCIE_CONFIG_SIZE`].
    pub fn new(size: usize, vendor: u16, device: u16, revision: u8, class: u32) -> Self {
        assert!(size == CONFIG_SIZE || size == PCIE_CONFIG_SIZE, "config space of {size} bytes");
        let mut c = ConfigSpace {
            bytes: vec![0; size],
            wmask: vec![0; size],
            w1cmask: vec![0; size],
            power_on: Vec::new(),
            bars: [None; 6],
            rom_size: None,
            last_cap: None,
        };
        c.set_u16(0x00, vendor);
        c.set_u16(0x02, device);
        c.bytes[0x08] = revision;
        c.bytes[0x09] = class as u8;
        c.bytes[0x0a] = (class >> 8) as u8;
        c.bytes[0x0b] = (class >> 16) as u8;
        // Command: I/O, memory, bus master, SERR#, INTx disable are writable
        // (§6.2.2); the rest are hardwired 0 on these devices.
        c.set_wmask_u16(COMMAND, 0x0547);
        // Status: the error bits are write-one-to-clear (§6.2.3).
        c.w1cmask[STATUS as usize + 1] = 0xf9;
        c.wmask[INTERRUPT_LINE as usize] = 0xff;
        c.power_on = c.bytes.clone();
        c
    }

    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    pub fn byte(&self, offset: usize) -> u8 {
        self.bytes[offset]
    }
    pub fn u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.bytes[offset], self.bytes[offset + 1]])
    }
    pub fn u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.bytes[offset..offset + 4].try_into().unwrap())
    }

    /// Set bytes as the device (not software) does: ignores the masks.
    pub fn set_byte(&mut self, offset: usize, v: u8) {
        self.bytes[offset] = v;
    }
    pub fn set_u16(&mut self, offset: usize, v: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u32(&mut self, offset: usize, v: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_wmask(&mut self, offset: usize, mask: u8) {
        self.wmask[offset] = mask;
    }
    pub fn set_wmask_u16(&mut self, offset: u16, mask: u16) {
        self.wmask[offset as usize..offset as usize + 2].copy_from_slice(&mask.to_le_bytes());
    }
    pub fn set_wmask_u32(&mut self, offset: usize, mask: u32) {
        self.wmask[offset..offset + 4].copy_from_slice(&mask.to_le_bytes());
    }
    /// Make `offset..offset+len` fully writable (chipset scratch registers).
    pub fn set_writable(&mut self, offset: usize, len: usize) {
        self.wmask[offset..offset + len].fill(0xff);
    }

    /// Declare the INTx pin (1 = INTA … 4 = INTD), read-only.
    pub fn set_interrupt_pin(&mut self, pin: u8) {
        assert!((1..=4).contains(&pin));
        self.bytes[INTERRUPT_PIN as usize] = pin;
    }

    /// Declare BAR `index` (a 64-bit BAR also takes `index + 1`).
    pub fn declare_bar(&mut self, index: usize, kind: BarKind, size: u64) {
        assert!(size.is_power_of_two() && size >= if kind == BarKind::Io { 4 } else { 16 });
        let off = 0x10 + 4 * index;
        let low_flags = kind.flag_bits();
        let mask = !(size - 1);
        self.set_u32(off, low_flags);
        // Bits below the size and the type flags (bits 3:0 memory, 1:0 I/O) are read-only.
        let flags = if kind == BarKind::Io { 0x3 } else { 0xf };
        self.set_wmask_u32(off, (mask as u32) & !flags);
        if kind.is_64bit() {
            assert!(index < 5, "a 64-bit BAR needs two slots");
            self.set_wmask_u32(off + 4, (mask >> 32) as u32);
        }
        self.bars[index] = Some(BarDecl { kind, size });
    }

    pub fn bar_decl(&self, index: usize) -> Option<BarDecl> {
        self.bars[index]
    }

    /// The address BAR `index` currently holds (its flag bits stripped).
    pub fn bar_address(&self, index: usize) -> Option<u64> {
        let d = self.bars[index]?;
        let off = 0x10 + 4 * index;
        let lo = self.u32(off);
        Some(match d.kind {
            BarKind::Io => (lo & 0xffff_fffc) as u64,
            k if k.is_64bit() => ((self.u32(off + 4) as u64) << 32) | (lo & 0xffff_fff0) as u64,
            _ => (lo & 0xffff_fff0) as u64,
        })
    }

    /// Declare an expansion ROM BAR (offset 0x30, §6.2.5.2) of `size`
    /// bytes (a power of two, at least 2 KiB): bit 0 enables decode, bits
    /// 31:11 hold the address.
    pub fn declare_rom(&mut self, size: u64) {
        assert!(size.is_power_of_two() && (0x800..=1 << 31).contains(&size));
        self.set_wmask_u32(super::EXPANSION_ROM as usize, (!(size - 1) as u32 & 0xffff_f800) | 1);
        self.rom_size = Some(size);
    }

    /// The expansion ROM's size and address while its enable bit is set.
    pub fn rom(&self) -> Option<(u64, u64)> {
        let size = self.rom_size?;
        let v = self.u32(super::EXPANSION_ROM as usize);
        (v & 1 != 0).then_some(((v & 0xffff_f800) as u64, size))
    }

    /// Command bit 10: the function must not assert INTx (§6.2.2). A
    /// device checks this before driving its line.
    pub fn intx_disabled(&self) -> bool {
        self.u16(COMMAND as usize) & super::CMD_INTX_DISABLE != 0
    }

    /// Append a capability of `len` bytes (header included) with ID `id` at
    /// `offset` (dword aligned, at or above 0x40). The header bytes are
    /// read-only; the body's masks are the caller's. Returns `offset`.
    pub fn add_capability(&mut self, id: u8, offset: u8, len: u8) -> u8 {
        assert!(offset >= 0x40 && offset.is_multiple_of(4) && offset as usize + len as usize <= CONFIG_SIZE);
        self.bytes[offset as usize] = id;
        self.bytes[offset as usize + 1] = 0;
        match self.last_cap {
            None => self.bytes[super::CAPABILITIES as usize] = offset,
            Some(prev) => self.bytes[prev as usize + 1] = offset,
        }
        self.last_cap = Some(offset);
        // Status bit 4: capabilities list present.
        self.bytes[STATUS as usize] |= 0x10;
        offset
    }

    /// Mark the current bytes as the power-on state [`ConfigSpace::reset`] returns to.
    pub fn seal_power_on(&mut self) {
        self.power_on = self.bytes.clone();
    }

    pub fn reset(&mut self) {
        self.bytes.copy_from_slice(&self.power_on);
    }

    pub fn set_multifunction(&mut self, on: bool) {
        let h = &mut self.bytes[HEADER_TYPE as usize];
        *h = (*h & 0x7f) | if on { 0x80 } else { 0 };
        let p = &mut self.power_on[HEADER_TYPE as usize];
        *p = (*p & 0x7f) | if on { 0x80 } else { 0 };
    }

    /// Software read of `size` bytes (1, 2 or 4) at `offset`; bytes past
    /// the end read as 0xff.
    pub fn read(&self, offset: u16, size: u8) -> u32 {
        let mut v = 0u32;
        for i in 0..size.min(4) as usize {
            let b = self.bytes.get(offset as usize + i).copied().unwrap_or(0xff);
            v |= (b as u32) << (8 * i);
        }
        v
    }

    /// Software write through the masks. Returns nothing; callers compare
    /// before and after for side effects.
    pub fn write(&mut self, offset: u16, size: u8, value: u32) {
        for i in 0..size.min(4) as usize {
            let o = offset as usize + i;
            if o >= self.bytes.len() {
                break;
            }
            let v = (value >> (8 * i)) as u8;
            let (w, c) = (self.wmask[o], self.w1cmask[o]);
            self.bytes[o] = (self.bytes[o] & !w & !(v & c)) | (v & w);
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Check that `bytes` could be this space after software writes: same
    /// size and every read-only bit unchanged.
    pub fn validate(&self, device: &'static str, bytes: &[u8]) -> Result<(), StateError> {
        if bytes.len() != self.bytes.len() {
            return Err(StateError::new(
                device,
                format!("config space of {} bytes, expected {}", bytes.len(), self.bytes.len()),
            ));
        }
        for (o, &b) in bytes.iter().enumerate() {
            let fixed = !(self.wmask[o] | self.w1cmask[o]);
            // The multifunction bit is the bus's business.
            let fixed = if o == HEADER_TYPE as usize { fixed & 0x7f } else { fixed };
            if (b ^ self.power_on[o]) & fixed != 0 {
                return Err(StateError::new(
                    device,
                    format!("read-only config byte {o:#x} is {b:#04x}, hardware has {:#04x}", self.power_on[o]),
                ));
            }
        }
        Ok(())
    }

    /// Replace the bytes (after [`ConfigSpace::validate`]).
    pub fn load(&mut self, bytes: &[u8]) {
        self.bytes.copy_from_slice(bytes);
    }
}
