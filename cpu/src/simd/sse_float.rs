//! SSE/SSE2/SSE3/SSE4.1 floating-point arithmetic: ADD SUB MUL DIV MIN MAX
//! SQRT (PS PD SS SD), CMPccPS/PD/SS/SD, (U)COMISS/SD, HADD/HSUB, ADDSUB,
//! DPPS/DPPD, ROUNDPS/PD/SS/SD, RCPPS/SS and RSQRTPS/SS. Every lane goes
//! through `softfp` with the MXCSR environment; results are written only if
//! no unmasked exception was raised (`fp_commit`).

use super::softfp::{Env, Fmt, F32, F64};
use super::*;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::state::flags;
use core::cmp::Ordering;
use iced_x86::{Code, Instruction, Mnemonic};

#[inline]
pub fn fmt_of(double: bool) -> Fmt {
    if double {
        F64
    } else {
        F32
    }
}

#[inline]
pub fn nlanes(f: Fmt) -> usize {
    if f == F32 {
        4
    } else {
        2
    }
}

#[inline]
pub fn lane(v: u128, f: Fmt, k: usize) -> u64 {
    if f == F32 {
        (v >> (32 * k)) as u32 as u64
    } else {
        (v >> (64 * k)) as u64
    }
}

#[inline]
pub fn set_lane(v: u128, f: Fmt, k: usize, x: u64) -> u128 {
    let (w, m) = if f == F32 { (32, 0xffff_ffffu128) } else { (64, u64::MAX as u128) };
    (v & !(m << (w * k))) | ((x as u128 & m) << (w * k))
}

fn all_ones(f: Fmt) -> u64 {
    if f == F32 {
        0xffff_ffff
    } else {
        u64::MAX
    }
}

/// The CMPccPS predicate `p` (imm8 bits 0..2) on a, b.
pub fn cmp_pred(env: &mut Env, f: Fmt, a: u64, b: u64, p: u8) -> bool {
    let signal = matches!(p & 7, 1 | 2 | 5 | 6);
    let o = env.compare(f, a, b, signal);
    match p & 7 {
        0 => o == Some(Ordering::Equal),
        1 => o == Some(Ordering::Less),
        2 => matches!(o, Some(Ordering::Less | Ordering::Equal)),
        3 => o.is_none(),
        4 => o != Some(Ordering::Equal),
        5 => o != Some(Ordering::Less),
        6 => !matches!(o, Some(Ordering::Less | Ordering::Equal)),
        _ => o.is_some(),
    }
}

/// RCPPS/RSQRTPS approximation. Intel documents |relative error| <=
/// 1.5 * 2^-12 but not the table; kagami returns the exact result rounded
/// to 12 significant bits (error <= 2^-12), so values can differ from a
/// given CPU in the last bits. Denormal inputs count as zero and tiny
/// results flush to zero, as on hardware. No MXCSR flags.
pub fn approx(a: u32, rsqrt: bool) -> u32 {
    let f = F32;
    let sign = a & 0x8000_0000;
    let a64 = a as u64;
    if f.is_nan(a64) {
        return f.quiet(a64) as u32;
    }
    if f.is_zero(a64) || f.is_denormal(a64) {
        return sign | 0x7f80_0000;
    }
    if rsqrt && sign != 0 {
        return f.default_nan() as u32;
    }
    if f.is_inf(a64) {
        return sign;
    }
    let x = f32::from_bits(a) as f64;
    let r = if rsqrt { 1.0 / x.sqrt() } else { 1.0 / x };
    // Round the f64 significand to 12 bits, nearest-even.
    let bits = r.to_bits();
    let drop = 52 - 11;
    let half = 1u64 << (drop - 1);
    let low = bits & ((1 << drop) - 1);
    let mut b = bits & !((1 << drop) - 1);
    if low > half || (low == half && b & (1 << drop) != 0) {
        b += 1 << drop;
    }
    let r = f64::from_bits(b);
    if r.abs() < f32::MIN_POSITIVE as f64 {
        return sign;
    }
    (r as f32).to_bits()
}

/// One lane of a two-operand arithmetic op.
fn arith(env: &mut Env, f: Fmt, m: Mnemonic, a: u64, b: u64) -> u64 {
    use Mnemonic::*;
    match m {
        Addps | Addpd | Addss | Addsd => env.add(f, a, b, false),
        Subps | Subpd | Subss | Subsd => env.add(f, a, b, true),
        Mulps | Mulpd | Mulss | Mulsd => env.mul(f, a, b),
        Divps | Divpd | Divss | Divsd => env.div(f, a, b),
        Minps | Minpd | Minss | Minsd => env.min_max(f, a, b, false),
        Maxps | Maxpd | Maxss | Maxsd => env.min_max(f, a, b, true),
        Sqrtps | Sqrtpd | Sqrtss | Sqrtsd => env.sqrt(f, b),
        Rcpps | Rcpss => approx(b as u32, false) as u64,
        Rsqrtps | Rsqrtss => approx(b as u32, true) as u64,
        _ => unreachable!("claimed by lookup"),
    }
}

/// Packed (`SCALAR` false) or scalar arithmetic, single (`D` false) or double.
fn farith<const D: bool, const SCALAR: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let f = fmt_of(D);
    let b = read_op(cpu, bus, i, 1)?;
    let dst = i.op_register(0);
    let a = get_reg(cpu, dst);
    let mut env = Env::from_mxcsr(cpu.s.fpu.mxcsr);
    let m = i.mnemonic();
    let n = if SCALAR { 1 } else { nlanes(f) };
    let mut r = a;
    let imm = if i.op_count() > 2 { i.immediate8() } else { 0 };
    for k in 0..n {
        let (x, y) = (lane(a, f, k), lane(b, f, k));
        let v = match m {
            Mnemonic::Cmpps | Mnemonic::Cmppd | Mnemonic::Cmpss | Mnemonic::Cmpsd => {
                if cmp_pred(&mut env, f, x, y, imm) {
                    all_ones(f)
                } else {
                    0
                }
            }
            _ => arith(&mut env, f, m, x, y),
        };
        r = set_lane(r, f, k, v);
    }
    fp_commit(cpu, &env)?;
    set_reg(cpu, dst, r);
    Ok(())
}

/// COMISS/COMISD/UCOMISS/UCOMISD: ZF PF CF from the compare, OF SF AF clear.
fn comis<const D: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let f = fmt_of(D);
    let b = lane(read_op(cpu, bus, i, 1)?, f, 0);
    let a = lane(get_reg(cpu, i.op_register(0)), f, 0);
    let mut env = Env::from_mxcsr(cpu.s.fpu.mxcsr);
    let signal = matches!(i.mnemonic(), Mnemonic::Comiss | Mnemonic::Comisd);
    let v = match env.compare(f, a, b, signal) {
        None => flags::ZF | flags::PF | flags::CF,
        Some(Ordering::Greater) => 0,
        Some(Ordering::Less) => flags::CF,
        Some(Ordering::Equal) => flags::ZF,
    };
    fp_commit(cpu, &env)?;
    cpu.s.set_flag_bits(flags::ARITH, v);
    Ok(())
}

/// HADDPS/PD, HSUBPS/PD, ADDSUBPS/PD.
fn horizontal<const D: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let f = fmt_of(D);
    let b = read_op(cpu, bus, i, 1)?;
    let dst = i.op_register(0);
    let a = get_reg(cpu, dst);
    let mut env = Env::from_mxcsr(cpu.s.fpu.mxcsr);
    let n = nlanes(f);
    let mut r = 0u128;
    match i.mnemonic() {
        Mnemonic::Addsubps | Mnemonic::Addsubpd => {
            for k in 0..n {
                let v = env.add(f, lane(a, f, k), lane(b, f, k), k % 2 == 0);
                r = set_lane(r, f, k, v);
            }
        }
        m => {
            let sub = matches!(m, Mnemonic::Hsubps | Mnemonic::Hsubpd);
            for k in 0..n {
                let src = if k < n / 2 { a } else { b };
                let j = 2 * (k % (n / 2));
                let v = env.add(f, lane(src, f, j), lane(src, f, j + 1), sub);
                r = set_lane(r, f, k, v);
            }
        }
    }
    fp_commit(cpu, &env)?;
    set_reg(cpu, dst, r);
    Ok(())
}

/// DPPS/DPPD (SDM DPPS operation): products of the lanes selected by
/// imm8[7:4] (others +0.0), summed pairwise, stored in the lanes selected
/// by imm8[3:0] (others +0.0).
fn dp<const D: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let f = fmt_of(D);
    let b = read_op(cpu, bus, i, 1)?;
    let dst = i.op_register(0);
    let a = get_reg(cpu, dst);
    let imm = i.immediate8();
    let mut env = Env::from_mxcsr(cpu.s.fpu.mxcsr);
    let n = nlanes(f);
    let mut t = [0u64; 4];
    for (k, tk) in t.iter_mut().enumerate().take(n) {
        if imm & (0x10 << k) != 0 {
            *tk = env.mul(f, lane(a, f, k), lane(b, f, k));
        }
    }
    let sum = if D {
        env.add(f, t[0], t[1], false)
    } else {
        let s01 = env.add(f, t[0], t[1], false);
        let s23 = env.add(f, t[2], t[3], false);
        env.add(f, s01, s23, false)
    };
    let mut r = 0u128;
    for k in 0..n {
        if imm & (1 << k) != 0 {
            r = set_lane(r, f, k, sum);
        }
    }
    fp_commit(cpu, &env)?;
    set_reg(cpu, dst, r);
    Ok(())
}

/// ROUNDPS/PD/SS/SD: imm8[1:0] rounding mode unless imm8[2] (use MXCSR.RC);
/// imm8[3] suppresses the precision exception.
fn round<const D: bool, const SCALAR: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let f = fmt_of(D);
    let b = read_op(cpu, bus, i, 1)?;
    let dst = i.op_register(0);
    let imm = i.immediate8() as u32;
    let mut env = Env::from_mxcsr(cpu.s.fpu.mxcsr);
    let rc = if imm & 4 != 0 { env.rc } else { imm & 3 };
    let mut r = if SCALAR { get_reg(cpu, dst) } else { 0 };
    let n = if SCALAR { 1 } else { nlanes(f) };
    for k in 0..n {
        let v = env.round_int(f, lane(b, f, k), rc, imm & 8 != 0);
        r = set_lane(r, f, k, v);
    }
    fp_commit(cpu, &env)?;
    set_reg(cpu, dst, r);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    Some(match code.mnemonic() {
        Addps | Subps | Mulps | Divps | Minps | Maxps | Sqrtps | Rcpps | Rsqrtps | Cmpps => farith::<false, false>,
        Addss | Subss | Mulss | Divss | Minss | Maxss | Sqrtss | Rcpss | Rsqrtss | Cmpss => farith::<false, true>,
        Addpd | Subpd | Mulpd | Divpd | Minpd | Maxpd | Sqrtpd | Cmppd => farith::<true, false>,
        Addsd | Subsd | Mulsd | Divsd | Minsd | Maxsd | Sqrtsd | Cmpsd => farith::<true, true>,
        Comiss | Ucomiss => comis::<false>,
        Comisd | Ucomisd => comis::<true>,
        Haddps | Hsubps | Addsubps => horizontal::<false>,
        Haddpd | Hsubpd | Addsubpd => horizontal::<true>,
        Dpps => dp::<false>,
        Dppd => dp::<true>,
        Roundps => round::<false, false>,
        Roundss => round::<false, true>,
        Roundpd => round::<true, false>,
        Roundsd => round::<true, true>,
        _ => return None,
    })
}
