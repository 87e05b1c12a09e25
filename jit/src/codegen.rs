//! Building the Cranelift IR of one guest block.
//!
//! The generated function takes one argument, a `*mut RunCtx`. Guest
//! registers used by inline code are loaded from `CpuState` on first use,
//! kept in Cranelift variables, and stored back (with the pending `icount`
//! and the lazy flags of the last inline flag setter) before every helper
//! call and at the block's end; a helper may change any state, so the cache
//! starts empty after it. Inline memory accesses keep the cache on their
//! TLB-hit arm; only their helper arm syncs (see `reload_to_match`). Each
//! helper call returns whether the block must end, and a branch to an exit
//! (which only returns, everything being stored already) follows it. A
//! block whose inline branch goes back to its start loops (`start_loop`).

use crate::helpers::{self, BlockHead, Fallback, JcEntry, RunCtx, JC_ENTRIES};
use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, MemFlagsData, SigRef, Value};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, Variable};
use kagami_cpu::mmu::{TlbEntry, TLB_ENTRIES};
use kagami_cpu::CpuState;
use std::mem::offset_of;

pub const I64: ir::Type = types::I64;

/// A block's return value: it ran to its end or left by a branch, with no
/// instruction that faulted or set `break_block` (the interpreter's "clean"
/// block exit, after which only the budget needs checking).
pub const EXIT_CLEAN: u32 = 0;
/// A helper faulted, set `break_block` or panicked: back to the run loop.
pub const EXIT_BREAK: u32 = 1;
/// `EXIT_LINK + k`: a clean exit through link cell `k`, which was empty;
/// `Jit::run_block` fills it when the next block is translated.
pub const EXIT_LINK: u32 = 2;

/// The signature of a generated block function: the `tail` calling
/// convention (so one block can jump to the next with a tail call), one
/// `*mut RunCtx` argument, an exit status.
pub fn block_signature() -> ir::Signature {
    let mut sig = ir::Signature::new(CallConv::Tail);
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

pub fn gpr_offset(r: usize) -> i32 {
    (offset_of!(CpuState, gpr) + 8 * r) as i32
}

/// The lazy-flags values of the last inline flag-setting instruction, when
/// its operands are still SSA values (for a fused CMP/Jcc).
#[derive(Clone, Copy)]
pub struct KnownCc {
    pub op: u32,
    pub size: u32,
    pub dst: Value,
    pub src1: Value,
    pub src2: Value,
}

pub struct Emitter<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ctx: Value,
    pub st: Value,
    /// The running block's `BlockHead` (loaded once at entry).
    cur: Value,
    fallback_base: Value,
    /// One Cranelift variable per GPR; `valid[r]`: it holds the guest
    /// register (loaded or computed on this path), `dirty[r]`: `CpuState`
    /// is behind it.
    vars: [Variable; 16],
    valid: [bool; 16],
    dirty: [bool; 16],
    /// Instructions retired by inline code and not yet added to `icount`.
    pending_icount: u64,
    /// `s.rip` is behind: inline instructions ran since it was stored.
    rip_stale: bool,
    pub known_cc: Option<KnownCc>,
    /// The lazy-flag fields in `CpuState` are behind `known_cc` (inline
    /// flag setters only record their operands; the fields are stored at
    /// the next sync point, so flags overwritten before one cost nothing).
    cc_dirty: bool,
    fallback_sig: SigRef,
    cond_sig: SigRef,
    /// A generated block function's own signature (direct jumps).
    block_sig: SigRef,
    pub fallbacks: usize,
    pub inlined: usize,
    /// For a block that branches back to its own start: the loop header,
    /// see `Emitter::start_loop`.
    lp: Option<Loop>,
    /// See `Emitter::new`.
    link_page: Option<u64>,
    /// Link cells used so far (the block's `links` table has this many).
    pub links: u32,
}

/// A block whose taken branch may go back to its own first instruction
/// loops inside its function while the budget allows, instead of returning
/// to the dispatch loop (after a clean exit the run loop would only check
/// the budget before running the same block again).
struct Loop {
    head: ir::Block,
    start: u64,
    len: u64,
    end: Value,
    /// `icount` as of the last store (kept in a variable so the back edge
    /// need not load it).
    ic: Variable,
    /// Registers loaded before the header: valid at its top.
    valid: [bool; 16],
}

/// The register-cache state at one point of the emitted code, to give both
/// arms of an inline memory access (TLB hit, helper) the same state where
/// they meet.
#[derive(Clone, Copy)]
pub struct CacheState {
    valid: [bool; 16],
    dirty: [bool; 16],
    pending_icount: u64,
    rip_stale: bool,
    known_cc: Option<KnownCc>,
    cc_dirty: bool,
}

impl<'a, 'b> Emitter<'a, 'b> {
    /// `helper_conv`: the calling convention of the `extern "C"` helpers;
    /// `link_page`: the linear page (address >> 12) a static exit may jump
    /// to directly (`leave_to`), `None` for no direct jumps.
    pub fn new(b: &'a mut FunctionBuilder<'b>, helper_conv: CallConv, link_page: Option<u64>) -> Self {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let ctx = b.block_params(entry)[0];
        let st = b.ins().load(I64, MemFlagsData::trusted(), ctx, offset_of!(RunCtx, state) as i32);
        let cur = b.ins().load(I64, MemFlagsData::trusted(), ctx, offset_of!(RunCtx, cur) as i32);
        let fallback_base = b
            .ins()
            .load(I64, MemFlagsData::trusted(), cur, offset_of!(BlockHead, fallbacks) as i32);
        let mut fsig = ir::Signature::new(helper_conv);
        fsig.params.push(AbiParam::new(I64));
        fsig.params.push(AbiParam::new(I64));
        fsig.returns.push(AbiParam::new(types::I32));
        let fallback_sig = b.import_signature(fsig);
        let mut csig = ir::Signature::new(helper_conv);
        csig.params.push(AbiParam::new(I64));
        csig.params.push(AbiParam::new(types::I32));
        csig.returns.push(AbiParam::new(types::I32));
        let cond_sig = b.import_signature(csig);
        let block_sig = b.import_signature(block_signature());
        let vars = std::array::from_fn(|_| b.declare_var(I64));
        Emitter {
            b,
            ctx,
            st,
            cur,
            fallback_base,
            vars,
            valid: [false; 16],
            dirty: [false; 16],
            pending_icount: 0,
            rip_stale: false,
            known_cc: None,
            cc_dirty: false,
            fallback_sig,
            cond_sig,
            block_sig,
            fallbacks: 0,
            inlined: 0,
            lp: None,
            link_page,
            links: 0,
        }
    }

    /// Make this block's function loop: `start` is its first instruction,
    /// `len` its instruction count, `regs` the GPRs to keep in variables
    /// across iterations. Call before emitting any instruction.
    pub fn start_loop(&mut self, start: u64, len: u64, regs: &[usize]) {
        let end = self
            .b
            .ins()
            .load(I64, MemFlagsData::trusted(), self.ctx, offset_of!(RunCtx, end) as i32);
        let ic = self.b.declare_var(I64);
        let v = self.load_field(offset_of!(CpuState, icount));
        self.b.def_var(ic, v);
        for &r in regs {
            self.gpr(r);
        }
        let head = self.b.create_block();
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        // `s.rip` is right on entry but not after the back edge.
        self.rip_stale = true;
        self.lp = Some(Loop {
            head,
            start,
            len,
            end,
            ic,
            valid: self.valid,
        });
    }

    /// Leave the block by a taken branch to `target`: back to the loop
    /// header when it is the block's own start and the budget allows
    /// another whole iteration, otherwise return with RIP = `target`.
    pub fn exit_to(&mut self, target: u64) {
        let Some((head, start, len, end, ic, valid)) = self.lp.as_ref().map(|l| (l.head, l.start, l.len, l.end, l.ic, l.valid)) else {
            self.leave_to(target);
            return;
        };
        if target != start {
            self.leave_to(target);
            return;
        }
        // Store what the header does not carry in variables.
        for r in 0..16 {
            if self.dirty[r] {
                let v = self.b.use_var(self.vars[r]);
                self.b.ins().store(MemFlagsData::trusted(), v, self.st, gpr_offset(r));
                self.dirty[r] = false;
            }
            if valid[r] && !self.valid[r] {
                let v = self.b.ins().load(I64, MemFlagsData::trusted(), self.st, gpr_offset(r));
                self.b.def_var(self.vars[r], v);
            }
        }
        self.sync_cc();
        let c = self.b.use_var(ic);
        let c = self.b.ins().iadd_imm_u(c, self.pending_icount as i64);
        self.store_field(offset_of!(CpuState, icount), c);
        self.b.def_var(ic, c);
        self.pending_icount = 0;
        let next_end = self.b.ins().iadd_imm_u(c, len as i64);
        let fits = self.b.ins().icmp(ir::condcodes::IntCC::UnsignedLessThanOrEqual, next_end, end);
        let out = self.b.create_block();
        self.b.ins().brif(fits, head, &[], out, &[]);
        self.b.seal_block(out);
        self.b.switch_to_block(out);
        let t = self.iconst(target);
        self.store_field(offset_of!(CpuState, rip), t);
        self.ret(EXIT_CLEAN);
    }

    /// Leave the block for the known address `target`: everything stored,
    /// then, in 64-bit mode, a direct jump (tail call) to the block in the
    /// next link cell if that cell is filled and the budget allows all of
    /// that block (`icount + len <= end`, what the dispatch loop checks);
    /// otherwise return (`EXIT_LINK + k` for an empty cell, so that the
    /// dispatch loop fills it).
    ///
    /// A target on this block's own linear page needs no other check: the
    /// page's translation was looked up when the dispatch loop entered the
    /// first block of the chain, and a clean exit changes neither the mode,
    /// the privilege nor the page tables in force (CR3 writes, INVLPG and
    /// mode changes end blocks unclean), so the dispatch loop would find
    /// the same block. A target on another page is checked in the code TLB
    /// first, as `Cpu::jit_key_fast` does.
    pub fn leave_to(&mut self, target: u64) {
        self.sync(None);
        let t = self.iconst(target);
        self.store_field(offset_of!(CpuState, rip), t);
        self.rip_stale = false;
        let Some(page) = self.link_page else {
            self.ret(EXIT_CLEAN);
            return;
        };
        let k = self.links;
        self.links += 1;
        let trusted = MemFlagsData::trusted();
        let links = self.b.ins().load(I64, trusted, self.cur, offset_of!(BlockHead, links) as i32);
        let next = self.b.ins().load(I64, trusted, links, (8 * k) as i32);
        let empty = self.b.create_block();
        let filled = self.b.create_block();
        self.b.ins().brif(next, filled, &[], empty, &[]);
        self.b.seal_block(empty);
        self.b.seal_block(filled);
        self.b.switch_to_block(empty);
        self.ret(EXIT_LINK + k);
        self.b.switch_to_block(filled);
        if target >> 12 != page {
            // Another page: its code-TLB entry must still map it to the
            // linked block's backing page (`Cpu::jit_key_fast`'s check).
            let slot = ((target >> 12) as usize & (TLB_ENTRIES - 1)) * std::mem::size_of::<TlbEntry>();
            let slot = self.b.ins().iconst(I64, slot as i64);
            self.check_code_page(t, next, slot);
        }
        self.jump_to(next);
    }

    /// Leave for a computed 64-bit RIP `rip` (already stored): jump to the
    /// block the jump cache holds for it if the code TLB still maps its
    /// page to that block's and the budget allows; otherwise return clean.
    pub fn leave_dynamic(&mut self, rip: Value) {
        if self.link_page.is_none() {
            self.ret(EXIT_CLEAN);
            return;
        }
        let trusted = MemFlagsData::trusted();
        let sh = self.b.ins().ushr_imm_u(rip, 12);
        let h = self.b.ins().bxor(rip, sh);
        let h = self.b.ins().band_imm_u(h, (JC_ENTRIES - 1) as i64);
        let off = self.b.ins().ishl_imm_u(h, 4);
        let jc = self.b.ins().load(I64, trusted, self.ctx, offset_of!(RunCtx, jc) as i32);
        let e = self.b.ins().iadd(jc, off);
        let erip = self.b.ins().load(I64, trusted, e, offset_of!(JcEntry, rip) as i32);
        let hit = self.b.ins().icmp(ir::condcodes::IntCC::Equal, erip, rip);
        let found = self.b.create_block();
        let miss = self.b.create_block();
        self.b.ins().brif(hit, found, &[], miss, &[]);
        self.b.seal_block(found);
        self.b.seal_block(miss);
        self.b.switch_to_block(miss);
        self.ret(EXIT_CLEAN);
        self.b.switch_to_block(found);
        let next = self.b.ins().load(I64, trusted, e, offset_of!(JcEntry, head) as i32);
        let slot = self.b.ins().band_imm_u(sh, (TLB_ENTRIES - 1) as i64);
        let slot = self.b.ins().imul_imm_u(slot, std::mem::size_of::<TlbEntry>() as i64);
        self.check_code_page(rip, next, slot);
        self.jump_to(next);
    }

    /// Return clean unless the code-TLB entry at byte offset `slot` maps
    /// the page of `lin` to the backing page of block `next`.
    fn check_code_page(&mut self, lin: Value, next: Value, slot: Value) {
        let trusted = MemFlagsData::trusted();
        let tlb = self.b.ins().load(I64, trusted, self.ctx, offset_of!(RunCtx, code_tlb) as i32);
        let e = self.b.ins().iadd(tlb, slot);
        let tag = self.b.ins().load(I64, trusted, e, offset_of!(TlbEntry, code) as i32);
        let page = self.b.ins().band_imm_u(lin, !0xfffu64 as i64);
        let tag_ok = self.b.ins().icmp(ir::condcodes::IntCC::Equal, tag, page);
        let backing = self.b.ins().load(I64, trusted, e, offset_of!(TlbEntry, backing) as i32);
        let want = self.b.ins().load(I64, trusted, next, offset_of!(BlockHead, page) as i32);
        let same = self.b.ins().icmp(ir::condcodes::IntCC::Equal, backing, want);
        let ok = self.b.ins().band(tag_ok, same);
        let go = self.b.create_block();
        let stop = self.b.create_block();
        self.b.ins().brif(ok, go, &[], stop, &[]);
        self.b.seal_block(go);
        self.b.seal_block(stop);
        self.b.switch_to_block(stop);
        self.ret(EXIT_CLEAN);
        self.b.switch_to_block(go);
    }

    /// The budget check, then a direct jump (tail call) to block `next`.
    fn jump_to(&mut self, next: Value) {
        let trusted = MemFlagsData::trusted();
        let ic = self.load_field(offset_of!(CpuState, icount));
        let len = self.b.ins().load(I64, trusted, next, offset_of!(BlockHead, len) as i32);
        let end = self.b.ins().load(I64, trusted, self.ctx, offset_of!(RunCtx, end) as i32);
        let after = self.b.ins().iadd(ic, len);
        let fits = self.b.ins().icmp(ir::condcodes::IntCC::UnsignedLessThanOrEqual, after, end);
        let go = self.b.create_block();
        let stop = self.b.create_block();
        self.b.ins().brif(fits, go, &[], stop, &[]);
        self.b.seal_block(go);
        self.b.seal_block(stop);
        self.b.switch_to_block(stop);
        self.ret(EXIT_CLEAN);
        self.b.switch_to_block(go);
        self.b.ins().store(trusted, next, self.ctx, offset_of!(RunCtx, cur) as i32);
        let jumps = self.b.ins().load(I64, trusted, self.ctx, offset_of!(RunCtx, link_jumps) as i32);
        let jumps = self.b.ins().iadd_imm_u(jumps, 1);
        self.b.ins().store(trusted, jumps, self.ctx, offset_of!(RunCtx, link_jumps) as i32);
        let code = self.b.ins().load(I64, trusted, next, offset_of!(BlockHead, code) as i32);
        self.b.ins().return_call_indirect(self.block_sig, code, &[self.ctx]);
    }

    /// Store the pending `icount`.
    fn sync_icount(&mut self) {
        if self.pending_icount == 0 {
            return;
        }
        let off = offset_of!(CpuState, icount);
        let c = match &self.lp {
            Some(l) => self.b.use_var(l.ic),
            None => self.load_field(off),
        };
        let c = self.b.ins().iadd_imm_u(c, self.pending_icount as i64);
        self.store_field(off, c);
        if let Some(l) = &self.lp {
            self.b.def_var(l.ic, c);
        }
        self.pending_icount = 0;
    }

    /// A helper changed `icount` in `CpuState`: reload the loop's copy.
    fn reload_icount(&mut self) {
        if let Some(ic) = self.lp.as_ref().map(|l| l.ic) {
            let v = self.load_field(offset_of!(CpuState, icount));
            self.b.def_var(ic, v);
        }
    }

    pub fn iconst(&mut self, v: u64) -> Value {
        self.b.ins().iconst(I64, v as i64)
    }

    /// Load a 64-bit field of `CpuState`.
    pub fn load_field(&mut self, off: usize) -> Value {
        self.b.ins().load(I64, MemFlagsData::trusted(), self.st, off as i32)
    }

    pub fn store_field(&mut self, off: usize, v: Value) {
        self.b.ins().store(MemFlagsData::trusted(), v, self.st, off as i32);
    }

    /// The full 64-bit value of GPR `r`.
    pub fn gpr(&mut self, r: usize) -> Value {
        if self.valid[r] {
            return self.b.use_var(self.vars[r]);
        }
        let v = self.b.ins().load(I64, MemFlagsData::trusted(), self.st, gpr_offset(r));
        self.b.def_var(self.vars[r], v);
        self.valid[r] = true;
        v
    }

    pub fn set_gpr(&mut self, r: usize, v: Value) {
        self.b.def_var(self.vars[r], v);
        self.valid[r] = true;
        self.dirty[r] = true;
    }

    /// Record the lazy flags of an inline flag-setting instruction (stored
    /// into `CpuState` at the next sync point).
    pub fn set_cc(&mut self, k: KnownCc) {
        self.known_cc = Some(k);
        self.cc_dirty = true;
    }

    /// Store the lazy-flag fields if `CpuState` is behind.
    pub fn sync_cc(&mut self) {
        if !self.cc_dirty {
            return;
        }
        let k = self.known_cc.expect("dirty flags are known");
        let opv = self.b.ins().iconst(types::I32, (k.op | k.size.trailing_zeros()) as i64);
        self.b
            .ins()
            .store(MemFlagsData::trusted(), opv, self.st, offset_of!(CpuState, cc_op) as i32);
        self.store_field(offset_of!(CpuState, cc_dst), k.dst);
        self.store_field(offset_of!(CpuState, cc_src1), k.src1);
        self.store_field(offset_of!(CpuState, cc_src2), k.src2);
        self.cc_dirty = false;
    }

    /// One inline instruction retired; its successor is at a known address.
    pub fn retire_inline(&mut self) {
        self.pending_icount += 1;
        self.rip_stale = true;
        self.inlined += 1;
    }

    /// Store everything the cache holds back into `CpuState`.
    pub fn sync(&mut self, rip: Option<u64>) {
        for r in 0..16 {
            if self.dirty[r] {
                let v = self.b.use_var(self.vars[r]);
                self.b.ins().store(MemFlagsData::trusted(), v, self.st, gpr_offset(r));
                self.dirty[r] = false;
            }
        }
        self.sync_cc();
        self.sync_icount();
        if self.rip_stale {
            if let Some(rip) = rip {
                let v = self.iconst(rip);
                self.store_field(offset_of!(CpuState, rip), v);
                self.rip_stale = false;
            }
        }
    }

    /// Forget cached registers (a helper may have changed any of them).
    pub fn forget(&mut self) {
        debug_assert!(!self.dirty.iter().any(|d| *d));
        debug_assert!(!self.cc_dirty);
        self.valid = [false; 16];
        self.known_cc = None;
    }

    pub fn save(&self) -> CacheState {
        CacheState {
            valid: self.valid,
            dirty: self.dirty,
            pending_icount: self.pending_icount,
            rip_stale: self.rip_stale,
            known_cc: self.known_cc,
            cc_dirty: self.cc_dirty,
        }
    }

    /// Back to a saved state (at the start of another arm of a branch).
    pub fn restore(&mut self, c: &CacheState) {
        self.valid = c.valid;
        self.dirty = c.dirty;
        self.pending_icount = c.pending_icount;
        self.rip_stale = c.rip_stale;
        self.known_cc = c.known_cc;
        self.cc_dirty = c.cc_dirty;
    }

    /// After a helper ran one instruction on the slow arm of an inline
    /// memory access (everything synced before it): give the registers
    /// valid on the fast arm (`fast`) their values from `CpuState` and take
    /// back the instruction's `icount` so that the pending count matches
    /// the fast arm's. The caller then joins the arms; the merged state is
    /// `fast` with the known flags dropped if the fast arm set them.
    ///
    /// Only `written` (the GPRs the instruction writes) and registers that
    /// were not yet in variables at the branch (`at_branch`) are loaded: the
    /// helper changed no other register, so the values the variables had
    /// at the branch are still right.
    pub fn reload_to_match(&mut self, fast: &CacheState, at_branch: &CacheState, written: &[usize]) {
        debug_assert!(!self.dirty.iter().any(|d| *d));
        for r in 0..16 {
            if fast.valid[r] && (written.contains(&r) || !at_branch.valid[r]) {
                let v = self.b.ins().load(I64, MemFlagsData::trusted(), self.st, gpr_offset(r));
                self.b.def_var(self.vars[r], v);
            }
        }
        if fast.pending_icount != 0 {
            let off = offset_of!(CpuState, icount);
            let c = self.load_field(off);
            let c = self.b.ins().iadd_imm_s(c, -(fast.pending_icount as i64));
            self.store_field(off, c);
            if let Some(ic) = self.lp.as_ref().map(|l| l.ic) {
                self.b.def_var(ic, c);
            }
        }
        self.restore(fast);
    }

    /// Run entry `n` of the block's fallback table through the interpreter,
    /// leaving the block if it says so.
    pub fn fallback(&mut self, n: usize, ip: u64) {
        self.sync(Some(ip));
        self.rip_stale = false;
        self.forget();
        let func = self.iconst(helpers::exec_fallback as *const () as u64);
        let fp = self
            .b
            .ins()
            .iadd_imm_u(self.fallback_base, (n * std::mem::size_of::<Fallback>()) as i64);
        let call = self.b.ins().call_indirect(self.fallback_sig, func, &[self.ctx, fp]);
        let r = self.b.inst_results(call)[0];
        let exit = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(r, exit, &[], cont, &[]);
        // (Blocks are sealed as soon as all their predecessors exist, which
        // keeps Cranelift's SSA construction from guessing block params.)
        self.b.seal_block(exit);
        self.b.seal_block(cont);
        self.b.switch_to_block(exit);
        self.ret(EXIT_BREAK);
        self.b.switch_to_block(cont);
        self.reload_icount();
        self.fallbacks += 1;
    }

    /// Condition code `cc` of the lazy flags in `CpuState` (flags must be
    /// synced: inline flag setters store the lazy fields as they go).
    pub fn cond_via_helper(&mut self, cc: u8) -> Value {
        self.sync_cc();
        let func = self.iconst(helpers::eval_cond as *const () as u64);
        let c = self.b.ins().iconst(types::I32, cc as i64);
        let call = self.b.ins().call_indirect(self.cond_sig, func, &[self.st, c]);
        self.b.inst_results(call)[0]
    }

    /// End the block: everything stored, RIP = `rip` (a value) when given.
    pub fn finish_with_rip(&mut self, rip: Value) {
        self.sync(None);
        self.store_field(offset_of!(CpuState, rip), rip);
        self.rip_stale = false;
        self.leave_dynamic(rip);
    }

    /// End the block after straight-line code that continues at `next`.
    /// (After an instruction run through the helper, RIP is whatever its
    /// handler set, so only an inline last instruction can jump directly.)
    pub fn finish(&mut self, next: u64) {
        if self.rip_stale {
            self.leave_to(next);
        } else {
            self.sync(Some(next));
            let rip = self.load_field(offset_of!(CpuState, rip));
            self.leave_dynamic(rip);
        }
    }

    /// Return `status` (`EXIT_CLEAN` or `EXIT_BREAK`) from the block.
    pub fn ret(&mut self, status: u32) {
        let v = self.b.ins().iconst(types::I32, status as i64);
        self.b.ins().return_(&[v]);
    }
}
