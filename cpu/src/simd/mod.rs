//! MMX, SSE through SSE4.2 (legacy encodings), FXSAVE/XSAVE.
//!
//! Shared here: the availability checks every family makes (SDM Vol. 3A,
//! 13.1 and table 12-1 for MMX; Vol. 2 "SIMD floating-point exceptions"),
//! operand access for MMX/XMM registers and 64/128-bit memory, the MMX
//! aliasing of the x87 registers, lane helpers, and MXCSR exception
//! delivery. Floating-point arithmetic is in `softfp.rs`.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::mmu::Access;
use crate::state::{cr0, cr4};
use iced_x86::{Code, EncodingKind, Instruction, Mnemonic, OpKind, Register};

pub mod mmx;
pub mod softfp;
pub mod sse;
pub mod sse42_string;
pub mod sse_convert;
pub mod sse_crypto;
pub mod sse_float;
pub mod sse_int;
pub mod sse_move;
pub mod sse_shuffle;
pub mod xsave;

/// The handler for `code`, from whichever family implements it. Only
/// legacy (non-VEX/EVEX) encodings are claimed.
pub fn lookup(code: Code) -> Option<Handler> {
    if code.encoding() != EncodingKind::Legacy || !is_simd(code) {
        return None;
    }
    mmx::lookup(code)
        .or_else(|| sse::lookup(code))
        .or_else(|| sse_move::lookup(code))
        .or_else(|| sse_int::lookup(code))
        .or_else(|| sse_shuffle::lookup(code))
        .or_else(|| sse_float::lookup(code))
        .or_else(|| sse_convert::lookup(code))
        .or_else(|| sse42_string::lookup(code))
        .or_else(|| sse_crypto::lookup(code))
        .or_else(|| xsave::lookup(code))
}

/// Whether `code` belongs to these families by its CPUID feature (so that,
/// e.g., the string MOVSD/CMPSD are not taken for the SSE2 ones). CRC32 and
/// POPCNT belong to the integer families; MONITOR/MWAIT to the system ones.
fn is_simd(code: Code) -> bool {
    use iced_x86::CpuidFeature as F;
    if matches!(
        code.mnemonic(),
        Mnemonic::Crc32 | Mnemonic::Popcnt | Mnemonic::Monitor | Mnemonic::Mwait | Mnemonic::Pause
    ) {
        return false;
    }
    code.cpuid_features().iter().any(|f| {
        matches!(
            f,
            F::MMX
                | F::SSE
                | F::SSE2
                | F::SSE3
                | F::SSSE3
                | F::SSE4_1
                | F::SSE4_2
                | F::FXSR
                | F::XSAVE
                | F::XSAVEOPT
                | F::XSAVEC
                | F::XSAVES
                | F::AES
                | F::PCLMULQDQ
        )
    })
}

/// MXCSR bits software may set (MXCSR_MASK as FXSAVE reports it: DAZ supported).
pub const MXCSR_MASK: u32 = 0xffff;

// ----- availability checks -----

/// SSE: CR0.EM or CR4.OSFXSR clear → #UD; CR0.TS → #NM.
#[inline]
pub fn check_sse(cpu: &Cpu) -> Result<()> {
    if cpu.s.cr0 & cr0::EM != 0 || cpu.s.cr4 & cr4::OSFXSR == 0 {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.s.cr0 & cr0::TS != 0 {
        return Err(Exception::DeviceNotAvailable);
    }
    Ok(())
}

/// MMX: CR0.EM → #UD; CR0.TS → #NM; a pending unmasked x87 exception →
/// #MF (with CR0.NE). SDM Vol. 3A table 12-1.
#[inline]
pub fn check_mmx(cpu: &Cpu) -> Result<()> {
    if cpu.s.cr0 & cr0::EM != 0 {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.s.cr0 & cr0::TS != 0 {
        return Err(Exception::DeviceNotAvailable);
    }
    if cpu.s.fpu.fsw & 0x80 != 0 && cpu.s.cr0 & cr0::NE != 0 {
        return Err(Exception::FloatingPoint);
    }
    Ok(())
}

/// The x87 → MMX transition every MMX instruction but EMMS makes: TOP = 0,
/// all tags valid (SDM Vol. 1, 9.5.1).
#[inline]
pub fn enter_mmx(cpu: &mut Cpu) {
    cpu.s.fpu.fsw &= !(7 << 11);
    cpu.s.fpu.ftw = 0;
}

#[inline]
fn has_reg(i: &Instruction, pred: fn(Register) -> bool) -> bool {
    (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && pred(i.op_register(n)))
}

/// The checks for an instruction by the registers it names: SSE rules if it
/// names an XMM register (or none at all), MMX rules and the MMX transition
/// if it names an MMX register. Returns whether MMX registers are involved.
#[inline]
pub fn enter(cpu: &mut Cpu, i: &Instruction) -> Result<bool> {
    let mm = enter_checks(cpu, i)?;
    if mm {
        enter_mmx(cpu);
    }
    Ok(mm)
}

/// `enter` without the MMX transition, for instructions whose memory
/// operand fetch must fault with the x87 state untouched (the caller runs
/// `enter_mmx` once the fetch succeeded).
#[inline]
pub fn enter_checks(cpu: &mut Cpu, i: &Instruction) -> Result<bool> {
    let mm = has_reg(i, Register::is_mm);
    if !mm || has_reg(i, Register::is_xmm) {
        check_sse(cpu)?;
    }
    if mm {
        check_mmx(cpu)?;
    }
    Ok(mm)
}

// ----- operand access -----

/// Whether a 16-byte memory operand of this instruction must be aligned.
/// Legacy SSE requires it except for the explicitly unaligned forms and the
/// SSE4.2 string instructions (SDM Vol. 1, 11.6.8 / 12.10.3).
#[inline]
fn needs_align(i: &Instruction) -> bool {
    !matches!(
        i.mnemonic(),
        Mnemonic::Movups
            | Mnemonic::Movupd
            | Mnemonic::Movdqu
            | Mnemonic::Lddqu
            | Mnemonic::Pcmpestri
            | Mnemonic::Pcmpestrm
            | Mnemonic::Pcmpestri64
            | Mnemonic::Pcmpestrm64
            | Mnemonic::Pcmpistri
            | Mnemonic::Pcmpistrm
    )
}

/// Linear address of the memory operand for an access of `size` bytes,
/// with the 16-byte alignment rule.
pub fn mem_lin(cpu: &Cpu, i: &Instruction, size: usize, access: Access) -> Result<u64> {
    let (seg, off) = cpu.mem_operand(i);
    let lin = cpu.seg_lin(seg, off, size, access)?;
    if size == 16 && lin & 15 != 0 && needs_align(i) {
        return Err(Exception::GP0);
    }
    Ok(lin)
}

pub fn read_lin128(cpu: &mut Cpu, bus: &mut dyn Bus, lin: u64) -> Result<u128> {
    let lo = cpu.read_lin(bus, lin, 8)?;
    let hi = cpu.read_lin(bus, lin.wrapping_add(8) & cpu.lin_mask(), 8)?;
    Ok(lo as u128 | (hi as u128) << 64)
}

pub fn write_lin128(cpu: &mut Cpu, bus: &mut dyn Bus, lin: u64, v: u128) -> Result<()> {
    cpu.probe_write(bus, lin, 16)?;
    cpu.write_lin(bus, lin, 8, v as u64)?;
    cpu.write_lin(bus, lin.wrapping_add(8) & cpu.lin_mask(), 8, (v >> 64) as u64)
}

/// Read `size` bytes (1..=16) of memory at a linear address.
pub fn read_lin_n(cpu: &mut Cpu, bus: &mut dyn Bus, lin: u64, size: usize) -> Result<u128> {
    if size == 16 {
        read_lin128(cpu, bus, lin)
    } else {
        Ok(cpu.read_lin(bus, lin, size)? as u128)
    }
}

pub fn write_lin_n(cpu: &mut Cpu, bus: &mut dyn Bus, lin: u64, size: usize, v: u128) -> Result<()> {
    if size == 16 {
        write_lin128(cpu, bus, lin, v)
    } else {
        cpu.write_lin(bus, lin, size, v as u64)
    }
}

#[inline]
pub fn xmm_index(r: Register) -> usize {
    r as usize - Register::XMM0 as usize
}

#[inline]
pub fn mm_index(r: Register) -> usize {
    r as usize - Register::MM0 as usize
}

/// Read a register: XMM (128 bits), MMX (64 bits) or a GPR.
#[inline]
pub fn get_reg(cpu: &Cpu, r: Register) -> u128 {
    if r.is_xmm() {
        cpu.s.fpu.xmm[xmm_index(r)]
    } else if r.is_mm() {
        cpu.s.fpu.st[mm_index(r)] as u64 as u128
    } else {
        cpu.reg(r) as u128
    }
}

/// Write a register. An MMX write sets bits 64..79 of the aliased x87
/// register to ones (SDM Vol. 1, 9.5.1).
#[inline]
pub fn set_reg(cpu: &mut Cpu, r: Register, v: u128) {
    if r.is_xmm() {
        cpu.s.fpu.xmm[xmm_index(r)] = v;
    } else if r.is_mm() {
        cpu.s.fpu.st[mm_index(r)] = (0xffffu128 << 64) | (v as u64 as u128);
    } else {
        cpu.set_reg(r, v as u64);
    }
}

/// Read operand `n`: register, memory (its natural size, with the
/// alignment rule) or immediate.
pub fn read_op(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction, n: u32) -> Result<u128> {
    match i.op_kind(n) {
        OpKind::Register => Ok(get_reg(cpu, i.op_register(n))),
        OpKind::Memory => {
            let size = i.memory_size().size();
            let lin = mem_lin(cpu, i, size, Access::Read)?;
            read_lin_n(cpu, bus, lin, size)
        }
        _ => Ok(i.immediate(n) as u128),
    }
}

/// Write operand `n` (register, or memory of its natural size).
pub fn write_op(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction, n: u32, v: u128) -> Result<()> {
    match i.op_kind(n) {
        OpKind::Register => {
            set_reg(cpu, i.op_register(n), v);
            Ok(())
        }
        _ => {
            let size = i.memory_size().size();
            let lin = mem_lin(cpu, i, size, Access::Write)?;
            write_lin_n(cpu, bus, lin, size, v)
        }
    }
}

/// The byte width of a vector operand: 8 for MMX, 16 for XMM.
#[inline]
pub fn width(mm: bool) -> usize {
    if mm {
        8
    } else {
        16
    }
}

#[inline]
pub fn mask_to(v: u128, n: usize) -> u128 {
    if n >= 16 {
        v
    } else {
        v & ((1u128 << (8 * n)) - 1)
    }
}

// ----- SIMD floating-point exceptions -----

/// Merge the flags an instruction raised into MXCSR, or deliver #XM (#UD
/// without CR4.OSXMMEXCPT) if any is unmasked. With an unmasked
/// pre-computation exception (IE, DE, ZE) only those flags are recorded
/// (SDM Vol. 1, 11.5.3: pre-computation conditions are checked and
/// reported first). The destination must not be written on error.
pub fn fp_commit(cpu: &mut Cpu, env: &softfp::Env) -> Result<()> {
    let mx = cpu.s.fpu.mxcsr;
    let unmasked = env.flags & !(mx >> 7) & 0x3f;
    if unmasked != 0 {
        let pre = env.flags & (softfp::IE | softfp::DE | softfp::ZE);
        cpu.s.fpu.mxcsr |= if pre & unmasked != 0 { pre } else { env.flags };
        return Err(if cpu.s.cr4 & cr4::OSXMMEXCPT != 0 {
            Exception::SimdFloatingPoint
        } else {
            Exception::InvalidOpcode
        });
    }
    cpu.s.fpu.mxcsr |= env.flags;
    Ok(())
}

// ----- lanes -----

macro_rules! lanes {
    ($to:ident, $from:ident, $t:ty, $n:expr) => {
        #[inline]
        pub fn $to(v: u128) -> [$t; $n] {
            core::array::from_fn(|k| (v >> (k * 128 / $n)) as $t)
        }
        #[inline]
        pub fn $from(a: [$t; $n]) -> u128 {
            let mut v = 0u128;
            for (k, x) in a.iter().enumerate() {
                v |= (*x as u128) << (k * 128 / $n);
            }
            v
        }
    };
}
lanes!(to_b, from_b, u8, 16);
lanes!(to_w, from_w, u16, 8);
lanes!(to_d, from_d, u32, 4);
lanes!(to_q, from_q, u64, 2);

#[cfg(test)]
mod align_tests {
    use super::needs_align;
    use iced_x86::{Decoder, DecoderOptions};

    /// The REX.W forms of PCMPESTRI/PCMPESTRM allow unaligned operands too.
    #[test]
    fn string_compares_allow_unaligned_in_every_form() {
        for bytes in [
            &[0x66, 0x4c, 0x0f, 0x3a, 0x61, 0x7b, 0xe8, 0x2e][..], // pcmpestri64
            &[0x66, 0x48, 0x0f, 0x3a, 0x60, 0x03, 0x00][..],       // pcmpestrm64
            &[0x66, 0x0f, 0x3a, 0x61, 0x03, 0x00][..],
            &[0x66, 0x0f, 0x3a, 0x63, 0x03, 0x00][..],
        ] {
            let insn = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE).decode();
            assert!(!insn.is_invalid());
            assert!(!needs_align(&insn), "{insn}");
        }
        let paddb = Decoder::with_ip(64, &[0x66, 0x0f, 0xfc, 0x03], 0, DecoderOptions::NONE).decode();
        assert!(needs_align(&paddb));
    }
}
