//! Register access: how the machine talks to a device.
//!
//! A device is given an *offset inside its own window*, an access size in
//! bytes (1, 2, 4, or 8 for MMIO) and an integer value, little-endian, the
//! same shape as the CPU's `Bus::io_read`/`io_write`. Integers rather than
//! byte slices: every access the CPU makes is 1–8 bytes and already an
//! integer, so no copies or endianness conversions at each layer.
//!
//! Each device documents its offset layout. A device that the PC spreads over
//! several port ranges (the PIC pair at 0x20/0xA0/0x4D0, the PIT at 0x40 and
//! 0x61, the i8042 at 0x60/0x64) defines one offset space with named
//! constants, and the machine maps each port range onto the matching offsets.
//!
//! Byte-wide ISA devices see wider accesses as the ISA bus delivers them: one
//! byte cycle per byte, at consecutive offsets, low byte first
//! ([`read_bytewise`], [`write_bytewise`]).

/// A device reached through port I/O.
pub trait PortIoDevice {
    /// Read `size` bytes (1, 2 or 4) at `offset`. Bytes the device does not
    /// drive read as 0xff (open bus).
    fn read(&mut self, offset: u16, size: u8) -> u32;
    /// Write the low `size` bytes (1, 2 or 4) of `value` at `offset`.
    fn write(&mut self, offset: u16, size: u8, value: u32);
}

/// A device reached through memory-mapped registers.
pub trait MmioDevice {
    /// Read `size` bytes (1, 2, 4 or 8) at `offset` inside the device's window.
    fn read(&mut self, offset: u64, size: u8) -> u64;
    /// Write the low `size` bytes (1, 2, 4 or 8) of `value` at `offset`.
    fn write(&mut self, offset: u64, size: u8, value: u64);
}

/// Split a `size`-byte read into byte reads at `offset`, `offset + 1`, …
/// (the ISA bus's behaviour for an 8-bit device), assembling little-endian.
pub fn read_bytewise(offset: u16, size: u8, mut read_byte: impl FnMut(u16) -> u8) -> u32 {
    let mut value = 0u32;
    for i in 0..size.min(4) {
        value |= (read_byte(offset.wrapping_add(i as u16)) as u32) << (8 * i);
    }
    value
}

/// Split a `size`-byte write into byte writes at `offset`, `offset + 1`, …
pub fn write_bytewise(offset: u16, size: u8, value: u32, mut write_byte: impl FnMut(u16, u8)) {
    for i in 0..size.min(4) {
        write_byte(offset.wrapping_add(i as u16), (value >> (8 * i)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytewise_is_little_endian_and_consecutive() {
        let v = read_bytewise(2, 2, |o| o as u8 * 0x10);
        assert_eq!(v, 0x3020);
        let mut seen = Vec::new();
        write_bytewise(7, 4, 0x4433_2211, |o, b| seen.push((o, b)));
        assert_eq!(seen, vec![(7, 0x11), (8, 0x22), (9, 0x33), (10, 0x44)]);
    }
}
