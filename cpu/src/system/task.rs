//! The TSS: stack pointers for privilege changes, the I/O permission check
//! (SDM Vol. 1, 19.5) and hardware task switching (SDM Vol. 3A chapter 9).

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::mmu::MMU_SUPER_NOSMAP;
use crate::state::{attr, cr0, flags, Mode, Segment, CS, DS, ES, FS, GS, SS};
use crate::system::desc::{null_segment, sys, Desc};
use iced_x86::Code;

impl Cpu {
    /// May the current code access `size` bytes of I/O space at `port`?
    /// CPL <= IOPL allows it; otherwise (and always in V86 mode) the TSS I/O
    /// bitmap decides.
    pub fn check_io(&mut self, bus: &mut dyn Bus, port: u16, size: usize) -> Result<()> {
        match self.s.mode {
            Mode::Real => return Ok(()),
            Mode::V86 => {}
            _ => {
                let iopl = (self.s.rflags & flags::IOPL) >> 12;
                if self.s.cpl as u64 <= iopl {
                    return Ok(());
                }
            }
        }
        let tr = self.s.tr;
        let ty = tr.attr & 0xf;
        if (ty != 9 && ty != 11) || tr.limit < 103 {
            return Err(Exception::GP0);
        }
        let map = self.read_lin_mmu(bus, tr.base + 102, 2, MMU_SUPER_NOSMAP)?;
        let byte = map + (port as u64 >> 3);
        if byte + 1 > tr.limit as u64 {
            return Err(Exception::GP0);
        }
        let bits = self.read_lin_mmu(bus, tr.base + byte, 2, MMU_SUPER_NOSMAP)?;
        let mask = ((1u64 << size) - 1) << (port & 7);
        if bits & mask != 0 {
            return Err(Exception::GP0);
        }
        Ok(())
    }
}

/// What started a task switch: it decides busy bits, NT and the back link
/// (SDM Vol. 3A, table 9-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSwitch {
    Jmp,
    Call,
    Iret,
    /// An interrupt or exception through a task gate, with its error code.
    Int(Option<u32>),
}

/// Offsets of the fields a task switch uses, per TSS size.
struct TssLayout {
    ip: u64,
    flags: u64,
    gpr: u64,
    seg: u64,
    nsegs: usize,
    ldt: u64,
    /// Width of the register fields.
    w: usize,
}

const TSS32: TssLayout = TssLayout {
    ip: 0x20,
    flags: 0x24,
    gpr: 0x28,
    seg: 0x48,
    nsegs: 6,
    ldt: 0x60,
    w: 4,
};
const TSS16: TssLayout = TssLayout {
    ip: 0x0e,
    flags: 0x10,
    gpr: 0x12,
    seg: 0x22,
    nsegs: 4,
    ldt: 0x2a,
    w: 2,
};

impl Cpu {
    fn tss_fault(&self, ext: u16) -> Exception {
        Exception::InvalidTss((self.s.tr.selector & !3) | ext)
    }

    /// RSPn (idx 0..2) or ISTn (idx 3 + n) from the 64-bit TSS.
    pub(crate) fn tss_read_rsp64(&mut self, bus: &mut dyn Bus, idx: u8, ext: u16) -> Result<u64> {
        let off = 4 + idx as u64 * 8;
        if off + 7 > self.s.tr.limit as u64 {
            return Err(self.tss_fault(ext));
        }
        let a = self.s.tr.base.wrapping_add(off);
        self.read_lin_mmu(bus, a, 8, MMU_SUPER_NOSMAP)
    }

    /// SSn:ESPn (or SSn:SPn from a 16-bit TSS) for privilege level `cpl`.
    pub(crate) fn tss_read_stack(&mut self, bus: &mut dyn Bus, cpl: u8, ext: u16) -> Result<(u16, u64)> {
        let tr = self.s.tr;
        let t32 = tr.attr & 8 != 0;
        let (off, w) = if t32 { (4 + cpl as u64 * 8, 4) } else { (2 + cpl as u64 * 4, 2) };
        if off + 2 * w as u64 - 1 > tr.limit as u64 {
            return Err(self.tss_fault(ext));
        }
        let sp = self.read_lin_mmu(bus, tr.base.wrapping_add(off), w, MMU_SUPER_NOSMAP)?;
        let ss = self.read_lin_mmu(bus, tr.base.wrapping_add(off + w as u64), 2, MMU_SUPER_NOSMAP)?;
        Ok((ss as u16, sp))
    }

    /// A task switch through a task gate or to a TSS descriptor (JMP, CALL,
    /// INT): the TSS must be an available TSS in the GDT. Callers check the
    /// gate or descriptor privilege first.
    pub(crate) fn task_gate_switch(&mut self, bus: &mut dyn Bus, tss_sel: u16, kind: TaskSwitch, ext: u16) -> Result<()> {
        let gp = Exception::GeneralProtection((tss_sel & !3) | ext);
        if tss_sel & 4 != 0 || tss_sel & !3 == 0 {
            return Err(gp);
        }
        let d = self.read_desc(bus, tss_sel, gp)?;
        if d.is_seg() || !matches!(d.ty(), sys::TSS16_AVAIL | sys::TSS32_AVAIL) {
            return Err(gp);
        }
        if !d.present() {
            return Err(Exception::SegmentNotPresent((tss_sel & !3) | ext));
        }
        self.task_switch(bus, tss_sel, d, kind, ext)
    }

    /// IRET with NT = 1: return to the task in the back link (SDM 9.3).
    pub(crate) fn task_return(&mut self, bus: &mut dyn Bus) -> Result<()> {
        let link = self.read_lin_mmu(bus, self.s.tr.base, 2, MMU_SUPER_NOSMAP)? as u16;
        let ts = Exception::InvalidTss(link & !3);
        if link & 4 != 0 || link & !3 == 0 {
            return Err(ts);
        }
        let d = self.read_desc(bus, link, ts)?;
        if d.is_seg() || !matches!(d.ty(), sys::TSS16_BUSY | sys::TSS32_BUSY) {
            return Err(ts);
        }
        if !d.present() {
            return Err(Exception::SegmentNotPresent(link & !3));
        }
        self.task_switch(bus, link, d, TaskSwitch::Iret, 0)
    }

    /// The hardware task switch proper (SDM Vol. 3A 9.3, steps 4-14).
    pub(crate) fn task_switch(&mut self, bus: &mut dyn Bus, sel: u16, d: Desc, kind: TaskSwitch, ext: u16) -> Result<()> {
        let new32 = d.ty() & 8 != 0;
        let ts_new = Exception::InvalidTss((sel & !3) | ext);
        if d.limit() < if new32 { 0x67 } else { 0x2b } {
            return Err(ts_new);
        }
        let nbase = d.base();
        let nl = if new32 { &TSS32 } else { &TSS16 };
        let m = MMU_SUPER_NOSMAP;
        // Read everything from the new TSS before touching the old one, so a
        // fault here leaves the old task intact.
        let cr3 = if new32 { self.read_lin_mmu(bus, nbase + 0x1c, 4, m)? } else { 0 };
        let ip = self.read_lin_mmu(bus, nbase + nl.ip, nl.w, m)?;
        let mut fl = self.read_lin_mmu(bus, nbase + nl.flags, nl.w, m)?;
        let mut gpr = [0u64; 8];
        for (k, g) in gpr.iter_mut().enumerate() {
            *g = self.read_lin_mmu(bus, nbase + nl.gpr + (k * nl.w) as u64, nl.w, m)?;
        }
        let mut segs = [0u16; 6];
        for (k, s) in segs.iter_mut().enumerate().take(nl.nsegs) {
            *s = self.read_lin_mmu(bus, nbase + nl.seg + (k * nl.w) as u64, 2, m)? as u16;
        }
        let ldt = self.read_lin_mmu(bus, nbase + nl.ldt, 2, m)? as u16;

        // Save the outgoing task (step 8).
        let old = self.s.tr;
        let ol = if old.attr & 8 != 0 { &TSS32 } else { &TSS16 };
        let mut oflags = self.s.flags();
        if kind == TaskSwitch::Iret {
            oflags &= !flags::NT;
        }
        self.write_lin_mmu(bus, old.base + ol.ip, ol.w, self.s.rip, m)?;
        self.write_lin_mmu(bus, old.base + ol.flags, ol.w, oflags, m)?;
        for k in 0..8 {
            let v = self.s.gpr[k];
            self.write_lin_mmu(bus, old.base + ol.gpr + (k * ol.w) as u64, ol.w, v, m)?;
        }
        for k in 0..ol.nsegs {
            let v = self.s.segs[k].selector as u64;
            self.write_lin_mmu(bus, old.base + ol.seg + (k * ol.w) as u64, 2, v, m)?;
        }
        // Busy bits and the back link (steps 7, 10, 11).
        if matches!(kind, TaskSwitch::Jmp | TaskSwitch::Iret) {
            self.set_tss_busy(bus, old.selector, false)?;
        }
        if kind != TaskSwitch::Iret {
            self.set_tss_busy(bus, sel, true)?;
        }
        if matches!(kind, TaskSwitch::Call | TaskSwitch::Int(_)) {
            self.write_lin_mmu(bus, nbase, 2, old.selector as u64, m)?;
            fl |= flags::NT;
        }
        self.s.rflags = oflags;
        // Load the new task (steps 12-13). Faults from here on belong to it.
        let mut tr = d.segment(sel);
        tr.attr |= 2;
        self.s.tr = tr;
        self.s.cr0 |= cr0::TS;
        if new32 && self.s.cr0 & cr0::PG != 0 {
            self.s.cr3 = cr3 & 0xffff_ffff;
            self.flush_tlb_all();
        }
        if !new32 {
            fl = (self.s.rflags & !0xffff) | (fl & 0xffff);
            fl &= !flags::VM;
        }
        self.s.set_flags(fl);
        self.s.rip = ip;
        for (k, g) in gpr.iter().enumerate() {
            if new32 {
                self.s.gpr[k] = *g;
            } else {
                self.s.gpr[k] = (self.s.gpr[k] & !0xffff) | *g;
            }
        }
        self.break_block = true;
        let v86 = new32 && fl & flags::VM != 0;
        // Selectors first, so that a fault while checking descriptors is
        // reported with the new task's selectors in place.
        for (k, sel) in segs.iter().enumerate() {
            self.s.segs[k] = if v86 {
                let mut s = Segment::real(*sel);
                s.attr |= 3 << attr::DPL_SHIFT;
                s
            } else {
                null_segment(*sel)
            };
        }
        self.s.ldtr = null_segment(0);
        self.update_mode();
        if v86 {
            self.load_ldtr(bus, ldt, Exception::InvalidTss(ldt & !3), true)?;
        } else {
            self.load_ldtr(bus, ldt, Exception::InvalidTss(ldt & !3), true)?;
            self.task_load_segs(bus, &segs)?;
        }
        if let TaskSwitch::Int(Some(e)) = kind {
            let size = if new32 { 4 } else { 2 };
            self.push(bus, e as u64, size)?;
        }
        if self.s.mode != Mode::Long64 && self.s.rip > self.s.segs[CS].limit as u64 {
            return Err(Exception::GP0);
        }
        Ok(())
    }

    /// Validate and load CS, SS and the data segments of an incoming task.
    fn task_load_segs(&mut self, bus: &mut dyn Bus, segs: &[u16; 6]) -> Result<()> {
        let cs = segs[CS];
        let ts = |s: u16| Exception::InvalidTss(s & !3);
        if cs & !3 == 0 {
            return Err(ts(cs));
        }
        let d = self.read_desc(bus, cs, ts(cs))?;
        let rpl = (cs & 3) as u8;
        let ok = d.is_code() && if d.is_conforming_code() { d.dpl() <= rpl } else { d.dpl() == rpl };
        if !ok {
            return Err(ts(cs));
        }
        if !d.present() {
            return Err(Exception::SegmentNotPresent(cs & !3));
        }
        if d.attr() & attr::L != 0 && self.s.efer & crate::state::efer::LMA != 0 {
            return Err(ts(cs));
        }
        self.load_cs_desc(bus, cs, d, rpl)?;
        let cpl = self.s.cpl;
        let ss = self.check_new_ss(bus, segs[SS], cpl, 0).map_err(|e| match e {
            Exception::InvalidTss(0) => ts(segs[SS]),
            e => e,
        })?;
        self.s.segs[SS] = ss;
        for seg in [ES, DS, FS, GS] {
            let sel = segs[seg];
            if sel & !3 == 0 {
                continue;
            }
            let d = self.read_desc(bus, sel, ts(sel))?;
            let usable = d.is_seg() && (!d.is_code() || d.attr() & attr::RW != 0);
            let priv_ok = d.is_conforming_code() || (d.dpl() >= cpl && d.dpl() >= (sel & 3) as u8);
            if !usable || !priv_ok {
                return Err(ts(sel));
            }
            if !d.present() {
                return Err(Exception::SegmentNotPresent(sel & !3));
            }
            self.set_desc_accessed(bus, sel, d)?;
            let mut s = d.segment(sel);
            s.attr |= attr::ACCESSED;
            self.s.segs[seg] = s;
        }
        Ok(())
    }
}

pub fn lookup(_code: Code) -> Option<Handler> {
    None
}
