//! The JIT's own dispatch: blocks that loop inside their function, blocks
//! entered one after the other without the interpreter's loop (also across
//! pages), invalidation of a block the dispatch loop would enter next, the
//! budget stop inside all that, and a fault in the middle of a looping
//! block whose registers live in Cranelift variables. Each run is compared
//! with the interpreter (GPRs, RIP, RFLAGS, icount, data memory).

mod common;

use common::*;
use iced_x86::code_asm::*;
use kagami_cpu::Exit;

const PAGE_B: u64 = CODE + 0x1000;
/// A 4 KiB page table for the first 2 MiB (`remap_page`) and a spare page.
const PT: u64 = 0x4000;
const ALT_PAGE: u64 = 0x18_0000;

/// Map the first 2 MiB with 4 KiB pages, identity except `lin` -> `phys`,
/// put `code` at `phys` and flush the TLB (as a MOV CR3 would).
fn remap_page(cpu: &mut kagami_cpu::Cpu, lin: u64, phys: u64, code: &[u8]) {
    for i in 0..512u64 {
        let pa = if i * 0x1000 == lin { phys } else { i * 0x1000 };
        cpu.mem.write(PT + i * 8, &(pa | 3).to_le_bytes());
    }
    cpu.mem.write(0x3000, &(PT | 3).to_le_bytes());
    cpu.mem.write(phys, code);
    cpu.flush_tlb_all();
}

fn asm_at(base: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(base).unwrap()
}

/// Page A: an inner loop (register ALU, an inline store and load, a
/// mid-block JCC), then a JMP to page B; page B: reload the inner count,
/// accumulate, loop back to page A `outer` times, HLT.
fn two_page_program(cpu: &mut kagami_cpu::Cpu, outer: u64) {
    let a = asm_at(CODE, |a| {
        let mut top = a.create_label();
        let mut skip = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, rcx)?;
        a.mov(qword_ptr(rdi + 8), rax)?;
        a.xor(rbx, rax)?;
        a.test(al, 1)?;
        a.je(skip)?;
        a.imul_3(rbx, rbx, 3)?;
        a.set_label(&mut skip)?;
        a.mov(rdx, qword_ptr(rdi + 8))?;
        a.lea(rbx, ptr(rbx + rdx * 2 + 1))?;
        a.dec(ecx)?;
        a.jne(top)?;
        a.jmp(PAGE_B)
    });
    let b = asm_at(PAGE_B, |a| {
        a.mov(ecx, 7)?;
        a.add(r8, rbx)?;
        a.dec(rsi)?;
        a.jne(CODE)?;
        a.hlt()
    });
    cpu.mem.write(CODE, &a);
    cpu.mem.write(PAGE_B, &b);
    cpu.s.gpr[1] = 7;
    cpu.s.gpr[6] = outer;
    // (Not DATA itself: its soft-TLB slot is CODE's, and every code fetch
    // by the run loop would evict it.)
    cpu.s.gpr[7] = DATA + 0x3000;
}

#[test]
fn chained_blocks_across_pages_match_the_interpreter() {
    let mut interp = cpu64(None);
    let mut jit = cpu64(translate_all());
    for c in [&mut interp, &mut jit] {
        two_page_program(c, 40);
    }
    assert_eq!(run(&mut interp, 1_000_000), Exit::Halted);
    assert_eq!(run(&mut jit, 1_000_000), Exit::Halted);
    assert_eq!(snapshot(&interp), snapshot(&jit));
    let report = jit.translator().unwrap().stats_report();
    // Page A's loop, page B; the rest of the 40 outer iterations go from
    // block to block without the interpreter: through the dispatch loop
    // until the link cells are filled, then by direct jumps, also between
    // the two pages.
    let count = |after: &str| -> u64 {
        report
            .split(after)
            .next()
            .unwrap()
            .rsplit(['(', ' '])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (chained, jumps) = (count(" chained)"), count(" direct jumps"));
    assert!(chained + jumps >= 70, "{report}");
    assert!(jumps >= 70, "the two pages' blocks jump to each other directly: {report}");
}

/// The same two pages, with page B's virtual mapping moved to another
/// physical page holding different code between runs: a direct jump from
/// page A must not reach the old page B's block (the code TLB says no).
#[test]
fn a_direct_jump_to_another_page_follows_the_page_tables() {
    let mut interp = cpu64(None);
    let mut jit = cpu64(translate_all());
    for c in [&mut interp, &mut jit] {
        two_page_program(c, 40);
        assert_eq!(run(c, 1_000_000), Exit::Halted);
        // Page B's code again elsewhere, with a different constant, and
        // page B's linear page remapped there.
        let b = asm_at(PAGE_B, |a| {
            a.mov(ecx, 5)?;
            a.add(r8, rbx)?;
            a.dec(rsi)?;
            a.jne(CODE)?;
            a.hlt()
        });
        remap_page(c, PAGE_B, ALT_PAGE, &b);
        c.s.gpr[6] = 10;
        c.s.rip = CODE;
        c.s.halted = 0;
        assert_eq!(run(c, 1_000_000), Exit::Halted);
    }
    assert_eq!(snapshot(&interp), snapshot(&jit));
}

/// A block that ends with a JMP back to its start: it iterates inside its
/// function, each iteration the whole block.
fn tight_loop(cpu: &mut kagami_cpu::Cpu, n: u64) {
    let code = asm_at(CODE, |a| {
        let mut top = a.create_label();
        let mut out = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, rbx)?;
        a.xor(rbx, rax)?;
        a.mov(qword_ptr(rdi), rbx)?;
        a.dec(ecx)?;
        a.je(out)?;
        a.jmp(top)?;
        a.set_label(&mut out)?;
        a.hlt()
    });
    cpu.mem.write(CODE, &code);
    cpu.s.gpr[1] = n;
    cpu.s.gpr[3] = 0x9e37_79b9;
    // (Not DATA itself: its soft-TLB slot is CODE's, and every code fetch
    // by the run loop would evict it.)
    cpu.s.gpr[7] = DATA + 0x3000;
}

#[test]
fn budget_stops_exactly_inside_loops_and_chains() {
    for (budget, prog) in (1..=45).chain([97, 331]).flat_map(|b| [(b, 0), (b, 1)]) {
        let mut interp = cpu64(None);
        let mut jit = cpu64(translate_all());
        for c in [&mut interp, &mut jit] {
            if prog == 0 {
                two_page_program(c, 6);
            } else {
                tight_loop(c, 60);
            }
        }
        loop {
            let e1 = run(&mut interp, budget);
            let e2 = run(&mut jit, budget);
            assert_eq!(e1, e2, "budget {budget}");
            assert_eq!(snapshot(&interp), snapshot(&jit), "budget {budget}");
            if e1 != Exit::Budget {
                assert_eq!(e1, Exit::Halted);
                break;
            }
        }
    }
}

#[test]
fn a_code_write_invalidates_the_next_block_of_a_chain() {
    // Page A: bump a counter and store it into the immediate of page B's
    // first instruction (an inline store that meets a code page), then
    // jump to B, which adds that immediate and loops back.
    let a = asm_at(CODE, |a| {
        a.inc(r9d)?;
        a.mov(dword_ptr(PAGE_B + 1), r9d)?;
        a.jmp(PAGE_B)
    });
    let b = asm_at(PAGE_B, |a| {
        a.mov(eax, 1000)?;
        a.add(rdx, rax)?;
        a.dec(rsi)?;
        a.jne(CODE)?;
        a.hlt()
    });
    assert_eq!(b[0], 0xb8, "mov eax, imm32 at PAGE_B");
    let mut interp = cpu64(None);
    let mut jit = cpu64(translate_all());
    for c in [&mut interp, &mut jit] {
        c.mem.write(CODE, &a);
        c.mem.write(PAGE_B, &b);
        c.s.gpr[6] = 30;
        c.s.gpr[2] = 0; // (RDX holds the CPU signature after reset)
    }
    assert_eq!(run(&mut interp, 10_000), Exit::Halted);
    assert_eq!(run(&mut jit, 10_000), Exit::Halted);
    assert_eq!(interp.s.gpr[2], (1..=30).sum::<u64>());
    assert_eq!(snapshot(&interp), snapshot(&jit));
    let report = jit.translator().unwrap().stats_report();
    assert!(!report.contains(" 0 pages invalidated"), "{report}");
}

#[test]
fn a_fault_inside_a_looping_block_leaves_the_interpreters_state() {
    // The loop walks RAX up by a page per iteration, summing loads, until
    // the load leaves mapped memory (4 MiB): #PF, #DF, shutdown.
    let code = asm_at(CODE, |a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, 0x1000)?;
        a.add(rbx, rcx)?;
        a.mov(rdx, qword_ptr(rax))?;
        a.add(r8, rdx)?;
        a.inc(ecx)?;
        a.jmp(top)
    });
    let mut interp = cpu64(None);
    let mut jit = cpu64(translate_all());
    for c in [&mut interp, &mut jit] {
        c.mem.write(CODE, &code);
        c.s.gpr[0] = DATA;
    }
    assert_eq!(run(&mut interp, 1_000_000), Exit::TripleFault);
    assert_eq!(run(&mut jit, 1_000_000), Exit::TripleFault);
    assert_eq!(snapshot(&interp), snapshot(&jit));
    assert_eq!(jit.s.cr2, RAM);
    assert_eq!(jit.s.rip, CODE + 9, "RIP at the faulting load");
}

#[test]
fn every_condition_after_add_inc_dec_at_edge_values() {
    use iced_x86::{Code, Instruction, Register};
    let dst = [Register::BPL, Register::BP, Register::EBP, Register::RBP];
    let set = [
        Register::AL,
        Register::CL,
        Register::DL,
        Register::BL,
        Register::AH,
        Register::CH,
        Register::DH,
        Register::BH,
        Register::SIL,
        Register::DIL,
        Register::R8L,
        Register::R9L,
        Register::R10L,
        Register::R11L,
        Register::R12L,
        Register::R13L,
    ];
    for (size, &d) in dst.iter().enumerate() {
        let bits = 8u32 << size;
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let sb = 1u64 << (bits - 1);
        for v in [0, 1, sb - 2, sb - 1, sb, sb + 1, mask - 1, mask] {
            for op in 0..4 {
                let first = match op {
                    0 => Instruction::with1([Code::Inc_rm8, Code::Inc_rm16, Code::Inc_rm32, Code::Inc_rm64][size], d),
                    1 => Instruction::with1([Code::Dec_rm8, Code::Dec_rm16, Code::Dec_rm32, Code::Dec_rm64][size], d),
                    2 => Instruction::with2(
                        [Code::Add_rm8_imm8, Code::Add_rm16_imm8, Code::Add_rm32_imm8, Code::Add_rm64_imm8][size],
                        d,
                        1,
                    ),
                    _ => Instruction::with2(
                        [Code::Add_rm8_imm8, Code::Add_rm16_imm8, Code::Add_rm32_imm8, Code::Add_rm64_imm8][size],
                        d,
                        -1,
                    ),
                }
                .unwrap();
                let mut insns = vec![first];
                for (cc, &r) in set.iter().enumerate() {
                    insns.push(Instruction::with1(Code::try_from(Code::Seto_rm8 as usize + cc).unwrap(), r).unwrap());
                }
                insns.push(Instruction::with(Code::Hlt));
                let code = assemble(&insns);
                let mut interp = cpu64(None);
                let mut jit = cpu64(translate_all());
                for c in [&mut interp, &mut jit] {
                    c.mem.write(CODE, &code);
                    c.s.gpr[5] = v;
                    // CF before INC/DEC (which keep it) from v's low bit.
                    c.s.set_flags(2 | (v & 1));
                }
                assert_eq!(run(&mut interp, 100), Exit::Halted);
                assert_eq!(run(&mut jit, 100), Exit::Halted);
                assert_eq!(snapshot(&interp), snapshot(&jit), "op {op} size {bits} value {v:#x}");
            }
        }
    }
}
