//! The stack: PUSH/POP of registers, memory, immediates and segment
//! registers, PUSHA/POPA, PUSHF/POPF (with the privilege rules of SDM Vol. 2B
//! "POPF"), ENTER and LEAVE. `Cpu::push/pop/peek` (interrupt.rs) honour SS.B
//! and 64-bit mode.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel};
use crate::exception::{Exception, Result};
use crate::interrupt::sp_mask;
use crate::mmu::Access;
use crate::operand::seg_index;
use crate::state::{cr4, flags, Mode, RBP, RSP, SS};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

/// Bytes one push or pop of this code moves the stack pointer by.
pub(crate) fn sp_step(code: Code) -> usize {
    let mut i = Instruction::default();
    i.set_code(code);
    match i.stack_pointer_increment().unsigned_abs() as usize {
        16 if matches!(code, Code::Pushaw | Code::Popaw) => 2,
        32 => 4,
        0 => 2,
        n => n,
    }
}

/// Pick the instantiation of a handler generic over the operand size.
macro_rules! sized {
    ($f:ident, $size:expr) => {
        match $size {
            2 => $f::<2> as Handler,
            4 => $f::<4> as Handler,
            _ => $f::<8> as Handler,
        }
    };
}

fn push<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    // PUSH SP pushes the value SP had before the push (SDM "PUSH", and the 286).
    let v = match i.op_kind(0) {
        OpKind::Register => {
            let r = i.op_register(0);
            if r.is_segment_register() {
                let seg = seg_index(r);
                if cpu.model == CpuModel::I80286 && seg > 3 {
                    return Err(Exception::InvalidOpcode);
                }
                let sel = cpu.s.segs[seg].selector as u64;
                if SIZE > 2 {
                    // Recent processors write only the selector's 16 bits and
                    // leave the rest of the slot alone (SDM "PUSH").
                    let ss = cpu.stack_size();
                    let new_sp = cpu.s.gpr[RSP].wrapping_sub(SIZE as u64) & sp_mask(ss);
                    let lin = cpu.seg_lin(SS, new_sp, SIZE, Access::Write)?;
                    cpu.probe_write(bus, lin, SIZE)?;
                    cpu.write_lin(bus, lin, 2, sel)?;
                    cpu.set_sp(new_sp, ss);
                    return Ok(());
                }
                sel
            } else {
                cpu.reg(r)
            }
        }
        _ => cpu.read_op(bus, i, 0)?,
    };
    cpu.push(bus, v, SIZE)
}

fn pop<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let v = cpu.peek(bus, 0, SIZE)?;
    let ss = cpu.stack_size();
    let old_sp = cpu.s.gpr[RSP];
    match i.op_kind(0) {
        OpKind::Register => {
            let r = i.op_register(0);
            if r.is_segment_register() {
                let seg = seg_index(r);
                if seg == crate::state::CS || (cpu.model == CpuModel::I80286 && seg > 3) {
                    return Err(Exception::InvalidOpcode);
                }
                cpu.load_seg(bus, seg, v as u16)?;
                cpu.set_sp(old_sp.wrapping_add(SIZE as u64), ss);
                if seg == SS {
                    cpu.s.irq_shadow = 1;
                    cpu.break_block = true;
                }
            } else {
                cpu.set_sp(old_sp.wrapping_add(SIZE as u64), ss);
                cpu.set_reg(r, v);
            }
            Ok(())
        }
        _ => {
            // The address of POP [mem] is computed with the incremented SP (SDM "POP").
            cpu.set_sp(old_sp.wrapping_add(SIZE as u64), ss);
            if let Err(e) = cpu.write_op(bus, i, 0, v) {
                // The 286 keeps the incremented SP when the store faults (SST data).
                if cpu.model != CpuModel::I80286 {
                    cpu.s.gpr[RSP] = old_sp;
                }
                return Err(e);
            }
            Ok(())
        }
    }
}

/// PUSHA/PUSHAD: AX CX DX BX (original SP) BP SI DI.
fn pusha<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let ss = cpu.stack_size();
    let sp = cpu.s.gpr[RSP];
    let m = crate::flags::size_mask(crate::flags::size_log2(SIZE));
    // Nothing is written if any of the eight slots faults (286 data).
    for k in 0..8 {
        let off = sp.wrapping_sub(((k + 1) * SIZE) as u64) & sp_mask(ss);
        let lin = cpu.seg_lin(SS, off, SIZE, Access::Write)?;
        cpu.probe_write(bus, lin, SIZE)?;
    }
    for k in 0..8 {
        let v = if k == RSP { sp } else { cpu.s.gpr[k] } & m;
        let off = sp.wrapping_sub(((k + 1) * SIZE) as u64) & sp_mask(ss);
        cpu.write_mem(bus, SS, off, SIZE, v)?;
    }
    cpu.set_sp(sp.wrapping_sub(8 * SIZE as u64), ss);
    Ok(())
}

/// POPA/POPAD: DI SI BP (skip SP) BX DX CX AX.
fn popa<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let mut vals = [0u64; 8];
    for (n, v) in vals.iter_mut().enumerate() {
        *v = cpu.peek(bus, (n * SIZE) as u64, SIZE)?;
    }
    for (n, &v) in vals.iter().enumerate() {
        let k = 7 - n;
        if k == RSP {
            continue;
        }
        cpu.set_reg(if SIZE == 2 { R16[k] } else { R32[k] }, v);
    }
    let ss = cpu.stack_size();
    cpu.set_sp(cpu.s.gpr[RSP].wrapping_add(8 * SIZE as u64), ss);
    Ok(())
}

const R16: [Register; 8] = [
    Register::AX,
    Register::CX,
    Register::DX,
    Register::BX,
    Register::SP,
    Register::BP,
    Register::SI,
    Register::DI,
];
const R32: [Register; 8] = [
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::ESP,
    Register::EBP,
    Register::ESI,
    Register::EDI,
];

/// PUSHF/PUSHFD/PUSHFQ.
fn pushf<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let mut v = cpu.flags_for_push();
    if cpu.s.mode == Mode::V86 && cpu.s.rflags & flags::IOPL != flags::IOPL {
        // SDM "PUSHF": V86 with IOPL < 3 faults unless VME virtualises IF (16-bit only).
        if SIZE != 2 || cpu.s.cr4 & cr4::VME == 0 {
            return Err(Exception::GP0);
        }
        v = (v & !flags::IF) | if cpu.s.rflags & flags::VIF != 0 { flags::IF } else { 0 } | flags::IOPL;
    }
    if SIZE == 4 {
        // VM and RF read as 0 in the image (flags_for_push already clears them).
        v &= 0x00fc_ffff;
    }
    cpu.push(bus, v, SIZE)
}

/// POPF/POPFD/POPFQ (SDM Vol. 2B "POPF"): IOPL changes only at CPL 0, IF only
/// if CPL <= IOPL; VM, VIF and VIP are never changed and RF is cleared; in
/// V86 mode with IOPL < 3 it faults (or, with CR4.VME, moves IF to VIF).
fn popf<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let v = cpu.peek(bus, 0, SIZE)?;
    let cur = cpu.s.flags();
    let iopl = (cur & flags::IOPL) >> 12;
    let mut mask = flags::ARITH | flags::TF | flags::DF | flags::NT | flags::AC | flags::ID;
    let mut new = v;
    match cpu.s.mode {
        Mode::V86 => {
            if iopl == 3 {
                mask |= flags::IF;
            } else if SIZE == 2 && cpu.s.cr4 & cr4::VME != 0 {
                if v & flags::TF != 0 || (v & flags::IF != 0 && cur & flags::VIP != 0) {
                    return Err(Exception::GP0);
                }
                mask |= flags::VIF;
                new = (new & !flags::VIF) | if v & flags::IF != 0 { flags::VIF } else { 0 };
            } else {
                return Err(Exception::GP0);
            }
        }
        _ => {
            if cpu.s.cpl == 0 {
                mask |= flags::IOPL;
            }
            if cpu.s.cpl as u64 <= iopl {
                mask |= flags::IF;
            }
        }
    }
    if SIZE == 2 {
        mask &= 0xffff | if cpu.s.mode == Mode::V86 { flags::VIF } else { 0 };
    }
    if cpu.model == CpuModel::I80286 {
        // FLAGS 12..15 always read 0 on a 286 in real mode.
        mask &= 0x0fff;
    }
    let ss = cpu.stack_size();
    cpu.set_sp(cpu.s.gpr[RSP].wrapping_add(SIZE as u64), ss);
    cpu.s.set_flags(((cur & !mask) | (new & mask)) & !flags::RF);
    // IF or TF may have changed: interrupts and single-step are checked at block ends.
    cpu.break_block = true;
    Ok(())
}

/// ENTER imm16, imm8 (SDM Vol. 2A "ENTER"), all nesting levels.
fn enter<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let alloc = i.immediate16() as u64;
    let level = (i.immediate8_2nd() & 31) as u64;
    let ss = cpu.stack_size();
    let m = sp_mask(ss);
    let sz = SIZE as u64;
    let sp0 = cpu.s.gpr[RSP];
    let bp0 = cpu.s.gpr[RBP];
    // Compute every access first so that a fault changes no register.
    let mut sp = sp0.wrapping_sub(sz) & m;
    cpu.write_mem(bus, SS, sp, SIZE, bp0)?;
    let frame = sp;
    if level > 0 {
        let mut bp = bp0;
        for _ in 1..level {
            bp = bp.wrapping_sub(sz) & m;
            let v = cpu.read_mem(bus, SS, bp, SIZE)?;
            sp = sp.wrapping_sub(sz) & m;
            cpu.write_mem(bus, SS, sp, SIZE, v)?;
        }
        sp = sp.wrapping_sub(sz) & m;
        cpu.write_mem(bus, SS, sp, SIZE, frame)?;
    }
    let new_sp = sp.wrapping_sub(alloc) & m;
    if alloc != 0 && cpu.s.mode != Mode::Long64 {
        // The new top of stack must lie inside SS.
        cpu.seg_lin(SS, new_sp, 1, Access::Write)?;
    }
    match SIZE {
        2 => cpu.set_reg(Register::BP, frame),
        4 => cpu.set_reg(Register::EBP, frame),
        _ => cpu.s.gpr[RBP] = frame,
    }
    cpu.set_sp(new_sp, ss);
    Ok(())
}

/// LEAVE: SP = BP, then pop BP.
fn leave<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let ss = cpu.stack_size();
    let bp = cpu.s.gpr[RBP] & sp_mask(ss);
    let v = cpu.read_mem(bus, SS, bp, SIZE)?;
    cpu.set_sp(bp.wrapping_add(SIZE as u64), ss);
    match SIZE {
        2 => cpu.set_reg(Register::BP, v),
        4 => cpu.set_reg(Register::EBP, v),
        _ => cpu.s.gpr[RBP] = v,
    }
    Ok(())
}

fn leave_size(code: Code) -> usize {
    match code {
        Code::Leavew => 2,
        Code::Leaved => 4,
        _ => 8,
    }
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Push => sized!(push, sp_step(code)),
        Mnemonic::Pop => sized!(pop, sp_step(code)),
        Mnemonic::Pusha | Mnemonic::Pushad => sized!(pusha, sp_step(code)),
        Mnemonic::Popa | Mnemonic::Popad => sized!(popa, sp_step(code)),
        Mnemonic::Pushf | Mnemonic::Pushfd | Mnemonic::Pushfq => sized!(pushf, sp_step(code)),
        Mnemonic::Popf | Mnemonic::Popfd | Mnemonic::Popfq => sized!(popf, sp_step(code)),
        Mnemonic::Enter => sized!(enter, sp_step(code)),
        Mnemonic::Leave => sized!(leave, leave_size(code)),
        _ => return None,
    })
}
