//! Port I/O: IN and OUT. (INS/OUTS are string instructions.) The I/O
//! permission check (IOPL, TSS bitmap) is `Cpu::check_io`, in system/task.rs.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

fn port(cpu: &Cpu, i: &Instruction, n: u32) -> u16 {
    if i.op_kind(n) == OpKind::Register {
        cpu.reg(Register::DX) as u16
    } else {
        i.immediate(n) as u16
    }
}

fn in_(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let p = port(cpu, i, 1);
    let size = i.op_register(0).size();
    cpu.check_io(bus, p, size)?;
    let v = cpu.port_in(bus, p, size as u8);
    cpu.set_reg(i.op_register(0), v as u64);
    Ok(())
}

fn out(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let p = port(cpu, i, 0);
    let size = i.op_register(1).size();
    cpu.check_io(bus, p, size)?;
    let v = cpu.reg(i.op_register(1));
    cpu.port_out(bus, p, size as u8, v as u32);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::In => in_,
        Mnemonic::Out => out,
        _ => return None,
    })
}
