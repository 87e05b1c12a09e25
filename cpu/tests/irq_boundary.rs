//! Where interrupts are taken does not depend on how code is cut into
//! decoded blocks: an interrupt made pending by an instruction (here an
//! MMIO write to a device) is taken at the boundary right after that
//! instruction, with the block cache on or off.

mod common;

use common::*;
use kagami_cpu::bus::Bus;
use kagami_cpu::state::{flags, ES, RBX, RCX};
use kagami_cpu::{Cpu, Exit, GuestMemory, PhysMap, Region, RegionKind};

/// A device at 0xA0000 whose register write raises interrupt vector 0x20.
#[derive(Default)]
struct IrqDevice {
    pending: bool,
    taken: u32,
}

impl Bus for IrqDevice {
    fn io_read(&mut self, _: u16, _: u8) -> u32 {
        0xffff_ffff
    }
    fn io_write(&mut self, _: u16, _: u8, _: u32) {}
    fn mmio_read(&mut self, _: u64, _: u8) -> u64 {
        0
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) {
        self.pending = true;
    }
    fn interrupt_pending(&mut self) -> bool {
        self.pending
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.pending = false;
        self.taken += 1;
        Some(0x20)
    }
}

fn real_mode_with_hole() -> Cpu {
    let mem = GuestMemory::new(RAM).unwrap();
    let mut map = PhysMap::new();
    for (start, len) in [(0, 0xa0000), (0x10_0000, RAM - 0x10_0000)] {
        map.add(Region {
            start,
            len,
            backing: start,
            kind: RegionKind::Ram,
        })
        .unwrap();
    }
    let mut cpu = Cpu::new(mem, map);
    set_real(&mut cpu);
    cpu
}

#[test]
fn interrupt_raised_by_mmio_is_taken_right_after_the_access() {
    for cached in [true, false] {
        let mut cpu = real_mode_with_hole();
        cpu.use_block_cache = cached;
        cpu.load_real_seg(ES, 0xa000);
        // mov word [es:0], 1 ; inc bx ; inc bx ; inc bx ; hlt
        poke(&cpu, CODE, &[0x26, 0xc7, 0x06, 0x00, 0x00, 0x01, 0x00, 0x43, 0x43, 0x43, 0xf4]);
        // Vector 0x20 -> 1000:1000: mov cx, bx ; hlt
        poke(&cpu, 0x80, &[0x00, 0x10, 0x00, 0x10]);
        poke(&cpu, CODE + 0x1000, &[0x89, 0xd9, 0xf4]);
        cpu.s.gpr[RBX] = 0;
        cpu.s.gpr[RCX] = 0xffff;
        cpu.s.rflags |= flags::IF;
        let mut bus = IrqDevice::default();
        assert_eq!(cpu.run(&mut bus, 1000), Exit::Halted);
        assert_eq!(bus.taken, 1);
        assert_eq!(
            cpu.s.gpr[RCX], 0,
            "interrupt taken after {} INC BX (block cache {cached})",
            cpu.s.gpr[RCX]
        );
        assert_eq!(cpu.s.rip, 0x1003, "halted in the handler");
    }
}
