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
pub mod helpers;
mod inline;
mod memory;

use codegen::Emitter;
use cranelift_codegen::ir::{AbiParam, InstBuilder, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use helpers::{BlockHead, Fallback, RunCtx};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};
use kagami_cpu::dispatch::handler_for;
use kagami_cpu::jit_iface::{JitKey, Translator};
use kagami_cpu::state::{Mode, CS};
use kagami_cpu::{Bus, Cpu, CpuModel};
use rustc_hash::FxHashMap;
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
    pub compile_time: Duration,
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

/// Entries of the direct-mapped block cache.
const FAST_ENTRIES: usize = 4096;

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
    /// `run_block`). A cell only ever names a block on the same backing
    /// page, so invalidating a page drops both ends of every link into it.
    links: Box<[AtomicPtr<BlockHead>]>,
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

/// What decides a translation's code: the mode and, per instruction, either
/// its address and bytes (translated inline) or nothing (run through the
/// helper from the block's own fallback table). Blocks with the same key
/// share code: the SST suite's thousands of one-instruction blocks compile
/// once per length.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CodeKey {
    mode: u8,
    model: u8,
    /// The block's start when an inline branch goes back to it (the code
    /// then loops inside its function, see `Emitter::start_loop`).
    loop_start: Option<u64>,
    insns: Box<[Option<(u64, Box<[u8]>)>]>,
}

pub struct Jit {
    cfg: JitConfig,
    module: Option<JITModule>,
    fctx: FunctionBuilderContext,
    cl_ctx: Context,
    blocks: FxHashMap<JitKey, Rc<Compiled>>,
    /// Direct-mapped lookup cache in front of `blocks` (`fast_index`).
    fast: Box<[Option<(JitKey, Rc<Compiled>)>]>,
    by_page: FxHashMap<u64, Vec<JitKey>>,
    /// Generated code by what decides it: entry and link-cell count.
    by_code: FxHashMap<CodeKey, (usize, u32)>,
    /// The module's trampoline into generated code.
    enter: EnterFn,
    counts: FxHashMap<JitKey, u32>,
    code_bytes: usize,
    next_fn: u32,
    pub stats: JitStats,
}

fn new_module() -> (JITModule, EnterFn) {
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
    let isa = cranelift_native::builder()
        .expect("host not supported by Cranelift")
        .finish(settings::Flags::new(flags))
        .expect("cranelift ISA");
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
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
        let (module, enter) = new_module();
        let cl_ctx = module.make_context();
        Jit {
            cfg,
            module: Some(module),
            fctx: FunctionBuilderContext::new(),
            cl_ctx,
            blocks: FxHashMap::default(),
            fast: vec![None; FAST_ENTRIES].into_boxed_slice(),
            by_page: FxHashMap::default(),
            by_code: FxHashMap::default(),
            enter,
            counts: FxHashMap::default(),
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
        self.fast.fill(None);
        self.blocks.clear();
        self.by_page.clear();
        self.by_code.clear();
        self.counts.clear();
        self.code_bytes = 0;
        self.stats.flushes += 1;
        if let Some(m) = self.module.take() {
            // SAFETY: no translated code is running (flushes happen between
            // blocks) and every `Compiled` pointing into the module was just
            // dropped with the maps above.
            unsafe { m.free_memory() };
        }
        let (module, enter) = new_module();
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
        let (code, nlinks) = match self.by_code.get(&code_key) {
            Some(c) => {
                self.stats.blocks_reused += 1;
                *c
            }
            None => {
                let link_page = (self.cfg.link && mode == Mode::Long64).then_some(start >> 12);
                let c = self.compile(&insns, &code_key, mode, link_page);
                self.by_code.insert(code_key, c);
                c
            }
        };
        let links: Box<[AtomicPtr<BlockHead>]> = (0..nlinks).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect();
        Some(Rc::new(Compiled {
            head: BlockHead {
                code: code as *const u8,
                fallbacks: fallbacks.as_ptr(),
                links: links.as_ptr(),
                len: insns.len() as u64,
            },
            fallbacks,
            links,
            max_next_ip: insns.iter().map(|i| i.next_ip()).max().unwrap_or(0),
            page: key.page(),
        }))
    }

    fn compile(&mut self, insns: &[Instruction], plan: &CodeKey, mode: Mode, link_page: Option<u64>) -> (usize, u32) {
        if self.code_bytes > self.cfg.code_limit {
            self.flush_all();
        }
        let t0 = Instant::now();
        let module = self.module.as_mut().expect("module");
        self.cl_ctx.func.clear();
        let helper_conv = module.isa().default_call_conv();
        let sig = codegen::block_signature();
        self.cl_ctx.func.signature = sig.clone();
        let id = module
            .declare_function(&format!("b{}", self.next_fn), Linkage::Local, &sig)
            .expect("declare");
        self.next_fn += 1;
        self.cl_ctx.func.name = UserFuncName::user(0, id.as_u32());
        let inlined;
        let nlinks;
        {
            let mut b = FunctionBuilder::new(&mut self.cl_ctx.func, &mut self.fctx);
            let mut em = Emitter::new(&mut b, helper_conv, link_page);
            let last = insns.len() - 1;
            if let Some(start) = plan.loop_start {
                em.start_loop(start, insns.len() as u64, &used_gprs(insns));
            }
            for (n, i) in insns.iter().enumerate() {
                if plan.insns[n].is_some() {
                    let ended = inline::emit(&mut em, i, n, mode, n == last);
                    if ended {
                        // A branch: the inline translation ended the function.
                        debug_assert_eq!(n, last);
                        break;
                    }
                } else {
                    em.fallback(n, i.ip());
                }
                if n == last {
                    em.finish(i.next_ip());
                }
            }
            inlined = em.inlined;
            nlinks = em.links;
            b.seal_all_blocks();
            b.finalize(module.target_config());
        }
        // `KAGAMI_JIT_DUMP=1`: the IR of every block; `=asm`: its host code.
        let dump = std::env::var("KAGAMI_JIT_DUMP").ok();
        match dump.as_deref() {
            Some("asm") => self.cl_ctx.set_disasm(true),
            Some(_) => eprintln!("{}", self.cl_ctx.func.display()),
            None => {}
        }
        module.define_function(id, &mut self.cl_ctx).expect("define block");
        if dump.as_deref() == Some("asm") {
            if let Some(v) = self.cl_ctx.compiled_code().and_then(|c| c.vcode.as_ref()) {
                eprintln!("; block {} at {:#x}\n{v}", self.next_fn - 1, insns[0].ip());
            }
        }
        let size = self.cl_ctx.compiled_code().map(|c| c.code_info().total_size).unwrap_or(0) as usize;
        module.clear_context(&mut self.cl_ctx);
        module.finalize_definitions().expect("finalize");
        let ptr = module.get_finalized_function(id);
        self.code_bytes += size;
        self.stats.code_bytes += size as u64;
        self.stats.blocks_translated += 1;
        self.stats.insns_translated += insns.len() as u64;
        self.stats.insns_inline += inlined as u64;
        self.stats.compile_time += t0.elapsed();
        // (Called only through `enter` or a direct jump, with the block
        // signature it was built with; the module stays alive until
        // `flush_all`, which drops every copy of the pointer first.)
        (ptr as usize, nlinks)
    }

    #[inline(always)]
    fn fast_get(&self, key: &JitKey) -> Option<*const Compiled> {
        match &self.fast[fast_index(key)] {
            Some((k, c)) if k == key => Some(Rc::as_ptr(c)),
            _ => None,
        }
    }

    fn fast_put(&mut self, key: &JitKey, c: Rc<Compiled>) -> *const Compiled {
        let p = Rc::as_ptr(&c);
        self.fast[fast_index(key)] = Some((*key, c));
        p
    }

    fn lookup_or_translate(&mut self, cpu: &mut Cpu, key: &JitKey) -> Option<Rc<Compiled>> {
        if let Some(c) = self.blocks.get(key) {
            return Some(c.clone());
        }
        let n = self.counts.entry(*key).or_insert(0);
        if *n < self.cfg.threshold {
            *n += 1;
            return None;
        }
        self.counts.remove(key);
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

/// The GPRs (0..15) that instructions name as operands or address parts.
fn used_gprs(insns: &[Instruction]) -> Vec<usize> {
    let mut used = [false; 16];
    for i in insns {
        let mut note = |r: iced_x86::Register| {
            if r.is_gpr() {
                used[r.full_register().number()] = true;
            }
        };
        for n in 0..i.op_count() {
            if i.op_kind(n) == iced_x86::OpKind::Register {
                note(i.op_register(n));
            }
        }
        if i.op_count() > 0 && (0..i.op_count()).any(|n| i.op_kind(n) == iced_x86::OpKind::Memory) {
            note(i.memory_base());
            note(i.memory_index());
        }
    }
    (0..16).filter(|&r| used[r]).collect()
}

impl Translator for Jit {
    fn run_block(&mut self, cpu: &mut Cpu, bus: &mut dyn Bus, key: &JitKey, end: u64) -> bool {
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
            cpu: cpu_ptr,
            bus: bus as *mut dyn Bus,
            end,
            tlb_misses: 0,
            link_jumps: 0,
            panic: None,
        };
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
            }
            ctx.cur = &cb.head;
            // SAFETY: `cb.head.code` was generated for this block with the
            // block signature `enter` calls; it only touches the CPU through
            // `ctx` (see `codegen.rs`), and the blocks it jumps to directly
            // are alive (link cells name blocks of the same page, dropped
            // together); the CPU and bus are not used otherwise until it
            // returns.
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
            if status >= codegen::EXIT_LINK {
                // A direct exit whose cell is empty: fill it when the next
                // block is on the same page (see `Emitter::leave_to`).
                // SAFETY: `ctx.cur` is the head of the block that returned,
                // a live `Compiled` (`#[repr(C)]`, head first).
                let prev = unsafe { &*(ctx.cur as *const Compiled) };
                // SAFETY: `c` is live (just looked up).
                let next = unsafe { &*c };
                if prev.page == next.page && k.mode == Mode::Long64 as u8 {
                    prev.links[(status - codegen::EXIT_LINK) as usize].store(c as *mut BlockHead, Ordering::Relaxed);
                    self.stats.links_made += 1;
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
        if let Some(keys) = self.by_page.remove(&page) {
            self.stats.invalidated_pages += 1;
            for k in keys {
                self.blocks.remove(&k);
                let e = &mut self.fast[fast_index(&k)];
                if e.as_ref().is_some_and(|(fk, _)| *fk == k) {
                    *e = None;
                }
            }
        }
    }

    fn flush(&mut self) {
        self.fast.fill(None);
        self.blocks.clear();
        self.by_page.clear();
        self.counts.clear();
    }

    fn stats_report(&self) -> String {
        let s = &self.stats;
        format!(
            "jit: {} blocks translated ({} reused by code bytes), {} guest instructions ({} inline), compile time {:.6} s, \
             code {} KiB, {} block runs ({} chained), {} direct jumps ({} links), {} instructions retired in translated code, {} inline memory accesses through the helper, {} pages invalidated, {} cache flushes, {} declined",
            s.blocks_translated,
            s.blocks_reused,
            s.insns_translated,
            s.insns_inline,
            s.compile_time.as_secs_f64(),
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
