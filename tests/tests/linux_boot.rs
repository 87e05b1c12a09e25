//! The stock Debian 12 kernel boots to the test guest's busybox userspace
//! under the `kagami` binary, headless, and powers off through ACPI S5 with
//! exit code 0:
//! - `bzimage_boots_on_pc`: the bzImage (with its in-kernel XZ decompressor)
//!   on `-machine pc`;
//! - `bzimage_boots_on_q35_to_a_shell_that_takes_typing`: the bzImage on
//!   `-machine q35` to the busybox shell, typing a command and `poweroff -f`
//!   through kagami's stdin;
//! - `deterministic_boot_replays_exactly`: the decompressed vmlinux through
//!   its PVH entry, twice with the interpreter and once with the JIT, in
//!   `-icount` mode: byte-identical console output and the same retired
//!   instruction count (`--stats`).
//!
//! The console must show the marker line from the guest's /init and none of
//! the kernel's complaint lines (WARNING:, Oops, BUG:, Call Trace, panic).
//! The kernel logs at its default level plus `loglevel=7`'s informational
//! lines, so warnings are printed, not hidden.
//!
//! The guest comes from scripts/build-test-guest.sh (target/guest/, or
//! $KAGAMI_GUEST_DIR); when it is missing the test builds it, and fails if
//! that fails.

use kagami_tests::harness::kagami;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// The guest folder, built by scripts/build-test-guest.sh when a file is missing.
fn guest() -> PathBuf {
    kagami_tests::harness::test_guest(&["bzImage", "vmlinux", "initramfs.cpio.gz"])
}

const CMDLINE: &str = "console=ttyS0 loglevel=7 kagami.poweroff=1";

/// Boot `kernel` from the guest folder and return the process output.
fn boot(machine: &str, kernel: &str, extra: &[&str]) -> Output {
    let g = guest();
    let t = Instant::now();
    let out = Command::new(kagami())
        .args(["-machine", machine, "-m", "256", "-nographic", "-no-reboot", "--stats"])
        .arg("-kernel")
        .arg(g.join(kernel))
        .arg("-initrd")
        .arg(g.join("initramfs.cpio.gz"))
        .args(["-append", CMDLINE])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run kagami");
    eprintln!(
        "{machine} {kernel} {extra:?}: {:.1} s; {}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// The marker, no complaints, exit code 0.
fn check_boot(out: &Output) {
    let console = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        console.contains("KAGAMI-MARKER uptime="),
        "no marker line.\nconsole:\n{console}\nstderr:\n{err}"
    );
    for bad in ["WARNING:", "Oops", "BUG:", "Call Trace", "panic", "Kernel panic"] {
        assert!(!console.contains(bad), "the console shows '{bad}':\n{console}");
    }
    assert!(console.contains("reboot: Power down"), "no ACPI power-down:\n{console}");
    assert_eq!(out.status.code(), Some(0), "exit status.\nstderr:\n{err}\nconsole:\n{console}");
}

/// The stock bzImage with the default accelerator choice (`kvm:tcg`):
/// kagami says on stderr which CPU it chose and why (issue 6: on hosts whose
/// KVM cannot run general guests, the fallback to the software CPU boots Linux).
#[test]
fn bzimage_boots_on_pc() {
    let out = boot("pc", "bzImage", &[]);
    check_boot(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kagami: accelerator tcg (") || err.contains("kagami: accelerator kvm"),
        "no accelerator message:\n{err}"
    );
}

/// Longest a boot may take before the interactive test gives up (a hang
/// detector only: the boot takes 1-5 minutes on a loaded 2-core machine).
const INTERACTIVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// q35 (MCH, ICH9, ECAM/MMCONFIG, PIRQs on IOAPIC 16-23) with the stock
/// bzImage, and the interactive path: without `kagami.poweroff=1` the guest
/// starts a busybox shell on the console. Through kagami's stdin (a pipe,
/// so no raw mode: the serial input doorway as a script drives it) the test
/// types an arithmetic `echo` whose answer only the shell can print, waits
/// for it, then types `poweroff -f`; kagami must end with exit code 0.
///
/// This once hung: the UART wrote to a line-buffered stdout, so the shell's
/// prompt ("/ # ", no newline) never left kagami and the test waited for it.
#[test]
fn bzimage_boots_on_q35_to_a_shell_that_takes_typing() {
    use std::io::{Read, Write};
    use std::sync::mpsc;
    let g = guest();
    let t = Instant::now();
    let mut child = Command::new(kagami())
        .args([
            "-machine",
            "q35",
            "-m",
            "256",
            "-accel",
            "tcg",
            "-nographic",
            "-no-reboot",
            "--stats",
        ])
        .arg("-kernel")
        .arg(g.join("bzImage"))
        .arg("-initrd")
        .arg(g.join("initramfs.cpio.gz"))
        .args(["-append", "console=ttyS0 loglevel=7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kagami");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // The console arrives on a channel, so a boot that hangs ends the test
    // with what it printed instead of blocking it.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    #[derive(PartialEq, Debug)]
    enum Step {
        WaitPrompt,
        WaitAnswer,
        WaitExit,
    }
    let mut step = Step::WaitPrompt;
    let mut console = Vec::new();
    let mut typed_at = 0;
    loop {
        let left = INTERACTIVE_LIMIT.saturating_sub(t.elapsed());
        match rx.recv_timeout(left) {
            Ok(chunk) => console.extend_from_slice(&chunk),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no progress after {INTERACTIVE_LIMIT:?} (waiting in step {step:?}); console:\n{}",
                    String::from_utf8_lossy(&console)
                );
            }
        }
        let text = String::from_utf8_lossy(&console);
        match step {
            // The shell is up once /init has said so and a prompt ("/ # ")
            // followed; kernel messages may come after the prompt.
            Step::WaitPrompt => {
                if text
                    .find("leave the shell to power off")
                    .is_some_and(|at| text[at..].contains("# "))
                {
                    stdin.write_all(b"echo typed-$((6*7))\n").unwrap();
                    stdin.flush().unwrap();
                    typed_at = console.len();
                    step = Step::WaitAnswer;
                }
            }
            // The echoed command line shows "$((6*7))"; only the shell
            // running it prints "typed-42".
            Step::WaitAnswer => {
                if String::from_utf8_lossy(&console[typed_at..]).contains("typed-42") {
                    stdin.write_all(b"poweroff -f\n").unwrap();
                    stdin.flush().unwrap();
                    step = Step::WaitExit;
                }
            }
            Step::WaitExit => {}
        }
    }
    reader.join().unwrap();
    let status = child.wait().unwrap();
    let err = err_reader.join().unwrap();
    eprintln!("q35 bzImage shell: {:.1} s; {}", t.elapsed().as_secs_f64(), err.trim());
    let out = Output {
        status,
        stdout: console,
        stderr: err.into_bytes(),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_ne!(step, Step::WaitPrompt, "no shell prompt:\n{text}");
    assert_eq!(step, Step::WaitExit, "the typed command did not run:\n{text}");
    check_boot(&out);
}

/// The retired-instruction count `--stats` prints.
fn instructions(out: &Output) -> u64 {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("stats:"))
        .unwrap_or_else(|| panic!("no stats line in: {err}"));
    let n = line.split("stats: ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap();
    n.parse().unwrap()
}

/// Two interpreter runs and one JIT run (`--jit`, its default threshold;
/// `--jit-threshold 0` gives the same result but translates every block and
/// takes 1.6 times as long) of the vmlinux in `-icount` mode: the
/// same console bytes and the same retired instruction count, three times
/// (issue 5: the JIT is exact on a whole Linux boot). The three boots run at
/// once, so the test takes one boot's time when cores are free.
#[test]
fn deterministic_boot_replays_exactly() {
    // The JIT is on by default: the reference runs turn it off.
    let det = ["-accel", "tcg", "-icount", "shift=0", "--no-jit"];
    let jit = ["-accel", "tcg", "-icount", "shift=0", "--jit"];
    let (a, b, j) = std::thread::scope(|s| {
        let a = s.spawn(|| boot("pc", "vmlinux", &det));
        let b = s.spawn(|| boot("pc", "vmlinux", &det));
        let j = s.spawn(|| boot("pc", "vmlinux", &jit));
        (a.join().unwrap(), b.join().unwrap(), j.join().unwrap())
    });
    for out in [&a, &b, &j] {
        check_boot(out);
    }
    assert_eq!(instructions(&a), instructions(&b), "instruction counts differ");
    assert!(a.stdout == b.stdout, "console output differs between two deterministic runs");
    assert_eq!(
        instructions(&a),
        instructions(&j),
        "the JIT run retired a different instruction count"
    );
    if a.stdout != j.stdout {
        let (x, y) = (String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&j.stdout));
        let at = x.lines().zip(y.lines()).position(|(p, q)| p != q).unwrap_or(0);
        panic!(
            "the JIT run's console differs from the interpreter's at line {at}:\ninterpreter: {:?}\njit:         {:?}",
            x.lines().nth(at),
            y.lines().nth(at)
        );
    }
}
