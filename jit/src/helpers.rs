//! What translated code calls back into: the run context it receives and the
//! `extern "C"` helpers (the interpreter's per-instruction step for anything
//! not translated inline, lazy-flag evaluation).
//!
//! A helper must never unwind into translated code (Cranelift frames are not
//! unwound through): each catches a panic, records it in the context and
//! asks the block to exit; `Jit::run_block` resumes the panic afterwards.

use iced_x86::Instruction;
use kagami_cpu::block::Handler;
use kagami_cpu::{Bus, Cpu, CpuState};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicPtr;

/// What generated code reads of a translated block (the first field of
/// `Compiled`, `#[repr(C)]`): its entry, its fallback table, its link
/// cells and its length. A link cell is the block a direct exit jumps to
/// (null until `Jit::run_block` fills it, see `Emitter::leave_to`).
#[repr(C)]
pub struct BlockHead {
    /// The generated function (`tail` calling convention, one argument:
    /// `*mut RunCtx`).
    pub code: *const u8,
    pub fallbacks: *const Fallback,
    pub links: *const AtomicPtr<BlockHead>,
    /// Guest instructions in the block (the budget check before a jump).
    pub len: u64,
    /// Backing page number of the block (checked against the code TLB
    /// before a jump to it from another page).
    pub page: u64,
}

/// An entry of the jump cache for computed targets (`Emitter::leave_dynamic`):
/// the block last dispatched at a 64-bit RIP. Cleared whenever any block
/// is dropped; checked against the code TLB before each use.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct JcEntry {
    pub rip: u64,
    pub head: *const BlockHead,
}

// SAFETY: the head pointer is only dereferenced by translated code and the
// JIT, on the thread running the CPU.
unsafe impl Send for JcEntry {}

/// Entries of the jump cache (a power of two).
pub const JC_ENTRIES: usize = 4096;

/// The jump-cache slot of `rip`.
pub fn jc_index(rip: u64) -> usize {
    ((rip ^ (rip >> 12)) as usize) & (JC_ENTRIES - 1)
}

/// Passed to every translated block in its only argument.
#[repr(C)]
pub struct RunCtx<'a> {
    /// `&mut cpu.s`, for direct loads and stores (offset 0: read by the code).
    pub state: *mut CpuState,
    /// The running block: its fallback table (code is shared between
    /// blocks that differ only in the instructions they run through the
    /// helper) and link cells. A direct jump to another block stores it
    /// here; the dispatch loop reads it to know which block returned.
    pub cur: *const BlockHead,
    /// The soft-TLB table of the current MMU mode (refreshed after every
    /// helper call: CPL, EFLAGS.AC or CR4.SMAP may have changed).
    pub tlb: *const kagami_cpu::mmu::TlbEntry,
    /// The code-fetch soft-TLB table of the current privilege (what
    /// `Cpu::jit_key_fast` looks in), for jumps to other pages.
    pub code_tlb: *const kagami_cpu::mmu::TlbEntry,
    /// The jump cache (`JC_ENTRIES` entries).
    pub jc: *const JcEntry,
    pub cpu: *mut Cpu,
    pub bus: *mut (dyn Bus + 'a),
    /// The run loop's budget: a looping block starts another iteration only
    /// if all of it fits (`icount + len <= end`).
    pub end: u64,
    /// Inline memory accesses that took the helper arm (soft-TLB miss,
    /// page crossing, MMIO, code page, fault).
    pub tlb_misses: u64,
    /// Direct jumps taken from one block to the next (`Emitter::leave_to`).
    pub link_jumps: u64,
    /// A helper panicked: the payload, resumed when the block returns.
    pub panic: Option<Box<dyn Any + Send>>,
}

/// One instruction the translated code runs through the interpreter.
pub struct Fallback {
    pub insn: Instruction,
    pub handler: Handler,
}

/// Run one instruction with the interpreter's handler. Returns 1 when the
/// block must end after it (fault delivered, or a block-breaking change).
///
/// # Safety
/// `ctx` is the live context of the running block and `f` points into the
/// block's own fallback table.
pub unsafe extern "C" fn exec_fallback(ctx: *mut RunCtx<'_>, f: *const Fallback) -> u32 {
    // SAFETY: see the function's contract; no other reference to the CPU or
    // the bus is used while the helper runs.
    let ctx = unsafe { &mut *ctx };
    let (cpu, bus, f) = unsafe { (&mut *ctx.cpu, &mut *ctx.bus, &*f) };
    match catch_unwind(AssertUnwindSafe(|| {
        let ok = cpu.jit_exec_insn(bus, &f.insn, f.handler);
        ctx.tlb = cpu.tlb.e[cpu.mmu_mode()].as_ptr();
        ctx.code_tlb = cpu.jit_code_tlb();
        !ok || cpu.jit_break_block()
    })) {
        Ok(exit) => exit as u32,
        Err(p) => {
            ctx.panic = Some(p);
            1
        }
    }
}

/// Evaluate condition code `cc` (0..15) from the lazy flags.
///
/// # Safety
/// `s` is the running CPU's state.
pub unsafe extern "C" fn eval_cond(s: *const CpuState, cc: u32) -> u32 {
    // SAFETY: the caller passes the running CPU's state; evaluation only reads.
    let s = unsafe { &*s };
    s.cond(cc as u8) as u32
}

/// The full RFLAGS value from the lazy flags (for PUSHF-like inline code).
///
/// # Safety
/// `s` is the running CPU's state.
pub unsafe extern "C" fn eval_flags(s: *const CpuState) -> u64 {
    // SAFETY: as in `eval_cond`.
    let s = unsafe { &*s };
    s.flags()
}
