//! Protected-mode and long-mode event delivery through the IDT (SDM Vol. 3A
//! 6.10-6.14 and the INT n "Operation" section of Vol. 2): interrupt and
//! trap gates with the stack switch from the TSS, task gates, delivery from
//! virtual-8086 mode, 16-byte long-mode gates with IST and stack alignment.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::interrupt::{sp_mask, Source};
use crate::mmu::{MMU_SUPER_NOSMAP, MMU_USER};
use crate::seg::{canonical, seg_lin_in};
use crate::state::{attr, flags, Mode, Segment, CS, DS, ES, FS, GS, RSP, SS};
use crate::system::desc::{null_segment, sys, Desc};
use crate::system::task::TaskSwitch;
use iced_x86::Code;

/// A stack being built before it becomes SS:RSP: pushes go through an
/// explicit segment cache, so nothing architectural changes until every
/// write has succeeded.
pub(crate) struct Frame {
    pub seg: Segment,
    pub sp: u64,
    /// Stack-pointer width in bytes (2, 4, or 8 in 64-bit mode).
    pub width: usize,
    pub long64: bool,
    pub mmu: usize,
    /// The fault for a limit (or canonical) violation.
    pub fault: Exception,
}

impl Frame {
    /// A frame on segment `seg` at `sp`, for code that will run at `cpl`.
    pub fn new(seg: Segment, sp: u64, long64: bool, cpl: u8, fault: Exception) -> Frame {
        let width = if long64 {
            8
        } else if seg.attr & attr::DB != 0 {
            4
        } else {
            2
        };
        Frame {
            seg,
            sp: sp & sp_mask(width),
            width,
            long64,
            mmu: if cpl == 3 { MMU_USER } else { MMU_SUPER_NOSMAP },
            fault,
        }
    }
}

impl Cpu {
    pub(crate) fn frame_push(&mut self, bus: &mut dyn Bus, f: &mut Frame, v: u64, size: usize) -> Result<()> {
        let sp = f.sp.wrapping_sub(size as u64) & sp_mask(f.width);
        let lin = seg_lin_in(&f.seg, sp, size, f.long64).ok_or(f.fault)?;
        self.write_lin_mmu(bus, lin, size, v, f.mmu)?;
        f.sp = sp;
        Ok(())
    }

    pub(crate) fn frame_pop(&mut self, bus: &mut dyn Bus, f: &mut Frame, size: usize) -> Result<u64> {
        let lin = seg_lin_in(&f.seg, f.sp, size, f.long64).ok_or(f.fault)?;
        let v = self.read_lin_mmu(bus, lin, size, f.mmu)?;
        f.sp = f.sp.wrapping_add(size as u64) & sp_mask(f.width);
        Ok(v)
    }

    /// Make a built frame the current stack: SS (if given) and RSP.
    pub(crate) fn frame_commit(&mut self, f: &Frame, ss: Option<Segment>) {
        if let Some(ss) = ss {
            self.s.segs[SS] = ss;
        }
        let r = &mut self.s.gpr[RSP];
        *r = match f.width {
            2 => (*r & !0xffff) | (f.sp & 0xffff),
            4 => f.sp & 0xffff_ffff,
            _ => f.sp,
        };
    }

    /// Deliver through the IDT.
    pub(crate) fn deliver_protected(&mut self, bus: &mut dyn Bus, vector: u8, error: Option<u32>, src: Source) -> Result<()> {
        // EXT: the event did not come from the program (SDM 6.13).
        let ext: u16 = if src == Source::Software { 0 } else { 1 };
        let idt_err = Exception::GeneralProtection(vector as u16 * 8 + 2 + ext);
        let long = self.s.mode.is_long();
        let esz: u64 = if long { 16 } else { 8 };
        let off = vector as u64 * esz;
        if off + esz - 1 > self.s.idtr.limit as u64 {
            return Err(idt_err);
        }
        let a = self.s.idtr.base.wrapping_add(off);
        let gate = Desc(self.read_lin_mmu(bus, a, 8, MMU_SUPER_NOSMAP)?);
        let hi = if long {
            self.read_lin_mmu(bus, a + 8, 8, MMU_SUPER_NOSMAP)?
        } else {
            0
        };
        let ty = gate.ty();
        let valid = !gate.is_seg()
            && match ty {
                sys::INT_GATE32 | sys::TRAP_GATE32 => true,
                sys::TASK_GATE | sys::INT_GATE16 | sys::TRAP_GATE16 => !long,
                _ => false,
            };
        if !valid {
            return Err(idt_err);
        }
        let cpl = self.s.cpl;
        if src == Source::Software {
            // INT n in V86 mode without VME needs IOPL 3 (SDM 20.2.7).
            if self.s.mode == Mode::V86 && (self.s.rflags & flags::IOPL) >> 12 != 3 {
                return Err(Exception::GP0);
            }
            if gate.dpl() < cpl {
                return Err(Exception::GeneralProtection(vector as u16 * 8 + 2));
            }
        }
        if !gate.present() {
            return Err(Exception::SegmentNotPresent(vector as u16 * 8 + 2 + ext));
        }
        if ty == sys::TASK_GATE {
            let tss = gate.gate_selector();
            return self.task_gate_switch(bus, tss, TaskSwitch::Int(error), ext);
        }
        let gate32 = ty & 8 != 0;
        let trap = ty & 1 != 0;
        let sel = gate.gate_selector();
        let mut target = gate.gate_offset();
        if long {
            target |= (hi & 0xffff_ffff) << 32;
        } else if !gate32 {
            target &= 0xffff;
        }
        if sel & !3 == 0 {
            return Err(Exception::GeneralProtection(ext));
        }
        let selerr = Exception::GeneralProtection((sel & !3) | ext);
        let cd = self.read_desc(bus, sel, selerr)?;
        if !cd.is_code() || cd.dpl() > cpl {
            return Err(selerr);
        }
        if !cd.present() {
            return Err(Exception::SegmentNotPresent((sel & !3) | ext));
        }
        if long && (cd.attr() & attr::L == 0 || cd.attr() & attr::DB != 0) {
            return Err(selerr);
        }
        let v86 = self.s.mode == Mode::V86;
        let new_cpl = if cd.is_conforming_code() { cpl } else { cd.dpl() };
        if v86 && new_cpl != 0 {
            return Err(selerr);
        }
        let old_ss = self.s.segs[SS];
        let old_sp = self.s.gpr[RSP];
        let old_flags = self.s.flags();
        let old_cs = self.s.segs[CS].selector;
        let ret_ip = self.s.rip;
        let stack_fault = Exception::StackFault(ext);

        let (frame, new_ss) = if long {
            let ist = ((gate.0 >> 32) & 7) as u8;
            let switch = new_cpl < cpl;
            let mut rsp = if ist != 0 {
                self.tss_read_rsp64(bus, 3 + ist, ext)?
            } else if switch {
                self.tss_read_rsp64(bus, new_cpl, ext)?
            } else {
                old_sp
            };
            // 64-bit delivery aligns the new stack to 16 bytes (SDM 6.14.2).
            rsp &= !0xf;
            let ss = if switch {
                let mut n = null_segment(new_cpl as u16);
                n.attr = (new_cpl as u16) << attr::DPL_SHIFT;
                Some(n)
            } else {
                None
            };
            let mut f = Frame::new(ss.unwrap_or(old_ss), rsp, true, new_cpl, stack_fault);
            if !canonical(rsp) {
                return Err(stack_fault);
            }
            for v in [old_ss.selector as u64, old_sp, old_flags, old_cs as u64, ret_ip] {
                self.frame_push(bus, &mut f, v, 8)?;
            }
            if let Some(e) = error {
                self.frame_push(bus, &mut f, e as u64, 8)?;
            }
            (f, ss)
        } else {
            let size = if gate32 { 4 } else { 2 };
            let inner = new_cpl < cpl || v86;
            let (mut f, ss) = if inner {
                let (ss_sel, esp) = self.tss_read_stack(bus, new_cpl, ext)?;
                let ss = self.check_new_ss(bus, ss_sel, new_cpl, ext)?;
                (
                    Frame::new(ss, esp, false, new_cpl, Exception::StackFault((ss_sel & !3) | ext)),
                    Some(ss),
                )
            } else {
                (Frame::new(old_ss, old_sp, false, new_cpl, stack_fault), None)
            };
            if v86 {
                for seg in [GS, FS, DS, ES] {
                    let v = self.s.segs[seg].selector as u64;
                    self.frame_push(bus, &mut f, v, size)?;
                }
            }
            if inner {
                self.frame_push(bus, &mut f, old_ss.selector as u64, size)?;
                self.frame_push(bus, &mut f, old_sp, size)?;
            }
            for v in [old_flags, old_cs as u64, ret_ip] {
                self.frame_push(bus, &mut f, v, size)?;
            }
            if let Some(e) = error {
                self.frame_push(bus, &mut f, e as u64, size)?;
            }
            (f, ss)
        };
        if !long && target > cd.limit() as u64 || long && !canonical(target) {
            return Err(Exception::GeneralProtection(ext));
        }
        // Commit.
        self.frame_commit(&frame, new_ss);
        let mut clear = flags::TF | flags::NT | flags::RF | flags::VM;
        if !trap {
            clear |= flags::IF;
        }
        self.s.set_flags(old_flags & !clear);
        if v86 {
            for seg in [ES, DS, FS, GS] {
                self.s.segs[seg] = null_segment(0);
            }
        }
        self.load_cs_desc(bus, sel, cd, new_cpl)?;
        self.s.rip = target;
        self.break_block = true;
        Ok(())
    }

    /// Validate the SS a stack switch loads (from the TSS): #TS(SS) for a
    /// bad selector or descriptor, #SS(SS) when not present. Returns the
    /// cache to load, with the accessed bit set in memory.
    pub(crate) fn check_new_ss(&mut self, bus: &mut dyn Bus, ss_sel: u16, cpl: u8, ext: u16) -> Result<Segment> {
        let ts = Exception::InvalidTss((ss_sel & !3) | ext);
        if ss_sel & !3 == 0 {
            return Err(Exception::InvalidTss(ext));
        }
        let d = self.read_desc(bus, ss_sel, ts)?;
        let writable = d.is_seg() && !d.is_code() && d.attr() & attr::RW != 0;
        if (ss_sel & 3) as u8 != cpl || d.dpl() != cpl || !writable {
            return Err(ts);
        }
        if !d.present() {
            return Err(Exception::StackFault((ss_sel & !3) | ext));
        }
        self.set_desc_accessed(bus, ss_sel, d)?;
        let mut s = d.segment(ss_sel);
        s.attr |= attr::ACCESSED;
        Ok(s)
    }
}

pub fn lookup(_code: Code) -> Option<Handler> {
    None
}
