//! The `kagami` binary as a user runs it: QEMU-style options, a Multiboot
//! kernel that exits through isa-debug-exit, and bad input that must give a
//! message naming the problem and exit code 1, never a panic.

use std::path::PathBuf;
use std::process::Command;

/// The `kagami` binary of this build (target/<profile>/kagami), built with
/// cargo if the test runner did not build it (cargo-nextest builds only test
/// targets).
fn kagami() -> PathBuf {
    // target/<profile>/deps/cli-HASH -> target/<profile>/kagami
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
    assert!(bin.exists(), "{} is missing after cargo build", bin.display());
    bin
}

fn tmp(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kagami-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn multiboot_kernel_exit_code_and_debugcon() {
    let k = tmp("mb.elf", &kagami_tests::mbkernel::kernel());
    let m = tmp("mod.bin", &[1, 2, 3, 4, 5, 100]);
    let out = Command::new(kagami())
        .args([
            "-machine",
            "q35",
            "-m",
            "32M",
            "-accel",
            "tcg",
            "-display",
            "none",
            "-icount",
            "shift=3",
            "-no-reboot",
        ])
        .args([
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-debugcon",
            "stdio",
            "-serial",
            "null",
        ])
        .arg("-kernel")
        .arg(&k)
        .arg("-initrd")
        .arg(&m)
        .args(["-append", "hello=kagami"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some((115 << 1) | 1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{} hello=kagami", k.display()));
}

#[test]
fn bad_input_is_a_message_and_exit_code_1() {
    let k = tmp("mb2.elf", &kagami_tests::mbkernel::kernel());
    let not_kernel = tmp("notes.txt", b"just text");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-kernel".into(), "/nonexistent/bzImage".into()],
            "cannot read /nonexistent/bzImage",
        ),
        (
            vec!["-kernel".into(), not_kernel.display().to_string()],
            "not a kernel kagami can boot",
        ),
        (
            vec!["-m".into(), "lots".into(), "-kernel".into(), k.display().to_string()],
            "not a memory size",
        ),
        (
            vec!["-m".into(), "1K".into(), "-kernel".into(), k.display().to_string()],
            "too little",
        ),
        (
            vec!["-smp".into(), "4".into(), "-kernel".into(), k.display().to_string()],
            "one CPU",
        ),
        (
            vec!["-machine".into(), "isapc".into(), "-kernel".into(), k.display().to_string()],
            "unknown machine type",
        ),
        (
            vec!["-device".into(), "virtio-net".into(), "-kernel".into(), k.display().to_string()],
            "not a device kagami has",
        ),
        (
            vec!["-serial".into(), "tcp:1".into(), "-kernel".into(), k.display().to_string()],
            "-serial",
        ),
        (
            vec!["-accel".into(), "hvf".into(), "-kernel".into(), k.display().to_string()],
            "unknown accelerator",
        ),
        (
            vec!["-icount".into(), "shift=auto".into(), "-kernel".into(), k.display().to_string()],
            "not deterministic",
        ),
        (vec!["-kernel".into(), "/dev/null".into()], "not a kernel kagami can boot"),
        (vec![], "nothing to boot"),
    ];
    for (args, expect) in cases {
        let out = Command::new(kagami()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: expected '{expect}' in: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The input files are untouched.
    assert_eq!(std::fs::read(&not_kernel).unwrap(), b"just text");
}

#[test]
fn print_machine_lists_the_map() {
    let k = tmp("mb3.elf", &kagami_tests::mbkernel::kernel());
    let out = Command::new(kagami())
        .arg("-kernel")
        .arg(&k)
        .args(["-m", "32", "--print-machine"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for want in ["8259 PIC master", "8254 PIT", "COM1 16550A UART", "IRQ 4", "MC146818"] {
        assert!(s.contains(want), "missing {want} in:\n{s}");
    }
}
