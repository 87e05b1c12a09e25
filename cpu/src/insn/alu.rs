//! Two-operand arithmetic and logic (ADD OR ADC SBB AND SUB XOR CMP TEST) and
//! the one-operand ones (INC DEC NEG NOT). Flags are lazy (`flags.rs`).

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::flags::*;
use crate::mmu::Access;
use iced_x86::{Code, Instruction, Mnemonic};

const ADD: u8 = 0;
const OR: u8 = 1;
const ADC: u8 = 2;
const SBB: u8 = 3;
const AND: u8 = 4;
const SUB: u8 = 5;
const XOR: u8 = 6;
const CMP: u8 = 7;
const TEST: u8 = 8;

fn arith<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let m = size_mask(sz);
    let writes = OP != CMP && OP != TEST;
    let loc = cpu.loc(i, 0, if writes { Access::Write } else { Access::Read })?;
    let a = cpu.read_loc(bus, loc, size)?;
    let b = cpu.read_op(bus, i, 1)? & m;
    let (r, cc) = match OP {
        ADD => (a.wrapping_add(b), CC_ADD),
        ADC => (a.wrapping_add(b).wrapping_add(cpu.s.cf() as u64), CC_ADC),
        SUB | CMP => (a.wrapping_sub(b), CC_SUB),
        SBB => (a.wrapping_sub(b).wrapping_sub(cpu.s.cf() as u64), CC_SBB),
        AND | TEST => (a & b, CC_LOGIC),
        OR => (a | b, CC_LOGIC),
        _ => (a ^ b, CC_LOGIC),
    };
    let r = r & m;
    if writes {
        cpu.write_loc(bus, loc, size, r)?;
    }
    cpu.s.set_cc(cc, sz, r, a, b);
    Ok(())
}

const INC: u8 = 0;
const DEC: u8 = 1;
const NEG: u8 = 2;
const NOT: u8 = 3;

fn unary<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let m = size_mask(sz);
    let loc = cpu.loc(i, 0, Access::Write)?;
    let a = cpu.read_loc(bus, loc, size)?;
    let r = match OP {
        INC => a.wrapping_add(1),
        DEC => a.wrapping_sub(1),
        NEG => 0u64.wrapping_sub(a),
        _ => !a,
    } & m;
    let cf = cpu.s.cf() as u64;
    cpu.write_loc(bus, loc, size, r)?;
    match OP {
        INC => cpu.s.set_cc(CC_INC, sz, r, a, cf),
        DEC => cpu.s.set_cc(CC_DEC, sz, r, a, cf),
        NEG => cpu.s.set_cc(CC_SUB, sz, r, 0, a),
        _ => {}
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Add => arith::<ADD>,
        Mnemonic::Or => arith::<OR>,
        Mnemonic::Adc => arith::<ADC>,
        Mnemonic::Sbb => arith::<SBB>,
        Mnemonic::And => arith::<AND>,
        Mnemonic::Sub => arith::<SUB>,
        Mnemonic::Xor => arith::<XOR>,
        Mnemonic::Cmp => arith::<CMP>,
        Mnemonic::Test => arith::<TEST>,
        Mnemonic::Inc => unary::<INC>,
        Mnemonic::Dec => unary::<DEC>,
        Mnemonic::Neg => unary::<NEG>,
        Mnemonic::Not => unary::<NOT>,
        _ => return None,
    })
}
