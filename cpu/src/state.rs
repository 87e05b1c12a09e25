//! The architectural state of one x86-64 logical processor.
//!
//! Everything a guest can observe lives in [`CpuState`], one `#[repr(C)]` struct
//! so that translated code (kagami-jit) can address fields at fixed offsets.
//! `tests::offsets` pins every offset the JIT may use; moving a field fails that
//! test, not a guest. Derived values (mode, CPL, decoder bitness) are cached in
//! the same struct and recomputed by `Cpu::update_mode` whenever CR0, EFER, CS
//! or RFLAGS.VM change.

use serde::{Deserialize, Serialize};

/// Index of a segment register, in the encoding order of the ModRM `sreg` field.
pub const ES: usize = 0;
pub const CS: usize = 1;
pub const SS: usize = 2;
pub const DS: usize = 3;
pub const FS: usize = 4;
pub const GS: usize = 5;

/// GPR indices in encoding order.
pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;
pub const RSP: usize = 4;
pub const RBP: usize = 5;
pub const RSI: usize = 6;
pub const RDI: usize = 7;

/// RFLAGS bits.
pub mod flags {
    pub const CF: u64 = 1 << 0;
    pub const FIXED1: u64 = 1 << 1;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    pub const IOPL: u64 = 3 << 12;
    pub const NT: u64 = 1 << 14;
    pub const RF: u64 = 1 << 16;
    pub const VM: u64 = 1 << 17;
    pub const AC: u64 = 1 << 18;
    pub const VIF: u64 = 1 << 19;
    pub const VIP: u64 = 1 << 20;
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic flags that lazy evaluation computes.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
    /// Bits software can ever see set in RFLAGS.
    pub const LIVE: u64 = ARITH | FIXED1 | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;
}

/// Control register bits.
pub mod cr0 {
    pub const PE: u64 = 1 << 0;
    pub const MP: u64 = 1 << 1;
    pub const EM: u64 = 1 << 2;
    pub const TS: u64 = 1 << 3;
    pub const ET: u64 = 1 << 4;
    pub const NE: u64 = 1 << 5;
    pub const WP: u64 = 1 << 16;
    pub const AM: u64 = 1 << 18;
    pub const NW: u64 = 1 << 29;
    pub const CD: u64 = 1 << 30;
    pub const PG: u64 = 1 << 31;
}
pub mod cr4 {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    pub const PSE: u64 = 1 << 4;
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const UMIP: u64 = 1 << 11;
    pub const FSGSBASE: u64 = 1 << 16;
    pub const PCIDE: u64 = 1 << 17;
    pub const OSXSAVE: u64 = 1 << 18;
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
}
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
}

/// A segment register with its hidden descriptor cache.
///
/// `attr` packs descriptor bits 40..47 (type, S, DPL, P) in bits 0..7 and
/// bits 52..55 (AVL, L, D/B, G) in bits 8..11, as AMD's VMCB does.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub base: u64,
    /// Byte-granular limit (already scaled by G).
    pub limit: u32,
    pub selector: u16,
    pub attr: u16,
}

pub mod attr {
    pub const TYPE_MASK: u16 = 0xf;
    pub const ACCESSED: u16 = 1;
    /// Code segment: readable; data segment: writable.
    pub const RW: u16 = 2;
    /// Code: conforming; data: expand-down.
    pub const DC: u16 = 4;
    pub const CODE: u16 = 8;
    pub const S: u16 = 1 << 4;
    pub const DPL_SHIFT: u16 = 5;
    pub const P: u16 = 1 << 7;
    pub const AVL: u16 = 1 << 8;
    pub const L: u16 = 1 << 9;
    pub const DB: u16 = 1 << 10;
    pub const G: u16 = 1 << 11;
}

impl Segment {
    pub fn dpl(&self) -> u8 {
        ((self.attr >> attr::DPL_SHIFT) & 3) as u8
    }
    pub fn present(&self) -> bool {
        self.attr & attr::P != 0
    }
    pub fn is_code(&self) -> bool {
        self.attr & attr::CODE != 0
    }
    /// A segment as real mode (and virtual-8086 mode) loads it: base = sel*16.
    pub fn real(selector: u16) -> Segment {
        Segment {
            base: (selector as u64) << 4,
            limit: 0xffff,
            selector,
            attr: attr::P | attr::S | attr::RW | attr::ACCESSED,
        }
    }
}

/// GDTR/IDTR.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReg {
    pub base: u64,
    pub limit: u32,
    pub _pad: u32,
}

/// The execution mode, derived from CR0.PE, EFER.LMA, RFLAGS.VM and CS.L/D.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[default]
    Real = 0,
    V86 = 1,
    Prot16 = 2,
    Prot32 = 3,
    /// Long mode, compatibility sub-mode with a 16-bit CS.
    Compat16 = 4,
    /// Long mode, compatibility sub-mode with a 32-bit CS.
    Compat32 = 5,
    Long64 = 6,
}

impl Mode {
    /// Default operand/address size in bits, as the decoder needs it.
    pub fn bitness(self) -> u32 {
        match self {
            Mode::Real | Mode::V86 | Mode::Prot16 | Mode::Compat16 => 16,
            Mode::Prot32 | Mode::Compat32 => 32,
            Mode::Long64 => 64,
        }
    }
    pub fn is_long(self) -> bool {
        matches!(self, Mode::Compat16 | Mode::Compat32 | Mode::Long64)
    }
    pub fn is_protected(self) -> bool {
        !matches!(self, Mode::Real | Mode::V86)
    }
}

/// Which operation last set the arithmetic flags; see `flags.rs`.
/// The low two bits are log2 of the operand size in bytes.
pub type CcOp = u32;

/// x87 FPU, MMX and SSE state, laid out like the FXSAVE image's register part
/// so FXSAVE/FXRSTOR are copies.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FpuState {
    /// ST0..ST7 as physical registers R0..R7, each an 80-bit extended value
    /// in the low 10 bytes (mantissa in bits 0..63, sign+exponent in 64..79).
    pub st: [u128; 8],
    pub xmm: [u128; 16],
    pub fcw: u16,
    pub fsw: u16,
    /// Full two-bit tag word (00 valid, 01 zero, 10 special, 11 empty).
    pub ftw: u16,
    pub fop: u16,
    pub fip: u64,
    pub fdp: u64,
    pub fcs: u16,
    pub fds: u16,
    pub mxcsr: u32,
    /// AVX upper halves are not implemented; XCR0 allows x87|SSE only.
    pub xcr0: u64,
}

impl Default for FpuState {
    fn default() -> Self {
        FpuState {
            st: [0; 8],
            xmm: [0; 16],
            fcw: 0x037f,
            fsw: 0,
            ftw: 0xffff,
            fop: 0,
            fip: 0,
            fdp: 0,
            fcs: 0,
            fds: 0,
            mxcsr: 0x1f80,
            xcr0: 1,
        }
    }
}

/// Model-specific registers kagami implements, by name.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msrs {
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub pat: u64,
    pub tsc_aux: u64,
    pub apic_base: u64,
    pub misc_enable: u64,
    pub mtrr_def_type: u64,
    pub mtrr_fixed: [u64; 11],
    pub mtrr_var: [u64; 16],
    pub spec_ctrl: u64,
    pub tsc_adjust: u64,
    /// Machine-check global status and control, and the banks' control
    /// registers (`system/mca.rs`).
    #[serde(default)]
    pub mcg_status: u64,
    #[serde(default)]
    pub mcg_ctl: u64,
    #[serde(default)]
    pub mc_ctl: [u64; crate::system::mca::BANKS],
}

/// Complete architectural state. Field order is ABI for the JIT.
#[repr(C)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuState {
    pub gpr: [u64; 16],
    pub rip: u64,
    /// RFLAGS, except that the six arithmetic flags are only valid here when
    /// `cc_op == CC_EFLAGS`; otherwise they are computed from the lazy fields.
    pub rflags: u64,
    pub cc_op: CcOp,
    pub _pad0: u32,
    /// Result of the last flag-setting operation.
    pub cc_dst: u64,
    /// First source operand (or, for INC/DEC, the carry flag to keep).
    pub cc_src1: u64,
    /// Second source operand (or carry-in for ADC/SBB).
    pub cc_src2: u64,
    pub segs: [Segment; 6],
    pub ldtr: Segment,
    pub tr: Segment,
    pub gdtr: TableReg,
    pub idtr: TableReg,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub dr: [u64; 8],
    pub tsc: u64,
    /// Instructions retired since reset (also the deterministic clock).
    pub icount: u64,
    /// Physical address mask: bit 20 cleared while the A20 gate is closed.
    pub a20_mask: u64,
    pub msr: Msrs,
    pub fpu: FpuState,
    /// Cached: current mode.
    pub mode: Mode,
    /// Cached: current privilege level.
    pub cpl: u8,
    /// Interrupts are inhibited for one instruction (after STI, MOV SS, POP SS).
    pub irq_shadow: u8,
    /// The CPU executed HLT and waits for an interrupt.
    pub halted: u8,
    /// NMIs are blocked until the next IRET.
    pub nmi_blocked: u8,
    /// Waiting for SIPI after INIT (application processors).
    pub wait_for_sipi: u8,
    pub _pad1: [u8; 2],
}

impl Default for CpuState {
    fn default() -> Self {
        let mut s = CpuState::blank();
        s.reset();
        s
    }
}

impl CpuState {
    /// The power-on / RESET state (SDM Vol. 3A, 10.1.1, table 10-1).
    pub fn reset(&mut self) {
        let icount = self.icount;
        let tsc = self.tsc;
        *self = CpuState {
            icount,
            tsc,
            ..CpuState::blank()
        };
        self.rflags = flags::FIXED1;
        self.rip = 0xfff0;
        self.gpr[RDX] = 0x0006_0600; // family 6, model 0x60 stepping: see cpuid.rs
        for (i, s) in self.segs.iter_mut().enumerate() {
            *s = Segment::real(0);
            if i == CS {
                s.selector = 0xf000;
                s.base = 0xffff_0000;
                s.attr = attr::P | attr::S | attr::CODE | attr::RW | attr::ACCESSED;
            }
        }
        self.ldtr = Segment {
            base: 0,
            limit: 0xffff,
            selector: 0,
            attr: attr::P | 2,
        };
        self.tr = Segment {
            base: 0,
            limit: 0xffff,
            selector: 0,
            attr: attr::P | 0xb,
        };
        self.gdtr = TableReg {
            base: 0,
            limit: 0xffff,
            _pad: 0,
        };
        self.idtr = TableReg {
            base: 0,
            limit: 0xffff,
            _pad: 0,
        };
        self.cr0 = cr0::ET | cr0::NW | cr0::CD;
        self.dr[6] = 0xffff_0ff0;
        self.dr[7] = 0x400;
        self.a20_mask = !0;
        self.msr.pat = 0x0007_0406_0007_0406;
        self.msr.apic_base = 0xfee0_0000 | (1 << 11) | (1 << 8);
        self.fpu = FpuState::default();
        self.fpu.fcw = 0x0040;
        self.fpu.ftw = 0xffff;
        self.mode = Mode::Real;
        self.cpl = 0;
    }

    /// All-zero state (not a valid processor state until `reset`).
    fn blank() -> CpuState {
        CpuState {
            gpr: [0; 16],
            rip: 0,
            rflags: flags::FIXED1,
            cc_op: crate::flags::CC_EFLAGS,
            _pad0: 0,
            cc_dst: 0,
            cc_src1: 0,
            cc_src2: 0,
            segs: [Segment::default(); 6],
            ldtr: Segment::default(),
            tr: Segment::default(),
            gdtr: TableReg::default(),
            idtr: TableReg::default(),
            cr0: 0,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            dr: [0; 8],
            tsc: 0,
            icount: 0,
            a20_mask: !0,
            msr: Msrs::default(),
            fpu: FpuState::default(),
            mode: Mode::Real,
            cpl: 0,
            irq_shadow: 0,
            halted: 0,
            nmi_blocked: 0,
            wait_for_sipi: 0,
            _pad1: [0; 2],
        }
    }
}
