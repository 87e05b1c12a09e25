//! kagami-benches: benchmarks (binaries in src/bin/), never run as tests.
//! This library holds the machine set-up they share, the guest programs
//! of `mips` and `jit_mips` ([`programs`]) and the in-guest workload of
//! `boot` ([`workload`], also used by tests/tests/guest_workload.rs).

pub mod programs;
pub mod workload;

use kagami_cpu::state::{attr, cr0, cr4, efer, Segment, CS, DS, ES, FS, GS, RSP, SS};
use kagami_cpu::{Cpu, GuestMemory, PhysMap, Region, RegionKind};

/// Guest RAM: 16 MiB, identity-mapped.
pub const RAM: u64 = 16 << 20;
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
/// Where programs are loaded and start.
pub const CODE: u64 = 0x10_0000;
/// Data areas for programs. The software TLB is direct-mapped by page
/// number modulo 256 (1 MiB), one entry per page for all access kinds, so
/// the areas and the code sit at different offsets modulo 1 MiB; otherwise
/// a copy between them would refill the same slot on every access.
pub const DATA: u64 = 0x21_0000;
pub const DATA2: u64 = 0x48_0000;
const STACK_TOP: u64 = 0x1f_fff0;

/// A CPU in 64-bit mode at CPL 0, paging on (2 MiB pages mapping RAM 1:1),
/// segments loaded directly into the descriptor caches, RIP = [`CODE`].
/// There is no IDT: an exception shuts the machine down.
pub fn long_mode_cpu() -> Cpu {
    let mem = GuestMemory::new(RAM).expect("guest RAM");
    let mut map = PhysMap::new();
    map.add(Region {
        start: 0,
        len: RAM,
        backing: 0,
        kind: RegionKind::Ram,
    })
    .expect("one region");
    mem.write(PML4, &(PDPT | 3).to_le_bytes());
    mem.write(PDPT, &(PD | 3).to_le_bytes());
    for i in 0..RAM >> 21 {
        // P | RW | PS, accessed and dirty already set: a 2 MiB page.
        mem.write(PD + 8 * i, &((i << 21) | 0xe3).to_le_bytes());
    }
    let mut cpu = Cpu::new(mem, map);
    let s = &mut cpu.s;
    s.cr0 = cr0::PE | cr0::ET | cr0::NE | cr0::PG;
    s.cr4 = cr4::PAE;
    s.cr3 = PML4;
    s.efer = efer::LME | efer::LMA;
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
    for seg in [DS, ES, FS, GS, SS] {
        s.segs[seg] = data;
    }
    s.rip = CODE;
    s.gpr[RSP] = STACK_TOP;
    cpu.update_mode();
    cpu.flush_tlb_all();
    cpu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_cpu_runs_64_bit_code() {
        // mov rax, imm64; add rax, rax; hlt
        let mut code = vec![0x48, 0xb8];
        code.extend_from_slice(&0x1_0000_0001u64.to_le_bytes());
        code.extend_from_slice(&[0x48, 0x01, 0xc0, 0xf4]);
        let mut cpu = long_mode_cpu();
        assert_eq!(cpu.s.mode, kagami_cpu::state::Mode::Long64);
        cpu.mem.write(CODE, &code);
        assert_eq!(cpu.run(&mut kagami_cpu::NullBus, 100), kagami_cpu::Exit::Halted);
        assert_eq!(cpu.s.gpr[0], 0x2_0000_0002);
    }
}
