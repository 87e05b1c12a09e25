//! Debian's SeaBIOS (package `seabios`, bios-256k.bin) on both machines:
//! it must find the chipset, the RAM size and the ACPI and SMBIOS tables
//! through fw_cfg, and reach "No bootable device." without errors.
//!
//! Two views: the `kagami` binary as a user runs it (`-bios` plus
//! `-chardev`/`-device isa-debugcon,iobase=0x402`, SeaBIOS's debug port),
//! and the library, which also checks guest memory (the RSDP and SMBIOS
//! entry point SeaBIOS placed in the F segment are kagami's) and counts the
//! instructions to the boot attempt in deterministic mode.

use kagami_devices::SharedBuffer;
use kagami_machine::clock::ClockMode;
use kagami_machine::pc::{MachineKind, Pc, PcConfig, PcExtras};
use kagami_tests::harness::{guest_dir, kagami, SEABIOS as BIOS};
use std::process::Command;

const MARKER: &str = "No bootable device.";

fn bios() -> Option<Vec<u8>> {
    kagami_tests::harness::seabios().map(|p| std::fs::read(p).unwrap())
}

/// Lines of the SeaBIOS log that report a problem. "Boot failed: could not
/// read the boot disk" is expected: the machines have no disks.
fn problems(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("warning") || l.contains("error") || l.contains("fail") || l.contains("panic") || l.contains("unable"))
                && !l.contains("could not read the boot disk")
        })
        .collect()
}

fn check_log(log: &str, q35: bool) {
    for want in [
        "Found QEMU fw_cfg",
        "QEMU fw_cfg DMA interface supported",
        "qemu/e820: addr 0x0000000000000000 len 0x0000000008000000 [RAM]",
        "Moving pm_base to 0x600",
        "Found 1 cpu(s) max supported 1 cpu(s)",
        "Using pmtimer, ioport 0x608",
        MARKER,
    ] {
        assert!(log.contains(want), "q35={q35}: '{want}' missing from the SeaBIOS log:\n{log}");
    }
    let chipset: &[&str] = if q35 {
        &[
            "PCI: init bdf=00:00.0 id=8086:29c0",
            "PCI: init bdf=00:1f.0 id=8086:2918",
            "PCIe: using q35 mmconfig at 0xb0000000",
            "Q35 LPC init",
        ]
    } else {
        &[
            "PCI: init bdf=00:00.0 id=8086:1237",
            "PCI: init bdf=00:01.0 id=8086:7000",
            "PCI: init bdf=00:01.3 id=8086:7113",
            "PIIX3/PIIX4 init",
            "PCI: map device bdf=00:01.1  bar 4, addr 0000c000, size 00000010 [io]",
        ]
    };
    for want in chipset {
        assert!(log.contains(want), "q35={q35}: '{want}' missing from the SeaBIOS log:\n{log}");
    }
    // ACPI came through the table loader: SeaBIOS found the FADT through
    // our XSDT instead of building its own tables.
    assert!(log.contains("(via xsdt)"), "q35={q35}: no ACPI tables via fw_cfg:\n{log}");
    assert_eq!(problems(log), Vec::<&str>::new(), "q35={q35}: SeaBIOS reported problems:\n{log}");
}

#[test]
fn seabios_reaches_the_boot_attempt_from_the_command_line() {
    if bios().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kagami-seabios-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for machine in ["pc", "q35"] {
        let log_path = dir.join(format!("{machine}.log"));
        let out = Command::new(kagami())
            .args([
                "-machine",
                machine,
                "-bios",
                BIOS,
                "-nographic",
                "-serial",
                "null",
                "-icount",
                "shift=3",
            ])
            .args(["-chardev", &format!("file,id=dbg,path={}", log_path.display())])
            .args(["-device", "isa-debugcon,iobase=0x402,chardev=dbg"])
            .args(["-accel", "tcg", "--max-instructions", "15000000"])
            .output()
            .expect("run kagami");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{machine}: {:?}\n{stderr}", out.status);
        let log = std::fs::read_to_string(&log_path).unwrap();
        check_log(&log, machine == "q35");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Scan 0xE0000-0xFFFFF (as the CPU sees it, after SeaBIOS's PAM setup)
/// for a 16-byte aligned signature.
fn find_fseg(pc: &mut Pc, sig: &[u8]) -> Option<u64> {
    (0xe_0000u64..0x10_0000).step_by(16).find(|&a| {
        sig.iter()
            .enumerate()
            .all(|(k, b)| pc.cpu.read_phys(&mut pc.board, a + k as u64, 1) as u8 == *b)
    })
}

fn phys_bytes(pc: &mut Pc, a: u64, n: usize) -> Vec<u8> {
    (0..n).map(|k| pc.cpu.read_phys(&mut pc.board, a + k as u64, 1) as u8).collect()
}

#[test]
fn seabios_uses_kagamis_acpi_and_smbios_tables() {
    let Some(image) = bios() else { return };
    for kind in [MachineKind::Pc, MachineKind::Q35] {
        let log = SharedBuffer::new();
        let mut pc = Pc::new_ext(
            PcConfig {
                kind,
                ram_bytes: 128 << 20,
                kernel: None,
                kernel_path: String::new(),
                initrd: None,
                append: String::new(),
                serial: vec![None, None],
                debug_exit: None,
                debugcon: Some((0x402, log.sink())),
                clock: ClockMode::Instructions { shift: 3 },
                no_reboot: true,
                rtc_start: 1_700_000_000,
            },
            PcExtras {
                bios: Some(image.clone()),
                nographic: true,
                ..PcExtras::default()
            },
        )
        .unwrap();
        let t = std::time::Instant::now();
        let mut text = String::new();
        while !text.contains(MARKER) && pc.cpu.s.icount < 40_000_000 {
            pc.run(Some(100_000));
            text += &String::from_utf8_lossy(&log.take());
        }
        let secs = t.elapsed().as_secs_f64();
        check_log(&text, kind == MachineKind::Q35);
        eprintln!(
            "{kind:?}: SeaBIOS reached '{MARKER}' after {} instructions ({secs:.2} s in this build)",
            pc.cpu.s.icount
        );
        // The RSDP in the F segment is the one kagami's table loader gave.
        let rsdp = find_fseg(&mut pc, b"RSD PTR ").expect("RSDP in the F segment");
        assert_eq!(&phys_bytes(&mut pc, rsdp + 9, 6), b"KAGAMI", "RSDP OEM ID");
        // SeaBIOS relocated kagami's SMBIOS table and fixed its entry point.
        let system = smbios_system(&mut pc);
        assert_eq!(system, ("kagami".to_string(), "Standard PC".to_string()), "{kind:?}");
    }
}

/// Find the SMBIOS 2.1 entry point in the F segment, check it, walk the
/// table it points to as Linux does and return the type 1 manufacturer and
/// product.
fn smbios_system(pc: &mut Pc) -> (String, String) {
    use kagami_bios::smbios;
    let at = find_fseg(pc, b"_SM_").expect("SMBIOS entry point in the F segment");
    let entry = phys_bytes(pc, at, smbios::ENTRY_LEN);
    let (addr, len, count) = smbios::check_entry(&entry).expect("valid entry point");
    let table = phys_bytes(pc, addr as u64, len as usize);
    let s = smbios::walk(&table, count).expect("table walks");
    let kinds: Vec<u8> = s.iter().map(|x| x.kind).collect();
    for k in [0, 1, 3, 4, 16, 17, 19, 32, 127] {
        assert!(kinds.contains(&k), "type {k} missing: {kinds:?}");
    }
    let sys = s.iter().find(|x| x.kind == 1).unwrap();
    (sys.string(4).unwrap().to_string(), sys.string(5).unwrap().to_string())
}

/// Direct kernel boot (no firmware): kagami writes the SMBIOS entry point
/// and table into the F segment itself.
#[test]
fn direct_boot_has_smbios_in_the_f_segment() {
    for kind in [MachineKind::Pc, MachineKind::Q35] {
        let mut pc = Pc::new(PcConfig {
            kind,
            ram_bytes: 64 << 20,
            kernel: Some(kagami_tests::mbkernel::kernel()),
            kernel_path: "mb.elf".into(),
            initrd: None,
            append: String::new(),
            serial: vec![None, None],
            debug_exit: None,
            debugcon: None,
            clock: ClockMode::Instructions { shift: 3 },
            no_reboot: true,
            rtc_start: 0,
        })
        .unwrap();
        assert_eq!(smbios_system(&mut pc), ("kagami".to_string(), "Standard PC".to_string()));
    }
}

/// `-bios` with `-kernel`: as on QEMU, SeaBIOS runs QEMU's linuxboot_dma.bin
/// option ROM (fw_cfg `genroms/`, first in `bootorder`), which loads the
/// setup code, kernel, initrd and command line from fw_cfg and enters the
/// kernel's real-mode setup; the setup code's "Probing EDD" on the serial
/// console shows it runs.
#[test]
fn seabios_starts_a_linux_kernel_through_fw_cfg() {
    if bios().is_none() {
        return;
    }
    let dir = guest_dir();
    let (kernel, initrd) = (dir.join("bzImage"), dir.join("initramfs.cpio.gz"));
    let required = std::env::var("KAGAMI_REQUIRE_GUEST").is_ok_and(|v| v == "1");
    if !kernel.is_file() || !initrd.is_file() {
        assert!(!required, "{} missing: run scripts/build-test-guest.sh", kernel.display());
        eprintln!("SKIPPED: {} missing: run scripts/build-test-guest.sh", kernel.display());
        return;
    }
    if !std::path::Path::new("/usr/share/qemu/linuxboot_dma.bin").is_file() {
        assert!(!required, "linuxboot_dma.bin missing (Debian package qemu-system-data)");
        eprintln!("SKIPPED: linuxboot_dma.bin missing (Debian package qemu-system-data)");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("kagami-seabios-linux-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let serial = tmp.join("serial.txt");
    let out = Command::new(kagami())
        .args(["-bios", BIOS, "-nographic", "-icount", "shift=3", "-accel", "tcg"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0", "-serial", &format!("file:{}", serial.display())])
        .args(["--max-instructions", "20000000"])
        .output()
        .expect("run kagami");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&std::fs::read(&serial).unwrap()).into_owned();
    assert!(text.contains("Booting from ROM"), "{text}");
    assert!(text.contains("Probing EDD"), "the kernel's setup code did not run:\n{text}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A `-bios` file that cannot be a firmware image, or is missing: a message
/// naming it and exit code 1, never a panic; likewise `-kernel` with `-bios`
/// when the kernel is not a bzImage.
#[test]
fn bad_bios_files_are_a_message_and_exit_code_1() {
    let dir = std::env::temp_dir().join(format!("kagami-badbios-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = dir.join("small.bin");
    std::fs::write(&small, [0u8; 1000]).unwrap();
    let image = dir.join("image.bin");
    std::fs::write(&image, vec![0xf4u8; 64 << 10]).unwrap();
    let notlinux = dir.join("notlinux");
    std::fs::write(&notlinux, vec![0u8; 4096]).unwrap();
    let missing = dir.join("missing.bin");
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (vec!["-bios".as_ref(), small.as_os_str()], "not a firmware image size"),
        (vec!["-bios".as_ref(), missing.as_os_str()], "cannot read"),
        (
            vec!["-bios".as_ref(), image.as_os_str(), "-kernel".as_ref(), notlinux.as_os_str()],
            "bzImage",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(kagami())
            .args(&args)
            .args(["-accel", "tcg"])
            .output()
            .expect("run kagami");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
