//! Running a stream on kagami: a `Cpu` put directly into 64-bit mode at CPL 3
//! (CR0.PE|PG, EFER.LME|LMA, 4-level paging mapping the test window with one
//! user 2 MiB page, CS.L=1), the same bytes at the same linear addresses,
//! each instruction decoded and handed to its dispatch-table handler exactly
//! as the executor does (RIP set past it, rewound on a fault).

use super::layout::*;
use super::state::{ArchState, Fault, Fx, Outcome};
use iced_x86::{Decoder, DecoderOptions};
use kagami_cpu::dispatch::handler_for;
use kagami_cpu::state::{attr, cr0, cr4, efer, flags, Segment, CS, DS, ES, FS, GS, SS};
use kagami_cpu::{Cpu, CpuModel, GuestMemory, NullBus, PhysMap, Region, RegionKind};

const RAM: u64 = 4 << 20;
/// Guest-physical address backing the 2 MiB window at `BASE`.
const WINDOW_PHYS: u64 = 2 << 20;
const PML4: u64 = 0x1000;

pub struct Emu {
    cpu: Cpu,
    bus: NullBus,
}

impl Default for Emu {
    fn default() -> Self {
        Self::new()
    }
}

impl Emu {
    pub fn new() -> Emu {
        let mem = GuestMemory::new(RAM).expect("guest memory");
        let mut map = PhysMap::new();
        map.add(Region {
            start: 0,
            len: RAM,
            backing: 0,
            kind: RegionKind::Ram,
        })
        .unwrap();
        // PML4 -> PDPT -> PD with one 2 MiB user page: BASE -> WINDOW_PHYS.
        let user_rw = 7u64;
        mem.write(PML4, &(0x2000 | user_rw).to_le_bytes());
        mem.write(0x2000 + 8 * ((BASE >> 30) & 511), &(0x3000 | user_rw).to_le_bytes());
        mem.write(0x3000 + 8 * ((BASE >> 21) & 511), &(WINDOW_PHYS | user_rw | 0x80).to_le_bytes());
        let mut cpu = Cpu::new(mem, map);
        kagami_jit::Jit::install_from_env(&mut cpu);
        Emu { cpu, bus: NullBus }
    }

    fn setup(&mut self, input: &ArchState) {
        // Also clears the decoded-block cache, the TLB and a pending shutdown.
        self.cpu.reset();
        let s = &mut self.cpu.s;
        s.cr0 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
        s.cr4 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
        s.efer = efer::SCE | efer::LME | efer::LMA | efer::NXE;
        s.cr3 = PML4;
        let dpl3 = 3 << attr::DPL_SHIFT;
        s.segs[CS] = Segment {
            base: 0,
            limit: 0xffff_ffff,
            selector: 0x33,
            attr: attr::P | attr::S | attr::CODE | attr::RW | attr::ACCESSED | attr::L | attr::G | dpl3,
        };
        let data = Segment {
            base: 0,
            limit: 0xffff_ffff,
            selector: 0x2b,
            attr: attr::P | attr::S | attr::RW | attr::ACCESSED | attr::DB | attr::G | dpl3,
        };
        for seg in [SS, DS, ES, FS, GS] {
            s.segs[seg] = data;
        }
        s.gpr = input.gpr;
        s.rip = STREAM;
        s.set_flags(input.rflags);
        let f = &mut s.fpu;
        f.fcw = input.fx.fcw;
        f.fsw = input.fx.fsw;
        f.mxcsr = input.fx.mxcsr;
        f.xmm = input.fx.xmm;
        let top = input.fx.top();
        let mut ftw = 0u16;
        for i in 0..8 {
            let phys = (top + i) & 7;
            let mut b = [0u8; 16];
            b[..10].copy_from_slice(&input.fx.st[i]);
            f.st[phys] = u128::from_le_bytes(b);
        }
        for phys in 0..8 {
            let tag = if input.fx.ftw & (1 << phys) == 0 { 3 } else { full_tag(f.st[phys]) };
            ftw |= tag << (2 * phys);
        }
        f.ftw = ftw;
        self.cpu.update_mode();
        self.cpu.flush_tlb_all();
    }

    /// Run `stream` (exactly the stream bytes) from `input` with `data` in
    /// the data window, calling each instruction's handler directly.
    pub fn run(&mut self, stream: &[u8], input: &ArchState, data: &[u8]) -> Outcome {
        self.setup(input);
        self.cpu.mem.write(WINDOW_PHYS + (DATA - BASE), data);
        self.cpu.mem.write(WINDOW_PHYS + (STREAM - BASE), stream);
        let end = STREAM + stream.len() as u64;
        let mut fault = None;
        // Follow RIP, not the byte order: a REP string handler may leave RIP
        // on itself to continue later, as the executor allows.
        for _ in 0..100_000 {
            let rip = self.cpu.s.rip;
            if !(STREAM..end).contains(&rip) {
                break;
            }
            let mut dec = Decoder::with_ip(64, &stream[(rip - STREAM) as usize..], rip, DecoderOptions::NONE);
            let insn = dec.decode();
            let h = handler_for(&insn, CpuModel::X86_64);
            self.cpu.s.icount += 1;
            self.cpu.s.rip = insn.next_ip();
            if let Err(e) = h(&mut self.cpu, &mut self.bus, &insn) {
                if !e.is_trap() {
                    self.cpu.s.rip = insn.ip();
                }
                fault = Some(Fault {
                    vector: e.vector(),
                    rip: insn.ip(),
                });
                break;
            }
        }
        self.outcome(fault)
    }

    /// Run the same stream through the real executor (`Cpu::run`: decoded
    /// block cache, fetch through the code TLB). The stream is followed by
    /// UD2 and the IDT limit is 0, so the first exception, the UD2's or a
    /// stream instruction's, escalates to a triple fault with RIP at the
    /// faulting instruction; the vector is not known (reported as 255).
    pub fn run_executor(&mut self, stream: &[u8], input: &ArchState, data: &[u8]) -> Outcome {
        self.setup(input);
        self.cpu.s.idtr.limit = 0;
        self.cpu.mem.write(WINDOW_PHYS + (DATA - BASE), data);
        let mut code = stream.to_vec();
        code.extend_from_slice(&[0x0f, 0x0b]);
        self.cpu.mem.write(WINDOW_PHYS + (STREAM - BASE), &code);
        let exit = self.cpu.run(&mut self.bus, 10_000);
        let end = STREAM + stream.len() as u64;
        let fault = match exit {
            kagami_cpu::Exit::TripleFault if self.cpu.s.rip == end => None,
            _ => Some(Fault {
                vector: 255,
                rip: self.cpu.s.rip,
            }),
        };
        self.outcome(fault)
    }

    fn outcome(&mut self, fault: Option<Fault>) -> Outcome {
        let s = &self.cpu.s;
        let top = ((s.fpu.fsw >> 11) & 7) as usize;
        let mut st = [[0u8; 10]; 8];
        for (i, r) in st.iter_mut().enumerate() {
            r.copy_from_slice(&s.fpu.st[(top + i) & 7].to_le_bytes()[..10]);
        }
        let mut ftw = 0u8;
        for phys in 0..8 {
            if (s.fpu.ftw >> (2 * phys)) & 3 != 3 {
                ftw |= 1 << phys;
            }
        }
        let mut out_data = vec![0u8; DATA_SIZE];
        self.cpu.mem.read(WINDOW_PHYS + (DATA - BASE), &mut out_data);
        Outcome {
            state: ArchState {
                gpr: s.gpr,
                rip: s.rip,
                rflags: s.flags() & (flags::LIVE),
                fx: Fx {
                    fcw: s.fpu.fcw,
                    fsw: s.fpu.fsw,
                    ftw,
                    st,
                    mxcsr: s.fpu.mxcsr,
                    xmm: s.fpu.xmm,
                },
            },
            data: out_data,
            fault,
        }
    }
}

/// The full tag FXRSTOR computes for a non-empty register (SDM Vol. 1,
/// 8.1.7): 01 zero, 10 special (NaN, infinity, denormal, unnormal), 00 valid.
pub fn full_tag(r: u128) -> u16 {
    let mant = r as u64;
    let exp = ((r >> 64) as u16) & 0x7fff;
    if exp == 0 && mant == 0 {
        1
    } else if exp == 0x7fff || exp == 0 || mant >> 63 == 0 {
        2
    } else {
        0
    }
}
