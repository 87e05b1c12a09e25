//! Shifts and rotates in 16-, 32- and 64-bit modes: counts 0, 1, the operand
//! size, RCL/RCR by 9 and 17, SHLD/SHRD, and the flags each defines.

mod common;
use common::*;
use iced_x86::code_asm::*;
use kagami_cpu::state::flags::{CF, OF, PF, SF, ZF};
use kagami_cpu::Cpu;

const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;

fn set_cf(cpu: &mut Cpu, on: bool) {
    cpu.s.set_flag_bits(CF, if on { CF } else { 0 });
}

#[test]
fn shl_shr_sar_flags_all_modes() {
    for bits in MODES {
        let mut c = machine(bits);
        // SHL AL,1 of 80h: result 0, CF=1, OF=1, ZF=1.
        c.s.gpr[RAX] = 0x80;
        exec(&mut c, |a| a.shl(al, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xff, 0);
        assert_eq!(c.s.flags() & (CF | OF | ZF | SF), CF | OF | ZF, "{bits}");
        // SHR AX,1 of 8001h: 4000h, CF=1, OF=1 (the original MSB).
        c.s.gpr[RAX] = 0x8001;
        exec(&mut c, |a| a.shr(ax, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0x4000);
        assert_eq!(c.s.flags() & (CF | OF | ZF | SF), CF | OF);
        // SAR AL,1 of 81h: C0h, CF=1, OF=0, SF=1.
        c.s.gpr[RAX] = 0x81;
        exec(&mut c, |a| a.sar(al, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xff, 0xc0);
        assert_eq!(c.s.flags() & (CF | OF | ZF | SF), CF | SF);
        // SAR by more than the size fills with the sign, CF = sign.
        c.s.gpr[RAX] = 0x8000;
        c.s.gpr[RCX] = 20;
        exec(&mut c, |a| a.sar(ax, cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0xffff);
        assert!(c.s.cf());
        // SHL AX,16: 0, CF = bit 0 of the original.
        c.s.gpr[RAX] = 0x0001;
        exec(&mut c, |a| a.shl(ax, 16).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0);
        assert!(c.s.cf() && c.s.zf());
        // SHR EAX,31.
        c.s.gpr[RAX] = 0x8000_0000;
        exec(&mut c, |a| a.shr(eax, 31).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 1);
        assert!(!c.s.cf());
    }
}

#[test]
fn count_zero_keeps_flags_and_count_is_masked() {
    for bits in MODES {
        let mut c = machine(bits);
        // Set CF, ZF, SF, OF, PF; SHL by 0 and by 32 (masked to 0) keep them.
        c.s.set_flag_bits(CF | ZF | SF | OF | PF, CF | ZF | SF | OF | PF);
        c.s.gpr[RAX] = 0x1234_5678;
        exec(&mut c, |a| a.shl(eax, 0).unwrap()).unwrap();
        c.s.gpr[RCX] = 32;
        exec(&mut c, |a| a.shl(eax, cl).unwrap()).unwrap();
        exec(&mut c, |a| a.rcl(eax, cl).unwrap()).unwrap();
        exec(&mut c, |a| a.ror(ax, cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x1234_5678, "{bits}");
        assert_eq!(c.s.flags() & (CF | ZF | SF | OF | PF), CF | ZF | SF | OF | PF);
    }
    // 64-bit operands mask to 6 bits: SHL RAX,32 shifts; by 64 it does not.
    let mut c = machine(64);
    c.s.gpr[RAX] = 0x1_0000_0001;
    exec(&mut c, |a| a.shl(rax, 32).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x1_0000_0000);
    assert!(c.s.cf());
    c.s.gpr[RCX] = 64;
    exec(&mut c, |a| a.shr(rax, cl).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x1_0000_0000);
    // A 32-bit destination is written (zero-extended) even with count 0.
    c.s.gpr[RAX] = 0xffff_ffff_0000_0001;
    c.s.gpr[RCX] = 0;
    exec(&mut c, |a| a.shl(eax, cl).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 1);
}

#[test]
fn rotates() {
    for bits in MODES {
        let mut c = machine(bits);
        // ROL AL,1 of 80h: 01h, CF=1, OF = MSB ^ CF = 1.
        c.s.gpr[RAX] = 0x80;
        exec(&mut c, |a| a.rol(al, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 1);
        assert_eq!(c.s.flags() & (CF | OF), CF | OF);
        // ROR AX,4.
        c.s.gpr[RAX] = 0x1234;
        exec(&mut c, |a| a.ror(ax, 4).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x4123);
        assert!(!c.s.cf());
        // ROL AL,8: value unchanged but CF = LSB is still set.
        c.s.gpr[RAX] = 0x81;
        set_cf(&mut c, false);
        exec(&mut c, |a| a.rol(al, 8).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x81);
        assert!(c.s.cf());
        // RCL AL,1 with CF=1: 80h -> 01h, CF=1, OF = 0 ^ 1.
        c.s.gpr[RAX] = 0x80;
        set_cf(&mut c, true);
        exec(&mut c, |a| a.rcl(al, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x01);
        assert_eq!(c.s.flags() & (CF | OF), CF | OF);
        // RCR AL,1 with CF=1: 01h -> 80h, CF=1, OF = MSB(orig) ^ CF = 1.
        c.s.gpr[RAX] = 0x01;
        set_cf(&mut c, true);
        exec(&mut c, |a| a.rcr(al, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x80);
        assert_eq!(c.s.flags() & (CF | OF), CF | OF);
        // RCL by 9 (8-bit) and 17 (16-bit) is the identity, CF included.
        for cf in [false, true] {
            c.s.gpr[RAX] = 0x5aa5;
            set_cf(&mut c, cf);
            exec(&mut c, |a| a.rcl(al, 9).unwrap()).unwrap();
            exec(&mut c, |a| a.rcr(ax, 17).unwrap()).unwrap();
            assert_eq!(c.s.gpr[RAX], 0x5aa5);
            assert_eq!(c.s.cf(), cf);
        }
        // RCL AL,10 == RCL AL,1.
        c.s.gpr[RAX] = 0x80;
        set_cf(&mut c, false);
        exec(&mut c, |a| a.rcl(al, 10).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        assert!(c.s.cf());
        // RCR EAX,1 of 1 with CF=0 -> 0, CF=1.
        c.s.gpr[RAX] = 1;
        set_cf(&mut c, false);
        exec(&mut c, |a| a.rcr(eax, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        assert!(c.s.cf());
    }
    let mut c = machine(64);
    c.s.gpr[RAX] = 0x8000_0000_0000_0001;
    exec(&mut c, |a| a.rol(rax, 4).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x18);
    set_cf(&mut c, true);
    exec(&mut c, |a| a.rcr(rax, 4).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x1000_0000_0000_0001);
    assert!(c.s.cf()); // bit 3 of 18h
}

#[test]
fn shld_shrd() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RAX] = 0x1234_5678;
        c.s.gpr[RDX] = 0x9abc_def0;
        exec(&mut c, |a| a.shld(eax, edx, 8).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x3456_789a);
        assert!(!c.s.cf()); // last bit out: bit 24 of 12345678h = 0
        c.s.gpr[RAX] = 0x1234_5678;
        exec(&mut c, |a| a.shrd(eax, edx, 8).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xf012_3456);
        assert!(!c.s.cf()); // bit 7 of 78h
        assert!(c.s.sf());
        // SHRD by 1: OF = sign change.
        c.s.gpr[RAX] = 0x0000_0002;
        c.s.gpr[RDX] = 1;
        exec(&mut c, |a| a.shrd(eax, edx, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x8000_0001);
        assert!(c.s.of() && !c.s.cf());
        // 16-bit count > 16: the P6 model shifts dest:src:dest.
        c.s.gpr[RAX] = 0x1234;
        c.s.gpr[RDX] = 0xabcd;
        c.s.gpr[RCX] = 20;
        exec(&mut c, |a| a.shld(ax, dx, cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0xbcd1);
        assert!(!c.s.cf()); // bit 12 of ABCDh
        c.s.gpr[RAX] = 0x1234;
        exec(&mut c, |a| a.shrd(ax, dx, cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0x4abc);
        assert!(c.s.cf()); // bit 3 of ABCDh
                           // Count 0: nothing changes.
        set_cf(&mut c, true);
        c.s.gpr[RCX] = 0;
        c.s.gpr[RAX] = 0x1234;
        exec(&mut c, |a| a.shld(ax, dx, cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x1234);
        assert!(c.s.cf());
    }
    let mut c = machine(64);
    c.s.gpr[RAX] = 0x0123_4567_89ab_cdef;
    c.s.gpr[RDX] = 0xfedc_ba98_7654_3210;
    exec(&mut c, |a| a.shld(rax, rdx, 36).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x89ab_cdef_fedc_ba98 << 4 | 0x7);
}

#[test]
fn shift_memory_operand_runs_through_executor() {
    for bits in MODES {
        let mut c = machine(bits);
        poke(&c, DATA + 0x10, &0x8001u16.to_le_bytes());
        run(&mut c, |a| {
            if bits == 16 {
                a.shl(word_ptr(0x10), 1).unwrap();
                a.rcr(word_ptr(0x10), 1).unwrap();
                a.ror(word_ptr(0x10), 4).unwrap();
            } else {
                a.shl(word_ptr(DATA + 0x10), 1).unwrap();
                a.rcr(word_ptr(DATA + 0x10), 1).unwrap();
                a.ror(word_ptr(DATA + 0x10), 4).unwrap();
            }
        });
        // 8001h -> SHL 0002h CF=1 -> RCR 8001h CF=0 -> ROR 4 1800h.
        assert_eq!(peek(&c, DATA + 0x10, 2), vec![0x00, 0x18], "{bits}");
    }
}

/// The SDM's bit-at-a-time pseudocode for the seven shifts/rotates, as an
/// independent reference: returns (result, CF, OF if defined).
fn sdm_reference(op: u8, bits: u32, dest: u64, count: u32, cf_in: bool) -> (u64, bool, Option<bool>) {
    let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let msb = |v: u64| (v >> (bits - 1)) & 1 != 0;
    let masked = count & if bits == 64 { 63 } else { 31 };
    let mut d = dest & m;
    let mut cf = cf_in;
    let mut of = None;
    match op {
        0 | 1 => {
            for _ in 0..masked % bits {
                d = if op == 0 {
                    ((d << 1) | msb(d) as u64) & m
                } else {
                    (d >> 1) | ((d & 1) << (bits - 1))
                };
            }
            if masked != 0 {
                cf = if op == 0 { d & 1 != 0 } else { msb(d) };
            }
            if masked == 1 {
                of = Some(if op == 0 {
                    msb(d) ^ cf
                } else {
                    msb(d) ^ ((d >> (bits - 2)) & 1 != 0)
                });
            }
        }
        2 | 3 => {
            let t = match bits {
                8 => masked % 9,
                16 => masked % 17,
                _ => masked,
            };
            if op == 3 && masked == 1 {
                of = Some(msb(d) ^ cf);
            }
            for _ in 0..t {
                if op == 2 {
                    let out = msb(d);
                    d = ((d << 1) | cf as u64) & m;
                    cf = out;
                } else {
                    let out = d & 1 != 0;
                    d = (d >> 1) | ((cf as u64) << (bits - 1));
                    cf = out;
                }
            }
            if op == 2 && masked == 1 {
                of = Some(msb(d) ^ cf);
            }
        }
        _ => {
            let orig = d;
            for _ in 0..masked {
                match op {
                    4 => {
                        cf = msb(d);
                        d = (d << 1) & m;
                    }
                    5 => {
                        cf = d & 1 != 0;
                        d >>= 1;
                    }
                    _ => {
                        cf = d & 1 != 0;
                        d = (d >> 1) | (d & (1 << (bits - 1)));
                    }
                }
            }
            if masked == 1 {
                of = Some(match op {
                    4 => msb(d) ^ cf,
                    5 => msb(orig),
                    _ => false,
                });
            }
        }
    }
    (d, cf, of)
}

#[test]
fn shifts_match_sdm_pseudocode_on_random_operands() {
    let mut c = machine(64);
    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        st
    };
    for n in 0..6000u32 {
        let op = (n % 7) as u8;
        let bits = 8u32 << ((n / 7) % 4);
        let count = match next() % 4 {
            0 => (next() % 4) as u32,
            1 => bits + (next() % 3) as u32 - 1,
            _ => (next() % 80) as u32,
        };
        let v = next();
        let cf_in = next() & 1 != 0;
        c.s.gpr[RAX] = v;
        c.s.gpr[RCX] = count as u64;
        set_cf(&mut c, cf_in);
        let before = c.s.flags();
        macro_rules! go {
            ($r:expr) => {
                exec(&mut c, |a| match op {
                    0 => a.rol($r, cl).unwrap(),
                    1 => a.ror($r, cl).unwrap(),
                    2 => a.rcl($r, cl).unwrap(),
                    3 => a.rcr($r, cl).unwrap(),
                    4 => a.shl($r, cl).unwrap(),
                    5 => a.shr($r, cl).unwrap(),
                    _ => a.sar($r, cl).unwrap(),
                })
                .unwrap()
            };
        }
        match bits {
            8 => go!(al),
            16 => go!(ax),
            32 => go!(eax),
            _ => go!(rax),
        }
        let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let (r, cf, of) = sdm_reference(op, bits, v, count, cf_in);
        let what = format!("op {op} bits {bits} value {v:#x} count {count} cf {cf_in}");
        assert_eq!(c.s.gpr[RAX] & m, r, "{what}");
        let masked = count & if bits == 64 { 63 } else { 31 };
        if masked == 0 {
            assert_eq!(c.s.flags(), before, "count 0 keeps flags: {what}");
            continue;
        }
        // CF is undefined for SHL/SHR by at least the operand size.
        if !(matches!(op, 4 | 5) && masked >= bits) {
            assert_eq!(c.s.cf(), cf, "CF: {what}");
        }
        if let Some(of) = of {
            assert_eq!(c.s.of(), of, "OF: {what}");
        }
        if op >= 4 {
            assert_eq!(c.s.zf(), r == 0, "ZF: {what}");
            assert_eq!(c.s.sf(), (r >> (bits - 1)) & 1 != 0, "SF: {what}");
        } else {
            // Rotates leave SF, ZF, AF, PF alone.
            assert_eq!(c.s.flags() & (ZF | SF | PF), before & (ZF | SF | PF), "{what}");
        }
    }
}
