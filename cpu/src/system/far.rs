//! Far control transfers and software interrupts: JMP/CALL far, RETF, IRET,
//! INT n, INT3, INTO, INT1, BOUND. Real mode is handled here; every other
//! mode goes to the `*_protected` functions of `system/protfar.rs`.
//!
//! INT n, INT3 and INTO are traps: the handler returns the exception and
//! the executor delivers it with RIP after the instruction (`interrupt.rs`).

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel};
use crate::exception::{Exception, Result};
use crate::interrupt::sp_mask;
use crate::state::{cr4, flags, Mode, CS, RSP};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

/// Operand size (bytes of the offset) of a far transfer from its code.
fn far_size(code: Code) -> usize {
    let name = format!("{code:?}");
    if name.ends_with("1616") || name.ends_with("w") || name.ends_with("w_imm16") || name == "Iretw" {
        2
    } else if name.ends_with("1632") || name.ends_with("d") || name.ends_with("d_imm16") {
        4
    } else {
        8
    }
}

/// The far pointer of a JMP/CALL far: immediate ptr16:16/32 or m16:16/32/64.
fn far_target(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction, size: usize) -> Result<(u16, u64)> {
    match i.op_kind(0) {
        OpKind::FarBranch16 => Ok((i.far_branch_selector(), i.far_branch16() as u64)),
        OpKind::FarBranch32 => Ok((i.far_branch_selector(), i.far_branch32() as u64)),
        OpKind::Memory => {
            let (seg, off) = cpu.mem_operand(i);
            let ip = cpu.read_mem(bus, seg, off, size)?;
            let sel_off = off.wrapping_add(size as u64) & addr_mask(cpu, i);
            let sel = cpu.read_mem(bus, seg, sel_off, 2)? as u16;
            Ok((sel, ip))
        }
        // FF /3 and FF /5 with a register operand.
        _ => Err(Exception::InvalidOpcode),
    }
}

fn addr_mask(cpu: &Cpu, i: &Instruction) -> u64 {
    let r = if i.memory_base() != iced_x86::Register::None {
        i.memory_base()
    } else {
        i.memory_index()
    };
    let size = if r != iced_x86::Register::None {
        r.size()
    } else if cpu.s.mode == Mode::Long64 {
        8
    } else {
        i.memory_displ_size() as usize
    };
    match size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// Real-mode CS:IP load with the limit check of the (unchanged) CS limit.
fn real_jump(cpu: &mut Cpu, sel: u16, off: u64) -> Result<()> {
    if off > cpu.s.segs[CS].limit as u64 {
        return Err(Exception::GP0);
    }
    cpu.load_real_seg(CS, sel);
    cpu.s.rip = off;
    Ok(())
}

fn jmp_far(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = far_size(i.code());
    let (sel, off) = far_target(cpu, bus, i, size)?;
    cpu.break_block = true;
    if cpu.s.mode == Mode::Real {
        return real_jump(cpu, sel, off);
    }
    cpu.far_jump_protected(bus, sel, off, size)
}

fn call_far(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = far_size(i.code());
    let (sel, off) = far_target(cpu, bus, i, size)?;
    cpu.break_block = true;
    if cpu.s.mode != Mode::Real {
        return cpu.far_call_protected(bus, sel, off, size);
    }
    if off > cpu.s.segs[CS].limit as u64 {
        return Err(Exception::GP0);
    }
    let sp = cpu.s.gpr[RSP];
    let cs = cpu.s.segs[CS].selector as u64;
    let ip = cpu.s.rip;
    cpu.push(bus, cs, size)?;
    if let Err(e) = cpu.push(bus, ip, size) {
        cpu.s.gpr[RSP] = sp;
        return Err(e);
    }
    cpu.load_real_seg(CS, sel);
    cpu.s.rip = off;
    Ok(())
}

fn retf(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = far_size(i.code());
    let release = if i.op_count() > 0 { i.immediate16() } else { 0 };
    cpu.break_block = true;
    if cpu.s.mode != Mode::Real {
        return cpu.far_ret_protected(bus, size, release);
    }
    let ip = cpu.peek(bus, 0, size)?;
    let cs = cpu.peek(bus, size as u64, 2)? as u16;
    if ip > cpu.s.segs[CS].limit as u64 {
        return Err(Exception::GP0);
    }
    let ss = cpu.stack_size();
    let sp = cpu.s.gpr[RSP].wrapping_add(2 * size as u64 + release as u64);
    cpu.set_sp(sp & sp_mask(ss), ss);
    cpu.load_real_seg(CS, cs);
    cpu.s.rip = ip;
    Ok(())
}

/// IRET/IRETD in real mode (SDM "IRET", real-address-mode branch).
fn iret(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = far_size(i.code());
    cpu.break_block = true;
    if cpu.s.mode != Mode::Real {
        return cpu.iret_protected(bus, size);
    }
    let ip = cpu.peek(bus, 0, size)?;
    let cs = cpu.peek(bus, size as u64, 2)? as u16;
    let fl = cpu.peek(bus, 2 * size as u64, size)?;
    if ip > cpu.s.segs[CS].limit as u64 {
        return Err(Exception::GP0);
    }
    let ss = cpu.stack_size();
    cpu.set_sp(cpu.s.gpr[RSP].wrapping_add(3 * size as u64), ss);
    cpu.load_real_seg(CS, cs);
    cpu.s.rip = ip;
    let cur = cpu.s.flags();
    let new = if size == 2 {
        let mut m = 0xffffu64;
        if cpu.model == CpuModel::I80286 {
            // FLAGS 12..15 always read 0 on a 286 in real mode.
            m = 0x0fff;
        }
        (cur & !0xffff) | (fl & m)
    } else {
        // EFLAGS = popped AND 257FD5h OR (EFLAGS AND 1A0000h).
        (fl & 0x0025_7fd5) | (cur & 0x001a_0000)
    };
    cpu.s.set_flags(new);
    cpu.s.nmi_blocked = 0;
    Ok(())
}

fn int_n(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    // SDM "INT n": in V86 mode with IOPL < 3 and no VME redirection, #GP(0).
    if cpu.s.mode == Mode::V86 && cpu.s.rflags & flags::IOPL != flags::IOPL && cpu.s.cr4 & cr4::VME == 0 {
        return Err(Exception::GP0);
    }
    Err(Exception::SoftwareInterrupt(i.immediate8()))
}

fn int3(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Err(Exception::Breakpoint)
}

fn into(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.of() {
        return Err(Exception::Overflow);
    }
    Ok(())
}

/// INT1 (ICEBP, F1): a #DB trap delivered like INT 1, pointing after the instruction.
fn int1(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Err(Exception::SoftwareInterrupt(1))
}

/// BOUND r, m: #BR unless lower <= r <= upper (signed).
fn bound(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if i.op_kind(1) != OpKind::Memory {
        return Err(Exception::InvalidOpcode);
    }
    let size = i.op_register(0).size();
    let (seg, off) = cpu.mem_operand(i);
    let lo = cpu.read_mem(bus, seg, off, size)?;
    let hi_off = off.wrapping_add(size as u64) & addr_mask(cpu, i);
    let hi = cpu.read_mem(bus, seg, hi_off, size)?;
    let v = cpu.reg(i.op_register(0));
    let sx = |x: u64| {
        if size == 2 {
            x as u16 as i16 as i64
        } else {
            x as u32 as i32 as i64
        }
    };
    if sx(v) < sx(lo) || sx(v) > sx(hi) {
        return Err(Exception::BoundRange);
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    let name = format!("{code:?}");
    let far = name.contains("ptr16") || name.contains("_m16") || name.starts_with("Retf");
    Some(match code.mnemonic() {
        Mnemonic::Jmp if far => jmp_far,
        Mnemonic::Call if far => call_far,
        Mnemonic::Retf => retf,
        Mnemonic::Iret | Mnemonic::Iretd | Mnemonic::Iretq => iret,
        Mnemonic::Int => int_n,
        Mnemonic::Int3 => int3,
        Mnemonic::Into => into,
        Mnemonic::Int1 => int1,
        Mnemonic::Bound => bound,
        _ => return None,
    })
}
