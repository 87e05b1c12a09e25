//! Host-clock mode: the TSC, the HPET main counter and the ACPI PM timer all
//! derive from the one machine clock, read at each access, so a guest that
//! samples them side by side sees the same elapsed time from each (Linux's
//! clocksource watchdog compares them; issue 4 saw "Marking TSC unstable due
//! to clocksource watchdog" once). A Multiboot kernel samples RDTSC, the
//! HPET counter (MMIO 0xFED000F0) and the PM timer (port 0x608), each
//! between two RDTSCs, 40 times with a busy loop in between, and stores
//! them for the test.

use iced_x86::code_asm::*;
use kagami_machine::clock::ClockMode;
use kagami_machine::pc::{MachineKind, Pc, PcConfig, Stop};
use kagami_tests::mbkernel::{elf, EXIT_PORT, LOAD};

const SAMPLES: u32 = 0x40_0000;
const N: u32 = 40;
/// Bytes per sample: TSC, HPET, TSC, PM timer, TSC (each TSC 8 bytes).
const STRIDE: usize = 32;

fn store_tsc(a: &mut CodeAssembler, at: i32) {
    a.rdtsc().unwrap();
    a.mov(dword_ptr(edi + at), eax).unwrap();
    a.mov(dword_ptr(edi + at + 4), edx).unwrap();
}

fn sampler() -> Vec<u8> {
    let entry = LOAD + 0x40;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut sample = a.create_label();
    let mut spin = a.create_label();
    a.mov(esp, 0x30_0000u32).unwrap();
    // HPET general configuration: ENABLE_CNF, so the main counter runs.
    a.mov(dword_ptr(0xfed0_0010u32), 1u32).unwrap();
    a.mov(edi, SAMPLES).unwrap();
    a.mov(ecx, N).unwrap();
    a.set_label(&mut sample).unwrap();
    store_tsc(&mut a, 0);
    a.mov(eax, dword_ptr(0xfed0_00f0u32)).unwrap();
    a.mov(dword_ptr(edi + 8), eax).unwrap();
    store_tsc(&mut a, 12);
    a.mov(dx, 0x608u32).unwrap();
    a.in_(eax, dx).unwrap();
    a.mov(dword_ptr(edi + 20), eax).unwrap();
    store_tsc(&mut a, 24);
    a.add(edi, STRIDE as u32).unwrap();
    a.mov(ebx, 20_000u32).unwrap();
    a.set_label(&mut spin).unwrap();
    a.dec(ebx).unwrap();
    a.jnz(spin).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(sample).unwrap();
    a.mov(dx, EXIT_PORT as u32).unwrap();
    a.xor(eax, eax).unwrap();
    a.out(dx, eax).unwrap();
    a.hlt().unwrap();
    elf(&a.assemble(entry as u64).unwrap(), entry)
}

#[test]
fn tsc_hpet_and_pm_timer_agree_in_host_mode() {
    let mut pc = Pc::new(PcConfig {
        kind: MachineKind::Pc,
        ram_bytes: 32 << 20,
        kernel: Some(sampler()),
        kernel_path: "sampler".into(),
        initrd: None,
        append: String::new(),
        serial: vec![None, None],
        debug_exit: Some((EXIT_PORT, 4)),
        debugcon: None,
        clock: ClockMode::Host,
        no_reboot: true,
        rtc_start: 0,
    })
    .expect("machine builds");
    kagami_jit::Jit::install_from_env(&mut pc.cpu);
    assert_eq!(pc.run(Some(50_000_000)), Stop::Exit(1));
    let mut raw = vec![0u8; N as usize * STRIDE];
    pc.cpu.mem.read(SAMPLES as u64, &mut raw);
    let word = |i: usize, k: usize| u32::from_le_bytes(raw[i * STRIDE + k..i * STRIDE + k + 4].try_into().unwrap());
    let tsc = |i: usize, k: usize| (word(i, k) as u64 | (word(i, k + 4) as u64) << 32) as i64;
    // Each HPET/PM read is bracketed by two TSC reads, so the time the
    // device shows must lie between them, however long the host took: the
    // elapsed time from sample 0 to sample i by the HPET lies between the
    // shortest and the longest TSC interval the brackets allow (plus one
    // tick of rounding at each end).
    let mut slack = (0i64, 0i64);
    for i in 1..N as usize {
        let dt_hpet = word(i, 8).wrapping_sub(word(0, 8)) as i64 * 10;
        let (lo, hi) = (tsc(i, 0) - tsc(0, 12), tsc(i, 12) - tsc(0, 0));
        assert!(
            (lo - 10..=hi + 10).contains(&dt_hpet),
            "sample {i}: the HPET says {dt_hpet} ns passed, the TSC {lo}..={hi} ns"
        );
        let dt_pm = ((word(i, 20).wrapping_sub(word(0, 20)) & 0xff_ffff) as i64 * 1_000_000_000) / 3_579_545;
        let (plo, phi) = (tsc(i, 12) - tsc(0, 24), tsc(i, 24) - tsc(0, 12));
        assert!(
            (plo - 280..=phi + 280).contains(&dt_pm),
            "sample {i}: the PM timer says {dt_pm} ns passed, the TSC {plo}..={phi} ns"
        );
        slack = (slack.0.max(hi - lo), slack.1.max(phi - plo));
    }
    let total = tsc(N as usize - 1, 0) - tsc(0, 0);
    eprintln!(
        "{total} ns sampled; widest TSC bracket around the HPET {} ns, around the PM timer {} ns",
        slack.0, slack.1
    );
    assert!(total > 100_000, "the clocks hardly moved: {total} ns over the run");
}
