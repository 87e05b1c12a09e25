//! JIT benchmark: the same kind of CPU-bound 64-bit guest programs as
//! `mips`, each run on the interpreter alone and on the interpreter plus
//! JIT (default threshold) in the same process, printing MIPS for both,
//! the JIT/interpreter ratio and the JIT's compile time. Results are checked
//! against the host's computation. A benchmark, not a test.
//!
//!     cargo run --release -p kagami-benches --bin jit_mips [-- --scale N]

use iced_x86::code_asm::*;
use kagami_benches::long_mode_cpu;
use kagami_benches::programs::{asm, fnv1a, insertion_sort, Program};
use kagami_cpu::{Exit, NullBus};
use kagami_machine::accel::{install, stats_report, JitOptions};
use std::time::Instant;

/// Register-only arithmetic: an LCG-like mix, `n` iterations.
fn alu_loop(n: u32) -> Program {
    let code = asm(|a| {
        let mut top = a.create_label();
        a.mov(ecx, n)?;
        a.mov(rax, 1u64)?;
        a.mov(rbx, 0x9e37_79b9u64)?;
        a.set_label(&mut top)?;
        a.add(rax, rbx)?;
        a.xor(rbx, rax)?;
        a.lea(rdx, ptr(rax + rbx * 4 + 7))?;
        a.sub(rax, rdx)?;
        a.and(edx, 0xffff)?;
        a.or(rbx, rdx)?;
        a.dec(ecx)?;
        a.jne(top)
    });
    let (mut x, mut y) = (1u64, 0x9e37_79b9u64);
    for _ in 0..n {
        x = x.wrapping_add(y);
        y ^= x;
        let mut z = x.wrapping_add(y.wrapping_mul(4)).wrapping_add(7);
        x = x.wrapping_sub(z);
        z &= 0xffff;
        y |= z;
    }
    Program {
        name: format!("register ALU loop x{n}"),
        code,
        data: vec![],
        bytes: None,
        check: Box::new(move |cpu| {
            (cpu.s.gpr[0] == x && cpu.s.gpr[3] == y)
                .then_some(())
                .ok_or(format!("rax {:#x} rbx {:#x}, expected {x:#x} {y:#x}", cpu.s.gpr[0], cpu.s.gpr[3]))
        }),
    }
}

/// Run `p` once; returns (instructions, seconds, JIT report) or why it failed.
fn run(p: &Program, jit: bool) -> Result<(u64, f64, String), String> {
    let mut cpu = long_mode_cpu();
    install(
        &mut cpu,
        &JitOptions {
            enabled: jit,
            ..JitOptions::default()
        },
    );
    p.load(&cpu);
    let t = Instant::now();
    let mut exit;
    loop {
        exit = cpu.run(&mut NullBus, 100_000_000);
        if exit != Exit::Budget {
            break;
        }
    }
    let dt = t.elapsed().as_secs_f64();
    if exit != Exit::Halted {
        return Err(format!("stopped with {exit:?} at {:#x}", cpu.s.rip));
    }
    (p.check)(&cpu)?;
    Ok((cpu.s.icount, dt, stats_report(&cpu)))
}

fn main() {
    let mut scale = 1u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().map(|v| v.parse::<u32>())) {
            ("--scale", Some(Ok(v))) if v > 0 => scale = v,
            _ => {
                eprintln!("usage: jit_mips [--scale N]   (N > 0 multiplies every program's work)");
                std::process::exit(1);
            }
        }
    }
    let programs = [alu_loop(10_000_000 * scale), fnv1a(48 * scale), insertion_sort(3000 * scale.min(4))];
    println!("kagami interpreter vs interpreter + JIT (default threshold), one core, 64-bit mode");
    println!(
        "{:<30} {:>13} {:>10} {:>10} {:>7} {:>12}",
        "program", "instructions", "interp MIPS", "JIT MIPS", "ratio", "compile ms"
    );
    let mut failed = false;
    for p in &programs {
        match (run(p, false), run(p, true)) {
            (Ok((n, ti, _)), Ok((_, tj, report))) => {
                let compile = report
                    .split(", ")
                    .find_map(|s| s.strip_prefix("compile time "))
                    .and_then(|s| s.trim_end_matches(" s").parse::<f64>().ok())
                    .unwrap_or(0.0);
                let (mi, mj) = (n as f64 / ti / 1e6, n as f64 / tj / 1e6);
                println!(
                    "{:<30} {:>13} {:>10.1} {:>10.1} {:>6.2}x {:>12.1}",
                    p.name,
                    n,
                    mi,
                    mj,
                    mj / mi,
                    compile * 1e3
                );
            }
            (a, b) => {
                failed = true;
                println!("{:<30} FAILED: interpreter {:?}, JIT {:?}", p.name, a.err(), b.err());
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
