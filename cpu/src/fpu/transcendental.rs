//! x87 transcendentals: FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X,
//! FYL2XP1. Special operands (NaN, infinity, zero, denormal, out-of-range
//! arguments with C2) follow the tables in SDM Vol. 2A for each instruction.
//!
//! Accuracy: the functions are evaluated in the host's IEEE double
//! arithmetic (Rust's `f64` methods, i.e. the platform libm), so a result
//! carries about 53 correct bits, not the 64 of the hardware; the exponent
//! part of FYL2X and the final multiplication by ST(1) are done in extended
//! precision, and arguments are scaled by powers of two so the whole
//! extended exponent range stays usable. Trigonometric arguments are rounded
//! to 53 bits before reduction, so their absolute error grows with |x|
//! (about |x| × 2^-53). Every such result reports PE, with C1 = 0.

use super::arith::{compute, propagate_nan, Op};
use super::float80::*;
use super::stack::C2;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction};

/// A finite nonzero value as (sign, f64 significand in [1, 2), exponent).
fn split(a: F80) -> (bool, f64, i32) {
    let (s, e, m) = a.unpack();
    // Round the 64-bit significand to 53 bits (nearest) through u64 → f64.
    (s, m as f64 / 9_223_372_036_854_775_808.0, e)
}

/// A finite value in f64 (callers keep it inside the double range).
fn to_f64(a: F80) -> f64 {
    if a.class() == Class::Zero {
        return if a.sign() { -0.0 } else { 0.0 };
    }
    let (s, f, e) = split(a);
    let v = f * 2f64.powi(e);
    if s {
        -v
    } else {
        v
    }
}

/// An inexact f64 result, rounded to the current precision control.
fn from_f64_inexact(env: &mut Env, v: f64) -> F80 {
    let r = round_value(env, from_f64(v.to_bits()));
    env.flags |= PE;
    env.round_up = false;
    r
}

/// NaN/unsupported/denormal screening for one or two operands. Some(result)
/// when the operation is decided; None to continue.
fn screen(env: &mut Env, ops: &[F80]) -> Option<F80> {
    if ops.iter().any(|v| v.class() == Class::Unsupported) {
        env.flags |= IE;
        return Some(F80::INDEFINITE);
    }
    if ops.iter().any(|v| v.is_nan()) {
        let (r, snan) = propagate_nan(ops[0], *ops.last().unwrap());
        if snan {
            env.flags |= IE;
        }
        return Some(r);
    }
    None
}

fn denormal(env: &mut Env, ops: &[F80]) -> bool {
    if ops.iter().any(|v| v.class() == Class::Denormal) {
        env.flags |= DE;
        return env.masked(DE);
    }
    true
}

#[derive(Clone, Copy, PartialEq)]
enum Trig {
    Sin,
    Cos,
    SinCos,
    Tan,
}

fn trig<const K: u8>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let kind = match K {
        0 => Trig::Sin,
        1 => Trig::Cos,
        2 => Trig::SinCos,
        _ => Trig::Tan,
    };
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    let pushes = matches!(kind, Trig::SinCos | Trig::Tan);
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
            if pushes {
                f.push_checked(F80::INDEFINITE);
            }
        }
        return Ok(());
    }
    if pushes && !f.is_empty(7) {
        if f.overflow() {
            f.set_st(0, F80::INDEFINITE);
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    let a = f.st(0);
    let mut env = Env::new(f.fcw);
    // (first = replaces ST(0), second = pushed)
    let (first, second) = if let Some(r) = screen(&mut env, &[a]) {
        (r, r)
    } else {
        match a.class() {
            Class::Inf => {
                env.flags |= IE;
                (F80::INDEFINITE, F80::INDEFINITE)
            }
            Class::Zero => match kind {
                Trig::Sin => (a, a),
                Trig::Cos => (F80::ONE, a),
                Trig::SinCos => (a, F80::ONE),
                Trig::Tan => (a, F80::ONE),
            },
            _ => {
                if !denormal(&mut env, &[a]) {
                    f.raise(env.flags);
                    return Ok(());
                }
                let (_, e, _) = a.unpack();
                if e >= 63 {
                    // Out of range: C2 = 1 and nothing else changes.
                    f.fsw |= C2;
                    return Ok(());
                }
                if e < -40 {
                    // sin x = tan x = x and cos x = 1 to 64 bits, inexact;
                    // hardware reports C1 = 1 for all of them.
                    env.flags |= PE;
                    env.round_up = true;
                    let a = round_value(&mut env, a);
                    if a.exp() == 0 && kind != Trig::Cos {
                        env.flags |= UE;
                    }
                    match kind {
                        Trig::Sin => (a, a),
                        Trig::Cos => (F80::ONE, a),
                        Trig::SinCos => (a, F80::ONE),
                        Trig::Tan => (a, F80::ONE),
                    }
                } else {
                    let [(s, es), (c, ec), (t, et)] = super::fixed::sin_cos_tan(&env, a);
                    // Flags of every delivered result; C1 reports the sine's
                    // rounding for FSINCOS (checked on hardware).
                    let take = |env: &mut Env, e: &Env| {
                        env.flags |= e.flags;
                        env.round_up = e.round_up;
                    };
                    match kind {
                        Trig::Sin => {
                            take(&mut env, &es);
                            (s, a)
                        }
                        Trig::Cos => {
                            take(&mut env, &ec);
                            (c, a)
                        }
                        Trig::SinCos => {
                            take(&mut env, &ec);
                            take(&mut env, &es);
                            (s, c)
                        }
                        Trig::Tan => {
                            take(&mut env, &et);
                            (t, F80::ONE)
                        }
                    }
                }
            }
        }
    };
    if f.finish(&env) {
        f.fsw &= !C2;
        f.set_st(0, first);
        if pushes {
            f.push(second);
        }
    }
    Ok(())
}

/// FPATAN: ST(1) = arctan(ST(1) / ST(0)) with the quadrant from both signs; pop.
fn fpatan(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    binary_pop(cpu, i, |env, x, y| {
        if let Some(r) = screen(env, &[y, x]) {
            return r;
        }
        if !denormal(env, &[x, y]) {
            return F80::INDEFINITE;
        }
        // Scale both by the same power of two into the double range; the
        // quotient (hence the angle) is unchanged. Zeros and infinities go
        // through atan2's own IEEE rules, which are the x87's.
        let ex = if matches!(x.class(), Class::Normal | Class::Denormal) {
            x.unpack().1
        } else {
            i32::MIN
        };
        let ey = if matches!(y.class(), Class::Normal | Class::Denormal) {
            y.unpack().1
        } else {
            i32::MIN
        };
        let finite = |v: F80| matches!(v.class(), Class::Normal | Class::Denormal);
        if finite(x) && finite(y) && ey < ex - 64 {
            // |y/x| < 2^-63: atan(y/x) = y/x to 64 bits (x > 0), or ±π.
            if !x.sign() {
                let r = compute(env, Op::Div, y, x);
                env.flags |= PE;
                return r;
            }
            let pi = F80 {
                se: 0x4000 | ((y.sign() as u16) << 15),
                sig: 0xc90f_daa2_2168_c235,
            };
            env.flags |= PE;
            return round_value(env, pi);
        }
        let shift = ex.max(ey);
        let conv = |v: F80| -> f64 {
            match v.class() {
                Class::Zero => to_f64(v),
                Class::Inf => {
                    if v.sign() {
                        f64::NEG_INFINITY
                    } else {
                        f64::INFINITY
                    }
                }
                _ => {
                    let (s, m, e) = split(v);
                    let d = (e - shift).max(-1100);
                    let r = m * 2f64.powi(d);
                    if s {
                        -r
                    } else {
                        r
                    }
                }
            }
        };
        let r = conv(y).atan2(conv(x));
        if r == 0.0 {
            // Exact signed zero (y = ±0, x > 0).
            return from_f64(r.to_bits());
        }
        from_f64_inexact(env, r)
    })
}

/// log2 of a positive finite nonzero value, as an extended value: the
/// exponent exactly, plus log2 of the significand in double precision.
fn log2_ext(env: &mut Env, x: F80) -> F80 {
    let (_, m, e) = split(x);
    let frac = m.log2();
    if e == 0 {
        if frac == 0.0 {
            return F80::ZERO;
        }
        return from_f64_inexact(env, frac);
    }
    let mut scratch = Env { flags: 0, ..*env };
    scratch.prec = 64;
    let r = compute(&mut scratch, Op::Add, from_int(e as i64), from_f64(frac.to_bits()));
    env.flags |= PE;
    r
}

/// FYL2X: ST(1) = ST(1) × log2(ST(0)); pop.
fn fyl2x(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    binary_pop(cpu, i, |env, x, y| {
        if let Some(r) = screen(env, &[x, y]) {
            return r;
        }
        let (cx, cy) = (x.class(), y.class());
        if x.sign() && cx != Class::Zero {
            env.flags |= IE;
            return F80::INDEFINITE;
        }
        if cx == Class::Zero {
            return match cy {
                Class::Zero => {
                    env.flags |= IE;
                    F80::INDEFINITE
                }
                Class::Inf => F80::inf(!y.sign()),
                // Division by zero outranks the denormal operand.
                _ => {
                    env.flags |= ZE;
                    F80::inf(!y.sign())
                }
            };
        }
        if !denormal(env, &[x, y]) {
            return F80::INDEFINITE;
        }
        let l = if cx == Class::Inf { F80::inf(false) } else { log2_ext(env, x) };
        if cy == Class::Zero || cy == Class::Inf {
            // ±0 or ±∞ times the log: exact (0 × ∞ stays invalid).
            let mut quiet = Env { flags: 0, ..*env };
            let r = compute(&mut quiet, Op::Mul, y, l);
            env.flags = (env.flags & !PE) | quiet.flags;
            return r;
        }
        // log2(1) = +0 exactly: then 0 × ±inf is invalid, 0 × y = ±0.
        let exact = l.class() == Class::Zero || cx == Class::Inf;
        let pe = env.flags & PE;
        let r = compute(env, Op::Mul, y, l);
        if !exact {
            env.flags |= pe | PE;
            env.round_up = false;
            if r.exp() == 0 && r.sig != 0 {
                env.flags |= UE;
            }
        }
        r
    })
}

/// FYL2XP1: ST(1) = ST(1) × log2(ST(0) + 1); pop. The argument range is
/// |x| < 1 - √2/2; outside it the result is computed anyway.
fn fyl2xp1(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    binary_pop(cpu, i, |env, x, y| {
        if let Some(r) = screen(env, &[x, y]) {
            return r;
        }
        let (cx, cy) = (x.class(), y.class());
        if cx == Class::Inf && !x.sign() {
            return compute(env, Op::Mul, y, x);
        }
        if cx == Class::Inf || (cx == Class::Zero && cy == Class::Inf) {
            env.flags |= IE;
            return F80::INDEFINITE;
        }
        if !denormal(env, &[x, y]) {
            return F80::INDEFINITE;
        }
        if cx == Class::Zero || cy == Class::Zero {
            // log2(1 + x) has the sign of x; times ±0 or of ±0, exact.
            return F80::zero(x.sign() ^ y.sign());
        }
        let xf = to_f64(x);
        if xf <= -1.0 {
            // Outside the domain (|x| < 1 - √2/2) the result is undefined;
            // hardware raises only PE. Kagami returns the indefinite.
            env.flags |= PE;
            return F80::INDEFINITE;
        }
        let l = if x.unpack().1 < -60 {
            // log2(1 + x) = x·log2(e) to 64 bits for tiny x, in extended.
            let log2e = F80 {
                se: 0x3fff,
                sig: 0xb8aa_3b29_5c17_f0bc,
            };
            let mut scratch = Env { flags: 0, ..*env };
            scratch.prec = 64;
            compute(&mut scratch, Op::Mul, x, log2e)
        } else {
            from_f64((xf.ln_1p() * std::f64::consts::LOG2_E).to_bits())
        };
        if cy == Class::Zero || cy == Class::Inf {
            return compute(env, Op::Mul, y, l);
        }
        let r = compute(env, Op::Mul, y, l);
        env.flags |= PE;
        env.round_up = false;
        r
    })
}

/// F2XM1: ST(0) = 2^ST(0) - 1 for -1 ≤ ST(0) ≤ 1.
fn f2xm1(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    let a = f.st(0);
    let mut env = Env::new(f.fcw);
    let r = if let Some(r) = screen(&mut env, &[a]) {
        r
    } else {
        match a.class() {
            Class::Zero => a,
            Class::Inf => {
                if a.sign() {
                    F80::ONE.negate()
                } else {
                    a
                }
            }
            _ if !denormal(&mut env, &[a]) => a,
            _ if a.exp() >= 0x3fff && (a.exp() > 0x3fff || a.sig != 1 << 63) => {
                // |x| > 1 is outside the domain: hardware returns the
                // operand unchanged and reports PE (checked on hardware).
                env.flags |= PE;
                a
            }
            _ => {
                let (_, _, e) = split(a);
                if e < -60 {
                    // 2^x - 1 ≈ x·ln 2 for tiny x; stay in extended range.
                    let ln2 = F80 {
                        se: 0x3ffe,
                        sig: 0xb172_17f7_d1cf_79ac,
                    };
                    let r = compute(&mut env, Op::Mul, a, ln2);
                    env.flags |= PE;
                    r
                } else {
                    let x = to_f64(a);
                    from_f64_inexact(&mut env, (x * std::f64::consts::LN_2).exp_m1())
                }
            }
        }
    };
    if f.finish(&env) {
        f.set_st(0, r);
    }
    Ok(())
}

/// ST(1) = op(ST(0), ST(1)), then pop.
fn binary_pop(cpu: &mut Cpu, i: &Instruction, op: impl FnOnce(&mut Env, F80, F80) -> F80) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) || f.is_empty(1) {
        if f.underflow() {
            f.set_st(1, F80::INDEFINITE);
            f.pop();
        }
        return Ok(());
    }
    let (x, y) = (f.st(0), f.st(1));
    let mut env = Env::new(f.fcw);
    let r = op(&mut env, x, y);
    if f.finish(&env) {
        f.set_st(1, r);
        f.pop();
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    Some(match code {
        Fsin => trig::<0>,
        Fcos => trig::<1>,
        Fsincos => trig::<2>,
        Fptan => trig::<3>,
        Fpatan => fpatan,
        Fyl2x => fyl2x,
        Fyl2xp1 => fyl2xp1,
        F2xm1 => f2xm1,
        _ => return None,
    })
}
