//! The decoded-block cache. Decoding with iced-x86 costs about as much as
//! executing, so each straight-line run of guest code is decoded once and
//! kept, keyed by where it is (linear RIP, CS base, backing address of the
//! first byte) and how it was decoded (mode). A block never crosses a page;
//! its backing page is marked as code in guest memory so that any write to
//! it, by the CPU or by DMA, drops the page's blocks.

use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::Instruction;
use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::rc::Rc;

/// An instruction implementation. `cpu.s.rip` already points past the
/// instruction when it runs; on `Err` the executor rewinds it.
pub type Handler = fn(&mut Cpu, &mut dyn Bus, &Instruction) -> Result<()>;

/// How a pre-decoded instruction runs: a handler specialised for its form
/// (`insn/fast.rs`), or [`run_generic`], which calls the family handler.
pub type OpFn = fn(&mut Cpu, &mut dyn Bus, &Op) -> OpResult;

/// What an [`OpFn`] returns: the exception is boxed so that the result
/// fits in a register (faults are rare; this is the per-instruction path).
pub type OpResult = core::result::Result<(), Box<crate::exception::Exception>>;

/// "No register" in an [`Op`] register field.
pub const NO_REG: u8 = 0xff;

/// One pre-decoded instruction of a block. Specialised handlers read the
/// operand fields below instead of asking iced's `Instruction` on every
/// execution; the generic path uses `insn` and `handler`.
pub struct Op {
    pub exec: OpFn,
    /// The family handler (`dispatch::handler_for`); always valid.
    pub handler: Handler,
    pub next_ip: u64,
    /// Immediate (already masked to the operand size), or a branch target.
    pub imm: u64,
    /// Memory operand: displacement (RIP-relative already folded in),
    /// base and index GPR numbers (or `NO_REG`), scale as a shift count,
    /// segment index, and the address-size mask applied to the sum.
    pub disp: u64,
    pub amask: u64,
    pub base: u8,
    pub index: u8,
    pub scale: u8,
    pub seg: u8,
    /// GPR numbers of the register operands (`NO_REG` if none).
    pub r0: u8,
    pub r1: u8,
    /// Condition code (Jcc/SETcc/CMOVcc) or shift count.
    pub cc: u8,
    /// For a conditional branch with a specialised handler: the handler
    /// to use when the branch is not the last instruction of its block
    /// (it leaves the block when taken), so blocks run on past branches
    /// that fall through.
    pub cont: Option<OpFn>,
    /// Set when `exec` is `cont`: if this instruction sets `break_block`,
    /// it is a taken branch leaving the block, not a change of state.
    pub branch_exit: bool,
    pub insn: Instruction,
}

/// The executor of every instruction without a specialised form.
pub fn run_generic(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> OpResult {
    (op.handler)(cpu, bus, &op.insn).map_err(Box::new)
}

impl Op {
    /// Pre-decode `insn` for a block decoded in `mode`.
    pub fn new(insn: Instruction, handler: Handler, model: crate::cpu::CpuModel, mode: crate::state::Mode) -> Op {
        let mut op = Op {
            exec: run_generic,
            handler,
            next_ip: insn.next_ip(),
            imm: 0,
            disp: 0,
            amask: u64::MAX,
            base: NO_REG,
            index: NO_REG,
            scale: 0,
            seg: 0,
            r0: NO_REG,
            r1: NO_REG,
            cc: 0,
            cont: None,
            branch_exit: false,
            insn,
        };
        // Only what the dispatch table implements is specialised, so an
        // unimplemented code keeps raising #UD.
        if model == crate::cpu::CpuModel::X86_64 && !insn.is_invalid() && crate::dispatch::implemented(insn.code()) {
            crate::insn::fast::specialise(&mut op, mode);
        }
        op
    }
}

pub struct Block {
    pub ops: Box<[Op]>,
    /// Cleared when the block's page is written.
    pub valid: Cell<bool>,
    /// Backing page number of its code.
    pub page: u64,
    /// Linear page number it was decoded at.
    pub lin_page: u64,
    /// RIP of its first instruction.
    pub rip: u64,
    /// The largest `next_ip - 1` of its instructions: if the CS limit is at
    /// least this, no instruction of the block can fail the limit check.
    pub last_byte: u64,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct BlockKey {
    pub rip: u64,
    pub cs_base: u64,
    /// Backing-memory address of the first byte.
    pub backing: u64,
    pub mode: u8,
}

const FAST_ENTRIES: usize = 4096;

#[derive(Default, Clone, Copy, Debug)]
pub struct BlockStats {
    pub decoded_blocks: u64,
    pub decoded_insns: u64,
    pub invalidated_pages: u64,
}

pub struct BlockCache {
    map: FxHashMap<BlockKey, Rc<Block>>,
    by_page: FxHashMap<u64, Vec<BlockKey>>,
    fast: Vec<Option<(BlockKey, Rc<Block>)>>,
    pub stats: BlockStats,
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockCache {
    pub fn new() -> BlockCache {
        BlockCache {
            map: FxHashMap::default(),
            by_page: FxHashMap::default(),
            fast: vec![None; FAST_ENTRIES],
            stats: BlockStats::default(),
        }
    }

    pub fn clear(&mut self) {
        for b in self.map.values() {
            b.valid.set(false);
        }
        self.map.clear();
        self.by_page.clear();
        self.fast.fill(None);
    }

    #[inline]
    fn slot(key: &BlockKey) -> usize {
        ((key.rip ^ (key.backing >> 5) ^ key.mode as u64) as usize) & (FAST_ENTRIES - 1)
    }

    /// Look in the direct-mapped part only.
    #[inline(always)]
    pub fn get_fast(&self, key: &BlockKey) -> Option<Rc<Block>> {
        match &self.fast[Self::slot(key)] {
            Some((k, b)) if k == key && b.valid.get() => Some(b.clone()),
            _ => None,
        }
    }

    #[inline]
    pub fn get(&mut self, key: &BlockKey) -> Option<Rc<Block>> {
        let slot = Self::slot(key);
        if let Some((k, b)) = &self.fast[slot] {
            if k == key && b.valid.get() {
                return Some(b.clone());
            }
        }
        let b = self.map.get(key)?.clone();
        self.fast[slot] = Some((*key, b.clone()));
        Some(b)
    }

    pub fn insert(&mut self, key: BlockKey, block: Block) -> Rc<Block> {
        self.stats.decoded_blocks += 1;
        self.stats.decoded_insns += block.ops.len() as u64;
        let page = block.page;
        let b = Rc::new(block);
        if let Some(old) = self.map.insert(key, b.clone()) {
            old.valid.set(false);
        }
        self.by_page.entry(page).or_default().push(key);
        self.fast[Self::slot(&key)] = Some((key, b.clone()));
        b
    }

    /// Drop every block decoded from a backing page.
    pub fn invalidate_page(&mut self, page: u64) {
        if let Some(keys) = self.by_page.remove(&page) {
            self.stats.invalidated_pages += 1;
            for k in keys {
                if let Some(b) = self.map.remove(&k) {
                    b.valid.set(false);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Cpu {
    /// Statistics of the decoded-block cache.
    pub fn block_stats(&self) -> BlockStats {
        self.blocks.stats
    }
}
