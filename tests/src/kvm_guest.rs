//! One helper that runs a guest program on KVM or on the software CPU (or
//! moves it between them at chosen points) and reports what it did, so the
//! two can be compared: port writes, MMIO writes, interrupts taken, the final
//! CPU state and a digest of guest memory.
//!
//! Programs signal through ports: `REPORT_PORT` (a value), `DONE_PORT` (the
//! end), `SWITCH_PORT` (a point where the harness may move the guest to the
//! other accelerator) and `IRQ_PORT` (raise the external interrupt whose
//! vector is the value written, for interrupt-injection tests).

use crate::guest::{Guest, DONE_PORT};
use kagami_cpu::{Bus, Cpu, CpuState, Exit};
use kagami_devices::snapshot::Snapshot;
use kagami_machine::kvm::KvmCpu;

pub const SWITCH_PORT: u16 = 0xf5;
pub const IRQ_PORT: u16 = 0xf6;
pub const NMI_PORT: u16 = 0xf7;
/// Guest-physical MMIO window the test bus answers (outside the 16 MiB of RAM).
pub const MMIO_BASE: u64 = 0x2000_0000;
/// MMIO writes there act like `SWITCH_PORT` and `DONE_PORT` (for ring-3
/// code, which cannot use ports).
pub const MMIO_SWITCH: u64 = MMIO_BASE + 0xff0;
pub const MMIO_DONE: u64 = MMIO_BASE + 0xff8;

/// The accelerator a run (or a segment of one) uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Soft,
    Kvm,
}

impl Accel {
    pub fn other(self) -> Accel {
        match self {
            Accel::Soft => Accel::Kvm,
            Accel::Kvm => Accel::Soft,
        }
    }
}

/// Whether this host can create a KVM VM at all. Prints why not, naming the
/// test, when it cannot (the KVM half of the test is then skipped).
pub fn kvm_or_skip(test: &str) -> bool {
    let g = Guest::new(1);
    match KvmCpu::new(&g.cpu) {
        Ok(_) => true,
        Err(why) => {
            eprintln!("SKIPPED (KVM half of) {test}: {why}");
            false
        }
    }
}

/// A bus with ports and MMIO that answer predictably and one interrupt
/// source the guest triggers itself.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct TestBus {
    pub writes: Vec<(u16, u32)>,
    pub reads: u64,
    pub mmio_writes: Vec<(u64, u8, u64)>,
    /// Vectors acknowledged (interrupts taken), in order.
    pub acked: Vec<u8>,
    pub pending_irq: Option<u8>,
    /// An NMI the guest raised by writing `NMI_PORT`.
    pub pending_nmi: bool,
    pub nmis_taken: u32,
    pub done: bool,
    pub switch: bool,
}

impl Bus for TestBus {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        self.reads += 1;
        (port as u32).wrapping_mul(0x0101_0101) ^ size as u32
    }
    fn io_write(&mut self, port: u16, _: u8, v: u32) {
        match port {
            DONE_PORT => self.done = true,
            SWITCH_PORT => self.switch = true,
            IRQ_PORT => self.pending_irq = Some(v as u8),
            NMI_PORT => self.pending_nmi = true,
            _ => {}
        }
        self.writes.push((port, v));
    }
    fn mmio_read(&mut self, addr: u64, size: u8) -> u64 {
        (addr.wrapping_mul(0x9e37_79b9) ^ size as u64) & kagami_cpu::bus::ones(size)
    }
    fn mmio_write(&mut self, addr: u64, size: u8, v: u64) {
        match addr {
            MMIO_SWITCH => self.switch = true,
            MMIO_DONE => self.done = true,
            _ => {}
        }
        self.mmio_writes.push((addr, size, v));
    }
    fn interrupt_pending(&mut self) -> bool {
        self.pending_irq.is_some()
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        let v = self.pending_irq.take();
        self.acked.extend(v);
        v
    }
    fn take_nmi(&mut self) -> bool {
        let n = std::mem::take(&mut self.pending_nmi);
        self.nmis_taken += n as u32;
        n
    }
    fn stop_requested(&mut self) -> bool {
        self.done || self.switch
    }
}

/// What a run did.
pub struct Outcome {
    /// How it ended: "done", "halted", "triple fault", or an error.
    pub end: String,
    pub bus: TestBus,
    /// The final state, normalised: lazy flags folded into RFLAGS; the
    /// instruction count and TSC (which KVM does not share) zeroed.
    pub state: CpuState,
    /// All guest RAM at the end.
    pub memory: Vec<u8>,
    /// Accelerator switches made.
    pub switches: usize,
}

pub fn normalise(s: &CpuState) -> CpuState {
    let mut s = s.clone();
    let f = s.flags();
    s.set_flags(f);
    (s.cc_dst, s.cc_src1, s.cc_src2) = (0, 0, 0);
    // The x87 last-instruction pointers are host-dependent on KVM: AMD
    // processors save FOP/FIP/FDP only while an x87 exception is pending
    // (AMD APM Vol. 5, FXSAVE), and the 64-bit image has no FCS/FDS.
    (s.fpu.fop, s.fpu.fip, s.fpu.fdp, s.fpu.fcs, s.fpu.fds) = (0, 0, 0, 0, 0);
    s.icount = 0;
    s.tsc = 0;
    s
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("end", &self.end)
            .field("bus", &self.bus)
            .field("state", &self.state)
            .field("switches", &self.switches)
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// Guest-physical addresses (up to 16) where two runs' RAM differs, with both bytes.
    pub fn memory_differences(&self, other: &Outcome) -> Vec<(usize, u8, u8)> {
        let n = self.memory.len().max(other.memory.len());
        (0..n)
            .filter_map(|k| {
                let (a, b) = (self.memory.get(k).copied().unwrap_or(0), other.memory.get(k).copied().unwrap_or(0));
                (a != b).then_some((k, a, b))
            })
            .take(16)
            .collect()
    }
}

fn ram(cpu: &Cpu) -> Vec<u8> {
    let mut buf = vec![0u8; cpu.mem.len() as usize];
    cpu.mem.read(0, &mut buf);
    buf
}

/// Run `g` from `rip` on `start`; at each `SWITCH_PORT` write, move to the
/// other accelerator when `switching`, otherwise keep going. Stops at
/// `DONE_PORT`, HLT with nothing to wake it, a triple fault, an error, or
/// after `max_soft_insns` software instructions (a guard against runaways).
pub fn run_guest(mut g: Guest, rip: u64, start: Accel, switching: bool) -> Outcome {
    const MAX_SOFT_INSNS: u64 = 2_000_000;
    g.cpu.s.rip = rip;
    let mut bus = TestBus::default();
    let mut accel = start;
    let mut kvm: Option<KvmCpu> = None;
    let mut switches = 0;
    let end = loop {
        match accel {
            Accel::Soft => {
                let before = g.cpu.s.icount;
                match g.cpu.run(&mut bus, MAX_SOFT_INSNS) {
                    Exit::Halted => break "halted".to_string(),
                    Exit::TripleFault => break "triple fault".to_string(),
                    Exit::Budget => break format!("runaway after {} instructions", g.cpu.s.icount - before),
                    Exit::Stopped => {}
                }
            }
            Accel::Kvm => {
                let k = match &mut kvm {
                    Some(k) => k,
                    None => match KvmCpu::new(&g.cpu) {
                        Ok(k) => kvm.insert(k),
                        Err(e) => break format!("KVM: {e}"),
                    },
                };
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                match k.run(&mut bus, Some(deadline)) {
                    Ok(Exit::Halted) => {
                        k.save_to(&mut g.cpu, &mut bus).expect("KVM state");
                        break "halted".to_string();
                    }
                    Ok(Exit::TripleFault) => break "triple fault".to_string(),
                    Ok(Exit::Budget) => break "KVM run took over 20 s".to_string(),
                    Ok(Exit::Stopped) => {}
                    Err(e) => break format!("KVM: {e}"),
                }
                k.save_to(&mut g.cpu, &mut bus).expect("KVM state");
            }
        }
        if bus.done {
            break "done".to_string();
        }
        if bus.switch {
            bus.switch = false;
            if switching {
                // The state is in `g.cpu` (KVM's was saved above); load it
                // into the other side.
                if accel == Accel::Soft {
                    match &mut kvm {
                        Some(k) => k.set_state(&g.cpu.s).expect("state into KVM"),
                        None => match KvmCpu::new(&g.cpu) {
                            Ok(k) => drop(kvm.insert(k)),
                            Err(e) => break format!("KVM: {e}"),
                        },
                    }
                }
                accel = accel.other();
                switches += 1;
            } else if accel == Accel::Kvm {
                // Stay on KVM: the state read above goes back unchanged.
                let k = kvm.as_mut().unwrap();
                k.set_state(&g.cpu.s).expect("state into KVM");
            }
        }
    };
    Outcome {
        end,
        memory: ram(&g.cpu),
        state: normalise(&g.cpu.s),
        bus,
        switches,
    }
}

/// The PC board (PIC, PIT, LAPIC, IOAPIC, …) as the bus, plus the test ports.
/// Its clock advances only while the CPU is halted, straight to the next
/// device deadline, so a run's timing depends only on the guest and the
/// devices, never on which CPU ran it or how fast.
pub struct BoardBus {
    pub board: kagami_machine::board::Board,
    pub reports: Vec<u32>,
    /// Vectors acknowledged, in order.
    pub acked: Vec<u8>,
    pub now_ns: u64,
    pub done: bool,
    pub switch: bool,
}

impl BoardBus {
    pub fn new(ram: u64) -> BoardBus {
        let board = kagami_machine::board::Board::new(kagami_machine::board::BoardConfig {
            ram_below_4g: ram,
            ram_above_4g: 0,
            serial: vec![None, None],
            debug_exit: None,
            debugcon: None,
            rtc_start: 1_700_000_000,
            q35: false,
        });
        BoardBus {
            board,
            reports: Vec::new(),
            acked: Vec::new(),
            now_ns: 0,
            done: false,
            switch: false,
        }
    }
}

impl Bus for BoardBus {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        self.board.io_read(port, size)
    }
    fn io_write(&mut self, port: u16, size: u8, v: u32) {
        match port {
            crate::guest::REPORT_PORT => self.reports.push(v),
            DONE_PORT => self.done = true,
            SWITCH_PORT => self.switch = true,
            _ => self.board.io_write(port, size, v),
        }
    }
    fn mmio_read(&mut self, addr: u64, size: u8) -> u64 {
        self.board.mmio_read(addr, size)
    }
    fn mmio_write(&mut self, addr: u64, size: u8, v: u64) {
        self.board.mmio_write(addr, size, v)
    }
    fn interrupt_pending(&mut self) -> bool {
        self.board.interrupt_pending()
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        let v = self.board.acknowledge_interrupt();
        self.acked.extend(v);
        v
    }
    fn take_nmi(&mut self) -> bool {
        self.board.take_nmi()
    }
    fn write_tpr(&mut self, tpr: u8) {
        self.board.write_tpr(tpr)
    }
    fn read_tpr(&mut self) -> u8 {
        self.board.read_tpr()
    }
    fn read_msr(&mut self, msr: u32) -> Option<u64> {
        self.board.read_msr(msr)
    }
    fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        self.board.write_msr(msr, value)
    }
    fn stop_requested(&mut self) -> bool {
        self.done || self.switch || self.board.stop_requested()
    }
}

/// What a board-driven run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardOutcome {
    pub end: String,
    pub reports: Vec<u32>,
    pub acked: Vec<u8>,
    /// Machine time at the end, in ns.
    pub now_ns: u64,
    pub state: CpuState,
    /// The PIT's and PIC's snapshot state at the end (serialized).
    pub devices: String,
    pub switches: usize,
}

/// Run `g` from `rip` against the PC board, moving between accelerators at
/// each `SWITCH_PORT` write when `switching`.
pub fn run_board_guest(mut g: Guest, rip: u64, start: Accel, switching: bool) -> (BoardOutcome, Vec<u8>) {
    g.cpu.s.rip = rip;
    let mut bus = BoardBus::new(g.cpu.mem.len());
    let mut accel = start;
    let mut kvm: Option<KvmCpu> = None;
    let mut switches = 0;
    let mut idle_advances = 0;
    let end = loop {
        let exit = match accel {
            Accel::Soft => g.cpu.run(&mut bus, 2_000_000),
            Accel::Kvm => {
                let k = match &mut kvm {
                    Some(k) => k,
                    None => match KvmCpu::new(&g.cpu) {
                        Ok(k) => kvm.insert(k),
                        Err(e) => break format!("KVM: {e}"),
                    },
                };
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                let r = k.run(&mut bus, Some(deadline));
                if let Err(e) = r {
                    break format!("KVM: {e}");
                }
                k.save_to(&mut g.cpu, &mut bus).expect("KVM state");
                r.unwrap()
            }
        };
        match exit {
            Exit::TripleFault => break "triple fault".to_string(),
            Exit::Budget => break "runaway".to_string(),
            Exit::Halted => {
                // Idle: jump to the next device deadline.
                let Some(d) = bus.board.next_deadline() else {
                    break "halted with no timer".to_string();
                };
                idle_advances += 1;
                if idle_advances > 100_000 {
                    break "halted too long".to_string();
                }
                bus.now_ns = bus.now_ns.max(d);
                bus.board.advance_to(bus.now_ns);
                if accel == Accel::Kvm {
                    kvm.as_mut().unwrap().set_state(&g.cpu.s).expect("state into KVM");
                }
                continue;
            }
            Exit::Stopped => {}
        }
        if bus.done {
            break "done".to_string();
        }
        if bus.switch {
            bus.switch = false;
            if switching {
                if accel == Accel::Soft {
                    match &mut kvm {
                        Some(k) => k.set_state(&g.cpu.s).expect("state into KVM"),
                        None => match KvmCpu::new(&g.cpu) {
                            Ok(k) => drop(kvm.insert(k)),
                            Err(e) => break format!("KVM: {e}"),
                        },
                    }
                }
                accel = accel.other();
                switches += 1;
                continue;
            }
        }
        if accel == Accel::Kvm {
            kvm.as_mut().unwrap().set_state(&g.cpu.s).expect("state into KVM");
        }
    };
    let devices = format!("{:?} {:?}", bus.board.pit.save(), bus.board.pic.save());
    (
        BoardOutcome {
            end,
            reports: bus.reports,
            acked: bus.acked,
            now_ns: bus.now_ns,
            state: normalise(&g.cpu.s),
            devices,
            switches,
        },
        ram(&g.cpu),
    )
}
