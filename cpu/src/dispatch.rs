//! One dispatch table from iced-x86 `Code` to the handler that implements
//! it, built once from the instruction families' `lookup` functions. A code
//! no family claims raises #UD (and is logged once, so gaps show up).

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel};
use crate::exception::{Exception, Result};
use iced_x86::{Code, Instruction, OpCodeTableKind};
use std::sync::OnceLock;

static TABLE: OnceLock<Box<[Option<Handler>]>> = OnceLock::new();

fn table() -> &'static [Option<Handler>] {
    TABLE.get_or_init(|| {
        let n = Code::values().count();
        let mut t: Vec<Option<Handler>> = vec![None; n];
        for code in Code::values() {
            t[code as usize] = crate::insn::lookup(code)
                .or_else(|| crate::system::lookup(code))
                .or_else(|| crate::fpu::lookup(code))
                .or_else(|| crate::simd::lookup(code));
        }
        t.into_boxed_slice()
    })
}

/// Whether kagami implements this instruction (used by CPUID tests and the
/// differential tester to skip what is not there yet).
pub fn implemented(code: Code) -> bool {
    table()[code as usize].is_some()
}

fn invalid_opcode(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Err(Exception::InvalidOpcode)
}

fn unimplemented(_: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    tracing::warn!(target: "kagami::cpu", "unimplemented instruction {:?} ({i}) raises #UD", i.code());
    Err(Exception::InvalidOpcode)
}

fn too_long(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Err(Exception::GP0)
}

/// On a 286 without a coprocessor an ESC opcode computes its address (which
/// can fault at offset 0xFFFF) and does nothing else.
fn esc_without_fpu(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if i.op_count() > 0 && i.op_kind(0) == iced_x86::OpKind::Memory {
        let (seg, off) = cpu.mem_operand(i);
        cpu.seg_lin(seg, off, i.memory_size().size().clamp(1, 2), crate::mmu::Access::Read)?;
    }
    Ok(())
}

fn is_esc(i: &Instruction) -> bool {
    let oc = i.op_code();
    // Register forms carry the ModRM byte in the opcode value (D8F8 etc.).
    let op = if oc.op_code() > 0xff { oc.op_code() >> 8 } else { oc.op_code() };
    oc.table() == OpCodeTableKind::Normal && (0xd8..=0xdf).contains(&op)
}

/// The 80286 has no VEX or EVEX: 62, C4 and C5 with a register ModRM are
/// BOUND, LES and LDS with a register operand, which raise #UD. Returns the
/// length of such an instruction (legacy prefixes, opcode, ModRM).
pub fn i286_vex_alias_len(bytes: &[u8]) -> Option<usize> {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3))
        .count();
    match bytes.get(n..n + 2) {
        Some([0x62 | 0xc4 | 0xc5, modrm]) if modrm >> 6 == 3 => Some(n + 2),
        _ => None,
    }
}

/// The 80286 fetches all of 8F/C6/C7 with an undefined `reg` field (ModRM,
/// displacement, immediate) before it raises #UD, so the 10-byte limit
/// (#GP) comes first. Returns that length (11 if it does not even fit in
/// `bytes`), or `None` for other instructions.
pub fn i286_mov_group_len(bytes: &[u8]) -> Option<usize> {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3))
        .count();
    match bytes.get(n..n + 2) {
        Some([0x8f | 0xc6 | 0xc7, modrm]) if modrm & 0x38 != 0 => {
            let mut b = bytes.to_vec();
            b[n + 1] &= !0x38;
            let mut dec = iced_x86::Decoder::new(16, &b, iced_x86::DecoderOptions::NO_INVALID_CHECK);
            let i = dec.decode();
            Some(if dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
                11
            } else {
                i.len()
            })
        }
        _ => None,
    }
}

/// The handler for a decoded instruction on the given model.
pub fn handler_for(i: &Instruction, model: CpuModel) -> Handler {
    if i.is_invalid() {
        return invalid_opcode;
    }
    match model {
        CpuModel::I80286 => {
            if i.encoding() != iced_x86::EncodingKind::Legacy {
                // See `i286_vex_alias_len`.
                return invalid_opcode;
            }
            if i.len() > 10 {
                return too_long;
            }
            if is_esc(i) {
                return esc_without_fpu;
            }
        }
        CpuModel::X86_64 => {}
    }
    table()[i.code() as usize].unwrap_or(unimplemented)
}
