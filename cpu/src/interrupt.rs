//! Exception and interrupt delivery (SDM Vol. 3A chapter 7): the
//! double-fault rule, and the real-mode IVT path. Protected-mode and
//! long-mode delivery through the IDT live in `system/idt.rs`.

use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel};
use crate::exception::{Class, Exception, Result};
use crate::state::{flags, Mode, CS, SS};

/// Where an event comes from: it decides privilege checks and error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A processor exception (fault, trap or abort).
    Exception,
    /// INT n / INT3 / INTO: gate DPL is checked against CPL.
    Software,
    /// An external interrupt or NMI: no DPL check, no error code.
    External,
}

impl Cpu {
    /// Deliver an exception raised by an instruction, applying the
    /// double-fault and triple-fault rules when delivery itself faults.
    pub fn raise(&mut self, bus: &mut dyn Bus, e: Exception) {
        self.break_block = true;
        let mut e = e;
        loop {
            if let Exception::PageFault { addr, .. } = e {
                self.s.cr2 = addr;
            }
            if e.sets_rf() {
                // The frame built below pushes the live RFLAGS; delivery
                // clears RF in the handler's.
                self.s.rflags |= flags::RF;
            }
            let src = if matches!(e, Exception::SoftwareInterrupt(_) | Exception::Breakpoint | Exception::Overflow) {
                Source::Software
            } else {
                Source::Exception
            };
            match self.deliver(bus, e.vector(), e.error_code(), src) {
                Ok(()) => return,
                Err(e2) => {
                    let first = e.class();
                    let second = e2.class();
                    if first == Class::DoubleFault || self.s.mode == Mode::Real && first != Class::Benign && second != Class::Benign {
                        // Shutdown: the machine resets (or stops with -no-reboot).
                        self.request_shutdown();
                        return;
                    }
                    let df = match (first, second) {
                        (Class::Contributory, Class::Contributory) => true,
                        (Class::PageFault, Class::Contributory | Class::PageFault) => true,
                        _ => false,
                    };
                    e = if df { Exception::DoubleFault } else { e2 };
                }
            }
        }
    }

    /// Deliver an external interrupt (or NMI, vector 2).
    pub fn deliver_external(&mut self, bus: &mut dyn Bus, vector: u8) {
        self.break_block = true;
        if let Err(e) = self.deliver(bus, vector, None, Source::External) {
            self.raise(bus, e);
        }
    }

    /// Deliver one event through the IVT or IDT.
    pub fn deliver(&mut self, bus: &mut dyn Bus, vector: u8, error: Option<u32>, src: Source) -> Result<()> {
        self.s.halted = 0;
        // A new context discards the debug traps of the instruction that
        // led here (they come again when it is returned to); data
        // breakpoints hit while building the frame still count.
        self.db_hits = 0;
        self.delivered = true;
        // `-d int`: one line per event, like QEMU's "Servicing hardware INT" / exception log.
        tracing::trace!(
            target: "int",
            "v={vector:#04x} {src:?} e={error:x?} cpl={} cs:rip={:04x}:{:016x} rsp={:016x} cr2={:x} icount={}",
            self.s.cpl,
            self.s.segs[CS].selector,
            self.s.rip,
            self.s.gpr[crate::state::RSP],
            self.s.cr2,
            self.s.icount
        );
        match self.s.mode {
            Mode::Real => self.deliver_real(bus, vector),
            _ => self.deliver_protected(bus, vector, error, src),
        }
    }

    /// Real mode: push FLAGS, CS, IP and load CS:IP from the IVT.
    fn deliver_real(&mut self, bus: &mut dyn Bus, vector: u8) -> Result<()> {
        let entry = vector as u64 * 4;
        if entry + 3 > self.s.idtr.limit as u64 {
            return Err(Exception::GP0);
        }
        let ivt = self.s.idtr.base + entry;
        let ip = self.read_lin(bus, ivt, 2)?;
        let cs = self.read_lin(bus, ivt + 2, 2)? as u16;
        let fl = self.flags_for_push();
        self.push16(bus, fl)?;
        self.push16(bus, self.s.segs[CS].selector as u64)?;
        self.push16(bus, self.s.rip)?;
        let mut clear = flags::IF | flags::TF | flags::RF;
        if self.model != CpuModel::I80286 {
            clear |= flags::AC;
        }
        self.s.rflags &= !clear;
        self.load_real_seg(CS, cs);
        self.s.rip = ip;
        Ok(())
    }

    /// FLAGS as PUSHF and interrupt frames store them: the 286 reads bits
    /// 12..15 as zero in real mode; VM and RF are never pushed.
    pub fn flags_for_push(&self) -> u64 {
        let mut f = self.s.flags() & !(flags::VM | flags::RF);
        if self.model == CpuModel::I80286 {
            f &= 0x0fff;
        }
        f
    }

    /// Load a segment register the real-mode / V86 way.
    pub fn load_real_seg(&mut self, seg: usize, sel: u16) {
        let s = &mut self.s.segs[seg];
        s.selector = sel;
        s.base = (sel as u64) << 4;
        if self.s.mode == Mode::V86 {
            *s = crate::state::Segment::real(sel);
            s.attr |= 3 << crate::state::attr::DPL_SHIFT;
        }
        if seg == CS {
            self.break_block = true;
        }
    }

    /// Push a 16-bit value on SS:SP with the current stack width.
    pub fn push16(&mut self, bus: &mut dyn Bus, v: u64) -> Result<()> {
        self.push(bus, v, 2)
    }

    /// Push `size` bytes, honouring the stack-pointer width. RSP only
    /// changes if the write succeeds.
    pub fn push(&mut self, bus: &mut dyn Bus, v: u64, size: usize) -> Result<()> {
        let ss = self.stack_size();
        let sp = self.s.gpr[crate::state::RSP];
        let new_sp = sp.wrapping_sub(size as u64) & sp_mask(ss);
        self.write_mem(bus, SS, new_sp, size, v)?;
        self.set_sp(new_sp, ss);
        Ok(())
    }

    /// Pop `size` bytes.
    pub fn pop(&mut self, bus: &mut dyn Bus, size: usize) -> Result<u64> {
        let ss = self.stack_size();
        let sp = self.s.gpr[crate::state::RSP] & sp_mask(ss);
        let v = self.read_mem(bus, SS, sp, size)?;
        self.set_sp(sp.wrapping_add(size as u64), ss);
        Ok(v)
    }

    /// Read the value `offset` bytes above the top of the stack without popping.
    pub fn peek(&mut self, bus: &mut dyn Bus, offset: u64, size: usize) -> Result<u64> {
        let ss = self.stack_size();
        let sp = self.s.gpr[crate::state::RSP].wrapping_add(offset) & sp_mask(ss);
        self.read_mem(bus, SS, sp, size)
    }

    /// Set SP/ESP/RSP keeping the bits above the stack width.
    #[inline]
    pub fn set_sp(&mut self, v: u64, stack_size: usize) {
        let r = &mut self.s.gpr[crate::state::RSP];
        *r = match stack_size {
            2 => (*r & !0xffff) | (v & 0xffff),
            4 => v & 0xffff_ffff,
            _ => v,
        };
    }
}

#[inline(always)]
pub fn sp_mask(stack_size: usize) -> u64 {
    match stack_size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}
