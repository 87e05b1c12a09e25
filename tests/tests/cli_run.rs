//! Run-related `kagami` options: `-d`/`-D` logging items (unknown items are
//! an error with exit code 1), `--stats`, `-S` (waits for Enter on stdin)
//! and the stdin input doorway's Ctrl-A X.

use kagami_tests::harness::kagami;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn mb_kernel(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kagami-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, kagami_tests::mbkernel::kernel()).unwrap();
    p
}

#[test]
fn unknown_log_item_is_an_error_and_help_lists_items() {
    let k = mb_kernel("k1.elf");
    let out = Command::new(kagami())
        .args(["-d", "int,bogus", "-kernel"])
        .arg(&k)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown log item 'bogus'"), "{err}");
    let out = Command::new(kagami()).args(["-d", "help"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for item in ["int", "guest_errors", "unimp", "cpu_reset"] {
        assert!(s.contains(item), "{item} missing from: {s}");
    }
    let out = Command::new(kagami())
        .args(["-D", "/tmp/x.log", "-kernel"])
        .arg(&k)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// The Multiboot test kernel exits through isa-debug-exit; with `-S` it
/// waits for Enter first, `--stats` reports the instruction count, and
/// `-d int -D FILE` creates the log.
#[test]
fn paused_start_stats_and_log_file() {
    let k = mb_kernel("k2.elf");
    let log = k.with_file_name("int.log");
    let mut child = Command::new(kagami())
        .args(["-S", "--stats", "-d", "int,cpu_reset", "-D"])
        .arg(&log)
        .args([
            "-icount",
            "shift=3",
            "-m",
            "32",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
        .args(["-debugcon", "null", "-serial", "null", "-kernel"])
        .arg(&k)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "-S must wait for Enter");
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // No module: the sum is 0, so the exit code is (0 << 1) | 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("paused (-S)"), "{err}");
    assert!(err.contains("instructions retired"), "{err}");
    assert!(log.exists(), "-D file not created");
}

/// Ctrl-A X on stdin stops a machine that would otherwise run forever.
#[test]
fn ctrl_a_x_quits() {
    // A Multiboot kernel that spins forever.
    let entry = kagami_tests::mbkernel::LOAD + 0x40;
    let spin = kagami_tests::mbkernel::elf(&[0xeb, 0xfe], entry);
    let k = mb_kernel("k3.elf");
    std::fs::write(&k, spin).unwrap();
    let mut child = Command::new(kagami())
        .args(["-m", "32", "-serial", "stdio", "-kernel"])
        .arg(&k)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\x01x").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
