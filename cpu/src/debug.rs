//! Debug exceptions (SDM Vol. 3B chapter 17): the hardware breakpoints in
//! DR0-DR3 enabled by DR7, single-stepping with RFLAGS.TF, and the resume
//! flag RFLAGS.RF. (General detect, DR7.GD, is checked by MOV DR in
//! `system/ctrl.rs`.)
//!
//! - Instruction breakpoints (R/W = 00) are faults, checked before an
//!   instruction runs unless RF is set. While one is armed the run loop
//!   steps instruction by instruction (`step_debug`) instead of running
//!   decoded blocks or translated code, so none is skipped.
//! - Data breakpoints (R/W = 01 write, 11 read/write) are traps after the
//!   access's instruction (after the iteration, for REP strings). Pages
//!   holding one get `TLB_WATCH` in their read and/or write TLB tags, so
//!   only accesses to those pages leave the fast path (`mmu.rs` slow paths
//!   call `watch_access`); with no data breakpoint no access pays anything.
//! - I/O breakpoints (R/W = 10, with CR4.DE) are traps after IN/OUT/INS/OUTS
//!   (`devio.rs` calls `watch_port`).
//! - RF is cleared before each instruction stepped here (after the
//!   breakpoint check it suppresses); the run loop steps here whenever RF is
//!   set, so it never outlives the instruction after the IRET that set it.
//!   Fault-class exceptions push RF = 1 (`Exception::sets_rf`).
//!
//! DR6.B0-B3 describe the breakpoints of the #DB being delivered (the
//! "may clear" option of SDM 17.2.3); BD, BS and BT accumulate until
//! software clears them.
//!
//! Left out: task-switch traps (TSS T bit, DR6.BT), the one-instruction
//! delay of debug traps after MOV SS/POP SS, and RTM/bus-lock debug bits.

use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Exception;
use crate::state::{cr4, flags, Mode, CS};

/// DR6.BD: the #DB is a general-detect fault.
pub const DR6_BD: u64 = 1 << 13;
/// DR6.BS: the #DB is a single-step trap.
pub const DR6_BS: u64 = 1 << 14;

const RW_EXEC: u64 = 0;
const RW_WRITE: u64 = 1;
const RW_IO: u64 = 2;
const RW_READ_WRITE: u64 = 3;

/// The breakpoints DR0-DR3/DR7/CR4.DE arm, decoded once per change.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Watch {
    /// DR0-DR3, DR7 and CR4.DE as last decoded.
    key: [u64; 6],
    /// Bit n set: breakpoint n is armed as an instruction breakpoint.
    pub exec: u8,
    /// ... as a data breakpoint on writes (R/W = 01 or 11).
    pub write: u8,
    /// ... as a data breakpoint on reads (R/W = 11).
    pub read: u8,
    /// ... as an I/O breakpoint.
    pub io: u8,
    /// Start (aligned down to the length) and length of each breakpoint's range.
    range: [(u64, u64); 4],
}

impl Watch {
    fn decode(key: [u64; 6]) -> Watch {
        let dr7 = key[4];
        let de = key[5] != 0;
        let mut w = Watch { key, ..Watch::default() };
        for n in 0..4 {
            if (dr7 >> (2 * n)) & 3 == 0 {
                continue;
            }
            let rw = (dr7 >> (16 + 4 * n)) & 3;
            // LEN 00, 01, 11, 10 = 1, 2, 4, 8 bytes (SDM 17.2.5).
            let len = [1u64, 2, 8, 4][((dr7 >> (18 + 4 * n)) & 3) as usize];
            w.range[n] = (key[n] & !(len - 1), len);
            let bit = 1u8 << n;
            match rw {
                RW_EXEC => w.exec |= bit,
                RW_WRITE => w.write |= bit,
                RW_IO if de => w.io |= bit,
                RW_IO => {}
                RW_READ_WRITE => {
                    w.write |= bit;
                    w.read |= bit;
                }
                _ => unreachable!("two-bit field"),
            }
        }
        w
    }

    /// Any breakpoint is armed (or the TLB may still carry `TLB_WATCH`).
    #[inline(always)]
    pub fn armed(&self) -> bool {
        self.exec | self.write | self.io != 0
    }

    /// Breakpoints among `mask` whose range overlaps `addr..addr+size`.
    fn hits(&self, mask: u8, addr: u64, size: u64) -> u8 {
        let mut hit = 0;
        for n in 0..4 {
            let (start, len) = self.range[n];
            if mask & (1 << n) != 0 && addr < start.wrapping_add(len) && start < addr.wrapping_add(size) {
                hit |= 1 << n;
            }
        }
        hit
    }

    /// Whether data breakpoints (`reads`: on reads, else on writes) lie in
    /// the linear page starting at `page` (ranges never cross a page).
    pub fn watches_page(&self, page: u64, reads: bool) -> bool {
        let mask = if reads { self.read } else { self.write };
        self.hits(mask, page, 4096) != 0
    }
}

impl Cpu {
    /// Bring `watch` up to date with DR0-DR3/DR7/CR4.DE, however they were
    /// written (MOV DR, MOV CR4, a state load). When the data breakpoints
    /// change, the TLB is flushed so its entries get (or lose) `TLB_WATCH`.
    /// Cheap when nothing changed; the run loop calls it at boundaries
    /// while any breakpoint is enabled or was.
    pub(crate) fn sync_watch(&mut self) {
        let d = &self.s.dr;
        let key = [d[0], d[1], d[2], d[3], d[7], self.s.cr4 & cr4::DE];
        if key == self.watch.key {
            return;
        }
        let w = Watch::decode(key);
        let data_changed = (w.read, w.write, w.range) != (self.watch.read, self.watch.write, self.watch.range);
        self.watch = w;
        if data_changed {
            self.flush_tlb_all();
        }
    }

    /// Something can make the run loop step here: TF, RF or an armed
    /// instruction breakpoint.
    #[inline(always)]
    pub(crate) fn debug_stepping(&self) -> bool {
        self.s.rflags & (flags::TF | flags::RF) != 0 || self.watch.exec != 0
    }

    /// A data access to `lin..lin+size` on a page with `TLB_WATCH`.
    #[cold]
    pub(crate) fn watch_access(&mut self, lin: u64, size: usize, write: bool) {
        let mask = if write { self.watch.write } else { self.watch.read };
        let hit = self.watch.hits(mask, lin, size as u64);
        if hit != 0 {
            self.db_hits |= hit;
            self.break_block = true;
        }
    }

    /// A port access (`devio.rs`): matched against I/O breakpoints.
    #[inline(always)]
    pub(crate) fn watch_port(&mut self, port: u16, size: u8) {
        if self.watch.io != 0 {
            let hit = self.watch.hits(self.watch.io, port as u64, size as u64);
            self.db_hits |= hit;
        }
    }

    /// At an instruction boundary, before interrupts: deliver the #DB trap
    /// for data or I/O breakpoints hit by the previous instruction (or
    /// while delivering an event). Returns whether a #DB was raised.
    #[cold]
    pub(crate) fn debug_boundary(&mut self, bus: &mut dyn Bus) -> bool {
        self.sync_watch();
        if self.db_hits == 0 {
            return false;
        }
        let hits = std::mem::take(&mut self.db_hits);
        self.s.dr[6] = (self.s.dr[6] & !0xf) | hits as u64;
        self.raise(bus, Exception::Debug);
        true
    }

    /// Run one instruction with the debug checks: an instruction breakpoint
    /// at CS:RIP (unless RF) is a fault before it; RF is cleared; after it,
    /// single-step (TF at its start) and the data/I/O breakpoints it hit
    /// make one #DB trap, unless it delivered an event (a fault, INT n),
    /// whose handler starts afresh.
    #[cold]
    pub(crate) fn step_debug(&mut self, bus: &mut dyn Bus) {
        let f = self.s.rflags;
        if f & flags::RF == 0 && self.watch.exec != 0 {
            let cs_base = if self.s.mode == Mode::Long64 { 0 } else { self.s.segs[CS].base };
            let lin = cs_base.wrapping_add(self.s.rip) & self.lin_mask();
            let hit = self.watch.hits(self.watch.exec, lin, 1);
            if hit != 0 {
                // Counted like any other faulting instruction.
                self.s.icount += 1;
                self.s.dr[6] = (self.s.dr[6] & !0xf) | hit as u64;
                self.raise(bus, Exception::Debug);
                return;
            }
        }
        self.s.rflags &= !flags::RF;
        self.delivered = false;
        self.step_uncached(bus);
        if self.shutdown || self.delivered {
            return;
        }
        let single_step = f & flags::TF != 0 && self.s.halted == 0;
        if single_step || self.db_hits != 0 {
            let hits = std::mem::take(&mut self.db_hits);
            self.s.dr[6] = (self.s.dr[6] & !0xf) | hits as u64;
            if single_step {
                self.s.dr[6] |= DR6_BS;
            }
            self.raise(bus, Exception::Debug);
        }
    }
}
