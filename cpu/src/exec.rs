//! The interpreter's main loop: interrupts at instruction boundaries, block
//! lookup/decode, and executing one decoded instruction at a time with
//! precise faults.

use crate::block::{Block, BlockKey, Handler, Op};
use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel, Exit};
use crate::dispatch::handler_for;
use crate::exception::{Exception, Result};
use crate::memory::{PAGE_SHIFT, PAGE_SIZE};
use crate::state::{flags, Mode, CS};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};
use std::cell::Cell;

/// Longest block, in instructions.
const MAX_BLOCK: usize = 48;

impl Cpu {
    fn decoder_options(&self) -> u32 {
        match self.model {
            // The 286 ignores LOCK where a 386 would raise #UD.
            CpuModel::I80286 => DecoderOptions::NO_INVALID_CHECK,
            CpuModel::X86_64 => DecoderOptions::NONE,
        }
    }

    fn max_insn_len(&self) -> usize {
        match self.model {
            CpuModel::I80286 => 10,
            CpuModel::X86_64 => 15,
        }
    }

    /// Run until `budget` instructions have retired, the CPU halts, or the
    /// machine asks to stop. Interrupts are taken between instructions.
    pub fn run(&mut self, bus: &mut dyn Bus, budget: u64) -> Exit {
        let end = self.s.icount.saturating_add(budget);
        // Whether the last block ended cleanly: it ran to its end or left
        // by a taken branch, without an instruction that set `break_block`
        // or faulted. Everything the boundary checks below look at (pending
        // interrupts and NMIs, IF/TF, the interrupt shadow, HLT, shutdown,
        // stop requests, written code pages) can only change through such
        // an instruction (I/O, MMIO, STI/POPF/IRET, MOV CR8, WRMSR, writes
        // to code, ...) or between calls of `run`, so after a clean block
        // they would all answer as they did at the previous full check and
        // are skipped. Interrupts are therefore taken at the first boundary
        // after whatever made them deliverable, whatever the block shapes.
        let mut clean = false;
        // The linear and backing page of the last block run. After a clean
        // exit the mapping cannot have changed (CR3, INVLPG, CR0/CR4/EFER,
        // A20 and memory-map changes all end blocks), so code on the same
        // linear page needs no code-TLB lookup.
        let mut hint: Option<(u64, u64)> = None;
        let mut cur: Option<std::rc::Rc<Block>> = None;
        loop {
            if clean {
                if self.s.icount >= end {
                    return Exit::Budget;
                }
            } else {
                if self.shutdown {
                    return Exit::TripleFault;
                }
                if self.s.icount >= end {
                    return Exit::Budget;
                }
                if self.mem.has_dirty_code() {
                    self.drop_dirty_blocks();
                }
                if self.s.irq_shadow != 0 {
                    // The instruction after STI / MOV SS runs before any interrupt.
                    self.s.irq_shadow = 0;
                    if self.debug_stepping() {
                        self.step_debug(bus);
                    } else {
                        self.step_uncached(bus);
                    }
                    continue;
                }
                // Debug traps of the last instruction come before interrupts
                // (SDM Vol. 3A 6.9); `watch` follows the debug registers.
                if (self.s.dr[7] & 0xff != 0 || self.db_hits != 0 || self.watch.armed()) && self.debug_boundary(bus) {
                    continue;
                }
                if self.check_interrupts(bus) {
                    continue;
                }
                if self.s.halted != 0 {
                    return Exit::Halted;
                }
                if bus.stop_requested() {
                    return Exit::Stopped;
                }
                // Single-stepping, RF, or an armed instruction breakpoint:
                // one instruction at a time with the checks (`debug.rs`).
                if self.debug_stepping() {
                    self.step_debug(bus);
                    continue;
                }
                if !self.use_block_cache {
                    self.step_uncached(bus);
                    continue;
                }
            }
            // The JIT (when installed) runs the block at CS:RIP if it has it.
            if self.jit_try(bus, end) {
                clean = false;
                continue;
            }
            // A loop back to the start of the block just run (same RIP, and
            // after a clean exit the same CS base, mode and mapping) reuses it.
            let again = clean && cur.as_ref().is_some_and(|b| b.rip == self.s.rip && b.valid.get());
            if !again {
                let same_page = if clean { hint } else { None };
                match self.lookup_block(bus, same_page) {
                    Ok(Some(block)) => {
                        hint = Some((block.lin_page, block.page));
                        cur = Some(block);
                    }
                    Ok(None) => {
                        self.step_uncached(bus);
                        clean = false;
                        continue;
                    }
                    Err(e) => {
                        self.raise(bus, e);
                        clean = false;
                        continue;
                    }
                }
            }
            let Some(block) = cur.as_deref() else {
                unreachable!("a block was just found");
            };
            clean = self.exec_block(bus, block, end);
        }
    }

    /// Execute exactly one instruction (or deliver one pending interrupt).
    pub fn step(&mut self, bus: &mut dyn Bus) -> Exit {
        let save = self.use_block_cache;
        self.use_block_cache = false;
        let r = self.run(bus, 1);
        self.use_block_cache = save;
        r
    }

    /// Take a pending NMI or maskable interrupt. Returns true if one was delivered.
    fn check_interrupts(&mut self, bus: &mut dyn Bus) -> bool {
        // INIT is not maskable; after it an application processor ignores
        // NMI and INTR until a SIPI starts it (SDM Vol. 3A 9.4, 10.6.1).
        if bus.take_init() {
            self.init();
            return true;
        }
        if self.s.wait_for_sipi != 0 {
            return match bus.take_sipi() {
                Some(v) => self.sipi(v),
                None => false,
            };
        }
        if self.s.nmi_blocked == 0 && bus.take_nmi() {
            self.s.halted = 0;
            self.s.nmi_blocked = 1;
            self.deliver_external(bus, 2);
            return true;
        }
        if self.s.rflags & flags::IF != 0 && bus.interrupt_pending() {
            if let Some(v) = bus.acknowledge_interrupt() {
                self.s.halted = 0;
                self.deliver_external(bus, v);
                return true;
            }
        }
        false
    }

    fn mode_key(&self) -> u8 {
        self.s.mode as u8
    }

    /// Drop the decoded blocks of code pages written since the last look.
    #[cold]
    fn drop_dirty_blocks(&mut self) {
        if let Some(pages) = self.mem.take_dirty_code() {
            for p in pages {
                self.blocks.invalidate_page(p);
                self.jit_invalidate_page(p);
            }
        }
    }

    /// Find or decode the block at CS:RIP. `Ok(None)` when the code cannot be
    /// cached (it is in MMIO space, or its first instruction crosses a page).
    /// `same_page`: (linear page, backing page) known to map each other.
    #[inline(always)]
    fn lookup_block(&mut self, bus: &mut dyn Bus, same_page: Option<(u64, u64)>) -> Result<Option<std::rc::Rc<Block>>> {
        let cs_base = if self.s.mode == Mode::Long64 { 0 } else { self.s.segs[CS].base };
        let lin = cs_base.wrapping_add(self.s.rip) & self.lin_mask();
        // The common case: the page is known (same as the last block's, or
        // in the code TLB) and the block is in the direct-mapped part of
        // the cache.
        let page = match same_page {
            Some((lp, bp)) if lp == lin >> PAGE_SHIFT => Some(bp),
            _ => self.code_page_fast(lin),
        };
        if let Some(page) = page {
            let key = BlockKey {
                rip: self.s.rip,
                cs_base,
                backing: (page << PAGE_SHIFT) | (lin & (PAGE_SIZE - 1)),
                mode: self.mode_key(),
            };
            if let Some(b) = self.blocks.get_fast(&key) {
                return Ok(Some(b));
            }
        }
        self.lookup_block_slow(bus, cs_base, lin)
    }

    #[inline(never)]
    fn lookup_block_slow(&mut self, bus: &mut dyn Bus, cs_base: u64, lin: u64) -> Result<Option<std::rc::Rc<Block>>> {
        let Some((page, _phys)) = self.code_page(bus, lin)? else {
            return Ok(None);
        };
        let backing = (page << PAGE_SHIFT) | (lin & (PAGE_SIZE - 1));
        let key = BlockKey {
            rip: self.s.rip,
            cs_base,
            backing,
            mode: self.mode_key(),
        };
        if let Some(b) = self.blocks.get(&key) {
            return Ok(Some(b));
        }
        // Decode from the rest of the page.
        let off = (lin & (PAGE_SIZE - 1)) as usize;
        let mut bytes = [0u8; PAGE_SIZE as usize];
        let avail = PAGE_SIZE as usize - off;
        self.mem.read(backing, &mut bytes[..avail]);
        let mut dec = Decoder::with_ip(self.s.mode.bitness(), &bytes[..avail], self.s.rip, self.decoder_options());
        let mut ops: Vec<Op> = Vec::with_capacity(16);
        let mut insn = Instruction::default();
        while dec.can_decode() && ops.len() < MAX_BLOCK {
            dec.decode_out(&mut insn);
            if dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
                // Crosses into the next page: end the block before it.
                break;
            }
            let mut op = Op::new(insn, handler_for(&insn, self.model), self.model, self.s.mode);
            let mut ends = insn.flow_control() != FlowControl::Next || insn.is_invalid() || insn.len() > self.max_insn_len();
            if insn.flow_control() == FlowControl::ConditionalBranch {
                // A block runs on past a conditional branch that falls
                // through; the branch leaves the block when taken.
                if let Some(cont) = op.cont {
                    op.exec = cont;
                    op.branch_exit = true;
                    ends = false;
                }
            }
            ops.push(op);
            if ends {
                break;
            }
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let last_byte = ops.iter().map(|o| o.next_ip.wrapping_sub(1)).max().unwrap_or(0);
        self.mem.set_code_page(page);
        self.protect_code_page(page);
        let block = Block {
            ops: ops.into_boxed_slice(),
            valid: Cell::new(true),
            page,
            lin_page: lin >> PAGE_SHIFT,
            rip: self.s.rip,
            last_byte,
        };
        Ok(Some(self.blocks.insert(key, block)))
    }

    /// Run a decoded block from its first instruction. Leaves after a
    /// fault, after an instruction that set `break_block`, or when the
    /// budget `end` is reached. Returns whether it ended cleanly (see `run`).
    fn exec_block(&mut self, bus: &mut dyn Bus, block: &Block, end: u64) -> bool {
        self.break_block = false;
        let ops = &block.ops[..];
        // Two per-instruction checks are hoisted out of the loop when the
        // whole block passes them: the CS limit (outside 64-bit mode, an
        // instruction whose last byte is past the limit raises #GP) and the
        // budget. Otherwise every instruction checks both.
        let limit_ok = self.s.mode == Mode::Long64 || block.last_byte <= self.s.segs[CS].limit as u64;
        if limit_ok && self.s.icount + ops.len() as u64 <= end {
            for op in ops {
                self.s.icount += 1;
                self.s.rip = op.next_ip;
                if let Err(e) = (op.exec)(self, bus, op) {
                    self.op_fault(bus, op, *e);
                    return false;
                }
                if self.break_block {
                    return op.branch_exit;
                }
            }
            return true;
        }
        for op in ops {
            self.s.icount += 1;
            if self.s.mode != Mode::Long64 && op.next_ip.wrapping_sub(1) > self.s.segs[CS].limit as u64 {
                self.raise(bus, Exception::GP0);
                return false;
            }
            self.s.rip = op.next_ip;
            if let Err(e) = (op.exec)(self, bus, op) {
                self.op_fault(bus, op, *e);
                return false;
            }
            if self.break_block {
                return op.branch_exit;
            }
            if self.s.icount >= end {
                return true;
            }
        }
        true
    }

    /// A pre-decoded instruction faulted: point RIP back at it (unless the
    /// exception is a trap such as INT n) and deliver the exception.
    #[cold]
    fn op_fault(&mut self, bus: &mut dyn Bus, op: &Op, e: Exception) {
        if !e.is_trap() {
            self.s.rip = op.insn.ip();
        }
        self.raise(bus, e);
    }

    /// Execute one decoded instruction. Returns false if it faulted.
    #[inline(always)]
    fn exec_insn(&mut self, bus: &mut dyn Bus, insn: &Instruction, handler: Handler) -> bool {
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

    /// Fetch, decode and execute one instruction without the block cache
    /// (code in MMIO, instructions crossing pages, single-stepping).
    pub(crate) fn step_uncached(&mut self, bus: &mut dyn Bus) {
        self.break_block = false;
        let mut bytes = [0u8; 15];
        let n = self.max_insn_len();
        let cs_base = if self.s.mode == Mode::Long64 { 0 } else { self.s.segs[CS].base };
        let mut fetched = 0;
        for (k, b) in bytes.iter_mut().enumerate().take(n) {
            let lin = cs_base.wrapping_add(self.s.rip.wrapping_add(k as u64)) & self.lin_mask();
            let mmu = if self.s.cpl == 3 {
                crate::mmu::MMU_USER
            } else {
                crate::mmu::MMU_SUPER_NOSMAP
            };
            match self.fetch_byte(bus, lin, mmu) {
                Ok(v) => {
                    *b = v;
                    fetched += 1;
                }
                Err(e) => {
                    // Only a fault on a byte the instruction needs counts.
                    let mut dec = Decoder::with_ip(self.s.mode.bitness(), &bytes[..fetched], self.s.rip, self.decoder_options());
                    // Only whether the bytes so far hold a whole instruction matters.
                    dec.decode_out(&mut Instruction::default());
                    if dec.last_error() == iced_x86::DecoderError::NoMoreBytes || fetched == 0 {
                        self.s.icount += 1;
                        self.raise(bus, e);
                        return;
                    }
                    break;
                }
            }
        }
        let mut dec = Decoder::with_ip(self.s.mode.bitness(), &bytes[..fetched], self.s.rip, self.decoder_options());
        let insn = dec.decode();
        if dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
            // Longer than the limit: #GP on the 286 and 386+ alike, except
            // that what iced takes for a long VEX/EVEX instruction is a
            // short invalid BOUND/LES/LDS on the 286.
            self.s.icount += 1;
            let e = match crate::dispatch::i286_vex_alias_len(&bytes[..fetched]) {
                Some(n) if self.model == CpuModel::I80286 && n <= 10 => Exception::InvalidOpcode,
                _ => Exception::GP0,
            };
            self.raise(bus, e);
            return;
        }
        if self.model == CpuModel::I80286 && insn.is_invalid() {
            if let Some(n) = crate::dispatch::i286_mov_group_len(&bytes[..fetched]) {
                if n > self.max_insn_len() {
                    self.s.icount += 1;
                    self.raise(bus, Exception::GP0);
                    return;
                }
            }
        }
        let h = handler_for(&insn, self.model);
        self.exec_insn(bus, &insn, h);
    }

    fn fetch_byte(&mut self, bus: &mut dyn Bus, lin: u64, mmu: usize) -> Result<u8> {
        let phys = self.translate_mmu(bus, lin, crate::mmu::Access::Exec, mmu)?;
        Ok(self.read_phys(bus, phys, 1) as u8)
    }
}
