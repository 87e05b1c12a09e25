//! `restore` is the other door into a device: a snapshot file can hold
//! anything. Mutated states must either be rejected or leave a device that
//! still survives guest traffic and time without panicking.

use kagami_devices::{NoIrq, NoRequests, PortIoDevice, SharedBuffer, Snapshot, Timed};
use kagami_devices::{Pic8259, Pit8254, Rtc, Uart16550, I8042};
use serde_json::Value;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const INTERESTING: [i128; 14] = [
    0,
    1,
    2,
    3,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x1_0000,
    u32::MAX as i128,
    i64::MAX as i128,
    u64::MAX as i128,
];

/// Change one number (or boolean, or array length) somewhere in `v`.
fn mutate(v: &mut Value, rng: &mut Rng) {
    match v {
        Value::Number(_) => {
            let n = INTERESTING[(rng.next() % INTERESTING.len() as u64) as usize];
            let n = if rng.next().is_multiple_of(4) { -n } else { n };
            *v = serde_json::from_str(&n.to_string()).unwrap();
        }
        Value::Bool(b) => *b = !*b,
        Value::Null => *v = Value::from(rng.next() % 300),
        Value::Array(a) => {
            if a.is_empty() || rng.next().is_multiple_of(5) {
                if rng.next().is_multiple_of(2) {
                    a.pop();
                } else {
                    a.push(a.first().cloned().unwrap_or(Value::from(0)));
                }
            } else {
                let i = (rng.next() % a.len() as u64) as usize;
                mutate(&mut a[i], rng);
            }
        }
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            if let Some(k) = keys.get((rng.next() % keys.len().max(1) as u64) as usize) {
                mutate(o.get_mut(k).unwrap(), rng);
            }
        }
        Value::String(_) => {}
    }
}

fn check<D: PortIoDevice + Snapshot + Timed>(seed: u64, make: impl Fn() -> D, span: u16, setup: impl Fn(&mut D)) {
    let mut rng = Rng(seed);
    let mut base = make();
    setup(&mut base);
    let state = serde_json::to_value(base.save()).unwrap();
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..2000 {
        let mut v = state.clone();
        for _ in 0..1 + rng.next() % 3 {
            mutate(&mut v, &mut rng);
        }
        let Ok(s) = serde_json::from_value::<D::State>(v) else { continue };
        let mut d = make();
        if d.restore(&s).is_err() {
            rejected += 1;
            continue;
        }
        accepted += 1;
        let mut now = 0;
        for _ in 0..300 {
            let off = (rng.next() % span as u64) as u16;
            if rng.next().is_multiple_of(2) {
                d.write(off, 1, rng.next() as u32);
            } else {
                d.read(off, 1);
            }
            now += rng.next() % 5_000_000;
            d.advance_to(now);
            if let Some(dl) = d.next_deadline() {
                d.advance_to(dl);
            }
        }
        let again = d.save();
        make().restore(&again).expect("a state reached from an accepted one is valid");
    }
    assert!(
        accepted > 0 && rejected > 0,
        "mutations both accepted ({accepted}) and rejected ({rejected})"
    );
}

/// The i8042 has no clock; give it one that does nothing.
struct Kbc(I8042);

impl PortIoDevice for Kbc {
    fn read(&mut self, o: u16, s: u8) -> u32 {
        self.0.read(o, s)
    }
    fn write(&mut self, o: u16, s: u8, v: u32) {
        self.0.write(o, s, v)
    }
}

impl Snapshot for Kbc {
    type State = <I8042 as Snapshot>::State;
    fn save(&self) -> Self::State {
        self.0.save()
    }
    fn restore(&mut self, s: &Self::State) -> Result<(), kagami_devices::StateError> {
        self.0.restore(s)
    }
}

impl Timed for Kbc {
    fn advance_to(&mut self, _: u64) {}
    fn next_deadline(&self) -> Option<u64> {
        None
    }
}

struct Pic(Pic8259);

impl PortIoDevice for Pic {
    fn read(&mut self, o: u16, s: u8) -> u32 {
        if self.0.pending() {
            self.0.acknowledge();
        }
        self.0.read(o, s)
    }
    fn write(&mut self, o: u16, s: u8, v: u32) {
        self.0.set_irq((v % 16) as u8, v & 0x100 != 0);
        self.0.write(o, s, v)
    }
}

impl Snapshot for Pic {
    type State = <Pic8259 as Snapshot>::State;
    fn save(&self) -> Self::State {
        self.0.save()
    }
    fn restore(&mut self, s: &Self::State) -> Result<(), kagami_devices::StateError> {
        self.0.restore(s)
    }
}

impl Timed for Pic {
    fn advance_to(&mut self, _: u64) {}
    fn next_deadline(&self) -> Option<u64> {
        None
    }
}

#[test]
fn mutated_snapshots_are_rejected_or_harmless() {
    for seed in [1u64, 0xabcdef, 0x5555_aaaa_1234, 42, 0x0123_4567_89ab_cdef] {
        check(
            seed,
            || Pit8254::new(Box::new(NoIrq)),
            5,
            |p| {
                p.write(3, 1, 0x34);
                p.write(0, 1, 0x10);
                p.write(0, 1, 0x20);
                p.advance_to(123_456);
                p.write(0, 1, 0x99);
            },
        );
        check(
            seed,
            || Rtc::new(1_600_000_000, Box::new(NoIrq)),
            2,
            |r| {
                r.write(0, 1, 0x0b);
                r.write(1, 1, 0x72);
                r.advance_to(2_500_000_000);
            },
        );
        check(
            seed,
            || Uart16550::new(SharedBuffer::new().sink(), Box::new(NoIrq)),
            8,
            |u| {
                u.write(2, 1, 0x81);
                u.write(1, 1, 0x0f);
                u.receive(b"0123456789abcdefghij");
            },
        );
        check(
            seed,
            || Kbc(I8042::new(Box::new(NoIrq), Box::new(NoIrq), Box::new(NoRequests))),
            2,
            |k| {
                k.0.write(1, 1, 0xa8);
                k.0.key_input(&[0x1c, 0xf0]);
                k.0.write(1, 1, 0xd4);
            },
        );
        check(seed, || Pic(Pic8259::new()), 6, |p| p.0.write(0, 1, 0x11));
    }
}
