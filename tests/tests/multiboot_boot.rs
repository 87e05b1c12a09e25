//! A Multiboot test kernel, assembled here with iced-x86 into an ELF32
//! image, boots on the PC machine through the bios crate's Multiboot loader.
//! It checks the boot protocol from inside the guest (EAX magic, the info
//! structure's command line and module), prints on isa-debugcon and leaves
//! through isa-debug-exit, whose exit code the test checks: the whole
//! direct-boot path (loader → entry state → board → devices) in one run.

use kagami_devices::SharedBuffer;
use kagami_machine::clock::ClockMode;
use kagami_machine::pc::{MachineKind, Pc, PcConfig, Stop};
use kagami_tests::mbkernel::{kernel, timer_kernel, DEBUGCON, EXIT_PORT};

fn boot(kind: MachineKind, module: &[u8]) -> (Stop, String) {
    let con = SharedBuffer::new();
    let mut pc = Pc::new(PcConfig {
        kind,
        ram_bytes: 32 << 20,
        kernel: Some(kernel()),
        kernel_path: "/boot/mbtest".into(),
        initrd: Some(module.to_vec()),
        append: "hello=kagami".into(),
        serial: vec![None, None],
        debug_exit: Some((EXIT_PORT, 4)),
        debugcon: Some((DEBUGCON, con.sink())),
        clock: ClockMode::Instructions { shift: 3 },
        no_reboot: true,
        rtc_start: 0,
    })
    .expect("machine builds");
    kagami_jit::Jit::install_from_env(&mut pc.cpu);
    let stop = pc.run(Some(10_000_000));
    (stop, String::from_utf8_lossy(&con.contents()).into_owned())
}

#[test]
fn multiboot_kernel_reports_through_debug_exit() {
    let module = [1u8, 2, 3, 4, 5, 100];
    for kind in [MachineKind::Pc, MachineKind::Q35] {
        let (stop, con) = boot(kind, &module);
        assert_eq!(con, "/boot/mbtest hello=kagami", "{kind:?}");
        // isa-debug-exit: code (V << 1) | 1 with V = 115.
        assert_eq!(stop, Stop::Exit((115 << 1) | 1), "{kind:?}");
    }
}

fn boot_timer(clock: ClockMode) -> (Stop, Vec<u8>, u64) {
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
        clock,
        no_reboot: true,
        rtc_start: 0,
    })
    .expect("machine builds");
    kagami_jit::Jit::install_from_env(&mut pc.cpu);
    let stop = pc.run(Some(50_000_000));
    (stop, con.contents(), pc.cpu.s.icount)
}

#[test]
fn deterministic_mode_repeats_a_timer_driven_run_exactly() {
    let clock = ClockMode::Instructions { shift: 3 };
    let (stop1, out1, n1) = boot_timer(clock);
    let (stop2, out2, n2) = boot_timer(clock);
    assert_eq!(stop1, Stop::Exit((0x11 << 1) | 1));
    assert_eq!(out1.len(), 100, "50 ticks, two bytes each");
    assert_eq!((stop1, &out1, n1), (stop2, &out2, n2), "two deterministic runs differ");
    // The halted CPU wakes exactly at each tick, so the handler latches the
    // count a few instructions (8 ns each) into the new 1193-tick period.
    for c in out1.chunks(2) {
        let count = u16::from_le_bytes([c[0], c[1]]);
        assert!((1150..=1193).contains(&count), "PIT count {count} sampled in the IRQ0 handler");
    }
}
