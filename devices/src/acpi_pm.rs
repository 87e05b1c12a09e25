//! ACPI fixed power-management hardware (ACPI 6.5 section 4.8), laid out
//! as on the PIIX4 and ICH9 PM I/O block: PM1a_EVT (status and enable),
//! PM1a_CNT and the PM timer at one I/O base.
//!
//! Offset layout: 0 PM1a_STS (16-bit, write 1 to clear), 2 PM1a_EN
//! (16-bit), 4 PM1a_CNT (16-bit), 8 PM_TMR (32-bit, read-only). Offsets 6–7
//! and 12+ read as 0.
//!
//! - The platform is always in ACPI mode (the FADT has SMI_CMD = 0), so
//!   SCI_EN reads 1 and cannot be cleared.
//! - PM_TMR counts at exactly 3.579545 MHz from virtual time 0, 24 or 32
//!   bits wide (the FADT's TMR_VAL_EXT); TMR_STS is set whenever the top
//!   bit toggles (4.8.3.3).
//! - SLP_EN with SLP_TYP equal to the board's S5 encoding (PIIX4 0, ICH9 7:
//!   `kagami_bios::acpi::S5_SLP_TYP_*`) asks the machine to power off.
//! - The SCI is a level: asserted while any enabled status bit is set.
//!
//! Left out: sleeping states other than S5 (S1–S4 writes are ignored; the
//! DSDT offers none), GBL_RLS/BIOS_STS (no SMM firmware), BM_STS, wake
//! events (WAK_STS is never set: nothing wakes from S5), and the GPE blocks.

use crate::bus::{read_bytewise, write_bytewise, PortIoDevice};
use crate::irq::IrqLine;
use crate::request::{MachineRequest, RequestSink};
use crate::snapshot::{check, Snapshot, StateError};
use crate::time::{ns_to_ticks, ticks_to_ns, Timed};
use serde::{Deserialize, Serialize};

/// The ACPI PM timer's clock.
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// Size of the I/O window.
pub const ACPI_PM_SPAN: u16 = 12;
pub const PM1_STS: u16 = 0;
pub const PM1_EN: u16 = 2;
pub const PM1_CNT: u16 = 4;
pub const PM_TMR: u16 = 8;

// PM1 status/enable bits (ACPI tables 4.16, 4.17).
pub const TMR_STS: u16 = 1 << 0;
pub const BM_STS: u16 = 1 << 4;
pub const GBL_STS: u16 = 1 << 5;
pub const PWRBTN_STS: u16 = 1 << 8;
pub const SLPBTN_STS: u16 = 1 << 9;
pub const RTC_STS: u16 = 1 << 10;
pub const WAK_STS: u16 = 1 << 15;
/// Status bits that have an enable bit at the same position and raise the SCI.
const SCI_SOURCES: u16 = TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS;
const EN_WRITABLE: u16 = SCI_SOURCES;
// PM1 control bits (table 4.18).
pub const SCI_EN: u16 = 1 << 0;
const BM_RLD: u16 = 1 << 1;
const SLP_EN: u16 = 1 << 13;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub sts: u16,
    pub en: u16,
    /// PM1a_CNT as stored (SCI_EN, BM_RLD, SLP_TYP).
    pub cnt: u16,
    pub now_ns: u64,
    /// PM timer tick up to which TMR_STS has been accounted.
    pub tmr_checked: u64,
    pub sci_level: bool,
}

pub struct AcpiPm {
    s: State,
    s5_slp_typ: u8,
    timer_bits: u32,
    sci: Box<dyn IrqLine>,
    requests: Box<dyn RequestSink>,
}

impl AcpiPm {
    /// `s5_slp_typ`: the SLP_TYP value meaning S5 on this chipset;
    /// `timer_32bit`: TMR_VAL_EXT. The SCI is level-triggered.
    pub fn new(s5_slp_typ: u8, timer_32bit: bool, sci: Box<dyn IrqLine>, requests: Box<dyn RequestSink>) -> AcpiPm {
        AcpiPm {
            s: State {
                sts: 0,
                en: 0,
                cnt: SCI_EN,
                now_ns: 0,
                tmr_checked: 0,
                sci_level: false,
            },
            s5_slp_typ: s5_slp_typ & 7,
            timer_bits: if timer_32bit { 32 } else { 24 },
            sci,
            requests,
        }
    }

    fn ticks(&self) -> u64 {
        ns_to_ticks(self.s.now_ns, PM_TIMER_HZ)
    }

    fn half(&self) -> u64 {
        1u64 << (self.timer_bits - 1)
    }

    /// The PM_TMR value now.
    pub fn timer(&self) -> u32 {
        (self.ticks() & ((1u64 << self.timer_bits) - 1)) as u32
    }

    /// Fold top-bit toggles since the last check into TMR_STS.
    fn account_timer(&mut self) {
        let t = self.ticks();
        if t / self.half() > self.s.tmr_checked / self.half() {
            self.s.sts |= TMR_STS;
        }
        self.s.tmr_checked = t;
    }

    fn update_sci(&mut self) {
        let level = self.s.sts & self.s.en & SCI_SOURCES != 0;
        if level != self.s.sci_level {
            self.s.sci_level = level;
            self.sci.set_level(level);
        }
    }

    /// Doorway: the host pressed the power button (sets PWRBTN_STS).
    pub fn press_power_button(&mut self) {
        self.s.sts |= PWRBTN_STS;
        self.update_sci();
    }

    fn read_byte(&mut self, offset: u16) -> u8 {
        self.account_timer();
        let word = |v: u16| (v >> (8 * (offset & 1))) as u8;
        match offset {
            0..=1 => word(self.s.sts),
            2..=3 => word(self.s.en),
            4..=5 => word(self.s.cnt),
            8..=11 => (self.timer() >> (8 * (offset - 8))) as u8,
            _ => 0,
        }
    }

    fn write_byte(&mut self, offset: u16, v: u8) {
        self.account_timer();
        let shift = 8 * (offset & 1);
        let bits = (v as u16) << shift;
        let lane = 0xffu16 << shift;
        match offset {
            0..=1 => self.s.sts &= !bits,
            2..=3 => self.s.en = (self.s.en & !lane) | (bits & EN_WRITABLE),
            4..=5 => {
                let keep = SCI_EN | BM_RLD | (7 << 10);
                self.s.cnt = ((self.s.cnt & !lane) | (bits & keep)) | SCI_EN;
                if bits & SLP_EN != 0 {
                    let typ = ((self.s.cnt >> 10) & 7) as u8;
                    if typ == self.s5_slp_typ {
                        self.requests.request(MachineRequest::PowerOff);
                    }
                }
            }
            _ => {}
        }
        self.update_sci();
    }
}

impl PortIoDevice for AcpiPm {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        read_bytewise(offset, size, |o| self.read_byte(o))
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        write_bytewise(offset, size, value, |o, b| self.write_byte(o, b))
    }
}

impl Timed for AcpiPm {
    fn advance_to(&mut self, now_ns: u64) {
        if now_ns <= self.s.now_ns {
            return;
        }
        self.s.now_ns = now_ns;
        self.account_timer();
        self.update_sci();
    }

    /// Only the timer-carry SCI is a deadline (when enabled and not
    /// already pending).
    fn next_deadline(&self) -> Option<u64> {
        if self.s.en & TMR_STS == 0 || self.s.sts & TMR_STS != 0 {
            return None;
        }
        let next = (self.s.tmr_checked / self.half() + 1) * self.half();
        Some(ticks_to_ns(next, PM_TIMER_HZ))
    }
}

impl Snapshot for AcpiPm {
    type State = State;
    fn save(&self) -> State {
        self.s.clone()
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        const D: &str = "acpi-pm";
        check(D, s.en & !EN_WRITABLE == 0, || format!("PM1_EN {:#x}", s.en))?;
        check(D, s.cnt & SCI_EN != 0 && s.cnt & !(SCI_EN | BM_RLD | (7 << 10)) == 0, || {
            format!("PM1_CNT {:#x}", s.cnt)
        })?;
        check(D, s.tmr_checked <= ns_to_ticks(s.now_ns, PM_TIMER_HZ), || {
            "timer accounted past now".into()
        })?;
        check(D, s.sci_level == (s.sts & s.en & SCI_SOURCES != 0), || {
            "SCI level disagrees with status".into()
        })?;
        self.s = s.clone();
        self.sci.set_level(self.s.sci_level);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use crate::request::RequestQueue;

    fn pm(typ: u8, ext: bool) -> (AcpiPm, RecordingIrq, RequestQueue) {
        let irq = RecordingIrq::new();
        let q = RequestQueue::new();
        (AcpiPm::new(typ, ext, irq.line(), q.sink()), irq, q)
    }

    #[test]
    fn timer_counts_at_3_579545_mhz() {
        let (mut p, _, _) = pm(0, true);
        assert_eq!(p.read(PM_TMR, 4), 0);
        p.advance_to(1_000_000_000);
        assert_eq!(p.read(PM_TMR, 4), 3_579_545);
        p.advance_to(1_000_000_279);
        assert_eq!(p.read(PM_TMR, 4), 3_579_545, "tick 3579546 is at 1000000280 ns");
        p.advance_to(1_000_000_280);
        assert_eq!(p.read(PM_TMR, 4), 3_579_546);
        assert_eq!(p.read(PM_TMR + 2, 2), 3_579_546 >> 16);
        assert_eq!(p.read(PM1_CNT, 2) as u16 & SCI_EN, SCI_EN, "always in ACPI mode");
        p.write(PM1_CNT, 2, 0);
        assert_eq!(p.read(PM1_CNT, 2) as u16 & SCI_EN, SCI_EN, "SCI_EN cannot be cleared");
    }

    #[test]
    fn timer_carry_sets_status_and_raises_sci() {
        let (mut p, irq, _) = pm(0, false);
        p.write(PM1_EN, 2, TMR_STS as u32);
        // 24-bit timer: bit 23 toggles every 2^23 ticks.
        let d = p.next_deadline().unwrap();
        assert_eq!(d, ticks_to_ns(1 << 23, PM_TIMER_HZ));
        p.advance_to(d - 1);
        assert_eq!(p.read(PM1_STS, 2) as u16 & TMR_STS, 0);
        assert!(!irq.level());
        p.advance_to(d);
        assert_eq!(p.read(PM1_STS, 2) as u16 & TMR_STS, TMR_STS);
        assert!(irq.level());
        assert_eq!(p.next_deadline(), None, "status pending");
        p.write(PM1_STS, 2, TMR_STS as u32);
        assert!(!irq.level(), "write 1 clears");
        assert_eq!(p.next_deadline(), Some(ticks_to_ns(2 << 23, PM_TIMER_HZ)));
        // The 24-bit value wraps.
        p.advance_to(ticks_to_ns((1 << 24) + 5, PM_TIMER_HZ));
        assert_eq!(p.read(PM_TMR, 4), 5);
    }

    #[test]
    fn status_is_set_without_enable_but_no_sci() {
        let (mut p, irq, _) = pm(0, true);
        p.advance_to(ticks_to_ns(1 << 31, PM_TIMER_HZ));
        assert_eq!(p.read(PM1_STS, 2) as u16, TMR_STS);
        assert!(!irq.level());
        p.press_power_button();
        assert!(!irq.level());
        p.write(PM1_EN, 2, PWRBTN_STS as u32);
        assert!(irq.level());
        p.write(PM1_STS, 2, PWRBTN_STS as u32);
        assert!(!irq.level());
    }

    #[test]
    fn s5_requests_power_off() {
        let (mut p, _, q) = pm(7, true);
        p.write(PM1_CNT, 2, (5 << 10) | SLP_EN as u32);
        assert!(q.take().is_empty(), "S3-style type is not S5 on ICH9");
        p.write(PM1_CNT, 2, (7 << 10) as u32);
        assert!(q.take().is_empty(), "no SLP_EN");
        p.write(PM1_CNT, 2, (7 << 10) | SLP_EN as u32);
        assert_eq!(q.take(), vec![MachineRequest::PowerOff]);
        assert_eq!(p.read(PM1_CNT, 2) as u16 & SLP_EN, 0, "SLP_EN reads 0");
        let (mut p, _, q) = pm(0, true);
        p.write(PM1_CNT + 1, 1, (SLP_EN >> 8) as u32);
        assert_eq!(q.take(), vec![MachineRequest::PowerOff], "PIIX4 S5 is type 0, byte write");
    }

    #[test]
    fn snapshot_round_trip_and_validation() {
        let (mut p, _, _) = pm(0, true);
        p.write(PM1_EN, 2, 0x101);
        p.advance_to(12345);
        let s = p.save();
        let (mut b, _, _) = pm(0, true);
        b.restore(&serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap())
            .unwrap();
        assert_eq!(b.save(), s);
        let mut bad = s.clone();
        bad.cnt = 0;
        assert!(b.restore(&bad).is_err());
        let mut bad = s.clone();
        bad.sci_level = true;
        assert!(b.restore(&bad).is_err());
    }
}
