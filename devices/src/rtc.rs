//! Motorola MC146818A real-time clock with 128 bytes of CMOS RAM, as on the
//! PC/AT: index port 0x70 (bit 7 is the NMI mask, kept here), data port 0x71,
//! IRQ8.
//!
//! Follows the MC146818A datasheet: time, calendar and alarm registers in
//! BCD or binary (register B DM) and 12- or 24-hour format (B 24/12);
//! register A divider control (DV = 11x holds the divider in reset; the
//! first update follows 500 ms after it is released) and periodic rate
//! select; register B SET (stops updates; setting it clears UIE), PIE, AIE,
//! UIE; register C flags PF/AF/UF/IRQF, cleared by reading; register D VRT;
//! the update-in-progress bit (high for the 244 µs before each update);
//! alarm "don't care" values (0xC0–0xFF). The century lives at 0x32, as the
//! IBM PC/AT BIOS defines.
//!
//! Time: the machine gives the RTC a start time (seconds since 1970-01-01
//! in whatever zone the guest expects) through the doorway [`Rtc::set_time`];
//! after that the clock advances only on the machine's virtual clock. The
//! calendar is proleptic Gregorian.
//!
//! Left out: daylight-saving switching (B DSE is stored but ignored), the
//! square-wave output pin (B SQWE), time bases other than 32.768 kHz (DV =
//! 000/001 run as 010), and the day-of-week register running independently
//! of the date (it is derived from the date; writes to it are ignored).
//! Impossible register values written by the guest (month 0x13, BCD digits
//! above 9) are clamped when the clock is restarted from them.
//!
//! Offset layout: 0 index (0x70), 1 data (0x71).

use crate::bus::{read_bytewise, write_bytewise, PortIoDevice};
use crate::irq::IrqLine;
use crate::snapshot::{check, Snapshot, StateError};
use crate::time::{Timed, NS_PER_SEC};
use serde::{Deserialize, Serialize};

pub const INDEX: u16 = 0;
pub const DATA: u16 = 1;

const REG_SECONDS: usize = 0x00;
const REG_SECONDS_ALARM: usize = 0x01;
const REG_MINUTES: usize = 0x02;
const REG_MINUTES_ALARM: usize = 0x03;
const REG_HOURS: usize = 0x04;
const REG_HOURS_ALARM: usize = 0x05;
const REG_DAY_OF_WEEK: usize = 0x06;
const REG_DAY: usize = 0x07;
const REG_MONTH: usize = 0x08;
const REG_YEAR: usize = 0x09;
const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
const REG_CENTURY: usize = 0x32;

const A_UIP: u8 = 0x80;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;

const RTC_HZ: i128 = 32_768;
/// UIP is set this long before each update (datasheet: tBUC = 244 µs).
const UIP_NS: i64 = 244_000;
const SEC: i64 = NS_PER_SEC as i64;
/// Bound on the clock's seconds, keeping all arithmetic far from overflow.
const MAX_SECS: i64 = 1 << 40;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// All 128 bytes; the time registers hold the time as of the last sync.
    pub cmos: Vec<u8>,
    pub index: u8,
    pub nmi_masked: bool,
    /// RTC time (seconds since 1970) at `base_ns`, a second boundary.
    pub base_secs: i64,
    pub base_ns: i64,
    pub now_ns: u64,
    /// Events up to this instant have been applied to register C.
    pub processed_ns: u64,
    pub irq_level: bool,
}

pub struct Rtc {
    s: State,
    irq: Box<dyn IrqLine>,
}

/// Broken-down calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 1 = Sunday … 7 = Saturday.
    pub weekday: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    pub fn from_secs(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + (month <= 2) as i64;
        DateTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            weekday: (days + 4).rem_euclid(7) as u32 + 1,
        }
    }

    pub fn to_secs(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400 + (self.hour * 3600 + self.minute * 60 + self.second) as i64
    }
}

impl Rtc {
    /// An RTC whose clock reads `start_secs` (seconds since 1970) at virtual
    /// time 0, in 24-hour BCD mode with the divider running and the 1024 Hz
    /// periodic rate selected, as a BIOS leaves it.
    pub fn new(start_secs: i64, irq: Box<dyn IrqLine>) -> Self {
        let mut cmos = vec![0u8; 128];
        cmos[REG_A] = 0x26;
        cmos[REG_B] = B_24H;
        cmos[REG_D] = 0x80;
        let mut rtc = Rtc {
            s: State {
                cmos,
                index: 0,
                nmi_masked: false,
                base_secs: start_secs.clamp(-MAX_SECS, MAX_SECS),
                base_ns: 0,
                now_ns: 0,
                processed_ns: 0,
                irq_level: false,
            },
            irq,
        };
        rtc.sync_time_regs();
        rtc
    }

    /// The RESET pin (machine reset): clears PIE, AIE, UIE, SQWE and the
    /// register C flags. Time, calendar and NVRAM are battery-backed and
    /// stay.
    pub fn reset(&mut self) {
        self.s.cmos[REG_B] &= !0x78;
        self.s.cmos[REG_C] = 0;
        self.update_irq();
    }

    /// Doorway: set the clock to `secs` (seconds since 1970) now, keeping
    /// the divider phase. Clamped to ±2^40 s (±35,000 years).
    pub fn set_time(&mut self, secs: i64) {
        self.s.base_secs = secs.clamp(-MAX_SECS, MAX_SECS);
        self.s.base_ns = self.s.now_ns as i64;
        self.sync_time_regs();
    }

    /// Whether port 0x70 bit 7 currently masks NMI.
    pub fn nmi_masked(&self) -> bool {
        self.s.nmi_masked
    }

    /// Raw CMOS byte (for the machine and firmware setup).
    pub fn nvram(&self, index: u8) -> u8 {
        self.s.cmos[index as usize & 0x7f]
    }

    /// Set a CMOS byte outside the clock registers (0x0E–0x7F) — boot
    /// order, equipment bytes and the like.
    pub fn set_nvram(&mut self, index: u8, value: u8) {
        let i = index as usize & 0x7f;
        if i > REG_D && i != REG_CENTURY {
            self.s.cmos[i] = value;
        }
    }

    /// Record the RAM size where BIOSes look for it: 0x15–0x16 base memory
    /// (640 KiB), 0x17–0x18 and 0x30–0x31 KiB above 1 MiB (capped at
    /// 0xFFFF), 0x34–0x35 64 KiB blocks above 16 MiB below 4 GiB (capped),
    /// 0x5B–0x5D 64 KiB blocks above 4 GiB.
    pub fn set_memory_size(&mut self, below_4g: u64, above_4g: u64) {
        let put16 = |c: &mut [u8], i: usize, v: u64| {
            let v = v.min(0xffff);
            c[i] = v as u8;
            c[i + 1] = (v >> 8) as u8;
        };
        let c = &mut self.s.cmos;
        put16(c, 0x15, 640);
        let ext_kib = below_4g.saturating_sub(1 << 20) / 1024;
        put16(c, 0x17, ext_kib);
        put16(c, 0x30, ext_kib);
        put16(c, 0x34, below_4g.saturating_sub(16 << 20) / 65536);
        let high = (above_4g / 65536).min(0xff_ffff);
        c[0x5b] = high as u8;
        c[0x5c] = (high >> 8) as u8;
        c[0x5d] = (high >> 16) as u8;
    }

    fn reg_b(&self) -> u8 {
        self.s.cmos[REG_B]
    }

    fn divider_running(&self) -> bool {
        self.s.cmos[REG_A] & 0x60 != 0x60
    }

    fn updating(&self) -> bool {
        self.divider_running() && self.reg_b() & B_SET == 0
    }

    fn secs_at(&self, t: u64) -> i64 {
        self.s.base_secs + (t as i64 - self.s.base_ns).div_euclid(SEC)
    }

    /// 32.768 kHz divider ticks since the base second boundary.
    fn divider_ticks(&self, t: u64) -> i128 {
        ((t as i128 - self.s.base_ns as i128) * RTC_HZ).div_euclid(NS_PER_SEC as i128)
    }

    fn periodic_ticks(&self) -> Option<i128> {
        match self.s.cmos[REG_A] & 0x0f {
            0 => None,
            rs @ 1..=2 => Some(1 << (rs + 6)),
            rs => Some(1 << (rs - 1)),
        }
    }

    fn encode(&self, v: u32) -> u8 {
        if self.reg_b() & B_BINARY != 0 {
            v as u8
        } else {
            (((v / 10) << 4) | (v % 10)) as u8
        }
    }

    fn decode(&self, b: u8) -> u32 {
        if self.reg_b() & B_BINARY != 0 {
            b as u32
        } else {
            (b >> 4).min(9) as u32 * 10 + (b & 0xf).min(9) as u32
        }
    }

    fn encode_hour(&self, h: u32) -> u8 {
        if self.reg_b() & B_24H != 0 {
            self.encode(h)
        } else {
            let h12 = if h.is_multiple_of(12) { 12 } else { h % 12 };
            self.encode(h12) | if h >= 12 { 0x80 } else { 0 }
        }
    }

    fn decode_hour(&self, b: u8) -> u32 {
        if self.reg_b() & B_24H != 0 {
            self.decode(b).min(23)
        } else {
            let h = self.decode(b & 0x7f).clamp(1, 12) % 12;
            h + if b & 0x80 != 0 { 12 } else { 0 }
        }
    }

    /// Write the current time into the time registers.
    fn sync_time_regs(&mut self) {
        let secs = self.secs_at(self.s.now_ns);
        let t = DateTime::from_secs(secs);
        let vals = [
            (REG_SECONDS, self.encode(t.second)),
            (REG_MINUTES, self.encode(t.minute)),
            (REG_HOURS, self.encode_hour(t.hour)),
            (REG_DAY_OF_WEEK, self.encode(t.weekday)),
            (REG_DAY, self.encode(t.day)),
            (REG_MONTH, self.encode(t.month)),
            (REG_YEAR, self.encode(t.year.rem_euclid(100) as u32)),
            (REG_CENTURY, self.encode(t.year.div_euclid(100).clamp(0, 99) as u32)),
        ];
        for (i, v) in vals {
            self.s.cmos[i] = v;
        }
    }

    /// The time the registers hold.
    fn regs_time(&self) -> i64 {
        let c = &self.s.cmos;
        let t = DateTime {
            year: self.decode(c[REG_CENTURY]) as i64 * 100 + self.decode(c[REG_YEAR]) as i64,
            month: self.decode(c[REG_MONTH]).clamp(1, 12),
            day: self.decode(c[REG_DAY]).clamp(1, 31),
            hour: self.decode_hour(c[REG_HOURS]),
            minute: self.decode(c[REG_MINUTES]).min(59),
            second: self.decode(c[REG_SECONDS]).min(59),
            weekday: 1,
        };
        t.to_secs()
    }

    /// Restart the clock from the registers, keeping the divider phase.
    fn rebase_from_regs(&mut self) {
        let now = self.s.now_ns as i64;
        self.s.base_ns += (now - self.s.base_ns).div_euclid(SEC) * SEC;
        self.s.base_secs = self.regs_time();
    }

    fn alarm_matches(&self, secs: i64) -> bool {
        let t = DateTime::from_secs(secs);
        let c = &self.s.cmos;
        let m = |alarm: u8, now: u8| alarm & 0xc0 == 0xc0 || alarm == now;
        m(c[REG_SECONDS_ALARM], self.encode(t.second))
            && m(c[REG_MINUTES_ALARM], self.encode(t.minute))
            && m(c[REG_HOURS_ALARM], self.encode_hour(t.hour))
    }

    /// Set register C flags for everything that happened in
    /// (processed_ns, now_ns] and drive IRQ8.
    fn process(&mut self) {
        let (from, to) = (self.s.processed_ns, self.s.now_ns);
        if to > from && self.divider_running() {
            let mut flags = 0;
            if let Some(p) = self.periodic_ticks() {
                if self.divider_ticks(to).div_euclid(p) > self.divider_ticks(from).div_euclid(p) {
                    flags |= C_PF;
                }
            }
            if self.updating() {
                let (a, b) = (self.secs_at(from), self.secs_at(to));
                if b > a {
                    flags |= C_UF;
                    // After a day every hour/minute/second has come round.
                    let first = a.max(b - 86_400) + 1;
                    if (first..=b).any(|s| self.alarm_matches(s)) {
                        flags |= C_AF;
                    }
                }
            }
            self.s.cmos[REG_C] |= flags;
        }
        self.s.processed_ns = to;
        self.update_irq();
    }

    fn update_irq(&mut self) {
        let c = self.s.cmos[REG_C] & 0x70;
        let enabled = self.reg_b() & (B_PIE | B_AIE | B_UIE);
        let irqf = c & enabled != 0;
        if irqf {
            self.s.cmos[REG_C] |= C_IRQF;
        } else {
            self.s.cmos[REG_C] &= !C_IRQF;
        }
        if irqf != self.s.irq_level {
            self.s.irq_level = irqf;
            self.irq.set_level(irqf);
        }
    }

    fn uip(&self) -> bool {
        if !self.updating() {
            return false;
        }
        let into_second = (self.s.now_ns as i64 - self.s.base_ns).rem_euclid(SEC);
        into_second >= SEC - UIP_NS
    }

    fn read_data(&mut self) -> u8 {
        let i = self.s.index as usize;
        match i {
            REG_A => self.s.cmos[REG_A] & !A_UIP | if self.uip() { A_UIP } else { 0 },
            REG_C => {
                let v = self.s.cmos[REG_C];
                self.s.cmos[REG_C] = 0;
                self.update_irq();
                v
            }
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_DAY_OF_WEEK | REG_DAY | REG_MONTH | REG_YEAR | REG_CENTURY => {
                if self.updating() {
                    self.sync_time_regs();
                }
                self.s.cmos[i]
            }
            _ => self.s.cmos[i],
        }
    }

    fn write_data(&mut self, v: u8) {
        let i = self.s.index as usize;
        match i {
            REG_A | REG_B => {
                let was_updating = self.updating();
                let was_reset = !self.divider_running();
                if was_updating {
                    self.sync_time_regs();
                }
                if i == REG_A {
                    self.s.cmos[REG_A] = v & !A_UIP;
                } else {
                    // Setting SET clears UIE (datasheet, register B bit 7).
                    self.s.cmos[REG_B] = if v & B_SET != 0 { v & !B_UIE } else { v };
                }
                if was_reset && self.divider_running() {
                    // Divider released: the first update comes 500 ms later.
                    self.s.base_secs = self.regs_time();
                    self.s.base_ns = self.s.now_ns as i64 - SEC / 2;
                } else if !was_updating && self.updating() {
                    self.rebase_from_regs();
                }
                self.update_irq();
            }
            REG_C | REG_D => {}
            REG_DAY_OF_WEEK => {}
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_DAY | REG_MONTH | REG_YEAR | REG_CENTURY => {
                if self.updating() {
                    self.sync_time_regs();
                    self.s.cmos[i] = v;
                    self.rebase_from_regs();
                } else {
                    self.s.cmos[i] = v;
                }
            }
            _ => self.s.cmos[i] = v,
        }
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        match offset {
            DATA => self.read_data(),
            // The index register is write-only.
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        match offset {
            INDEX => {
                self.s.nmi_masked = v & 0x80 != 0;
                self.s.index = v & 0x7f;
            }
            DATA => self.write_data(v),
            _ => {}
        }
    }

    /// The calendar time the clock holds now.
    pub fn now(&self) -> DateTime {
        if self.updating() {
            DateTime::from_secs(self.secs_at(self.s.now_ns))
        } else {
            DateTime::from_secs(self.regs_time())
        }
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Rtc").field(&self.save()).finish()
    }
}

impl PortIoDevice for Rtc {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        read_bytewise(offset, size, |o| self.read_byte(o))
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        write_bytewise(offset, size, value, |o, b| self.write_byte(o, b))
    }
}

impl Timed for Rtc {
    fn advance_to(&mut self, now_ns: u64) {
        if now_ns <= self.s.now_ns {
            return;
        }
        self.s.now_ns = now_ns;
        self.process();
    }

    fn next_deadline(&self) -> Option<u64> {
        // While IRQ8 is asserted nothing more is visible until register C is
        // read (an access, after which the machine asks again); flags that
        // pile up meanwhile are computed at the next advance.
        if !self.divider_running() || self.s.irq_level {
            return None;
        }
        let b = self.reg_b();
        let now = self.s.now_ns as i64;
        let mut next: Option<i64> = None;
        if b & B_PIE != 0 {
            if let Some(p) = self.periodic_ticks() {
                let k = self.divider_ticks(self.s.now_ns).div_euclid(p) + 1;
                let ns = (k * p * NS_PER_SEC as i128 + RTC_HZ - 1).div_euclid(RTC_HZ) as i64 + self.s.base_ns;
                next = Some(ns);
            }
        }
        if b & (B_AIE | B_UIE) != 0 && self.updating() {
            let ns = self.s.base_ns + ((now - self.s.base_ns).div_euclid(SEC) + 1) * SEC;
            next = Some(next.map_or(ns, |n| n.min(ns)));
        }
        next.map(|n| n.max(0) as u64)
    }
}

impl Snapshot for Rtc {
    type State = State;
    fn save(&self) -> State {
        self.s.clone()
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        check("rtc", s.cmos.len() == 128, || {
            format!("CMOS is {} bytes, expected 128", s.cmos.len())
        })?;
        check("rtc", s.index < 128, || format!("index {:#x}", s.index))?;
        check("rtc", s.now_ns <= i64::MAX as u64 / 2, || "virtual time out of range".into())?;
        check("rtc", s.base_secs.abs() <= MAX_SECS, || {
            format!("clock at {} s out of range", s.base_secs)
        })?;
        check("rtc", s.base_ns >= -2 * SEC, || "clock base before power-on".into())?;
        check("rtc", s.processed_ns <= s.now_ns, || "events processed past the present".into())?;
        check("rtc", s.base_ns <= s.now_ns as i64 + SEC, || "clock base in the future".into())?;
        check("rtc", s.cmos[REG_D] == 0x80, || {
            format!("register D {:#x} (VRT must be 1)", s.cmos[REG_D])
        })?;
        check("rtc", s.irq_level == (s.cmos[REG_C] & C_IRQF != 0), || {
            "IRQ8 level disagrees with register C".into()
        })?;
        self.s = s.clone();
        self.irq.set_level(self.s.irq_level);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
