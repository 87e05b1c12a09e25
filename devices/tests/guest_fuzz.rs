//! Whatever a guest writes, in whatever order, a device must not panic, and
//! every state it reaches must be one its own `restore` accepts (a snapshot
//! taken at any instant must load again). Deterministic pseudo-random
//! sequences (xorshift), so a failure reproduces.

use kagami_devices::{IsaDebugExit, IsaDebugcon, Pic8259, Pit8254, Port92, PostCode, ResetControl, Rtc, Uart16550, I8042};
use kagami_devices::{NoIrq, NoRequests, PortIoDevice, RecordingIrq, SharedBuffer, Snapshot, Timed};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random accesses inside `span` offsets (plus a few outside), with time
/// moving forward in random steps; `extra` injects doorway input.
fn hammer<D: PortIoDevice + Snapshot>(
    seed: u64,
    mut dev: D,
    span: u16,
    mut advance: impl FnMut(&mut D, u64),
    mut extra: impl FnMut(&mut D, &mut Rng),
    fresh: impl Fn() -> D,
) {
    let mut rng = Rng(seed);
    let mut now = 0u64;
    for i in 0..60_000 {
        let offset = rng.below(span as u64 + 2) as u16;
        let size = [1u8, 1, 1, 2, 4][rng.below(5) as usize];
        // Bias values towards the interesting ones (commands, masks, 0, ff).
        let value = match rng.below(4) {
            0 => 0,
            1 => 0xff,
            _ => rng.next() as u32,
        };
        if rng.below(2) == 0 {
            dev.write(offset, size, value);
        } else {
            dev.read(offset, size);
        }
        if rng.below(8) == 0 {
            now += rng.below(3_000_000);
            advance(&mut dev, now);
        }
        if rng.below(16) == 0 {
            extra(&mut dev, &mut rng);
        }
        if i % 997 == 0 {
            let s = dev.save();
            let mut other = fresh();
            if let Err(e) = other.restore(&s) {
                panic!("seed {seed}, step {i}: a reachable state was rejected: {e}\n{s:?}");
            }
            assert_eq!(other.save(), s);
        }
    }
}

const SEEDS: [u64; 3] = [0x9e37_79b9_7f4a_7c15, 0x1234_5678, 0xdead_beef_cafe];

#[test]
fn pic_survives_random_guests() {
    for seed in SEEDS {
        hammer(
            seed,
            Pic8259::new(),
            6,
            |_, _| {},
            |p, r| {
                p.set_irq(r.below(16) as u8, r.below(2) == 0);
                if p.pending() {
                    p.acknowledge();
                }
            },
            Pic8259::new,
        );
    }
}

#[test]
fn pit_survives_random_guests() {
    for seed in SEEDS {
        let irq = RecordingIrq::new();
        hammer(
            seed,
            Pit8254::new(irq.line()),
            5,
            |p, t| p.advance_to(t),
            |_, _| {},
            || Pit8254::new(Box::new(NoIrq)),
        );
    }
}

#[test]
fn rtc_survives_random_guests() {
    for seed in SEEDS {
        hammer(
            seed,
            Rtc::new(1_700_000_000, Box::new(NoIrq)),
            2,
            |r, t| r.advance_to(t),
            |r, g| {
                if g.below(8) == 0 {
                    r.set_time(g.next() as i64 >> 20);
                }
            },
            || Rtc::new(0, Box::new(NoIrq)),
        );
    }
}

#[test]
fn uart_survives_random_guests() {
    for seed in SEEDS {
        hammer(
            seed,
            Uart16550::new(SharedBuffer::new().sink(), Box::new(NoIrq)),
            8,
            |u, t| u.advance_to(t),
            |u, g| {
                let n = g.below(40) as usize;
                u.receive(&vec![g.next() as u8; n]);
                u.set_modem_inputs(g.below(2) == 0, g.below(2) == 0, g.below(2) == 0, g.below(2) == 0);
            },
            || Uart16550::new(SharedBuffer::new().sink(), Box::new(NoIrq)),
        );
    }
}

#[test]
fn i8042_survives_random_guests() {
    for seed in SEEDS {
        hammer(
            seed,
            I8042::new(Box::new(NoIrq), Box::new(NoIrq), Box::new(NoRequests)),
            2,
            |_, _| {},
            |k, g| {
                let codes: Vec<u8> = (0..g.below(4)).map(|_| g.next() as u8).collect();
                k.key_input(&codes);
                k.mouse_input(g.next() as i32 >> 20, g.next() as i32 >> 20, g.next() as u8);
            },
            || I8042::new(Box::new(NoIrq), Box::new(NoIrq), Box::new(NoRequests)),
        );
    }
}

#[test]
fn small_devices_survive_random_guests() {
    for seed in SEEDS {
        hammer(
            seed,
            Port92::new(true, Box::new(NoRequests)),
            1,
            |_, _| {},
            |_, _| {},
            || Port92::new(false, Box::new(NoRequests)),
        );
        hammer(seed, PostCode::new(), 1, |_, _| {}, |_, _| {}, PostCode::new);
        hammer(
            seed,
            ResetControl::new(Box::new(NoRequests)),
            1,
            |_, _| {},
            |_, _| {},
            || ResetControl::new(Box::new(NoRequests)),
        );
        hammer(
            seed,
            IsaDebugExit::new(4, Box::new(NoRequests)),
            4,
            |_, _| {},
            |_, _| {},
            || IsaDebugExit::new(4, Box::new(NoRequests)),
        );
        hammer(
            seed,
            IsaDebugcon::new(SharedBuffer::new().sink()),
            1,
            |_, _| {},
            |_, _| {},
            || IsaDebugcon::new(SharedBuffer::new().sink()),
        );
    }
}
