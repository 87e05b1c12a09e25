//! Disk throughput through the firmware, kagami next to QEMU TCG on the
//! same image: SeaBIOS boots a boot sector that reads N MiB of the disk in
//! 32 KiB INT 13h (AH=42h) requests and exits through isa-debug-exit. The
//! same run with no reads gives the boot time, which is subtracted. On
//! `-machine pc` SeaBIOS moves the data by PIO (IDE), on `q35` by AHCI DMA.
//!
//!     cargo build --release -p kagami-machine --bin kagami
//!     cargo run --release -p kagami-benches --bin disk_throughput [-- --mib N]
//!
//! N MiB (default 16) on pc, 16 N on q35.
//!
//! Needs /usr/share/seabios/bios-256k.bin (seabios) and, for the reference,
//! qemu-system-x86_64 (qemu-system-x86). A benchmark, not a test: it prints
//! MiB/s and the ratio, nothing is asserted. The in-guest comparison (Linux
//! drivers, `dd`) is the `disk_dd` benchmark.

use iced_x86::code_asm::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BIOS: &str = "/usr/share/seabios/bios-256k.bin";

/// Read `chunks` x 64 sectors starting at LBA 1 (wrapping inside the first
/// 32 MiB), then exit with 0x10 (0x01 on a read error).
fn boot_sector(chunks: u32) -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    let mut top = a.create_label();
    let mut next = a.create_label();
    let mut done = a.create_label();
    let mut bad = a.create_label();
    a.xor(ax, ax).unwrap();
    a.mov(ds, ax).unwrap();
    a.mov(ss, ax).unwrap();
    a.mov(sp, 0x7c00u32).unwrap();
    a.mov(byte_ptr(0x0520), dl).unwrap();
    a.mov(si, 0x0500u32).unwrap();
    a.mov(word_ptr(si), 0x0010u32).unwrap();
    a.mov(word_ptr(si + 4), 0u32).unwrap();
    a.mov(word_ptr(si + 6), 0x1000u32).unwrap();
    a.mov(dword_ptr(si + 8), 1u32).unwrap();
    a.mov(dword_ptr(si + 12), 0u32).unwrap();
    a.mov(ebp, chunks).unwrap();
    a.set_label(&mut top).unwrap();
    a.test(ebp, ebp).unwrap();
    a.jz(done).unwrap();
    a.mov(word_ptr(si + 2), 64u32).unwrap();
    a.mov(dl, byte_ptr(0x0520)).unwrap();
    a.mov(ah, 0x42u32).unwrap();
    a.int(0x13).unwrap();
    a.jc(bad).unwrap();
    a.mov(si, 0x0500u32).unwrap();
    a.add(dword_ptr(si + 8), 64u32).unwrap();
    a.cmp(dword_ptr(si + 8), 60000u32).unwrap();
    a.jb(next).unwrap();
    a.mov(dword_ptr(si + 8), 1u32).unwrap();
    a.set_label(&mut next).unwrap();
    a.dec(ebp).unwrap();
    a.jmp(top).unwrap();
    a.set_label(&mut done).unwrap();
    a.mov(al, 0x10u32).unwrap();
    a.out(0xf4u32, al).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut bad).unwrap();
    a.mov(al, 0x01u32).unwrap();
    a.out(0xf4u32, al).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x7c00).unwrap();
    let mut s = vec![0u8; 512];
    s[..code.len()].copy_from_slice(&code);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

fn kagami() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().join("kagami")
}

/// Seconds from start to the guest's exit, and whether it reported success.
fn run(emulator: &Path, machine: &str, image: &Path) -> (f64, bool) {
    let t = Instant::now();
    let out = Command::new(emulator)
        .args([
            "-machine",
            machine,
            "-accel",
            "tcg",
            "-m",
            "64",
            "-bios",
            BIOS,
            "-nographic",
            "-serial",
            "null",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-no-reboot"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=ide,index=0", image.display()))
        .output()
        .expect("run the emulator");
    (t.elapsed().as_secs_f64(), out.status.code() == Some((0x10 << 1) | 1))
}

fn main() {
    let mib: u32 = std::env::args()
        .skip_while(|a| a != "--mib")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    if !Path::new(BIOS).is_file() {
        eprintln!("disk_throughput: {BIOS} is missing (apt-get install seabios)");
        std::process::exit(1);
    }
    let k = kagami();
    if !k.is_file() {
        eprintln!(
            "disk_throughput: {} is missing: cargo build --release -p kagami-machine --bin kagami",
            k.display()
        );
        std::process::exit(1);
    }
    let dir = std::env::temp_dir().join(format!("kagami-disk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = |name: &str, chunks: u32| -> PathBuf {
        let p = dir.join(name);
        let mut disk = vec![0u8; 32 << 20];
        for (i, b) in disk.iter_mut().enumerate().skip(512) {
            *b = (i / 512) as u8;
        }
        disk[..512].copy_from_slice(&boot_sector(chunks));
        std::fs::write(&p, disk).unwrap();
        p
    };
    let idle = img("idle.raw", 0);
    let qemu = PathBuf::from("qemu-system-x86_64");
    let have_qemu = Command::new(&qemu).arg("--version").output().is_ok();
    println!("disk read through SeaBIOS INT 13h in 32 KiB requests (boot time subtracted; best of 3 runs)");
    for machine in ["pc", "q35"] {
        // AHCI moves data by DMA, much faster than IDE PIO: read more there.
        let mib = if machine == "pc" { mib } else { mib * 16 };
        let busy = img(&format!("busy-{machine}.raw"), mib * 32);
        let controller = if machine == "pc" { "PIIX3 IDE, PIO" } else { "ICH9 AHCI, DMA" };
        let mut rates = Vec::new();
        for (name, emu) in [("kagami", &k), ("qemu-tcg", &qemu)] {
            if name == "qemu-tcg" && !have_qemu {
                println!("  {machine:4} {name:9} skipped: qemu-system-x86_64 not found");
                continue;
            }
            let best = |image: &Path| {
                (0..3)
                    .map(|_| run(emu, machine, image))
                    .fold((f64::MAX, true), |(t, ok), (t1, ok1)| (t.min(t1), ok && ok1))
            };
            let (t0, ok0) = best(&idle);
            let (t1, ok1) = best(&busy);
            if !(ok0 && ok1) {
                println!("  {machine:4} {name:9} the guest did not report success");
                continue;
            }
            let secs = (t1 - t0).max(1e-3);
            let rate = mib as f64 / secs;
            println!("  {machine:4} ({controller}) {name:9} {rate:8.1} MiB/s  ({mib} MiB; boot {t0:.2} s, with reads {t1:.2} s)");
            rates.push(rate);
        }
        if rates.len() == 2 {
            println!("  {machine:4} kagami / QEMU TCG = {:.2}", rates[0] / rates[1]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
