//! JIT benchmark: the same kind of CPU-bound 64-bit guest programs as
//! `mips`, each run on the interpreter alone and on the interpreter plus
//! JIT (default threshold) in the same process, printing MIPS for both,
//! the JIT/interpreter ratio and the JIT's compile time. Results are checked
//! against the host's computation. A benchmark, not a test.
//!
//!     cargo run --release -p kagami-benches --bin jit_mips [-- --scale N]

use iced_x86::code_asm::*;
use kagami_benches::{long_mode_cpu, CODE, DATA};
use kagami_cpu::{Cpu, Exit, NullBus};
use kagami_machine::accel::{install, stats_report, JitOptions};
use std::time::Instant;

struct Program {
    name: String,
    code: Vec<u8>,
    data: Vec<u8>,
    check: Box<dyn Fn(&Cpu) -> Result<(), String>>,
}

fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.hlt().unwrap();
    a.assemble(CODE).unwrap()
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

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
        check: Box::new(move |cpu| {
            (cpu.s.gpr[0] == x && cpu.s.gpr[3] == y)
                .then_some(())
                .ok_or(format!("rax {:#x} rbx {:#x}, expected {x:#x} {y:#x}", cpu.s.gpr[0], cpu.s.gpr[3]))
        }),
    }
}

/// FNV-1a over 64 KiB, `passes` times (a load, an IMUL per byte).
fn fnv1a(passes: u32) -> Program {
    const LEN: usize = 64 << 10;
    let code = asm(|a| {
        let mut pass = a.create_label();
        let mut byte = a.create_label();
        a.mov(eax, 0x811c_9dc5u32)?;
        a.mov(ecx, passes)?;
        a.set_label(&mut pass)?;
        a.mov(rsi, DATA)?;
        a.lea(rdi, ptr(rsi + LEN as i32))?;
        a.set_label(&mut byte)?;
        a.movzx(edx, byte_ptr(rsi))?;
        a.xor(eax, edx)?;
        a.imul_3(eax, eax, 0x0100_0193)?;
        a.inc(rsi)?;
        a.cmp(rsi, rdi)?;
        a.jb(byte)?;
        a.dec(ecx)?;
        a.jne(pass)
    });
    let data = pseudo_random(LEN, 1);
    let mut want = 0x811c_9dc5u32;
    for _ in 0..passes {
        for &b in &data {
            want = (want ^ b as u32).wrapping_mul(0x0100_0193);
        }
    }
    Program {
        name: format!("fnv1a hash, 64 KiB x{passes}"),
        code,
        data,
        check: Box::new(move |cpu| {
            let got = cpu.s.gpr[0] as u32;
            (got == want).then_some(()).ok_or(format!("hash {got:#x}, expected {want:#x}"))
        }),
    }
}

/// Insertion sort of `n` dwords (loads, stores, compares, branches).
fn insertion_sort(n: u32) -> Program {
    let code = asm(|a| {
        let mut outer = a.create_label();
        let mut inner = a.create_label();
        let mut place = a.create_label();
        let mut done = a.create_label();
        a.mov(rbx, DATA)?;
        a.mov(esi, 1u32)?;
        a.set_label(&mut outer)?;
        a.cmp(esi, n)?;
        a.jae(done)?;
        a.mov(eax, dword_ptr(rbx + rsi * 4))?;
        a.mov(edi, esi)?;
        a.set_label(&mut inner)?;
        a.test(edi, edi)?;
        a.je(place)?;
        a.mov(edx, dword_ptr(rbx + rdi * 4 - 4))?;
        a.cmp(edx, eax)?;
        a.jbe(place)?;
        a.mov(dword_ptr(rbx + rdi * 4), edx)?;
        a.dec(edi)?;
        a.jmp(inner)?;
        a.set_label(&mut place)?;
        a.mov(dword_ptr(rbx + rdi * 4), eax)?;
        a.inc(esi)?;
        a.jmp(outer)?;
        a.set_label(&mut done)?;
        a.nop()
    });
    let data = pseudo_random(4 * n as usize, 2);
    let mut want: Vec<u32> = data.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    want.sort_unstable();
    Program {
        name: format!("insertion sort, {n} dwords"),
        code,
        data,
        check: Box::new(move |cpu| {
            let mut got = vec![0u8; want.len() * 4];
            cpu.mem.read(DATA, &mut got);
            let got: Vec<u32> = got.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
            (got == want).then_some(()).ok_or("array not sorted".to_string())
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
    cpu.mem.write(CODE, &p.code);
    cpu.mem.write(DATA, &p.data);
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
