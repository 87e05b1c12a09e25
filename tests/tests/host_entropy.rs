//! RDRAND/RDSEED entropy (issue 4): in host-clock mode the machine seeds the
//! CPU's generator from the host (getrandom) at power-on, so KASLR and the
//! guest's early entropy differ between runs; in deterministic mode the
//! fixed power-on seed stays, so a replay draws the same numbers.

use kagami_cpu::Cpu;
use kagami_machine::clock::ClockMode;
use kagami_machine::pc::{HostInput, MachineKind, Pc, PcConfig};
use kagami_tests::mbkernel::kernel;

fn machine(clock: ClockMode) -> Pc {
    Pc::new(PcConfig {
        kind: MachineKind::Pc,
        ram_bytes: 32 << 20,
        kernel: Some(kernel()),
        kernel_path: "mbtest".into(),
        initrd: None,
        append: String::new(),
        serial: vec![None, None],
        debug_exit: None,
        debugcon: None,
        clock,
        no_reboot: true,
        rtc_start: 0,
    })
    .expect("machine builds")
}

fn fixed_seed() -> u64 {
    Cpu::with_ram(1 << 20).unwrap().rng_state
}

#[test]
fn host_mode_seeds_rdrand_from_the_host_and_deterministic_mode_does_not() {
    let det = ClockMode::Instructions { shift: 3 };
    assert_eq!(machine(det).cpu.rng_state, fixed_seed());
    assert_eq!(machine(det).cpu.rng_state, machine(det).cpu.rng_state);
    let seeds: Vec<u64> = (0..3).map(|_| machine(ClockMode::Host).cpu.rng_state).collect();
    // Three 64-bit draws from getrandom: equal ones mean no seeding.
    assert!(
        seeds[0] != seeds[1] && seeds[1] != seeds[2] && !seeds.contains(&fixed_seed()),
        "host-mode seeds {seeds:x?}"
    );
}

#[test]
fn entropy_enters_through_the_input_doorway() {
    let mut pc = machine(ClockMode::Instructions { shift: 3 });
    assert_eq!(pc.apply_input(HostInput::Entropy(0x1234)), None);
    assert_eq!(pc.cpu.rng_state, 0x1234);
    // A zero seed would stall the xorshift generator at zero.
    pc.apply_input(HostInput::Entropy(0));
    assert_ne!(pc.cpu.rng_state, 0);
}
