//! x87 control instructions: FNINIT/FINIT, FNCLEX/FCLEX, FLDCW,
//! FNSTCW/FSTCW, FNSTSW/FSTSW (memory and AX), FNSTENV/FSTENV/FLDENV,
//! FNSAVE/FSAVE/FRSTOR (16/32-bit, real and protected layouts, SDM Vol. 1,
//! 8.1.10 figures 8-9 to 8-12), FNOP, WAIT, and the 8087/287 leftovers that
//! the 387 and later execute as no-ops (FENI, FDISI, FSETPM).
//! Control instructions leave FIP/FDP/FOP alone (SDM Vol. 1, 8.1.8).

use super::stack::{B, ES, SF, TAG_EMPTY};
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::state::{cr0, Mode};
use iced_x86::{Code, Instruction, MemorySize, Register};

/// FCW bits that are reserved: 6 reads as one, 7 and 13-15 as zero.
const FCW_RESERVED: u16 = 0xe0c0;

pub fn load_fcw(f: &mut crate::state::FpuState, v: u16) {
    f.fcw = (v & !FCW_RESERVED) | 0x40;
    f.update_es();
}

/// Waiting control instructions check #MF, non-waiting ones do not.
fn fninit<const WAIT: bool>(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.fpu_check(WAIT)?;
    cpu.s.fpu.init();
    Ok(())
}

fn fnclex<const WAIT: bool>(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.fpu_check(WAIT)?;
    cpu.s.fpu.fsw &= !(0x3f | SF | ES | B);
    Ok(())
}

fn fldcw(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_check(true)?;
    let v = cpu.read_op(bus, i, 0)? as u16;
    load_fcw(&mut cpu.s.fpu, v);
    Ok(())
}

fn fnstcw<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_check(WAIT)?;
    let v = cpu.s.fpu.fcw as u64;
    cpu.write_op(bus, i, 0, v)
}

fn fnstsw<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_check(WAIT)?;
    let v = cpu.s.fpu.fsw as u64;
    if i.op0_kind() == iced_x86::OpKind::Register {
        cpu.set_reg(Register::AX, v);
        Ok(())
    } else {
        cpu.write_op(bus, i, 0, v)
    }
}

fn nop_control(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.fpu_check(true)
}

fn fnop(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_enter(i)
}

/// WAIT/FWAIT: #NM only when CR0.MP and CR0.TS are both set, then #MF.
fn fwait(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.cr0 & (cr0::MP | cr0::TS) == cr0::MP | cr0::TS {
        return Err(Exception::DeviceNotAvailable);
    }
    if cpu.s.fpu.fsw & ES != 0 && cpu.s.cr0 & cr0::NE != 0 {
        return Err(Exception::FloatingPoint);
    }
    Ok(())
}

/// Layout of the environment image for this instruction.
fn env_layout(cpu: &Cpu, i: &Instruction) -> (bool, bool) {
    let big = matches!(i.memory_size(), MemorySize::FpuEnv28 | MemorySize::FpuState108);
    let real = matches!(cpu.s.mode, Mode::Real | Mode::V86);
    (big, real)
}

/// The 14- or 28-byte environment image (reserved halves read as ones).
pub fn env_image(cpu: &Cpu, big: bool, real: bool) -> Vec<u8> {
    let f = &cpu.s.fpu;
    let mut out = Vec::with_capacity(28);
    let lin_ip = ((f.fcs as u64) << 4).wrapping_add(f.fip) as u32;
    let lin_dp = ((f.fds as u64) << 4).wrapping_add(f.fdp) as u32;
    if big {
        let mut put = |v: u32| out.extend_from_slice(&v.to_le_bytes());
        put(0xffff_0000 | f.fcw as u32);
        put(0xffff_0000 | f.fsw as u32);
        put(0xffff_0000 | f.ftw as u32);
        if real {
            put(0xffff_0000 | (lin_ip & 0xffff));
            put(((lin_ip >> 16) << 12) | (f.fop as u32 & 0x7ff));
            put(0xffff_0000 | (lin_dp & 0xffff));
            put((lin_dp >> 16) << 12);
        } else {
            put(f.fip as u32);
            put(f.fcs as u32 | ((f.fop as u32 & 0x7ff) << 16));
            put(f.fdp as u32);
            put(0xffff_0000 | f.fds as u32);
        }
    } else {
        let mut put = |v: u16| out.extend_from_slice(&v.to_le_bytes());
        put(f.fcw);
        put(f.fsw);
        put(f.ftw);
        if real {
            put(lin_ip as u16);
            put((((lin_ip >> 16) & 0xf) << 12) as u16 | (f.fop & 0x7ff));
            put(lin_dp as u16);
            put((((lin_dp >> 16) & 0xf) << 12) as u16);
        } else {
            put(f.fip as u16);
            put(f.fcs);
            put(f.fdp as u16);
            put(f.fds);
        }
    }
    out
}

/// Load an environment image (FLDENV, FRSTOR).
pub fn load_env(cpu: &mut Cpu, img: &[u8], big: bool, real: bool) {
    let u16_at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([img[o], img[o + 1], img[o + 2], img[o + 3]]);
    let f = &mut cpu.s.fpu;
    let (fcw, fsw, ftw);
    if big {
        fcw = u16_at(0);
        fsw = u16_at(4);
        ftw = u16_at(8);
        if real {
            f.fip = ((u32_at(12) & 0xffff) | ((u32_at(16) >> 12) << 16)) as u64;
            f.fop = (u32_at(16) & 0x7ff) as u16;
            f.fdp = ((u32_at(20) & 0xffff) | ((u32_at(24) >> 12) << 16)) as u64;
            f.fcs = 0;
            f.fds = 0;
        } else {
            f.fip = u32_at(12) as u64;
            f.fcs = u16_at(16);
            f.fop = (u32_at(16) >> 16) as u16 & 0x7ff;
            f.fdp = u32_at(20) as u64;
            f.fds = u16_at(24);
        }
    } else {
        fcw = u16_at(0);
        fsw = u16_at(2);
        ftw = u16_at(4);
        if real {
            f.fip = (u16_at(6) as u64) | (((u16_at(8) >> 12) as u64) << 16);
            f.fop = u16_at(8) & 0x7ff;
            f.fdp = (u16_at(10) as u64) | (((u16_at(12) >> 12) as u64) << 16);
            f.fcs = 0;
            f.fds = 0;
        } else {
            f.fip = u16_at(6) as u64;
            f.fcs = u16_at(8);
            f.fdp = u16_at(10) as u64;
            f.fds = u16_at(12);
        }
    }
    f.fsw = fsw;
    f.ftw = ftw;
    load_fcw(f, fcw);
}

/// Retag every non-empty register from its contents (the processor keeps
/// only "empty or not" from a loaded tag word).
fn retag_all(cpu: &mut Cpu) {
    for p in 0..8 {
        cpu.s.fpu.retag(p);
    }
}

fn write_image(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction, img: &[u8]) -> Result<()> {
    let (seg, off) = cpu.mem_operand(i);
    cpu.probe_mem_write(bus, seg, off, img.len())?;
    let mask = addr_mask(cpu, i);
    for (k, chunk) in img.chunks(2).enumerate() {
        let v = chunk.iter().rev().fold(0u64, |a, &b| (a << 8) | b as u64);
        cpu.write_mem(bus, seg, off.wrapping_add(2 * k as u64) & mask, chunk.len(), v)?;
    }
    Ok(())
}

fn read_image(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction, len: usize) -> Result<Vec<u8>> {
    let (seg, off) = cpu.mem_operand(i);
    let mask = addr_mask(cpu, i);
    let mut out = Vec::with_capacity(len);
    for k in 0..len {
        out.push(cpu.read_mem(bus, seg, off.wrapping_add(k as u64) & mask, 1)? as u8);
    }
    Ok(out)
}

fn addr_mask(cpu: &Cpu, i: &Instruction) -> u64 {
    if cpu.s.mode == Mode::Long64 && i.memory_base().size() != 4 {
        u64::MAX
    } else if i.memory_base().size() == 2 || i.memory_index().size() == 2 {
        0xffff
    } else {
        0xffff_ffff
    }
}

fn fnstenv<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_check(WAIT)?;
    let (big, real) = env_layout(cpu, i);
    let img = env_image(cpu, big, real);
    write_image(cpu, bus, i, &img)?;
    // Then all exceptions are masked (SDM Vol. 2A, FSTENV).
    cpu.s.fpu.fcw |= 0x3f;
    Ok(())
}

fn fldenv(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_check(true)?;
    let (big, real) = env_layout(cpu, i);
    let img = read_image(cpu, bus, i, if big { 28 } else { 14 })?;
    load_env(cpu, &img, big, real);
    retag_all(cpu);
    Ok(())
}

fn fnsave<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_check(WAIT)?;
    let (big, real) = env_layout(cpu, i);
    let mut img = env_image(cpu, big, real);
    for k in 0..8 {
        let v = cpu.s.fpu.st[cpu.s.fpu.phys(k)];
        img.extend_from_slice(&v.to_le_bytes()[..10]);
    }
    write_image(cpu, bus, i, &img)?;
    cpu.s.fpu.init();
    Ok(())
}

fn frstor(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.fpu_check(true)?;
    let (big, real) = env_layout(cpu, i);
    let env_len = if big { 28 } else { 14 };
    let img = read_image(cpu, bus, i, env_len + 80)?;
    load_env(cpu, &img[..env_len], big, real);
    for k in 0..8 {
        let o = env_len + 10 * k;
        let mut b = [0u8; 16];
        b[..10].copy_from_slice(&img[o..o + 10]);
        let p = cpu.s.fpu.phys(k);
        cpu.s.fpu.st[p] = u128::from_le_bytes(b);
    }
    retag_all(cpu);
    let _ = TAG_EMPTY;
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    Some(match code {
        Fninit => fninit::<false>,
        Finit => fninit::<true>,
        Fnclex => fnclex::<false>,
        Fclex => fnclex::<true>,
        Fldcw_m2byte => fldcw,
        Fnstcw_m2byte => fnstcw::<false>,
        Fstcw_m2byte => fnstcw::<true>,
        Fnstsw_m2byte | Fnstsw_AX => fnstsw::<false>,
        Fstsw_m2byte | Fstsw_AX => fnstsw::<true>,
        Fnstenv_m14byte | Fnstenv_m28byte => fnstenv::<false>,
        Fstenv_m14byte | Fstenv_m28byte => fnstenv::<true>,
        Fldenv_m14byte | Fldenv_m28byte => fldenv,
        Fnsave_m94byte | Fnsave_m108byte => fnsave::<false>,
        Fsave_m94byte | Fsave_m108byte => fnsave::<true>,
        Frstor_m94byte | Frstor_m108byte => frstor,
        Fnop => fnop,
        Wait => fwait,
        Fneni | Fndisi | Fnsetpm => nop_control_nowait,
        Feni | Fdisi | Fsetpm => nop_control,
        _ => return None,
    })
}

fn nop_control_nowait(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpu.fpu_check(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{GuestMemory, PhysMap};

    fn cpu() -> Cpu {
        let mut c = Cpu::new(GuestMemory::new(4096).unwrap(), PhysMap::new());
        let f = &mut c.s.fpu;
        f.fcw = 0x027f;
        f.fsw = 0x3800;
        f.ftw = 0x3fff;
        f.fip = 0x1234_5678;
        f.fcs = 0x0010;
        f.fop = 0x5d9;
        f.fdp = 0x0abc_def0;
        f.fds = 0x0018;
        c
    }

    /// SDM Vol. 1, figure 8-9: 32-bit protected-mode environment image.
    #[test]
    fn env_32bit_protected_layout() {
        let c = cpu();
        let img = env_image(&c, true, false);
        let dw: Vec<u32> = img.chunks(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(
            dw,
            vec![
                0xffff_027f,
                0xffff_3800,
                0xffff_3fff,
                0x1234_5678,
                0x05d9_0010,
                0x0abc_def0,
                0xffff_0018
            ]
        );
    }

    /// Figure 8-11: 16-bit protected-mode image.
    #[test]
    fn env_16bit_protected_layout() {
        let c = cpu();
        let img = env_image(&c, false, false);
        let w: Vec<u16> = img.chunks(2).map(|b| u16::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(w, vec![0x027f, 0x3800, 0x3fff, 0x5678, 0x0010, 0xdef0, 0x0018]);
    }

    /// Figure 8-10: 32-bit real-mode image (linear pointers, FOP with FIP high bits).
    #[test]
    fn env_32bit_real_layout_round_trips() {
        let mut c = cpu();
        c.s.fpu.fcs = 0;
        c.s.fpu.fds = 0;
        let img = env_image(&c, true, true);
        let dw: Vec<u32> = img.chunks(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(dw[3], 0xffff_5678);
        assert_eq!(dw[4], (0x1234 << 12) | 0x5d9);
        assert_eq!(dw[5], 0xffff_def0);
        assert_eq!(dw[6], 0x0abc << 12);
        let mut d = Cpu::new(GuestMemory::new(4096).unwrap(), PhysMap::new());
        load_env(&mut d, &img, true, true);
        let (a, b) = (&c.s.fpu, &d.s.fpu);
        assert_eq!(
            (a.fcw, a.fsw, a.ftw, a.fip, a.fop, a.fdp),
            (b.fcw, b.fsw, b.ftw, b.fip, b.fop, b.fdp)
        );
    }

    #[test]
    fn fldenv_unmasking_a_pending_exception_sets_es() {
        let mut c = cpu();
        c.s.fpu.fsw = 0x0004; // ZE pending, masked
        let mut img = env_image(&c, false, false);
        img[0] = 0x7b; // FCW with ZE unmasked
        load_env(&mut c, &img, false, false);
        assert_eq!(c.s.fpu.fsw & 0x8080, 0x8080);
    }
}
