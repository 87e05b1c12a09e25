//! kagami-jit: translation of hot guest blocks to host code with Cranelift.
//!
//! The CPU offers every block to the [`Jit`] (see `kagami_cpu::jit_iface`).
//! The JIT counts executions per block key; at the threshold it decodes the
//! block itself from guest memory with iced-x86 (with the interpreter's
//! block-ending rules, so block boundaries, and thus interrupt points, are
//! the same), translates it and runs the host code from then on. Instructions
//! without an inline translation call the interpreter's handler through a
//! helper, so every instruction kagami implements works translated.
//! See ARCHITECTURE.md, "JIT".

mod codegen;
mod compile;
pub mod helpers;
mod inline;
mod memory;

use compile::{CodeKey, Compiler, Job, Output, Worker};
use cranelift_codegen::ir::{AbiParam, InstBuilder, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use helpers::{jc_index, BlockHead, Fallback, JcEntry, RunCtx, JC_ENTRIES};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};
use kagami_cpu::dispatch::handler_for;
use kagami_cpu::jit_iface::{JitKey, Translator};
use kagami_cpu::state::{Mode, CS};
use kagami_cpu::{Bus, Cpu, CpuModel};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc as Rc;
use std::time::{Duration, Instant};

/// Longest block, in instructions (the interpreter's `MAX_BLOCK`).
const MAX_BLOCK: usize = 48;

/// Tuning knobs.
#[derive(Clone, Debug)]
pub struct JitConfig {
    /// Executions of a block before it is translated (0: at first sight).
    pub threshold: u32,
    /// Compile on a worker thread while the interpreter runs the block
    /// (not with threshold 0). Off by default: tests expect a block to be
    /// translated exactly at its threshold.
    pub background: bool,
    /// Generated code beyond this many bytes flushes the whole cache.
    pub code_limit: usize,
    /// Translate instructions inline (off: every instruction through the
    /// interpreter helper; for tests that isolate the inline translators).
    pub inline: bool,
    /// Direct jumps between blocks of one page (`Emitter::leave_to`).
    pub link: bool,
}

impl Default for JitConfig {
    fn default() -> Self {
        JitConfig {
            // Compile time dominates below this: the deterministic vmlinux
            // boot (dev build, loaded machine) took 187 s at 50 (110 s
            // compiling), 145 s at 1000, 137 s at 4000 (21 s compiling,
            // 94.8% of instructions translated).
            threshold: 2000,
            code_limit: 64 << 20,
            inline: true,
            link: true,
            background: false,
        }
    }
}

/// Counters for `--jit-stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JitStats {
    pub blocks_translated: u64,
    /// Translations reused from the code-bytes cache instead of compiled.
    pub blocks_reused: u64,
    pub insns_translated: u64,
    pub insns_inline: u64,
    /// Cranelift's time (on the worker thread when compiling there).
    pub compile_time: Duration,
    /// Copying code into the module on the CPU thread.
    pub install_time: Duration,
    /// Blocks sent to the worker, and results dropped (page written or
    /// cache flushed while compiling).
    pub sent: u64,
    pub dropped: u64,
    pub code_bytes: u64,
    pub block_runs: u64,
    /// Blocks entered from the JIT's own dispatch loop (after a clean exit
    /// of the previous translated block) instead of the interpreter's loop.
    pub chained: u64,
    /// Inline memory accesses that missed the soft TLB (or could not use
    /// it) and ran their instruction through the interpreter.
    pub tlb_misses: u64,
    /// Link cells filled, and direct jumps taken through them.
    pub links_made: u64,
    pub link_jumps: u64,
    /// Guest instructions retired inside translated code.
    pub jit_insns: u64,
    pub invalidated_pages: u64,
    pub flushes: u64,
    /// Blocks the JIT declined at their threshold (budget or CS limit).
    pub declined: u64,
}

/// The trampoline from Rust into generated code (`Jit::enter`): calls the
/// block function at the second argument (`tail` convention) with the
/// context and returns its status.
type EnterFn = unsafe extern "C" fn(*mut RunCtx<'_>, *const u8) -> u32;

const EMPTY_JC: JcEntry = JcEntry {
    rip: u64::MAX,
    head: std::ptr::null(),
};

/// The count of a block the worker is compiling (`Slot::Count`).
const PENDING: u32 = u32::MAX;

/// An entry of the direct-mapped cache in front of `Jit::blocks`: a
/// translated block, or the execution count of one not translated yet.
#[derive(Clone, Default)]
enum Slot {
    #[default]
    Empty,
    Block(JitKey, Rc<Compiled>),
    Count(JitKey, u32),
}

/// Entries of the direct-mapped block cache.
const FAST_ENTRIES: usize = 8192;

#[inline(always)]
fn fast_index(k: &JitKey) -> usize {
    ((k.backing ^ (k.backing >> 11) ^ k.cs_base) as usize) & (FAST_ENTRIES - 1)
}

/// One translated block.
#[repr(C)]
struct Compiled {
    /// What generated code reads (first, so a `*const BlockHead` from a
    /// link cell or `RunCtx::cur` is also a `*const Compiled`).
    head: BlockHead,
    /// Instructions run through the interpreter (entry n for instruction n).
    fallbacks: Box<[Fallback]>,
    /// Link cells: the blocks this one's direct exits jump to (filled by
    /// `run_block`; a link to another page is noted in `Jit::links_into`
    /// so that dropping its target empties the cell).
    links: Box<[AtomicPtr<BlockHead>]>,
    key: JitKey,
    /// Highest `next_ip` of the block, for the CS limit check at entry.
    max_next_ip: u64,
    page: u64,
}

// SAFETY: the raw pointers in `head` point into the `Compiled`'s own boxes
// and into the code module, which outlives every `Compiled` (`flush_all`);
// they and the link cells are only used on the thread running the CPU.
unsafe impl Send for Compiled {}
// SAFETY: as above; the link cells are atomics.
unsafe impl Sync for Compiled {}

pub struct Jit {
    cfg: JitConfig,
    module: Option<JITModule>,
    isa: OwnedTargetIsa,
    /// Compiles on this thread (threshold 0, or no worker).
    compiler: Compiler,
    /// Compiles in the background (`JitConfig::background`).
    worker: Option<Worker>,
    /// Blocks sent to the worker, by ticket.
    pending: FxHashMap<u64, Pending>,
    next_ticket: u64,
    /// Bumped by every flush: results of jobs sent before are dropped.
    epoch: u64,
    /// Bumped per page by its invalidation (same purpose, one page).
    page_gen: FxHashMap<u64, u64>,
    blocks: FxHashMap<JitKey, Rc<Compiled>>,
    /// Direct-mapped lookup cache in front of `blocks` (`fast_index`).
    fast: Box<[Slot]>,
    by_page: FxHashMap<u64, Vec<JitKey>>,
    /// Generated code by what decides it: entry and link-cell count.
    by_code: FxHashMap<CodeKey, (usize, u32)>,
    /// The module's trampoline into generated code.
    enter: EnterFn,
    /// Link cells pointing into a backing page: (block, cell) by the
    /// target's page, emptied when that page's blocks are dropped.
    links_into: FxHashMap<u64, Vec<(std::sync::Weak<Compiled>, u32)>>,
    /// The jump cache for computed targets (`RunCtx::jc`).
    jc: Box<[JcEntry]>,
    /// Blocks the worker is compiling.
    pending_keys: FxHashSet<JitKey>,
    code_bytes: usize,
    next_fn: u32,
    pub stats: JitStats,
}

/// A block whose code the worker is compiling: what `Compiled` needs
/// besides the code, and what must still hold when it comes back.
struct Pending {
    key: JitKey,
    fallbacks: Box<[Fallback]>,
    len: u64,
    max_next_ip: u64,
    plan: CodeKey,
    insns: u64,
    epoch: u64,
    page_gen: u64,
}

/// The host ISA with kagami's Cranelift settings.
fn new_isa() -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.set("use_colocated_libcalls", "false").expect("cranelift flag");
    flags.set("is_pic", "false").expect("cranelift flag");
    // Tail calls (direct jumps between blocks) need frame pointers.
    flags.set("preserve_frame_pointers", "true").expect("cranelift flag");
    flags
        .set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })
        .expect("cranelift flag");
    // `KAGAMI_JIT_OPT=none` trades code quality for compile time (for
    // measuring; the default is "speed").
    let opt = match std::env::var("KAGAMI_JIT_OPT") {
        Ok(v) if v == "none" || v == "speed_and_size" => v,
        _ => "speed".to_string(),
    };
    flags.set("opt_level", &opt).expect("cranelift flag");
    cranelift_native::builder()
        .expect("host not supported by Cranelift")
        .finish(settings::Flags::new(flags))
        .expect("cranelift ISA")
}

/// A code module (executable memory for installed blocks) with its
/// trampoline.
fn new_module(isa: &OwnedTargetIsa) -> (JITModule, EnterFn) {
    let mut module = JITModule::new(JITBuilder::with_isa(isa.clone(), default_libcall_names()));
    let enter = build_enter(&mut module);
    (module, enter)
}

/// The trampoline `EnterFn`: the platform's C convention on the outside,
/// a call of a `tail`-convention block function inside.
fn build_enter(module: &mut JITModule) -> EnterFn {
    let mut ctx = module.make_context();
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(codegen::I64));
    sig.params.push(AbiParam::new(codegen::I64));
    sig.returns.push(AbiParam::new(cranelift_codegen::ir::types::I32));
    ctx.func.signature = sig.clone();
    let id = module.declare_function("enter", Linkage::Local, &sig).expect("declare enter");
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let (rctx, code) = (b.block_params(entry)[0], b.block_params(entry)[1]);
        let bsig = b.import_signature(codegen::block_signature());
        let call = b.ins().call_indirect(bsig, code, &[rctx]);
        let r = b.inst_results(call)[0];
        b.ins().return_(&[r]);
        b.finalize(module.target_config());
    }
    module.define_function(id, &mut ctx).expect("define enter");
    module.clear_context(&mut ctx);
    module.finalize_definitions().expect("finalize enter");
    let ptr = module.get_finalized_function(id);
    // SAFETY: built just above with exactly `EnterFn`'s signature in the
    // platform's C convention; it lives as long as the module.
    unsafe { std::mem::transmute::<*const u8, EnterFn>(ptr) }
}

impl Default for Jit {
    fn default() -> Self {
        Self::new(JitConfig::default())
    }
}

impl Jit {
    pub fn new(cfg: JitConfig) -> Jit {
        let isa = new_isa();
        let (module, enter) = new_module(&isa);
        // Threshold 0 means "every block translated at first sight", which
        // only compiling on this thread gives.
        let worker = if cfg.background && cfg.threshold > 0 {
            Worker::start(isa.clone())
        } else {
            None
        };
        Jit {
            cfg,
            module: Some(module),
            compiler: Compiler::new(isa.clone()),
            isa,
            worker,
            pending: FxHashMap::default(),
            next_ticket: 0,
            epoch: 0,
            page_gen: FxHashMap::default(),
            blocks: FxHashMap::default(),
            fast: vec![Slot::Empty; FAST_ENTRIES].into_boxed_slice(),
            by_page: FxHashMap::default(),
            by_code: FxHashMap::default(),
            enter,
            pending_keys: FxHashSet::default(),
            links_into: FxHashMap::default(),
            jc: vec![EMPTY_JC; JC_ENTRIES].into_boxed_slice(),
            code_bytes: 0,
            next_fn: 0,
            stats: JitStats::default(),
        }
    }

    /// Install a JIT with `cfg` into `cpu`.
    pub fn install(cpu: &mut Cpu, cfg: JitConfig) {
        cpu.set_translator(Some(Box::new(Jit::new(cfg))));
    }

    /// Install a JIT when the environment asks for one: `KAGAMI_JIT_THRESHOLD=N`
    /// (tests use it to run every CPU test translated). Returns whether it did.
    pub fn install_from_env(cpu: &mut Cpu) -> bool {
        match std::env::var("KAGAMI_JIT_THRESHOLD") {
            Ok(v) if !v.is_empty() => {
                let threshold = v.parse().unwrap_or_else(|_| panic!("KAGAMI_JIT_THRESHOLD={v:?} is not a number"));
                Jit::install(
                    cpu,
                    JitConfig {
                        threshold,
                        ..JitConfig::default()
                    },
                );
                true
            }
            _ => false,
        }
    }

    /// Drop all generated code and start a new code cache.
    fn flush_all(&mut self) {
        self.jc.fill(EMPTY_JC);
        self.links_into.clear();
        self.fast.fill(Slot::Empty);
        self.blocks.clear();
        self.by_page.clear();
        self.by_code.clear();
        self.pending_keys.clear();
        self.code_bytes = 0;
        self.epoch += 1;
        self.pending.clear();
        self.stats.flushes += 1;
        if let Some(m) = self.module.take() {
            // SAFETY: no translated code is running (flushes happen between
            // blocks) and every `Compiled` pointing into the module was just
            // dropped with the maps above.
            unsafe { m.free_memory() };
        }
        let (module, enter) = new_module(&self.isa);
        self.module = Some(module);
        self.enter = enter;
    }

    /// Decode the block at `key` from guest memory with the interpreter's
    /// rules; `None` if there is nothing to translate.
    /// With `inline`, a conditional branch that has an inline translation
    /// does not end the block: the translation leaves the block when the
    /// branch is taken and runs on when it falls through.
    fn decode(cpu: &Cpu, key: &JitKey, inline: bool) -> Option<(Vec<Instruction>, Vec<u8>)> {
        let off = (key.backing & 0xfff) as usize;
        let avail = 4096 - off;
        let mut bytes = vec![0u8; avail];
        cpu.mem.read(key.backing, &mut bytes);
        let (opts, max_len) = match cpu.model {
            CpuModel::I80286 => (DecoderOptions::NO_INVALID_CHECK, 10),
            CpuModel::X86_64 => (DecoderOptions::NONE, 15),
        };
        let mut dec = Decoder::with_ip(cpu.s.mode.bitness(), &bytes, key.rip, opts);
        let mut insns = Vec::with_capacity(16);
        let mut insn = Instruction::default();
        let mut used = 0;
        while dec.can_decode() && insns.len() < MAX_BLOCK {
            dec.decode_out(&mut insn);
            if dec.last_error() == iced_x86::DecoderError::NoMoreBytes {
                break;
            }
            if cpu.model == CpuModel::I80286 && insn.is_invalid() {
                // The 286's fetch-length rules for undefined encodings live
                // in the interpreter's uncached step: leave them to it.
                break;
            }
            let jcc_runs_on = inline && insn.flow_control() == FlowControl::ConditionalBranch && inline::jcc_runs_on(&insn, cpu.s.mode);
            // (Ending a JIT block earlier than the interpreter would is
            // harmless: see ARCHITECTURE.md "Block shape". Instructions
            // that always or usually leave the block end it, so the bytes
            // after them are not translated for nothing.)
            let ends = (insn.flow_control() != FlowControl::Next && !jcc_runs_on)
                || insn.is_invalid()
                || insn.len() > max_len
                || always_breaks(&insn);
            used += insn.len();
            insns.push(insn);
            if ends {
                break;
            }
        }
        if insns.is_empty() {
            return None;
        }
        bytes.truncate(used);
        Some((insns, bytes))
    }

    fn translate(&mut self, cpu: &mut Cpu, key: &JitKey) -> Option<Rc<Compiled>> {
        let inline = self.cfg.inline && cpu.model == CpuModel::X86_64;
        let (insns, bytes) = Self::decode(cpu, key, inline)?;
        cpu.jit_mark_code_page(key.page());
        let fallbacks: Box<[Fallback]> = insns
            .iter()
            .map(|i| Fallback {
                insn: *i,
                handler: handler_for(i, cpu.model),
            })
            .collect();
        let mode = cpu.s.mode;
        let mut off = 0;
        let plan: Box<[Option<(u64, Box<[u8]>)>]> = insns
            .iter()
            .map(|i| {
                let b = &bytes[off..off + i.len()];
                off += i.len();
                (inline && inline::supported(i, mode)).then(|| (i.ip(), b.into()))
            })
            .collect();
        let start = insns[0].ip();
        let loops = insns.iter().enumerate().any(|(n, i)| {
            plan[n].is_some() && (i.is_jcc_short_or_near() || i.mnemonic() == iced_x86::Mnemonic::Jmp) && i.near_branch_target() == start
        });
        let code_key = CodeKey {
            mode: key.mode,
            model: cpu.model as u8,
            loop_start: loops.then_some(start),
            insns: plan,
        };
        let len = insns.len() as u64;
        let max_next_ip = insns.iter().map(|i| i.next_ip()).max().unwrap_or(0);
        if let Some(&(code, nlinks)) = self.by_code.get(&code_key) {
            self.stats.blocks_reused += 1;
            return Some(Self::make_block(code, nlinks, fallbacks, len, max_next_ip, *key));
        }
        let link_page = (self.cfg.link && mode == Mode::Long64).then_some(start >> 12);
        let job = Job {
            insns,
            plan: code_key,
            mode,
            link_page,
        };
        if let Some(w) = &self.worker {
            // Compiled in the background; the interpreter runs the block
            // until `poll` installs it.
            let ticket = self.next_ticket;
            self.next_ticket += 1;
            self.pending.insert(
                ticket,
                Pending {
                    key: *key,
                    fallbacks,
                    len,
                    max_next_ip,
                    insns: job.insns.len() as u64,
                    plan: job.plan.clone(),
                    epoch: self.epoch,
                    page_gen: self.page_gen.get(&key.page()).copied().unwrap_or(0),
                },
            );
            w.send(ticket, job);
            self.pending_keys.insert(*key);
            self.fast[fast_index(key)] = Slot::Count(*key, PENDING);
            self.stats.sent += 1;
            return None;
        }
        let out = self.compiler.compile(&job);
        let (code, nlinks) = self.install_code(&out, job.insns.len() as u64, job.plan);
        Some(Self::make_block(code, nlinks, fallbacks, len, max_next_ip, *key))
    }

    fn make_block(code: usize, nlinks: u32, fallbacks: Box<[Fallback]>, len: u64, max_next_ip: u64, key: JitKey) -> Rc<Compiled> {
        let page = key.page();
        let links: Box<[AtomicPtr<BlockHead>]> = (0..nlinks).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect();
        Rc::new(Compiled {
            head: BlockHead {
                code: code as *const u8,
                fallbacks: fallbacks.as_ptr(),
                links: links.as_ptr(),
                len,
                page,
            },
            fallbacks,
            links,
            key,
            max_next_ip,
            page,
        })
    }

    /// Copy compiled code into the module; returns its entry and link-cell
    /// count, also remembered under `plan` for blocks with the same code.
    fn install_code(&mut self, out: &Output, insns: u64, plan: CodeKey) -> (usize, u32) {
        if self.code_bytes > self.cfg.code_limit {
            self.flush_all();
        }
        let t0 = Instant::now();
        let module = self.module.as_mut().expect("module");
        let id = module
            .declare_function(&format!("b{}", self.next_fn), Linkage::Local, &codegen::block_signature())
            .expect("declare");
        self.next_fn += 1;
        module.define_function_bytes(id, out.align, &out.bytes, &[]).expect("define block");
        module.finalize_definitions().expect("finalize");
        let ptr = module.get_finalized_function(id) as usize;
        let size = out.bytes.len();
        self.code_bytes += size;
        self.stats.code_bytes += size as u64;
        self.stats.blocks_translated += 1;
        self.stats.insns_translated += insns;
        self.stats.insns_inline += out.inlined as u64;
        self.stats.compile_time += out.time;
        self.stats.install_time += t0.elapsed();
        self.by_code.insert(plan, (ptr, out.links));
        (ptr, out.links)
    }

    /// Install the blocks the worker has finished (dropping those whose
    /// page was written or whose cache was flushed meanwhile).
    fn poll(&mut self) {
        while let Some((ticket, out)) = self.worker.as_ref().and_then(|w| w.try_recv()) {
            let out = match out {
                Ok(o) => o,
                Err(p) => std::panic::resume_unwind(p),
            };
            let Some(p) = self.pending.remove(&ticket) else {
                continue;
            };
            let page = p.key.page();
            if p.epoch != self.epoch || self.page_gen.get(&page).copied().unwrap_or(0) != p.page_gen {
                self.stats.dropped += 1;
                self.pending_keys.remove(&p.key);
                self.unmark(&p.key);
                continue;
            }
            let (code, nlinks) = match self.by_code.get(&p.plan) {
                Some(&c) => c,
                None => self.install_code(&out, p.insns, p.plan),
            };
            self.pending_keys.remove(&p.key);
            self.unmark(&p.key);
            if self.blocks.contains_key(&p.key) {
                // (Never replace a block: links may point to it.)
                continue;
            }
            let c = Self::make_block(code, nlinks, p.fallbacks, p.len, p.max_next_ip, p.key);
            self.blocks.insert(p.key, c);
            self.by_page.entry(page).or_default().push(p.key);
        }
    }

    /// Fill link cell `k` of block `prev` (which returned `EXIT_LINK + k`)
    /// with `next`, the block at the address that exit leaves for.
    fn link(&mut self, prev: *const BlockHead, k: usize, next: *const Compiled) {
        // SAFETY: `prev` is the head of the block that just returned, a
        // live `Compiled` (`#[repr(C)]`, head first); `next` was just looked
        // up in `blocks`.
        let (p, n) = unsafe { (&*(prev as *const Compiled), &*next) };
        if p.page != n.page {
            // Note the link so that dropping `next`'s page empties the cell.
            let Some(rc) = self.blocks.get(&p.key).filter(|rc| std::ptr::eq(Rc::as_ptr(rc), p)) else {
                return;
            };
            let w = Rc::downgrade(rc);
            self.links_into.entry(n.page).or_default().push((w, k as u32));
        }
        p.links[k].store(next as *mut BlockHead, Ordering::Relaxed);
        self.stats.links_made += 1;
    }

    /// Forget the count (or pending mark) of `key` in the fast cache.
    fn unmark(&mut self, key: &JitKey) {
        let e = &mut self.fast[fast_index(key)];
        if matches!(e, Slot::Count(k, _) if k == key) {
            *e = Slot::Empty;
        }
    }

    #[inline(always)]
    fn fast_get(&self, key: &JitKey) -> Option<*const Compiled> {
        match &self.fast[fast_index(key)] {
            Slot::Block(k, c) if k == key => Some(Rc::as_ptr(c)),
            _ => None,
        }
    }

    fn fast_put(&mut self, key: &JitKey, c: Rc<Compiled>) -> *const Compiled {
        let p = Rc::as_ptr(&c);
        self.fast[fast_index(key)] = Slot::Block(*key, c);
        p
    }

    fn lookup_or_translate(&mut self, cpu: &mut Cpu, key: &JitKey) -> Option<Rc<Compiled>> {
        let i = fast_index(key);
        let threshold = self.cfg.threshold;
        match &mut self.fast[i] {
            // A block still being counted: no map lookups on this path.
            Slot::Count(k, n) if k == key => {
                if *n == PENDING {
                    return None;
                }
                if *n < threshold {
                    *n += 1;
                    return None;
                }
            }
            _ => {
                if let Some(c) = self.blocks.get(key) {
                    return Some(c.clone());
                }
                if self.pending_keys.contains(key) {
                    self.fast[i] = Slot::Count(*key, PENDING);
                    return None;
                }
                if threshold > 0 {
                    // (A count pushed out of its slot by another block
                    // starts again: translation only comes later.)
                    self.fast[i] = Slot::Count(*key, 1);
                    return None;
                }
            }
        }
        self.fast[i] = Slot::Empty;
        // (`translate` marks the key pending when the worker compiles it.)
        let c = self.translate(cpu, key)?;
        self.blocks.insert(*key, c.clone());
        self.by_page.entry(c.page).or_default().push(*key);
        Some(c)
    }
}

/// Instructions after which the interpreter leaves the block (they set
/// `break_block`) whatever their operands.
fn always_breaks(i: &Instruction) -> bool {
    use iced_x86::Mnemonic::*;
    matches!(
        i.mnemonic(),
        Hlt | In
            | Out
            | Insb
            | Insw
            | Insd
            | Outsb
            | Outsw
            | Outsd
            | Sti
            | Cli
            | Popf
            | Popfq
            | Popfd
            | Wrmsr
            | Lgdt
            | Lidt
            | Ltr
            | Lldt
            | Invlpg
            | Iret
            | Iretd
            | Iretq
    )
}

impl Translator for Jit {
    fn run_block(&mut self, cpu: &mut Cpu, bus: &mut dyn Bus, key: &JitKey, end: u64) -> bool {
        if !self.pending.is_empty() {
            self.poll();
        }
        let mut c: *const Compiled = match self.fast_get(key) {
            Some(c) => c,
            None => match self.lookup_or_translate(cpu, key) {
                Some(rc) => self.fast_put(key, rc),
                None => return false,
            },
        };
        let start = cpu.s.icount;
        let cpu_ptr: *mut Cpu = cpu;
        let mut ctx = RunCtx {
            // SAFETY: `cpu_ptr` is valid; the state pointer is derived from it.
            state: unsafe { &raw mut (*cpu_ptr).s },
            cur: std::ptr::null(),
            tlb: std::ptr::null(),
            code_tlb: std::ptr::null(),
            jc: self.jc.as_ptr(),
            cpu: cpu_ptr,
            bus: bus as *mut dyn Bus,
            end,
            tlb_misses: 0,
            link_jumps: 0,
            panic: None,
        };
        if key.mode == Mode::Long64 as u8 {
            self.jc[jc_index(key.rip)] = JcEntry {
                rip: key.rip,
                head: c.cast(),
            };
        }
        let mut first = true;
        // The dispatch loop: run translated blocks one after the other while
        // each exits cleanly (see `codegen::EXIT_CLEAN`). After a clean exit
        // the interpreter's run loop checks only the budget (nothing else it
        // looks at can have changed), so staying here takes interrupts at
        // the same instruction boundaries. Anything else (a block not yet
        // translated, a code-TLB miss, a block the budget or the CS limit
        // would cut short) goes back to the run loop.
        loop {
            // SAFETY: `c` points into an `Rc` held by `self.blocks` and the
            // fast cache; nothing drops translations while this loop runs
            // (invalidations and flushes wait until the translator is back
            // in the CPU, and this loop compiles nothing after the first
            // lookup).
            let cb = unsafe { &*c };
            {
                // SAFETY: no translated code is running; plain reads.
                let cpu = unsafe { &*cpu_ptr };
                if end.saturating_sub(cpu.s.icount) < cb.head.len
                    || (cpu.s.mode != Mode::Long64 && cb.max_next_ip.wrapping_sub(1) > cpu.s.segs[CS].limit as u64)
                {
                    // The interpreter would stop inside the block: let it
                    // run the block itself.
                    if first {
                        self.stats.declined += 1;
                        return false;
                    }
                    break;
                }
                ctx.tlb = cpu.tlb.e[cpu.mmu_mode()].as_ptr();
                ctx.code_tlb = cpu.jit_code_tlb();
            }
            ctx.cur = &cb.head;
            // SAFETY: `cb.head.code` was generated for this block with the
            // block signature `enter` calls; it only touches the CPU through
            // `ctx` (see `codegen.rs`), and the blocks it jumps to directly
            // are alive (a dropped block's link cells and jump-cache entries
            // are emptied first); the CPU and bus are not used otherwise
            // until it returns.
            let status = unsafe { (self.enter)(&mut ctx, cb.head.code) };
            if let Some(p) = ctx.panic.take() {
                std::panic::resume_unwind(p);
            }
            self.stats.block_runs += 1;
            // SAFETY: as above, no translated code is running.
            let cpu = unsafe { &*cpu_ptr };
            if status == codegen::EXIT_BREAK || cpu.s.icount >= end {
                break;
            }
            let Some(k) = cpu.jit_key_fast() else {
                break;
            };
            c = match self.fast_get(&k) {
                Some(c) => c,
                None => match self.blocks.get(&k) {
                    Some(rc) => {
                        let rc = rc.clone();
                        self.fast_put(&k, rc)
                    }
                    None => break,
                },
            };
            if k.mode == Mode::Long64 as u8 {
                self.jc[jc_index(k.rip)] = JcEntry {
                    rip: k.rip,
                    head: c.cast(),
                };
                if status >= codegen::EXIT_LINK {
                    self.link(ctx.cur, (status - codegen::EXIT_LINK) as usize, c);
                }
            }
            self.stats.chained += 1;
            first = false;
        }
        self.stats.tlb_misses += ctx.tlb_misses;
        self.stats.link_jumps += ctx.link_jumps;
        // SAFETY: as above.
        self.stats.jit_insns += unsafe { (*cpu_ptr).s.icount } - start;
        true
    }

    fn invalidate_page(&mut self, page: u64) {
        if !self.pending.is_empty() {
            *self.page_gen.entry(page).or_insert(0) += 1;
        }
        if let Some(keys) = self.by_page.remove(&page) {
            self.stats.invalidated_pages += 1;
            // Nothing may jump to the blocks dropped here.
            self.jc.fill(EMPTY_JC);
            for (src, k) in self.links_into.remove(&page).unwrap_or_default() {
                if let Some(src) = src.upgrade() {
                    src.links[k as usize].store(std::ptr::null_mut(), Ordering::Relaxed);
                }
            }
            for k in keys {
                self.blocks.remove(&k);
                let e = &mut self.fast[fast_index(&k)];
                if matches!(e, Slot::Block(fk, _) if *fk == k) {
                    *e = Slot::Empty;
                }
            }
        }
    }

    fn flush(&mut self) {
        self.jc.fill(EMPTY_JC);
        self.links_into.clear();
        self.epoch += 1;
        self.pending.clear();
        self.fast.fill(Slot::Empty);
        self.blocks.clear();
        self.by_page.clear();
        self.pending_keys.clear();
    }

    fn stats_report(&self) -> String {
        let s = &self.stats;
        format!(
            "jit: {} blocks translated ({} reused by code bytes), {} guest instructions ({} inline), compile time {:.6} s ({} blocks on the worker thread, {} results dropped; {:.6} s installing), \
             code {} KiB, {} block runs ({} chained), {} direct jumps ({} links), {} instructions retired in translated code, {} inline memory accesses through the helper, {} pages invalidated, {} cache flushes, {} declined",
            s.blocks_translated,
            s.blocks_reused,
            s.insns_translated,
            s.insns_inline,
            s.compile_time.as_secs_f64(),
            s.sent,
            s.dropped,
            s.install_time.as_secs_f64(),
            s.code_bytes / 1024,
            s.block_runs,
            s.chained,
            s.link_jumps,
            s.links_made,
            s.jit_insns,
            s.tlb_misses,
            s.invalidated_pages,
            s.flushes,
            s.declined
        )
    }
}
