//! Near control transfer: JMP, Jcc, CALL, RET, LOOP/LOOPcc, JCXZ/JECXZ/JRCXZ.
//! Far transfers are in `system/far.rs`.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::seg::canonical;
use crate::state::{Mode, CS, RCX};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

impl Cpu {
    /// Set RIP to a near branch target, with the CS-limit (or canonical) check.
    #[inline]
    pub fn branch_near(&mut self, target: u64) -> Result<()> {
        if self.s.mode == Mode::Long64 {
            if !canonical(target) {
                return Err(Exception::GP0);
            }
        } else if target > self.s.segs[CS].limit as u64 {
            return Err(Exception::GP0);
        }
        self.s.rip = target;
        Ok(())
    }
}

/// Operand size of a near branch (for masking an indirect target).
fn target(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<u64> {
    match i.op_kind(0) {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => Ok(i.near_branch_target()),
        _ => cpu.read_op(bus, i, 0),
    }
}

fn jmp(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let t = target(cpu, bus, i)?;
    cpu.branch_near(t)
}

fn jcc(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let cc = i.condition_code() as u8 - 1;
    if cpu.s.cond(cc) {
        cpu.branch_near(i.near_branch_target())?;
    }
    Ok(())
}

/// Operand size of CALL/RET from the code: 2, 4 or 8 bytes (what it pushes or pops).
fn branch_size(code: Code) -> usize {
    super::stack::sp_step(code)
}

fn call<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let t = target(cpu, bus, i)?;
    let ret = cpu.s.rip;
    let saved = cpu.s.rip;
    cpu.branch_near(t)?;
    if let Err(e) = cpu.push(bus, ret, SIZE) {
        cpu.s.rip = saved;
        return Err(e);
    }
    Ok(())
}

fn ret<const SIZE: usize>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let t = cpu.peek(bus, 0, SIZE)?;
    cpu.branch_near(t)?;
    let release = if i.op_count() > 0 { i.immediate16() as u64 } else { 0 };
    let ss = cpu.stack_size();
    let sp = cpu.s.gpr[crate::state::RSP].wrapping_add(SIZE as u64 + release);
    cpu.set_sp(sp, ss);
    Ok(())
}

/// LOOP/LOOPE/LOOPNE/JCXZ with a counter of `CNT` bytes. KIND: 0 LOOP,
/// 1 LOOPE, 2 LOOPNE, 3 JrCXZ.
fn loop_<const CNT: usize, const KIND: u8>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mask = crate::flags::size_mask(crate::flags::size_log2(CNT));
    let c = cpu.s.gpr[RCX] & mask;
    let take = if KIND == 3 {
        c == 0
    } else {
        let c = c.wrapping_sub(1) & mask;
        let g = &mut cpu.s.gpr[RCX];
        *g = if CNT == 4 { c } else { (*g & !mask) | c };
        c != 0
            && match KIND {
                1 => cpu.s.zf(),
                2 => !cpu.s.zf(),
                _ => true,
            }
    };
    if take {
        cpu.branch_near(i.near_branch_target())?;
    }
    Ok(())
}

fn counter_size(code: Code) -> usize {
    let n = format!("{code:?}");
    if n.ends_with("RCX") {
        8
    } else if n.ends_with("ECX") {
        4
    } else {
        2
    }
}

macro_rules! loop_handler {
    ($kind:expr, $code:expr) => {
        match counter_size($code) {
            2 => loop_::<2, $kind>,
            4 => loop_::<4, $kind>,
            _ => loop_::<8, $kind>,
        }
    };
}

pub fn lookup(code: Code) -> Option<Handler> {
    let name = format!("{code:?}");
    let far = name.contains("ptr16") || name.contains("_m16") || name.starts_with("Retf");
    if far {
        return None;
    }
    Some(match code.mnemonic() {
        Mnemonic::Jmp => jmp,
        Mnemonic::Jo | Mnemonic::Jno | Mnemonic::Jb | Mnemonic::Jae | Mnemonic::Je | Mnemonic::Jne | Mnemonic::Jbe | Mnemonic::Ja => jcc,
        Mnemonic::Js | Mnemonic::Jns | Mnemonic::Jp | Mnemonic::Jnp | Mnemonic::Jl | Mnemonic::Jge | Mnemonic::Jle | Mnemonic::Jg => jcc,
        Mnemonic::Call => match branch_size(code) {
            2 => call::<2>,
            4 => call::<4>,
            _ => call::<8>,
        },
        Mnemonic::Ret => match branch_size(code) {
            2 => ret::<2>,
            4 => ret::<4>,
            _ => ret::<8>,
        },
        Mnemonic::Loop => loop_handler!(0, code),
        Mnemonic::Loope => loop_handler!(1, code),
        Mnemonic::Loopne => loop_handler!(2, code),
        Mnemonic::Jcxz => loop_::<2, 3>,
        Mnemonic::Jecxz => loop_::<4, 3>,
        Mnemonic::Jrcxz => loop_::<8, 3>,
        _ => return None,
    })
}
