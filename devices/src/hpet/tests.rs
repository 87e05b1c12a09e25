use super::*;
use crate::irq::{IrqPins, RecordingIrq};

struct Rig {
    h: Hpet,
    route: IrqPins,
    irq0: RecordingIrq,
    irq8: RecordingIrq,
}

fn rig() -> Rig {
    let route = IrqPins::new();
    let irq0 = RecordingIrq::new();
    let irq8 = RecordingIrq::new();
    let lines = (0..32).map(|i| route.line(i)).collect();
    Rig {
        h: Hpet::new(lines, irq0.line(), irq8.line()),
        route,
        irq0,
        irq8,
    }
}

fn tconf(n: u64) -> u64 {
    TIMER0 + 0x20 * n
}
fn tcmp(n: u64) -> u64 {
    TIMER0 + 0x20 * n + 8
}

#[test]
fn capabilities_and_reset_values() {
    let mut r = rig();
    let h = &mut r.h;
    assert_eq!(h.read(GCAP_ID, 8), 10_000_000 << 32 | 0x8086_a201);
    assert_eq!(h.read(GCAP_ID + 4, 4), 10_000_000, "high half as a 32-bit read");
    assert_eq!(h.read(tconf(0), 8), 0x00f0_0000 << 32 | 0x30);
    assert_eq!(h.read(tconf(1), 4), 0, "timer 1: 32-bit, one-shot");
    assert_eq!(h.read(tcmp(0), 8), u64::MAX);
    assert_eq!(h.read(tcmp(2), 8), 0xffff_ffff);
    h.write(tconf(1), 4, 0xffff_ffff);
    assert_eq!(h.read(tconf(1), 4), 0x3e46, "periodic and 32-bit mode not writable on timer 1");
}

#[test]
fn main_counter_runs_at_100_mhz_only_when_enabled() {
    let mut r = rig();
    let h = &mut r.h;
    h.advance_to(1000);
    assert_eq!(h.read(MAIN_CNT, 8), 0, "halted");
    h.write(MAIN_CNT, 4, 500);
    h.write(GEN_CONF, 4, 1);
    h.advance_to(1009);
    assert_eq!(h.read(MAIN_CNT, 8), 500, "tick boundary at 1010 ns");
    h.advance_to(1010);
    assert_eq!(h.read(MAIN_CNT, 8), 501);
    h.write(MAIN_CNT, 4, 0);
    assert_eq!(h.read(MAIN_CNT, 4), 501, "writes ignored while running");
    h.advance_to(2_001_000);
    assert_eq!(h.read(MAIN_CNT, 8), 500 + 200_000);
    h.write(GEN_CONF, 4, 0);
    h.advance_to(9_000_000);
    assert_eq!(h.read(MAIN_CNT, 8), 500 + 200_000, "halted keeps its value");
    h.write(GEN_CONF, 4, 1);
    h.advance_to(9_000_100);
    assert_eq!(h.read(MAIN_CNT, 8), 500 + 200_010);
}

#[test]
fn one_shot_edge_timer_fires_at_exact_time_on_its_route() {
    let mut r = rig();
    let h = &mut r.h;
    h.write(tconf(2), 4, INT_ENB | (21 << 9));
    h.write(tcmp(2), 4, 1000);
    h.write(GEN_CONF, 4, 1);
    assert_eq!(h.next_deadline(), Some(10_000));
    h.advance_to(9_999);
    assert_eq!(r.route.take_changes(), None);
    h.advance_to(10_000);
    let c = r.route.take_changes().unwrap();
    assert_eq!(c.rose, 1 << 21);
    assert_eq!(c.level, 0, "edge: a pulse");
    assert_eq!(h.read(GINTR_STA, 4), 0, "edge mode leaves status clear");
    // A 32-bit timer matches again when the counter wraps its low half.
    assert_eq!(h.next_deadline(), Some((1u64 << 32) * 10 + 10_000));
}

#[test]
fn level_timer_holds_status_until_cleared() {
    let mut r = rig();
    let h = &mut r.h;
    h.write(tconf(0), 4, INT_TYPE_LEVEL | (20 << 9));
    h.write(tcmp(0), 8, 50);
    h.write(GEN_CONF, 4, 1);
    h.advance_to(500);
    assert_eq!(h.read(GINTR_STA, 4), 1, "status set even with the interrupt disabled");
    assert_eq!(r.route.levels(), 0);
    h.write(tconf(0), 4, INT_TYPE_LEVEL | INT_ENB | (20 << 9));
    assert_eq!(r.route.levels(), 1 << 20);
    h.write(GINTR_STA, 4, 1);
    assert_eq!(r.route.levels(), 0, "write 1 to clear drops the line");
    assert_eq!(h.read(GINTR_STA, 4), 0);
}

#[test]
fn periodic_timer_with_val_set_and_legacy_route() {
    let mut r = rig();
    let h = &mut r.h;
    h.write(GEN_CONF, 4, LEG_RT_CNF);
    // Linux's sequence: PERIODIC|VAL_SET|32BIT, comparator = now + delta, then delta.
    h.write(tconf(0), 4, INT_ENB | TYPE_PERIODIC | VAL_SET | MODE32);
    h.write(tcmp(0), 4, 100);
    h.write(tcmp(0), 4, 100);
    assert_eq!(h.read(tconf(0), 4) & VAL_SET, 0, "VAL_SET clears itself");
    h.write(GEN_CONF, 4, LEG_RT_CNF | ENABLE_CNF);
    assert_eq!(h.next_deadline(), Some(1000));
    h.advance_to(1000);
    assert_eq!(r.irq0.take_rising_edges(), 1, "timer 0 drives legacy IRQ0");
    assert_eq!(h.read(tcmp(0), 8), 200);
    assert_eq!(h.next_deadline(), Some(2000));
    h.advance_to(5500);
    assert_eq!(r.irq0.take_rising_edges(), 1, "missed periods collapse");
    assert_eq!(h.read(tcmp(0), 8), 600, "first period after now");
    assert_eq!(r.route.take_changes(), None);
    assert_eq!(r.irq8.take_rising_edges(), 0);
    assert!(h.legacy_replacement());
}

#[test]
fn thirty_two_bit_mode_truncates_comparator() {
    let mut r = rig();
    let h = &mut r.h;
    h.write(tconf(0), 4, MODE32 | INT_ENB | (22 << 9));
    h.write(tcmp(0), 8, 0x1_0000_0010);
    assert_eq!(h.read(tcmp(0), 8), 0x10);
    h.write(GEN_CONF, 4, 1);
    assert_eq!(h.next_deadline(), Some(160));
}

#[test]
fn snapshot_round_trip_and_validation() {
    let mut r = rig();
    r.h.write(tconf(0), 4, INT_TYPE_LEVEL | INT_ENB | (20 << 9));
    r.h.write(tcmp(0), 8, 5);
    r.h.write(GEN_CONF, 4, 1);
    r.h.advance_to(100);
    let s = r.h.save();
    let mut b = rig();
    b.h.restore(&serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap())
        .unwrap();
    assert_eq!(b.h.save(), s);
    assert_eq!(b.route.levels(), 1 << 20, "restore drives the level output");
    let mut bad = s.clone();
    bad.isr = 8;
    assert!(b.h.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.timers[1].config = TYPE_PERIODIC;
    assert!(b.h.restore(&bad).is_err());
}
