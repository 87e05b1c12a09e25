//! Intel 8259A programmable interrupt controller pair, as wired on the PC:
//! a master (ports 0x20–0x21) and a slave (0xA0–0xA1) cascaded on the
//! master's IR2, plus the PIIX edge/level control registers (ELCR, ports
//! 0x4D0–0x4D1).
//!
//! Follows the 8259A datasheet (Intel 231468): ICW1–ICW4 initialisation
//! sequence, OCW1 (mask), OCW2 (EOI, specific EOI, rotation, set priority),
//! OCW3 (IRR/ISR read select, poll, special mask mode); edge and level
//! triggering (ICW1.LTIM, or per line through the ELCR, PIIX4 datasheet
//! §4.1.11); automatic EOI with optional rotation; special fully nested mode;
//! spurious IRQ 7 / 15 when a request goes away before INTA.
//!
//! Left out: 8080/8085 mode (ICW4.µPM = 0: x86 CPUs never use it; the chip
//! behaves as in x86 mode), buffered mode (ICW4.BUF/M-S: bus-level only),
//! and ICW3 slave IDs other than the PC's fixed wiring (slave on IR2).
//! An edge-triggered request stays latched in the IRR after its line falls,
//! so a device may pulse its line; the datasheet's "request removed before
//! INTA gives a default IR7" happens here for level-triggered lines and for
//! the cascade input.
//!
//! Offset layout (one offset space for the whole pair):
//! | offset | PC port | register |
//! |---|---|---|
//! | 0, 1 | 0x20, 0x21 | master command / data |
//! | 2, 3 | 0xA0, 0xA1 | slave command / data |
//! | 4, 5 | 0x4D0, 0x4D1 | ELCR master / slave |

use crate::bus::{read_bytewise, write_bytewise, PortIoDevice};
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};

pub const MASTER_COMMAND: u16 = 0;
pub const MASTER_DATA: u16 = 1;
pub const SLAVE_COMMAND: u16 = 2;
pub const SLAVE_DATA: u16 = 3;
pub const ELCR_MASTER: u16 = 4;
pub const ELCR_SLAVE: u16 = 5;
/// Size of the offset space.
pub const SPAN: u16 = 6;

/// Lines the ELCR may make level-triggered (PIIX: IRQ 0, 1, 2, 8, 13 are
/// always edge).
const ELCR_MASK: [u8; 2] = [0xf8, 0xde];

/// One 8259A.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChipState {
    pub irr: u8,
    pub isr: u8,
    pub imr: u8,
    /// Input levels as last driven (edge detection).
    pub last_level: u8,
    /// The IR line that currently has the highest priority (0 after ICW1;
    /// rotation moves it). Priority of line `i` is `(i - lowest_first) & 7`.
    pub priority_base: u8,
    /// 0: ready; 1: expecting ICW2; 2: ICW3; 3: ICW4.
    pub init_step: u8,
    pub expect_icw4: bool,
    pub single: bool,
    pub level_triggered: bool,
    pub vector_base: u8,
    pub auto_eoi: bool,
    pub rotate_on_auto_eoi: bool,
    pub special_fully_nested: bool,
    pub special_mask: bool,
    pub read_isr: bool,
    pub poll: bool,
    pub elcr: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub master: ChipState,
    pub slave: ChipState,
}

/// The cascaded 8259A pair.
#[derive(Debug)]
pub struct Pic8259 {
    chips: [ChipState; 2],
}

impl Default for Pic8259 {
    fn default() -> Self {
        Self::new()
    }
}

impl ChipState {
    /// Priority order 0 (highest) … 7 of the first set bit of `mask`, or 8.
    fn best_priority(&self, mask: u8) -> u8 {
        (0..8).find(|p| mask & (1 << ((p + self.priority_base) & 7)) != 0).unwrap_or(8)
    }

    fn line_of_priority(&self, p: u8) -> u8 {
        (p + self.priority_base) & 7
    }

    /// The line this chip would interrupt for now, if any.
    fn requested(&self, is_master: bool) -> Option<u8> {
        let req = self.best_priority(self.irr & !self.imr);
        if req == 8 {
            return None;
        }
        let mut in_service = self.isr;
        // Special mask mode: a masked in-service level does not hold off
        // lower priorities (datasheet, OCW3 "Special Mask Mode").
        if self.special_mask {
            in_service &= !self.imr;
        }
        // Special fully nested mode on the master: the slave's in-service
        // bit does not block further (higher-priority) slave requests.
        if is_master && self.special_fully_nested {
            in_service &= !(1 << 2);
        }
        let cur = self.best_priority(in_service);
        (req < cur).then(|| self.line_of_priority(req))
    }

    fn is_level(&self, line: u8) -> bool {
        self.level_triggered || self.elcr & (1 << line) != 0
    }

    fn set_input(&mut self, line: u8, level: bool) {
        let bit = 1u8 << line;
        if self.is_level(line) {
            if level {
                self.irr |= bit;
            } else {
                self.irr &= !bit;
            }
        } else if level && self.last_level & bit == 0 {
            self.irr |= bit;
        }
        if level {
            self.last_level |= bit;
        } else {
            self.last_level &= !bit;
        }
    }

    /// INTA (or a poll read) for `line`.
    fn acknowledge(&mut self, line: u8) {
        let bit = 1u8 << line;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_base = (line + 1) & 7;
            }
        } else {
            self.isr |= bit;
        }
        // A level-triggered request stays in the IRR while its line is high.
        if !self.is_level(line) {
            self.irr &= !bit;
        }
    }

    fn write_command(&mut self, v: u8) {
        if v & 0x10 != 0 {
            // ICW1.
            self.last_level = 0;
            self.irr &= self.elcr;
            self.imr = 0;
            self.isr = 0;
            self.priority_base = 0;
            self.special_mask = false;
            self.read_isr = false;
            self.poll = false;
            self.expect_icw4 = v & 0x01 != 0;
            self.single = v & 0x02 != 0;
            self.level_triggered = v & 0x08 != 0;
            if !self.expect_icw4 {
                self.auto_eoi = false;
                self.special_fully_nested = false;
            }
            self.rotate_on_auto_eoi = false;
            self.init_step = 1;
        } else if v & 0x08 != 0 {
            // OCW3.
            if v & 0x04 != 0 {
                self.poll = true;
            }
            if v & 0x02 != 0 {
                self.read_isr = v & 0x01 != 0;
            }
            match v & 0x60 {
                0x40 => self.special_mask = false,
                0x60 => self.special_mask = true,
                _ => {}
            }
        } else {
            // OCW2: R, SL, EOI in bits 7..5, level in 2..0.
            let level = v & 7;
            match v >> 5 {
                0b001 | 0b101 => {
                    // Non-specific EOI: the highest-priority in-service level.
                    let p = self.best_priority(self.isr);
                    if p < 8 {
                        let line = self.line_of_priority(p);
                        self.isr &= !(1 << line);
                        if v & 0x80 != 0 {
                            self.priority_base = (line + 1) & 7;
                        }
                    }
                }
                0b011 => self.isr &= !(1 << level),
                0b111 => {
                    self.isr &= !(1 << level);
                    self.priority_base = (level + 1) & 7;
                }
                0b100 => self.rotate_on_auto_eoi = true,
                0b000 => self.rotate_on_auto_eoi = false,
                0b110 => self.priority_base = (level + 1) & 7,
                _ => {}
            }
        }
    }

    fn write_data(&mut self, v: u8) {
        match self.init_step {
            1 => {
                self.vector_base = v & 0xf8;
                self.init_step = if !self.single {
                    2
                } else if self.expect_icw4 {
                    3
                } else {
                    0
                };
            }
            2 => self.init_step = if self.expect_icw4 { 3 } else { 0 },
            3 => {
                self.auto_eoi = v & 0x02 != 0;
                self.special_fully_nested = v & 0x10 != 0;
                self.init_step = 0;
            }
            _ => self.imr = v,
        }
    }

    fn validate(&self, which: &str, elcr_mask: u8) -> Result<(), StateError> {
        check("pic8259", self.init_step <= 3, || {
            format!("{which}: init step {} out of range", self.init_step)
        })?;
        check("pic8259", self.priority_base < 8, || {
            format!("{which}: priority base {}", self.priority_base)
        })?;
        check("pic8259", self.vector_base & 7 == 0, || {
            format!("{which}: vector base {:#x} not 8-aligned", self.vector_base)
        })?;
        check("pic8259", self.elcr & !elcr_mask == 0, || {
            format!("{which}: ELCR {:#x} sets edge-only lines", self.elcr)
        })
    }
}

impl Pic8259 {
    pub fn new() -> Self {
        Self {
            chips: [ChipState::default(), ChipState::default()],
        }
    }

    /// The chipset's reset line: both chips wait for ICW1, ELCR cleared.
    pub fn reset(&mut self) {
        self.chips = [ChipState::default(), ChipState::default()];
    }

    /// Drive ISA IRQ line `irq` (0–15) to `level`. IRQ 2 is the cascade
    /// input and not a separate line; driving it is ignored (the PC routes
    /// ISA IRQ 2 to IRQ 9).
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 if irq != 2 => self.chips[0].set_input(irq, level),
            8..=15 => {
                self.chips[1].set_input(irq - 8, level);
                self.update_cascade();
            }
            _ => {}
        }
    }

    /// The slave's INT output drives the master's IR2. It is treated as a
    /// level input whatever the master's trigger mode: the master's request
    /// follows the slave's (datasheet: a request that drops before INTA is
    /// not serviced), so a slave request that goes away leaves no stale IR2.
    fn update_cascade(&mut self) {
        let slave_int = self.chips[1].requested(false).is_some();
        let m = &mut self.chips[0];
        if slave_int {
            m.irr |= 1 << 2;
            m.last_level |= 1 << 2;
        } else {
            m.irr &= !(1 << 2);
            m.last_level &= !(1 << 2);
        }
    }

    /// Whether the master's INT output is asserted (the CPU should run an
    /// INTA cycle when RFLAGS.IF allows).
    pub fn pending(&self) -> bool {
        self.chips[0].requested(true).is_some()
    }

    /// The CPU's INTA cycle: the vector of the highest-priority request,
    /// updating IRR/ISR. If the request went away, the spurious vector of the
    /// chip that was asked (IRQ 7 or IRQ 15) with no in-service bit set (for
    /// a spurious slave interrupt the master's IR2 is in service, as on real
    /// hardware).
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.chips[0].requested(true) {
            Some(2) => {
                self.chips[0].acknowledge(2);
                match self.chips[1].requested(false) {
                    Some(line) => {
                        self.chips[1].acknowledge(line);
                        self.chips[1].vector_base + line
                    }
                    None => self.chips[1].vector_base + 7,
                }
            }
            Some(line) => {
                self.chips[0].acknowledge(line);
                self.chips[0].vector_base + line
            }
            None => self.chips[0].vector_base + 7,
        };
        self.update_cascade();
        vector
    }

    /// In-service bits of both chips, ISA IRQ numbering (bit 2 is the
    /// cascade). For the machine's diagnostics and tests.
    pub fn in_service(&self) -> u16 {
        self.chips[0].isr as u16 | (self.chips[1].isr as u16) << 8
    }

    /// Interrupt mask registers of both chips, ISA IRQ numbering.
    pub fn masks(&self) -> u16 {
        self.chips[0].imr as u16 | (self.chips[1].imr as u16) << 8
    }

    fn poll_read(&mut self, chip: usize) -> u8 {
        self.chips[chip].poll = false;
        let line = if chip == 0 {
            self.chips[0].requested(true)
        } else {
            self.chips[1].requested(false)
        };
        let result = match line {
            Some(line) => {
                self.chips[chip].acknowledge(line);
                0x80 | line
            }
            None => 0,
        };
        self.update_cascade();
        result
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        match offset {
            MASTER_COMMAND | SLAVE_COMMAND => {
                let chip = (offset / 2) as usize;
                if self.chips[chip].poll {
                    self.poll_read(chip)
                } else if self.chips[chip].read_isr {
                    self.chips[chip].isr
                } else {
                    self.chips[chip].irr
                }
            }
            MASTER_DATA | SLAVE_DATA => {
                let chip = (offset / 2) as usize;
                if self.chips[chip].poll {
                    self.poll_read(chip)
                } else {
                    self.chips[chip].imr
                }
            }
            ELCR_MASTER => self.chips[0].elcr,
            ELCR_SLAVE => self.chips[1].elcr,
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        match offset {
            MASTER_COMMAND | SLAVE_COMMAND => self.chips[(offset / 2) as usize].write_command(v),
            MASTER_DATA | SLAVE_DATA => self.chips[(offset / 2) as usize].write_data(v),
            ELCR_MASTER | ELCR_SLAVE => {
                let chip = (offset - ELCR_MASTER) as usize;
                self.chips[chip].elcr = v & ELCR_MASK[chip];
            }
            _ => {}
        }
        self.update_cascade();
    }
}

impl PortIoDevice for Pic8259 {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        read_bytewise(offset, size, |o| self.read_byte(o))
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        write_bytewise(offset, size, value, |o, b| self.write_byte(o, b))
    }
}

impl Snapshot for Pic8259 {
    type State = State;
    fn save(&self) -> State {
        State {
            master: self.chips[0].clone(),
            slave: self.chips[1].clone(),
        }
    }
    fn restore(&mut self, state: &State) -> Result<(), StateError> {
        state.master.validate("master", ELCR_MASK[0])?;
        state.slave.validate("slave", ELCR_MASK[1])?;
        self.chips = [state.master.clone(), state.slave.clone()];
        Ok(())
    }
}

#[cfg(test)]
mod tests;
