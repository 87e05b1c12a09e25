//! Host-differential test for MMX/SSE–SSE4.2: every register form of every
//! legacy-encoded SIMD instruction kagami implements is executed natively
//! on this x86-64 host (inside a small generated function in an executable
//! mapping) and on kagami, with random and edge operands (NaNs, infinities,
//! denormals, signed zeros, huge and tiny values) and random MXCSR rounding
//! mode, DAZ and FTZ. Registers, MXCSR and the arithmetic flags must match
//! bit for bit. All exceptions stay masked (an unmasked one would raise
//! SIGFPE in the test process).
//!
//! RCPPS/RCPSS/RSQRTPS/RSQRTSS are implementation-specific approximations:
//! they are checked against the architectural bound (relative error at most
//! 1.5 * 2^-12) and exact special cases instead of the host's table.
//!
//! `KAGAMI_SIMD_CASES` sets the random cases per form (default 600).

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use iced_x86::code_asm::*;
use iced_x86::{Code, Decoder, DecoderOptions, Encoder, EncodingKind, Instruction, Mnemonic, OpCodeOperandKind as K, Register};
use kagami_cpu::state::{cr0, cr4, efer, Mode};
use kagami_cpu::{dispatch, Cpu, CpuModel, NullBus};
use std::collections::BTreeMap;

#[repr(C, align(16))]
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Frame {
    xmm: [[u64; 2]; 3], // 0, 16, 32
    mxcsr_in: u32,      // 48
    mxcsr_out: u32,     // 52
    rax: u64,           // 56
    rcx: u64,           // 64
    rdx: u64,           // 72
    rflags: u64,        // 80
    mm: [u64; 2],       // 88, 96
    host_mxcsr: u32,    // 104
    _pad: u32,
    mem: [u8; 32], // 112: the memory operand ([rsi]) of the memory forms
}

struct Native {
    mem: *mut u8,
    len: usize,
}

impl Native {
    /// Wrap the instruction bytes in a load/run/store function.
    fn new(insn: &[u8]) -> Native {
        let mut a = CodeAssembler::new(64).unwrap();
        a.stmxcsr(dword_ptr(rdi + 104)).unwrap();
        a.ldmxcsr(dword_ptr(rdi + 48)).unwrap();
        a.movdqu(xmm0, xmmword_ptr(rdi)).unwrap();
        a.movdqu(xmm1, xmmword_ptr(rdi + 16)).unwrap();
        a.movdqu(xmm2, xmmword_ptr(rdi + 32)).unwrap();
        a.movq(mm0, qword_ptr(rdi + 88)).unwrap();
        a.movq(mm1, qword_ptr(rdi + 96)).unwrap();
        a.mov(rax, qword_ptr(rdi + 56)).unwrap();
        a.mov(rcx, qword_ptr(rdi + 64)).unwrap();
        a.mov(rdx, qword_ptr(rdi + 72)).unwrap();
        a.lea(rsi, ptr(rdi + 112)).unwrap();
        a.xor(r8d, r8d).unwrap(); // clear the arithmetic flags
        a.db(insn).unwrap();
        a.movdqu(xmmword_ptr(rdi), xmm0).unwrap();
        a.movdqu(xmmword_ptr(rdi + 16), xmm1).unwrap();
        a.movdqu(xmmword_ptr(rdi + 32), xmm2).unwrap();
        a.movq(qword_ptr(rdi + 88), mm0).unwrap();
        a.movq(qword_ptr(rdi + 96), mm1).unwrap();
        a.mov(qword_ptr(rdi + 56), rax).unwrap();
        a.mov(qword_ptr(rdi + 64), rcx).unwrap();
        a.mov(qword_ptr(rdi + 72), rdx).unwrap();
        a.pushfq().unwrap();
        a.pop(qword_ptr(rdi + 80)).unwrap();
        a.stmxcsr(dword_ptr(rdi + 52)).unwrap();
        a.ldmxcsr(dword_ptr(rdi + 104)).unwrap();
        a.emms().unwrap();
        a.ret().unwrap();
        let code = a.assemble(0).unwrap();
        let len = 4096;
        // SAFETY: a fresh private anonymous mapping; checked for failure.
        let mem = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(mem, libc::MAP_FAILED, "mmap");
        let mem = mem as *mut u8;
        // SAFETY: the mapping is `len` bytes and the code is far shorter.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), mem, code.len()) };
        Native { mem, len }
    }

    fn run(&self, f: &mut Frame) {
        // SAFETY: the mapping holds a complete function following the SysV
        // ABI that only touches the frame (via rdi and rsi) and caller-saved
        // registers (rax, rcx, rdx, rsi, r8, xmm0-2, mm0-1 with EMMS), restores
        // MXCSR, and whose instruction under test is non-faulting with all
        // SIMD exceptions masked.
        unsafe {
            let func: extern "sysv64" fn(*mut Frame) = core::mem::transmute(self.mem);
            func(f as *mut Frame);
        }
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `new`.
        unsafe { libc::munmap(self.mem as *mut libc::c_void, self.len) };
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn f32_edge(r: &mut Rng) -> u32 {
    let s = (r.next() as u32) & 0x8000_0000;
    let m = r.next() as u32 & 0x7f_ffff;
    s | match r.below(17) {
        0 => 0,
        1 => 0x7f80_0000,                                                                            // inf
        2 => 0x7fc0_0000 | (m & 0x3f_ffff),                                                          // QNaN
        3 => 0x7f80_0000 | (m & 0x3f_ffff).max(1),                                                   // SNaN
        4 => m,                                                                                      // denormal
        5 => 0x3f80_0000,                                                                            // 1
        6 => 0x7f7f_ffff,                                                                            // max
        7 => 0x0080_0000 | (m & 0xff),                                                               // near min normal
        8 => ((r.below(40) as u32 + 108) << 23) | m,                                                 // around 1.0
        9 => ((r.below(8) as u32 + 1) << 23) | m,                                                    // tiny normals
        10 => ((r.below(8) as u32 + 246) << 23) | m,                                                 // huge
        11 => (r.below(0x4f80_0000 - 0x3f00_0000) as u32 + 0x3f00_0000) & !0xff_ffff | m & 0xffffff, // integer-ish range
        12 => 0x3f7f_ff00 | (m & 0x1ff),                                                             // just below and above 1.0
        13 => 0x0070_0000 | (m & 0xf_ffff),                                                          // largest denormals
        14 => 0x0400_0000 | (m & 0x3f_ffff),                                                         // products of two of these underflow
        _ => r.next() as u32 & 0x7fff_ffff,
    }
}

fn f64_edge(r: &mut Rng) -> u64 {
    let s = r.next() & (1 << 63);
    let m = r.next() & ((1 << 52) - 1);
    s | match r.below(18) {
        0 => 0,
        1 => 0x7ff0 << 48,
        2 => (0x7ff8 << 48) | (m & ((1 << 51) - 1)),
        3 => (0x7ff0 << 48) | (m & ((1 << 51) - 1)).max(1),
        4 => m,
        5 => 0x3ff0 << 48,
        6 => 0x7fef_ffff_ffff_ffff,
        7 => (1 << 52) | (m & 0xfff),
        8 => ((r.below(80) + 990) << 52) | m,
        9 => ((r.below(16) + 1) << 52) | m,
        10 => ((r.below(16) + 2030) << 52) | m,
        11 => ((r.below(70) + 1023) << 52) | (m & !((1 << 30) - 1)),
        12 => ((r.below(40) + 1023 - 20) << 52) | (m & !((1 << 45) - 1)), // few mantissa bits
        13 => ((r.below(12) + 1023 + 20) << 52) | m,                      // near 2^31 for conversions
        14 => 0x3fef_ffff_ffff_ff00 | (m & 0x1ff),
        15 => 0x000f_ffff_ffff_f000 | (m & 0xfff),
        16 => 0x1ff0_0000_0000_0000 | (m & 0xf_ffff_ffff_ffff),
        _ => r.next() & !(1 << 63),
    }
}

fn int_edge(r: &mut Rng) -> u64 {
    match r.below(8) {
        0 => 0,
        1 => u64::MAX,
        2 => 0x8080_8080_8080_8080,
        3 => 0x7f7f_7f7f_7f7f_7f7f,
        4 => r.next() & 0x0f0f_0f0f_0f0f_0f0f,
        5 => r.next() | 0x8000_8000_8000_8000,
        _ => r.next(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lanes {
    F32,
    F64,
    Int,
}

fn vector(r: &mut Rng, lanes: Lanes) -> [u64; 2] {
    // Sometimes reuse values across lanes to exercise equality.
    let mut v = [0u64; 2];
    for q in &mut v {
        *q = match lanes {
            Lanes::F32 => f32_edge(r) as u64 | (f32_edge(r) as u64) << 32,
            Lanes::F64 => f64_edge(r),
            Lanes::Int => int_edge(r),
        };
    }
    v
}

fn lanes_of(m: Mnemonic) -> Lanes {
    let n = format!("{m:?}").to_ascii_lowercase();
    if n.starts_with("cvtdq2") || n.starts_with("cvtpi2") || n.starts_with("cvtsi2") {
        Lanes::Int
    } else if n.ends_with("ps")
        || n.ends_with("ss")
        || n.contains("ps2")
        || n.contains("ss2")
        || n == "dpps"
        || n == "insertps"
        || n == "movshdup"
        || n == "movsldup"
    {
        Lanes::F32
    } else if n.ends_with("pd") || n.ends_with("sd") || n.contains("pd2") || n.contains("sd2") || n == "dppd" || n == "movddup" {
        Lanes::F64
    } else {
        Lanes::Int
    }
}

/// Register and immediate choices for a code, or None if it has operands
/// this test cannot place in registers.
fn operands(code: Code) -> Option<Vec<K>> {
    let info = code.op_code();
    let kinds: Vec<K> = (0..info.op_count()).map(|n| info.op_kind(n)).collect();
    for k in &kinds {
        match k {
            K::xmm_reg
            | K::xmm_or_mem
            | K::xmm_rm
            | K::mm_reg
            | K::mm_or_mem
            | K::mm_rm
            | K::r32_or_mem
            | K::r32_reg
            | K::r32_rm
            | K::r64_or_mem
            | K::r64_reg
            | K::r64_rm
            | K::imm8 => {}
            _ => return None,
        }
    }
    Some(kinds)
}

/// Build the instruction; with `mem`, the first r/m-capable operand is
/// the memory operand [rsi].
fn build(code: Code, kinds: &[K], imm: u8, mem: bool) -> Option<Instruction> {
    let mut ops = Vec::new();
    let mem_at = if mem {
        kinds
            .iter()
            .position(|k| matches!(k, K::xmm_or_mem | K::mm_or_mem | K::r32_or_mem | K::r64_or_mem))?
    } else {
        usize::MAX
    };
    for (n, k) in kinds.iter().enumerate() {
        if n == mem_at {
            ops.push(Register::None);
            continue;
        }
        let r = match k {
            K::xmm_reg | K::xmm_or_mem | K::xmm_rm => [Register::XMM0, Register::XMM1, Register::XMM2][n],
            K::mm_reg | K::mm_or_mem | K::mm_rm => [Register::MM0, Register::MM1, Register::MM1][n],
            K::r32_or_mem | K::r32_reg | K::r32_rm => [Register::EAX, Register::ECX, Register::ECX][n],
            K::r64_or_mem | K::r64_reg | K::r64_rm => [Register::RAX, Register::RCX, Register::RCX][n],
            _ => Register::None,
        };
        ops.push(r);
    }
    let imm32 = imm as u32;
    if mem {
        let m = iced_x86::MemoryOperand::with_base(Register::RSI);
        return match (kinds.len(), mem_at) {
            (2, 0) => Instruction::with2(code, m, ops[1]).ok(),
            (2, _) => Instruction::with2(code, ops[0], m).ok(),
            (3, 0) if kinds[2] == K::imm8 => Instruction::with3(code, m, ops[1], imm32).ok(),
            (3, 1) if kinds[2] == K::imm8 => Instruction::with3(code, ops[0], m, imm32).ok(),
            (3, 1) => Instruction::with3(code, ops[0], m, ops[2]).ok(),
            _ => None,
        };
    }
    let i = match (kinds.len(), kinds.last()) {
        (1, _) => Instruction::with1(code, ops[0]).ok()?,
        (2, Some(K::imm8)) => Instruction::with2(code, ops[0], imm32).ok()?,
        (2, _) => Instruction::with2(code, ops[0], ops[1]).ok()?,
        (3, Some(K::imm8)) => Instruction::with3(code, ops[0], ops[1], imm32).ok()?,
        (3, _) => Instruction::with3(code, ops[0], ops[1], ops[2]).ok()?,
        _ => return None,
    };
    Some(i)
}

/// Instructions this harness does not run natively (they touch memory
/// implicitly or change state the frame does not hold).
fn skipped(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Maskmovq | Maskmovdqu | Emms | Ldmxcsr | Stmxcsr | Fxsave | Fxrstor | Fxsave64 | Fxrstor64 | Xsave | Xrstor | Xgetbv | Xsetbv
    )
}

fn approx(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Rcpps | Mnemonic::Rcpss | Mnemonic::Rsqrtps | Mnemonic::Rsqrtss)
}

/// RCP/RSQRT: every f32 lane where the results differ must both be
/// finite normal values within 2 * 1.5 * 2^-12 of each other (each is
/// within 1.5 * 2^-12 of the true value).
fn approx_ok(host: &Frame, emu: &Frame) -> bool {
    for q in 0..2 {
        for half in 0..2 {
            let h = (host.xmm[0][q] >> (32 * half)) as u32;
            let e = (emu.xmm[0][q] >> (32 * half)) as u32;
            if h == e {
                continue;
            }
            let (hf, ef) = (f32::from_bits(h), f32::from_bits(e));
            if !hf.is_normal() || !ef.is_normal() || ((hf - ef) / hf).abs() > 3.0 * (2f32).powi(-12) {
                return false;
            }
        }
    }
    host.mxcsr_out == emu.mxcsr_out && host.xmm[1] == emu.xmm[1] && host.xmm[2] == emu.xmm[2]
}

/// Guest address of the memory operand.
const GUEST_MEM: u64 = 0x10000;

/// A 64-bit CPU with 4 MiB of identity-mapped RAM (2 MiB pages).
fn new_cpu() -> Cpu {
    let mut cpu = Cpu::with_ram(4 << 20).unwrap();
    cpu.mem.write(0x1000, &(0x2000u64 | 3).to_le_bytes());
    cpu.mem.write(0x2000, &(0x3000u64 | 3).to_le_bytes());
    cpu.mem.write(0x3000, &0x83u64.to_le_bytes());
    cpu.mem.write(0x3008, &(0x20_0000u64 | 0x83).to_le_bytes());
    cpu.s.cr3 = 0x1000;
    cpu.s.cr0 = cr0::PE | cr0::PG | cr0::ET | cr0::NE | cr0::MP;
    cpu.s.cr4 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
    cpu.s.efer = efer::LME | efer::LMA;
    cpu.s.segs[kagami_cpu::state::CS].attr |= kagami_cpu::state::attr::L;
    cpu.s.mode = Mode::Long64;
    cpu
}

fn emulate(cpu: &mut Cpu, insn: &Instruction, f: &Frame) -> Result<Frame, kagami_cpu::Exception> {
    let s = &mut cpu.s;
    for k in 0..3 {
        s.fpu.xmm[k] = f.xmm[k][0] as u128 | (f.xmm[k][1] as u128) << 64;
    }
    s.fpu.mxcsr = f.mxcsr_in;
    s.fpu.st = [0; 8];
    s.fpu.st[0] = f.mm[0] as u128;
    s.fpu.st[1] = f.mm[1] as u128;
    s.fpu.ftw = 0xffff;
    s.fpu.fsw = 0;
    s.gpr[0] = f.rax;
    s.gpr[1] = f.rcx;
    s.gpr[2] = f.rdx;
    s.gpr[6] = GUEST_MEM;
    cpu.mem.write(GUEST_MEM, &f.mem);
    let s = &mut cpu.s;
    s.set_flags(0x202 | 0x44); // as after XOR r8d,r8d: ZF PF set
    let h = dispatch::handler_for(insn, CpuModel::X86_64);
    h(cpu, &mut NullBus, insn)?;
    let s = &cpu.s;
    let mut o = *f;
    for k in 0..3 {
        o.xmm[k] = [s.fpu.xmm[k] as u64, (s.fpu.xmm[k] >> 64) as u64];
    }
    o.mm = [s.fpu.st[0] as u64, s.fpu.st[1] as u64];
    o.rax = s.gpr[0];
    o.rcx = s.gpr[1];
    o.rdx = s.gpr[2];
    o.mxcsr_out = s.fpu.mxcsr;
    o.rflags = s.flags() & 0x8d5;
    cpu.mem.read(GUEST_MEM, &mut o.mem);
    Ok(o)
}

fn imms_for(m: Mnemonic, r: &mut Rng) -> Vec<u8> {
    use Mnemonic::*;
    match m {
        Cmpps | Cmpss | Cmppd | Cmpsd => (0..8).collect(),
        Roundps | Roundpd | Roundss | Roundsd => (0..16).collect(),
        _ => {
            let mut v: Vec<u8> = vec![0, 1, 0xff, 0x1b, 0x80, 8, 16, 31, 32, 63, 64];
            v.extend((0..13).map(|_| r.next() as u8));
            v.sort();
            v.dedup();
            v
        }
    }
}

#[test]
fn simd_matches_host() {
    let cases: usize = std::env::var("KAGAMI_SIMD_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cpu = new_cpu();
    let mut stats: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut forms = 0;
    let mut mem_cases = 0;
    for code in Code::values() {
        if code.encoding() != EncodingKind::Legacy || !dispatch::implemented(code) {
            continue;
        }
        let m = code.mnemonic();
        let feats = code.cpuid_features();
        let simd = feats.iter().any(|f| {
            let n = format!("{f:?}");
            n.starts_with("SSE") || n == "MMX" || n.starts_with("SSSE") || n == "PCLMULQDQ" || n == "AES"
        });
        if !simd || skipped(m) {
            continue;
        }
        let Some(kinds) = operands(code) else { continue };
        let imms = if kinds.last() == Some(&K::imm8) {
            imms_for(m, &mut r)
        } else {
            vec![0]
        };
        for (imm, mem) in imms.iter().flat_map(|&i| [(i, false), (i, true)]) {
            let Some(insn) = build(code, &kinds, imm, mem) else { continue };
            let mut enc = Encoder::new(64);
            if enc.encode(&insn, 0).is_err() {
                continue;
            }
            let bytes = enc.take_buffer();
            let decoded = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode();
            assert_eq!(decoded.code(), code);
            let native = Native::new(&bytes);
            forms += 1;
            let lanes = lanes_of(m);
            let per = (cases / 4).max(40);
            let n = if kinds.last() == Some(&K::imm8) { per } else { cases };
            for _ in 0..n {
                let ln = if r.below(10) < 8 {
                    lanes
                } else {
                    [Lanes::F32, Lanes::F64, Lanes::Int][r.below(3) as usize]
                };
                let mut f = Frame {
                    xmm: [vector(&mut r, ln), vector(&mut r, ln), vector(&mut r, ln)],
                    // Random RC, DAZ, FTZ and (sometimes) already-set flags.
                    mxcsr_in: 0x1f80
                        | ((r.below(4) as u32) << 13)
                        | ((r.below(2) as u32) << 6)
                        | ((r.below(2) as u32) << 15)
                        | ((r.below(4) as u32 & 1) * (r.below(64) as u32)),
                    rax: int_edge(&mut r),
                    rcx: int_edge(&mut r),
                    rdx: int_edge(&mut r) % 40,
                    mm: [vector(&mut r, ln)[0], vector(&mut r, ln)[0]],
                    ..Frame::default()
                };
                if r.below(3) == 0 {
                    f.xmm[1] = f.xmm[0];
                }
                let mv = [vector(&mut r, ln), vector(&mut r, ln)];
                for (k, q) in mv.iter().flatten().enumerate() {
                    f.mem[8 * k..8 * k + 8].copy_from_slice(&q.to_le_bytes());
                }
                if r.below(4) == 0 {
                    f.rax = r.below(40).wrapping_sub(20);
                }
                let emu = emulate(&mut cpu, &decoded, &f);
                let mut host = f;
                native.run(&mut host);
                host.rflags &= 0x8d5;
                host.host_mxcsr = 0;
                let ok = match emu {
                    Ok(mut e) => {
                        e.host_mxcsr = 0;
                        e == host || (approx(m) && approx_ok(&host, &e))
                    }
                    Err(_) => false,
                };
                let st = stats.entry(format!("{m:?}")).or_default();
                if mem {
                    mem_cases += 1;
                }
                st.0 += 1;
                if !ok {
                    st.1 += 1;
                    if failures.len() < 60 {
                        failures.push(format!(
                            "{decoded} (imm {imm:#x})\n  in   {f:x?}\n  host {host:x?}\n  emu  {emu:x?}"
                        ));
                    }
                }
            }
        }
    }
    let total: usize = stats.values().map(|s| s.0).sum();
    let bad: usize = stats.values().map(|s| s.1).sum();
    let mut line = String::new();
    for (m, (n, b)) in &stats {
        if *b > 0 {
            line += &format!("{m}: {b}/{n} FAIL; ");
        }
    }
    println!(
        "simd_host: {forms} instruction forms, {} mnemonics, {total} cases ({mem_cases} with a memory operand), {bad} mismatches",
        stats.len()
    );
    println!("mnemonics: {}", stats.keys().cloned().collect::<Vec<_>>().join(" "));
    for f in &failures {
        println!("{f}");
    }
    println!("{line}");
    assert_eq!(bad, 0, "{bad} of {total} SIMD cases differ from the host");
}

/// FXSAVE64 after MMX and SSE register loads: kagami's image must match
/// the host's in FCW, FSW, the abridged tag byte, MXCSR, the ST/MM area
/// and the XMM area (FOP/FIP/FDP hold host addresses, and MXCSR_MASK is
/// model-specific, so those are not compared).
#[test]
fn fxsave_image_matches_host() {
    #[repr(C, align(16))]
    struct Area {
        regs: [u8; 64], // xmm0-2 at 0/16/32, mm0 at 48, mm1 at 56
        mxcsr: u32,     // 64
        host_mxcsr: u32,
        _pad: [u8; 56],
        image: [u8; 512], // 128
    }
    let mut a = CodeAssembler::new(64).unwrap();
    a.stmxcsr(dword_ptr(rdi + 68)).unwrap();
    a.ldmxcsr(dword_ptr(rdi + 64)).unwrap();
    a.movdqu(xmm0, xmmword_ptr(rdi)).unwrap();
    a.movdqu(xmm1, xmmword_ptr(rdi + 16)).unwrap();
    a.movdqu(xmm2, xmmword_ptr(rdi + 32)).unwrap();
    a.movq(mm0, qword_ptr(rdi + 48)).unwrap();
    a.movq(mm1, qword_ptr(rdi + 56)).unwrap();
    a.fxsave64(ptr(rdi + 128)).unwrap();
    a.emms().unwrap();
    a.ldmxcsr(dword_ptr(rdi + 68)).unwrap();
    a.ret().unwrap();
    let native = Native::new(&[]);
    let code = a.assemble(0).unwrap();
    // SAFETY: `native.mem` is a 4 KiB RWX mapping owned by `native`.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), native.mem, code.len()) };

    let mut r = Rng(0x1234_5678_9abc_def1);
    for _ in 0..200 {
        let mut area = Area {
            regs: [0; 64],
            mxcsr: 0x1f80 | ((r.below(4) as u32) << 13) | (r.below(64) as u32),
            host_mxcsr: 0,
            _pad: [0; 56],
            image: [0; 512],
        };
        for c in area.regs.chunks_mut(8) {
            c.copy_from_slice(&int_edge(&mut r).to_le_bytes());
        }
        // SAFETY: as in `Native::run`; the function only touches `area`.
        unsafe {
            let func: extern "sysv64" fn(*mut Area) = core::mem::transmute(native.mem);
            func(&mut area);
        }

        let mut cpu = new_cpu();
        let b = |k: usize| u128::from_le_bytes(area.regs[k..k + 16].try_into().unwrap());
        for k in 0..3 {
            cpu.s.fpu.xmm[k] = b(16 * k);
        }
        cpu.s.fpu.mxcsr = area.mxcsr;
        cpu.s.fpu.fcw = u16::from_le_bytes([area.image[0], area.image[1]]);
        cpu.s.fpu.fsw = 0;
        cpu.s.fpu.ftw = 0xffff;
        cpu.s.gpr[6] = GUEST_MEM;
        cpu.mem.write(GUEST_MEM, &area.regs[48..64]);
        let mut step = |asm: &dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>| {
            let mut a = CodeAssembler::new(64).unwrap();
            asm(&mut a).unwrap();
            let bytes = a.assemble(0).unwrap();
            let insn = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode();
            dispatch::handler_for(&insn, CpuModel::X86_64)(&mut cpu, &mut NullBus, &insn).unwrap();
        };
        step(&|a| a.movq(mm0, qword_ptr(rsi)));
        step(&|a| a.movq(mm1, qword_ptr(rsi + 8)));
        step(&|a| a.fxsave64(ptr(rsi + 0x100)));
        let mut img = [0u8; 512];
        cpu.mem.read(GUEST_MEM + 0x100, &mut img);
        let host = &area.image;
        assert_eq!(img[0..5], host[0..5], "FCW, FSW, abridged tag");
        assert_eq!(img[24..28], host[24..28], "MXCSR");
        assert_eq!(img[32..160], host[32..160], "ST/MM registers");
        assert_eq!(img[160..208], host[160..208], "XMM0-2");
    }
}
