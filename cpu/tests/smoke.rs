//! A first end-to-end check: a real-mode program assembled with iced-x86
//! runs on the interpreter and reports through a port.

use iced_x86::code_asm::*;
use kagami_cpu::{Bus, Cpu, Exit, GuestMemory, PhysMap, Region, RegionKind};

#[derive(Default)]
struct PortLog(Vec<(u16, u32)>);

impl Bus for PortLog {
    fn io_read(&mut self, _: u16, _: u8) -> u32 {
        0xffff_ffff
    }
    fn io_write(&mut self, port: u16, _: u8, v: u32) {
        self.0.push((port, v));
    }
    fn mmio_read(&mut self, _: u64, _: u8) -> u64 {
        u64::MAX
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) {}
}

#[test]
fn real_mode_loop_sums_and_reports() {
    let mut a = CodeAssembler::new(16).unwrap();
    a.xor(ax, ax).unwrap();
    a.mov(cx, 10u32).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.add(ax, cx).unwrap();
    a.loop_(top).unwrap();
    a.mov(dx, 0xe9u32).unwrap();
    a.out(dx, ax).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x7c00).unwrap();

    let mem = GuestMemory::new(1 << 20).unwrap();
    let mut map = PhysMap::new();
    map.add(Region {
        start: 0,
        len: 1 << 20,
        backing: 0,
        kind: RegionKind::Ram,
    })
    .unwrap();
    mem.write(0x7c00, &code);
    let mut cpu = Cpu::new(mem, map);
    cpu.load_real_seg(kagami_cpu::state::CS, 0);
    cpu.s.rip = 0x7c00;
    let mut bus = PortLog::default();
    assert_eq!(cpu.run(&mut bus, 1000), Exit::Halted);
    assert_eq!(bus.0, vec![(0xe9, 55)]);
}
