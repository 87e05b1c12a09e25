//! CPUID (SDM Vol. 2 "CPUID"). Feature bits are computed from the dispatch
//! table: a bit is set only when representative instructions of the
//! feature are implemented, so CPUID can never advertise more than kagami
//! executes. Processor-level features (paging modes, NX, APIC…) are set
//! where the code that implements them lives in this crate.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::dispatch::implemented;
use crate::exception::Result;
use crate::mmu::PHYS_ADDR_BITS;
use crate::state::{cr4, RAX, RBX, RCX, RDX};
use iced_x86::{Code, Instruction};
use std::sync::OnceLock;

/// Family 6, extended model 6, model 0, stepping 0 (also RESET's EDX).
pub const SIGNATURE: u32 = 0x0006_0600;
const MAX_STD: u32 = 0x1f;
/// The local APIC ID of the (single) processor, as leaves 1, 0xB and 0x1F report it.
pub const APIC_ID: u32 = 0;
const MAX_EXT: u32 = 0x8000_0008;

/// One named feature bit: (leaf, subleaf, register 0..4 = EAX..EDX, bit, name).
pub type Feature = (u32, u32, usize, u32, &'static str);

fn all(codes: &[Code]) -> bool {
    codes.iter().all(|c| implemented(*c))
}

/// The feature bits kagami advertises, by name (computed once).
pub fn features() -> &'static [Feature] {
    static F: OnceLock<Vec<Feature>> = OnceLock::new();
    F.get_or_init(|| {
        use Code::*;
        let (a, b, c, d) = (0usize, 1usize, 2usize, 3usize);
        let _ = a;
        let candidates: Vec<(Feature, bool)> = vec![
            // Leaf 1 EDX.
            ((1, 0, d, 0, "fpu"), all(&[Fninit, Fld_m80fp, Fsqrt, Fcos, Fxch_st0_sti])),
            ((1, 0, d, 3, "pse"), true),
            ((1, 0, d, 4, "tsc"), all(&[Rdtsc])),
            ((1, 0, d, 5, "msr"), all(&[Rdmsr, Wrmsr])),
            ((1, 0, d, 6, "pae"), true),
            // Machine-check architecture: the banks read as an idle
            // machine's (`msr.rs`); #MC itself is never raised.
            ((1, 0, d, 7, "mce"), true),
            ((1, 0, d, 8, "cx8"), all(&[Cmpxchg8b_m64])),
            ((1, 0, d, 9, "apic"), true),
            ((1, 0, d, 11, "sep"), all(&[Sysenter, Sysexitd])),
            ((1, 0, d, 12, "mtrr"), true),
            ((1, 0, d, 13, "pge"), true),
            ((1, 0, d, 14, "mca"), true),
            ((1, 0, d, 15, "cmov"), all(&[Cmovo_r32_rm32])),
            ((1, 0, d, 16, "pat"), true),
            ((1, 0, d, 17, "pse36"), true),
            ((1, 0, d, 19, "clflush"), all(&[Clflush_m8])),
            ((1, 0, d, 23, "mmx"), all(&[Emms, Paddd_mm_mmm64])),
            ((1, 0, d, 24, "fxsr"), all(&[Fxsave_m512byte, Fxrstor_m512byte])),
            ((1, 0, d, 25, "sse"), all(&[Movaps_xmm_xmmm128, Addps_xmm_xmmm128])),
            (
                (1, 0, d, 26, "sse2"),
                all(&[Movdqa_xmm_xmmm128, Addpd_xmm_xmmm128, Paddq_xmm_xmmm128]),
            ),
            // Leaf 1 ECX.
            ((1, 0, c, 0, "sse3"), all(&[Addsubpd_xmm_xmmm128, Lddqu_xmm_m128, Fisttp_m32int])),
            ((1, 0, c, 1, "pclmulqdq"), all(&[Pclmulqdq_xmm_xmmm128_imm8])),
            ((1, 0, c, 9, "ssse3"), all(&[Pshufb_xmm_xmmm128])),
            ((1, 0, c, 13, "cx16"), all(&[Cmpxchg16b_m128])),
            ((1, 0, c, 19, "sse4_1"), all(&[Ptest_xmm_xmmm128, Pmulld_xmm_xmmm128])),
            (
                (1, 0, c, 20, "sse4_2"),
                all(&[
                    Pcmpestri_xmm_xmmm128_imm8,
                    Pcmpistrm_xmm_xmmm128_imm8,
                    Crc32_r32_rm32,
                    Popcnt_r32_rm32,
                ]),
            ),
            ((1, 0, c, 22, "movbe"), all(&[Movbe_r32_m32])),
            ((1, 0, c, 23, "popcnt"), all(&[Popcnt_r32_rm32])),
            ((1, 0, c, 25, "aes"), all(&[Aesenc_xmm_xmmm128])),
            ((1, 0, c, 26, "xsave"), all(&[Xsave_mem, Xrstor_mem, Xgetbv, Xsetbv])),
            ((1, 0, c, 30, "rdrand"), all(&[Rdrand_r32])),
            ((1, 0, c, 31, "hypervisor"), true),
            // Leaf 7 subleaf 0.
            ((7, 0, b, 0, "fsgsbase"), all(&[Rdfsbase_r64, Wrfsbase_r64])),
            (
                (7, 0, b, 3, "bmi1"),
                all(&[VEX_Andn_r32_r32_rm32, VEX_Bextr_r32_rm32_r32, Tzcnt_r32_rm32]),
            ),
            ((7, 0, b, 7, "smep"), true),
            ((7, 0, b, 8, "bmi2"), all(&[VEX_Shlx_r32_rm32_r32])),
            ((7, 0, b, 10, "invpcid"), all(&[Invpcid_r64_m128])),
            ((7, 0, b, 18, "rdseed"), all(&[Rdseed_r32])),
            ((7, 0, b, 19, "adx"), all(&[Adcx_r32_rm32])),
            ((7, 0, b, 20, "smap"), all(&[Stac, Clac])),
            ((7, 0, b, 23, "clflushopt"), all(&[Clflushopt_m8])),
            ((7, 0, b, 24, "clwb"), all(&[Clwb_m8])),
            ((7, 0, c, 2, "umip"), true),
            ((7, 0, c, 22, "rdpid"), all(&[Rdpid_r64])),
            // Leaf 0xd subleaf 1.
            ((0xd, 1, a, 0, "xsaveopt"), all(&[Xsave_mem, Xsaveopt_mem])),
            ((0xd, 1, a, 1, "xsavec"), all(&[Xsave_mem, Xsavec_mem])),
            // XSAVES/XRSTORS and IA32_XSS (which can hold no component).
            ((0xd, 1, a, 3, "xsaves"), all(&[Xsaves_mem, Xrstors_mem])),
            // Extended leaves.
            ((0x8000_0001, 0, c, 0, "lahf_lm"), all(&[Lahf, Sahf])),
            ((0x8000_0001, 0, c, 5, "abm"), all(&[Lzcnt_r32_rm32])),
            ((0x8000_0001, 0, c, 8, "3dnowprefetch"), all(&[Prefetchw_m8])),
            ((0x8000_0001, 0, d, 11, "syscall"), all(&[Syscall, Sysretq])),
            ((0x8000_0001, 0, d, 20, "nx"), true),
            ((0x8000_0001, 0, d, 26, "pdpe1gb"), true),
            ((0x8000_0001, 0, d, 27, "rdtscp"), all(&[Rdtscp])),
            ((0x8000_0001, 0, d, 29, "lm"), true),
        ];
        let _ = (b, c);
        candidates.into_iter().filter(|(_, on)| *on).map(|(f, _)| f).collect()
    })
}

/// Whether a named feature is advertised.
pub fn has(name: &str) -> bool {
    features().iter().any(|f| f.4 == name)
}

fn feature_regs(leaf: u32, sub: u32) -> [u32; 4] {
    let mut r = [0u32; 4];
    for &(l, s, reg, bit, _) in features() {
        if l == leaf && s == sub {
            r[reg] |= 1 << bit;
        }
    }
    r
}

fn ascii(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

/// The brand string, 48 bytes, NUL padded.
const BRAND: &[u8; 48] = b"kagami x86-64 emulator\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

impl Cpu {
    /// CPUID leaf `leaf`, subleaf `sub`: [EAX, EBX, ECX, EDX].
    pub fn cpuid(&self, leaf: u32, sub: u32) -> [u32; 4] {
        // Intel: leaves past the maximum report the highest basic leaf.
        let leaf = match leaf {
            l if l > MAX_STD && l < 0x4000_0000 => MAX_STD,
            l if l > 0x4000_0000 && l < 0x8000_0000 => MAX_STD,
            l if l > MAX_EXT => MAX_STD,
            l => l,
        };
        let mut r = feature_regs(leaf, if matches!(leaf, 7 | 0xd) { sub } else { 0 });
        match leaf {
            0 => {
                r = [MAX_STD, ascii(b"Genu"), ascii(b"ntel"), ascii(b"ineI")];
            }
            1 => {
                r[0] = SIGNATURE;
                // CLFLUSH line 8 qwords, one logical processor, the APIC ID.
                r[1] = (8 << 8) | (1 << 16) | (APIC_ID << 24);
                if self.s.cr4 & cr4::OSXSAVE != 0 {
                    r[2] |= 1 << 27;
                }
            }
            2 => r = [1, 0, 0, 0],
            7 if sub == 0 => {}
            7 => r = [0; 4],
            0xd if has("xsave") => match sub {
                // x87 and SSE state only; the image is the 512-byte legacy
                // area plus the 64-byte header.
                0 => r = [3, 576, 576, 0],
                // EBX: the compacted area for XCR0 | IA32_XSS; ECX/EDX:
                // the IA32_XSS components supported (none).
                1 => r[1] = if has("xsaves") { 576 } else { 0 },
                _ => r = [0; 4],
            },
            // Extended topology (SDM Vol. 2 CPUID leaves 0BH and 1FH; Vol. 3A
            // 10.9.1): one thread per core, one core per package, so both
            // levels shift the x2APIC ID by 0 and count one processor.
            // Sub-leaves past the core level are invalid (type 0), and
            // every sub-leaf reports the x2APIC ID in EDX.
            0xb | 0x1f => {
                r = match sub {
                    0 => [0, 1, (1 << 8) | sub, APIC_ID],
                    1 => [0, 1, (2 << 8) | sub, APIC_ID],
                    _ => [0, 0, sub & 0xff, APIC_ID],
                };
            }
            0x4000_0000 => r = [0x4000_0000, ascii(b"Kaga"), ascii(b"miKa"), ascii(b"gami")],
            0x8000_0000 => r = [MAX_EXT, 0, 0, 0],
            0x8000_0002..=0x8000_0004 => {
                let k = (leaf - 0x8000_0002) as usize * 16;
                for (j, x) in r.iter_mut().enumerate() {
                    let b = &BRAND[k + 4 * j..k + 4 * j + 4];
                    *x = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            0x8000_0008 => r = [PHYS_ADDR_BITS | (48 << 8), 0, 0, 0],
            0x8000_0001 => {}
            _ => r = [0; 4],
        }
        r
    }
}

fn cpuid(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    let leaf = cpu.s.gpr[RAX] as u32;
    let sub = cpu.s.gpr[RCX] as u32;
    let r = cpu.cpuid(leaf, sub);
    for (reg, v) in [RAX, RBX, RCX, RDX].into_iter().zip(r) {
        cpu.s.gpr[reg] = v as u64;
    }
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    match code {
        Code::Cpuid => Some(cpuid),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{GuestMemory, PhysMap};

    #[test]
    fn advertised_features() {
        let names: Vec<&str> = features().iter().map(|f| f.4).collect();
        println!("CPUID features: {}", names.join(" "));
        // Processor features implemented in this crate are always there.
        for f in [
            "pse", "pae", "mce", "mca", "pge", "pat", "nx", "lm", "tsc", "msr", "sep", "syscall", "rdtscp", "rdrand", "rdseed",
        ] {
            assert!(has(f), "{f} missing");
        }
        let cpu = Cpu::new(GuestMemory::new(4096).unwrap(), PhysMap::new());
        let v = cpu.cpuid(0, 0);
        assert_eq!(&[v[1], v[3], v[2]].map(u32::to_le_bytes).concat(), b"GenuineIntel");
        let e = cpu.cpuid(0x8000_0001, 0);
        assert_ne!(e[3] & (1 << 29), 0);
        // Each advertised bit maps to its leaf; an unimplemented SSE4.2 instruction keeps it off.
        if !implemented(Code::Pcmpestri_xmm_xmmm128_imm8) {
            assert_eq!(cpu.cpuid(1, 0)[2] & (1 << 20), 0);
        }
        assert_eq!(cpu.cpuid(0x8000_0008, 0)[0] & 0xff, PHYS_ADDR_BITS);
        // Machine-check support is advertised (Linux needs both bits).
        assert_eq!(cpu.cpuid(1, 0)[3] & (1 << 7 | 1 << 14), 1 << 7 | 1 << 14);
        let h = cpu.cpuid(0x4000_0000, 0);
        assert_eq!(&[h[1], h[2], h[3]].map(u32::to_le_bytes).concat(), b"KagamiKagami");
    }
}

#[cfg(test)]
mod topology_tests {
    use super::*;
    use crate::memory::{GuestMemory, PhysMap};

    #[test]
    fn extended_topology_leaves_describe_one_thread_one_core() {
        let cpu = Cpu::new(GuestMemory::new(4096).unwrap(), PhysMap::new());
        assert!(cpu.cpuid(0, 0)[0] >= 0x1f, "leaf 0x1f is within the maximum basic leaf");
        let one = cpu.cpuid(1, 0);
        assert_eq!((one[1] >> 16) & 0xff, 1, "leaf 1: one logical processor");
        assert_eq!(one[3] & (1 << 28), 0, "no HTT");
        let apic = one[1] >> 24;
        for leaf in [0xb, 0x1f] {
            let smt = cpu.cpuid(leaf, 0);
            assert_eq!(smt, [0, 1, 0x100, apic], "leaf {leaf:#x}.0: SMT level, shift 0, one thread");
            let core = cpu.cpuid(leaf, 1);
            assert_eq!(core, [0, 1, 0x201, apic], "leaf {leaf:#x}.1: core level, one processor per package");
            for sub in [2, 3, 0x55] {
                let inv = cpu.cpuid(leaf, sub);
                assert_eq!(inv, [0, 0, sub, apic], "leaf {leaf:#x}.{sub}: invalid level");
            }
        }
        // Leaf 4 reports no cache levels, so no sharing count contradicts these.
        assert_eq!(cpu.cpuid(4, 0)[0] >> 26, 0);
        // Leaves between 0xd and 0x1f that kagami does not describe are zero.
        for leaf in [0xe, 0x10, 0x12, 0x14, 0x18] {
            assert_eq!(cpu.cpuid(leaf, 0), [0; 4], "leaf {leaf:#x}");
        }
    }
}
