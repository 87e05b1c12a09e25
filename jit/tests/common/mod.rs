//! A 64-bit CPU for comparing the JIT with the interpreter: 4 MiB of RAM
//! identity-mapped with 2 MiB pages, CPL 0, flat segments, IDT limit 0 (so
//! the first exception escalates to a triple fault with RIP at the faulting
//! instruction), code at `CODE`.

#![allow(dead_code)]

use iced_x86::code_asm::CodeAssembler;
use iced_x86::Instruction;
use kagami_cpu::state::{attr, cr0, cr4, efer, Segment, CS, DS, ES, FS, GS, SS};
use kagami_cpu::{Cpu, Exit, GuestMemory, NullBus, PhysMap, Region, RegionKind};
use kagami_jit::{Jit, JitConfig};

pub const RAM: u64 = 4 << 20;
pub const PML4: u64 = 0x1000;
pub const CODE: u64 = 0x10_0000;
pub const DATA: u64 = 0x20_0000;

pub fn cpu64(jit: Option<JitConfig>) -> Cpu {
    let mem = GuestMemory::new(RAM).unwrap();
    let mut map = PhysMap::new();
    map.add(Region {
        start: 0,
        len: RAM,
        backing: 0,
        kind: RegionKind::Ram,
    })
    .unwrap();
    mem.write(PML4, &(0x2003u64).to_le_bytes());
    mem.write(0x2000, &(0x3003u64).to_le_bytes());
    mem.write(0x3000, &(0x83u64).to_le_bytes());
    mem.write(0x3008, &(0x20_0083u64).to_le_bytes());
    let mut cpu = Cpu::new(mem, map);
    let s = &mut cpu.s;
    s.cr0 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
    s.cr4 = cr4::PAE | cr4::OSFXSR;
    s.efer = efer::LME | efer::LMA | efer::NXE;
    s.cr3 = PML4;
    s.segs[CS] = Segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 0x08,
        attr: attr::P | attr::S | attr::CODE | attr::RW | attr::ACCESSED | attr::L | attr::G,
    };
    let data = Segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 0x10,
        attr: attr::P | attr::S | attr::RW | attr::ACCESSED | attr::DB | attr::G,
    };
    for seg in [SS, DS, ES, FS, GS] {
        s.segs[seg] = data;
    }
    s.idtr.limit = 0;
    s.rip = CODE;
    s.gpr[4] = DATA + 0x8000;
    cpu.update_mode();
    cpu.flush_tlb_all();
    if let Some(cfg) = jit {
        Jit::install(&mut cpu, cfg);
    }
    cpu
}

pub fn translate_all() -> Option<JitConfig> {
    Some(JitConfig {
        threshold: 0,
        ..JitConfig::default()
    })
}

pub fn assemble(insns: &[Instruction]) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    for i in insns {
        a.add_instruction(*i).unwrap();
    }
    a.assemble(CODE).unwrap()
}

/// Everything the comparison looks at.
/// GPRs, RIP, RFLAGS, icount, and a hash of the data area.
pub fn snapshot(cpu: &Cpu) -> (Vec<u64>, u64, u64, u64, u64) {
    let mut data = vec![0u8; 0x1_0000];
    cpu.mem.read(DATA, &mut data);
    let hash = data
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3));
    (cpu.s.gpr.to_vec(), cpu.s.rip, cpu.s.flags(), cpu.s.icount, hash)
}

pub fn run(cpu: &mut Cpu, budget: u64) -> Exit {
    cpu.run(&mut NullBus, budget)
}

/// xorshift64*, biased to edge values.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn value(&mut self) -> u64 {
        let v = self.next();
        match v & 7 {
            0 => 0,
            1 => u64::MAX,
            2 => 1u64 << (v >> 58),
            3 => (1u64 << (v >> 58)).wrapping_sub(1),
            4 => v >> 60,
            _ => v >> 3,
        }
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
