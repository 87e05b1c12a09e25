//! The PC board: every legacy device, where it sits in I/O space, and the
//! [`Bus`] the CPU sees. The map below is the one place that decides
//! addresses; `kagami --print-machine` prints it.
//!
//! Interrupts: devices drive pins of one [`IrqPins`] bank (ISA IRQ n = pin
//! n); before the CPU asks for a pending interrupt the board replays pin
//! changes into the 8259 pair. The local APIC and IOAPIC join here when they
//! exist; until then the PIC's INTR is the CPU's only maskable input.

use kagami_cpu::Bus;
use kagami_devices::debug_exit::IsaDebugExit;
use kagami_devices::debugcon::IsaDebugcon;
use kagami_devices::i8042::I8042;
use kagami_devices::port92::Port92;
use kagami_devices::post::PostCode;
use kagami_devices::reset_control::ResetControl;
use kagami_devices::{ByteSink, IrqPins, MachineRequest, Pic8259, Pit8254, PortIoDevice, RequestQueue, Rtc, Timed, Uart16550};

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
}

pub struct Board {
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
    ports: Vec<PortRange>,
    pins: IrqPins,
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
        ports.sort_by_key(|r| r.start);
        let mut rtc = Rtc::new(cfg.rtc_start, pins.line(8));
        rtc.set_memory_size(cfg.ram_below_4g, cfg.ram_above_4g);
        Board {
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
            ports,
            pins,
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
        Ok(())
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
        self.sync_irqs();
    }

    /// The earliest time a device needs to be advanced to.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut d = [self.pit.next_deadline(), self.rtc.next_deadline()].into_iter().flatten().min();
        for c in &self.com {
            d = [d, c.next_deadline()].into_iter().flatten().min();
        }
        d
    }

    fn sync_irqs(&mut self) {
        if !self.pins.has_changes() {
            return;
        }
        if let Some(ch) = self.pins.take_changes() {
            let pic = &mut self.pic;
            ch.replay(|pin, level| {
                if pin < 16 {
                    pic.set_irq(pin, level)
                }
            });
        }
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
        let mut s = String::from("I/O ports:\n");
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
        s
    }
}

impl Bus for Board {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        match self.find_port(port) {
            Some(r) => {
                let v = self.port_device(r.dev).read(port - r.start + r.offset, size);
                self.sync_irqs();
                v
            }
            None => kagami_cpu::bus::ones(size) as u32,
        }
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        if let Some(r) = self.find_port(port) {
            self.port_device(r.dev).write(port - r.start + r.offset, size, value);
            self.sync_irqs();
        }
    }

    fn mmio_read(&mut self, _addr: u64, size: u8) -> u64 {
        kagami_cpu::bus::ones(size)
    }

    fn mmio_write(&mut self, _addr: u64, _size: u8, _value: u64) {}

    fn interrupt_pending(&mut self) -> bool {
        self.sync_irqs();
        self.pic.pending()
    }

    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.sync_irqs();
        Some(self.pic.acknowledge())
    }

    fn stop_requested(&mut self) -> bool {
        !self.requests.is_empty()
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
        })
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
}
