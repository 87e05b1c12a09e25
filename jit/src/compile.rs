//! Compiling one block to host code bytes, on the CPU's thread or on the
//! background worker.
//!
//! A [`Job`] holds everything the code depends on (the decoded
//! instructions, the [`CodeKey`], the mode, the page direct exits may jump
//! to); [`Compiler::compile`] builds the Cranelift IR (`codegen.rs`,
//! `inline.rs`, `memory.rs`) and compiles it to position-independent bytes
//! (helpers and other blocks are reached through absolute addresses in
//! registers, so the code has no relocations). The [`Worker`] runs a
//! compiler on its own thread: the CPU thread sends jobs and keeps
//! interpreting; `Jit` installs the bytes into its code module when they
//! come back (see `Jit::poll`).

use crate::codegen::{self, Emitter};
use crate::inline;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use crossbeam::channel::{Receiver, Sender};
use iced_x86::Instruction;
use kagami_cpu::state::Mode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What decides a translation's code: the mode and, per instruction, either
/// its address and bytes (translated inline) or nothing (run through the
/// helper from the block's own fallback table). Blocks with the same key
/// share code: the SST suite's thousands of one-instruction blocks compile
/// once per length.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CodeKey {
    pub mode: u8,
    pub model: u8,
    /// The block's start when an inline branch goes back to it (the code
    /// then loops inside its function, see `Emitter::start_loop`).
    pub loop_start: Option<u64>,
    pub insns: Box<[Option<(u64, Box<[u8]>)>]>,
}

/// One block to compile.
pub struct Job {
    pub insns: Vec<Instruction>,
    pub plan: CodeKey,
    pub mode: Mode,
    /// See `Emitter::new`.
    pub link_page: Option<u64>,
}

/// A compiled block.
pub struct Output {
    pub bytes: Vec<u8>,
    pub align: u64,
    /// Link cells its direct exits use.
    pub links: u32,
    /// Instructions translated inline (the rest call the helper).
    pub inlined: usize,
    pub time: Duration,
}

/// A Cranelift ISA with its reusable contexts.
pub struct Compiler {
    isa: OwnedTargetIsa,
    ctx: Context,
    fctx: FunctionBuilderContext,
    /// `KAGAMI_JIT_DUMP`: `asm` prints host code, anything else the IR.
    dump: Option<String>,
    count: u64,
}

impl Compiler {
    pub fn new(isa: OwnedTargetIsa) -> Compiler {
        Compiler {
            isa,
            ctx: Context::new(),
            fctx: FunctionBuilderContext::new(),
            dump: std::env::var("KAGAMI_JIT_DUMP").ok(),
            count: 0,
        }
    }

    pub fn compile(&mut self, job: &Job) -> Output {
        let t0 = Instant::now();
        let insns = &job.insns;
        self.ctx.clear();
        self.ctx.func.signature = codegen::block_signature();
        self.ctx.func.name = UserFuncName::user(1, self.count as u32);
        self.count += 1;
        let helper_conv = self.isa.default_call_conv();
        let (inlined, links);
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let mut em = Emitter::new(&mut b, helper_conv, job.link_page);
            let last = insns.len() - 1;
            if let Some(start) = job.plan.loop_start {
                em.start_loop(start, insns.len() as u64, &used_gprs(insns));
            }
            for (n, i) in insns.iter().enumerate() {
                if job.plan.insns[n].is_some() {
                    let ended = inline::emit(&mut em, i, n, job.mode, n == last);
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
            links = em.links;
            b.seal_all_blocks();
            b.finalize(self.isa.frontend_config());
        }
        let asm = self.dump.as_deref() == Some("asm");
        if asm {
            self.ctx.set_disasm(true);
        } else if self.dump.is_some() {
            eprintln!("{}", self.ctx.func.display());
        }
        let code = match self.ctx.compile(&*self.isa, &mut ControlPlane::default()) {
            Ok(c) => c,
            // The IR is built by this crate: an error is a JIT bug.
            Err(e) => panic!("cranelift rejected block at {:#x}: {:?}", insns[0].ip(), e.inner),
        };
        if asm {
            if let Some(v) = code.vcode.as_ref() {
                eprintln!("; block at {:#x}\n{v}", insns[0].ip());
            }
        }
        assert!(code.buffer.relocs().is_empty(), "generated code must not need relocations");
        Output {
            bytes: code.code_buffer().to_vec(),
            align: code.buffer.alignment as u64,
            links,
            inlined,
            time: t0.elapsed(),
        }
    }
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

/// A compiler on its own thread. Jobs carry a ticket the result returns
/// with; dropping the worker ends the thread.
pub struct Worker {
    jobs: Option<Sender<(u64, Job)>>,
    /// Set on drop: the thread skips the jobs still queued.
    stop: Arc<AtomicBool>,
    done: Receiver<(u64, std::thread::Result<Output>)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// `None` if the thread cannot be started (the caller compiles on its
    /// own thread then).
    pub fn start(isa: OwnedTargetIsa) -> Option<Worker> {
        let (jtx, jrx) = crossbeam::channel::unbounded::<(u64, Job)>();
        let (dtx, drx) = crossbeam::channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kagami-jit".into())
            .spawn(move || {
                let mut c = Compiler::new(isa);
                for (ticket, job) in jrx {
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    // A panic is handed to the CPU thread, which resumes it.
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.compile(&job)));
                    let failed = out.is_err();
                    if dtx.send((ticket, out)).is_err() || failed {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Worker {
            jobs: Some(jtx),
            stop,
            done: drx,
            thread: Some(thread),
        })
    }

    pub fn send(&self, ticket: u64, job: Job) {
        if let Some(j) = &self.jobs {
            // (The thread only ends after a panic, which `try_recv` reports.)
            let _ = j.send((ticket, job));
        }
    }

    /// A finished job, if any.
    pub fn try_recv(&self) -> Option<(u64, std::thread::Result<Output>)> {
        self.done.try_recv().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
