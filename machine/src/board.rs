//! The PC board: every legacy device, where it sits in I/O space, and the
//! [`Bus`] the CPU sees. The map below is the one place that decides
//! addresses; `kagami --print-machine` prints it.
//!
//! Interrupts: devices drive pins of one [`IrqPins`] bank (ISA IRQ n = pin
//! n); before the CPU asks for a pending interrupt the board replays pin
//! changes into the 8259 pair and the IOAPIC (ISA IRQ n → IOAPIC input n,
//! except IRQ0 → input 2, as the MADT's interrupt source override says).
//! IOAPIC messages go to the local APIC, and the local APIC's EOI
//! broadcasts back to the IOAPIC. The CPU takes the local APIC's vector
//! first, then the 8259's INTR when it passes through LINT0 (virtual-wire
//! ExtINT) or the local APIC is disabled.

use kagami_cpu::Bus;
use kagami_devices::acpi_pm::{AcpiPm, ACPI_PM_SPAN};
use kagami_devices::debug_exit::IsaDebugExit;
use kagami_devices::debugcon::IsaDebugcon;
use kagami_devices::hpet::{Hpet, HPET_MMIO_SIZE, HPET_ROUTE_CAP};
use kagami_devices::i8042::I8042;
use kagami_devices::ioapic::{DeliveryMode, IoapicDelivery, IOAPIC_MMIO_SIZE};
use kagami_devices::lapic::{ApicMode, IpiRequest, LAPIC_MMIO_SIZE};
use kagami_devices::port92::Port92;
use kagami_devices::post::PostCode;
use kagami_devices::reset_control::ResetControl;
use kagami_devices::{
    ByteSink, Ioapic, IrqLine, IrqPins, Lapic, MachineRequest, MmioDevice, NoIrq, Pic8259, PinChanges, Pit8254, PortIoDevice, RequestQueue,
    Rtc, Timed, Uart16550,
};

/// Where the interrupt controllers sit (the MADT in `bios/src/acpi.rs`
/// describes the same addresses).
pub const LAPIC_BASE: u64 = 0xfee0_0000;
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
pub const HPET_BASE: u64 = 0xfed0_0000;
/// ACPI PM I/O block (PM1a_EVT, PM1a_CNT, PM_TMR) and its SCI.
pub const ACPI_PM_BASE: u16 = 0x600;
pub const SCI_IRQ: u8 = 9;
const MSR_APIC_BASE: u32 = 0x1b;
const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// The IOAPIC input an ISA IRQ reaches: identity except IRQ0 → 2.
pub fn isa_irq_to_gsi(irq: u8) -> u8 {
    if irq == 0 {
        2
    } else {
        irq
    }
}

/// Which device an MMIO range belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioDev {
    Lapic,
    Ioapic,
    Hpet,
    /// Q35 PCIe configuration space (ECAM), dispatched to the PCI bus.
    Ecam,
    /// A decoded PCI memory BAR (index into the board's BAR table).
    PciBar(u16),
    /// pc-testdev's 64 KiB scratch window.
    Testdev,
}

/// One window of physical address space: `start..start+len` are offsets
/// `0..len` of `dev`.
#[derive(Clone, Copy, Debug)]
pub struct MmioRange {
    pub start: u64,
    pub len: u64,
    pub dev: MmioDev,
    pub name: &'static str,
}

/// Which device a port range belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortDev {
    Pic,
    Pit,
    Rtc,
    Com(usize),
    I8042,
    Port92,
    Post,
    ResetControl,
    DebugExit,
    Debugcon,
    AcpiPm,
    /// PCI configuration mechanism #1 (0xCF8 address, 0xCFC data).
    Pci,
    /// A decoded PCI I/O BAR (index into the board's BAR table).
    PciBar(u16),
    /// PIIX3 IDE legacy command/control blocks (0x1F0, 0x3F6, 0x170, 0x376).
    IdeLegacy,
    /// QEMU's fw_cfg (0x510 selector/data, 0x514 DMA).
    FwCfg,
    /// QEMU's pc-testdev (0xE0-0xEB, IRQ lines at 0x2000).
    Testdev,
    /// ICH9 SMI_EN/SMI_STS (PM base + 0x30, q35).
    SmiEn,
}

/// One window of I/O space: ports `start..start+len` are offsets
/// `offset..offset+len` of `dev`.
#[derive(Clone, Copy, Debug)]
pub struct PortRange {
    pub start: u16,
    pub len: u16,
    pub dev: PortDev,
    pub offset: u16,
    pub name: &'static str,
    /// ISA IRQ the device raises, for the printed map.
    pub irq: Option<u8>,
}

/// Board options that change the map.
pub struct BoardConfig {
    /// Guest RAM below and above 4 GiB (for the CMOS size bytes).
    pub ram_below_4g: u64,
    pub ram_above_4g: u64,
    /// Serial port outputs (COM1, COM2); `None` leaves the port out.
    pub serial: Vec<Option<ByteSink>>,
    /// isa-debug-exit (iobase, iosize).
    pub debug_exit: Option<(u16, u16)>,
    /// isa-debugcon (iobase, output).
    pub debugcon: Option<(u16, ByteSink)>,
    /// RTC start time (seconds since the Unix epoch): an outside input.
    pub rtc_start: i64,
    /// Q35 chipset (MCH + ICH9, ECAM) instead of i440FX + PIIX.
    pub q35: bool,
}

#[path = "board_pci.rs"]
mod board_pci;
#[path = "drive_board.rs"]
mod drive_board;
pub use board_pci::{MemLayout, BIOS_AREA_LEN, BIOS_AREA_START, PIRQ_PIN_BASE};
pub use drive_board::{AHCI_ABAR, IDE_BM_BASE, Q35_AHCI};

pub struct Board {
    pub pci: kagami_devices::pci::PciBus,
    /// BAR maps, PIRQ routing, PAM/SMRAM memory map (board_pci.rs).
    pciw: board_pci::PciWiring,
    pub pic: Pic8259,
    pub pit: Pit8254,
    pub rtc: Rtc,
    pub com: Vec<Uart16550>,
    pub i8042: I8042,
    pub port92: Port92,
    pub post: PostCode,
    pub reset: ResetControl,
    pub debug_exit: Option<IsaDebugExit>,
    pub debugcon: Option<IsaDebugcon>,
    /// fw_cfg, when the machine attaches one ([`Board::attach_fw_cfg`]).
    pub fw_cfg: Option<kagami_devices::FwCfg>,
    /// `-device pc-testdev` ([`Board::attach_pc_testdev`]).
    pub testdev: Option<kagami_devices::PcTestdev>,
    pub lapic: Lapic,
    pub ioapic: Ioapic,
    pub acpi_pm: AcpiPm,
    pub hpet: Hpet,
    /// HPET outputs: routed IOAPIC inputs (pin = input) and the legacy
    /// replacement IRQ0/IRQ8 (pins 0 and 8), which stand in for the PIT's
    /// and RTC's while LEG_RT_CNF is set.
    hpet_route: IrqPins,
    hpet_legacy: IrqPins,
    hpet_legacy_active: bool,
    ports: Vec<PortRange>,
    mmio: Vec<MmioRange>,
    pins: IrqPins,
    /// MSI messages from PCI functions, delivered like IOAPIC messages.
    msi: kagami_devices::pci::MsiQueue,
    pub requests: RequestQueue,
    /// Virtual time of the last `advance_to`, for devices read between advances.
    now_ns: u64,
}

const COM_PORTS: [(u16, u8, &str); 2] = [(0x3f8, 4, "COM1 16550A UART"), (0x2f8, 3, "COM2 16550A UART")];

impl Board {
    pub fn new(cfg: BoardConfig) -> Board {
        let pins = IrqPins::new();
        let requests = RequestQueue::new();
        let mut ports = vec![
            PortRange {
                start: 0x20,
                len: 2,
                dev: PortDev::Pic,
                offset: 0,
                name: "8259 PIC master",
                irq: None,
            },
            PortRange {
                start: 0xa0,
                len: 2,
                dev: PortDev::Pic,
                offset: 2,
                name: "8259 PIC slave",
                irq: Some(2),
            },
            PortRange {
                start: 0x4d0,
                len: 2,
                dev: PortDev::Pic,
                offset: 4,
                name: "ELCR (PIC edge/level)",
                irq: None,
            },
            PortRange {
                start: 0x40,
                len: 4,
                dev: PortDev::Pit,
                offset: 0,
                name: "8254 PIT",
                irq: Some(0),
            },
            PortRange {
                start: 0x61,
                len: 1,
                dev: PortDev::Pit,
                offset: 4,
                name: "system control port B",
                irq: None,
            },
            PortRange {
                start: 0x70,
                len: 2,
                dev: PortDev::Rtc,
                offset: 0,
                name: "MC146818 RTC/CMOS",
                irq: Some(8),
            },
            PortRange {
                start: 0x60,
                len: 1,
                dev: PortDev::I8042,
                offset: 0,
                name: "i8042 data",
                irq: Some(1),
            },
            PortRange {
                start: 0x64,
                len: 1,
                dev: PortDev::I8042,
                offset: 1,
                name: "i8042 status/command",
                irq: Some(12),
            },
            PortRange {
                start: 0x92,
                len: 1,
                dev: PortDev::Port92,
                offset: 0,
                name: "port 0x92 (fast A20, reset)",
                irq: None,
            },
            PortRange {
                start: 0x80,
                len: 1,
                dev: PortDev::Post,
                offset: 0,
                name: "POST code",
                irq: None,
            },
            PortRange {
                start: ACPI_PM_BASE,
                len: ACPI_PM_SPAN,
                dev: PortDev::AcpiPm,
                offset: 0,
                name: "ACPI PM (PM1a_EVT, PM1a_CNT, PM_TMR)",
                irq: Some(SCI_IRQ),
            },
            PortRange {
                start: 0xcf9,
                len: 1,
                dev: PortDev::ResetControl,
                offset: 0,
                name: "reset control",
                irq: None,
            },
        ];
        let mut com = Vec::new();
        for (k, out) in cfg.serial.into_iter().enumerate().take(COM_PORTS.len()) {
            let Some(out) = out else { continue };
            let (base, irq, name) = COM_PORTS[k];
            ports.push(PortRange {
                start: base,
                len: 8,
                dev: PortDev::Com(com.len()),
                offset: 0,
                name,
                irq: Some(irq),
            });
            com.push(Uart16550::new(out, pins.line(irq)));
        }
        let debug_exit = cfg.debug_exit.map(|(base, size)| {
            ports.push(PortRange {
                start: base,
                len: size,
                dev: PortDev::DebugExit,
                offset: 0,
                name: "isa-debug-exit",
                irq: None,
            });
            IsaDebugExit::new(size, requests.sink())
        });
        let debugcon = cfg.debugcon.map(|(base, out)| {
            ports.push(PortRange {
                start: base,
                len: 1,
                dev: PortDev::Debugcon,
                offset: 0,
                name: "isa-debugcon",
                irq: None,
            });
            IsaDebugcon::new(out)
        });
        // 0xCF8 is one port wide here so that 0xCF9 (reset control) stays
        // separate; a dword access at 0xCF8 still starts in this window.
        ports.push(PortRange {
            start: 0xcf8,
            len: 1,
            dev: PortDev::Pci,
            offset: 0,
            name: "PCI config address",
            irq: None,
        });
        ports.push(PortRange {
            start: 0xcfc,
            len: 4,
            dev: PortDev::Pci,
            offset: 4,
            name: "PCI config data",
            irq: None,
        });
        ports.sort_by_key(|r| r.start);
        // No firmware runs before a directly booted kernel: program what a
        // BIOS would (ECAM on Q35, PIRQ routes to the GSIs the ACPI _PRT names).
        let mut pci = if cfg.q35 {
            kagami_devices::pci::q35_bus()
        } else {
            kagami_devices::pci::pc_bus()
        };
        if cfg.q35 {
            if let Some(mch) = pci.device_mut::<kagami_devices::pci::q35::Q35Mch>(kagami_devices::pci::Q35_HOST) {
                mch.enable_ecam(kagami_devices::pci::q35::ECAM_BASE);
            }
        } else if let Some(isa) = pci.device_mut::<kagami_devices::pci::piix::Piix3Isa>(kagami_devices::pci::PC_ISA) {
            isa.route_pirqs([10, 10, 11, 11]);
        }
        Board::program_pam_as_firmware(&mut pci);
        let _ = pci.take_changes();
        let mut mmio = vec![
            MmioRange {
                start: IOAPIC_BASE,
                len: IOAPIC_MMIO_SIZE,
                dev: MmioDev::Ioapic,
                name: "82093AA IOAPIC",
            },
            MmioRange {
                start: HPET_BASE,
                len: HPET_MMIO_SIZE,
                dev: MmioDev::Hpet,
                name: "HPET (legacy route: IRQ0, IRQ8)",
            },
            MmioRange {
                start: LAPIC_BASE,
                len: LAPIC_MMIO_SIZE,
                dev: MmioDev::Lapic,
                name: "local APIC",
            },
        ];
        if let Some((start, len)) = pci
            .device::<kagami_devices::pci::q35::Q35Mch>(kagami_devices::pci::Q35_HOST)
            .and_then(|m| m.ecam_window())
        {
            mmio.push(MmioRange {
                start,
                len,
                dev: MmioDev::Ecam,
                name: "PCIe ECAM (Q35 MCH)",
            });
        }
        mmio.sort_by_key(|r| r.start);
        let hpet_route = IrqPins::new();
        let hpet_legacy = IrqPins::new();
        let route_lines: Vec<Box<dyn IrqLine>> = (0..32u8)
            .map(|i| {
                if HPET_ROUTE_CAP & (1 << i) != 0 {
                    hpet_route.line(i)
                } else {
                    Box::new(NoIrq) as Box<dyn IrqLine>
                }
            })
            .collect();
        let hpet = Hpet::new(route_lines, hpet_legacy.line(0), hpet_legacy.line(8));
        let pciw = board_pci::PciWiring::new(cfg.q35, &pins, &ports);
        let mut rtc = Rtc::new(cfg.rtc_start, pins.line(8));
        rtc.set_memory_size(cfg.ram_below_4g, cfg.ram_above_4g);
        Board {
            pci,
            pciw,
            pic: Pic8259::new(),
            pit: Pit8254::new(pins.line(0)),
            rtc,
            com,
            i8042: I8042::new(pins.line(1), pins.line(12), requests.sink()),
            port92: Port92::new(true, requests.sink()),
            post: PostCode::new(),
            reset: ResetControl::new(requests.sink()),
            debug_exit,
            debugcon,
            fw_cfg: None,
            testdev: None,
            lapic: Lapic::new(0, true),
            ioapic: Ioapic::new(0),
            acpi_pm: AcpiPm::new(kagami_bios::acpi::S5_SLP_TYP_PIIX4, true, pins.line(SCI_IRQ), requests.sink()),
            hpet,
            hpet_route,
            hpet_legacy,
            hpet_legacy_active: false,
            ports,
            mmio,
            pins,
            msi: kagami_devices::pci::MsiQueue::new(),
            requests,
            now_ns: 0,
        }
    }

    /// Overlapping windows are a wiring bug in this file or a user option
    /// that collides with a built-in device: say which.
    pub fn check_map(&self) -> Result<(), String> {
        for w in self.ports.windows(2) {
            if w[0].start as u32 + w[0].len as u32 > w[1].start as u32 {
                return Err(format!(
                    "I/O ports {:#x}-{:#x} ({}) overlap {:#x}-{:#x} ({})",
                    w[0].start,
                    w[0].start as u32 + w[0].len as u32 - 1,
                    w[0].name,
                    w[1].start,
                    w[1].start as u32 + w[1].len as u32 - 1,
                    w[1].name
                ));
            }
        }
        for w in self.mmio.windows(2) {
            if w[0].start + w[0].len > w[1].start {
                return Err(format!(
                    "MMIO {:#x} ({}) overlaps {:#x} ({})",
                    w[0].start, w[0].name, w[1].start, w[1].name
                ));
            }
        }
        Ok(())
    }

    pub fn mmio_map(&self) -> &[MmioRange] {
        &self.mmio
    }

    fn find_mmio(&self, addr: u64) -> Option<MmioRange> {
        let i = self.mmio.partition_point(|r| r.start + r.len <= addr);
        self.mmio.get(i).filter(|r| r.start <= addr).copied()
    }

    fn mmio_device(&mut self, d: MmioDev) -> &mut dyn MmioDevice {
        match d {
            MmioDev::Lapic => &mut self.lapic,
            MmioDev::Ioapic => &mut self.ioapic,
            MmioDev::Hpet => &mut self.hpet,
            MmioDev::Testdev => self.testdev.as_mut().expect("mapped pc-testdev exists"),
            MmioDev::Ecam | MmioDev::PciBar(_) => unreachable!("PCI accesses are dispatched to the PCI bus in mmio_read/mmio_write"),
        }
    }

    pub fn port_map(&self) -> &[PortRange] {
        &self.ports
    }

    fn find_port(&self, port: u16) -> Option<PortRange> {
        let i = self.ports.partition_point(|r| (r.start as u32 + r.len as u32) <= port as u32);
        self.ports.get(i).filter(|r| r.start <= port).copied()
    }

    fn port_device(&mut self, d: PortDev) -> &mut dyn PortIoDevice {
        match d {
            PortDev::Pic => &mut self.pic,
            PortDev::Pit => &mut self.pit,
            PortDev::Rtc => &mut self.rtc,
            PortDev::Com(k) => &mut self.com[k],
            PortDev::I8042 => &mut self.i8042,
            PortDev::Port92 => &mut self.port92,
            PortDev::Post => &mut self.post,
            PortDev::ResetControl => &mut self.reset,
            PortDev::DebugExit => self.debug_exit.as_mut().expect("mapped debug-exit exists"),
            PortDev::Debugcon => self.debugcon.as_mut().expect("mapped debugcon exists"),
            PortDev::AcpiPm => &mut self.acpi_pm,
            PortDev::Pci => &mut self.pci,
            PortDev::FwCfg => self.fw_cfg.as_mut().expect("mapped fw_cfg exists"),
            PortDev::Testdev => self.testdev.as_mut().expect("mapped pc-testdev exists"),
            PortDev::SmiEn => &mut self.pciw.smi_en,
            PortDev::PciBar(_) => unreachable!("BAR accesses are dispatched in io_read/io_write"),
            PortDev::IdeLegacy => self
                .pci
                .device_mut::<kagami_devices::storage::Piix3IdePci>(kagami_devices::pci::PC_IDE)
                .expect("the IDE ports are mapped with the IDE function"),
        }
    }

    /// Advance every timed device to `now_ns` and deliver pin changes.
    pub fn advance_to(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.pit.advance_to(now_ns);
        self.rtc.advance_to(now_ns);
        for c in self.com.iter_mut() {
            c.advance_to(now_ns);
        }
        self.lapic.advance_to(now_ns);
        self.acpi_pm.advance_to(now_ns);
        self.hpet.advance_to(now_ns);
        self.sync_irqs();
    }

    /// The earliest time a device needs to be advanced to.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut d = [
            self.pit.next_deadline(),
            self.rtc.next_deadline(),
            self.lapic.next_deadline(),
            self.acpi_pm.next_deadline(),
            self.hpet.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        for c in &self.com {
            d = [d, c.next_deadline()].into_iter().flatten().min();
        }
        d
    }

    fn sync_irqs(&mut self) {
        // Fast path: this runs at every device access and interrupt check.
        if !self.pins.has_changes()
            && !self.hpet_legacy.has_changes()
            && !self.hpet_route.has_changes()
            && self.hpet.legacy_replacement() == self.hpet_legacy_active
            && !self.lapic.has_eoi_broadcasts()
            && !self.ioapic.has_deliveries()
            && !self.msi.has_pending()
            && !self.pciw.pirq_dirty
        {
            return;
        }
        // PCI interrupts (PIRQ pins 16+) OR into the ISA lines they are routed to.
        let (pci_isa, pci_gsi) = self.pci_isa_levels();
        let old_pci_isa = std::mem::replace(&mut self.pciw.pirq_isa, pci_isa);
        self.pciw.pirq_dirty = false;
        // While the HPET's legacy replacement is on, ISA IRQ0 and IRQ8 come
        // from its timers 0 and 1 instead of the PIT and RTC. A switch
        // re-drives both pins from the source now in charge.
        let legacy = self.hpet.legacy_replacement();
        let switched = legacy != self.hpet_legacy_active;
        self.hpet_legacy_active = legacy;
        let full = |bank: &IrqPins, ch: Option<PinChanges>| {
            if switched {
                Some(ch.unwrap_or(PinChanges {
                    level: bank.levels(),
                    rose: 0,
                }))
            } else {
                ch
            }
        };
        let isa = full(&self.pins, self.pins.take_changes());
        let hpet_legacy = full(&self.hpet_legacy, self.hpet_legacy.take_changes());
        let taken_by_hpet = |pin: u8| legacy && (pin == 0 || pin == 8);
        let (pic, ioapic) = (&mut self.pic, &mut self.ioapic);
        if let Some(ch) = hpet_legacy {
            ch.replay(|pin, level| {
                if taken_by_hpet(pin) {
                    pic.set_irq(pin, level);
                    ioapic.set_irq(isa_irq_to_gsi(pin), level);
                }
            });
        }
        if let Some(ch) = self.hpet_route.take_changes() {
            ch.replay(|pin, level| {
                if HPET_ROUTE_CAP & (1 << pin) != 0 {
                    ioapic.set_irq(pin, level);
                }
            });
        }
        if let Some(ch) = isa {
            ch.replay(|pin, level| {
                if pin < 16 && !taken_by_hpet(pin) {
                    let level = level || pci_isa & (1 << pin) != 0;
                    pic.set_irq(pin, level);
                    // ISA IRQ2 is the 8259 cascade: IOAPIC input 2 is IRQ0's.
                    if pin != 2 {
                        ioapic.set_irq(isa_irq_to_gsi(pin), level);
                    }
                }
            });
        }
        self.apply_pci_irqs(pci_isa, pci_gsi, old_pci_isa);
        self.route_apic_messages();
    }

    /// Carry PCI functions' MSI messages and IOAPIC messages to the local
    /// APIC and its EOI broadcasts back, until both are quiet (an EOI can
    /// make a level line send again).
    fn route_apic_messages(&mut self) {
        for m in self.msi.take() {
            if let Some(d) = m.decode() {
                deliver_to_lapic(&mut self.lapic, d);
            }
        }
        loop {
            for v in self.lapic.take_eoi_broadcasts() {
                self.ioapic.eoi(v);
            }
            if !self.ioapic.has_deliveries() {
                break;
            }
            for d in self.ioapic.take_deliveries() {
                deliver_to_lapic(&mut self.lapic, d);
            }
        }
    }

    /// INIT/SIPI requests the local APIC queued (for SMP), oldest first.
    pub fn take_ipi_requests(&mut self) -> Vec<IpiRequest> {
        self.lapic.take_ipi_requests()
    }

    /// Requests devices made (reset, A20, exit), oldest first.
    pub fn take_requests(&self) -> Vec<MachineRequest> {
        self.requests.take()
    }

    /// Doorway: bytes typed on the host for a serial port.
    pub fn serial_input(&mut self, port: usize, bytes: &[u8]) {
        if let Some(c) = self.com.get_mut(port) {
            c.receive(bytes);
        }
        self.sync_irqs();
    }

    /// The machine's map as text (`kagami --print-machine`).
    pub fn describe(&self) -> String {
        let mut s = String::from("MMIO:\n");
        for r in &self.mmio {
            s += &format!("  {:#010x}-{:#010x}  {}\n", r.start, r.start + r.len - 1, r.name);
        }
        s += "Interrupt routing: ISA IRQ n -> 8259 IRQ n and IOAPIC input n (IRQ0 -> input 2); \
              IOAPIC -> local APIC; 8259 INTR -> local APIC LINT0 (ExtINT)\n";
        s += &self.describe_pci_irqs();
        s += "I/O ports:\n";
        for r in &self.ports {
            let irq = r.irq.map(|i| format!("IRQ {i}")).unwrap_or_default();
            s += &format!(
                "  {:#06x}-{:#06x}  {:<32} {}\n",
                r.start,
                r.start as u32 + r.len as u32 - 1,
                r.name,
                irq
            );
        }
        s += "PCI:\n";
        s += &self.pci.describe();
        s
    }
}

impl Bus for Board {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        match self.find_port(port) {
            Some(PortRange {
                dev: PortDev::PciBar(i),
                start,
                ..
            }) => {
                let v = self.pci_bar_io_read(i, port - start, size);
                self.sync_irqs();
                v
            }
            Some(r) => {
                let v = self.port_device(r.dev).read(port - r.start + r.offset, size);
                if r.dev == PortDev::Pci {
                    self.after_pci_access();
                }
                self.sync_irqs();
                v
            }
            None => kagami_cpu::bus::ones(size) as u32,
        }
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        if let Some(r) = self.find_port(port) {
            if let PortDev::PciBar(i) = r.dev {
                self.pci_bar_io_write(i, port - r.start, size, value);
            } else {
                self.port_device(r.dev).write(port - r.start + r.offset, size, value);
            }
            if r.dev == PortDev::Pci {
                self.after_pci_access();
            }
            self.sync_irqs();
        }
    }

    fn mmio_read(&mut self, addr: u64, size: u8) -> u64 {
        match self.find_mmio(addr) {
            Some(r) if r.dev == MmioDev::Ecam => {
                let v = self.pci.ecam_read(addr - r.start, size);
                self.after_pci_access();
                v
            }
            Some(MmioRange {
                dev: MmioDev::PciBar(i),
                start,
                ..
            }) => {
                let v = self.pci_bar_mmio_read(i, addr - start, size);
                self.sync_irqs();
                v
            }
            Some(r) => {
                let v = self.mmio_device(r.dev).read(addr - r.start, size);
                self.sync_irqs();
                v
            }
            None => kagami_cpu::bus::ones(size),
        }
    }

    fn mmio_write(&mut self, addr: u64, size: u8, value: u64) {
        if self.pam_write(addr, size, value) {
            return;
        }
        if let Some(r) = self.find_mmio(addr) {
            if r.dev == MmioDev::Ecam {
                self.pci.ecam_write(addr - r.start, size, value);
                self.after_pci_access();
                return;
            }
            if let MmioDev::PciBar(i) = r.dev {
                self.pci_bar_mmio_write(i, addr - r.start, size, value);
                self.sync_irqs();
                return;
            }
            self.mmio_device(r.dev).write(addr - r.start, size, value);
            self.sync_irqs();
        }
    }

    fn interrupt_pending(&mut self) -> bool {
        self.sync_irqs();
        self.lapic.pending_vector().is_some() || (self.lapic.passes_extint() && self.pic.pending())
    }

    /// The local APIC's vector first; otherwise the 8259 answers the INTA
    /// cycle through LINT0 (QEMU's `cpu_get_pic_interrupt` has the same order).
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.sync_irqs();
        if self.lapic.pending_vector().is_some() {
            return self.lapic.acknowledge();
        }
        if self.lapic.passes_extint() {
            self.lapic.extint_acknowledged();
            return Some(self.pic.acknowledge());
        }
        None
    }

    fn take_nmi(&mut self) -> bool {
        self.lapic.take_nmi()
    }

    fn write_tpr(&mut self, tpr: u8) {
        self.lapic.set_tpr(tpr);
    }

    fn read_tpr(&mut self) -> u8 {
        self.lapic.tpr()
    }

    fn read_msr(&mut self, msr: u32) -> Option<u64> {
        match msr {
            MSR_TSC_DEADLINE => Some(self.lapic.tsc_deadline()),
            0x800..=0x8ff => self.lapic.read_msr(msr),
            _ => None,
        }
    }

    /// IA32_APIC_BASE (the CPU keeps the value; the board follows EN/EXTD),
    /// IA32_TSC_DEADLINE (TSC units of `kagami_devices::lapic::TSC_HZ`) and
    /// the x2APIC registers.
    fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        let ok = match msr {
            MSR_APIC_BASE => self.lapic.set_mode(match (value >> 10) & 3 {
                0 => ApicMode::Disabled,
                2 => ApicMode::XApic,
                3 => ApicMode::X2Apic,
                _ => return false,
            }),
            MSR_TSC_DEADLINE => {
                self.lapic.write_tsc_deadline(value);
                true
            }
            0x800..=0x8ff => self.lapic.write_msr(msr, value),
            _ => false,
        };
        self.route_apic_messages();
        ok
    }

    fn stop_requested(&mut self) -> bool {
        !self.requests.is_empty() || self.pciw.map_pending()
    }
}

/// One IOAPIC message to the (single) local APIC, if it is a destination.
fn deliver_to_lapic(lapic: &mut Lapic, d: IoapicDelivery) {
    if !lapic.accepts_ioapic(d.logical, d.dest) {
        return;
    }
    match d.mode {
        DeliveryMode::Fixed | DeliveryMode::LowestPriority => lapic.accept_interrupt(d.vector, d.level_triggered),
        DeliveryMode::Nmi => lapic.accept_nmi(),
        DeliveryMode::Init => lapic.accept_init(),
        DeliveryMode::ExtInt => lapic.accept_extint(),
        // No SMM.
        DeliveryMode::Smi => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kagami_devices::SharedBuffer;

    fn board(out: &SharedBuffer) -> Board {
        Board::new(BoardConfig {
            ram_below_4g: 128 << 20,
            ram_above_4g: 0,
            serial: vec![Some(out.sink()), None],
            debug_exit: Some((0xf4, 4)),
            debugcon: Some((0xe9, out.sink())),
            rtc_start: 0,
            q35: false,
        })
    }

    fn board_kind(q35: bool) -> Board {
        let out = SharedBuffer::new();
        Board::new(BoardConfig {
            ram_below_4g: 128 << 20,
            ram_above_4g: 0,
            serial: vec![Some(out.sink()), None],
            debug_exit: None,
            debugcon: None,
            rtc_start: 0,
            q35,
        })
    }

    /// The host bridge answers configuration mechanism #1 on both machines
    /// (i440FX 8086:1237, Q35 MCH 8086:29C0), and Q35's through ECAM too.
    #[test]
    fn pci_host_bridge_is_visible() {
        for (q35, id) in [(false, 0x1237_8086u32), (true, 0x29c0_8086)] {
            let mut b = board_kind(q35);
            b.check_map().unwrap();
            b.io_write(0xcf8, 4, 0x8000_0000);
            assert_eq!(b.io_read(0xcfc, 4), id, "q35={q35}");
            // Reset control next door still works.
            assert!(b.describe().contains("reset control"));
            if q35 {
                assert_eq!(b.mmio_read(0xb000_0000, 4) as u32, id);
                assert!(b.describe().contains("PCIe ECAM"));
            }
        }
    }

    #[test]
    fn map_has_no_overlaps_and_routes_ports() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        b.check_map().unwrap();
        b.io_write(0x3f8, 1, b'K' as u32);
        b.io_write(0xe9, 1, b'!' as u32);
        assert_eq!(out.take(), b"K!");
        assert_eq!(b.io_read(0x2f8 + 5, 1), 0xff, "COM2 left out reads open bus");
        b.io_write(0xf4, 1, 3);
        assert_eq!(b.take_requests(), vec![MachineRequest::Exit(7)]);
        assert!(b.describe().contains("0x03f8-0x03ff"));
    }

    #[test]
    fn pit_interrupt_reaches_the_cpu_through_the_pic() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        // ICW1-4: master vectors at 0x20, slave at 0x28, unmask IRQ0.
        for (p, v) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 4),
            (0x21, 1),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 2),
            (0xa1, 1),
            (0x21, 0xfe),
        ] {
            b.io_write(p, 1, v);
        }
        // PIT channel 0, mode 2, count 1193 (~1 ms).
        b.io_write(0x43, 1, 0x34);
        b.io_write(0x40, 1, 1193 & 0xff);
        b.io_write(0x40, 1, 1193 >> 8);
        assert!(!b.interrupt_pending());
        let d = b.next_deadline().expect("PIT has a deadline");
        b.advance_to(d);
        assert!(b.interrupt_pending());
        assert_eq!(b.acknowledge_interrupt(), Some(0x20));
    }

    fn ioapic_entry(b: &mut Board, pin: u64, entry: u64) {
        b.mmio_write(IOAPIC_BASE, 4, 0x11 + 2 * pin);
        b.mmio_write(IOAPIC_BASE + 0x10, 4, entry >> 32);
        b.mmio_write(IOAPIC_BASE, 4, 0x10 + 2 * pin);
        b.mmio_write(IOAPIC_BASE + 0x10, 4, entry & 0xffff_ffff);
    }

    /// Local APIC software-enabled, LINT0 masked: only IOAPIC/LAPIC vectors.
    fn apic_mode(b: &mut Board) {
        b.mmio_write(LAPIC_BASE + 0xf0, 4, 0x1ff);
        b.mmio_write(LAPIC_BASE + 0x350, 4, 0x1_0700);
    }

    #[test]
    fn mmio_map_routes_and_describes() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        b.check_map().unwrap();
        assert_eq!(b.mmio_read(LAPIC_BASE + 0x30, 4), 0x0005_0014);
        b.mmio_write(IOAPIC_BASE, 4, 1);
        assert_eq!(b.mmio_read(IOAPIC_BASE + 0x10, 4), 0x0017_0020);
        assert_eq!(b.mmio_read(HPET_BASE, 4), 0x8086_a201);
        assert_eq!(b.mmio_read(HPET_BASE + 0x400, 4), 0xffff_ffff, "unclaimed");
        let d = b.describe();
        assert!(d.contains("0xfee00000-0xfee00fff  local APIC"), "{d}");
        assert!(d.contains("0xfec00000-0xfec00fff  82093AA IOAPIC"), "{d}");
        assert!(d.contains("0x0600-0x060b"), "{d}");
    }

    #[test]
    fn pit_interrupt_reaches_the_cpu_through_the_ioapic() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        apic_mode(&mut b);
        // ISA IRQ0 arrives at IOAPIC input 2: edge, physical destination 0.
        ioapic_entry(&mut b, 2, 0x31);
        b.io_write(0x43, 1, 0x34);
        b.io_write(0x40, 1, 1193 & 0xff);
        b.io_write(0x40, 1, 1193 >> 8);
        assert!(!b.interrupt_pending());
        let d = b.next_deadline().expect("PIT has a deadline");
        b.advance_to(d);
        assert!(b.interrupt_pending());
        assert_eq!(b.acknowledge_interrupt(), Some(0x31));
        assert!(!b.interrupt_pending(), "in service");
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        let d2 = b.next_deadline().unwrap();
        use kagami_devices::pit::PIT_HZ;
        use kagami_devices::time::{ns_to_ticks, ticks_to_ns};
        assert_eq!(
            d2,
            ticks_to_ns(ns_to_ticks(d, PIT_HZ) + 1193, PIT_HZ),
            "1193 PIT ticks later (mode 2 period)"
        );
        b.advance_to(d2);
        assert_eq!(b.acknowledge_interrupt(), Some(0x31));
    }

    #[test]
    fn lapic_timer_one_shot_fires_at_the_exact_time() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        b.advance_to(1000);
        apic_mode(&mut b);
        b.mmio_write(LAPIC_BASE + 0x3e0, 4, 0xb); // divide by 1: 1 ns per count
        b.mmio_write(LAPIC_BASE + 0x320, 4, 0x40);
        b.mmio_write(LAPIC_BASE + 0x380, 4, 5000);
        b.advance_to(5999);
        assert!(!b.interrupt_pending());
        assert_eq!(b.mmio_read(LAPIC_BASE + 0x390, 4), 1);
        assert_eq!(b.lapic.next_deadline(), Some(6000));
        b.advance_to(6000);
        assert!(b.interrupt_pending());
        assert_eq!(b.acknowledge_interrupt(), Some(0x40));
        // CR8 masks by class.
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        b.write_tpr(0x40);
        b.mmio_write(LAPIC_BASE + 0x300, 4, 0x4_0045);
        assert!(!b.interrupt_pending());
        b.write_tpr(0x30);
        assert_eq!(b.read_tpr(), 0x30);
        assert!(b.interrupt_pending());
    }

    #[test]
    fn level_sci_is_redelivered_after_eoi_while_asserted() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        apic_mode(&mut b);
        ioapic_entry(&mut b, 9, 0x8000 | 0x59); // level, active high
        b.io_write(ACPI_PM_BASE + 2, 2, 1 << 8); // PWRBTN_EN
        b.acpi_pm.press_power_button();
        assert_eq!(b.acknowledge_interrupt(), Some(0x59));
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        assert_eq!(b.acknowledge_interrupt(), Some(0x59), "still asserted: sent again after EOI");
        b.io_write(ACPI_PM_BASE, 2, 1 << 8); // clear PWRBTN_STS
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        assert!(!b.interrupt_pending());
    }

    #[test]
    fn s5_write_produces_power_off() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        let typ = kagami_bios::acpi::S5_SLP_TYP_PIIX4 as u32;
        b.io_write(ACPI_PM_BASE + 4, 2, (typ << 10) | (1 << 13));
        assert!(b.stop_requested());
        assert_eq!(b.take_requests(), vec![MachineRequest::PowerOff]);
    }

    #[test]
    fn x2apic_and_tsc_deadline_msrs() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        assert_eq!(b.read_msr(0x802), None, "xAPIC mode");
        assert!(b.write_msr(0x1b, 0xfee0_0000 | (3 << 10) | (1 << 8)));
        assert_eq!(b.read_msr(0x803), Some(0x0005_0014));
        assert!(b.write_msr(0x80f, 0x1ff));
        assert!(b.write_msr(0x832, 0x4_0070)); // TSC-deadline mode
        assert!(b.write_msr(0x6e0, 3000));
        assert_eq!(b.read_msr(0x6e0), Some(3000));
        assert_eq!(b.next_deadline(), Some(3000));
        b.advance_to(3000);
        assert_eq!(b.acknowledge_interrupt(), Some(0x70));
        assert!(!b.write_msr(0x1b, 0xfee0_0000 | (2 << 10)), "x2APIC -> xAPIC faults");
    }

    #[test]
    fn hpet_legacy_timer_replaces_the_pit_on_irq0() {
        let out = SharedBuffer::new();
        let mut b = board(&out);
        apic_mode(&mut b);
        ioapic_entry(&mut b, 2, 0x32);
        // The PIT runs too, but legacy replacement disconnects it.
        b.io_write(0x43, 1, 0x34);
        b.io_write(0x40, 1, 0x10);
        b.io_write(0x40, 1, 0x00);
        b.advance_to(100);
        // HPET timer 0: periodic, 32-bit, every 1000 counts (10 µs).
        b.mmio_write(HPET_BASE + 0x100, 4, 0x14c);
        b.mmio_write(HPET_BASE + 0x108, 4, 1000);
        b.mmio_write(HPET_BASE + 0x108, 4, 1000);
        b.mmio_write(HPET_BASE + 0x10, 4, 3);
        assert_eq!(b.hpet.next_deadline(), Some(100 + 10_000));
        b.advance_to(10_099);
        assert!(!b.interrupt_pending(), "PIT edges no longer reach IRQ0");
        b.advance_to(10_100);
        assert_eq!(b.acknowledge_interrupt(), Some(0x32));
        b.mmio_write(LAPIC_BASE + 0xb0, 4, 0);
        assert!(b.describe().contains("0xfed00000-0xfed003ff  HPET"));
        // Legacy replacement off: the PIT drives IRQ0 again.
        b.mmio_write(HPET_BASE + 0x10, 4, 0);
        let d = b.pit.next_deadline().unwrap();
        b.advance_to(d);
        assert_eq!(b.acknowledge_interrupt(), Some(0x32));
    }
}
