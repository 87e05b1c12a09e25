//! Inline memory operands (64-bit mode): MOV/MOVZX/MOVSX/MOVSXD loads, MOV
//! stores, ALU and CMP/TEST with a memory operand, PUSH/POP of a 64-bit
//! register.
//!
//! The address goes through an inline soft-TLB lookup (`cpu/src/mmu.rs`:
//! one table per MMU mode, tag = linear page when the fast path is allowed,
//! host address = linear + addend). On a hit the access is a host load or
//! store. Anything else (a miss, a page-crossing access, MMIO, ROM, a write
//! to a page holding code, a fault) runs the whole instruction through the
//! interpreter's handler instead, which fills the TLB, delivers the fault
//! or invalidates code exactly as the interpreter does.
//!
//! Both paths leave everything in `CpuState` (registers, lazy flags, RIP,
//! `icount`) and meet in a merge block where the register cache starts empty.

use crate::codegen::{Emitter, I64};
use crate::helpers::RunCtx;
use cranelift_codegen::ir::{condcodes::IntCC, types, Block, InstBuilder, MemFlagsData, Value};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use kagami_cpu::mmu::TlbEntry;
use kagami_cpu::state::Mode;
use std::mem::offset_of;

fn guest_flags() -> MemFlagsData {
    // Guest data may be unaligned; the TLB check guarantees it is mapped.
    MemFlagsData::new().with_notrap()
}

/// A memory operand kagami can address inline: 64-bit addressing with no
/// segment base (not FS/GS).
fn mem_ok(i: &Instruction) -> bool {
    if matches!(i.memory_segment(), Register::FS | Register::GS) {
        return false;
    }
    let base = i.memory_base();
    let index = i.memory_index();
    let base_ok = base == Register::None || base == Register::RIP || (base.is_gpr() && base.size() == 8);
    let index_ok = index == Register::None || (index.is_gpr() && index.size() == 8);
    base_ok && index_ok && !(base == Register::None && index == Register::None)
}

fn gpr_reg(i: &Instruction, n: u32) -> Option<Register> {
    (i.op_kind(n) == OpKind::Register && i.op_register(n).is_gpr()).then(|| i.op_register(n))
}

fn is_imm(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8 | OpKind::Immediate16 | OpKind::Immediate32 | OpKind::Immediate8to16 | OpKind::Immediate8to32
    ) || matches!(k, OpKind::Immediate8to64 | OpKind::Immediate32to64)
}

/// What an inline memory instruction does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// reg <- [m] (zero- or sign-extended as the mnemonic says).
    Load,
    /// [m] <- reg/imm.
    Store,
    /// ALU reg, [m] (CMP/TEST do not write).
    AluRegMem,
    /// CMP/TEST [m], reg/imm.
    CmpMem,
    Push,
    Pop,
    /// CALL rel (ends the block).
    Call,
    /// RET without an immediate (ends the block).
    Ret,
}

fn kind(i: &Instruction, mode: Mode) -> Option<Kind> {
    if mode != Mode::Long64 || i.has_lock_prefix() || i.has_rep_prefix() || i.has_repne_prefix() {
        return None;
    }
    let m = i.mnemonic();
    match m {
        Mnemonic::Push if i.op_count() == 1 && gpr_reg(i, 0).is_some_and(|r| r.size() == 8) => return Some(Kind::Push),
        Mnemonic::Pop if i.op_count() == 1 && gpr_reg(i, 0).is_some_and(|r| r.size() == 8) => return Some(Kind::Pop),
        Mnemonic::Call if i.op0_kind() == OpKind::NearBranch64 && kagami_cpu::seg::canonical(i.near_branch_target()) => {
            return Some(Kind::Call)
        }
        Mnemonic::Ret if i.op_count() == 0 && i.code() == iced_x86::Code::Retnq => return Some(Kind::Ret),
        _ => {}
    }
    if i.op_count() != 2 {
        return None;
    }
    let mem0 = i.op_kind(0) == OpKind::Memory;
    let mem1 = i.op_kind(1) == OpKind::Memory;
    if !(mem0 || mem1) || !mem_ok(i) {
        return None;
    }
    let size = i.memory_size().size();
    if !matches!(size, 1 | 2 | 4 | 8) {
        return None;
    }
    match m {
        Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd if mem1 && gpr_reg(i, 0).is_some() => Some(Kind::Load),
        Mnemonic::Mov if mem0 && (gpr_reg(i, 1).is_some() || is_imm(i.op_kind(1))) => Some(Kind::Store),
        Mnemonic::Add | Mnemonic::Sub | Mnemonic::And | Mnemonic::Or | Mnemonic::Xor | Mnemonic::Cmp | Mnemonic::Test
            if mem1 && gpr_reg(i, 0).is_some() =>
        {
            Some(Kind::AluRegMem)
        }
        Mnemonic::Cmp | Mnemonic::Test if mem0 && (gpr_reg(i, 1).is_some() || is_imm(i.op_kind(1))) => Some(Kind::CmpMem),
        _ => None,
    }
}

pub fn supported(i: &Instruction, mode: Mode) -> bool {
    kind(i, mode).is_some()
}

/// The effective (= linear, in 64-bit mode without FS/GS) address.
fn effective_address(em: &mut Emitter, i: &Instruction) -> Value {
    if i.memory_base() == Register::RIP {
        return em.iconst(i.memory_displacement64());
    }
    let mut ea = em.iconst(i.memory_displacement64());
    if i.memory_base() != Register::None {
        let b = em.gpr(i.memory_base().number());
        ea = em.b.ins().iadd(ea, b);
    }
    if i.memory_index() != Register::None {
        let x = em.gpr(i.memory_index().number());
        let x = em.b.ins().ishl_imm_u(x, i.memory_index_scale().trailing_zeros() as i64);
        ea = em.b.ins().iadd(ea, x);
    }
    ea
}

/// The soft-TLB check for `size` bytes at `lin`: branches to a new slow
/// block on a miss and leaves the builder in the fast block. Returns the
/// host address and the slow block.
fn tlb_lookup(em: &mut Emitter, lin: Value, size: u32, write: bool) -> (Value, Block) {
    let tlb =
        em.b.ins()
            .load(I64, MemFlagsData::trusted(), em.ctx, offset_of!(RunCtx, tlb) as i32);
    let idx = em.b.ins().ushr_imm_u(lin, 12);
    let idx = em.b.ins().band_imm_u(idx, (kagami_cpu::mmu::TLB_ENTRIES - 1) as i64);
    let off = em.b.ins().imul_imm_u(idx, std::mem::size_of::<TlbEntry>() as i64);
    let entry = em.b.ins().iadd(tlb, off);
    let tag_off = if write {
        offset_of!(TlbEntry, write)
    } else {
        offset_of!(TlbEntry, read)
    };
    let tag = em.b.ins().load(I64, MemFlagsData::trusted(), entry, tag_off as i32);
    let page = em.b.ins().band_imm_u(lin, !0xfffu64 as i64);
    let hit = em.b.ins().icmp(IntCC::Equal, tag, page);
    let low = em.b.ins().band_imm_u(lin, 0xfff);
    let fits = em.b.ins().icmp_imm_u(IntCC::UnsignedLessThanOrEqual, low, (4096 - size) as i64);
    let ok = em.b.ins().band(hit, fits);
    let fast = em.b.create_block();
    let slow = em.b.create_block();
    em.b.ins().brif(ok, fast, &[], slow, &[]);
    em.b.seal_block(fast);
    em.b.switch_to_block(fast);
    let addend =
        em.b.ins()
            .load(I64, MemFlagsData::trusted(), entry, offset_of!(TlbEntry, addend) as i32);
    let host = em.b.ins().iadd(lin, addend);
    (host, slow)
}

fn load(em: &mut Emitter, host: Value, size: u32, signed: bool) -> Value {
    let ty = match size {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => return em.b.ins().load(I64, guest_flags(), host, 0),
    };
    let v = em.b.ins().load(ty, guest_flags(), host, 0);
    if signed {
        em.b.ins().sextend(I64, v)
    } else {
        em.b.ins().uextend(I64, v)
    }
}

fn store(em: &mut Emitter, host: Value, size: u32, v: Value) {
    let v = match size {
        1 => em.b.ins().ireduce(types::I8, v),
        2 => em.b.ins().ireduce(types::I16, v),
        4 => em.b.ins().ireduce(types::I32, v),
        _ => v,
    };
    em.b.ins().store(guest_flags(), v, host, 0);
}

fn mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// Emit instruction `n` of the block (`supported`). Returns true when it
/// ended the function (CALL, RET).
pub fn emit(em: &mut Emitter, i: &Instruction, n: usize, mode: Mode) -> bool {
    let k = kind(i, mode).expect("supported");
    if matches!(k, Kind::Call | Kind::Ret) {
        emit_call_ret(em, i, n, k);
        return true;
    }
    // The TLB-hit arm keeps the register cache; the helper arm syncs it
    // first and reloads it after (`Emitter::reload_to_match`).
    let (lin, size, write) = match k {
        Kind::Push => {
            let rsp = em.gpr(4);
            (em.b.ins().iadd_imm_s(rsp, -8), 8, true)
        }
        Kind::Pop => (em.gpr(4), 8, false),
        Kind::Store => (effective_address(em, i), i.memory_size().size() as u32, true),
        _ => (effective_address(em, i), i.memory_size().size() as u32, false),
    };
    let at_branch = em.save();
    let (host, slow) = tlb_lookup(em, lin, size, write);
    match k {
        Kind::Push => {
            let v = em.gpr(gpr_reg(i, 0).unwrap().number());
            store(em, host, 8, v);
            em.set_gpr(4, lin);
        }
        Kind::Pop => {
            let v = load(em, host, 8, false);
            let sp = em.b.ins().iadd_imm_u(lin, 8);
            em.set_gpr(4, sp);
            crate::inline::write_reg(em, gpr_reg(i, 0).unwrap(), v);
        }
        Kind::Load => {
            let signed = matches!(i.mnemonic(), Mnemonic::Movsx | Mnemonic::Movsxd);
            let v = load(em, host, size, signed);
            crate::inline::write_reg(em, gpr_reg(i, 0).unwrap(), v);
        }
        Kind::Store => {
            let v = match gpr_reg(i, 1) {
                Some(r) => crate::inline::read_reg(em, r),
                None => em.iconst(i.immediate(1) & mask(size)),
            };
            store(em, host, size, v);
        }
        Kind::AluRegMem => {
            let d = gpr_reg(i, 0).unwrap();
            let a = crate::inline::read_reg(em, d);
            let b = load(em, host, size, false);
            crate::inline::alu(em, i.mnemonic(), d, a, b);
        }
        Kind::CmpMem => {
            let a = load(em, host, size, false);
            let b = match gpr_reg(i, 1) {
                Some(r) => crate::inline::read_reg(em, r),
                None => em.iconst(i.immediate(1) & mask(size)),
            };
            crate::inline::alu_flags_only(em, i.mnemonic(), size, a, b);
        }
        Kind::Call | Kind::Ret => unreachable!("emit_call_ret"),
    }
    em.retire_inline();
    if matches!(k, Kind::AluRegMem | Kind::CmpMem) {
        // The flags' operands are values of this arm only.
        em.sync_cc();
        em.known_cc = None;
    }
    let fast = em.save();
    let merge = em.b.create_block();
    em.b.ins().jump(merge, &[]);
    em.b.seal_block(slow);
    em.b.switch_to_block(slow);
    em.restore(&at_branch);
    count_miss(em);
    em.fallback(n, i.ip());
    let written: &[usize] = match k {
        Kind::Push => &[4],
        Kind::Pop => &[4, gpr_reg(i, 0).unwrap().full_register().number()],
        Kind::Load => &[gpr_reg(i, 0).unwrap().full_register().number()],
        Kind::AluRegMem if !matches!(i.mnemonic(), Mnemonic::Cmp | Mnemonic::Test) => &[gpr_reg(i, 0).unwrap().full_register().number()],
        _ => &[],
    };
    em.reload_to_match(&fast, &at_branch, written);
    em.b.ins().jump(merge, &[]);
    em.b.seal_block(merge);
    em.b.switch_to_block(merge);
    false
}

/// Count a run of the helper arm (`RunCtx::tlb_misses`).
fn count_miss(em: &mut Emitter) {
    let off = offset_of!(RunCtx, tlb_misses) as i32;
    let c = em.b.ins().load(I64, MemFlagsData::trusted(), em.ctx, off);
    let c = em.b.ins().iadd_imm_u(c, 1);
    em.b.ins().store(MemFlagsData::trusted(), c, em.ctx, off);
}

/// CALL rel / RET: the stack access through the TLB, then the block ends
/// at the new RIP. A RET to a non-canonical address (#GP) and every TLB
/// miss run the interpreter's handler instead.
fn emit_call_ret(em: &mut Emitter, i: &Instruction, n: usize, k: Kind) {
    em.sync(Some(i.ip()));
    em.forget();
    let rsp = em.gpr(4);
    let slow = if k == Kind::Call {
        let lin = em.b.ins().iadd_imm_s(rsp, -8);
        let (host, slow) = tlb_lookup(em, lin, 8, true);
        let ret = em.iconst(i.next_ip());
        store(em, host, 8, ret);
        em.set_gpr(4, lin);
        em.retire_inline();
        let t = em.iconst(i.near_branch_target());
        em.finish_with_rip(t);
        slow
    } else {
        let (host, slow) = tlb_lookup(em, rsp, 8, false);
        let target = load(em, host, 8, false);
        let sh = em.b.ins().ishl_imm_u(target, 16);
        let sx = em.b.ins().sshr_imm_u(sh, 16);
        let canon = em.b.ins().icmp(IntCC::Equal, sx, target);
        let ok = em.b.create_block();
        em.b.ins().brif(canon, ok, &[], slow, &[]);
        em.b.seal_block(ok);
        em.b.switch_to_block(ok);
        let sp = em.b.ins().iadd_imm_u(rsp, 8);
        em.set_gpr(4, sp);
        em.retire_inline();
        em.finish_with_rip(target);
        slow
    };
    em.b.seal_block(slow);
    em.b.switch_to_block(slow);
    count_miss(em);
    em.forget();
    em.fallback(n, i.ip());
    em.ret(crate::codegen::EXIT_CLEAN);
}
