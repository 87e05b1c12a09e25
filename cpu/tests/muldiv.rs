//! MUL, IMUL (all forms), DIV, IDIV in 16-, 32- and 64-bit modes, with the
//! overflow and divide-error cases.

mod common;
use common::*;
use iced_x86::code_asm::*;
use kagami_cpu::Exception;

const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RBX: usize = 3;

#[test]
fn mul_sets_cf_of_when_high_half_is_used() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RAX] = 0x80;
        c.s.gpr[RCX] = 2;
        exec(&mut c, |a| a.mul(cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x100);
        assert!(c.s.cf() && c.s.of());
        c.s.gpr[RAX] = 0x7f;
        exec(&mut c, |a| a.mul(cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xfe);
        assert!(!c.s.cf() && !c.s.of());
        c.s.gpr[RAX] = 0xffff;
        c.s.gpr[RDX] = 0x5555;
        c.s.gpr[RCX] = 0xffff;
        exec(&mut c, |a| a.mul(cx).unwrap()).unwrap();
        assert_eq!((c.s.gpr[RDX], c.s.gpr[RAX]), (0xfffe, 0x0001));
        assert!(c.s.cf());
        c.s.gpr[RAX] = 0xffff_ffff;
        c.s.gpr[RCX] = 0xffff_ffff;
        exec(&mut c, |a| a.mul(ecx).unwrap()).unwrap();
        assert_eq!((c.s.gpr[RDX], c.s.gpr[RAX]), (0xffff_fffe, 1));
    }
    let mut c = machine(64);
    c.s.gpr[RAX] = u64::MAX;
    c.s.gpr[RCX] = 3;
    exec(&mut c, |a| a.mul(rcx).unwrap()).unwrap();
    assert_eq!((c.s.gpr[RDX], c.s.gpr[RAX]), (2, u64::MAX - 2));
    assert!(c.s.of());
}

#[test]
fn imul_forms_and_overflow() {
    for bits in MODES {
        let mut c = machine(bits);
        // One-operand: AL * CL signed: -128 * -1 = 128 does not fit AL.
        c.s.gpr[RAX] = 0x80;
        c.s.gpr[RCX] = 0xff;
        exec(&mut c, |a| a.imul(cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0x0080);
        assert!(c.s.cf() && c.s.of());
        // -2 * 3 = -6 fits: AH is the sign extension.
        c.s.gpr[RAX] = 0xfe;
        c.s.gpr[RCX] = 3;
        exec(&mut c, |a| a.imul(cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0xfffa);
        assert!(!c.s.cf() && !c.s.of());
        // Two-operand 16-bit: 0x4000 * 2 overflows into the sign bit.
        c.s.gpr[RBX] = 0x4000;
        c.s.gpr[RCX] = 2;
        exec(&mut c, |a| a.imul_2(bx, cx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RBX] & 0xffff, 0x8000);
        assert!(c.s.of());
        // Three-operand with an 8-bit immediate: -3 * 100.
        c.s.gpr[RCX] = 0xffff_fffd;
        exec(&mut c, |a| a.imul_3(ebx, ecx, 100).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RBX], (-300i32) as u32 as u64);
        assert!(!c.s.of());
        // 32-bit one-operand: EDX:EAX.
        c.s.gpr[RAX] = 0x8000_0000;
        c.s.gpr[RCX] = 2;
        exec(&mut c, |a| a.imul(ecx).unwrap()).unwrap();
        assert_eq!((c.s.gpr[RDX], c.s.gpr[RAX]), (0xffff_ffff, 0));
        assert!(c.s.cf());
    }
    let mut c = machine(64);
    c.s.gpr[RCX] = 1 << 62;
    exec(&mut c, |a| a.imul_3(rbx, rcx, 2).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RBX], 1 << 63);
    assert!(c.s.of() && c.s.cf());
    c.s.gpr[RCX] = (-(1i64 << 62)) as u64;
    exec(&mut c, |a| a.imul_3(rbx, rcx, 2).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RBX], 1 << 63);
    assert!(!c.s.of(), "-2^63 fits");
    c.s.gpr[RAX] = i64::MIN as u64;
    c.s.gpr[RCX] = u64::MAX;
    exec(&mut c, |a| a.imul(rcx).unwrap()).unwrap();
    assert_eq!((c.s.gpr[RDX], c.s.gpr[RAX]), (0, 1 << 63));
    assert!(c.s.of());
}

#[test]
fn div_and_divide_errors() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RAX] = 1000;
        c.s.gpr[RCX] = 7;
        exec(&mut c, |a| a.div(cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], (6 << 8) | 142);
        // Quotient too big for AL.
        c.s.gpr[RAX] = 0x100;
        c.s.gpr[RCX] = 1;
        assert_eq!(exec(&mut c, |a| a.div(cl).unwrap()), Err(Exception::DivideError));
        assert_eq!(c.s.gpr[RAX], 0x100, "no state change on #DE");
        // Divide by zero.
        c.s.gpr[RCX] = 0;
        assert_eq!(exec(&mut c, |a| a.div(cx).unwrap()), Err(Exception::DivideError));
        // 32-bit.
        c.s.gpr[RDX] = 1;
        c.s.gpr[RAX] = 5;
        c.s.gpr[RCX] = 2;
        exec(&mut c, |a| a.div(ecx).unwrap()).unwrap();
        assert_eq!((c.s.gpr[RAX], c.s.gpr[RDX]), (0x8000_0002, 1));
        c.s.gpr[RDX] = 2;
        assert_eq!(exec(&mut c, |a| a.div(ecx).unwrap()), Err(Exception::DivideError));
    }
    let mut c = machine(64);
    c.s.gpr[RDX] = 1;
    c.s.gpr[RAX] = 0;
    c.s.gpr[RCX] = 2;
    exec(&mut c, |a| a.div(rcx).unwrap()).unwrap();
    assert_eq!((c.s.gpr[RAX], c.s.gpr[RDX]), (1 << 63, 0));
}

#[test]
fn idiv_most_negative_quotient_and_overflow() {
    for bits in MODES {
        let mut c = machine(bits);
        // -256 / 2 = -128: valid.
        c.s.gpr[RAX] = 0xff00;
        c.s.gpr[RCX] = 2;
        exec(&mut c, |a| a.idiv(cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 0x0080);
        // 256 / 2 = 128: #DE.
        c.s.gpr[RAX] = 0x0100;
        assert_eq!(exec(&mut c, |a| a.idiv(cl).unwrap()), Err(Exception::DivideError));
        // -128 / -1 (AX = FF80h) = 128: #DE.
        c.s.gpr[RAX] = 0xff80;
        c.s.gpr[RCX] = 0xff;
        assert_eq!(exec(&mut c, |a| a.idiv(cl).unwrap()), Err(Exception::DivideError));
        // Remainder takes the dividend's sign: -7 / 2 = -3 rem -1.
        c.s.gpr[RDX] = 0xffff;
        c.s.gpr[RAX] = 0xfff9;
        c.s.gpr[RCX] = 2;
        exec(&mut c, |a| a.idiv(cx).unwrap()).unwrap();
        assert_eq!((c.s.gpr[RAX] & 0xffff, c.s.gpr[RDX] & 0xffff), (0xfffd, 0xffff));
        // -2^31 / -1 in 32 bits: #DE.
        c.s.gpr[RDX] = 0xffff_ffff;
        c.s.gpr[RAX] = 0x8000_0000;
        c.s.gpr[RCX] = 0xffff_ffff;
        assert_eq!(exec(&mut c, |a| a.idiv(ecx).unwrap()), Err(Exception::DivideError));
        // -2^32 / 2 = -2^31: valid.
        c.s.gpr[RDX] = 0xffff_ffff;
        c.s.gpr[RAX] = 0;
        c.s.gpr[RCX] = 2;
        exec(&mut c, |a| a.idiv(ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x8000_0000);
    }
    let mut c = machine(64);
    // RDX:RAX = -2^127 / -1: the one case an i128 division itself overflows.
    c.s.gpr[RDX] = 1 << 63;
    c.s.gpr[RAX] = 0;
    c.s.gpr[RCX] = u64::MAX;
    assert_eq!(exec(&mut c, |a| a.idiv(rcx).unwrap()), Err(Exception::DivideError));
    // -2^64 / 2 = -2^63: valid.
    c.s.gpr[RDX] = u64::MAX;
    c.s.gpr[RAX] = 0;
    c.s.gpr[RCX] = 2;
    exec(&mut c, |a| a.idiv(rcx).unwrap()).unwrap();
    assert_eq!((c.s.gpr[RAX], c.s.gpr[RDX]), (1 << 63, 0));
}

#[test]
fn divide_error_is_delivered_in_real_mode() {
    let mut c = machine(16);
    // IVT entry 0 -> 0000:0500, where a HLT waits.
    poke(&c, 0, &[0x00, 0x05, 0x00, 0x00]);
    poke(&c, 0x500, &[0xf4]);
    c.s.gpr[RAX] = 5;
    c.s.gpr[RCX] = 0;
    run(&mut c, |a| a.div(cl).unwrap());
    assert_eq!((c.s.segs[1].selector, c.s.rip), (0, 0x501));
    // The pushed IP is that of the DIV itself (a fault).
    let top = c.s.gpr[4] & 0xffff;
    let ip = peek(&c, c.s.segs[2].base + top, 2);
    assert_eq!(ip, vec![0, 0]);
}

#[test]
fn random_operands_match_wide_arithmetic() {
    let mut c = machine(64);
    let mut st = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        match st % 5 {
            0 => 0,
            1 => u64::MAX,
            2 => 1u64 << (st >> 58),
            _ => st,
        }
    };
    for n in 0..8000u32 {
        let size = 1usize << (n % 4);
        let bits = 8 * size as u32;
        let m = if size == 8 { u64::MAX } else { (1u64 << bits) - 1 };
        let sx = |v: u64| (((v as u128) << (128 - bits)) as i128) >> (128 - bits);
        let (a, d, s) = (next(), next(), next());
        c.s.gpr[RAX] = a;
        c.s.gpr[RDX] = d;
        c.s.gpr[RCX] = s;
        let signed = n % 8 >= 4;
        let divide = n % 16 >= 8;
        let r = match (size, signed, divide) {
            (1, false, false) => exec(&mut c, |x| x.mul(cl).unwrap()),
            (2, false, false) => exec(&mut c, |x| x.mul(cx).unwrap()),
            (4, false, false) => exec(&mut c, |x| x.mul(ecx).unwrap()),
            (8, false, false) => exec(&mut c, |x| x.mul(rcx).unwrap()),
            (1, true, false) => exec(&mut c, |x| x.imul(cl).unwrap()),
            (2, true, false) => exec(&mut c, |x| x.imul(cx).unwrap()),
            (4, true, false) => exec(&mut c, |x| x.imul(ecx).unwrap()),
            (8, true, false) => exec(&mut c, |x| x.imul(rcx).unwrap()),
            (1, false, true) => exec(&mut c, |x| x.div(cl).unwrap()),
            (2, false, true) => exec(&mut c, |x| x.div(cx).unwrap()),
            (4, false, true) => exec(&mut c, |x| x.div(ecx).unwrap()),
            (8, false, true) => exec(&mut c, |x| x.div(rcx).unwrap()),
            (1, true, true) => exec(&mut c, |x| x.idiv(cl).unwrap()),
            (2, true, true) => exec(&mut c, |x| x.idiv(cx).unwrap()),
            (4, true, true) => exec(&mut c, |x| x.idiv(ecx).unwrap()),
            _ => exec(&mut c, |x| x.idiv(rcx).unwrap()),
        };
        let what = format!("size {size} signed {signed} divide {divide} a {a:#x} d {d:#x} s {s:#x}");
        // Wide operands: the accumulator pair and the source.
        let (lo_in, hi_in) = if size == 1 { (a & 0xff, (a >> 8) & 0xff) } else { (a & m, d & m) };
        let src = s & m;
        let (lo, hi, ok, ovf) = if !divide && signed {
            let p = sx(lo_in) * sx(src);
            let lo = p as u64 & m;
            (lo, (p >> bits) as u64 & m, true, p != sx(lo))
        } else if !divide {
            let p = (lo_in as u128) * (src as u128);
            (p as u64 & m, (p >> bits) as u64 & m, true, p >> bits != 0)
        } else if signed {
            // The 2*bits-wide dividend, sign-extended to i128.
            let wide = (hi_in as u128) << bits | lo_in as u128;
            let n = ((wide << (128 - 2 * bits)) as i128) >> (128 - 2 * bits);
            let dv = sx(src);
            match n.checked_div(dv) {
                Some(q) if q >= -(1i128 << (bits - 1)) && q < (1i128 << (bits - 1)) => (q as u64 & m, (n % dv) as u64 & m, true, false),
                _ => (0, 0, false, false),
            }
        } else {
            let n = (hi_in as u128) << bits | lo_in as u128;
            match n.checked_div(src as u128) {
                Some(q) if q <= m as u128 => (q as u64, (n % src as u128) as u64, true, false),
                _ => (0, 0, false, false),
            }
        };
        if !ok {
            assert_eq!(r, Err(Exception::DivideError), "{what}");
            assert_eq!((c.s.gpr[RAX], c.s.gpr[RDX]), (a, d), "{what}");
            continue;
        }
        r.unwrap();
        if size == 1 {
            assert_eq!(c.s.gpr[RAX], (a & !0xffff) | lo | (hi << 8), "{what}");
        } else {
            let keep = if size == 2 { !0xffff } else { 0 };
            assert_eq!(c.s.gpr[RAX], (a & keep) | lo, "{what}");
            assert_eq!(c.s.gpr[RDX], (d & keep) | hi, "{what}");
        }
        if !divide {
            assert_eq!((c.s.cf(), c.s.of()), (ovf, ovf), "{what}");
        }
    }
}
