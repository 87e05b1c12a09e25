use super::*;
use crate::irq::RecordingIrq;

fn tick(n: u64) -> u64 {
    ticks_to_ns(n, PIT_HZ)
}

fn pit() -> (Pit8254, RecordingIrq) {
    let irq = RecordingIrq::new();
    (Pit8254::new(irq.line()), irq)
}

fn program(p: &mut Pit8254, ch: u16, cw: u8, count: u16) {
    p.write(CONTROL, 1, cw as u32);
    p.write(ch, 1, (count & 0xff) as u32);
    p.write(ch, 1, (count >> 8) as u32);
}

fn latched_count(p: &mut Pit8254, ch: u16) -> u16 {
    p.write(CONTROL, 1, (ch as u32) << 6);
    let lo = p.read(ch, 1);
    let hi = p.read(ch, 1);
    (hi << 8 | lo) as u16
}

#[test]
fn mode2_rate_generator_period_and_count() {
    let (mut p, irq) = pit();
    program(&mut p, 0, 0x34, 1193);
    irq.take_rising_edges();
    assert_eq!(p.next_deadline(), Some(tick(1193)));
    p.advance_to(tick(100));
    assert_eq!(latched_count(&mut p, 0), 1093);
    p.advance_to(tick(1192));
    assert!(!p.out(0), "OUT low while the count is 1");
    assert_eq!(irq.take_rising_edges(), 0);
    p.advance_to(tick(1193));
    assert_eq!(irq.take_rising_edges(), 1);
    assert_eq!(latched_count(&mut p, 0), 1193, "reloaded");
    assert_eq!(p.next_deadline(), Some(tick(2 * 1193)));
    // Follow the deadlines for one virtual second: floor(1193182 / 1193) edges.
    let mut edges = 1;
    while let Some(d) = p.next_deadline().filter(|&d| d <= 1_000_000_000) {
        p.advance_to(d);
        edges += irq.take_rising_edges();
    }
    assert_eq!(edges, 1_193_182 / 1193);
}

#[test]
fn late_advance_delivers_one_edge_for_many_periods() {
    let (mut p, irq) = pit();
    program(&mut p, 0, 0x34, 100);
    irq.take_rising_edges();
    p.advance_to(tick(1050));
    assert_eq!(irq.take_rising_edges(), 1);
    assert_eq!(p.next_deadline(), Some(tick(1100)));
}

#[test]
fn mode2_new_count_waits_for_the_period_end() {
    let (mut p, irq) = pit();
    program(&mut p, 0, 0x34, 1000);
    p.advance_to(tick(300));
    p.write(0, 1, 500 & 0xff);
    p.write(0, 1, 500 >> 8);
    p.write(CONTROL, 1, 0xe2); // read-back status of counter 0
    assert_eq!(p.read(0, 1) & 0x40, 0x40, "null count until the reload");
    assert_eq!(latched_count(&mut p, 0), 700, "old cycle continues");
    irq.take_rising_edges();
    p.advance_to(tick(1000));
    assert_eq!(irq.take_rising_edges(), 1);
    assert_eq!(p.next_deadline(), Some(tick(1500)));
    p.advance_to(tick(1500));
    assert_eq!(irq.take_rising_edges(), 1);
    p.write(CONTROL, 1, 0xe2);
    assert_eq!(p.read(0, 1), 0xb4, "OUT high, count loaded, LSB/MSB, mode 2");
}

#[test]
fn mode0_interrupt_on_terminal_count() {
    let (mut p, irq) = pit();
    p.write(CONTROL, 1, 0x30);
    assert!(!p.out(0), "control word sets OUT low in mode 0");
    p.write(0, 1, 0x10);
    p.write(0, 1, 0x00);
    irq.take_rising_edges();
    assert_eq!(p.next_deadline(), Some(tick(16)));
    p.advance_to(tick(15));
    assert!(!p.out(0));
    assert_eq!(latched_count(&mut p, 0), 1);
    p.advance_to(tick(16));
    assert!(p.out(0));
    assert_eq!(irq.take_rising_edges(), 1);
    assert_eq!(p.next_deadline(), None, "one-shot");
    // The counter keeps counting down through zero.
    p.advance_to(tick(18));
    assert_eq!(latched_count(&mut p, 0), 0xfffe);
    assert!(p.out(0));
}

#[test]
fn mode0_first_byte_stops_counting_and_drops_out() {
    let (mut p, _irq) = pit();
    program(&mut p, 0, 0x30, 5);
    p.advance_to(tick(10));
    assert!(p.out(0));
    p.write(0, 1, 0x20);
    assert!(!p.out(0));
    p.advance_to(tick(20));
    p.write(0, 1, 0x00);
    p.advance_to(tick(20 + 0x20 - 1));
    assert!(!p.out(0));
    p.advance_to(tick(20 + 0x20));
    assert!(p.out(0));
}

#[test]
fn mode3_square_wave() {
    let (mut p, irq) = pit();
    program(&mut p, 0, 0x36, 10);
    irq.take_rising_edges();
    for t in 0..10 {
        p.advance_to(tick(30 + t));
        assert_eq!(p.out(0), t < 5, "tick {t} of the period");
    }
    assert_eq!(irq.take_rising_edges(), 1, "one rising edge per period");
    // Odd count: high one tick longer than low.
    program(&mut p, 0, 0x36, 7);
    let start = 40;
    let highs = (0..7)
        .filter(|&t| {
            p.advance_to(tick(start + 7 + t));
            p.out(0)
        })
        .count();
    assert_eq!(highs, 4);
    // Count decrements by two.
    program(&mut p, 1, 0x76, 100);
    p.advance_to(tick(start + 7 + 6 + 6));
    assert_eq!(latched_count(&mut p, 1), 100 - 2 * 6);
}

#[test]
fn mode4_software_strobe() {
    let (mut p, irq) = pit();
    program(&mut p, 0, 0x38, 5);
    irq.take_rising_edges();
    p.advance_to(tick(4));
    assert!(p.out(0));
    p.advance_to(tick(5));
    assert!(!p.out(0), "low for one clock at terminal count");
    p.advance_to(tick(6));
    assert!(p.out(0));
    assert_eq!(irq.take_rising_edges(), 1);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn channel2_gate_and_port_b() {
    let (mut p, _irq) = pit();
    // Gate low: mode 0 holds its count.
    program(&mut p, 2, 0xb0, 50);
    p.advance_to(tick(100));
    assert_eq!(latched_count(&mut p, 2), 50);
    assert_eq!(p.read(PORT_B, 1) & 0x20, 0);
    p.write(PORT_B, 1, 0x01);
    p.advance_to(tick(149));
    assert_eq!(latched_count(&mut p, 2), 1);
    assert_eq!(p.read(PORT_B, 1) & 0x21, 0x01);
    p.advance_to(tick(150));
    assert_eq!(p.read(PORT_B, 1) & 0x21, 0x21, "OUT2 visible in bit 5");
    assert!(!p.speaker_enabled());
    p.write(PORT_B, 1, 0x03);
    assert!(p.speaker_enabled());

    // Mode 1: the gate's rising edge fires a one-shot of N clocks.
    p.write(PORT_B, 1, 0x00);
    program(&mut p, 2, 0xb2, 20);
    p.advance_to(tick(200));
    assert_eq!(p.read(PORT_B, 1) & 0x20, 0x20, "high until triggered");
    p.write(PORT_B, 1, 0x01);
    p.advance_to(tick(219));
    assert_eq!(p.read(PORT_B, 1) & 0x20, 0);
    p.advance_to(tick(220));
    assert_eq!(p.read(PORT_B, 1) & 0x20, 0x20);
    // Retrigger restarts the pulse.
    p.write(PORT_B, 1, 0x00);
    p.advance_to(tick(230));
    p.write(PORT_B, 1, 0x01);
    p.advance_to(tick(245));
    assert_eq!(p.read(PORT_B, 1) & 0x20, 0);
}

#[test]
fn refresh_toggle_follows_virtual_time() {
    let (mut p, _irq) = pit();
    p.advance_to(1);
    let a = p.read(PORT_B, 1) & 0x10;
    p.advance_to(15_085);
    let b = p.read(PORT_B, 1) & 0x10;
    p.advance_to(2 * 15_085 + 3);
    let c = p.read(PORT_B, 1) & 0x10;
    assert_eq!((a, b, c), (0, 0x10, 0));
}

#[test]
fn latch_holds_value_until_read_and_ignores_relatch() {
    let (mut p, _irq) = pit();
    program(&mut p, 1, 0x74, 5000);
    p.advance_to(tick(10));
    p.write(CONTROL, 1, 0x40);
    p.advance_to(tick(20));
    p.write(CONTROL, 1, 0x40); // ignored: already latched
    assert_eq!(p.read(1, 1), (4990 & 0xff) as u32);
    p.advance_to(tick(30));
    assert_eq!(p.read(1, 1), (4990 >> 8) as u32);
    // Unlatched reads follow the live count.
    assert_eq!(p.read(1, 1) | p.read(1, 1) << 8, 4970);
}

#[test]
fn read_back_status_and_count() {
    let (mut p, _irq) = pit();
    p.write(CONTROL, 1, 0x30);
    p.write(CONTROL, 1, 0xe2);
    assert_eq!(p.read(0, 1), 0x70, "OUT low, null count, LSB/MSB, mode 0");
    p.write(0, 1, 0x00);
    p.write(0, 1, 0x01);
    p.advance_to(tick(1));
    // Latch both: status first, then the count.
    p.write(CONTROL, 1, 0xc2);
    p.advance_to(tick(5));
    assert_eq!(p.read(0, 1), 0x30, "count reached the counting element");
    assert_eq!(p.read(0, 1), 0xff);
    assert_eq!(p.read(0, 1), 0x00);
    // Count-only read-back of several counters at once.
    p.write(CONTROL, 1, 0x54); // counter 1, LSB only, mode 2
    p.write(1, 1, 0x77);
    p.write(CONTROL, 1, 0x90); // counter 2, LSB only, mode 0, gate low
    p.write(2, 1, 0x33);
    p.write(CONTROL, 1, 0xdc);
    p.advance_to(tick(9));
    assert_eq!(p.read(1, 1), 0x77, "latched at the read-back, not at the read");
    assert_eq!(p.read(2, 1), 0x33);
    assert_eq!(p.read(1, 1), 0x77 - 4, "latch consumed: live count");
}

#[test]
fn lsb_only_msb_only_and_bcd() {
    let (mut p, _irq) = pit();
    p.write(CONTROL, 1, 0x54); // ch1 LSB only mode 2
    p.write(1, 1, 0x20);
    p.advance_to(tick(3));
    assert_eq!(p.read(1, 1), 0x1d);
    p.write(CONTROL, 1, 0x64); // MSB only
    p.write(1, 1, 0x02);
    p.advance_to(tick(4));
    assert_eq!(p.read(1, 1), 0x01, "0x200 - 1 = 0x1ff, MSB 0x01");
    // BCD: 1000 decimal, one tick later reads 0999.
    program(&mut p, 1, 0x75, 0x1000);
    p.advance_to(tick(5));
    assert_eq!(latched_count(&mut p, 1), 0x0999);
    // BCD 0 means 10000: wraps to 9999 after one tick.
    program(&mut p, 1, 0x71, 0x0000);
    p.advance_to(tick(6));
    assert_eq!(latched_count(&mut p, 1), 0x9999);
}

#[test]
fn save_restore_round_trip_and_validation() {
    let (mut p, irq) = pit();
    program(&mut p, 0, 0x34, 1000);
    p.advance_to(tick(250));
    p.write(0, 1, 0x00); // LSB of a pending new count? no: access 3 first byte
    let s = p.save();
    let json = serde_json::to_string(&s).unwrap();
    let back: State = serde_json::from_str(&json).unwrap();
    let irq2 = RecordingIrq::new();
    let mut q = Pit8254::new(irq2.line());
    q.restore(&back).unwrap();
    assert_eq!(q.save(), s);
    for x in [&mut p, &mut q] {
        x.write(0, 1, 0x02);
        x.advance_to(tick(1000));
    }
    irq.take_rising_edges();
    irq2.take_rising_edges();
    for t in [1100, 1400, 1512, 1600] {
        p.advance_to(tick(t));
        q.advance_to(tick(t));
        assert_eq!(latched_count(&mut p, 0), latched_count(&mut q, 0));
        assert_eq!(irq.take_rising_edges(), irq2.take_rising_edges());
    }

    let mut bad = s.clone();
    bad.channels[1].mode = 6;
    assert!(q.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.channels[0].n = 0;
    assert!(q.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.channels[2].bcd = true;
    bad.channels[2].n = 20_000;
    assert!(q.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.port_b = 0x01;
    assert!(q.restore(&bad).is_err(), "gate 2 low but port B says high");
}

#[test]
fn reset_stops_the_counters_and_keeps_time() {
    let (mut p, irq) = pit();
    program(&mut p, 0, 0x34, 100);
    p.write(PORT_B, 1, 0x03);
    p.advance_to(tick(150));
    irq.take_rising_edges();
    p.reset();
    assert_eq!(p.next_deadline(), None);
    assert!(!p.speaker_enabled());
    p.advance_to(tick(10_000));
    assert_eq!(irq.take_rising_edges(), 0);
    program(&mut p, 0, 0x34, 100);
    assert_eq!(p.next_deadline(), Some(tick(10_100)), "counts from the present");
}

#[test]
fn gate_low_in_mode2_holds_and_rising_edge_reloads() {
    let (mut p, _irq) = pit();
    p.write(PORT_B, 1, 0x01);
    program(&mut p, 2, 0xb4, 1000);
    p.advance_to(tick(300));
    // New count while counting: pending until the period's end …
    p.write(2, 1, 0xf4);
    p.write(2, 1, 0x01); // 500
                         // … but the gate drops first: counting stops, OUT2 high.
    p.advance_to(tick(400));
    p.write(PORT_B, 1, 0x00);
    p.advance_to(tick(5000));
    assert_eq!(latched_count(&mut p, 2), 600, "held at the gate's falling edge");
    assert_eq!(p.read(PORT_B, 1) & 0x20, 0x20);
    let s = p.save();
    assert!(Pit8254::new(Box::new(crate::irq::NoIrq)).restore(&s).is_ok(), "state stays valid");
    p.write(PORT_B, 1, 0x01);
    p.advance_to(tick(5100));
    assert_eq!(latched_count(&mut p, 2), 400, "reloaded with the new count at the rising edge");
}
