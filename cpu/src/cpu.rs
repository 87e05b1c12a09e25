//! The processor object: architectural state plus the emulator's caches
//! (software TLB, decoded-block cache) and the model it emulates.

use crate::block::BlockCache;
use crate::memory::{GuestMemory, PhysMap};
use crate::mmu::Tlb;
use crate::state::{attr, cr0, efer, flags, CpuState, Mode, CS, SS};
use iced_x86::Register;

/// Which processor kagami pretends to be. The x86-64 model is the product;
/// the 80286 model exists to run real-mode conformance data recorded on a
/// 286, whose few visible differences are listed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuModel {
    #[default]
    X86_64,
    /// FLAGS 12..15 read 0 in real mode, instructions are limited to 10
    /// bytes, stack-segment limit faults are #GP, LOCK never faults, there is
    /// no FPU (ESC opcodes decode their operand and do nothing).
    I80286,
}

/// Why `Cpu::run` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The instruction budget ran out.
    Budget,
    /// HLT with interrupts that cannot arrive (or the caller asked to stop on HLT).
    Halted,
    /// A triple fault or shutdown condition: the machine should reset.
    TripleFault,
    /// The bus asked to stop (`Bus::stop_requested`).
    Stopped,
}

pub struct Cpu {
    pub s: CpuState,
    pub mem: GuestMemory,
    pub phys: PhysMap,
    pub tlb: Box<Tlb>,
    pub(crate) blocks: BlockCache,
    pub model: CpuModel,
    /// Set by an instruction that changes something a decoded block depends
    /// on (mode, CS, paging, code bytes, interrupt state): the executor leaves
    /// the current block after it.
    pub(crate) break_block: bool,
    /// Set when a handler requests a triple fault / shutdown.
    pub(crate) shutdown: bool,
    /// Vector of the exception being delivered, for the double-fault rule.
    pub(crate) delivering: Option<crate::exception::Class>,
    /// Use the decoded-block cache (off: decode every instruction; for tests
    /// that compare the two paths).
    pub use_block_cache: bool,
    /// Deterministic entropy for RDRAND/RDSEED (the machine's doorway seeds it).
    pub rng_state: u64,
    /// The dynamic translator, if one is installed (`jit_iface.rs`).
    pub(crate) jit: crate::jit_iface::JitSlot,
    /// DR6 B0-B3 bits of data/I/O breakpoints hit by the current
    /// instruction, reported as a #DB trap at the next boundary (`debug.rs`).
    pub(crate) db_hits: u8,
    /// Set by every event delivery (`deliver`): the single-step trap of an
    /// instruction that faulted or ran INT n is discarded.
    pub(crate) delivered: bool,
    /// The armed hardware breakpoints, decoded from DR0-DR3/DR7/CR4.DE.
    pub(crate) watch: crate::debug::Watch,
}

impl Cpu {
    pub fn new(mem: GuestMemory, phys: PhysMap) -> Cpu {
        Cpu {
            s: CpuState::default(),
            mem,
            phys,
            tlb: Tlb::new_boxed(),
            blocks: BlockCache::new(),
            model: CpuModel::X86_64,
            break_block: false,
            shutdown: false,
            delivering: None,
            use_block_cache: true,
            rng_state: 0x853c_49e6_748f_ea9b,
            jit: Default::default(),
            db_hits: 0,
            delivered: false,
            watch: Default::default(),
        }
    }

    /// A CPU whose physical address space is `bytes` of RAM at address 0 and
    /// nothing else: the machine of test programs, benchmarks and the fuzz target.
    pub fn with_ram(bytes: u64) -> Result<Cpu, crate::memory::MemoryError> {
        let mem = GuestMemory::new(bytes)?;
        let mut phys = PhysMap::new();
        phys.add(crate::memory::Region {
            start: 0,
            len: mem.len(),
            backing: 0,
            kind: crate::memory::RegionKind::Ram,
        })
        .map_err(|e| crate::memory::MemoryError(format!("{e:?}")))?;
        Ok(Cpu::new(mem, phys))
    }

    /// Replace the physical memory map (PAM changes, hot-plugged RAM…).
    pub fn set_phys_map(&mut self, phys: PhysMap) {
        self.phys = phys;
        self.flush_tlb_all();
        self.blocks.clear();
        self.jit_flush();
        self.break_block = true;
    }

    /// Processor RESET (INIT is the same but keeps some MSRs; SMP will need it).
    pub fn reset(&mut self) {
        self.s.reset();
        self.flush_tlb_all();
        self.blocks.clear();
        self.jit_flush();
        self.break_block = true;
        self.shutdown = false;
        self.delivering = None;
        self.db_hits = 0;
    }

    /// The INIT signal (SDM Vol. 3A 9.1, Table 9-1): registers as after
    /// RESET, except that the x87/MMX/SSE state, the MSRs and the A20 gate
    /// are kept. The bootstrap processor (IA32_APIC_BASE.BSP) restarts at the
    /// reset vector; an application processor waits for a start-up IPI.
    pub fn init(&mut self) {
        let fpu = self.s.fpu.clone();
        let msr = self.s.msr.clone();
        let a20 = self.s.a20_mask;
        self.reset();
        self.s.fpu = fpu;
        self.s.msr = msr;
        self.s.a20_mask = a20;
        if self.s.msr.apic_base & (1 << 8) == 0 {
            self.s.wait_for_sipi = 1;
            self.s.halted = 1;
        }
    }

    /// A start-up IPI: a CPU waiting after INIT starts in real mode at
    /// `vector` << 12 (CS = vector << 8, IP = 0). Returns whether it started.
    pub fn sipi(&mut self, vector: u8) -> bool {
        if self.s.wait_for_sipi == 0 {
            return false;
        }
        self.s.wait_for_sipi = 0;
        self.s.halted = 0;
        self.load_real_seg(CS, (vector as u16) << 8);
        self.s.rip = 0;
        self.update_mode();
        self.break_block = true;
        true
    }

    /// Open or close the A20 gate (port 0x92, the i8042 output port).
    pub fn set_a20(&mut self, enabled: bool) {
        let mask = if enabled { !0 } else { !(1u64 << 20) };
        if mask != self.s.a20_mask {
            self.s.a20_mask = mask;
            self.flush_tlb_all();
            self.break_block = true;
        }
    }

    /// Recompute `mode` and `cpl` from CR0, EFER, RFLAGS.VM and CS. Call after
    /// any change to those.
    pub fn update_mode(&mut self) {
        let s = &mut self.s;
        let cs = s.segs[CS];
        if s.cr0 & cr0::PE != 0 && s.cr0 & cr0::PG != 0 && s.efer & efer::LME != 0 {
            s.efer |= efer::LMA;
        } else {
            s.efer &= !efer::LMA;
        }
        s.mode = if s.cr0 & cr0::PE == 0 {
            Mode::Real
        } else if s.efer & efer::LMA != 0 {
            if cs.attr & attr::L != 0 {
                Mode::Long64
            } else if cs.attr & attr::DB != 0 {
                Mode::Compat32
            } else {
                Mode::Compat16
            }
        } else if s.rflags & flags::VM != 0 {
            Mode::V86
        } else if cs.attr & attr::DB != 0 {
            Mode::Prot32
        } else {
            Mode::Prot16
        };
        s.cpl = match s.mode {
            Mode::Real => 0,
            Mode::V86 => 3,
            _ => (cs.selector & 3) as u8,
        };
        self.break_block = true;
    }

    /// Stack-pointer width in bytes (SS.B, or 8 in 64-bit mode).
    #[inline]
    pub fn stack_size(&self) -> usize {
        if self.s.mode == Mode::Long64 {
            8
        } else if self.s.segs[SS].attr & attr::DB != 0 {
            4
        } else {
            2
        }
    }

    /// Ask the machine to reset (triple fault, or a handler that shuts down).
    pub fn request_shutdown(&mut self) {
        self.shutdown = true;
        self.break_block = true;
    }

    // ----- general-purpose registers by iced-x86 `Register` -----

    /// Read a general-purpose register of any width (AL..R15, AH..BH).
    #[inline(always)]
    pub fn reg(&self, r: Register) -> u64 {
        let (idx, shift, mask) = REG_TABLE[r as usize];
        (self.s.gpr[idx as usize] >> shift) & mask
    }

    /// Write a general-purpose register with x86-64 semantics: 8/16-bit
    /// writes merge, 32-bit writes zero-extend, 64-bit writes replace.
    #[inline(always)]
    pub fn set_reg(&mut self, r: Register, v: u64) {
        let (idx, shift, mask) = REG_TABLE[r as usize];
        let g = &mut self.s.gpr[idx as usize];
        if mask == 0xffff_ffff {
            *g = v & mask;
        } else {
            *g = (*g & !(mask << shift)) | ((v & mask) << shift);
        }
    }
}

/// (GPR index, bit shift, width mask) for every iced-x86 GPR; other
/// registers map to a harmless dummy and are never asked for.
static REG_TABLE: [(u8, u8, u64); 256] = build_reg_table();

const fn build_reg_table() -> [(u8, u8, u64); 256] {
    let mut t = [(0u8, 0u8, 0u64); 256];
    let mut i = 0;
    while i < 16 {
        // iced orders AL..R15L, AX..R15W, EAX..R15D, RAX..R15 each 16 apart,
        // except that AL,CL,DL,BL,AH,CH,DH,BH come first in the 8-bit block.
        t[Register::AX as usize + i] = (i as u8, 0, 0xffff);
        t[Register::EAX as usize + i] = (i as u8, 0, 0xffff_ffff);
        t[Register::RAX as usize + i] = (i as u8, 0, u64::MAX);
        i += 1;
    }
    // 8-bit: AL CL DL BL AH CH DH BH SPL BPL SIL DIL R8L..R15L
    let mut j = 0;
    while j < 4 {
        t[Register::AL as usize + j] = (j as u8, 0, 0xff);
        t[Register::AH as usize + j] = (j as u8, 8, 0xff);
        j += 1;
    }
    t[Register::SPL as usize] = (4, 0, 0xff);
    t[Register::BPL as usize] = (5, 0, 0xff);
    t[Register::SIL as usize] = (6, 0, 0xff);
    t[Register::DIL as usize] = (7, 0, 0xff);
    let mut k = 8;
    while k < 16 {
        t[Register::R8L as usize + k - 8] = (k as u8, 0, 0xff);
        k += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GuestMemory;

    #[test]
    fn register_views() {
        let mut c = Cpu::new(GuestMemory::new(4096).unwrap(), PhysMap::new());
        c.set_reg(Register::RAX, 0x1122_3344_5566_7788);
        assert_eq!(c.reg(Register::AL), 0x88);
        assert_eq!(c.reg(Register::AH), 0x77);
        assert_eq!(c.reg(Register::AX), 0x7788);
        assert_eq!(c.reg(Register::EAX), 0x5566_7788);
        c.set_reg(Register::AH, 0xaa);
        assert_eq!(c.reg(Register::RAX), 0x1122_3344_5566_aa88);
        c.set_reg(Register::EAX, 1);
        assert_eq!(c.reg(Register::RAX), 1);
        c.set_reg(Register::R15W, 0xbeef);
        assert_eq!(c.s.gpr[15], 0xbeef);
        c.set_reg(Register::SIL, 0x12);
        assert_eq!(c.reg(Register::RSI), 0x12);
        c.set_reg(Register::R9L, 0x34);
        assert_eq!(c.s.gpr[9], 0x34);
        assert_eq!(c.reg(Register::BH), 0);
    }
}
