//! Comparing the two outcomes and printing a mismatch so it can be
//! reproduced and read without running anything else.
//!
//! What is masked, and why:
//! - RFLAGS: only the arithmetic flags and DF are compared (the stream runs
//!   at CPL 3 where nothing else can change); flags that iced-x86's
//!   instruction info lists as undefined for an instruction are masked until
//!   a later instruction writes them, and the generator never lets a later
//!   instruction read one (`gen::stream`).
//! - FSW: C0..C3 bits iced lists as undefined are masked the same way.
//! - FOP/FIP/FDP are not compared at all (see `state::Fx`).
//! - A 32-bit BSF/BSR destination's upper half (see
//!   `zero_source_bit_scan_dests`), and C1 after FCOMI and friends on AMD
//!   hosts (`gen::after`): documented vendor differences.
//! - After a fault, only the vector, the faulting RIP, GPRs, flags, the
//!   FPU/SSE state and the data window are compared, as after a normal run.

use super::gen::Stream;
use super::layout::*;
use super::state::{vector_name, Outcome, GPR_NAMES};
use iced_x86::{Formatter, IntelFormatter};
use kagami_cpu::state::flags as f;
use std::fmt::Write;

/// Differences between native (`n`) and kagami (`k`), one line each.
pub fn diff(s: &Stream, n: &Outcome, k: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    // At a fault, flags are as the instructions before it left them.
    let at_fault = n.fault.and_then(|f| s.insns.iter().position(|i| i.ip() == f.rip));
    let (undefined_flags, undefined_fsw) = at_fault.map_or((s.undefined_flags, s.undefined_fsw), |k| s.masks_before[k]);
    match (n.fault, k.fault) {
        (None, None) => {}
        (a, b) if a == b => {}
        (a, b) => {
            let show = |x: Option<super::state::Fault>| match x {
                None => "none".to_string(),
                Some(f) => format!("{} at {:#x}", vector_name(f.vector), f.rip),
            };
            out.push(format!("exception: native {} kagami {}", show(a), show(b)));
        }
    }
    if n.state.rip != k.state.rip {
        out.push(format!("rip: native {:#x} kagami {:#x}", n.state.rip, k.state.rip));
    }
    let loose = zero_source_bit_scan_dests(s, at_fault);
    for (i, name) in GPR_NAMES.iter().enumerate() {
        let (a, b) = (n.state.gpr[i], k.state.gpr[i]);
        let upper_only = (a ^ b) >> 32 != 0 && a as u32 == b as u32;
        if upper_only && loose & (1 << i) != 0 && (a >> 32 == 0 || b >> 32 == 0) {
            continue;
        }
        if a != b {
            out.push(format!("{name}: native {a:#018x} kagami {b:#018x}"));
        }
    }
    let mask = (f::ARITH | f::DF) & !undefined_flags;
    if (n.state.rflags ^ k.state.rflags) & mask != 0 {
        out.push(format!(
            "rflags: native {} kagami {} (compared: {})",
            flag_names(n.state.rflags & mask),
            flag_names(k.state.rflags & mask),
            flag_names(mask)
        ));
    }
    let (nf, kf) = (&n.state.fx, &k.state.fx);
    if nf.fcw != kf.fcw {
        out.push(format!("fcw: native {:#06x} kagami {:#06x}", nf.fcw, kf.fcw));
    }
    // After a transcendental (always a stream's last instruction, see
    // gen.rs), C1 (round-up) and two ulps of the results are tolerated: the
    // hardware is not correctly rounded there, worst next to multiples of π
    // (FSIN(FLDPI) is 2 ulps from the host's result).
    let approx = at_fault.is_none() && s.insns.last().is_some_and(|i| super::gen::is_transcendental(i.mnemonic()));
    let fsw_mask = !undefined_fsw & if approx { !0x0200 } else { !0 };
    if (nf.fsw ^ kf.fsw) & fsw_mask != 0 {
        out.push(format!(
            "fsw: native {:#06x} kagami {:#06x} (mask {:#06x})",
            nf.fsw, kf.fsw, fsw_mask
        ));
    }
    if nf.ftw != kf.ftw {
        out.push(format!("ftw (abridged): native {:#04x} kagami {:#04x}", nf.ftw, kf.ftw));
    }
    for i in 0..8 {
        if nf.st[i] != kf.st[i] && !(approx && within_two_ulps(&nf.st[i], &kf.st[i])) {
            out.push(format!("st({i}): native {} kagami {}", f80_hex(&nf.st[i]), f80_hex(&kf.st[i])));
        }
    }
    if nf.mxcsr != kf.mxcsr {
        out.push(format!("mxcsr: native {:#010x} kagami {:#010x}", nf.mxcsr, kf.mxcsr));
    }
    for i in 0..16 {
        if nf.xmm[i] != kf.xmm[i] {
            out.push(format!("xmm{i}: native {:#034x} kagami {:#034x}", nf.xmm[i], kf.xmm[i]));
        }
    }
    let mut i = 0;
    let mut shown = 0;
    while i < DATA_SIZE {
        if n.data[i] != k.data[i] {
            let start = i & !15;
            if shown < 4 {
                out.push(format!(
                    "data[{:#x}] ({:#x}): native {} kagami {}",
                    start,
                    DATA + start as u64,
                    hex(&n.data[start..start + 16]),
                    hex(&k.data[start..start + 16])
                ));
            }
            shown += 1;
            i = start + 16;
        } else {
            i += 1;
        }
    }
    if shown > 4 {
        out.push(format!("data: {} more differing 16-byte lines", shown - 4));
    }
    out
}

/// GPRs written by a 32-bit BSF/BSR. With a zero source the SDM leaves the
/// destination undefined; Intel processors zero-extend it as for any 32-bit
/// write, AMD processors leave all 64 bits unchanged. The low half is always
/// compared; the upper half may be either the old value or zero.
fn zero_source_bit_scan_dests(s: &Stream, until: Option<usize>) -> u16 {
    use iced_x86::Code;
    let n = until.unwrap_or(s.insns.len());
    s.insns[..n]
        .iter()
        .filter(|i| matches!(i.code(), Code::Bsf_r32_rm32 | Code::Bsr_r32_rm32))
        .fold(0, |m, i| m | 1 << i.op0_register().full_register().number())
}

fn f80_hex(r: &[u8; 10]) -> String {
    format!(
        "{:04x}:{:016x}",
        u16::from_le_bytes([r[8], r[9]]),
        u64::from_le_bytes(r[..8].try_into().unwrap())
    )
}

/// Two 80-bit values with the same sign whose magnitudes (exponent and
/// fraction read as one integer) differ by at most two.
fn within_two_ulps(a: &[u8], b: &[u8]) -> bool {
    let v = |x: &[u8]| {
        let mut w = [0u8; 16];
        w[..10].copy_from_slice(&x[..10]);
        u128::from_le_bytes(w)
    };
    let (a, b) = (v(a), v(b));
    let sign = 1u128 << 79;
    if a & sign != b & sign {
        return false;
    }
    // Exponent above the significand with its explicit integer bit: stepping
    // from 0xffff…ff to the next binade carries into the exponent and
    // re-sets the integer bit, so compare exponent*2^63 + fraction.
    let mag = |x: u128| ((x >> 64) & 0x7fff) << 63 | (x & ((1 << 63) - 1));
    mag(a).abs_diff(mag(b)) <= 2
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

fn flag_names(v: u64) -> String {
    let names = [
        (f::CF, "CF"),
        (f::PF, "PF"),
        (f::AF, "AF"),
        (f::ZF, "ZF"),
        (f::SF, "SF"),
        (f::DF, "DF"),
        (f::OF, "OF"),
    ];
    let s: Vec<&str> = names.iter().filter(|(b, _)| v & b != 0).map(|(_, n)| *n).collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join("|")
    }
}

/// The stream as bytes and Intel-syntax disassembly.
pub fn listing(s: &Stream) -> String {
    let mut out = String::new();
    let mut fmt = IntelFormatter::new();
    let mut off = 0usize;
    let _ = writeln!(out, "  bytes: {}", hex(&s.bytes));
    for insn in &s.insns {
        let mut text = String::new();
        fmt.format(insn, &mut text);
        let _ = writeln!(
            out,
            "  {:#x}  {:<36} {}   ; {:?}",
            insn.ip(),
            hex(&s.bytes[off..off + insn.len()]),
            text,
            insn.code()
        );
        off += insn.len();
    }
    out
}

/// The starting registers, for the report.
pub fn input_summary(s: &Stream) -> String {
    let mut out = String::from("  input:");
    for (i, name) in GPR_NAMES.iter().enumerate() {
        if i % 4 == 0 {
            out.push_str("\n   ");
        }
        let _ = write!(out, " {:>3}={:016x}", name, s.input.gpr[i]);
    }
    let fx = &s.input.fx;
    let _ = write!(
        out,
        "\n    rflags={:#x} fcw={:#06x} fsw={:#06x} ftw={:#04x} mxcsr={:#010x}",
        s.input.rflags, fx.fcw, fx.fsw, fx.ftw, fx.mxcsr
    );
    let _ = write!(out, "\n    st(0..7):");
    for (i, r) in fx.st.iter().enumerate() {
        if i % 4 == 0 {
            out.push_str("\n     ");
        }
        let _ = write!(out, " {}", f80_hex(r));
    }
    out
}
