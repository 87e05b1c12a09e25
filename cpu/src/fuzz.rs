//! The fuzzing harness shared by `fuzz/` (cargo-fuzz target
//! `decode_execute`) and the deterministic smoke test
//! `tests/tests/fuzz_smoke.rs`: arbitrary bytes become guest code, run for a
//! bounded number of instructions on a [`NullBus`]. Whatever the bytes, the
//! interpreter must return; a panic or a hang is a bug.
//!
//! The first input byte picks the setting: bits 0..1 the mode (real, 16-bit
//! protected, 32-bit protected, 64-bit), bit 2 turns the decoded-block cache
//! off. The state is set directly (no mode-switch code runs): a flat GDT,
//! an IDT or IVT whose every vector leads to a HLT, identity-mapped 2 MiB
//! large page for 64-bit mode. The rest of the input is the code.

use crate::bus::NullBus;
use crate::cpu::{Cpu, Exit};
use crate::state::{cr0, cr4, efer, Mode, Segment, TableReg, CS, DS, ES, FS, GS, RSP, SS};

/// Instructions one input may run.
pub const BUDGET: u64 = 10_000;

const RAM: u64 = 0x1_0000;
/// Every exception and interrupt handler: a HLT.
const HANDLER: u64 = 0x0500;
const GDT: u64 = 0x1000;
const IDT: u64 = 0x2000;
const PML4: u64 = 0x3000;
const PDPT: u64 = 0x4000;
const PD: u64 = 0x5000;
pub const CODE: u64 = 0x6000;
const CODE_MAX: usize = 0x8000;
const STACK_TOP: u64 = 0xfff0;

/// GDT selectors.
const SEL_CODE32: u16 = 0x08;
const SEL_DATA32: u16 = 0x10;
const SEL_CODE16: u16 = 0x18;
const SEL_DATA16: u16 = 0x20;
const SEL_CODE64: u16 = 0x28;

/// The descriptors, in selector order after the null one.
const DESCRIPTORS: [u64; 5] = [
    0x00cf_9b00_0000_ffff, // 32-bit code, flat
    0x00cf_9300_0000_ffff, // 32-bit data, flat
    0x0000_9b00_0000_ffff, // 16-bit code, 64 KiB
    0x0000_9300_0000_ffff, // 16-bit data, 64 KiB
    0x00af_9b00_0000_ffff, // 64-bit code
];

/// The processor mode an input runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuzzMode {
    Real,
    Prot16,
    Prot32,
    Long64,
}

impl FuzzMode {
    pub const ALL: [FuzzMode; 4] = [FuzzMode::Real, FuzzMode::Prot16, FuzzMode::Prot32, FuzzMode::Long64];

    /// The first input byte that selects this mode (with the block cache on).
    pub fn selector_byte(self) -> u8 {
        self as u8
    }
}

/// What one input did, for tests that check the harness itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub mode: Mode,
    pub exit: Exit,
    pub instructions: u64,
}

/// The hidden part of a segment register as loading `desc` would fill it.
fn segment(selector: u16, desc: u64) -> Segment {
    let base = ((desc >> 16) & 0xff_ffff) | ((desc >> 32) & 0xff00_0000);
    let raw_limit = ((desc & 0xffff) | ((desc >> 32) & 0xf_0000)) as u32;
    let g = desc & (1 << 55) != 0;
    let attr = (((desc >> 40) & 0xff) | (((desc >> 52) & 0xf) << 8)) as u16;
    Segment {
        base,
        limit: if g { (raw_limit << 12) | 0xfff } else { raw_limit },
        selector,
        attr,
    }
}

fn descriptor(selector: u16) -> u64 {
    DESCRIPTORS[(selector as usize >> 3) - 1]
}

/// An interrupt gate (type 0xE, DPL 0, present) to `sel:HANDLER`; 16 bytes
/// in long mode (the upper 8 are the zero high offset), 8 otherwise.
fn gate(sel: u16) -> u64 {
    (HANDLER & 0xffff) | ((sel as u64) << 16) | (0x8e << 40) | ((HANDLER >> 16) << 48)
}

/// Build the machine for `mode` with `code` at [`CODE`].
pub fn machine(mode: FuzzMode, code: &[u8]) -> Cpu {
    let mut cpu = Cpu::with_ram(RAM).expect("64 KiB of guest memory");

    // Real-mode IVT: every vector to 0000:HANDLER.
    let ivt: Vec<u8> = (0..256).flat_map(|_| (HANDLER as u32).to_le_bytes()).collect();
    cpu.mem.write(0, &ivt);
    cpu.mem.write(HANDLER, &[0xf4]); // HLT
    let gdt: Vec<u8> = std::iter::once(0u64).chain(DESCRIPTORS).flat_map(u64::to_le_bytes).collect();
    cpu.mem.write(GDT, &gdt);
    let (code_sel, data_sel) = match mode {
        FuzzMode::Real => (0, 0),
        FuzzMode::Prot16 => (SEL_CODE16, SEL_DATA16),
        FuzzMode::Prot32 => (SEL_CODE32, SEL_DATA32),
        FuzzMode::Long64 => (SEL_CODE64, SEL_DATA32),
    };
    let long = mode == FuzzMode::Long64;
    let idt: Vec<u8> = (0..256)
        .flat_map(|_| {
            let mut g = gate(code_sel).to_le_bytes().to_vec();
            if long {
                g.extend_from_slice(&0u64.to_le_bytes());
            }
            g
        })
        .collect();
    cpu.mem.write(IDT, &idt);
    // 64-bit paging: PML4[0] -> PDPT[0] -> PD[0] = 2 MiB page at 0 (P, RW, PS).
    cpu.mem.write(PML4, &(PDPT | 3).to_le_bytes());
    cpu.mem.write(PDPT, &(PD | 3).to_le_bytes());
    cpu.mem.write(PD, &0x83u64.to_le_bytes());
    cpu.mem.write(CODE, &code[..code.len().min(CODE_MAX)]);

    let s = &mut cpu.s;
    s.rip = CODE;
    s.gpr[RSP] = STACK_TOP;
    if mode == FuzzMode::Real {
        for seg in [CS, DS, ES, FS, GS, SS] {
            cpu.load_real_seg(seg, 0);
        }
        cpu.s.rip = CODE;
        cpu.update_mode();
        return cpu;
    }
    s.gdtr = TableReg {
        base: GDT,
        limit: (gdt.len() - 1) as u32,
        _pad: 0,
    };
    s.idtr = TableReg {
        base: IDT,
        limit: (idt.len() - 1) as u32,
        _pad: 0,
    };
    s.cr0 = cr0::PE | cr0::ET | cr0::NE;
    if long {
        s.cr0 |= cr0::PG;
        s.cr4 = cr4::PAE;
        s.cr3 = PML4;
        s.efer = efer::LME | efer::LMA;
    }
    s.segs[CS] = segment(code_sel, descriptor(code_sel));
    for seg in [DS, ES, FS, GS, SS] {
        s.segs[seg] = segment(data_sel, descriptor(data_sel));
    }
    cpu.update_mode();
    cpu.flush_tlb_all();
    cpu
}

/// Run one fuzz input: `data[0]` picks the setting, the rest is code.
pub fn decode_execute(data: &[u8]) -> Outcome {
    let Some((&sel, code)) = data.split_first() else {
        return Outcome {
            mode: Mode::Real,
            exit: Exit::Budget,
            instructions: 0,
        };
    };
    let mode = FuzzMode::ALL[(sel & 3) as usize];
    let mut cpu = machine(mode, code);
    cpu.use_block_cache = sel & 4 == 0;
    let mode = cpu.s.mode;
    let exit = cpu.run(&mut NullBus, BUDGET);
    Outcome {
        mode,
        exit,
        instructions: cpu.s.icount,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_selector_byte_gives_its_mode() {
        let want = [Mode::Real, Mode::Prot16, Mode::Prot32, Mode::Long64];
        for (m, w) in FuzzMode::ALL.iter().zip(want) {
            assert_eq!(decode_execute(&[m.selector_byte(), 0x90, 0xf4]).mode, w);
        }
    }

    #[test]
    fn nops_then_hlt_halt_in_every_mode() {
        for m in FuzzMode::ALL {
            for cache in [0, 4] {
                let o = decode_execute(&[m.selector_byte() | cache, 0x90, 0x90, 0x90, 0xf4]);
                assert_eq!((o.exit, o.instructions), (Exit::Halted, 4), "{m:?} cache={}", cache == 0);
            }
        }
    }

    #[test]
    fn a_fault_reaches_the_hlt_handler() {
        // UD2 raises #UD; delivery lands on the HLT at HANDLER. (While
        // IDT delivery is not written, protected modes shut down instead.)
        for m in FuzzMode::ALL {
            let mut cpu = machine(m, &[0x0f, 0x0b]);
            match cpu.run(&mut NullBus, BUDGET) {
                Exit::Halted => assert_eq!(cpu.s.rip, HANDLER + 1, "{m:?}"),
                Exit::TripleFault => assert_ne!(m, FuzzMode::Real, "the IVT path exists"),
                other => panic!("{m:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_tight_loop_stops_at_the_budget() {
        // JMP $ (EB FE) never ends on its own.
        for m in FuzzMode::ALL {
            let o = decode_execute(&[m.selector_byte(), 0xeb, 0xfe]);
            assert_eq!((o.exit, o.instructions), (Exit::Budget, BUDGET), "{m:?}");
        }
    }

    #[test]
    fn flat_segments_decode_from_descriptors() {
        let s = segment(SEL_CODE32, descriptor(SEL_CODE32));
        assert_eq!((s.base, s.limit, s.attr), (0, 0xffff_ffff, 0xc9b));
        let s = segment(SEL_DATA16, descriptor(SEL_DATA16));
        assert_eq!((s.base, s.limit, s.attr), (0, 0xffff, 0x093));
    }
}
