//! REP MOVS/STOS take a bulk path (whole page-contiguous runs copied or
//! filled at once). These tests compare it with a byte-exact model of the
//! instruction done one iteration at a time: overlapping copies in both
//! directions, runs crossing pages, every element size, and a segment-limit
//! fault part-way through (registers must be those after the last
//! completed iteration).

mod common;

use common::*;
use iced_x86::{Decoder, DecoderOptions};
use kagami_cpu::state::{flags, ES, RAX, RCX, RDI, RSI};
use kagami_cpu::{Cpu, Exception, NullBus};

const WINDOW: u64 = 0x10_0000;
const WINDOW_LEN: usize = 0x10_0000;

#[derive(Clone, Copy, Debug)]
enum Op {
    Movs,
    Stos,
}

/// Encode `rep movs`/`rep stos` of `size` bytes for `bits`.
fn encode(op: Op, size: usize, bits: u32) -> Vec<u8> {
    let mut b = vec![0xf3];
    if size == 2 {
        b.push(0x66);
    }
    if size == 8 {
        assert_eq!(bits, 64);
        b.push(0x48);
    }
    b.push(match (op, size) {
        (Op::Movs, 1) => 0xa4,
        (Op::Movs, _) => 0xa5,
        (Op::Stos, 1) => 0xaa,
        (Op::Stos, _) => 0xab,
    });
    b
}

/// Run the instruction by calling its handler until it completes or
/// faults, as the executor would (each call does at most one chunk).
fn run_rep(cpu: &mut Cpu, code: &[u8]) -> Result<(), Exception> {
    let bits = cpu.s.mode.bitness();
    let ip = cpu.s.rip;
    let mut d = Decoder::with_ip(bits, code, ip, DecoderOptions::NONE);
    let insn = d.decode();
    assert_eq!(insn.len(), code.len());
    let h = kagami_cpu::dispatch::handler_for(&insn, cpu.model);
    for _ in 0..100_000 {
        cpu.s.rip = insn.next_ip();
        h(cpu, &mut NullBus, &insn)?;
        if cpu.s.rip == insn.next_ip() {
            return Ok(());
        }
        assert_eq!(cpu.s.rip, ip, "a continued REP points at itself");
    }
    panic!("REP did not finish");
}

struct Model {
    mem: Vec<u8>,
    si: u64,
    di: u64,
    cx: u64,
}

/// The instruction one element at a time on a copy of the window.
/// `limit`: ES limit (an element past it faults before it is written).
fn model(m: &mut Model, op: Op, size: usize, down: bool, value: u64, limit: u64) -> bool {
    let step = if down { (size as u64).wrapping_neg() } else { size as u64 };
    while m.cx != 0 {
        if m.di + size as u64 - 1 > limit {
            return false;
        }
        let d = (m.di - WINDOW) as usize;
        match op {
            Op::Movs => {
                let s = (m.si - WINDOW) as usize;
                let e: Vec<u8> = m.mem[s..s + size].to_vec();
                m.mem[d..d + size].copy_from_slice(&e);
                m.si = m.si.wrapping_add(step);
            }
            Op::Stos => m.mem[d..d + size].copy_from_slice(&value.to_le_bytes()[..size]),
        }
        m.di = m.di.wrapping_add(step);
        m.cx -= 1;
    }
    true
}

fn pattern(cpu: &Cpu) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let v: Vec<u8> = (0..WINDOW_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    cpu.mem.write(WINDOW, &v);
    v
}

#[allow(clippy::too_many_arguments)]
fn check(bits: u32, op: Op, size: usize, down: bool, si: u64, di: u64, count: u64, limit: Option<u64>) {
    let mut cpu = machine(bits);
    let mem = pattern(&cpu);
    let code = encode(op, size, bits);
    cpu.mem.write(CODE, &code);
    let value = 0x1122_3344_5566_7788u64;
    cpu.s.gpr[RSI] = si;
    cpu.s.gpr[RDI] = di;
    cpu.s.gpr[RCX] = count;
    cpu.s.gpr[RAX] = value;
    if down {
        cpu.s.rflags |= flags::DF;
    }
    if let Some(l) = limit {
        cpu.s.segs[ES].limit = l as u32;
    }
    let mut m = Model { mem, si, di, cx: count };
    let completes = model(&mut m, op, size, down, value, limit.unwrap_or(u64::MAX));
    let what = format!("{bits}-bit {op:?} size {size} down {down} si {si:#x} di {di:#x} count {count}");
    let r = run_rep(&mut cpu, &code);
    if completes {
        assert_eq!(r, Ok(()), "{what}");
    } else {
        assert_eq!(r, Err(Exception::GP0), "{what}");
    }
    assert_eq!(cpu.s.gpr[RCX], m.cx, "RCX, {what}");
    assert_eq!(cpu.s.gpr[RDI], m.di, "RDI, {what}");
    if let Op::Movs = op {
        assert_eq!(cpu.s.gpr[RSI], m.si, "RSI, {what}");
    }
    let got = peek(&cpu, WINDOW, WINDOW_LEN);
    if got != m.mem {
        let k = got.iter().zip(&m.mem).position(|(a, b)| a != b).unwrap();
        panic!(
            "memory differs at {:#x}: {:#x} vs model {:#x}, {what}",
            WINDOW + k as u64,
            got[k],
            m.mem[k]
        );
    }
}

#[test]
fn rep_movs_and_stos_match_one_iteration_at_a_time() {
    for bits in [32, 64] {
        for size in [1usize, 2, 4, 8] {
            if size == 8 && bits != 64 {
                continue;
            }
            for down in [false, true] {
                let s = size as u64;
                for count in [1u64, 7, 1000, 1030, 5000 / s + 3] {
                    let span = count * s;
                    // (source, destination) start offsets; going down they
                    // are the highest element's address.
                    let base = if down { 0x1c_0000 } else { 0x14_0000 };
                    let pairs = [
                        (0x10_0ff3, 0x18_0ffd),
                        (base, base + 1),
                        (base + 1, base),
                        (base, base + s),
                        (base + 3 * s, base),
                        (base, base),
                        (base, base + span / 2),
                    ];
                    for (si, di) in pairs {
                        let (si, di) = if down && si < 0x18_0000 { (si + 0x8_0000, di) } else { (si, di) };
                        check(bits, Op::Movs, size, down, si, di, count, None);
                    }
                    check(bits, Op::Stos, size, down, 0, base + 0x7f1, count, None);
                }
            }
        }
    }
}

#[test]
fn rep_movs_and_stos_fault_at_the_exact_iteration() {
    for size in [1usize, 2, 4] {
        for op in [Op::Movs, Op::Stos] {
            // The limit falls inside the run, mid-page and at a page edge.
            for limit in [0x18_0123u64, 0x18_1000 + 2, 0x18_2fff] {
                check(32, op, size, false, 0x10_0001, 0x18_0005, 5000, Some(limit));
            }
        }
    }
}
