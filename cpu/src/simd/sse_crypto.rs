//! PCLMULQDQ and AES-NI in their legacy SSE encodings: AESENC,
//! AESENCLAST, AESDEC, AESDECLAST, AESIMC, AESKEYGENASSIST (SDM Vol. 2,
//! and FIPS-197 for the round functions). The S-boxes are computed at
//! compile time from their definition (inverse in GF(2^8) followed by the
//! affine map).

use super::*;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, Mnemonic};

/// Multiply in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

const fn build_sbox() -> ([u8; 256], [u8; 256]) {
    let mut s = [0u8; 256];
    let mut inv = [0u8; 256];
    let mut x = 0usize;
    while x < 256 {
        // Multiplicative inverse as x^254 (0 maps to 0).
        let mut y = 1u8;
        let mut k = 0;
        while k < 254 {
            y = gmul(y, x as u8);
            k += 1;
        }
        if x == 0 {
            y = 0;
        }
        let v = y ^ y.rotate_left(1) ^ y.rotate_left(2) ^ y.rotate_left(3) ^ y.rotate_left(4) ^ 0x63;
        s[x] = v;
        inv[v as usize] = x as u8;
        x += 1;
    }
    (s, inv)
}

const SBOXES: ([u8; 256], [u8; 256]) = build_sbox();
const SBOX: [u8; 256] = SBOXES.0;
const INV_SBOX: [u8; 256] = SBOXES.1;

fn shift_rows(s: [u8; 16], inverse: bool) -> [u8; 16] {
    core::array::from_fn(|i| {
        let (r, c) = (i % 4, i / 4);
        let from = if inverse { (c + 4 - r) % 4 } else { (c + r) % 4 };
        s[r + 4 * from]
    })
}

fn mix_columns(s: [u8; 16], inverse: bool) -> [u8; 16] {
    let m: [u8; 4] = if inverse { [14, 11, 13, 9] } else { [2, 3, 1, 1] };
    core::array::from_fn(|i| {
        let (r, c) = (i % 4, i / 4);
        (0..4).fold(0u8, |acc, k| acc ^ gmul(m[(k + 4 - r) % 4], s[4 * c + k]))
    })
}

fn sub_word(x: u32) -> u32 {
    u32::from_le_bytes(x.to_le_bytes().map(|b| SBOX[b as usize]))
}

/// Carry-less multiplication of two 64-bit polynomials.
pub fn clmul(a: u64, b: u64) -> u128 {
    (0..64).filter(|k| b >> k & 1 != 0).fold(0u128, |acc, k| acc ^ ((a as u128) << k))
}

fn crypto(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    use Mnemonic::*;
    check_sse(cpu)?;
    let key = read_op(cpu, bus, i, 1)?;
    let dst = i.op_register(0);
    let st = get_reg(cpu, dst);
    let sb = |s: [u8; 16], t: &[u8; 256]| s.map(|b| t[b as usize]);
    let bytes = st.to_le_bytes();
    let r = match i.mnemonic() {
        Aesenc => u128::from_le_bytes(mix_columns(sb(shift_rows(bytes, false), &SBOX), false)) ^ key,
        Aesenclast => u128::from_le_bytes(sb(shift_rows(bytes, false), &SBOX)) ^ key,
        Aesdec => u128::from_le_bytes(mix_columns(sb(shift_rows(bytes, true), &INV_SBOX), true)) ^ key,
        Aesdeclast => u128::from_le_bytes(sb(shift_rows(bytes, true), &INV_SBOX)) ^ key,
        Aesimc => u128::from_le_bytes(mix_columns(key.to_le_bytes(), true)),
        Aeskeygenassist => {
            let d = to_d(key);
            let rcon = i.immediate8() as u32;
            let (x1, x3) = (sub_word(d[1]), sub_word(d[3]));
            from_d([x1, x1.rotate_right(8) ^ rcon, x3, x3.rotate_right(8) ^ rcon])
        }
        _ => {
            let imm = i.immediate8();
            let a = if imm & 1 != 0 { (st >> 64) as u64 } else { st as u64 };
            let b = if imm & 0x10 != 0 { (key >> 64) as u64 } else { key as u64 };
            clmul(a, b)
        }
    };
    set_reg(cpu, dst, r);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    match code.mnemonic() {
        Aesenc | Aesenclast | Aesdec | Aesdeclast | Aesimc | Aeskeygenassist | Pclmulqdq => Some(crypto),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbox_known_values() {
        assert_eq!((SBOX[0], SBOX[1], SBOX[0x53], SBOX[0xff]), (0x63, 0x7c, 0xed, 0x16));
        assert_eq!(INV_SBOX[0x63], 0);
    }
}
