//! System-level guest programs: each builds its own GDT/IDT/TSS/page tables
//! in real mode, switches modes, and reports through port 0xe9 (done: 0xf4).
//! Tests that need an instruction another family has not implemented yet
//! print "SKIPPED" with the missing codes.

use iced_x86::code_asm::*;
use iced_x86::Code;
use kagami_cpu::state::{efer, Mode};
use kagami_cpu::Exit;
use kagami_tests::guest::{skip_without, Guest, DONE_PORT};

const GDT: u32 = 0x1000;
const IDT: u32 = 0x2000;
const TSS1: u32 = 0x3000;
const TSS2: u32 = 0x3100;
const PROT32: u64 = 0x8000;
const STACK0: u32 = 0x9_0000;

fn seg(base: u64, limit: u64, access: u64, fl: u64) -> u64 {
    (limit & 0xffff) | (base & 0xff_ffff) << 16 | access << 40 | ((limit >> 16) & 0xf) << 48 | fl << 52 | (base >> 24) << 56
}

fn gate(sel: u64, off: u64, access: u64) -> u64 {
    (off & 0xffff) | sel << 16 | access << 40 | (off >> 16) << 48
}

/// The GDT every program builds.
fn gdt() -> Vec<u64> {
    vec![
        0,
        seg(0, 0xfffff, 0x9a, 0xc),         // 0x08 code32 dpl0
        seg(0, 0xfffff, 0x92, 0xc),         // 0x10 data dpl0
        seg(0, 0xfffff, 0xfa, 0xc),         // 0x18 code32 dpl3
        seg(0, 0xfffff, 0xf2, 0xc),         // 0x20 data dpl3
        seg(TSS1 as u64, 0x67, 0x89, 0),    // 0x28 tss1
        seg(0, 0xfffff, 0x9a, 0xa),         // 0x30 code64 dpl0
        gate(0x08, 0xa000, 0xec) | 1 << 32, // 0x38 call gate dpl3, 1 param
        seg(TSS2 as u64, 0x67, 0x89, 0),    // 0x40 tss2
        gate(0x40, 0, 0xe5),                // 0x48 task gate dpl3
        seg(0, 0xfffff, 0xf2, 0xc),         // 0x50 data dpl3 (SYSRET SS)
        seg(0, 0xfffff, 0xfa, 0xa),         // 0x58 code64 dpl3 (SYSRET CS)
    ]
}

/// Emit stores of 64-bit values (descriptors, table entries) to memory.
fn store64(a: &mut CodeAssembler, at: u32, vals: &[u64]) -> Result<(), IcedError> {
    for (k, v) in vals.iter().enumerate() {
        let p = at + 8 * k as u32;
        a.mov(dword_ptr(p), *v as u32)?;
        a.mov(dword_ptr(p + 4), (*v >> 32) as u32)?;
    }
    Ok(())
}

/// Real mode at 0x7c00: build the GDT, LGDT, set CR0.PE and far-jump to
/// 32-bit code at `PROT32`.
fn boot_to_prot32(g: &Guest) {
    g.asm(16, 0x7c00, |a| {
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        store64(a, GDT, &gdt())?;
        a.mov(word_ptr(0x500), (gdt().len() * 8 - 1) as u32)?;
        a.mov(dword_ptr(0x502), GDT)?;
        a.lgdt(ptr(0x500))?;
        a.mov(eax, cr0)?;
        a.or(eax, 1)?;
        a.mov(cr0, eax)?;
        // JMP 0x08:PROT32
        a.db(&[0xea, PROT32 as u8, (PROT32 >> 8) as u8, 0x08, 0])
    });
}

/// The 32-bit stub at `PROT32`: flat data segments, stack, TSS1 (LTR),
/// IDT (LIDT), then on to the test's code at 0x8100.
fn link_prot32(g: &Guest) {
    let end = g.asm(32, PROT32, |a| {
        a.mov(ax, 0x10u32)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(ss, ax)?;
        a.mov(esp, STACK0)?;
        a.mov(dword_ptr(TSS1 + 4), STACK0)?;
        a.mov(dword_ptr(TSS1 + 8), 0x10u32)?;
        a.mov(word_ptr(TSS1 + 102), 0x68u32)?;
        a.mov(ax, 0x28u32)?;
        a.ltr(ax)?;
        a.mov(word_ptr(0x510), 0x7ffu32)?;
        a.mov(dword_ptr(0x512), IDT)?;
        a.lidt(ptr(0x510))?;
        a.jmp(0x8100u64)
    });
    assert!(end <= 0x8100);
}

fn prot32_guest() -> Guest {
    let g = Guest::new(4);
    boot_to_prot32(&g);
    link_prot32(&g);
    g
}

fn idt32(a: &mut CodeAssembler, vector: u32, handler: u64, dpl: u64) -> Result<(), IcedError> {
    store64(a, IDT + 8 * vector, &[gate(0x08, handler, 0x8e | dpl << 5)])
}

fn done(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.out(DONE_PORT as u32, al)
}

const FAR: &[Code] = &[Code::Jmp_ptr1616];

fn run(g: &mut Guest) -> Exit {
    let e = g.run_at(0x7c00, 100_000);
    assert!(g.bus.done || e != Exit::Stopped);
    e
}

#[test]
fn system_gp_from_bad_selector() {
    if skip_without("system_gp_from_bad_selector", &[FAR[0], Code::Pop_r32, Code::Iretd]) {
        return;
    }
    let mut g = prot32_guest();
    g.asm(32, 0x8100, |a| {
        idt32(a, 13, 0xa000, 0)?;
        a.mov(ax, 0x0ff8u32)?;
        a.mov(ds, ax)?;
        a.mov(eax, 0x77u32)?;
        a.out(0xe9, eax)?;
        done(a)
    });
    g.asm(32, 0xa000, |a| {
        a.pop(eax)?;
        a.out(0xe9, eax)?;
        a.add(dword_ptr(esp), 3)?;
        a.iretd()
    });
    assert_eq!(run(&mut g), Exit::Stopped);
    assert_eq!(g.reports(), vec![0x0ff8, 0x77]);
}

#[test]
fn system_real_protected_long_and_page_fault() {
    if skip_without(
        "system_real_protected_long_and_page_fault",
        &[FAR[0], Code::Jmp_ptr1632, Code::Iretq],
    ) {
        return;
    }
    let mut g = prot32_guest();
    let (pml4, pdpt, pd) = (0x20000u32, 0x21000u32, 0x22000u32);
    g.asm(32, 0x8100, |a| {
        store64(a, pml4, &[pdpt as u64 | 7])?;
        store64(a, pdpt, &[pd as u64 | 7])?;
        let pdes: Vec<u64> = (0..4).map(|k| k << 21 | 0x87).collect();
        store64(a, pd, &pdes)?;
        // 64-bit IDT: #PF handler at 0xb000.
        store64(a, IDT + 16 * 14, &[gate(0x30, 0xb000, 0x8e), 0])?;
        a.mov(dword_ptr(0x600), 0x5a5au32)?;
        a.mov(eax, cr4)?;
        a.or(eax, 0x20)?;
        a.mov(cr4, eax)?;
        a.mov(eax, pml4)?;
        a.mov(cr3, eax)?;
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.or(eax, 0x100)?;
        a.wrmsr()?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32 as i32)?;
        a.mov(cr0, eax)?;
        // JMP 0x30:0x9000
        a.db(&[0xea, 0x00, 0x90, 0, 0, 0x30, 0])
    });
    g.asm(64, 0x9000, |a| {
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.out(0xe9, eax)?;
        a.mov(eax, dword_ptr(0x4000_0600))?;
        a.out(0xe9, eax)?;
        done(a)
    });
    g.asm(64, 0xb000, |a| {
        a.mov(rax, cr2)?;
        a.out(0xe9, eax)?;
        a.mov(rax, qword_ptr(rsp))?;
        a.out(0xe9, eax)?;
        // Map 0x40000000 onto the first gigabyte's page directory.
        a.mov(dword_ptr(pdpt + 8), pd | 7)?;
        a.add(rsp, 8)?;
        a.iretq()
    });
    assert_eq!(run(&mut g), Exit::Stopped);
    assert_eq!(g.cpu.s.mode, Mode::Long64);
    assert_ne!(g.cpu.s.efer & efer::LMA, 0);
    assert_eq!(g.reports(), vec![0x30, 0x4000_0600, 0, 0x5a5a]);
}

/// Drop to ring 3 at `rip` (IOPL 3 so the program can report) with IRETD.
fn iret_to_ring3(a: &mut CodeAssembler, rip: u32) -> Result<(), IcedError> {
    a.push(0x23)?;
    a.push(0x8_0000)?;
    a.push(0x3002)?;
    a.push(0x1b)?;
    a.push(rip as i32)?;
    a.iretd()
}

#[test]
fn system_call_gate_to_ring0_and_back() {
    let need = [
        FAR[0],
        Code::Pushd_imm32,
        Code::Pushd_imm8,
        Code::Iretd,
        Code::Call_ptr1632,
        Code::Retfd_imm16,
    ];
    if skip_without("system_call_gate_to_ring0_and_back", &need) {
        return;
    }
    let mut g = prot32_guest();
    g.asm(32, 0x8100, |a| iret_to_ring3(a, 0xc000));
    g.asm(32, 0xc000, |a| {
        a.push(0x11)?;
        // CALL 0x3b:0 (the call gate, RPL 3)
        a.db(&[0x9a, 0, 0, 0, 0, 0x3b, 0])?;
        a.out(0xe9, eax)?;
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.out(0xe9, eax)?;
        a.mov(eax, esp)?;
        a.out(0xe9, eax)?;
        done(a)
    });
    g.asm(32, 0xa000, |a| {
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.out(0xe9, eax)?;
        a.mov(eax, dword_ptr(esp + 8))?;
        a.retf_1(4)
    });
    assert_eq!(run(&mut g), Exit::Stopped);
    assert_eq!(g.reports(), vec![0x08, 0x11, 0x1b, 0x8_0000]);
}

#[test]
fn system_task_gate_switch_and_back() {
    if skip_without("system_task_gate_switch_and_back", &[FAR[0], Code::Call_ptr1632, Code::Iretd]) {
        return;
    }
    let mut g = prot32_guest();
    g.asm(32, 0x8100, |a| {
        for (off, v) in [
            (0x20, 0xd000u32),
            (0x24, 2),
            (0x38, 0x7_0000),
            (0x48, 0x10),
            (0x4c, 0x08),
            (0x50, 0x10),
            (0x54, 0x10),
        ] {
            a.mov(dword_ptr(TSS2 + off), v)?;
        }
        // CALL 0x48:0 (task gate)
        a.db(&[0x9a, 0, 0, 0, 0, 0x48, 0])?;
        a.mov(eax, 0x43u32)?;
        a.out(0xe9, eax)?;
        a.str(ax)?;
        a.out(0xe9, eax)?;
        done(a)
    });
    g.asm(32, 0xd000, |a| {
        a.str(ax)?;
        a.out(0xe9, eax)?;
        a.iretd()
    });
    assert_eq!(run(&mut g), Exit::Stopped);
    let r = g.reports();
    assert_eq!(r.iter().map(|v| v & 0xffff).collect::<Vec<_>>(), vec![0x40, 0x43, 0x28]);
}

#[test]
fn system_v86_int_handled_by_monitor() {
    let need = [FAR[0], Code::Pushd_imm32, Code::Pushd_imm8, Code::Iretd, Code::Int_imm8];
    if skip_without("system_v86_int_handled_by_monitor", &need) {
        return;
    }
    let mut g = prot32_guest();
    g.asm(32, 0x8100, |a| {
        idt32(a, 0x21, 0xa000, 3)?;
        for v in [0u32, 0, 0x1234, 0, 0x800, 0x200, 0x2_3002, 0x700, 0x100] {
            a.push(v as i32)?;
        }
        a.iretd()
    });
    // V86 code at 0x700:0x100.
    g.asm(16, 0x7100, |a| {
        a.mov(ax, 0x1111u32)?;
        a.int(0x21)?;
        a.xor(eax, eax)?;
        a.mov(ax, ds)?;
        a.int(0x21)?;
        a.mov(ax, 0xdeadu32)?;
        a.int(0x21)
    });
    g.asm(32, 0xa000, |a| {
        let mut fin = a.create_label();
        a.out(0xe9, eax)?;
        a.cmp(ax, 0xdeadu32 as i32)?;
        a.je(fin)?;
        a.iretd()?;
        a.set_label(&mut fin)?;
        a.xor(eax, eax)?;
        a.mov(ax, ds)?;
        a.out(0xe9, eax)?;
        done(a)
    });
    assert_eq!(run(&mut g), Exit::Stopped);
    let r: Vec<u32> = g.reports().iter().map(|v| v & 0xffff).collect();
    assert_eq!(r, vec![0x1111, 0x1234, 0xdead, 0]);
}

#[test]
fn system_sysenter_sysexit() {
    if skip_without(
        "system_sysenter_sysexit",
        &[FAR[0], Code::Pushd_imm32, Code::Pushd_imm8, Code::Iretd],
    ) {
        return;
    }
    let mut g = prot32_guest();
    g.asm(32, 0x8100, |a| {
        for (msr, v) in [(0x174u32, 0x08u32), (0x175, STACK0), (0x176, 0xa000)] {
            a.mov(ecx, msr)?;
            a.mov(eax, v)?;
            a.xor(edx, edx)?;
            a.wrmsr()?;
        }
        iret_to_ring3(a, 0xc000)
    });
    g.asm(32, 0xc000, |a| {
        a.mov(ecx, esp)?;
        a.mov(edx, 0xc100u32)?;
        a.mov(eax, 5u32)?;
        a.sysenter()
    });
    g.asm(32, 0xc100, |a| {
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.out(0xe9, eax)?;
        done(a)
    });
    g.asm(32, 0xa000, |a| {
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.out(0xe9, eax)?;
        a.mov(eax, esp)?;
        a.out(0xe9, eax)?;
        a.sysexit()
    });
    assert_eq!(run(&mut g), Exit::Stopped);
    let r: Vec<u32> = g.reports();
    assert_eq!(r[0] & 0xffff, 0x08);
    assert_eq!(r[1], STACK0);
    assert_eq!(r[2] & 0xffff, 0x1b);
}

#[test]
fn system_syscall_sysret_round_trip() {
    if skip_without("system_syscall_sysret_round_trip", &[FAR[0], Code::Jmp_ptr1632]) {
        return;
    }
    let mut g = prot32_guest();
    let (pml4, pdpt, pd) = (0x20000u32, 0x21000u32, 0x22000u32);
    g.asm(32, 0x8100, |a| {
        store64(a, pml4, &[pdpt as u64 | 7])?;
        store64(a, pdpt, &[pd as u64 | 7])?;
        let pdes: Vec<u64> = (0..4).map(|k| k << 21 | 0x87).collect();
        store64(a, pd, &pdes)?;
        a.mov(eax, cr4)?;
        a.or(eax, 0x20)?;
        a.mov(cr4, eax)?;
        a.mov(eax, pml4)?;
        a.mov(cr3, eax)?;
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.or(eax, 0x101)?;
        a.wrmsr()?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32 as i32)?;
        a.mov(cr0, eax)?;
        a.db(&[0xea, 0x00, 0x90, 0, 0, 0x30, 0])
    });
    g.asm(64, 0x9000, |a| {
        // STAR: SYSCALL CS 0x30, SYSRET base 0x48 (SS 0x50, CS64 0x58).
        for (msr, lo, hi) in [
            (0xc000_0081u32, 0u32, 0x0048_0030u32),
            (0xc000_0082, 0xa000, 0),
            (0xc000_0084, 0x200, 0),
        ] {
            a.mov(ecx, msr)?;
            a.mov(eax, lo)?;
            a.mov(edx, hi)?;
            a.wrmsr()?;
        }
        a.mov(rcx, 0xc000u64)?;
        a.mov(r11, 0x3202u64)?;
        a.sysretq()
    });
    g.asm(64, 0xc000, |a| {
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.out(0xe9, eax)?;
        a.syscall()?;
        a.xor(eax, eax)?;
        a.mov(ax, ss)?;
        a.out(0xe9, eax)?;
        done(a)
    });
    g.asm(64, 0xa000, |a| {
        a.xor(eax, eax)?;
        a.mov(ax, cs)?;
        a.out(0xe9, eax)?;
        a.mov(rax, r11)?;
        a.out(0xe9, eax)?;
        a.sysretq()
    });
    assert_eq!(run(&mut g), Exit::Stopped);
    let r: Vec<u32> = g.reports();
    assert_eq!(r.len(), 4);
    assert_eq!(
        (r[0], r[1], r[2] & 0xff00, r[3]),
        (0x5b, 0x30, 0x3200, 0x53),
        "R11 holds ring-3 RFLAGS"
    );
}

#[test]
fn system_triple_fault() {
    // Only system instructions: PE on without a far jump, an empty IDT, a bad selector.
    let mut g = Guest::new(1);
    g.asm(16, 0x7c00, |a| {
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(word_ptr(0x500), 0u32)?;
        a.mov(dword_ptr(0x502), 0u32)?;
        a.lidt(ptr(0x500))?;
        a.mov(eax, cr0)?;
        a.or(eax, 1)?;
        a.mov(cr0, eax)?;
        a.mov(ax, 0x1234u32)?;
        a.mov(ds, ax)?;
        a.hlt()
    });
    assert_eq!(g.run_at(0x7c00, 1000), Exit::TripleFault);
}

// ----- debug exceptions (SDM Vol. 3B chapter 17) -----

mod debug {
    use iced_x86::code_asm::*;
    use kagami_cpu::Exit;
    use kagami_tests::guest::{flat_cpu, Guest, DONE_PORT, FLAT_CODE, FLAT_CODE64_SEL};

    /// Above the harness's page tables (0x1000-0x3fff).
    const IDT64: u64 = 0x6000;
    /// Handlers: #DB, #UD, #BP.
    const DB: u64 = 0x1_1000;
    const UD: u64 = 0x1_1400;
    const BP: u64 = 0x1_1800;
    /// A page of data holding the data breakpoints.
    const DATA: u64 = 0x2_0000;

    const RF: u32 = 1 << 16;
    const TF: u32 = 1 << 8;

    /// A flat 64-bit guest whose IDT sends #DB, #UD and #BP to `DB`, `UD`, `BP`.
    fn guest() -> Guest {
        let mut g = flat_cpu(64);
        for (v, h) in [(1u64, DB), (6, UD), (3, BP)] {
            let lo = (h & 0xffff) | (FLAT_CODE64_SEL as u64) << 16 | 0x8e << 40 | (h >> 16) << 48;
            g.load(IDT64 + 16 * v, &lo.to_le_bytes());
            g.load(IDT64 + 16 * v + 8, &0u64.to_le_bytes());
        }
        g.cpu.s.idtr.base = IDT64;
        g.cpu.s.idtr.limit = 0xfff;
        g
    }

    fn report(a: &mut CodeAssembler, r: AsmRegister32) -> Result<(), IcedError> {
        a.mov(eax, r)?;
        a.out(0xe9, eax)
    }

    fn done(a: &mut CodeAssembler) -> Result<(), IcedError> {
        a.out(DONE_PORT as u32, al)
    }

    fn run(g: &mut Guest) {
        assert_eq!(g.run_at(FLAT_CODE, 100_000), Exit::Stopped, "the program reaches its end");
    }

    /// A #DB handler that reports DR6 (BD, BS, B0-B3) and the pushed RIP and
    /// RF, then sets RF in the image (so an instruction breakpoint lets the
    /// instruction run) and returns.
    fn db_reporter(g: &Guest) {
        g.asm(64, DB, |a| {
            a.mov(rax, dr6)?;
            a.and(eax, 0x600f)?;
            a.out(0xe9, eax)?;
            a.mov(rax, qword_ptr(rsp))?;
            a.out(0xe9, eax)?;
            a.mov(rax, qword_ptr(rsp + 16))?;
            a.and(eax, RF)?;
            a.out(0xe9, eax)?;
            a.or(qword_ptr(rsp + 16), RF as i32)?;
            a.iretq()
        });
    }

    #[test]
    fn fault_pushes_rf_and_rf_is_cleared_after_one_instruction() {
        let mut g = guest();
        g.asm(64, FLAT_CODE, |a| {
            a.ud2()?;
            a.nop()?;
            a.int3()?;
            a.mov(ecx, 0x77)?;
            report(a, ecx)?;
            done(a)
        });
        // #UD is a fault: its frame has RF = 1 (SDM Vol. 3B 17.3.1.1).
        g.asm(64, UD, |a| {
            a.mov(rax, qword_ptr(rsp + 16))?;
            a.and(eax, RF)?;
            a.out(0xe9, eax)?;
            a.add(qword_ptr(rsp), 2)?;
            a.iretq()
        });
        // IRET restored RF = 1; the NOP after it completed and cleared it,
        // so INT3 (a trap) pushes RF = 0.
        g.asm(64, BP, |a| {
            a.mov(rax, qword_ptr(rsp + 16))?;
            a.and(eax, RF)?;
            a.out(0xe9, eax)?;
            a.iretq()
        });
        run(&mut g);
        assert_eq!(g.reports(), vec![RF, 0, 0x77]);
        assert_eq!(g.cpu.s.rflags & RF as u64, 0, "RF is clear at the end");
    }

    /// A bus that raises interrupt vector 0x40 after a write to port 0x80.
    #[derive(Default)]
    struct IrqBus {
        inner: kagami_tests::guest::PortBus,
        pending: bool,
    }

    impl kagami_cpu::Bus for IrqBus {
        fn io_read(&mut self, p: u16, s: u8) -> u32 {
            self.inner.io_read(p, s)
        }
        fn io_write(&mut self, p: u16, s: u8, v: u32) {
            self.pending |= p == 0x80;
            self.inner.io_write(p, s, v)
        }
        fn mmio_read(&mut self, a: u64, s: u8) -> u64 {
            self.inner.mmio_read(a, s)
        }
        fn mmio_write(&mut self, a: u64, s: u8, v: u64) {
            self.inner.mmio_write(a, s, v)
        }
        fn stop_requested(&mut self) -> bool {
            self.inner.stop_requested()
        }
        fn interrupt_pending(&mut self) -> bool {
            self.pending
        }
        fn acknowledge_interrupt(&mut self) -> Option<u8> {
            std::mem::take(&mut self.pending).then_some(0x40)
        }
    }

    #[test]
    fn interrupt_right_after_iret_pushes_the_current_rf() {
        let mut g = guest();
        let irq = 0x1_1c00u64;
        let lo = (irq & 0xffff) | (FLAT_CODE64_SEL as u64) << 16 | 0x8e << 40 | (irq >> 16) << 48;
        g.load(IDT64 + 16 * 0x40, &lo.to_le_bytes());
        g.load(IDT64 + 16 * 0x40 + 8, &0u64.to_le_bytes());
        g.asm(64, FLAT_CODE, |a| {
            a.sti()?;
            a.ud2()?;
            a.nop()?;
            a.int3()?;
            a.mov(ecx, 0x77)?;
            report(a, ecx)?;
            done(a)
        });
        // The #UD handler (interrupts off) makes the interrupt pending; it
        // is taken at the boundary after IRETQ, which restored IF and RF = 1.
        g.asm(64, UD, |a| {
            a.mov(rax, qword_ptr(rsp + 16))?;
            a.and(eax, RF)?;
            a.out(0xe9, eax)?;
            a.out(0x80, al)?;
            a.add(qword_ptr(rsp), 2)?;
            a.iretq()
        });
        for h in [irq, BP] {
            g.asm(64, h, |a| {
                a.mov(rax, qword_ptr(rsp + 16))?;
                a.and(eax, RF)?;
                a.out(0xe9, eax)?;
                a.iretq()
            });
        }
        let mut bus = IrqBus::default();
        g.cpu.s.rip = FLAT_CODE;
        assert_eq!(g.cpu.run(&mut bus, 100_000), Exit::Stopped);
        let reports: Vec<u32> = bus.inner.writes.iter().filter(|w| w.0 == 0xe9).map(|w| w.1).collect();
        // #UD frame: RF = 1; the interrupt's frame: RF = 1 still (no
        // instruction completed since IRETQ); INT3 after the NOP: RF = 0.
        assert_eq!(reports, vec![RF, RF, 0, 0x77]);
    }

    #[test]
    fn instruction_breakpoint_faults_before_each_execution_and_rf_resumes() {
        let mut g = guest();
        let target = FLAT_CODE + 0x40;
        g.asm(64, FLAT_CODE, |a| {
            a.mov(rax, target)?;
            a.mov(dr0, rax)?;
            a.mov(eax, 1u32)?; // L0, R/W0 = 00 (execute), LEN0 = 00
            a.mov(dr7, rax)?;
            a.xor(ebx, ebx)?;
            a.mov(ecx, 3u32)?;
            a.jmp(target)
        });
        g.asm(64, target, |a| {
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            a.inc(ebx)?;
            a.dec(ecx)?;
            a.jnz(top)?;
            a.mov(eax, 0x400u32)?;
            a.mov(dr7, rax)?;
            report(a, ebx)?;
            done(a)
        });
        db_reporter(&g);
        run(&mut g);
        let t = target as u32;
        // Three faults with RIP at the breakpoint and DR6.B0, each followed
        // by exactly one execution of the instruction; RF = 0 in the frames.
        assert_eq!(g.reports(), vec![1, t, 0, 1, t, 0, 1, t, 0, 3]);
    }

    #[test]
    fn data_breakpoints_trap_after_the_access() {
        let mut g = guest();
        g.asm(64, FLAT_CODE, |a| {
            a.mov(rax, DATA + 8)?;
            a.mov(dr1, rax)?;
            // L1, R/W1 = 01 (writes), LEN1 = 11 (4 bytes).
            a.mov(eax, (1u32 << 2) | (0b01 << 20) | (0b11 << 22))?;
            a.mov(dr7, rax)?;
            a.mov(eax, dword_ptr(DATA + 8))?; // a read: no trap
            a.mov(word_ptr(DATA + 10), 5)?; // overlaps: trap after it
            a.mov(byte_ptr(DATA + 12), 1)?; // next to it: nothing
                                            // R/W1 = 11 (reads and writes), LEN1 = 10 (8 bytes).
            a.mov(eax, (1u32 << 2) | (0b11 << 20) | (0b10 << 22))?;
            a.mov(dr7, rax)?;
            a.mov(al, byte_ptr(DATA + 15))?; // trap
            a.mov(al, byte_ptr(DATA + 16))?; // nothing
            a.mov(rdx, qword_ptr(DATA + 1))?; // crosses into the range: trap
            a.mov(eax, 0x400u32)?;
            a.mov(dr7, rax)?;
            a.mov(eax, dword_ptr(DATA + 8))?;
            a.mov(ecx, 0x77)?;
            report(a, ecx)?;
            done(a)
        });
        db_reporter(&g);
        let code = {
            let mut a = CodeAssembler::new(64).unwrap();
            // Re-assemble the start to learn where the trapping instructions end.
            a.mov(rax, DATA + 8).unwrap();
            a.mov(dr1, rax).unwrap();
            a.mov(eax, 0u32).unwrap();
            a.mov(dr7, rax).unwrap();
            a.mov(eax, dword_ptr(DATA + 8)).unwrap();
            a.mov(word_ptr(DATA + 10), 5).unwrap();
            let after_write = a.assemble(FLAT_CODE).unwrap().len() as u32;
            a.mov(byte_ptr(DATA + 12), 1).unwrap();
            a.mov(eax, 0u32).unwrap();
            a.mov(dr7, rax).unwrap();
            a.mov(al, byte_ptr(DATA + 15)).unwrap();
            let after_read = a.assemble(FLAT_CODE).unwrap().len() as u32;
            a.mov(al, byte_ptr(DATA + 16)).unwrap();
            a.mov(rdx, qword_ptr(DATA + 1)).unwrap();
            let after_cross = a.assemble(FLAT_CODE).unwrap().len() as u32;
            [after_write, after_read, after_cross].map(|n| FLAT_CODE as u32 + n)
        };
        run(&mut g);
        assert_eq!(g.reports(), vec![2, code[0], 0, 2, code[1], 0, 2, code[2], 0, 0x77]);
    }

    #[test]
    fn data_breakpoint_in_rep_stos_traps_after_each_hitting_iteration() {
        let mut g = guest();
        g.asm(64, FLAT_CODE, |a| {
            a.mov(rax, DATA + 0x100)?;
            a.mov(dr3, rax)?;
            // L3, R/W3 = 01, LEN3 = 01 (2 bytes).
            a.mov(eax, (1u32 << 6) | (0b01 << 28) | (0b01 << 30))?;
            a.mov(dr7, rax)?;
            // 0x130 bytes from DATA - 0x20: the bulk path runs up to the
            // page with the breakpoint, then element by element.
            a.mov(rdi, DATA - 0x20)?;
            a.mov(ecx, 0x130u32)?;
            a.xor(eax, eax)?;
            a.rep().stosb()?;
            report(a, ecx)?;
            done(a)
        });
        g.asm(64, DB, |a| {
            a.mov(rax, dr6)?;
            a.and(eax, 0xf)?;
            a.out(0xe9, eax)?;
            a.mov(eax, ecx)?;
            a.out(0xe9, eax)?;
            a.mov(eax, edi)?;
            a.out(0xe9, eax)?;
            a.iretq()
        });
        run(&mut g);
        // Two bytes watched: a trap after the iteration storing each, with
        // RCX/RDI as after that iteration and RIP back on the REP STOSB.
        let d = DATA as u32;
        assert_eq!(g.reports(), vec![8, 15, d + 0x101, 8, 14, d + 0x102, 0]);
        assert_eq!(g.cpu.s.gpr[7], DATA + 0x110);
    }

    #[test]
    fn io_breakpoints_need_cr4_de() {
        let mut g = guest();
        g.asm(64, FLAT_CODE, |a| {
            a.mov(eax, 0x80u32)?;
            a.mov(dr2, rax)?;
            // L2, R/W2 = 10 (I/O), LEN2 = 00.
            a.mov(eax, (1u32 << 4) | (0b10 << 24))?;
            a.mov(dr7, rax)?;
            a.out(0x80, al)?; // CR4.DE = 0: R/W = 10 is not an I/O breakpoint
            a.mov(rax, cr4)?;
            a.or(eax, 8)?;
            a.mov(cr4, rax)?;
            a.out(0x80, al)?; // trap
            a.out(0x81, al)?; // nothing
            a.mov(dx, 0x7fu32)?;
            a.out(dx, ax)?; // ports 0x7f-0x80: trap
            a.mov(ecx, 0x77)?;
            report(a, ecx)?;
            done(a)
        });
        g.asm(64, DB, |a| {
            a.mov(rax, dr6)?;
            a.and(eax, 0xf)?;
            a.out(0xe9, eax)?;
            a.iretq()
        });
        run(&mut g);
        assert_eq!(g.reports(), vec![4, 4, 0x77]);
    }

    #[test]
    fn single_step_traps_after_instructions_but_not_after_faults() {
        let mut g = guest();
        g.asm(64, FLAT_CODE, |a| {
            a.xor(r15d, r15d)?;
            a.pushfq()?;
            a.or(qword_ptr(rsp), TF as i32)?;
            a.popfq()?;
            a.nop()?; // A: the first instruction run with TF
            a.ud2()?; // B: faults; no single-step trap after it
            a.nop()?; // C: after the #UD handler's IRET restored TF
            a.mov(ecx, 0x77)?; // D
            report(a, ecx)?;
            done(a)
        });
        let a_addr = {
            let mut a = CodeAssembler::new(64).unwrap();
            a.xor(r15d, r15d).unwrap();
            a.pushfq().unwrap();
            a.or(qword_ptr(rsp), TF as i32).unwrap();
            a.popfq().unwrap();
            FLAT_CODE as u32 + a.assemble(FLAT_CODE).unwrap().len() as u32
        };
        let (b, c, d) = (a_addr + 1, a_addr + 3, a_addr + 4);
        // #DB: report DR6.BS and RIP; the second one clears TF in the image.
        g.asm(64, DB, |a| {
            let mut keep = a.create_label();
            a.mov(rax, dr6)?;
            a.and(eax, 0x600f)?;
            a.out(0xe9, eax)?;
            a.mov(rax, qword_ptr(rsp))?;
            a.out(0xe9, eax)?;
            a.inc(r15d)?;
            a.cmp(r15d, 2)?;
            a.jne(keep)?;
            a.and(qword_ptr(rsp + 16), !(TF as i32))?;
            a.set_label(&mut keep)?;
            a.iretq()
        });
        g.asm(64, UD, |a| {
            a.mov(eax, 0xdu32)?;
            a.out(0xe9, eax)?;
            a.mov(rax, qword_ptr(rsp))?;
            a.out(0xe9, eax)?;
            a.add(qword_ptr(rsp), 2)?;
            a.iretq()
        });
        run(&mut g);
        assert_eq!(g.reports(), vec![0x4000, b, 0xd, b, 0x4000, d, 0x77], "C at {c:#x}");
    }

    #[test]
    fn general_detect_faults_on_mov_dr() {
        let mut g = guest();
        g.asm(64, FLAT_CODE, |a| {
            a.mov(eax, 0x2400u32)?; // DR7.GD
            a.mov(dr7, rax)?;
            a.mov(rax, dr0)?; // #DB fault, BD; GD is cleared
            a.mov(rax, dr7)?; // no fault now
            a.and(eax, 0x2000)?;
            a.out(0xe9, eax)?;
            done(a)
        });
        g.asm(64, DB, |a| {
            a.mov(rax, dr6)?;
            a.and(eax, 0x600f)?;
            a.out(0xe9, eax)?;
            a.mov(rax, qword_ptr(rsp))?;
            a.out(0xe9, eax)?;
            a.add(qword_ptr(rsp), 3)?;
            a.iretq()
        });
        let mov_dr0 = {
            let mut a = CodeAssembler::new(64).unwrap();
            a.mov(eax, 0x2400u32).unwrap();
            a.mov(dr7, rax).unwrap();
            FLAT_CODE as u32 + a.assemble(FLAT_CODE).unwrap().len() as u32
        };
        run(&mut g);
        assert_eq!(g.reports(), vec![0x2000, mov_dr0, 0]);
    }
}
