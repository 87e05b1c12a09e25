//! MXCSR access and state save/restore: LDMXCSR, STMXCSR, FXSAVE/FXRSTOR
//! (32- and 64-bit layouts, SDM Vol. 1, 10.5.1), XSAVE/XSAVEOPT/XRSTOR in
//! the standard format, XSAVEC/XSAVES/XRSTOR/XRSTORS in the compacted
//! format, for the x87 and SSE components, and XGETBV/XSETBV (SDM Vol. 1,
//! chapter 13). XCR0 may enable only x87 and SSE and there is no
//! supervisor state component (IA32_XSS is 0), so in both formats the two
//! components sit in the legacy region at the same offsets and the area is
//! 576 bytes; the formats differ in the header and in how MXCSR follows
//! XSTATE_BV.

use super::{check_sse, MXCSR_MASK};
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::mmu::Access;
use crate::state::{cr0, cr4, Mode, RAX, RCX, RDX};
use iced_x86::{Code, Instruction, Mnemonic};

/// XCR0 bits kagami supports: x87 and SSE.
pub const XCR0_SUPPORTED: u64 = 0b11;

fn mem_lin(cpu: &Cpu, i: &Instruction, size: usize, access: Access, align: u64) -> Result<u64> {
    let (seg, off) = cpu.mem_operand(i);
    let lin = cpu.seg_lin(seg, off, size, access)?;
    if lin & (align - 1) != 0 {
        return Err(Exception::GP0);
    }
    Ok(lin)
}

fn read_bytes(cpu: &mut Cpu, bus: &mut dyn Bus, lin: u64, buf: &mut [u8]) -> Result<()> {
    for (k, chunk) in buf.chunks_mut(8).enumerate() {
        let a = lin.wrapping_add(8 * k as u64) & cpu.lin_mask();
        let v = cpu.read_lin(bus, a, chunk.len())?;
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}

fn write_bytes(cpu: &mut Cpu, bus: &mut dyn Bus, lin: u64, buf: &[u8]) -> Result<()> {
    cpu.probe_write(bus, lin, buf.len())?;
    for (k, chunk) in buf.chunks(8).enumerate() {
        let a = lin.wrapping_add(8 * k as u64) & cpu.lin_mask();
        let mut v = [0u8; 8];
        v[..chunk.len()].copy_from_slice(chunk);
        cpu.write_lin(bus, a, chunk.len(), u64::from_le_bytes(v))?;
    }
    Ok(())
}

/// LDMXCSR m32: reserved bits → #GP(0).
fn ldmxcsr(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let (seg, off) = cpu.mem_operand(i);
    let v = cpu.read_mem(bus, seg, off, 4)? as u32;
    if v & !MXCSR_MASK != 0 {
        return Err(Exception::GP0);
    }
    cpu.s.fpu.mxcsr = v;
    Ok(())
}

fn stmxcsr(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let (seg, off) = cpu.mem_operand(i);
    cpu.write_mem(bus, seg, off, 4, cpu.s.fpu.mxcsr as u64)
}

/// FXSAVE/FXRSTOR/XSAVE/XRSTOR: CR0.EM or CR0.TS → #NM.
fn check_fx(cpu: &Cpu) -> Result<()> {
    if cpu.s.cr0 & (cr0::EM | cr0::TS) != 0 {
        return Err(Exception::DeviceNotAvailable);
    }
    Ok(())
}

fn nxmm(cpu: &Cpu) -> usize {
    if cpu.s.mode == Mode::Long64 {
        16
    } else {
        8
    }
}

/// The abridged tag byte: bit i set when physical register i is not empty.
fn abridged_tag(ftw: u16) -> u8 {
    (0..8).fold(0u8, |acc, k| if (ftw >> (2 * k)) & 3 != 3 { acc | 1 << k } else { acc })
}

/// The full tag of a non-empty register from its contents (FXRSTOR).
fn tag_of(v: u128) -> u16 {
    let exp = (v >> 64) as u16 & 0x7fff;
    let mant = v as u64;
    if exp == 0x7fff {
        2
    } else if exp == 0 {
        if mant == 0 {
            1
        } else {
            2
        }
    } else if mant >> 63 == 0 {
        2
    } else {
        0
    }
}

/// The x87 part (bytes 0..159 except MXCSR) of the FXSAVE image.
fn save_x87(cpu: &Cpu, img: &mut [u8], wide: bool) {
    let f = &cpu.s.fpu;
    img[0..2].copy_from_slice(&f.fcw.to_le_bytes());
    img[2..4].copy_from_slice(&f.fsw.to_le_bytes());
    img[4] = abridged_tag(f.ftw);
    img[6..8].copy_from_slice(&f.fop.to_le_bytes());
    if wide {
        img[8..16].copy_from_slice(&f.fip.to_le_bytes());
        img[16..24].copy_from_slice(&f.fdp.to_le_bytes());
    } else {
        img[8..12].copy_from_slice(&(f.fip as u32).to_le_bytes());
        img[12..14].copy_from_slice(&f.fcs.to_le_bytes());
        img[16..20].copy_from_slice(&(f.fdp as u32).to_le_bytes());
        img[20..22].copy_from_slice(&f.fds.to_le_bytes());
    }
    let top = (f.fsw >> 11) as usize & 7;
    for k in 0..8 {
        let v = f.st[(top + k) & 7] & ((1u128 << 80) - 1);
        img[32 + 16 * k..48 + 16 * k].copy_from_slice(&v.to_le_bytes());
    }
}

fn load_x87(cpu: &mut Cpu, img: &[u8], wide: bool) {
    let u16_at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(img[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(img[o..o + 8].try_into().unwrap());
    let f = &mut cpu.s.fpu;
    f.fcw = u16_at(0);
    f.fsw = u16_at(2);
    f.fop = u16_at(6) & 0x7ff;
    if wide {
        f.fip = u64_at(8);
        f.fdp = u64_at(16);
    } else {
        f.fip = u32_at(8) as u64;
        f.fcs = u16_at(12);
        f.fdp = u32_at(16) as u64;
        f.fds = u16_at(20);
    }
    let top = (f.fsw >> 11) as usize & 7;
    for k in 0..8 {
        let v = u128::from_le_bytes(img[32 + 16 * k..48 + 16 * k].try_into().unwrap()) & ((1u128 << 80) - 1);
        f.st[(top + k) & 7] = v;
    }
    let abr = img[4];
    f.ftw = (0..8).fold(0u16, |acc, j| {
        acc | if abr & (1 << j) != 0 { tag_of(f.st[j]) } else { 3 } << (2 * j)
    });
}

fn save_xmm(cpu: &Cpu, img: &mut [u8]) {
    for k in 0..nxmm(cpu) {
        img[160 + 16 * k..176 + 16 * k].copy_from_slice(&cpu.s.fpu.xmm[k].to_le_bytes());
    }
}

fn load_xmm(cpu: &mut Cpu, img: &[u8]) {
    for k in 0..nxmm(cpu) {
        cpu.s.fpu.xmm[k] = u128::from_le_bytes(img[160 + 16 * k..176 + 16 * k].try_into().unwrap());
    }
}

fn save_mxcsr(cpu: &Cpu, img: &mut [u8]) {
    img[24..28].copy_from_slice(&cpu.s.fpu.mxcsr.to_le_bytes());
    img[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
}

fn image_mxcsr(img: &[u8]) -> Result<u32> {
    let v = u32::from_le_bytes(img[24..28].try_into().unwrap());
    if v & !MXCSR_MASK != 0 {
        return Err(Exception::GP0);
    }
    Ok(v)
}

/// FXSAVE/FXSAVE64: the 512-byte image; bytes past the XMM area (and the
/// XMM8-15 slots outside 64-bit mode) are not written.
fn fxsave(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_fx(cpu)?;
    let lin = mem_lin(cpu, i, 512, Access::Write, 16)?;
    let mut img = [0u8; 512];
    save_x87(cpu, &mut img, i.mnemonic() == Mnemonic::Fxsave64);
    save_mxcsr(cpu, &mut img);
    save_xmm(cpu, &mut img);
    let len = 160 + 16 * nxmm(cpu);
    write_bytes(cpu, bus, lin, &img[..len])
}

fn fxrstor(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_fx(cpu)?;
    let lin = mem_lin(cpu, i, 512, Access::Read, 16)?;
    let mut img = [0u8; 512];
    let len = 160 + 16 * nxmm(cpu);
    read_bytes(cpu, bus, lin, &mut img[..len])?;
    let mxcsr = image_mxcsr(&img)?;
    load_x87(cpu, &img, i.mnemonic() == Mnemonic::Fxrstor64);
    cpu.s.fpu.mxcsr = mxcsr;
    load_xmm(cpu, &img);
    Ok(())
}

fn check_xsave(cpu: &Cpu) -> Result<()> {
    if cpu.s.cr4 & cr4::OSXSAVE == 0 {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.s.cr0 & cr0::TS != 0 {
        return Err(Exception::DeviceNotAvailable);
    }
    Ok(())
}

/// Requested-feature bitmap: XCR0 AND EDX:EAX.
fn rfbm(cpu: &Cpu) -> u64 {
    let edx_eax = (cpu.s.gpr[RDX] << 32) | (cpu.s.gpr[RAX] & 0xffff_ffff);
    cpu.s.fpu.xcr0 & edx_eax
}

/// XSAVE/XSAVEOPT (standard format). Every requested component is saved
/// and its XSTATE_BV bit set (a permitted choice: XINUSE may read as 1);
/// XSTATE_BV bits outside RFBM are preserved. MXCSR is saved with SSE.
fn xsave(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_xsave(cpu)?;
    let lin = mem_lin(cpu, i, 576, Access::Write, 64)?;
    let rfbm = rfbm(cpu);
    let wide = matches!(i.mnemonic(), Mnemonic::Xsave64 | Mnemonic::Xsaveopt64);
    let bv_lin = lin.wrapping_add(512) & cpu.lin_mask();
    let old_bv = cpu.read_lin(bus, bv_lin, 8)?;
    cpu.probe_write(bus, lin, 576)?;
    save_components(cpu, bus, lin, rfbm, wide)?;
    let bv = (old_bv & !rfbm) | rfbm;
    cpu.write_lin(bus, bv_lin, 8, bv)
}

/// XSAVEC, and XSAVES at CPL 0 (compacted format, SDM Vol. 1 13.10 and
/// 13.11): the requested components are saved (all are taken as in use,
/// and XSAVES's modified-state optimisation is not used), XSTATE_BV is
/// RFBM and XCOMP_BV is bit 63 | RFBM; nothing else of the header is
/// written. With IA32_XSS = 0, XSAVES requests what XSAVEC does.
fn xsavec(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_xsave(cpu)?;
    if matches!(i.mnemonic(), Mnemonic::Xsaves | Mnemonic::Xsaves64) && cpu.s.cpl != 0 {
        return Err(Exception::GP0);
    }
    let lin = mem_lin(cpu, i, 576, Access::Write, 64)?;
    let rfbm = rfbm(cpu);
    let wide = matches!(i.mnemonic(), Mnemonic::Xsavec64 | Mnemonic::Xsaves64);
    cpu.probe_write(bus, lin, 576)?;
    save_components(cpu, bus, lin, rfbm, wide)?;
    let hdr = lin.wrapping_add(512) & cpu.lin_mask();
    cpu.write_lin(bus, hdr, 8, rfbm)?;
    cpu.write_lin(bus, hdr.wrapping_add(8) & cpu.lin_mask(), 8, XCOMP_COMPACTED | rfbm)
}

/// XCOMP_BV bit 63: the area is in the compacted format.
const XCOMP_COMPACTED: u64 = 1 << 63;

/// Write the x87 (RFBM bit 0) and SSE (bit 1, with MXCSR) components of
/// an XSAVE area at `lin` (already probed writable).
fn save_components(cpu: &mut Cpu, bus: &mut dyn Bus, lin: u64, rfbm: u64, wide: bool) -> Result<()> {
    let mut img = [0u8; 512];
    if rfbm & 1 != 0 {
        save_x87(cpu, &mut img, wide);
        write_bytes(cpu, bus, lin, &img[..24])?;
        write_bytes(cpu, bus, lin.wrapping_add(32) & cpu.lin_mask(), &img[32..160])?;
    }
    if rfbm & 2 != 0 {
        save_mxcsr(cpu, &mut img);
        save_xmm(cpu, &mut img);
        write_bytes(cpu, bus, lin.wrapping_add(24) & cpu.lin_mask(), &img[24..32])?;
        let len = 16 * nxmm(cpu);
        write_bytes(cpu, bus, lin.wrapping_add(160) & cpu.lin_mask(), &img[160..160 + len])?;
    }
    Ok(())
}

/// XRSTOR, and XRSTORS at CPL 0 (SDM Vol. 1 13.8, 13.12). XCOMP_BV bit 63
/// picks the format (XRSTORS takes only the compacted one). Standard:
/// header bytes 8..23 must be 0 and XSTATE_BV within XCR0. Compacted:
/// XCOMP_BV within XCR0 (| IA32_XSS, which is 0), XSTATE_BV within
/// XCOMP_BV, header bytes 16..63 zero. Otherwise #GP. Requested components
/// are loaded when their XSTATE_BV bit is set and initialised otherwise.
/// MXCSR is loaded whenever SSE is requested in the standard form; in the
/// compacted form it follows the SSE component (1F80H when initialised).
fn xrstor(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_xsave(cpu)?;
    let supervisor = matches!(i.mnemonic(), Mnemonic::Xrstors | Mnemonic::Xrstors64);
    if supervisor && cpu.s.cpl != 0 {
        return Err(Exception::GP0);
    }
    let lin = mem_lin(cpu, i, 576, Access::Read, 64)?;
    let rfbm = rfbm(cpu);
    let wide = matches!(i.mnemonic(), Mnemonic::Xrstor64 | Mnemonic::Xrstors64);
    let mut hdr = [0u8; 64];
    read_bytes(cpu, bus, lin.wrapping_add(512) & cpu.lin_mask(), &mut hdr)?;
    let xstate_bv = u64::from_le_bytes(hdr[0..8].try_into().unwrap());
    let xcomp_bv = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
    let compacted = xcomp_bv & XCOMP_COMPACTED != 0;
    let bad = if compacted {
        let comp = xcomp_bv & !XCOMP_COMPACTED;
        comp & !cpu.s.fpu.xcr0 != 0 || xstate_bv & !comp != 0 || hdr[16..].iter().any(|&b| b != 0)
    } else {
        supervisor || xcomp_bv != 0 || hdr[16..24].iter().any(|&b| b != 0) || xstate_bv & !cpu.s.fpu.xcr0 != 0
    };
    if bad {
        return Err(Exception::GP0);
    }
    let mut img = [0u8; 512];
    read_bytes(cpu, bus, lin, &mut img[..160 + 16 * nxmm(cpu)])?;
    let mxcsr = match (rfbm & 2 != 0, compacted) {
        (false, _) => None,
        (true, false) => Some(image_mxcsr(&img)?),
        (true, true) if xstate_bv & 2 != 0 => Some(image_mxcsr(&img)?),
        (true, true) => Some(0x1f80),
    };
    if rfbm & 1 != 0 {
        if xstate_bv & 1 != 0 {
            load_x87(cpu, &img, wide);
        } else {
            let f = &mut cpu.s.fpu;
            f.fcw = 0x037f;
            f.fsw = 0;
            f.ftw = 0xffff;
            f.fop = 0;
            f.fip = 0;
            f.fdp = 0;
            f.fcs = 0;
            f.fds = 0;
            f.st = [0; 8];
        }
    }
    if let Some(m) = mxcsr {
        cpu.s.fpu.mxcsr = m;
        if xstate_bv & 2 != 0 {
            load_xmm(cpu, &img);
        } else {
            let n = nxmm(cpu);
            cpu.s.fpu.xmm[..n].iter_mut().for_each(|x| *x = 0);
        }
    }
    Ok(())
}

/// XGETBV: ECX = 0 reads XCR0; other indices → #GP(0).
fn xgetbv(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.cr4 & cr4::OSXSAVE == 0 {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.s.gpr[RCX] as u32 != 0 {
        return Err(Exception::GP0);
    }
    let v = cpu.s.fpu.xcr0;
    cpu.s.gpr[RAX] = v & 0xffff_ffff;
    cpu.s.gpr[RDX] = v >> 32;
    Ok(())
}

/// XSETBV: CPL 0, ECX = 0, bit 0 set, only supported bits → else #GP(0).
fn xsetbv(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.cr4 & cr4::OSXSAVE == 0 {
        return Err(Exception::InvalidOpcode);
    }
    let v = (cpu.s.gpr[RDX] << 32) | (cpu.s.gpr[RAX] & 0xffff_ffff);
    if cpu.s.cpl != 0 || cpu.s.mode == Mode::V86 || cpu.s.gpr[RCX] as u32 != 0 || v & 1 == 0 || v & !XCR0_SUPPORTED != 0 {
        return Err(Exception::GP0);
    }
    cpu.s.fpu.xcr0 = v;
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    Some(match code.mnemonic() {
        Ldmxcsr => ldmxcsr,
        Stmxcsr => stmxcsr,
        Fxsave | Fxsave64 => fxsave,
        Fxrstor | Fxrstor64 => fxrstor,
        Xsave | Xsave64 | Xsaveopt | Xsaveopt64 => xsave,
        Xsavec | Xsavec64 | Xsaves | Xsaves64 => xsavec,
        Xrstor | Xrstor64 | Xrstors | Xrstors64 => xrstor,
        Xgetbv => xgetbv,
        Xsetbv => xsetbv,
        _ => return None,
    })
}
