//! Disk images on the host (`machine/src/drive.rs`, `img.rs`) checked
//! against QEMU's own tool: qcow2 v2/v3, compressed and backing-chain images
//! made by `qemu-img` read back byte for byte; images kagami writes pass
//! `qemu-img check`; locking, `-snapshot`, corrupt and truncated files.

use kagami_devices::storage::{BlockBackend, BlockError};
use kagami_machine::drive::{self, ImageFormat, OpenOptions};
use kagami_machine::img;
use std::path::{Path, PathBuf};
use std::process::Command;

fn have_qemu_img() -> bool {
    kagami_tests::harness::have(&["qemu-img"], &[], "qemu-utils")
}

fn dir(name: &str) -> PathBuf {
    kagami_tests::harness::tmpdir("disk", name)
}

fn qemu_img(args: &[&str]) -> String {
    let o = Command::new("qemu-img").args(args).output().expect("run qemu-img");
    assert!(
        o.status.success(),
        "qemu-img {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Deterministic, compressible but not trivial contents: every 512-byte
/// sector starts with its number, some sectors are zero.
fn pattern(size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    for (s, sector) in v.chunks_mut(512).enumerate() {
        if s % 7 == 3 {
            continue;
        }
        sector[..8].copy_from_slice(&(s as u64).to_le_bytes());
        for (i, b) in sector[8..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31) ^ (s as u8);
        }
    }
    v
}

fn read_all(b: &mut dyn BlockBackend) -> Vec<u8> {
    let mut v = vec![0u8; b.len() as usize];
    b.read_at(0, &mut v).unwrap();
    v
}

fn ro() -> OpenOptions {
    OpenOptions {
        format: None,
        read_only: true,
        snapshot: false,
    }
}
fn rw() -> OpenOptions {
    OpenOptions {
        format: None,
        read_only: false,
        snapshot: false,
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn qemu_made_qcow2_v2_v3_and_compressed_read_back() {
    if !have_qemu_img() {
        return;
    }
    let d = dir("read");
    let data = pattern(3 << 20);
    let raw = d.join("src.raw");
    std::fs::write(&raw, &data).unwrap();
    for (name, extra) in [
        ("v2.qcow2", &["-o", "compat=0.10"][..]),
        ("v3.qcow2", &["-o", "compat=1.1"][..]),
        ("comp.qcow2", &["-c"][..]),
        ("small-clusters.qcow2", &["-o", "cluster_size=4096"][..]),
    ] {
        let q = d.join(name);
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        args.extend_from_slice(extra);
        args.extend([p(&raw), p(&q)]);
        qemu_img(&args);
        let mut b = drive::open(&q, &ro()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(b.len(), data.len() as u64, "{name}");
        assert!(read_all(b.as_mut()) == data, "{name}: contents differ");
        // Unaligned, odd-sized reads too.
        let mut buf = [0u8; 1000];
        b.read_at(12345, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[12345..13345], "{name}");
        assert!(matches!(
            b.read_at(data.len() as u64 - 10, &mut buf),
            Err(BlockError::OutOfRange { .. })
        ));
    }
    let info = img::info(None, &d.join("v2.qcow2")).unwrap();
    assert!(info.contains("qcow2 version: 2"), "{info}");
}

#[test]
fn backing_chain_writes_go_to_the_overlay() {
    if !have_qemu_img() {
        return;
    }
    let d = dir("chain");
    let data = pattern(2 << 20);
    let base = d.join("base.raw");
    std::fs::write(&base, &data).unwrap();
    let mid = d.join("mid.qcow2");
    let top = d.join("top.qcow2");
    qemu_img(&["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p(&mid)]);
    qemu_img(&["create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", p(&top)]);
    {
        let mut b = drive::open(&top, &rw()).unwrap();
        assert!(read_all(b.as_mut()) == data);
        b.write_at(512 * 100, &[0xab; 4096]).unwrap();
        b.write_at((2 << 20) - 512, &[0xcd; 512]).unwrap();
        b.flush().unwrap();
    }
    assert!(std::fs::read(&base).unwrap() == data, "the base image changed");
    qemu_img(&["check", p(&top)]);
    let out = d.join("out.raw");
    qemu_img(&["convert", "-O", "raw", p(&top), p(&out)]);
    let mut expect = data.clone();
    expect[51200..51200 + 4096].fill(0xab);
    expect[(2 << 20) - 512..].fill(0xcd);
    assert!(std::fs::read(&out).unwrap() == expect);
    let info = img::info(None, &top).unwrap();
    assert!(info.contains("top.qcow2 -> ") && info.contains("base.raw"), "{info}");
}

#[test]
fn kagami_written_qcow2_passes_qemu_img_check() {
    if !have_qemu_img() {
        return;
    }
    let d = dir("write");
    let q = d.join("new.qcow2");
    img::create_image(&q, ImageFormat::Qcow2, 16 << 20, None).unwrap();
    let mut expect = vec![0u8; 16 << 20];
    {
        let mut b = drive::open(&q, &rw()).unwrap();
        for (i, off) in [0u64, 65536 - 512, 1 << 20, (16 << 20) - 4096, 7 * 65536 + 100]
            .into_iter()
            .enumerate()
        {
            let chunk = vec![i as u8 + 1; 3000];
            let n = chunk.len().min((16 << 20) - off as usize);
            b.write_at(off, &chunk[..n]).unwrap();
            expect[off as usize..off as usize + n].copy_from_slice(&chunk[..n]);
        }
        b.flush().unwrap();
    }
    let check = qemu_img(&["check", p(&q)]);
    assert!(check.contains("No errors"), "{check}");
    let out = d.join("out.raw");
    qemu_img(&["convert", "-O", "raw", p(&q), p(&out)]);
    assert!(std::fs::read(&out).unwrap() == expect);
    // And through kagami img convert, both ways.
    let raw = d.join("conv.raw");
    let back = d.join("conv.qcow2");
    assert_eq!(
        img::main(vec![
            "convert".into(),
            "-O".into(),
            "raw".into(),
            q.clone().into(),
            raw.clone().into()
        ]),
        0
    );
    assert!(std::fs::read(&raw).unwrap() == expect);
    assert_eq!(
        img::main(vec!["convert".into(), "-O".into(), "qcow2".into(), raw.into(), back.clone().into()]),
        0
    );
    qemu_img(&["check", p(&back)]);
    qemu_img(&["compare", p(&q), p(&back)]);
}

#[test]
fn writable_images_are_locked() {
    let d = dir("lock");
    let raw = d.join("disk.raw");
    std::fs::write(&raw, vec![0u8; 1 << 16]).unwrap();
    let first = drive::open(&raw, &rw()).unwrap();
    let e = drive::open(&raw, &rw()).err().expect("second writer must fail");
    assert!(e.contains("locked") && e.contains("disk.raw"), "{e}");
    assert!(drive::open(&raw, &ro()).is_err(), "a reader of an image being written");
    // -snapshot opens the image read-only: also refused while a writer has it.
    drop(first);
    let r1 = drive::open(&raw, &ro()).unwrap();
    let _r2 = drive::open(&raw, &ro()).expect("two readers share the image");
    assert!(drive::open(&raw, &rw()).is_err(), "a writer while readers have it");
    drop(r1);
}

#[test]
fn snapshot_leaves_the_image_untouched() {
    let d = dir("snap");
    let data = pattern(1 << 20);
    let raw = d.join("disk.raw");
    std::fs::write(&raw, &data).unwrap();
    let opts = OpenOptions {
        format: Some(ImageFormat::Raw),
        read_only: false,
        snapshot: true,
    };
    {
        let mut b = drive::open(&raw, &opts).unwrap();
        assert!(!b.read_only());
        b.write_at(4096, &[0xee; 8192]).unwrap();
        b.flush().unwrap();
        let mut buf = [0u8; 8192];
        b.read_at(4096, &mut buf).unwrap();
        assert_eq!(buf, [0xee; 8192]);
    }
    assert!(std::fs::read(&raw).unwrap() == data, "-snapshot modified the image");
    let mut r = drive::open(&raw, &ro()).unwrap();
    assert_eq!(r.write_at(0, &[1]), Err(BlockError::ReadOnly));
}

#[test]
fn corrupt_truncated_or_orphaned_images_fail_cleanly() {
    if !have_qemu_img() {
        return;
    }
    let d = dir("bad");
    let data = pattern(1 << 20);
    let raw = d.join("src.raw");
    std::fs::write(&raw, &data).unwrap();
    let q = d.join("trunc.qcow2");
    qemu_img(&["convert", "-O", "qcow2", p(&raw), p(&q)]);
    let full = std::fs::read(&q).unwrap();
    std::fs::write(&q, &full[..1000]).unwrap();
    let e = drive::open(&q, &rw()).err().expect("truncated image");
    assert!(e.contains("trunc.qcow2") && e.contains("truncated"), "{e}");
    assert_eq!(std::fs::read(&q).unwrap(), &full[..1000], "the file was modified");

    let mut bad = full.clone();
    bad[4..8].copy_from_slice(&9u32.to_be_bytes());
    std::fs::write(&q, &bad).unwrap();
    let e = drive::open(&q, &rw()).err().expect("bad version");
    assert!(e.contains("version 9"), "{e}");

    let ov = d.join("orphan.qcow2");
    let gone = d.join("gone.raw");
    std::fs::write(&gone, vec![0u8; 65536]).unwrap();
    qemu_img(&["create", "-f", "qcow2", "-b", "gone.raw", "-F", "raw", p(&ov)]);
    std::fs::remove_file(&gone).unwrap();
    let before = std::fs::read(&ov).unwrap();
    let e = drive::open(&ov, &rw()).err().expect("missing backing file");
    assert!(e.contains("gone.raw") && e.contains("does not exist"), "{e}");
    assert!(std::fs::read(&ov).unwrap() == before);

    assert!(drive::open(&d.join("nothing.raw"), &ro()).err().unwrap().contains("nothing.raw"));
}

#[test]
fn img_bad_input_exits_1() {
    let d = dir("cli");
    assert_eq!(img::main(vec!["info".into(), d.join("none").into()]), 1);
    assert_eq!(
        img::main(vec!["create".into(), "-f".into(), "vmdk".into(), d.join("x").into(), "1M".into()]),
        1
    );
    assert_eq!(img::main(vec!["create".into(), d.join("x").into(), "big".into()]), 1);
    assert_eq!(img::main(vec!["create".into(), d.join("x").into()]), 1);
    assert_eq!(img::main(vec!["frobnicate".into()]), 1);
    assert_eq!(img::main(vec!["create".into(), d.join("x.raw").into(), "1M".into()]), 0);
    assert_eq!(std::fs::metadata(d.join("x.raw")).unwrap().len(), 1 << 20);
}
