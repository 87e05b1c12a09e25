//! Handlers specialised for the commonest integer instruction forms, run
//! from pre-decoded block entries ([`Op`]). Each one does exactly what the
//! family handler does for that form (same checks, same order of faults,
//! same flags), but reads register numbers, the memory operand's shape and
//! the immediate from fields computed once at decode time instead of asking
//! iced's `Instruction` on every execution.
//!
//! Covered: MOV, MOVZX, MOVSX(D), LEA, the ALU group (ADD OR ADC SBB AND
//! SUB XOR CMP TEST), INC DEC NEG NOT, IMUL (two and three operands), SHL
//! SHR SAR by an immediate, Jcc, JMP/CALL rel, RET, PUSH/POP of a GPR,
//! SETcc, CMOVcc and NOP, with GPR (not AH..BH), memory and immediate
//! operands. Everything else, and every 80286-model instruction, uses
//! the family handler (`block::run_generic`).

use crate::block::{Op, OpFn, OpResult, NO_REG};
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::flags::*;
use crate::mmu::Access;
use crate::operand::seg_index;
use crate::seg::canonical;
use crate::state::{CcOp, Mode, FS, RSP};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

// ----- operand helpers -----

#[inline(always)]
const fn mask<const S: usize>() -> u64 {
    match S {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

#[inline(always)]
const fn lg<const S: usize>() -> u32 {
    match S {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}

#[inline(always)]
fn sext<const S: usize>(v: u64) -> i64 {
    let sh = 64 - 8 * S as u32;
    ((v << sh) as i64) >> sh
}

/// Read the low `S` bytes of GPR `r`.
#[inline(always)]
fn rd<const S: usize>(cpu: &Cpu, r: u8) -> u64 {
    cpu.s.gpr[r as usize & 15] & mask::<S>()
}

/// Write the low `S` bytes of GPR `r` (8/16-bit merge, 32-bit zero-extends).
#[inline(always)]
fn wr<const S: usize>(cpu: &mut Cpu, r: u8, v: u64) {
    let g = &mut cpu.s.gpr[r as usize & 15];
    *g = match S {
        1 => (*g & !0xff) | (v & 0xff),
        2 => (*g & !0xffff) | (v & 0xffff),
        4 => v & 0xffff_ffff,
        _ => v,
    };
}

/// Effective address of the memory operand (as `Cpu::ea`).
#[inline(always)]
fn ea(cpu: &Cpu, op: &Op) -> u64 {
    let mut a = op.disp;
    if op.base != NO_REG {
        a = a.wrapping_add(cpu.s.gpr[op.base as usize & 15]);
    }
    if op.index != NO_REG {
        a = a.wrapping_add(cpu.s.gpr[op.index as usize & 15] << op.scale);
    }
    a & op.amask
}

/// Linear address of the memory operand, checked against its segment.
#[inline(always)]
fn lin<const S: usize>(cpu: &Cpu, op: &Op, access: Access) -> Result<u64> {
    let off = ea(cpu, op);
    if cpu.s.mode == Mode::Long64 && (op.seg as usize) < FS {
        // 64-bit mode without FS/GS: the offset is the linear address and
        // only canonicality is checked (as `Cpu::seg_lin`).
        if canonical(off) && canonical(off.wrapping_add(S as u64 - 1)) {
            return Ok(off);
        }
    }
    cpu.seg_lin(op.seg as usize, off, S, access)
}

#[inline(always)]
fn load<const S: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Result<u64> {
    let l = lin::<S>(cpu, op, Access::Read)?;
    cpu.read_lin(bus, l, S)
}

#[inline(always)]
fn store<const S: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, v: u64) -> Result<()> {
    let l = lin::<S>(cpu, op, Access::Write)?;
    cpu.write_lin(bus, l, S, v)
}

// ----- operand forms -----

// The shape of a two-operand instruction, as a const parameter of the
// handlers below: each (size, operation, form) is its own monomorphised
// function, so the form is resolved at compile time, not per execution.
/// Register destination, register source.
const RR: u8 = 0;
/// Register destination, immediate source.
const RI: u8 = 1;
/// Register destination, memory source.
const RM: u8 = 2;
/// Memory destination, register source.
const MR: u8 = 3;
/// Memory destination, immediate source.
const MI: u8 = 4;

#[inline(always)]
const fn to_memory(form: u8) -> bool {
    form == MR || form == MI
}

/// The source operand of form `F` (a memory source is read here, so its
/// faults come first, as in the family handlers).
#[inline(always)]
fn source<const S: usize, const F: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Result<u64> {
    match F {
        RR | MR => Ok(rd::<S>(cpu, op.r1)),
        RI | MI => Ok(op.imm),
        _ => load::<S>(cpu, bus, op),
    }
}

// ----- MOV, MOVZX, MOVSX, LEA -----

fn mov<const S: usize, const F: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let v = source::<S, F>(cpu, bus, op)?;
    if to_memory(F) {
        store::<S>(cpu, bus, op, v)?;
    } else {
        wr::<S>(cpu, op.r0, v);
    }
    Ok(())
}

/// MOVZX/MOVSX(D) from a `S`-byte register or (`MEM`) memory source into
/// a `D`-byte register.
fn movx<const D: usize, const S: usize, const SIGNED: bool, const MEM: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let v = if MEM { load::<S>(cpu, bus, op)? } else { rd::<S>(cpu, op.r1) };
    let v = if SIGNED { sext::<S>(v) as u64 } else { v };
    wr::<D>(cpu, op.r0, v);
    Ok(())
}

fn lea<const D: usize>(cpu: &mut Cpu, _: &mut dyn Bus, op: &Op) -> OpResult {
    let a = ea(cpu, op);
    wr::<D>(cpu, op.r0, a);
    Ok(())
}

// ----- ALU -----

const ADD: u8 = 0;
const OR: u8 = 1;
const ADC: u8 = 2;
const SBB: u8 = 3;
const AND: u8 = 4;
const SUB: u8 = 5;
const XOR: u8 = 6;
const CMP: u8 = 7;
const TEST: u8 = 8;

#[inline(always)]
const fn alu_writes(op: u8) -> bool {
    op != CMP && op != TEST
}

/// Result and lazy-flags op of `a OP b` (operands already masked).
#[inline(always)]
fn alu_calc<const S: usize, const OP: u8>(cpu: &Cpu, a: u64, b: u64) -> (u64, CcOp) {
    let (r, cc) = match OP {
        ADD => (a.wrapping_add(b), CC_ADD),
        ADC => (a.wrapping_add(b).wrapping_add(cpu.s.cf() as u64), CC_ADC),
        SUB | CMP => (a.wrapping_sub(b), CC_SUB),
        SBB => (a.wrapping_sub(b).wrapping_sub(cpu.s.cf() as u64), CC_SBB),
        AND | TEST => (a & b, CC_LOGIC),
        OR => (a | b, CC_LOGIC),
        _ => (a ^ b, CC_LOGIC),
    };
    (r & mask::<S>(), cc)
}

#[inline(always)]
fn alu_reg<const S: usize, const OP: u8>(cpu: &mut Cpu, r0: u8, b: u64) {
    let a = rd::<S>(cpu, r0);
    let (r, cc) = alu_calc::<S, OP>(cpu, a, b);
    if alu_writes(OP) {
        wr::<S>(cpu, r0, r);
    }
    cpu.s.set_cc(cc, lg::<S>(), r, a, b);
}

#[inline(always)]
fn alu_mem<const S: usize, const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, b: u64) -> Result<()> {
    let access = if alu_writes(OP) { Access::Write } else { Access::Read };
    let l = lin::<S>(cpu, op, access)?;
    let a = cpu.read_lin(bus, l, S)?;
    let (r, cc) = alu_calc::<S, OP>(cpu, a, b);
    if alu_writes(OP) {
        cpu.write_lin(bus, l, S, r)?;
    }
    cpu.s.set_cc(cc, lg::<S>(), r, a, b);
    Ok(())
}

/// The ALU group in every form: `OP` (ADD..TEST) of size `S`, form `F`.
fn alu<const S: usize, const OP: u8, const F: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let b = source::<S, F>(cpu, bus, op)?;
    if to_memory(F) {
        alu_mem::<S, OP>(cpu, bus, op, b)?;
    } else {
        alu_reg::<S, OP>(cpu, op.r0, b);
    }
    Ok(())
}

const INC: u8 = 0;
const DEC: u8 = 1;
const NEG: u8 = 2;
const NOT: u8 = 3;

#[inline(always)]
fn unary_calc<const S: usize, const OP: u8>(a: u64) -> u64 {
    let r = match OP {
        INC => a.wrapping_add(1),
        DEC => a.wrapping_sub(1),
        NEG => 0u64.wrapping_sub(a),
        _ => !a,
    };
    r & mask::<S>()
}

#[inline(always)]
fn unary_flags<const S: usize, const OP: u8>(cpu: &mut Cpu, a: u64, r: u64, cf: u64) {
    match OP {
        INC => cpu.s.set_cc(CC_INC, lg::<S>(), r, a, cf),
        DEC => cpu.s.set_cc(CC_DEC, lg::<S>(), r, a, cf),
        NEG => cpu.s.set_cc(CC_SUB, lg::<S>(), r, 0, a),
        _ => {}
    }
}

/// INC/DEC/NEG/NOT of a register or (`MEM`) of memory.
fn unary<const S: usize, const OP: u8, const MEM: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let (a, r);
    if MEM {
        let l = lin::<S>(cpu, op, Access::Write)?;
        a = cpu.read_lin(bus, l, S)?;
        r = unary_calc::<S, OP>(a);
        cpu.write_lin(bus, l, S, r)?;
    } else {
        a = rd::<S>(cpu, op.r0);
        r = unary_calc::<S, OP>(a);
        wr::<S>(cpu, op.r0, r);
    }
    let cf = if OP == INC || OP == DEC { cpu.s.cf() as u64 } else { 0 };
    unary_flags::<S, OP>(cpu, a, r, cf);
    Ok(())
}

// ----- IMUL -----

/// IMUL r, r/m (`IMM` false: the first factor is the destination) or
/// IMUL r, r/m, imm; `MEM`: the r/m operand is memory.
fn imul<const S: usize, const MEM: bool, const IMM: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let rm = if MEM { load::<S>(cpu, bus, op)? } else { rd::<S>(cpu, op.r1) };
    let (x, y) = if IMM { (rm, op.imm) } else { (rd::<S>(cpu, op.r0), rm) };
    let p = (sext::<S>(x) as i128) * (sext::<S>(y & mask::<S>()) as i128);
    let lo = p as u64 & mask::<S>();
    wr::<S>(cpu, op.r0, lo);
    cpu.s.set_cc(CC_MUL, lg::<S>(), lo, (p != sext::<S>(lo) as i128) as u64, 0);
    Ok(())
}

// ----- shifts by an immediate (count already masked, never 0) -----

const SHL: u8 = 0;
const SHR: u8 = 1;
const SAR: u8 = 2;

fn shift_ri<const S: usize, const OP: u8>(cpu: &mut Cpu, _: &mut dyn Bus, op: &Op) -> OpResult {
    let a = rd::<S>(cpu, op.r0);
    let count = op.cc as u32;
    let (r, src) = match OP {
        SHL => ((a << count) & mask::<S>(), a << (count - 1)),
        SHR => (a >> count, a >> (count - 1)),
        _ => {
            let sa = sext::<S>(a);
            ((sa >> count) as u64 & mask::<S>(), (sa >> (count - 1)) as u64 & mask::<S>())
        }
    };
    wr::<S>(cpu, op.r0, r);
    cpu.s.set_cc(if OP == SHL { CC_SHL } else { CC_SHR }, lg::<S>(), r, src, 0);
    Ok(())
}

// ----- control flow, stack, conditions -----

/// Jcc with condition `CC` (instantiated per condition so that the test
/// is inlined and folded).
fn jcc<const CC: u8>(cpu: &mut Cpu, _: &mut dyn Bus, op: &Op) -> OpResult {
    if cpu.s.cond_inline(CC) {
        cpu.branch_near(op.imm)?;
    }
    Ok(())
}

/// Jcc inside a block: a taken branch leaves the block.
fn jcc_mid<const CC: u8>(cpu: &mut Cpu, _: &mut dyn Bus, op: &Op) -> OpResult {
    if cpu.s.cond_inline(CC) {
        cpu.branch_near(op.imm)?;
        cpu.break_block = true;
    }
    Ok(())
}

/// The two Jcc handlers for condition `cc` (0..15).
fn jcc_pair(cc: u8) -> (OpFn, OpFn) {
    macro_rules! pair {
        ($($c:literal)*) => {
            match cc {
                $($c => (jcc::<$c> as OpFn, jcc_mid::<$c> as OpFn),)*
                _ => unreachable!("condition codes are 0..15"),
            }
        };
    }
    pair!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
}

fn jmp(cpu: &mut Cpu, _: &mut dyn Bus, op: &Op) -> OpResult {
    Ok(cpu.branch_near(op.imm)?)
}

fn call<const S: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let ret = cpu.s.rip;
    cpu.branch_near(op.imm)?;
    if let Err(e) = cpu.push(bus, ret, S) {
        cpu.s.rip = ret;
        return Err(Box::new(e));
    }
    Ok(())
}

fn ret<const S: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Op) -> OpResult {
    let t = cpu.peek(bus, 0, S)?;
    cpu.branch_near(t)?;
    let ss = cpu.stack_size();
    let sp = cpu.s.gpr[RSP].wrapping_add(S as u64);
    cpu.set_sp(sp, ss);
    Ok(())
}

fn push<const S: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let v = rd::<S>(cpu, op.r0);
    Ok(cpu.push(bus, v, S)?)
}

fn pop<const S: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let v = cpu.peek(bus, 0, S)?;
    let ss = cpu.stack_size();
    let old_sp = cpu.s.gpr[RSP];
    cpu.set_sp(old_sp.wrapping_add(S as u64), ss);
    wr::<S>(cpu, op.r0, v);
    Ok(())
}

fn setcc_r(cpu: &mut Cpu, _: &mut dyn Bus, op: &Op) -> OpResult {
    let v = cpu.s.cond(op.cc) as u64;
    wr::<1>(cpu, op.r0, v);
    Ok(())
}

fn cmov<const S: usize, const MEM: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    let src = if MEM { load::<S>(cpu, bus, op)? } else { rd::<S>(cpu, op.r1) };
    let v = if cpu.s.cond(op.cc) { src } else { rd::<S>(cpu, op.r0) };
    wr::<S>(cpu, op.r0, v);
    Ok(())
}

fn nop(_: &mut Cpu, _: &mut dyn Bus, _: &Op) -> OpResult {
    Ok(())
}

// ----- choosing a specialised handler at decode time -----

/// GPR number of a register the fast handlers can address (not AH..BH).
fn gpr(r: Register) -> Option<u8> {
    if !r.is_gpr() || matches!(r, Register::AH | Register::CH | Register::DH | Register::BH) {
        return None;
    }
    Some((r.full_register() as usize - Register::RAX as usize) as u8)
}

fn reg_op(i: &Instruction, n: u32) -> Option<u8> {
    if i.op_kind(n) != OpKind::Register {
        return None;
    }
    gpr(i.op_register(n))
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

/// Fill the memory-operand fields the way `Cpu::ea` computes the address.
fn mem_op(op: &mut Op, i: &Instruction, mode: Mode) -> Option<()> {
    let base = i.memory_base();
    let index = i.memory_index();
    op.seg = seg_index(i.memory_segment()) as u8;
    if op.seg > 5 {
        return None;
    }
    op.disp = i.memory_displacement64();
    if base == Register::RIP || base == Register::EIP {
        // iced already folded next_ip into the displacement.
        op.amask = if base == Register::EIP { 0xffff_ffff } else { u64::MAX };
        return Some(());
    }
    let mut size = 0usize;
    if base != Register::None {
        op.base = gpr(base)?;
        size = base.size();
    }
    if index != Register::None {
        op.index = gpr(index)?;
        op.scale = i.memory_index_scale().trailing_zeros() as u8;
        if size == 0 {
            size = index.size();
        }
    }
    if size == 0 {
        size = match mode {
            Mode::Long64 => 8,
            _ => i.memory_displ_size() as usize,
        };
    }
    op.amask = match size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    };
    Some(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    RR,
    RI,
    RM,
    MR,
    MI,
}

/// Classify a two-operand instruction and fill the operand fields.
fn form2(op: &mut Op, i: &Instruction, mode: Mode) -> Option<Form> {
    if i.op_count() != 2 {
        return None;
    }
    let size = Cpu::op_size(i, 0);
    let m = crate::flags::size_mask(size_log2(size));
    Some(match (i.op_kind(0), i.op_kind(1)) {
        (OpKind::Register, OpKind::Register) => {
            op.r0 = reg_op(i, 0)?;
            op.r1 = reg_op(i, 1)?;
            Form::RR
        }
        (OpKind::Register, k) if is_imm(k) => {
            op.r0 = reg_op(i, 0)?;
            op.imm = i.immediate(1) & m;
            Form::RI
        }
        (OpKind::Register, OpKind::Memory) => {
            op.r0 = reg_op(i, 0)?;
            mem_op(op, i, mode)?;
            Form::RM
        }
        (OpKind::Memory, OpKind::Register) => {
            op.r1 = reg_op(i, 1)?;
            mem_op(op, i, mode)?;
            Form::MR
        }
        (OpKind::Memory, k) if is_imm(k) => {
            mem_op(op, i, mode)?;
            op.imm = i.immediate(1) & m;
            Form::MI
        }
        _ => return None,
    })
}

/// Instantiate `f` for the operand size `$size` (1, 2, 4 or 8 bytes).
macro_rules! sized {
    ($f:ident, $size:expr $(, $c:tt)*) => {
        match $size {
            1 => $f::<1 $(, $c)*> as OpFn,
            2 => $f::<2 $(, $c)*> as OpFn,
            4 => $f::<4 $(, $c)*> as OpFn,
            8 => $f::<8 $(, $c)*> as OpFn,
            _ => return None,
        }
    };
}

/// Instantiate `f` for the operand size `$size` and the form `$form`,
/// after the const parameters `$c` (the form comes last).
macro_rules! formed {
    ($f:ident, $form:expr, $size:expr $(, $c:tt)*) => {
        match $form {
            Form::RR => sized!($f, $size $(, $c)*, RR),
            Form::RI => sized!($f, $size $(, $c)*, RI),
            Form::RM => sized!($f, $size $(, $c)*, RM),
            Form::MR => sized!($f, $size $(, $c)*, MR),
            Form::MI => sized!($f, $size $(, $c)*, MI),
        }
    };
}

fn unary_form<const OP: u8>(op: &mut Op, i: &Instruction, mode: Mode) -> Option<OpFn> {
    if i.op_count() != 1 {
        return None;
    }
    let size = Cpu::op_size(i, 0);
    Some(match i.op_kind(0) {
        OpKind::Register => {
            op.r0 = reg_op(i, 0)?;
            sized!(unary, size, OP, false)
        }
        OpKind::Memory => {
            mem_op(op, i, mode)?;
            sized!(unary, size, OP, true)
        }
        _ => return None,
    })
}

/// MOVZX/MOVSX/MOVSXD: destination size `d`, source size `s`.
fn movx_form<const SIGNED: bool>(op: &mut Op, i: &Instruction, mode: Mode) -> Option<OpFn> {
    if i.op_count() != 2 {
        return None;
    }
    op.r0 = reg_op(i, 0)?;
    let d = Cpu::op_size(i, 0);
    let s = Cpu::op_size(i, 1);
    let mem = match i.op_kind(1) {
        OpKind::Register => {
            op.r1 = reg_op(i, 1)?;
            false
        }
        OpKind::Memory => {
            mem_op(op, i, mode)?;
            true
        }
        _ => return None,
    };
    macro_rules! pick {
        ($d:tt, $s:tt) => {
            if mem {
                movx::<$d, $s, SIGNED, true> as OpFn
            } else {
                movx::<$d, $s, SIGNED, false> as OpFn
            }
        };
    }
    Some(match (d, s) {
        (2, 1) => pick!(2, 1),
        (4, 1) => pick!(4, 1),
        (8, 1) => pick!(8, 1),
        (2, 2) => pick!(2, 2),
        (4, 2) => pick!(4, 2),
        (8, 2) => pick!(8, 2),
        (4, 4) => pick!(4, 4),
        (8, 4) => pick!(8, 4),
        _ => return None,
    })
}

fn imul_form(op: &mut Op, i: &Instruction, mode: Mode) -> Option<OpFn> {
    let size = Cpu::op_size(i, 0);
    let m = crate::flags::size_mask(size_log2(size));
    op.r0 = reg_op(i, 0)?;
    let imm = match i.op_count() {
        2 => false,
        3 if is_imm(i.op_kind(2)) => {
            op.imm = i.immediate(2) & m;
            true
        }
        _ => return None,
    };
    let mem = match i.op_kind(1) {
        OpKind::Register => {
            op.r1 = reg_op(i, 1)?;
            false
        }
        OpKind::Memory => {
            mem_op(op, i, mode)?;
            true
        }
        _ => return None,
    };
    Some(match (mem, imm) {
        (false, false) => sized!(imul, size, false, false),
        (false, true) => sized!(imul, size, false, true),
        (true, false) => sized!(imul, size, true, false),
        (true, true) => sized!(imul, size, true, true),
    })
}

fn shift_form<const OP: u8>(op: &mut Op, i: &Instruction) -> Option<OpFn> {
    if i.op_count() != 2 || !matches!(i.op_kind(1), OpKind::Immediate8) {
        return None;
    }
    op.r0 = reg_op(i, 0)?;
    let size = Cpu::op_size(i, 0);
    let count = (i.immediate8() as u32) & if size == 8 { 63 } else { 31 };
    // A zero count leaves the flags alone: the family handler does that.
    if count == 0 {
        return None;
    }
    op.cc = count as u8;
    Some(sized!(shift_ri, size, OP))
}

fn near_target(op: &mut Op, i: &Instruction) -> Option<()> {
    match i.op_kind(0) {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            op.imm = i.near_branch_target();
            Some(())
        }
        _ => None,
    }
}

/// Pick a specialised handler for `op.insn` (decoded in `mode`) and fill
/// its operand fields; leaves `op.exec` generic when the form is not covered.
pub fn specialise(op: &mut Op, mode: Mode) {
    let i = op.insn;
    if let Some(f) = pick(op, &i, mode) {
        op.exec = f;
    }
}

fn pick(op: &mut Op, i: &Instruction, mode: Mode) -> Option<OpFn> {
    let size = Cpu::op_size(i, 0);
    match i.mnemonic() {
        Mnemonic::Mov => Some(formed!(mov, form2(op, i, mode)?, size)),
        Mnemonic::Add => Some(formed!(alu, form2(op, i, mode)?, size, ADD)),
        Mnemonic::Or => Some(formed!(alu, form2(op, i, mode)?, size, OR)),
        Mnemonic::Adc => Some(formed!(alu, form2(op, i, mode)?, size, ADC)),
        Mnemonic::Sbb => Some(formed!(alu, form2(op, i, mode)?, size, SBB)),
        Mnemonic::And => Some(formed!(alu, form2(op, i, mode)?, size, AND)),
        Mnemonic::Sub => Some(formed!(alu, form2(op, i, mode)?, size, SUB)),
        Mnemonic::Xor => Some(formed!(alu, form2(op, i, mode)?, size, XOR)),
        Mnemonic::Cmp => Some(formed!(alu, form2(op, i, mode)?, size, CMP)),
        Mnemonic::Test => Some(formed!(alu, form2(op, i, mode)?, size, TEST)),
        Mnemonic::Inc => unary_form::<INC>(op, i, mode),
        Mnemonic::Dec => unary_form::<DEC>(op, i, mode),
        Mnemonic::Neg => unary_form::<NEG>(op, i, mode),
        Mnemonic::Not => unary_form::<NOT>(op, i, mode),
        Mnemonic::Movzx => movx_form::<false>(op, i, mode),
        Mnemonic::Movsx | Mnemonic::Movsxd => movx_form::<true>(op, i, mode),
        Mnemonic::Lea => {
            if i.op_count() != 2 || i.op_kind(1) != OpKind::Memory {
                return None;
            }
            op.r0 = reg_op(i, 0)?;
            mem_op(op, i, mode)?;
            Some(match size {
                2 => lea::<2> as OpFn,
                4 => lea::<4>,
                8 => lea::<8>,
                _ => return None,
            })
        }
        Mnemonic::Imul if i.op_count() >= 2 => imul_form(op, i, mode),
        Mnemonic::Shl | Mnemonic::Sal => shift_form::<SHL>(op, i),
        Mnemonic::Shr => shift_form::<SHR>(op, i),
        Mnemonic::Sar => shift_form::<SAR>(op, i),
        Mnemonic::Jmp => {
            near_target(op, i)?;
            Some(jmp)
        }
        Mnemonic::Call => {
            near_target(op, i)?;
            match super::stack::sp_step(i.code()) {
                2 => Some(call::<2> as OpFn),
                4 => Some(call::<4>),
                8 => Some(call::<8>),
                _ => None,
            }
        }
        Mnemonic::Ret if i.op_count() == 0 => match super::stack::sp_step(i.code()) {
            2 => Some(ret::<2> as OpFn),
            4 => Some(ret::<4>),
            8 => Some(ret::<8>),
            _ => None,
        },
        Mnemonic::Push | Mnemonic::Pop if i.op_count() == 1 => {
            op.r0 = reg_op(i, 0)?;
            let step = super::stack::sp_step(i.code());
            if step != size {
                return None;
            }
            let push_ = i.mnemonic() == Mnemonic::Push;
            Some(match (push_, step) {
                (true, 2) => push::<2> as OpFn,
                (true, 4) => push::<4>,
                (true, 8) => push::<8>,
                (false, 2) => pop::<2>,
                (false, 4) => pop::<4>,
                (false, 8) => pop::<8>,
                _ => return None,
            })
        }
        Mnemonic::Nop => Some(nop),
        m => {
            let cc = i.condition_code() as u8;
            if cc == 0 {
                return None;
            }
            op.cc = cc - 1;
            let name_is = |prefix: &str| format!("{m:?}").starts_with(prefix);
            if i.is_jcc_short_or_near() {
                near_target(op, i)?;
                let (last, mid) = jcc_pair(op.cc);
                op.cont = Some(mid);
                Some(last)
            } else if name_is("Set") && i.op_count() == 1 {
                op.r0 = reg_op(i, 0)?;
                Some(setcc_r)
            } else if name_is("Cmov") && i.op_count() == 2 {
                op.r0 = reg_op(i, 0)?;
                let mem = match i.op_kind(1) {
                    OpKind::Register => {
                        op.r1 = reg_op(i, 1)?;
                        false
                    }
                    OpKind::Memory => {
                        mem_op(op, i, mode)?;
                        true
                    }
                    _ => return None,
                };
                Some(match (size, mem) {
                    (2, false) => cmov::<2, false> as OpFn,
                    (4, false) => cmov::<4, false>,
                    (8, false) => cmov::<8, false>,
                    (2, true) => cmov::<2, true>,
                    (4, true) => cmov::<4, true>,
                    (8, true) => cmov::<8, true>,
                    _ => return None,
                })
            } else {
                None
            }
        }
    }
}
