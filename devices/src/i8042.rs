//! Intel 8042 keyboard controller as on the PC/AT and PS/2 (ports 0x60 and
//! 0x64), with a PS/2 keyboard on the first port (IRQ1) and a PS/2 mouse on
//! the auxiliary port (IRQ12); the devices themselves are in `ps2.rs`.
//!
//! Follows the IBM PS/2 Hardware Interface Technical Reference, "Keyboard/
//! Auxiliary Device Controller": status register (OBF, IBF, SYS, A2,
//! inhibit, AUX OBF), the command byte (interrupt enables, SYS, port
//! disables, XLAT) and the controller commands 0x20–0x3F / 0x60–0x7F (read /
//! write internal RAM, byte 0 being the command byte), 0xA7/0xA8 (aux port
//! disable/enable), 0xA9 (aux test), 0xAA (self-test → 0x55), 0xAB (keyboard
//! port test), 0xAD/0xAE (keyboard port disable/enable), 0xC0 (input port),
//! 0xD0/0xD1 (read/write output port: bit 0 system reset, bit 1 A20),
//! 0xD2/0xD3 (write keyboard/aux output buffer), 0xD4 (write to aux device),
//! 0xDD/0xDF (A20 off/on, HP/Phoenix extension), 0xF0–0xFF (pulse output
//! port lines; 0xFE pulses reset). With XLAT set (the default) keyboard
//! bytes pass through the set 2 → set 1 translation, including 0xF0 break
//! prefixes.
//!
//! The controller answers instantly: IBF is never seen set. A20 and reset
//! go to the machine as [`MachineRequest`]s.
//!
//! Left out: the input port's jumper bits (0xC0 returns 0x80: keyboard not
//! inhibited), password commands (0xA4–0xA6), the timeout and parity error
//! bits (no transmission errors), controller RAM beyond the command byte
//! having any effect.
//!
//! Offset layout: 0 data (port 0x60), 1 status/command (port 0x64).

use crate::bus::{read_bytewise, write_bytewise, PortIoDevice};
use crate::irq::IrqLine;
use crate::ps2::{translate_set2_to_set1, KeyboardState, MouseState};
use crate::request::{MachineRequest, RequestSink};
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};

pub const DATA: u16 = 0;
pub const COMMAND: u16 = 1;

const STATUS_OBF: u8 = 0x01;
const STATUS_SYS: u8 = 0x04;
const STATUS_A2: u8 = 0x08;
const STATUS_UNLOCKED: u8 = 0x10;
const STATUS_AUX_OBF: u8 = 0x20;

const CMD_KBD_INT: u8 = 0x01;
const CMD_AUX_INT: u8 = 0x02;
const CMD_SYS: u8 = 0x04;
const CMD_KBD_DISABLE: u8 = 0x10;
const CMD_AUX_DISABLE: u8 = 0x20;
const CMD_XLAT: u8 = 0x40;

const REPLY_LIMIT: usize = 16;
const OUT_RESET: u8 = 0x01;
const OUT_A20: u8 = 0x02;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Controller RAM; byte 0 is the command byte.
    pub ram: Vec<u8>,
    /// The output buffer: the byte and whether it came from the aux port.
    pub output: Option<(u8, bool)>,
    /// Value read from port 0x60 when the buffer is empty (the stale byte).
    pub last_output: u8,
    /// Controller replies waiting for the output buffer: (byte, aux).
    pub replies: Vec<(u8, bool)>,
    /// A controller command waiting for its data byte.
    pub pending_command: Option<u8>,
    pub last_write_was_command: bool,
    pub output_port: u8,
    /// XLAT saw an 0xF0 and the next byte is a break code.
    pub xlat_break: bool,
    pub keyboard: KeyboardState,
    pub mouse: MouseState,
    pub irq1_level: bool,
    pub irq12_level: bool,
}

pub struct I8042 {
    s: State,
    irq1: Box<dyn IrqLine>,
    irq12: Box<dyn IrqLine>,
    requests: Box<dyn RequestSink>,
}

impl I8042 {
    /// A controller after power-on: keyboard interrupt and translation
    /// enabled, aux port disabled, A20 enabled on the output port (the
    /// machine decides the CPU's initial A20 state; nothing is requested
    /// until the guest writes the output port).
    pub fn new(irq1: Box<dyn IrqLine>, irq12: Box<dyn IrqLine>, requests: Box<dyn RequestSink>) -> Self {
        Self {
            s: State::power_on(),
            irq1,
            irq12,
            requests,
        }
    }

    /// Machine reset: controller, keyboard and mouse back to power-on.
    pub fn reset(&mut self) {
        let old = std::mem::replace(&mut self.s, State::power_on());
        self.s.irq1_level = old.irq1_level;
        self.s.irq12_level = old.irq12_level;
        self.update_irq();
    }
}

impl State {
    fn power_on() -> Self {
        let mut ram = vec![0u8; 32];
        ram[0] = CMD_XLAT | CMD_AUX_DISABLE | CMD_KBD_INT;
        State {
            ram,
            output: None,
            last_output: 0,
            replies: Vec::new(),
            pending_command: None,
            last_write_was_command: false,
            output_port: OUT_RESET | OUT_A20,
            xlat_break: false,
            keyboard: KeyboardState::default(),
            mouse: MouseState::default(),
            irq1_level: false,
            irq12_level: false,
        }
    }
}

impl I8042 {
    /// Doorway: key codes from the host keyboard, in scancode set 2 (make
    /// codes, `E0` prefixes, `F0` break prefixes as a PS/2 keyboard sends).
    pub fn key_input(&mut self, set2: &[u8]) {
        self.s.keyboard.key_input(set2);
        self.fill_output();
    }

    /// Doorway: mouse motion (PS/2 convention: +dy is up) and buttons (bit
    /// 0 left, 1 right, 2 middle).
    pub fn mouse_input(&mut self, dx: i32, dy: i32, buttons: u8) {
        self.s.mouse.input(dx, dy, buttons);
        self.fill_output();
    }

    pub fn command_byte(&self) -> u8 {
        self.s.ram[0]
    }

    /// Whether the output port lets A20 through.
    pub fn a20(&self) -> bool {
        self.s.output_port & OUT_A20 != 0
    }

    fn fill_output(&mut self) {
        if self.s.output.is_none() {
            let cmd = self.s.ram[0];
            if !self.s.replies.is_empty() {
                self.s.output = Some(self.s.replies.remove(0));
            } else if cmd & CMD_KBD_DISABLE == 0 && !self.s.keyboard.queue.is_empty() {
                while !self.s.keyboard.queue.is_empty() {
                    let b = self.s.keyboard.queue.remove(0);
                    if cmd & CMD_XLAT == 0 {
                        self.s.output = Some((b, false));
                        break;
                    }
                    if b == 0xf0 {
                        self.s.xlat_break = true;
                        continue;
                    }
                    let brk = std::mem::take(&mut self.s.xlat_break);
                    self.s.output = Some((translate_set2_to_set1(b) | if brk { 0x80 } else { 0 }, false));
                    break;
                }
            } else if cmd & CMD_AUX_DISABLE == 0 && !self.s.mouse.queue.is_empty() {
                let b = self.s.mouse.queue.remove(0);
                self.s.output = Some((b, true));
            }
        }
        self.update_irq();
    }

    fn update_irq(&mut self) {
        let cmd = self.s.ram[0];
        let (kbd, aux) = match self.s.output {
            Some((_, false)) => (cmd & CMD_KBD_INT != 0, false),
            Some((_, true)) => (false, cmd & CMD_AUX_INT != 0),
            None => (false, false),
        };
        if kbd != self.s.irq1_level {
            self.s.irq1_level = kbd;
            self.irq1.set_level(kbd);
        }
        if aux != self.s.irq12_level {
            self.s.irq12_level = aux;
            self.irq12.set_level(aux);
        }
    }

    fn reply(&mut self, b: u8) {
        self.queue_reply(b, false);
        self.fill_output();
    }

    /// The controller's reply queue is bounded; a guest that never reads
    /// loses the newest replies.
    fn queue_reply(&mut self, b: u8, aux: bool) {
        if self.s.replies.len() < REPLY_LIMIT {
            self.s.replies.push((b, aux));
        }
    }

    fn status(&self) -> u8 {
        let mut st = STATUS_UNLOCKED;
        match self.s.output {
            Some((_, false)) => st |= STATUS_OBF,
            Some((_, true)) => st |= STATUS_OBF | STATUS_AUX_OBF,
            None => {}
        }
        if self.s.ram[0] & CMD_SYS != 0 {
            st |= STATUS_SYS;
        }
        if self.s.last_write_was_command {
            st |= STATUS_A2;
        }
        st
    }

    fn output_port_value(&self) -> u8 {
        let mut v = self.s.output_port & 0x0f;
        match self.s.output {
            Some((_, false)) => v |= 0x10,
            Some((_, true)) => v |= 0x20,
            None => {}
        }
        v
    }

    /// Every write reports the A20 gate, changed or not: port 0x92 drives
    /// the same line, and the last writer wins.
    fn write_output_port(&mut self, v: u8) {
        self.s.output_port = v & 0x0f | OUT_RESET;
        self.requests.request(MachineRequest::SetA20(v & OUT_A20 != 0));
        if v & OUT_RESET == 0 {
            self.requests.request(MachineRequest::Reset);
        }
    }

    fn write_command(&mut self, c: u8) {
        self.s.last_write_was_command = true;
        self.s.pending_command = None;
        match c {
            0x20..=0x3f => {
                let v = self.s.ram[(c - 0x20) as usize];
                self.reply(v);
            }
            0x60..=0x7f | 0xd1..=0xd4 => self.s.pending_command = Some(c),
            0xa7 => self.s.ram[0] |= CMD_AUX_DISABLE,
            0xa8 => self.s.ram[0] &= !CMD_AUX_DISABLE,
            0xa9 | 0xab => self.reply(0x00),
            0xaa => self.reply(0x55),
            0xad => self.s.ram[0] |= CMD_KBD_DISABLE,
            0xae => self.s.ram[0] &= !CMD_KBD_DISABLE,
            0xc0 => self.reply(0x80),
            0xd0 => {
                let v = self.output_port_value();
                self.reply(v);
            }
            0xdd => self.write_output_port(self.s.output_port & !OUT_A20),
            0xdf => self.write_output_port(self.s.output_port | OUT_A20),
            0xf0..=0xff => {
                // Pulse the output port lines whose bit is 0 in the low nibble.
                if c & 1 == 0 {
                    self.requests.request(MachineRequest::Reset);
                }
            }
            _ => tracing::debug!(command = c, "i8042: unimplemented controller command"),
        }
        self.fill_output();
    }

    fn write_data(&mut self, v: u8) {
        self.s.last_write_was_command = false;
        match self.s.pending_command.take() {
            Some(c @ 0x60..=0x7f) => self.s.ram[(c - 0x60) as usize] = v,
            Some(0xd1) => self.write_output_port(v),
            Some(0xd2) => self.queue_reply(v, false),
            Some(0xd3) => self.queue_reply(v, true),
            Some(0xd4) => {
                self.s.mouse.write(v);
            }
            _ => {
                // Writing to the keyboard re-enables its interface.
                self.s.ram[0] &= !CMD_KBD_DISABLE;
                self.s.keyboard.write(v);
            }
        }
        self.fill_output();
    }

    fn read_data(&mut self) -> u8 {
        match self.s.output.take() {
            Some((b, _)) => {
                self.s.last_output = b;
                // Drop the line before the next byte raises it again, so an
                // edge-triggered PIC sees every byte.
                self.update_irq();
                self.fill_output();
                b
            }
            None => self.s.last_output,
        }
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        match offset {
            DATA => self.read_data(),
            COMMAND => self.status(),
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        match offset {
            DATA => self.write_data(v),
            COMMAND => self.write_command(v),
            _ => {}
        }
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for I8042 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("I8042").field(&self.save()).finish()
    }
}

impl PortIoDevice for I8042 {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        read_bytewise(offset, size, |o| self.read_byte(o))
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        write_bytewise(offset, size, value, |o, b| self.write_byte(o, b))
    }
}

impl Snapshot for I8042 {
    type State = State;
    fn save(&self) -> State {
        self.s.clone()
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        check("i8042", s.ram.len() == 32, || {
            format!("controller RAM of {} bytes, expected 32", s.ram.len())
        })?;
        check("i8042", s.replies.len() <= REPLY_LIMIT, || {
            format!("{} queued controller replies", s.replies.len())
        })?;
        check("i8042", matches!(s.pending_command, None | Some(0x60..=0x7f | 0xd1..=0xd4)), || {
            format!("pending command {:?} takes no data byte", s.pending_command)
        })?;
        check("i8042", s.output_port & OUT_RESET != 0 && s.output_port <= 0x0f, || {
            format!("output port {:#x}", s.output_port)
        })?;
        s.keyboard.validate().map_err(|e| StateError::new("i8042", e))?;
        s.mouse.validate().map_err(|e| StateError::new("i8042", e))?;
        self.s = s.clone();
        self.irq1.set_level(s.irq1_level);
        self.irq12.set_level(s.irq12_level);
        self.update_irq();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
