//! A deterministic-mode run (`-icount`) of the timer-driven Multiboot
//! kernel gives the same console bytes and retires the same number of
//! instructions with the JIT as with the interpreter alone, whatever the
//! translation threshold: translated blocks end where the interpreter's do,
//! so interrupts arrive at the same instruction boundaries.

use kagami_devices::SharedBuffer;
use kagami_machine::accel::{install, stats_report, JitOptions};
use kagami_machine::clock::ClockMode;
use kagami_machine::pc::{MachineKind, Pc, PcConfig, Stop};
use kagami_tests::mbkernel::{timer_kernel, DEBUGCON, EXIT_PORT};

fn run(jit: JitOptions) -> (Stop, Vec<u8>, u64, String) {
    let con = SharedBuffer::new();
    let mut pc = Pc::new(PcConfig {
        kind: MachineKind::Pc,
        ram_bytes: 32 << 20,
        kernel: Some(timer_kernel()),
        kernel_path: "timer".into(),
        initrd: None,
        append: String::new(),
        serial: vec![None, None],
        debug_exit: Some((EXIT_PORT, 4)),
        debugcon: Some((DEBUGCON, con.sink())),
        clock: ClockMode::Instructions { shift: 3 },
        no_reboot: true,
        rtc_start: 0,
    })
    .expect("machine builds");
    install(&mut pc.cpu, &jit);
    let stop = pc.run(Some(50_000_000));
    (stop, con.contents(), pc.cpu.s.icount, stats_report(&pc.cpu))
}

#[test]
fn jit_and_interpreter_runs_are_identical_in_deterministic_mode() {
    let (stop, out, n, _) = run(JitOptions {
        enabled: false,
        ..JitOptions::default()
    });
    assert_eq!(stop, Stop::Exit((0x11 << 1) | 1));
    assert_eq!(out.len(), 100);
    for threshold in [0, 1, 3, 10] {
        // (With the background compiler, which blocks run translated
        // depends on the host's timing; what the guest sees must not.)
        for background in [false, true] {
            let (s2, o2, n2, stats) = run(JitOptions {
                enabled: true,
                threshold,
                stats: true,
                background,
            });
            assert_eq!(
                (s2, &o2, n2),
                (stop, &out, n),
                "threshold {threshold}, background {background}: {stats}"
            );
            assert!(
                background || !stats.starts_with("jit: 0 blocks"),
                "threshold {threshold}: nothing translated: {stats}"
            );
        }
    }
}
