//! SIMD behaviour the host-differential test cannot reach: memory operands
//! and their alignment rule, availability faults (#UD/#NM), the MMX
//! aliasing of the x87 registers, unmasked SIMD exceptions (#XM/#UD with
//! the destination untouched), LDMXCSR, FXSAVE/FXRSTOR, XSAVE/XRSTOR,
//! XGETBV/XSETBV and MASKMOVDQU. Each instruction is assembled with
//! iced-x86 (16-bit real mode, flat data at 0) and run through kagami's
//! dispatch table.

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions};
use kagami_cpu::state::{cr0, cr4};
use kagami_cpu::{dispatch, Cpu, CpuModel, Exception, NullBus};

fn cpu() -> Cpu {
    let mut c = Cpu::with_ram(1 << 20).unwrap();
    c.s.cr0 |= cr0::NE | cr0::MP;
    c.s.cr4 |= cr4::OSFXSR | cr4::OSXMMEXCPT;
    c
}

/// Assemble one instruction (16-bit) with `f` and execute it.
fn run(c: &mut Cpu, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Result<(), Exception> {
    let mut a = CodeAssembler::new(16).unwrap();
    f(&mut a).unwrap();
    let bytes = a.assemble(0).unwrap();
    let insn = Decoder::with_ip(16, &bytes, 0, DecoderOptions::NONE).decode();
    let h = dispatch::handler_for(&insn, CpuModel::X86_64);
    h(c, &mut NullBus, &insn)
}

fn peek(c: &Cpu, addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    c.mem.read(addr, &mut v);
    v
}

const PATTERN: u128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100;

#[test]
fn aligned_and_unaligned_memory_operands() {
    let mut c = cpu();
    c.mem.write(0x1000, &PATTERN.to_le_bytes());
    c.mem.write(0x2001, &PATTERN.to_le_bytes());
    c.s.gpr[3] = 0x1000; // BX
    run(&mut c, |a| a.movaps(xmm1, xmmword_ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.xmm[1], PATTERN);
    c.s.gpr[3] = 0x2001;
    assert_eq!(run(&mut c, |a| a.movaps(xmm2, xmmword_ptr(bx))), Err(Exception::GP0));
    assert_eq!(run(&mut c, |a| a.paddb(xmm2, xmmword_ptr(bx))), Err(Exception::GP0));
    assert_eq!(c.s.fpu.xmm[2], 0);
    run(&mut c, |a| a.movdqu(xmm2, xmmword_ptr(bx))).unwrap();
    // A faulting CVTPD2PI mm, m128 leaves the x87 state (TOP, tags) alone.
    c.s.fpu.fsw = 3 << 11;
    c.s.fpu.ftw = 0xffff;
    assert_eq!(run(&mut c, |a| a.cvtpd2pi(mm1, xmmword_ptr(bx))), Err(Exception::GP0));
    assert_eq!(run(&mut c, |a| a.cvttpd2pi(mm1, xmmword_ptr(bx))), Err(Exception::GP0));
    assert_eq!((c.s.fpu.fsw, c.s.fpu.ftw), (3 << 11, 0xffff));
    c.s.fpu.fsw = 0;
    assert_eq!(c.s.fpu.xmm[2], PATTERN);
    run(&mut c, |a| a.lddqu(xmm3, xmmword_ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.xmm[3], PATTERN);
    // A misaligned MOVAPS store faults and writes nothing.
    c.s.fpu.xmm[4] = u128::MAX;
    c.s.gpr[3] = 0x3008;
    assert_eq!(run(&mut c, |a| a.movaps(xmmword_ptr(bx), xmm4)), Err(Exception::GP0));
    assert_eq!(peek(&c, 0x3008, 16), vec![0; 16]);
    run(&mut c, |a| a.movups(xmmword_ptr(bx), xmm4)).unwrap();
    assert_eq!(peek(&c, 0x3008, 16), vec![0xff; 16]);
    // Scalar loads need no alignment and zero the upper lanes.
    c.s.gpr[3] = 0x2001;
    c.s.fpu.xmm[5] = u128::MAX;
    run(&mut c, |a| a.movss(xmm5, dword_ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.xmm[5], 0x0302_0100);
    // Register-to-register MOVSS merges.
    c.s.fpu.xmm[6] = u128::MAX;
    run(&mut c, |a| a.movss(xmm6, xmm5)).unwrap();
    assert_eq!(c.s.fpu.xmm[6], (u128::MAX << 32) | 0x0302_0100);
    // 8-byte MMX memory operands are never alignment-checked.
    run(&mut c, |a| a.movq(mm3, qword_ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.st[3] as u64, PATTERN as u64);
    // Segment limit: a 16-byte access past 0xFFFF faults.
    c.s.gpr[3] = 0xfff8;
    assert_eq!(run(&mut c, |a| a.movups(xmm0, xmmword_ptr(bx))), Err(Exception::GP0));
}

#[test]
fn availability_faults() {
    let mut c = cpu();
    c.s.cr0 |= cr0::TS;
    assert_eq!(run(&mut c, |a| a.addps(xmm0, xmm1)), Err(Exception::DeviceNotAvailable));
    assert_eq!(run(&mut c, |a| a.paddb(mm0, mm1)), Err(Exception::DeviceNotAvailable));
    assert_eq!(run(&mut c, |a| a.fxsave(ptr(bx))), Err(Exception::DeviceNotAvailable));
    c.s.cr0 &= !cr0::TS;
    c.s.cr0 |= cr0::EM;
    assert_eq!(run(&mut c, |a| a.addps(xmm0, xmm1)), Err(Exception::InvalidOpcode));
    assert_eq!(run(&mut c, |a| a.paddb(mm0, mm1)), Err(Exception::InvalidOpcode));
    assert_eq!(run(&mut c, |a| a.emms()), Err(Exception::InvalidOpcode));
    c.s.cr0 &= !cr0::EM;
    c.s.cr4 &= !cr4::OSFXSR;
    assert_eq!(run(&mut c, |a| a.addps(xmm0, xmm1)), Err(Exception::InvalidOpcode));
    assert_eq!(run(&mut c, |a| a.movq2dq(xmm0, mm1)), Err(Exception::InvalidOpcode));
    assert_eq!(run(&mut c, |a| a.ldmxcsr(dword_ptr(bx))), Err(Exception::InvalidOpcode));
    // MMX needs no OSFXSR.
    run(&mut c, |a| a.paddb(mm0, mm1)).unwrap();
    // A pending x87 exception (FSW.ES) with CR0.NE raises #MF on MMX.
    c.s.fpu.fsw |= 0x80;
    assert_eq!(run(&mut c, |a| a.paddb(mm0, mm1)), Err(Exception::FloatingPoint));
    // XSAVE family without CR4.OSXSAVE.
    assert_eq!(run(&mut c, |a| a.xgetbv()), Err(Exception::InvalidOpcode));
    assert_eq!(run(&mut c, |a| a.xsave(ptr(bx))), Err(Exception::InvalidOpcode));
}

#[test]
fn mmx_aliases_x87_registers() {
    let mut c = cpu();
    c.s.fpu.fsw = 5 << 11; // TOP = 5
    c.s.fpu.ftw = 0xffff;
    c.s.fpu.st[1] = (0x4000u128 << 64) | 0x1234;
    c.s.fpu.st[2] = 0x0101_0101_0101_0101;
    run(&mut c, |a| a.paddb(mm1, mm2)).unwrap();
    assert_eq!(c.s.fpu.st[1], (0xffffu128 << 64) | 0x0101_0101_0101_1335);
    assert_eq!(c.s.fpu.fsw >> 11 & 7, 0, "TOP cleared");
    assert_eq!(c.s.fpu.ftw, 0, "all tags valid");
    // A source-only MMX use also makes the transition.
    c.s.fpu.ftw = 0xffff;
    run(&mut c, |a| a.movd(eax, mm2)).unwrap();
    assert_eq!(c.s.gpr[0], 0x0101_0101);
    assert_eq!(c.s.fpu.ftw, 0);
    c.s.fpu.fsw |= 5 << 11;
    run(&mut c, |a| a.emms()).unwrap();
    assert_eq!(c.s.fpu.ftw, 0xffff);
    assert_eq!(c.s.fpu.fsw >> 11 & 7, 0, "EMMS clears TOP (as the AMD host does)");
    // MOVQ2DQ / MOVDQ2Q.
    c.s.fpu.xmm[3] = u128::MAX;
    run(&mut c, |a| a.movq2dq(xmm3, mm1)).unwrap();
    assert_eq!(c.s.fpu.xmm[3], 0x0101_0101_0101_1335);
    c.s.fpu.xmm[4] = (7u128 << 64) | 9;
    run(&mut c, |a| a.movdq2q(mm5, xmm4)).unwrap();
    assert_eq!(c.s.fpu.st[5], (0xffffu128 << 64) | 9);
}

#[test]
fn mxcsr_load_store_and_unmasked_exceptions() {
    let mut c = cpu();
    c.s.gpr[3] = 0x100;
    c.mem.write(0x100, &0x0001_0000u32.to_le_bytes()); // reserved bit 16
    assert_eq!(run(&mut c, |a| a.ldmxcsr(dword_ptr(bx))), Err(Exception::GP0));
    assert_eq!(c.s.fpu.mxcsr, 0x1f80);
    // Unmask invalid (IM = bit 7), round up.
    c.mem.write(0x100, &(0x1f00u32 | 0x4000).to_le_bytes());
    run(&mut c, |a| a.ldmxcsr(dword_ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.mxcsr, 0x5f00);
    c.s.gpr[3] = 0x104;
    run(&mut c, |a| a.stmxcsr(dword_ptr(bx))).unwrap();
    assert_eq!(peek(&c, 0x104, 4), 0x5f00u32.to_le_bytes());
    // SNaN + 1.0 with IM clear: #XM, destination kept, IE recorded.
    c.s.fpu.xmm[0] = 0x7f80_0001;
    c.s.fpu.xmm[1] = 0x3f80_0000;
    assert_eq!(run(&mut c, |a| a.addss(xmm0, xmm1)), Err(Exception::SimdFloatingPoint));
    assert_eq!(c.s.fpu.xmm[0], 0x7f80_0001);
    assert_eq!(c.s.fpu.mxcsr & 0x3f, 1);
    // Without CR4.OSXMMEXCPT the same event is #UD.
    c.s.cr4 &= !cr4::OSXMMEXCPT;
    assert_eq!(run(&mut c, |a| a.addss(xmm0, xmm1)), Err(Exception::InvalidOpcode));
    c.s.cr4 |= cr4::OSXMMEXCPT;
    // Unmasked precision only: 1/3 raises #XM with PE set.
    c.s.fpu.mxcsr = 0x1f80 & !(1 << 12);
    c.s.fpu.xmm[0] = 0x3f80_0000;
    c.s.fpu.xmm[1] = 0x4040_0000;
    assert_eq!(run(&mut c, |a| a.divss(xmm0, xmm1)), Err(Exception::SimdFloatingPoint));
    assert_eq!(c.s.fpu.xmm[0], 0x3f80_0000);
    assert_eq!(c.s.fpu.mxcsr & 0x3f, 0x20);
    // Masked: the rounded quotient (round up) and PE.
    c.s.fpu.mxcsr = 0x1f80 | 0x4000;
    run(&mut c, |a| a.divss(xmm0, xmm1)).unwrap();
    assert_eq!(c.s.fpu.xmm[0], 0x3eaa_aaab);
    assert_eq!(c.s.fpu.mxcsr, 0x5fa0);
    // CVTTSS2SI of NaN: integer indefinite with IE.
    c.s.fpu.mxcsr = 0x1f80;
    c.s.fpu.xmm[2] = 0x7fc0_0000;
    run(&mut c, |a| a.cvttss2si(eax, xmm2)).unwrap();
    assert_eq!(c.s.gpr[0], 0x8000_0000);
    assert_eq!(c.s.fpu.mxcsr, 0x1f81);
}

fn fill_state(c: &mut Cpu) {
    for k in 0..8 {
        c.s.fpu.xmm[k] = PATTERN.wrapping_mul(k as u128 + 3);
        c.s.fpu.st[k] = ((0x3fff + k as u128) << 64) | (1 << 63) | k as u128;
    }
    c.s.fpu.st[6] = 0; // a zero
    c.s.fpu.st[7] = 0x7fffu128 << 64; // infinity-like special
    c.s.fpu.fcw = 0x027f;
    c.s.fpu.fsw = 3 << 11;
    // R0..R5 valid, R6 zero, R7 empty.
    c.s.fpu.ftw = 0b11_01_00_00_00_00_00_00;
    c.s.fpu.fop = 0x123;
    c.s.fpu.fip = 0x1111_2222;
    c.s.fpu.fcs = 0x33;
    c.s.fpu.fdp = 0x4444_5555;
    c.s.fpu.fds = 0x66;
    c.s.fpu.mxcsr = 0x9fc0 | 3;
}

#[test]
fn fxsave_fxrstor_round_trip_and_layout() {
    let mut c = cpu();
    fill_state(&mut c);
    let saved = c.s.fpu;
    c.s.gpr[3] = 0x1008;
    assert_eq!(run(&mut c, |a| a.fxsave(ptr(bx))), Err(Exception::GP0));
    c.s.gpr[3] = 0x1000;
    run(&mut c, |a| a.fxsave(ptr(bx))).unwrap();
    let img = peek(&c, 0x1000, 512);
    assert_eq!(u16::from_le_bytes([img[0], img[1]]), 0x027f);
    assert_eq!(u16::from_le_bytes([img[2], img[3]]), 3 << 11);
    assert_eq!(img[4], 0x7f, "abridged tag: R7 empty");
    assert_eq!(u16::from_le_bytes([img[6], img[7]]), 0x123);
    assert_eq!(u32::from_le_bytes(img[8..12].try_into().unwrap()), 0x1111_2222);
    assert_eq!(u16::from_le_bytes([img[12], img[13]]), 0x33);
    assert_eq!(u32::from_le_bytes(img[16..20].try_into().unwrap()), 0x4444_5555);
    assert_eq!(u16::from_le_bytes([img[20], img[21]]), 0x66);
    assert_eq!(u32::from_le_bytes(img[24..28].try_into().unwrap()), 0x9fc3);
    assert_eq!(u32::from_le_bytes(img[28..32].try_into().unwrap()), 0xffff);
    // ST0 is physical R3 (TOP = 3).
    assert_eq!(u128::from_le_bytes(img[32..48].try_into().unwrap()), saved.st[3]);
    assert_eq!(u128::from_le_bytes(img[160..176].try_into().unwrap()), saved.xmm[0]);
    assert_eq!(&img[288..], &[0u8; 224][..], "XMM8-15 not saved outside 64-bit mode");

    c.s.fpu = Default::default();
    run(&mut c, |a| a.fxrstor(ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.st, saved.st);
    assert_eq!(c.s.fpu.xmm[..8], saved.xmm[..8]);
    assert_eq!(c.s.fpu.mxcsr, saved.mxcsr);
    assert_eq!(c.s.fpu.ftw, saved.ftw, "tags recomputed from contents");

    // A reserved MXCSR bit in the image: #GP and nothing loaded.
    c.mem.write(0x1000 + 24, &0x0002_0000u32.to_le_bytes());
    c.s.fpu = Default::default();
    assert_eq!(run(&mut c, |a| a.fxrstor(ptr(bx))), Err(Exception::GP0));
    assert_eq!(c.s.fpu, Default::default());
}

#[test]
fn xsave_xrstor_and_xcr0() {
    let mut c = cpu();
    c.s.cr4 |= cr4::OSXSAVE;
    c.s.gpr[1] = 0; // ECX
    run(&mut c, |a| a.xgetbv()).unwrap();
    assert_eq!((c.s.gpr[0], c.s.gpr[2]), (1, 0));
    // Bits beyond x87|SSE, or without x87, are refused.
    for bad in [0b111u64, 0b10, 1 << 32] {
        c.s.gpr[0] = bad & 0xffff_ffff;
        c.s.gpr[2] = bad >> 32;
        assert_eq!(run(&mut c, |a| a.xsetbv()), Err(Exception::GP0), "{bad:#x}");
    }
    c.s.gpr[0] = 3;
    c.s.gpr[2] = 0;
    c.s.gpr[1] = 1;
    assert_eq!(run(&mut c, |a| a.xsetbv()), Err(Exception::GP0), "ECX must be 0");
    c.s.gpr[1] = 0;
    run(&mut c, |a| a.xsetbv()).unwrap();
    assert_eq!(c.s.fpu.xcr0, 3);

    fill_state(&mut c);
    let saved = c.s.fpu;
    c.s.gpr[3] = 0x2020;
    c.s.gpr[0] = u32::MAX as u64;
    c.s.gpr[2] = u32::MAX as u64;
    assert_eq!(run(&mut c, |a| a.xsave(ptr(bx))), Err(Exception::GP0), "64-byte alignment");
    c.s.gpr[3] = 0x2000;
    c.mem.write(0x2000 + 512, &(1u64 << 9).to_le_bytes()); // a foreign XSTATE_BV bit survives
    run(&mut c, |a| a.xsave(ptr(bx))).unwrap();
    let img = peek(&c, 0x2000, 576);
    assert_eq!(u64::from_le_bytes(img[512..520].try_into().unwrap()), 3 | 1 << 9);
    assert_eq!(u128::from_le_bytes(img[160..176].try_into().unwrap()), saved.xmm[0]);
    assert_eq!(u32::from_le_bytes(img[24..28].try_into().unwrap()), saved.mxcsr);

    // XSTATE_BV with a bit outside XCR0 → #GP.
    run(&mut c, |a| a.xrstor(ptr(bx)))
        .map_err(|e| assert_eq!(e, Exception::GP0))
        .unwrap_err();
    c.mem.write(0x2000 + 512, &3u64.to_le_bytes());
    c.s.fpu.xmm = [0; 16];
    c.s.fpu.st = [0; 8];
    run(&mut c, |a| a.xrstor(ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.xmm[..8], saved.xmm[..8]);
    assert_eq!(c.s.fpu.st, saved.st);
    assert_eq!(c.s.fpu.ftw, saved.ftw);

    // XSTATE_BV[1] = 0: SSE registers initialised, MXCSR still loaded.
    c.mem.write(0x2000 + 512, &1u64.to_le_bytes());
    c.s.fpu.mxcsr = 0x1f80;
    run(&mut c, |a| a.xrstor(ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.xmm, [0; 16]);
    assert_eq!(c.s.fpu.mxcsr, saved.mxcsr);
    // XSTATE_BV[0] = 0 with only x87 requested: x87 initialised.
    c.mem.write(0x2000 + 512, &0u64.to_le_bytes());
    c.s.gpr[0] = 1;
    c.s.gpr[2] = 0;
    run(&mut c, |a| a.xrstor(ptr(bx))).unwrap();
    assert_eq!((c.s.fpu.fcw, c.s.fpu.ftw, c.s.fpu.st), (0x037f, 0xffff, [0; 8]));
    // A standard-form header with XCOMP_BV bits but not bit 63 is refused.
    c.mem.write(0x2000 + 520, &3u64.to_le_bytes());
    assert_eq!(run(&mut c, |a| a.xrstor(ptr(bx))), Err(Exception::GP0));
}

#[test]
fn xsavec_xsaves_and_compacted_xrstor() {
    let mut c = cpu();
    c.s.cr4 |= cr4::OSXSAVE;
    c.s.fpu.xcr0 = 3;
    fill_state(&mut c);
    let saved = c.s.fpu;
    // Header bytes past XCOMP_BV are left as they were.
    c.mem.write(0x3000 + 512, &[0xaa; 64]);
    c.s.gpr[3] = 0x3000;
    c.s.gpr[0] = 2; // RFBM = SSE only
    c.s.gpr[2] = 0;
    run(&mut c, |a| a.xsavec(ptr(bx))).unwrap();
    let img = peek(&c, 0x3000, 576);
    assert_eq!(u64::from_le_bytes(img[512..520].try_into().unwrap()), 2, "XSTATE_BV = RFBM");
    assert_eq!(u64::from_le_bytes(img[520..528].try_into().unwrap()), 1 << 63 | 2, "XCOMP_BV");
    assert_eq!(&img[528..], &[0xaa; 48][..]);
    assert_eq!(u128::from_le_bytes(img[160..176].try_into().unwrap()), saved.xmm[0]);
    assert_eq!(u32::from_le_bytes(img[24..28].try_into().unwrap()), saved.mxcsr);
    assert_eq!(&img[0..2], &[0, 0], "x87 not requested, not written");

    // XRSTOR of it: header bytes 16..63 must be zero.
    assert_eq!(run(&mut c, |a| a.xrstor(ptr(bx))), Err(Exception::GP0));
    c.mem.write(0x3000 + 528, &[0; 48]);
    c.s.fpu.xmm = [0; 16];
    c.s.fpu.mxcsr = 0x1f80;
    c.s.gpr[0] = 3;
    c.s.fpu.st = [1; 8];
    run(&mut c, |a| a.xrstor(ptr(bx))).unwrap();
    assert_eq!(c.s.fpu.xmm[..8], saved.xmm[..8]);
    assert_eq!(c.s.fpu.mxcsr, saved.mxcsr);
    assert_eq!(
        (c.s.fpu.fcw, c.s.fpu.st),
        (0x037f, [0; 8]),
        "x87 requested, not in XSTATE_BV: initialised"
    );
    // Compacted form with XSTATE_BV[1] = 0: XMM zeroed and MXCSR = 1F80H.
    c.mem.write(0x3000 + 512, &0u64.to_le_bytes());
    run(&mut c, |a| a.xrstor(ptr(bx))).unwrap();
    assert_eq!((c.s.fpu.xmm, c.s.fpu.mxcsr), ([0; 16], 0x1f80));
    // XSTATE_BV outside XCOMP_BV, or XCOMP_BV outside XCR0: #GP.
    c.mem.write(0x3000 + 512, &1u64.to_le_bytes());
    assert_eq!(run(&mut c, |a| a.xrstor(ptr(bx))), Err(Exception::GP0));
    c.mem.write(0x3000 + 512, &0u64.to_le_bytes());
    c.mem.write(0x3000 + 520, &(1u64 << 63 | 1 << 2).to_le_bytes());
    assert_eq!(run(&mut c, |a| a.xrstor(ptr(bx))), Err(Exception::GP0));

    // XSAVES/XRSTORS: CPL 0 only; XRSTORS refuses the standard form.
    fill_state(&mut c);
    c.s.gpr[0] = 3;
    run(&mut c, |a| a.xsaves(ptr(bx))).unwrap();
    let img = peek(&c, 0x3000, 576);
    assert_eq!(u64::from_le_bytes(img[520..528].try_into().unwrap()), 1 << 63 | 3);
    c.s.fpu = Default::default();
    c.s.fpu.xcr0 = 3;
    run(&mut c, |a| a.xrstors(ptr(bx))).unwrap();
    assert_eq!(
        (c.s.fpu.st, c.s.fpu.xmm[..8].to_vec(), c.s.fpu.mxcsr),
        (saved.st, saved.xmm[..8].to_vec(), saved.mxcsr)
    );
    c.mem.write(0x3000 + 520, &0u64.to_le_bytes());
    assert_eq!(run(&mut c, |a| a.xrstors(ptr(bx))), Err(Exception::GP0), "standard form");
    c.s.cpl = 3;
    assert_eq!(run(&mut c, |a| a.xsaves(ptr(bx))), Err(Exception::GP0), "CPL 3");
    assert_eq!(run(&mut c, |a| a.xrstors(ptr(bx))), Err(Exception::GP0), "CPL 3");
    c.s.cpl = 0;
    // CPUID advertises them with the compacted size, and IA32_XSS holds nothing.
    let d1 = c.cpuid(0xd, 1);
    assert_eq!(d1[0] & 0b1010, 0b1010, "XSAVEC and XSAVES");
    assert_eq!((d1[1], d1[2], d1[3]), (576, 0, 0));
    assert_eq!(c.read_msr(&mut NullBus, 0xda0), Some(0));
    assert!(c.write_msr(&mut NullBus, 0xda0, 0).is_ok());
    assert_eq!(c.write_msr(&mut NullBus, 0xda0, 1 << 8), Err(Exception::GP0));
}

#[test]
fn maskmovdqu_writes_selected_bytes() {
    let mut c = cpu();
    c.mem.write(0x3000, &[0xee; 16]);
    c.s.gpr[7] = 0x3000; // DI
    c.s.fpu.xmm[1] = PATTERN;
    c.s.fpu.xmm[2] = 0x80 | 0x80 << 40 | 0xff << 120;
    run(&mut c, |a| a.maskmovdqu(xmm1, xmm2)).unwrap();
    let mut want = [0xeeu8; 16];
    want[0] = 0;
    want[5] = 5;
    want[15] = 15;
    assert_eq!(peek(&c, 0x3000, 16), want);
}

#[test]
fn string_movsd_cmpsd_are_not_claimed() {
    use iced_x86::Code;
    // The string forms share the mnemonics; insn/string.rs implements them.
    assert!(dispatch::implemented(Code::Movsd_m32_m32));
    assert!(dispatch::implemented(Code::Cmpsd_m32_m32));
    assert!(dispatch::implemented(Code::Movsd_xmm_xmmm64));
    assert!(dispatch::implemented(Code::Cmpsd_xmm_xmmm64_imm8));
    assert!(
        !dispatch::implemented(Code::VEX_Vaddps_xmm_xmm_xmmm128),
        "VEX forms are not implemented"
    );
}

/// A real-mode program using SSE runs through the executor and the block
/// cache like any other code.
#[test]
fn sse_program_runs_through_the_executor() {
    let mut a = CodeAssembler::new(16).unwrap();
    a.mov(bx, 0x1000u32).unwrap();
    a.movaps(xmm0, xmmword_ptr(bx)).unwrap();
    a.movaps(xmm1, xmmword_ptr(bx + 16)).unwrap();
    a.mulps(xmm0, xmm1).unwrap();
    a.haddps(xmm0, xmm0).unwrap();
    a.haddps(xmm0, xmm0).unwrap();
    a.cvttss2si(eax, xmm0).unwrap();
    a.movd(mm0, eax).unwrap();
    a.paddd(mm0, mm0).unwrap();
    a.movd(ecx, mm0).unwrap();
    a.emms().unwrap();
    a.hlt().unwrap();
    let code = a.assemble(0x7c00).unwrap();
    let mut c = cpu();
    c.mem.write(0x7c00, &code);
    let v: Vec<u8> = [1f32, 2., 3., 4., 5., 6., 7., 8.].iter().flat_map(|f| f.to_le_bytes()).collect();
    c.mem.write(0x1000, &v);
    c.load_real_seg(kagami_cpu::state::CS, 0);
    c.s.rip = 0x7c00;
    assert_eq!(c.run(&mut NullBus, 100), kagami_cpu::Exit::Halted);
    // 1*5 + 2*6 + 3*7 + 4*8 = 70, doubled by PADDD.
    assert_eq!(c.s.gpr[0] as u32, 70);
    assert_eq!(c.s.gpr[1] as u32, 140);
    assert_eq!(c.s.fpu.ftw, 0xffff);
}

/// An unmasked overflow delivers nothing; PE follows the rounding of the
/// exponent-unbounded result (host): 1e300 is inexact in single precision,
/// 2^200 is exact, and that holds whether PE is masked or not.
#[test]
fn unmasked_overflow_precision_flag_follows_unbounded_rounding() {
    for mx in [0x1b80u32, 0x0b80, 0x4b54 & !0x3f, 0x3800] {
        for (v, flags) in [(1e300f64, 0x28), (2f64.powi(200), 0x08)] {
            let mut c = cpu();
            c.s.fpu.mxcsr = mx;
            c.s.fpu.xmm[0] = v.to_bits() as u128;
            c.s.fpu.xmm[5] = 7;
            assert_eq!(run(&mut c, |a| a.cvtpd2ps(xmm5, xmm0)), Err(Exception::SimdFloatingPoint));
            assert_eq!(c.s.fpu.mxcsr & 0x3f, flags, "MXCSR {mx:#x}, {v}");
            assert_eq!(c.s.fpu.xmm[5], 7);
        }
    }
}
