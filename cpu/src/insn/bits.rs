//! Bit instructions: BT/BTS/BTR/BTC, BSF/BSR, LZCNT/TZCNT/POPCNT, BSWAP,
//! SETcc, CMOVcc, BMI1 (ANDN BEXTR BLSI BLSMSK BLSR), BMI2 (BZHI MULX PDEP
//! PEXT RORX SARX SHLX SHRX), ADX (ADCX ADOX), MOVBE and CRC32 (SDM Vol. 2).
//!
//! Flags the SDM leaves undefined are left unchanged here (BT*: OF SF AF PF;
//! BSF/BSR, LZCNT/TZCNT: the ones they do not define), except for the BMI
//! group, where AF and PF follow the result like a logic instruction.
//! BSF/BSR with a zero source leave the destination's value unchanged (what
//! Intel and AMD hardware do); a 32-bit destination is zero-extended as on
//! Intel.
//! BSWAP of a 16-bit register (undefined) writes 0, as Intel hardware does.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::flags::*;
use crate::mmu::Access;
use crate::operand::Loc;
use crate::state::flags::{ARITH, CF, OF, ZF};
use crate::state::{Mode, RDX};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

// ----- BT, BTS, BTR, BTC -----

const BT: u8 = 0;
const BTS: u8 = 1;
const BTR: u8 = 2;
const BTC: u8 = 3;

/// Address-size mask of the memory operand (the width `Cpu::ea` wraps at).
fn addr_mask(cpu: &Cpu, i: &Instruction) -> u64 {
    let base = i.memory_base();
    let index = i.memory_index();
    let size = if base != Register::None {
        base.size()
    } else if index != Register::None {
        index.size()
    } else if cpu.s.mode == Mode::Long64 {
        8
    } else {
        i.memory_displ_size() as usize
    };
    match size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// SDM BT: with a register bit offset and a memory operand, the offset is a
/// signed number that selects any bit relative to the operand's address, in
/// operand-sized units; with an immediate or a register destination it is
/// taken modulo the operand size.
fn bit_test<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let sz = size_log2(size);
    let bits = 8 * size as u64;
    let off = cpu.read_op(bus, i, 1)?;
    let access = if OP == BT { Access::Read } else { Access::Write };
    let (loc, bit) = if i.op_kind(0) == OpKind::Memory && i.op_kind(1) == OpKind::Register {
        let soff = ((off << (64 - bits)) as i64) >> (64 - bits);
        let delta = ((soff >> (3 + sz)) << sz) as u64;
        let seg = crate::operand::seg_index(i.memory_segment());
        let ea = cpu.ea(i).wrapping_add(delta) & addr_mask(cpu, i);
        (Loc::Mem(cpu.seg_lin(seg, ea, size, access)?), off & (bits - 1))
    } else {
        (cpu.loc(i, 0, access)?, off & (bits - 1))
    };
    let v = cpu.read_loc(bus, loc, size)?;
    let cf = (v >> bit) & 1;
    let r = match OP {
        BTS => v | (1 << bit),
        BTR => v & !(1 << bit),
        BTC => v ^ (1 << bit),
        _ => v,
    };
    if OP != BT {
        cpu.write_loc(bus, loc, size, r)?;
    }
    cpu.s.set_flag_bits(CF, cf);
    Ok(())
}

// ----- bit scans and counts -----

const BSF: u8 = 0;
const BSR: u8 = 1;
const TZCNT: u8 = 2;
const LZCNT: u8 = 3;
const POPCNT: u8 = 4;

fn bit_scan<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let m = size_mask(size_log2(size));
    let bits = 8 * size as u32;
    let src = cpu.read_op(bus, i, 1)? & m;
    let dst = i.op0_register();
    match OP {
        BSF | BSR => {
            if src == 0 {
                // The destination keeps its value; like every 32-bit write
                // on Intel hardware, a 32-bit one still clears bits 63..32
                // (the architects' answer quoted in Linux's bitops.h; AMD
                // leaves them alone).
                let cur = cpu.reg(dst);
                cpu.set_reg(dst, cur);
                cpu.s.set_flag_bits(ZF, ZF);
            } else {
                let r = if OP == BSF {
                    src.trailing_zeros()
                } else {
                    63 - src.leading_zeros()
                };
                cpu.set_reg(dst, r as u64);
                cpu.s.set_flag_bits(ZF, 0);
            }
        }
        TZCNT | LZCNT => {
            let r = if OP == TZCNT {
                src.trailing_zeros().min(bits)
            } else {
                src.leading_zeros() - (64 - bits)
            };
            cpu.set_reg(dst, r as u64);
            let f = if src == 0 { CF } else { 0 } | if r == 0 { ZF } else { 0 };
            cpu.s.set_flag_bits(CF | ZF, f);
        }
        _ => {
            cpu.set_reg(dst, src.count_ones() as u64);
            cpu.s.set_flag_bits(ARITH, if src == 0 { ZF } else { 0 });
        }
    }
    Ok(())
}

fn bswap(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let r = i.op0_register();
    let v = cpu.reg(r);
    let v = match r.size() {
        2 => 0,
        4 => (v as u32).swap_bytes() as u64,
        _ => v.swap_bytes(),
    };
    cpu.set_reg(r, v);
    Ok(())
}

// ----- SETcc, CMOVcc -----

#[inline(always)]
fn cc(i: &Instruction) -> u8 {
    i.condition_code() as u8 - 1
}

fn setcc(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let v = cpu.s.cond(cc(i)) as u64;
    cpu.write_op(bus, i, 0, v)
}

/// CMOVcc: the source is read (and can fault) whatever the condition; a
/// 32-bit destination is zero-extended even when nothing moves (SDM CMOVcc).
fn cmovcc(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let src = cpu.read_op(bus, i, 1)?;
    let dst = i.op0_register();
    let v = if cpu.s.cond(cc(i)) { src } else { cpu.reg(dst) };
    cpu.set_reg(dst, v);
    Ok(())
}

// ----- BMI1 / BMI2 -----

/// Set the flags of a BMI result: SF/ZF/PF from `r`, CF as given, OF = AF = 0.
#[inline]
fn bmi_flags(cpu: &mut Cpu, size: usize, r: u64, cf: bool) {
    let sz = size_log2(size);
    if cf {
        // CC_LOGIC cannot carry a CF; compute the bits eagerly.
        cpu.s.set_cc(CC_LOGIC, sz, r, 0, 0);
        let f = compute(&cpu.s) | CF;
        cpu.s.set_flag_bits(ARITH, f);
    } else {
        cpu.s.set_cc(CC_LOGIC, sz, r, 0, 0);
    }
}

fn andn(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let b = cpu.read_op(bus, i, 2)?;
    let r = !cpu.reg(i.op1_register()) & b & size_mask(size_log2(size));
    cpu.set_reg(i.op0_register(), r);
    bmi_flags(cpu, size, r, false);
    Ok(())
}

fn bextr(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let bits = 8 * size as u64;
    let src = cpu.read_op(bus, i, 1)? & size_mask(size_log2(size));
    let ctl = cpu.reg(i.op2_register());
    let start = ctl & 0xff;
    let len = (ctl >> 8) & 0xff;
    let r = if start >= bits {
        0
    } else {
        let v = src >> start;
        if len >= 64 {
            v
        } else {
            v & ((1u64 << len) - 1)
        }
    };
    cpu.set_reg(i.op0_register(), r);
    bmi_flags(cpu, size, r, false);
    Ok(())
}

const BLSI: u8 = 0;
const BLSMSK: u8 = 1;
const BLSR: u8 = 2;

fn bls<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let m = size_mask(size_log2(size));
    let src = cpu.read_op(bus, i, 1)? & m;
    let (r, cf) = match OP {
        BLSI => (src.wrapping_neg() & src, src != 0),
        BLSMSK => ((src.wrapping_sub(1) ^ src) & m, src == 0),
        _ => (src.wrapping_sub(1) & src, src == 0),
    };
    cpu.set_reg(i.op0_register(), r);
    bmi_flags(cpu, size, r, cf);
    Ok(())
}

fn bzhi(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let bits = 8 * size as u64;
    let src = cpu.read_op(bus, i, 1)? & size_mask(size_log2(size));
    let n = cpu.reg(i.op2_register()) & 0xff;
    let r = if n < bits { src & ((1u64 << n) - 1) } else { src };
    cpu.set_reg(i.op0_register(), r);
    bmi_flags(cpu, size, r, n > bits - 1);
    Ok(())
}

/// MULX hi, lo, r/m: unsigned EDX/RDX * r/m, flags unchanged. If both
/// destinations are the same register it receives the high half.
fn mulx(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let m = size_mask(size_log2(size));
    let src = cpu.read_op(bus, i, 2)? & m;
    let p = (cpu.s.gpr[RDX] & m) as u128 * src as u128;
    let bits = 8 * size as u32;
    cpu.set_reg(i.op1_register(), p as u64 & m);
    cpu.set_reg(i.op0_register(), (p >> bits) as u64 & m);
    Ok(())
}

pub fn pdep(src: u64, mut mask: u64) -> u64 {
    let mut r = 0;
    let mut k = 0;
    while mask != 0 {
        let low = mask & mask.wrapping_neg();
        if (src >> k) & 1 != 0 {
            r |= low;
        }
        mask ^= low;
        k += 1;
    }
    r
}

pub fn pext(src: u64, mut mask: u64) -> u64 {
    let mut r = 0;
    let mut k = 0;
    while mask != 0 {
        let low = mask & mask.wrapping_neg();
        if src & low != 0 {
            r |= 1 << k;
        }
        mask ^= low;
        k += 1;
    }
    r
}

const PDEP: u8 = 0;
const PEXT: u8 = 1;

fn deposit<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let m = size_mask(size_log2(size));
    let mask = cpu.read_op(bus, i, 2)? & m;
    let src = cpu.reg(i.op1_register()) & m;
    let r = if OP == PDEP { pdep(src, mask) } else { pext(src, mask) };
    cpu.set_reg(i.op0_register(), r);
    Ok(())
}

fn rorx(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let bits = 8 * size as u32;
    let src = cpu.read_op(bus, i, 1)?;
    let c = i.immediate8() as u32 & (bits - 1);
    let r = if size == 8 {
        src.rotate_right(c)
    } else {
        (src as u32).rotate_right(c) as u64
    };
    cpu.set_reg(i.op0_register(), r);
    Ok(())
}

const SARX: u8 = 0;
const SHLX: u8 = 1;
const SHRX: u8 = 2;

fn shiftx<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let bits = 8 * size as u32;
    let m = size_mask(size_log2(size));
    let src = cpu.read_op(bus, i, 1)? & m;
    let c = cpu.reg(i.op2_register()) as u32 & (bits - 1);
    let r = match OP {
        SARX => ((((src << (64 - bits)) as i64) >> (64 - bits)) >> c) as u64 & m,
        SHLX => (src << c) & m,
        _ => src >> c,
    };
    cpu.set_reg(i.op0_register(), r);
    Ok(())
}

// ----- ADX -----

const ADCX: u8 = 0;
const ADOX: u8 = 1;

/// ADCX / ADOX: add with carry through CF (ADCX) or OF (ADOX) only.
fn adx<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let bits = 8 * size as u32;
    let m = size_mask(size_log2(size));
    let src = cpu.read_op(bus, i, 1)? & m;
    let dst = i.op0_register();
    let flag = if OP == ADCX { CF } else { OF };
    let cin = (cpu.s.flags() & flag != 0) as u128;
    let sum = (cpu.reg(dst) & m) as u128 + src as u128 + cin;
    cpu.set_reg(dst, sum as u64 & m);
    cpu.s.set_flag_bits(flag, if (sum >> bits) != 0 { flag } else { 0 });
    Ok(())
}

// ----- MOVBE, CRC32 -----

fn movbe(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 0);
    let v = cpu.read_op(bus, i, 1)?;
    let v = match size {
        2 => (v as u16).swap_bytes() as u64,
        4 => (v as u32).swap_bytes() as u64,
        _ => v.swap_bytes(),
    };
    cpu.write_op(bus, i, 0, v)
}

/// CRC-32C (Castagnoli, reflected polynomial 82F63B78h), one byte at a time.
static CRC32C: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
            k += 1;
        }
        t[n] = c;
        n += 1;
    }
    t
}

/// Feed the low `size` bytes of `data`, least significant first, into `crc`
/// (no pre- or post-inversion: that is the software's job, SDM CRC32).
pub fn crc32c_update(mut crc: u32, data: u64, size: usize) -> u32 {
    for k in 0..size {
        let b = (data >> (8 * k)) as u8;
        crc = CRC32C[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

fn crc32(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = Cpu::op_size(i, 1);
    let src = cpu.read_op(bus, i, 1)?;
    let dst = i.op0_register();
    let crc = crc32c_update(cpu.reg(dst) as u32, src, size);
    // The 64-bit form zero-extends the 32-bit CRC.
    cpu.set_reg(dst, crc as u64);
    Ok(())
}

/// VEX-encoded instructions do not exist in real and virtual-8086 mode
/// (SDM Vol. 2, BMI1/BMI2 "Real-Address Mode Exceptions": #UD).
macro_rules! vex_only_protected {
    ($name:ident, $inner:expr) => {
        fn $name(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
            if matches!(cpu.s.mode, Mode::Real | Mode::V86) {
                return Err(crate::exception::Exception::InvalidOpcode);
            }
            $inner(cpu, bus, i)
        }
    };
}

vex_only_protected!(andn_p, andn);
vex_only_protected!(bextr_p, bextr);
vex_only_protected!(blsi_p, bls::<BLSI>);
vex_only_protected!(blsmsk_p, bls::<BLSMSK>);
vex_only_protected!(blsr_p, bls::<BLSR>);
vex_only_protected!(bzhi_p, bzhi);
vex_only_protected!(mulx_p, mulx);
vex_only_protected!(pdep_p, deposit::<PDEP>);
vex_only_protected!(pext_p, deposit::<PEXT>);
vex_only_protected!(rorx_p, rorx);
vex_only_protected!(sarx_p, shiftx::<SARX>);
vex_only_protected!(shlx_p, shiftx::<SHLX>);
vex_only_protected!(shrx_p, shiftx::<SHRX>);

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic as M;
    let m = code.mnemonic();
    Some(match m {
        M::Bt => bit_test::<BT>,
        M::Bts => bit_test::<BTS>,
        M::Btr => bit_test::<BTR>,
        M::Btc => bit_test::<BTC>,
        M::Bsf => bit_scan::<BSF>,
        M::Bsr => bit_scan::<BSR>,
        M::Tzcnt => bit_scan::<TZCNT>,
        M::Lzcnt => bit_scan::<LZCNT>,
        M::Popcnt => bit_scan::<POPCNT>,
        M::Bswap => bswap,
        M::Seto | M::Setno | M::Setb | M::Setae | M::Sete | M::Setne | M::Setbe | M::Seta => setcc,
        M::Sets | M::Setns | M::Setp | M::Setnp | M::Setl | M::Setge | M::Setle | M::Setg => setcc,
        M::Cmovo | M::Cmovno | M::Cmovb | M::Cmovae | M::Cmove | M::Cmovne | M::Cmovbe | M::Cmova => cmovcc,
        M::Cmovs | M::Cmovns | M::Cmovp | M::Cmovnp | M::Cmovl | M::Cmovge | M::Cmovle | M::Cmovg => cmovcc,
        M::Andn => andn_p,
        // Only the BMI1 (VEX) BEXTR; AMD TBM's XOP form with an immediate is not implemented.
        M::Bextr if matches!(code, Code::VEX_Bextr_r32_rm32_r32 | Code::VEX_Bextr_r64_rm64_r64) => bextr_p,
        M::Blsi => blsi_p,
        M::Blsmsk => blsmsk_p,
        M::Blsr => blsr_p,
        M::Bzhi => bzhi_p,
        M::Mulx => mulx_p,
        M::Pdep => pdep_p,
        M::Pext => pext_p,
        M::Rorx => rorx_p,
        M::Sarx => sarx_p,
        M::Shlx => shlx_p,
        M::Shrx => shrx_p,
        M::Adcx => adx::<ADCX>,
        M::Adox => adx::<ADOX>,
        M::Movbe => movbe,
        M::Crc32 => crc32,
        _ => return None,
    })
}
