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

use iced_x86::code_asm::*;
use kagami_benches::{long_mode_cpu, CODE, DATA, DATA2};
use kagami_cpu::{Cpu, Exit, NullBus};
use std::time::Instant;

struct Program {
    name: String,
    code: Vec<u8>,
    /// Fill guest memory before the run.
    setup: Box<dyn Fn(&Cpu)>,
    /// Check the guest's result; Err says what is wrong.
    check: Box<dyn Fn(&Cpu) -> Result<(), String>>,
    /// Bytes the program moves, for a MB/s figure (string copies).
    bytes: Option<u64>,
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

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a (32-bit) over a 64 KiB buffer, `passes` times, the hash carried on.
fn fnv1a(passes: u32) -> Program {
    const LEN: usize = 64 << 10;
    let code = asm(|a| {
        let mut pass = a.create_label();
        let mut byte = a.create_label();
        a.mov(eax, FNV_OFFSET)?;
        a.mov(ecx, passes)?;
        a.set_label(&mut pass)?;
        a.mov(rsi, DATA)?;
        a.lea(rdi, ptr(rsi + LEN as i32))?;
        a.set_label(&mut byte)?;
        a.movzx(edx, byte_ptr(rsi))?;
        a.xor(eax, edx)?;
        a.imul_3(eax, eax, FNV_PRIME as i32)?;
        a.inc(rsi)?;
        a.cmp(rsi, rdi)?;
        a.jb(byte)?;
        a.dec(ecx)?;
        a.jne(pass)
    });
    let data = pseudo_random(LEN, 1);
    let mut want = FNV_OFFSET;
    for _ in 0..passes {
        for &b in &data {
            want = (want ^ b as u32).wrapping_mul(FNV_PRIME);
        }
    }
    Program {
        name: format!("fnv1a hash, 64 KiB x{passes}"),
        code,
        setup: Box::new(move |cpu| cpu.mem.write(DATA, &data)),
        check: Box::new(move |cpu| {
            let got = cpu.s.gpr[0] as u32;
            (got == want).then_some(()).ok_or(format!("hash {got:#x}, expected {want:#x}"))
        }),
        bytes: None,
    }
}

/// Insertion sort of `n` unsigned dwords.
fn insertion_sort(n: u32) -> Program {
    let code = asm(|a| {
        // for i in 1..n { key = v[i]; j = i; while j > 0 && v[j-1] > key { v[j] = v[j-1]; j -= 1 } v[j] = key }
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
        setup: Box::new(move |cpu| cpu.mem.write(DATA, &data)),
        check: Box::new(move |cpu| {
            let mut got = vec![0u8; want.len() * 4];
            cpu.mem.read(DATA, &mut got);
            let got: Vec<u32> = got.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
            (got == want).then_some(()).ok_or("array not sorted".to_string())
        }),
        bytes: None,
    }
}

const COPY_LEN: usize = 1 << 20;

fn copy_program(name: String, code: Vec<u8>, passes: u64) -> Program {
    let src = pseudo_random(COPY_LEN, 3);
    let want = src.clone();
    Program {
        name,
        code,
        setup: Box::new(move |cpu| cpu.mem.write(DATA, &src)),
        check: Box::new(move |cpu| {
            let mut got = vec![0u8; COPY_LEN];
            cpu.mem.read(DATA2, &mut got);
            (got == want).then_some(()).ok_or("destination differs from source".to_string())
        }),
        bytes: Some(COPY_LEN as u64 * passes),
    }
}

/// REP MOVSB of 1 MiB, `passes` times.
fn rep_movsb(passes: u32) -> Program {
    let code = asm(|a| {
        let mut pass = a.create_label();
        a.mov(ebx, passes)?;
        a.cld()?;
        a.set_label(&mut pass)?;
        a.mov(rsi, DATA)?;
        a.mov(rdi, DATA2)?;
        a.mov(ecx, COPY_LEN as u32)?;
        a.rep().movsb()?;
        a.dec(ebx)?;
        a.jne(pass)
    });
    copy_program(format!("rep movsb, 1 MiB x{passes}"), code, passes as u64)
}

/// The same copy as a byte loop, `passes` times.
fn byte_loop(passes: u32) -> Program {
    let code = asm(|a| {
        let mut pass = a.create_label();
        let mut byte = a.create_label();
        a.mov(ebx, passes)?;
        a.set_label(&mut pass)?;
        a.mov(rsi, DATA)?;
        a.mov(rdi, DATA2)?;
        a.mov(ecx, COPY_LEN as u32)?;
        a.set_label(&mut byte)?;
        a.mov(al, byte_ptr(rsi))?;
        a.mov(byte_ptr(rdi), al)?;
        a.inc(rsi)?;
        a.inc(rdi)?;
        a.dec(ecx)?;
        a.jne(byte)?;
        a.dec(ebx)?;
        a.jne(pass)
    });
    copy_program(format!("byte-loop copy, 1 MiB x{passes}"), code, passes as u64)
}

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
        cpu.mem.write(CODE, &p.code);
        (p.setup)(&cpu);
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
