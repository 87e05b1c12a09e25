//! Single-flag instructions: CLC STC CMC CLD STD CLI STI. CLI/STI follow the
//! IOPL, VME and PVI rules of SDM Vol. 2A "CLI" and Vol. 2B "STI".

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::state::{cr4, flags, Mode};
use iced_x86::{Code, Instruction, Mnemonic};

fn clc(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.s.set_flag_bits(flags::CF, 0);
    Ok(())
}

fn stc(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.s.set_flag_bits(flags::CF, flags::CF);
    Ok(())
}

fn cmc(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let cf = cpu.s.cf();
    cpu.s.set_flag_bits(flags::CF, if cf { 0 } else { flags::CF });
    Ok(())
}

fn cld(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.s.rflags &= !flags::DF;
    Ok(())
}

fn std_(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.s.rflags |= flags::DF;
    Ok(())
}

/// Which flag CLI/STI act on in the current mode, or #GP(0).
fn interrupt_flag_target(cpu: &Cpu) -> Result<u64> {
    let iopl = (cpu.s.rflags & flags::IOPL) >> 12;
    match cpu.s.mode {
        Mode::Real => Ok(flags::IF),
        Mode::V86 => {
            if iopl == 3 {
                Ok(flags::IF)
            } else if cpu.s.cr4 & cr4::VME != 0 {
                Ok(flags::VIF)
            } else {
                Err(Exception::GP0)
            }
        }
        _ => {
            if cpu.s.cpl as u64 <= iopl {
                Ok(flags::IF)
            } else if cpu.s.cpl == 3 && cpu.s.cr4 & cr4::PVI != 0 && iopl < 3 {
                Ok(flags::VIF)
            } else {
                Err(Exception::GP0)
            }
        }
    }
}

fn cli(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let f = interrupt_flag_target(cpu)?;
    cpu.s.rflags &= !f;
    Ok(())
}

fn sti(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let f = interrupt_flag_target(cpu)?;
    if f == flags::VIF && cpu.s.rflags & flags::VIP != 0 {
        // A virtual interrupt is pending: the monitor must see it.
        return Err(Exception::GP0);
    }
    if f == flags::IF && cpu.s.rflags & flags::IF == 0 {
        // Interrupts stay blocked until after the next instruction.
        cpu.s.irq_shadow = 1;
        cpu.break_block = true;
    }
    cpu.s.rflags |= f;
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Clc => clc,
        Mnemonic::Stc => stc,
        Mnemonic::Cmc => cmc,
        Mnemonic::Cld => cld,
        Mnemonic::Std => std_,
        Mnemonic::Cli => cli,
        Mnemonic::Sti => sti,
        _ => return None,
    })
}
