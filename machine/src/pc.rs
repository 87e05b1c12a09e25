//! The PC machine: guest memory layout, direct kernel boot through the bios
//! crate's loaders, and the run loop that interleaves the CPU with the
//! board's devices on the one machine clock.
//!
//! Physical memory map (both `-machine pc` and `q35` for now):
//! | range | what |
//! |---|---|
//! | 0 – 0x9ffff | RAM (conventional memory; EBDA at the top) |
//! | 0xa0000 – 0xbffff | VGA window (MMIO, unclaimed yet); SMRAM when the host bridge opens it |
//! | 0xc0000 – 0xfffff | BIOS area behind PAM (board_pci.rs): RAM for a direct boot (RSDP, SMBIOS, built-in BIOS); with `-bios`, the image's last 128 KiB until firmware shadows it |
//! | 1 MiB – low RAM end | RAM (low RAM ends at 3 GiB on pc, 2 GiB on q35) |
//! | low RAM end – 4 GiB | PCI hole: ACPI tables at its start; MMIO above; the `-bios` image ends at 4 GiB |
//! | 4 GiB – | the rest of RAM |

use crate::board::{Board, BoardConfig};
use crate::clock::{ClockMode, MachineClock};
use kagami_bios::boot::{BootEntry, BootError, EntryMode, GuestWriter};
use kagami_bios::e820::{E820Map, E820Type};
use kagami_cpu::state::{cr0, cr4, efer, CS, DS, ES, FS, GS, SS};
use kagami_cpu::system::desc::Desc;
use kagami_cpu::{Cpu, Exit, GuestMemory, PhysMap, Region, RegionKind};
use kagami_devices::{ByteSink, MachineRequest};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineKind {
    Pc,
    Q35,
}

/// Everything needed to build a PC (the CLI fills it in).
pub struct PcConfig {
    pub kind: MachineKind,
    pub ram_bytes: u64,
    pub kernel: Option<Vec<u8>>,
    pub kernel_path: String,
    pub initrd: Option<Vec<u8>>,
    pub append: String,
    pub serial: Vec<Option<ByteSink>>,
    pub debug_exit: Option<(u16, u16)>,
    pub debugcon: Option<(u16, ByteSink)>,
    pub clock: ClockMode,
    pub no_reboot: bool,
    pub rtc_start: i64,
}

/// Options beyond [`PcConfig`] (kept apart so that existing `PcConfig`
/// literals stay valid): external firmware and extra test devices.
#[derive(Default)]
pub struct PcExtras {
    /// `-bios`: the firmware image (checked with `firmware::check_bios`),
    /// mapped read-only below 4 GiB, its last 128 KiB also at 0xE0000
    /// behind PAM; the CPU starts at its reset vector.
    pub bios: Option<Vec<u8>>,
    /// `-nographic` (the fw_cfg NOGRAPHIC item).
    pub nographic: bool,
    /// SMBIOS anchor and tables for fw_cfg (direct boot writes its own).
    pub smbios: Option<(Vec<u8>, Vec<u8>)>,
    /// `-device pc-testdev`.
    pub pc_testdev: bool,
}

/// Why the machine stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The guest asked for an exit code (isa-debug-exit, ACPI poweroff = 0).
    Exit(i32),
    /// The guest reset (triple fault or reset register) and `-no-reboot` was given.
    Reset,
    /// The guest halted with interrupts disabled and nothing can wake it.
    Hung,
    /// The caller's instruction limit was reached.
    Limit,
    /// The user asked to quit (Ctrl-A X, or the input side closed after a `-no-shutdown` stop).
    Quit,
}

/// Input from outside the machine. It enters only through the channel of
/// [`Pc::connect_input`], which the run loop drains at slice boundaries, so
/// the instruction count at which each input takes effect is well defined
/// (logged with `-d` target `input`), and a recorded stream can be replayed
/// at the same points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostInput {
    /// Bytes typed on the host side of serial port `port` (0 = COM1).
    Serial { port: usize, bytes: Vec<u8> },
    /// Stop the machine (Ctrl-A X).
    Quit,
    /// Host entropy for the CPU's RDRAND/RDSEED generator (host-clock mode
    /// seeds it at power-on; deterministic mode keeps the fixed seed, so a
    /// replay draws the same numbers).
    Entropy(u64),
}

/// What [`Pc::handle_requests`] did with the devices' machine requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requests {
    /// Nothing that concerns the run loop: keep running.
    Run,
    /// The CPU was reset and keeps running from its new state (a run loop
    /// with its own copy of the CPU state, such as KVM's, must reload it).
    CpuReset,
    /// The machine stops.
    Stop(Stop),
}

/// 64 bits from the host's random source (getrandom(2)); None if it fails.
pub fn host_entropy() -> Option<u64> {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    (n == b.len() as isize).then(|| u64::from_le_bytes(b))
}

const ACPI_TABLES_SIZE: u64 = 64 << 10;
const RSDP_ADDR: u64 = 0xe0000;
/// SMBIOS entry point and structure table for direct boot (F segment,
/// where Linux's dmi_scan looks).
const SMBIOS_ENTRY_ADDR: u64 = 0xf0000;
const SMBIOS_TABLE_ADDR: u64 = 0xf0020;
const MIN_RAM: u64 = 2 << 20;
/// Longest run slice between device updates in host-clock mode.
const SLICE: u64 = 200_000;

pub struct Pc {
    pub cpu: Cpu,
    pub board: Board,
    pub clock: MachineClock,
    no_reboot: bool,
    boot: Option<BootEntry>,
    /// Booted through external firmware: a reset reruns it.
    firmware: bool,
    /// TSC minus machine time in ns (the TSC runs at 1 GHz, as the LAPIC's
    /// TSC-deadline mode assumes); changes when the guest writes the TSC.
    tsc_offset: u64,
    input: Option<std::sync::mpsc::Receiver<HostInput>>,
    /// `-no-shutdown`: a guest poweroff stops the machine; kagami waits for Quit.
    no_shutdown: bool,
}

struct RamWriter<'a> {
    mem: &'a GuestMemory,
    map: &'a PhysMap,
}

impl GuestWriter for RamWriter<'_> {
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), BootError> {
        match self.map.lookup(addr) {
            Some(r) if addr + data.len() as u64 <= r.start + r.len => {
                self.mem.write(r.backing + (addr - r.start), data);
                Ok(())
            }
            _ => Err(BootError(format!(
                "the boot image wants {} bytes at {addr:#x}, which is not RAM in this machine",
                data.len()
            ))),
        }
    }
}

impl Pc {
    pub fn new(cfg: PcConfig) -> Result<Pc, String> {
        Pc::new_ext(cfg, PcExtras::default())
    }

    pub fn new_ext(cfg: PcConfig, extras: PcExtras) -> Result<Pc, String> {
        if cfg.ram_bytes < MIN_RAM {
            return Err(format!(
                "-m: {} KiB of RAM is too little; kagami needs at least 2 MiB",
                cfg.ram_bytes >> 10
            ));
        }
        let low_limit: u64 = match cfg.kind {
            MachineKind::Pc => 0xc000_0000,
            MachineKind::Q35 => 0x8000_0000,
        };
        let low = cfg.ram_bytes.min(low_limit);
        let high = cfg.ram_bytes - low;
        // Backing: RAM, then (with -bios) the 256 KiB image PAM shows at
        // 0xC0000-0xFFFFF, then the whole firmware image.
        let bios_len = extras.bios.as_ref().map_or(0, |b| b.len() as u64);
        let rom_area = cfg.ram_bytes.div_ceil(kagami_cpu::memory::PAGE_SIZE) * kagami_cpu::memory::PAGE_SIZE;
        let bios_backing = rom_area + crate::board::BIOS_AREA_LEN;
        let mem_len = if extras.bios.is_some() {
            bios_backing + bios_len
        } else {
            cfg.ram_bytes
        };
        let mem = GuestMemory::new(mem_len).map_err(|e| e.to_string())?;
        let mut map = PhysMap::new();
        let mut add = |start: u64, len: u64, backing: u64| {
            if len > 0 {
                map.add(Region {
                    start,
                    len,
                    backing,
                    kind: RegionKind::Ram,
                })
                .expect("fixed layout does not overlap");
            }
        };
        add(0, 0xa0000.min(low), 0);
        // 0xA0000-0xFFFFF is the board's (SMRAM, PAM): see board_pci.rs.
        if low > 0x10_0000 {
            add(0x10_0000, low - 0x10_0000, 0x10_0000);
        }
        add(1 << 32, high, low);
        if let Some(b) = &extras.bios {
            // QEMU: the image ends at 4 GiB; its last 128 KiB (or all of a
            // smaller one) is the isa-bios at the top of the first MiB.
            map.add(Region {
                start: (1u64 << 32) - bios_len,
                len: bios_len,
                backing: bios_backing,
                kind: RegionKind::Rom,
            })
            .map_err(|e| format!("-bios: the image overlaps {:#x}", e.0.start))?;
            mem.write(bios_backing, b);
            let isa = &b[b.len() - b.len().min(0x2_0000)..];
            mem.write(rom_area + crate::board::BIOS_AREA_LEN - isa.len() as u64, isa);
        }

        let mut e820 = E820Map::new();
        e820.add(0, 0x9fc00.min(low), E820Type::Ram);
        if low > 0x9fc00 {
            e820.add(0x9fc00, 0x400, E820Type::Reserved);
        }
        if low > 0x10_0000 {
            e820.add(0xe0000, 0x20000, E820Type::Reserved);
            e820.add(0x10_0000, low - 0x10_0000 - ACPI_TABLES_SIZE.min(low - 0x10_0000), E820Type::Ram);
            e820.add(low - ACPI_TABLES_SIZE, ACPI_TABLES_SIZE, E820Type::Acpi);
        }
        if cfg.kind == MachineKind::Q35 {
            // The MCFG window must be reserved, or Linux does not use it
            // ("PCI: not using MMCONFIG"; PCI Firmware Spec 3.2, 4.1.2).
            e820.add(kagami_devices::pci::q35::ECAM_BASE, 256 << 20, E820Type::Reserved);
        }
        if high > 0 {
            e820.add(1 << 32, high, E820Type::Ram);
        }

        let firmware = extras.bios.is_some();
        let mut board = Board::new(BoardConfig {
            ram_below_4g: low,
            ram_above_4g: high,
            serial: cfg.serial,
            debug_exit: cfg.debug_exit,
            debugcon: cfg.debugcon,
            rtc_start: cfg.rtc_start,
            q35: cfg.kind == MachineKind::Q35,
        });
        if extras.pc_testdev {
            board.attach_pc_testdev();
        }
        board.check_map()?;
        if firmware {
            board.chipset_power_on();
        }
        board.set_memory_layout(crate::board::MemLayout {
            base: map,
            mem: mem.clone(),
            rom_backing: firmware.then_some(rom_area),
        });
        let map = board.take_phys_map().expect("a memory layout gives a map");
        let mut cpu = Cpu::new(mem.clone(), map.clone());
        let acpi = acpi_config(cfg.kind);
        let smbios_cfg = kagami_bios::smbios::SmbiosConfig {
            ram_below_4g: low,
            ram_above_4g: high,
            cpus: 1,
            cpuid_1: {
                let c = cpu.cpuid(1, 0);
                (c[0], c[3])
            },
            ..Default::default()
        };
        // Firmware relocates the table and patches the entry point.
        let smbios_fw = extras.smbios.clone().or_else(|| {
            let t = kagami_bios::smbios::build(&smbios_cfg, 0);
            Some((t.entry, t.tables))
        });
        let fw = crate::firmware::build_fw_cfg(
            &crate::firmware::FwCfgSetup {
                ram_below_4g: low,
                ram_above_4g: high,
                cpus: 1,
                nographic: extras.nographic,
                acpi: &acpi,
                smbios: smbios_fw,
                linux: match (&cfg.kernel, firmware) {
                    (Some(k), true) => Some((k.as_slice(), cfg.initrd.as_deref(), cfg.append.as_str())),
                    _ => None,
                },
                linuxboot_rom: match (&cfg.kernel, firmware) {
                    (Some(_), true) => Some(crate::firmware::find_linuxboot_rom()?),
                    _ => None,
                },
            },
            board.dma_memory().map(|d| Box::new(d) as Box<dyn kagami_devices::DmaMemory>),
        )?;
        board.attach_fw_cfg(fw);
        board.check_map()?;

        let mut w = RamWriter { mem: &mem, map: &map };
        if low > 0x10_0000 && !firmware {
            let tables = kagami_bios::acpi::build(&acpi_config(cfg.kind), low - ACPI_TABLES_SIZE);
            if tables.tables.len() as u64 > ACPI_TABLES_SIZE {
                panic!(
                    "ACPI tables ({} bytes) outgrew their {ACPI_TABLES_SIZE}-byte area",
                    tables.tables.len()
                );
            }
            w.write(low - ACPI_TABLES_SIZE, &tables.tables).map_err(|e| e.to_string())?;
            w.write(RSDP_ADDR, &tables.rsdp).map_err(|e| e.to_string())?;
            // The built-in BIOS: IVT, BDA and real-mode services.
            let bios = kagami_bios::builtin::build(&e820)?;
            w.write(kagami_bios::builtin::IVT_ADDR, &bios.ivt).map_err(|e| e.to_string())?;
            w.write(kagami_bios::builtin::BDA_ADDR, &bios.bda).map_err(|e| e.to_string())?;
            w.write(kagami_bios::builtin::ROM_BASE, &bios.rom).map_err(|e| e.to_string())?;
            let smbios = kagami_bios::smbios::build(&smbios_cfg, SMBIOS_TABLE_ADDR as u32);
            w.write(SMBIOS_ENTRY_ADDR, &smbios.entry).map_err(|e| e.to_string())?;
            w.write(SMBIOS_TABLE_ADDR, &smbios.tables).map_err(|e| e.to_string())?;
        }
        let boot = match &cfg.kernel {
            // The firmware boots it (fw_cfg items above); the CPU starts at the reset vector.
            _ if firmware => None,
            Some(k) => {
                let entry = load_kernel(&mut w, &e820, k, &cfg.kernel_path, cfg.initrd.as_deref(), &cfg.append)?;
                set_entry_state(&mut cpu, &entry);
                Some(entry)
            }
            None => return Err("no -kernel given; booting disks through firmware is not available yet".into()),
        };
        let mut pc = Pc {
            cpu,
            board,
            clock: MachineClock::new(cfg.clock),
            no_reboot: cfg.no_reboot,
            boot,
            firmware,
            tsc_offset: 0,
            input: None,
            no_shutdown: false,
        };
        // Host-clock mode: RDRAND/RDSEED (and so KASLR and the guest's
        // early entropy) differ from run to run. The fixed power-on seed
        // stays in deterministic mode.
        if !pc.clock.is_deterministic() {
            let seed = host_entropy().ok_or("getrandom failed: no host entropy for RDRAND")?;
            pc.apply_input(HostInput::Entropy(seed));
        }
        Ok(pc)
    }

    /// The one doorway for outside input: returns the sending side of a
    /// channel the run loop drains between slices.
    pub fn connect_input(&mut self) -> std::sync::mpsc::Sender<HostInput> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.input = Some(rx);
        tx
    }

    /// `-no-shutdown`: on guest poweroff, stop the machine and wait for
    /// [`HostInput::Quit`] instead of returning at once.
    pub fn set_no_shutdown(&mut self, on: bool) {
        self.no_shutdown = on;
    }

    /// Where every outside input takes effect, at the current instruction
    /// count (logged with `-d input`); Some(stop) when the user quits.
    pub fn apply_input(&mut self, input: HostInput) -> Option<Stop> {
        match input {
            HostInput::Serial { port, bytes } => {
                tracing::debug!(target: "input", icount = self.cpu.s.icount, port, len = bytes.len(), "serial input");
                self.board.serial_input(port, &bytes);
                None
            }
            HostInput::Entropy(seed) => {
                tracing::debug!(target: "input", icount = self.cpu.s.icount, seed, "entropy");
                // The generator is an xorshift: a zero state would stay zero.
                self.cpu.rng_state = if seed == 0 { 0x853c_49e6_748f_ea9b } else { seed };
                None
            }
            HostInput::Quit => Some(Stop::Quit),
        }
    }

    /// Apply pending outside input; Some(stop) when the user quits.
    pub(crate) fn drain_input(&mut self) -> Option<Stop> {
        loop {
            let rx = self.input.as_ref()?;
            match rx.try_recv() {
                Ok(i) => {
                    if let Some(stop) = self.apply_input(i) {
                        return Some(stop);
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.input = None;
                    return None;
                }
            }
        }
    }

    /// The CPU is idle: wait up to `dur` of host time, returning early when
    /// outside input arrives (it is applied at once, at this instruction count).
    fn idle_wait(&mut self, dur: std::time::Duration) -> Option<Stop> {
        self.clock.idle_passed();
        let Some(rx) = self.input.as_ref() else {
            std::thread::sleep(dur);
            return None;
        };
        match rx.recv_timeout(dur) {
            Ok(i) => self.apply_input(i),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                self.input = None;
                None
            }
        }
    }

    /// The guest powered off: exit code 0, or with `-no-shutdown` wait
    /// (machine stopped) until the user quits.
    fn power_off(&mut self) -> Stop {
        if !self.no_shutdown {
            return Stop::Exit(0);
        }
        eprintln!("kagami: the guest powered off; machine stopped (-no-shutdown). Ctrl-A X quits.");
        if let Some(rx) = self.input.take() {
            while let Ok(i) = rx.recv() {
                if i == HostInput::Quit {
                    break;
                }
            }
        }
        Stop::Exit(0)
    }

    /// Run until the guest stops the machine, or `limit` instructions retire.
    pub fn run(&mut self, limit: Option<u64>) -> Stop {
        let end = limit.map(|l| self.cpu.s.icount.saturating_add(l));
        loop {
            if let Some(stop) = self.drain_input() {
                return stop;
            }
            // PAM/SMRAM changes (the board stopped the CPU's slice for this).
            if let Some(m) = self.board.take_phys_map() {
                self.cpu.set_phys_map(m);
            }
            let now = self.clock.paced_now_ns(self.cpu.s.icount);
            self.board.advance_to(now);
            if let Requests::Stop(stop) = self.handle_requests() {
                return stop;
            }
            if let Some(e) = end {
                if self.cpu.s.icount >= e {
                    return Stop::Limit;
                }
            }
            let deadline = self.board.next_deadline();
            let mut budget = self.clock.budget_until(self.cpu.s.icount, deadline, SLICE);
            if let Some(e) = end {
                budget = budget.min(e - self.cpu.s.icount).max(1);
            }
            // The TSC follows the machine clock: `s.tsc` holds its value at
            // the slice start, and TimedBus gives the exact value at each read.
            self.cpu.s.tsc = now.wrapping_add(self.tsc_offset);
            let mut bus = TimedBus {
                board: &mut self.board,
                clock: &self.clock,
                tsc_offset: &mut self.tsc_offset,
                synced_ns: now,
            };
            let exit = self.cpu.run(&mut bus, budget);
            match exit {
                Exit::Budget | Exit::Stopped => {}
                Exit::TripleFault => {
                    tracing::warn!(
                        target: "guest_errors",
                        "triple fault (shutdown) at {:04x}:{:016x}, icount {}",
                        self.cpu.s.segs[kagami_cpu::state::CS].selector,
                        self.cpu.s.rip,
                        self.cpu.s.icount
                    );
                    if let Some(stop) = self.reset() {
                        return stop;
                    }
                }
                Exit::Halted => {
                    // Host time that passes from here on is idle time the guest sees.
                    self.clock.idle_passed();
                    // The slice may have programmed a timer: ask again.
                    let Some(d) = self.board.next_deadline() else {
                        if self.cpu.s.rflags & kagami_cpu::state::flags::IF == 0 {
                            return Stop::Hung;
                        }
                        // Interrupts enabled but no timer armed: only outside
                        // input can wake it. Without an input channel a
                        // deterministic machine can never wake.
                        if self.clock.is_deterministic() && self.input.is_none() {
                            return Stop::Hung;
                        }
                        if let Some(stop) = self.idle_wait(std::time::Duration::from_millis(10)) {
                            return stop;
                        }
                        continue;
                    };
                    let wait = self.clock.idle_until(self.cpu.s.icount, d);
                    if !wait.is_zero() {
                        if let Some(stop) = self.idle_wait(wait.min(std::time::Duration::from_millis(10))) {
                            return stop;
                        }
                    }
                }
            }
        }
    }

    /// Act on what the devices asked of the machine since the last call
    /// (isa-debug-exit, ACPI power-off, the A20 gate, reset), in order. The
    /// one place both run loops (this module's and `kvm/run.rs`) handle them.
    pub fn handle_requests(&mut self) -> Requests {
        let mut outcome = Requests::Run;
        for r in self.board.take_requests() {
            match r {
                MachineRequest::Exit(code) => return Requests::Stop(Stop::Exit(code)),
                MachineRequest::PowerOff => return Requests::Stop(self.power_off()),
                // KVM has no A20 gate (its line stays open); the software
                // CPU's gate follows the request either way, so a later
                // switch back to it sees the guest's setting.
                MachineRequest::SetA20(on) => self.cpu.set_a20(on),
                MachineRequest::Reset => match self.reset() {
                    Some(stop) => return Requests::Stop(stop),
                    None => outcome = Requests::CpuReset,
                },
            }
        }
        outcome
    }

    /// `reset` for the KVM run loop (`kvm/run.rs`), which lives outside this module.
    pub(crate) fn reset_cpu(&mut self) -> Option<Stop> {
        self.reset()
    }

    /// A reset: with `-no-reboot` the machine stops; otherwise the CPU
    /// restarts at the kernel entry (direct boot has no firmware to rerun).
    fn reset(&mut self) -> Option<Stop> {
        if tracing::enabled!(target: "cpu_reset", tracing::Level::TRACE) {
            let st = &self.cpu.s;
            tracing::trace!(
                target: "cpu_reset",
                "CPU reset{}: cs:rip={:04x}:{:016x} rsp={:016x} rflags={:08x} cr0={:08x} cr2={:016x} cr3={:016x} cr4={:08x} efer={:x} mode={:?} icount={}",
                if self.no_reboot { " (-no-reboot: stopping)" } else { "" },
                st.segs[kagami_cpu::state::CS].selector,
                st.rip,
                st.gpr[4],
                st.flags(),
                st.cr0,
                st.cr2,
                st.cr3,
                st.cr4,
                st.efer,
                st.mode,
                st.icount
            );
        }
        if self.no_reboot {
            return Some(Stop::Reset);
        }
        self.cpu.reset();
        if self.firmware {
            // The chipset reset line: PAM back to the ROM, routing off.
            self.board.chipset_power_on();
        }
        if let Some(e) = self.boot {
            set_entry_state(&mut self.cpu, &e);
        }
        None
    }
}

/// The board as the CPU sees it during a slice: every call goes to the
/// board, and the machine clock is read at each device access and TSC read,
/// so time inside a slice moves with the instructions (deterministic mode:
/// exactly `icount << shift`; host mode: the host clock at the access).
/// Without this a PM-timer or PIT polling loop sees time frozen for a whole
/// slice (Linux: "PM-Timer failed consistency check", failed TSC calibration).
struct TimedBus<'a> {
    board: &'a mut Board,
    clock: &'a MachineClock,
    /// TSC minus machine time (changes when the guest writes the TSC).
    tsc_offset: &'a mut u64,
    /// The time the board's devices were last advanced to.
    synced_ns: u64,
}

impl kagami_cpu::Bus for TimedBus<'_> {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        self.board.io_read(port, size)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        self.board.io_write(port, size, value)
    }
    fn mmio_read(&mut self, addr: u64, size: u8) -> u64 {
        self.board.mmio_read(addr, size)
    }
    fn mmio_write(&mut self, addr: u64, size: u8, value: u64) {
        self.board.mmio_write(addr, size, value)
    }
    fn interrupt_pending(&mut self) -> bool {
        self.board.interrupt_pending()
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.board.acknowledge_interrupt()
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
        let v = self.board.read_msr(msr)?;
        // The LAPIC keeps the TSC deadline in machine time; the guest sees TSC values.
        Some(if msr == MSR_TSC_DEADLINE && v != 0 {
            v.wrapping_add(*self.tsc_offset)
        } else {
            v
        })
    }
    fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        if msr == MSR_TSC_DEADLINE && value != 0 {
            // A deadline already passed fires at once (machine time 1 is always past).
            let t = value.wrapping_sub(*self.tsc_offset);
            let t = if (t as i64) < 1 { 1 } else { t };
            return self.board.write_msr(msr, t);
        }
        self.board.write_msr(msr, value)
    }
    fn stop_requested(&mut self) -> bool {
        self.board.stop_requested()
    }
    fn sync_clock(&mut self, icount: u64) {
        let now = self.clock.paced_now_ns(icount);
        if now > self.synced_ns {
            self.synced_ns = now;
            self.board.advance_to(now);
        }
    }
    /// The TSC read also brings the devices to this moment, so a guest that
    /// polls the TSC while waiting for a timer interrupt gets it in time.
    fn read_tsc(&mut self, icount: u64) -> Option<u64> {
        self.sync_clock(icount);
        Some(self.synced_ns.wrapping_add(*self.tsc_offset))
    }
    fn write_tsc(&mut self, icount: u64, value: u64) {
        self.sync_clock(icount);
        *self.tsc_offset = value.wrapping_sub(self.synced_ns);
    }
}

const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// The ACPI description of what `board.rs` builds: LAPIC and IOAPIC at their
/// usual addresses, ACPI PM at 0x600 with the PIIX4 soft-off encoding, SCI on
/// IRQ 9, reset through 0xCF9, the HPET at 0xFED00000, and on q35 the ECAM
/// window (MCFG).
pub fn acpi_config_for(kind: MachineKind) -> kagami_bios::acpi::AcpiConfig {
    acpi_config(kind)
}

fn acpi_config(kind: MachineKind) -> kagami_bios::acpi::AcpiConfig {
    kagami_bios::acpi::AcpiConfig {
        q35: kind == MachineKind::Q35,
        cpus: 1,
        lapic_addr: 0xfee0_0000,
        ioapic_addr: 0xfec0_0000,
        ioapic_id: 0,
        hpet_addr: Some(0xfed0_0000),
        pm_base: 0x600,
        sci_irq: 9,
        s5_slp_typ: kagami_bios::acpi::S5_SLP_TYP_PIIX4,
        reset: (0xcf9, 0x06),
        pci_gsis: match kind {
            MachineKind::Pc => [10, 10, 11, 11],
            MachineKind::Q35 => [16, 17, 18, 19],
        },
        pci_mmio32: (0xc000_0000, 0xfebf_ffff),
        pci_mmio64: None,
        ecam: (kind == MachineKind::Q35).then_some((kagami_devices::pci::q35::ECAM_BASE, 255)),
    }
}

fn load_kernel(w: &mut RamWriter, e820: &E820Map, k: &[u8], path: &str, initrd: Option<&[u8]>, append: &str) -> Result<BootEntry, String> {
    let err = |e: BootError| format!("{path}: {e}");
    if k.len() > 0x206 && &k[0x202..0x206] == b"HdrS" {
        return kagami_bios::linux::load_linux(w, e820, k, initrd, append).map_err(err);
    }
    if kagami_bios::multiboot::find_header(k).is_some() {
        let mods: Vec<_> = initrd
            .into_iter()
            .map(|d| kagami_bios::multiboot::Module {
                string: "initrd".into(),
                data: d,
            })
            .collect();
        return kagami_bios::multiboot::load_multiboot(w, e820, k, path, append, &mods).map_err(err);
    }
    if k.starts_with(b"\x7fELF") {
        return kagami_bios::pvh::load_pvh(w, e820, k, initrd, append, Some(RSDP_ADDR)).map_err(err);
    }
    Err(format!(
        "{path}: not a kernel kagami can boot (expected a Linux bzImage, a Multiboot kernel or a PVH ELF vmlinux)"
    ))
}

/// Put the CPU in the state a boot protocol enters the kernel with.
pub fn set_entry_state(cpu: &mut Cpu, e: &BootEntry) {
    let s = &mut cpu.s;
    s.gdtr.base = e.gdt_base;
    s.gdtr.limit = e.gdt_limit as u32;
    s.idtr.base = 0;
    s.idtr.limit = 0;
    s.segs[CS] = Desc(e.cs.1).segment(e.cs.0);
    for seg in [DS, ES, SS, FS, GS] {
        s.segs[seg] = Desc(e.ds.1).segment(e.ds.0);
    }
    // An active 32-bit TSS at 0 (the PVH ABI asks for one; harmless elsewhere).
    s.tr = kagami_cpu::state::Segment {
        base: 0,
        limit: 0x67,
        selector: 0,
        attr: kagami_cpu::state::attr::P | 0xb,
    };
    s.rip = e.rip;
    s.gpr[0] = e.rax;
    s.gpr[3] = e.rbx;
    s.gpr[6] = e.rsi;
    s.gpr[4] = e.rsp;
    s.set_flags(2);
    s.cr0 = cr0::PE | cr0::ET;
    if let EntryMode::Long64 { cr3 } = e.mode {
        s.cr0 |= cr0::PG;
        s.cr3 = cr3;
        s.cr4 = cr4::PAE;
        s.efer = efer::LME | efer::LMA;
    }
    cpu.update_mode();
    cpu.flush_tlb_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use kagami_devices::SharedBuffer;

    /// Exploratory: boot the test guest for a number of instructions and
    /// print the console (run with --ignored; needs target/guest).
    #[test]
    #[ignore]
    fn linux_boot_progress() {
        let dir = std::env::var("KAGAMI_GUEST_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/guest").into());
        let kernel = std::fs::read(format!("{dir}/bzImage")).expect("bzImage");
        let initrd = std::fs::read(format!("{dir}/initramfs.cpio.gz")).expect("initramfs");
        let out = SharedBuffer::new();
        let insns: u64 = std::env::var("KAGAMI_INSNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50_000_000);
        let mut pc = Pc::new(PcConfig {
            kind: MachineKind::Pc,
            ram_bytes: 256 << 20,
            kernel: Some(kernel),
            kernel_path: "bzImage".into(),
            initrd: Some(initrd),
            append: "console=ttyS0 earlyprintk=serial,ttyS0 loglevel=8 kagami.poweroff=1".into(),
            serial: vec![Some(out.sink()), None],
            debug_exit: None,
            debugcon: None,
            clock: ClockMode::Instructions { shift: 3 },
            no_reboot: true,
            rtc_start: 0,
        })
        .unwrap();
        let t = std::time::Instant::now();
        let stop = pc.run(Some(insns));
        let secs = t.elapsed().as_secs_f64();
        println!("{}", String::from_utf8_lossy(&out.contents()));
        let mut buf = vec![0u8; 1 << 20];
        let mut nz = 0usize;
        let mut last = 0;
        for mb in 0..256u64 {
            pc.cpu.mem.read(mb << 20, &mut buf);
            let n = buf.iter().filter(|b| **b != 0).count();
            if n > 0 {
                last = mb;
            }
            nz += n;
        }
        println!("non-zero bytes in RAM: {nz}, last MiB written: {last}");
        if let Ok(n) = std::env::var("KAGAMI_TRACE").map(|v| v.parse::<usize>().unwrap_or(20)) {
            for _ in 0..n {
                let cs = pc.cpu.s.segs[kagami_cpu::state::CS].base;
                let lin = cs.wrapping_add(pc.cpu.s.rip);
                let mut b = [0u8; 15];
                for (k, x) in b.iter_mut().enumerate() {
                    let p = pc
                        .cpu
                        .translate(&mut pc.board, lin + k as u64, kagami_cpu::mmu::Access::Exec)
                        .unwrap_or(0);
                    *x = pc.cpu.read_phys(&mut pc.board, p, 1) as u8;
                }
                let mut d = iced_x86::Decoder::with_ip(pc.cpu.s.mode.bitness(), &b, pc.cpu.s.rip, 0);
                let i = d.decode();
                println!("{:#x} {i}  rsp={:#x} rax={:#x}", pc.cpu.s.rip, pc.cpu.s.gpr[4], pc.cpu.s.gpr[0]);
                if pc.cpu.step(&mut pc.board) != Exit::Budget {
                    println!("exit at {:#x} cr2={:#x}", pc.cpu.s.rip, pc.cpu.s.cr2);
                    break;
                }
            }
        }

        println!(
            "stop={stop:?} icount={} rip={:#x} mode={:?} in {secs:.1}s = {:.1} MIPS",
            pc.cpu.s.icount,
            pc.cpu.s.rip,
            pc.cpu.s.mode,
            pc.cpu.s.icount as f64 / secs / 1e6
        );
    }
}
