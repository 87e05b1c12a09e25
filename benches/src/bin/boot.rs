//! Boot and in-guest workload benchmark: kagami's interpreter (`--no-jit`),
//! kagami with its JIT (`--jit`) and QEMU TCG (Debian's qemu-system-x86_64,
//! `-accel tcg`) boot the same kernel and initramfs with the same `-machine`,
//! `-m` and command line in the same run of this program; the host runs the
//! workload natively with the guest's busybox.
//!
//!     bash scripts/build-test-guest.sh
//!     nice -n 10 cargo build --release -p kagami-machine -p kagami-benches
//!     target/release/boot [--kernel bzImage|vmlinux|both] [--machine pc|q35] [--runs N]
//!                         [--boot-only] [--dd-mib N] [--seq N] [--timeout SECS]
//!                         [--skip-interp] [--skip-jit] [--skip-qemu]
//!
//! Two tables:
//! - boot: wall time from process start to the guest's `KAGAMI-MARKER`
//!   line on the serial console, best of N, and kagami / QEMU;
//! - workload (issue 5; see kagami_benches::workload): after the marker the
//!   guest runs `dd if=/dev/zero bs=1M count=256 | sha256sum` and
//!   `seq 1 3000000 | gzip -9 | sha256sum`; each job's time is the host
//!   time between its begin and result lines (the same method for every
//!   emulator and for the native run), best of N, with the guest's own
//!   uptime difference next to it, kagami / QEMU and kagami / native. Every
//!   digest is checked against the native run's; a mismatch is reported and
//!   the program exits 1.
//!
//! kagami is the `kagami` binary next to this one (target/release/); the
//! guest is target/guest/ (or $KAGAMI_GUEST_DIR). QEMU boots a vmlinux
//! through its PVH note as kagami does. This is a benchmark, not a test:
//! nothing asserts a time. The machine it runs on is shared, so read the
//! ratios of one run rather than absolute seconds.

use kagami_benches::workload::{self, Job, Timeline};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const APPEND: &str = "console=ttyS0 kagami.poweroff=1";

struct Options {
    kernels: Vec<String>,
    machine: String,
    runs: usize,
    boot_only: bool,
    dd_mib: u32,
    seq_n: u32,
    timeout: Duration,
    skip: Vec<Engine>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Interp,
    Jit,
    Qemu,
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::Interp, Engine::Jit, Engine::Qemu];

    fn label(self) -> &'static str {
        match self {
            Engine::Interp => "kagami interpreter",
            Engine::Jit => "kagami JIT",
            Engine::Qemu => "QEMU TCG",
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!("boot: {why}");
    eprintln!(
        "usage: boot [--kernel bzImage|vmlinux|both] [--machine pc|q35] [--runs N] [--boot-only] \
         [--dd-mib N] [--seq N] [--timeout SECS] [--skip-interp] [--skip-jit] [--skip-qemu]"
    );
    std::process::exit(1);
}

fn parse_options() -> Options {
    let mut o = Options {
        kernels: vec!["bzImage".into()],
        machine: "pc".into(),
        runs: 1,
        boot_only: false,
        dd_mib: 256,
        seq_n: 3_000_000,
        timeout: Duration::from_secs(3600),
        skip: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    fn number<T: std::str::FromStr + PartialOrd + Default>(name: &str, v: Option<String>) -> T {
        v.and_then(|v| v.parse::<T>().ok())
            .filter(|n| *n > T::default())
            .unwrap_or_else(|| usage(&format!("{name} wants a positive number")))
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "--kernel" => {
                o.kernels = match args.next().as_deref() {
                    Some("both") => vec!["bzImage".into(), "vmlinux".into()],
                    Some(k @ ("bzImage" | "vmlinux")) => vec![k.into()],
                    _ => usage("--kernel wants bzImage, vmlinux or both"),
                }
            }
            "--machine" => {
                o.machine = match args.next().as_deref() {
                    Some(m @ ("pc" | "q35")) => m.into(),
                    _ => usage("--machine wants pc or q35"),
                }
            }
            "--runs" => o.runs = number("--runs", args.next()),
            "--dd-mib" => o.dd_mib = number("--dd-mib", args.next()),
            "--seq" => o.seq_n = number("--seq", args.next()),
            "--timeout" => o.timeout = Duration::from_secs(number("--timeout", args.next())),
            "--boot-only" => o.boot_only = true,
            "--skip-interp" => o.skip.push(Engine::Interp),
            "--skip-jit" => o.skip.push(Engine::Jit),
            "--skip-qemu" => o.skip.push(Engine::Qemu),
            other => usage(&format!("unknown option '{other}'")),
        }
    }
    o
}

/// The host's load averages (1, 5, 15 min), to say how noisy a run was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn best(v: &[f64]) -> Option<f64> {
    v.iter().copied().min_by(|a, b| a.total_cmp(b))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into())
}

fn all_runs(v: &[f64]) -> String {
    v.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(" ")
}

/// Times of one engine on one kernel over the runs.
#[derive(Default)]
struct Series {
    marker: Vec<f64>,
    /// CPU seconds of the process at the marker, per run.
    marker_cpu: Vec<f64>,
    /// Per job: host (wall) seconds, guest seconds and CPU seconds of each run.
    jobs: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>,
}

impl Series {
    fn add(&mut self, tl: &Timeline, jobs: &[Job], boot: bool, want: &[String], bad: &mut Vec<String>, who: &str) {
        if boot {
            if let Some(t) = tl.marker() {
                self.marker.push(t);
            }
            if let Some(t) = tl.marker_cpu() {
                self.marker_cpu.push(t);
            }
        }
        self.jobs.resize(jobs.len(), Default::default());
        for (i, j) in jobs.iter().enumerate() {
            let Some(r) = tl.job_result(j.name) else { continue };
            if let Some(w) = want.get(i) {
                if &r.digest != w {
                    bad.push(format!("{who}: {} digest {} differs from the host's {w}", j.name, r.digest));
                }
            }
            self.jobs[i].0.push(r.host_secs);
            if let Some(g) = r.guest_secs {
                self.jobs[i].1.push(g);
            }
            if let Some(c) = r.cpu_secs {
                self.jobs[i].2.push(c);
            }
        }
    }
}

fn main() {
    let o = parse_options();
    let guest = std::env::var_os("KAGAMI_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/guest")));
    let kagami = std::env::current_exe().unwrap().with_file_name("kagami");
    let mut needed = vec![
        (guest.join("initramfs.cpio.gz"), "run scripts/build-test-guest.sh"),
        (guest.join("busybox"), "run scripts/build-test-guest.sh"),
        (kagami.clone(), "nice -n 10 cargo build --release -p kagami-machine"),
    ];
    needed.extend(o.kernels.iter().map(|k| (guest.join(k), "run scripts/build-test-guest.sh")));
    for (p, hint) in needed {
        if !p.is_file() {
            eprintln!("boot: {} is missing: {hint}", p.display());
            std::process::exit(1);
        }
    }
    let engines: Vec<Engine> = Engine::ALL.into_iter().filter(|e| !o.skip.contains(e)).collect();
    let jobs = if o.boot_only {
        Vec::new()
    } else {
        workload::jobs(o.dd_mib, o.seq_n)
    };
    let script = workload::script(&jobs);
    let append = if jobs.is_empty() {
        APPEND.to_string()
    } else {
        format!("{APPEND} {}", workload::append_word(&script))
    };
    let qemu_version = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| "qemu-system-x86_64 not found".into());
    println!("kagami: {}", kagami.display());
    println!("qemu:   {qemu_version}");
    println!(
        "guest:  {}, -machine {} -m 256, best of {} run(s)",
        guest.display(),
        o.machine,
        o.runs
    );
    println!("load:   {} (start)", load_average());

    // The native run first: its digests are the reference.
    let mut native = Series::default();
    let mut want: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    if !jobs.is_empty() {
        let dir = workload::scratch_dir("bench");
        for run in 1..=o.runs {
            let mut cmd = workload::host_command(&guest.join("busybox"), &dir, &script).unwrap_or_else(|e| {
                eprintln!("boot: cannot set up the native run in {}: {e}", dir.display());
                std::process::exit(1)
            });
            let tl = workload::run_timed("native busybox", &mut cmd, o.timeout, workload::all_results(&jobs)).unwrap_or_else(|e| {
                eprintln!("boot: {e}");
                std::process::exit(1)
            });
            if want.is_empty() {
                want = jobs.iter().map(|j| tl.job_result(j.name).unwrap().digest).collect();
            }
            native.add(&tl, &jobs, false, &want, &mut bad, "native");
            let t: Vec<String> = native.jobs.iter().map(|j| format!("{:.2}", j.0.last().unwrap())).collect();
            println!("run {run}: native busybox: jobs {} s", t.join(" / "));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // series[kernel][engine]
    let mut series: Vec<Vec<Series>> = o
        .kernels
        .iter()
        .map(|_| engines.iter().map(|_| Series::default()).collect())
        .collect();
    for run in 1..=o.runs {
        for (ki, kernel) in o.kernels.iter().enumerate() {
            for (ei, &e) in engines.iter().enumerate() {
                let mut cmd = match e {
                    Engine::Interp | Engine::Jit => {
                        let mut c = Command::new(&kagami);
                        c.args(["-accel", "tcg", if e == Engine::Jit { "--jit" } else { "--no-jit" }]);
                        c
                    }
                    Engine::Qemu => {
                        let mut c = Command::new("qemu-system-x86_64");
                        c.args(["-accel", "tcg"]);
                        c
                    }
                };
                cmd.args(["-machine", &o.machine, "-m", "256", "-nographic", "-no-reboot"])
                    .arg("-kernel")
                    .arg(guest.join(kernel))
                    .arg("-initrd")
                    .arg(guest.join("initramfs.cpio.gz"))
                    .args(["-append", &append]);
                let who = format!("{} {kernel}", e.label());
                let done = |tl: &Timeline| {
                    if jobs.is_empty() {
                        tl.marker().is_some()
                    } else {
                        workload::all_results(&jobs)(tl)
                    }
                };
                match workload::run_timed(&who, &mut cmd, o.timeout, done) {
                    Ok(tl) => {
                        let s = &mut series[ki][ei];
                        s.add(&tl, &jobs, true, &want, &mut bad, &who);
                        let t: Vec<String> = s.jobs.iter().map(|j| format!("{:.2}", j.0.last().unwrap())).collect();
                        println!(
                            "run {run}: {who}: marker {} s{}",
                            secs(s.marker.last().copied()),
                            if t.is_empty() {
                                String::new()
                            } else {
                                format!(", jobs {} s", t.join(" / "))
                            }
                        );
                    }
                    Err(err) => {
                        eprintln!("boot: {err}");
                        bad.push(format!("{who}: failed (see above)"));
                    }
                }
            }
        }
    }

    let qemu_at = engines.iter().position(|&e| e == Engine::Qemu);
    println!("load:   {} (end)", load_average());
    println!();
    println!(
        "Time to KAGAMI-MARKER (s, from process start; best of {}), -machine {} -m 256",
        o.runs, o.machine
    );
    println!("(cpu: CPU seconds of the process at the marker, all its threads; steadier than wall time on a loaded host)");
    println!(
        "{:<9} {:<20} {:>8} {:>8} {:>8} {:>8}   all runs (wall)",
        "kernel", "engine", "wall", "/ QEMU", "cpu", "/ QEMU"
    );
    for (ki, kernel) in o.kernels.iter().enumerate() {
        let q = qemu_at.and_then(|qi| best(&series[ki][qi].marker));
        let qc = qemu_at.and_then(|qi| best(&series[ki][qi].marker_cpu));
        for (ei, e) in engines.iter().enumerate() {
            let b = best(&series[ki][ei].marker);
            let c = best(&series[ki][ei].marker_cpu);
            println!(
                "{kernel:<9} {:<20} {:>8} {:>8} {:>8} {:>8}   {}",
                e.label(),
                secs(b),
                ratio(b, q),
                secs(c),
                ratio(c, qc),
                all_runs(&series[ki][ei].marker)
            );
        }
    }
    if !jobs.is_empty() {
        println!();
        println!(
            "In-guest workload (s between the job's begin and result lines, host clock; best of {}; guest = uptime difference)",
            o.runs
        );
        println!("(wall: host clock; cpu: CPU seconds the process used in between; guest: uptime difference)");
        println!(
            "{:<9} {:<46} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}   all runs (wall)",
            "kernel", "job", "engine", "wall", "cpu", "guest", "/ QEMU", "cpu/QEMU", "/ native", "cpu/nat."
        );
        for (ki, kernel) in o.kernels.iter().enumerate() {
            for (ji, j) in jobs.iter().enumerate() {
                let host = best(&native.jobs[ji].0);
                let host_c = best(&native.jobs[ji].2);
                let q = qemu_at.and_then(|qi| best(&series[ki][qi].jobs.get(ji)?.0));
                let qc = qemu_at.and_then(|qi| best(&series[ki][qi].jobs.get(ji)?.2));
                let rows = engines
                    .iter()
                    .enumerate()
                    .filter_map(|(ei, e)| Some((e.label(), series[ki][ei].jobs.get(ji)?)))
                    .chain(std::iter::once(("native busybox", &native.jobs[ji])));
                for (label, (h, g, c)) in rows {
                    let (b, bc) = (best(h), best(c));
                    println!(
                        "{kernel:<9} {:<46} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}   {}",
                        j.title,
                        label,
                        secs(b),
                        secs(bc),
                        secs(best(g)),
                        ratio(b, q),
                        ratio(bc, qc),
                        ratio(b, host),
                        ratio(bc, host_c),
                        all_runs(h)
                    );
                }
            }
        }
        println!();
        for (j, w) in jobs.iter().zip(&want) {
            println!("digest {:<46} {w}", j.title);
        }
    }
    if !bad.is_empty() {
        println!();
        for b in &bad {
            println!("PROBLEM: {b}");
        }
        std::process::exit(1);
    }
}
