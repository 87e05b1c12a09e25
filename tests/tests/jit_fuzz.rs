//! The JIT against the interpreter on the fuzz target's machines: seeded
//! random code in real, 16-bit protected, 32-bit protected and 64-bit mode,
//! run once interpreted and once with every block translated at first
//! sight. Registers, RIP, RFLAGS, the instruction count, how the run ended
//! and all of guest memory must be identical.

use kagami_cpu::fuzz::{machine, FuzzMode, BUDGET};
use kagami_cpu::{Cpu, Exit, NullBus};
use kagami_jit::{Jit, JitConfig};

const INPUTS_PER_MODE: usize = 150;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Random code biased towards bytes the inline translator handles (ALU
/// opcodes with register ModRM, MOV, INC/DEC, Jcc) so blocks get longer.
fn code(rng: &mut Rng) -> Vec<u8> {
    const COMMON: [u8; 16] = [
        0x01, 0x29, 0x31, 0x39, 0x85, 0x89, 0x8b, 0x8d, 0x83, 0x81, 0xff, 0x75, 0x74, 0x48, 0x66, 0x40,
    ];
    let len = 1 + (rng.next() % 64) as usize;
    (0..len)
        .map(|_| {
            let r = rng.next();
            match r % 4 {
                0 => COMMON[(r >> 8) as usize % COMMON.len()],
                // A register-form ModRM byte.
                1 => 0xc0 | (r >> 16) as u8,
                _ => (r >> 24) as u8,
            }
        })
        .collect()
}

fn state(cpu: &Cpu, exit: Exit) -> (Exit, Vec<u64>, u64, u64, u64, u64) {
    let mut ram = vec![0u8; cpu.mem.len() as usize];
    cpu.mem.read(0, &mut ram);
    let hash = ram
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3));
    (exit, cpu.s.gpr.to_vec(), cpu.s.rip, cpu.s.flags(), cpu.s.icount, hash)
}

#[test]
fn translated_random_code_matches_the_interpreter_in_every_mode() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut translated = 0;
    for mode in FuzzMode::ALL {
        for n in 0..INPUTS_PER_MODE {
            let code = code(&mut rng);
            let mut interp = machine(mode, &code);
            let e1 = interp.run(&mut NullBus, BUDGET);
            let mut jit = machine(mode, &code);
            Jit::install(
                &mut jit,
                JitConfig {
                    threshold: 0,
                    ..JitConfig::default()
                },
            );
            let e2 = jit.run(&mut NullBus, BUDGET);
            let (a, b) = (state(&interp, e1), state(&jit, e2));
            assert!(
                a == b,
                "{mode:?} input {n} ({code:02x?}): interpreter {:?} gpr {:x?} rip {:x} flags {:x} icount {}, \
                 JIT {:?} gpr {:x?} rip {:x} flags {:x} icount {} (memory equal: {})",
                a.0,
                a.1,
                a.2,
                a.3,
                a.4,
                b.0,
                b.1,
                b.2,
                b.3,
                b.4,
                a.5 == b.5
            );
            let report = jit.translator().unwrap().stats_report();
            translated += (!report.starts_with("jit: 0 blocks")) as usize;
        }
    }
    assert!(translated > INPUTS_PER_MODE * 2, "only {translated} runs translated anything");
}
