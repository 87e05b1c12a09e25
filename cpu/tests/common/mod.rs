//! Shared setup for CPU integration tests: a machine with RAM, put directly
//! into real mode, flat 32-bit protected mode or 64-bit long mode (identity
//! paging), and helpers to run assembled code or execute one instruction.
#![allow(dead_code)]

use iced_x86::code_asm::CodeAssembler;
use iced_x86::{Decoder, DecoderOptions};
use kagami_cpu::state::{attr, cr0, cr4, efer, Segment, CS, DS, ES, FS, GS, SS};
use kagami_cpu::{Cpu, Exception, Exit, NullBus};

/// RAM size of the test machine.
pub const RAM: u64 = 4 << 20;
/// Where test code is loaded (physical; linear in the flat modes).
pub const CODE: u64 = 0x10000;
/// A free data area (physical; DS:0 in real mode).
pub const DATA: u64 = 0x20000;
/// Top of the stack (physical).
pub const STACK: u64 = 0x30000;
/// Long-mode page tables: PML4, PDPT, PD (2 MiB pages) at these addresses.
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;

/// A CPU with `RAM` bytes of RAM at physical address 0, in the mode of
/// `bits` (16 = real mode, 32 = flat protected mode, 64 = long mode).
pub fn machine(bits: u32) -> Cpu {
    let mut cpu = Cpu::with_ram(RAM).unwrap();
    match bits {
        16 => set_real(&mut cpu),
        32 => set_flat32(&mut cpu),
        64 => set_long64(&mut cpu),
        _ => panic!("bits must be 16, 32 or 64"),
    }
    cpu
}

/// Real mode: CS = CODE >> 4, DS = ES = DATA >> 4, SS:SP just below STACK.
pub fn set_real(cpu: &mut Cpu) {
    cpu.s.cr0 &= !(cr0::PE | cr0::PG);
    cpu.update_mode();
    cpu.load_real_seg(CS, (CODE >> 4) as u16);
    for s in [DS, ES, FS, GS] {
        cpu.load_real_seg(s, (DATA >> 4) as u16);
    }
    cpu.load_real_seg(SS, ((STACK - 0x10000) >> 4) as u16);
    cpu.s.gpr[4] = 0xfff0;
    cpu.s.rip = 0;
}

fn flat(code: bool, long: bool) -> Segment {
    let mut a = attr::P | attr::S | attr::RW | attr::ACCESSED | attr::G;
    if code {
        a |= attr::CODE;
    }
    if long {
        a |= attr::L;
    } else {
        a |= attr::DB;
    }
    Segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: if code { 0x08 } else { 0x10 },
        attr: a,
    }
}

/// Flat 32-bit protected mode, CPL 0, every segment base 0 limit 4 GiB.
pub fn set_flat32(cpu: &mut Cpu) {
    cpu.s.cr0 = (cpu.s.cr0 | cr0::PE) & !(cr0::PG | cr0::CD | cr0::NW);
    cpu.s.segs[CS] = flat(true, false);
    for s in [DS, ES, FS, GS, SS] {
        cpu.s.segs[s] = flat(false, false);
    }
    cpu.update_mode();
    cpu.flush_tlb_all();
    cpu.s.gpr[4] = STACK;
    cpu.s.rip = CODE;
}

/// 64-bit long mode, CPL 0, the first 1 GiB identity-mapped with 2 MiB
/// pages (page tables written into guest RAM at 0x1000..0x4000).
pub fn set_long64(cpu: &mut Cpu) {
    let w = |cpu: &Cpu, a: u64, v: u64| cpu.mem.write(a, &v.to_le_bytes());
    w(cpu, PML4, PDPT | 3);
    w(cpu, PDPT, PD | 3);
    for k in 0..512u64 {
        w(cpu, PD + 8 * k, (k << 21) | 0x83);
    }
    cpu.s.cr3 = PML4;
    cpu.s.cr4 |= cr4::PAE;
    cpu.s.efer |= efer::LME | efer::LMA;
    cpu.s.cr0 = (cpu.s.cr0 | cr0::PE | cr0::PG) & !(cr0::CD | cr0::NW);
    cpu.s.segs[CS] = flat(true, true);
    for s in [DS, ES, FS, GS, SS] {
        let mut d = flat(false, false);
        d.attr &= !attr::DB;
        cpu.s.segs[s] = d;
    }
    cpu.update_mode();
    cpu.flush_tlb_all();
    cpu.s.gpr[4] = STACK;
    cpu.s.rip = CODE;
}

/// Assemble `f`'s code for the CPU's mode, followed by HLT, at the CPU's
/// current CS:RIP, then run it until HLT. Panics if it does not halt.
pub fn run(cpu: &mut Cpu, f: impl FnOnce(&mut CodeAssembler)) {
    let bits = cpu.s.mode.bitness();
    let mut a = CodeAssembler::new(bits).unwrap();
    f(&mut a);
    a.hlt().unwrap();
    let code = a.assemble(cpu.s.rip).unwrap();
    let phys = cpu.s.segs[CS].base + cpu.s.rip;
    cpu.mem.write(phys, &code);
    let exit = cpu.run(&mut NullBus, 10_000);
    assert_eq!(exit, Exit::Halted, "program did not reach HLT");
}

/// Execute exactly one instruction, assembled by `f` for the CPU's mode,
/// by calling its handler directly, and return what the handler returned
/// (so faults can be checked without an IDT). RIP is advanced first, as the
/// executor does.
pub fn exec(cpu: &mut Cpu, f: impl FnOnce(&mut CodeAssembler)) -> Result<(), Exception> {
    let bits = cpu.s.mode.bitness();
    let mut a = CodeAssembler::new(bits).unwrap();
    f(&mut a);
    let code = a.assemble(cpu.s.rip).unwrap();
    let mut d = Decoder::with_ip(bits, &code, cpu.s.rip, DecoderOptions::NONE);
    let insn = d.decode();
    // An invalid encoding decodes as one byte of `INVALID` (the dispatcher gives it #UD).
    assert!(insn.is_invalid() || insn.len() == code.len(), "exec takes exactly one instruction");
    let h = kagami_cpu::dispatch::handler_for(&insn, cpu.model);
    cpu.s.rip = insn.next_ip();
    h(cpu, &mut NullBus, &insn)
}

/// Physical memory helpers.
pub fn poke(cpu: &Cpu, addr: u64, bytes: &[u8]) {
    cpu.mem.write(addr, bytes);
}

pub fn peek(cpu: &Cpu, addr: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    cpu.mem.read(addr, &mut v);
    v
}

/// The three test modes.
pub const MODES: [u32; 3] = [16, 32, 64];
