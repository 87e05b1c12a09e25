//! Boot images built the way a user builds them, booted through SeaBIOS on
//! both machines: a raw disk with an MBR, a FAT partition and SYSLINUX
//! (sfdisk, mkfs.vfat --offset, mcopy, syslinux --offset: all on the file,
//! no loop device, no root mount), and an ISOLINUX CD (xorriso). The
//! loader starts the repo's Multiboot test kernel through mboot.c32 with a
//! module; the kernel prints its command line on debugcon and exits with
//! the module's byte sum, so the exit code proves SYSLINUX read every file
//! through the disk controller (PIIX3 IDE on pc, AHCI on q35).
//!
//! The Linux test guest is the next step for these images, once Linux
//! boots on kagami.

use std::path::{Path, PathBuf};
use std::process::Command;

use kagami_tests::harness::{kagami, SEABIOS as BIOS};
const MODULES: &str = "/usr/lib/syslinux/modules/bios";

/// Whether the tools are here; otherwise SKIPPED (a failure under KAGAMI_REQUIRE_GUEST=1).
fn have(tools: &[&str], files: &[&str]) -> bool {
    kagami_tests::harness::have(
        tools,
        files,
        "seabios syslinux syslinux-common isolinux mtools dosfstools fdisk xorriso",
    )
}

fn sh(dir: &Path, script: &str) {
    let o = Command::new("sh").arg("-ec").arg(script).current_dir(dir).output().expect("run sh");
    assert!(
        o.status.success(),
        "{script}\nfailed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

const MODULE: [u8; 6] = [1, 2, 3, 4, 5, 100];
/// The test kernel exits with (module byte sum & 0x7f); isa-debug-exit makes it (v << 1) | 1.
fn expected_status() -> i32 {
    let sum = MODULE.iter().map(|&b| b as i32).sum::<i32>() & 0x7f;
    (sum << 1) | 1
}

const CFG: &str =
    "SERIAL 0 115200\nDEFAULT mb\nPROMPT 0\nTIMEOUT 0\nLABEL mb\n  KERNEL mboot.c32\n  APPEND kernel.elf hello=syslinux --- module.bin\n";

fn tmpdir(name: &str) -> PathBuf {
    let d = kagami_tests::harness::tmpdir("syslinux", name);
    // mboot.c32 checks the ELF header strictly: e_version and e_ehsize,
    // which kagami's own loader does not need, are filled in here.
    let mut k = kagami_tests::mbkernel::kernel();
    k[20..24].copy_from_slice(&1u32.to_le_bytes());
    k[40..42].copy_from_slice(&52u16.to_le_bytes());
    std::fs::write(d.join("kernel.elf"), k).unwrap();
    std::fs::write(d.join("module.bin"), MODULE).unwrap();
    d
}

fn boot(dir: &Path, machine: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(kagami())
        .args([
            "-machine",
            machine,
            "-bios",
            BIOS,
            "-m",
            "64",
            "-nographic",
            "-serial",
            "null",
            "-icount",
            "shift=3",
        ])
        .args(["-debugcon", &format!("file:{}", dir.join(format!("{machine}.con")).display())])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .args(["-accel", "tcg", "--max-instructions", "200000000"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run kagami");
    let con = std::fs::read_to_string(dir.join(format!("{machine}.con"))).unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        format!("{con}\n--- stderr ---\n{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn syslinux_disk_image_boots_on_ide_and_ahci() {
    if !have(
        &["sfdisk", "mkfs.vfat", "mcopy", "syslinux"],
        &[BIOS, "/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/syslinux/modules/bios/mboot.c32"],
    ) {
        return;
    }
    let dir = tmpdir("hd");
    std::fs::write(dir.join("syslinux.cfg"), CFG).unwrap();
    sh(
        &dir,
        &format!(
            "truncate -s 16M disk.raw
             echo 'start=2048, type=c, bootable' | sfdisk -q disk.raw
             mkfs.vfat --offset 2048 disk.raw 15360 >/dev/null
             mcopy -i disk.raw@@1M syslinux.cfg {MODULES}/mboot.c32 {MODULES}/libcom32.c32 kernel.elf module.bin ::
             syslinux --offset 1048576 --install disk.raw
             dd if=/usr/lib/syslinux/mbr/mbr.bin of=disk.raw bs=440 count=1 conv=notrunc 2>/dev/null"
        ),
    );
    let before = std::fs::read(dir.join("disk.raw")).unwrap();
    for machine in ["pc", "q35"] {
        let (status, log) = boot(&dir, machine, &["-drive", "file=disk.raw,format=raw,if=ide", "-snapshot"]);
        assert!(
            log.contains("hello=syslinux"),
            "{machine}: the kernel did not print its command line:\n{log}"
        );
        assert_eq!(status, expected_status(), "{machine}: exit status\n{log}");
    }
    assert!(
        std::fs::read(dir.join("disk.raw")).unwrap() == before,
        "-snapshot changed the image"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn isolinux_cd_boots_on_ide_and_ahci() {
    if !have(
        &["xorriso"],
        &[BIOS, "/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/syslinux/modules/bios/ldlinux.c32"],
    ) {
        return;
    }
    let dir = tmpdir("cd");
    std::fs::create_dir_all(dir.join("iso/isolinux")).unwrap();
    std::fs::write(dir.join("iso/isolinux/isolinux.cfg"), CFG).unwrap();
    sh(
        &dir,
        &format!(
            "cp /usr/lib/ISOLINUX/isolinux.bin {MODULES}/ldlinux.c32 {MODULES}/mboot.c32 {MODULES}/libcom32.c32 iso/isolinux/
             cp kernel.elf module.bin iso/isolinux/
             xorriso -as mkisofs -quiet -o cd.iso -b isolinux/isolinux.bin -c isolinux/boot.cat \
                 -no-emul-boot -boot-load-size 4 -boot-info-table iso 2>/dev/null"
        ),
    );
    for machine in ["pc", "q35"] {
        let (status, log) = boot(&dir, machine, &["-cdrom", "cd.iso", "-boot", "order=d"]);
        assert!(
            log.contains("hello=syslinux"),
            "{machine}: the kernel did not print its command line:\n{log}"
        );
        assert_eq!(status, expected_status(), "{machine}: exit status\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
