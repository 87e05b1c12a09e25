//! The CPU's doorway to devices: every port and MMIO access goes through
//! these four methods, so none can forget what each access needs. Before
//! the access the machine clock is brought up to the current instruction
//! (`Bus::sync_clock` with the exact `icount`, so a device sees the time of
//! the instruction that touches it); after it the current block ends
//! (`break_block`), because a device may have raised an interrupt or changed
//! the memory map, and the run loop's boundary checks must look again. Port
//! accesses are also matched against armed I/O breakpoints (`debug.rs`).

use crate::bus::Bus;
use crate::cpu::Cpu;

impl Cpu {
    /// IN / INS: read `size` bytes (1, 2, 4) from `port`.
    pub fn port_in(&mut self, bus: &mut dyn Bus, port: u16, size: u8) -> u32 {
        bus.sync_clock(self.s.icount);
        let v = bus.io_read(port, size);
        self.break_block = true;
        self.watch_port(port, size);
        v
    }

    /// OUT / OUTS: write `size` bytes (1, 2, 4) to `port`.
    pub fn port_out(&mut self, bus: &mut dyn Bus, port: u16, size: u8, v: u32) {
        bus.sync_clock(self.s.icount);
        bus.io_write(port, size, v);
        self.break_block = true;
        self.watch_port(port, size);
    }

    /// A read of `size` bytes (1..=8) at a physical address outside RAM/ROM.
    pub fn mmio_read(&mut self, bus: &mut dyn Bus, addr: u64, size: u8) -> u64 {
        bus.sync_clock(self.s.icount);
        let v = bus.mmio_read(addr, size);
        self.break_block = true;
        v
    }

    /// A write of `size` bytes (1..=8) at a physical address outside RAM.
    pub fn mmio_write(&mut self, bus: &mut dyn Bus, addr: u64, size: u8, v: u64) {
        bus.sync_clock(self.s.icount);
        bus.mmio_write(addr, size, v);
        self.break_block = true;
    }
}
