//! Model-specific registers and the fast system-call instructions (SDM Vol.
//! 4 for MSR numbers; Vol. 2 for RDMSR/WRMSR, SYSCALL/SYSRET,
//! SYSENTER/SYSEXIT, SWAPGS, RDTSC/RDTSCP/RDPID, RDRAND/RDSEED, RDPMC).
//!
//! The time-stamp counter is `s.tsc`, which the machine advances on its
//! virtual clock; the CPU only reads and writes it.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::flags::CC_EFLAGS;
use crate::seg::canonical;
use crate::state::{attr, cr0, cr4, efer, flags, Mode, Segment, CS, GS, RAX, RCX, RDX, RSP, SS};
use iced_x86::{Code, Instruction};

pub mod index {
    pub const TSC: u32 = 0x10;
    pub const APIC_BASE: u32 = 0x1b;
    pub const FEATURE_CONTROL: u32 = 0x3a;
    pub const TSC_ADJUST: u32 = 0x3b;
    pub const SPEC_CTRL: u32 = 0x48;
    pub const BIOS_SIGN_ID: u32 = 0x8b;
    pub const MTRRCAP: u32 = 0xfe;
    pub const SYSENTER_CS: u32 = 0x174;
    pub const SYSENTER_ESP: u32 = 0x175;
    pub const SYSENTER_EIP: u32 = 0x176;
    pub const MISC_ENABLE: u32 = 0x1a0;
    pub const MTRR_PHYS_BASE0: u32 = 0x200;
    pub const MTRR_FIX64K: u32 = 0x250;
    pub const MTRR_FIX16K_80000: u32 = 0x258;
    pub const MTRR_FIX16K_A0000: u32 = 0x259;
    pub const MTRR_FIX4K_C0000: u32 = 0x268;
    pub const PAT: u32 = 0x277;
    /// IA32_XSS: supervisor state components for XSAVES (none supported).
    pub const XSS: u32 = 0xda0;
    pub const MTRR_DEF_TYPE: u32 = 0x2ff;
    pub const EFER: u32 = 0xc000_0080;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const CSTAR: u32 = 0xc000_0083;
    pub const SFMASK: u32 = 0xc000_0084;
    pub const FS_BASE: u32 = 0xc000_0100;
    pub const GS_BASE: u32 = 0xc000_0101;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const TSC_AUX: u32 = 0xc000_0103;
}
use index::*;

/// Variable-range MTRR pairs (MTRRCAP.VCNT).
const MTRR_VCNT: u64 = 8;

fn mtrr_fixed_slot(msr: u32) -> Option<usize> {
    match msr {
        MTRR_FIX64K => Some(0),
        MTRR_FIX16K_80000 => Some(1),
        MTRR_FIX16K_A0000 => Some(2),
        0x268..=0x26f => Some(3 + (msr - MTRR_FIX4K_C0000) as usize),
        _ => None,
    }
}

/// PAT entries may hold memory types 0, 1, 4, 5, 6, 7 only.
fn pat_valid(v: u64) -> bool {
    (0..8).all(|k| matches!((v >> (8 * k)) & 0xff, 0 | 1 | 4..=7))
}

impl Cpu {
    /// RDMSR, without the privilege check. `None` means #GP.
    pub fn read_msr(&mut self, bus: &mut dyn Bus, msr: u32) -> Option<u64> {
        let m = &self.s.msr;
        Some(match msr {
            TSC => bus.read_tsc(self.s.icount).unwrap_or(self.s.tsc),
            APIC_BASE => m.apic_base,
            // Locked, VMX off: the firmware has configured it.
            FEATURE_CONTROL => 1,
            TSC_ADJUST => m.tsc_adjust,
            SPEC_CTRL => m.spec_ctrl,
            BIOS_SIGN_ID => 0,
            MTRRCAP => MTRR_VCNT | (1 << 8) | (1 << 10),
            SYSENTER_CS => m.sysenter_cs,
            SYSENTER_ESP => m.sysenter_esp,
            SYSENTER_EIP => m.sysenter_eip,
            MISC_ENABLE => m.misc_enable,
            0x200..=0x20f if ((msr - MTRR_PHYS_BASE0) as u64) < 2 * MTRR_VCNT => m.mtrr_var[(msr - MTRR_PHYS_BASE0) as usize],
            PAT => m.pat,
            MTRR_DEF_TYPE => m.mtrr_def_type,
            EFER => self.s.efer,
            STAR => m.star,
            LSTAR => m.lstar,
            CSTAR => m.cstar,
            SFMASK => m.sfmask,
            FS_BASE => self.s.segs[crate::state::FS].base,
            GS_BASE => self.s.segs[GS].base,
            KERNEL_GS_BASE => m.kernel_gs_base,
            TSC_AUX => m.tsc_aux,
            XSS if crate::system::cpuid::has("xsaves") => 0,
            _ if crate::system::mca::owns(msr) => return crate::system::mca::read(m, msr),
            _ => match mtrr_fixed_slot(msr) {
                Some(k) => m.mtrr_fixed[k],
                None => return bus.read_msr(msr),
            },
        })
    }

    /// WRMSR, without the privilege check. `Err` is the fault to raise.
    pub fn write_msr(&mut self, bus: &mut dyn Bus, msr: u32, v: u64) -> Result<()> {
        let gp = Err(Exception::GP0);
        if matches!(msr, TSC | TSC_ADJUST) {
            // The TSC as of this instruction, when the machine keeps it.
            self.s.tsc = bus.read_tsc(self.s.icount).unwrap_or(self.s.tsc);
        }
        let m = &mut self.s.msr;
        match msr {
            TSC => {
                // Writing the TSC moves TSC_ADJUST by the same amount (SDM 17.17.3).
                m.tsc_adjust = m.tsc_adjust.wrapping_add(v.wrapping_sub(self.s.tsc));
                self.s.tsc = v;
                bus.write_tsc(self.s.icount, v);
            }
            APIC_BASE => {
                // Bits 0-7, 9 and those above MAXPHYADDR are reserved.
                if v & (0x2ff | !((1u64 << crate::mmu::PHYS_ADDR_BITS) - 1)) != 0 {
                    return gp;
                }
                m.apic_base = v;
                bus.write_msr(msr, v);
            }
            FEATURE_CONTROL => return gp,
            TSC_ADJUST => {
                self.s.tsc = self.s.tsc.wrapping_add(v.wrapping_sub(m.tsc_adjust));
                m.tsc_adjust = v;
                bus.write_tsc(self.s.icount, self.s.tsc);
            }
            SPEC_CTRL => m.spec_ctrl = v & 7,
            BIOS_SIGN_ID => {}
            SYSENTER_CS => m.sysenter_cs = v & 0xffff,
            SYSENTER_ESP | SYSENTER_EIP | LSTAR | CSTAR | KERNEL_GS_BASE | FS_BASE | GS_BASE if !canonical(v) => return gp,
            SYSENTER_ESP => m.sysenter_esp = v,
            SYSENTER_EIP => m.sysenter_eip = v,
            MISC_ENABLE => m.misc_enable = v,
            0x200..=0x20f if ((msr - MTRR_PHYS_BASE0) as u64) < 2 * MTRR_VCNT => m.mtrr_var[(msr - MTRR_PHYS_BASE0) as usize] = v,
            PAT => {
                if !pat_valid(v) {
                    return gp;
                }
                m.pat = v;
            }
            MTRR_DEF_TYPE => {
                if v & !0xcff != 0 {
                    return gp;
                }
                m.mtrr_def_type = v;
            }
            EFER => return self.write_efer(v),
            STAR => m.star = v,
            LSTAR => m.lstar = v,
            CSTAR => m.cstar = v,
            SFMASK => m.sfmask = v & 0xffff_ffff,
            FS_BASE => self.s.segs[crate::state::FS].base = v,
            GS_BASE => self.s.segs[GS].base = v,
            KERNEL_GS_BASE => m.kernel_gs_base = v,
            TSC_AUX => {
                if v >> 32 != 0 {
                    return gp;
                }
                m.tsc_aux = v;
            }
            XSS if crate::system::cpuid::has("xsaves") => {
                if v != 0 {
                    return gp;
                }
            }
            _ if crate::system::mca::owns(msr) => {
                if !crate::system::mca::write(m, msr, v) {
                    return gp;
                }
            }
            _ => match mtrr_fixed_slot(msr) {
                Some(k) => m.mtrr_fixed[k] = v,
                None => {
                    if !bus.write_msr(msr, v) {
                        return gp;
                    }
                    self.break_block = true;
                }
            },
        }
        Ok(())
    }

    /// EFER: SCE, LME, NXE are writable; LMA follows CR0.PG && LME.
    pub fn write_efer(&mut self, v: u64) -> Result<()> {
        if v & !(efer::SCE | efer::LME | efer::LMA | efer::NXE) != 0 {
            return Err(Exception::GP0);
        }
        let old = self.s.efer;
        if (old ^ v) & efer::LME != 0 && self.s.cr0 & cr0::PG != 0 {
            return Err(Exception::GP0);
        }
        self.s.efer = (v & !efer::LMA) | (old & efer::LMA);
        if (old ^ v) & efer::NXE != 0 {
            self.flush_tlb_all();
        }
        self.update_mode();
        self.break_block = true;
        Ok(())
    }

    /// Next value of the deterministic RDRAND/RDSEED generator (xorshift64).
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng_state;
        if x == 0 {
            x = 0x853c_49e6_748f_ea9b;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng_state = x;
        x
    }
}

/// A flat code or data segment as SYSCALL/SYSENTER and their returns load.
fn flat(sel: u16, code: bool, dpl: u8, long: bool) -> Segment {
    let ty = if code {
        attr::CODE | attr::RW | attr::ACCESSED
    } else {
        attr::RW | attr::ACCESSED
    };
    let size = if code && long { attr::L } else { attr::DB };
    Segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: sel,
        attr: ty | attr::S | attr::P | attr::G | size | ((dpl as u16) << attr::DPL_SHIFT),
    }
}

fn cpl0(cpu: &Cpu) -> Result<()> {
    if cpu.s.cpl == 0 {
        Ok(())
    } else {
        Err(Exception::GP0)
    }
}

fn rdmsr(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    let v = cpu.read_msr(bus, cpu.s.gpr[RCX] as u32).ok_or(Exception::GP0)?;
    cpu.s.gpr[RAX] = v & 0xffff_ffff;
    cpu.s.gpr[RDX] = v >> 32;
    Ok(())
}

fn wrmsr(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    let v = (cpu.s.gpr[RAX] & 0xffff_ffff) | (cpu.s.gpr[RDX] << 32);
    cpu.write_msr(bus, cpu.s.gpr[RCX] as u32, v)
}

fn tsd_check(cpu: &Cpu) -> Result<()> {
    if cpu.s.cr4 & cr4::TSD != 0 && cpu.s.cpl > 0 {
        Err(Exception::GP0)
    } else {
        Ok(())
    }
}

fn rdtsc(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Instruction) -> Result<()> {
    tsd_check(cpu)?;
    let t = bus.read_tsc(cpu.s.icount).unwrap_or(cpu.s.tsc);
    cpu.s.gpr[RAX] = t & 0xffff_ffff;
    cpu.s.gpr[RDX] = t >> 32;
    Ok(())
}

fn rdtscp(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    rdtsc(cpu, bus, i)?;
    cpu.s.gpr[RCX] = cpu.s.msr.tsc_aux & 0xffff_ffff;
    Ok(())
}

fn rdpid(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpu.set_reg(i.op_register(0), cpu.s.msr.tsc_aux & 0xffff_ffff);
    Ok(())
}

/// RDPMC: kagami has no performance counters (CPUID leaf 0xA reports
/// none), so every counter index is invalid and faults, as does any use
/// at CPL > 0 without CR4.PCE.
fn rdpmc(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Err(Exception::GP0)
}

fn rdrand(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let v = cpu.next_random();
    cpu.set_reg(i.op_register(0), v);
    let f = cpu.s.flags() & !flags::ARITH;
    cpu.s.rflags = f | flags::CF;
    cpu.s.cc_op = CC_EFLAGS;
    Ok(())
}

fn syscall(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    // 64-bit mode uses LSTAR; compatibility mode CSTAR (AMD semantics).
    if cpu.s.efer & efer::SCE == 0 || !cpu.s.mode.is_long() {
        return Err(Exception::InvalidOpcode);
    }
    let star = cpu.s.msr.star;
    let sel = ((star >> 32) & 0xfffc) as u16;
    let fl = cpu.s.flags();
    let target = if cpu.s.mode == Mode::Long64 {
        cpu.s.msr.lstar
    } else {
        cpu.s.msr.cstar
    };
    cpu.s.gpr[RCX] = cpu.s.rip;
    cpu.s.gpr[11] = fl & !flags::RF;
    cpu.s.set_flags(fl & !cpu.s.msr.sfmask & !flags::RF);
    cpu.s.segs[CS] = flat(sel, true, 0, true);
    cpu.s.segs[SS] = flat(sel + 8, false, 0, false);
    cpu.update_mode();
    cpu.s.rip = target;
    Ok(())
}

fn sysret(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if cpu.s.efer & efer::SCE == 0 || cpu.s.mode != Mode::Long64 {
        return Err(Exception::InvalidOpcode);
    }
    cpl0(cpu)?;
    let to64 = i.code() == Code::Sysretq;
    let rcx = cpu.s.gpr[RCX];
    if to64 && !canonical(rcx) {
        return Err(Exception::GP0);
    }
    let base = ((cpu.s.msr.star >> 48) & 0xffff) as u16;
    let (cs, rip) = if to64 {
        (flat(base.wrapping_add(16) | 3, true, 3, true), rcx)
    } else {
        (flat(base | 3, true, 3, false), rcx & 0xffff_ffff)
    };
    cpu.s.set_flags((cpu.s.gpr[11] & 0x3c_7fd7) | flags::FIXED1);
    cpu.s.segs[CS] = cs;
    cpu.s.segs[SS] = flat(base.wrapping_add(8) | 3, false, 3, false);
    cpu.update_mode();
    cpu.s.rip = rip;
    Ok(())
}

fn sysenter(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let cs = (cpu.s.msr.sysenter_cs & 0xfffc) as u16;
    // Allowed from V86 mode too (it clears VM).
    if cpu.s.mode == Mode::Real || cs == 0 {
        return Err(Exception::GP0);
    }
    let long = cpu.s.efer & efer::LMA != 0;
    let f = cpu.s.flags() & !(flags::VM | flags::IF | flags::RF);
    cpu.s.set_flags(f);
    cpu.s.segs[CS] = flat(cs, true, 0, long);
    cpu.s.segs[SS] = flat(cs + 8, false, 0, false);
    cpu.update_mode();
    let (esp, eip) = (cpu.s.msr.sysenter_esp, cpu.s.msr.sysenter_eip);
    if long {
        cpu.s.gpr[RSP] = esp;
        cpu.s.rip = eip;
    } else {
        cpu.s.gpr[RSP] = esp & 0xffff_ffff;
        cpu.s.rip = eip & 0xffff_ffff;
    }
    Ok(())
}

fn sysexit(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let base = (cpu.s.msr.sysenter_cs & 0xfffc) as u16;
    if !cpu.s.mode.is_protected() || base == 0 || cpu.s.cpl != 0 {
        return Err(Exception::GP0);
    }
    let to64 = i.code() == Code::Sysexitq;
    let (rip, rsp) = (cpu.s.gpr[RDX], cpu.s.gpr[RCX]);
    if to64 && (!canonical(rip) || !canonical(rsp)) {
        return Err(Exception::GP0);
    }
    if to64 {
        cpu.s.segs[CS] = flat(base.wrapping_add(32) | 3, true, 3, true);
        cpu.s.segs[SS] = flat(base.wrapping_add(40) | 3, false, 3, false);
        cpu.s.rip = rip;
        cpu.s.gpr[RSP] = rsp;
    } else {
        cpu.s.segs[CS] = flat(base.wrapping_add(16) | 3, true, 3, false);
        cpu.s.segs[SS] = flat(base.wrapping_add(24) | 3, false, 3, false);
        cpu.s.rip = rip & 0xffff_ffff;
        cpu.s.gpr[RSP] = rsp & 0xffff_ffff;
    }
    cpu.update_mode();
    Ok(())
}

fn swapgs(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    if cpu.s.mode != Mode::Long64 {
        return Err(Exception::InvalidOpcode);
    }
    cpl0(cpu)?;
    std::mem::swap(&mut cpu.s.segs[GS].base, &mut cpu.s.msr.kernel_gs_base);
    Ok(())
}

/// RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE: 64-bit mode with CR4.FSGSBASE.
fn fsgsbase<const GS_: bool, const WRITE: bool>(cpu: &mut Cpu, _: &mut dyn Bus, i: &Instruction) -> Result<()> {
    if cpu.s.mode != Mode::Long64 || cpu.s.cr4 & cr4::FSGSBASE == 0 {
        return Err(Exception::InvalidOpcode);
    }
    let seg = if GS_ { GS } else { crate::state::FS };
    let r = i.op_register(0);
    if WRITE {
        let v = cpu.reg(r);
        if !canonical(v) {
            return Err(Exception::GP0);
        }
        cpu.s.segs[seg].base = v;
    } else {
        let v = cpu.s.segs[seg].base;
        cpu.set_reg(r, v);
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    Some(match code {
        Rdfsbase_r32 | Rdfsbase_r64 => fsgsbase::<false, false>,
        Rdgsbase_r32 | Rdgsbase_r64 => fsgsbase::<true, false>,
        Wrfsbase_r32 | Wrfsbase_r64 => fsgsbase::<false, true>,
        Wrgsbase_r32 | Wrgsbase_r64 => fsgsbase::<true, true>,
        Rdmsr => rdmsr,
        Wrmsr => wrmsr,
        Rdtsc => rdtsc,
        Rdtscp => rdtscp,
        Rdpid_r32 | Rdpid_r64 => rdpid,
        Rdpmc => rdpmc,
        Rdrand_r16 | Rdrand_r32 | Rdrand_r64 | Rdseed_r16 | Rdseed_r32 | Rdseed_r64 => rdrand,
        Syscall => syscall,
        Sysretd | Sysretq => sysret,
        Sysenter => sysenter,
        Sysexitd | Sysexitq => sysexit,
        Swapgs => swapgs,
        _ => return None,
    })
}
