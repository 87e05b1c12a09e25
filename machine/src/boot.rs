//! `kagami -kernel …`: turn the command line into a [`PcConfig`], pick the
//! accelerator, run the machine and map how it stopped to an exit code.

use crate::Cli;
use kagami_devices::ByteSink;
use kagami_machine::clock::ClockMode;
use kagami_machine::kvm::probe::{probe, KvmStatus};
use kagami_machine::options::{self, CharTarget, Device};
use kagami_machine::pc::{MachineKind, Pc, PcConfig, PcExtras, Stop};
use std::collections::HashMap;

fn sink(target: &CharTarget, what: &str) -> Result<Option<ByteSink>, String> {
    Ok(match target {
        CharTarget::Stdio => Some(Box::new(std::io::stdout())),
        CharTarget::Null => Some(Box::new(std::io::sink())),
        CharTarget::File(p) => {
            let f = std::fs::File::create(p).map_err(|e| format!("{what}: cannot create {p}: {e}"))?;
            Some(Box::new(f))
        }
    })
}

fn read_file(opt: &str, p: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{opt}: cannot read {}: {e}", p.display()))
}

/// The CPU a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accel {
    Tcg,
    Kvm,
}

/// Decide the accelerator and say why on stderr.
fn choose_accel(request: Option<&str>) -> Result<Accel, String> {
    match request.unwrap_or("kvm:tcg") {
        "tcg" => Ok(Accel::Tcg),
        "kvm" => match probe() {
            KvmStatus::Usable { loop_rate } => {
                eprintln!("kagami: accelerator kvm (probe loop ran at {loop_rate} iterations/s)");
                Ok(Accel::Kvm)
            }
            KvmStatus::Absent(why) | KvmStatus::Unusable(why) => Err(format!("-accel kvm: {why}")),
        },
        "kvm:tcg" => Ok(match probe() {
            KvmStatus::Usable { loop_rate } => {
                eprintln!("kagami: accelerator kvm (probe loop ran at {loop_rate} iterations/s)");
                Accel::Kvm
            }
            KvmStatus::Absent(why) | KvmStatus::Unusable(why) => {
                eprintln!("kagami: accelerator tcg ({why})");
                Accel::Tcg
            }
        }),
        other => Err(format!("-accel: unknown accelerator '{other}' (tcg, kvm, kvm:tcg)")),
    }
}

pub fn run(cli: &Cli) -> Result<u8, String> {
    let (kind, machine_accel) = match &cli.machine {
        Some(m) => options::parse_machine(m)?,
        None => (MachineKind::Pc, None),
    };
    let accel = if cli.enable_kvm {
        Some("kvm".to_string())
    } else {
        cli.accel.clone().or(machine_accel)
    };
    if let Some(n) = &cli.smp {
        let cpus = n
            .split(',')
            .next()
            .unwrap_or("")
            .strip_prefix("cpus=")
            .unwrap_or(n.split(',').next().unwrap_or(""));
        match cpus.parse::<u32>() {
            Ok(1) => {}
            Ok(k) => return Err(format!("-smp {k}: kagami runs one CPU for now (SMP is not implemented yet)")),
            Err(_) => return Err(format!("-smp: '{n}' is not a CPU count")),
        }
    }
    if let Some(c) = &cli.cpu {
        if !["max", "host", "qemu64", "kagami"].contains(&c.split(',').next().unwrap_or("")) {
            return Err(format!(
                "-cpu: unknown model '{c}' (kagami has one model; max, host and qemu64 are accepted)"
            ));
        }
    }
    if let Some(d) = &cli.display {
        if d != "none" {
            return Err(format!("-display {d}: only -display none exists for now"));
        }
    }
    let bios = match &cli.bios {
        Some(p) => {
            let image = read_file("-bios", p)?;
            kagami_machine::firmware::check_bios(&p.display().to_string(), &image)?;
            Some(image)
        }
        None => None,
    };
    let ram = match &cli.memory {
        Some(m) => options::parse_mem(m)?,
        None => 128 << 20,
    };
    let mut chardevs: HashMap<String, CharTarget> = HashMap::new();
    for c in &cli.chardev {
        let (id, t) = options::parse_chardev_def(c)?;
        chardevs.insert(id, t);
    }
    let mut serial = Vec::new();
    let mut com1_stdio = cli.serial.is_empty();
    for (k, s) in cli.serial.iter().enumerate() {
        let t = options::parse_chardev("-serial", s)?;
        com1_stdio |= k == 0 && t == CharTarget::Stdio;
        serial.push(sink(&t, "-serial")?);
    }
    if serial.is_empty() {
        serial.push(sink(&CharTarget::Stdio, "-serial")?);
    }
    serial.resize_with(2, || None);
    let mut debug_exit = None;
    let mut debugcon = None;
    let mut pc_testdev = false;
    for d in &cli.device {
        // Drive devices (ide-hd, ide-cd, ahci) are drives.rs's.
        if kagami_machine::drive_options::is_drive_device(d) {
            continue;
        }
        match options::parse_device(d)? {
            Device::DebugExit { iobase, iosize } => debug_exit = Some((iobase, iosize)),
            Device::Debugcon { iobase, chardev } => {
                let target = match chardev {
                    Some(id) => chardevs
                        .get(&id)
                        .cloned()
                        .ok_or_else(|| format!("-device isa-debugcon: no -chardev with id={id}"))?,
                    None => CharTarget::Stdio,
                };
                debugcon = Some((iobase, sink(&target, "isa-debugcon")?.expect("sink")));
            }
            Device::PcTestdev => pc_testdev = true,
        }
    }
    if let Some(dc) = &cli.debugcon {
        debugcon = Some((0xe9, sink(&options::parse_chardev("-debugcon", dc)?, "-debugcon")?.expect("sink")));
    }
    let clock = match &cli.icount {
        Some(s) => ClockMode::Instructions {
            shift: options::parse_icount(s)?,
        },
        None => ClockMode::Host,
    };
    if cli.kernel.is_none() && bios.is_none() {
        return Err("nothing to boot: give -kernel FILE or -bios FILE (or --demo for the built-in demo guest)".into());
    }
    let kernel = cli.kernel.as_ref().map(|p| read_file("-kernel", p)).transpose()?;
    let kernel_path = cli.kernel.clone().unwrap_or_default();
    let initrd = cli.initrd.as_ref().map(|p| read_file("-initrd", p)).transpose()?;
    let cfg = PcConfig {
        kind,
        ram_bytes: ram,
        kernel,
        kernel_path: kernel_path.display().to_string(),
        initrd,
        append: cli.append.clone(),
        serial,
        debug_exit,
        debugcon,
        clock,
        no_reboot: cli.no_reboot,
        rtc_start: match clock {
            // Deterministic runs start the RTC at a fixed date.
            ClockMode::Instructions { .. } => 1_700_000_000,
            ClockMode::Host => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        },
    };
    let firmware = bios.is_some();
    let drives = crate::drives::open(cli, kind)?;
    let mut pc = Pc::new_ext(
        cfg,
        PcExtras {
            bios,
            nographic: cli.nographic,
            smbios: None,
            pc_testdev,
        },
    )?;
    crate::drives::attach(drives, &mut pc, firmware)?;
    if cli.print_machine {
        print!("{}", pc.board.describe());
        return Ok(0);
    }
    let gdb_addr = match (&cli.gdb, cli.gdb_default) {
        (Some(d), _) => Some(kagami_machine::gdb::parse_dev(d)?),
        (None, true) => Some("0.0.0.0:1234".to_string()),
        (None, false) => None,
    };
    // The GDB stub drives kagami's own CPU: without an explicit choice that is TCG.
    let accel = match (&gdb_addr, accel.as_deref()) {
        (Some(_), None | Some("kvm:tcg")) => Accel::Tcg,
        (_, a) => choose_accel(a)?,
    };
    if gdb_addr.is_some() && matches!(accel, Accel::Kvm) {
        return Err("-gdb/-s: the GDB stub works with -accel tcg only (a KVM guest cannot be debugged yet)".into());
    }
    let gdb_listener = match &gdb_addr {
        Some(a) => Some(kagami_machine::gdb::listen(a)?),
        None => None,
    };
    // `KAGAMI_JIT_THRESHOLD` stands in for `--jit-threshold` when that is
    // not given: the test suite reruns the boot tests with it at 0.
    let env_threshold = match std::env::var("KAGAMI_JIT_THRESHOLD") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<u32>()
                .map_err(|_| format!("KAGAMI_JIT_THRESHOLD={v:?} is not a number of executions"))?,
        ),
        _ => None,
    };
    let jit = kagami_machine::accel::JitOptions {
        // The JIT is on by default with TCG (`--jit` kept for old command lines).
        enabled: !cli.no_jit,
        threshold: cli
            .jit_threshold
            .or(env_threshold)
            .unwrap_or(kagami_machine::accel::JitOptions::default().threshold),
        stats: cli.jit_stats,
        background: !cli.jit_sync,
    };
    pc.set_no_shutdown(cli.no_shutdown);
    if cli.paused && gdb_listener.is_none() {
        eprintln!("kagami: machine paused (-S): press Enter to start it");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("-S: reading stdin: {e}"))?;
    }
    // Keystrokes reach COM1 when it is on stdio; the terminal is raw while the machine runs.
    let _raw = if com1_stdio {
        let tx = pc.connect_input();
        let raw = crate::console::enter_raw_mode();
        crate::console::spawn_reader(tx);
        raw
    } else {
        None
    };
    let limit = (cli.max_instructions > 0).then_some(cli.max_instructions);
    let t0 = std::time::Instant::now();
    let stop = match accel {
        Accel::Tcg => {
            kagami_machine::accel::install(&mut pc.cpu, &jit);
            let stop = match std::env::var_os("KAGAMI_PROFILE") {
                Some(path) => run_sampled(&mut pc, limit, std::path::Path::new(&path))?,
                None => match gdb_listener {
                    Some(l) => kagami_machine::gdb::run(&mut pc, l, cli.paused, limit)?,
                    None => pc.run(limit),
                },
            };
            if jit.stats {
                eprintln!("{}", kagami_machine::accel::stats_report(&pc.cpu));
            }
            stop
        }
        Accel::Kvm => {
            if limit.is_some() {
                return Err("--max-instructions: KVM does not count instructions; use -accel tcg".into());
            }
            let mut vcpu = kagami_machine::kvm::KvmCpu::new(&pc.cpu).map_err(|e| format!("KVM: {e}"))?;
            kagami_machine::kvm::run::run_pc(&mut pc, &mut vcpu).map_err(|e| format!("KVM: {e}"))?
        }
    };
    if cli.stats {
        let secs = t0.elapsed().as_secs_f64();
        let n = pc.cpu.s.icount;
        eprintln!(
            "kagami: stats: {n} instructions retired in {secs:.2} s ({:.1} MIPS), stop {stop:?}, cs:rip {:04x}:{:016x}",
            n as f64 / secs.max(1e-9) / 1e6,
            pc.cpu.s.segs[kagami_cpu::state::CS].selector,
            pc.cpu.s.rip
        );
    }
    Ok(match stop {
        Stop::Exit(code) => code as u8,
        Stop::Reset | Stop::Quit => 0,
        Stop::Hung => {
            eprintln!("kagami: the guest halted with interrupts disabled; nothing can wake it");
            1
        }
        Stop::Limit => {
            eprintln!("kagami: stopped after {} instructions (--max-instructions)", pc.cpu.s.icount);
            0
        }
    })
}

/// Developer aid (env KAGAMI_PROFILE=FILE): run in slices of 100,000
/// instructions and write how often each RIP (and CR3) was seen at a slice
/// end, most frequent first: a sampling profile of the guest.
fn run_sampled(pc: &mut Pc, limit: Option<u64>, path: &std::path::Path) -> Result<Stop, String> {
    const STEP: u64 = 100_000;
    let end = limit.map(|l| pc.cpu.s.icount + l);
    let mut hist: HashMap<u64, u64> = HashMap::new();
    let stop = loop {
        let n = match end {
            Some(e) if e <= pc.cpu.s.icount => break Stop::Limit,
            Some(e) => STEP.min(e - pc.cpu.s.icount),
            None => STEP,
        };
        match pc.run(Some(n)) {
            Stop::Limit => *hist.entry(pc.cpu.s.rip).or_default() += 1,
            other => break other,
        }
    };
    let mut v: Vec<_> = hist.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let text: String = v.iter().map(|(rip, n)| format!("{rip:016x} {n}\n")).collect();
    std::fs::write(path, text).map_err(|e| format!("KAGAMI_PROFILE: cannot write {}: {e}", path.display()))?;
    Ok(stop)
}
