//! Protected-mode machinery exercised with small guest programs. Far
//! transfers and IRET are called directly where their instruction handlers
//! live in `system/far.rs` (another family), so these tests cover the
//! protected-mode paths on their own.

use crate::bus::Bus;
use crate::cpu::{Cpu, Exit};
use crate::exception::Exception;
use crate::state::{attr, cr0, efer, flags, Mode, CS, DS, ES, RSP, SS};
use iced_x86::code_asm::*;

#[derive(Default)]
struct PortLog(Vec<u32>);

impl Bus for PortLog {
    fn io_read(&mut self, _: u16, _: u8) -> u32 {
        0xffff_ffff
    }
    fn io_write(&mut self, port: u16, _: u8, v: u32) {
        if port == 0xe9 {
            self.0.push(v);
        }
    }
    fn mmio_read(&mut self, _: u64, _: u8) -> u64 {
        u64::MAX
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) {}
}

const GDT: u64 = 0x1000;
const IDT: u64 = 0x2000;
const TSS1: u64 = 0x3000;
const TSS2: u64 = 0x3100;

fn seg(base: u64, limit: u64, access: u64, fl: u64) -> u64 {
    (limit & 0xffff) | (base & 0xff_ffff) << 16 | access << 40 | ((limit >> 16) & 0xf) << 48 | fl << 52 | (base >> 24) << 56
}

fn gate(sel: u64, off: u64, access: u64) -> u64 {
    (off & 0xffff) | sel << 16 | access << 40 | (off >> 16) << 48
}

struct Env {
    cpu: Cpu,
    bus: PortLog,
}

impl Env {
    fn new() -> Env {
        Env {
            cpu: Cpu::with_ram(16 << 20).unwrap(),
            bus: PortLog::default(),
        }
    }
    fn w64(&self, a: u64, v: u64) {
        self.cpu.mem.write(a, &v.to_le_bytes());
    }
    fn w32(&self, a: u64, v: u32) {
        self.cpu.mem.write(a, &v.to_le_bytes());
    }
    fn r32(&self, a: u64) -> u32 {
        let mut b = [0u8; 4];
        self.cpu.mem.read(a, &mut b);
        u32::from_le_bytes(b)
    }
    fn code(&self, bits: u32, at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> u64 {
        let mut a = CodeAssembler::new(bits).unwrap();
        f(&mut a).unwrap();
        let b = a.assemble(at).unwrap();
        self.cpu.mem.write(at, &b);
        at + b.len() as u64
    }
    /// Flat 32-bit protected mode at CPL 0 with the standard GDT, an IDT
    /// and TSS1 loaded through LTR.
    fn prot32(&mut self) {
        let g = [
            0,
            seg(0, 0xfffff, 0x9a, 0xc),         // 0x08 code32 dpl0
            seg(0, 0xfffff, 0x92, 0xc),         // 0x10 data dpl0
            seg(0, 0xfffff, 0xfa, 0xc),         // 0x18 code32 dpl3
            seg(0, 0xfffff, 0xf2, 0xc),         // 0x20 data dpl3
            seg(TSS1, 0x67, 0x89, 0),           // 0x28 tss1
            seg(0, 0xfffff, 0x9a, 0xa),         // 0x30 code64 dpl0
            gate(0x08, 0x5600, 0xec) | 2 << 32, // 0x38 call gate dpl3, 2 params
            seg(TSS2, 0x67, 0x89, 0),           // 0x40 tss2
            seg(0, 0xfffff, 0xfa, 0xa),         // 0x48 code64 dpl3
            gate(0x40, 0, 0xe5),                // 0x50 task gate dpl3 -> tss2
        ];
        for (k, d) in g.iter().enumerate() {
            self.w64(GDT + 8 * k as u64, *d);
        }
        let c = &mut self.cpu;
        c.s.gdtr.base = GDT;
        c.s.gdtr.limit = (g.len() * 8 - 1) as u32;
        c.s.idtr.base = IDT;
        c.s.idtr.limit = 0x7ff;
        c.s.cr0 |= cr0::PE;
        c.s.segs[CS] = crate::system::desc::Desc(g[1]).segment(0x08);
        c.update_mode();
        assert_eq!(c.s.mode, Mode::Prot32);
        for s in [DS, ES, SS] {
            c.load_seg(&mut self.bus, s, 0x10).unwrap();
        }
        c.s.gpr[RSP] = 0x9000;
        // TSS1: ring-0 stack.
        self.w32(TSS1 + 4, 0x9000);
        self.w32(TSS1 + 8, 0x10);
        let end = self.code(32, 0x4f00, |a| {
            a.mov(ax, 0x28u32)?;
            a.ltr(ax)?;
            a.hlt()
        });
        self.run_at(0x4f00);
        assert_eq!(self.cpu.s.rip, end);
        assert_eq!(self.cpu.s.tr.selector, 0x28);
        assert_eq!(self.r32(GDT + 0x28 + 4) >> 8 & 0xf, 0xb, "LTR sets busy");
        self.cpu.s.halted = 0;
    }
    fn idt32(&self, vector: u64, handler: u64, dpl: u64) {
        self.w64(IDT + 8 * vector, gate(0x08, handler, 0x8e | dpl << 5));
    }
    fn run_at(&mut self, rip: u64) -> Exit {
        self.cpu.s.rip = rip;
        self.run()
    }
    fn run(&mut self) -> Exit {
        self.cpu.s.halted = 0;
        self.cpu.run(&mut self.bus, 10_000)
    }
    /// Drop to ring 3 at `rip` with an IRET frame (IOPL 3 so OUT works).
    fn enter_ring3(&mut self, rip: u64, stack: u64) {
        let top = 0x9000 - 20;
        for (k, v) in [rip, 0x1b, 0x3002, stack, 0x23].iter().enumerate() {
            self.w32(top + 4 * k as u64, *v as u32);
        }
        self.cpu.s.gpr[RSP] = top;
        self.cpu.iret_protected(&mut self.bus, 4).unwrap();
        assert_eq!(self.cpu.s.cpl, 3);
        self.cpu.s.halted = 0;
    }
}

#[test]
fn gp_from_bad_selector_reports_selector_and_returns() {
    let mut e = Env::new();
    e.prot32();
    e.idt32(13, 0x5000, 0);
    e.code(32, 0x5000, |a| {
        a.mov(eax, dword_ptr(esp))?;
        a.out(0xe9, eax)?;
        a.mov(eax, dword_ptr(esp + 4))?;
        a.out(0xe9, eax)?;
        a.add(esp, 4)?;
        // MOV DS, AX assembles as 66 8E D8.
        a.add(dword_ptr(esp), 3)?;
        a.hlt()
    });
    e.code(32, 0x4000, |a| {
        a.mov(ax, 0x1234u32)?;
        a.mov(ds, ax)?;
        a.mov(eax, 0x77u32)?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    assert_eq!(e.run_at(0x4000), Exit::Halted);
    e.cpu.iret_protected(&mut e.bus, 4).unwrap();
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.bus.0, vec![0x1234, 0x4004, 0x77], "TI stays in the error code");
    assert_eq!(e.cpu.s.segs[DS].selector, 0x10);
}

#[test]
fn page_fault_handler_maps_page() {
    let mut e = Env::new();
    e.prot32();
    let (pd, pt) = (0x10000u64, 0x11000u64);
    e.w32(pd, (pt | 7) as u32);
    for k in 0..1024u64 {
        if k != 0x100 {
            e.w32(pt + 4 * k, (k << 12 | 7) as u32);
        }
    }
    e.idt32(14, 0x5100, 0);
    e.code(32, 0x5100, |a| {
        a.mov(eax, cr2)?;
        a.out(0xe9, eax)?;
        a.mov(eax, dword_ptr(esp))?;
        a.out(0xe9, eax)?;
        a.mov(dword_ptr(pt + 0x400), 0x100007u32)?;
        a.add(esp, 4)?;
        a.hlt()
    });
    e.code(32, 0x4000, |a| {
        a.mov(eax, pd as u32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32 as i32)?;
        a.mov(cr0, eax)?;
        a.mov(dword_ptr(0x100010), 0xabcdu32)?;
        a.mov(eax, dword_ptr(0x100010))?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    assert_eq!(e.run_at(0x4000), Exit::Halted);
    assert_eq!(e.cpu.s.cr2, 0x100010);
    e.cpu.iret_protected(&mut e.bus, 4).unwrap();
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.bus.0, vec![0x100010, 2, 0xabcd]);
    assert_eq!(e.r32(0x100010), 0xabcd);
}

#[test]
fn call_gate_to_ring0_and_back() {
    let mut e = Env::new();
    e.prot32();
    // Ring 3 pushes two parameters; the gate copies them to the ring-0 stack.
    let after = e.code(32, 0x6000, |a| {
        a.push(0x11)?;
        a.push(0x22)?;
        a.nop()
    });
    e.code(32, 0x5600, |a| {
        a.mov(eax, dword_ptr(esp + 8))?;
        a.out(0xe9, eax)?;
        a.mov(eax, dword_ptr(esp + 12))?;
        a.out(0xe9, eax)?;
        a.nop()
    });
    e.enter_ring3(0x6000, 0x8000);
    // PUSH imm belongs to another family; put the parameters in place.
    e.w32(0x8000 - 4, 0x11);
    e.w32(0x8000 - 8, 0x22);
    e.cpu.s.gpr[RSP] = 0x8000 - 8;
    e.cpu.s.rip = after;
    e.cpu.far_call_protected(&mut e.bus, 0x3b, 0, 4).unwrap();
    assert_eq!((e.cpu.s.cpl, e.cpu.s.segs[CS].selector, e.cpu.s.segs[SS].selector), (0, 0x08, 0x10));
    assert_eq!(e.cpu.s.gpr[RSP], 0x9000 - 24);
    assert_eq!(e.cpu.s.rip, 0x5600);
    assert_eq!(e.cpu.run(&mut e.bus, 4), Exit::Budget);
    assert_eq!(e.bus.0, vec![0x22, 0x11]);
    // Return with RETF 8 to ring 3: DS (DPL 0) becomes null.
    e.cpu.far_ret_protected(&mut e.bus, 4, 8).unwrap();
    assert_eq!((e.cpu.s.cpl, e.cpu.s.segs[CS].selector, e.cpu.s.segs[SS].selector), (3, 0x1b, 0x23));
    assert_eq!(e.cpu.s.gpr[RSP], 0x8000);
    assert_eq!(e.cpu.s.rip, after);
    assert_eq!(e.cpu.s.segs[DS].selector, 0);
    // A call gate whose DPL is below RPL faults with its selector.
    e.w64(GDT + 0x38, gate(0x08, 0x5600, 0x8c));
    assert_eq!(
        e.cpu.far_call_protected(&mut e.bus, 0x3b, 0, 4),
        Err(Exception::GeneralProtection(0x38))
    );
}

#[test]
fn task_gate_call_and_iret_back() {
    let mut e = Env::new();
    e.prot32();
    // TSS2: EIP, EFLAGS, ESP, CS, SS, DS.
    e.w32(TSS2 + 0x20, 0x7000);
    e.w32(TSS2 + 0x24, 2);
    e.w32(TSS2 + 0x38, 0x8800);
    e.w32(TSS2 + 0x4c, 0x08);
    e.w32(TSS2 + 0x50, 0x10);
    e.w32(TSS2 + 0x54, 0x10);
    e.code(32, 0x7000, |a| {
        a.mov(eax, 0x42u32)?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    e.cpu.s.rip = 0x4123;
    e.cpu.s.gpr[0] = 0xdead;
    e.cpu.far_call_protected(&mut e.bus, 0x50, 0, 4).unwrap();
    assert_eq!(e.cpu.s.tr.selector, 0x40);
    assert_ne!(e.cpu.s.flags() & flags::NT, 0);
    assert_ne!(e.cpu.s.cr0 & cr0::TS, 0);
    assert_eq!(e.r32(TSS2) & 0xffff, 0x28, "back link");
    assert_eq!(e.r32(TSS1 + 0x20), 0x4123, "old EIP saved");
    assert_eq!(e.r32(TSS1 + 0x28), 0xdead, "old EAX saved");
    assert_eq!(e.r32(GDT + 0x40 + 4) >> 8 & 0xf, 0xb);
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.bus.0, vec![0x42]);
    e.cpu.iret_protected(&mut e.bus, 4).unwrap();
    assert_eq!(e.cpu.s.tr.selector, 0x28);
    assert_eq!(e.cpu.s.rip, 0x4123);
    assert_eq!(e.cpu.s.gpr[0], 0xdead);
    assert_eq!(e.r32(GDT + 0x40 + 4) >> 8 & 0xf, 0x9, "returned-from task no longer busy");
    // JMP to a busy TSS faults.
    assert_eq!(
        e.cpu.far_jump_protected(&mut e.bus, 0x28, 0, 4),
        Err(Exception::GeneralProtection(0x28))
    );
}

#[test]
fn v86_interrupt_to_ring0_monitor() {
    let mut e = Env::new();
    e.prot32();
    e.idt32(0x21, 0x5200, 3);
    e.idt32(13, 0x5300, 0);
    e.code(32, 0x5200, |a| {
        a.mov(eax, dword_ptr(esp + 4))?;
        a.out(0xe9, eax)?;
        a.mov(eax, dword_ptr(esp + 24))?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    e.code(32, 0x5300, |a| {
        a.mov(eax, dword_ptr(esp))?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    e.code(16, 0x7100, |a| {
        a.mov(ax, 0x1234u32)?;
        a.mov(ds, ax)?;
        a.nop()
    });
    // IRET to V86: EIP CS EFLAGS ESP SS ES DS FS GS.
    let top: u64 = 0x9000 - 36;
    for (k, v) in [0x100u32, 0x700, 0x2_3002, 0x200, 0x800, 0x11, 0x22, 0x33, 0x44].iter().enumerate() {
        e.w32(top + 4 * k as u64, *v);
    }
    e.cpu.s.gpr[RSP] = top;
    e.cpu.iret_protected(&mut e.bus, 4).unwrap();
    assert_eq!(e.cpu.s.mode, Mode::V86);
    assert_eq!(e.cpu.s.segs[CS].base, 0x7000);
    assert_eq!(e.cpu.run(&mut e.bus, 2), Exit::Budget);
    assert_eq!(e.cpu.s.segs[DS].base, 0x12340);
    // INT 0x21 (the handler of INT is in another family: raise it).
    e.cpu.s.rip += 2;
    e.cpu.raise(&mut e.bus, Exception::SoftwareInterrupt(0x21));
    assert_eq!(e.cpu.s.cpl, 0);
    assert_eq!(e.cpu.s.segs[DS].selector, 0);
    assert_eq!(e.cpu.s.gpr[RSP], 0x9000 - 36);
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.bus.0, vec![0x700, 0x1234]);
    // Back to V86 through the frame the interrupt built.
    e.cpu.s.gpr[RSP] = 0x9000 - 36;
    e.cpu.iret_protected(&mut e.bus, 4).unwrap();
    assert_eq!(e.cpu.s.mode, Mode::V86);
    assert_eq!(e.cpu.s.segs[DS].selector, 0x1234);
    assert_eq!(e.cpu.s.rip, 0x107);
    // Far CALL/RETF in V86 mode are real-mode transfers.
    let sp0 = e.cpu.s.gpr[RSP];
    e.cpu.far_call_protected(&mut e.bus, 0x0900, 0x10, 2).unwrap();
    assert_eq!((e.cpu.s.segs[CS].base, e.cpu.s.rip, e.cpu.s.gpr[RSP]), (0x9000, 0x10, sp0 - 4));
    assert_eq!(e.r32(0x8000 + sp0 - 4), 0x0700_0107);
    e.cpu.far_ret_protected(&mut e.bus, 2, 0).unwrap();
    assert_eq!((e.cpu.s.segs[CS].selector, e.cpu.s.rip, e.cpu.s.gpr[RSP]), (0x700, 0x107, sp0));
    assert_eq!(e.cpu.s.mode, Mode::V86);
    // With IOPL 0, INT n in V86 mode is #GP(0) to the monitor.
    e.cpu.s.rflags &= !flags::IOPL;
    e.cpu.raise(&mut e.bus, Exception::SoftwareInterrupt(0x21));
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.bus.0[2], 0);
}

#[test]
fn long_mode_syscall_sysret_and_page_fault() {
    let mut e = Env::new();
    e.prot32();
    let (pml4, pdpt, pd) = (0x20000u64, 0x21000u64, 0x22000u64);
    e.w64(pml4, pdpt | 7);
    e.w64(pdpt, pd | 7);
    for k in 0..8u64 {
        e.w64(pd + 8 * k, k << 21 | 0x87);
    }
    e.code(32, 0x4000, |a| {
        a.mov(eax, cr4)?;
        a.or(eax, 0x20)?;
        a.mov(cr4, eax)?;
        a.mov(eax, pml4 as u32)?;
        a.mov(cr3, eax)?;
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.or(eax, 0x101)?;
        a.wrmsr()?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32 as i32)?;
        a.mov(cr0, eax)?;
        a.hlt()
    });
    assert_eq!(e.run_at(0x4000), Exit::Halted);
    assert_ne!(e.cpu.s.efer & efer::LMA, 0);
    assert_eq!(e.cpu.s.mode, Mode::Compat32);
    // 64-bit IDT: #PF handler.
    e.cpu.s.idtr.limit = 0xfff;
    let g = gate(0x30, 0x5400, 0x8e);
    e.w64(IDT + 16 * 14, g);
    e.w64(IDT + 16 * 14 + 8, 0);
    e.code(64, 0x5400, |a| {
        a.mov(rax, cr2)?;
        a.out(0xe9, eax)?;
        a.mov(rax, qword_ptr(rsp))?;
        a.out(0xe9, eax)?;
        a.mov(rax, rsp)?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    e.code(64, 0x4800, |a| {
        a.mov(ecx, 0xc000_0081u32)?;
        a.xor(eax, eax)?;
        a.mov(edx, 0x0018_0008u32)?;
        a.wrmsr()?;
        a.mov(ecx, 0xc000_0082u32)?;
        a.mov(eax, 0x5500u32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.mov(rcx, 0x6100u64)?;
        a.mov(r11, 0x3202u64)?;
        a.sysretq()
    });
    e.code(64, 0x6100, |a| {
        a.mov(eax, 7u32)?;
        a.syscall()
    });
    e.code(64, 0x5500, |a| {
        a.mov(rax, rcx)?;
        a.out(0xe9, eax)?;
        a.mov(rax, 0x4000_0000u64)?;
        a.mov(rax, qword_ptr(rax))?;
        a.hlt()
    });
    e.cpu.s.rip = 0x4f00;
    e.cpu.far_jump_protected(&mut e.bus, 0x30, 0x4800, 4).unwrap();
    assert_eq!(e.cpu.s.mode, Mode::Long64);
    e.cpu.s.gpr[RSP] = 0x9008;
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.cpu.s.cpl, 0);
    assert_eq!(e.cpu.s.gpr[11] & 0x3000, 0x3000, "R11 holds ring-3 RFLAGS");
    // #PF pushed an error code on a 16-byte aligned frame: 0x9000 - 48.
    assert_eq!(e.bus.0, vec![0x6107, 0x4000_0000, 0, 0x9000 - 48]);
}

#[test]
fn sysenter_sysexit_round_trip() {
    let mut e = Env::new();
    e.prot32();
    e.code(32, 0x4000, |a| {
        a.mov(ecx, 0x174u32)?;
        a.mov(eax, 0x08u32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.mov(ecx, 0x175u32)?;
        a.mov(eax, 0x8f00u32)?;
        a.wrmsr()?;
        a.mov(ecx, 0x176u32)?;
        a.mov(eax, 0x5700u32)?;
        a.wrmsr()?;
        a.hlt()
    });
    assert_eq!(e.run_at(0x4000), Exit::Halted);
    e.code(32, 0x5700, |a| {
        a.mov(eax, esp)?;
        a.out(0xe9, eax)?;
        a.mov(ecx, 0x7ff0u32)?;
        a.mov(edx, 0x6200u32)?;
        a.sysexit()
    });
    e.code(32, 0x6200, |a| {
        a.mov(eax, esp)?;
        a.out(0xe9, eax)?;
        a.sysenter()
    });
    e.enter_ring3(0x6200, 0x8000);
    assert_eq!(e.cpu.run(&mut e.bus, 8), Exit::Budget);
    assert_eq!(e.bus.0, vec![0x8000, 0x8f00]);
    assert_eq!((e.cpu.s.cpl, e.cpu.s.segs[CS].selector, e.cpu.s.segs[SS].selector), (3, 0x1b, 0x23));
    assert_eq!((e.cpu.s.rip, e.cpu.s.gpr[RSP]), (0x6200, 0x7ff0));
}

#[test]
fn triple_fault_shuts_down() {
    let mut e = Env::new();
    e.prot32();
    e.cpu.s.idtr.limit = 0;
    e.code(32, 0x4000, |a| {
        a.mov(ax, 0x1234u32)?;
        a.mov(ds, ax)
    });
    assert_eq!(e.run_at(0x4000), Exit::TripleFault);
}

#[test]
fn descriptor_instructions() {
    let mut e = Env::new();
    e.prot32();
    e.code(32, 0x4000, |a| {
        a.mov(ecx, 0x1bu32)?;
        a.lar(eax, ecx)?;
        a.out(0xe9, eax)?;
        a.lsl(eax, ecx)?;
        a.out(0xe9, eax)?;
        a.mov(ecx, 0x1234u32)?;
        a.lsl(eax, ecx)?;
        a.hlt()
    });
    assert_eq!(e.run_at(0x4000), Exit::Halted);
    assert_eq!(e.bus.0, vec![0x00cf_fa00, 0xffff_ffff]);
    assert!(!e.cpu.s.zf());
    let _ = attr::P;
}

#[test]
fn control_register_and_efer_checks() {
    let mut e = Env::new();
    e.prot32();
    let c = &mut e.cpu;
    // PG without PE, NW without CD, bits above 31.
    assert_eq!(c.write_cr0(cr0::PG), Err(Exception::GP0));
    assert_eq!(c.write_cr0(cr0::PE | cr0::NW), Err(Exception::GP0));
    assert_eq!(c.write_cr0(1 << 32 | cr0::PE), Err(Exception::GP0));
    // Long mode needs PAE before paging.
    c.write_efer(efer::LME).unwrap();
    assert_eq!(c.write_cr0(c.s.cr0 | cr0::PG), Err(Exception::GP0));
    assert_eq!(c.write_efer(1 << 20), Err(Exception::GP0));
    // CR4: VME is not implemented, so it cannot be set.
    assert_eq!(c.write_cr4(crate::state::cr4::VME), Err(Exception::GP0));
    // PCIDE outside IA-32e mode.
    assert_eq!(c.write_cr4(crate::state::cr4::PCIDE), Err(Exception::GP0));
    // PAT with an invalid memory type.
    let mut bus = PortLog::default();
    assert_eq!(c.write_msr(&mut bus, 0x277, 0x0202_0202_0202_0202), Err(Exception::GP0));
    assert_eq!(c.read_msr(&mut bus, 0x1234_5678), None);
}

#[test]
fn rdrand_is_deterministic_and_sets_cf() {
    let run = || {
        let mut e = Env::new();
        e.prot32();
        e.code(32, 0x4000, |a| {
            a.rdrand(eax)?;
            a.out(0xe9, eax)?;
            a.rdseed(eax)?;
            a.out(0xe9, eax)?;
            a.hlt()
        });
        e.run_at(0x4000);
        assert!(e.cpu.s.cf());
        e.bus.0
    };
    let a = run();
    assert_eq!(a, run());
    assert_ne!(a[0], a[1]);
}

#[test]
fn fsgsbase_needs_cr4_and_checks_canonical() {
    let mut e = Env::new();
    e.prot32();
    e.cpu.s.efer |= efer::LMA | efer::LME;
    e.cpu.s.cr4 |= crate::state::cr4::PAE;
    e.cpu.s.segs[CS].attr = (e.cpu.s.segs[CS].attr & !attr::DB) | attr::L;
    e.cpu.s.cr0 |= cr0::PG;
    e.cpu.s.cr3 = 0x20000;
    e.cpu.update_mode();
    assert_eq!(e.cpu.s.mode, Mode::Long64);
    e.w64(0x20000, 0x21007);
    e.w64(0x21000, 0x22007);
    e.w64(0x22000, 0x87);
    e.code(64, 0x4000, |a| {
        a.mov(rax, 0x1234_5678_9abcu64)?;
        a.wrfsbase(rax)?;
        a.rdfsbase(rbx)?;
        a.hlt()
    });
    // Without CR4.FSGSBASE: #UD, delivered through an empty IDT: shutdown.
    e.cpu.s.idtr.limit = 0;
    assert_eq!(e.run_at(0x4000), Exit::TripleFault);
    e.cpu.shutdown = false;
    e.cpu.s.cr4 |= crate::state::cr4::FSGSBASE;
    assert_eq!(e.run_at(0x4000), Exit::Halted);
    assert_eq!(e.cpu.s.gpr[3], 0x1234_5678_9abc);
    assert_eq!(e.cpu.s.segs[crate::state::FS].base, 0x1234_5678_9abc);
}

#[test]
fn iretq_to_compat_ring3_and_ist_delivery() {
    let mut e = Env::new();
    e.prot32();
    let (pml4, pdpt, pd) = (0x20000u64, 0x21000u64, 0x22000u64);
    e.w64(pml4, pdpt | 7);
    e.w64(pdpt, pd | 7);
    e.w64(pd, 0x87);
    // A 16-byte 64-bit TSS descriptor at 0x60; RSP0 and an unaligned IST1.
    const TSS64: u64 = 0x3200;
    e.w64(GDT + 0x60, seg(TSS64, 0x67, 0x89, 0));
    e.w64(GDT + 0x68, 0);
    e.cpu.s.gdtr.limit = 0x6f;
    e.w64(TSS64 + 4, 0x9000);
    e.w64(TSS64 + 0x24, 0x8808);
    let c = &mut e.cpu;
    c.write_cr4(crate::state::cr4::PAE).unwrap();
    c.write_cr3(pml4).unwrap();
    c.write_efer(efer::LME).unwrap();
    c.write_cr0(c.s.cr0 | cr0::PG).unwrap();
    assert_eq!(c.s.mode, Mode::Compat32);
    c.s.idtr.limit = 0xfff;
    e.w64(IDT + 16 * 0x80, gate(0x30, 0x5800, 0xee) | 1 << 32);
    e.w64(IDT + 16 * 0x80 + 8, 0);
    e.code(64, 0x4800, |a| {
        a.mov(ax, 0x60u32)?;
        a.ltr(ax)?;
        a.hlt()
    });
    e.code(64, 0x5800, |a| {
        a.mov(rax, rsp)?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    let after = e.code(32, 0x6300, |a| {
        a.mov(eax, 0x99u32)?;
        a.int(0x80)
    });
    e.cpu.s.rip = 0x4f00;
    e.cpu.far_jump_protected(&mut e.bus, 0x30, 0x4800, 4).unwrap();
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.cpu.s.tr.selector, 0x60);
    assert_eq!(e.cpu.s.tr.base, TSS64);
    // IRETQ to 32-bit ring-3 code in compatibility mode.
    let top = 0x9000 - 40;
    for (k, v) in [0x6300u64, 0x1b, 0x3002, 0x7000, 0x23].iter().enumerate() {
        e.w64(top + 8 * k as u64, *v);
    }
    e.cpu.s.gpr[RSP] = top;
    e.cpu.iret_protected(&mut e.bus, 8).unwrap();
    assert_eq!((e.cpu.s.mode, e.cpu.s.cpl, e.cpu.s.gpr[RSP]), (Mode::Compat32, 3, 0x7000));
    assert_eq!(e.cpu.s.segs[DS].selector, 0, "DPL-0 DS nulled on return to ring 3");
    if !crate::dispatch::implemented(iced_x86::Code::Int_imm8) {
        eprintln!("SKIPPED rest of iretq_to_compat_ring3_and_ist_delivery: INT imm8 not implemented");
        return;
    }
    assert_eq!(e.run(), Exit::Halted);
    // IST1 aligned down to 0x8800, five qwords pushed.
    assert_eq!(e.bus.0, vec![0x8800 - 40]);
    assert_eq!(e.r32(0x8800 - 40), after as u32);
    assert_eq!(e.r32(0x8800 - 32), 0x1b);
    assert_eq!(e.r32(0x8800 - 8), 0x23);
    assert_eq!((e.cpu.s.segs[SS].selector, e.cpu.s.segs[CS].selector), (0, 0x30));
    e.cpu.s.gpr[RSP] = 0x8800 - 40;
    e.cpu.iret_protected(&mut e.bus, 8).unwrap();
    assert_eq!((e.cpu.s.mode, e.cpu.s.rip, e.cpu.s.gpr[RSP]), (Mode::Compat32, after, 0x7000));
}

#[test]
fn ring3_int_switches_to_tss_stack_and_software_dpl_check() {
    let mut e = Env::new();
    e.prot32();
    e.idt32(0x80, 0x5800, 3);
    e.idt32(0x81, 0x5800, 0);
    e.idt32(13, 0x5900, 0);
    e.code(32, 0x5800, |a| {
        a.mov(eax, esp)?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    e.code(32, 0x5900, |a| {
        a.mov(eax, dword_ptr(esp))?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    e.enter_ring3(0x6000, 0x8000);
    e.cpu.s.rip = 0x6002;
    e.cpu.raise(&mut e.bus, Exception::SoftwareInterrupt(0x80));
    assert_eq!(e.run(), Exit::Halted);
    // EIP CS EFLAGS ESP SS on the ring-0 stack from TSS1.
    let top = 0x9000 - 20;
    assert_eq!(e.bus.0, vec![top as u32]);
    let frame: Vec<u32> = (0..5).map(|k| e.r32(top + 4 * k)).collect();
    assert_eq!(frame, vec![0x6002, 0x1b, 0x3002, 0x8000, 0x23]);
    e.cpu.s.gpr[RSP] = top;
    e.cpu.iret_protected(&mut e.bus, 4).unwrap();
    assert_eq!((e.cpu.s.cpl, e.cpu.s.rip, e.cpu.s.gpr[RSP]), (3, 0x6002, 0x8000));
    // INT 0x81 from ring 3 through a DPL-0 gate: #GP(0x81*8+2).
    e.cpu.raise(&mut e.bus, Exception::SoftwareInterrupt(0x81));
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.bus.0[1], 0x81 * 8 + 2);
}

#[test]
fn ldt_selectors_and_table_stores() {
    let mut e = Env::new();
    e.prot32();
    // LDT at 0x3800 with one data segment (index 1, base 0x100000) and a GDT entry for it at 0x60.
    e.w64(0x3808, seg(0x10_0000, 0xffff, 0xf2, 0x4));
    e.w64(GDT + 0x60, seg(0x3800, 0xf, 0x82, 0));
    e.cpu.s.gdtr.limit = 0x67;
    e.w32(0x10_0010, 0xfeed);
    e.code(32, 0x4000, |a| {
        a.mov(ax, 0x60u32)?;
        a.lldt(ax)?;
        a.mov(ax, 0x0fu32)?; // index 1, TI, RPL 3
        a.mov(es, ax)?;
        a.mov(eax, dword_ptr(0x10).es())?;
        a.out(0xe9, eax)?;
        a.xor(ebx, ebx)?;
        let mut l1 = a.create_label();
        let mut l2 = a.create_label();
        a.verr(word_ptr(0x7000))?;
        a.jnz(l1)?;
        a.or(ebx, 1)?;
        a.set_label(&mut l1)?;
        a.mov(ax, 0x0fu32)?;
        a.verw(ax)?;
        a.jnz(l2)?;
        a.or(ebx, 0x100)?;
        a.set_label(&mut l2)?;
        a.sgdt(ptr(0x7100))?;
        a.sidt(ptr(0x7110))?;
        a.sldt(word_ptr(0x7120))?;
        a.mov(cx, 0x10u32)?;
        a.mov(dx, 0x03u32)?;
        a.arpl(cx, dx)?;
        a.hlt()
    });
    e.w32(0x7000, 0x08); // VERR of the ring-0 code segment (readable): ZF=1
    e.run_at(0x4000);
    assert_eq!(e.bus.0, vec![0xfeed]);
    assert_eq!(e.cpu.s.segs[ES].base, 0x10_0000);
    assert_eq!(e.cpu.s.gpr[3] & 0xffff, 0x0101, "VERR code, VERW LDT data");
    assert_eq!(e.r32(0x7100) & 0xffff, 0x67);
    assert_eq!(e.r32(0x7102), GDT as u32);
    assert_eq!(e.r32(0x7112), IDT as u32);
    assert_eq!(e.r32(0x7120) & 0xffff, 0x60);
    assert_eq!(e.cpu.s.gpr[1] & 0xffff, 0x13);
    assert!(e.cpu.s.zf());
}

#[test]
fn task_jmp_loads_cr3_and_ldt_and_jumps_back() {
    let mut e = Env::new();
    e.prot32();
    // Two page directories of 4 MiB pages: the second maps 0x400000 to 0x800000.
    let (pd1, pd2) = (0x10000u64, 0x12000u64);
    for pd in [pd1, pd2] {
        for k in 0..4u64 {
            e.w32(pd + 4 * k, (k << 22 | 0x87) as u32);
        }
    }
    e.w32(pd2 + 4, 0x80_0087);
    e.w32(0x40_0000, 0x1111);
    e.w32(0x80_0000, 0x2222);
    // LDT with a data segment based at 0x400000.
    e.w64(0x3808, seg(0x40_0000, 0xffff, 0x92, 0x4));
    e.w64(GDT + 0x60, seg(0x3800, 0xf, 0x82, 0));
    e.cpu.s.gdtr.limit = 0x67;
    let c = &mut e.cpu;
    c.write_cr4(crate::state::cr4::PSE).unwrap();
    c.write_cr3(pd1).unwrap();
    c.write_cr0(c.s.cr0 | cr0::PG).unwrap();
    // TSS2: CR3, EIP, EFLAGS, ESP, ES, CS, SS, DS (LDT selector), LDT.
    for (off, v) in [
        (0x1c, pd2 as u32),
        (0x20, 0x7000),
        (0x24, 2),
        (0x38, 0x8800),
        (0x48, 0x10),
        (0x4c, 0x08),
        (0x50, 0x10),
        (0x54, 0x0c),
        (0x60, 0x60),
    ] {
        e.w32(TSS2 + off, v);
    }
    e.code(32, 0x7000, |a| {
        a.mov(eax, dword_ptr(0))?;
        a.out(0xe9, eax)?;
        a.hlt()
    });
    e.cpu.s.rip = 0x4444;
    e.cpu.far_jump_protected(&mut e.bus, 0x40, 0, 4).unwrap();
    assert_eq!((e.cpu.s.cr3, e.cpu.s.ldtr.selector, e.cpu.s.segs[DS].base), (pd2, 0x60, 0x40_0000));
    assert_eq!(e.cpu.s.flags() & flags::NT, 0, "JMP does not nest");
    assert_eq!(e.r32(GDT + 0x28 + 4) >> 8 & 0xf, 0x9, "old TSS no longer busy");
    assert_eq!(e.run(), Exit::Halted);
    assert_eq!(e.bus.0, vec![0x2222]);
    // And back: the old task resumes where it jumped. A task switch does
    // not save CR3, so the old TSS must hold it.
    e.w32(TSS1 + 0x1c, pd1 as u32);
    e.cpu.far_jump_protected(&mut e.bus, 0x28, 0, 4).unwrap();
    assert_eq!((e.cpu.s.rip, e.cpu.s.cr3, e.cpu.s.tr.selector), (0x4444, pd1, 0x28));
    assert_eq!(e.cpu.s.segs[DS].selector, 0x10);
}

#[test]
fn gate16_pushes_a_16_bit_frame_and_iret16_returns() {
    let mut e = Env::new();
    e.prot32();
    // 16-bit interrupt gate (type 6) to a handler at 0x5a00.
    e.w64(IDT + 8 * 0x40, gate(0x08, 0x5a00, 0x86));
    e.code(32, 0x5a00, |a| a.hlt());
    e.cpu.s.rip = 0x4321;
    e.cpu.s.gpr[RSP] = 0x9000;
    e.cpu.raise(&mut e.bus, Exception::SoftwareInterrupt(0x40));
    assert_eq!(e.cpu.s.gpr[RSP], 0x9000 - 6);
    assert_eq!(e.r32(0x9000 - 6) & 0xffff, 0x4321);
    assert_eq!(e.r32(0x9000 - 4) & 0xffff, 0x08);
    assert_eq!(e.cpu.s.rip, 0x5a00);
    assert_eq!(e.cpu.s.flags() & flags::IF, 0);
    e.cpu.iret_protected(&mut e.bus, 2).unwrap();
    assert_eq!((e.cpu.s.rip, e.cpu.s.gpr[RSP]), (0x4321, 0x9000));
    // A gate in the IDT that is not a gate type: #GP(vector*8+2), EXT=0 for INT n.
    e.w64(IDT + 8 * 0x41, gate(0x08, 0x5a00, 0x81));
    e.idt32(13, 0x5b00, 0);
    e.code(32, 0x5b00, |a| a.hlt());
    e.cpu.raise(&mut e.bus, Exception::SoftwareInterrupt(0x41));
    assert_eq!(e.cpu.s.rip, 0x5b00);
    assert_eq!(e.r32(0x9000 - 16), 0x41 * 8 + 2);
    // A gate whose target is a data segment, for an external interrupt: #GP(selector | EXT).
    e.w64(IDT + 8 * 0x42, gate(0x10, 0x5a00, 0x8e));
    e.cpu.s.gpr[RSP] = 0x9000;
    e.cpu.deliver_external(&mut e.bus, 0x42);
    assert_eq!(e.r32(0x9000 - 16), 0x10 | 1, "data segment as gate target: #GP(sel|EXT)");
}
