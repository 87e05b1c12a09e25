//! High Precision Event Timer (IA-PC HPET specification 1.0a): one 64-bit
//! main counter at 100 MHz (period 10,000,000 fs) and three comparators,
//! in a 1 KiB MMIO window (offsets of section 2.3.1; every register is 64
//! bits and may be accessed as two 32-bit halves).
//!
//! - Timer 0: 64-bit, periodic-capable, 32-bit mode available
//!   (Tn_32MODE_CNF). Timers 1 and 2: 32-bit, one-shot (as on ICH9).
//! - General configuration: ENABLE_CNF, LEG_RT_CNF (legacy replacement:
//!   timer 0 drives the legacy IRQ0 output, i.e. 8259 IRQ0 / IOAPIC input
//!   2, timer 1 the legacy IRQ8 output).
//! - Interrupt status: level-triggered timers set their bit when they fire
//!   (whether or not their interrupt is enabled, 2.3.6) and hold their line
//!   asserted until software writes 1 to the bit; edge-triggered timers
//!   pulse their line and leave the bit clear.
//! - Without legacy replacement a timer drives the output named by
//!   Tn_INT_ROUTE_CNF; the routing capability is IOAPIC inputs 20–23.
//! - Periodic mode: on each match the comparator advances by the last
//!   value written (Tn_VAL_SET_CNF lets software set the comparator itself).
//!   Periods missed because the machine advanced late collapse into one
//!   interrupt, and the comparator lands on the first period after now.
//!
//! Time: the counter is `ns * 100 MHz / 1e9` ticks of virtual time since it
//! was last enabled, plus the value it held then, so it never drifts.
//!
//! Left out: FSB (MSI) delivery (Tn_FSB_INT_DEL_CAP = 0), 32-bit main
//! counter builds (COUNT_SIZE_CAP = 1), writes to the main counter while it
//! runs (the spec asks software to halt it first; such writes are ignored).

use crate::bus::MmioDevice;
use crate::irq::IrqLine;
use crate::snapshot::{check, Snapshot, StateError};
use crate::time::{ns_to_ticks, ticks_to_ns, Timed};
use serde::{Deserialize, Serialize};

pub const HPET_HZ: u64 = 100_000_000;
/// COUNTER_CLK_PERIOD in femtoseconds.
pub const HPET_PERIOD_FS: u64 = 10_000_000;
pub const HPET_MMIO_SIZE: u64 = 0x400;
pub const HPET_TIMERS: usize = 3;
/// Low half of GCAP_ID: vendor 0x8086, LEG_RT_CAP, COUNT_SIZE_CAP,
/// NUM_TIM_CAP = 2, REV_ID = 1 (the ACPI HPET table repeats it).
pub const HPET_CAP_LOW: u64 = 0x8086_a201;
/// IOAPIC inputs a timer may be routed to (Tn_INT_ROUTE_CAP).
pub const HPET_ROUTE_CAP: u32 = 0x00f0_0000;

pub const GCAP_ID: u64 = 0x000;
pub const GEN_CONF: u64 = 0x010;
pub const GINTR_STA: u64 = 0x020;
pub const MAIN_CNT: u64 = 0x0f0;
/// Timer n's registers start at `TIMER0 + 0x20 * n`: config at +0,
/// comparator at +8, FSB route at +0x10.
pub const TIMER0: u64 = 0x100;

const ENABLE_CNF: u64 = 1;
const LEG_RT_CNF: u64 = 2;
const INT_TYPE_LEVEL: u64 = 1 << 1;
const INT_ENB: u64 = 1 << 2;
const TYPE_PERIODIC: u64 = 1 << 3;
const PER_INT_CAP: u64 = 1 << 4;
const SIZE_CAP: u64 = 1 << 5;
const VAL_SET: u64 = 1 << 6;
const MODE32: u64 = 1 << 8;

/// Writable configuration bits per timer.
const fn writable(n: usize) -> u64 {
    if n == 0 {
        0x3f4e
    } else {
        0x3e46
    }
}
const fn caps(n: usize) -> u64 {
    (if n == 0 { PER_INT_CAP | SIZE_CAP } else { 0 }) | (HPET_ROUTE_CAP as u64) << 32
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerState {
    /// The writable bits of Tn_CONF.
    pub config: u64,
    pub cmp: u64,
    pub period: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub config: u64,
    pub isr: u64,
    /// The counter held this value at tick `base_tick` (while enabled) or
    /// holds it (while halted).
    pub counter_base: u64,
    pub base_tick: u64,
    /// Matches at counter values up to this one have been handled.
    pub processed: u64,
    pub timers: [TimerState; HPET_TIMERS],
    pub now_ns: u64,
}

/// Where a timer's interrupt goes: a routed IOAPIC input or a legacy output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Route(usize),
    Legacy(usize),
}

pub struct Hpet {
    s: State,
    route: Vec<Box<dyn IrqLine>>,
    legacy: [Box<dyn IrqLine>; 2],
    /// Level each timer currently drives, and on which output.
    driven: [Option<Output>; HPET_TIMERS],
}

impl Hpet {
    /// `route[i]` is the line for Tn_INT_ROUTE_CNF = i (32 entries; the
    /// board connects those in [`HPET_ROUTE_CAP`]); `legacy_irq0` and
    /// `legacy_irq8` are the legacy replacement outputs.
    pub fn new(route: Vec<Box<dyn IrqLine>>, legacy_irq0: Box<dyn IrqLine>, legacy_irq8: Box<dyn IrqLine>) -> Hpet {
        assert_eq!(route.len(), 32, "one line per Tn_INT_ROUTE_CNF value");
        let t = TimerState {
            config: 0,
            cmp: u64::MAX,
            period: 0,
        };
        Hpet {
            s: State {
                config: 0,
                isr: 0,
                counter_base: 0,
                base_tick: 0,
                processed: 0,
                timers: [
                    t.clone(),
                    TimerState {
                        cmp: 0xffff_ffff,
                        ..t.clone()
                    },
                    TimerState { cmp: 0xffff_ffff, ..t },
                ],
                now_ns: 0,
            },
            route,
            legacy: [legacy_irq0, legacy_irq8],
            driven: [None; HPET_TIMERS],
        }
    }

    fn enabled(&self) -> bool {
        self.s.config & ENABLE_CNF != 0
    }

    /// LEG_RT_CNF: the board takes IRQ0/IRQ8 from the HPET instead of the
    /// PIT and RTC while this is set.
    pub fn legacy_replacement(&self) -> bool {
        self.s.config & LEG_RT_CNF != 0
    }

    fn ticks(&self) -> u64 {
        ns_to_ticks(self.s.now_ns, HPET_HZ)
    }

    /// The main counter now.
    pub fn counter(&self) -> u64 {
        if self.enabled() {
            self.s.counter_base.wrapping_add(self.ticks() - self.s.base_tick)
        } else {
            self.s.counter_base
        }
    }

    fn is_32(&self, n: usize) -> bool {
        caps(n) & SIZE_CAP == 0 || self.s.timers[n].config & MODE32 != 0
    }

    fn periodic(&self, n: usize) -> bool {
        self.s.timers[n].config & TYPE_PERIODIC != 0
    }

    /// The counter value of timer n's next match after `from`.
    fn next_match(&self, n: usize, from: u64) -> Option<u64> {
        let cmp = self.s.timers[n].cmp;
        let d = if self.is_32(n) {
            match (cmp as u32).wrapping_sub(from as u32) {
                0 => 1 << 32,
                d => d as u64,
            }
        } else {
            cmp.wrapping_sub(from)
        };
        if d == 0 {
            return None;
        }
        from.checked_add(d)
    }

    fn output(&self, n: usize) -> Output {
        if self.legacy_replacement() && n < 2 {
            Output::Legacy(n)
        } else {
            Output::Route(((self.s.timers[n].config >> 9) & 0x1f) as usize)
        }
    }

    fn line(&mut self, o: Output) -> &mut dyn IrqLine {
        match o {
            Output::Route(i) => self.route[i].as_mut(),
            Output::Legacy(i) => self.legacy[i].as_mut(),
        }
    }

    /// Drive every level-mode output to its current state.
    fn update_lines(&mut self) {
        for n in 0..HPET_TIMERS {
            let c = self.s.timers[n].config;
            let want =
                (self.enabled() && c & INT_ENB != 0 && c & INT_TYPE_LEVEL != 0 && self.s.isr & (1 << n) != 0).then(|| self.output(n));
            if want != self.driven[n] {
                if let Some(o) = self.driven[n] {
                    self.line(o).set_level(false);
                }
                if let Some(o) = want {
                    self.line(o).set_level(true);
                }
                self.driven[n] = want;
            }
        }
    }

    fn fire(&mut self, n: usize) {
        let c = self.s.timers[n].config;
        if c & INT_TYPE_LEVEL != 0 {
            self.s.isr |= 1 << n;
        } else if c & INT_ENB != 0 {
            let o = self.output(n);
            self.line(o).pulse();
        }
    }

    /// Handle matches at counter values in (processed, counter now].
    fn process(&mut self) {
        if !self.enabled() {
            return;
        }
        let to = self.counter();
        let from = self.s.processed;
        for n in 0..HPET_TIMERS {
            let Some(v) = self.next_match(n, from).filter(|&v| v <= to) else {
                continue;
            };
            self.fire(n);
            let t = &self.s.timers[n];
            if self.periodic(n) && t.period != 0 {
                let p = t.period;
                let next = v + ((to - v) / p + 1) * p;
                let mask = if self.is_32(n) { 0xffff_ffff } else { u64::MAX };
                self.s.timers[n].cmp = next & mask;
            }
        }
        self.s.processed = to;
        self.update_lines();
    }

    fn timer_reg(offset: u64) -> Option<(usize, u64)> {
        let rel = offset.checked_sub(TIMER0)?;
        let n = (rel / 0x20) as usize;
        (n < HPET_TIMERS).then_some((n, rel % 0x20))
    }

    fn read_reg(&self, r: u64) -> u64 {
        match r {
            GCAP_ID => HPET_PERIOD_FS << 32 | HPET_CAP_LOW,
            GEN_CONF => self.s.config,
            GINTR_STA => self.s.isr,
            MAIN_CNT => self.counter(),
            _ => match Self::timer_reg(r) {
                Some((n, 0)) => self.s.timers[n].config | caps(n),
                Some((n, 8)) if self.is_32(n) => self.s.timers[n].cmp & 0xffff_ffff,
                Some((n, 8)) => self.s.timers[n].cmp,
                _ => 0,
            },
        }
    }

    /// Write `val` (already shifted) under byte-lane `mask`.
    fn write_reg(&mut self, r: u64, val: u64, mask: u64) {
        let merge = |old: u64| (old & !mask) | (val & mask);
        match r {
            GEN_CONF => {
                let was = self.enabled();
                self.s.config = merge(self.s.config) & (ENABLE_CNF | LEG_RT_CNF);
                match (was, self.enabled()) {
                    (false, true) => {
                        self.s.base_tick = self.ticks();
                        self.s.processed = self.s.counter_base;
                    }
                    (true, false) => {
                        // Compute as of the moment it stops, while still enabled.
                        self.s.config |= ENABLE_CNF;
                        self.s.counter_base = self.counter();
                        self.s.config &= !ENABLE_CNF;
                        self.s.processed = self.s.counter_base;
                    }
                    _ => {}
                }
            }
            GINTR_STA => self.s.isr &= !(val & mask & 7),
            MAIN_CNT if !self.enabled() => {
                self.s.counter_base = merge(self.s.counter_base);
                self.s.processed = self.s.counter_base;
            }
            _ => match Self::timer_reg(r) {
                Some((n, 0)) => {
                    let c = merge(self.s.timers[n].config) & writable(n);
                    if c & INT_TYPE_LEVEL == 0 {
                        self.s.isr &= !(1 << n);
                    }
                    self.s.timers[n].config = c;
                    if self.is_32(n) {
                        self.s.timers[n].cmp &= 0xffff_ffff;
                        self.s.timers[n].period &= 0xffff_ffff;
                    }
                }
                Some((n, 8)) => {
                    let m = if self.is_32(n) { mask & 0xffff_ffff } else { mask };
                    let periodic = self.periodic(n);
                    let t = &mut self.s.timers[n];
                    if !periodic || t.config & VAL_SET != 0 {
                        t.cmp = (t.cmp & !m) | (val & m);
                    }
                    if periodic {
                        t.period = (t.period & !m) | (val & m);
                    }
                    t.config &= !VAL_SET;
                }
                _ => {}
            },
        }
        self.update_lines();
    }
}

fn ones(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size as u32)) - 1
    }
}

impl MmioDevice for Hpet {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let shift = 8 * (offset & 7);
        (self.read_reg(offset & !7) >> shift) & ones(size)
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        let shift = 8 * (offset & 7);
        let mask = ones(size) << shift;
        self.write_reg(offset & !7, value << shift, mask);
    }
}

impl Timed for Hpet {
    fn advance_to(&mut self, now_ns: u64) {
        if now_ns <= self.s.now_ns {
            return;
        }
        self.s.now_ns = now_ns;
        self.process();
    }

    fn next_deadline(&self) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        (0..HPET_TIMERS)
            .filter(|&n| self.s.timers[n].config & (INT_ENB | INT_TYPE_LEVEL) != 0)
            .filter_map(|n| {
                let v = self.next_match(n, self.s.processed)?;
                let tick = self.s.base_tick.checked_add(v - self.s.counter_base)?;
                Some(ticks_to_ns(tick, HPET_HZ))
            })
            .min()
    }
}

impl Snapshot for Hpet {
    type State = State;
    fn save(&self) -> State {
        self.s.clone()
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        const D: &str = "hpet";
        check(D, s.config & !(ENABLE_CNF | LEG_RT_CNF) == 0, || {
            format!("GEN_CONF {:#x}", s.config)
        })?;
        check(D, s.isr & !7 == 0, || format!("GINTR_STA {:#x}", s.isr))?;
        for (n, t) in s.timers.iter().enumerate() {
            check(D, t.config & !writable(n) == 0, || format!("timer {n} config {:#x}", t.config))?;
        }
        let enabled = s.config & ENABLE_CNF != 0;
        check(D, !enabled || s.base_tick <= ns_to_ticks(s.now_ns, HPET_HZ), || {
            "counter started in the future".into()
        })?;
        check(D, s.processed >= s.counter_base, || "processed before the counter base".into())?;
        for n in 0..HPET_TIMERS {
            if let Some(o) = self.driven[n].take() {
                self.line(o).set_level(false);
            }
        }
        self.s = s.clone();
        self.update_lines();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
