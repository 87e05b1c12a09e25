//! PCI INTx wiring: the slot swizzle and the wire-OR of shared lines.
//!
//! PCI-to-PCI Bridge Architecture 1.2 §9.1 ("interrupt routing"): the
//! conventional board wiring sends pin `p` (0 = INTA) of slot `s` to
//! interrupt-router input `(s + p) mod 4`. kagami's ACPI `_PRT`
//! (`bios/src/acpi.rs`) describes exactly this, for both chipsets: PIRQA–D
//! on `-machine pc` (GSIs 10, 10, 11, 11 as the firmware programs the PIIX3
//! router), PIRQA–D = GSIs 16–19 on `-machine q35`.
//!
//! INTx is level-triggered, active low on the wire and shared: a router
//! input is asserted while any function wired to it asserts. [`PciIntx`]
//! keeps one level per source and drives one [`IrqLine`] per router input
//! (PIRQ) with the OR. What a PIRQ then reaches (an ISA IRQ through the
//! PIIX3/ICH9 route registers, a GSI of the IOAPIC) is the machine's
//! business, with the chipset functions' `pirq_isa_irq` and `pirq_gsi`.

use crate::irq::IrqLine;
use std::sync::{Arc, Mutex};

/// The router input (0 = PIRQA) that pin `pin` (0 = INTA) of `slot` reaches.
pub fn pirq_index(slot: u8, pin: u8) -> u8 {
    (slot.wrapping_add(pin)) % 4
}

struct Wires {
    /// (pirq, level) per source line handed out.
    sources: Vec<(u8, bool)>,
    outputs: Vec<Box<dyn IrqLine>>,
    levels: u8,
}

impl Wires {
    fn update(&mut self, pirq: u8) {
        let level = self.sources.iter().any(|&(p, l)| p == pirq && l);
        let bit = 1u8 << pirq;
        if (self.levels & bit != 0) != level {
            self.levels ^= bit;
            self.outputs[pirq as usize].set_level(level);
        }
    }
}

/// The PCI interrupt wires of bus 0. Cloning shares them.
#[derive(Clone)]
pub struct PciIntx {
    wires: Arc<Mutex<Wires>>,
}

impl PciIntx {
    /// `outputs[n]` is driven with the OR of every source on PIRQ `n`
    /// (4 for the PIIX3, up to 8 for ICH9).
    pub fn new(outputs: Vec<Box<dyn IrqLine>>) -> Self {
        assert!((1..=8).contains(&outputs.len()));
        PciIntx {
            wires: Arc::new(Mutex::new(Wires {
                sources: Vec::new(),
                outputs,
                levels: 0,
            })),
        }
    }

    /// The line a function in `slot` drives for its pin `pin` (0 = INTA):
    /// give it to the device. Level high = asserted.
    pub fn line(&self, slot: u8, pin: u8) -> Box<dyn IrqLine> {
        let pirq = pirq_index(slot, pin);
        let mut w = self.wires.lock().unwrap();
        assert!((pirq as usize) < w.outputs.len(), "PIRQ {pirq} is not wired");
        w.sources.push((pirq, false));
        Box::new(IntxSource {
            wires: self.wires.clone(),
            index: w.sources.len() - 1,
        })
    }

    /// Current level of every PIRQ (bit n = PIRQ n asserted).
    pub fn levels(&self) -> u8 {
        self.wires.lock().unwrap().levels
    }
}

struct IntxSource {
    wires: Arc<Mutex<Wires>>,
    index: usize,
}

impl IrqLine for IntxSource {
    fn set_level(&mut self, level: bool) {
        let mut w = self.wires.lock().unwrap();
        w.sources[self.index].1 = level;
        let pirq = w.sources[self.index].0;
        w.update(pirq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::IrqPins;

    #[test]
    fn swizzle_matches_the_acpi_prt() {
        // _PRT in bios/src/acpi.rs: slot s, pin p -> pci_gsis[(s + p) % 4].
        assert_eq!(pirq_index(0, 0), 0);
        assert_eq!(pirq_index(1, 0), 1);
        assert_eq!(pirq_index(3, 2), 1);
        assert_eq!(pirq_index(31, 3), 2);
    }

    #[test]
    fn shared_lines_are_wired_or() {
        let pins = IrqPins::new();
        let intx = PciIntx::new((0..4).map(|n| pins.line(16 + n)).collect());
        let mut a = intx.line(2, 0); // PIRQC
        let mut b = intx.line(1, 1); // PIRQC too
        let mut c = intx.line(3, 0); // PIRQD
        a.set_level(true);
        b.set_level(true);
        assert_eq!(intx.levels(), 0b0100);
        a.set_level(false);
        assert_eq!(intx.levels(), 0b0100, "b still asserts PIRQC");
        b.set_level(false);
        c.set_level(true);
        assert_eq!(intx.levels(), 0b1000);
        assert_eq!(pins.levels() >> 16, 0b1000);
        let ch = pins.take_changes().unwrap();
        assert_eq!(ch.rose >> 16, 0b1100);
    }
}
