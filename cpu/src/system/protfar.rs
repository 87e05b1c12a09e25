//! Far transfers outside real mode: through code segments, call gates, task
//! gates and TSS descriptors, with privilege changes (SDM Vol. 3A 5.8, 7.3,
//! and the JMP/CALL/RET/IRET "Operation" sections of Vol. 2). Real-mode
//! versions are in `system/far.rs`, which calls these for every other mode.
//!
//! Every check that can fault runs, and every stack write is done through a
//! [`Frame`], before any register changes.

use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::seg::canonical;
use crate::state::{attr, flags, Mode, Segment, CS, RSP, SS};
use crate::system::desc::{null_segment, sys, Desc};
use crate::system::idt::Frame;
use crate::system::task::TaskSwitch;

/// JMP or CALL: they share the descriptor checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Far {
    Jmp,
    Call,
}

impl Cpu {
    /// JMP ptr16:16/32 or JMP m16:16/32/64 outside real mode.
    pub fn far_jump_protected(&mut self, bus: &mut dyn Bus, sel: u16, off: u64, op_size: usize) -> Result<()> {
        if self.s.mode == Mode::V86 {
            return self.far_v86(bus, sel, off, op_size, Far::Jmp);
        }
        self.far_transfer(bus, sel, off, op_size, Far::Jmp)
    }

    /// CALL far outside real mode (pushes CS:IP of the next instruction, which
    /// is `self.s.rip` on entry).
    pub fn far_call_protected(&mut self, bus: &mut dyn Bus, sel: u16, off: u64, op_size: usize) -> Result<()> {
        if self.s.mode == Mode::V86 {
            return self.far_v86(bus, sel, off, op_size, Far::Call);
        }
        self.far_transfer(bus, sel, off, op_size, Far::Call)
    }

    /// Far JMP/CALL in virtual-8086 mode: real-mode semantics, with the
    /// 64 KiB limit of the new CS checked before anything changes.
    fn far_v86(&mut self, bus: &mut dyn Bus, sel: u16, off: u64, op_size: usize, kind: Far) -> Result<()> {
        if off > 0xffff {
            return Err(Exception::GP0);
        }
        let mut f = self.current_frame();
        if kind == Far::Call {
            let cs = self.s.segs[CS].selector as u64;
            let ip = self.s.rip;
            self.frame_push(bus, &mut f, cs, op_size)?;
            self.frame_push(bus, &mut f, ip, op_size)?;
        }
        self.frame_commit(&f, None);
        self.load_real_seg(CS, sel);
        self.s.rip = off;
        Ok(())
    }

    /// Whether a code descriptor runs 64-bit code (in IA-32e mode).
    fn is_code64(&self, d: Desc) -> bool {
        self.s.mode.is_long() && d.attr() & attr::L != 0
    }

    /// The #GP(0) check of a new instruction pointer against the target code
    /// segment (limit, or canonical form for 64-bit code).
    fn check_target_ip(&self, d: Desc, ip: u64) -> Result<()> {
        let ok = if self.is_code64(d) { canonical(ip) } else { ip <= d.limit() as u64 };
        if ok {
            Ok(())
        } else {
            Err(Exception::GP0)
        }
    }

    /// A frame on the current stack (for pushes at the current privilege).
    fn current_frame(&self) -> Frame {
        Frame::new(
            self.s.segs[SS],
            self.s.gpr[RSP],
            self.s.mode == Mode::Long64,
            self.s.cpl,
            Exception::StackFault(0),
        )
    }

    fn far_transfer(&mut self, bus: &mut dyn Bus, sel: u16, off: u64, op_size: usize, kind: Far) -> Result<()> {
        let cpl = self.s.cpl;
        let rpl = (sel & 3) as u8;
        let long = self.s.mode.is_long();
        if sel & !3 == 0 {
            return Err(Exception::GP0);
        }
        let gp = Exception::GeneralProtection(sel & !3);
        let np = Exception::SegmentNotPresent(sel & !3);
        let d = self.read_desc(bus, sel, gp)?;
        if d.is_code() {
            let ok = if d.is_conforming_code() {
                d.dpl() <= cpl
            } else {
                rpl <= cpl && d.dpl() == cpl
            };
            if !ok {
                return Err(gp);
            }
            if !d.present() {
                return Err(np);
            }
            if long && d.attr() & attr::L != 0 && d.attr() & attr::DB != 0 {
                return Err(gp);
            }
            self.check_target_ip(d, off)?;
            let mut f = self.current_frame();
            if kind == Far::Call {
                let cs = self.s.segs[CS].selector as u64;
                let ip = self.s.rip;
                self.frame_push(bus, &mut f, cs, op_size)?;
                self.frame_push(bus, &mut f, ip, op_size)?;
            }
            self.frame_commit(&f, None);
            self.load_cs_desc(bus, sel, d, cpl)?;
            self.s.rip = off;
            return Ok(());
        }
        if d.is_seg() {
            return Err(gp);
        }
        match d.ty() {
            sys::CALL_GATE32 => {}
            sys::CALL_GATE16 if !long => {}
            sys::TASK_GATE | sys::TSS16_AVAIL | sys::TSS32_AVAIL if !long => {
                if d.dpl() < cpl || d.dpl() < rpl {
                    return Err(gp);
                }
                if !d.present() {
                    return Err(np);
                }
                let how = if kind == Far::Jmp { TaskSwitch::Jmp } else { TaskSwitch::Call };
                return if d.ty() == sys::TASK_GATE {
                    self.task_gate_switch(bus, d.gate_selector(), how, 0)
                } else {
                    self.task_switch(bus, sel, d, how, 0)
                };
            }
            _ => return Err(gp),
        }
        // Call gate.
        if d.dpl() < cpl || d.dpl() < rpl {
            return Err(gp);
        }
        if !d.present() {
            return Err(np);
        }
        let mut target = d.gate_offset();
        let gate_size = if long {
            let a = self.desc_addr(sel, 16).ok_or(gp)?;
            let hi = self.read_lin_mmu(bus, a + 8, 8, crate::mmu::MMU_SUPER_NOSMAP)?;
            if (hi >> 40) & 0x1f != 0 {
                return Err(gp);
            }
            target |= (hi & 0xffff_ffff) << 32;
            8
        } else if d.ty() == sys::CALL_GATE16 {
            target &= 0xffff;
            2
        } else {
            4
        };
        let tsel = d.gate_selector();
        if tsel & !3 == 0 {
            return Err(Exception::GP0);
        }
        let tgp = Exception::GeneralProtection(tsel & !3);
        let td = self.read_desc(bus, tsel, tgp)?;
        if !td.is_code() || td.dpl() > cpl || (kind == Far::Jmp && !td.is_conforming_code() && td.dpl() != cpl) {
            return Err(tgp);
        }
        if !td.present() {
            return Err(Exception::SegmentNotPresent(tsel & !3));
        }
        if long && (td.attr() & attr::L == 0 || td.attr() & attr::DB != 0) {
            return Err(tgp);
        }
        self.check_target_ip(td, target)?;
        if kind == Far::Jmp {
            self.load_cs_desc(bus, tsel, td, cpl)?;
            self.s.rip = target;
            return Ok(());
        }
        let old_cs = self.s.segs[CS].selector as u64;
        let ret_ip = self.s.rip;
        if !td.is_conforming_code() && td.dpl() < cpl {
            // Inner privilege: new stack from the TSS (SDM 5.8.5).
            let new_cpl = td.dpl();
            let old_ss = self.s.segs[SS];
            let old_sp = self.s.gpr[RSP];
            let (mut f, ss) = if long {
                let rsp = self.tss_read_rsp64(bus, new_cpl, 0)?;
                if !canonical(rsp) {
                    return Err(Exception::StackFault(0));
                }
                let mut n = null_segment(new_cpl as u16);
                n.attr = (new_cpl as u16) << attr::DPL_SHIFT;
                (Frame::new(n, rsp, true, new_cpl, Exception::StackFault(0)), n)
            } else {
                let (ss_sel, esp) = self.tss_read_stack(bus, new_cpl, 0)?;
                let ss = self.check_new_ss(bus, ss_sel, new_cpl, 0)?;
                (Frame::new(ss, esp, false, new_cpl, Exception::StackFault(ss_sel & !3)), ss)
            };
            self.frame_push(bus, &mut f, old_ss.selector as u64, gate_size)?;
            self.frame_push(bus, &mut f, old_sp, gate_size)?;
            if !long {
                let n = d.gate_params() as u64;
                let w = self.stack_size();
                for k in (0..n).rev() {
                    let a = old_sp.wrapping_add(k * gate_size as u64) & crate::interrupt::sp_mask(w);
                    let v = self.read_mem(bus, SS, a, gate_size)?;
                    self.frame_push(bus, &mut f, v, gate_size)?;
                }
            }
            self.frame_push(bus, &mut f, old_cs, gate_size)?;
            self.frame_push(bus, &mut f, ret_ip, gate_size)?;
            self.frame_commit(&f, Some(ss));
            self.load_cs_desc(bus, tsel, td, new_cpl)?;
        } else {
            let mut f = self.current_frame();
            if long {
                f.long64 = true;
                f.width = 8;
            }
            self.frame_push(bus, &mut f, old_cs, gate_size)?;
            self.frame_push(bus, &mut f, ret_ip, gate_size)?;
            self.frame_commit(&f, None);
            self.load_cs_desc(bus, tsel, td, cpl)?;
        }
        self.s.rip = target;
        Ok(())
    }

    /// The code-segment checks of RETF and IRET for the popped CS.
    fn check_return_cs(&mut self, bus: &mut dyn Bus, cs: u16) -> Result<Desc> {
        if cs & !3 == 0 {
            return Err(Exception::GP0);
        }
        let gp = Exception::GeneralProtection(cs & !3);
        let rpl = (cs & 3) as u8;
        if rpl < self.s.cpl {
            return Err(gp);
        }
        let d = self.read_desc(bus, cs, gp)?;
        if !d.is_code() {
            return Err(gp);
        }
        if d.is_conforming_code() && d.dpl() > rpl || !d.is_conforming_code() && d.dpl() != rpl {
            return Err(gp);
        }
        if !d.present() {
            return Err(Exception::SegmentNotPresent(cs & !3));
        }
        if self.s.mode.is_long() && d.attr() & attr::L != 0 && d.attr() & attr::DB != 0 {
            return Err(gp);
        }
        Ok(d)
    }

    /// The stack-segment checks of RETF and IRET to an outer level (or of
    /// IRETQ). A null SS is allowed when returning to 64-bit code below ring 3.
    fn check_return_ss(&mut self, bus: &mut dyn Bus, ss: u16, rpl: u8, code64: bool) -> Result<Segment> {
        if ss & !3 == 0 {
            if code64 && rpl != 3 && ss & 3 == rpl as u16 {
                let mut n = null_segment(ss);
                n.attr = (rpl as u16) << attr::DPL_SHIFT;
                return Ok(n);
            }
            return Err(Exception::GP0);
        }
        let gp = Exception::GeneralProtection(ss & !3);
        if (ss & 3) as u8 != rpl {
            return Err(gp);
        }
        let d = self.read_desc(bus, ss, gp)?;
        if !d.is_seg() || d.is_code() || d.attr() & attr::RW == 0 || d.dpl() != rpl {
            return Err(gp);
        }
        if !d.present() {
            return Err(Exception::StackFault(ss & !3));
        }
        self.set_desc_accessed(bus, ss, d)?;
        let mut s = d.segment(ss);
        s.attr |= attr::ACCESSED;
        Ok(s)
    }

    /// Load CS, SS and RSP for a return to an outer privilege level, then
    /// null the data segments the new CPL may not use.
    fn return_outer(&mut self, bus: &mut dyn Bus, cs: u16, cd: Desc, ss: Segment, sp: u64) -> Result<()> {
        self.s.segs[SS] = ss;
        self.load_cs_desc(bus, cs, cd, (cs & 3) as u8)?;
        let w = self.stack_size();
        if w == 8 {
            self.s.gpr[RSP] = sp;
        } else {
            self.set_sp(sp, w);
        }
        self.null_inaccessible_segs();
        Ok(())
    }

    /// RETF [imm16] outside real mode.
    pub fn far_ret_protected(&mut self, bus: &mut dyn Bus, op_size: usize, release: u16) -> Result<()> {
        let mut f = self.current_frame();
        let ip = self.frame_pop(bus, &mut f, op_size)?;
        let cs = self.frame_pop(bus, &mut f, op_size)? as u16;
        if self.s.mode == Mode::V86 {
            if ip > 0xffff {
                return Err(Exception::GP0);
            }
            f.sp = f.sp.wrapping_add(release as u64) & crate::interrupt::sp_mask(f.width);
            self.frame_commit(&f, None);
            self.load_real_seg(CS, cs);
            self.s.rip = ip;
            return Ok(());
        }
        let cd = self.check_return_cs(bus, cs)?;
        let rpl = (cs & 3) as u8;
        let ip = if op_size == 2 { ip & 0xffff } else { ip };
        self.check_target_ip(cd, ip)?;
        f.sp = f.sp.wrapping_add(release as u64) & crate::interrupt::sp_mask(f.width);
        if rpl == self.s.cpl {
            self.frame_commit(&f, None);
            self.load_cs_desc(bus, cs, cd, rpl)?;
            self.s.rip = ip;
            return Ok(());
        }
        let sp = self.frame_pop(bus, &mut f, op_size)?;
        let ss = self.frame_pop(bus, &mut f, op_size)? as u16;
        let code64 = self.is_code64(cd);
        let ss = self.check_return_ss(bus, ss, rpl, code64)?;
        self.return_outer(bus, cs, cd, ss, sp.wrapping_add(release as u64))?;
        self.s.rip = ip;
        Ok(())
    }

    /// IRET/IRETD/IRETQ outside real mode (V86, protected, long, task return).
    pub fn iret_protected(&mut self, bus: &mut dyn Bus, op_size: usize) -> Result<()> {
        let cpl = self.s.cpl;
        let iopl = ((self.s.rflags & flags::IOPL) >> 12) as u8;
        let old = self.s.flags();
        if self.s.mode == Mode::V86 {
            // Without VME, IRET in V86 mode needs IOPL 3 (SDM 20.2.7).
            if iopl != 3 {
                return Err(Exception::GP0);
            }
            let mut f = self.current_frame();
            let ip = self.frame_pop(bus, &mut f, op_size)?;
            let cs = self.frame_pop(bus, &mut f, op_size)? as u16;
            let fl = self.frame_pop(bus, &mut f, op_size)?;
            if ip > 0xffff {
                return Err(Exception::GP0);
            }
            let keep = if op_size == 4 {
                flags::VM | flags::IOPL | flags::VIP | flags::VIF
            } else {
                !0xffff | flags::IOPL
            };
            self.frame_commit(&f, None);
            self.s.set_flags((old & keep) | (fl & !keep));
            self.load_real_seg(CS, cs);
            self.s.rip = ip;
            self.s.nmi_blocked = 0;
            self.break_block = true;
            return Ok(());
        }
        if old & flags::NT != 0 {
            if self.s.mode.is_long() {
                return Err(Exception::GP0);
            }
            self.task_return(bus)?;
            self.s.nmi_blocked = 0;
            return Ok(());
        }
        let mut f = self.current_frame();
        let ip = self.frame_pop(bus, &mut f, op_size)?;
        let cs = self.frame_pop(bus, &mut f, op_size)? as u16;
        let tf = self.frame_pop(bus, &mut f, op_size)?;
        if op_size == 4 && tf & flags::VM != 0 && cpl == 0 && !self.s.mode.is_long() {
            return self.iret_to_v86(bus, f, ip, cs, tf);
        }
        let cd = self.check_return_cs(bus, cs)?;
        let rpl = (cs & 3) as u8;
        let code64 = self.is_code64(cd);
        let ip = if op_size == 2 { ip & 0xffff } else { ip };
        self.check_target_ip(cd, ip)?;
        let pop_stack = rpl > cpl || self.s.mode == Mode::Long64;
        let new_stack = if pop_stack {
            let sp = self.frame_pop(bus, &mut f, op_size)?;
            let ss = self.frame_pop(bus, &mut f, op_size)? as u16;
            Some((self.check_return_ss(bus, ss, rpl, code64)?, sp))
        } else {
            None
        };
        // Which flags the old CPL may change (SDM Vol. 2 IRET).
        let mut mask = flags::ARITH | flags::TF | flags::DF | flags::NT;
        if op_size >= 4 {
            mask |= flags::RF | flags::AC | flags::ID;
        }
        if cpl <= iopl {
            mask |= flags::IF;
        }
        if cpl == 0 {
            mask |= flags::IOPL;
            if op_size >= 4 {
                mask |= flags::VIF | flags::VIP;
            }
        }
        if op_size == 2 {
            mask &= 0xffff;
        }
        self.s.set_flags(((old & !mask) | (tf & mask)) & !flags::VM);
        match new_stack {
            Some((ss, sp)) if rpl > cpl => self.return_outer(bus, cs, cd, ss, sp)?,
            Some((ss, sp)) => {
                self.s.segs[SS] = ss;
                self.load_cs_desc(bus, cs, cd, rpl)?;
                let w = self.stack_size();
                if w == 8 {
                    self.s.gpr[RSP] = sp;
                } else {
                    self.set_sp(sp, w);
                }
            }
            None => {
                self.frame_commit(&f, None);
                self.load_cs_desc(bus, cs, cd, rpl)?;
            }
        }
        self.s.rip = ip;
        self.s.nmi_blocked = 0;
        self.break_block = true;
        Ok(())
    }

    /// IRETD at CPL 0 with VM set in the popped EFLAGS: return to V86 mode,
    /// popping ESP, SS, ES, DS, FS, GS as well.
    fn iret_to_v86(&mut self, bus: &mut dyn Bus, mut f: Frame, ip: u64, cs: u16, tf: u64) -> Result<()> {
        let mut v = [0u64; 6];
        for x in v.iter_mut() {
            *x = self.frame_pop(bus, &mut f, 4)?;
        }
        let [esp, ss, es, ds, fs, gs] = v;
        self.s.set_flags(tf);
        self.update_mode();
        use crate::state::{DS, ES, FS, GS};
        for (seg, sel) in [
            (CS, cs),
            (SS, ss as u16),
            (ES, es as u16),
            (DS, ds as u16),
            (FS, fs as u16),
            (GS, gs as u16),
        ] {
            self.load_real_seg(seg, sel);
        }
        self.s.gpr[RSP] = esp & 0xffff_ffff;
        self.s.rip = ip & 0xffff;
        self.update_mode();
        self.s.nmi_blocked = 0;
        self.break_block = true;
        Ok(())
    }
}
