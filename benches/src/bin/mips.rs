//! MIPS benchmark: CPU-bound guest programs on one core of the interpreter,
//! printing instructions retired per host second for each and overall
//! (per wall-clock second, and per second of this thread's CPU time).
//!
//!     cargo run --release -p kagami-benches --bin mips [-- --scale N]
//!
//! The programs run in 64-bit mode with 4-level paging (set directly in
//! CpuState, see kagami_benches::long_mode_cpu) and end with HLT. Each
//! result is checked against the same computation on the host; a program
//! that stops early (an instruction the interpreter does not implement yet
//! shuts the machine down, as there is no IDT) is reported and left out of
//! the total. This is a benchmark, not a test: nothing here asserts a time.

use kagami_benches::long_mode_cpu;
use kagami_benches::programs::{byte_loop, fnv1a, insertion_sort, rep_movsb};
use kagami_cpu::{Cpu, Exit, NullBus};
use std::time::Instant;

fn describe_stop(cpu: &Cpu) -> String {
    let mut bytes = [0u8; 15];
    cpu.mem.read(cpu.s.rip, &mut bytes);
    let mut d = iced_x86::Decoder::with_ip(64, &bytes, cpu.s.rip, iced_x86::DecoderOptions::NONE);
    let insn = d.decode();
    let impl_ = if kagami_cpu::dispatch::implemented(insn.code()) {
        ""
    } else {
        " (not implemented yet)"
    };
    format!("stopped at {:#x}: {insn}{impl_}", cpu.s.rip)
}

/// CPU time of this thread in seconds (user + system), from
/// /proc/thread-self/stat in clock ticks of 1/100 s. Unlike the wall clock
/// it hardly grows when other processes share the core.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: u64 = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn main() {
    let mut scale = 1u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().map(|v| v.parse::<u32>())) {
            ("--scale", Some(Ok(v))) if v > 0 => scale = v,
            _ => {
                eprintln!("usage: mips [--scale N]   (N > 0 multiplies every program's work)");
                std::process::exit(1);
            }
        }
    }
    let programs = [
        fnv1a(96 * scale),
        insertion_sort(3000 * scale.min(4)),
        rep_movsb(64 * scale),
        byte_loop(8 * scale),
    ];
    println!("kagami interpreter, one core, 64-bit mode with paging");
    println!(
        "{:<32} {:>14} {:>9} {:>9} {:>9}  note",
        "program", "instructions", "seconds", "MIPS", "MIPS/cpu"
    );
    let (mut insns, mut secs, mut cpu_secs, mut failed) = (0u64, 0f64, 0f64, false);
    for p in &programs {
        let mut cpu = long_mode_cpu();
        p.load(&cpu);
        let t = Instant::now();
        let c0 = thread_cpu_seconds();
        let mut exit;
        loop {
            exit = cpu.run(&mut NullBus, 100_000_000);
            if exit != Exit::Budget {
                break;
            }
        }
        let dt = t.elapsed().as_secs_f64();
        let ct = c0.zip(thread_cpu_seconds()).map(|(a, b)| b - a).filter(|&c| c > 0.0);
        let n = cpu.s.icount;
        let note = match exit {
            Exit::Halted => match (p.check)(&cpu) {
                Ok(()) => {
                    insns += n;
                    secs += dt;
                    cpu_secs += ct.unwrap_or(dt);
                    p.bytes.map(|b| format!("{:.1} MB/s", b as f64 / dt / 1e6)).unwrap_or_default()
                }
                Err(e) => {
                    failed = true;
                    format!("WRONG RESULT: {e}")
                }
            },
            other => format!("not counted: {other:?}, {}", describe_stop(&cpu)),
        };
        let note = format!("{note}{}tlb fills {}", if note.is_empty() { "" } else { ", " }, cpu.tlb.misses);
        let per_cpu = ct.map(|c| format!("{:.1}", n as f64 / c / 1e6)).unwrap_or_else(|| "-".into());
        println!(
            "{:<32} {:>14} {:>9.3} {:>9.1} {per_cpu:>9}  {note}",
            p.name,
            n,
            dt,
            n as f64 / dt / 1e6
        );
    }
    let mips = |t: f64| if t > 0.0 { insns as f64 / t / 1e6 } else { 0.0 };
    println!(
        "{:<32} {:>14} {:>9.3} {:>9.1} {:>9.1}",
        "overall (programs that finished)",
        insns,
        secs,
        mips(secs),
        mips(cpu_secs)
    );
    if failed {
        std::process::exit(1);
    }
}
