use super::*;
use crate::irq::RecordingIrq;
use crate::request::RequestQueue;

struct Rig {
    c: I8042,
    irq1: RecordingIrq,
    irq12: RecordingIrq,
    req: RequestQueue,
}

fn rig() -> Rig {
    let (irq1, irq12, req) = (RecordingIrq::new(), RecordingIrq::new(), RequestQueue::new());
    Rig {
        c: I8042::new(irq1.line(), irq12.line(), req.sink()),
        irq1,
        irq12,
        req,
    }
}

impl Rig {
    fn cmd(&mut self, v: u8) {
        self.c.write(COMMAND, 1, v as u32);
    }
    fn data(&mut self, v: u8) {
        self.c.write(DATA, 1, v as u32);
    }
    fn status(&mut self) -> u8 {
        self.c.read(COMMAND, 1) as u8
    }
    /// Everything in the output buffer, in order.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.status() & STATUS_OBF != 0 {
            out.push(self.c.read(DATA, 1) as u8);
        }
        out
    }
}

#[test]
fn self_test_and_command_byte() {
    let mut r = rig();
    assert_eq!(r.status(), STATUS_UNLOCKED);
    r.cmd(0xaa);
    assert_eq!(r.status(), STATUS_UNLOCKED | STATUS_A2 | STATUS_OBF);
    assert_eq!(r.drain(), vec![0x55]);
    r.cmd(0x20);
    assert_eq!(r.drain(), vec![0x61]);
    r.cmd(0x60);
    r.data(0x47);
    assert_eq!(
        r.status() & (STATUS_SYS | STATUS_A2),
        STATUS_SYS,
        "SYS from the command byte; last write was data"
    );
    r.cmd(0x20);
    assert_eq!(r.drain(), vec![0x47]);
    r.cmd(0xab);
    r.cmd(0xa9);
    assert_eq!(r.drain(), vec![0x00, 0x00]);
    // Empty buffer: port 0x60 reads the stale byte.
    assert_eq!(r.c.read(DATA, 1), 0x00);
}

#[test]
fn keyboard_reset_and_identify_through_translation() {
    let mut r = rig();
    r.irq1.take_rising_edges();
    r.data(0xff);
    assert_eq!(r.drain(), vec![0xfa, 0xaa]);
    assert_eq!(r.irq1.take_rising_edges(), 2, "one IRQ1 edge per byte");
    r.data(0xf2);
    assert_eq!(r.drain(), vec![0xfa, 0xab, 0x41], "0x83 translates to 0x41");
    r.data(0xee);
    assert_eq!(r.drain(), vec![0xee]);
    r.data(0xed);
    r.data(0x07);
    assert_eq!(r.drain(), vec![0xfa, 0xfa]);
    assert_eq!(r.c.save().keyboard.leds, 7);
    r.data(0xf0);
    r.data(0x00);
    assert_eq!(r.drain(), vec![0xfa, 0xfa, 0x41], "set 2, translated");
    r.data(0xf0);
    r.data(0x03);
    assert_eq!(r.drain(), vec![0xfa, 0xfe], "set 3 not supported");
    r.data(0x12);
    assert_eq!(r.drain(), vec![0xfe], "unknown command");
    r.data(0xfe);
    assert_eq!(r.drain(), vec![0xfe], "resend the last byte");
}

#[test]
fn scancodes_translated_to_set1_by_default() {
    let mut r = rig();
    r.c.key_input(&[0x1c]); // A make
    r.c.key_input(&[0xf0, 0x1c]); // A break
    r.c.key_input(&[0xe0, 0x75]); // cursor up
    r.c.key_input(&[0xe0, 0xf0, 0x75]);
    assert_eq!(r.drain(), vec![0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8]);
    // XLAT off: raw set 2.
    r.cmd(0x60);
    r.data(0x01);
    r.c.key_input(&[0xf0, 0x1c]);
    assert_eq!(r.drain(), vec![0xf0, 0x1c]);
    // Keyboard in set 1, no translation: the keyboard converts itself.
    r.data(0xf0);
    r.data(0x01);
    assert_eq!(r.drain(), vec![0xfa, 0xfa]);
    r.c.key_input(&[0x1c, 0xf0, 0x1c]);
    assert_eq!(r.drain(), vec![0x1e, 0x9e]);
}

#[test]
fn disabled_ports_and_scanning_hold_input() {
    let mut r = rig();
    r.cmd(0xad);
    r.c.key_input(&[0x1c]);
    assert_eq!(r.status() & STATUS_OBF, 0);
    r.cmd(0xae);
    assert_eq!(r.drain(), vec![0x1e]);
    r.data(0xf5);
    assert_eq!(r.drain(), vec![0xfa]);
    r.c.key_input(&[0x1c]);
    assert!(r.drain().is_empty(), "scanning disabled drops keys");
    r.data(0xf4);
    r.c.key_input(&[0x1c]);
    assert_eq!(r.drain(), vec![0xfa, 0x1e]);
    // The keyboard's buffer holds 16 bytes; a sequence that does not fit is dropped whole.
    r.cmd(0xad);
    for _ in 0..8 {
        r.c.key_input(&[0xe0, 0x75]);
    }
    r.c.key_input(&[0x1c]);
    r.cmd(0xae);
    assert_eq!(r.drain().len(), 16);
}

#[test]
fn mouse_streaming_and_commands() {
    let mut r = rig();
    r.cmd(0xa8);
    r.cmd(0x60);
    r.data(0x43);
    r.cmd(0xd4);
    r.data(0xff);
    assert_eq!(r.status() & (STATUS_OBF | STATUS_AUX_OBF), STATUS_OBF | STATUS_AUX_OBF);
    assert!(r.irq12.level() && !r.irq1.level());
    assert_eq!(r.drain(), vec![0xfa, 0xaa, 0x00]);
    r.cmd(0xd4);
    r.data(0xf2);
    assert_eq!(r.drain(), vec![0xfa, 0x00]);
    for v in [0xf3, 200, 0xe8, 3] {
        r.cmd(0xd4);
        r.data(v);
    }
    assert_eq!(r.drain(), vec![0xfa; 4]);
    r.c.mouse_input(5, -3, 1);
    assert!(r.drain().is_empty(), "reporting off");
    r.cmd(0xd4);
    r.data(0xf4);
    r.irq12.take_rising_edges();
    r.c.mouse_input(5, -3, 1);
    assert_eq!(
        r.drain(),
        vec![0xfa, 0x29, 0x05, 0xfd],
        "motion while reporting was off is not kept"
    );
    r.c.mouse_input(300, 0, 0);
    assert_eq!(r.drain(), vec![0x48, 0xff, 0x00], "X overflow, clamped");
    r.cmd(0xd4);
    r.data(0xe9);
    assert_eq!(r.drain(), vec![0xfa, 0x20, 3, 200]);
    assert!(r.irq12.take_rising_edges() >= 7);
    // Aux port disabled: mouse bytes wait.
    r.cmd(0xa7);
    r.c.mouse_input(1, 1, 0);
    assert_eq!(r.status() & STATUS_OBF, 0);
    r.cmd(0xa8);
    assert_eq!(r.drain(), vec![0x08, 0x01, 0x01]);
}

#[test]
fn output_port_a20_and_reset_requests() {
    let mut r = rig();
    r.cmd(0xd0);
    assert_eq!(r.drain(), vec![0x03]);
    r.cmd(0xd1);
    r.data(0x01);
    assert!(!r.c.a20());
    assert_eq!(r.req.take(), vec![MachineRequest::SetA20(false)]);
    r.cmd(0xdf);
    assert_eq!(r.req.take(), vec![MachineRequest::SetA20(true)]);
    r.cmd(0xdf);
    assert_eq!(
        r.req.take(),
        vec![MachineRequest::SetA20(true)],
        "reported even unchanged: last writer wins"
    );
    r.cmd(0xd1);
    r.data(0x02);
    assert_eq!(r.req.take(), vec![MachineRequest::SetA20(true), MachineRequest::Reset]);
    r.cmd(0xfe);
    assert_eq!(r.req.take(), vec![MachineRequest::Reset]);
    r.cmd(0xff);
    assert!(r.req.take().is_empty(), "0xFF pulses nothing");
    // D2 / D3 loop bytes back as keyboard / mouse data.
    r.cmd(0x60);
    r.data(0x03);
    r.cmd(0xd2);
    r.data(0x5a);
    assert!(r.irq1.level());
    assert_eq!(r.drain(), vec![0x5a]);
    r.cmd(0xd3);
    r.data(0x77);
    assert_eq!(r.status() & STATUS_AUX_OBF, STATUS_AUX_OBF);
    assert!(r.irq12.level());
    assert_eq!(r.drain(), vec![0x77]);
}

#[test]
fn save_restore_round_trip_and_validation() {
    let mut r = rig();
    r.cmd(0xad);
    r.c.key_input(&[0x1c, 0xf0]);
    r.cmd(0x20);
    r.cmd(0xd4);
    let s = r.c.save();
    let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    let mut q = rig();
    q.c.restore(&back).unwrap();
    assert_eq!(q.c.save(), s);
    assert!(q.irq1.level());
    for x in [&mut r, &mut q] {
        x.data(0xf2); // goes to the mouse (pending 0xD4)
        x.cmd(0xae);
    }
    assert_eq!(r.drain(), q.drain());

    let mut bad = s.clone();
    bad.pending_command = Some(0xaa);
    assert!(q.c.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.keyboard.scancode_set = 3;
    assert!(q.c.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.output_port = 0x02;
    assert!(q.c.restore(&bad).is_err(), "reset line held active");
    let mut bad = s.clone();
    bad.mouse.queue = vec![0; 40];
    assert!(q.c.restore(&bad).is_err());
}

#[test]
fn reset_restores_power_on_state() {
    let mut r = rig();
    r.cmd(0x60);
    r.data(0x00);
    r.data(0xf5);
    r.c.key_input(&[0x1c]);
    r.c.reset();
    assert_eq!(r.c.save(), rig().c.save());
    assert!(!r.irq1.level());
}
