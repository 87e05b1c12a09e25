//! Interrupt lines: how a device tells the world its interrupt pin level.
//!
//! A device holds a `Box<dyn IrqLine>` per pin and drives its *level*; an
//! edge-triggered source (the PIT's OUT0, the i8042's OBF) just raises and
//! lowers it, or calls [`IrqLine::pulse`]. The device never knows what is on
//! the other end: the machine decides whether it is a PIC input, an IOAPIC
//! pin, or both.
//!
//! [`IrqPins`] is a bank of 32 lines kept in atomics: devices set levels, the
//! machine drains the changes (including edges that came and went between two
//! drains) and replays them into the interrupt controllers. Using a bank
//! rather than having each line call into the PIC avoids a device borrowing
//! the controller while the machine holds it, and the same changes can feed
//! the PIC and the IOAPIC.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// One interrupt pin, driven by a device.
pub trait IrqLine: Send {
    /// Drive the pin high (`true`) or low.
    fn set_level(&mut self, level: bool);
    /// A rising edge followed by a return to low, for edge-triggered sources
    /// that have no level of their own.
    fn pulse(&mut self) {
        self.set_level(true);
        self.set_level(false);
    }
}

/// A line connected to nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoIrq;

impl IrqLine for NoIrq {
    fn set_level(&mut self, _level: bool) {}
}

#[derive(Debug, Default)]
struct PinBank {
    /// Per pin, how many of its lines drive it high (wired-OR).
    drivers: [AtomicU32; 32],
    level: AtomicU32,
    /// Pins that went low→high since the last drain.
    rose: AtomicU32,
    changed: AtomicBool,
}

/// A bank of 32 interrupt pins (the machine decides what pin numbers mean;
/// on the PC, 0–15 are the ISA IRQs). Cloning shares the bank. Several lines
/// may drive one pin (shared PCI INTx): the pin is the wired OR of them.
#[derive(Debug, Default, Clone)]
pub struct IrqPins {
    bank: Arc<PinBank>,
}

/// What changed on an [`IrqPins`] bank since the last drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PinChanges {
    /// Current level of every pin.
    pub level: u32,
    /// Pins that had at least one rising edge since the last drain (they may
    /// be low again now: a pulse).
    pub rose: u32,
}

impl PinChanges {
    /// Replay the changes as a sequence of level settings that an edge- or
    /// level-sensitive receiver interprets correctly: a pin that rose gets
    /// low, high, then its current level; every other pin gets its current
    /// level. `f(pin, level)`.
    pub fn replay(&self, mut f: impl FnMut(u8, bool)) {
        for pin in 0..32u8 {
            let bit = 1u32 << pin;
            if self.rose & bit != 0 {
                f(pin, false);
                f(pin, true);
            }
            f(pin, self.level & bit != 0);
        }
    }
}

impl IrqPins {
    pub fn new() -> Self {
        Self::default()
    }

    /// A line driving pin `pin` (0–31) of this bank.
    pub fn line(&self, pin: u8) -> Box<dyn IrqLine> {
        assert!(pin < 32, "IrqPins has 32 pins, asked for {pin}");
        Box::new(Pin {
            bank: self.bank.clone(),
            pin,
            high: false,
        })
    }

    /// Current levels, without draining.
    pub fn levels(&self) -> u32 {
        self.bank.level.load(Ordering::Acquire)
    }

    /// Whether anything changed since the last [`IrqPins::take_changes`]
    /// (cheap enough to call after every device access).
    pub fn has_changes(&self) -> bool {
        self.bank.changed.load(Ordering::Acquire)
    }

    /// Drain: the current levels and the pins that rose since the last call.
    pub fn take_changes(&self) -> Option<PinChanges> {
        if !self.bank.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        let rose = self.bank.rose.swap(0, Ordering::AcqRel);
        Some(PinChanges {
            level: self.levels(),
            rose,
        })
    }
}

struct Pin {
    bank: Arc<PinBank>,
    pin: u8,
    /// This line's own level (the pin may be held high by another line).
    high: bool,
}

impl IrqLine for Pin {
    fn set_level(&mut self, level: bool) {
        if level == self.high {
            return;
        }
        self.high = level;
        let bit = 1u32 << self.pin;
        let drivers = &self.bank.drivers[self.pin as usize];
        if level {
            if drivers.fetch_add(1, Ordering::AcqRel) == 0 {
                self.bank.level.fetch_or(bit, Ordering::AcqRel);
                self.bank.rose.fetch_or(bit, Ordering::AcqRel);
                self.bank.changed.store(true, Ordering::Release);
            }
        } else if drivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.bank.level.fetch_and(!bit, Ordering::AcqRel);
            self.bank.changed.store(true, Ordering::Release);
        }
    }
}

impl Drop for Pin {
    /// A line that goes away (device unplugged or replaced) stops driving.
    fn drop(&mut self) {
        self.set_level(false);
    }
}

/// A line for tests: remembers its level and counts rising edges.
#[derive(Debug, Default, Clone)]
pub struct RecordingIrq {
    state: Arc<std::sync::Mutex<(bool, usize)>>,
}

impl RecordingIrq {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn line(&self) -> Box<dyn IrqLine> {
        Box::new(self.clone())
    }
    /// Current level (false if never driven).
    pub fn level(&self) -> bool {
        self.state.lock().unwrap().0
    }
    /// Number of low→high transitions since the last call.
    pub fn take_rising_edges(&self) -> usize {
        std::mem::take(&mut self.state.lock().unwrap().1)
    }
}

impl IrqLine for RecordingIrq {
    fn set_level(&mut self, level: bool) {
        let mut s = self.state.lock().unwrap();
        if level && !s.0 {
            s.1 += 1;
        }
        s.0 = level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_record_levels_and_pulses() {
        let pins = IrqPins::new();
        let mut l0 = pins.line(0);
        let mut l3 = pins.line(3);
        assert_eq!(pins.take_changes(), None);
        l0.set_level(true);
        l3.pulse();
        let c = pins.take_changes().unwrap();
        assert_eq!(c, PinChanges { level: 1, rose: 0b1001 });
        let mut seq = Vec::new();
        c.replay(|p, l| {
            if p == 0 || p == 3 {
                seq.push((p, l))
            }
        });
        assert_eq!(seq, vec![(0, false), (0, true), (0, true), (3, false), (3, true), (3, false)]);
        // Driving an unchanged level is not a change.
        l0.set_level(true);
        assert_eq!(pins.take_changes(), None);
        l0.set_level(false);
        assert_eq!(pins.take_changes(), Some(PinChanges { level: 0, rose: 0 }));
    }

    #[test]
    fn lines_sharing_a_pin_are_wired_or() {
        let pins = IrqPins::new();
        let (mut a, mut b) = (pins.line(11), pins.line(11));
        a.set_level(true);
        b.set_level(true);
        a.set_level(false);
        assert_eq!(pins.levels(), 1 << 11, "b still drives the pin");
        assert_eq!(
            pins.take_changes(),
            Some(PinChanges {
                level: 1 << 11,
                rose: 1 << 11
            })
        );
        b.set_level(false);
        assert_eq!(pins.take_changes(), Some(PinChanges { level: 0, rose: 0 }));
        a.set_level(true);
        drop(a);
        assert_eq!(pins.levels(), 0, "a dropped line releases the pin");
    }

    #[test]
    fn recording_irq_counts_edges_across_takes() {
        let r = RecordingIrq::new();
        let mut l = r.line();
        l.set_level(true);
        l.set_level(true);
        assert_eq!(r.take_rising_edges(), 1);
        l.set_level(true);
        assert_eq!(r.take_rising_edges(), 0);
        l.pulse();
        assert_eq!(r.take_rising_edges(), 0, "high then pulse: the line never went low first");
        l.set_level(false);
        l.pulse();
        assert_eq!(r.take_rising_edges(), 1);
        assert!(!r.level());
    }
}
