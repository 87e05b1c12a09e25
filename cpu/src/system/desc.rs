//! Segment-register loads and descriptor tables (SDM Vol. 3A chapters 3 and
//! 5): the descriptor fetch every protected-mode transfer uses, MOV Sreg,
//! LGDT/LIDT/SGDT/SIDT, LLDT/SLDT, LTR/STR, LAR, LSL, VERR, VERW and ARPL.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::flags::CC_EFLAGS;
use crate::mmu::{Access, MMU_SUPER_NOSMAP};
use crate::operand::seg_index;
use crate::seg::canonical;
use crate::state::{attr, cr4, flags, Mode, Segment, CS, DS, ES, FS, GS, SS};
use iced_x86::{Code, Instruction, OpKind};

/// A raw 8-byte descriptor (the low half of a 16-byte one in long mode).
#[derive(Clone, Copy, Debug)]
pub struct Desc(pub u64);

impl Desc {
    /// Descriptor bits 40..47 and 52..55 in the packed `attr` form.
    pub fn attr(self) -> u16 {
        (((self.0 >> 40) & 0xff) | (((self.0 >> 52) & 0xf) << 8)) as u16
    }
    pub fn ty(self) -> u16 {
        self.attr() & attr::TYPE_MASK
    }
    /// S bit: code or data (as opposed to system).
    pub fn is_seg(self) -> bool {
        self.attr() & attr::S != 0
    }
    pub fn is_code(self) -> bool {
        self.is_seg() && self.attr() & attr::CODE != 0
    }
    pub fn is_conforming_code(self) -> bool {
        self.is_code() && self.attr() & attr::DC != 0
    }
    pub fn dpl(self) -> u8 {
        ((self.0 >> 45) & 3) as u8
    }
    pub fn present(self) -> bool {
        self.0 & (1 << 47) != 0
    }
    pub fn base(self) -> u64 {
        ((self.0 >> 16) & 0xff_ffff) | (((self.0 >> 56) & 0xff) << 24)
    }
    /// Byte-granular limit.
    pub fn limit(self) -> u32 {
        let raw = ((self.0 & 0xffff) | ((self.0 >> 32) & 0xf_0000)) as u32;
        if self.0 & (1 << 55) != 0 {
            (raw << 12) | 0xfff
        } else {
            raw
        }
    }
    /// The hidden cache contents this descriptor loads.
    pub fn segment(self, sel: u16) -> Segment {
        Segment {
            base: self.base(),
            limit: self.limit(),
            selector: sel,
            attr: self.attr(),
        }
    }
    /// Gate fields: target selector, offset (low 32 bits), parameter count.
    pub fn gate_selector(self) -> u16 {
        (self.0 >> 16) as u16
    }
    pub fn gate_offset(self) -> u64 {
        (self.0 & 0xffff) | ((self.0 >> 32) & 0xffff_0000)
    }
    pub fn gate_params(self) -> u32 {
        ((self.0 >> 32) & 0x1f) as u32
    }
}

/// System-descriptor types (S = 0).
pub mod sys {
    pub const TSS16_AVAIL: u16 = 1;
    pub const LDT: u16 = 2;
    pub const TSS16_BUSY: u16 = 3;
    pub const CALL_GATE16: u16 = 4;
    pub const TASK_GATE: u16 = 5;
    pub const INT_GATE16: u16 = 6;
    pub const TRAP_GATE16: u16 = 7;
    pub const TSS32_AVAIL: u16 = 9;
    pub const TSS32_BUSY: u16 = 0xb;
    pub const CALL_GATE32: u16 = 0xc;
    pub const INT_GATE32: u16 = 0xe;
    pub const TRAP_GATE32: u16 = 0xf;
}

/// The unusable (null) segment a null selector loads.
pub fn null_segment(sel: u16) -> Segment {
    Segment {
        base: 0,
        limit: 0,
        selector: sel,
        attr: 0,
    }
}

impl Cpu {
    /// Linear address of the descriptor `sel` selects, or `None` when the
    /// index lies outside the GDT/LDT limit (`bytes` = 8, or 16 for system
    /// descriptors in long mode).
    pub fn desc_addr(&self, sel: u16, bytes: u64) -> Option<u64> {
        let off = (sel & !7) as u64;
        let (base, limit) = if sel & 4 != 0 {
            let l = &self.s.ldtr;
            if l.selector & !3 == 0 || !l.present() {
                return None;
            }
            (l.base, l.limit as u64)
        } else {
            (self.s.gdtr.base, self.s.gdtr.limit as u64)
        };
        if off + bytes - 1 > limit {
            return None;
        }
        Some(base.wrapping_add(off))
    }

    /// Fetch the 8-byte descriptor for `sel`; `err` is returned when the
    /// selector lies outside its table.
    pub fn read_desc(&mut self, bus: &mut dyn Bus, sel: u16, err: Exception) -> Result<Desc> {
        let a = self.desc_addr(sel, 8).ok_or(err)?;
        Ok(Desc(self.read_lin_mmu(bus, a, 8, MMU_SUPER_NOSMAP)?))
    }

    /// Fetch a system descriptor: 16 bytes in long mode (returns the upper
    /// base bits too), 8 bytes otherwise. In long mode the upper half's type
    /// field must be zero (SDM 3.5.2), else `err`.
    pub fn read_sys_desc(&mut self, bus: &mut dyn Bus, sel: u16, err: Exception) -> Result<(Desc, u64)> {
        if !self.s.mode.is_long() {
            return Ok((self.read_desc(bus, sel, err)?, 0));
        }
        let a = self.desc_addr(sel, 16).ok_or(err)?;
        let lo = self.read_lin_mmu(bus, a, 8, MMU_SUPER_NOSMAP)?;
        let hi = self.read_lin_mmu(bus, a + 8, 8, MMU_SUPER_NOSMAP)?;
        if (hi >> 40) & 0x1f != 0 {
            return Err(err);
        }
        Ok((Desc(lo), hi & 0xffff_ffff))
    }

    /// Set the accessed bit of a code/data descriptor in memory.
    pub fn set_desc_accessed(&mut self, bus: &mut dyn Bus, sel: u16, d: Desc) -> Result<()> {
        if d.0 & (1 << 40) == 0 {
            if let Some(a) = self.desc_addr(sel, 8) {
                let b = (d.0 >> 40) as u8 | 1;
                self.write_lin_mmu(bus, a + 5, 1, b as u64, MMU_SUPER_NOSMAP)?;
            }
        }
        Ok(())
    }

    /// Set or clear the busy bit (type bit 1) of a TSS descriptor in the GDT.
    pub fn set_tss_busy(&mut self, bus: &mut dyn Bus, sel: u16, busy: bool) -> Result<()> {
        let a = self.desc_addr(sel & !4, 8).ok_or(Exception::GeneralProtection(sel & !3))?;
        let b = self.read_lin_mmu(bus, a + 5, 1, MMU_SUPER_NOSMAP)?;
        let nb = if busy { b | 2 } else { b & !2 };
        self.write_lin_mmu(bus, a + 5, 1, nb, MMU_SUPER_NOSMAP)
    }

    /// Load a segment register other than CS (MOV Sreg, POP Sreg, LDS…)
    /// with the rules of the current mode. The caller handles the MOV SS
    /// interrupt shadow.
    pub fn load_seg(&mut self, bus: &mut dyn Bus, seg: usize, sel: u16) -> Result<()> {
        match self.s.mode {
            Mode::Real | Mode::V86 => {
                self.load_real_seg(seg, sel);
                Ok(())
            }
            _ => self.load_seg_protected(bus, seg, sel),
        }
    }

    /// Protected/long mode: selector checks, descriptor fetch, accessed bit
    /// (SDM Vol. 2, MOV "Operation" and Vol. 3A 5.5-5.7).
    fn load_seg_protected(&mut self, bus: &mut dyn Bus, seg: usize, sel: u16) -> Result<()> {
        let cpl = self.s.cpl;
        let rpl = (sel & 3) as u8;
        let gp = Exception::GeneralProtection(sel & !3);
        if sel & !3 == 0 {
            if seg == SS {
                // 64-bit mode allows a null SS below ring 3 if RPL = CPL.
                if self.s.mode != Mode::Long64 || cpl == 3 || rpl != cpl {
                    return Err(Exception::GP0);
                }
                let mut n = null_segment(sel);
                n.attr = (cpl as u16) << attr::DPL_SHIFT;
                self.s.segs[SS] = n;
                return Ok(());
            }
            // Intel clears the base of a null FS/GS in 64-bit mode too.
            self.s.segs[seg] = null_segment(sel);
            return Ok(());
        }
        let d = self.read_desc(bus, sel, gp)?;
        if seg == SS {
            let writable_data = d.is_seg() && !d.is_code() && d.attr() & attr::RW != 0;
            if rpl != cpl || !writable_data || d.dpl() != cpl {
                return Err(gp);
            }
            if !d.present() {
                return Err(Exception::StackFault(sel & !3));
            }
        } else {
            if !d.is_seg() || (d.is_code() && d.attr() & attr::RW == 0) {
                return Err(gp);
            }
            if !d.is_conforming_code() && (rpl > d.dpl() || cpl > d.dpl()) {
                return Err(gp);
            }
            if !d.present() {
                return Err(Exception::SegmentNotPresent(sel & !3));
            }
        }
        self.set_desc_accessed(bus, sel, d)?;
        let mut s = d.segment(sel);
        s.attr |= attr::ACCESSED;
        self.s.segs[seg] = s;
        Ok(())
    }

    /// Load CS from a validated code descriptor, with the given RPL (= new CPL).
    pub fn load_cs_desc(&mut self, bus: &mut dyn Bus, sel: u16, d: Desc, cpl: u8) -> Result<()> {
        self.set_desc_accessed(bus, sel, d)?;
        let sel = (sel & !3) | cpl as u16;
        let mut s = d.segment(sel);
        s.attr |= attr::ACCESSED;
        self.s.segs[CS] = s;
        self.update_mode();
        Ok(())
    }

    /// After a return to an outer privilege level: data segment registers
    /// the new CPL may not use become null (SDM Vol. 2, RET/IRET).
    pub fn null_inaccessible_segs(&mut self) {
        let cpl = self.s.cpl;
        for seg in [ES, DS, FS, GS] {
            let s = self.s.segs[seg];
            let conforming = s.attr & (attr::CODE | attr::DC) == attr::CODE | attr::DC;
            if s.attr & attr::S != 0 && !conforming && s.dpl() < cpl {
                self.s.segs[seg] = null_segment(0);
            }
        }
    }
}

fn prot_only(cpu: &Cpu) -> Result<()> {
    if cpu.s.mode.is_protected() {
        Ok(())
    } else {
        Err(Exception::InvalidOpcode)
    }
}

fn cpl0(cpu: &Cpu) -> Result<()> {
    if cpu.s.cpl == 0 {
        Ok(())
    } else {
        Err(Exception::GP0)
    }
}

/// SGDT/SIDT/SLDT/STR/SMSW at CPL > 0 with CR4.UMIP set.
pub(crate) fn umip(cpu: &Cpu) -> Result<()> {
    if cpu.s.cr4 & cr4::UMIP != 0 && cpu.s.cpl > 0 {
        Err(Exception::GP0)
    } else {
        Ok(())
    }
}

/// Write a selector-sized result: memory operands are always 16 bits,
/// 32/64-bit registers get it zero-extended.
fn write_sel(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction, v: u16) -> Result<()> {
    if i.op_kind(0) == OpKind::Register {
        cpu.set_reg(i.op_register(0), v as u64);
        Ok(())
    } else {
        let (seg, off) = cpu.mem_operand(i);
        cpu.write_mem(bus, seg, off, 2, v as u64)
    }
}

fn read_sel(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction, n: u32) -> Result<u16> {
    if i.op_kind(n) == OpKind::Register {
        Ok(cpu.reg(i.op_register(n)) as u16)
    } else {
        let (seg, off) = cpu.mem_operand(i);
        Ok(cpu.read_mem(bus, seg, off, 2)? as u16)
    }
}

fn mov_to_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let seg = seg_index(i.op_register(0));
    if seg == CS || seg > GS {
        return Err(Exception::InvalidOpcode);
    }
    let sel = read_sel(cpu, bus, i, 1)?;
    cpu.load_seg(bus, seg, sel)?;
    if seg == SS {
        cpu.s.irq_shadow = 1;
        cpu.break_block = true;
    }
    Ok(())
}

fn mov_from_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let seg = seg_index(i.op_register(1));
    if seg > GS {
        return Err(Exception::InvalidOpcode);
    }
    let v = cpu.s.segs[seg].selector;
    write_sel(cpu, bus, i, v)
}

/// LGDT/LIDT: 16-bit operand size keeps 24 bits of base, 64-bit mode reads 8.
fn load_table<const IDT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    cpl0(cpu)?;
    let (seg, off) = cpu.mem_operand(i);
    let limit = cpu.read_mem(bus, seg, off, 2)? as u32;
    let base = if cpu.s.mode == Mode::Long64 {
        let b = cpu.read_mem(bus, seg, off.wrapping_add(2), 8)?;
        if !canonical(b) {
            return Err(Exception::GP0);
        }
        b
    } else {
        let b = cpu.read_mem(bus, seg, (off + 2) & 0xffff_ffff, 4)?;
        if matches!(i.code(), Code::Lgdt_m1632_16 | Code::Lidt_m1632_16) {
            b & 0xff_ffff
        } else {
            b
        }
    };
    let t = if IDT { &mut cpu.s.idtr } else { &mut cpu.s.gdtr };
    t.base = base;
    t.limit = limit;
    Ok(())
}

fn store_table<const IDT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    umip(cpu)?;
    let t = if IDT { cpu.s.idtr } else { cpu.s.gdtr };
    let (seg, off) = cpu.mem_operand(i);
    let (bsize, off2) = if cpu.s.mode == Mode::Long64 {
        (8, off.wrapping_add(2))
    } else {
        (4, (off + 2) & 0xffff_ffff)
    };
    // Both parts are checked before either is written.
    cpu.seg_lin(seg, off, 2 + bsize, Access::Write)?;
    cpu.write_mem(bus, seg, off, 2, t.limit as u64)?;
    cpu.write_mem(bus, seg, off2, bsize, t.base)
}

fn sldt(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    prot_only(cpu)?;
    umip(cpu)?;
    let v = cpu.s.ldtr.selector;
    write_sel(cpu, bus, i, v)
}

fn str_(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    prot_only(cpu)?;
    umip(cpu)?;
    let v = cpu.s.tr.selector;
    write_sel(cpu, bus, i, v)
}

fn lldt(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    prot_only(cpu)?;
    cpl0(cpu)?;
    let sel = read_sel(cpu, bus, i, 0)?;
    cpu.load_ldtr(bus, sel, Exception::GeneralProtection(sel & !3), false)
}

fn ltr(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    prot_only(cpu)?;
    cpl0(cpu)?;
    let sel = read_sel(cpu, bus, i, 0)?;
    let gp = Exception::GeneralProtection(sel & !3);
    if sel & !3 == 0 {
        return Err(Exception::GP0);
    }
    if sel & 4 != 0 {
        return Err(gp);
    }
    let (d, hi) = cpu.read_sys_desc(bus, sel, gp)?;
    let ok = d.ty() == sys::TSS32_AVAIL || (d.ty() == sys::TSS16_AVAIL && !cpu.s.mode.is_long());
    if d.is_seg() || !ok {
        return Err(gp);
    }
    if !d.present() {
        return Err(Exception::SegmentNotPresent(sel & !3));
    }
    let base = d.base() | (hi << 32);
    if cpu.s.mode.is_long() && !canonical(base) {
        return Err(gp);
    }
    cpu.set_tss_busy(bus, sel, true)?;
    let mut s = d.segment(sel);
    s.base = base;
    s.attr |= 2;
    cpu.s.tr = s;
    Ok(())
}

impl Cpu {
    /// Load LDTR (LLDT, task switch). `err` is the fault for a bad
    /// descriptor (#GP for LLDT, #TS in a task switch).
    pub fn load_ldtr(&mut self, bus: &mut dyn Bus, sel: u16, err: Exception, task: bool) -> Result<()> {
        if sel & !3 == 0 {
            self.s.ldtr = null_segment(sel);
            return Ok(());
        }
        if sel & 4 != 0 {
            return Err(err);
        }
        let (d, hi) = self.read_sys_desc(bus, sel, err)?;
        if d.is_seg() || d.ty() != sys::LDT {
            return Err(err);
        }
        if !d.present() {
            return Err(if task { err } else { Exception::SegmentNotPresent(sel & !3) });
        }
        let base = d.base() | (hi << 32);
        if self.s.mode.is_long() && !canonical(base) {
            return Err(err);
        }
        let mut s = d.segment(sel);
        s.base = base;
        self.s.ldtr = s;
        Ok(())
    }

    /// The descriptor LAR/LSL/VERR/VERW look at, or `None` when the
    /// instruction just clears ZF.
    fn probe_desc(&mut self, bus: &mut dyn Bus, sel: u16) -> Result<Option<(Desc, u64)>> {
        if sel & !3 == 0 {
            return Ok(None);
        }
        let Some(a) = self.desc_addr(sel, 8) else {
            return Ok(None);
        };
        let d = Desc(self.read_lin_mmu(bus, a, 8, MMU_SUPER_NOSMAP)?);
        let mut hi = 0;
        if !d.is_seg() && self.s.mode.is_long() {
            let Some(a) = self.desc_addr(sel, 16) else {
                return Ok(None);
            };
            hi = self.read_lin_mmu(bus, a + 8, 8, MMU_SUPER_NOSMAP)?;
        }
        Ok(Some((d, hi)))
    }

    /// Privilege check shared by LAR/LSL/VERR/VERW: conforming code is
    /// always visible, everything else needs DPL >= CPL and DPL >= RPL.
    fn desc_visible(&self, d: Desc, sel: u16) -> bool {
        d.is_conforming_code() || (d.dpl() >= self.s.cpl && d.dpl() >= (sel & 3) as u8)
    }
}

fn set_zf(cpu: &mut Cpu, z: bool) {
    let f = cpu.s.flags();
    cpu.s.rflags = if z { f | flags::ZF } else { f & !flags::ZF };
    cpu.s.cc_op = CC_EFLAGS;
}

/// LAR (LSL when `LIMIT`): the access rights or the limit of a descriptor.
fn lar_lsl<const LIMIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    prot_only(cpu)?;
    let sel = read_sel(cpu, bus, i, 1)?;
    let Some((d, hi)) = cpu.probe_desc(bus, sel)? else {
        set_zf(cpu, false);
        return Ok(());
    };
    let long = cpu.s.mode.is_long();
    let type_ok = d.is_seg()
        || match d.ty() {
            sys::LDT | sys::TSS32_AVAIL | sys::TSS32_BUSY => true,
            sys::TSS16_AVAIL | sys::TSS16_BUSY => !long,
            sys::CALL_GATE32 => !LIMIT,
            sys::CALL_GATE16 | sys::TASK_GATE => !LIMIT && !long,
            _ => false,
        };
    let hi_ok = d.is_seg() || !long || (hi >> 40) & 0x1f == 0;
    if !type_ok || !hi_ok || !cpu.desc_visible(d, sel) {
        set_zf(cpu, false);
        return Ok(());
    }
    // SDM: masked by 00FxFF00H (x undefined); hardware passes limit 19:16.
    let v = if LIMIT { d.limit() as u64 } else { (d.0 >> 32) & 0x00ff_ff00 };
    let r = i.op_register(0);
    let v = if r.size() == 2 { v & 0xffff } else { v & 0xffff_ffff };
    cpu.set_reg(r, v);
    set_zf(cpu, true);
    Ok(())
}

/// VERR (VERW when `WRITE`).
fn verr_verw<const WRITE: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    prot_only(cpu)?;
    let sel = read_sel(cpu, bus, i, 0)?;
    let ok = match cpu.probe_desc(bus, sel)? {
        Some((d, _)) if d.is_seg() && cpu.desc_visible(d, sel) => {
            let rw = d.attr() & attr::RW != 0;
            if WRITE {
                !d.is_code() && rw
            } else {
                !d.is_code() || rw
            }
        }
        _ => false,
    };
    set_zf(cpu, ok);
    Ok(())
}

fn arpl(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    prot_only(cpu)?;
    let loc = cpu.loc(i, 0, Access::Write)?;
    let dst = cpu.read_loc(bus, loc, 2)? as u16;
    let src = cpu.reg(i.op_register(1)) as u16;
    if dst & 3 < src & 3 {
        let v = (dst & !3) | (src & 3);
        match loc {
            crate::operand::Loc::Reg(r) => {
                // ARPL r32 still only writes the low 16 bits.
                let full = cpu.reg(r);
                cpu.set_reg(r, (full & !0xffff) | v as u64);
            }
            _ => cpu.write_loc(bus, loc, 2, v as u64)?,
        }
        set_zf(cpu, true);
    } else {
        set_zf(cpu, false);
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Code::*;
    Some(match code {
        Mov_Sreg_rm16 | Mov_Sreg_r32m16 | Mov_Sreg_r64m16 => mov_to_sreg,
        Mov_rm16_Sreg | Mov_r32m16_Sreg | Mov_r64m16_Sreg => mov_from_sreg,
        Lgdt_m1632_16 | Lgdt_m1632 | Lgdt_m1664 => load_table::<false>,
        Lidt_m1632_16 | Lidt_m1632 | Lidt_m1664 => load_table::<true>,
        Sgdt_m1632_16 | Sgdt_m1632 | Sgdt_m1664 => store_table::<false>,
        Sidt_m1632_16 | Sidt_m1632 | Sidt_m1664 => store_table::<true>,
        Sldt_rm16 | Sldt_r32m16 | Sldt_r64m16 => sldt,
        Str_rm16 | Str_r32m16 | Str_r64m16 => str_,
        Lldt_rm16 | Lldt_r32m16 | Lldt_r64m16 => lldt,
        Ltr_rm16 | Ltr_r32m16 | Ltr_r64m16 => ltr,
        Lar_r16_rm16 | Lar_r32_r32m16 | Lar_r64_r64m16 => lar_lsl::<false>,
        Lsl_r16_rm16 | Lsl_r32_r32m16 | Lsl_r64_r64m16 => lar_lsl::<true>,
        Verr_rm16 | Verr_r32m16 | Verr_r64m16 => verr_verw::<false>,
        Verw_rm16 | Verw_r32m16 | Verw_r64m16 => verr_verw::<true>,
        Arpl_rm16_r16 | Arpl_r32m16_r32 => arpl,
        _ => return None,
    })
}
