//! Data movement between registers and memory: MOV, MOVZX, MOVSX(D), LEA,
//! XCHG. Moves to and from segment, control and debug registers belong to
//! `system/`.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::flags::size_mask;
use crate::mmu::Access;
use iced_x86::{Code, Instruction, Mnemonic};

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

fn lea(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
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
    if let crate::operand::Loc::Mem(_) = b {
        cpu.write_loc(bus, b, size, va)?;
        cpu.write_loc(bus, a, size, vb)
    } else {
        cpu.write_loc(bus, a, size, vb)?;
        cpu.write_loc(bus, b, size, va & size_mask(crate::flags::size_log2(size)))
    }
}

/// Moves whose operands include segment, control, debug or test registers.
fn is_system_mov(code: Code) -> bool {
    let name = format!("{code:?}");
    name.contains("Sreg") || name.contains("_cr") || name.contains("_dr") || name.contains("_tr")
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Mov if !is_system_mov(code) => mov,
        Mnemonic::Movzx => movzx,
        Mnemonic::Movsx | Mnemonic::Movsxd => movsx,
        Mnemonic::Lea => lea,
        Mnemonic::Xchg => xchg,
        _ => return None,
    })
}
