//! Instructions with no family: NOP and its long and reserved forms, HLT,
//! PAUSE, WAIT, UD0/UD1/UD2, the prefetch and cache-line hints, the fences
//! and ENDBR32/64.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::mmu::Access;
use crate::state::cr0;
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

fn nop(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Ok(())
}

fn ud(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Err(Exception::InvalidOpcode)
}

fn hlt(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.cpl != 0 {
        return Err(Exception::GP0);
    }
    cpu.s.halted = 1;
    cpu.break_block = true;
    Ok(())
}

/// WAIT/FWAIT (SDM "WAIT"): #NM if CR0.MP and CR0.TS are both set, #MF if
/// an unmasked x87 exception is pending (FSW.ES) and CR0.NE is set.
fn wait(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.cr0 & (cr0::MP | cr0::TS) == cr0::MP | cr0::TS {
        return Err(Exception::DeviceNotAvailable);
    }
    if cpu.s.fpu.fsw & 0x80 != 0 && cpu.s.cr0 & cr0::NE != 0 {
        return Err(Exception::FloatingPoint);
    }
    Ok(())
}

/// CLFLUSH/CLFLUSHOPT/CLWB: nothing to flush, but the address must be one
/// a byte load could use (segment checks and page faults apply).
fn cache_line_op(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if i.op_kind(0) != OpKind::Memory {
        return Err(Exception::InvalidOpcode);
    }
    let (seg, off) = cpu.mem_operand(i);
    let lin = cpu.seg_lin(seg, off, 1, Access::Read)?;
    cpu.translate(bus, lin, Access::Read)?;
    Ok(())
}

/// The reserved-NOP space: 0F 0D (the PREFETCH group) takes only memory
/// operands, so its register forms are #UD (as on the differential tester's
/// host); other reserved NOPs do nothing.
fn reserved_nop(_: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let name = format!("{:?}", i.code());
    if i.op_kind(0) == OpKind::Register && name.ends_with("0F0D") {
        return Err(Exception::InvalidOpcode);
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    let name = format!("{code:?}");
    Some(match code.mnemonic() {
        Mnemonic::Reservednop if name.ends_with("0F0D") => reserved_nop,
        Mnemonic::Nop | Mnemonic::Pause | Mnemonic::Reservednop => nop,
        Mnemonic::Endbr32 | Mnemonic::Endbr64 => nop,
        Mnemonic::Lfence | Mnemonic::Sfence | Mnemonic::Mfence => nop,
        // Prefetch hints never fault.
        Mnemonic::Prefetch | Mnemonic::Prefetchnta | Mnemonic::Prefetcht0 | Mnemonic::Prefetcht1 | Mnemonic::Prefetcht2 => nop,
        Mnemonic::Prefetchw | Mnemonic::Prefetchwt1 => nop,
        Mnemonic::Clflush | Mnemonic::Clflushopt | Mnemonic::Clwb => cache_line_op,
        Mnemonic::Ud0 | Mnemonic::Ud1 | Mnemonic::Ud2 => ud,
        Mnemonic::Hlt => hlt,
        Mnemonic::Wait => wait,
        _ => return None,
    })
}
