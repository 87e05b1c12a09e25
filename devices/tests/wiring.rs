//! Devices, interrupt pins and the PIC together, the way the machine wires
//! them: device lines on an `IrqPins` bank, changes replayed into the PIC
//! after every access and every `advance_to`, the CPU taking vectors with
//! `acknowledge` and sending EOIs.

use kagami_devices::{i8042, pic, pit, rtc};
use kagami_devices::{IrqPins, NoRequests, Pic8259, Pit8254, PortIoDevice, Rtc, SharedBuffer, Timed, Uart16550, I8042};

struct Board {
    pins: IrqPins,
    pic: Pic8259,
}

impl Board {
    fn new() -> Self {
        let mut pic = Pic8259::new();
        for (cmd, data, base, icw3) in [
            (pic::MASTER_COMMAND, pic::MASTER_DATA, 0x08, 0x04),
            (pic::SLAVE_COMMAND, pic::SLAVE_DATA, 0x70, 0x02),
        ] {
            for (o, v) in [(cmd, 0x11), (data, base), (data, icw3), (data, 0x01)] {
                pic.write(o, 1, v);
            }
        }
        Self { pins: IrqPins::new(), pic }
    }

    fn sync(&mut self) {
        if let Some(c) = self.pins.take_changes() {
            c.replay(|pin, level| self.pic.set_irq(pin, level));
        }
    }

    /// INTA if something is pending.
    fn take_vector(&mut self) -> Option<u8> {
        self.sync();
        self.pic.pending().then(|| self.pic.acknowledge())
    }

    fn eoi(&mut self, vector: u8) {
        if vector >= 0x70 {
            self.pic.write(pic::SLAVE_COMMAND, 1, 0x20);
        }
        self.pic.write(pic::MASTER_COMMAND, 1, 0x20);
    }
}

#[test]
fn pit_periodic_and_oneshot_through_the_pic() {
    let mut b = Board::new();
    let mut pit = Pit8254::new(b.pins.line(0));
    pit.write(pit::CONTROL, 1, 0x34);
    pit.write(0, 1, 0x00);
    pit.write(0, 1, 0x10); // 4096 ticks
    let mut vectors = Vec::new();
    for _ in 0..10 {
        let d = pit.next_deadline().unwrap();
        pit.advance_to(d);
        let v = b.take_vector().expect("IRQ0 at each period");
        vectors.push(v);
        b.eoi(v);
        assert_eq!(b.take_vector(), None);
    }
    assert_eq!(vectors, vec![0x08; 10]);

    // Linux-style one-shot: mode 0, then only LSB/MSB writes to re-arm.
    pit.write(pit::CONTROL, 1, 0x30);
    for delta in [100u32, 2000, 5] {
        pit.write(0, 1, delta & 0xff);
        pit.write(0, 1, delta >> 8);
        b.sync();
        let d = pit.next_deadline().unwrap();
        pit.advance_to(d - 1);
        assert_eq!(b.take_vector(), None, "not before terminal count");
        pit.advance_to(d);
        assert_eq!(b.take_vector(), Some(0x08));
        b.eoi(0x08);
        assert_eq!(pit.next_deadline(), None);
    }
}

#[test]
fn uart_thre_interrupts_keep_coming_while_transmitting() {
    let mut b = Board::new();
    let out = SharedBuffer::new();
    let mut com1 = Uart16550::new(out.sink(), b.pins.line(4));
    com1.write(4, 1, 0x08); // OUT2
    com1.write(1, 1, 0x02); // ETBEI
    let mut sent = 0;
    while let Some(v) = b.take_vector() {
        assert_eq!(v, 0x0c);
        // The handler: read IIR (clears THRE), send one byte, EOI.
        assert_eq!(com1.read(2, 1), 0x02);
        if sent < 5 {
            com1.write(0, 1, b'a' as u32 + sent);
            sent += 1;
        } else {
            com1.write(1, 1, 0x00);
        }
        b.eoi(v);
    }
    assert_eq!(out.contents(), b"abcde");
}

#[test]
fn rtc_on_the_slave_and_keyboard_on_irq1() {
    let mut b = Board::new();
    let mut cmos = Rtc::new(0, b.pins.line(8));
    let mut kbc = I8042::new(b.pins.line(1), b.pins.line(12), Box::new(NoRequests));
    cmos.write(rtc::INDEX, 1, 0x0b);
    cmos.write(rtc::DATA, 1, 0x42); // PIE, 24h, 1024 Hz
    for _ in 0..3 {
        let d = cmos.next_deadline().unwrap();
        cmos.advance_to(d);
        let v = b.take_vector();
        assert_eq!(v, Some(0x70));
        cmos.write(rtc::INDEX, 1, 0x0c);
        assert_eq!(cmos.read(rtc::DATA, 1) & 0xc0, 0xc0);
        b.eoi(0x70);
        assert_eq!(b.take_vector(), None);
    }
    kbc.key_input(&[0x1c, 0xf0, 0x1c]);
    let mut codes = Vec::new();
    while let Some(v) = b.take_vector() {
        assert_eq!(v, 0x09);
        codes.push(kbc.read(i8042::DATA, 1) as u8);
        b.eoi(v);
    }
    assert_eq!(codes, vec![0x1e, 0x9e], "one IRQ1 per byte");
}
