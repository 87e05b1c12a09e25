//! The SingleStepTests 80286 real-mode harness: load each test's initial
//! state into a `CpuModel::I80286` processor with 16 MiB of RAM (no A20
//! wrap), run until the first HLT, and compare registers and memory with
//! the recorded final state. The rules (FLAGS & 0x0FFF on load, stacked
//! FLAGS under the opcode's mask at SS:SP+4, strict memory checks, port
//! reads returning all ones) are those of `shared/cputests/README.md`.
//!
//! Stray writes are found without scanning all of RAM: every backing page
//! is marked as holding code, so the first CPU write to a page goes through
//! the memory slow path and clears the page's code bit. After a test the
//! pages with a cleared bit are exactly the pages written; only those are
//! compared byte by byte, then zeroed and re-armed. The block cache is off
//! (`Cpu::use_block_cache`): decoding a block would re-mark its page.

use crate::moo::{self, MooFile, Test, REG_NAMES};
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
use kagami_cpu::state::{CS, DS, ES, FS, GS, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP, SS};
use kagami_cpu::{Cpu, CpuModel, Exit, GuestMemory, NullBus, PhysMap, Region, RegionKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const RAM_SIZE: u64 = 16 << 20;
const PAGE: u64 = 4096;
const PAGES: u64 = RAM_SIZE / PAGE;
/// Real-mode addresses end at 0x10FFEF + 1 (a word at FFFF:FFFF would fault),
/// so a correct emulator writes only below this page; it is checked after
/// every test, the rest of RAM once per file.
const LOW_PAGES: u64 = 0x120;
/// Instructions (including the HLT) a test may execute before it counts as
/// running away.
const STEP_LIMIT: u64 = 256;

/// `metadata.json`: per-opcode status and undefined-flag masks.
pub struct Metadata {
    opcodes: serde_json::Map<String, serde_json::Value>,
}

impl Metadata {
    pub fn load(dir: &Path) -> Result<Metadata, String> {
        let path = dir.join("metadata.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let opcodes = v
            .get("opcodes")
            .and_then(|o| o.as_object())
            .cloned()
            .ok_or_else(|| format!("{}: no `opcodes` object", path.display()))?;
        Ok(Metadata { opcodes })
    }

    /// The entry for a file stem such as `00` or `F7.6`.
    pub fn entry(&self, stem: &str) -> Option<&serde_json::Value> {
        let mut parts = stem.split('.');
        let op = parts.next()?;
        let e = self.opcodes.get(op).or_else(|| self.opcodes.get(&op.to_ascii_uppercase()))?;
        match parts.next() {
            Some(reg) => e.get("reg")?.get(reg),
            None => Some(e),
        }
    }

    /// The AND mask of flags the instruction defines (all 16 bits if none given).
    pub fn flags_mask(&self, stem: &str) -> u16 {
        self.entry(stem)
            .and_then(|e| e.get("flags-mask"))
            .and_then(|m| m.as_u64())
            .map(|m| m as u16)
            .unwrap_or(0xffff)
    }
}

/// Harness options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Run at most this many tests of each file.
    pub max_tests: Option<usize>,
    /// Keep a full dump of up to this many failures per file.
    pub max_dumps: usize,
    /// Worker threads (files are distributed among them).
    pub threads: usize,
    /// Only run files whose stem is in this list (empty: all).
    pub only: Vec<String>,
    /// Only run the test with this index (in each file run).
    pub index: Option<u32>,
    /// Trace execution instruction by instruction.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_tests: None,
            max_dumps: 3,
            threads: 2,
            only: Vec::new(),
            index: None,
            trace: false,
        }
    }
}

/// Result of one test file.
#[derive(Clone, Debug, Default)]
pub struct FileResult {
    /// File stem: opcode, or opcode.reg for group files.
    pub stem: String,
    pub mnemonic: String,
    pub run: usize,
    pub passed: usize,
    /// Set when the file was not run, with the reason.
    pub skipped: Option<String>,
    /// Failure dumps (at most `Options::max_dumps`).
    pub dumps: Vec<String>,
}

impl FileResult {
    pub fn failed(&self) -> usize {
        self.run - self.passed
    }
}

/// One processor and its memory, reused for every test a worker runs.
pub struct Runner {
    /// Print every instruction executed (for one test at a time).
    pub trace: bool,
    cpu: Cpu,
    bus: NullBus,
    zeros: Vec<u8>,
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner {
    pub fn new() -> Runner {
        let mem = GuestMemory::new(RAM_SIZE).expect("16 MiB of guest memory");
        let mut map = PhysMap::new();
        map.add(Region {
            start: 0,
            len: RAM_SIZE,
            backing: 0,
            kind: RegionKind::Ram,
        })
        .expect("one region cannot overlap");
        let mut cpu = Cpu::new(mem, map);
        cpu.model = CpuModel::I80286;
        // Each test is a couple of instructions on freshly written code, so
        // the block cache cannot help; and decoding a block re-marks its page
        // as code, which would hide a write to that page from the tracking.
        cpu.use_block_cache = false;
        // Under the JIT (KAGAMI_JIT_THRESHOLD) blocks go through the
        // translator first. Its decode re-marks only pages holding the
        // test's own code, which `touched_pages` lists from `init.ram`.
        kagami_jit::Jit::install_from_env(&mut cpu);
        for p in 0..PAGES {
            cpu.mem.set_code_page(p);
        }
        Runner {
            trace: false,
            cpu,
            bus: NullBus,
            zeros: vec![0; PAGE as usize],
        }
    }

    fn read_byte(&self, addr: u32) -> u8 {
        let mut b = [0u8];
        self.cpu.mem.read(addr as u64, &mut b);
        b[0]
    }

    /// Run one test. `Err` carries a human-readable list of differences.
    pub fn run_test(&mut self, t: &Test, flags_mask: u16) -> Result<(), Vec<String>> {
        let mut diffs = Vec::new();
        for &(a, _) in t.init.ram.iter().chain(t.fina.ram.iter()) {
            if a as u64 >= RAM_SIZE {
                diffs.push(format!("address {a:#x} is outside the 16 MiB the harness models"));
            }
        }
        if !diffs.is_empty() {
            return Err(diffs);
        }
        // Load memory, then re-arm write tracking on the pages just written.
        for &(a, v) in &t.init.ram {
            self.cpu.mem.write(a as u64, &[v]);
        }
        for &(a, _) in &t.init.ram {
            self.cpu.mem.set_code_page(a as u64 / PAGE);
        }
        self.load_regs(t);

        let exit = if self.trace {
            self.run_traced()
        } else {
            self.cpu.run(&mut self.bus, STEP_LIMIT)
        };
        match exit {
            Exit::Halted => {}
            Exit::Budget => diffs.push(format!("no HLT within {STEP_LIMIT} instructions")),
            Exit::TripleFault => diffs.push("shutdown (triple fault)".into()),
            Exit::Stopped => diffs.push("stopped".into()),
        }
        let touched = self.touched_pages(t);
        if exit == Exit::Halted {
            self.compare(t, flags_mask, &touched, &mut diffs);
        }
        self.cleanup(&touched, exit);
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs)
        }
    }

    /// Step one instruction at a time, printing CS:IP and the registers.
    fn run_traced(&mut self) -> Exit {
        for _ in 0..STEP_LIMIT.min(32) {
            let s = &self.cpu.s;
            let mut code = [0u8; 12];
            self.cpu.mem.read(s.segs[CS].base + s.rip, &mut code);
            eprintln!(
                "  {:04x}:{:04x} {:<32} ax={:04x} cx={:04x} sp={:04x} si={:04x} di={:04x} fl={:04x}",
                s.segs[CS].selector,
                s.rip,
                disassemble(&code, s.rip).split(" ; ").next().unwrap_or(""),
                s.gpr[RAX] as u16,
                s.gpr[RCX] as u16,
                s.gpr[RSP] as u16,
                s.gpr[RSI] as u16,
                s.gpr[RDI] as u16,
                s.flags() as u16
            );
            match self.cpu.step(&mut self.bus) {
                Exit::Budget => {}
                e => return e,
            }
            if self.cpu.s.halted != 0 {
                return Exit::Halted;
            }
        }
        Exit::Budget
    }

    fn load_regs(&mut self, t: &Test) {
        let r = |i: usize| t.init.regs[i].unwrap_or(0) as u64;
        let s = &mut self.cpu.s;
        s.gpr = [0; 16];
        s.gpr[RAX] = r(moo::R_AX);
        s.gpr[RBX] = r(moo::R_BX);
        s.gpr[RCX] = r(moo::R_CX);
        s.gpr[RDX] = r(moo::R_DX);
        s.gpr[RSP] = r(moo::R_SP);
        s.gpr[RBP] = r(moo::R_BP);
        s.gpr[RSI] = r(moo::R_SI);
        s.gpr[RDI] = r(moo::R_DI);
        s.rip = r(moo::R_IP);
        // Bits 12..15 read as zero on a 286 in real mode (README "Load" step 4).
        s.set_flags(r(moo::R_FLAGS) & 0x0fff);
        s.halted = 0;
        s.irq_shadow = 0;
        for (seg, reg) in [
            (CS, moo::R_CS),
            (SS, moo::R_SS),
            (DS, moo::R_DS),
            (ES, moo::R_ES),
            (FS, usize::MAX),
            (GS, usize::MAX),
        ] {
            let sel = if reg == usize::MAX { 0 } else { r(reg) as u16 };
            self.cpu.load_real_seg(seg, sel);
        }
    }

    /// The 14 registers in `REGS` order.
    fn regs(&self) -> [u16; 14] {
        let s = &self.cpu.s;
        [
            s.gpr[RAX] as u16,
            s.gpr[RBX] as u16,
            s.gpr[RCX] as u16,
            s.gpr[RDX] as u16,
            s.segs[CS].selector,
            s.segs[SS].selector,
            s.segs[DS].selector,
            s.segs[ES].selector,
            s.gpr[RSP] as u16,
            s.gpr[RBP] as u16,
            s.gpr[RSI] as u16,
            s.gpr[RDI] as u16,
            s.rip as u16,
            s.flags() as u16,
        ]
    }

    fn compare(&mut self, t: &Test, flags_mask: u16, touched: &[u64], diffs: &mut Vec<String>) {
        let got = self.regs();
        let mut want = [0u16; 14];
        for (k, w) in want.iter_mut().enumerate() {
            *w = match (t.fina.regs[k], t.init.regs[k]) {
                (Some(v), _) => v,
                (None, Some(v)) if k == moo::R_FLAGS => v & 0x0fff,
                (None, Some(v)) => v,
                (None, None) => 0,
            };
            let m = if k == moo::R_FLAGS { flags_mask } else { 0xffff };
            if got[k] & m != *w & m {
                diffs.push(format!("{:>5}: got {:04x} want {:04x}", REG_NAMES[k], got[k], *w));
            }
        }
        if self.cpu.s.gpr[..8].iter().any(|g| g >> 16 != 0) {
            diffs.push("a 16-bit register write reached bits 16..63".into());
        }

        // Expected memory: INIT overlaid by FINA, sorted by address.
        let mut expect: Vec<(u32, u8, bool)> = t.init.ram.iter().map(|&(a, v)| (a, v, false)).collect();
        expect.extend(t.fina.ram.iter().map(|&(a, v)| (a, v, true)));
        expect.sort_by_key(|&(a, _, fina)| (a, !fina));
        expect.dedup_by_key(|e| e.0);

        // The FLAGS word an exception pushed is compared under the mask, at
        // SS:(SP+4) of the final state (README "Compare" step 3).
        let mut masked = [(u32::MAX, 0xffu8); 2];
        if t.excp.is_some() {
            let ss = want[moo::R_SS] as u32;
            let sp = want[moo::R_SP];
            masked[0] = ((ss << 4) + sp.wrapping_add(4) as u32, flags_mask as u8);
            masked[1] = ((ss << 4) + sp.wrapping_add(5) as u32, (flags_mask >> 8) as u8);
        }
        let byte_mask = |a: u32| masked.iter().find(|m| m.0 == a).map_or(0xff, |m| m.1);

        for &(a, v, _) in &expect {
            let g = self.read_byte(a);
            let m = byte_mask(a);
            if g & m != v & m {
                diffs.push(format!("[{a:06x}]: got {g:02x} want {v:02x}"));
            }
        }
        // Strict check: nothing written outside the listed addresses.
        let mut page_buf = vec![0u8; PAGE as usize];
        for &p in touched {
            self.cpu.mem.read(p * PAGE, &mut page_buf);
            let lo = (p * PAGE) as u32;
            for &(a, _, _) in &expect {
                if a / PAGE as u32 == p as u32 {
                    page_buf[(a - lo) as usize] = 0;
                }
            }
            if page_buf.chunks_exact(8).all(|c| c == [0; 8]) {
                continue;
            }
            for (k, &b) in page_buf.iter().enumerate() {
                if b != 0 {
                    let a = lo + k as u32;
                    diffs.push(format!("[{a:06x}]: stray write of {b:02x} (address in neither INIT nor FINA)"));
                }
            }
        }
    }

    /// Pages a test may have changed: those written since they were armed,
    /// and those holding its listed bytes.
    fn touched_pages(&self, t: &Test) -> Vec<u64> {
        let mut pages = self.written_pages(0..LOW_PAGES);
        pages.extend(t.init.ram.iter().chain(t.fina.ram.iter()).map(|&(a, _)| a as u64 / PAGE));
        pages.sort_unstable();
        pages.dedup();
        pages
    }

    /// Backing pages in `range` written since they were last armed.
    fn written_pages(&self, range: std::ops::Range<u64>) -> Vec<u64> {
        range.filter(|&p| !self.cpu.mem.is_code_page(p)).collect()
    }

    /// Pages above the real-mode address space that were written (a bug);
    /// they are zeroed and re-armed.
    pub fn high_writes(&mut self) -> Vec<u64> {
        let pages = self.written_pages(LOW_PAGES..PAGES);
        for &p in &pages {
            self.cpu.mem.write(p * PAGE, &self.zeros);
            self.cpu.mem.set_code_page(p);
            self.cpu.flush_tlb_page(p * PAGE);
        }
        pages
    }

    /// Zero everything the test touched and re-arm write tracking.
    fn cleanup(&mut self, touched: &[u64], exit: Exit) {
        for &p in touched {
            self.cpu.mem.write(p * PAGE, &self.zeros);
            self.cpu.mem.set_code_page(p);
            // A write fast path may be cached for the page; drop it so the
            // next write to it is seen.
            self.cpu.flush_tlb_page(p * PAGE);
        }
        if exit == Exit::TripleFault {
            self.cpu.reset();
        }
    }
}

/// Intel-syntax disassembly of a test's instruction bytes.
pub fn disassemble(bytes: &[u8], ip: u64) -> String {
    let mut dec = Decoder::with_ip(16, bytes, ip, DecoderOptions::NO_INVALID_CHECK);
    let mut fmt = IntelFormatter::new();
    let mut out = String::new();
    for insn in &mut dec {
        if !out.is_empty() {
            out.push_str(" ; ");
        }
        fmt.format(&insn, &mut out);
    }
    out
}

fn dump(file: &str, t: &Test, diffs: &[String]) -> String {
    let ip = t.init.regs[moo::R_IP].unwrap_or(0) as u64;
    let hex: Vec<String> = t.bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut s = format!(
        "{file} #{}: {}\n    bytes {} = {}\n",
        t.index,
        t.name,
        hex.join(" "),
        disassemble(&t.bytes, ip)
    );
    let init: Vec<String> = (0..14)
        .map(|k| format!("{}={:04x}", REG_NAMES[k], t.init.regs[k].unwrap_or(0)))
        .collect();
    s.push_str(&format!("    init {}\n", init.join(" ")));
    if let Some(e) = t.excp {
        s.push_str(&format!("    exception {} (flags at {:#x})\n", e.vector, e.flags_addr));
    }
    for d in diffs {
        s.push_str(&format!("    {d}\n"));
    }
    s
}

/// File stem: `F7.6` for `F7.6.MOO.gz`.
pub fn stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_suffix(".MOO.gz")
        .or_else(|| name.strip_suffix(".moo.gz"))
        .unwrap_or(&name)
        .to_string()
}

/// Every `*.MOO.gz` file in `dir`, sorted by name.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().to_ascii_uppercase().ends_with(".MOO.GZ"))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Run one file.
pub fn run_file(runner: &mut Runner, path: &Path, meta: &Metadata, opts: &Options) -> FileResult {
    let stem = stem(path);
    let mut res = FileResult {
        stem: stem.clone(),
        ..FileResult::default()
    };
    let file: MooFile = match moo::read_gz(path) {
        Ok(f) => f,
        Err(e) => {
            // A corrupt file is a failure, not a skip.
            res.run = 1;
            res.dumps.push(format!("{stem}: {e}"));
            return res;
        }
    };
    res.mnemonic = file.mnemonic.clone();
    if file.cpu != "C286" {
        res.skipped = Some(format!("recorded on CPU `{}`; this harness emulates the 80286 (C286)", file.cpu));
        return res;
    }
    if let Some(mode) = file.cpu_mode.filter(|&m| m != 0) {
        res.skipped = Some(format!("CPU mode {mode} is not real mode"));
        return res;
    }
    let mask = meta.flags_mask(&stem);
    let n = opts.max_tests.unwrap_or(usize::MAX).min(file.tests.len());
    for t in &file.tests[..n] {
        if opts.index.is_some_and(|k| k != t.index) {
            continue;
        }
        res.run += 1;
        match runner.run_test(t, mask) {
            Ok(()) => res.passed += 1,
            Err(d) => {
                if res.dumps.len() < opts.max_dumps {
                    res.dumps.push(dump(&format!("{stem}.MOO.gz"), t, &d));
                }
            }
        }
    }
    let high = runner.high_writes();
    if !high.is_empty() {
        res.run += 1;
        res.dumps
            .push(format!("{stem}: some test wrote pages above 1 MiB + 64 KiB: {high:x?}"));
    }
    res
}

/// Run every file of `dir`, `opts.threads` files at a time.
pub fn run_dir(dir: &Path, opts: &Options) -> Result<Vec<FileResult>, String> {
    let meta = Metadata::load(dir)?;
    let mut files = list_files(dir)?;
    if !opts.only.is_empty() {
        files.retain(|p| opts.only.iter().any(|o| o.eq_ignore_ascii_case(&stem(p))));
    }
    if files.is_empty() {
        return Err(format!("{}: no *.MOO.gz files to run", dir.display()));
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<FileResult>>> = Mutex::new(vec![None; files.len()]);
    std::thread::scope(|sc| {
        for _ in 0..opts.threads.max(1) {
            sc.spawn(|| {
                let mut runner = Runner::new();
                runner.trace = opts.trace;
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(k) else { break };
                    let r = run_file(&mut runner, path, &meta, opts);
                    results.lock().unwrap()[k] = Some(r);
                }
            });
        }
    });
    Ok(results.into_inner().unwrap().into_iter().flatten().collect())
}

/// The per-file table, skip reasons and total.
pub fn format_table(results: &[FileResult], show_passing: bool) -> String {
    let mut s = String::new();
    let (mut run, mut passed) = (0usize, 0usize);
    let mut bad_files = 0;
    s.push_str(&format!("{:<8} {:<9} {:>8} {:>8}  result\n", "file", "mnemonic", "passed", "run"));
    for r in results {
        run += r.run;
        passed += r.passed;
        if r.skipped.is_some() {
            continue;
        }
        let ok = r.failed() == 0;
        if !ok {
            bad_files += 1;
        }
        if ok && !show_passing {
            continue;
        }
        s.push_str(&format!(
            "{:<8} {:<9} {:>8} {:>8}  {}\n",
            r.stem,
            r.mnemonic,
            r.passed,
            r.run,
            if ok { "ok".to_string() } else { format!("FAIL ({})", r.failed()) }
        ));
    }
    for r in results {
        if let Some(why) = &r.skipped {
            s.push_str(&format!("SKIPPED {}: {why}\n", r.stem));
        }
    }
    let files = results.iter().filter(|r| r.skipped.is_none()).count();
    s.push_str(&format!(
        "TOTAL: {passed}/{run} tests pass ({} failing); {}/{files} files fully pass; {} skipped\n",
        run - passed,
        files - bad_files,
        results.len() - files
    ));
    s
}

/// The data directory: `$KAGAMI_SST_DIR`, else `../shared/cputests/sst80286-real`
/// next to the workspace root.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KAGAMI_SST_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("shared/cputests/sst80286-real")
}
