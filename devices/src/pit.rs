//! Intel 8254 programmable interval timer (ports 0x40–0x43) and the PC's
//! system control port B (port 0x61: channel 2 gate, speaker enable, OUT2,
//! refresh toggle).
//!
//! Follows the 8254 datasheet (Intel 231164): three 16-bit down counters,
//! modes 0–5 (6 and 7 alias 2 and 3), binary or 4-decade BCD counting,
//! LSB / MSB / LSB-then-MSB access, the counter latch command, the
//! read-back command (count and status, with the null-count flag), gate
//! behaviour per mode, and new counts written during counting taking effect
//! at the next period boundary in modes 2 and 3. Channel 0's OUT drives IRQ0;
//! channel 2's gate and OUT are wired to port 0x61 as on the PC/AT.
//!
//! Time: counters run on the machine's virtual clock at exactly
//! 1.193182 MHz; tick `n` happens at the first nanosecond with
//! `ns * 1193182 / 1e9 >= n` (see `time.rs`), computed from absolute time so
//! nothing drifts. A counter is a formula of ticks elapsed since it was
//! loaded, not a thing that is stepped.
//!
//! Left out / simplified: the counting element is loaded at the instant the
//! count is written rather than on the next CLK edge (one tick earlier than
//! the datasheet's timing diagrams); mode 3's count read-back follows the
//! "decrement by two" pattern but not the odd-count half-cycle skew exactly;
//! IRQ0 is edge-only: the line is updated to OUT0's level at each
//! `advance_to`, and every rising edge since the last advance is delivered
//! (several missed periods collapse into one edge, as a late PIC would see
//! them), but falling edges are not deadlines. The speaker makes no sound;
//! channel 1 (DRAM refresh) counts but drives nothing.
//!
//! Offset layout: 0–2 counter 0–2 data (ports 0x40–0x42), 3 control word
//! (0x43), 4 system control port B (0x61).

use crate::bus::{read_bytewise, write_bytewise, PortIoDevice};
use crate::irq::IrqLine;
use crate::snapshot::{check, Snapshot, StateError};
use crate::time::{ns_to_ticks, ticks_to_ns, Timed};
use serde::{Deserialize, Serialize};

/// Input clock of every counter.
pub const PIT_HZ: u64 = 1_193_182;
pub const CONTROL: u16 = 3;
pub const PORT_B: u16 = 4;
pub const SPAN: u16 = 5;

/// Refresh-request period on the PC/AT: port 0x61 bit 4 toggles once per
/// 15.085 µs refresh cycle.
const REFRESH_NS: u64 = 15_085;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// 0–5.
    pub mode: u8,
    /// 1: LSB only, 2: MSB only, 3: LSB then MSB.
    pub access: u8,
    pub bcd: bool,
    /// The count register (last count written), 1..=65536 (binary) or
    /// 1..=10000 (BCD); a written 0 means the maximum.
    pub count_register: u32,
    /// The count the current cycle runs with (same range).
    pub n: u32,
    /// A complete count has been written since the control word.
    pub loaded: bool,
    /// Modes 1 and 5: a gate trigger started the current cycle.
    pub triggered: bool,
    /// Tick at which the counting element held `n`.
    pub start_tick: u64,
    /// Counting suspended by a low gate since this tick.
    pub paused_at: Option<u64>,
    /// Modes 2 and 3: `count_register` becomes `n` at this tick (the end
    /// of the current period).
    pub reload_at: Option<u64>,
    /// The tick at which the count register reached the counting element;
    /// `None` while it has not yet (null count).
    pub ce_loaded_at: Option<u64>,
    pub gate: bool,
    pub write_msb_next: bool,
    pub write_lsb: u8,
    pub read_msb_next: bool,
    pub count_latch: Option<u16>,
    pub status_latch: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub channels: [ChannelState; 3],
    /// Port 0x61 bits 0–3 as written (gate 2, speaker data, parity and
    /// channel-check enables).
    pub port_b: u8,
    pub now_ns: u64,
    /// Ticks up to which channel 0's edges have been delivered.
    pub irq_tick: u64,
    pub irq_level: bool,
}

pub struct Pit8254 {
    ch: [ChannelState; 3],
    port_b: u8,
    now_ns: u64,
    irq_tick: u64,
    irq_level: bool,
    irq0: Box<dyn IrqLine>,
}

impl ChannelState {
    fn new(gate: bool) -> Self {
        Self {
            mode: 3,
            access: 3,
            bcd: false,
            count_register: 0x10000,
            n: 0x10000,
            loaded: false,
            triggered: false,
            start_tick: 0,
            paused_at: None,
            reload_at: None,
            ce_loaded_at: None,
            gate,
            write_msb_next: false,
            write_lsb: 0,
            read_msb_next: false,
            count_latch: None,
            status_latch: None,
        }
    }

    fn modulus(&self) -> u32 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    /// Apply a modes-2/3 reload that is due by `now`.
    fn settle(&mut self, now: u64) {
        if let Some(at) = self.reload_at {
            if at <= now {
                self.n = self.count_register;
                self.start_tick = at;
                self.ce_loaded_at = Some(at);
                self.reload_at = None;
            }
        }
    }

    /// Whether the counter is counting its cycle (as opposed to waiting for
    /// a count or a trigger).
    fn running(&self) -> bool {
        self.loaded && (!matches!(self.mode, 1 | 5) || self.triggered)
    }

    /// Ticks elapsed in the current cycle.
    fn elapsed(&self, now: u64) -> u64 {
        if !self.running() {
            return 0;
        }
        self.paused_at.unwrap_or(now).saturating_sub(self.start_tick)
    }

    /// The counting element, 0..modulus (0 standing for the maximum count).
    fn counting_element(&self, now: u64) -> u32 {
        let m = self.modulus() as u64;
        let n = self.n as u64;
        let d = self.elapsed(now);
        let v = match self.mode {
            2 => n - d % n,
            3 => (n - (2 * d) % n) & !1,
            _ => (n + m - d % m) % m,
        };
        (v % m) as u32
    }

    fn display_count(&self, now: u64) -> u16 {
        let v = self.counting_element(now);
        if self.bcd {
            let mut bcd = 0u16;
            for (i, mut digit) in [v / 1000, v / 100, v / 10, v].into_iter().enumerate() {
                digit %= 10;
                bcd |= (digit as u16) << (12 - 4 * i);
            }
            bcd
        } else {
            v as u16
        }
    }

    fn out(&self, now: u64) -> bool {
        let n = self.n as u64;
        let d = self.elapsed(now);
        match self.mode {
            0 => self.loaded && d >= n,
            1 => !self.running() || d >= n,
            2 => !self.running() || !self.gate || d % n != n - 1,
            3 => !self.running() || !self.gate || d % n < n.div_ceil(2),
            _ => !self.running() || d != n,
        }
    }

    /// The first rising edge of OUT strictly after tick `after`, within the
    /// current cycle parameters.
    fn next_rising(&self, after: u64) -> Option<u64> {
        if !self.running() || self.paused_at.is_some() {
            return None;
        }
        let n = self.n as u64;
        let start = self.start_tick;
        match self.mode {
            0 | 1 => Some(start + n).filter(|&t| t > after),
            2 | 3 if n >= 2 => {
                if !self.gate {
                    return None;
                }
                let k = if after < start { 1 } else { (after - start) / n + 1 };
                Some(start + k * n)
            }
            4 | 5 => Some(start + n + 1).filter(|&t| t > after),
            _ => None,
        }
    }

    fn null_count(&self, now: u64) -> bool {
        self.ce_loaded_at.is_none_or(|t| now < t) || self.reload_at.is_some()
    }

    fn status(&self, now: u64) -> u8 {
        (self.out(now) as u8) << 7 | (self.null_count(now) as u8) << 6 | self.access << 4 | self.mode << 1 | self.bcd as u8
    }

    fn write_control(&mut self, cw: u8) {
        let gate = self.gate;
        *self = ChannelState {
            gate,
            ..ChannelState::new(gate)
        };
        self.access = (cw >> 4) & 3;
        self.mode = match (cw >> 1) & 7 {
            m @ 6..=7 => m - 4,
            m => m,
        };
        self.bcd = cw & 1 != 0;
        self.n = self.modulus();
        self.count_register = self.modulus();
    }

    fn decode_count(&self, raw: u16) -> u32 {
        let v = if self.bcd {
            (0..4).fold(0u32, |acc, i| acc * 10 + ((raw >> (12 - 4 * i)) & 0xf).min(9) as u32)
        } else {
            raw as u32
        };
        if v == 0 {
            self.modulus()
        } else {
            v
        }
    }

    fn write_data(&mut self, v: u8, now: u64) {
        let raw = match self.access {
            1 => v as u16,
            2 => (v as u16) << 8,
            _ => {
                if !self.write_msb_next {
                    self.write_msb_next = true;
                    self.write_lsb = v;
                    // Mode 0: writing the first byte stops the count and
                    // sets OUT low (datasheet, mode 0 description).
                    if self.mode == 0 {
                        self.loaded = false;
                    }
                    return;
                }
                self.write_msb_next = false;
                (v as u16) << 8 | self.write_lsb as u16
            }
        };
        self.count_register = self.decode_count(raw);
        let paused = (!self.gate).then_some(now);
        match self.mode {
            0 | 4 => {
                self.n = self.count_register;
                self.start_tick = now;
                self.paused_at = paused;
                self.ce_loaded_at = Some(now + 1);
                self.loaded = true;
            }
            1 | 5 => {
                // Takes effect at the next trigger.
                self.loaded = true;
                if !self.triggered {
                    self.ce_loaded_at = None;
                }
            }
            _ => {
                // A low gate holds modes 2/3 and its rising edge reloads
                // anyway, so only a counter that is counting waits for the
                // period's end.
                if self.running() && self.paused_at.is_none() {
                    let d = self.elapsed(now);
                    let n = self.n as u64;
                    self.reload_at = Some(self.start_tick + (d / n + 1) * n);
                } else {
                    self.n = self.count_register;
                    self.start_tick = now;
                    self.paused_at = paused;
                    self.ce_loaded_at = Some(now + 1);
                    self.loaded = true;
                }
            }
        }
    }

    fn read_data(&mut self, now: u64) -> u8 {
        if let Some(s) = self.status_latch.take() {
            return s;
        }
        let (value, latched) = match self.count_latch {
            Some(v) => (v, true),
            None => (self.display_count(now), false),
        };
        let (byte, done) = match self.access {
            1 => (value as u8, true),
            2 => ((value >> 8) as u8, true),
            _ => {
                let msb = self.read_msb_next;
                self.read_msb_next = !msb;
                if msb {
                    ((value >> 8) as u8, true)
                } else {
                    (value as u8, false)
                }
            }
        };
        if latched && done {
            self.count_latch = None;
        }
        byte
    }

    fn latch_count(&mut self, now: u64) {
        if self.count_latch.is_none() {
            self.count_latch = Some(self.display_count(now));
        }
    }

    fn set_gate(&mut self, level: bool, now: u64) {
        if level == self.gate {
            return;
        }
        self.gate = level;
        if level {
            match self.mode {
                1 | 5 if self.loaded => {
                    self.n = self.count_register;
                    self.triggered = true;
                    self.start_tick = now;
                    self.ce_loaded_at = Some(now + 1);
                }
                2 | 3 if self.loaded => {
                    // The rising edge reloads from the count register.
                    self.n = self.count_register;
                    self.start_tick = now;
                    self.paused_at = None;
                    self.ce_loaded_at = Some(now + 1);
                }
                0 | 4 => {
                    if let Some(p) = self.paused_at.take() {
                        self.start_tick += now - p;
                    }
                }
                _ => {}
            }
        } else if matches!(self.mode, 0 | 2 | 3 | 4) && self.loaded {
            self.settle(now);
            self.paused_at = Some(now);
            if self.reload_at.take().is_some() {
                // Modes 2/3 stop; the pending count loads at the next rising
                // gate edge instead of at the period's end.
                self.ce_loaded_at = None;
            }
        }
    }

    fn validate(&self, i: usize, now: u64) -> Result<(), StateError> {
        // Every tick the device stores was "now" when it was stored (gate
        // resumption only moves the start forward); later ones cannot be.
        check("pit8254", self.start_tick <= now && self.paused_at.is_none_or(|p| p <= now), || {
            format!("counter {i}: started or paused after the present")
        })?;
        check(
            "pit8254",
            self.ce_loaded_at.is_none_or(|t| t <= now + 1) && self.reload_at.is_none_or(|r| r <= now + 0x2_0000),
            || format!("counter {i}: load scheduled impossibly far ahead"),
        )?;
        let m = self.modulus();
        check("pit8254", self.mode <= 5, || format!("counter {i}: mode {}", self.mode))?;
        check("pit8254", (1..=3).contains(&self.access), || {
            format!("counter {i}: access mode {}", self.access)
        })?;
        check(
            "pit8254",
            (1..=m).contains(&self.n) && (1..=m).contains(&self.count_register),
            || format!("counter {i}: count {} / {} outside 1..={m}", self.n, self.count_register),
        )?;
        check("pit8254", self.paused_at.is_none_or(|p| p >= self.start_tick), || {
            format!("counter {i}: paused before start")
        })?;
        check("pit8254", self.reload_at.is_none_or(|r| r > self.start_tick), || {
            format!("counter {i}: reload before start")
        })
    }
}

impl Pit8254 {
    /// `irq0` is channel 0's OUT. Channels 0 and 1 have their gates tied
    /// high; channel 2's gate comes from port 0x61 (low at reset).
    pub fn new(irq0: Box<dyn IrqLine>) -> Self {
        let ch = [ChannelState::new(true), ChannelState::new(true), ChannelState::new(false)];
        let irq_level = ch[0].out(0);
        Self {
            ch,
            port_b: 0,
            now_ns: 0,
            irq_tick: 0,
            irq_level,
            irq0,
        }
    }

    /// The chipset's reset line: counters unprogrammed, gate 2 low. The
    /// virtual clock position is kept.
    pub fn reset(&mut self) {
        let now = self.now_tick();
        self.ch = [ChannelState::new(true), ChannelState::new(true), ChannelState::new(false)];
        self.port_b = 0;
        self.irq_tick = now;
        let level = self.ch[0].out(now);
        if level != self.irq_level {
            self.irq_level = level;
            self.irq0.set_level(level);
        }
    }

    fn now_tick(&self) -> u64 {
        ns_to_ticks(self.now_ns, PIT_HZ)
    }

    /// OUT of counter `i` now (for tests and the speaker).
    pub fn out(&self, i: usize) -> bool {
        self.ch[i].out(self.now_tick())
    }

    /// Whether the speaker is being driven (gate 2 and speaker data set).
    pub fn speaker_enabled(&self) -> bool {
        self.port_b & 3 == 3
    }

    /// Deliver channel 0's edges up to `now` and set IRQ0 to OUT0's level.
    fn update_irq(&mut self, now: u64) {
        let mut edge = false;
        loop {
            let c = &self.ch[0];
            let limit = match c.reload_at {
                Some(at) if at <= now => at,
                _ => now,
            };
            if c.next_rising(self.irq_tick).is_some_and(|t| t <= limit) {
                edge = true;
            }
            self.irq_tick = self.irq_tick.max(limit);
            if limit == now && self.ch[0].reload_at.is_none_or(|at| at > now) {
                break;
            }
            self.ch[0].settle(limit);
        }
        let level = self.ch[0].out(now);
        if edge {
            self.irq0.set_level(false);
            self.irq0.set_level(true);
            self.irq_level = true;
        }
        if level != self.irq_level || edge {
            self.irq0.set_level(level);
            self.irq_level = level;
        }
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        let now = self.now_tick();
        match offset {
            0..=2 => {
                let c = &mut self.ch[offset as usize];
                c.settle(now);
                c.read_data(now)
            }
            PORT_B => {
                self.ch[2].settle(now);
                let refresh = ((self.now_ns / REFRESH_NS) & 1) as u8;
                (self.port_b & 0x0f) | refresh << 4 | (self.ch[2].out(now) as u8) << 5
            }
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        let now = self.now_tick();
        self.update_irq(now);
        match offset {
            0..=2 => {
                let c = &mut self.ch[offset as usize];
                c.settle(now);
                c.write_data(v, now);
            }
            CONTROL => {
                let sel = (v >> 6) as usize;
                if sel == 3 {
                    // Read-back: bit 5 = !COUNT, bit 4 = !STATUS, bits 1–3 counters.
                    for i in 0..3 {
                        if v & (2 << i) == 0 {
                            continue;
                        }
                        let c = &mut self.ch[i];
                        c.settle(now);
                        if v & 0x10 == 0 && c.status_latch.is_none() {
                            c.status_latch = Some(c.status(now));
                        }
                        if v & 0x20 == 0 {
                            c.latch_count(now);
                        }
                    }
                } else if v & 0x30 == 0 {
                    let c = &mut self.ch[sel];
                    c.settle(now);
                    c.latch_count(now);
                } else {
                    self.ch[sel].write_control(v);
                }
            }
            PORT_B => {
                self.port_b = v & 0x0f;
                self.ch[2].set_gate(v & 1 != 0, now);
            }
            _ => {}
        }
        self.update_irq(now);
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for Pit8254 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pit8254").field(&self.save()).finish()
    }
}

impl PortIoDevice for Pit8254 {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        read_bytewise(offset, size, |o| self.read_byte(o))
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        write_bytewise(offset, size, value, |o, b| self.write_byte(o, b))
    }
}

impl Timed for Pit8254 {
    fn advance_to(&mut self, now_ns: u64) {
        if now_ns <= self.now_ns {
            return;
        }
        self.now_ns = now_ns;
        let now = self.now_tick();
        self.update_irq(now);
    }

    fn next_deadline(&self) -> Option<u64> {
        self.ch[0].next_rising(self.irq_tick).map(|t| ticks_to_ns(t, PIT_HZ))
    }
}

impl Snapshot for Pit8254 {
    type State = State;
    fn save(&self) -> State {
        State {
            channels: self.ch.clone(),
            port_b: self.port_b,
            now_ns: self.now_ns,
            irq_tick: self.irq_tick,
            irq_level: self.irq_level,
        }
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        let now = ns_to_ticks(s.now_ns, PIT_HZ);
        for (i, c) in s.channels.iter().enumerate() {
            c.validate(i, now)?;
        }
        check("pit8254", s.irq_tick <= now, || "IRQ0 delivered past the present".into())?;
        check("pit8254", s.port_b < 0x10, || {
            format!("port B {:#x} has read-only bits set", s.port_b)
        })?;
        check("pit8254", s.channels[2].gate == (s.port_b & 1 != 0), || {
            "gate 2 disagrees with port B bit 0".into()
        })?;
        self.ch = s.channels.clone();
        self.port_b = s.port_b;
        self.now_ns = s.now_ns;
        self.irq_tick = s.irq_tick;
        self.irq_level = s.irq_level;
        self.irq0.set_level(self.irq_level);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
