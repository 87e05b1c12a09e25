//! The specialised handlers of `insn/fast.rs` against the family handlers
//! they stand in for: seeded random encodings of the covered opcodes (with
//! operand-size, address-size, segment and REX prefixes) in 16-, 32- and
//! 64-bit mode, run both ways from the same state; registers, flags, the
//! fault (if any) and memory must agree.

mod common;

use common::*;
use iced_x86::{Decoder, DecoderOptions};
use kagami_cpu::block::{run_generic, Op};
use kagami_cpu::state::RSP;
use kagami_cpu::{CpuState, NullBus};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[(self.next() % v.len() as u64) as usize]
    }
}

/// Opcodes (after prefixes) whose forms `insn/fast.rs` covers.
const ONE_BYTE: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x38, 0x39,
    0x3a, 0x3b, 0x3c, 0x3d, 0x40, 0x48, 0x50, 0x58, 0x63, 0x69, 0x6b, 0x70, 0x74, 0x7c, 0x7f, 0x80, 0x81, 0x83, 0x84, 0x85, 0x88, 0x89,
    0x8a, 0x8b, 0x8d, 0x90, 0xa8, 0xa9, 0xb0, 0xb8, 0xbf, 0xc0, 0xc1, 0xc3, 0xc6, 0xc7, 0xd0, 0xd1, 0xe8, 0xe9, 0xeb, 0xf6, 0xf7, 0xfe,
    0xff,
];
const TWO_BYTE: &[u8] = &[
    0x40, 0x44, 0x4c, 0x4f, 0x82, 0x85, 0x8e, 0x92, 0x94, 0x9c, 0x9f, 0xaf, 0xb6, 0xb7, 0xbe, 0xbf, 0x1f,
];

fn random_bytes(r: &mut Rng, bits: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..r.next() % 3 {
        b.push(r.pick(&[0x66, 0x67, 0x2e, 0x26, 0x64, 0x65, 0x36]));
    }
    if bits == 64 && r.next() % 2 == 0 {
        b.push(0x40 | (r.next() % 16) as u8);
    }
    if r.next() % 4 == 0 {
        b.push(0x0f);
        b.push(r.pick(TWO_BYTE));
    } else {
        let op = r.pick(ONE_BYTE);
        // Spread the register-in-opcode forms over all registers.
        let op = if matches!(op, 0x40 | 0x48 | 0x50 | 0x58 | 0xb0 | 0xb8) && !(bits == 64 && op < 0x50) {
            op + (r.next() % 8) as u8
        } else {
            op
        };
        b.push(op);
    }
    for _ in 0..12 {
        b.push(r.next() as u8);
    }
    b
}

fn fill_state(r: &mut Rng, s: &mut CpuState, bits: u32) {
    for g in 0..16 {
        // Mostly pointers into RAM near the data area, some wild values.
        s.gpr[g] = match r.next() % 4 {
            0 => r.next(),
            _ if bits == 16 => r.next() & 0xffff,
            _ => 0x10_0000 + (r.next() & 0xf_fff0),
        };
    }
    s.gpr[RSP] = if bits == 16 {
        0x8000 + (r.next() & 0xfff0)
    } else {
        0x20_0000 + (r.next() & 0xfff0)
    };
    s.set_flags(r.next() & 0x8d5);
}

fn same_state(a: &CpuState, b: &CpuState) -> bool {
    let (mut x, mut y) = (a.clone(), b.clone());
    // Compare flags by value: the lazy representation may legitimately differ.
    x.set_flags(a.flags());
    y.set_flags(b.flags());
    x == y
}

#[test]
fn specialised_handlers_match_family_handlers() {
    for bits in [16u32, 32, 64] {
        let mut r = Rng(0x5eed_0000 + bits as u64);
        let mut a = machine(bits);
        let mut b = machine(bits);
        let template = a.s.clone();
        let (mut covered, mut faults) = (0, 0);
        for case in 0..30000 {
            let bytes = random_bytes(&mut r, bits);
            let mut d = Decoder::with_ip(bits, &bytes, template.rip, DecoderOptions::NONE);
            let insn = d.decode();
            if insn.is_invalid() {
                continue;
            }
            let handler = kagami_cpu::dispatch::handler_for(&insn, a.model);
            let op = Op::new(insn, handler, a.model, a.s.mode);
            if std::ptr::fn_addr_eq(op.exec, run_generic as kagami_cpu::block::OpFn) {
                continue;
            }
            covered += 1;
            let mut s = template.clone();
            fill_state(&mut r, &mut s, bits);
            a.s = s.clone();
            b.s = s;
            a.s.rip = insn.next_ip();
            b.s.rip = insn.next_ip();
            let ra = (op.exec)(&mut a, &mut NullBus, &op).map_err(|e| *e);
            let rb = handler(&mut b, &mut NullBus, &insn);
            if ra.is_err() {
                faults += 1;
            }
            assert_eq!(ra, rb, "{bits}-bit case {case}: {insn} ({bytes:02x?}) fault");
            assert!(
                same_state(&a.s, &b.s),
                "{bits}-bit case {case}: {insn} ({bytes:02x?}) state\nfast:   {:x?}\nfamily: {:x?}",
                a.s,
                b.s
            );
        }
        assert!(covered > 7500, "{bits}-bit: only {covered} specialised forms generated");
        assert!(faults > 0, "{bits}-bit: no fault exercised");
        let (ma, mb) = (peek(&a, 0, RAM as usize), peek(&b, 0, RAM as usize));
        assert!(ma == mb, "{bits}-bit: memory differs");
    }
}
