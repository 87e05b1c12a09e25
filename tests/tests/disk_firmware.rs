//! Debian's SeaBIOS boots from kagami's disk controllers: from a hard disk
//! (MBR) and from a CD-ROM (El Torito, no emulation), on `-machine pc`
//! (PIIX3 IDE; SeaBIOS uses PIO and ATAPI packets) and `-machine q35`
//! (ICH9 AHCI; command lists and PRDT DMA). The boot sector, assembled
//! here, reads 30 KiB through INT 13h AH=42h, checks a position-dependent
//! checksum the test computed from the image, writes one sector back with
//! AH=43h (disks), and reports through isa-debug-exit. `-boot order=` goes
//! to SeaBIOS's `bootorder` file.

use iced_x86::code_asm::*;
use kagami_tests::harness::{kagami, seabios, SEABIOS as BIOS};
use std::path::{Path, PathBuf};
use std::process::Command;

fn have_bios() -> bool {
    seabios().is_some()
}

fn tmpdir(name: &str) -> PathBuf {
    kagami_tests::harness::tmpdir("diskfw", name)
}

/// isa-debug-exit status for success / a failed check: (v << 1) | 1.
const PASS: i32 = (0x10 << 1) | 1;
const FAIL: i32 = (0x01 << 1) | 1;

/// The checksum the boot sector computes: over 16-bit words, rotate left
/// by one then add.
fn checksum(data: &[u8]) -> u16 {
    data.chunks(2)
        .fold(0u16, |s, w| s.rotate_left(1).wrapping_add(u16::from_le_bytes([w[0], w[1]])))
}

/// A 512-byte boot sector loaded at 0:7C00: read `count` blocks from `lba`
/// of the boot drive (DL) to 1000:0000, compare the checksum with `expect`,
/// then (if `write_lba`) write the first block read back at `write_lba`.
fn boot_sector(lba: u32, count: u16, block: usize, expect: u16, write_lba: Option<u32>) -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    let mut bad = a.create_label();
    let mut sum = a.create_label();
    let mut report = a.create_label();
    let mut print = a.create_label();
    let mut done = a.create_label();
    a.xor(ax, ax).unwrap();
    a.mov(ds, ax).unwrap();
    a.mov(es, ax).unwrap();
    a.mov(ss, ax).unwrap();
    a.mov(sp, 0x7c00u32).unwrap();
    a.mov(byte_ptr(0x0520), dl).unwrap();
    // Disk address packet at 0:0500.
    a.mov(si, 0x0500u32).unwrap();
    a.mov(word_ptr(si), 0x0010u32).unwrap();
    a.mov(word_ptr(si + 2), count as u32).unwrap();
    a.mov(word_ptr(si + 4), 0u32).unwrap();
    a.mov(word_ptr(si + 6), 0x1000u32).unwrap();
    a.mov(word_ptr(si + 8), lba & 0xffff).unwrap();
    a.mov(word_ptr(si + 10), lba >> 16).unwrap();
    a.mov(word_ptr(si + 12), 0u32).unwrap();
    a.mov(word_ptr(si + 14), 0u32).unwrap();
    a.mov(ah, 0x42u32).unwrap();
    a.int(0x13).unwrap();
    a.jc(bad).unwrap();
    // Checksum of the words read.
    a.push(ds).unwrap();
    a.mov(ax, 0x1000u32).unwrap();
    a.mov(ds, ax).unwrap();
    a.xor(si, si).unwrap();
    a.xor(bx, bx).unwrap();
    a.mov(cx, (count as usize * block / 2) as u32).unwrap();
    a.set_label(&mut sum).unwrap();
    a.lodsw().unwrap();
    a.rol(bx, 1).unwrap();
    a.add(bx, ax).unwrap();
    a.loop_(sum).unwrap();
    a.pop(ds).unwrap();
    a.cmp(bx, expect as u32).unwrap();
    a.jne(bad).unwrap();
    if let Some(w) = write_lba {
        a.mov(si, 0x0500u32).unwrap();
        a.mov(word_ptr(si + 2), 1u32).unwrap();
        a.mov(word_ptr(si + 8), w & 0xffff).unwrap();
        a.mov(word_ptr(si + 10), w >> 16).unwrap();
        a.mov(dl, byte_ptr(0x0520)).unwrap();
        a.mov(ax, 0x4300u32).unwrap();
        a.int(0x13).unwrap();
        a.jc(bad).unwrap();
    }
    a.mov(bl, 0x10u32).unwrap();
    a.jmp(report).unwrap();
    a.set_label(&mut bad).unwrap();
    a.mov(bl, 0x01u32).unwrap();
    a.set_label(&mut report).unwrap();
    a.mov(si, 0x7c00u32 + 0x1c0).unwrap();
    a.mov(dx, 0x402u32).unwrap();
    a.set_label(&mut print).unwrap();
    a.lodsb().unwrap();
    a.test(al, al).unwrap();
    a.jz(done).unwrap();
    a.out(dx, al).unwrap();
    a.jmp(print).unwrap();
    a.set_label(&mut done).unwrap();
    a.mov(al, bl).unwrap();
    a.out(0xf4u32, al).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x7c00).unwrap();
    assert!(code.len() <= 0x1c0, "boot sector code is {} bytes", code.len());
    let mut s = vec![0u8; 512];
    s[..code.len()].copy_from_slice(&code);
    let msg = b"KAGAMI-BOOT-SECTOR-RAN\n\0";
    s[0x1c0..0x1c0 + msg.len()].copy_from_slice(msg);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i / 512) as u8).wrapping_mul(29) ^ (i as u8) ^ seed).collect()
}

/// Run SeaBIOS on `machine` with `drive_args`; returns (exit status, debug log).
fn boot(dir: &Path, machine: &str, drive_args: &[String]) -> (i32, String) {
    let log = dir.join(format!("{machine}.log"));
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
        .args(["-chardev", &format!("file,id=dbg,path={}", log.display())])
        .args(["-device", "isa-debugcon,iobase=0x402,chardev=dbg"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .args(["-accel", "tcg", "--max-instructions", "150000000"])
        .args(drive_args)
        .output()
        .expect("run kagami");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status = out.status.code().unwrap_or(-1);
    if std::env::var_os("KAGAMI_DISKFW_LOG").is_some() {
        eprintln!("--- {machine} SeaBIOS log ---\n{text}");
    }
    (status, format!("{text}\n--- stderr ---\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn seabios_boots_a_hard_disk_and_reads_and_writes_it() {
    if !have_bios() {
        return;
    }
    for (machine, format) in [("pc", "raw"), ("q35", "raw"), ("pc", "qcow2")] {
        let dir = tmpdir(&format!("hd-{machine}-{format}"));
        let mut disk = pattern(4 << 20, 0x3c);
        let data = &disk[512..512 + 60 * 512];
        let sector = boot_sector(1, 60, 512, checksum(data), Some(200));
        disk[..512].copy_from_slice(&sector);
        let raw = dir.join("disk.raw");
        std::fs::write(&raw, &disk).unwrap();
        let image = if format == "qcow2" {
            let q = dir.join("disk.qcow2");
            kagami_machine::img::create_image(&q, kagami_machine::drive::ImageFormat::Qcow2, disk.len() as u64, None).unwrap();
            let mut b = kagami_machine::drive::open(
                &q,
                &kagami_machine::drive::OpenOptions {
                    format: None,
                    read_only: false,
                    snapshot: false,
                },
            )
            .unwrap();
            b.write_at(0, &disk).unwrap();
            b.flush().unwrap();
            q
        } else {
            raw.clone()
        };
        let (status, log) = boot(
            &dir,
            machine,
            &[
                "-drive".into(),
                format!("file={},format={format},if=ide,index=0", image.display()),
                "-boot".into(),
                "order=c".into(),
            ],
        );
        assert!(
            log.contains("KAGAMI-BOOT-SECTOR-RAN"),
            "{machine}/{format}: the boot sector did not run:\n{log}"
        );
        assert_eq!(
            status, PASS,
            "{machine}/{format}: the boot sector's read check failed (status {status}):\n{log}"
        );
        let mut after = vec![0u8; disk.len()];
        let mut b = kagami_machine::drive::open(
            &image,
            &kagami_machine::drive::OpenOptions {
                format: None,
                read_only: true,
                snapshot: false,
            },
        )
        .unwrap();
        b.read_at(0, &mut after).unwrap();
        assert!(
            after[200 * 512..201 * 512] == disk[512..1024],
            "{machine}/{format}: INT 13h write did not reach the image"
        );
        let mut expect = disk.clone();
        expect[200 * 512..201 * 512].copy_from_slice(&disk[512..1024]);
        assert!(after == expect, "{machine}/{format}: other bytes changed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A minimal El Torito image: volume descriptors at 16 (primary), 17 (boot
/// record) and 18 (terminator), the boot catalog at 19, the 512-byte boot
/// image at 20, data from 21.
fn iso(boot: &[u8], data: &[u8]) -> Vec<u8> {
    const S: usize = 2048;
    let mut iso = vec![0u8; 21 * S + data.len()];
    let pvd = &mut iso[16 * S..17 * S];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    let br = &mut iso[17 * S..18 * S];
    br[0] = 0;
    br[1..6].copy_from_slice(b"CD001");
    br[6] = 1;
    br[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    br[0x47..0x4b].copy_from_slice(&19u32.to_le_bytes());
    let term = &mut iso[18 * S..19 * S];
    term[0] = 0xff;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    let cat = &mut iso[19 * S..20 * S];
    cat[0] = 1;
    cat[4..10].copy_from_slice(b"KAGAMI");
    cat[30] = 0x55;
    cat[31] = 0xaa;
    let sum = cat[..32]
        .chunks(2)
        .fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    cat[28..30].copy_from_slice(&sum.wrapping_neg().to_le_bytes());
    cat[32] = 0x88; // bootable
    cat[33] = 0; // no emulation
    cat[38..40].copy_from_slice(&4u16.to_le_bytes()); // 4 virtual sectors
    cat[40..44].copy_from_slice(&20u32.to_le_bytes());
    iso[20 * S..20 * S + boot.len()].copy_from_slice(boot);
    iso[21 * S..].copy_from_slice(data);
    iso
}

#[test]
fn seabios_boots_a_cdrom() {
    if !have_bios() {
        return;
    }
    for machine in ["pc", "q35"] {
        let dir = tmpdir(&format!("cd-{machine}"));
        let data = pattern(15 * 2048, 0xa5);
        let image = iso(&boot_sector(21, 15, 2048, checksum(&data), None), &data);
        let path = dir.join("cd.iso");
        std::fs::write(&path, &image).unwrap();
        // A blank disk too, so the boot order has to pick the CD-ROM.
        let hd = dir.join("blank.raw");
        std::fs::write(&hd, vec![0u8; 1 << 20]).unwrap();
        let (status, log) = boot(
            &dir,
            machine,
            &[
                "-hda".into(),
                hd.display().to_string(),
                "-cdrom".into(),
                path.display().to_string(),
                "-boot".into(),
                "order=d".into(),
            ],
        );
        assert!(
            log.contains("KAGAMI-BOOT-SECTOR-RAN"),
            "{machine}: the CD boot image did not run:\n{log}"
        );
        assert_eq!(status, PASS, "{machine}: the CD read check failed (status {status}):\n{log}");
        assert!(std::fs::read(&path).unwrap() == image, "the CD image changed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_failing_check_is_reported() {
    // The boot sector's own failure path: a wrong expected checksum must
    // give FAIL, so PASS above means the data really matched.
    if !have_bios() {
        return;
    }
    let dir = tmpdir("neg");
    let mut disk = pattern(1 << 20, 1);
    let sector = boot_sector(1, 8, 512, checksum(&disk[512..512 + 8 * 512]) ^ 1, None);
    disk[..512].copy_from_slice(&sector);
    let p = dir.join("d.raw");
    std::fs::write(&p, &disk).unwrap();
    let (status, log) = boot(&dir, "pc", &["-hda".into(), p.display().to_string()]);
    assert_eq!(status, FAIL, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-snapshot`: the guest's write succeeds (into the overlay) and the image
/// stays byte-identical; `readonly=on`: the write fails in the guest.
#[test]
fn snapshot_and_readonly_leave_the_image_alone() {
    if !have_bios() {
        return;
    }
    let dir = tmpdir("snap");
    let mut disk = pattern(1 << 20, 7);
    let sector = boot_sector(1, 8, 512, checksum(&disk[512..512 + 8 * 512]), Some(100));
    disk[..512].copy_from_slice(&sector);
    let p = dir.join("d.raw");
    std::fs::write(&p, &disk).unwrap();
    let (status, log) = boot(&dir, "q35", &["-hda".into(), p.display().to_string(), "-snapshot".into()]);
    assert_eq!(status, PASS, "{log}");
    assert!(std::fs::read(&p).unwrap() == disk, "-snapshot changed the image");
    let (status, log) = boot(
        &dir,
        "pc",
        &["-drive".into(), format!("file={},format=raw,readonly=on", p.display())],
    );
    assert_eq!(status, FAIL, "a write to a read-only disk must fail in the guest:\n{log}");
    assert!(std::fs::read(&p).unwrap() == disk, "readonly=on changed the image");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad drive options and images stop kagami before the guest runs: a
/// message naming the problem, exit code 1, the file untouched.
#[test]
fn drive_errors_exit_1_with_a_message() {
    let dir = tmpdir("errors");
    let trunc = dir.join("trunc.qcow2");
    kagami_machine::img::create_image(&trunc, kagami_machine::drive::ImageFormat::Qcow2, 1 << 20, None).unwrap();
    let full = std::fs::read(&trunc).unwrap();
    std::fs::write(&trunc, &full[..512]).unwrap();
    let raw = dir.join("ok.raw");
    std::fs::write(&raw, vec![0u8; 4096]).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-hda".into(), trunc.display().to_string()], "trunc.qcow2"),
        (vec!["-hda".into(), dir.join("missing.raw").display().to_string()], "missing.raw"),
        (vec!["-drive".into(), format!("file={},format=vmdk", raw.display())], "vmdk"),
        (vec!["-drive".into(), format!("file={},index=9", raw.display())], "index=9"),
        (
            vec![
                "-hda".into(),
                raw.display().to_string(),
                "-drive".into(),
                format!("file={},index=0", raw.display()),
            ],
            "index 0",
        ),
        (vec!["-boot".into(), "order=q".into()], "-boot"),
    ];
    for (args, expect) in cases {
        let out = Command::new(kagami())
            .args(["-kernel", "/dev/null", "-accel", "tcg", "--max-instructions", "1000"])
            .args(&args)
            .output()
            .expect("run kagami");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: the message should name '{expect}': {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(&trunc).unwrap(), &full[..512]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Direct kernel boot (no firmware): kagami programs what SeaBIOS would, so
/// a kernel's driver finds the controllers ready. Checked through the
/// CPU's view of the buses: PCI configuration, the IDE legacy ports and
/// BAR4, the AHCI ABAR.
#[test]
fn direct_boot_leaves_the_controllers_as_firmware_would() {
    use kagami_cpu::Bus;
    use kagami_devices::storage::{Drive, MemBackend};
    use kagami_machine::pc::{MachineKind, Pc, PcConfig};
    for kind in [MachineKind::Pc, MachineKind::Q35] {
        let mut pc = Pc::new(PcConfig {
            kind,
            ram_bytes: 32 << 20,
            kernel: Some(kagami_tests::mbkernel::kernel()),
            kernel_path: "mb".into(),
            initrd: None,
            append: String::new(),
            serial: vec![None, None],
            debug_exit: None,
            debugcon: None,
            clock: kagami_machine::clock::ClockMode::Instructions { shift: 3 },
            no_reboot: true,
            rtc_start: 0,
        })
        .unwrap();
        let disk = MemBackend::new(vec![0x5a; 1 << 20]);
        pc.board.attach_disks(vec![(0, Drive::disk(Box::new(disk), "QM1"))], true).unwrap();
        let b = &mut pc.board;
        let cfg = |b: &mut kagami_machine::board::Board, dev: u32, func: u32, reg: u32| {
            b.io_write(0xcf8, 4, 0x8000_0000 | dev << 11 | func << 8 | reg);
            b.io_read(0xcfc, 4)
        };
        match kind {
            MachineKind::Pc => {
                assert_eq!(cfg(b, 1, 1, 0), 0x7010_8086);
                assert_eq!(cfg(b, 1, 1, 0x20), 0xc001, "BAR4");
                assert_eq!(cfg(b, 1, 1, 0x04) & 5, 5, "I/O decode and bus master");
                assert_eq!(cfg(b, 1, 1, 0x40), 0x8000_8000, "IDETIM decode enables");
                // IDENTIFY through the legacy ports.
                b.io_write(0x1f6, 1, 0xa0);
                b.io_write(0x1f7, 1, 0xec);
                assert_eq!(b.io_read(0x1f7, 1) & 0x08, 0x08, "DRQ");
                let w0 = b.io_read(0x1f0, 2);
                assert_eq!(w0, 0x0040);
                assert_eq!(b.io_read(0xc002, 1) & 0x64, 0x24, "BM status: interrupt, drive 0 DMA capable");
            }
            MachineKind::Q35 => {
                assert_eq!(cfg(b, 0x1f, 2, 0), 0x2922_8086);
                assert_eq!(cfg(b, 0x1f, 2, 0x24), 0xfebf_0000, "ABAR");
                assert_eq!(b.mmio_read(0xfebf_0000 + 0x0c, 4), 0x3f, "PI through the ABAR");
                assert_eq!(b.mmio_read(0xfebf_0000 + 0x128, 4), 0x113, "port 0 SSTS: device present");
            }
        }
    }
}
