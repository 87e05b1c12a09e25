//! I/O APIC (Intel 82093AA datasheet, order 290566): 24 input pins, each
//! with a 64-bit redirection entry, reached through an index/data pair.
//!
//! Offset layout (MMIO, inside a 4 KiB window): 0x00 IOREGSEL (index),
//! 0x10 IOWIN (32-bit data), 0x40 EOI register (write a vector to clear the
//! remote IRR of level entries with that vector, as on the version 0x20
//! IOAPICs of ICH chipsets). Indirect registers: 0x00 ID, 0x01 version
//! (0x00170020: 24 entries, version 0x20), 0x02 arbitration ID, 0x10 + 2n /
//! 0x11 + 2n redirection entry n low/high.
//!
//! Pins are driven by [`Ioapic::set_irq`] with the *asserted* level (the
//! board's lines are active-high; any inversion of an active-low PCI line is
//! the board's business), so the polarity bit is stored and read back but
//! does not invert the input. Edge entries deliver on an assertion; level
//! entries deliver while asserted, set remote IRR and wait for the local
//! APIC's EOI broadcast ([`Ioapic::eoi`]) before delivering again.
//!
//! Deliveries are not sent anywhere from here: they queue as
//! [`IoapicDelivery`] messages that the machine drains
//! ([`Ioapic::take_deliveries`]) and forwards to the local APIC(s). Remote
//! IRR is set when the message is queued (the single local APIC always
//! accepts it).
//!
//! Left out: the APIC serial bus and its arbitration (the arbitration ID
//! just mirrors the ID), delivery status (always idle: delivery is
//! instantaneous), the pin assertion register of later PCHs.

use crate::bus::MmioDevice;
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};

pub const IOAPIC_PINS: usize = 24;
/// Version register: max redirection entry 23, version 0x20.
pub const IOAPIC_VERSION: u32 = ((IOAPIC_PINS as u32 - 1) << 16) | 0x20;
pub const IOREGSEL: u64 = 0x00;
pub const IOWIN: u64 = 0x10;
pub const EOI: u64 = 0x40;
pub const IOAPIC_MMIO_SIZE: u64 = 0x1000;

const MASKED: u64 = 1 << 16;
const TRIGGER_LEVEL: u64 = 1 << 15;
const REMOTE_IRR: u64 = 1 << 14;
/// Bits software may write: vector, delivery mode, destination mode,
/// polarity, trigger, mask, destination.
const WRITABLE: u64 = 0xff00_0000_0001_afff;

/// Delivery mode field of a redirection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryMode {
    Fixed,
    LowestPriority,
    Smi,
    Nmi,
    Init,
    ExtInt,
}

/// One interrupt message for the local APIC bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoapicDelivery {
    pub vector: u8,
    pub mode: DeliveryMode,
    /// Destination mode: logical (true) or physical.
    pub logical: bool,
    pub dest: u8,
    pub level_triggered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: u8,
    pub ioregsel: u8,
    pub redirection: Vec<u64>,
    /// Asserted input pins (bit n = pin n).
    pub pin_level: u32,
    pub pending: Vec<IoapicDelivery>,
}

pub struct Ioapic {
    s: State,
}

impl Ioapic {
    /// An IOAPIC with APIC ID `id`, all entries masked (datasheet: reset).
    pub fn new(id: u8) -> Ioapic {
        Ioapic {
            s: State {
                id: id & 0xf,
                ioregsel: 0,
                redirection: vec![MASKED; IOAPIC_PINS],
                pin_level: 0,
                pending: Vec::new(),
            },
        }
    }

    /// Redirection entry `pin` (for the machine's map and tests).
    pub fn entry(&self, pin: usize) -> u64 {
        self.s.redirection[pin]
    }

    fn mode(e: u64) -> Option<DeliveryMode> {
        Some(match (e >> 8) & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            _ => return None,
        })
    }

    /// Level semantics apply only to fixed and lowest-priority entries;
    /// NMI, SMI, INIT and ExtINT are always edge (datasheet 3.2.4).
    fn is_level(e: u64) -> bool {
        e & TRIGGER_LEVEL != 0 && matches!(Self::mode(e), Some(DeliveryMode::Fixed | DeliveryMode::LowestPriority))
    }

    fn deliver(&mut self, pin: usize) {
        let e = self.s.redirection[pin];
        let Some(mode) = Self::mode(e) else {
            return; // reserved delivery mode: nothing is sent
        };
        let level = Self::is_level(e);
        if level {
            self.s.redirection[pin] |= REMOTE_IRR;
        }
        self.s.pending.push(IoapicDelivery {
            vector: e as u8,
            mode,
            logical: e & (1 << 11) != 0,
            dest: (e >> 56) as u8,
            level_triggered: level,
        });
    }

    /// A level entry whose line is asserted and that is ready to send again.
    fn service_level(&mut self, pin: usize) {
        let e = self.s.redirection[pin];
        if self.s.pin_level & (1 << pin) != 0 && Self::is_level(e) && e & (MASKED | REMOTE_IRR) == 0 {
            self.deliver(pin);
        }
    }

    /// Drive input `pin` to `asserted`. Pins beyond 23 do not exist.
    pub fn set_irq(&mut self, pin: u8, asserted: bool) {
        let pin = pin as usize;
        if pin >= IOAPIC_PINS {
            return;
        }
        let bit = 1u32 << pin;
        let was = self.s.pin_level & bit != 0;
        if asserted {
            self.s.pin_level |= bit;
        } else {
            self.s.pin_level &= !bit;
        }
        let e = self.s.redirection[pin];
        if Self::is_level(e) {
            self.service_level(pin);
        } else if asserted && !was && e & MASKED == 0 {
            self.deliver(pin);
        }
    }

    /// EOI broadcast from a local APIC (or a write to the EOI register):
    /// clear remote IRR of every level entry with `vector` and re-send
    /// those whose line is still asserted.
    pub fn eoi(&mut self, vector: u8) {
        for pin in 0..IOAPIC_PINS {
            let e = self.s.redirection[pin];
            if e & REMOTE_IRR != 0 && e as u8 == vector {
                self.s.redirection[pin] &= !REMOTE_IRR;
                self.service_level(pin);
            }
        }
    }

    /// Messages for the local APIC bus since the last call, oldest first.
    pub fn take_deliveries(&mut self) -> Vec<IoapicDelivery> {
        std::mem::take(&mut self.s.pending)
    }

    pub fn has_deliveries(&self) -> bool {
        !self.s.pending.is_empty()
    }

    fn read_indirect(&self) -> u32 {
        let i = self.s.ioregsel as usize;
        match i {
            0x00 => (self.s.id as u32) << 24,
            0x01 => IOAPIC_VERSION,
            0x02 => (self.s.id as u32) << 24,
            0x10..=0x3f => {
                let e = self.s.redirection[(i - 0x10) / 2];
                if i & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_indirect(&mut self, v: u32) {
        let i = self.s.ioregsel as usize;
        match i {
            0x00 => self.s.id = ((v >> 24) & 0xf) as u8,
            0x10..=0x3f => {
                let pin = (i - 0x10) / 2;
                let old = self.s.redirection[pin];
                let new = if i & 1 == 0 {
                    (old & !0xffff_ffff) | v as u64
                } else {
                    (old & 0xffff_ffff) | (v as u64) << 32
                };
                let mut e = (new & WRITABLE) | (old & REMOTE_IRR);
                if !Self::is_level(e) {
                    // An edge entry has no remote IRR.
                    e &= !REMOTE_IRR;
                }
                self.s.redirection[pin] = e;
                // Unmasking (or switching to level) with the line asserted
                // sends a level interrupt now.
                self.service_level(pin);
            }
            _ => {}
        }
    }
}

impl MmioDevice for Ioapic {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let v = match offset {
            IOREGSEL => self.s.ioregsel as u64,
            IOWIN => self.read_indirect() as u64,
            _ => 0,
        };
        if size >= 8 {
            v
        } else {
            v & ((1u64 << (8 * size as u32)) - 1)
        }
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64) {
        match offset {
            IOREGSEL => self.s.ioregsel = value as u8,
            IOWIN => self.write_indirect(value as u32),
            EOI => self.eoi(value as u8),
            _ => {}
        }
    }
}

impl Snapshot for Ioapic {
    type State = State;
    fn save(&self) -> State {
        self.s.clone()
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        const D: &str = "ioapic";
        check(D, s.redirection.len() == IOAPIC_PINS, || {
            format!("{} redirection entries, expected {IOAPIC_PINS}", s.redirection.len())
        })?;
        for (pin, e) in s.redirection.iter().enumerate() {
            check(D, e & !(WRITABLE | REMOTE_IRR) == 0, || {
                format!("entry {pin} = {e:#x} has reserved bits")
            })?;
            check(D, e & REMOTE_IRR == 0 || Self::is_level(*e), || {
                format!("entry {pin}: remote IRR on an edge entry")
            })?;
        }
        check(D, s.id < 16, || format!("ID {}", s.id))?;
        check(D, s.pin_level >> IOAPIC_PINS == 0, || format!("pin levels {:#x}", s.pin_level))?;
        self.s = s.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_entry(io: &mut Ioapic, pin: u8, e: u64) {
        io.write(IOREGSEL, 1, 0x10 + 2 * pin as u64 + 1);
        io.write(IOWIN, 4, e >> 32);
        io.write(IOREGSEL, 1, 0x10 + 2 * pin as u64);
        io.write(IOWIN, 4, e & 0xffff_ffff);
    }

    fn read_reg(io: &mut Ioapic, r: u64) -> u32 {
        io.write(IOREGSEL, 1, r);
        io.read(IOWIN, 4) as u32
    }

    #[test]
    fn id_version_and_reset_entries() {
        let mut io = Ioapic::new(2);
        assert_eq!(read_reg(&mut io, 0), 2 << 24);
        assert_eq!(read_reg(&mut io, 1), 0x0017_0020);
        assert_eq!(read_reg(&mut io, 2), 2 << 24);
        assert_eq!(read_reg(&mut io, 0x10), 0x1_0000, "masked at reset");
        assert_eq!(read_reg(&mut io, 0x3f), 0);
        io.write(IOREGSEL, 1, 0);
        io.write(IOWIN, 4, 0x0500_0000);
        assert_eq!(read_reg(&mut io, 0), 5 << 24);
        assert_eq!(io.read(IOREGSEL, 4), 0);
        // Read-only fields (remote IRR, delivery status) ignore writes.
        write_entry(&mut io, 3, 0x1_5000 | 0x30);
        assert_eq!(read_reg(&mut io, 0x16), 0x1_0030);
    }

    #[test]
    fn edge_entry_delivers_on_assertion_only() {
        let mut io = Ioapic::new(0);
        write_entry(&mut io, 2, (1u64 << 56) | 0x0830);
        io.set_irq(2, true);
        io.set_irq(2, true);
        io.set_irq(2, false);
        assert_eq!(
            io.take_deliveries(),
            vec![IoapicDelivery {
                vector: 0x30,
                mode: DeliveryMode::Fixed,
                logical: true,
                dest: 1,
                level_triggered: false
            }]
        );
        // Masked: the edge is lost.
        write_entry(&mut io, 2, MASKED | 0x30);
        io.set_irq(2, true);
        io.set_irq(2, false);
        write_entry(&mut io, 2, 0x30);
        assert!(io.take_deliveries().is_empty());
        io.set_irq(30, true);
    }

    #[test]
    fn level_entry_remote_irr_and_eoi_redelivery() {
        let mut io = Ioapic::new(0);
        write_entry(&mut io, 9, TRIGGER_LEVEL | MASKED | 0x49);
        io.set_irq(9, true);
        assert!(io.take_deliveries().is_empty(), "masked");
        write_entry(&mut io, 9, TRIGGER_LEVEL | 0x49);
        let d = io.take_deliveries();
        assert_eq!(d.len(), 1, "unmasking an asserted level line delivers");
        assert!(d[0].level_triggered);
        assert_ne!(read_reg(&mut io, 0x22) & (1 << 14), 0, "remote IRR set");
        io.set_irq(9, false);
        io.set_irq(9, true);
        assert!(io.take_deliveries().is_empty(), "waits for EOI");
        io.eoi(0x48);
        assert!(io.take_deliveries().is_empty(), "other vector");
        io.eoi(0x49);
        assert_eq!(io.take_deliveries().len(), 1, "still asserted: sent again");
        io.set_irq(9, false);
        io.write(EOI, 4, 0x49);
        assert!(io.take_deliveries().is_empty());
        assert_eq!(read_reg(&mut io, 0x22) & (1 << 14), 0, "remote IRR cleared by the EOI register");
    }

    #[test]
    fn nmi_and_extint_are_edge() {
        let mut io = Ioapic::new(0);
        write_entry(&mut io, 0, TRIGGER_LEVEL | 0x700);
        io.set_irq(0, true);
        let d = io.take_deliveries();
        assert_eq!(d[0].mode, DeliveryMode::ExtInt);
        assert!(!d[0].level_triggered);
        assert_eq!(read_reg(&mut io, 0x10) & (1 << 14), 0);
        write_entry(&mut io, 1, 0x400);
        io.set_irq(1, true);
        assert_eq!(io.take_deliveries()[0].mode, DeliveryMode::Nmi);
        write_entry(&mut io, 4, 0x300);
        io.set_irq(4, true);
        assert!(io.take_deliveries().is_empty(), "reserved delivery mode sends nothing");
    }

    #[test]
    fn snapshot_round_trip_and_validation() {
        let mut io = Ioapic::new(1);
        write_entry(&mut io, 5, TRIGGER_LEVEL | 0x55);
        io.set_irq(5, true);
        let s = io.save();
        let mut b = Ioapic::new(0);
        b.restore(&serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap())
            .unwrap();
        assert_eq!(b.save(), s);
        let mut bad = s.clone();
        bad.redirection[0] = REMOTE_IRR;
        assert!(b.restore(&bad).is_err(), "remote IRR on an edge entry");
        let mut bad = s.clone();
        bad.redirection.pop();
        assert!(b.restore(&bad).is_err());
    }
}
