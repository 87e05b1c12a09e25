//! x87 loads, stores and conversions: FLD/FST/FSTP (m32, m64, m80, ST(i)),
//! FILD/FIST/FISTP/FISTTP (m16, m32, m64), FBLD/FBSTP, the constant loads
//! (FLD1, FLDZ, FLDPI, ...), FXCH, FCMOVcc, FFREE(P), FINCSTP/FDECSTP.

use super::float80::*;
use super::stack::{sti, TAG_EMPTY};
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, MemorySize};

/// Convert a memory operand (m32fp, m64fp, m16int, m32int) to F80 for
/// arithmetic and compares, exactly: an SNaN stays signalling and a
/// single/double denormal becomes a (normal) extended value, so the
/// operation itself sees the encodings it reports on... except that the
/// denormal must still raise DE: see `mem_is_denormal`.
pub fn mem_operand(size: MemorySize, raw: u64) -> F80 {
    match size {
        MemorySize::Float32 => from_f32(raw as u32),
        MemorySize::Float64 => from_f64(raw),
        MemorySize::Int16 => from_int(raw as u16 as i16 as i64),
        MemorySize::Int32 => from_int(raw as u32 as i32 as i64),
        _ => from_int(raw as i64),
    }
}

/// A single or double memory operand that is denormal.
pub fn mem_is_denormal(size: MemorySize, raw: u64) -> bool {
    match size {
        MemorySize::Float32 => raw & 0x7f80_0000 == 0 && raw & 0x7f_ffff != 0,
        MemorySize::Float64 => raw & 0x7ff0_0000_0000_0000 == 0 && raw & 0xf_ffff_ffff_ffff != 0,
        _ => false,
    }
}

/// FLD m32fp/m64fp/m16int/m32int/m64int: SNaN → IE (quieted), denormal
/// source → DE (the load completes even with DE unmasked).
pub fn load_mem_operand(env: &mut Env, size: MemorySize, raw: u64) -> F80 {
    match size {
        MemorySize::Float32 => {
            let v = raw as u32;
            if v & 0x7f80_0000 == 0 && v & 0x7f_ffff != 0 {
                env.flags |= DE;
            }
            quiet_snan(env, from_f32(v))
        }
        MemorySize::Float64 => {
            if raw & 0x7ff0_0000_0000_0000 == 0 && raw & 0xf_ffff_ffff_ffff != 0 {
                env.flags |= DE;
            }
            quiet_snan(env, from_f64(raw))
        }
        MemorySize::Int16 => from_int(raw as u16 as i16 as i64),
        MemorySize::Int32 => from_int(raw as u32 as i32 as i64),
        _ => from_int(raw as i64),
    }
}

fn quiet_snan(env: &mut Env, v: F80) -> F80 {
    if v.class() == Class::SNaN {
        env.flags |= IE;
        v.quiet()
    } else {
        v
    }
}

/// FLD m32fp/m64fp/m80fp and FILD.
fn fld_mem(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let size = i.memory_size();
    let mut env = Env::new(cpu.s.fpu.fcw);
    let v = match size {
        MemorySize::Float80 => F80::from_bits(cpu.read_m80(bus, i)?),
        MemorySize::Bcd => from_bcd(cpu.read_m80(bus, i)?),
        _ => {
            let raw = cpu.read_op(bus, i, 0)?;
            load_mem_operand(&mut env, size, raw)
        }
    };
    let f = &mut cpu.s.fpu;
    if !f.is_empty(7) {
        if f.overflow() {
            f.push(F80::INDEFINITE);
        }
        return Ok(());
    }
    // Only an unmasked IE (SNaN source) stops the load; DE does not.
    f.finish(&env);
    if env.flags & IE == 0 || env.masked(IE) {
        f.push(v);
    }
    Ok(())
}

/// FLD ST(i): push a copy (no exceptions but the stack faults).
fn fld_sti(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    let s = sti(i.op0_register());
    if f.is_empty(s) {
        if f.underflow() {
            f.push_checked(F80::INDEFINITE);
            // An overflow on top of the underflow keeps C1 = 0 (host).
            f.set_c1(false);
        }
        return Ok(());
    }
    let v = f.st(s);
    f.set_c1(false);
    f.push_checked(v);
    Ok(())
}

/// The 64-bit significands of the x87 constants, truncated, with the
/// direction of the rest (true if the dropped bits exceed one half).
/// Hardware rounds them per RC but ignores PC and raises no PE.
const CONSTS: [(u16, u64, bool); 5] = [
    (0x4000, 0xc90f_daa2_2168_c234, true),  // π
    (0x3fff, 0xb8aa_3b29_5c17_f0bb, true),  // log2(e)
    (0x4000, 0xd49a_784b_cd1b_8afe, false), // log2(10)
    (0x3ffd, 0x9a20_9a84_fbcf_f798, true),  // log10(2)
    (0x3ffe, 0xb172_17f7_d1cf_79ab, true),  // ln(2)
];

fn fld_const<const K: u8>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    let v = match K {
        0 => F80::ONE,
        1 => F80::ZERO,
        k => {
            let (se, sig, above_half) = CONSTS[k as usize - 2];
            let up = match (f.fcw >> 10) & 3 {
                0 => above_half,
                2 => true,
                _ => false,
            };
            F80 { se, sig: sig + up as u64 }
        }
    };
    f.set_c1(false);
    f.push_checked(v);
    Ok(())
}

/// FST/FSTP to memory (m32fp, m64fp, m80fp) and FIST/FISTP/FISTTP/FBSTP.
fn fst_mem<const POP: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let size = i.memory_size();
    let truncate = matches!(i.code(), Code::Fisttp_m16int | Code::Fisttp_m32int | Code::Fisttp_m64int);
    let f = &cpu.s.fpu;
    let mut env = Env::new(f.fcw);
    let empty = f.is_empty(0);
    let v = f.st(0);
    let out: Option<u128> = if empty {
        None
    } else {
        Some(match size {
            MemorySize::Float32 => store_f32(&mut env, v) as u128,
            MemorySize::Float64 => store_f64(&mut env, v) as u128,
            MemorySize::Float80 => v.to_bits(),
            MemorySize::Bcd => store_bcd(&mut env, v),
            MemorySize::Int16 => store_int(&mut env, v, 16, truncate) as u128,
            MemorySize::Int32 => store_int(&mut env, v, 32, truncate) as u128,
            _ => store_int(&mut env, v, 64, truncate) as u128,
        })
    };
    // With OE/UE unmasked a memory store reports only that exception.
    if env.flags & !env.masks & (OE | UE) != 0 {
        env.flags &= !PE;
    }
    let unmasked = env.flags & !env.masks & (IE | DE | ZE | OE | UE) != 0;
    let out = match out {
        Some(o) => {
            // An unmasked exception other than PE stores nothing.
            if env.flags & !env.masks & (IE | DE | ZE | OE | UE) != 0 {
                None
            } else {
                Some(o)
            }
        }
        None if f.fcw & IE != 0 => Some(indefinite_for(size)),
        None => None,
    };
    if let Some(o) = out {
        match size {
            MemorySize::Float80 | MemorySize::Bcd => cpu.write_m80(bus, i, o)?,
            _ => cpu.write_op(bus, i, 0, o as u64)?,
        }
    }
    let f = &mut cpu.s.fpu;
    if empty {
        if f.underflow() && POP {
            f.pop();
        }
        return Ok(());
    }
    f.finish(&env);
    if !unmasked && POP {
        f.pop();
    }
    Ok(())
}

fn indefinite_for(size: MemorySize) -> u128 {
    match size {
        MemorySize::Float32 => 0xffc0_0000,
        MemorySize::Float64 => 0xfff8_0000_0000_0000,
        MemorySize::Float80 => F80::INDEFINITE.to_bits(),
        MemorySize::Bcd => 0xffff_c000_0000_0000_0000,
        MemorySize::Int16 => 0x8000,
        MemorySize::Int32 => 0x8000_0000,
        _ => 0x8000_0000_0000_0000,
    }
}

/// Shared by FST m32fp/m64fp: NaN narrowing keeps the top significand bits.
fn store_narrow(env: &mut Env, v: F80, fmt: Format) -> Option<Rounded> {
    match v.class() {
        Class::Unsupported => {
            env.flags |= IE;
            None
        }
        Class::SNaN | Class::QNaN => {
            if v.class() == Class::SNaN {
                env.flags |= IE;
            }
            let _ = fmt;
            None
        }
        Class::Inf => Some(Rounded {
            sign: v.sign(),
            exp: 0,
            sig: 1 << 63,
            inf: true,
        }),
        Class::Zero => Some(Rounded {
            sign: v.sign(),
            exp: 0,
            sig: 0,
            inf: false,
        }),
        // A denormal source raises no DE here (checked against hardware).
        _ => Some(narrow(env, v, fmt)),
    }
}

pub fn store_f32(env: &mut Env, v: F80) -> u32 {
    match store_narrow(env, v, SINGLE) {
        Some(r) => r.to_f32(),
        None if v.class() == Class::Unsupported => 0xffc0_0000,
        None => ((v.sign() as u32) << 31) | 0x7fc0_0000 | ((v.sig >> 40) as u32 & 0x7f_ffff),
    }
}

pub fn store_f64(env: &mut Env, v: F80) -> u64 {
    match store_narrow(env, v, DOUBLE) {
        Some(r) => r.to_f64(),
        None if v.class() == Class::Unsupported => 0xfff8_0000_0000_0000,
        None => ((v.sign() as u64) << 63) | 0x7ff8_0000_0000_0000 | ((v.sig >> 11) & 0xf_ffff_ffff_ffff),
    }
}

/// FIST/FISTP/FISTTP: round per RC (or truncate), IE with the integer
/// indefinite when out of range or not a number.
pub fn store_int(env: &mut Env, v: F80, bits: u32, truncate: bool) -> u64 {
    let indefinite = 1u64 << (bits - 1);
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    match v.class() {
        Class::Zero => return 0,
        Class::Normal | Class::Denormal => {}
        _ => {
            env.flags |= IE;
            return indefinite;
        }
    }
    let (s, e, m) = v.unpack();
    if e >= 63 {
        // |v| ≥ 2^63: only -2^63 fits, and only in 64 bits.
        if bits == 64 && s && e == 63 && m == 1 << 63 {
            return indefinite;
        }
        env.flags |= IE;
        return indefinite;
    }
    let rc = if truncate { 3 } else { env.rc };
    let (mag, inexact, up) = int_part(s, e, m, rc);
    let limit = if s { 1u64 << (bits - 1) } else { (1u64 << (bits - 1)) - 1 };
    if mag > limit {
        env.flags |= IE;
        return indefinite;
    }
    if inexact {
        env.flags |= PE;
        env.round_up = up;
    }
    (if s { mag.wrapping_neg() } else { mag }) & mask
}

/// FBLD: 18 packed BCD digits and a sign byte (digits above 9 are not
/// checked by hardware either; they are taken at face value).
pub fn from_bcd(raw: u128) -> F80 {
    let mut v: u64 = 0;
    for k in (0..9).rev() {
        let byte = (raw >> (8 * k)) as u8;
        v = v * 100 + (byte >> 4) as u64 * 10 + (byte & 15) as u64;
    }
    let sign = (raw >> 79) & 1 != 0;
    let r = from_int(v as i64);
    r.with_sign(sign)
}

/// FBSTP: round per RC, IE with the BCD indefinite beyond 18 digits.
pub fn store_bcd(env: &mut Env, v: F80) -> u128 {
    let indefinite = 0xffff_c000_0000_0000_0000u128;
    let sign = (v.sign() as u128) << 79;
    match v.class() {
        Class::Zero => return sign,
        Class::Normal | Class::Denormal => {}
        _ => {
            env.flags |= IE;
            return indefinite;
        }
    }
    let (s, e, m) = v.unpack();
    if e >= 63 {
        env.flags |= IE;
        return indefinite;
    }
    let (mut mag, inexact, up) = int_part(s, e, m, env.rc);
    if mag > 999_999_999_999_999_999 {
        env.flags |= IE;
        return indefinite;
    }
    if inexact {
        env.flags |= PE;
        env.round_up = up;
    }
    let mut out = sign;
    for k in 0..18 {
        out |= ((mag % 10) as u128) << (4 * k);
        mag /= 10;
    }
    out
}

/// FST/FSTP ST(i).
fn fst_sti<const POP: bool>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    let d = sti(i.op0_register());
    if f.is_empty(0) {
        if f.underflow() {
            f.set_st(d, F80::INDEFINITE);
            if POP {
                f.pop();
            }
        }
        return Ok(());
    }
    f.set_c1(false);
    let v = f.st(0);
    f.set_st(d, v);
    if POP {
        f.pop();
    }
    Ok(())
}

/// FSTPNCE ST(i) (D9 D8+i): FSTP ST(i), except that an empty ST(0) is no
/// stack fault: nothing is stored, C1 is cleared and the stack pops
/// (checked on the AMD host; the DF D0/D8 aliases do fault).
fn fstpnce(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if !cpu.s.fpu.is_empty(0) {
        return fst_sti::<true>(cpu, bus, i);
    }
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    f.set_c1(false);
    f.pop();
    Ok(())
}

/// FXCH ST(i). A masked underflow first fills the empty side(s) with the indefinite.
fn fxch(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    let s = if i.op_count() == 0 { 1 } else { sti(i.op1_register()) };
    if f.is_empty(0) || f.is_empty(s) {
        if !f.underflow() {
            return Ok(());
        }
        for k in [0, s] {
            if f.is_empty(k) {
                f.set_st(k, F80::INDEFINITE);
            }
        }
    } else {
        f.set_c1(false);
    }
    let (a, b) = (f.st[f.phys(0)], f.st[f.phys(s)]);
    let (ta, tb) = (f.tag(f.phys(0)), f.tag(f.phys(s)));
    let (p0, ps) = (f.phys(0), f.phys(s));
    f.st[p0] = b;
    f.st[ps] = a;
    f.set_tag(p0, tb);
    f.set_tag(ps, ta);
    Ok(())
}

/// FCMOVcc ST(0), ST(i) on CF/ZF/PF.
fn fcmov<const CC: u8>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let s = sti(i.op1_register());
    let (cf, zf, pf) = (cpu.s.cf(), cpu.s.zf(), cpu.s.pf());
    let cond = match CC & 3 {
        0 => cf,
        1 => zf,
        2 => cf || zf,
        _ => pf,
    } ^ (CC & 4 != 0);
    let f = &mut cpu.s.fpu;
    if f.is_empty(0) || f.is_empty(s) {
        if f.underflow() {
            f.set_st(0, F80::INDEFINITE);
        }
        return Ok(());
    }
    // C1 is left alone when the stack is fine (checked against the host).
    if cond {
        let v = f.st(s);
        f.set_st(0, v);
    }
    Ok(())
}

fn ffree<const POP: bool>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    let p = f.phys(sti(i.op0_register()));
    // C1 ends clear (checked on the host).
    f.set_c1(false);
    f.set_tag(p, TAG_EMPTY);
    if POP {
        // FFREEP = FFREE ST(i) then an ordinary pop, which empties ST(0)
        // too (checked against the host).
        f.pop();
    }
    Ok(())
}

fn fincdecstp<const INC: bool>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)?;
    let f = &mut cpu.s.fpu;
    f.set_c1(false);
    f.set_top(if INC { f.top() + 1 } else { f.top().wrapping_sub(1) });
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    Some(match code {
        Fld_m32fp | Fld_m64fp | Fld_m80fp | Fild_m16int | Fild_m32int | Fild_m64int | Fbld_m80bcd => fld_mem,
        Fld_sti => fld_sti,
        Fld1 => fld_const::<0>,
        Fldz => fld_const::<1>,
        Fldpi => fld_const::<2>,
        Fldl2e => fld_const::<3>,
        Fldl2t => fld_const::<4>,
        Fldlg2 => fld_const::<5>,
        Fldln2 => fld_const::<6>,
        Fst_m32fp | Fst_m64fp | Fist_m16int | Fist_m32int => fst_mem::<false>,
        Fstp_m32fp | Fstp_m64fp | Fstp_m80fp | Fistp_m16int | Fistp_m32int | Fistp_m64int | Fisttp_m16int | Fisttp_m32int
        | Fisttp_m64int | Fbstp_m80bcd => fst_mem::<true>,
        Fst_sti => fst_sti::<false>,
        Fstp_sti | Fstp_sti_DFD0 | Fstp_sti_DFD8 => fst_sti::<true>,
        Fstpnce_sti => fstpnce,
        Fxch_st0_sti | Fxch_st0_sti_DDC8 | Fxch_st0_sti_DFC8 => fxch,
        Fcmovb_st0_sti => fcmov::<0>,
        Fcmove_st0_sti => fcmov::<1>,
        Fcmovbe_st0_sti => fcmov::<2>,
        Fcmovu_st0_sti => fcmov::<3>,
        Fcmovnb_st0_sti => fcmov::<4>,
        Fcmovne_st0_sti => fcmov::<5>,
        Fcmovnbe_st0_sti => fcmov::<6>,
        Fcmovnu_st0_sti => fcmov::<7>,
        Ffree_sti => ffree::<false>,
        Ffreep_sti => ffree::<true>,
        Fincstp => fincdecstp::<true>,
        Fdecstp => fincdecstp::<false>,
        _ => return None,
    })
}
