//! Two- and one-operand arithmetic (ADD … CMP, TEST, INC, DEC, NEG, NOT) and
//! the decimal adjusts, in 16-, 32- and 64-bit modes.

mod common;
use common::*;
use iced_x86::code_asm::*;
use kagami_cpu::state::flags::{AF, CF, OF, PF, SF, ZF};
use kagami_cpu::{Cpu, CpuModel, Exception};

const RAX: usize = 0;
const RCX: usize = 1;

fn f(c: &Cpu) -> u64 {
    c.s.flags() & (CF | PF | AF | ZF | SF | OF)
}

#[test]
fn add_adc_sub_sbb_flags() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RAX] = 0x7f;
        exec(&mut c, |a| a.add(al, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x80);
        assert_eq!(f(&c), OF | SF | AF);
        // ADC with CF=1: FFFFh + 0 + 1 = 0, CF=1, ZF=1, AF=1, PF=1.
        c.s.set_flag_bits(CF, CF);
        c.s.gpr[RAX] = 0xffff;
        exec(&mut c, |a| a.adc(ax, 0).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        assert_eq!(f(&c), CF | ZF | AF | PF);
        // SBB with CF=1: 0 - 0 - 1 = FFFFFFFFh, CF=1.
        exec(&mut c, |a| a.sbb(eax, 0).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xffff_ffff);
        assert_eq!(f(&c), CF | SF | AF | PF);
        // SUB: 80000000h - 1 overflows.
        c.s.gpr[RAX] = 0x8000_0000;
        exec(&mut c, |a| a.sub(eax, 1).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x7fff_ffff);
        assert_eq!(f(&c), OF | AF | PF);
        // CMP does not write; Jcc-style conditions after it.
        c.s.gpr[RCX] = 5;
        exec(&mut c, |a| a.cmp(ecx, 7).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RCX], 5);
        assert!(c.s.cond(0x2) && c.s.cond(0xc)); // B, L
                                                 // Logic ops clear CF and OF.
        c.s.set_flag_bits(CF | OF, CF | OF);
        exec(&mut c, |a| a.and(ecx, 4).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RCX], 4);
        assert_eq!(f(&c), 0);
        exec(&mut c, |a| a.test(cl, 3).unwrap()).unwrap();
        assert_eq!(f(&c), ZF | PF);
        exec(&mut c, |a| a.xor(ecx, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RCX], 0);
        exec(&mut c, |a| a.or(cx, 0x8000).unwrap()).unwrap();
        assert_eq!(f(&c), SF | PF);
    }
    let mut c = machine(64);
    c.s.gpr[RAX] = 0xffff_ffff_ffff_ffff;
    exec(&mut c, |a| a.add(eax, 1).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0, "32-bit result zero-extends");
    assert!(c.s.cf() && c.s.zf());
    c.s.gpr[RAX] = i64::MAX as u64;
    exec(&mut c, |a| a.add(rax, 1).unwrap()).unwrap();
    assert!(c.s.of() && c.s.sf() && !c.s.cf());
    exec(&mut c, |a| a.adc(rax, -1).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], i64::MAX as u64);
    assert!(c.s.cf() && c.s.of());
}

#[test]
fn inc_dec_neg_not() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.set_flag_bits(CF, CF);
        c.s.gpr[RAX] = 0x7fff;
        exec(&mut c, |a| a.inc(ax).unwrap()).unwrap();
        assert_eq!(f(&c), CF | OF | SF | AF | PF, "INC keeps CF");
        c.s.set_flag_bits(CF, 0);
        exec(&mut c, |a| a.dec(ax).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x7fff);
        assert_eq!(f(&c), OF | AF | PF);
        exec(&mut c, |a| a.neg(al).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x7f01);
        assert!(c.s.cf());
        c.s.gpr[RAX] = 0;
        exec(&mut c, |a| a.neg(eax).unwrap()).unwrap();
        assert!(!c.s.cf() && c.s.zf());
        let before = c.s.flags();
        exec(&mut c, |a| a.not(eax).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xffff_ffff);
        assert_eq!(c.s.flags(), before, "NOT changes no flag");
        // Memory read-modify-write.
        let off = if bits == 16 { 0 } else { DATA };
        poke(&c, DATA, &[0xff, 0x00]);
        run(&mut c, |a| {
            a.inc(word_ptr(off)).unwrap();
            a.add(byte_ptr(off + 1), 0x10).unwrap();
        });
        assert_eq!(peek(&c, DATA, 2), vec![0x00, 0x11]);
    }
}

#[test]
fn decimal_adjusts() {
    for bits in [16, 32] {
        let mut c = machine(bits);
        // 79h + 35h = AEh -> DAA -> 14h, CF=1.
        c.s.gpr[RAX] = 0x79;
        exec(&mut c, |a| a.add(al, 0x35).unwrap()).unwrap();
        exec(&mut c, |a| a.daa().unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x14);
        assert!(c.s.cf() && c.s.flags() & AF != 0);
        // 35h - 47h = EEh -> DAS -> 88h, CF=1.
        c.s.gpr[RAX] = 0x35;
        exec(&mut c, |a| a.sub(al, 0x47).unwrap()).unwrap();
        exec(&mut c, |a| a.das().unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x88);
        assert!(c.s.cf());
        // AAA: AX = 0009h + 8 = 0011h (AF) -> 0107h.
        c.s.gpr[RAX] = 0x09;
        exec(&mut c, |a| a.add(al, 8).unwrap()).unwrap();
        exec(&mut c, |a| a.aaa().unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x0107);
        assert!(c.s.cf());
        // AAA on AL = FAh carries into AH (386+ AX + 106h form).
        c.s.gpr[RAX] = 0x00fa;
        c.s.set_flag_bits(AF, 0);
        exec(&mut c, |a| a.aaa().unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x0200);
        // AAS: AX = 0102h - 5 -> AF -> 0007h.
        c.s.gpr[RAX] = 0x0102;
        exec(&mut c, |a| a.sub(al, 5).unwrap()).unwrap();
        exec(&mut c, |a| a.aas().unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x0007);
        assert!(c.s.cf());
        // AAM 10 / AAD 10 and other bases.
        c.s.gpr[RAX] = 63;
        exec(&mut c, |a| a.aam(10).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x0603);
        exec(&mut c, |a| a.aad(10).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 63);
        exec(&mut c, |a| a.aam(16).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x030f);
        c.s.gpr[RAX] = 0x0000;
        exec(&mut c, |a| a.aam(7).unwrap()).unwrap();
        assert!(c.s.zf());
        // AAM 0 raises #DE and changes nothing (x86-64 model).
        c.s.gpr[RAX] = 0x1234;
        c.s.set_flag_bits(ZF, ZF);
        assert_eq!(exec(&mut c, |a| a.aam(0).unwrap()), Err(Exception::DivideError));
        assert_eq!(c.s.gpr[RAX], 0x1234);
        assert!(c.s.zf());
        // SALC.
        c.s.set_flag_bits(CF, CF);
        exec(&mut c, |a| a.db(&[0xd6]).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x12ff);
        c.s.set_flag_bits(CF, 0);
        exec(&mut c, |a| a.db(&[0xd6]).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x1200);
    }
    // On the 80286, AAM 0 sets SF/ZF/PF from AL >> 1 before the #DE.
    let mut c = machine(16);
    c.model = CpuModel::I80286;
    c.s.gpr[RAX] = 0x00ff;
    c.s.set_flag_bits(ZF | SF | PF, ZF | SF | PF);
    assert_eq!(exec(&mut c, |a| a.aam(0).unwrap()), Err(Exception::DivideError));
    assert_eq!(c.s.flags() & (ZF | SF | PF), 0);
}

#[test]
fn bcd_is_invalid_in_64_bit_mode() {
    // iced does not decode them there; the dispatcher turns that into #UD.
    let mut c = machine(64);
    for op in [0x27u8, 0x2f, 0x37, 0x3f, 0xd6] {
        assert_eq!(exec(&mut c, |a| a.db(&[op]).unwrap()), Err(Exception::InvalidOpcode));
    }
}
