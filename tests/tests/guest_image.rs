//! Checks on the Linux test guest that scripts/build-test-guest.sh builds
//! (target/guest/, or $KAGAMI_GUEST_DIR): the initramfs that kagami's own
//! newc writer packed must read back with GNU cpio, and the stock kernel
//! must boot it under QEMU to the marker line. These prove the image, not
//! kagami; kagami boots it once the platform work lands.
//!
//! Without the image (or without cpio / qemu-system-x86_64) the tests say
//! SKIPPED and why. scripts/test.sh sets KAGAMI_REQUIRE_GUEST=1, which
//! turns a missing image or tool into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn guest_dir() -> PathBuf {
    match std::env::var_os("KAGAMI_GUEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guest"),
    }
}

fn required() -> bool {
    std::env::var("KAGAMI_REQUIRE_GUEST").is_ok_and(|v| v == "1")
}

/// The path of a guest file, or None after saying loudly why the test is skipped.
fn guest_file(name: &str) -> Option<PathBuf> {
    let p = guest_dir().join(name);
    if p.is_file() {
        return Some(p);
    }
    let msg = format!("{} is missing: run scripts/build-test-guest.sh", p.display());
    assert!(!required(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

fn have_tool(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let msg = format!("{tool} is not installed (Debian package {package})");
        assert!(!required(), "{msg}");
        eprintln!("SKIPPED: {msg}");
    }
    found
}

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Run `cpio` with `args` on the archive as standard input.
fn cpio(archive: &[u8], args: &[&str], dir: &Path) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cpio");
    child.stdin.take().unwrap().write_all(archive).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn initramfs_reads_back_with_gnu_cpio() {
    let Some(img) = guest_file("initramfs.cpio.gz") else { return };
    if !have_tool("cpio", "cpio") {
        return;
    }
    let archive = gunzip(&img);
    let tmp = std::env::temp_dir();
    let list = cpio(&archive, &["-t", "-v", "--quiet"], &tmp);
    assert!(list.status.success(), "cpio -t failed: {}", String::from_utf8_lossy(&list.stderr));
    let list = String::from_utf8(list.stdout).unwrap();
    let line = |suffix: &str| {
        list.lines()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("no entry ending {suffix:?} in:\n{list}"))
    };
    assert!(line(" init").starts_with("-rwxr-xr-x"), "{}", line(" init"));
    assert!(line(" bin/busybox").starts_with("-rwxr-xr-x"));
    assert!(line(" bin/sh -> /bin/busybox").starts_with('l'));
    assert!(line(" sbin/poweroff -> /bin/busybox").starts_with('l'));
    let console = line(" dev/console");
    assert!(console.starts_with("crw-------") && console.contains("5,   1"), "{console}");
    for d in ["proc", "sys", "dev"] {
        assert!(line(&format!(" {d}")).starts_with('d'), "{d} is not a directory");
    }

    // Extract /init alone and compare it with the source.
    let out = tempdir("guest-image");
    let x = cpio(&archive, &["-i", "-d", "--quiet", "init"], &out);
    assert!(x.status.success(), "cpio -i failed: {}", String::from_utf8_lossy(&x.stderr));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/guest/init");
    assert_eq!(std::fs::read(out.join("init")).unwrap(), std::fs::read(src).unwrap());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn qemu_boots_the_test_guest_to_the_marker() {
    let (Some(kernel), Some(initrd)) = (guest_file("bzImage"), guest_file("initramfs.cpio.gz")) else {
        return;
    };
    if !have_tool("qemu-system-x86_64", "qemu-system-x86") {
        return;
    }
    // `timeout` only guards against a hang; the result does not depend on speed.
    let out = Command::new("timeout")
        .args([
            "600",
            "qemu-system-x86_64",
            "-m",
            "256",
            "-display",
            "none",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-kernel",
        ])
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 quiet kagami.poweroff=1 kagami.workload=\"echo sum=$((40+2))\"",
        ])
        .output()
        .expect("run qemu-system-x86_64");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "qemu exited with {:?}:\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = text
        .lines()
        .find(|l| l.starts_with("KAGAMI-MARKER uptime="))
        .unwrap_or_else(|| panic!("no marker in:\n{text}"));
    let uptime: f64 = marker["KAGAMI-MARKER uptime=".len()..].trim().parse().unwrap();
    assert!(uptime > 0.0);
    // The workload ran in the guest's shell (the sum was not computed here).
    assert!(text.contains("KAGAMI-WORKLOAD-BEGIN echo sum=$((40+2))"), "{text}");
    assert!(text.lines().any(|l| l.trim_end() == "sum=42"), "{text}");
    assert!(text.contains("KAGAMI-WORKLOAD-END status=0"), "{text}");
    assert!(text.contains("KAGAMI-POWEROFF"), "{text}");
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kagami-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
