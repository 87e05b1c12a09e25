//! Inline translations of common integer instructions: register and
//! immediate forms of MOV, ADD/SUB/AND/OR/XOR/CMP/TEST, INC/DEC, LEA, NOP,
//! and JMP/Jcc rel at a block's end. They write the same lazy-flag fields
//! as the interpreter's handlers (`cpu/src/insn/alu.rs`: result, sources
//! masked to the operand size). None of them can fault; memory operands and
//! everything else run through the interpreter helper.

use crate::codegen::{Emitter, KnownCc, I64};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, Type, Value};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use kagami_cpu::flags::{CC_ADD, CC_DEC, CC_INC, CC_LOGIC, CC_MUL, CC_SHL, CC_SHR, CC_SUB};
use kagami_cpu::seg::canonical;
use kagami_cpu::state::Mode;

/// A general-purpose register operand: GPR index, bit shift (8 for AH..BH),
/// size in bytes.
#[derive(Clone, Copy)]
struct Gpr {
    idx: usize,
    shift: u32,
    size: u32,
}

fn gpr(r: Register) -> Option<Gpr> {
    if !r.is_gpr() {
        return None;
    }
    let size = r.size() as u32;
    if size == 1 {
        // iced order: AL CL DL BL AH CH DH BH SPL BPL SIL DIL R8L..R15L.
        let off = r as usize - Register::AL as usize;
        return Some(match off {
            0..=3 => Gpr { idx: off, shift: 0, size },
            4..=7 => Gpr {
                idx: off - 4,
                shift: 8,
                size,
            },
            _ => Gpr {
                idx: off - 4,
                shift: 0,
                size,
            },
        });
    }
    Some(Gpr {
        idx: r.full_register().number(),
        shift: 0,
        size,
    })
}

fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

fn narrow(size: u32) -> Type {
    match size {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    }
}

fn is_imm(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

fn reg_op(i: &Instruction, n: u32) -> Option<Gpr> {
    (i.op_kind(n) == OpKind::Register).then(|| gpr(i.op_register(n))).flatten()
}

/// Source operand 1: a GPR or an immediate.
fn src_ok(i: &Instruction) -> bool {
    reg_op(i, 1).is_some() || is_imm(i.op_kind(1))
}

fn branch_target_ok(i: &Instruction, mode: Mode) -> bool {
    mode == Mode::Long64
        && matches!(i.op0_kind(), OpKind::NearBranch64)
        && canonical(i.near_branch_target())
        && !i.has_rep_prefix()
        && !i.has_repne_prefix()
}

fn is_setcc(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Seto
            | Mnemonic::Setno
            | Mnemonic::Setb
            | Mnemonic::Setae
            | Mnemonic::Sete
            | Mnemonic::Setne
            | Mnemonic::Setbe
            | Mnemonic::Seta
            | Mnemonic::Sets
            | Mnemonic::Setns
            | Mnemonic::Setp
            | Mnemonic::Setnp
            | Mnemonic::Setl
            | Mnemonic::Setge
            | Mnemonic::Setle
            | Mnemonic::Setg
    )
}

fn is_cmovcc(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmovo
            | Mnemonic::Cmovno
            | Mnemonic::Cmovb
            | Mnemonic::Cmovae
            | Mnemonic::Cmove
            | Mnemonic::Cmovne
            | Mnemonic::Cmovbe
            | Mnemonic::Cmova
            | Mnemonic::Cmovs
            | Mnemonic::Cmovns
            | Mnemonic::Cmovp
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovl
            | Mnemonic::Cmovge
            | Mnemonic::Cmovle
            | Mnemonic::Cmovg
    )
}

/// `v` (its low `size` bytes) sign-extended to 64 bits.
fn sext(em: &mut Emitter, v: Value, size: u32) -> Value {
    if size >= 8 {
        return v;
    }
    let up = 64 - 8 * size as i64;
    let t = em.b.ins().ishl_imm_u(v, up);
    em.b.ins().sshr_imm_u(t, up)
}

/// Whether the conditional branch `i` can sit in the middle of a block
/// (it has an inline translation that leaves the block when taken).
pub fn jcc_runs_on(i: &Instruction, mode: Mode) -> bool {
    i.is_jcc_short_or_near() && supported(i, mode)
}

/// Whether `i` has an inline translation in `mode`.
pub fn supported(i: &Instruction, mode: Mode) -> bool {
    if i.has_lock_prefix() {
        return false;
    }
    if crate::memory::supported(i, mode) {
        return true;
    }
    match i.mnemonic() {
        Mnemonic::Nop => true,
        Mnemonic::Mov => i.op_count() == 2 && reg_op(i, 0).is_some() && src_ok(i),
        Mnemonic::Add | Mnemonic::Sub | Mnemonic::And | Mnemonic::Or | Mnemonic::Xor | Mnemonic::Cmp | Mnemonic::Test => {
            i.op_count() == 2 && reg_op(i, 0).is_some() && src_ok(i)
        }
        Mnemonic::Inc | Mnemonic::Dec => i.op_count() == 1 && reg_op(i, 0).is_some(),
        Mnemonic::Shl | Mnemonic::Shr | Mnemonic::Sar => i.op_count() == 2 && reg_op(i, 0).is_some() && i.op_kind(1) == OpKind::Immediate8,
        Mnemonic::Lea => reg_op(i, 0).is_some() && lea_addr_size(i, mode).is_some(),
        Mnemonic::Imul => {
            let d = reg_op(i, 0);
            d.is_some_and(|d| d.size >= 2)
                && reg_op(i, 1).is_some()
                && match i.op_count() {
                    2 => true,
                    3 => is_imm(i.op_kind(2)),
                    _ => false,
                }
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => i.op_count() == 2 && reg_op(i, 0).is_some() && reg_op(i, 1).is_some(),
        Mnemonic::Jmp => branch_target_ok(i, mode),
        m if is_setcc(m) => i.op_count() == 1 && reg_op(i, 0).is_some(),
        m if is_cmovcc(m) => i.op_count() == 2 && reg_op(i, 0).is_some() && reg_op(i, 1).is_some(),
        _ if i.is_jcc_short_or_near() => branch_target_ok(i, mode),
        _ => false,
    }
}

/// Address size of LEA's operand (32 or 64 bits), if translated inline.
fn lea_addr_size(i: &Instruction, mode: Mode) -> Option<u32> {
    if i.op_kind(1) != OpKind::Memory {
        return None;
    }
    let (base, index) = (i.memory_base(), i.memory_index());
    if base == Register::RIP || base == Register::EIP {
        return None;
    }
    let mut size = None;
    for r in [base, index] {
        if r == Register::None {
            continue;
        }
        let s = match r.size() {
            8 => 64,
            4 => 32,
            _ => return None,
        };
        if size.is_some_and(|x| x != s) {
            return None;
        }
        size = Some(s);
    }
    match (size, mode) {
        (Some(s), _) => Some(s),
        // Displacement only: the default address size of the mode.
        (None, Mode::Long64) if i.memory_displ_size() == 8 || i.memory_displ_size() == 4 => None,
        (None, Mode::Prot32 | Mode::Compat32) => Some(32),
        _ => None,
    }
}

fn read_gpr(em: &mut Emitter, g: Gpr) -> Value {
    let full = em.gpr(g.idx);
    let v = if g.shift != 0 {
        em.b.ins().ushr_imm_u(full, g.shift as i64)
    } else {
        full
    };
    if g.size >= 8 {
        v
    } else {
        em.b.ins().band_imm_u(v, mask(g.size) as i64)
    }
}

/// Write with x86-64 semantics: 8/16-bit merge, 32-bit zero-extends.
fn write_gpr(em: &mut Emitter, g: Gpr, v: Value) {
    let nv = match g.size {
        8 => v,
        4 => em.b.ins().band_imm_u(v, 0xffff_ffff),
        _ => {
            let m = mask(g.size) << g.shift;
            let full = em.gpr(g.idx);
            let keep = em.b.ins().band_imm_u(full, !m as i64);
            let sh = if g.shift != 0 {
                em.b.ins().ishl_imm_u(v, g.shift as i64)
            } else {
                v
            };
            let part = em.b.ins().band_imm_u(sh, m as i64);
            em.b.ins().bor(keep, part)
        }
    };
    em.set_gpr(g.idx, nv);
}

fn src1(em: &mut Emitter, i: &Instruction, size: u32) -> Value {
    if let Some(g) = reg_op(i, 1) {
        read_gpr(em, g)
    } else {
        em.iconst(i.immediate(1) & mask(size))
    }
}

fn set_cc(em: &mut Emitter, op: u32, size: u32, dst: Value, src1: Value, src2: Value) {
    em.set_cc(KnownCc { op, size, dst, src1, src2 });
}

/// CF as 0/1 (I64), from known lazy flags or the helper.
fn carry(em: &mut Emitter) -> Value {
    if let Some(k) = em.known_cc {
        match k.op {
            CC_LOGIC => return em.iconst(0),
            CC_SUB => {
                let c = em.b.ins().icmp(IntCC::UnsignedLessThan, k.src1, k.src2);
                return em.b.ins().uextend(I64, c);
            }
            CC_ADD => {
                let c = em.b.ins().icmp(IntCC::UnsignedLessThan, k.dst, k.src1);
                return em.b.ins().uextend(I64, c);
            }
            CC_INC | CC_DEC => return k.src2,
            _ => {}
        }
    }
    let c = em.cond_via_helper(2);
    em.b.ins().uextend(I64, c)
}

/// Condition `cc` (0..15) as an I8 0/1.
fn condition(em: &mut Emitter, cc: u8) -> Value {
    let neg = cc & 1 != 0;
    let base = cc & !1;
    let v = match em.known_cc {
        Some(k) if k.op == CC_SUB || k.op == CC_LOGIC => {
            let t = narrow(k.size);
            let sb = 1u64 << (k.size * 8 - 1);
            let nd = if k.size < 8 { em.b.ins().ireduce(t, k.dst) } else { k.dst };
            let sub = k.op == CC_SUB;
            let (na, nb) = if k.size < 8 {
                (em.b.ins().ireduce(t, k.src1), em.b.ins().ireduce(t, k.src2))
            } else {
                (k.src1, k.src2)
            };
            let zero = em.b.ins().iconst(t, 0);
            match base {
                0 if sub => {
                    let x = em.b.ins().bxor(k.src1, k.src2);
                    let y = em.b.ins().bxor(k.src1, k.dst);
                    let o = em.b.ins().band(x, y);
                    let o = em.b.ins().band_imm_u(o, sb as i64);
                    em.b.ins().icmp_imm_u(IntCC::NotEqual, o, 0)
                }
                2 if sub => em.b.ins().icmp(IntCC::UnsignedLessThan, na, nb),
                4 => em.b.ins().icmp(IntCC::Equal, nd, zero),
                6 if sub => em.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, na, nb),
                8 => em.b.ins().icmp(IntCC::SignedLessThan, nd, zero),
                10 => {
                    let lo = em.b.ins().band_imm_u(k.dst, 0xff);
                    let p = em.b.ins().popcnt(lo);
                    let p = em.b.ins().band_imm_u(p, 1);
                    em.b.ins().icmp_imm_u(IntCC::Equal, p, 0)
                }
                12 if sub => em.b.ins().icmp(IntCC::SignedLessThan, na, nb),
                14 if sub => em.b.ins().icmp(IntCC::SignedLessThanOrEqual, na, nb),
                // Logic: CF = OF = 0.
                0 | 2 => em.b.ins().iconst(types::I8, 0),
                6 => em.b.ins().icmp(IntCC::Equal, nd, zero),
                12 => em.b.ins().icmp(IntCC::SignedLessThan, nd, zero),
                _ => em.b.ins().icmp(IntCC::SignedLessThanOrEqual, nd, zero),
            }
        }
        Some(k) if matches!(k.op, CC_ADD | CC_INC | CC_DEC) || (matches!(base, 4 | 8 | 10) && matches!(k.op, CC_SHL | CC_SHR | CC_MUL)) => {
            // As `kagami_cpu::flags::compute`: ZF, SF, PF from the result
            // for every op; CF and OF as ADD, INC and DEC define them (the
            // operands are already masked to the operand size).
            let t = narrow(k.size);
            let sb = 1u64 << (k.size * 8 - 1);
            let nd = if k.size < 8 { em.b.ins().ireduce(t, k.dst) } else { k.dst };
            let zero = em.b.ins().iconst(t, 0);
            let zf = |em: &mut Emitter| em.b.ins().icmp(IntCC::Equal, nd, zero);
            let sf = |em: &mut Emitter| em.b.ins().icmp(IntCC::SignedLessThan, nd, zero);
            let cf = |em: &mut Emitter| match k.op {
                CC_ADD => em.b.ins().icmp(IntCC::UnsignedLessThan, k.dst, k.src1),
                _ => {
                    let c = em.b.ins().band_imm_u(k.src2, 1);
                    em.b.ins().icmp_imm_u(IntCC::NotEqual, c, 0)
                }
            };
            let of = |em: &mut Emitter| match k.op {
                CC_ADD => {
                    let x = em.b.ins().bxor(k.src1, k.dst);
                    let y = em.b.ins().bxor(k.src2, k.dst);
                    let o = em.b.ins().band(x, y);
                    let o = em.b.ins().band_imm_u(o, sb as i64);
                    em.b.ins().icmp_imm_u(IntCC::NotEqual, o, 0)
                }
                CC_INC => em.b.ins().icmp_imm_u(IntCC::Equal, k.dst, sb as i64),
                _ => em.b.ins().icmp_imm_u(IntCC::Equal, k.dst, (sb - 1) as i64),
            };
            match base {
                0 => of(em),
                2 => cf(em),
                4 => zf(em),
                6 => {
                    let c = cf(em);
                    let z = zf(em);
                    em.b.ins().bor(c, z)
                }
                8 => sf(em),
                10 => {
                    let lo = em.b.ins().band_imm_u(k.dst, 0xff);
                    let p = em.b.ins().popcnt(lo);
                    let p = em.b.ins().band_imm_u(p, 1);
                    em.b.ins().icmp_imm_u(IntCC::Equal, p, 0)
                }
                12 => {
                    let s = sf(em);
                    let o = of(em);
                    em.b.ins().bxor(s, o)
                }
                _ => {
                    let s = sf(em);
                    let o = of(em);
                    let l = em.b.ins().bxor(s, o);
                    let z = zf(em);
                    em.b.ins().bor(l, z)
                }
            }
        }
        _ => {
            let c = em.cond_via_helper(base);
            em.b.ins().ireduce(types::I8, c)
        }
    };
    if neg {
        em.b.ins().bxor_imm_u(v, 1)
    } else {
        v
    }
}

/// ADD/SUB/AND/OR/XOR/CMP/TEST of `a` and `b` (masked to `size` bytes):
/// records the lazy flags and returns the masked result.
pub fn alu_flags_only(em: &mut Emitter, m: Mnemonic, size: u32, a: Value, b: Value) -> Value {
    let (r, op) = match m {
        Mnemonic::Add => (em.b.ins().iadd(a, b), CC_ADD),
        Mnemonic::Sub | Mnemonic::Cmp => (em.b.ins().isub(a, b), CC_SUB),
        Mnemonic::And | Mnemonic::Test => (em.b.ins().band(a, b), CC_LOGIC),
        Mnemonic::Or => (em.b.ins().bor(a, b), CC_LOGIC),
        _ => (em.b.ins().bxor(a, b), CC_LOGIC),
    };
    let r = if size < 8 { em.b.ins().band_imm_u(r, mask(size) as i64) } else { r };
    set_cc(em, op, size, r, a, b);
    r
}

/// The ALU operation `m` on register `d` (value `a`) and `b`, writing `d`
/// unless it is CMP/TEST.
pub fn alu(em: &mut Emitter, m: Mnemonic, d: Register, a: Value, b: Value) {
    let g = gpr(d).expect("GPR");
    let r = alu_flags_only(em, m, g.size, a, b);
    if !matches!(m, Mnemonic::Cmp | Mnemonic::Test) {
        write_gpr(em, g, r);
    }
}

/// A GPR of any width, zero-extended.
pub fn read_reg(em: &mut Emitter, r: Register) -> Value {
    read_gpr(em, gpr(r).expect("GPR"))
}

/// Write a GPR of any width with x86-64 semantics.
pub fn write_reg(em: &mut Emitter, r: Register, v: Value) {
    write_gpr(em, gpr(r).expect("GPR"), v)
}

/// Emit the inline translation of a `supported` instruction (number `n` of
/// its block). Returns true when it ended the function (a branch at the end
/// of the block).
pub fn emit(em: &mut Emitter, i: &Instruction, n: usize, mode: Mode, last: bool) -> bool {
    if crate::memory::supported(i, mode) {
        return crate::memory::emit(em, i, n, mode);
    }
    match i.mnemonic() {
        Mnemonic::Nop => {}
        Mnemonic::Mov => {
            let d = reg_op(i, 0).unwrap();
            let v = src1(em, i, d.size);
            write_gpr(em, d, v);
        }
        Mnemonic::Add | Mnemonic::Sub | Mnemonic::And | Mnemonic::Or | Mnemonic::Xor | Mnemonic::Cmp | Mnemonic::Test => {
            let d = reg_op(i, 0).unwrap();
            let a = read_gpr(em, d);
            let b = src1(em, i, d.size);
            let r = alu_flags_only(em, i.mnemonic(), d.size, a, b);
            if !matches!(i.mnemonic(), Mnemonic::Cmp | Mnemonic::Test) {
                write_gpr(em, d, r);
            }
        }
        Mnemonic::Inc | Mnemonic::Dec => {
            let d = reg_op(i, 0).unwrap();
            let a = read_gpr(em, d);
            let cf = carry(em);
            let (r, op) = if i.mnemonic() == Mnemonic::Inc {
                (em.b.ins().iadd_imm_u(a, 1), CC_INC)
            } else {
                (em.b.ins().iadd_imm_s(a, -1), CC_DEC)
            };
            let r = if d.size < 8 {
                em.b.ins().band_imm_u(r, mask(d.size) as i64)
            } else {
                r
            };
            write_gpr(em, d, r);
            set_cc(em, op, d.size, r, a, cf);
        }
        Mnemonic::Shl | Mnemonic::Shr | Mnemonic::Sar => {
            // As `cpu/src/insn/shift.rs`: the count is masked to 5 bits (6
            // for 64-bit operands); a zero count writes the value back (a
            // 32-bit register is still zero-extended) and keeps the flags.
            let d = reg_op(i, 0).unwrap();
            let a = read_gpr(em, d);
            let count = (i.immediate(1) as u32) & if d.size == 8 { 0x3f } else { 0x1f };
            if count == 0 {
                write_gpr(em, d, a);
            } else {
                let m = mask(d.size);
                let (r, src1, op) = match i.mnemonic() {
                    Mnemonic::Shl => {
                        let r = em.b.ins().ishl_imm_u(a, count as i64);
                        let r = em.b.ins().band_imm_u(r, m as i64);
                        (r, em.b.ins().ishl_imm_u(a, count as i64 - 1), CC_SHL)
                    }
                    Mnemonic::Shr => (
                        em.b.ins().ushr_imm_u(a, count as i64),
                        em.b.ins().ushr_imm_u(a, count as i64 - 1),
                        CC_SHR,
                    ),
                    _ => {
                        let up = 64 - 8 * d.size as i64;
                        let sa = em.b.ins().ishl_imm_u(a, up);
                        let sa = em.b.ins().sshr_imm_u(sa, up);
                        let r = em.b.ins().sshr_imm_u(sa, count as i64);
                        let r = em.b.ins().band_imm_u(r, m as i64);
                        let s1 = em.b.ins().sshr_imm_u(sa, count as i64 - 1);
                        let s1 = em.b.ins().band_imm_u(s1, m as i64);
                        (r, s1, CC_SHR)
                    }
                };
                write_gpr(em, d, r);
                let zero = em.iconst(0);
                set_cc(em, op, d.size, r, src1, zero);
            }
        }
        Mnemonic::Lea => {
            let d = reg_op(i, 0).unwrap();
            let asz = lea_addr_size(i, mode).unwrap();
            let mut ea = em.iconst(i.memory_displacement64());
            if let Some(g) = gpr(i.memory_base()) {
                let b = em.gpr(g.idx);
                ea = em.b.ins().iadd(ea, b);
            }
            if let Some(g) = gpr(i.memory_index()) {
                let x = em.gpr(g.idx);
                let x = em.b.ins().ishl_imm_u(x, i.memory_index_scale().trailing_zeros() as i64);
                ea = em.b.ins().iadd(ea, x);
            }
            if asz == 32 {
                ea = em.b.ins().band_imm_u(ea, 0xffff_ffff);
            }
            write_gpr(em, d, ea);
        }
        Mnemonic::Imul => {
            // As `cpu/src/insn/fast.rs` `imul`: the truncated signed product;
            // CF = OF = whether it differs from the full one.
            let d = reg_op(i, 0).unwrap();
            let s1 = reg_op(i, 1).unwrap();
            let (x, y) = if i.op_count() == 3 {
                let x = read_gpr(em, s1);
                (x, em.iconst(i.immediate(2) & mask(d.size)))
            } else {
                (read_gpr(em, d), read_gpr(em, s1))
            };
            let (lo, of) = if d.size == 8 {
                let lo = em.b.ins().imul(x, y);
                let hi = em.b.ins().smulhi(x, y);
                let sign = em.b.ins().sshr_imm_u(lo, 63);
                let of = em.b.ins().icmp(IntCC::NotEqual, hi, sign);
                (lo, of)
            } else {
                let sx = sext(em, x, d.size);
                let sy = sext(em, y, d.size);
                let p = em.b.ins().imul(sx, sy);
                let lo = em.b.ins().band_imm_u(p, mask(d.size) as i64);
                let sl = sext(em, lo, d.size);
                let of = em.b.ins().icmp(IntCC::NotEqual, p, sl);
                (lo, of)
            };
            let of = em.b.ins().uextend(I64, of);
            write_gpr(em, d, lo);
            let zero = em.iconst(0);
            set_cc(em, CC_MUL, d.size, lo, of, zero);
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
            let d = reg_op(i, 0).unwrap();
            let s1 = reg_op(i, 1).unwrap();
            let v = read_gpr(em, s1);
            let v = if i.mnemonic() == Mnemonic::Movzx {
                v
            } else {
                let v = sext(em, v, s1.size);
                em.b.ins().band_imm_u(v, mask(d.size) as i64)
            };
            write_gpr(em, d, v);
        }
        m if is_setcc(m) => {
            let d = reg_op(i, 0).unwrap();
            let c = condition(em, i.condition_code() as u8 - 1);
            let v = em.b.ins().uextend(I64, c);
            write_gpr(em, d, v);
        }
        m if is_cmovcc(m) => {
            // The destination is written (a 32-bit one zero-extended) even
            // when the condition is false.
            let d = reg_op(i, 0).unwrap();
            let s1 = reg_op(i, 1).unwrap();
            let c = condition(em, i.condition_code() as u8 - 1);
            let a = read_gpr(em, d);
            let b = read_gpr(em, s1);
            let v = em.b.ins().select(c, b, a);
            write_gpr(em, d, v);
        }
        Mnemonic::Jmp => {
            em.retire_inline();
            em.exit_to(i.near_branch_target());
            return true;
        }
        _ => {
            // Jcc (checked by `supported`).
            let c = condition(em, i.condition_code() as u8 - 1);
            if !last {
                // In the middle of a block (`jcc_runs_on`): leave when
                // taken, run on when not.
                em.retire_inline();
                let at = em.save();
                let taken = em.b.create_block();
                let cont = em.b.create_block();
                em.b.ins().brif(c, taken, &[], cont, &[]);
                em.b.seal_block(taken);
                em.b.seal_block(cont);
                em.b.switch_to_block(taken);
                em.exit_to(i.near_branch_target());
                em.b.switch_to_block(cont);
                em.restore(&at);
                return false;
            }
            em.retire_inline();
            // Both ways out are known addresses: each may jump directly to
            // its block (`Emitter::leave_to`).
            {
                let at = em.save();
                let taken = em.b.create_block();
                let cont = em.b.create_block();
                em.b.ins().brif(c, taken, &[], cont, &[]);
                em.b.seal_block(taken);
                em.b.seal_block(cont);
                em.b.switch_to_block(taken);
                em.exit_to(i.near_branch_target());
                em.b.switch_to_block(cont);
                em.restore(&at);
                em.finish(i.next_ip());
                return true;
            }
        }
    }
    em.retire_inline();
    false
}
