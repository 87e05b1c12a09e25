//! The test guest installed on bootable media and started by real firmware:
//! Debian's SeaBIOS loads SYSLINUX from a raw disk image (MBR, FAT partition)
//! or ISOLINUX from an ISO (El Torito, no emulation), which loads the guest's
//! kernel and initrd; the guest reaches its marker, runs
//! /etc/kagami-boot.sh and powers off, and kagami must exit with status 0.
//! `-machine pc` puts the drives on PIIX3 IDE, `-machine q35` on ICH9 AHCI.
//! scripts/build-boot-images.sh builds the images (see it for what the
//! guest's workload does with a second disk) into target/boot-images/.
//!
//! Persistence: a blank data disk (a qcow2 overlay on a raw base) is
//! formatted by the guest (busybox mkdosfs), which writes KAGAMI.DAT and
//! syncs; the host reads that file back out of the image with mtools and a
//! second boot, on the other machine, reads the same bytes; the base is
//! unchanged. `-snapshot` leaves every image byte-identical although the
//! guest wrote to them. Four boots in all, each a whole Linux boot.
//!
//! Without the images or the tools the tests say SKIPPED (a failure under
//! KAGAMI_REQUIRE_GUEST=1). KAGAMI_BOOT_TEST_QEMU=1 runs the same checks on
//! QEMU, to check the tests and the images themselves.

use kagami_tests::harness::{boot_images as images, kagami, sha256_file as sha256, SEABIOS as BIOS};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Size of the data disk: busybox mkdosfs makes FAT32, which mtools (the
/// host-side check) reads only with more than 65524 clusters.
const DATA_DISK: u64 = 64 << 20;
/// A guard against a hung guest only: a boot takes about 100 s of CPU, but
/// one took 14 min on a machine loaded 10 times over.
const WATCHDOG: Duration = Duration::from_secs(1800);

fn qemu_mode() -> bool {
    std::env::var("KAGAMI_BOOT_TEST_QEMU").is_ok_and(|v| v == "1")
}

fn temp_dir(name: &str) -> PathBuf {
    kagami_tests::harness::tmpdir("boot-images", name)
}

fn blank(p: &Path) {
    std::fs::File::create(p).unwrap().set_len(DATA_DISK).unwrap();
}

/// What one boot printed, with the parsed BOOTIMG lines.
struct Boot {
    log: String,
    wrote: Option<String>,
    read: Option<String>,
    /// kagami.medium= from the boot loader's configuration: disk or cd.
    medium: Option<String>,
}

/// Boot `machine` with `args` (drives, -boot, -snapshot) through SeaBIOS,
/// kagami on the instruction clock (`-icount shift=0`: deterministic, and a
/// busy host cannot make the guest see its CPU stall; with the host clock a
/// run at load 20 on 2 cores showed "watchdog: BUG: soft lockup - CPU#0
/// stuck for 22s!"), and check what every boot must show: the marker, the workload done, power-off
/// with exit status 0, no failed command and no kernel warnings or ATA errors.
fn boot(machine: &str, what: &str, args: &[String]) -> Boot {
    let emulator = if qemu_mode() {
        PathBuf::from("qemu-system-x86_64")
    } else {
        kagami()
    };
    let t0 = Instant::now();
    let mut child = Command::new(emulator)
        .args(["-machine", machine, "-m", "256", "-nographic", "-no-reboot", "-bios", BIOS])
        .args(if qemu_mode() { &[][..] } else { &["-icount", "shift=0"][..] })
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the emulator");
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        let _ = tx.send(s);
    });
    let stdout = match rx.recv_timeout(WATCHDOG) {
        Ok(s) => s,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{machine} {what}: no power-off within {WATCHDOG:?}");
        }
    };
    let status = child.wait().unwrap();
    let stderr = err_reader.join().unwrap();
    let log = String::from_utf8_lossy(&stdout).replace('\r', "") + &String::from_utf8_lossy(&stderr);
    let ctx = format!("{machine} {what}");
    eprintln!(
        "{ctx}: {:.1} s; CPU of this test's child processes so far: {:.1} s",
        t0.elapsed().as_secs_f64(),
        kagami_tests::harness::children_cpu_seconds()
    );
    assert!(log.contains("KAGAMI-MARKER"), "{ctx}: the guest did not reach its marker:\n{log}");
    assert!(log.contains("BOOTIMG done"), "{ctx}: the workload did not finish:\n{log}");
    assert!(log.contains("KAGAMI-POWEROFF"), "{ctx}: the guest did not power off:\n{log}");
    assert!(status.success(), "{ctx}: exit status {status:?} after power-off:\n{log}");
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("BOOTIMG dmesg") || (l.contains("BOOTIMG") && l.contains("failed")))
        .collect();
    assert!(
        bad.is_empty(),
        "{ctx}: problems in the guest:\n{}\n\nfull log:\n{log}",
        bad.join("\n")
    );
    let field = |key: &str| {
        log.lines().find_map(|l| {
            let tag = format!("BOOTIMG {key} ");
            let at = l.find(&tag)?;
            l[at + tag.len()..].split_whitespace().next().map(str::to_string)
        })
    };
    let (wrote, read, medium) = (field("wrote"), field("read"), field("medium"));
    Boot { log, wrote, read, medium }
}

fn drive(path: &Path, format: &str, index: u32) -> String {
    format!("file={},format={format},if=ide,index={index}", path.display())
}

fn disk_args(boot_disk: &Path, data: Option<(&Path, &str)>) -> Vec<String> {
    let mut a = vec!["-drive".into(), drive(boot_disk, "raw", 0)];
    if let Some((p, f)) = data {
        a.extend(["-drive".into(), drive(p, f, 1)]);
    }
    a
}

/// The MD5 of KAGAMI.DAT in the FAT file system of a raw image, read with mtools.
fn host_md5_of_file(image: &Path) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("mcopy -n -i '{}' ::KAGAMI.DAT - | md5sum", image.display()))
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .expect("run mcopy");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// CD boot (`-cdrom`, `-boot d`) with a data disk at index 0: blank and
/// under `-snapshot` (the guest writes to it, every image stays byte-identical).
fn cd_boot_snapshot(machine: &str) {
    let Some((_, shared_cd)) = images() else { return };
    let dir = temp_dir(&format!("cd-{machine}"));
    // A copy, as for the disk: another test process may rebuild the shared
    // images (scripts/build-boot-images.sh, when an input changed) meanwhile.
    let cd = dir.join("cd.iso");
    std::fs::copy(&shared_cd, &cd).unwrap();
    let data = dir.join("data.raw");
    blank(&data);
    let before = (sha256(&cd), sha256(&data));
    let args: Vec<String> = [
        "-drive".to_string(),
        drive(&data, "raw", 0),
        "-cdrom".into(),
        cd.display().to_string(),
    ]
    .into_iter()
    .chain(["-boot", "d", "-snapshot"].map(String::from))
    .collect();
    let b = boot(machine, "CD boot with -snapshot", &args);
    assert_eq!(
        b.medium.as_deref(),
        Some("cd"),
        "{machine}: SeaBIOS did not boot the CD:\n{}",
        b.log
    );
    assert!(b.wrote.is_some(), "{machine}: the guest did not write to the data disk:\n{}", b.log);
    assert_eq!((sha256(&cd), sha256(&data)), before, "{machine}: -snapshot changed an image");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn iso_boots_from_cdrom_through_seabios_on_pc_ide_under_snapshot() {
    cd_boot_snapshot("pc");
}

#[test]
fn iso_boots_from_cdrom_through_seabios_on_q35_ahci_under_snapshot() {
    cd_boot_snapshot("q35");
}

/// Disk boot on both machines, with a data disk that is a qcow2 overlay
/// (`kagami img create -f qcow2 -b base.raw -F raw`) on a blank raw base: on
/// `-machine pc` (IDE) the guest formats it and writes its file, which the
/// host then finds in the overlay (qemu-img convert + mtools); on
/// `-machine q35` (AHCI) a second boot reads the same bytes back. The base's
/// checksum never changes. Two boots only: each is a whole Linux boot.
#[test]
fn disk_image_boots_on_pc_and_q35_and_data_persists_in_a_qcow2_overlay() {
    let Some((disk, _)) = images() else { return };
    let dir = temp_dir("disk");
    let boot_disk = dir.join("boot.raw");
    std::fs::copy(&disk, &boot_disk).unwrap();
    let boot_sum = sha256(&boot_disk);
    let base = dir.join("base.raw");
    blank(&base);
    let base_sum = sha256(&base);
    let overlay = dir.join("overlay.qcow2");
    let mut img = if qemu_mode() {
        let mut c = Command::new("qemu-img");
        c.arg("create");
        c
    } else {
        let mut c = Command::new(kagami());
        c.args(["img", "create"]);
        c
    };
    let o = img
        .args(["-f", "qcow2", "-b"])
        .arg(&base)
        .args(["-F", "raw"])
        .arg(&overlay)
        .output()
        .expect("img create");
    assert!(o.status.success(), "img create: {}", String::from_utf8_lossy(&o.stderr));
    let args = disk_args(&boot_disk, Some((&overlay, "qcow2")));

    let first = boot("pc", "disk boot (write)", &args);
    assert_eq!(
        first.medium.as_deref(),
        Some("disk"),
        "pc: not started from the disk:\n{}",
        first.log
    );
    let wrote = first.wrote.unwrap_or_else(|| panic!("pc: the guest wrote no file:\n{}", first.log));
    assert_eq!(sha256(&base), base_sum, "the raw base changed under the qcow2 overlay");
    let flat = dir.join("flat.raw");
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&overlay)
        .arg(&flat)
        .output()
        .expect("run qemu-img (Debian package qemu-utils)");
    assert!(o.status.success(), "qemu-img convert: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        host_md5_of_file(&flat),
        wrote,
        "KAGAMI.DAT in the overlay differs from what the guest wrote"
    );

    let second = boot("q35", "disk boot (read back)", &args);
    assert_eq!(
        second.medium.as_deref(),
        Some("disk"),
        "q35: not started from the disk:\n{}",
        second.log
    );
    assert_eq!(second.wrote, None, "q35: the second boot found a blank disk:\n{}", second.log);
    assert_eq!(second.read.as_deref(), Some(wrote.as_str()), "q35: read back:\n{}", second.log);
    assert_eq!(sha256(&base), base_sum, "the raw base changed under the qcow2 overlay");
    assert_eq!(sha256(&boot_disk), boot_sum, "the boot disk changed");
    let _ = std::fs::remove_dir_all(&dir);
}
