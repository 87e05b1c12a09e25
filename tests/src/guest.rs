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
