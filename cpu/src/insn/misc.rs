//! Instructions with no family: NOP and its long forms, HLT, PAUSE.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use iced_x86::{Code, Instruction, Mnemonic};

fn nop(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Ok(())
}

fn hlt(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.cpl != 0 {
        return Err(Exception::GP0);
    }
    cpu.s.halted = 1;
    cpu.break_block = true;
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Nop | Mnemonic::Pause => nop,
        Mnemonic::Hlt => hlt,
        _ => return None,
    })
}
