//! SSE4.2 packed string compares: PCMPESTRI, PCMPESTRM, PCMPISTRI,
//! PCMPISTRM (SDM Vol. 2B, 4.1 "Imm8 control byte operation for
//! PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM"). Memory operands need no
//! alignment.

use super::*;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::state::{flags, RAX, RCX, RDX};
use iced_x86::{Code, Instruction, Mnemonic};

/// Elements of a vector in the imm8[1:0] format, as i32, and their count.
fn elements(v: u128, fmt: u8) -> ([i32; 16], usize) {
    let mut e = [0i32; 16];
    let n = if fmt & 1 != 0 { 8 } else { 16 };
    for (k, x) in e.iter_mut().enumerate().take(n) {
        *x = match fmt & 3 {
            0 => (v >> (8 * k)) as u8 as i32,
            1 => (v >> (16 * k)) as u16 as i32,
            2 => (v >> (8 * k)) as u8 as i8 as i32,
            _ => (v >> (16 * k)) as u16 as i16 as i32,
        };
    }
    (e, n)
}

fn implicit_len(e: &[i32; 16], n: usize) -> usize {
    e[..n].iter().position(|&x| x == 0).unwrap_or(n)
}

fn explicit_len(r: u64, wide: bool, n: usize) -> usize {
    let v = if wide { r as i64 } else { r as u32 as i32 as i64 };
    (v.unsigned_abs()).min(n as u64) as usize
}

/// IntRes2 for the given operands, lengths and control byte.
pub fn compare(a: u128, b: u128, la: usize, lb: usize, imm: u8) -> u16 {
    let (ea, n) = elements(a, imm);
    let (eb, _) = elements(b, imm);
    let agg = (imm >> 2) & 3;
    let mut res1 = 0u16;
    for j in 0..n {
        let bit = match agg {
            // Equal any: b[j] equals some valid a[i].
            0 => j < lb && (0..la).any(|i| ea[i] == eb[j]),
            // Ranges: a holds (low, high) pairs.
            1 => j < lb && (0..la / 2).any(|k| eb[j] >= ea[2 * k] && eb[j] <= ea[2 * k + 1]),
            // Equal each: both invalid → true, one invalid → false.
            2 => match (j < la, j < lb) {
                (true, true) => ea[j] == eb[j],
                (false, false) => true,
                _ => false,
            },
            // Equal ordered: a (as a substring) starts at b[j].
            _ => (0..n - j).all(|k| {
                if k >= la {
                    true
                } else if j + k >= lb {
                    false
                } else {
                    ea[k] == eb[j + k]
                }
            }),
        };
        res1 |= (bit as u16) << j;
    }
    let all = if n == 16 { 0xffff } else { 0xff };
    match (imm >> 4) & 3 {
        1 => !res1 & all,
        3 => res1 ^ (((1u32 << lb) - 1) as u16 & all),
        _ => res1,
    }
}

fn pcmpstr(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    use Mnemonic::*;
    check_sse(cpu)?;
    let b = read_op(cpu, bus, i, 1)?;
    let a = get_reg(cpu, i.op_register(0));
    let imm = i.immediate8();
    let m = i.mnemonic();
    let n = if imm & 1 != 0 { 8 } else { 16 };
    let explicit = matches!(m, Pcmpestri | Pcmpestrm | Pcmpestri64 | Pcmpestrm64);
    let (la, lb) = if explicit {
        let wide = matches!(m, Pcmpestri64 | Pcmpestrm64);
        (explicit_len(cpu.s.gpr[RAX], wide, n), explicit_len(cpu.s.gpr[RDX], wide, n))
    } else {
        (implicit_len(&elements(a, imm).0, n), implicit_len(&elements(b, imm).0, n))
    };
    let res = compare(a, b, la, lb, imm);
    if matches!(m, Pcmpestri | Pcmpistri | Pcmpestri64) {
        let idx = if res == 0 {
            n as u64
        } else if imm & 0x40 != 0 {
            15 - res.leading_zeros() as u64
        } else {
            res.trailing_zeros() as u64
        };
        cpu.s.gpr[RCX] = idx;
    } else {
        cpu.s.fpu.xmm[0] = if imm & 0x40 == 0 {
            res as u128
        } else {
            let size = 16 / n;
            (0..n).fold(0u128, |acc, k| {
                if res & (1 << k) != 0 {
                    acc | mask_to(u128::MAX, size) << (size * 8 * k)
                } else {
                    acc
                }
            })
        };
    }
    let mut f = 0;
    if res != 0 {
        f |= flags::CF;
    }
    if lb < n {
        f |= flags::ZF;
    }
    if la < n {
        f |= flags::SF;
    }
    if res & 1 != 0 {
        f |= flags::OF;
    }
    cpu.s.set_flag_bits(flags::ARITH, f);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    match code.mnemonic() {
        Pcmpestri | Pcmpestrm | Pcmpistri | Pcmpistrm | Pcmpestri64 | Pcmpestrm64 => Some(pcmpstr),
        _ => None,
    }
}
