//! PS/2 keyboard and mouse, the devices behind the i8042's two ports.
//!
//! Keyboard: IBM PS/2 keyboard command set (IBM PS/2 Hardware Interface
//! Technical Reference, "Keyboard" chapter): 0xED set LEDs, 0xEE echo,
//! 0xF0 get/set scancode set (1 and 2), 0xF2 identify (AB 83), 0xF3
//! typematic rate, 0xF4/0xF5 enable/disable scanning, 0xF6 defaults,
//! 0xF7–0xFD set-3 key types (acknowledged, no effect), 0xFE resend,
//! 0xFF reset (FA, AA). Unknown commands answer 0xFE. The keyboard's native
//! codes are set 2; in set 1 it converts through the 8042 translation table.
//!
//! Mouse: standard PS/2 mouse (same reference, "Pointing Device"): 0xE6/0xE7
//! scaling, 0xE8 resolution, 0xE9 status request, 0xEA stream mode, 0xEB read
//! data, 0xF0 remote mode, 0xF2 get ID (00), 0xF3 sample rate, 0xF4/0xF5
//! enable/disable reporting, 0xF6 defaults, 0xFF reset (FA, AA, 00); 3-byte
//! movement packets with sign and overflow bits.
//!
//! Left out: scancode set 3 (0xF0 0x03 answers 0xFE), typematic repeat (the
//! host repeats keys), 2:1 scaling of reported motion (the flag is kept),
//! wrap mode and the IntelliMouse wheel ID sequence (ID stays 00). Each
//! device's output buffer holds 16 bytes; input that does not fit is dropped
//! as a whole (no partial scancodes or packets).

use serde::{Deserialize, Serialize};

const QUEUE_LIMIT: usize = 16;
pub(crate) const ACK: u8 = 0xfa;
pub(crate) const RESEND: u8 = 0xfe;
pub(crate) const BAT_OK: u8 = 0xaa;

/// The 8042's set 2 → set 1 translation (identity from 0x80 up, except
/// 0x83 → 0x41 and 0x84 → 0x54).
const SET2_TO_SET1: [u8; 128] = [
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59, //
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b, //
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d, //
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f, //
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61, //
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76, //
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f, //
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54, //
];

/// One byte through the 8042 translation table.
pub fn translate_set2_to_set1(b: u8) -> u8 {
    match b {
        0..=0x7f => SET2_TO_SET1[b as usize],
        0x83 => 0x41,
        0x84 => 0x54,
        _ => b,
    }
}

/// A set-2 byte sequence converted to set 1 (F0 xx → translated xx | 0x80).
pub fn set2_sequence_to_set1(codes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(codes.len());
    let mut brk = false;
    for &b in codes {
        if b == 0xf0 {
            brk = true;
        } else {
            out.push(translate_set2_to_set1(b) | if brk { 0x80 } else { 0 });
            brk = false;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyboardState {
    pub queue: Vec<u8>,
    pub scanning: bool,
    /// 1 or 2.
    pub scancode_set: u8,
    pub leds: u8,
    pub typematic: u8,
    /// A command waiting for its argument byte (0xED, 0xF0, 0xF3).
    pub pending: Option<u8>,
    pub last_sent: u8,
}

impl Default for KeyboardState {
    fn default() -> Self {
        Self {
            queue: Vec::new(),
            scanning: true,
            scancode_set: 2,
            leds: 0,
            typematic: 0x2b,
            pending: None,
            last_sent: 0,
        }
    }
}

impl KeyboardState {
    fn reply(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.queue.len() < QUEUE_LIMIT {
                self.queue.push(b);
            }
            self.last_sent = b;
        }
    }

    /// Key codes from the host, in set 2. Dropped while scanning is off or
    /// if the whole sequence does not fit.
    pub fn key_input(&mut self, set2: &[u8]) {
        if !self.scanning {
            return;
        }
        let codes = if self.scancode_set == 1 {
            set2_sequence_to_set1(set2)
        } else {
            set2.to_vec()
        };
        if self.queue.len() + codes.len() <= QUEUE_LIMIT {
            self.queue.extend_from_slice(&codes);
        }
    }

    fn set_defaults(&mut self) {
        self.typematic = 0x2b;
        self.leds = 0;
    }

    /// A byte from the host (controller) to the keyboard.
    pub fn write(&mut self, v: u8) {
        if let Some(cmd) = self.pending.take() {
            let is_arg = match cmd {
                0xf0 => v <= 3,
                _ => v < 0x80,
            };
            if is_arg {
                match cmd {
                    0xed => {
                        self.leds = v & 7;
                        self.reply(&[ACK]);
                    }
                    0xf3 => {
                        self.typematic = v;
                        self.reply(&[ACK]);
                    }
                    _ => match v {
                        0 => {
                            let set = self.scancode_set;
                            self.reply(&[ACK, set]);
                        }
                        1 | 2 => {
                            self.scancode_set = v;
                            self.reply(&[ACK]);
                        }
                        _ => self.reply(&[RESEND]),
                    },
                }
                return;
            }
        }
        match v {
            0xed | 0xf0 | 0xf3 => {
                self.pending = Some(v);
                self.reply(&[ACK]);
            }
            0xee => self.reply(&[0xee]),
            0xf2 => self.reply(&[ACK, 0xab, 0x83]),
            0xf4 => {
                self.queue.clear();
                self.scanning = true;
                self.reply(&[ACK]);
            }
            0xf5 => {
                self.set_defaults();
                self.scanning = false;
                self.reply(&[ACK]);
            }
            0xf6 => {
                self.set_defaults();
                self.reply(&[ACK]);
            }
            0xf7..=0xfd => self.reply(&[ACK]),
            0xfe => {
                let last = self.last_sent;
                self.reply(&[last]);
            }
            0xff => {
                *self = KeyboardState::default();
                self.reply(&[ACK, BAT_OK]);
            }
            _ => self.reply(&[RESEND]),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.queue.len() > QUEUE_LIMIT {
            return Err(format!("keyboard queue of {} bytes", self.queue.len()));
        }
        if !matches!(self.scancode_set, 1 | 2) {
            return Err(format!("scancode set {}", self.scancode_set));
        }
        if !matches!(self.pending, None | Some(0xed | 0xf0 | 0xf3)) {
            return Err("keyboard waits for an argument of a command that takes none".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MouseState {
    pub queue: Vec<u8>,
    /// Data reporting enabled (0xF4).
    pub reporting: bool,
    pub remote: bool,
    pub scaling_2to1: bool,
    /// 0–3 (1, 2, 4, 8 counts/mm).
    pub resolution: u8,
    pub sample_rate: u8,
    /// A command waiting for its argument (0xE8, 0xF3).
    pub pending: Option<u8>,
    pub buttons: u8,
    /// Motion not yet reported (remote mode, or while the queue is full).
    pub dx: i32,
    pub dy: i32,
}

impl Default for MouseState {
    fn default() -> Self {
        Self {
            queue: Vec::new(),
            reporting: false,
            remote: false,
            scaling_2to1: false,
            resolution: 2,
            sample_rate: 100,
            pending: None,
            buttons: 0,
            dx: 0,
            dy: 0,
        }
    }
}

impl MouseState {
    fn reply(&mut self, bytes: &[u8]) {
        if self.queue.len() + bytes.len() <= QUEUE_LIMIT {
            self.queue.extend_from_slice(bytes);
        }
    }

    fn packet(&mut self) -> [u8; 3] {
        let clamp = |v: i32| (v.clamp(-256, 255), !(-256..=255).contains(&v));
        let (dx, xov) = clamp(self.dx);
        let (dy, yov) = clamp(self.dy);
        self.dx = 0;
        self.dy = 0;
        let b0 = (self.buttons & 7) | 0x08 | ((dx < 0) as u8) << 4 | ((dy < 0) as u8) << 5 | (xov as u8) << 6 | (yov as u8) << 7;
        [b0, dx as u8, dy as u8]
    }

    /// Movement and button state from the host (PS/2 convention: +dy is
    /// up; buttons bit 0 left, 1 right, 2 middle).
    pub fn input(&mut self, dx: i32, dy: i32, buttons: u8) {
        self.buttons = buttons & 7;
        if !self.reporting && !self.remote {
            return;
        }
        self.dx = self.dx.saturating_add(dx);
        self.dy = self.dy.saturating_add(dy);
        if self.reporting && !self.remote && self.queue.len() + 3 <= QUEUE_LIMIT {
            let p = self.packet();
            self.queue.extend_from_slice(&p);
        }
    }

    fn set_defaults(&mut self) {
        self.sample_rate = 100;
        self.resolution = 2;
        self.scaling_2to1 = false;
        self.reporting = false;
        self.remote = false;
    }

    /// A byte from the host (via controller command 0xD4) to the mouse.
    pub fn write(&mut self, v: u8) {
        if let Some(cmd) = self.pending.take() {
            if cmd == 0xe8 {
                self.resolution = v & 3;
            } else {
                self.sample_rate = v;
            }
            self.reply(&[ACK]);
            return;
        }
        match v {
            0xe6 => {
                self.scaling_2to1 = false;
                self.reply(&[ACK]);
            }
            0xe7 => {
                self.scaling_2to1 = true;
                self.reply(&[ACK]);
            }
            0xe8 | 0xf3 => {
                self.pending = Some(v);
                self.reply(&[ACK]);
            }
            0xe9 => {
                let b = (self.remote as u8) << 6
                    | (self.reporting as u8) << 5
                    | (self.scaling_2to1 as u8) << 4
                    | (self.buttons & 1) << 2
                    | (self.buttons & 4) >> 1
                    | (self.buttons & 2) >> 1;
                let (r, s) = (self.resolution, self.sample_rate);
                self.reply(&[ACK, b, r, s]);
            }
            0xea => {
                self.remote = false;
                self.reply(&[ACK]);
            }
            0xeb => {
                let p = self.packet();
                self.reply(&[ACK, p[0], p[1], p[2]]);
            }
            0xf0 => {
                self.remote = true;
                self.reply(&[ACK]);
            }
            0xf2 => self.reply(&[ACK, 0x00]),
            0xf4 => {
                self.reporting = true;
                self.reply(&[ACK]);
            }
            0xf5 => {
                self.reporting = false;
                self.reply(&[ACK]);
            }
            0xf6 => {
                self.set_defaults();
                self.reply(&[ACK]);
            }
            0xff => {
                *self = MouseState::default();
                self.reply(&[ACK, BAT_OK, 0x00]);
            }
            _ => self.reply(&[RESEND]),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.queue.len() > QUEUE_LIMIT {
            return Err(format!("mouse queue of {} bytes", self.queue.len()));
        }
        if self.resolution > 3 || self.buttons > 7 {
            return Err("mouse resolution or buttons out of range".into());
        }
        if !matches!(self.pending, None | Some(0xe8 | 0xf3)) {
            return Err("mouse waits for an argument of a command that takes none".into());
        }
        Ok(())
    }
}
