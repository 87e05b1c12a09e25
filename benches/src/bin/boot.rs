//! Boot benchmark: wall-clock time from process start to the test guest's
//! `KAGAMI-MARKER` line (busybox userspace is up), for kagami and for QEMU
//! TCG (Debian's qemu-system-x86_64) on the same kernel, initramfs and
//! command line, in the same run, and the ratio.
//!
//!     bash scripts/build-test-guest.sh
//!     cargo build --release -p kagami-machine -p kagami-benches
//!     target/release/boot [--kernel bzImage|vmlinux] [--machine pc|q35] [--runs N] [--skip-qemu]
//!
//! kagami is the `kagami` binary next to this one (target/release/); the
//! guest is target/guest/ (or $KAGAMI_GUEST_DIR). Each run is stopped as
//! soon as the marker appears. QEMU always boots the bzImage (it cannot boot
//! a PVH vmlinux without its own firmware path), so compare like with like:
//! the default, bzImage. This is a benchmark, not a test: nothing asserts a time.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARKER: &[u8] = b"KAGAMI-MARKER";
const APPEND: &str = "console=ttyS0 kagami.poweroff=1";
const TIMEOUT: Duration = Duration::from_secs(1800);

fn usage() -> ! {
    eprintln!("usage: boot [--kernel bzImage|vmlinux] [--machine pc|q35] [--runs N] [--skip-qemu]");
    std::process::exit(1);
}

/// Run `cmd` until its stdout contains the marker; the seconds it took.
fn time_to_marker(what: &str, cmd: &mut Command) -> Result<f64, String> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let result = loop {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break Err(format!("{what}: output ended before the marker")),
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(MARKER.len()).any(|w| w == MARKER) {
                    break Ok(t0.elapsed().as_secs_f64());
                }
                if t0.elapsed() > TIMEOUT {
                    break Err(format!("{what}: no marker within {} s", TIMEOUT.as_secs()));
                }
                // Keep only a tail long enough to find a marker split across reads.
                if seen.len() > 1 << 16 {
                    seen.drain(..seen.len() - MARKER.len());
                }
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut kernel = "bzImage".to_string();
    let mut machine = "pc".to_string();
    let mut runs = 1usize;
    let mut skip_qemu = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--kernel" => kernel = args.next().unwrap_or_else(|| usage()),
            "--machine" => machine = args.next().unwrap_or_else(|| usage()),
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--skip-qemu" => skip_qemu = true,
            _ => usage(),
        }
    }
    let guest = std::env::var_os("KAGAMI_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/guest")));
    let kagami = std::env::current_exe().unwrap().with_file_name("kagami");
    for (p, hint) in [
        (guest.join(&kernel), "run scripts/build-test-guest.sh"),
        (guest.join("bzImage"), "run scripts/build-test-guest.sh"),
        (guest.join("initramfs.cpio.gz"), "run scripts/build-test-guest.sh"),
        (kagami.clone(), "cargo build --release -p kagami-machine"),
    ] {
        if !p.is_file() {
            eprintln!("boot: {} is missing: {hint}", p.display());
            std::process::exit(1);
        }
    }
    let initrd = guest.join("initramfs.cpio.gz");
    let mut k_times = Vec::new();
    let mut q_times = Vec::new();
    for run in 1..=runs {
        let t = time_to_marker(
            "kagami",
            Command::new(&kagami)
                .args(["-machine", &machine, "-m", "256", "-accel", "tcg", "-nographic", "-no-reboot"])
                .arg("-kernel")
                .arg(guest.join(&kernel))
                .arg("-initrd")
                .arg(&initrd)
                .args(["-append", APPEND]),
        );
        match t {
            Ok(s) => {
                println!("run {run}: kagami {machine} {kernel}: {s:.2} s to the marker");
                k_times.push(s);
            }
            Err(e) => {
                eprintln!("boot: {e}");
                std::process::exit(1);
            }
        }
        if skip_qemu {
            continue;
        }
        let t = time_to_marker(
            "qemu",
            Command::new("qemu-system-x86_64")
                .args(["-accel", "tcg", "-machine", &machine, "-m", "256", "-nographic", "-no-reboot"])
                .arg("-kernel")
                .arg(guest.join("bzImage"))
                .arg("-initrd")
                .arg(&initrd)
                .args(["-append", APPEND]),
        );
        match t {
            Ok(s) => {
                println!("run {run}: qemu-system-x86_64 -accel tcg {machine} bzImage: {s:.2} s to the marker");
                q_times.push(s);
            }
            Err(e) => {
                eprintln!("boot: {e} (is qemu-system-x86 installed?)");
                std::process::exit(1);
            }
        }
    }
    let k = median(k_times);
    println!("kagami  median {k:.2} s");
    if !q_times.is_empty() {
        let q = median(q_times);
        println!("qemu    median {q:.2} s");
        println!("ratio   kagami / qemu = {:.2}", k / q);
    }
}
