//! Multiplication and division: MUL, IMUL (one-, two- and three-operand
//! forms), DIV, IDIV (SDM Vol. 2A/2B "MUL", "IMUL", "DIV", "IDIV").
//!
//! Flags: MUL/IMUL set CF = OF = "the result does not fit the destination"
//! (lazy `CC_MUL`); SF, ZF and PF, which the SDM leaves undefined, follow the
//! low half of the result and AF is 0, so the choice is consistent across
//! sizes. DIV/IDIV leave all six arithmetic flags unchanged (undefined in
//! the SDM).
//!
//! #DE: a zero divisor, or a quotient outside the destination's range. For
//! IDIV the range is the signed one including its most negative value
//! (SDM IDIV: "IF (temp > 7FH) or (temp < 80H)"), so -128 / -32768 / … are
//! valid quotients, as on the 80286 data and every 386+.
//!
//! Known difference from the 80286 data: 4 of its 4,000 8-bit IDIV tests
//! (F6 /7 #762, #868, #2123, #3438) record no #DE for a negative quotient far
//! out of range (e.g. -29600 / 103) and leave AL = 80h, AH = the old AL with
//! bit 7 = the dividend's sign. No rule separating them from the ~250
//! similar cases that do fault was found, so kagami raises #DE for all.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::flags::*;
use crate::state::{RAX, RDX};
use iced_x86::{Code, Instruction, Mnemonic};

/// Write the low `size` bytes of a GPR by index, with x86-64 width rules
/// (32-bit writes zero-extend).
#[inline(always)]
fn set_gpr(cpu: &mut Cpu, idx: usize, size: usize, v: u64) {
    let g = &mut cpu.s.gpr[idx];
    *g = match size {
        1 => (*g & !0xff) | (v & 0xff),
        2 => (*g & !0xffff) | (v & 0xffff),
        4 => v & 0xffff_ffff,
        _ => v,
    };
}

#[inline(always)]
fn sext(v: u64, size: usize) -> i64 {
    let sh = 64 - 8 * size as u32;
    ((v << sh) as i64) >> sh
}

const MUL: u8 = 0;
const IMUL: u8 = 1;

/// MUL/IMUL r/m: AX = AL * src, DX:AX = AX * src, EDX:EAX, RDX:RAX.
fn mul1<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let m = size_mask(sz);
    let src = cpu.read_op(bus, i, 0)? & m;
    let a = cpu.s.gpr[RAX] & m;
    let bits = 8 * size as u32;
    let (lo, hi, overflow) = if OP == MUL {
        let p = (a as u128) * (src as u128);
        let hi = (p >> bits) as u64 & m;
        (p as u64 & m, hi, hi != 0)
    } else {
        let p = (sext(a, size) as i128) * (sext(src, size) as i128);
        let lo = p as u64 & m;
        (lo, (p >> bits) as u64 & m, p != sext(lo, size) as i128)
    };
    if size == 1 {
        set_gpr(cpu, RAX, 2, lo | (hi << 8));
    } else {
        set_gpr(cpu, RAX, size, lo);
        set_gpr(cpu, RDX, size, hi);
    }
    cpu.s.set_cc(CC_MUL, sz, lo, overflow as u64, 0);
    Ok(())
}

/// IMUL reg, r/m and IMUL reg, r/m, imm: truncated signed product.
fn imul_n(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let m = size_mask(sz);
    let (x, y) = if i.op_count() == 3 {
        (cpu.read_op(bus, i, 1)?, cpu.read_op(bus, i, 2)?)
    } else {
        (cpu.reg(i.op0_register()), cpu.read_op(bus, i, 1)?)
    };
    let p = (sext(x & m, size) as i128) * (sext(y & m, size) as i128);
    let lo = p as u64 & m;
    cpu.set_reg(i.op0_register(), lo);
    cpu.s.set_cc(CC_MUL, sz, lo, (p != sext(lo, size) as i128) as u64, 0);
    Ok(())
}

const DIV: u8 = 0;
const IDIV: u8 = 1;

/// DIV/IDIV r/m: AX / src → AL, AH; DX:AX / src → AX, DX; and wider.
fn div<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let m = size_mask(size_log2(size));
    let bits = 8 * size as u32;
    let src = cpu.read_op(bus, i, 0)? & m;
    if src == 0 {
        return Err(Exception::DivideError);
    }
    let dividend: u128 = if size == 1 {
        (cpu.s.gpr[RAX] & 0xffff) as u128
    } else {
        ((cpu.s.gpr[RDX] & m) as u128) << bits | (cpu.s.gpr[RAX] & m) as u128
    };
    let (q, r) = if OP == DIV {
        let q = dividend / src as u128;
        if q > m as u128 {
            return Err(Exception::DivideError);
        }
        (q as u64, (dividend % src as u128) as u64)
    } else {
        // Sign-extend the 2*bits-wide dividend to i128.
        let sh = 128 - 2 * bits;
        let n = ((dividend << sh) as i128) >> sh;
        let d = sext(src, size) as i128;
        // i128 cannot overflow here: |n| <= 2^127 only when bits = 64 and
        // n = -2^127, d = -1, which checked_div turns into #DE.
        let q = n.checked_div(d).ok_or(Exception::DivideError)?;
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        if q < min || q > max {
            return Err(Exception::DivideError);
        }
        (q as u64 & m, (n - q * d) as u64 & m)
    };
    if size == 1 {
        set_gpr(cpu, RAX, 2, q | (r << 8));
    } else {
        set_gpr(cpu, RAX, size, q);
        set_gpr(cpu, RDX, size, r);
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Mul => mul1::<MUL>,
        Mnemonic::Imul => match code {
            Code::Imul_rm8 | Code::Imul_rm16 | Code::Imul_rm32 | Code::Imul_rm64 => mul1::<IMUL>,
            _ => imul_n,
        },
        Mnemonic::Div => div::<DIV>,
        Mnemonic::Idiv => div::<IDIV>,
        _ => return None,
    })
}
