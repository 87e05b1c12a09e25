//! kagami-devices: the PC chipset and legacy devices, as plain state machines.
//!
//! The shapes every device here shares (see `STYLE.md`, "Devices" and "Time
//! and determinism"):
//!
//! - **Register access** ([`bus`]): a device sees an offset inside its own
//!   window, an access size in bytes and an integer value ([`PortIoDevice`],
//!   [`MmioDevice`]). It never knows its address; `machine/` decides the map.
//! - **Interrupts** ([`irq`]): a device holds `Box<dyn IrqLine>` and drives its
//!   pin level. It never reaches into an interrupt controller.
//!   [`IrqPins`] is a ready-made bank of lines the machine drains into the
//!   PIC (and later the IOAPIC).
//! - **Time** ([`time`]): a device that changes on its own implements
//!   [`Timed`]; the machine calls `advance_to(now_ns)` with the one virtual
//!   clock and asks `next_deadline()`. No wall clock, no threads.
//! - **Snapshots** ([`snapshot`]): every device has a plain serde `State`
//!   struct; [`Snapshot::save`] / [`Snapshot::restore`], and restore validates.
//! - **Doorway**: anything from outside the guest (serial bytes, key codes,
//!   the RTC's start time) enters through an explicit method the machine calls,
//!   so record/replay can log it. Those methods are marked "Doorway" in their
//!   docs.
//! - **Machine requests** ([`request`]): reset, A20 and exit requests go to
//!   a [`RequestSink`]; devices never touch the CPU.
//! - **Output sinks** ([`sink`]): byte streams leaving the guest (serial,
//!   debugcon) go to a `Box<dyn Write + Send>` the machine provides.
//! - **DMA** ([`dma`]): a device that reads or writes guest memory by itself
//!   holds a `Box<dyn DmaMemory>` from the machine (guest RAM lives in
//!   `kagami-cpu`, which devices must not depend on).
//! - **Reset**: devices the chipset reset line reaches have `reset()`, which
//!   keeps their wiring; the RTC's `reset()` keeps time and NVRAM
//!   (battery-backed).
//!
//! Where the PC puts them (the machine decides; this is the conventional
//! map each device's offset layout is designed for):
//!
//! | device | PC ports → device offsets | interrupt |
//! |---|---|---|
//! | [`Pic8259`] | 0x20–0x21 → 0–1, 0xA0–0xA1 → 2–3, 0x4D0–0x4D1 → 4–5 | INTR to the CPU |
//! | [`Pit8254`] | 0x40–0x43 → 0–3, 0x61 → 4 | OUT0 → IRQ 0 |
//! | [`I8042`] | 0x60 → 0, 0x64 → 1 | IRQ 1 (keyboard), IRQ 12 (mouse) |
//! | [`Rtc`] | 0x70–0x71 → 0–1 | IRQ 8 |
//! | [`PostCode`] | 0x80 → 0 | — |
//! | [`Port92`] | 0x92 → 0 | — |
//! | [`IsaDebugcon`] | 0xE9 → 0 | — |
//! | [`IsaDebugExit`] | chosen by the machine (QEMU: 0x501, 2 bytes; or 0xF4, 4) | — |
//! | [`Uart16550`] | COM1 0x3F8–0x3FF, COM2 0x2F8–0x2FF → 0–7 | IRQ 4 (COM1), IRQ 3 (COM2) |
//! | [`ResetControl`] | 0xCF9 (byte accesses only) → 0 | — |
//!
//! How the machine wires one timer interrupt, end to end (the PC map: PIT
//! OUT0 on ISA IRQ 0, PIC master at vector 0x08):
//!
//! ```
//! use kagami_devices::{pic, pit, Clock, IrqPins, Pic8259, Pit8254, PortIoDevice, TestClock, Timed};
//!
//! let pins = IrqPins::new();
//! let mut pic = Pic8259::new();
//! let mut pit = Pit8254::new(pins.line(0));
//! let mut clock = TestClock::new();
//!
//! // The guest initialises the PIC (port 0x20 → offset MASTER_COMMAND, …)
//! for (offset, v) in [(pic::MASTER_COMMAND, 0x11), (pic::MASTER_DATA, 0x08), (pic::MASTER_DATA, 0x04), (pic::MASTER_DATA, 0x01)] {
//!     pic.write(offset, 1, v);
//! }
//! // … and sets the PIT to 100 Hz (port 0x43, then 0x40 twice): 11932 = 0x2e9c.
//! for (offset, v) in [(pit::CONTROL, 0x34), (0, 0x9c), (0, 0x2e)] {
//!     pit.advance_to(clock.now_ns()); // before every access
//!     pit.write(offset, 1, v);
//! }
//!
//! // The machine runs the CPU until the earliest device deadline …
//! let deadline = pit.next_deadline().expect("the PIT is counting");
//! clock.set(deadline);
//! pit.advance_to(clock.now_ns());
//! // … then moves pin changes into the interrupt controller.
//! if let Some(changes) = pins.take_changes() {
//!     changes.replay(|pin, level| pic.set_irq(pin, level));
//! }
//! assert!(pic.pending());
//! assert_eq!(pic.acknowledge(), 0x08); // the CPU's INTA
//! assert_eq!(deadline, 10_000_151); // 11932 ticks at 1.193182 MHz, rounded up to a nanosecond
//! ```

pub mod acpi_pm;
pub mod bus;
pub mod debug_exit;
pub mod debugcon;
pub mod dma;
pub mod fw_cfg;
pub mod hpet;
pub mod i8042;
pub mod ioapic;
pub mod irq;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod port92;
pub mod post;
pub mod ps2;
pub mod request;
pub mod reset_control;
pub mod rtc;
pub mod sink;
pub mod snapshot;
pub mod storage;
pub mod testdev;
pub mod time;
pub mod uart;

pub use acpi_pm::AcpiPm;
pub use bus::{MmioDevice, PortIoDevice};
pub use debug_exit::IsaDebugExit;
pub use debugcon::IsaDebugcon;
pub use dma::{DmaError, DmaMemory, VecDma};
pub use fw_cfg::FwCfg;
pub use hpet::Hpet;
pub use i8042::I8042;
pub use ioapic::Ioapic;
pub use irq::{IrqLine, IrqPins, NoIrq, PinChanges, RecordingIrq};
pub use lapic::Lapic;
pub use pic::Pic8259;
pub use pit::Pit8254;
pub use port92::Port92;
pub use post::PostCode;
pub use request::{MachineRequest, NoRequests, RequestQueue, RequestSink};
pub use reset_control::ResetControl;
pub use rtc::Rtc;
pub use sink::{ByteSink, SharedBuffer};
pub use snapshot::{Snapshot, StateError};
pub use testdev::PcTestdev;
pub use time::{Clock, TestClock, Timed};
pub use uart::Uart16550;

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine may move its device set to a vCPU thread.
    #[test]
    fn devices_are_send() {
        fn send<T: Send>() {}
        send::<Pic8259>();
        send::<Pit8254>();
        send::<Rtc>();
        send::<Uart16550>();
        send::<I8042>();
        send::<Port92>();
        send::<PostCode>();
        send::<ResetControl>();
        send::<IsaDebugExit>();
        send::<IsaDebugcon>();
        send::<IrqPins>();
    }
}
