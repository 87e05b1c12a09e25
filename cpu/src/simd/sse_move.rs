//! Data movement: MOVAPS/UPS/APD/UPD/DQA/DQU, LDDQU, the MOVNT* stores and
//! MOVNTDQA, MOVSS/MOVSD, MOVLPS/HPS/LPD/HPD, MOVHLPS/MOVLHPS, MOVD/MOVQ in
//! all their forms (GPR, memory, MMX, XMM, MOVQ2DQ/MOVDQ2Q), MOVDDUP,
//! MOVSLDUP/MOVSHDUP, MOVMSKPS/PD, PMOVMSKB, MASKMOVQ/MASKMOVDQU, MOVNTI.

use super::*;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

/// Whole-register moves (alignment per `needs_align`).
fn mov_full(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mm = enter(cpu, i)?;
    let v = read_op(cpu, bus, i, 1)?;
    write_op(cpu, bus, i, 0, mask_to(v, width(mm)))
}

/// MOVD/MOVQ (every form), MOVQ2DQ, MOVDQ2Q: move 4 or 8 bytes,
/// zero-extending into the destination register.
fn mov_dq(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    enter(cpu, i)?;
    let size = if i.mnemonic() == Mnemonic::Movd { 4 } else { 8 };
    let v = mask_to(read_op(cpu, bus, i, 1)?, size);
    write_op(cpu, bus, i, 0, v)
}

/// MOVSS/MOVSD: register to register merges the low element; a load
/// zeroes the rest; a store writes the low element.
fn mov_scalar(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let size = if i.mnemonic() == Mnemonic::Movss { 4 } else { 8 };
    let v = mask_to(read_op(cpu, bus, i, 1)?, size);
    if i.op_kind(0) == OpKind::Register && i.op_kind(1) == OpKind::Register {
        let d = i.op_register(0);
        let old = get_reg(cpu, d);
        set_reg(cpu, d, (old & !mask_to(u128::MAX, size)) | v);
        Ok(())
    } else {
        write_op(cpu, bus, i, 0, v)
    }
}

/// MOVLPS/MOVLPD/MOVHPS/MOVHPD (m64 halves), MOVHLPS, MOVLHPS.
fn mov_half(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let m = i.mnemonic();
    let src = read_op(cpu, bus, i, 1)?;
    let high = matches!(m, Mnemonic::Movhps | Mnemonic::Movhpd);
    if i.op_kind(0) == OpKind::Memory {
        // Store: the chosen half of the source register.
        let v = if high { src >> 64 } else { src as u64 as u128 };
        return write_op(cpu, bus, i, 0, v);
    }
    let d = i.op_register(0);
    let old = get_reg(cpu, d);
    let lo64 = u64::MAX as u128;
    let v = match m {
        Mnemonic::Movhlps => (old & !lo64) | (src >> 64),
        Mnemonic::Movlhps => (old & lo64) | (src << 64),
        _ if high => (old & lo64) | ((src as u64 as u128) << 64),
        _ => (old & !lo64) | (src as u64 as u128),
    };
    set_reg(cpu, d, v);
    Ok(())
}

/// MOVDDUP, MOVSLDUP, MOVSHDUP.
fn mov_dup(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let s = read_op(cpu, bus, i, 1)?;
    let d = to_d(s);
    let v = match i.mnemonic() {
        Mnemonic::Movddup => (s as u64 as u128) | ((s as u64 as u128) << 64),
        Mnemonic::Movsldup => from_d([d[0], d[0], d[2], d[2]]),
        _ => from_d([d[1], d[1], d[3], d[3]]),
    };
    set_reg(cpu, i.op_register(0), v);
    Ok(())
}

/// MOVMSKPS/MOVMSKPD/PMOVMSKB: sign bits into a GPR.
fn movmsk(cpu: &mut Cpu, _bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mm = enter(cpu, i)?;
    let s = get_reg(cpu, i.op_register(1));
    let (size, n) = match i.mnemonic() {
        Mnemonic::Movmskps => (4, 4),
        Mnemonic::Movmskpd => (8, 2),
        _ => (1, width(mm)),
    };
    let mut r = 0u64;
    for k in 0..n {
        r |= ((s >> (8 * size * k + 8 * size - 1)) & 1) as u64 * (1 << k);
    }
    cpu.set_reg(i.op_register(0), r);
    Ok(())
}

/// MASKMOVQ/MASKMOVDQU: store the bytes whose mask byte has bit 7 set to
/// DS:rDI (segment overridable). The whole range is checked first.
fn maskmov(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mm = enter(cpu, i)?;
    let n = width(mm);
    let data = to_b(get_reg(cpu, i.op_register(1)));
    let mask = to_b(get_reg(cpu, i.op_register(2)));
    let seg = crate::operand::seg_index(i.memory_segment());
    let off = match i.op_kind(0) {
        OpKind::MemorySegDI => cpu.s.gpr[crate::state::RDI] & 0xffff,
        OpKind::MemorySegEDI => cpu.s.gpr[crate::state::RDI] & 0xffff_ffff,
        _ => cpu.s.gpr[crate::state::RDI],
    };
    if mask[..n].iter().all(|m| m & 0x80 == 0) {
        return Ok(());
    }
    let lin = cpu.seg_lin(seg, off, n, crate::mmu::Access::Write)?;
    cpu.probe_write(bus, lin, n)?;
    for k in 0..n {
        if mask[k] & 0x80 != 0 {
            cpu.write_lin(bus, lin.wrapping_add(k as u64) & cpu.lin_mask(), 1, data[k] as u64)?;
        }
    }
    Ok(())
}

/// MOVNTI: a plain GPR store (the non-temporal hint has no architectural effect).
fn movnti(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let v = cpu.read_op(bus, i, 1)?;
    cpu.write_op(bus, i, 0, v)
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    Some(match code.mnemonic() {
        Movaps | Movups | Movapd | Movupd | Movdqa | Movdqu | Lddqu | Movntps | Movntpd | Movntdq | Movntdqa | Movntq => mov_full,
        Movd | Movq | Movq2dq | Movdq2q => mov_dq,
        Movss | Movsd => mov_scalar,
        Movlps | Movlpd | Movhps | Movhpd | Movhlps | Movlhps => mov_half,
        Movddup | Movsldup | Movshdup => mov_dup,
        Movmskps | Movmskpd | Pmovmskb => movmsk,
        Maskmovq | Maskmovdqu => maskmov,
        Movnti => movnti,
        _ => return None,
    })
}
