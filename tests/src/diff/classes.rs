//! Which iced-x86 `Code`s the tester generates, grouped into classes, and
//! whether the host can run them.
//!
//! A code is a candidate when it is a legacy-encoded (or, for BMI, a
//! VEX-encoded all-GPR) instruction valid in 64-bit mode at CPL 3 that falls
//! through to the next instruction, does not move the stack pointer, is not
//! privileged or I/O, and whose operands are all kinds the generator can fill
//! (registers, immediates, `[rbx+disp]` memory, the string registers).

use iced_x86::{Code, CpuidFeature, DecoderOptions, EncodingKind, FlowControl, Instruction, Mnemonic, OpCodeOperandKind as K};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// General-purpose integer: ALU, shifts, multiply/divide, bit operations,
    /// moves, conversions, flag instructions, CRC32, MOVBE, ADX.
    Int,
    /// VEX-encoded BMI1/BMI2 on general-purpose registers.
    Bmi,
    /// String instructions (with and without REP) and others addressing
    /// memory through RSI/RDI, mixed with integer instructions.
    Str,
    X87,
    Mmx,
    Sse,
}

impl Class {
    pub const ALL: [Class; 6] = [Class::Int, Class::Bmi, Class::Str, Class::X87, Class::Mmx, Class::Sse];

    pub fn name(self) -> &'static str {
        match self {
            Class::Int => "int",
            Class::Bmi => "bmi",
            Class::Str => "string",
            Class::X87 => "x87",
            Class::Mmx => "mmx",
            Class::Sse => "sse",
        }
    }
}

/// Instructions left out on purpose, and why.
fn denied(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        // Results differ between hosts or runs.
        Cpuid | Rdtsc | Rdtscp | Rdrand | Rdseed | Rdpid | Rdpmc | Xgetbv | Rdpkru | Wrpkru | Rdsspd | Rdsspq
        // Read or write the segment/descriptor state, which differs between
        // the host process and the emulated setup.
        | Sgdt | Sidt | Sldt | Str | Smsw | Lar | Lsl | Verr | Verw | Lfs | Lgs | Lss | Rdfsbase | Rdgsbase | Wrfsbase | Wrgsbase
        // Store or load FIP/FDP/FOP, which AMD saves only with a pending
        // exception; FXSAVE/XSAVE belong to a later class.
        | Fnsave | Fsave | Frstor | Fnstenv | Fstenv | Fldenv | Fxsave | Fxsave64 | Fxrstor | Fxrstor64
        // Monitor/wait, transactional memory, cache-line writes outside the
        // data window, serialising hints: nothing to compare or host-dependent.
        | Monitor | Mwait | Monitorx | Mwaitx | Umonitor | Umwait | Tpause | Xbegin | Xend | Xabort | Xtest
        // Approximations whose exact bits are implementation-specific (SDM:
        // relative error at most 1.5*2^-12).
        | Rcpps | Rcpss | Rsqrtps | Rsqrtss
        | Clzero | Enqcmd | Enqcmds | Movdir64b | Serialize | Hreset | Wbnoinvd
    )
}

/// Whether the generator can fill an operand of this kind.
pub fn fillable(k: K) -> bool {
    matches!(
        k,
        K::mem
            | K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::mm_or_mem
            | K::xmm_or_mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_rm
            | K::r16_opcode
            | K::r32_reg
            | K::r32_rm
            | K::r32_opcode
            | K::r32_vvvv
            | K::r64_reg
            | K::r64_rm
            | K::r64_opcode
            | K::r64_vvvv
            | K::mm_reg
            | K::mm_rm
            | K::xmm_reg
            | K::xmm_rm
            | K::al
            | K::cl
            | K::ax
            | K::eax
            | K::rax
            | K::st0
            | K::sti_opcode
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::seg_rSI
            | K::es_rDI
            | K::seg_rDI
            | K::seg_rBX_al
    )
}

fn gpr_or_imm(k: K) -> bool {
    !matches!(
        k,
        K::mm_or_mem | K::xmm_or_mem | K::mm_reg | K::mm_rm | K::xmm_reg | K::xmm_rm | K::st0 | K::sti_opcode
    )
}

/// The class of a code, or `None` if the tester cannot generate it.
pub fn classify(code: Code) -> Option<Class> {
    let op = code.op_code();
    if !op.is_instruction() || !op.mode64() || op.decoder_option() != DecoderOptions::NONE {
        return None;
    }
    let mut probe = Instruction::default();
    probe.set_code(code);
    if probe.flow_control() != FlowControl::Next
        || op.is_privileged()
        || op.is_input_output()
        || op.is_stack_instruction()
        || op.must_be_cpl0()
        || !op.cpl3()
        || op.is_save_restore()
        || denied(code.mnemonic())
        // 16-bit SHLD/SHRD by CL: counts 17..31 (known only at run time)
        // give an undefined result; the immediate forms are kept in range.
        || matches!(code, Code::Shld_rm16_r16_CL | Code::Shrd_rm16_r16_CL)
        // 0F 0D with a register operand: a reserved NOP on Intel, #UD on AMD.
        || matches!(code, Code::Reservednop_rm16_r16_0F0D | Code::Reservednop_rm32_r32_0F0D | Code::Reservednop_rm64_r64_0F0D)
    {
        return None;
    }
    let kinds = op.op_kinds();
    if !kinds.iter().all(|k| fillable(*k)) {
        return None;
    }
    let feats = probe.cpuid_features();
    let has = |f: CpuidFeature| feats.contains(&f);
    match op.encoding() {
        EncodingKind::VEX if kinds.iter().all(|k| gpr_or_imm(*k)) => return Some(Class::Bmi),
        EncodingKind::Legacy => {}
        _ => return None,
    }
    if kinds.iter().any(|k| matches!(k, K::seg_rSI | K::es_rDI | K::seg_rDI)) {
        return Some(Class::Str);
    }
    if has(CpuidFeature::FPU)
        || has(CpuidFeature::FPU387)
        || has(CpuidFeature::FPU287)
        || kinds.iter().any(|k| matches!(k, K::st0 | K::sti_opcode))
    {
        return Some(Class::X87);
    }
    if kinds.iter().any(|k| matches!(k, K::xmm_or_mem | K::xmm_reg | K::xmm_rm)) {
        return Some(Class::Sse);
    }
    if kinds.iter().any(|k| matches!(k, K::mm_or_mem | K::mm_reg | K::mm_rm)) || has(CpuidFeature::MMX) {
        return Some(Class::Mmx);
    }
    if has(CpuidFeature::SSE) || has(CpuidFeature::SSE2) || has(CpuidFeature::SSE3) || has(CpuidFeature::SSE4A) {
        // LDMXCSR/STMXCSR, fences, prefetches, CLFLUSH, MOVNTI and friends.
        return Some(Class::Sse);
    }
    Some(Class::Int)
}

/// Host CPUID, read once.
struct HostCpuid {
    l1_ecx: u32,
    l1_edx: u32,
    l7_ebx: u32,
    e1_ecx: u32,
    e1_edx: u32,
}

fn host() -> &'static HostCpuid {
    use std::sync::OnceLock;
    static H: OnceLock<HostCpuid> = OnceLock::new();
    H.get_or_init(|| {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        // SAFETY (not unsafe on x86_64 since Rust 1.94's safe intrinsics? keep
        // the block for older compilers): CPUID exists on every x86-64.
        #[allow(unused_unsafe)]
        unsafe {
            let max = __cpuid(0).eax;
            let emax = __cpuid(0x8000_0000).eax;
            let l1 = __cpuid(1);
            let l7 = if max >= 7 { __cpuid_count(7, 0).ebx } else { 0 };
            let e1 = if emax >= 0x8000_0001 { __cpuid(0x8000_0001) } else { __cpuid(0) };
            HostCpuid {
                l1_ecx: l1.ecx,
                l1_edx: l1.edx,
                l7_ebx: l7,
                e1_ecx: if emax >= 0x8000_0001 { e1.ecx } else { 0 },
                e1_edx: if emax >= 0x8000_0001 { e1.edx } else { 0 },
            }
        }
    })
}

/// Whether the host is an AMD processor (for the few documented vendor
/// differences the comparison allows).
pub fn host_is_amd() -> bool {
    use std::sync::OnceLock;
    static AMD: OnceLock<bool> = OnceLock::new();
    *AMD.get_or_init(|| {
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 processor.
        let l0 = unsafe { std::arch::x86_64::__cpuid(0) };
        l0.ebx == u32::from_le_bytes(*b"Auth")
    })
}

/// Whether the host implements every CPUID feature the instruction needs.
/// Features not listed here count as missing (the code is skipped).
pub fn host_supports(feats: &[CpuidFeature]) -> bool {
    use CpuidFeature as F;
    let h = host();
    feats.iter().all(|f| match f {
        F::INTEL8086 | F::INTEL186 | F::INTEL286 | F::INTEL386 | F::INTEL486 | F::X64 | F::MULTIBYTENOP | F::PAUSE | F::CPUID => true,
        F::FPU | F::FPU287 | F::FPU387 => h.l1_edx & 1 != 0,
        F::CX8 => h.l1_edx & (1 << 8) != 0,
        F::CMOV => h.l1_edx & (1 << 15) != 0,
        F::CLFSH => h.l1_edx & (1 << 19) != 0,
        F::MMX => h.l1_edx & (1 << 23) != 0,
        F::FXSR => h.l1_edx & (1 << 24) != 0,
        F::SSE => h.l1_edx & (1 << 25) != 0,
        F::SSE2 => h.l1_edx & (1 << 26) != 0,
        F::SSE3 => h.l1_ecx & 1 != 0,
        F::PCLMULQDQ => h.l1_ecx & (1 << 1) != 0,
        F::SSSE3 => h.l1_ecx & (1 << 9) != 0,
        F::CMPXCHG16B => h.l1_ecx & (1 << 13) != 0,
        F::SSE4_1 => h.l1_ecx & (1 << 19) != 0,
        F::SSE4_2 => h.l1_ecx & (1 << 20) != 0,
        F::MOVBE => h.l1_ecx & (1 << 22) != 0,
        F::POPCNT => h.l1_ecx & (1 << 23) != 0,
        F::AES => h.l1_ecx & (1 << 25) != 0,
        F::BMI1 => h.l7_ebx & (1 << 3) != 0,
        F::BMI2 => h.l7_ebx & (1 << 8) != 0,
        F::ADX => h.l7_ebx & (1 << 19) != 0,
        F::SHA => h.l7_ebx & (1 << 29) != 0,
        F::LZCNT => h.e1_ecx & (1 << 5) != 0,
        F::SSE4A => h.e1_ecx & (1 << 6) != 0,
        F::PREFETCHW => h.e1_ecx & (1 << 8) != 0,
        F::SYSCALL => h.e1_edx & (1 << 11) != 0,
        _ => false,
    })
}

/// One class's codes, split by what can run.
#[derive(Default, Debug)]
pub struct ClassCodes {
    /// Generated: host supports it and kagami implements it.
    pub run: Vec<Code>,
    /// The host supports it but kagami does not implement it yet.
    pub unimplemented: Vec<Code>,
    /// The host lacks a CPUID feature it needs.
    pub host_missing: Vec<Code>,
}

pub fn codes_of(class: Class) -> ClassCodes {
    let mut c = ClassCodes::default();
    for code in Code::values() {
        if classify(code) != Some(class) {
            continue;
        }
        let mut probe = Instruction::default();
        probe.set_code(code);
        if !host_supports(probe.cpuid_features()) {
            c.host_missing.push(code);
        } else if !kagami_cpu::dispatch::implemented(code) {
            c.unimplemented.push(code);
        } else {
            c.run.push(code);
        }
    }
    c
}
