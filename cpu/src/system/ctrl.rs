//! Control and debug registers (SDM Vol. 3A 2.5, 17.2; Vol. 2 MOV CR/DR):
//! MOV to/from CR0/CR2/CR3/CR4/CR8 and DR0-7, CLTS, LMSW, SMSW, INVLPG,
//! INVPCID, WBINVD/INVD. TLB flushing follows SDM 4.10.4 loosely: kagami
//! flushes everything where the architecture flushes part (always allowed).

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::dispatch::implemented;
use crate::exception::{Exception, Result};
use crate::mmu::PHYS_ADDR_BITS;
use crate::seg::canonical;
use crate::state::{attr, cr0, cr4, efer, Mode, CS};
use crate::system::desc::umip;
use iced_x86::{Code, Instruction, OpKind, Register};

fn cpl0(cpu: &Cpu) -> Result<()> {
    if cpu.s.cpl == 0 {
        Ok(())
    } else {
        Err(Exception::GP0)
    }
}

/// CR4 bits kagami lets software set. Feature bits that depend on other
/// families are allowed only once those instructions exist, so CR4 and
/// CPUID can never disagree.
pub fn cr4_supported() -> u64 {
    let mut m = cr4::TSD
        | cr4::DE
        | cr4::PSE
        | cr4::PAE
        | cr4::MCE
        | cr4::PGE
        | cr4::PCE
        | cr4::OSFXSR
        | cr4::OSXMMEXCPT
        | cr4::UMIP
        | cr4::PCIDE
        | cr4::SMEP
        | cr4::SMAP;
    if implemented(Code::Rdfsbase_r64) {
        m |= cr4::FSGSBASE;
    }
    if implemented(Code::Xsave_mem) && implemented(Code::Xgetbv) {
        m |= cr4::OSXSAVE;
    }
    m
}

impl Cpu {
    /// MOV CR0 / LMSW / CLTS: the reserved-bit and mode-transition checks of
    /// SDM Vol. 2 "MOV—Move to/from Control Registers".
    pub fn write_cr0(&mut self, v: u64) -> Result<()> {
        if v >> 32 != 0 {
            return Err(Exception::GP0);
        }
        let v = (v & 0xe005_003f) | cr0::ET;
        let old = self.s.cr0;
        if v & cr0::PG != 0 && v & cr0::PE == 0 || v & cr0::NW != 0 && v & cr0::CD == 0 {
            return Err(Exception::GP0);
        }
        let paging_on = v & cr0::PG != 0 && old & cr0::PG == 0;
        if paging_on && self.s.efer & efer::LME != 0 {
            // Entering IA-32e mode needs PAE and a CS that is not 64-bit.
            if self.s.cr4 & cr4::PAE == 0 || self.s.segs[CS].attr & attr::L != 0 {
                return Err(Exception::GP0);
            }
        }
        if v & cr0::PG == 0 && old & cr0::PG != 0 && self.s.mode == Mode::Long64 {
            return Err(Exception::GP0);
        }
        if v & cr0::PG == 0 && self.s.cr4 & cr4::PCIDE != 0 {
            return Err(Exception::GP0);
        }
        self.s.cr0 = v;
        if (old ^ v) & (cr0::PG | cr0::PE | cr0::WP | cr0::CD) != 0 {
            self.flush_tlb_all();
        }
        self.update_mode();
        self.break_block = true;
        Ok(())
    }

    pub fn write_cr3(&mut self, v: u64) -> Result<()> {
        let pcide = self.s.cr4 & cr4::PCIDE != 0;
        let mut v = v;
        if pcide {
            // Bit 63 asks not to flush this PCID; kagami flushes anyway.
            v &= !(1 << 63);
        }
        if self.s.efer & efer::LMA != 0 && v >> PHYS_ADDR_BITS != 0 {
            return Err(Exception::GP0);
        }
        if self.s.efer & efer::LMA == 0 {
            v &= 0xffff_ffff;
        }
        self.s.cr3 = v;
        self.flush_tlb_all();
        self.break_block = true;
        Ok(())
    }

    pub fn write_cr4(&mut self, v: u64) -> Result<()> {
        if v & !cr4_supported() != 0 {
            return Err(Exception::GP0);
        }
        let old = self.s.cr4;
        let lma = self.s.efer & efer::LMA != 0;
        if lma && v & cr4::PAE == 0 {
            return Err(Exception::GP0);
        }
        if v & cr4::PCIDE != 0 && old & cr4::PCIDE == 0 && (!lma || self.s.cr3 & 0xfff != 0) {
            return Err(Exception::GP0);
        }
        self.s.cr4 = v;
        if old != v {
            self.flush_tlb_all();
        }
        self.update_mode();
        self.break_block = true;
        Ok(())
    }
}

fn cr_index(r: Register) -> usize {
    r as usize - Register::CR0 as usize
}

fn dr_index(r: Register) -> usize {
    r as usize - Register::DR0 as usize
}

fn mov_from_cr(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    let v = match cr_index(i.op_register(1)) {
        0 => cpu.s.cr0,
        2 => cpu.s.cr2,
        3 => cpu.s.cr3,
        4 => cpu.s.cr4,
        8 => (bus.read_tpr() >> 4) as u64,
        _ => return Err(Exception::InvalidOpcode),
    };
    cpu.set_reg(i.op_register(0), v);
    Ok(())
}

fn mov_to_cr(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    let v = cpu.reg(i.op_register(1));
    match cr_index(i.op_register(0)) {
        0 => cpu.write_cr0(v)?,
        2 => cpu.s.cr2 = v,
        3 => cpu.write_cr3(v)?,
        4 => cpu.write_cr4(v)?,
        8 => {
            if v & !0xf != 0 {
                return Err(Exception::GP0);
            }
            cpu.s.cr8 = v;
            // The APIC's TPR holds the priority class in bits 7:4.
            bus.write_tpr((v << 4) as u8);
            // A lower TPR can unmask an interrupt: leave the block.
            cpu.break_block = true;
        }
        _ => return Err(Exception::InvalidOpcode),
    }
    Ok(())
}

/// DR4/DR5 alias DR6/DR7 unless CR4.DE; GD makes any access a #DB.
fn dr_access(cpu: &mut Cpu, r: Register) -> Result<usize> {
    cpl0(cpu)?;
    let mut n = dr_index(r);
    if n == 4 || n == 5 {
        if cpu.s.cr4 & cr4::DE != 0 {
            return Err(Exception::InvalidOpcode);
        }
        n += 2;
    }
    if n > 7 {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.s.dr[7] & (1 << 13) != 0 {
        // General detect (SDM 17.2.4): DR6.BD, GD cleared, fault.
        cpu.s.dr[6] |= crate::debug::DR6_BD;
        cpu.s.dr[7] &= !(1 << 13);
        return Err(Exception::Debug);
    }
    Ok(n)
}

fn mov_from_dr(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let n = dr_access(cpu, i.op_register(1))?;
    let v = cpu.s.dr[n];
    cpu.set_reg(i.op_register(0), v);
    Ok(())
}

fn mov_to_dr(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let n = dr_access(cpu, i.op_register(0))?;
    let v = cpu.reg(i.op_register(1));
    cpu.s.dr[n] = match n {
        6 | 7 if v >> 32 != 0 => return Err(Exception::GP0),
        6 => (v | 0xffff_0ff0) & !(1 << 12),
        7 => (v | 0x400) & !0xd800,
        _ if cpu.s.mode != Mode::Long64 => v & 0xffff_ffff,
        _ => v,
    };
    // Breakpoints may have been armed or moved: the run loop re-reads them
    // (`Cpu::sync_watch`) at the boundary after this instruction.
    cpu.break_block = true;
    Ok(())
}

fn clts(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    cpu.s.cr0 &= !cr0::TS;
    Ok(())
}

fn lmsw(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    let v = if i.op_kind(0) == OpKind::Register {
        cpu.reg(i.op_register(0))
    } else {
        let (seg, off) = cpu.mem_operand(i);
        cpu.read_mem(bus, seg, off, 2)?
    };
    // Only PE, MP, EM, TS; PE can be set but not cleared.
    let new = (cpu.s.cr0 & !0xe) | (v & 0xf) | (cpu.s.cr0 & cr0::PE);
    cpu.write_cr0(new)
}

fn smsw(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    umip(cpu)?;
    let v = cpu.s.cr0;
    if i.op_kind(0) == OpKind::Register {
        let r = i.op_register(0);
        cpu.set_reg(r, if r.size() == 2 { v & 0xffff } else { v });
        Ok(())
    } else {
        let (seg, off) = cpu.mem_operand(i);
        cpu.write_mem(bus, seg, off, 2, v & 0xffff)
    }
}

fn invlpg(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    let (seg, off) = cpu.mem_operand(i);
    let lin = if cpu.s.mode == Mode::Long64 {
        let base = if seg >= crate::state::FS { cpu.s.segs[seg].base } else { 0 };
        base.wrapping_add(off)
    } else {
        cpu.s.segs[seg].base.wrapping_add(off) & 0xffff_ffff
    };
    if cpu.s.mode != Mode::Long64 || canonical(lin) {
        cpu.flush_tlb_page(lin);
    }
    cpu.break_block = true;
    Ok(())
}

fn invpcid(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if !cpu.s.mode.is_protected() {
        return Err(Exception::InvalidOpcode);
    }
    cpl0(cpu)?;
    let ty = cpu.reg(i.op_register(0));
    let (seg, off) = cpu.mem_operand(i);
    let pcid = cpu.read_mem(bus, seg, off, 8)?;
    let lin = cpu.read_mem(bus, seg, off.wrapping_add(8), 8)?;
    if ty > 3 || pcid > 0xfff {
        return Err(Exception::GP0);
    }
    if ty == 0 && !canonical(lin) {
        return Err(Exception::GP0);
    }
    if (ty == 0 || ty == 1) && pcid != 0 && cpu.s.cr4 & cr4::PCIDE == 0 {
        return Err(Exception::GP0);
    }
    cpu.flush_tlb_all();
    cpu.break_block = true;
    Ok(())
}

/// WBINVD/INVD: kagami has no caches to write back.
fn wbinvd(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpl0(cpu)
}

/// STAC/CLAC: set or clear EFLAGS.AC, which suspends SMAP (ring 0 only).
fn stac_clac<const SET: bool>(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.mode == Mode::V86 || cpu.s.cpl > 0 {
        return Err(Exception::InvalidOpcode);
    }
    let f = cpu.s.flags();
    cpu.s.set_flags(if SET {
        f | crate::state::flags::AC
    } else {
        f & !crate::state::flags::AC
    });
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    Some(match code {
        Stac => stac_clac::<true>,
        Clac => stac_clac::<false>,
        Mov_r32_cr | Mov_r64_cr => mov_from_cr,
        Mov_cr_r32 | Mov_cr_r64 => mov_to_cr,
        Mov_r32_dr | Mov_r64_dr => mov_from_dr,
        Mov_dr_r32 | Mov_dr_r64 => mov_to_dr,
        Clts => clts,
        Lmsw_rm16 | Lmsw_r32m16 | Lmsw_r64m16 => lmsw,
        Smsw_rm16 | Smsw_r32m16 | Smsw_r64m16 => smsw,
        Invlpg_m => invlpg,
        Invpcid_r32_m128 | Invpcid_r64_m128 => invpcid,
        Wbinvd | Invd => wbinvd,
        _ => return None,
    })
}
