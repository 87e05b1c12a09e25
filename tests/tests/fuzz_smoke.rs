//! The fuzz target `decode_execute` (fuzz/, kagami_cpu::fuzz) run over a
//! few thousand seeded pseudo-random inputs per mode, so that CI exercises
//! what the fuzzer does on every commit: whatever the bytes, the interpreter
//! returns within the instruction budget and never panics.

use kagami_cpu::fuzz::{decode_execute, FuzzMode, BUDGET};
use kagami_cpu::Exit;

const INPUTS_PER_MODE: usize = 3000;

/// xorshift64*: a fixed seed gives the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Random code, with a bias towards the prefixes and opcode bytes that open
/// longer instructions (operand/address size, REX, 0F escapes), which pure
/// noise reaches too rarely.
fn input(rng: &mut Rng, selector: u8) -> Vec<u8> {
    const INTERESTING: [u8; 12] = [0x66, 0x67, 0x0f, 0x48, 0x4c, 0xf3, 0xf2, 0xc7, 0x8b, 0x89, 0xff, 0xe8];
    let len = 1 + (rng.next() % 48) as usize;
    let mut v = vec![selector];
    for _ in 0..len {
        let r = rng.next();
        v.push(if r % 5 == 0 {
            INTERESTING[(r >> 8) as usize % INTERESTING.len()]
        } else {
            (r >> 16) as u8
        });
    }
    v
}

#[test]
fn decode_execute_survives_random_code_in_every_mode() {
    for (k, mode) in FuzzMode::ALL.iter().enumerate() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1));
        let (mut total, mut ran_more_than_one, mut exits) = (0u64, 0usize, [0usize; 4]);
        for n in 0..INPUTS_PER_MODE {
            // Every other input runs without the decoded-block cache.
            let selector = mode.selector_byte() | if n % 2 == 1 { 4 } else { 0 };
            let data = input(&mut rng, selector);
            let o = decode_execute(&data);
            assert!(
                o.instructions <= BUDGET,
                "{mode:?}: {} instructions for {data:02x?}",
                o.instructions
            );
            total += o.instructions;
            ran_more_than_one += (o.instructions > 1) as usize;
            exits[match o.exit {
                Exit::Budget => 0,
                Exit::Halted => 1,
                Exit::TripleFault => 2,
                Exit::Stopped => 3,
            }] += 1;
        }
        eprintln!("{mode:?}: {INPUTS_PER_MODE} inputs, {total} instructions, {ran_more_than_one} ran past their first; budget/halt/shutdown/stop = {exits:?}");
        // The harness must get guests going: most random code starts with an
        // instruction the integer core implements.
        assert!(
            ran_more_than_one > INPUTS_PER_MODE / 10,
            "{mode:?}: only {ran_more_than_one} inputs ran more than one instruction"
        );
    }
}
