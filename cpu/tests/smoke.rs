//! A first end-to-end check: a real-mode program assembled with iced-x86
//! runs on the interpreter and reports through a port.

use iced_x86::code_asm::*;
use kagami_cpu::{Bus, Cpu, Exit};

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

    let mut cpu = Cpu::with_ram(1 << 20).unwrap();
    cpu.mem.write(0x7c00, &code);
    cpu.load_real_seg(kagami_cpu::state::CS, 0);
    cpu.s.rip = 0x7c00;
    let mut bus = PortLog::default();
    assert_eq!(cpu.run(&mut bus, 1000), Exit::Halted);
    assert_eq!(bus.0, vec![(0xe9, 55)]);
}

fn real_mode_cpu(code: &[u8], at: u64) -> Cpu {
    let mut cpu = Cpu::with_ram(1 << 20).unwrap();
    cpu.mem.write(at, code);
    cpu.load_real_seg(kagami_cpu::state::CS, 0);
    cpu.s.rip = at;
    cpu
}

/// A store into the instruction that follows it, in the same decoded block,
/// must be seen when that instruction runs (SDM 11.6: self-modifying code).
#[test]
fn self_modifying_code_in_the_same_block() {
    let code = [
        0xc6, 0x06, 0x06, 0x7c, 0x42, // 7c00: mov byte [0x7c06], 0x42
        0xb0, 0x00, //                   7c05: mov al, 0 (imm at 7c06)
        0xe6, 0xe9, //                   7c07: out 0xe9, al
        0xf4, //                         7c09: hlt
    ];
    for cached in [true, false] {
        let mut cpu = real_mode_cpu(&code, 0x7c00);
        cpu.use_block_cache = cached;
        let mut bus = PortLog::default();
        assert_eq!(cpu.run(&mut bus, 100), Exit::Halted);
        assert_eq!(bus.0, vec![(0xe9, 0x42)], "block cache {cached}");
    }
}

/// Code that was decoded once and is then rewritten (a loop whose body is
/// patched on each pass) runs the new bytes each time.
#[test]
fn rewritten_code_is_decoded_again() {
    let code = [
        0xb9, 0x03, 0x00, //             7c00: mov cx, 3
        0xb0, 0x01, //                   7c03: mov al, 1 (imm at 7c04)
        0xe6, 0xe9, //                   7c05: out 0xe9, al
        0x80, 0x06, 0x04, 0x7c, 0x01, // 7c07: add byte [0x7c04], 1
        0xe2, 0xf5, //                   7c0c: loop 7c03
        0xf4, //                         7c0e: hlt
    ];
    let mut cpu = real_mode_cpu(&code, 0x7c00);
    let mut bus = PortLog::default();
    assert_eq!(cpu.run(&mut bus, 100), Exit::Halted);
    assert_eq!(bus.0, vec![(0xe9, 1), (0xe9, 2), (0xe9, 3)]);
}
