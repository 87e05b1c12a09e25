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
    level: AtomicU32,
    /// Pins that went low→high since the last drain.
    rose: AtomicU32,
    changed: AtomicBool,
}

/// A bank of 32 interrupt lines (the machine decides what pin numbers mean;
/// on the PC, 0–15 are the ISA IRQs). Cloning shares the bank.
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
            bit: 1 << pin,
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
    bit: u32,
}

impl IrqLine for Pin {
    fn set_level(&mut self, level: bool) {
        let prev = if level {
            self.bank.level.fetch_or(self.bit, Ordering::AcqRel)
        } else {
            self.bank.level.fetch_and(!self.bit, Ordering::AcqRel)
        };
        if (prev & self.bit != 0) != level {
            if level {
                self.bank.rose.fetch_or(self.bit, Ordering::AcqRel);
            }
            self.bank.changed.store(true, Ordering::Release);
        }
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
