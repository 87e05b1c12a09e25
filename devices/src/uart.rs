//! National Semiconductor PC16550D UART (the PC's COM ports), with 16-byte
//! FIFOs.
//!
//! Follows the PC16550D datasheet: RBR/THR and the divisor latch behind
//! LCR.DLAB, IER, IIR (priorities: line status > received data / character
//! timeout > THR empty > modem status; FIFO-enabled bits 6–7), FCR (enable,
//! clear, receiver trigger level 1/4/8/14), LCR, MCR (DTR, RTS, OUT1, OUT2,
//! loopback), LSR (DR, OE, THRE, TEMT), MSR with delta bits and trailing-edge
//! RI, SCR. The character timeout fires when the receive FIFO holds data and
//! nothing was received or read for four character times (computed from the
//! divisor and the LCR frame format at 1.8432 MHz, on the virtual clock).
//! The interrupt output is gated by MCR.OUT2 and is inactive in loopback, as
//! the PC/AT wires it.
//!
//! Output: transmitted bytes go straight to the machine's sink (flushed after
//! each byte, so a prompt without a newline is seen at once); a character
//! leaves the THR the instant it is written (no transmit pacing), so THRE and
//! TEMT are set again immediately. Input: the doorway [`Uart16550::receive`]
//! queues host bytes; they enter the receive FIFO (or the RBR without FIFOs)
//! as room becomes, so host input never overruns — flow control the real
//! line does not have. In loopback, transmitted bytes feed the receiver and
//! do overrun, and host bytes wait until loopback ends.
//!
//! Left out: parity, framing and break errors (a host byte stream has none),
//! LSR bit 7 (error in FIFO), the TX FIFO as a visible queue, DMA mode
//! signalling (FCR bit 3), and baud-rate pacing of received bytes.
//!
//! Offset layout: registers 0–7 (COM1 at 0x3F8–0x3FF).

use crate::bus::{read_bytewise, write_bytewise, PortIoDevice};
use crate::irq::IrqLine;
use crate::sink::ByteSink;
use crate::snapshot::{check, Snapshot, StateError};
use crate::time::{Timed, NS_PER_SEC};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

const FIFO_SIZE: usize = 16;
/// Host bytes beyond this are dropped (and counted).
pub const RX_BACKLOG_LIMIT: usize = 64 * 1024;
const UART_CLOCK_HZ: u64 = 1_843_200;

const IER_RDA: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const IER_RLS: u8 = 0x04;
const IER_MS: u8 = 0x08;

const IIR_NONE: u8 = 0x01;
const IIR_MS: u8 = 0x00;
const IIR_THRE: u8 = 0x02;
const IIR_RDA: u8 = 0x04;
const IIR_RLS: u8 = 0x06;
const IIR_TIMEOUT: u8 = 0x0c;
const IIR_FIFO: u8 = 0xc0;

const LCR_DLAB: u8 = 0x80;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;

const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_ERRORS: u8 = 0x1e;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;

const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub divisor: u16,
    pub ier: u8,
    pub lcr: u8,
    pub mcr: u8,
    /// Error bits of the LSR (OE); DR, THRE and TEMT are derived.
    pub lsr_errors: u8,
    /// Delta bits (0–3) of the MSR; the line bits are derived.
    pub msr_deltas: u8,
    pub scr: u8,
    pub fifo_enabled: bool,
    /// 1, 4, 8 or 14.
    pub rx_trigger: u8,
    pub rx_fifo: Vec<u8>,
    pub rx_backlog: Vec<u8>,
    /// THR-empty interrupt pending (cleared by reading IIR or writing THR).
    pub thr_interrupt: bool,
    pub timeout_pending: bool,
    /// Last time a byte entered the receive FIFO or was read from it.
    pub rx_activity_ns: u64,
    pub now_ns: u64,
    /// Modem inputs from the host side (CTS, DSR, RI, DCD in MSR positions).
    pub modem_inputs: u8,
    pub irq_level: bool,
}

pub struct Uart16550 {
    s: State,
    rx: VecDeque<u8>,
    backlog: VecDeque<u8>,
    out: ByteSink,
    irq: Box<dyn IrqLine>,
    dropped_input: u64,
    sink_errors: u64,
}

impl Uart16550 {
    /// A UART after reset, transmitting into `out` and interrupting on `irq`
    /// (COM1: IRQ4). CTS, DSR and DCD are asserted by the host side.
    pub fn new(out: ByteSink, irq: Box<dyn IrqLine>) -> Self {
        Self {
            s: State::power_on(),
            rx: VecDeque::new(),
            backlog: VecDeque::new(),
            out,
            irq,
            dropped_input: 0,
            sink_errors: 0,
        }
    }

    /// The MR (master reset) pin: registers to their reset values, FIFOs
    /// emptied. Host bytes still waiting on the line and the host's modem
    /// lines stay.
    pub fn reset(&mut self) {
        let old = std::mem::replace(&mut self.s, State::power_on());
        self.s.now_ns = old.now_ns;
        self.s.rx_activity_ns = old.now_ns;
        self.s.modem_inputs = old.modem_inputs;
        self.s.irq_level = old.irq_level;
        self.rx.clear();
        self.refill();
        self.update_irq();
    }
}

impl State {
    fn power_on() -> Self {
        State {
            divisor: 12,
            ier: 0,
            lcr: 0x03,
            mcr: 0,
            lsr_errors: 0,
            msr_deltas: 0,
            scr: 0,
            fifo_enabled: false,
            rx_trigger: 1,
            rx_fifo: Vec::new(),
            rx_backlog: Vec::new(),
            thr_interrupt: false,
            timeout_pending: false,
            rx_activity_ns: 0,
            now_ns: 0,
            modem_inputs: MSR_CTS | MSR_DSR | MSR_DCD,
            irq_level: false,
        }
    }
}

impl Uart16550 {
    /// Doorway: bytes from the host side of the line. Bytes beyond
    /// [`RX_BACKLOG_LIMIT`] waiting bytes are dropped (see `dropped_input`).
    pub fn receive(&mut self, bytes: &[u8]) {
        let room = RX_BACKLOG_LIMIT.saturating_sub(self.backlog.len());
        self.backlog.extend(bytes.iter().take(room));
        self.dropped_input += bytes.len().saturating_sub(room) as u64;
        self.refill();
        self.update_irq();
    }

    /// Doorway: the host side's modem lines (CTS, DSR, RI, DCD).
    pub fn set_modem_inputs(&mut self, cts: bool, dsr: bool, ri: bool, dcd: bool) {
        let before = self.msr_lines();
        self.s.modem_inputs = (cts as u8) << 4 | (dsr as u8) << 5 | (ri as u8) << 6 | (dcd as u8) << 7;
        self.note_msr_change(before);
        self.update_irq();
    }

    /// Host bytes waiting to enter the receive FIFO.
    pub fn rx_backlog_len(&self) -> usize {
        self.backlog.len()
    }

    pub fn dropped_input(&self) -> u64 {
        self.dropped_input
    }

    pub fn sink_errors(&self) -> u64 {
        self.sink_errors
    }

    fn rx_capacity(&self) -> usize {
        if self.s.fifo_enabled {
            FIFO_SIZE
        } else {
            1
        }
    }

    /// Move waiting host bytes into the receiver. In loopback the serial
    /// input is disconnected, so they wait on the line.
    fn refill(&mut self) {
        if self.loopback() {
            return;
        }
        let mut moved = false;
        while self.rx.len() < self.rx_capacity() {
            match self.backlog.pop_front() {
                Some(b) => {
                    self.rx.push_back(b);
                    moved = true;
                }
                None => break,
            }
        }
        if moved {
            self.s.rx_activity_ns = self.s.now_ns;
            self.s.timeout_pending = false;
        }
    }

    /// Bits per character ×2 (1.5 stop bits exist), from the LCR.
    fn half_bits_per_char(&self) -> u64 {
        let data = 5 + (self.s.lcr & 3) as u64;
        let parity = (self.s.lcr >> 3 & 1) as u64;
        let stop2 = match (self.s.lcr & 4 != 0, data) {
            (false, _) => 2,
            (true, 5) => 3,
            (true, _) => 4,
        };
        2 * (1 + data + parity) + stop2
    }

    /// One character time in nanoseconds at the current divisor and format.
    pub fn char_time_ns(&self) -> u64 {
        let divisor = if self.s.divisor == 0 { 0x1_0000 } else { self.s.divisor as u64 };
        (self.half_bits_per_char() * divisor * 16 * NS_PER_SEC).div_ceil(2 * UART_CLOCK_HZ)
    }

    fn timeout_deadline(&self) -> Option<u64> {
        (self.s.fifo_enabled && !self.rx.is_empty() && !self.s.timeout_pending)
            .then(|| self.s.rx_activity_ns.saturating_add(4 * self.char_time_ns()))
    }

    fn loopback(&self) -> bool {
        self.s.mcr & MCR_LOOP != 0
    }

    fn msr_lines(&self) -> u8 {
        if self.loopback() {
            // DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
            let m = self.s.mcr;
            (m & 2) << 3 | (m & 1) << 5 | (m & 4) << 4 | (m & 8) << 4
        } else {
            self.s.modem_inputs
        }
    }

    fn note_msr_change(&mut self, before: u8) {
        let after = self.msr_lines();
        let changed = before ^ after;
        // DCTS, DDSR, DDCD on any change; TERI on RI's trailing edge.
        self.s.msr_deltas |= (changed & (MSR_CTS | MSR_DSR)) >> 4 | (changed & MSR_DCD) >> 4;
        if before & MSR_RI != 0 && after & MSR_RI == 0 {
            self.s.msr_deltas |= 0x04;
        }
    }

    fn lsr(&self) -> u8 {
        self.s.lsr_errors | if self.rx.is_empty() { 0 } else { LSR_DR } | LSR_THRE | LSR_TEMT
    }

    fn interrupt_id(&self) -> u8 {
        let ier = self.s.ier;
        if ier & IER_RLS != 0 && self.s.lsr_errors & LSR_ERRORS != 0 {
            return IIR_RLS;
        }
        if ier & IER_RDA != 0 {
            if self.s.fifo_enabled {
                if self.rx.len() >= self.s.rx_trigger as usize {
                    return IIR_RDA;
                }
                if self.s.timeout_pending {
                    return IIR_TIMEOUT;
                }
            } else if !self.rx.is_empty() {
                return IIR_RDA;
            }
        }
        if ier & IER_THRE != 0 && self.s.thr_interrupt {
            return IIR_THRE;
        }
        if ier & IER_MS != 0 && self.s.msr_deltas & 0x0f != 0 {
            return IIR_MS;
        }
        IIR_NONE
    }

    fn update_irq(&mut self) {
        let level = self.interrupt_id() != IIR_NONE && self.s.mcr & MCR_OUT2 != 0 && !self.loopback();
        if level != self.s.irq_level {
            self.s.irq_level = level;
            self.irq.set_level(level);
        }
    }

    fn transmit(&mut self, byte: u8) {
        let byte = byte & (0xffu16 >> (3 - (self.s.lcr & 3))) as u8;
        if self.loopback() {
            if self.rx.len() < self.rx_capacity() {
                self.rx.push_back(byte);
                self.s.rx_activity_ns = self.s.now_ns;
                self.s.timeout_pending = false;
            } else {
                // The shift register overwrites; the FIFO keeps its bytes.
                self.s.lsr_errors |= LSR_OE;
                if !self.s.fifo_enabled {
                    if let Some(b) = self.rx.back_mut() {
                        *b = byte;
                    }
                }
            }
        } else if self.out.write_all(&[byte]).and_then(|_| self.out.flush()).is_err() {
            // Flushed at once: a byte on a real line has left the machine, and
            // a sink such as `std::io::stdout()` is line-buffered, which would
            // hold back a shell prompt (it has no newline) until the next line.
            self.sink_errors += 1;
        }
        self.s.thr_interrupt = true;
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        let dlab = self.s.lcr & LCR_DLAB != 0;
        let v = match offset {
            0 if dlab => self.s.divisor as u8,
            0 => {
                let b = self.rx.pop_front().unwrap_or(0);
                self.s.rx_activity_ns = self.s.now_ns;
                self.s.timeout_pending = false;
                self.refill();
                b
            }
            1 if dlab => (self.s.divisor >> 8) as u8,
            1 => self.s.ier,
            2 => {
                let id = self.interrupt_id();
                if id == IIR_THRE {
                    self.s.thr_interrupt = false;
                }
                id | if self.s.fifo_enabled { IIR_FIFO } else { 0 }
            }
            3 => self.s.lcr,
            4 => self.s.mcr,
            5 => {
                let v = self.lsr();
                self.s.lsr_errors = 0;
                v
            }
            6 => {
                let v = self.msr_lines() | self.s.msr_deltas;
                self.s.msr_deltas = 0;
                v
            }
            7 => self.s.scr,
            _ => 0xff,
        };
        self.update_irq();
        v
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        let dlab = self.s.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.s.divisor = self.s.divisor & 0xff00 | v as u16,
            0 => self.transmit(v),
            1 if dlab => self.s.divisor = self.s.divisor & 0x00ff | (v as u16) << 8,
            1 => {
                let v = v & 0x0f;
                // Enabling the THRE interrupt with the THR empty raises it.
                if v & IER_THRE != 0 && self.s.ier & IER_THRE == 0 {
                    self.s.thr_interrupt = true;
                }
                self.s.ier = v;
            }
            2 => {
                let enable = v & 1 != 0;
                if enable != self.s.fifo_enabled {
                    self.rx.clear();
                    self.s.fifo_enabled = enable;
                }
                if enable && v & 2 != 0 {
                    self.rx.clear();
                }
                self.s.rx_trigger = [1, 4, 8, 14][(v >> 6) as usize];
                self.s.timeout_pending = false;
                self.refill();
            }
            3 => self.s.lcr = v,
            4 => {
                let before = self.msr_lines();
                self.s.mcr = v & 0x1f;
                self.note_msr_change(before);
                self.refill();
            }
            // LSR and MSR writes are factory-test only.
            5 | 6 => {}
            7 => self.s.scr = v,
            _ => {}
        }
        self.update_irq();
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for Uart16550 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Uart16550").field(&self.save()).finish()
    }
}

impl PortIoDevice for Uart16550 {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        read_bytewise(offset, size, |o| self.read_byte(o))
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        write_bytewise(offset, size, value, |o, b| self.write_byte(o, b))
    }
}

impl Timed for Uart16550 {
    fn advance_to(&mut self, now_ns: u64) {
        if now_ns <= self.s.now_ns {
            return;
        }
        self.s.now_ns = now_ns;
        if self.timeout_deadline().is_some_and(|d| d <= now_ns) {
            self.s.timeout_pending = true;
        }
        self.update_irq();
    }

    fn next_deadline(&self) -> Option<u64> {
        if self.s.ier & IER_RDA == 0 {
            return None;
        }
        self.timeout_deadline()
    }
}

impl Snapshot for Uart16550 {
    type State = State;
    fn save(&self) -> State {
        let mut s = self.s.clone();
        s.rx_fifo = self.rx.iter().copied().collect();
        s.rx_backlog = self.backlog.iter().copied().collect();
        s
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        let cap = if s.fifo_enabled { FIFO_SIZE } else { 1 };
        check("uart16550", s.rx_fifo.len() <= cap, || {
            format!("{} bytes in a {cap}-byte receiver", s.rx_fifo.len())
        })?;
        check("uart16550", s.rx_backlog.len() <= RX_BACKLOG_LIMIT, || {
            "receive backlog over its limit".into()
        })?;
        check("uart16550", [1, 4, 8, 14].contains(&s.rx_trigger), || {
            format!("trigger level {}", s.rx_trigger)
        })?;
        check("uart16550", s.ier <= 0x0f && s.mcr <= 0x1f && s.msr_deltas <= 0x0f, || {
            "reserved IER/MCR/MSR bits set".into()
        })?;
        check("uart16550", s.lsr_errors & !LSR_ERRORS == 0, || {
            format!("LSR error bits {:#x}", s.lsr_errors)
        })?;
        check("uart16550", s.modem_inputs & 0x0f == 0, || {
            "modem inputs outside MSR bits 4-7".into()
        })?;
        check("uart16550", s.rx_activity_ns <= s.now_ns, || {
            "receive activity in the future".into()
        })?;
        self.s = s.clone();
        self.rx = s.rx_fifo.iter().copied().collect();
        self.backlog = s.rx_backlog.iter().copied().collect();
        self.s.rx_fifo.clear();
        self.s.rx_backlog.clear();
        self.irq.set_level(self.s.irq_level);
        self.update_irq();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
