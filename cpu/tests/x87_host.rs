//! Host-differential test of the x87: the same instruction sequence runs on
//! this host's own x87 (inline assembly) and on kagami's interpreter, over
//! edge and random operands, every rounding mode and precision, masked and
//! unmasked exceptions; status word, tag word, every non-empty register,
//! the memory result and ZF/PF/CF must match bit for bit.
//!
//! Sequence: FNINIT; FLDCW cw; FLD m80 b; FLD m80 a; <op>; then the host
//! saves with FNSAVE (non-waiting, so unmasked exceptions stay pending and
//! never trap) and kagami's state is read directly.
//!
//! Only on x86-64 hosts; elsewhere the test says so and does nothing.

#![cfg_attr(not(target_arch = "x86_64"), allow(unused))]

#[cfg(not(target_arch = "x86_64"))]
#[test]
fn x87_host_differential_skipped() {
    eprintln!("SKIPPED: the x87 host-differential tests need an x86-64 host");
}

#[cfg(target_arch = "x86_64")]
mod host {

    use iced_x86::code_asm::*;
    use kagami_cpu::{Cpu, Exit, NullBus};
    use std::arch::asm;

    /// Host run result: FNSAVE image and RFLAGS after the op.
    struct HostOut {
        save: [u8; 108],
        mem: [u8; 16],
        rflags: u64,
    }

    macro_rules! host_op {
    ($name:ident, $op:literal) => {
        fn $name(cw: u16, a: &[u8; 10], b: &[u8; 10], mem: &mut [u8; 16]) -> HostOut {
            let mut save = [0u8; 108];
            let rflags: u64;
            // SAFETY: the asm reads the three input buffers and writes `mem`
            // and `save` (all live for the duration, of sufficient size), and
            // leaves the x87 reinitialised by FNSAVE (empty stack, default
            // control word) as the Rust ABI expects.
            unsafe {
                asm!(
                    "fninit",
                    "fldcw word ptr [{cw}]",
                    "fld tbyte ptr [{b}]",
                    "fld tbyte ptr [{a}]",
                    $op,
                    "fnsave [{save}]",
                    "pushfq",
                    "pop {fl}",
                    "/* {m} */",
                    cw = in(reg) &cw,
                    a = in(reg) a.as_ptr(),
                    b = in(reg) b.as_ptr(),
                    m = in(reg) mem.as_mut_ptr(),
                    save = in(reg) save.as_mut_ptr(),
                    fl = out(reg) rflags,
                    out("rax") _,
                    out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                    out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                );
            }
            HostOut { save, mem: *mem, rflags }
        }
    };
}

    host_op!(h_fadd, "fadd st(0), st(1)");
    host_op!(h_fsub, "fsub st(0), st(1)");
    host_op!(h_fsubr, "fsubr st(0), st(1)");
    host_op!(h_fmul, "fmul st(0), st(1)");
    host_op!(h_fdiv, "fdiv st(0), st(1)");
    host_op!(h_fdivr, "fdivr st(0), st(1)");
    host_op!(h_faddp, "faddp st(1), st(0)");
    host_op!(h_fdivrp, "fdivrp st(1), st(0)");
    host_op!(h_fsubp, "fsubp st(1), st(0)");
    host_op!(h_fsqrt, "fsqrt");
    host_op!(h_fprem, "fprem");
    host_op!(h_fprem1, "fprem1");
    host_op!(h_frndint, "frndint");
    host_op!(h_fscale, "fscale");
    host_op!(h_fxtract, "fxtract");
    host_op!(h_fcom, "fcom st(1)");
    host_op!(h_fucomp, "fucomp st(1)");
    host_op!(h_fcompp, "fcompp");
    host_op!(h_fcomi, "fcomi st(0), st(1)");
    host_op!(h_fucomip, "fucomip st(0), st(1)");
    host_op!(h_ftst, "ftst");
    host_op!(h_fxam, "fxam");
    host_op!(h_fchs, "fchs");
    host_op!(h_fabs, "fabs");
    host_op!(h_fxch, "fxch st(1)");
    host_op!(h_fst32, "fst dword ptr [{m}]");
    host_op!(h_fstp64, "fstp qword ptr [{m}]");
    host_op!(h_fist16, "fist word ptr [{m}]");
    host_op!(h_fistp32, "fistp dword ptr [{m}]");
    host_op!(h_fistp64, "fistp qword ptr [{m}]");
    host_op!(h_fisttp32, "fisttp dword ptr [{m}]");
    host_op!(h_fisttp64, "fisttp qword ptr [{m}]");
    host_op!(h_fbstp, "fbstp tbyte ptr [{m}]");
    host_op!(h_fld32, "fld dword ptr [{m}]");
    host_op!(h_fld64, "fld qword ptr [{m}]");
    host_op!(h_fadd32, "fadd dword ptr [{m}]");
    host_op!(h_fmul64, "fmul qword ptr [{m}]");
    host_op!(h_fidiv32, "fidiv dword ptr [{m}]");
    host_op!(h_fisubr16, "fisubr word ptr [{m}]");
    host_op!(h_fcom64, "fcom qword ptr [{m}]");
    host_op!(h_ficomp32, "ficomp dword ptr [{m}]");
    host_op!(h_fild64, "fild qword ptr [{m}]");
    host_op!(h_fbld, "fbld tbyte ptr [{m}]");
    host_op!(h_fldpi, "fldpi");
    host_op!(h_fldl2e, "fldl2e");
    host_op!(h_fldl2t, "fldl2t");
    host_op!(h_fldlg2, "fldlg2");
    host_op!(h_fldln2, "fldln2");
    host_op!(h_fld1, "fld1");
    host_op!(h_fcmovb, "xor eax, eax\n cmp eax, 1\n fcmovb st(0), st(1)");
    host_op!(h_fcmovnb, "xor eax, eax\n fcmovb st(0), st(1)");
    host_op!(h_fincstp, "fincstp");
    host_op!(h_under_fadd, "ffree st(1)\n fadd st(0), st(1)");
    host_op!(h_under_fst, "ffree st(0)\n fst dword ptr [{m}]");
    host_op!(h_under_fcom, "ffree st(1)\n fcomp st(1)");
    host_op!(
        h_over_fld,
        "fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld1"
    );
    host_op!(h_fisttp16, "fisttp word ptr [{m}]");
    host_op!(h_fist32, "fist dword ptr [{m}]");
    host_op!(h_fild16, "fild word ptr [{m}]");
    host_op!(h_fild32, "fild dword ptr [{m}]");
    host_op!(h_fld80, "fld tbyte ptr [{m}]");
    host_op!(h_fstp80, "fstp tbyte ptr [{m}]");
    host_op!(h_ficom16, "ficom word ptr [{m}]");
    host_op!(h_fsubr32, "fsubr dword ptr [{m}]");
    host_op!(h_fdivr64, "fdivr qword ptr [{m}]");
    host_op!(h_fdiv32, "fdiv dword ptr [{m}]");
    host_op!(h_fisub32, "fisub dword ptr [{m}]");
    host_op!(h_fiadd16, "fiadd word ptr [{m}]");
    host_op!(h_fimul32, "fimul dword ptr [{m}]");
    host_op!(h_fcomp32, "fcomp dword ptr [{m}]");
    host_op!(h_fucompp, "fucompp");
    host_op!(h_fucomi, "fucomi st(0), st(1)");
    host_op!(h_fcomip, "fcomip st(0), st(1)");
    host_op!(h_fsubrp, "fsubrp st(1), st(0)");
    host_op!(h_fmulp, "fmulp st(1), st(0)");
    host_op!(h_fdivp, "fdivp st(1), st(0)");
    host_op!(h_fsub_sti, "fsub st(1), st(0)");
    host_op!(h_fdivr_sti, "fdivr st(1), st(0)");
    host_op!(h_ffreep, "ffreep st(0)");
    host_op!(h_fdecstp, "fdecstp");
    host_op!(h_fst_sti, "fst st(1)");
    host_op!(h_fstp_sti, "fstp st(1)");
    host_op!(h_fld_sti, "fld st(1)");
    host_op!(h_fldz, "fldz");
    host_op!(h_fcmove, "xor eax, eax\n fcmove st(0), st(1)");
    host_op!(h_fcmovnbe, "xor eax, eax\n fcmovnbe st(0), st(1)");
    host_op!(h_fcmovu, "xor eax, eax\n fcmovu st(0), st(1)");
    host_op!(
        h_over_fld32,
        "fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld dword ptr [{m}]"
    );
    host_op!(
        h_over_fsincos,
        "fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fld st(0)\n fxtract"
    );
    host_op!(h_under_fsqrt, "ffree st(0)\n fsqrt");
    host_op!(h_under_fprem, "ffree st(1)\n fprem");
    host_op!(h_under_fxch, "ffree st(1)\n fxch st(1)");
    host_op!(h_under_fistp, "ffree st(0)\n fistp dword ptr [{m}]");
    host_op!(h_under_fcomi, "ffree st(1)\n fcomip st(0), st(1)");
    host_op!(h_fsin, "fsin");
    host_op!(h_fcos, "fcos");
    host_op!(h_fsincos, "fsincos");
    host_op!(h_fptan, "fptan");
    host_op!(h_fpatan, "fpatan");
    host_op!(h_f2xm1, "f2xm1");
    host_op!(h_fyl2x, "fyl2x");
    host_op!(h_fyl2xp1, "fyl2xp1");
    host_op!(h_ffree, "ffree st(1)");

    const M: u64 = 0x1040;

    type HostFn = fn(u16, &[u8; 10], &[u8; 10], &mut [u8; 16]) -> HostOut;
    type Emit = fn(&mut CodeAssembler) -> Result<(), IcedError>;

    /// How the memory buffer is filled for an op.
    #[derive(Clone, Copy, PartialEq)]
    enum MemIn {
        None,
        F32,
        F64,
        I16,
        I32,
        I64,
        Bcd,
        F80,
    }

    struct OpCase {
        name: &'static str,
        host: HostFn,
        emit: Emit,
        mem: MemIn,
        eflags: bool,
    }

    macro_rules! case {
        ($name:literal, $h:ident, $mem:expr, $eflags:expr, |$a:ident| $body:expr) => {
            OpCase {
                name: $name,
                host: $h,
                emit: |$a: &mut CodeAssembler| $body,
                mem: $mem,
                eflags: $eflags,
            }
        };
    }

    fn cases() -> Vec<OpCase> {
        use MemIn::*;
        vec![
            case!("fadd", h_fadd, None, false, |a| a.fadd_2(st0, st1)),
            case!("fsub", h_fsub, None, false, |a| a.fsub_2(st0, st1)),
            case!("fsubr", h_fsubr, None, false, |a| a.fsubr_2(st0, st1)),
            case!("fmul", h_fmul, None, false, |a| a.fmul_2(st0, st1)),
            case!("fdiv", h_fdiv, None, false, |a| a.fdiv_2(st0, st1)),
            case!("fdivr", h_fdivr, None, false, |a| a.fdivr_2(st0, st1)),
            case!("faddp", h_faddp, None, false, |a| a.faddp(st1, st0)),
            case!("fdivrp", h_fdivrp, None, false, |a| a.fdivrp(st1, st0)),
            case!("fsubp", h_fsubp, None, false, |a| a.fsubp(st1, st0)),
            case!("fsqrt", h_fsqrt, None, false, |a| a.fsqrt()),
            case!("fprem", h_fprem, None, false, |a| a.fprem()),
            case!("fprem1", h_fprem1, None, false, |a| a.fprem1()),
            case!("frndint", h_frndint, None, false, |a| a.frndint()),
            case!("fscale", h_fscale, None, false, |a| a.fscale()),
            case!("fxtract", h_fxtract, None, false, |a| a.fxtract()),
            case!("fcom", h_fcom, None, false, |a| a.fcom_2(st0, st1)),
            case!("fucomp", h_fucomp, None, false, |a| a.fucomp(st0, st1)),
            case!("fcompp", h_fcompp, None, false, |a| a.fcompp()),
            case!("fcomi", h_fcomi, None, true, |a| a.fcomi(st0, st1)),
            case!("fucomip", h_fucomip, None, true, |a| a.fucomip(st0, st1)),
            case!("ftst", h_ftst, None, false, |a| a.ftst()),
            case!("fxam", h_fxam, None, false, |a| a.fxam()),
            case!("fchs", h_fchs, None, false, |a| a.fchs()),
            case!("fabs", h_fabs, None, false, |a| a.fabs()),
            case!("fxch", h_fxch, None, false, |a| a.fxch(st0, st1)),
            case!("fst m32", h_fst32, None, false, |a| a.fst(dword_ptr(M))),
            case!("fstp m64", h_fstp64, None, false, |a| a.fstp(qword_ptr(M))),
            case!("fist m16", h_fist16, None, false, |a| a.fist(word_ptr(M))),
            case!("fistp m32", h_fistp32, None, false, |a| a.fistp(dword_ptr(M))),
            case!("fistp m64", h_fistp64, None, false, |a| a.fistp(qword_ptr(M))),
            case!("fisttp m32", h_fisttp32, None, false, |a| a.fisttp(dword_ptr(M))),
            case!("fisttp m64", h_fisttp64, None, false, |a| a.fisttp(qword_ptr(M))),
            case!("fbstp", h_fbstp, None, false, |a| a.fbstp(tword_ptr(M))),
            case!("fld m32", h_fld32, F32, false, |a| a.fld(dword_ptr(M))),
            case!("fld m64", h_fld64, F64, false, |a| a.fld(qword_ptr(M))),
            case!("fadd m32", h_fadd32, F32, false, |a| a.fadd(dword_ptr(M))),
            case!("fmul m64", h_fmul64, F64, false, |a| a.fmul(qword_ptr(M))),
            case!("fidiv m32", h_fidiv32, I32, false, |a| a.fidiv(dword_ptr(M))),
            case!("fisubr m16", h_fisubr16, I16, false, |a| a.fisubr(word_ptr(M))),
            case!("fcom m64", h_fcom64, F64, false, |a| a.fcom(qword_ptr(M))),
            case!("ficomp m32", h_ficomp32, I32, false, |a| a.ficomp(dword_ptr(M))),
            case!("fild m64", h_fild64, I64, false, |a| a.fild(qword_ptr(M))),
            case!("fbld", h_fbld, Bcd, false, |a| a.fbld(tword_ptr(M))),
            case!("fldpi", h_fldpi, None, false, |a| a.fldpi()),
            case!("fldl2e", h_fldl2e, None, false, |a| a.fldl2e()),
            case!("fldl2t", h_fldl2t, None, false, |a| a.fldl2t()),
            case!("fldlg2", h_fldlg2, None, false, |a| a.fldlg2()),
            case!("fldln2", h_fldln2, None, false, |a| a.fldln2()),
            case!("fld1", h_fld1, None, false, |a| a.fld1()),
            case!("fcmovb CF=1", h_fcmovb, None, false, |a| {
                a.xor(ax, ax)?;
                a.cmp(ax, 1)?;
                a.fcmovb(st0, st1)
            }),
            case!("fcmovb CF=0", h_fcmovnb, None, false, |a| {
                a.xor(ax, ax)?;
                a.fcmovb(st0, st1)
            }),
            case!("fincstp", h_fincstp, None, false, |a| a.fincstp()),
            case!("ffree", h_ffree, None, false, |a| a.ffree(st1)),
            case!("underflow fadd", h_under_fadd, None, false, |a| {
                a.ffree(st1)?;
                a.fadd_2(st0, st1)
            }),
            case!("underflow fst", h_under_fst, None, false, |a| {
                a.ffree(st0)?;
                a.fst(dword_ptr(M))
            }),
            case!("underflow fcomp", h_under_fcom, None, false, |a| {
                a.ffree(st1)?;
                a.fcomp_2(st0, st1)
            }),
            case!("overflow fld", h_over_fld, None, false, |a| {
                for _ in 0..6 {
                    a.fld(st0)?;
                }
                a.fld1()
            }),
            case!("fisttp m16", h_fisttp16, None, false, |a| a.fisttp(word_ptr(M))),
            case!("fist m32", h_fist32, None, false, |a| a.fist(dword_ptr(M))),
            case!("fild m16", h_fild16, I16, false, |a| a.fild(word_ptr(M))),
            case!("fild m32", h_fild32, I32, false, |a| a.fild(dword_ptr(M))),
            case!("fld m80", h_fld80, F80, false, |a| a.fld(tword_ptr(M))),
            case!("fstp m80", h_fstp80, None, false, |a| a.fstp(tword_ptr(M))),
            case!("ficom m16", h_ficom16, I16, false, |a| a.ficom(word_ptr(M))),
            case!("fsubr m32", h_fsubr32, F32, false, |a| a.fsubr(dword_ptr(M))),
            case!("fdivr m64", h_fdivr64, F64, false, |a| a.fdivr(qword_ptr(M))),
            case!("fdiv m32", h_fdiv32, F32, false, |a| a.fdiv(dword_ptr(M))),
            case!("fisub m32", h_fisub32, I32, false, |a| a.fisub(dword_ptr(M))),
            case!("fiadd m16", h_fiadd16, I16, false, |a| a.fiadd(word_ptr(M))),
            case!("fimul m32", h_fimul32, I32, false, |a| a.fimul(dword_ptr(M))),
            case!("fcomp m32", h_fcomp32, F32, false, |a| a.fcomp(dword_ptr(M))),
            case!("fucompp", h_fucompp, None, false, |a| a.fucompp()),
            case!("fucomi", h_fucomi, None, true, |a| a.fucomi(st0, st1)),
            case!("fcomip", h_fcomip, None, true, |a| a.fcomip(st0, st1)),
            case!("fsubrp", h_fsubrp, None, false, |a| a.fsubrp(st1, st0)),
            case!("fmulp", h_fmulp, None, false, |a| a.fmulp(st1, st0)),
            case!("fdivp", h_fdivp, None, false, |a| a.fdivp(st1, st0)),
            case!("fsub st1", h_fsub_sti, None, false, |a| a.fsub_2(st1, st0)),
            case!("fdivr st1", h_fdivr_sti, None, false, |a| a.fdivr_2(st1, st0)),
            case!("ffreep", h_ffreep, None, false, |a| a.ffreep(st0)),
            case!("fdecstp", h_fdecstp, None, false, |a| a.fdecstp()),
            case!("fst st1", h_fst_sti, None, false, |a| a.fst(st1)),
            case!("fstp st1", h_fstp_sti, None, false, |a| a.fstp(st1)),
            case!("fld st1", h_fld_sti, None, false, |a| a.fld(st1)),
            case!("fldz", h_fldz, None, false, |a| a.fldz()),
            case!("fcmove ZF=1", h_fcmove, None, false, |a| {
                a.xor(ax, ax)?;
                a.fcmove(st0, st1)
            }),
            case!("fcmovnbe ZF=1", h_fcmovnbe, None, false, |a| {
                a.xor(ax, ax)?;
                a.fcmovnbe(st0, st1)
            }),
            case!("fcmovu PF=1", h_fcmovu, None, false, |a| {
                a.xor(ax, ax)?;
                a.fcmovu(st0, st1)
            }),
            case!("overflow fld m32", h_over_fld32, F32, false, |a| {
                for _ in 0..6 {
                    a.fld(st0)?;
                }
                a.fld(dword_ptr(M))
            }),
            case!("overflow fxtract", h_over_fsincos, None, false, |a| {
                for _ in 0..6 {
                    a.fld(st0)?;
                }
                a.fxtract()
            }),
            case!("underflow fsqrt", h_under_fsqrt, None, false, |a| {
                a.ffree(st0)?;
                a.fsqrt()
            }),
            case!("underflow fprem", h_under_fprem, None, false, |a| {
                a.ffree(st1)?;
                a.fprem()
            }),
            case!("underflow fxch", h_under_fxch, None, false, |a| {
                a.ffree(st1)?;
                a.fxch(st0, st1)
            }),
            case!("underflow fistp", h_under_fistp, None, false, |a| {
                a.ffree(st0)?;
                a.fistp(dword_ptr(M))
            }),
            case!("underflow fcomip", h_under_fcomi, None, true, |a| {
                a.ffree(st1)?;
                a.fcomip(st0, st1)
            }),
        ]
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn f80(se: u16, sig: u64) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&sig.to_le_bytes());
        b[8..].copy_from_slice(&se.to_le_bytes());
        b
    }

    /// An operand biased towards the interesting encodings.
    fn operand(r: &mut Rng, near: Option<[u8; 10]>) -> [u8; 10] {
        let s = (r.next() & 1) as u16 * 0x8000;
        let sig = r.next();
        let j = 1u64 << 63;
        match r.below(24) {
            0 => f80(s, 0),
            1 => f80(s | 0x7fff, j),
            2 => f80(s | 0x7fff, j | (1 << 62) | (sig >> 2)),
            3 => f80(s | 0x7fff, j | ((sig >> 2) | 1) & !(1 << 62)),
            4 => f80(s, sig >> 1 >> r.below(64)),
            5 => f80(s, j | sig),
            6 => f80(s | (r.below(0x7fff) as u16), sig & !j),
            7 => f80(s | 0x7fff, sig & !j),
            8 => f80(s | 0x7ffe, u64::MAX),
            9 => f80(s | 1, j | (sig & r.next())),
            10 => f80(s | (1 + r.below(70) as u16), j | sig),
            11 => f80(s | (0x7ffe - r.below(70) as u16), j | sig),
            12 => f80(s | (0x3fff + r.below(64) as u16), j | (sig & (u64::MAX << r.below(64)))),
            13 | 14 => match near {
                // Close exponents and significands: cancellation, exact results.
                Some(n) => {
                    let se = u16::from_le_bytes([n[8], n[9]]);
                    let m = u64::from_le_bytes(n[..8].try_into().unwrap());
                    let e = (se & 0x7fff).saturating_add(r.below(5) as u16).saturating_sub(2).clamp(1, 0x7ffe);
                    f80(s | e, j | (m ^ (r.next() >> r.below(64))))
                }
                None => f80(s | 0x3fff, j | sig),
            },
            15 => f80(s | (0x3fc0 + r.below(0x80) as u16), j | (sig << r.below(60))),
            16 => f80(s | (0x3ffe + r.below(3) as u16), j | (sig & 0xffff_ff00_0000_0000)),
            _ => f80(s | (r.below(0x7fff) as u16 & 0x7fff).max(1), j | sig),
        }
    }

    fn mem_input(r: &mut Rng, kind: MemIn) -> [u8; 16] {
        let mut m = [0u8; 16];
        let v = r.next();
        let bits: u64 = match kind {
            MemIn::None => v,
            MemIn::F32 => match r.below(6) {
                0 => (v & 0x8000_0000) | (v & 0x7f_ffff >> r.below(23)),
                1 => (v & 0x8000_0000) | 0x7f80_0000 | (v & 0x7f_ffff & !(r.below(2) * 0x7f_ffff)),
                2 => (v & 0x8000_0000) | 0x7f80_0001 | (v & 0x3f_ffff),
                _ => v & 0xffff_ffff,
            },
            MemIn::F64 => match r.below(6) {
                0 => (v & (1 << 63)) | (v & 0xf_ffff_ffff_ffff) >> r.below(52),
                1 => (v & (1 << 63)) | 0x7ff0_0000_0000_0000 | (v & 0xf_ffff_ffff_ffff & !(r.below(2) * 0xf_ffff_ffff_ffff)),
                2 => (v & (1 << 63)) | 0x7ff0_0000_0000_0001 | (v & 0x7_ffff_ffff_ffff),
                _ => v,
            },
            MemIn::I16 => v >> r.below(16),
            MemIn::I32 => v >> r.below(32),
            MemIn::I64 => v >> r.below(64),
            MemIn::F80 => {
                let v = operand(r, None);
                m[..10].copy_from_slice(&v);
                return m;
            }
            MemIn::Bcd => {
                let mut d = 0u64;
                for _ in 0..16 {
                    d = (d << 4) | r.below(10);
                }
                m[8] = (r.below(10) << 4 | r.below(10)) as u8;
                m[9] = (r.next() & 0x80) as u8;
                d
            }
        };
        m[..8].copy_from_slice(&bits.to_le_bytes());
        m
    }

    struct Emu {
        cpu: Cpu,
        bus: NullBus,
        entry: Vec<u64>,
    }

    impl Emu {
        fn new(cases: &[OpCase]) -> Emu {
            let mut cpu = Cpu::with_ram(1 << 20).unwrap();
            cpu.load_real_seg(kagami_cpu::state::CS, 0);
            cpu.load_real_seg(kagami_cpu::state::DS, 0);
            cpu.s.cr0 |= kagami_cpu::state::cr0::NE;
            let mut entry = Vec::new();
            for (k, c) in cases.iter().enumerate() {
                let at = 0x8000 + 0x40 * k as u64;
                let mut a = CodeAssembler::new(16).unwrap();
                a.fninit().unwrap();
                a.fldcw(word_ptr(0x1020u64)).unwrap();
                a.fld(tword_ptr(0x1010u64)).unwrap();
                a.fld(tword_ptr(0x1000u64)).unwrap();
                (c.emit)(&mut a).unwrap();
                a.hlt().unwrap();
                let code = a.assemble(at).unwrap();
                assert!(code.len() <= 0x40);
                cpu.mem.write(at, &code);
                entry.push(at);
            }
            Emu { cpu, bus: NullBus, entry }
        }

        fn run(&mut self, k: usize, cw: u16, a: &[u8; 10], b: &[u8; 10], mem: &[u8; 16]) -> [u8; 16] {
            let m = &self.cpu.mem;
            m.write(0x1000, a);
            m.write(0x1010, b);
            m.write(0x1020, &cw.to_le_bytes());
            m.write(M, mem);
            self.cpu.s.rip = self.entry[k];
            self.cpu.s.halted = 0;
            let exit = self.cpu.run(&mut self.bus, 16);
            assert_eq!(exit, Exit::Halted, "guest did not reach HLT (rip {:#x})", self.cpu.s.rip);
            let mut out = [0u8; 16];
            self.cpu.mem.read(M, &mut out);
            out
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().rev().map(|x| format!("{x:02x}")).collect()
    }

    /// Compare one case; returns a description of the first difference.
    fn differs(e: &Emu, c: &OpCase, h: &HostOut, emem: &[u8; 16]) -> Option<String> {
        let f = &e.cpu.s.fpu;
        let hsw = u16::from_le_bytes([h.save[4], h.save[5]]);
        let htw = u16::from_le_bytes([h.save[8], h.save[9]]);
        if f.fsw != hsw {
            return Some(format!("fsw host {hsw:04x} kagami {:04x}", f.fsw));
        }
        if f.ftw != htw {
            return Some(format!("ftw host {htw:04x} kagami {:04x}", f.ftw));
        }
        let top = ((hsw >> 11) & 7) as usize;
        for i in 0..8 {
            let p = (top + i) & 7;
            if (htw >> (2 * p)) & 3 == 3 {
                continue;
            }
            let hv = &h.save[28 + 10 * i..38 + 10 * i];
            let ev = &f.st[p].to_le_bytes()[..10];
            if hv != ev {
                return Some(format!("st({i}) host {} kagami {}", hex(hv), hex(ev)));
            }
        }
        if h.mem != *emem {
            return Some(format!("memory host {} kagami {}", hex(&h.mem), hex(emem)));
        }
        // FOP (the opcode of the last non-control instruction) of register-only
        // forms; memory forms encode host 64-bit and guest 16-bit addressing.
        if !c.name.contains(" m") && !matches!(c.name, "fbld" | "fbstp" | "underflow fst" | "underflow fistp") {
            let hfop = u16::from_le_bytes([h.save[18], h.save[19]]) & 0x7ff;
            // The AMD EPYC this was written on occasionally reports FOP 0 after a
            // massively underflowing multiply (a microcode-assisted path).
            if f.fop != hfop && hfop != 0 {
                return Some(format!("fop host {hfop:03x} kagami {:03x}", f.fop));
            }
        }
        if c.eflags {
            let mask = 0x45; // ZF PF CF
            let ef = e.cpu.s.flags() & mask;
            if h.rflags & mask != ef {
                return Some(format!("eflags host {:x} kagami {ef:x}", h.rflags & mask));
            }
        }
        None
    }

    #[test]
    fn x87_matches_host() {
        let cases = cases();
        let mut emu = Emu::new(&cases);
        // KAGAMI_X87_SEED / KAGAMI_X87_PAIRS widen the search; the defaults keep it ~1 s.
        let seed = std::env::var("KAGAMI_X87_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
        let mut rng = Rng(seed | 1);
        let pairs: usize = std::env::var("KAGAMI_X87_PAIRS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
        let mut total = 0usize;
        let mut failures: Vec<(usize, String)> = vec![0; cases.len()].into_iter().map(|n| (n, String::new())).collect();
        for _ in 0..pairs {
            let a = operand(&mut rng, None);
            let b = operand(&mut rng, Some(a));
            for (k, c) in cases.iter().enumerate() {
                let mem = mem_input(&mut rng, c.mem);
                for rc in 0..4u16 {
                    for pc in [0u16, 2, 3] {
                        // Masked, and occasionally a random set of unmasked exceptions.
                        let masks = if rng.below(8) == 0 { rng.below(64) as u16 } else { 0x3f };
                        let cw = masks | 0x40 | (pc << 8) | (rc << 10);
                        let mut hm = mem;
                        let h = (c.host)(cw, &a, &b, &mut hm);
                        let em = emu.run(k, cw, &a, &b, &mem);
                        total += 1;
                        if let Some(d) = differs(&emu, c, &h, &em) {
                            let f = &mut failures[k];
                            if f.0 < 3 {
                                eprintln!("{}: cw {cw:04x} a {} b {} mem {}: {d}", c.name, hex(&a), hex(&b), hex(&mem));
                            }
                            f.0 += 1;
                        }
                    }
                }
            }
        }
        let mut bad = 0;
        for (c, f) in cases.iter().zip(&failures) {
            if f.0 > 0 {
                eprintln!("{:12} {} mismatches", c.name, f.0);
                bad += f.0;
            }
        }
        eprintln!("x87 host differential: {} / {} cases match", total - bad, total);
        assert_eq!(bad, 0);
    }

    /// The transcendentals are not bit-exact (see fpu/transcendental.rs): special
    /// operands must match exactly; ordinary ones must agree with the host to
    /// within one unit in the last place: kagami rounds the exact function value
    /// once, the hardware is within about an ulp.
    #[test]
    fn x87_transcendentals_close_to_host() {
        let cases: Vec<OpCase> = vec![
            case!("fsin", h_fsin, MemIn::None, false, |a| a.fsin()),
            case!("fcos", h_fcos, MemIn::None, false, |a| a.fcos()),
            case!("fsincos", h_fsincos, MemIn::None, false, |a| a.fsincos()),
            case!("fptan", h_fptan, MemIn::None, false, |a| a.fptan()),
            case!("fpatan", h_fpatan, MemIn::None, false, |a| a.fpatan()),
            case!("f2xm1", h_f2xm1, MemIn::None, false, |a| a.f2xm1()),
            case!("fyl2x", h_fyl2x, MemIn::None, false, |a| a.fyl2x()),
            case!("fyl2xp1", h_fyl2xp1, MemIn::None, false, |a| a.fyl2xp1()),
        ];
        let mut emu = Emu::new(&cases);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut exact, mut close, mut total) = (0usize, 0usize, 0usize);
        let mut per_op = vec![(0usize, 0usize); cases.len()];
        let mut bad = Vec::new();
        for n in 0..4000 {
            // Half special/edge operands, half ordinary values in each function's domain.
            let (a, b) = if n % 2 == 0 {
                let a = operand(&mut rng, None);
                (a, operand(&mut rng, Some(a)))
            } else {
                let e = 0x3fff - 8 + rng.below(12) as u16;
                let s = (rng.next() & 1) as u16 * 0x8000;
                (
                    f80(s | e, (1 << 63) | rng.next()),
                    f80(0x3fff + rng.below(4) as u16, (1 << 63) | rng.next()),
                )
            };
            for (k, c) in cases.iter().enumerate() {
                let cw = 0x037f;
                // FYL2XP1 is undefined outside |x| < 1 - √2/2.
                let ae = u16::from_le_bytes([a[8], a[9]]) & 0x7fff;
                if c.name == "fyl2xp1" && ae >= 0x3ffd && ae != 0x7fff {
                    continue;
                }
                let mut hm = [0u8; 16];
                let h = (c.host)(cw, &a, &b, &mut hm);
                emu.run(k, cw, &a, &b, &[0u8; 16]);
                total += 1;
                per_op[k].1 += 1;
                match differs(&emu, c, &h, &[0u8; 16]) {
                    None => {
                        exact += 1;
                        per_op[k].0 += 1;
                    }
                    Some(d) if std::env::var("KAGAMI_X87_SHOW").is_ok_and(|v| v == c.name) => {
                        eprintln!("{}: a {} b {}: {d}", c.name, hex(&a), hex(&b));
                        if near(&emu, &h) {
                            close += 1;
                        }
                    }
                    Some(d) => {
                        if near(&emu, &h) {
                            close += 1;
                        } else if bad.len() < 20 {
                            bad.push(format!("{}: a {} b {}: {d}", c.name, hex(&a), hex(&b)));
                        } else {
                            bad.push(String::new());
                        }
                    }
                }
            }
        }
        for b in bad.iter().filter(|b| !b.is_empty()) {
            eprintln!("{b}");
        }
        for (c, (e, t)) in cases.iter().zip(&per_op) {
            eprintln!("{:8} {e} / {t} bit-exact", c.name);
        }
        eprintln!(
            "x87 transcendentals: {exact} exact, {close} within tolerance, {} off, of {total}",
            bad.len()
        );
        assert!(bad.is_empty());
    }

    /// Same status word (ignoring C1, the rounding direction), same tags, and
    /// every register within the tolerance.
    fn near(e: &Emu, h: &HostOut) -> bool {
        let f = &e.cpu.s.fpu;
        let hsw = u16::from_le_bytes([h.save[4], h.save[5]]);
        let htw = u16::from_le_bytes([h.save[8], h.save[9]]);
        if (f.fsw ^ hsw) & !0x0200 != 0 || f.ftw != htw {
            return false;
        }
        let top = ((hsw >> 11) & 7) as usize;
        (0..8).all(|i| {
            let p = (top + i) & 7;
            if (htw >> (2 * p)) & 3 == 3 {
                return true;
            }
            ulps(&h.save[28 + 10 * i..38 + 10 * i], &f.st[p].to_le_bytes()[..10]) <= 1
        })
    }

    /// Distance in units of the last place (64-bit significand) between two
    /// extended values of the same sign; u128::MAX across signs.
    fn ulps(a: &[u8], b: &[u8]) -> u128 {
        let key = |v: &[u8]| {
            let sig = u64::from_le_bytes(v[..8].try_into().unwrap());
            let se = u16::from_le_bytes([v[8], v[9]]);
            (se >> 15, ((se & 0x7fff) as u128) << 63 | (sig & !(1 << 63)) as u128)
        };
        let ((sa, ka), (sb, kb)) = (key(a), key(b));
        if sa != sb {
            return if ka == 0 && kb == 0 { 0 } else { u128::MAX };
        }
        ka.abs_diff(kb)
    }
}
