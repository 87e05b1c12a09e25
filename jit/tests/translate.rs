//! The JIT against the interpreter: random blocks of inline-translated
//! instructions (mixed with helper-run ones) on random inputs, faults in the
//! middle of a block, self-modifying code, and stopping exactly at the
//! instruction budget. Every comparison covers the GPRs, RIP, the full
//! RFLAGS (lazy flags evaluated), the instruction count and data memory.

mod common;

use common::*;
use iced_x86::{Code, Instruction, Register};
use kagami_cpu::jit_iface::Translator;
use kagami_cpu::Exit;
use kagami_jit::{Jit, JitConfig};

const R8: [Register; 8] = [
    Register::AL,
    Register::CL,
    Register::DL,
    Register::BL,
    Register::AH,
    Register::CH,
    Register::DH,
    Register::BH,
];
const R16: [Register; 6] = [Register::AX, Register::CX, Register::DX, Register::BX, Register::SI, Register::R9W];
const R32: [Register; 6] = [
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::ESI,
    Register::R10D,
];
const R64: [Register; 7] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RSI,
    Register::R8,
    Register::R15,
];

fn pick<T: Copy>(rng: &mut Rng, v: &[T]) -> T {
    v[rng.below(v.len())]
}

/// One random instruction; most have inline translations, a few (ADC,
/// SHL, NEG, a memory store) run through the helper.
fn random_insn(rng: &mut Rng) -> Instruction {
    use Code::*;
    let rr = [
        (Add_rm8_r8, Add_rm16_r16, Add_rm32_r32, Add_rm64_r64),
        (Sub_rm8_r8, Sub_rm16_r16, Sub_rm32_r32, Sub_rm64_r64),
        (And_rm8_r8, And_rm16_r16, And_rm32_r32, And_rm64_r64),
        (Or_rm8_r8, Or_rm16_r16, Or_rm32_r32, Or_rm64_r64),
        (Xor_rm8_r8, Xor_rm16_r16, Xor_rm32_r32, Xor_rm64_r64),
        (Cmp_rm8_r8, Cmp_rm16_r16, Cmp_rm32_r32, Cmp_rm64_r64),
        (Test_rm8_r8, Test_rm16_r16, Test_rm32_r32, Test_rm64_r64),
        (Mov_rm8_r8, Mov_rm16_r16, Mov_rm32_r32, Mov_rm64_r64),
        (Adc_rm8_r8, Adc_rm16_r16, Adc_rm32_r32, Adc_rm64_r64),
    ];
    let imm = [
        (Add_rm8_imm8, Add_rm16_imm16, Add_rm32_imm32, Add_rm64_imm32),
        (Sub_rm8_imm8, Sub_rm16_imm8, Sub_rm32_imm8, Sub_rm64_imm8),
        (And_rm8_imm8, And_rm16_imm16, And_rm32_imm32, And_rm64_imm8),
        (Or_rm8_imm8, Or_rm16_imm8, Or_rm32_imm32, Or_rm64_imm32),
        (Xor_rm8_imm8, Xor_rm16_imm16, Xor_rm32_imm8, Xor_rm64_imm32),
        (Cmp_rm8_imm8, Cmp_rm16_imm16, Cmp_rm32_imm32, Cmp_rm64_imm8),
        (Test_rm8_imm8, Test_rm16_imm16, Test_rm32_imm32, Test_rm64_imm32),
        (Mov_rm8_imm8, Mov_r16_imm16, Mov_r32_imm32, Mov_rm64_imm32),
    ];
    let one = [
        (Inc_rm8, Inc_rm16, Inc_rm32, Inc_rm64),
        (Dec_rm8, Dec_rm16, Dec_rm32, Dec_rm64),
        (Neg_rm8, Neg_rm16, Neg_rm32, Neg_rm64),
    ];
    let size = rng.below(4);
    let reg = |rng: &mut Rng, size: usize| match size {
        0 => pick(rng, &R8),
        1 => pick(rng, &R16),
        2 => pick(rng, &R32),
        _ => pick(rng, &R64),
    };
    let sel = |t: (Code, Code, Code, Code), size: usize| [t.0, t.1, t.2, t.3][size];
    let mem = |rng: &mut Rng| {
        // RDI points at the data area; RBX/RSI hold random values, so only
        // RDI (+ a small RCX-free displacement) is used as the address.
        iced_x86::MemoryOperand::with_base_displ(Register::RDI, (rng.below(512) * 3) as i64)
    };
    match rng.below(19) {
        16 => {
            // IMUL r, r/m and IMUL r, r/m, imm (register forms).
            let size = 1 + rng.below(3);
            let (a, b) = (reg(rng, size), reg(rng, size));
            match rng.below(3) {
                0 => Instruction::with2([Imul_r16_rm16, Imul_r32_rm32, Imul_r64_rm64][size - 1], a, b).unwrap(),
                1 => Instruction::with3(
                    [Imul_r16_rm16_imm8, Imul_r32_rm32_imm8, Imul_r64_rm64_imm8][size - 1],
                    a,
                    b,
                    rng.value() as i8 as i32,
                )
                .unwrap(),
                _ => Instruction::with3(
                    [Imul_r16_rm16_imm16, Imul_r32_rm32_imm32, Imul_r64_rm64_imm32][size - 1],
                    a,
                    b,
                    if size == 1 { rng.value() as i16 as i32 } else { rng.value() as i32 },
                )
                .unwrap(),
            }
        }
        17 => {
            // MOVZX/MOVSX/MOVSXD between registers.
            // (AH..BH only without a REX prefix.)
            match rng.below(7) {
                0 => Instruction::with2(Movzx_r32_rm8, pick(rng, &R32), pick(rng, &R8[..4])).unwrap(),
                6 => Instruction::with2(Movsx_r32_rm8, pick(rng, &R32[..4]), pick(rng, &R8)).unwrap(),
                1 => Instruction::with2(Movzx_r64_rm16, pick(rng, &R64), pick(rng, &R16)).unwrap(),
                2 => Instruction::with2(Movsx_r16_rm8, pick(rng, &R16[..4]), pick(rng, &R8)).unwrap(),
                3 => Instruction::with2(Movsx_r32_rm16, pick(rng, &R32), pick(rng, &R16)).unwrap(),
                4 => Instruction::with2(Movsx_r64_rm8, pick(rng, &R64), pick(rng, &R8[..4])).unwrap(),
                _ => Instruction::with2(Movsxd_r64_rm32, pick(rng, &R64), pick(rng, &R32)).unwrap(),
            }
        }
        18 => {
            // SETcc r8 and CMOVcc r, r after whatever set the flags.
            let cc = rng.below(16);
            if rng.below(2) == 0 {
                Instruction::with1(Code::try_from(Seto_rm8 as usize + cc).unwrap(), pick(rng, &R8)).unwrap()
            } else {
                let size = 1 + rng.below(3);
                let base = [Cmovo_r16_rm16, Cmovo_r32_rm32, Cmovo_r64_rm64][size - 1] as usize;
                Instruction::with2(Code::try_from(base + 3 * cc).unwrap(), reg(rng, size), reg(rng, size)).unwrap()
            }
        }
        14 | 15 => {
            let code = sel(
                pick(
                    rng,
                    &[
                        (Shl_rm8_imm8, Shl_rm16_imm8, Shl_rm32_imm8, Shl_rm64_imm8),
                        (Shr_rm8_imm8, Shr_rm16_imm8, Shr_rm32_imm8, Shr_rm64_imm8),
                        (Sar_rm8_imm8, Sar_rm16_imm8, Sar_rm32_imm8, Sar_rm64_imm8),
                        (Shl_rm8_1, Shl_rm16_1, Shl_rm32_1, Shl_rm64_1),
                        (Sar_rm8_1, Sar_rm16_1, Sar_rm32_1, Sar_rm64_1),
                    ],
                ),
                size,
            );
            let r = reg(rng, size);
            if code.op_code().op_kinds().last() == Some(&iced_x86::OpCodeOperandKind::imm8) {
                Instruction::with2(code, r, (rng.next() % 72) as u32).unwrap()
            } else {
                Instruction::with2(code, r, 1u32).unwrap()
            }
        }
        10 => {
            // Loads: MOV, MOVZX, MOVSX, MOVSXD, ALU reg, [m].
            let code = pick(
                rng,
                &[
                    Mov_r64_rm64,
                    Mov_r32_rm32,
                    Mov_r16_rm16,
                    Mov_r8_rm8,
                    Movzx_r32_rm8,
                    Movzx_r64_rm16,
                    Movsx_r64_rm8,
                    Movsx_r32_rm16,
                    Movsxd_r64_rm32,
                    Add_r64_rm64,
                    Sub_r32_rm32,
                    Xor_r16_rm16,
                    Cmp_r8_rm8,
                    And_r64_rm64,
                    Or_r32_rm32,
                ],
            );
            let size = match code.op_code().op_kinds()[0] {
                iced_x86::OpCodeOperandKind::r8_reg => 0,
                iced_x86::OpCodeOperandKind::r16_reg => 1,
                iced_x86::OpCodeOperandKind::r32_reg => 2,
                _ => 3,
            };
            Instruction::with2(code, reg(rng, size), mem(rng)).unwrap()
        }
        11 => {
            // Stores and compares with memory.
            let m = mem(rng);
            match rng.below(6) {
                0 => Instruction::with2(Mov_rm32_r32, m, pick(rng, &R32)).unwrap(),
                1 => Instruction::with2(Mov_rm8_r8, m, pick(rng, &R8)).unwrap(),
                2 => Instruction::with2(Mov_rm64_imm32, m, rng.value() as i32).unwrap(),
                3 => Instruction::with2(Mov_rm16_imm16, m, rng.value() as u16 as u32).unwrap(),
                4 => Instruction::with2(Cmp_rm32_imm8, m, rng.value() as i8 as i32).unwrap(),
                _ => Instruction::with2(Test_rm64_r64, m, pick(rng, &R64)).unwrap(),
            }
        }
        12 => Instruction::with1(Push_r64, pick(rng, &[Register::RAX, Register::RBX, Register::RSP, Register::R15])).unwrap(),
        13 => Instruction::with1(Pop_r64, pick(rng, &[Register::RAX, Register::RCX, Register::R8])).unwrap(),
        0..=3 => {
            let code = sel(pick(rng, &rr), size);
            let (a, b) = (reg(rng, size), reg(rng, size));
            Instruction::with2(code, a, b).unwrap()
        }
        4..=5 => {
            let code = sel(pick(rng, &imm), size);
            let a = reg(rng, size);
            let v = rng.value();
            let v = match code.op_code().op_kinds().last() {
                Some(
                    iced_x86::OpCodeOperandKind::imm8
                    | iced_x86::OpCodeOperandKind::imm8sex16
                    | iced_x86::OpCodeOperandKind::imm8sex32
                    | iced_x86::OpCodeOperandKind::imm8sex64,
                ) => v as i8 as i32,
                Some(iced_x86::OpCodeOperandKind::imm16) => v as i16 as i32,
                _ => v as i32,
            };
            Instruction::with2(code, a, v).unwrap()
        }
        6 => {
            let code = sel(pick(rng, &one), size);
            Instruction::with1(code, reg(rng, size)).unwrap()
        }
        7 => {
            // LEA with 64- or 32-bit addressing.
            let wide = rng.below(2) == 0;
            let (base, index) = if wide {
                (pick(rng, &R64), pick(rng, &[Register::RCX, Register::RDX, Register::R8]))
            } else {
                (pick(rng, &R32), pick(rng, &[Register::ECX, Register::EDX]))
            };
            let scale = 1u32 << rng.below(4);
            let disp = rng.value() as i32 as i64;
            let m = iced_x86::MemoryOperand::with_base_index_scale_displ_size(base, index, scale, disp, 1);
            let (code, dst) = match rng.below(3) {
                0 => (Lea_r64_m, pick(rng, &R64)),
                1 => (Lea_r32_m, pick(rng, &R32)),
                _ => (Lea_r16_m, pick(rng, &R16)),
            };
            Instruction::with2(code, dst, m).unwrap()
        }
        8 => Instruction::with2(Mov_r64_imm64, pick(rng, &R64), rng.value()).unwrap(),
        _ => {
            // A helper-run store to the data area (RDI points there).
            let m = iced_x86::MemoryOperand::with_base_displ(Register::RDI, (rng.below(64) * 8) as i64);
            Instruction::with2(Mov_rm64_r64, m, pick(rng, &R64)).unwrap()
        }
    }
}

fn jcc_codes() -> [Code; 16] {
    use Code::*;
    [
        Jo_rel32_64,
        Jno_rel32_64,
        Jb_rel32_64,
        Jae_rel32_64,
        Je_rel32_64,
        Jne_rel32_64,
        Jbe_rel32_64,
        Ja_rel32_64,
        Js_rel32_64,
        Jns_rel32_64,
        Jp_rel32_64,
        Jnp_rel32_64,
        Jl_rel32_64,
        Jge_rel32_64,
        Jle_rel32_64,
        Jg_rel32_64,
    ]
}

fn random_state(cpu: &mut kagami_cpu::Cpu, rng: &mut Rng) {
    for r in 0..16 {
        if r != 4 && r != 7 {
            cpu.s.gpr[r] = rng.value();
        }
    }
    cpu.s.gpr[7] = DATA;
    let f = rng.next() & (kagami_cpu::state::flags::ARITH);
    cpu.s.set_flags(f | 2);
}

/// Runs one random program on both; returns how many instructions the JIT
/// translated inline.
fn compare_program(seed: u64, cfg: JitConfig) -> u64 {
    let mut rng = Rng(seed | 1);
    let n = 1 + rng.below(12);
    let mut insns: Vec<Instruction> = (0..n).map(|_| random_insn(&mut rng)).collect();
    // End with a Jcc over a HLT (taken) or into it (not taken), then HLT.
    let cc = jcc_codes()[rng.below(16)];
    let mut j = Instruction::with_branch(cc, CODE + 0x800).unwrap();
    j.set_near_branch64(CODE + 0x800);
    insns.push(j);
    insns.push(Instruction::with(Code::Hlt));
    let code = assemble(&insns);
    let mut state_rng = Rng(seed.wrapping_mul(31) | 1);
    let mut interp = cpu64(None);
    let mut jit = cpu64(Some(cfg));
    random_state(&mut interp, &mut state_rng);
    jit.s = interp.s.clone();
    for c in [&mut interp, &mut jit] {
        c.mem.write(CODE, &code);
        c.mem.write(CODE + 0x800, &[0xf4]);
    }
    let e1 = run(&mut interp, 1000);
    let e2 = run(&mut jit, 1000);
    assert_eq!(e1, e2, "seed {seed}: exit");
    let (a, b) = (snapshot(&interp), snapshot(&jit));
    if a != b {
        let text: Vec<String> = insns.iter().map(|i| format!("{i}")).collect();
        panic!(
            "seed {seed}: JIT differs from the interpreter\nprogram: {text:#?}\ninterp gpr {:x?} rip {:x} flags {:x} icount {}\njit    gpr {:x?} rip {:x} flags {:x} icount {}",
            a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3
        );
    }
    inline_count(&jit)
}

fn inline_count(cpu: &kagami_cpu::Cpu) -> u64 {
    let r = cpu.translator().unwrap().stats_report();
    let at = r.find(" inline)").expect("stats report");
    r[..at].rsplit('(').next().unwrap().parse().unwrap()
}

#[test]
fn random_blocks_match_the_interpreter() {
    let mut inline = 0;
    for seed in 0..600u64 {
        inline += compare_program(seed, translate_all().unwrap());
    }
    assert!(inline > 2000, "only {inline} instructions were translated inline");
}

#[test]
fn random_blocks_match_without_inline_code() {
    for seed in 0..150u64 {
        let inline = compare_program(
            seed,
            JitConfig {
                threshold: 0,
                inline: false,
                ..JitConfig::default()
            },
        );
        assert_eq!(inline, 0);
    }
}

#[test]
fn fault_in_the_middle_of_a_block_leaves_interpreter_state() {
    use Code::*;
    // Inline arithmetic, then a load from an unmapped address (#PF, then
    // #DF and shutdown with IDT limit 0), then more code that must not run.
    let insns = [
        Instruction::with2(Mov_r32_imm32, Register::EAX, 5).unwrap(),
        Instruction::with2(Add_rm64_imm8, Register::RAX, 7).unwrap(),
        Instruction::with2(Cmp_rm32_imm8, Register::EAX, 12).unwrap(),
        Instruction::with2(Mov_r64_rm64, Register::RBX, iced_x86::MemoryOperand::with_base(Register::RCX)).unwrap(),
        Instruction::with1(Inc_rm64, Register::RAX).unwrap(),
        Instruction::with(Hlt),
    ];
    let code = assemble(&insns);
    let mut interp = cpu64(None);
    let mut jit = cpu64(translate_all());
    for c in [&mut interp, &mut jit] {
        c.s.gpr[1] = 0x4000_0000; // not mapped
        c.mem.write(CODE, &code);
    }
    assert_eq!(run(&mut interp, 100), Exit::TripleFault);
    assert_eq!(run(&mut jit, 100), Exit::TripleFault);
    assert_eq!(snapshot(&interp), snapshot(&jit));
    assert_eq!(jit.s.icount, 4, "three instructions and the faulting one");
    assert_eq!(jit.s.gpr[0], 12);
    assert_eq!(jit.s.rip, CODE + code_offset(&insns, 3), "RIP at the faulting load");
    assert_eq!(jit.s.cr2, 0x4000_0000);
}

fn code_offset(insns: &[Instruction], n: usize) -> u64 {
    assemble(&insns[..n]).len() as u64
}

#[test]
fn self_modifying_code_is_retranslated() {
    use Code::*;
    // A loop whose body's MOV immediate is rewritten by the body itself:
    //   top: mov eax, imm32 ; add ebx, eax ; inc dword [imm field] ; dec ecx ; jnz top ; hlt
    let mut insns = vec![
        Instruction::with2(Mov_r32_imm32, Register::EAX, 1).unwrap(),
        Instruction::with2(Add_rm32_r32, Register::EBX, Register::EAX).unwrap(),
        Instruction::with1(Inc_rm32, iced_x86::MemoryOperand::with_displ(CODE + 1, 8)).unwrap(),
        Instruction::with1(Dec_rm32, Register::ECX).unwrap(),
    ];
    let mut j = Instruction::with_branch(Jne_rel32_64, CODE).unwrap();
    j.set_near_branch64(CODE);
    insns.push(j);
    insns.push(Instruction::with(Hlt));
    let code = assemble(&insns);
    let mut interp = cpu64(None);
    let mut jit = cpu64(translate_all());
    for c in [&mut interp, &mut jit] {
        c.s.gpr[1] = 10;
        c.s.gpr[3] = 0;
        c.mem.write(CODE, &code);
    }
    assert_eq!(run(&mut interp, 1000), Exit::Halted);
    assert_eq!(run(&mut jit, 1000), Exit::Halted);
    assert_eq!(interp.s.gpr[3], 55, "1 + 2 + ... + 10");
    assert_eq!(snapshot(&interp), snapshot(&jit));
}

#[test]
fn budget_stops_exactly_where_the_interpreter_does() {
    for seed in 0..6u64 {
        let mut rng = Rng(seed * 7 + 3);
        let insns: Vec<Instruction> = (0..20)
            .map(|_| random_insn(&mut rng))
            .chain([Instruction::with(Code::Hlt)])
            .collect();
        let code = assemble(&insns);
        for budget in 1..=21 {
            let mut interp = cpu64(None);
            let mut jit = cpu64(translate_all());
            let mut srng = Rng(seed + 11);
            random_state(&mut interp, &mut srng);
            jit.s = interp.s.clone();
            for c in [&mut interp, &mut jit] {
                c.mem.write(CODE, &code);
            }
            // Translate first (a full run on both, so memory matches), then
            // run again from the start in slices of `budget` instructions.
            let start = jit.s.clone();
            run(&mut jit, 1000);
            run(&mut interp, 1000);
            jit.s = start.clone();
            interp.s = start;
            let mut e1;
            let mut e2;
            loop {
                e1 = run(&mut interp, budget);
                e2 = run(&mut jit, budget);
                assert_eq!(e1, e2, "seed {seed} budget {budget}");
                assert_eq!(snapshot(&interp), snapshot(&jit), "seed {seed} budget {budget}");
                if e1 != Exit::Budget {
                    break;
                }
            }
        }
    }
}

#[test]
fn hot_blocks_are_translated_at_the_threshold() {
    use Code::*;
    // A 100-iteration loop with threshold 10: the loop block is translated
    // after ten runs, and the result matches the interpreter.
    let mut insns = vec![
        Instruction::with2(Add_rm64_r64, Register::RAX, Register::RCX).unwrap(),
        Instruction::with1(Dec_rm64, Register::RCX).unwrap(),
    ];
    let mut j = Instruction::with_branch(Jne_rel32_64, CODE).unwrap();
    j.set_near_branch64(CODE);
    insns.push(j);
    insns.push(Instruction::with(Hlt));
    let code = assemble(&insns);
    let mut interp = cpu64(None);
    let mut jit = cpu64(Some(JitConfig {
        threshold: 10,
        ..JitConfig::default()
    }));
    for c in [&mut interp, &mut jit] {
        c.s.gpr[1] = 100;
        c.mem.write(CODE, &code);
    }
    assert_eq!(run(&mut interp, 10_000), Exit::Halted);
    assert_eq!(run(&mut jit, 10_000), Exit::Halted);
    assert_eq!(snapshot(&interp), snapshot(&jit));
    assert_eq!(jit.s.gpr[0], 5050);
    let report = jit.translator().unwrap().stats_report();
    assert!(report.contains("jit: 1 blocks translated"), "{report}");
    // 100 iterations, the first ten interpreted; the block runs on past its
    // JNE, so the last iteration's HLT retires in translated code too.
    assert!(report.contains("271 instructions retired in translated code"), "{report}");
    let _ = Jit::default().stats_report();
}

#[test]
fn call_and_ret_match_the_interpreter() {
    use Code::*;
    // A recursive sum through CALL/RET: f(n) = n + f(n-1), f(0) = 0, plus
    // a RET to a non-canonical address at the end (#GP, then shutdown).
    let f = CODE + 0x100;
    let mut call_main = Instruction::with_branch(Call_rel32_64, f).unwrap();
    call_main.set_near_branch64(f);
    let main = [
        call_main,
        Instruction::with2(Mov_r64_imm64, Register::RDX, 0x8000_0000_0000_0000u64).unwrap(),
        Instruction::with1(Push_r64, Register::RDX).unwrap(),
        Instruction::with(Retnq),
    ];
    let mut rec = Instruction::with_branch(Call_rel32_64, f).unwrap();
    rec.set_near_branch64(f);
    let mut je = Instruction::with_branch(Je_rel32_64, f + 0x40).unwrap();
    je.set_near_branch64(f + 0x40);
    let body = [
        Instruction::with2(Test_rm64_r64, Register::RCX, Register::RCX).unwrap(),
        je,
        Instruction::with1(Push_r64, Register::RCX).unwrap(),
        Instruction::with1(Dec_rm64, Register::RCX).unwrap(),
        rec,
        Instruction::with1(Pop_r64, Register::RCX).unwrap(),
        Instruction::with2(Add_rm64_r64, Register::RAX, Register::RCX).unwrap(),
        Instruction::with(Retnq),
    ];
    let mut a = iced_x86::code_asm::CodeAssembler::new(64).unwrap();
    for i in main {
        a.add_instruction(i).unwrap();
    }
    let main_code = a.assemble(CODE).unwrap();
    let mut a = iced_x86::code_asm::CodeAssembler::new(64).unwrap();
    for i in body {
        a.add_instruction(i).unwrap();
    }
    let body_code = a.assemble(f).unwrap();
    let mut interp = cpu64(None);
    let mut jit = cpu64(translate_all());
    for c in [&mut interp, &mut jit] {
        c.s.gpr[1] = 100;
        c.s.gpr[0] = 0;
        c.mem.write(CODE, &main_code);
        c.mem.write(f, &body_code);
        c.mem.write(f + 0x40, &[0xc3]);
    }
    assert_eq!(run(&mut interp, 100_000), Exit::TripleFault);
    assert_eq!(run(&mut jit, 100_000), Exit::TripleFault);
    assert_eq!(interp.s.gpr[0], 5050);
    assert_eq!(snapshot(&interp), snapshot(&jit));
}

#[test]
fn a_tiny_code_cache_flushes_and_still_matches() {
    // code_limit 1: every compile after the first flushes the whole cache.
    for seed in 0..60u64 {
        compare_program(
            seed,
            JitConfig {
                threshold: 0,
                code_limit: 1,
                ..JitConfig::default()
            },
        );
    }
    // Loop block (running on past its JNE into the JMP) and HLT block: one
    // flush, same result.
    use Code::*;
    let mut insns = vec![
        Instruction::with2(Add_rm64_r64, Register::RAX, Register::RCX).unwrap(),
        Instruction::with1(Dec_rm64, Register::RCX).unwrap(),
    ];
    let mut j = Instruction::with_branch(Jne_rel32_64, CODE).unwrap();
    j.set_near_branch64(CODE);
    insns.push(j);
    let mut k = Instruction::with_branch(Jmp_rel32_64, CODE + 0x800).unwrap();
    k.set_near_branch64(CODE + 0x800);
    insns.push(k);
    let code = assemble(&insns);
    let mut jit = cpu64(Some(JitConfig {
        threshold: 0,
        code_limit: 1,
        ..JitConfig::default()
    }));
    jit.s.gpr[1] = 50;
    jit.mem.write(CODE, &code);
    jit.mem.write(CODE + 0x800, &[0xf4]);
    assert_eq!(run(&mut jit, 10_000), Exit::Halted);
    assert_eq!(jit.s.gpr[0], 1275);
    let report = jit.translator().unwrap().stats_report();
    assert!(report.contains(" 1 cache flushes"), "{report}");
}
