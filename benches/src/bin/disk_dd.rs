//! In-guest disk throughput, kagami next to QEMU TCG on the same image: the
//! Linux test guest's kernel (the decompressed vmlinux through its PVH entry,
//! for both emulators; the boot is not measured) with an initramfs that
//! loads the disk modules (ata_piix on `-machine pc`, ahci on `q35`) and
//! runs busybox `dd` in 1 MiB blocks:
//!   - raw-write / raw-read: N MiB to and from the whole disk with O_DIRECT
//!     (`oflag=direct`, `iflag=direct`): the controller and the block layer;
//!   - file-write / file-read: an N MiB file on ext2 (busybox mke2fs),
//!     written through the page cache with `conv=fsync` (FLUSH CACHE), read
//!     back after `echo 3 >/proc/sys/vm/drop_caches`.
//! Each step is timed three ways: by the guest (/proc/uptime, 10 ms
//! resolution); by the host, from the moments the step's begin and end lines
//! arrive on the console; and as the emulator process's CPU time (all its
//! threads, /proc/PID/stat) between those moments, which is what to read on
//! a shared, busy machine. Each emulator gets a fresh copy of the same
//! zeroed raw image.
//!
//!     bash scripts/build-test-guest.sh && bash scripts/build-disk-guest.sh
//!     cargo build --release -p kagami-machine -p kagami-benches
//!     nice -n 10 target/release/disk_dd [--mib N] [--machine pc|q35] [--runs R] [--skip-qemu] [--skip-kagami] [--kagami PATH]
//!
//! kagami is the `kagami` binary next to this one unless --kagami. N defaults to 64; both machines unless --machine; R runs each (the one
//! with the least emulator CPU time is kept). A benchmark, not a test:
//! nothing asserts a speed, but a step that fails or an ATA error in the
//! kernel log stops it with exit code 1.

use kagami_machine::initramfs::{archive, Entry};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STEPS: [&str; 4] = ["raw-write", "raw-read", "file-write", "file-read"];
/// A guard against a hung guest.
const TIMEOUT: Duration = Duration::from_secs(3600);

const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read m; do insmod /lib/modules/$m.ko || echo "DDBENCH failed insmod $m"; done </lib/modules/modules.order
n=0
while [ ! -b /dev/sda ]; do n=$((n+1)); [ $n -gt 6000 ] && break; sleep 0.1; done
mib=$(sed -n 's/.*ddbench\.mib=\([0-9]*\).*/\1/p' /proc/cmdline)
# /proc/uptime through the shell's read: no process is started between the
# timestamps and the work.
step() {
    name=$1; shift
    read -r t0 _ </proc/uptime
    echo "DDBENCH begin $name $t0"
    "$@" 2>/dev/null || echo "DDBENCH failed $name"
    read -r t1 _ </proc/uptime
    echo "DDBENCH end $name $t1"
}
step raw-write dd if=/dev/zero of=/dev/sda bs=1048576 count=$mib oflag=direct
step raw-read dd if=/dev/sda of=/dev/null bs=1048576 count=$mib iflag=direct
mke2fs -q /dev/sda || echo "DDBENCH failed mke2fs"
mount -t ext2 /dev/sda /mnt || echo "DDBENCH failed mount"
step file-write dd if=/dev/zero of=/mnt/big bs=1048576 count=$mib conv=fsync
echo 3 >/proc/sys/vm/drop_caches
step file-read dd if=/mnt/big of=/dev/null bs=1048576
echo "DDBENCH size $(wc -c </mnt/big)"
umount /mnt
dmesg | grep -iE "ata[0-9.]*: .*(error|timeout|failed|exception)|I/O error|EXT4-fs error" | sed 's/^/DDBENCH dmesg /'
echo "DDBENCH done"
poweroff -f
while :; do sleep 3600; done
"#;

const APPLETS: [&str; 15] = [
    "sh", "mount", "umount", "insmod", "sleep", "echo", "dd", "dmesg", "grep", "sed", "poweroff", "cat", "mke2fs", "sync", "wc",
];

fn usage() -> ! {
    eprintln!("usage: disk_dd [--mib N] [--machine pc|q35] [--runs R] [--skip-qemu] [--skip-kagami] [--kagami PATH]");
    std::process::exit(1);
}

fn die(msg: &str) -> ! {
    eprintln!("disk_dd: {msg}");
    std::process::exit(1);
}

/// busybox, the disk modules in load order, and the benchmark's /init.
fn initramfs(guest: &Path, out: &Path) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mods = guest.join("disk-modules");
    let order = String::from_utf8_lossy(&read(&mods.join("modules.order"))?).into_owned();
    let mut e = vec![
        Entry::dir("bin", 0o755),
        Entry::dir("dev", 0o755),
        Entry::dir("proc", 0o755),
        Entry::dir("sys", 0o755),
        Entry::dir("mnt", 0o755),
        Entry::dir("lib", 0o755),
        Entry::dir("lib/modules", 0o755),
        Entry::char_dev("dev/console", 0o600, 5, 1),
        Entry::file("bin/busybox", 0o755, read(&guest.join("busybox"))?),
        Entry::file("init", 0o755, INIT.as_bytes().to_vec()),
        Entry::file("lib/modules/modules.order", 0o644, order.as_bytes().to_vec()),
    ];
    for a in APPLETS {
        e.push(Entry::symlink(&format!("bin/{a}"), "busybox"));
    }
    for m in order.lines() {
        e.push(Entry::file(
            &format!("lib/modules/{m}.ko"),
            0o644,
            read(&mods.join(format!("{m}.ko")))?,
        ));
    }
    let bytes = archive(&e).map_err(|e| format!("cpio: {e}"))?;
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))
}

/// One step's seconds: by the host clock, by the guest, and the emulator's CPU time.
#[derive(Clone, Copy)]
struct Step {
    host: f64,
    guest: f64,
    cpu: f64,
}

/// CPU seconds (user + system, all threads) of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3. USER_HZ is 100.
    [11, 12].iter().filter_map(|&i| f.get(i)?.parse::<f64>().ok()).sum::<f64>() / 100.0
}

/// Run one emulator over a fresh copy of the image; the four steps' times.
fn run(what: &str, mut cmd: Command) -> Result<Vec<Step>, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let pid = child.id();
    let (so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    // Lines with their arrival times; the channel closes at end of output.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(so).split(b'\n') {
            let Ok(line) = line else { break };
            let s = String::from_utf8_lossy(&line).replace('\r', "");
            if tx.send((Instant::now(), cpu_seconds(pid), s)).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let mut log = String::new();
    let mut begins: Vec<(String, Instant, f64, f64)> = Vec::new();
    let mut steps: Vec<(String, Step)> = Vec::new();
    let mut failed = Vec::new();
    loop {
        let left = TIMEOUT.saturating_sub(t0.elapsed());
        let (at, cpu, line) = match rx.recv_timeout(left) {
            Ok(x) => x,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: no end within {TIMEOUT:?}:\n{log}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        log.push_str(&line);
        log.push('\n');
        let Some(at_tag) = line.find("DDBENCH ") else { continue };
        let f: Vec<&str> = line[at_tag + 8..].split_whitespace().collect();
        match f.as_slice() {
            ["begin", name, t] => begins.push((name.to_string(), at, t.parse().unwrap_or(f64::NAN), cpu)),
            ["end", name, t] => {
                let Some((_, h0, g0, c0)) = begins.iter().find(|b| b.0 == *name) else {
                    continue;
                };
                let step = Step {
                    host: (at - *h0).as_secs_f64(),
                    guest: t.parse::<f64>().unwrap_or(f64::NAN) - g0,
                    cpu: cpu - c0,
                };
                eprintln!(
                    "  {what}: {name} {:.2} s (guest {:.2} s, CPU {:.2} s)",
                    step.host, step.guest, step.cpu
                );
                steps.push((name.to_string(), step));
            }
            ["failed", ..] | ["dmesg", ..] => failed.push(line.clone()),
            _ => {}
        }
    }
    let status = child.wait().map_err(|e| format!("{what}: {e}"))?;
    let stderr = err.join().unwrap_or_default();
    if !failed.is_empty() || !log.contains("DDBENCH done") {
        return Err(format!(
            "{what}: the workload failed ({status}):\n{}\n\n{log}\n{stderr}",
            failed.join("\n")
        ));
    }
    STEPS
        .iter()
        .map(|s| {
            steps
                .iter()
                .find(|(n, _)| n == s)
                .map(|x| x.1)
                .ok_or_else(|| format!("{what}: no time for {s}:\n{log}"))
        })
        .collect()
}

fn main() {
    let mut mib = 64u64;
    let mut machines = vec!["pc", "q35"];
    let mut runs = 1usize;
    let (mut skip_qemu, mut skip_kagami) = (false, false);
    let mut kagami = std::env::current_exe().unwrap().with_file_name("kagami");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => {
                mib = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--machine" => match args.next().as_deref() {
                Some("pc") => machines = vec!["pc"],
                Some("q35") => machines = vec!["q35"],
                _ => usage(),
            },
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--skip-qemu" => skip_qemu = true,
            "--skip-kagami" => skip_kagami = true,
            "--kagami" => kagami = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let guest = std::env::var_os("KAGAMI_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/guest")));
    for (p, hint) in [
        (guest.join("vmlinux"), "run scripts/build-test-guest.sh"),
        (guest.join("disk-modules/modules.order"), "run scripts/build-disk-guest.sh"),
        (kagami.clone(), "cargo build --release -p kagami-machine"),
    ] {
        if !p.is_file() {
            die(&format!("{} is missing: {hint}", p.display()));
        }
    }
    let dir = std::env::temp_dir().join(format!("kagami-disk-dd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&format!("{}: {e}", dir.display())));
    let initrd = dir.join("initrd.cpio");
    initramfs(&guest, &initrd).unwrap_or_else(|e| die(&e));
    // Room for the raw steps and for ext2's metadata next to the file.
    let disk_bytes = (mib + mib / 4 + 16) << 20;
    let append = format!("console=ttyS0 quiet loglevel=4 ddbench.mib={mib}");
    let image = |name: &str| {
        let p = dir.join(name);
        let f = std::fs::File::create(&p).unwrap_or_else(|e| die(&format!("{}: {e}", p.display())));
        f.set_len(disk_bytes).unwrap_or_else(|e| die(&format!("{}: {e}", p.display())));
        p
    };
    let mut table = Vec::new();
    for machine in &machines {
        let mut best: [Option<Vec<Step>>; 2] = [None, None];
        for run_no in 1..=runs {
            for (i, emulator) in ["kagami", "qemu"].iter().enumerate() {
                if (i == 0 && skip_kagami) || (i == 1 && skip_qemu) {
                    continue;
                }
                let disk = image(&format!("{emulator}-{machine}.raw"));
                let mut c = Command::new(if i == 0 {
                    kagami.as_os_str()
                } else {
                    "qemu-system-x86_64".as_ref()
                });
                c.args([
                    "-machine",
                    machine,
                    "-accel",
                    "tcg",
                    "-m",
                    "256",
                    "-nographic",
                    "-no-reboot",
                    "-kernel",
                ])
                .arg(guest.join("vmlinux"))
                .arg("-initrd")
                .arg(&initrd)
                .args(["-append", &append, "-drive"])
                .arg(format!("file={},format=raw,if=ide,index=0", disk.display()));
                eprintln!("run {run_no}: {emulator} -machine {machine}");
                let t = run(&format!("{emulator} {machine}"), c).unwrap_or_else(|e| die(&e));
                let _ = std::fs::remove_file(&disk);
                let keep = match &best[i] {
                    None => true,
                    Some(b) => t.iter().zip(b).map(|(x, y)| x.cpu - y.cpu).sum::<f64>() < 0.0,
                };
                if keep {
                    best[i] = Some(t);
                }
            }
        }
        table.push((machine, best));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let print = |title: &str, secs: &dyn Fn(&Step) -> f64| {
        println!("\n{mib} MiB per step in 1 MiB blocks, MiB/s {title}, best of {runs}:");
        println!("| machine (controller) | step | kagami | QEMU TCG | kagami / QEMU |");
        println!("|---|---|---|---|---|");
        for (machine, best) in &table {
            let ctl = if **machine == "pc" {
                "pc (PIIX3 IDE, ata_piix)"
            } else {
                "q35 (ICH9 AHCI, ahci)"
            };
            for (j, step) in STEPS.iter().enumerate() {
                let rate = |b: &Option<Vec<Step>>| b.as_ref().map(|v| mib as f64 / secs(&v[j]));
                let (k, q) = (rate(&best[0]), rate(&best[1]));
                let cell = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.1}"));
                let ratio = match (k, q) {
                    (Some(k), Some(q)) => format!("{:.2}", k / q),
                    _ => "-".to_string(),
                };
                println!("| {ctl} | {step} | {} | {} | {ratio} |", cell(k), cell(q));
            }
        }
    };
    print("by host wall-clock time", &|s| s.host);
    print("by the guest's clock (/proc/uptime)", &|s| s.guest);
    print("per CPU second of the emulator process", &|s| s.cpu);
}
