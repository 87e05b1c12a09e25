//! Linux's own drivers on kagami's disk controllers: the test guest's
//! kernel boots (direct kernel boot) with an initramfs that loads libata,
//! ata_piix or ahci, sd_mod and sr_mod, then reads the hard disk, writes
//! 1 MiB with fsync (FLUSH CACHE), reads it back past the page cache, and
//! reads the CD-ROM. The host checks every checksum the guest prints, the
//! bytes that reached the image file, and that the kernel log has no ATA
//! errors or timeouts. `-machine pc` exercises PIIX3 IDE (ata_piix, bus-master
//! DMA), `-machine q35` ICH9 AHCI.
//!
//! Needs target/guest (scripts/build-test-guest.sh) and the modules from
//! scripts/build-disk-guest.sh; without them the test says SKIPPED (a
//! failure under KAGAMI_REQUIRE_GUEST=1). KAGAMI_DISK_TEST_QEMU=1 runs the
//! same checks on QEMU instead, to check the test.

use kagami_machine::initramfs::{archive, Entry};
use std::path::{Path, PathBuf};
use std::process::Command;

fn guest_dir() -> PathBuf {
    match std::env::var_os("KAGAMI_GUEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guest"),
    }
}

fn kagami() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("kagami");
    if !bin.exists() {
        let target = profile_dir.parent().unwrap();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "kagami-machine", "--bin", "kagami", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the kagami binary failed");
    }
    bin
}

const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read m; do insmod /lib/modules/$m.ko || echo "DISKTEST insmod $m failed"; done </lib/modules/modules.order
mode=rw
case " $(cat /proc/cmdline) " in
*" disktest=format "*) mode=format ;;
*" disktest=check "*) mode=check ;;
esac
n=0
while [ ! -b /dev/sda ] || { [ $mode = rw ] && [ ! -b /dev/sr0 ]; }; do
    n=$((n+1)); [ $n -gt 6000 ] && break; sleep 0.1
done
echo "DISKTEST size $(blockdev --getsize64 /dev/sda)"
case $mode in
rw)
    echo "DISKTEST read $(dd if=/dev/sda bs=4096 count=256 2>/dev/null | md5sum)"
    yes kagami-disk-test | head -c 1048576 >/tmp/p
    dd if=/tmp/p of=/dev/sda bs=65536 seek=32 conv=fsync 2>/dev/null
    echo 3 >/proc/sys/vm/drop_caches
    echo "DISKTEST reread $(dd if=/dev/sda bs=65536 skip=32 count=16 2>/dev/null | md5sum)"
    echo "DISKTEST cdsize $(blockdev --getsize64 /dev/sr0)"
    echo "DISKTEST cd $(dd if=/dev/sr0 bs=2048 count=64 2>/dev/null | md5sum)"
    ;;
format)
    mke2fs -q /dev/sda && mount -t ext2 /dev/sda /mnt && yes kagami-persist | head -c 300000 >/mnt/file && sync \
        && umount /mnt && echo "DISKTEST formatted ok"
    ;;
check)
    mount -t ext2 -o ro /dev/sda /mnt && echo "DISKTEST file $(md5sum </mnt/file)"
    ;;
esac
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
fn initramfs(dir: &Path) -> Option<PathBuf> {
    let g = guest_dir();
    let busybox = std::fs::read(g.join("busybox")).ok()?;
    let mods = g.join("disk-modules");
    let order = std::fs::read_to_string(mods.join("modules.order")).ok()?;
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
        Entry::file("bin/busybox", 0o755, busybox),
        Entry::file("init", 0o755, INIT.as_bytes().to_vec()),
        Entry::file("lib/modules/modules.order", 0o644, order.as_bytes().to_vec()),
    ];
    for a in APPLETS {
        e.push(Entry::symlink(&format!("bin/{a}"), "busybox"));
    }
    for m in order.lines() {
        let ko = std::fs::read(mods.join(format!("{m}.ko"))).ok()?;
        e.push(Entry::file(&format!("lib/modules/{m}.ko"), 0o644, ko));
    }
    let p = dir.join("disktest.cpio");
    std::fs::write(&p, archive(&e).unwrap()).unwrap();
    Some(p)
}

fn skip(msg: &str) {
    assert!(std::env::var("KAGAMI_REQUIRE_GUEST").map_or(true, |v| v != "1"), "{msg}");
    eprintln!("SKIPPED: {msg}");
}

fn md5(data: &[u8], dir: &Path) -> String {
    let p = dir.join("md5.in");
    std::fs::write(&p, data).unwrap();
    let o = Command::new("md5sum").arg(&p).output().expect("md5sum");
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
}

fn emulator() -> PathBuf {
    // KAGAMI_DISK_TEST_QEMU=1 runs the same guest under QEMU, to check the test itself.
    match std::env::var("KAGAMI_DISK_TEST_QEMU") {
        Ok(v) if v == "1" => PathBuf::from("qemu-system-x86_64"),
        _ => kagami(),
    }
}

/// Boot the guest with `extra` kernel parameters and drive options; the
/// console output, after checking the workload finished without ATA errors.
fn guest(machine: &str, initrd: &Path, extra: &str, drives: &[String]) -> String {
    let out = Command::new(emulator())
        .args(["-machine", machine, "-m", "256", "-nographic", "-no-reboot", "-kernel"])
        .arg(guest_dir().join("bzImage"))
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &format!("console=ttyS0 quiet loglevel=4 {extra}")])
        .args(drives)
        .output()
        .expect("run the emulator");
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("DISKTEST done"), "{machine}: the workload did not finish:\n{log}");
    assert!(!log.contains("insmod"), "{machine}: a module failed to load:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("DISKTEST dmesg")).collect();
    assert!(errors.is_empty(), "{machine}: errors in the kernel log:\n{}", errors.join("\n"));
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

/// A scratch folder and the initramfs, or None (skipped) without the guest.
fn prepare(name: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("kagami-disk-guest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    match initramfs(&dir).filter(|_| guest_dir().join("bzImage").is_file()) {
        Some(i) => Some((dir, i)),
        None => {
            skip("the test guest or its disk modules are missing: run scripts/build-test-guest.sh and scripts/build-disk-guest.sh");
            None
        }
    }
}

fn run(machine: &str) {
    let Some((dir, initrd)) = prepare(machine) else { return };
    // An 8 MiB disk and a 1 MiB "CD" with recognisable contents.
    let disk: Vec<u8> = (0..8u32 << 20).map(|i| (i / 4096) as u8 ^ (i as u8).wrapping_mul(13)).collect();
    let cd: Vec<u8> = (0..1u32 << 20).map(|i| (i / 2048) as u8 ^ 0x5a).collect();
    let disk_path = dir.join("disk.raw");
    let cd_path = dir.join("cd.iso");
    std::fs::write(&disk_path, &disk).unwrap();
    std::fs::write(&cd_path, &cd).unwrap();
    let log = guest(
        machine,
        &initrd,
        "",
        &[
            "-drive".into(),
            format!("file={},format=raw,if=ide,index=0", disk_path.display()),
            "-cdrom".into(),
            cd_path.display().to_string(),
        ],
    );
    assert_eq!(line(&log, "size"), (8u32 << 20).to_string(), "{machine}");
    assert_eq!(line(&log, "read"), md5(&disk[..1 << 20], &dir), "{machine}: first MiB read");
    let pattern: Vec<u8> = b"kagami-disk-test\n".iter().cycle().take(1 << 20).copied().collect();
    assert_eq!(line(&log, "reread"), md5(&pattern, &dir), "{machine}: written MiB read back");
    assert_eq!(line(&log, "cdsize"), (1u32 << 20).to_string(), "{machine}");
    assert_eq!(line(&log, "cd"), md5(&cd[..64 * 2048], &dir), "{machine}: CD-ROM read");
    let after = std::fs::read(&disk_path).unwrap();
    assert!(
        after[2 << 20..3 << 20] == pattern[..],
        "{machine}: the write did not reach the image file"
    );
    assert!(
        after[..2 << 20] == disk[..2 << 20] && after[3 << 20..] == disk[3 << 20..],
        "{machine}: bytes outside the write changed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "slow: boots Linux on kagami (about 6.5 min per boot in release); run: cargo test --release -p kagami-tests --test disk_guest -- --ignored"]
fn linux_ata_piix_reads_and_writes_ide_disk_and_cdrom() {
    run("pc");
}

#[test]
#[ignore = "slow: boots Linux on kagami (about 6.5 min per boot in release); run: cargo test --release -p kagami-tests --test disk_guest -- --ignored"]
fn linux_ahci_reads_and_writes_sata_disk_and_cdrom() {
    run("q35");
}

/// Persistence through a qcow2 overlay on a raw base: the guest formats the
/// disk (busybox mke2fs), writes a file and syncs; a second boot, on the
/// other controller, reads the same bytes back. The base stays unchanged
/// and the overlay passes `qemu-img check`.
#[test]
#[ignore = "slow: boots Linux on kagami (about 6.5 min per boot in release); run: cargo test --release -p kagami-tests --test disk_guest -- --ignored"]
fn linux_ext2_on_a_qcow2_overlay_persists_across_boots() {
    use kagami_machine::drive::ImageFormat;
    let Some((dir, initrd)) = prepare("persist") else { return };
    let base = dir.join("base.raw");
    let base_bytes = vec![0u8; 32 << 20];
    std::fs::write(&base, &base_bytes).unwrap();
    let overlay = dir.join("overlay.qcow2");
    kagami_machine::img::create_image(&overlay, ImageFormat::Qcow2, 32 << 20, Some(("base.raw", ImageFormat::Raw))).unwrap();
    let drive = vec![
        "-drive".to_string(),
        format!("file={},format=qcow2,if=ide,index=0", overlay.display()),
    ];
    let log = guest("pc", &initrd, "disktest=format", &drive);
    assert_eq!(line(&log, "formatted"), "ok", "{log}");
    let log = guest("q35", &initrd, "disktest=check", &drive);
    let file: Vec<u8> = b"kagami-persist\n".iter().cycle().take(300_000).copied().collect();
    assert_eq!(line(&log, "file"), md5(&file, &dir), "the file read back differs");
    assert!(std::fs::read(&base).unwrap() == base_bytes, "the base image changed");
    let check = Command::new("qemu-img").arg("check").arg(&overlay).output().expect("qemu-img");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}
