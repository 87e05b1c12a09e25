//! A small runner for guest programs: assemble with iced's CodeAssembler,
//! load into RAM, run on the interpreter with a bus that records port
//! writes, stop on the "done" port, HLT, a triple fault or a step limit.

use iced_x86::code_asm::{CodeAssembler, IcedError};
use iced_x86::Code;
use kagami_cpu::{Bus, Cpu, Exit, GuestMemory, PhysMap, Region, RegionKind};

/// Port a guest writes to report a value.
pub const REPORT_PORT: u16 = 0xe9;
/// Port a guest writes to say it has finished.
pub const DONE_PORT: u16 = 0xf4;

/// Records every port write; asks the CPU to stop after a write to `DONE_PORT`.
#[derive(Default)]
pub struct PortBus {
    pub writes: Vec<(u16, u32)>,
    pub done: bool,
}

impl Bus for PortBus {
    fn io_read(&mut self, _: u16, _: u8) -> u32 {
        0xffff_ffff
    }
    fn io_write(&mut self, port: u16, _: u8, v: u32) {
        self.writes.push((port, v));
        if port == DONE_PORT {
            self.done = true;
        }
    }
    fn mmio_read(&mut self, _: u64, _: u8) -> u64 {
        u64::MAX
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) {}
    fn stop_requested(&mut self) -> bool {
        self.done
    }
}

pub struct Guest {
    pub cpu: Cpu,
    pub bus: PortBus,
}

impl Guest {
    /// A CPU at RESET with `mib` MiB of RAM from address 0, CS:IP = 0:0.
    pub fn new(mib: u64) -> Guest {
        let len = mib << 20;
        let mem = GuestMemory::new(len).expect("guest RAM");
        let mut map = PhysMap::new();
        map.add(Region {
            start: 0,
            len,
            backing: 0,
            kind: RegionKind::Ram,
        })
        .expect("RAM region");
        let mut cpu = Cpu::new(mem, map);
        cpu.load_real_seg(kagami_cpu::state::CS, 0);
        kagami_jit::Jit::install_from_env(&mut cpu);
        Guest {
            cpu,
            bus: PortBus::default(),
        }
    }

    /// Assemble `f` for `bits`-bit code at `at`, load it, return the end address.
    pub fn asm(&self, bits: u32, at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> u64 {
        let mut a = CodeAssembler::new(bits).expect("bitness");
        f(&mut a).expect("assemble");
        let bytes = a.assemble(at).expect("assemble");
        self.cpu.mem.write(at, &bytes);
        at + bytes.len() as u64
    }

    pub fn load(&self, at: u64, bytes: &[u8]) {
        self.cpu.mem.write(at, bytes);
    }

    /// Run from `rip` (CS unchanged) for at most `limit` instructions.
    pub fn run_at(&mut self, rip: u64, limit: u64) -> Exit {
        self.cpu.s.rip = rip;
        self.cpu.run(&mut self.bus, limit)
    }

    /// Values written to `REPORT_PORT`, in order.
    pub fn reports(&self) -> Vec<u32> {
        self.bus.writes.iter().filter(|w| w.0 == REPORT_PORT).map(|w| w.1).collect()
    }
}

/// The instructions among `codes` the interpreter does not implement yet.
/// A test that needs them prints why it is skipped and returns.
pub fn missing(codes: &[Code]) -> Vec<Code> {
    codes.iter().copied().filter(|c| !kagami_cpu::dispatch::implemented(*c)).collect()
}

/// `true` (after printing a loud SKIPPED line) when some of `codes` are missing.
pub fn skip_without(test: &str, codes: &[Code]) -> bool {
    let m = missing(codes);
    if !m.is_empty() {
        eprintln!("SKIPPED {test}: instructions not implemented yet: {m:?}");
    }
    !m.is_empty()
}

/// Where `flat_cpu` puts things: a GDT (null, 0x08 code32, 0x10 data,
/// 0x18 code64, 0x20 code16), the 64-bit page tables (identity map of the
/// first GiB with 2 MiB pages), the code and the top of the stack.
pub const FLAT_GDT: u64 = 0x500;
pub const FLAT_PML4: u64 = 0x1000;
pub const FLAT_CODE: u64 = 0x1_0000;
pub const FLAT_STACK: u64 = 0x8_0000;
pub const FLAT_CODE32_SEL: u16 = 0x08;
pub const FLAT_DATA_SEL: u16 = 0x10;
pub const FLAT_CODE64_SEL: u16 = 0x18;

/// A descriptor: base, byte limit (scaled by G when `flags` has it),
/// access byte, flags nibble (G, D/B, L, AVL).
pub fn descriptor(base: u64, limit: u64, access: u64, flags: u64) -> u64 {
    (limit & 0xffff) | (base & 0xff_ffff) << 16 | access << 40 | ((limit >> 16) & 0xf) << 48 | flags << 52 | (base >> 24) << 56
}

/// A 16 MiB guest already in a flat mode, without running any setup code:
/// `bits` = 16 is real mode with all segments 0; 32 is protected mode with
/// flat 4 GiB ring-0 segments; 64 is long mode (CR0.PG, CR4.PAE,
/// EFER.LME/LMA) with an identity map of the first GiB. The GDT in memory
/// matches the loaded segments, so reloading them works. RSP = `FLAT_STACK`;
/// load code at `FLAT_CODE` and start it with `Guest::run_at`.
pub fn flat_cpu(bits: u32) -> Guest {
    use kagami_cpu::state::{attr, cr0, cr4, efer, Segment, CS};
    let mut g = Guest::new(16);
    let gdt = [
        0,
        descriptor(0, 0xfffff, 0x9b, 0xc),
        descriptor(0, 0xfffff, 0x93, 0xc),
        descriptor(0, 0xfffff, 0x9b, 0xa),
        descriptor(0, 0xffff, 0x9b, 0x0),
    ];
    for (k, d) in gdt.iter().enumerate() {
        g.load(FLAT_GDT + 8 * k as u64, &d.to_le_bytes());
    }
    let s = &mut g.cpu.s;
    s.gpr[kagami_cpu::state::RSP] = FLAT_STACK;
    if bits == 16 {
        return g;
    }
    s.gdtr.base = FLAT_GDT;
    s.gdtr.limit = (8 * gdt.len() - 1) as u32;
    let data = Segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: FLAT_DATA_SEL,
        attr: attr::P | attr::S | attr::RW | attr::ACCESSED | attr::DB | attr::G,
    };
    for seg in s.segs.iter_mut() {
        *seg = data;
    }
    s.segs[CS] = Segment {
        selector: FLAT_CODE32_SEL,
        attr: attr::P | attr::S | attr::CODE | attr::RW | attr::ACCESSED | attr::DB | attr::G,
        ..data
    };
    s.cr0 |= cr0::PE;
    if bits == 64 {
        let pdpt = FLAT_PML4 + 0x1000;
        let pd = FLAT_PML4 + 0x2000;
        g.load(FLAT_PML4, &(pdpt | 3).to_le_bytes());
        g.load(pdpt, &(pd | 3).to_le_bytes());
        for k in 0..512u64 {
            g.load(pd + 8 * k, &((k << 21) | 0x83).to_le_bytes());
        }
        let s = &mut g.cpu.s;
        s.cr3 = FLAT_PML4;
        s.cr4 |= cr4::PAE;
        s.efer |= efer::LME;
        s.cr0 |= cr0::PG;
        s.segs[CS].selector = FLAT_CODE64_SEL;
        s.segs[CS].attr = (s.segs[CS].attr & !attr::DB) | attr::L;
    }
    g.cpu.update_mode();
    g.cpu.flush_tlb_all();
    g
}
