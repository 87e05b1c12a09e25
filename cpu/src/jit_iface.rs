//! The doorway between the interpreter and a translator (kagami-jit).
//!
//! The CPU owns at most one [`Translator`]. At every block boundary where the
//! interpreter would look up a decoded block (or, with `use_block_cache`
//! off, decode one instruction), the run loop first offers the
//! block to the translator ([`Cpu::jit_try`]); the translator either runs
//! translated code for it (returning `true`) or declines (`false`, still cold
//! or not translatable) and the interpreter runs the block as usual. The
//! translator is taken out of the CPU while it runs, so a flush requested in
//! the meantime (reset, new physical map) is remembered and applied on return.
//!
//! Translated code must leave exactly the state the interpreter would: the
//! same `icount`, RIP, registers, lazy flags, and the same block boundaries
//! (interrupts are taken only there). The helpers below give it the
//! interpreter's own per-instruction step for everything it does not inline.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Exception;
use crate::memory::{PAGE_SHIFT, PAGE_SIZE};
use crate::state::{Mode, CS};
use iced_x86::Instruction;

/// Where a block of guest code is and how it is decoded: the same facts the
/// interpreter's decoded-block cache keys on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct JitKey {
    /// RIP of the first instruction.
    pub rip: u64,
    /// CS base (0 in 64-bit mode).
    pub cs_base: u64,
    /// Backing-memory address of the first byte (`GuestMemory` offset).
    pub backing: u64,
    /// `Mode as u8`: decides the decoder's bitness.
    pub mode: u8,
}

impl JitKey {
    /// Backing page number of the block (a block never crosses a page).
    pub fn page(&self) -> u64 {
        self.backing >> PAGE_SHIFT
    }
}

/// A dynamic translator the run loop consults at block boundaries.
pub trait Translator: Send {
    /// Run translated code for the block at `key` without letting `icount`
    /// pass `end`. Returns `false` if nothing ran (the interpreter then runs
    /// the block). On `true` the block ran to its end, to a fault (already
    /// delivered), or to a block-breaking instruction, like the interpreter's
    /// block executor.
    fn run_block(&mut self, cpu: &mut Cpu, bus: &mut dyn Bus, key: &JitKey, end: u64) -> bool;
    /// A backing page was written: drop translations of code on it.
    fn invalidate_page(&mut self, page: u64);
    /// Drop every translation (reset, physical map change).
    fn flush(&mut self);
    /// A human-readable statistics report (for `--jit-stats`).
    fn stats_report(&self) -> String {
        String::new()
    }
}

/// The CPU's translator slot.
#[derive(Default)]
pub struct JitSlot {
    translator: Option<Box<dyn Translator>>,
    flush_pending: bool,
    /// The translator is installed (it may be taken out while running).
    installed: bool,
}

impl Cpu {
    /// Install (or with `None` remove) the translator.
    pub fn set_translator(&mut self, t: Option<Box<dyn Translator>>) {
        self.jit.installed = t.is_some();
        self.jit.translator = t;
        self.jit.flush_pending = false;
    }

    pub fn translator(&self) -> Option<&dyn Translator> {
        self.jit.translator.as_deref()
    }

    pub fn has_translator(&self) -> bool {
        self.jit.installed
    }

    /// Offer the block at CS:RIP to the translator. `true` if translated
    /// code ran it.
    #[inline]
    pub(crate) fn jit_try(&mut self, bus: &mut dyn Bus, end: u64) -> bool {
        if !self.jit.installed {
            return false;
        }
        let cs_base = if self.s.mode == Mode::Long64 { 0 } else { self.s.segs[CS].base };
        let lin = cs_base.wrapping_add(self.s.rip) & self.lin_mask();
        // A fetch fault or code outside RAM: the interpreter's path handles it.
        let Ok(Some((page, _))) = self.code_page(bus, lin) else {
            return false;
        };
        let key = JitKey {
            rip: self.s.rip,
            cs_base,
            backing: (page << PAGE_SHIFT) | (lin & (PAGE_SIZE - 1)),
            mode: self.s.mode as u8,
        };
        let Some(mut t) = self.jit.translator.take() else {
            return false;
        };
        self.break_block = false;
        let ran = t.run_block(self, bus, &key, end);
        if self.jit.flush_pending {
            self.jit.flush_pending = false;
            t.flush();
        }
        self.jit.translator = Some(t);
        ran
    }

    /// The key of the block at CS:RIP when the code TLB already maps its
    /// page to RAM/ROM (no fill, no fault), for a translator's own dispatch
    /// loop after a clean block exit; `None` otherwise (the run loop then
    /// does the full lookup).
    #[inline(always)]
    pub fn jit_key_fast(&self) -> Option<JitKey> {
        let cs_base = if self.s.mode == Mode::Long64 { 0 } else { self.s.segs[CS].base };
        let lin = cs_base.wrapping_add(self.s.rip) & self.lin_mask();
        let page = self.code_page_fast(lin)?;
        Some(JitKey {
            rip: self.s.rip,
            cs_base,
            backing: (page << PAGE_SHIFT) | (lin & (PAGE_SIZE - 1)),
            mode: self.s.mode as u8,
        })
    }

    /// The soft-TLB table `jit_key_fast` looks code pages up in (by
    /// privilege), for translated code that checks a jump's target page
    /// the same way.
    #[inline(always)]
    pub fn jit_code_tlb(&self) -> *const crate::mmu::TlbEntry {
        let mmu = if self.s.cpl == 3 {
            crate::mmu::MMU_USER
        } else {
            crate::mmu::MMU_SUPER_NOSMAP
        };
        self.tlb.e[mmu].as_ptr()
    }

    /// The interpreter dropped the decoded blocks of a written page.
    #[inline]
    pub(crate) fn jit_invalidate_page(&mut self, page: u64) {
        if let Some(t) = self.jit.translator.as_mut() {
            t.invalidate_page(page);
        } else if self.jit.installed {
            self.jit.flush_pending = true;
        }
    }

    /// The interpreter cleared its decoded-block cache.
    pub(crate) fn jit_flush(&mut self) {
        if let Some(t) = self.jit.translator.as_mut() {
            t.flush();
        } else if self.jit.installed {
            self.jit.flush_pending = true;
        }
    }

    // ----- helpers for translated code -----

    /// Execute one decoded instruction exactly as the interpreter's block
    /// executor does: count it, check the CS limit, point RIP past it, run
    /// the handler; on a fault rewind RIP (unless a trap) and deliver it.
    /// Returns `false` if it faulted.
    pub fn jit_exec_insn(&mut self, bus: &mut dyn Bus, insn: &Instruction, handler: Handler) -> bool {
        self.s.icount += 1;
        if self.s.mode != Mode::Long64 && insn.next_ip().wrapping_sub(1) > self.s.segs[CS].limit as u64 {
            self.raise(bus, Exception::GP0);
            return false;
        }
        self.s.rip = insn.next_ip();
        match handler(self, bus, insn) {
            Ok(()) => true,
            Err(e) => {
                if !e.is_trap() {
                    self.s.rip = insn.ip();
                }
                self.raise(bus, e);
                false
            }
        }
    }

    /// Whether the last instruction asked to leave the block.
    #[inline(always)]
    pub fn jit_break_block(&self) -> bool {
        self.break_block || self.shutdown
    }

    /// Mark a backing page as holding code: writes to it (CPU or DMA) now
    /// end up in the dirty list the run loop hands to `invalidate_page`.
    pub fn jit_mark_code_page(&mut self, page: u64) {
        self.mem.set_code_page(page);
        self.protect_code_page(page);
    }
}
