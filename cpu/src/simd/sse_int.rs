//! Packed integer arithmetic, logic, compares and shifts, MMX and SSE forms
//! alike (MMX operates on the low 8 bytes): PADD*/PSUB* (wrapping and
//! saturating), PMUL*, PMADD*, PAVG*, PMIN*/PMAX*, PSADBW, PAND/POR/PXOR and
//! the bitwise PS/PD forms, PCMPEQ*/PCMPGT*, PSIGN*/PABS*, PSHUFB, PHADD*/
//! PHSUB*, PACK*, PUNPCK*, PSLL/PSRL/PSRA, PSLLDQ/PSRLDQ.

use super::*;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, Mnemonic};

macro_rules! map2 {
    ($to:ident, $from:ident, $a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        let (aa, bb) = ($to($a), $to($b));
        $from(core::array::from_fn(|k| {
            let ($x, $y) = (aa[k], bb[k]);
            $e
        }))
    }};
}

fn sat_i8(v: i32) -> u8 {
    v.clamp(-128, 127) as i8 as u8
}
fn sat_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}
fn sat_i16(v: i32) -> u16 {
    v.clamp(-32768, 32767) as i16 as u16
}
fn sat_u16(v: i32) -> u16 {
    v.clamp(0, 65535) as u16
}

fn mask(c: bool) -> u64 {
    if c {
        u64::MAX
    } else {
        0
    }
}

/// A short list of vector elements without heap allocation.
struct Elems {
    e: [u64; 32],
    len: usize,
}

impl Elems {
    fn new() -> Elems {
        Elems { e: [0; 32], len: 0 }
    }
    fn push(&mut self, x: u64) {
        self.e[self.len] = x;
        self.len += 1;
    }
    fn as_slice(&self) -> &[u64] {
        &self.e[..self.len]
    }
}

/// Elements of `size` bytes of an `n`-byte vector, as u64s.
fn elems(v: u128, size: usize, n: usize) -> Elems {
    let m = if size == 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
    let mut out = Elems::new();
    for k in 0..n / size {
        out.push((v >> (8 * size * k)) as u64 & m);
    }
    out
}

fn pack_elems(e: &[u64], size: usize) -> u128 {
    let m = if size == 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
    e.iter()
        .enumerate()
        .fold(0u128, |acc, (k, x)| acc | ((x & m) as u128) << (8 * size * k))
}

fn sext(v: u64, size: usize) -> i64 {
    let sh = 64 - 8 * size as u32;
    ((v << sh) as i64) >> sh
}

/// The binary packed-integer operation `m` on `n`-byte vectors a (dest) and b (source).
pub fn binop(m: Mnemonic, a: u128, b: u128, n: usize) -> Option<u128> {
    use Mnemonic::*;
    Some(match m {
        Paddb => map2!(to_b, from_b, a, b, |x, y| x.wrapping_add(y)),
        Paddw => map2!(to_w, from_w, a, b, |x, y| x.wrapping_add(y)),
        Paddd => map2!(to_d, from_d, a, b, |x, y| x.wrapping_add(y)),
        Paddq => map2!(to_q, from_q, a, b, |x, y| x.wrapping_add(y)),
        Psubb => map2!(to_b, from_b, a, b, |x, y| x.wrapping_sub(y)),
        Psubw => map2!(to_w, from_w, a, b, |x, y| x.wrapping_sub(y)),
        Psubd => map2!(to_d, from_d, a, b, |x, y| x.wrapping_sub(y)),
        Psubq => map2!(to_q, from_q, a, b, |x, y| x.wrapping_sub(y)),
        Paddsb => map2!(to_b, from_b, a, b, |x, y| sat_i8(x as i8 as i32 + y as i8 as i32)),
        Paddsw => map2!(to_w, from_w, a, b, |x, y| sat_i16(x as i16 as i32 + y as i16 as i32)),
        Paddusb => map2!(to_b, from_b, a, b, |x, y| x.saturating_add(y)),
        Paddusw => map2!(to_w, from_w, a, b, |x, y| x.saturating_add(y)),
        Psubsb => map2!(to_b, from_b, a, b, |x, y| sat_i8(x as i8 as i32 - y as i8 as i32)),
        Psubsw => map2!(to_w, from_w, a, b, |x, y| sat_i16(x as i16 as i32 - y as i16 as i32)),
        Psubusb => map2!(to_b, from_b, a, b, |x, y| x.saturating_sub(y)),
        Psubusw => map2!(to_w, from_w, a, b, |x, y| x.saturating_sub(y)),
        Pmullw => map2!(to_w, from_w, a, b, |x, y| x.wrapping_mul(y)),
        Pmulhw => map2!(to_w, from_w, a, b, |x, y| ((x as i16 as i32 * y as i16 as i32) >> 16) as u16),
        Pmulhuw => map2!(to_w, from_w, a, b, |x, y| ((x as u32 * y as u32) >> 16) as u16),
        Pmulhrsw => map2!(to_w, from_w, a, b, |x, y| ((((x as i16 as i32 * y as i16 as i32) >> 14) + 1) >> 1)
            as u16),
        Pmulld => map2!(to_d, from_d, a, b, |x, y| x.wrapping_mul(y)),
        Pmuludq => map2!(to_q, from_q, a, b, |x, y| (x as u32 as u64) * (y as u32 as u64)),
        Pmuldq => map2!(to_q, from_q, a, b, |x, y| ((x as i32 as i64) * (y as i32 as i64)) as u64),
        Pmaddwd => {
            let (aw, bw) = (to_w(a), to_w(b));
            from_d(core::array::from_fn(|k| {
                let p0 = aw[2 * k] as i16 as i32 * bw[2 * k] as i16 as i32;
                let p1 = aw[2 * k + 1] as i16 as i32 * bw[2 * k + 1] as i16 as i32;
                p0.wrapping_add(p1) as u32
            }))
        }
        Pmaddubsw => {
            let (ab, bb) = (to_b(a), to_b(b));
            from_w(core::array::from_fn(|k| {
                let p0 = ab[2 * k] as i32 * bb[2 * k] as i8 as i32;
                let p1 = ab[2 * k + 1] as i32 * bb[2 * k + 1] as i8 as i32;
                sat_i16(p0 + p1)
            }))
        }
        Pavgb => map2!(to_b, from_b, a, b, |x, y| ((x as u16 + y as u16 + 1) >> 1) as u8),
        Pavgw => map2!(to_w, from_w, a, b, |x, y| ((x as u32 + y as u32 + 1) >> 1) as u16),
        Pminub => map2!(to_b, from_b, a, b, |x, y| x.min(y)),
        Pmaxub => map2!(to_b, from_b, a, b, |x, y| x.max(y)),
        Pminsb => map2!(to_b, from_b, a, b, |x, y| (x as i8).min(y as i8) as u8),
        Pmaxsb => map2!(to_b, from_b, a, b, |x, y| (x as i8).max(y as i8) as u8),
        Pminuw => map2!(to_w, from_w, a, b, |x, y| x.min(y)),
        Pmaxuw => map2!(to_w, from_w, a, b, |x, y| x.max(y)),
        Pminsw => map2!(to_w, from_w, a, b, |x, y| (x as i16).min(y as i16) as u16),
        Pmaxsw => map2!(to_w, from_w, a, b, |x, y| (x as i16).max(y as i16) as u16),
        Pminud => map2!(to_d, from_d, a, b, |x, y| x.min(y)),
        Pmaxud => map2!(to_d, from_d, a, b, |x, y| x.max(y)),
        Pminsd => map2!(to_d, from_d, a, b, |x, y| (x as i32).min(y as i32) as u32),
        Pmaxsd => map2!(to_d, from_d, a, b, |x, y| (x as i32).max(y as i32) as u32),
        Psadbw => {
            let (ab, bb) = (to_b(a), to_b(b));
            from_q(core::array::from_fn(|k| {
                (0..8).map(|j| ab[8 * k + j].abs_diff(bb[8 * k + j]) as u64).sum()
            }))
        }
        Pand | Andps | Andpd => a & b,
        Pandn | Andnps | Andnpd => !a & b,
        Por | Orps | Orpd => a | b,
        Pxor | Xorps | Xorpd => a ^ b,
        Pcmpeqb => map2!(to_b, from_b, a, b, |x, y| mask(x == y) as u8),
        Pcmpeqw => map2!(to_w, from_w, a, b, |x, y| mask(x == y) as u16),
        Pcmpeqd => map2!(to_d, from_d, a, b, |x, y| mask(x == y) as u32),
        Pcmpeqq => map2!(to_q, from_q, a, b, |x, y| mask(x == y)),
        Pcmpgtb => map2!(to_b, from_b, a, b, |x, y| mask(x as i8 > y as i8) as u8),
        Pcmpgtw => map2!(to_w, from_w, a, b, |x, y| mask(x as i16 > y as i16) as u16),
        Pcmpgtd => map2!(to_d, from_d, a, b, |x, y| mask(x as i32 > y as i32) as u32),
        Pcmpgtq => map2!(to_q, from_q, a, b, |x, y| mask(x as i64 > y as i64)),
        Psignb => map2!(to_b, from_b, a, b, |x, y| match (y as i8).signum() {
            -1 => x.wrapping_neg(),
            0 => 0,
            _ => x,
        }),
        Psignw => map2!(to_w, from_w, a, b, |x, y| match (y as i16).signum() {
            -1 => x.wrapping_neg(),
            0 => 0,
            _ => x,
        }),
        Psignd => map2!(to_d, from_d, a, b, |x, y| match (y as i32).signum() {
            -1 => x.wrapping_neg(),
            0 => 0,
            _ => x,
        }),
        Pabsb => map2!(to_b, from_b, b, b, |x, _y| (x as i8).unsigned_abs()),
        Pabsw => map2!(to_w, from_w, b, b, |x, _y| (x as i16).unsigned_abs()),
        Pabsd => map2!(to_d, from_d, b, b, |x, _y| (x as i32).unsigned_abs()),
        Pshufb => {
            let (ab, bb) = (to_b(a), to_b(b));
            from_b(core::array::from_fn(|j| {
                if bb[j] & 0x80 != 0 {
                    0
                } else {
                    ab[bb[j] as usize & (n - 1)]
                }
            }))
        }
        Phaddw | Phaddd | Phaddsw | Phsubw | Phsubd | Phsubsw => {
            let size = if matches!(m, Phaddd | Phsubd) { 4 } else { 2 };
            let mut out = Elems::new();
            for v in [a, b] {
                let e = elems(v, size, n);
                for p in e.as_slice().chunks(2) {
                    let (x, y) = (sext(p[0], size), sext(p[1], size));
                    out.push(match m {
                        Phaddw | Phaddd => x.wrapping_add(y) as u64,
                        Phsubw | Phsubd => x.wrapping_sub(y) as u64,
                        Phaddsw => sat_i16((x + y) as i32) as u64,
                        _ => sat_i16((x - y) as i32) as u64,
                    });
                }
            }
            pack_elems(out.as_slice(), size)
        }
        Packsswb | Packssdw | Packuswb | Packusdw => {
            let size = if matches!(m, Packsswb | Packuswb) { 2 } else { 4 };
            let mut out = Elems::new();
            for v in [a, b] {
                for &x in elems(v, size, n).as_slice() {
                    let x = sext(x, size) as i32;
                    out.push(match m {
                        Packsswb => sat_i8(x) as u64,
                        Packuswb => sat_u8(x) as u64,
                        Packssdw => sat_i16(x) as u64,
                        _ => sat_u16(x) as u64,
                    });
                }
            }
            pack_elems(out.as_slice(), size / 2)
        }
        Punpcklbw | Punpcklwd | Punpckldq | Punpcklqdq | Punpckhbw | Punpckhwd | Punpckhdq | Punpckhqdq | Unpcklps | Unpcklpd
        | Unpckhps | Unpckhpd => {
            let size = match m {
                Punpcklbw | Punpckhbw => 1,
                Punpcklwd | Punpckhwd => 2,
                Punpckldq | Punpckhdq | Unpcklps | Unpckhps => 4,
                _ => 8,
            };
            let high = matches!(m, Punpckhbw | Punpckhwd | Punpckhdq | Punpckhqdq | Unpckhps | Unpckhpd);
            let (ea, eb) = (elems(a, size, n), elems(b, size, n));
            let half = ea.len / 2;
            let start = if high { half } else { 0 };
            let mut out = Elems::new();
            for k in start..start + half {
                out.push(ea.e[k]);
                out.push(eb.e[k]);
            }
            pack_elems(out.as_slice(), size)
        }
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad => shift(m, a, b as u64),
        _ => return None,
    })
}

/// PSLL/PSRL/PSRA by a 64-bit count: counts past the element width give 0
/// (or the sign fill for PSRA).
pub fn shift(m: Mnemonic, a: u128, count: u64) -> u128 {
    use Mnemonic::*;
    let c = count;
    match m {
        Psllw => from_w(to_w(a).map(|x| if c >= 16 { 0 } else { x << c })),
        Pslld => from_d(to_d(a).map(|x| if c >= 32 { 0 } else { x << c })),
        Psllq => from_q(to_q(a).map(|x| if c >= 64 { 0 } else { x << c })),
        Psrlw => from_w(to_w(a).map(|x| if c >= 16 { 0 } else { x >> c })),
        Psrld => from_d(to_d(a).map(|x| if c >= 32 { 0 } else { x >> c })),
        Psrlq => from_q(to_q(a).map(|x| if c >= 64 { 0 } else { x >> c })),
        Psraw => from_w(to_w(a).map(|x| ((x as i16) >> c.min(15)) as u16)),
        _ => from_d(to_d(a).map(|x| ((x as i32) >> c.min(31)) as u32)),
    }
}

/// dest = op(dest, src) for the two-operand forms (MMX and SSE).
fn pbin(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mm = enter(cpu, i)?;
    let n = width(mm);
    let b = read_op(cpu, bus, i, 1)?;
    let a = get_reg(cpu, i.op_register(0));
    let r = binop(i.mnemonic(), a, b, n).expect("claimed by lookup");
    set_reg(cpu, i.op_register(0), mask_to(r, n));
    Ok(())
}

/// PSLLW/D/Q, PSRLW/D/Q, PSRAW/D by an immediate, and PSLLDQ/PSRLDQ.
fn pshift_imm(cpu: &mut Cpu, _bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mm = enter(cpu, i)?;
    let n = width(mm);
    let r = i.op_register(0);
    let a = get_reg(cpu, r);
    let c = i.immediate(1) & 0xff;
    let v = match i.mnemonic() {
        Mnemonic::Pslldq => {
            if c > 15 {
                0
            } else {
                a << (8 * c)
            }
        }
        Mnemonic::Psrldq => {
            if c > 15 {
                0
            } else {
                a >> (8 * c)
            }
        }
        m => shift(m, a, c),
    };
    set_reg(cpu, r, mask_to(v, n));
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    let m = code.mnemonic();
    let imm_shift = format!("{code:?}").ends_with("imm8");
    Some(match m {
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad | Pslldq | Psrldq if imm_shift => pshift_imm,
        Pslldq | Psrldq => return None,
        _ => {
            binop(m, 0, 0, 16)?;
            pbin
        }
    })
}
