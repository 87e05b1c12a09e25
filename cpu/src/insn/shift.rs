//! Shifts and rotates: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR (C0/C1/D0–D3)
//! and the double-precision shifts SHLD/SHRD (SDM Vol. 2B, "SAL/SAR/SHL/SHR",
//! "RCL/RCR/ROL/ROR", "SHLD", "SHRD").
//!
//! Common rules: the count is masked to 5 bits (6 with a 64-bit operand);
//! a masked count of 0 changes no flag, but the destination is still written
//! back (a 32-bit register destination is zero-extended, as on hardware).
//!
//! Flags the SDM leaves undefined, and what kagami does:
//! - AF after any shift: 0.
//! - OF after a shift by more than one: SHL gives MSB(result) XOR CF, SHR
//!   gives MSB of the value before the last step (0 unless the count is 1),
//!   SAR gives 0. Rotates use the count-1 formula of the SDM for every count
//!   (ROL/RCL: MSB(result) XOR CF; ROR/RCR: the XOR of the two top bits of
//!   the result); this matches the 80286 data and the P6-family behaviour.
//! - SHLD/SHRD of a 16-bit operand by 17..31: the P6-family result, i.e. the
//!   48-bit value dest:src:dest is shifted (Intel hardware; Bochs documents
//!   the same model). CF is the last bit shifted out of that value.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::flags::*;
use crate::mmu::Access;
use crate::state::flags::{CF, OF};
use iced_x86::{Code, Instruction, Mnemonic};

const ROL: u8 = 0;
const ROR: u8 = 1;
const RCL: u8 = 2;
const RCR: u8 = 3;
const SHL: u8 = 4;
const SHR: u8 = 5;
const SAR: u8 = 7;

#[inline(always)]
fn count_mask(size: usize) -> u32 {
    if size == 8 {
        63
    } else {
        31
    }
}

/// Sign-extend a `bits`-wide value to 64 bits.
#[inline(always)]
fn sext(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

fn shift<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let bits = (size * 8) as u32;
    let m = size_mask(sz);
    let loc = cpu.loc(i, 0, Access::Write)?;
    let a = cpu.read_loc(bus, loc, size)?;
    let count = (cpu.read_op(bus, i, 1)? as u32) & count_mask(size);
    if count == 0 {
        return cpu.write_loc(bus, loc, size, a);
    }
    let msb = |v: u64| (v >> (bits - 1)) & 1;
    match OP {
        SHL => {
            // count <= 63, so u64 shifts are defined; bits above the operand are masked.
            let r = (a << count) & m;
            cpu.write_loc(bus, loc, size, r)?;
            cpu.s.set_cc(CC_SHL, sz, r, a << (count - 1), 0);
        }
        SHR => {
            let r = a >> count;
            cpu.write_loc(bus, loc, size, r)?;
            cpu.s.set_cc(CC_SHR, sz, r, a >> (count - 1), 0);
        }
        SAR => {
            let sa = sext(a, bits);
            let r = (sa >> count) as u64 & m;
            cpu.write_loc(bus, loc, size, r)?;
            cpu.s.set_cc(CC_SHR, sz, r, (sa >> (count - 1)) as u64 & m, 0);
        }
        ROL | ROR => {
            let c = count % bits;
            let r = if c == 0 {
                a
            } else if OP == ROL {
                ((a << c) | (a >> (bits - c))) & m
            } else {
                ((a >> c) | (a << (bits - c))) & m
            };
            cpu.write_loc(bus, loc, size, r)?;
            let (cf, of) = if OP == ROL {
                (r & 1, msb(r) ^ (r & 1))
            } else {
                (msb(r), msb(r) ^ ((r >> (bits - 2)) & 1))
            };
            cpu.s.set_flag_bits(CF | OF, cf | (of << 11));
        }
        _ => {
            // RCL/RCR rotate the (bits+1)-wide value CF:dest. Sizes 8 and 16
            // take the count modulo 9 / 17 (SDM RCL/RCR "tempCOUNT").
            let c = match size {
                1 => count % 9,
                2 => count % 17,
                _ => count,
            };
            let w = bits + 1;
            let wm = (1u128 << w) - 1;
            let cin = cpu.s.cf() as u128;
            let v = (a as u128) | (cin << bits);
            let v = if c == 0 {
                v
            } else if OP == RCL {
                ((v << c) | (v >> (w - c))) & wm
            } else {
                ((v >> c) | (v << (w - c))) & wm
            };
            let r = v as u64 & m;
            let cf = (v >> bits) as u64 & 1;
            cpu.write_loc(bus, loc, size, r)?;
            let of = if OP == RCL { msb(r) ^ cf } else { msb(r) ^ ((r >> (bits - 2)) & 1) };
            cpu.s.set_flag_bits(CF | OF, cf | (of << 11));
        }
    }
    Ok(())
}

const SHLD: u8 = 0;
const SHRD: u8 = 1;

/// SHLD/SHRD r/m, reg, imm8/CL.
fn double_shift<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let bits = (size * 8) as u32;
    let m = size_mask(sz);
    let loc = cpu.loc(i, 0, Access::Write)?;
    let a = cpu.read_loc(bus, loc, size)?;
    let b = cpu.reg(i.op1_register());
    let c = (cpu.read_op(bus, i, 2)? as u32) & count_mask(size);
    if c == 0 {
        return cpu.write_loc(bus, loc, size, a);
    }
    // The shifted value: dest:src for 32/64-bit operands (count < size), and
    // dest:src:dest for 16-bit ones so that counts 17..31 behave like P6.
    let (r, cf) = if OP == SHLD {
        let (v, top) = if size == 2 {
            (((a as u128) << 32) | ((b as u128) << 16) | a as u128, 48)
        } else {
            (((a as u128) << bits) | b as u128, 2 * bits)
        };
        let r = ((v << c) >> (top - bits)) as u64 & m;
        (r, (v >> (top - c)) as u64 & 1)
    } else {
        let v = if size == 2 {
            (a as u128) | ((b as u128) << 16) | ((a as u128) << 32)
        } else {
            (a as u128) | ((b as u128) << bits)
        };
        ((v >> c) as u64 & m, (v >> (c - 1)) as u64 & 1)
    };
    cpu.write_loc(bus, loc, size, r)?;
    if OP == SHLD {
        // CC_SHL: CF = MSB(src1), OF = CF XOR MSB(result).
        cpu.s.set_cc(CC_SHL, sz, r, cf << (bits - 1), 0);
    } else {
        // CC_SHR: CF = bit 0 of src1, OF = MSB(src1 XOR result): put the
        // result's second-highest bit at the top so OF = r[n-1] XOR r[n-2].
        cpu.s.set_cc(CC_SHR, sz, r, cf | ((r << 1) & (1u64 << (bits - 1))), 0);
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Rol => shift::<ROL>,
        Mnemonic::Ror => shift::<ROR>,
        Mnemonic::Rcl => shift::<RCL>,
        Mnemonic::Rcr => shift::<RCR>,
        // /6 (SAL in iced) is an undocumented alias of /4 on every Intel CPU.
        Mnemonic::Shl | Mnemonic::Sal => shift::<SHL>,
        Mnemonic::Shr => shift::<SHR>,
        Mnemonic::Sar => shift::<SAR>,
        Mnemonic::Shld => double_shift::<SHLD>,
        Mnemonic::Shrd => double_shift::<SHRD>,
        _ => return None,
    })
}
