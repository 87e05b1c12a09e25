use super::*;
use crate::irq::RecordingIrq;
use crate::sink::SharedBuffer;

fn uart() -> (Uart16550, SharedBuffer, RecordingIrq) {
    let out = SharedBuffer::new();
    let irq = RecordingIrq::new();
    (Uart16550::new(out.sink(), irq.line()), out, irq)
}

const RBR: u16 = 0;
const IER: u16 = 1;
const IIR: u16 = 2;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const MSR: u16 = 6;

#[test]
fn reset_values_and_divisor_latch() {
    let (mut u, _, _) = uart();
    assert_eq!(u.read(IIR, 1), 0x01);
    assert_eq!(u.read(LSR, 1), 0x60);
    assert_eq!(u.read(MSR, 1), 0xb0);
    u.write(LCR, 1, 0x83);
    u.write(0, 1, 0x01);
    u.write(1, 1, 0x00);
    assert_eq!((u.read(0, 1), u.read(1, 1)), (1, 0));
    u.write(LCR, 1, 0x03);
    assert_eq!(u.read(IER, 1), 0, "IER is separate from DLM");
    // 115200 8N1: 10 bits × 16 / 1.8432 MHz = 86.806 µs.
    assert_eq!(u.char_time_ns(), 86_806);
    u.write(LCR, 1, 0x0f); // 8 data, parity, 2 stop
    assert_eq!(u.char_time_ns(), 104_167);
    u.write(0x07, 1, 0x5a);
    assert_eq!(u.read(0x07, 1), 0x5a);
}

#[test]
fn transmit_goes_to_the_sink_and_raises_thre() {
    let (mut u, out, irq) = uart();
    for b in b"hi\n" {
        u.write(0, 1, *b as u32);
    }
    assert_eq!(out.contents(), b"hi\n");
    assert_eq!(u.read(LSR, 1) & 0x60, 0x60);
    // THRE interrupt: enabling it with the THR empty raises it at once, but
    // the PC gates the line with OUT2.
    u.write(IER, 1, 0x02);
    assert_eq!(u.read(IIR, 1), 0x02);
    assert!(!irq.level(), "OUT2 clear: no IRQ on the bus");
    u.write(MCR, 1, 0x08);
    u.write(0, 1, b'x' as u32);
    assert!(irq.level());
    assert_eq!(u.read(IIR, 1), 0x02);
    assert!(!irq.level(), "reading IIR clears the THRE interrupt");
    assert_eq!(u.read(IIR, 1), 0x01);
    // 7-bit words transmit the low 7 bits.
    u.write(LCR, 1, 0x02);
    u.write(0, 1, 0xff);
    assert_eq!(out.take().last(), Some(&0x7f));
}

#[test]
fn loopback_feeds_the_receiver_and_modem_lines() {
    let (mut u, out, irq) = uart();
    u.write(IER, 1, 0x01);
    u.write(MCR, 1, 0x18);
    u.write(0, 1, b'A' as u32);
    assert!(out.contents().is_empty());
    assert_eq!(u.read(LSR, 1) & 1, 1);
    assert_eq!(u.read(IIR, 1), 0x04);
    assert!(!irq.level(), "loopback disconnects the interrupt output");
    assert_eq!(u.read(RBR, 1), b'A' as u32);
    assert_eq!(u.read(LSR, 1) & 1, 0);
    // Modem outputs loop back to the inputs.
    let _ = u.read(MSR, 1);
    u.write(MCR, 1, 0x1f);
    assert_eq!(u.read(MSR, 1), 0xf3, "all lines up; DCTS, DDSR (DCD was already up via OUT2)");
    u.write(MCR, 1, 0x1b); // OUT1 (RI) drops
    assert_eq!(u.read(MSR, 1), 0xb4, "TERI on RI's trailing edge");
    assert_eq!(u.read(MSR, 1), 0xb0);
    // Overrun without FIFOs: two bytes, no read in between.
    u.write(IER, 1, 0x05);
    u.write(0, 1, 1);
    u.write(0, 1, 2);
    assert_eq!(u.read(IIR, 1), 0x06, "line status outranks received data");
    assert_eq!(u.read(LSR, 1) & 0x03, 0x03);
    assert_eq!(u.read(LSR, 1) & 0x03, 0x01, "reading LSR clears OE");
    assert_eq!(u.read(RBR, 1), 2, "the RBR holds the newer byte");
}

#[test]
fn fifo_trigger_level_and_character_timeout() {
    let (mut u, _, irq) = uart();
    u.write(MCR, 1, 0x08);
    u.write(IER, 1, 0x01);
    u.write(FCR, 1, 0xc7); // enable, clear both, trigger 14
    assert_eq!(u.read(IIR, 1), 0xc1);
    u.receive(&[b'a'; 13]);
    assert_eq!(u.read(IIR, 1), 0xc1, "below the trigger level");
    assert!(!irq.level());
    u.receive(b"b");
    assert_eq!(u.read(IIR, 1), 0xc4);
    assert!(irq.level());
    for _ in 0..5 {
        u.read(RBR, 1);
    }
    assert!(!irq.level(), "9 left, below trigger");
    // Four character times after the last read: timeout.
    let deadline = u.next_deadline().unwrap();
    assert_eq!(deadline, 4 * u.char_time_ns());
    u.advance_to(deadline - 1);
    assert_eq!(u.read(IIR, 1), 0xc1);
    u.advance_to(deadline);
    assert_eq!(u.read(IIR, 1), 0xcc);
    assert!(irq.level());
    let mut got = Vec::new();
    while u.read(LSR, 1) & 1 != 0 {
        got.push(u.read(RBR, 1) as u8);
    }
    assert_eq!(got, b"aaaaaaaab");
    assert!(!irq.level());
    assert_eq!(u.next_deadline(), None, "empty FIFO: no timeout");
    // Trigger level 4.
    u.write(FCR, 1, 0x41);
    u.receive(b"123");
    assert_eq!(u.read(IIR, 1), 0xc1);
    u.receive(b"4");
    assert_eq!(u.read(IIR, 1), 0xc4);
}

#[test]
fn host_input_waits_in_backlog_without_overrun() {
    let (mut u, _, _) = uart();
    u.receive(b"hello, world");
    assert_eq!(u.rx_backlog_len(), 11, "one byte in the RBR without FIFOs");
    let mut got = Vec::new();
    while u.read(LSR, 1) & 1 != 0 {
        got.push(u.read(RBR, 1) as u8);
    }
    assert_eq!(got, b"hello, world");
    assert_eq!(u.read(LSR, 1) & 0x02, 0, "no overrun");
    u.write(FCR, 1, 0x01);
    u.receive(&[7; 40]);
    assert_eq!(u.rx_backlog_len(), 24);
}

#[test]
fn loopback_disconnects_host_input() {
    let (mut u, _, _) = uart();
    u.write(MCR, 1, 0x10);
    u.receive(b"xy");
    assert_eq!(u.read(LSR, 1) & 1, 0, "host bytes wait while in loopback");
    u.write(0, 1, b'L' as u32);
    assert_eq!(u.read(RBR, 1), b'L' as u32);
    u.write(MCR, 1, 0x00);
    assert_eq!(u.read(RBR, 1), b'x' as u32);
    assert_eq!(u.read(RBR, 1), b'y' as u32);
}

#[test]
fn modem_status_interrupt() {
    let (mut u, _, irq) = uart();
    u.write(MCR, 1, 0x08);
    u.write(IER, 1, 0x08);
    assert!(!irq.level());
    u.set_modem_inputs(true, true, false, false);
    assert!(irq.level());
    assert_eq!(u.read(IIR, 1), 0x00);
    assert_eq!(u.read(MSR, 1), 0x38, "CTS, DSR, DDCD");
    assert!(!irq.level());
}

#[test]
fn save_restore_round_trip_and_validation() {
    let (mut u, _, _) = uart();
    u.write(MCR, 1, 0x08);
    u.write(IER, 1, 0x03);
    u.write(FCR, 1, 0x81);
    u.receive(&[9; 20]);
    u.advance_to(1000);
    let s = u.save();
    let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    let (mut v, _, irq2) = uart();
    v.restore(&back).unwrap();
    assert_eq!(v.save(), s);
    assert!(irq2.level());
    assert_eq!(v.next_deadline(), u.next_deadline());
    assert_eq!(v.rx_backlog_len(), 4);
    for _ in 0..20 {
        assert_eq!(v.read(RBR, 1), u.read(RBR, 1));
    }
    let mut bad = s.clone();
    bad.rx_trigger = 3;
    assert!(v.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.fifo_enabled = false;
    assert!(v.restore(&bad).is_err(), "16 bytes cannot sit in a 1-byte RBR");
    let mut bad = s.clone();
    bad.ier = 0x10;
    assert!(v.restore(&bad).is_err());
}

#[test]
fn reset_clears_registers_and_keeps_the_line() {
    let (mut u, _, irq) = uart();
    u.write(MCR, 1, 0x08);
    u.write(IER, 1, 0x01);
    u.write(FCR, 1, 0x01);
    u.receive(&[1; 20]);
    assert!(irq.level());
    u.reset();
    assert!(!irq.level());
    assert_eq!((u.read(IER, 1), u.read(IIR, 1), u.read(MCR, 1)), (0, 0x01, 0));
    assert_eq!(u.rx_backlog_len(), 3, "FIFO emptied, RBR refilled from the line");
    assert_eq!(u.read(RBR, 1), 1);
}

/// A prompt without a newline reaches the host at once, even through a
/// line-buffered sink such as `std::io::stdout()` (the interactive Linux
/// test waited forever for busybox's "~ # " before the UART flushed).
#[test]
fn a_prompt_without_newline_is_flushed_through_a_buffered_sink() {
    let out = SharedBuffer::new();
    let mut u = Uart16550::new(Box::new(std::io::LineWriter::new(out.clone())), RecordingIrq::new().line());
    for b in b"~ # " {
        u.write(0, 1, *b as u32);
    }
    assert_eq!(out.contents(), b"~ # ");
    assert_eq!(u.sink_errors(), 0);
}
