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

pub mod acpi_pm;
pub mod bus;
pub mod debug_exit;
pub mod debugcon;
pub mod hpet;
pub mod i8042;
pub mod ioapic;
pub mod irq;
pub mod lapic;
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
pub mod time;
pub mod uart;

pub use acpi_pm::AcpiPm;
pub use bus::{MmioDevice, PortIoDevice};
pub use debug_exit::IsaDebugExit;
pub use debugcon::IsaDebugcon;
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
pub use time::{Clock, TestClock, Timed};
pub use uart::Uart16550;
