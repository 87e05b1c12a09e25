//! Decimal adjust: DAA, DAS, AAA, AAS, AAM, AAD (SDM Vol. 2A), and the
//! undocumented SALC (D6: AL = CF ? FFh : 00h). All are invalid in 64-bit
//! mode, where iced-x86 does not decode them, so they never reach here.
//!
//! Undefined flags, and kagami's choice:
//! - DAA/DAS: OF = 0.
//! - AAA/AAS: SF, ZF, PF from the final AL, OF = 0.
//! - AAM: flags as a logic result of AL (CF = OF = AF = 0).
//! - AAD: the flags of the 8-bit addition AL + (AH*imm8 & FFh) that forms
//!   the result (the 8086 microcode forms it with such an ADD; the 80286
//!   data leaves OF, AF and CF unchecked).
//! - AAM 0 on the 80286 model: see `aam`.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel};
use crate::exception::{Exception, Result};
use crate::flags::*;
use crate::state::flags::{AF, ARITH, CF, PF, SF, ZF};
use crate::state::RAX;
use iced_x86::{Code, Instruction, Mnemonic};

#[inline(always)]
fn al(cpu: &Cpu) -> u64 {
    cpu.s.gpr[RAX] & 0xff
}

#[inline(always)]
fn set_al(cpu: &mut Cpu, v: u64) {
    cpu.s.gpr[RAX] = (cpu.s.gpr[RAX] & !0xff) | (v & 0xff);
}

#[inline(always)]
fn set_ax(cpu: &mut Cpu, v: u64) {
    cpu.s.gpr[RAX] = (cpu.s.gpr[RAX] & !0xffff) | (v & 0xffff);
}

/// SF, ZF and PF of an 8-bit value.
fn szp8(v: u64) -> u64 {
    let v = v & 0xff;
    parity(v) | if v == 0 { ZF } else { 0 } | (v & 0x80) // SF is bit 7 in both
}

const DAA: u8 = 0;
const DAS: u8 = 1;

/// DAA / DAS, exactly the SDM pseudocode.
fn decimal_adjust<const OP: u8>(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let f = cpu.s.flags();
    let old_al = al(cpu);
    let old_cf = f & CF != 0;
    let mut a = old_al;
    let mut cf = false;
    let mut af = false;
    if a & 0x0f > 9 || f & AF != 0 {
        if OP == DAA {
            cf = old_cf || a + 6 > 0xff;
            a = (a + 6) & 0xff;
        } else {
            cf = old_cf || a < 6;
            a = a.wrapping_sub(6) & 0xff;
        }
        af = true;
    }
    if old_al > 0x99 || old_cf {
        a = if OP == DAA { a + 0x60 } else { a.wrapping_sub(0x60) } & 0xff;
        cf = true;
    }
    // DAA's "ELSE CF ← 0" needs no code: a carry out of AL+6 implies
    // old_AL > 99h. DAS has no such ELSE: a borrow out of AL-6 stays in CF.
    set_al(cpu, a);
    let nf = szp8(a) | if cf { CF } else { 0 } | if af { AF } else { 0 };
    cpu.s.set_flag_bits(ARITH, nf);
    Ok(())
}

const AAA: u8 = 0;
const AAS: u8 = 1;

/// AAA / AAS: the 386+ form that adjusts AX as a whole (AX ± 106h).
fn ascii_adjust<const OP: u8>(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let f = cpu.s.flags();
    let ax = cpu.s.gpr[RAX] & 0xffff;
    let adjust = ax & 0x0f > 9 || f & AF != 0;
    let ax = if adjust {
        if OP == AAA {
            ax.wrapping_add(0x106)
        } else {
            // SDM AAS: AX ← AX – 6; AH ← AH – 1.
            ax.wrapping_sub(6).wrapping_sub(0x100)
        }
    } else {
        ax
    } & 0xffff;
    let ax = ax & 0xff0f;
    set_ax(cpu, ax);
    let nf = szp8(ax) | if adjust { CF | AF } else { 0 };
    cpu.s.set_flag_bits(ARITH, nf);
    Ok(())
}

/// AAM imm8: AH = AL / imm8, AL = AL % imm8; #DE when imm8 is 0.
///
/// The 80286 data shows that AAM 0 sets SF, ZF and PF from AL >> 1 (a
/// first step of its division microcode) before it raises #DE; the flags
/// are visible in the pushed FLAGS image. Other models leave them alone.
fn aam(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let base = i.immediate8() as u64;
    if base == 0 {
        if cpu.model == CpuModel::I80286 {
            let f = szp8(al(cpu) >> 1);
            cpu.s.set_flag_bits(SF | ZF | PF, f);
        }
        return Err(Exception::DivideError);
    }
    let a = al(cpu);
    let r = a % base;
    set_ax(cpu, ((a / base) << 8) | r);
    cpu.s.set_cc(CC_LOGIC, 0, r, 0, 0);
    Ok(())
}

/// AAD imm8: AL = (AL + AH * imm8) & FFh, AH = 0.
fn aad(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let base = i.immediate8() as u64;
    let a = al(cpu);
    let t = (((cpu.s.gpr[RAX] >> 8) & 0xff) * base) & 0xff;
    let r = (a + t) & 0xff;
    set_ax(cpu, r);
    cpu.s.set_cc(CC_ADD, 0, r, a, t);
    Ok(())
}

/// SALC: AL = CF ? FFh : 00h; flags unchanged.
fn salc(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let v = if cpu.s.cf() { 0xff } else { 0 };
    set_al(cpu, v);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Daa => decimal_adjust::<DAA>,
        Mnemonic::Das => decimal_adjust::<DAS>,
        Mnemonic::Aaa => ascii_adjust::<AAA>,
        Mnemonic::Aas => ascii_adjust::<AAS>,
        Mnemonic::Aam => aam,
        Mnemonic::Aad => aad,
        Mnemonic::Salc => salc,
        _ => return None,
    })
}
