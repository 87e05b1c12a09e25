//! Differential testing against the host processor.
//!
//! Seeded random instruction streams (1-8 instructions built with iced-x86's
//! encoder from per-class code lists, `classes.rs`) with random operands,
//! flags and x87/MMX/SSE state (`gen.rs`) run natively in a forked child
//! (`native.rs`) and on kagami in 64-bit mode at CPL 3 (`emu.rs`); registers,
//! flags (undefined ones masked), FPU/SSE state, the data window and any
//! exception are compared (`compare.rs`). Each stream also runs through
//! kagami's real executor (`Cpu::run`, block cache) and must agree with the
//! direct handler calls. A mismatch is shrunk to the shortest failing prefix
//! and printed with the seed, bytes and disassembly; a kagami panic fails
//! the stream.
//!
//! Environment: `KAGAMI_DIFF_COUNT` streams per class (default
//! [`DEFAULT_COUNT`]), `KAGAMI_DIFF_SEED` the master seed (default fixed),
//! `KAGAMI_DIFF_ONLY` the index of a single stream to rerun,
//! `KAGAMI_DIFF_SHOW` how many mismatches to print in full.

pub mod classes;
pub mod compare;
pub mod emu;
pub mod gen;
pub mod native;
pub mod rng;
pub mod state;

use classes::Class;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Fixed addresses, the same on the host and in the guest.
pub mod layout {
    /// The window the child maps (2 MiB aligned; below 2 GiB so absolute
    /// 32-bit addressing reaches it).
    pub const BASE: u64 = 0x1000_0000;
    pub const REGION_SIZE: usize = 0x4_0000;
    /// Native prologue (host only).
    pub const PROLOGUE: u64 = BASE;
    /// Native common tail (host only).
    pub const TAIL: u64 = BASE + 0x800;
    /// The stream, followed natively by its epilogue.
    pub const STREAM: u64 = BASE + 0x1000;
    pub const CODE_MAX: usize = 0x1000;
    /// The data window memory operands address (`[rbx+disp]`, RBX in the middle).
    pub const DATA: u64 = BASE + 0x1_0000;
    pub const DATA_SIZE: usize = 0x2000;
    /// Initial RSP (only the native epilogue's PUSHFQ uses the stack).
    pub const STACK_TOP: u64 = BASE + 0x2_0800;
    /// Native state block (host only).
    pub const STATE: u64 = BASE + 0x3_0000;
}

pub const DEFAULT_COUNT: u64 = 4000;
pub const DEFAULT_SEED: u64 = 0x6b61_6761_6d69_0001;
/// Mismatches printed in full per class (`KAGAMI_DIFF_SHOW` overrides).
const SHOW: usize = 8;

/// Per-class results.
#[derive(Debug, Default)]
pub struct Report {
    pub streams: u64,
    pub passed: u64,
    /// Streams that raised the same exception on both sides.
    pub faults_matched: u64,
    pub mismatches: u64,
    /// Mismatches by the instruction that first makes the outcomes differ.
    pub culprits: BTreeMap<String, u64>,
    pub details: Vec<String>,
    pub text: String,
}

pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = if let Some(h) = v.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else {
        v.parse()
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

fn stream_seed(master: u64, class: Class, i: u64) -> u64 {
    let mut r = rng::Rng::new(master ^ (class as u64) << 56 ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
    r.next_u64()
}

/// Run `count` streams of `class` (or only stream `only`).
pub fn run_class(class: Class, count: u64, seed: u64, only: Option<u64>) -> Report {
    let mut rep = Report::default();
    let codes = classes::codes_of(class);
    let int_codes = if class == Class::Str {
        classes::codes_of(Class::Int).run
    } else {
        Vec::new()
    };
    let _ = writeln!(
        rep.text,
        "class {}: {} codes run, {} not implemented in kagami (skipped), {} need CPU features this host lacks",
        class.name(),
        codes.run.len(),
        codes.unimplemented.len(),
        codes.host_missing.len()
    );
    if !codes.unimplemented.is_empty() {
        let names: Vec<String> = codes.unimplemented.iter().take(40).map(|c| format!("{c:?}")).collect();
        let _ = writeln!(
            rep.text,
            "  SKIPPED (not implemented): {}{}",
            names.join(" "),
            if codes.unimplemented.len() > 40 { " ..." } else { "" }
        );
    }
    if codes.run.is_empty() {
        let _ = writeln!(rep.text, "  SKIPPED: class {} has no implemented instructions yet", class.name());
        return rep;
    }
    let show = env_u64("KAGAMI_DIFF_SHOW").map_or(SHOW, |v| v as usize);
    let mut native = native::NativeRunner::spawn().unwrap_or_else(|e| panic!("{e}"));
    let mut emu = emu::Emu::new();
    let range = match only {
        Some(i) => i..i + 1,
        None => 0..count,
    };
    for i in range {
        let mut r = rng::Rng::new(stream_seed(seed, class, i));
        let s = gen::stream(class, &codes.run, &int_codes, &mut r);
        rep.streams += 1;
        let (n, k) = match run_both(&mut native, &mut emu, &s) {
            Ok(v) => v,
            Err(e) => {
                rep.mismatches += 1;
                let culprit = if e.starts_with("kagami panicked") {
                    "panic"
                } else if e.starts_with("Cpu::run") {
                    "executor"
                } else {
                    "native run"
                };
                *rep.culprits.entry(culprit.to_string()).or_default() += 1;
                if rep.details.len() < show {
                    rep.details.push(format!(
                        "FAILURE class {} stream {i} (reproduce: KAGAMI_DIFF_SEED={seed:#x} KAGAMI_DIFF_ONLY={i}): {e}\n{}{}",
                        class.name(),
                        compare::listing(&s),
                        compare::input_summary(&s)
                    ));
                }
                if !native.alive() {
                    native = native::NativeRunner::spawn().unwrap_or_else(|e| panic!("{e}"));
                }
                continue;
            }
        };
        let d = compare::diff(&s, &n, &k);
        if d.is_empty() {
            rep.passed += 1;
            if n.fault.is_some() {
                rep.faults_matched += 1;
            }
            continue;
        }
        rep.mismatches += 1;
        // Shrink to the shortest failing prefix.
        let mut small = s.clone();
        let mut diffs = d;
        for len in 1..s.insns.len() {
            let p = s.prefix(len);
            if let Ok((n, k)) = run_both(&mut native, &mut emu, &p) {
                let d = compare::diff(&p, &n, &k);
                if !d.is_empty() {
                    small = p;
                    diffs = d;
                    break;
                }
            }
        }
        let culprit = small.insns.last().map(|i| format!("{:?}", i.code())).unwrap_or_default();
        *rep.culprits.entry(culprit).or_default() += 1;
        if rep.details.len() < show {
            let mut t = format!(
                "MISMATCH class {} stream {i} (reproduce: KAGAMI_DIFF_SEED={seed:#x} KAGAMI_DIFF_ONLY={i}), shortest failing prefix {} of {} instructions:\n",
                class.name(),
                small.insns.len(),
                s.insns.len()
            );
            t.push_str(&compare::listing(&small));
            t.push_str(&compare::input_summary(&small));
            t.push('\n');
            for line in diffs {
                let _ = writeln!(t, "    {line}");
            }
            rep.details.push(t);
        }
    }
    let _ = writeln!(
        rep.text,
        "  {} streams: {} passed ({} with matching exceptions), {} mismatched",
        rep.streams, rep.passed, rep.faults_matched, rep.mismatches
    );
    if !rep.culprits.is_empty() {
        let mut v: Vec<_> = rep.culprits.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        let list: Vec<String> = v.iter().map(|(c, n)| format!("{c} x{n}")).collect();
        let _ = writeln!(rep.text, "  failing instructions: {}", list.join(", "));
    }
    rep
}

fn run_both(native: &mut native::NativeRunner, emu: &mut emu::Emu, s: &gen::Stream) -> Result<(state::Outcome, state::Outcome), String> {
    let mut code = s.bytes.clone();
    code.extend_from_slice(&native::epilogue(layout::STREAM + s.bytes.len() as u64));
    if !native.alive() {
        *native = native::NativeRunner::spawn()?;
    }
    let n = native.run(&code, s.bytes.len(), &s.input, &s.data)?;
    // A guest must never panic the emulator: report it as a failure of this
    // stream and carry on with a fresh CPU.
    let k = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| emu.run(&s.bytes, &s.input, &s.data)));
    match k {
        Ok(k) => {
            // The executor path must agree with calling the handlers.
            let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| emu.run_executor(&s.bytes, &s.input, &s.data)))
                .map_err(|_| "kagami panicked in Cpu::run".to_string())?;
            let mut direct = k.clone();
            if let Some(f) = direct.fault.as_mut() {
                f.vector = 255;
            }
            let d = compare::diff(s, &direct, &e);
            if !d.is_empty() {
                return Err(format!(
                    "Cpu::run disagrees with calling the handlers directly:\n    {}",
                    d.join("\n    ")
                ));
            }
            Ok((n, k))
        }
        Err(p) => {
            *emu = emu::Emu::new();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("kagami panicked: {msg}"))
        }
    }
}

/// Run one class with the settings from the environment, print the report,
/// and panic if any stream mismatched.
pub fn check_class(class: Class) {
    let count = env_u64("KAGAMI_DIFF_COUNT").unwrap_or(DEFAULT_COUNT);
    let seed = env_u64("KAGAMI_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let only = env_u64("KAGAMI_DIFF_ONLY");
    let rep = run_class(class, count, seed, only);
    for d in &rep.details {
        println!("{d}");
    }
    print!("{}", rep.text);
    assert_eq!(
        rep.mismatches,
        0,
        "{} of {} {} streams differ from the host",
        rep.mismatches,
        rep.streams,
        class.name()
    );
}

/// A stream from hand-written instructions (for the harness's own checks).
pub fn stream_of(insns: &[iced_x86::Instruction], seed: u64) -> gen::Stream {
    let mut r = rng::Rng::new(seed);
    let mut s = gen::stream(Class::Int, &[iced_x86::Code::Nopd], &[], &mut r);
    let mut bytes = Vec::new();
    let mut decoded = Vec::new();
    for i in insns {
        let ip = layout::STREAM + bytes.len() as u64;
        let mut enc = iced_x86::Encoder::new(64);
        enc.encode(i, ip).expect("encodable");
        let b = enc.take_buffer();
        let mut dec = iced_x86::Decoder::with_ip(64, &b, ip, iced_x86::DecoderOptions::NONE);
        decoded.push(dec.decode());
        bytes.extend_from_slice(&b);
    }
    s.insns = decoded;
    s.bytes = bytes;
    s.undefined_flags = 0;
    s.undefined_fsw = 0;
    s.masks_before = vec![(0, 0); s.insns.len()];
    s
}

/// Run a stream on both sides (for the harness's own checks).
pub fn run_pair(s: &gen::Stream) -> (state::Outcome, state::Outcome) {
    let mut native = native::NativeRunner::spawn().unwrap_or_else(|e| panic!("{e}"));
    let mut emu = emu::Emu::new();
    run_both(&mut native, &mut emu, s).unwrap_or_else(|e| panic!("{e}"))
}
