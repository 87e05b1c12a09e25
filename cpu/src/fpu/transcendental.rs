//! x87 transcendentals: FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X,
//! FYL2XP1. Special operands (NaN, infinity, zero, denormal, out-of-range
//! arguments with C2) follow the tables in SDM Vol. 2A for each instruction.
//!
//! Accuracy: every finite result comes from the 128-bit kernels in
//! `fixed.rs` (about 120 correct bits) and is rounded once per RC and PC, so
//! it is the correctly rounded value of the function (of the argument
//! reduced with the x87's 68-bit π/2, for FSIN/FCOS/FSINCOS/FPTAN).
//! Hardware is within about one unit in the last place, so a few results
//! differ from it in the last bit (and C1). Measured against an AMD EPYC host
//! (`cpu/tests/x87_host.rs`): FSIN/FCOS/FSINCOS ≈99%, FPATAN/FYL2X ≈98%,
//! FYL2XP1 ≈96%, F2XM1 ≈92%, FPTAN ≈89% bit-identical, all within one ulp.
//! Arguments below 2^-63 (F2XM1) or 2^-40 (sine, cosine, tangent) take
//! short extended-precision paths.

use super::arith::{compute, denormal_check, screen, Op};
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

/// An inexact f64 result, rounded to the current precision control.
fn from_f64_inexact(env: &mut Env, v: f64) -> F80 {
    let r = round_value(env, from_f64(v.to_bits()));
    env.flags |= PE;
    env.round_up = false;
    r
}

/// The finite nonzero value one ulp nearer zero (extended format).
fn toward_zero_ulp(a: F80) -> F80 {
    let (e, m) = (a.exp(), a.sig);
    let (e, m) = if m == 1 << 63 && e > 1 {
        (e - 1, u64::MAX)
    } else if m == 1 << 63 && e == 1 {
        (0, u64::MAX >> 1)
    } else {
        (e, m.wrapping_sub(1))
    };
    F80 {
        se: (a.se & 0x8000) | e,
        sig: m,
    }
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
    // C2 ends clear on every path but the out-of-range one, even with a
    // stack fault or an unmasked exception (checked on the host).
    f.fsw &= !C2;
    let pushes = matches!(kind, Trig::SinCos | Trig::Tan);
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
            if pushes {
                f.push_checked(F80::INDEFINITE);
                // An overflow on top of the underflow keeps C1 = 0 (host).
                f.set_c1(false);
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
    let mut env = Env::transcendental(f.fcw);
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
                if !denormal_check(&mut env, &[a]) {
                    // Unmasked DE: no result, C1 cleared.
                    f.finish(&env);
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
                    // Rounding the magnitude down moves sin x (just below
                    // |x|) and cos x (just below 1) one ulp (host).
                    env.flags |= PE;
                    env.round_up = true;
                    let a = round_value(&mut env, a);
                    if a.exp() == 0 && kind != Trig::Cos {
                        env.flags |= UE;
                    }
                    // Whether RC rounds the magnitude of a value of sign `neg` down.
                    let mag_down = |neg: bool| match env.rc {
                        3 => true,
                        1 => !neg,
                        2 => neg,
                        _ => false,
                    };
                    let sin = if mag_down(a.sign()) { toward_zero_ulp(a) } else { a };
                    let cos = if mag_down(false) { toward_zero_ulp(F80::ONE) } else { F80::ONE };
                    match kind {
                        Trig::Sin => {
                            env.round_up = !mag_down(a.sign());
                            (sin, a)
                        }
                        Trig::Cos => {
                            env.round_up = !mag_down(false);
                            (cos, a)
                        }
                        Trig::SinCos => {
                            env.round_up = !mag_down(a.sign());
                            (sin, cos)
                        }
                        // The host keeps tan x = x in every rounding mode.
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
        if !denormal_check(env, &[x, y]) {
            return F80::INDEFINITE;
        }
        super::fixed::atan2(y, x).round(env)
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
        if !denormal_check(env, &[x, y]) {
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
        if cx == Class::Inf || l.class() == Class::Zero {
            // log2(+∞) = +∞, log2(1) = +0: exact, the product decides.
            return compute(env, Op::Mul, y, l);
        }
        // y × log2(x) from the wide kernel, rounded once.
        let flags = env.flags & !PE;
        env.flags = flags;
        let w = super::fixed::Wide::from_f80(y).mul_pub(super::fixed::log2(x));
        w.round(env)
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
        if !denormal_check(env, &[x, y]) {
            return F80::INDEFINITE;
        }
        if cx == Class::Zero || cy == Class::Zero {
            // log2(1 + x) has the sign of x; times ±0 or of ±0, exact.
            return F80::zero(x.sign() ^ y.sign());
        }
        if cy == Class::Inf {
            // Also for x ≤ -1: ±∞ with the sign of y·x, no PE (host).
            return F80::inf(y.sign() ^ x.sign());
        }
        if x.sign() && x.unpack().1 >= 0 {
            // x ≤ -1 is outside the domain: the AMD host delivers ST(0)
            // itself in ST(1), raising only PE (C1 clear).
            env.flags |= PE;
            env.round_up = false;
            return x;
        }
        // The log2(1 + x) kernel keeps 1 + x exactly in Q2.126, which holds
        // only for |x| < 1/2. Beyond that (outside the documented range),
        // form 1 + x in extended precision and take its log2: for
        // -1 < x ≤ -1/2 the sum is exact, above it loses at most half an ulp.
        let (_, e, _) = x.unpack();
        let l = if e >= -1 {
            let mut scratch = Env::new(0x037f);
            let s = compute(&mut scratch, Op::Add, F80::ONE, x);
            if s.class() == Class::Inf {
                return F80::inf(y.sign());
            }
            if s == F80::ONE {
                return F80::zero(y.sign());
            }
            super::fixed::log2(s)
        } else {
            super::fixed::log2_1p(x)
        };
        let w = super::fixed::Wide::from_f80(y).mul_pub(l);
        let r = w.round(env);
        // The host reports PE even for an exact result (e.g. log2 of 2^-64).
        env.flags |= PE;
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
    let mut env = Env::transcendental(f.fcw);
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
            _ if !denormal_check(&mut env, &[a]) => a,
            _ if a.exp() >= 0x3fff && (a.exp() > 0x3fff || a.sig != 1 << 63) => {
                // |x| > 1 is outside the domain: hardware returns the
                // operand unchanged and reports PE (checked on hardware).
                env.flags |= PE;
                a
            }
            _ => {
                let (_, _, e) = split(a);
                if e < -63 {
                    // 2^x - 1 ≈ x·ln 2 for tiny x; stay in extended range.
                    let ln2 = F80 {
                        se: 0x3ffe,
                        sig: 0xb172_17f7_d1cf_79ac,
                    };
                    let r = compute(&mut env, Op::Mul, a, ln2);
                    env.flags |= PE;
                    r
                } else {
                    super::fixed::f2xm1(a).round(&mut env)
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
    let mut env = Env::transcendental(f.fcw);
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
