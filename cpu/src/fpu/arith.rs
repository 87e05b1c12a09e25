//! x87 arithmetic: FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR in all their forms
//! (register, P, m32/m64, FIxxx m16/m32), FSQRT, FPREM/FPREM1, FRNDINT,
//! FSCALE, FXTRACT, FCHS, FABS. Special operands follow SDM Vol. 1, 4.8.3
//! and table 4-7 (NaN propagation), and each instruction's table in Vol. 2.

use super::float80::*;
use super::stack::{sti, C0, C1, C2, C3};
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// The NaN an operation with NaN operand(s) returns, and whether IE is
/// raised (an SNaN operand). SDM Vol. 1, table 4-7.
pub fn propagate_nan(a: F80, b: F80) -> (F80, bool) {
    let (ca, cb) = (a.class(), b.class());
    let snan = ca == Class::SNaN || cb == Class::SNaN;
    let r = match (a.is_nan(), b.is_nan()) {
        (true, false) => a,
        (false, true) => b,
        _ => {
            if ca == Class::SNaN && cb == Class::QNaN {
                b
            } else if ca == Class::QNaN && cb == Class::SNaN {
                a
            } else {
                // Both quiet or both signalling: the larger significand.
                let ma = a.sig | (1 << 62);
                let mb = b.sig | (1 << 62);
                if ma > mb || (ma == mb && a.se <= b.se) {
                    a
                } else {
                    b
                }
            }
        }
    };
    (r.quiet(), snan)
}

/// Pre-screen operands: unsupported encodings and NaNs decide the result
/// alone. Returns Some(result) if the operation is done.
pub(super) fn screen(env: &mut Env, ops: &[F80]) -> Option<F80> {
    if ops.iter().any(|v| v.class() == Class::Unsupported) {
        env.flags |= IE;
        return Some(F80::INDEFINITE);
    }
    if ops.iter().any(|v| v.is_nan()) {
        // One operand: it is both sides; two: the x87 rules pick.
        let (r, snan) = propagate_nan(ops[0], *ops.last().unwrap());
        if snan {
            env.flags |= IE;
        }
        return Some(r);
    }
    None
}

/// The denormal-operand check, which ranks below invalid operations and
/// division by zero (SDM Vol. 1, 8.7 exception priority). Returns false
/// when DE is unmasked (the operation stops).
pub(super) fn denormal_check(env: &mut Env, ops: &[F80]) -> bool {
    if ops.iter().any(|v| v.class() == Class::Denormal) {
        env.flags |= DE;
        return env.masked(DE);
    }
    true
}

/// x op y with full x87 special-case handling.
pub fn compute(env: &mut Env, op: Op, x: F80, y: F80) -> F80 {
    compute_ex(env, op, x, y, false)
}

/// `compute`, where `mem_denormal` says a single/double memory operand was
/// denormal (it widens to a normal extended value but still raises DE).
pub fn compute_ex(env: &mut Env, op: Op, x: F80, y: F80, mem_denormal: bool) -> F80 {
    if let Some(r) = screen(env, &[x, y]) {
        return r;
    }
    let (cx, cy) = (x.class(), y.class());
    let invalid = |env: &mut Env| {
        env.flags |= IE;
        F80::INDEFINITE
    };
    let y = if op == Op::Sub { y.negate() } else { y };
    let s = x.sign() ^ y.sign();
    // Invalid operations and division by zero first.
    match op {
        Op::Add | Op::Sub if cx == Class::Inf && cy == Class::Inf && x.sign() != y.sign() => return invalid(env),
        Op::Mul if matches!((cx, cy), (Class::Inf, Class::Zero) | (Class::Zero, Class::Inf)) => return invalid(env),
        Op::Div if matches!((cx, cy), (Class::Inf, Class::Inf) | (Class::Zero, Class::Zero)) => return invalid(env),
        Op::Div if cy == Class::Zero && cx != Class::Inf => {
            env.flags |= ZE;
            return F80::inf(s);
        }
        _ => {}
    }
    if mem_denormal {
        env.flags |= DE;
    }
    if !denormal_check(env, &[x, y]) || !env.masked(DE) && mem_denormal {
        return F80::INDEFINITE;
    }
    match op {
        Op::Add | Op::Sub => match (cx == Class::Inf, cy == Class::Inf) {
            (true, _) => x,
            (_, true) => y,
            _ => add_finite(env, x, y),
        },
        Op::Mul => match (cx, cy) {
            (Class::Inf, _) | (_, Class::Inf) => F80::inf(s),
            (Class::Zero, _) | (_, Class::Zero) => F80::zero(s),
            _ => mul_finite(env, x, y),
        },
        Op::Div => match (cx, cy) {
            (Class::Inf, _) => F80::inf(s),
            (_, Class::Inf) => F80::zero(s),
            (Class::Zero, _) => F80::zero(s),
            _ => div_finite(env, x, y),
        },
    }
}

/// Which operand order: ST(d) = ST(d) op src, or ST(d) = src op ST(d).
const FWD: bool = false;
const REV: bool = true;

/// Register forms: `dst op= src` where both are ST registers.
fn arith_reg<const OP: u8, const R: bool, const POP: bool>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let (d, s) = match i.op_count() {
        0 => (1, 0), // FADDP with no operands = FADDP ST(1), ST(0)
        _ => (sti(i.op0_register()), sti(i.op1_register())),
    };
    let f = &mut cpu.s.fpu;
    if f.is_empty(d) || f.is_empty(s) {
        if f.underflow() {
            f.set_st(d, F80::INDEFINITE);
            if POP {
                f.pop();
            }
        }
        return Ok(());
    }
    let (a, b) = (f.st(d), f.st(s));
    let mut env = Env::new(f.fcw);
    let r = apply::<OP, R>(&mut env, a, b, false);
    if f.finish(&env) {
        f.set_st(d, r);
        if POP {
            f.pop();
        }
    }
    Ok(())
}

fn apply<const OP: u8, const R: bool>(env: &mut Env, a: F80, b: F80, mem_denormal: bool) -> F80 {
    let op = match OP {
        0 => Op::Add,
        1 => Op::Sub,
        2 => Op::Mul,
        _ => Op::Div,
    };
    if R {
        compute_ex(env, op, b, a, mem_denormal)
    } else {
        compute_ex(env, op, a, b, mem_denormal)
    }
}

/// Memory forms: ST(0) = ST(0) op m32fp/m64fp/m16int/m32int.
fn arith_mem<const OP: u8, const R: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let size = i.memory_size();
    let raw = cpu.read_op(bus, i, 0)?;
    let mut env = Env::new(cpu.s.fpu.fcw);
    let b = super::convert::mem_operand(size, raw);
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let a = f.st(0);
    let r = apply::<OP, R>(&mut env, a, b, super::convert::mem_is_denormal(size, raw));
    if f.finish(&env) {
        f.set_st(0, r);
    }
    Ok(())
}

fn fsqrt(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    unary(cpu, i, |env, a| {
        if let Some(r) = screen(env, &[a]) {
            return r;
        }
        match a.class() {
            Class::Zero => a,
            _ if a.sign() => {
                env.flags |= IE;
                F80::INDEFINITE
            }
            Class::Inf => a,
            _ if !denormal_check(env, &[a]) => a,
            _ => sqrt_finite(env, a),
        }
    })
}

fn frndint(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    unary(cpu, i, |env, a| {
        if let Some(r) = screen(env, &[a]) {
            return r;
        }
        match a.class() {
            Class::Zero | Class::Inf => a,
            _ if !denormal_check(env, &[a]) => a,
            _ => {
                let rc = env.rc;
                round_to_int(env, a, rc)
            }
        }
    })
}

/// ST(0) = f(ST(0)) with the stack-underflow and exception plumbing.
fn unary(cpu: &mut Cpu, i: &Instruction, f: impl FnOnce(&mut Env, F80) -> F80) -> Result<()> {
    cpu.fpu_enter(i)?;
    let fpu = &mut cpu.s.fpu;
    if fpu.is_empty(0) {
        if fpu.underflow() {
            fpu.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let mut env = Env::new(fpu.fcw);
    let r = f(&mut env, fpu.st(0));
    if fpu.finish(&env) {
        fpu.set_st(0, r);
    }
    Ok(())
}

fn fchs(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    sign_op(cpu, i, |v| v.negate())
}
fn fabs(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    sign_op(cpu, i, |v| v.with_sign(false))
}
/// FCHS/FABS touch only the sign, even of NaNs, and raise nothing but a
/// stack underflow; C1 is cleared.
fn sign_op(cpu: &mut Cpu, i: &Instruction, f: impl FnOnce(F80) -> F80) -> Result<()> {
    cpu.fpu_enter(i)?;
    let fpu = &mut cpu.s.fpu;
    if fpu.is_empty(0) {
        if fpu.underflow() {
            fpu.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    fpu.set_c1(false);
    let v = f(fpu.st(0));
    fpu.set_st(0, v);
    Ok(())
}

/// FPREM (NEAREST false) and FPREM1: C2 = incomplete, C0/C3/C1 = quotient
/// bits 2/1/0 (SDM Vol. 2A, FPREM).
fn fprem<const NEAREST: bool>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) || f.is_empty(1) {
        // A stack fault clears C2 as well as C1 (host).
        f.fsw &= !C2;
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let (a, b) = (f.st(0), f.st(1));
    let mut env = Env::new(f.fcw);
    let mut q = None;
    let r = if let Some(r) = screen(&mut env, &[a, b]) {
        r
    } else {
        match (a.class(), b.class()) {
            (Class::Inf, _) | (_, Class::Zero) => {
                env.flags |= IE;
                F80::INDEFINITE
            }
            _ if !denormal_check(&mut env, &[a, b]) => a,
            (_, Class::Inf) => {
                // The dividend itself, normalised like any result.
                q = Some((0, true));
                repack(&mut env, a)
            }
            _ => {
                let (r, qb, complete) = partial_rem(&mut env, a, b, NEAREST);
                q = Some((qb, complete));
                r
            }
        }
    };
    let ok = f.raise(env.flags);
    if let Some((qb, complete)) = q {
        if complete {
            f.set_cc(qb & 4 != 0, qb & 1 != 0, false, qb & 2 != 0);
        } else {
            // Incomplete: C2 = 1; C0, C1, C3 end clear on the host (the SDM
            // leaves them undefined).
            f.set_cc(false, false, true, false);
        }
    } else {
        f.fsw &= !(C1 | C2);
    }
    if ok {
        f.set_st(0, r);
    }
    let _ = (C0, C3);
    Ok(())
}

/// FSCALE: ST(0) × 2^trunc(ST(1)) (SDM Vol. 2A, FSCALE table).
fn fscale(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) || f.is_empty(1) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let (a, b) = (f.st(0), f.st(1));
    let mut env = Env::transcendental(f.fcw);
    let r = scale(&mut env, a, b);
    if f.finish(&env) {
        f.set_st(0, r);
    }
    Ok(())
}

pub fn scale(env: &mut Env, a: F80, b: F80) -> F80 {
    if let Some(r) = screen(env, &[a, b]) {
        return r;
    }
    let (ca, cb) = (a.class(), b.class());
    match (ca, cb) {
        (Class::Zero, Class::Inf) if !b.sign() => {
            env.flags |= IE;
            F80::INDEFINITE
        }
        (Class::Inf, Class::Inf) if b.sign() => {
            env.flags |= IE;
            F80::INDEFINITE
        }
        _ if !denormal_check(env, &[a, b]) => a,
        (Class::Zero, _) | (Class::Inf, _) => a,
        (_, Class::Inf) => {
            if b.sign() {
                F80::zero(a.sign())
            } else {
                F80::inf(a.sign())
            }
        }
        (_, Class::Zero) => repack(env, a),
        _ => {
            let (bs, be, bm) = b.unpack();
            // |trunc(ST(1))|, saturated: anything beyond ±2^16 over/underflows.
            let n: i32 = if be >= 16 {
                1 << 16
            } else if be < 0 {
                0
            } else {
                (bm >> (63 - be)) as i32
            };
            let n = if bs { -n } else { n };
            // The scaling is exact; only a result outside the range rounds,
            // with the full 64-bit precision (precision control does not apply).
            let (s, e, m) = a.unpack();
            round(env, s, e + 64 + n, m as u128, EXT, 64).to_f80()
        }
    }
}

/// FXTRACT: ST(0) = exponent, then push the significand (SDM Vol. 2A).
fn fxtract(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
            f.push_checked(F80::INDEFINITE);
            // An overflow on top of the underflow keeps C1 = 0 (host).
            f.set_c1(false);
        }
        return Ok(());
    }
    if !f.is_empty(7) {
        if f.overflow() {
            f.set_st(0, F80::INDEFINITE);
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    let a = f.st(0);
    let mut env = Env::new(f.fcw);
    let (e, m) = if let Some(r) = screen(&mut env, &[a]) {
        (r, r)
    } else {
        match a.class() {
            Class::Zero => {
                env.flags |= ZE;
                (F80::inf(true), a)
            }
            Class::Inf => (F80::inf(false), a),
            _ if !denormal_check(&mut env, &[a]) => (a, a),
            _ => {
                let (s, e, m) = a.unpack();
                (
                    from_int(e as i64),
                    F80 {
                        se: ((s as u16) << 15) | EXP_BIAS as u16,
                        sig: m,
                    },
                )
            }
        }
    };
    if f.finish(&env) {
        f.set_st(0, e);
        f.push(m);
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    const ADD: u8 = 0;
    const SUB: u8 = 1;
    const MUL: u8 = 2;
    const DIV: u8 = 3;
    Some(match code {
        Fadd_st0_sti | Fadd_sti_st0 => arith_reg::<ADD, FWD, false>,
        Fmul_st0_sti | Fmul_sti_st0 => arith_reg::<MUL, FWD, false>,
        Fsub_st0_sti | Fsub_sti_st0 => arith_reg::<SUB, FWD, false>,
        Fsubr_st0_sti | Fsubr_sti_st0 => arith_reg::<SUB, REV, false>,
        Fdiv_st0_sti | Fdiv_sti_st0 => arith_reg::<DIV, FWD, false>,
        Fdivr_st0_sti | Fdivr_sti_st0 => arith_reg::<DIV, REV, false>,
        Faddp_sti_st0 => arith_reg::<ADD, FWD, true>,
        Fmulp_sti_st0 => arith_reg::<MUL, FWD, true>,
        Fsubp_sti_st0 => arith_reg::<SUB, FWD, true>,
        Fsubrp_sti_st0 => arith_reg::<SUB, REV, true>,
        Fdivp_sti_st0 => arith_reg::<DIV, FWD, true>,
        Fdivrp_sti_st0 => arith_reg::<DIV, REV, true>,
        Fadd_m32fp | Fadd_m64fp | Fiadd_m16int | Fiadd_m32int => arith_mem::<ADD, FWD>,
        Fmul_m32fp | Fmul_m64fp | Fimul_m16int | Fimul_m32int => arith_mem::<MUL, FWD>,
        Fsub_m32fp | Fsub_m64fp | Fisub_m16int | Fisub_m32int => arith_mem::<SUB, FWD>,
        Fsubr_m32fp | Fsubr_m64fp | Fisubr_m16int | Fisubr_m32int => arith_mem::<SUB, REV>,
        Fdiv_m32fp | Fdiv_m64fp | Fidiv_m16int | Fidiv_m32int => arith_mem::<DIV, FWD>,
        Fdivr_m32fp | Fdivr_m64fp | Fidivr_m16int | Fidivr_m32int => arith_mem::<DIV, REV>,
        Fsqrt => fsqrt,
        Frndint => frndint,
        Fchs => fchs,
        Fabs => fabs,
        Fprem => fprem::<false>,
        Fprem1 => fprem::<true>,
        Fscale => fscale,
        Fxtract => fxtract,
        _ => return None,
    })
}
