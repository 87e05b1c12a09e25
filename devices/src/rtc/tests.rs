use super::*;
use crate::irq::RecordingIrq;

const MS: u64 = 1_000_000;

fn rtc_at(secs: i64) -> (Rtc, RecordingIrq) {
    let irq = RecordingIrq::new();
    (Rtc::new(secs, irq.line()), irq)
}

fn rd(r: &mut Rtc, idx: u8) -> u8 {
    r.write(INDEX, 1, idx as u32);
    r.read(DATA, 1) as u8
}

fn wr(r: &mut Rtc, idx: u8, v: u8) {
    r.write(INDEX, 1, idx as u32);
    r.write(DATA, 1, v as u32);
}

fn secs(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    DateTime {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        weekday: 0,
    }
    .to_secs()
}

fn clock_regs(r: &mut Rtc) -> [u8; 8] {
    [0x32, 0x09, 0x08, 0x07, 0x06, 0x04, 0x02, 0x00].map(|i| rd(r, i))
}

#[test]
fn calendar_conversion() {
    assert_eq!(secs(1970, 1, 1, 0, 0, 0), 0);
    assert_eq!(secs(2000, 3, 1, 0, 0, 0), 951_868_800);
    let t = DateTime::from_secs(1_709_251_199); // 2024-02-29 23:59:59 UTC, a Thursday
    assert_eq!(
        (t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday),
        (2024, 2, 29, 23, 59, 59, 5)
    );
    for s in [-86_401i64, 0, 951_782_399, 4_102_444_800, 1_234_567_890] {
        assert_eq!(DateTime::from_secs(s).to_secs(), s);
    }
}

#[test]
fn bcd_rollover_at_midnight_and_month_end() {
    let (mut r, _) = rtc_at(secs(2024, 2, 29, 23, 59, 59));
    // century, year, month, day, weekday, hours, minutes, seconds
    assert_eq!(clock_regs(&mut r), [0x20, 0x24, 0x02, 0x29, 0x05, 0x23, 0x59, 0x59]);
    r.advance_to(1000 * MS);
    assert_eq!(clock_regs(&mut r), [0x20, 0x24, 0x03, 0x01, 0x06, 0x00, 0x00, 0x00]);

    let (mut r, _) = rtc_at(secs(1999, 12, 31, 23, 59, 59));
    r.advance_to(1000 * MS - 1);
    assert_eq!(rd(&mut r, 0x00), 0x59);
    r.advance_to(1000 * MS);
    assert_eq!(clock_regs(&mut r), [0x20, 0x00, 0x01, 0x01, 0x07, 0x00, 0x00, 0x00]);

    // 30-day month.
    let (mut r, _) = rtc_at(secs(2023, 4, 30, 23, 59, 59));
    r.advance_to(1500 * MS);
    assert_eq!(&clock_regs(&mut r)[1..4], &[0x23, 0x05, 0x01]);
}

#[test]
fn binary_and_12_hour_modes() {
    let (mut r, _) = rtc_at(secs(2021, 7, 4, 13, 5, 9));
    wr(&mut r, 0x0b, B_BINARY); // binary, 12-hour
    assert_eq!(rd(&mut r, 0x04), 0x81, "1 PM");
    assert_eq!(rd(&mut r, 0x02), 5);
    assert_eq!(rd(&mut r, 0x09), 21);
    assert_eq!(rd(&mut r, 0x32), 20);
    let (mut r, _) = rtc_at(secs(2021, 7, 4, 0, 30, 0));
    wr(&mut r, 0x0b, 0);
    assert_eq!(rd(&mut r, 0x04), 0x12, "midnight is 12 AM (BCD)");
    wr(&mut r, 0x0b, B_24H | B_BINARY);
    assert_eq!(rd(&mut r, 0x04), 0);
}

#[test]
fn set_bit_freezes_and_guest_written_time_runs() {
    let (mut r, _) = rtc_at(0);
    r.advance_to(300 * MS);
    wr(&mut r, 0x0b, B_SET | B_24H);
    for (i, v) in [
        (0x32, 0x20),
        (0x09, 0x25),
        (0x08, 0x12),
        (0x07, 0x31),
        (0x04, 0x23),
        (0x02, 0x59),
        (0x00, 0x58),
    ] {
        wr(&mut r, i, v);
    }
    r.advance_to(5000 * MS);
    assert_eq!(rd(&mut r, 0x00), 0x58, "no updates while SET");
    wr(&mut r, 0x0b, B_24H);
    // Phase kept: updates on the original second boundaries (…, 5 s, 6 s).
    r.advance_to(5999 * MS);
    assert_eq!(rd(&mut r, 0x00), 0x58);
    r.advance_to(6000 * MS);
    assert_eq!(rd(&mut r, 0x00), 0x59);
    r.advance_to(7000 * MS);
    assert_eq!(clock_regs(&mut r), [0x20, 0x26, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00]);
    // A single register written while running takes effect at once.
    wr(&mut r, 0x02, 0x42);
    assert_eq!(rd(&mut r, 0x02), 0x42);
    r.advance_to(8000 * MS);
    assert_eq!((rd(&mut r, 0x02), rd(&mut r, 0x00)), (0x42, 0x01));
}

#[test]
fn update_in_progress_window() {
    let (mut r, _) = rtc_at(0);
    r.advance_to(999_700 * 1000);
    assert_eq!(rd(&mut r, 0x0a) & 0x80, 0);
    r.advance_to(999_756 * 1000);
    assert_eq!(rd(&mut r, 0x0a), 0xa6);
    r.advance_to(1000 * MS);
    assert_eq!(rd(&mut r, 0x0a), 0x26);
    wr(&mut r, 0x0b, B_SET | B_24H);
    r.advance_to(1_999_900 * 1000);
    assert_eq!(rd(&mut r, 0x0a) & 0x80, 0, "no UIP while SET");
}

#[test]
fn periodic_interrupt_rate_from_register_a() {
    for (rs, per_sec) in [(0x06u8, 1024usize), (0x0f, 2), (0x03, 8192), (0x01, 256), (0x02, 128)] {
        let (mut r, irq) = rtc_at(0);
        wr(&mut r, 0x0a, 0x20 | rs);
        wr(&mut r, 0x0b, B_24H | B_PIE);
        let mut n = 0;
        while let Some(d) = r.next_deadline().filter(|&d| d <= 1000 * MS) {
            r.advance_to(d);
            assert!(irq.level(), "rate {rs:#x}: IRQ8 at deadline {d}");
            assert_eq!(rd(&mut r, 0x0c) & (C_IRQF | C_PF), C_IRQF | C_PF);
            assert!(!irq.level(), "reading C lowers IRQ8");
            n += 1;
        }
        assert_eq!(n, per_sec, "rate select {rs:#x}");
    }
    let (mut r, _) = rtc_at(0);
    wr(&mut r, 0x0a, 0x20);
    wr(&mut r, 0x0b, B_24H | B_PIE);
    assert_eq!(r.next_deadline(), None, "rate 0: no periodic interrupt");
}

#[test]
fn flags_set_without_interrupt_enables() {
    let (mut r, irq) = rtc_at(0);
    r.advance_to(1001 * MS);
    assert!(!irq.level());
    assert_eq!(r.next_deadline(), None);
    assert_eq!(rd(&mut r, 0x0c), C_PF | C_UF, "alarm 00:00:00 does not match 00:00:01");
    assert_eq!(rd(&mut r, 0x0c), 0, "read-to-clear");
}

#[test]
fn update_ended_and_alarm_interrupts() {
    let (mut r, irq) = rtc_at(secs(2020, 1, 1, 10, 0, 0));
    wr(&mut r, 0x0b, B_24H | B_UIE);
    assert_eq!(r.next_deadline(), Some(1000 * MS));
    r.advance_to(1000 * MS);
    assert!(irq.level());
    assert_eq!(rd(&mut r, 0x0c), C_IRQF | C_UF | C_PF, "PF is set too (1024 Hz), without PIE");
    // Alarm at xx:xx:05 (hours and minutes don't care).
    wr(&mut r, 0x01, 0x05);
    wr(&mut r, 0x03, 0xc0);
    wr(&mut r, 0x05, 0xff);
    wr(&mut r, 0x0b, B_24H | B_AIE);
    irq.take_rising_edges();
    let mut fired_at = None;
    while let Some(d) = r.next_deadline().filter(|&d| d <= 10_000 * MS) {
        r.advance_to(d);
        if irq.level() {
            assert_eq!(rd(&mut r, 0x0c) & (C_IRQF | C_AF), C_IRQF | C_AF);
            fired_at.get_or_insert(d);
        }
    }
    assert_eq!(fired_at, Some(5000 * MS));
    assert_eq!(irq.take_rising_edges(), 1);
}

#[test]
fn divider_reset_holds_time_and_restarts_half_a_second_later() {
    let (mut r, _) = rtc_at(0);
    r.advance_to(200 * MS);
    wr(&mut r, 0x0a, 0x76);
    r.advance_to(3000 * MS);
    assert_eq!(rd(&mut r, 0x00), 0x00);
    wr(&mut r, 0x0a, 0x26);
    r.advance_to(3499 * MS);
    assert_eq!(rd(&mut r, 0x00), 0x00);
    r.advance_to(3500 * MS);
    assert_eq!(rd(&mut r, 0x00), 0x01);
}

#[test]
fn index_port_keeps_nmi_mask_and_nvram() {
    let (mut r, _) = rtc_at(0);
    wr(&mut r, 0x80 | 0x40, 0x5a);
    assert!(r.nmi_masked());
    assert_eq!(rd(&mut r, 0x40), 0x5a);
    assert!(!r.nmi_masked());
    assert_eq!(r.read(INDEX, 1), 0xff);
    assert_eq!(rd(&mut r, 0x0d), 0x80);
    wr(&mut r, 0x0d, 0x00);
    assert_eq!(rd(&mut r, 0x0d), 0x80, "register D is read-only");
    r.set_memory_size(128 << 20, 2 << 30);
    let b = |r: &mut Rtc, i: u8| rd(r, i) as u32 | (rd(r, i + 1) as u32) << 8;
    assert_eq!(b(&mut r, 0x15), 640);
    assert_eq!(b(&mut r, 0x17), 0xffff, "127 MiB of extended memory is capped");
    assert_eq!(b(&mut r, 0x30), 0xffff);
    assert_eq!(b(&mut r, 0x34), (112 << 20) / 65536);
    assert_eq!((rd(&mut r, 0x5b), rd(&mut r, 0x5c), rd(&mut r, 0x5d)), (0x00, 0x80, 0x00));
    r.set_memory_size(32 << 20, 0);
    assert_eq!(b(&mut r, 0x17), 31 * 1024);
    r.set_nvram(0x3d, 0x21);
    assert_eq!(r.nvram(0x3d), 0x21);
}

#[test]
fn save_restore_round_trip_and_validation() {
    let (mut r, _) = rtc_at(secs(2022, 6, 1, 12, 0, 0));
    wr(&mut r, 0x0b, B_24H | B_PIE);
    r.advance_to(1234 * MS);
    let s = r.save();
    let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    let irq = RecordingIrq::new();
    let mut q = Rtc::new(0, irq.line());
    q.restore(&back).unwrap();
    assert_eq!(q.save(), s);
    assert!(irq.level(), "IRQ8 level restored");
    assert_eq!(q.next_deadline(), r.next_deadline());
    r.advance_to(5000 * MS);
    q.advance_to(5000 * MS);
    assert_eq!(clock_regs(&mut q), clock_regs(&mut r));

    let mut bad = s.clone();
    bad.cmos.truncate(64);
    assert!(q.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.index = 0x80;
    assert!(q.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.irq_level = !bad.irq_level;
    assert!(q.restore(&bad).is_err());
}

#[test]
fn reset_clears_interrupts_but_keeps_time_and_nvram() {
    let (mut r, irq) = rtc_at(secs(2030, 1, 2, 3, 4, 5));
    wr(&mut r, 0x0b, B_24H | B_PIE | B_UIE);
    wr(&mut r, 0x50, 0xab);
    r.advance_to(1000 * MS);
    assert!(irq.level());
    r.reset();
    assert!(!irq.level());
    assert_eq!(rd(&mut r, 0x0b), B_24H);
    assert_eq!(rd(&mut r, 0x0c), 0);
    assert_eq!(rd(&mut r, 0x50), 0xab);
    assert_eq!(rd(&mut r, 0x00), 0x06);
    r.set_time(i64::MAX);
    assert_eq!(r.save().base_secs, 1 << 40, "doorway input clamped");
}

#[test]
fn no_deadlines_while_irq8_waits_for_register_c() {
    let (mut r, irq) = rtc_at(0);
    wr(&mut r, 0x0b, B_24H | B_PIE);
    let d = r.next_deadline().unwrap();
    r.advance_to(d);
    assert!(irq.level());
    assert_eq!(r.next_deadline(), None);
    // A late read still sees everything that happened meanwhile.
    r.advance_to(1500 * MS);
    assert_eq!(rd(&mut r, 0x0c), C_IRQF | C_PF | C_UF);
    assert!(r.next_deadline().unwrap() > 1500 * MS);
}
