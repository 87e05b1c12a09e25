//! Devices depend only on the instants the machine hands them, not on how
//! often it calls: stepping in small increments and jumping from deadline
//! to deadline must end in the same state with the same interrupts.

use kagami_devices::{pit, rtc, PortIoDevice, RecordingIrq, SharedBuffer, Snapshot, Timed};
use kagami_devices::{Pit8254, Rtc, Uart16550};

/// Drive `dev` to `end` two ways and compare. `setup` programs it at t=0;
/// `step` is the fine increment (smaller than any period used, so no edge
/// is collapsed). Returns the number of rising edges seen.
fn compare<D: Timed + Snapshot>(make: impl Fn(&RecordingIrq) -> D, setup: impl Fn(&mut D), step: u64, end: u64) -> usize {
    let (irq_a, irq_b) = (RecordingIrq::new(), RecordingIrq::new());
    let (mut a, mut b) = (make(&irq_a), make(&irq_b));
    setup(&mut a);
    setup(&mut b);
    let mut t = 0;
    while t < end {
        t = (t + step).min(end);
        a.advance_to(t);
    }
    while let Some(d) = b.next_deadline().filter(|&d| d <= end) {
        b.advance_to(d);
    }
    b.advance_to(end);
    assert_eq!(a.save(), b.save());
    let edges = irq_a.take_rising_edges();
    assert_eq!(edges, irq_b.take_rising_edges());
    edges
}

#[test]
fn pit_rate_generator() {
    let edges = compare(
        |irq| Pit8254::new(irq.line()),
        |p| {
            p.write(pit::CONTROL, 1, 0x34);
            p.write(0, 1, 0xe8);
            p.write(0, 1, 0x03); // 1000 ticks ≈ 838 µs
        },
        3_001,
        50_000_000,
    );
    assert_eq!(edges, 50_000_000 * 1_193_182 / 1_000_000_000 / 1000);
}

#[test]
fn pit_square_wave_many_hours() {
    // 18.2 Hz for three virtual hours: exact count, no drift.
    let irq = RecordingIrq::new();
    let mut p = Pit8254::new(irq.line());
    p.write(pit::CONTROL, 1, 0x36);
    p.write(0, 1, 0);
    p.write(0, 1, 0);
    irq.take_rising_edges();
    let end = 3 * 3600 * 1_000_000_000u64;
    let mut n = 0;
    while let Some(d) = p.next_deadline().filter(|&d| d <= end) {
        p.advance_to(d);
        n += irq.take_rising_edges();
    }
    assert_eq!(n as u64, 3 * 3600 * 1_193_182 / 65536);
}

#[test]
fn rtc_periodic_and_update() {
    compare(
        |irq| Rtc::new(1_000_000_000, irq.line()),
        |r| {
            r.write(rtc::INDEX, 1, 0x0b);
            r.write(rtc::DATA, 1, 0x52); // PIE | UIE | 24h
        },
        97_000,
        3_000_000_000,
    );
}

#[test]
fn uart_character_timeout() {
    compare(
        |irq| Uart16550::new(SharedBuffer::new().sink(), irq.line()),
        |u| {
            u.write(4, 1, 0x08);
            u.write(1, 1, 0x01);
            u.write(2, 1, 0xc1);
            u.receive(b"abc");
        },
        1_000,
        2_000_000,
    );
}
