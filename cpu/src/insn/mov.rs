//! Data movement: MOV (including to and from segment registers), MOVZX,
//! MOVSX(D), LEA, XCHG, XADD, CMPXCHG, CMPXCHG8B/16B, XLAT, the sign
//! extensions CBW..CQO, LAHF/SAHF, the far-pointer loads LDS..LSS, MOVNTI
//! and BSWAP. Moves to and from control and debug registers belong to
//! `system/ctrl.rs`.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel};
use crate::exception::{Exception, Result};
use crate::flags::{size_log2, size_mask, CC_SUB};
use crate::mmu::Access;
use crate::operand::{seg_index, Loc};
use crate::state::{flags, CS, DS, ES, FS, GS, RAX, RBX, RCX, RDX, SS};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

fn mov(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let v = cpu.read_op(bus, i, 1)?;
    cpu.write_op(bus, i, 0, v)
}

fn movzx(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let v = cpu.read_op(bus, i, 1)?;
    cpu.write_op(bus, i, 0, v)
}

fn movsx(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let src = Cpu::op_size(i, 1);
    let v = cpu.read_op(bus, i, 1)?;
    let shift = 64 - 8 * src as u32;
    cpu.write_op(bus, i, 0, (((v << shift) as i64) >> shift) as u64)
}

/// The segment register of a MOV Sreg form, or #UD for one this model lacks.
fn sreg_of(cpu: &Cpu, r: Register) -> Result<usize> {
    let seg = seg_index(r);
    if seg > GS || (cpu.model == CpuModel::I80286 && seg >= FS) {
        return Err(Exception::InvalidOpcode);
    }
    Ok(seg)
}

/// MOV r/m, Sreg: a register destination of 32/64 bits gets the selector
/// zero-extended; memory always receives 16 bits.
fn mov_from_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let seg = sreg_of(cpu, i.op_register(1))?;
    let sel = cpu.s.segs[seg].selector as u64;
    match i.op_kind(0) {
        OpKind::Register => {
            cpu.set_reg(i.op_register(0), sel);
            Ok(())
        }
        _ => {
            let (s, off) = cpu.mem_operand(i);
            cpu.write_mem(bus, s, off, 2, sel)
        }
    }
}

/// MOV Sreg, r/m. Loading CS this way is #UD; loading SS inhibits
/// interrupts until after the next instruction (SDM "MOV").
fn mov_to_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let seg = sreg_of(cpu, i.op_register(0))?;
    if seg == CS {
        return Err(Exception::InvalidOpcode);
    }
    let sel = match i.op_kind(1) {
        OpKind::Register => cpu.reg(i.op_register(1)),
        _ => {
            let (s, off) = cpu.mem_operand(i);
            cpu.read_mem(bus, s, off, 2)?
        }
    } as u16;
    cpu.load_seg(bus, seg, sel)?;
    if seg == SS {
        cpu.s.irq_shadow = 1;
        cpu.break_block = true;
    }
    Ok(())
}

fn lea(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if i.op_kind(1) != OpKind::Memory {
        return Err(Exception::InvalidOpcode);
    }
    let a = cpu.ea(i);
    cpu.set_reg(i.op_register(0), a);
    Ok(())
}

fn xchg(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let a = cpu.loc(i, 0, Access::Write)?;
    let b = cpu.loc(i, 1, Access::Write)?;
    let va = cpu.read_loc(bus, a, size)?;
    let vb = cpu.read_loc(bus, b, size)?;
    // Memory operand first so a fault leaves registers untouched.
    if let Loc::Mem(_) = b {
        cpu.write_loc(bus, b, size, va)?;
        cpu.write_loc(bus, a, size, vb)
    } else {
        cpu.write_loc(bus, a, size, vb)?;
        cpu.write_loc(bus, b, size, va & size_mask(size_log2(size)))
    }
}

/// XADD r/m, r: r/m = r/m + r, r = old r/m, flags of the addition.
fn xadd(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let m = size_mask(sz);
    let dst = cpu.loc(i, 0, Access::Write)?;
    let a = cpu.read_loc(bus, dst, size)?;
    let b = cpu.reg(i.op_register(1));
    let r = a.wrapping_add(b) & m;
    match dst {
        Loc::Mem(_) => {
            cpu.write_loc(bus, dst, size, r)?;
            cpu.set_reg(i.op_register(1), a);
        }
        Loc::Reg(d) => {
            // With the same register twice, the sum wins.
            cpu.set_reg(i.op_register(1), a);
            cpu.set_reg(d, r);
        }
    }
    cpu.s.set_cc(crate::flags::CC_ADD, sz, r, a, b);
    Ok(())
}

fn accumulator(size: usize) -> Register {
    match size {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    }
}

/// CMPXCHG r/m, r (SDM "CMPXCHG"): a memory destination is always written
/// (with its old value when the comparison fails).
fn cmpxchg(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let m = size_mask(sz);
    let dst = cpu.loc(i, 0, Access::Write)?;
    let d = cpu.read_loc(bus, dst, size)?;
    let acc = cpu.reg(accumulator(size));
    let src = cpu.reg(i.op_register(1));
    let equal = acc == d;
    match dst {
        Loc::Mem(_) => {
            cpu.write_loc(bus, dst, size, if equal { src } else { d })?;
            if !equal {
                cpu.set_reg(accumulator(size), d);
            }
        }
        Loc::Reg(r) => {
            if equal {
                cpu.set_reg(r, src);
            } else {
                cpu.set_reg(accumulator(size), d);
            }
        }
    }
    cpu.s.set_cc(CC_SUB, sz, acc.wrapping_sub(d) & m, acc, d);
    Ok(())
}

/// CMPXCHG8B m64 / CMPXCHG16B m128: only ZF changes.
fn cmpxchg_wide<const HALF: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if i.op_kind(0) != OpKind::Memory {
        return Err(Exception::InvalidOpcode);
    }
    let (seg, off) = cpu.mem_operand(i);
    let lin = cpu.seg_lin(seg, off, 2 * HALF, Access::Write)?;
    if HALF == 8 && lin & 15 != 0 {
        return Err(Exception::GP0);
    }
    let hi_lin = lin.wrapping_add(HALF as u64) & cpu.lin_mask();
    cpu.probe_write(bus, lin, 2 * HALF)?;
    let lo = cpu.read_lin(bus, lin, HALF)?;
    let hi = cpu.read_lin(bus, hi_lin, HALF)?;
    let m = size_mask(size_log2(HALF));
    let (a, d) = (cpu.s.gpr[RAX] & m, cpu.s.gpr[RDX] & m);
    let equal = lo == a && hi == d;
    let (wl, wh) = if equal {
        (cpu.s.gpr[RBX] & m, cpu.s.gpr[RCX] & m)
    } else {
        (lo, hi)
    };
    cpu.write_lin(bus, lin, HALF, wl)?;
    cpu.write_lin(bus, hi_lin, HALF, wh)?;
    if !equal {
        let (ra, rd) = if HALF == 4 {
            (Register::EAX, Register::EDX)
        } else {
            (Register::RAX, Register::RDX)
        };
        cpu.set_reg(ra, lo);
        cpu.set_reg(rd, hi);
    }
    cpu.s.set_flag_bits(flags::ZF, if equal { flags::ZF } else { 0 });
    Ok(())
}

/// XLAT: AL = [seg:(E/R)BX + AL]. iced encodes the operand as a memory
/// operand with base BX/EBX/RBX and index AL, so the address is the usual EA.
fn xlat(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let (seg, off) = cpu.mem_operand(i);
    let v = cpu.read_mem(bus, seg, off, 1)?;
    cpu.set_reg(Register::AL, v);
    Ok(())
}

/// CBW/CWDE/CDQE: sign-extend the low half of the accumulator into all of it.
fn cbw<const SIZE: usize>(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let half = SIZE * 4;
    let v = cpu.s.gpr[RAX];
    let ext = (((v << (64 - half)) as i64) >> (64 - half)) as u64;
    cpu.set_reg(accumulator(SIZE), ext);
    Ok(())
}

/// CWD/CDQ/CQO: fill DX/EDX/RDX with the sign of the accumulator.
fn cwd<const SIZE: usize>(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let bits = SIZE as u32 * 8;
    let neg = (cpu.s.gpr[RAX] >> (bits - 1)) & 1 != 0;
    let r = match SIZE {
        2 => Register::DX,
        4 => Register::EDX,
        _ => Register::RDX,
    };
    cpu.set_reg(r, if neg { u64::MAX } else { 0 });
    Ok(())
}

/// The flags LAHF/SAHF move: SF ZF AF PF CF.
const AH_FLAGS: u64 = flags::SF | flags::ZF | flags::AF | flags::PF | flags::CF;

fn lahf(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let f = (cpu.s.flags() & AH_FLAGS) | flags::FIXED1;
    cpu.set_reg(Register::AH, f);
    Ok(())
}

fn sahf(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let ah = cpu.reg(Register::AH);
    cpu.s.set_flag_bits(AH_FLAGS, ah);
    Ok(())
}

/// LDS/LES/LFS/LGS/LSS r, m16:16/32/64: offset first, selector after it.
fn load_far<const SEG: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if i.op_kind(1) != OpKind::Memory {
        return Err(Exception::InvalidOpcode);
    }
    let size = i.op_register(0).size();
    let (seg, off) = cpu.mem_operand(i);
    // Offset and selector are separate reads; the selector's offset wraps
    // within the address size (the 286 data confirms it at 0xFFFE).
    let v = cpu.read_mem(bus, seg, off, size)?;
    let sel_off = off.wrapping_add(size as u64) & addr_mask(i);
    let sel = cpu.read_mem(bus, seg, sel_off, 2)? as u16;
    cpu.load_seg(bus, SEG, sel)?;
    cpu.set_reg(i.op_register(0), v);
    Ok(())
}

/// Offset mask for the instruction's address size.
fn addr_mask(i: &Instruction) -> u64 {
    let base = i.memory_base();
    let index = i.memory_index();
    let r = if base != Register::None { base } else { index };
    match if r != Register::None {
        r.size()
    } else {
        i.memory_displ_size() as usize
    } {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

fn bswap(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let r = i.op_register(0);
    let v = cpu.reg(r);
    let out = match r.size() {
        // BSWAP of a 16-bit register is undefined; hardware clears it.
        2 => 0,
        4 => (v as u32).swap_bytes() as u64,
        _ => v.swap_bytes(),
    };
    cpu.set_reg(r, out);
    Ok(())
}

/// Moves whose operands include control, debug or test registers (system/ctrl.rs).
fn is_ctrl_mov(code: Code) -> bool {
    let name = format!("{code:?}");
    name.contains("_cr") || name.contains("_dr") || name.contains("_tr")
}

pub fn lookup(code: Code) -> Option<Handler> {
    let name = format!("{code:?}");
    Some(match code.mnemonic() {
        Mnemonic::Mov if name.starts_with("Mov_Sreg") => mov_to_sreg,
        Mnemonic::Mov if name.contains("_Sreg") => mov_from_sreg,
        Mnemonic::Mov if !is_ctrl_mov(code) => mov,
        Mnemonic::Movnti => mov,
        Mnemonic::Movzx => movzx,
        Mnemonic::Movsx | Mnemonic::Movsxd => movsx,
        Mnemonic::Lea => lea,
        Mnemonic::Xchg => xchg,
        Mnemonic::Xadd => xadd,
        Mnemonic::Cmpxchg => cmpxchg,
        Mnemonic::Cmpxchg8b => cmpxchg_wide::<4>,
        Mnemonic::Cmpxchg16b => cmpxchg_wide::<8>,
        Mnemonic::Xlatb => xlat,
        Mnemonic::Cbw => cbw::<2>,
        Mnemonic::Cwde => cbw::<4>,
        Mnemonic::Cdqe => cbw::<8>,
        Mnemonic::Cwd => cwd::<2>,
        Mnemonic::Cdq => cwd::<4>,
        Mnemonic::Cqo => cwd::<8>,
        Mnemonic::Lahf => lahf,
        Mnemonic::Sahf => sahf,
        Mnemonic::Lds => load_far::<DS>,
        Mnemonic::Les => load_far::<ES>,
        Mnemonic::Lfs => load_far::<FS>,
        Mnemonic::Lgs => load_far::<GS>,
        Mnemonic::Lss => load_far::<SS>,
        Mnemonic::Bswap => bswap,
        _ => return None,
    })
}
