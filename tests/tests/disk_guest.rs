//! Linux's own drivers on kagami's disk controllers: the test guest's
//! kernel (the decompressed vmlinux through its PVH entry: this is about the
//! drivers, not the firmware, which tests/tests/boot_images.rs covers) boots
//! with an initramfs that loads libata, ata_piix or ahci, sd_mod, sr_mod and
//! ext4, then
//!   - reads the test disk, writes 1 MiB with fsync (FLUSH CACHE), reads it
//!     back past the page cache, and reads the CD-ROM through sr;
//!   - on the data disk, a qcow2 overlay on a raw base: the first boot
//!     (`-machine pc`) formats it with busybox mke2fs and writes a file, the
//!     second (`-machine q35`) reads the file back.
//! The host checks every checksum the guest prints, the bytes that reached
//! the image file, that libata runs every device in a DMA mode and both
//! disks with a write cache (so fsync sends FLUSH CACHE), and that the
//! kernel log has no ATA errors, timeouts or I/O errors; the raw base is
//! unchanged and the overlay passes `qemu-img check`. `-machine pc`
//! exercises PIIX3 IDE (ata_piix, bus-master DMA), `-machine q35` ICH9 AHCI.
//!
//! Needs target/guest (scripts/build-test-guest.sh) and its disk modules
//! (scripts/build-disk-guest.sh; the test runs it when they are missing);
//! without them the test says SKIPPED (a failure under
//! KAGAMI_REQUIRE_GUEST=1). KAGAMI_DISK_TEST_QEMU=1 runs the same checks on
//! QEMU instead, to check the test.

use kagami_machine::drive::ImageFormat;
use kagami_machine::initramfs::{archive, Entry};
use kagami_tests::harness::{children_cpu_seconds, guest_with_disk_modules, kagami, md5, tmpdir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The test disk (8 MiB) and the data disk (32 MiB), told apart in the
/// guest by size: the order of the sd names is not fixed (libata probes
/// ports in parallel).
const DISK: u32 = 8 << 20;
const DATA: u32 = 32 << 20;

const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read m; do insmod /lib/modules/$m.ko || echo "DISKTEST insmod $m failed"; done </lib/modules/modules.order
mode=format
case " $(cat /proc/cmdline) " in
*" disktest=check "*) mode=check ;;
esac
# 16384 sectors: the test disk; 65536: the data disk.
disk=; data=; n=0
while [ -z "$disk" ] || [ -z "$data" ] || [ ! -b /dev/sr0 ]; do
    for b in /sys/block/sd*; do
        [ -b /dev/${b##*/} ] || continue
        case $(cat $b/size) in
        16384) disk=/dev/${b##*/} ;;
        65536) data=/dev/${b##*/} ;;
        esac
    done
    n=$((n+1)); [ $n -gt 6000 ] && break; sleep 0.1
done
echo "DISKTEST devices disk=$disk data=$data"
echo "DISKTEST size $(blockdev --getsize64 $disk)"
echo "DISKTEST read $(dd if=$disk bs=4096 count=256 2>/dev/null | md5sum)"
yes kagami-disk-test | head -c 1048576 >/tmp/p
dd if=/tmp/p of=$disk bs=65536 seek=32 conv=fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
echo "DISKTEST reread $(dd if=$disk bs=65536 skip=32 count=16 2>/dev/null | md5sum)"
echo "DISKTEST cdsize $(blockdev --getsize64 /dev/sr0)"
echo "DISKTEST cd $(dd if=/dev/sr0 bs=2048 count=64 2>/dev/null | md5sum)"
case $mode in
format)
    mke2fs -q $data >/dev/null && mount -t ext2 $data /mnt && yes kagami-persist | head -c 300000 >/mnt/file && sync \
        && umount /mnt && echo "DISKTEST formatted ok"
    ;;
check)
    mount -t ext2 -o ro $data /mnt && echo "DISKTEST file $(md5sum </mnt/file)" && umount /mnt
    ;;
esac
for d in /sys/class/ata_device/dev*; do
    case $(cat $d/class) in ata|atapi) echo "DISKTEST xfermode ${d##*/} $(cat $d/class) $(cat $d/xfer_mode)" ;; esac
done
dmesg | grep -E "\] Write cache: " | sed 's/^/DISKTEST wcache /'
dmesg | grep -iE "ata[0-9.]*: .*(error|timeout|failed|exception)|I/O error|EXT4-fs error" | sed 's/^/DISKTEST dmesg /'
echo "DISKTEST done"
poweroff -f
while :; do sleep 3600; done
"#;

const APPLETS: [&str; 19] = [
    "sh", "mount", "umount", "insmod", "sleep", "echo", "blockdev", "dd", "md5sum", "yes", "head", "dmesg", "grep", "sed", "poweroff",
    "cat", "ls", "mke2fs", "sync",
];

/// The initramfs: busybox, the modules in load order, and the test's /init.
fn initramfs(g: &Path, dir: &Path) -> PathBuf {
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mods = g.join("disk-modules");
    let order = String::from_utf8(read(mods.join("modules.order"))).unwrap();
    let mut e = vec![
        Entry::dir("bin", 0o755),
        Entry::dir("dev", 0o755),
        Entry::dir("proc", 0o755),
        Entry::dir("sys", 0o755),
        Entry::dir("tmp", 0o1777),
        Entry::dir("mnt", 0o755),
        Entry::dir("lib", 0o755),
        Entry::dir("lib/modules", 0o755),
        Entry::char_dev("dev/console", 0o600, 5, 1),
        Entry::file("bin/busybox", 0o755, read(g.join("busybox"))),
        Entry::file("init", 0o755, INIT.as_bytes().to_vec()),
        Entry::file("lib/modules/modules.order", 0o644, order.as_bytes().to_vec()),
    ];
    for a in APPLETS {
        e.push(Entry::symlink(&format!("bin/{a}"), "busybox"));
    }
    for m in order.lines() {
        e.push(Entry::file(
            &format!("lib/modules/{m}.ko"),
            0o644,
            read(mods.join(format!("{m}.ko"))),
        ));
    }
    let p = dir.join("disktest.cpio");
    std::fs::write(&p, archive(&e).unwrap()).unwrap();
    p
}

fn qemu_mode() -> bool {
    // KAGAMI_DISK_TEST_QEMU=1 runs the same guest under QEMU, to check the test itself.
    std::env::var("KAGAMI_DISK_TEST_QEMU").is_ok_and(|v| v == "1")
}

/// Boot the guest with `extra` kernel parameters and drive options; the
/// console output, after checking the workload finished without ATA errors,
/// with DMA on every device and a write cache on both disks. kagami runs the
/// guest on the instruction clock (`-icount shift=0`): deterministic, and a
/// busy host cannot make the guest see its CPU stall (soft lockups, ATA
/// command timeouts).
fn guest(g: &Path, machine: &str, initrd: &Path, extra: &str, drives: &[String]) -> String {
    let t0 = Instant::now();
    let mut cmd = if qemu_mode() {
        Command::new("qemu-system-x86_64")
    } else {
        let mut c = Command::new(kagami());
        c.args(["-icount", "shift=0"]);
        c
    };
    let out = cmd
        .args(["-machine", machine, "-m", "256", "-nographic", "-no-reboot", "-kernel"])
        .arg(g.join("vmlinux"))
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &format!("console=ttyS0 quiet loglevel=4 {extra}")])
        .args(drives)
        .stdin(Stdio::null())
        .output()
        .expect("run the emulator");
    eprintln!(
        "{machine} {extra}: {:.1} s; CPU of this test's child processes so far: {:.1} s",
        t0.elapsed().as_secs_f64(),
        children_cpu_seconds()
    );
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("DISKTEST done"), "{machine}: the workload did not finish:\n{log}");
    assert!(!log.contains("insmod"), "{machine}: a module failed to load:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("DISKTEST dmesg")).collect();
    assert!(
        errors.is_empty(),
        "{machine}: errors in the kernel log:\n{}\n\n{log}",
        errors.join("\n")
    );
    // The transfer mode libata chose (/sys/class/ata_device/*/xfer_mode):
    // one line per device (two disks and the CD-ROM), each a DMA mode
    // (XFER_MW_DMA_2 on PIIX3, XFER_UDMA_* on AHCI), not PIO.
    let modes: Vec<&str> = log.lines().filter(|l| l.contains("DISKTEST xfermode")).collect();
    assert_eq!(modes.len(), 3, "{machine}: expected three devices found by libata:\n{log}");
    assert!(
        modes.iter().all(|l| l.contains("DMA")),
        "{machine}: a device without DMA:\n{}",
        modes.join("\n")
    );
    // sd sends FLUSH CACHE for fsync only to a disk with a write cache.
    let caches: Vec<&str> = log.lines().filter(|l| l.contains("DISKTEST wcache")).collect();
    assert!(
        caches.len() == 2 && caches.iter().all(|l| l.contains("Write cache: enabled")),
        "{machine}: both disks should report a write cache (so fsync sends FLUSH CACHE):\n{log}"
    );
    log
}

/// The first word after `DISKTEST key` in the console output.
fn line(log: &str, key: &str) -> String {
    log.lines()
        .find_map(|l| {
            let tag = format!("DISKTEST {key} ");
            let at = l.find(&tag)?;
            Some(l[at + tag.len()..].split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| panic!("no 'DISKTEST {key}' line in the guest output:\n{log}"))
}

/// One boot on `machine`: a fresh test disk and CD, the shared data disk.
/// Checks what the guest read and wrote; returns the console output.
fn boot_and_check(g: &Path, dir: &Path, machine: &str, initrd: &Path, extra: &str, data: &Path) -> String {
    // An 8 MiB disk and a 1 MiB "CD" with recognisable contents.
    let disk: Vec<u8> = (0..DISK).map(|i| (i / 4096) as u8 ^ (i as u8).wrapping_mul(13)).collect();
    let cd: Vec<u8> = (0..1u32 << 20).map(|i| (i / 2048) as u8 ^ 0x5a ^ machine.len() as u8).collect();
    let disk_path = dir.join(format!("disk-{machine}.raw"));
    let cd_path = dir.join(format!("cd-{machine}.iso"));
    std::fs::write(&disk_path, &disk).unwrap();
    std::fs::write(&cd_path, &cd).unwrap();
    let drives = [
        "-drive".to_string(),
        format!("file={},format=raw,if=ide,index=0", disk_path.display()),
        "-drive".to_string(),
        format!("file={},format=qcow2,if=ide,index=1", data.display()),
        "-cdrom".into(),
        cd_path.display().to_string(),
    ];
    let log = guest(g, machine, initrd, extra, &drives);
    assert_eq!(line(&log, "size"), DISK.to_string(), "{machine}");
    assert_eq!(line(&log, "read"), md5(&disk[..1 << 20]), "{machine}: first MiB read");
    let pattern: Vec<u8> = b"kagami-disk-test\n".iter().cycle().take(1 << 20).copied().collect();
    assert_eq!(line(&log, "reread"), md5(&pattern), "{machine}: written MiB read back");
    assert_eq!(line(&log, "cdsize"), (1u32 << 20).to_string(), "{machine}");
    assert_eq!(line(&log, "cd"), md5(&cd[..64 * 2048]), "{machine}: CD-ROM read");
    let after = std::fs::read(&disk_path).unwrap();
    assert!(
        after[2 << 20..3 << 20] == pattern[..],
        "{machine}: the write did not reach the image file"
    );
    assert!(
        after[..2 << 20] == disk[..2 << 20] && after[3 << 20..] == disk[3 << 20..],
        "{machine}: bytes outside the write changed"
    );
    log
}

/// ata_piix on pc, then ahci on q35, each reading and writing its disks and
/// the CD-ROM with DMA; an ext2 file written on the first boot (through a
/// qcow2 overlay on a raw base) is read back on the second.
#[test]
fn linux_ata_piix_and_ahci_read_write_and_persist_ext2_on_a_qcow2_overlay() {
    let Some(g) = guest_with_disk_modules() else { return };
    let dir = tmpdir("disk-guest", "linux");
    let initrd = initramfs(&g, &dir);
    let base = dir.join("base.raw");
    let base_bytes = vec![0u8; DATA as usize];
    std::fs::write(&base, &base_bytes).unwrap();
    let overlay = dir.join("overlay.qcow2");
    kagami_machine::img::create_image(&overlay, ImageFormat::Qcow2, DATA as u64, Some(("base.raw", ImageFormat::Raw))).unwrap();

    let log = boot_and_check(&g, &dir, "pc", &initrd, "disktest=format", &overlay);
    assert_eq!(line(&log, "formatted"), "ok", "pc: ext2 on the data disk:\n{log}");
    let log = boot_and_check(&g, &dir, "q35", &initrd, "disktest=check", &overlay);
    let file: Vec<u8> = b"kagami-persist\n".iter().cycle().take(300_000).copied().collect();
    assert_eq!(line(&log, "file"), md5(&file), "q35: the file read back differs:\n{log}");
    assert!(std::fs::read(&base).unwrap() == base_bytes, "the base image changed");
    let check = Command::new("qemu-img").arg("check").arg(&overlay).output().expect("qemu-img");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}
