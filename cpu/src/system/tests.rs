//! Protected-mode machinery exercised with small guest programs. Far
//! transfers and IRET are called directly where their instruction handlers
//! live in `system/far.rs` (another family), so these tests cover the
//! protected-mode paths on their own.

use crate::bus::Bus;
use crate::cpu::{Cpu, Exit};
use crate::exception::Exception;
use crate::memory::{GuestMemory, PhysMap, Region, RegionKind};
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
        let mem = GuestMemory::new(16 << 20).unwrap();
        let mut map = PhysMap::new();
        map.add(Region {
            start: 0,
            len: 16 << 20,
            backing: 0,
            kind: RegionKind::Ram,
        })
        .unwrap();
        Env {
            cpu: Cpu::new(mem, map),
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
    fn to_ring3(&mut self, rip: u64, stack: u64) {
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
    e.to_ring3(0x6000, 0x8000);
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
    e.to_ring3(0x6200, 0x8000);
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
        a.setz(al)?;
        a.hlt()
    });
    e.run_at(0x4000);
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
