//! x87 comparisons: FCOM/FCOMP/FCOMPP, FUCOM/FUCOMP/FUCOMPP, FICOM/FICOMP,
//! FCOMI/FCOMIP/FUCOMI/FUCOMIP (to EFLAGS), FTST and FXAM (SDM Vol. 2A).

use super::float80::*;
use super::stack::sti;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::state::flags;
use iced_x86::{Code, Instruction, OpKind};
use std::cmp::Ordering;

/// Compare two values: None = unordered. `quiet` (FUCOM) raises IE only
/// for SNaNs; FCOM raises it for any NaN. Unsupported encodings always IE.
pub fn compare(env: &mut Env, a: F80, b: F80, quiet: bool) -> Option<Ordering> {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        env.flags |= IE;
        return None;
    }
    if a.is_nan() || b.is_nan() {
        if !quiet || ca == Class::SNaN || cb == Class::SNaN {
            env.flags |= IE;
        }
        return None;
    }
    if ca == Class::Denormal || cb == Class::Denormal {
        env.flags |= DE;
    }
    Some(cmp_ordered(a, b))
}

fn cmp_ordered(a: F80, b: F80) -> Ordering {
    let (za, zb) = (a.class() == Class::Zero, b.class() == Class::Zero);
    if za && zb {
        return Ordering::Equal;
    }
    let key = |v: F80, z: bool| -> (bool, i32, u64) {
        if z {
            (false, i32::MIN, 0)
        } else if v.class() == Class::Inf {
            (v.sign(), i32::MAX, 0)
        } else {
            let (s, e, m) = v.unpack();
            (s, e, m)
        }
    };
    let (sa, ea, ma) = key(a, za);
    let (sb, eb, mb) = key(b, zb);
    let neg_a = sa && !za;
    let neg_b = sb && !zb;
    match (neg_a, neg_b) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (neg, _) => {
            let mag = (ea, ma).cmp(&(eb, mb));
            if neg {
                mag.reverse()
            } else {
                mag
            }
        }
    }
}

/// C3 C2 C0 for a compare result (SDM table 3-22 of FCOM).
fn set_cc(f: &mut crate::state::FpuState, r: Option<Ordering>) {
    let (c3, c2, c0) = match r {
        Some(Ordering::Greater) => (false, false, false),
        Some(Ordering::Less) => (false, false, true),
        Some(Ordering::Equal) => (true, false, false),
        None => (true, true, true),
    };
    f.set_cc(c0, false, c2, c3);
}

/// FCOM family writing C3/C2/C0. POPS = 0, 1 or 2.
fn fcom<const QUIET: bool, const POPS: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let mut env = Env::new(cpu.s.fpu.fcw);
    let mem = i.op_count() > 0 && i.op_kind(0) == OpKind::Memory;
    let mut mem_denormal = false;
    let (b, src) = if mem {
        let raw = cpu.read_op(bus, i, 0)?;
        let v = super::convert::mem_operand(i.memory_size(), raw);
        mem_denormal = super::convert::mem_is_denormal(i.memory_size(), raw);
        (v, None)
    } else {
        let s = match i.code() {
            Code::Fcompp | Code::Fucompp => 1,
            _ if i.op_count() >= 2 => sti(i.op1_register()),
            _ => 1,
        };
        (cpu.s.fpu.st(s), Some(s))
    };
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) || src.is_some_and(|s| f.is_empty(s)) {
        // Unordered even when the underflow is unmasked (then without pops).
        let masked = f.underflow();
        f.set_cc(true, false, true, true);
        if masked {
            for _ in 0..POPS {
                f.pop();
            }
        }
        return Ok(());
    }
    let a = f.st(0);
    let r = compare(&mut env, a, b, QUIET);
    if mem_denormal && !a.is_nan() && a.class() != Class::Unsupported && !b.is_nan() {
        env.flags |= DE;
    }
    // The condition codes are written even when the exception is unmasked;
    // the pops are not.
    set_cc(f, r);
    if f.raise(env.flags) {
        for _ in 0..POPS {
            f.pop();
        }
    }
    Ok(())
}

/// FCOMI/FUCOMI(P): ZF PF CF from the comparison, OF SF AF cleared.
fn fcomi<const QUIET: bool, const POP: bool>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let s = sti(i.op1_register());
    let f = &mut cpu.s.fpu;
    let r = if f.is_empty(0) || f.is_empty(s) {
        if f.underflow() && POP {
            f.pop();
        }
        None
    } else {
        let mut env = Env::new(f.fcw);
        let r = compare(&mut env, f.st(0), f.st(s), QUIET);
        // C1 is left alone by FCOMI/FUCOMI(P) on the host (unlike FCOM).
        if f.raise(env.flags) && POP {
            f.pop();
        }
        r
    };
    let bits = match r {
        Some(Ordering::Greater) => 0,
        Some(Ordering::Less) => flags::CF,
        Some(Ordering::Equal) => flags::ZF,
        None => flags::ZF | flags::PF | flags::CF,
    };
    cpu.s.set_flag_bits(flags::ARITH, bits);
    Ok(())
}

/// FTST: compare ST(0) with +0.0.
fn ftst(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) {
        f.underflow();
        f.set_cc(true, false, true, true);
        return Ok(());
    }
    let mut env = Env::new(f.fcw);
    let r = compare(&mut env, f.st(0), F80::ZERO, false);
    set_cc(f, r);
    f.raise(env.flags);
    Ok(())
}

/// FXAM: classify ST(0), even when empty; C1 = sign (SDM Vol. 2A, FXAM).
fn fxam(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    let v = f.st(0);
    let (c3, c2, c0) = if f.is_empty(0) {
        (true, false, true)
    } else {
        match v.class() {
            Class::Unsupported => (false, false, false),
            Class::QNaN | Class::SNaN => (false, false, true),
            Class::Normal => (false, true, false),
            Class::Inf => (false, true, true),
            Class::Zero => (true, false, false),
            Class::Denormal => (true, true, false),
        }
    };
    f.set_cc(c0, v.sign(), c2, c3);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    Some(match code {
        Fcom_m32fp | Fcom_m64fp | Fcom_st0_sti | Fcom_st0_sti_DCD0 | Ficom_m16int | Ficom_m32int => fcom::<false, 0>,
        Fcomp_m32fp | Fcomp_m64fp | Fcomp_st0_sti | Fcomp_st0_sti_DCD8 | Fcomp_st0_sti_DED0 | Ficomp_m16int | Ficomp_m32int => {
            fcom::<false, 1>
        }
        Fcompp => fcom::<false, 2>,
        Fucom_st0_sti => fcom::<true, 0>,
        Fucomp_st0_sti => fcom::<true, 1>,
        Fucompp => fcom::<true, 2>,
        Fcomi_st0_sti => fcomi::<false, false>,
        Fcomip_st0_sti => fcomi::<false, true>,
        Fucomi_st0_sti => fcomi::<true, false>,
        Fucomip_st0_sti => fcomi::<true, true>,
        Ftst => ftst,
        Fxam => fxam,
        _ => return None,
    })
}
