//! Drive options as a user meets them: image locking between kagami
//! processes (writers exclusive, readers, `-snapshot` and qcow2 backing
//! files shared), QEMU's `-device ide-hd/ide-cd/ahci` spellings and their
//! errors, and corrupt images refused at start-up with exit code 1 and the
//! file left as it was. All through the `kagami` binary or
//! `kagami_machine::drive::open`, without a guest OS: the machine runs a
//! 64 KiB firmware image that spins at the reset vector.

use kagami_machine::drive::{self, OpenOptions};
use kagami_machine::img;
use kagami_tests::harness::kagami;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kagami-drive-options-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i / 512) as u8 ^ (i as u8).wrapping_mul(3)).collect()
}

/// A 64 KiB firmware image whose reset vector is `jmp $`.
fn spin_bios(d: &Path) -> PathBuf {
    let mut rom = vec![0xf4u8; 0x1_0000];
    rom[0xfff0] = 0xeb;
    rom[0xfff1] = 0xfe;
    let p = d.join("spin.bin");
    std::fs::write(&p, rom).unwrap();
    p
}

fn kagami_cmd(bios: &Path, machine: &str, args: &[&str]) -> Command {
    let mut c = Command::new(kagami());
    c.args(["-machine", machine, "-accel", "tcg", "-display", "none", "-serial", "null", "-bios"])
        .arg(bios)
        .args(args)
        .stdin(Stdio::null());
    c
}

/// Run a kagami that must stop at start-up: its exit code and stderr.
fn fails(bios: &Path, machine: &str, args: &[&str]) -> String {
    let out: Output = kagami_cmd(bios, machine, args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "kagami {args:?} should exit 1; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn rw() -> OpenOptions {
    OpenOptions {
        format: None,
        read_only: false,
        snapshot: false,
    }
}
fn ro() -> OpenOptions {
    OpenOptions { read_only: true, ..rw() }
}
fn snap() -> OpenOptions {
    OpenOptions { snapshot: true, ..rw() }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn img_create(args: &[&str]) {
    assert_eq!(img::main(args.iter().map(|a| a.into()).collect()), 0, "kagami img {args:?}");
}

/// A running kagami holding `image` (killed on drop).
struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a kagami with `args` and wait (up to two minutes, checking every
/// 50 ms) until it holds an exclusive lock on `image`: until this process
/// can no longer take a shared one.
fn start_writer(bios: &Path, machine: &str, args: &[&str], image: &Path) -> Running {
    let child = kagami_cmd(bios, machine, args).stderr(Stdio::null()).spawn().unwrap();
    let mut r = Running(child);
    for _ in 0..2400 {
        if drive::open(image, &ro()).is_err() {
            return r;
        }
        if let Some(st) = r.0.try_wait().unwrap() {
            panic!("the first kagami exited ({st}) before locking {}", image.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the first kagami never locked {}", image.display());
}

/// A qcow2 overlay holds shared locks on its whole backing chain: bases can
/// be read by others but not opened for writing while the overlay is in
/// use, and an overlay cannot be opened on a base someone writes.
#[test]
fn backing_files_are_locked_shared() {
    let d = dir("backing");
    let base = d.join("base.raw");
    std::fs::write(&base, pattern(1 << 20)).unwrap();
    let mid = d.join("mid.qcow2");
    let top = d.join("top.qcow2");
    img_create(&["create", "-f", "qcow2", "-b", &s(&base), "-F", "raw", &s(&mid)]);
    img_create(&["create", "-f", "qcow2", "-b", &s(&mid), "-F", "qcow2", &s(&top)]);
    let before = std::fs::read(&base).unwrap();
    {
        let mut t = drive::open(&top, &rw()).unwrap();
        t.write_at(0, &[0xaa; 4096]).unwrap();
        for layer in [&base, &mid] {
            let e = drive::open(layer, &rw())
                .err()
                .expect("a backing file in use must not open for writing");
            assert!(e.contains("locked") && e.contains(&s(layer)), "{e}");
            drive::open(layer, &ro()).expect("readers share a backing file");
        }
        // A second overlay on the same base shares it too.
        let other = d.join("other.qcow2");
        img_create(&["create", "-f", "qcow2", "-b", &s(&base), "-F", "raw", &s(&other)]);
        drive::open(&other, &rw()).expect("two overlays on one base");
        assert!(drive::open(&top, &rw()).is_err(), "the overlay itself is exclusive");
    }
    drive::open(&base, &rw()).expect("released with the overlay");
    assert!(std::fs::read(&base).unwrap() == before, "the base was written");
    // A base opened for writing: no overlay on it.
    let w = drive::open(&base, &rw()).unwrap();
    let e = drive::open(&top, &snap()).err().expect("overlay over a base being written");
    assert!(e.contains("base.raw") && e.contains("locked"), "{e}");
    drop(w);
}

/// `-snapshot` (and readonly=on) take shared locks only: they coexist with
/// each other, and keep writers out.
#[test]
fn snapshot_takes_only_shared_locks() {
    let d = dir("snapshot");
    let raw = d.join("disk.raw");
    std::fs::write(&raw, pattern(1 << 16)).unwrap();
    let a = drive::open(&raw, &snap()).unwrap();
    let b = drive::open(&raw, &snap()).expect("two -snapshot users");
    let c = drive::open(&raw, &ro()).expect("-snapshot and a reader");
    assert!(drive::open(&raw, &rw()).is_err(), "a writer while -snapshot users read");
    drop((a, b, c));
    let w = drive::open(&raw, &rw()).unwrap();
    let e = drive::open(&raw, &snap()).err().expect("-snapshot of an image being written");
    assert!(e.contains("disk.raw"), "{e}");
    drop(w);
}

/// Two kagami processes: the second writer of an image gets a message
/// naming it and exit code 1; with the image held, `-snapshot` is refused
/// as well (its base would change under it); two `-snapshot` runs share it.
#[test]
fn second_kagami_writer_exits_1() {
    let d = dir("second");
    let bios = spin_bios(&d);
    let raw = d.join("disk.raw");
    std::fs::write(&raw, pattern(1 << 20)).unwrap();
    let before = std::fs::read(&raw).unwrap();
    let drive = format!("file={},format=raw,if=ide", s(&raw));
    {
        let _first = start_writer(&bios, "pc", &["-drive", &drive], &raw);
        let e = fails(&bios, "pc", &["-drive", &drive]);
        assert!(e.contains("disk.raw") && e.contains("locked"), "{e}");
        let e = fails(&bios, "q35", &["-hda", &s(&raw)]);
        assert!(e.contains("locked"), "{e}");
        let e = fails(&bios, "pc", &["-drive", &drive, "-snapshot"]);
        assert!(e.contains("disk.raw") && e.contains("locked"), "{e}");
    }
    // Two -snapshot runs at once: the second starts and runs (it is stopped
    // by its instruction limit, exit 0), and neither writes the image.
    let mut first = kagami_cmd(&bios, "pc", &["-drive", &drive, "-snapshot"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = kagami_cmd(&bios, "pc", &["-drive", &drive, "-snapshot", "--max-instructions", "100000"])
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&raw).unwrap() == before);
}

/// QEMU's `-device` spellings: a good set starts, bad ones exit 1 naming
/// the problem.
#[test]
fn device_spellings_start_or_exit_1() {
    let d = dir("device");
    let bios = spin_bios(&d);
    let a = d.join("a.raw");
    let b = d.join("b.raw");
    std::fs::write(&a, pattern(1 << 16)).unwrap();
    std::fs::write(&b, pattern(1 << 16)).unwrap();
    let da = format!("if=none,id=d0,format=raw,file={}", s(&a));
    let db = format!("if=none,id=d1,format=raw,file={}", s(&b));
    let run = |machine: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--max-instructions", "100000"]);
        let out = kagami_cmd(&bios, machine, &all).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(
        "pc",
        &["-drive", &da, "-device", "ide-hd,drive=d0,bus=ide.1,unit=0", "-device", "ide-cd"],
    );
    run(
        "q35",
        &[
            "-drive",
            &da,
            "-drive",
            &db,
            "-device",
            "ahci,id=ahci0",
            "-device",
            "ide-hd,drive=d0,bus=ahci0.0,bootindex=1",
            "-device",
            "ide-hd,drive=d1,bus=ide.2",
        ],
    );
    run(
        "pc",
        &[
            "-drive",
            &da,
            "-device",
            "ich9-ahci,addr=0x4",
            "-device",
            "ide-hd,drive=d0,bus=ide.2",
        ],
    );

    let cases: [(&str, Vec<&str>, &str); 7] = [
        ("pc", vec!["-drive", &da, "-device", "ide-hd,drive=nope"], "no -drive with id=nope"),
        (
            "pc",
            vec!["-drive", &da, "-device", "ide-hd,drive=d0,bus=ide.5"],
            "bus=ide.5 does not exist",
        ),
        (
            "q35",
            vec!["-drive", &da, "-device", "ide-hd,drive=d0,bus=ahci1.0"],
            "bus=ahci1.0 does not exist",
        ),
        (
            "pc",
            vec![
                "-drive",
                &da,
                "-drive",
                &db,
                "-device",
                "ide-hd,drive=d0,bus=ide.0,unit=1",
                "-device",
                "ide-hd,drive=d1,bus=ide.0,unit=1",
            ],
            "unit 1 of bus ide.0 is in use",
        ),
        (
            "pc",
            vec!["-drive", &da, "-device", "ide-hd,drive=d0", "-device", "ide-cd,drive=d0"],
            "already used",
        ),
        (
            "pc",
            vec!["-drive", &da, "-device", "ahci,addr=1", "-device", "ide-hd,drive=d0"],
            "slot 0x1 is taken",
        ),
        (
            "pc",
            vec!["-drive", &da, "-device", "ide-hd,drive=d0,colour=red"],
            "unknown property 'colour'",
        ),
    ];
    for (machine, args, want) in cases {
        let e = fails(&bios, machine, &args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

/// A corrupt or truncated qcow2 and a missing backing file stop kagami at
/// start-up with exit code 1 and a message naming the file, which is left
/// byte-identical.
#[test]
fn corrupt_images_exit_1_unmodified() {
    let d = dir("corrupt");
    let bios = spin_bios(&d);
    let raw = d.join("src.raw");
    std::fs::write(&raw, pattern(1 << 20)).unwrap();
    let q = d.join("disk.qcow2");
    assert_eq!(
        img::main(vec![
            "convert".into(),
            "-O".into(),
            "qcow2".into(),
            raw.clone().into(),
            q.clone().into()
        ]),
        0
    );
    let good = std::fs::read(&q).unwrap();
    let be64 = |b: &[u8], o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap());
    let mut l1_past_end = good.clone();
    l1_past_end[40..48].copy_from_slice(&(good.len() as u64 + 0x10000).to_be_bytes());
    let mut no_magic = good.clone();
    no_magic[0] = b'X';
    let mut marked_corrupt = good.clone();
    assert_eq!(u32::from_be_bytes(good[4..8].try_into().unwrap()), 3, "kagami img writes v3");
    let feats = be64(&good, 72) | 2;
    marked_corrupt[72..80].copy_from_slice(&feats.to_be_bytes());
    let rt = be64(&good, 48) as usize;
    let truncated = good[..rt].to_vec();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("L1 table past the end", l1_past_end, "L1 table"),
        ("no magic", no_magic, "no qcow2 magic"),
        ("corrupt bit", marked_corrupt, "marked corrupt"),
        ("truncated", truncated, "truncated"),
    ];
    for (what, bytes, want) in cases {
        std::fs::write(&q, &bytes).unwrap();
        let e = fails(&bios, "q35", &["-drive", &format!("file={},format=qcow2", s(&q))]);
        assert!(e.contains("disk.qcow2") && e.contains(want), "{what}: {e}");
        assert!(std::fs::read(&q).unwrap() == bytes, "{what}: the image was modified");
    }
    // Missing backing file.
    let base = d.join("base.raw");
    std::fs::write(&base, pattern(1 << 16)).unwrap();
    let ov = d.join("overlay.qcow2");
    img_create(&["create", "-f", "qcow2", "-b", &s(&base), "-F", "raw", &s(&ov)]);
    std::fs::remove_file(&base).unwrap();
    let before = std::fs::read(&ov).unwrap();
    let e = fails(&bios, "pc", &["-hda", &s(&ov)]);
    assert!(e.contains("base.raw") && e.contains("does not exist"), "{e}");
    assert!(std::fs::read(&ov).unwrap() == before);
    // A raw image smaller than a sector, and a directory.
    std::fs::write(&raw, [0u8; 100]).unwrap();
    let e = fails(&bios, "pc", &["-drive", &format!("file={},format=raw", s(&raw))]);
    assert!(e.contains("src.raw") && e.contains("sector"), "{e}");
    let e = fails(&bios, "pc", &["-hda", &s(&d)]);
    assert!(e.contains("not a regular file"), "{e}");
}

fn have_qemu_img() -> bool {
    let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: qemu-img is not installed (apt-get install qemu-utils)");
    }
    ok
}

/// The corners of the qcow2 list together: a version 2 image with
/// compressed clusters (made by `qemu-img convert -c -o compat=0.10`) as
/// the base of a kagami-made overlay; reads through the chain match, writes
/// go to the overlay only, and `qemu-img check` accepts the overlay.
#[test]
fn compressed_v2_base_under_an_overlay() {
    if !have_qemu_img() {
        return;
    }
    let d = dir("compressed");
    // Compressible: each sector names itself, then repeats one byte.
    let data: Vec<u8> = (0..(2usize << 20) / 512)
        .flat_map(|n| {
            let mut sector = format!("sector {n:08}").into_bytes();
            sector.resize(512, n as u8);
            sector
        })
        .collect();
    let raw = d.join("src.raw");
    std::fs::write(&raw, &data).unwrap();
    let base = d.join("base-v2c.qcow2");
    let out = Command::new("qemu-img")
        .args(["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10"])
        .arg(&raw)
        .arg(&base)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = img::info(None, &base).unwrap();
    assert!(info.contains("qcow2 version: 2"), "{info}");
    assert!(
        std::fs::metadata(&base).unwrap().len() < data.len() as u64 / 2,
        "clusters are compressed"
    );
    let ov = d.join("overlay.qcow2");
    img_create(&["create", "-f", "qcow2", "-b", &s(&base), "-F", "qcow2", &s(&ov)]);
    let before = std::fs::read(&base).unwrap();
    {
        let mut b = drive::open(&ov, &rw()).unwrap();
        let mut got = vec![0u8; data.len()];
        b.read_at(0, &mut got).unwrap();
        assert!(got == data, "reading compressed clusters through the overlay");
        b.write_at(65536 + 512, &[0xcd; 1024]).unwrap();
        b.flush().unwrap();
        b.read_at(65536, &mut got[..4096]).unwrap();
        assert_eq!(&got[..512], &data[65536..65536 + 512]);
        assert_eq!(&got[512..1536], &[0xcd; 1024]);
        assert_eq!(&got[1536..4096], &data[65536 + 1536..65536 + 4096]);
    }
    assert!(std::fs::read(&base).unwrap() == before, "the compressed base was written");
    let out = Command::new("qemu-img").arg("check").arg(&ov).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
