//! Bit instructions: BT*, BSF/BSR, LZCNT/TZCNT/POPCNT, BSWAP, SETcc, CMOVcc,
//! BMI1/BMI2, ADX, MOVBE, CRC32.

mod common;
use common::*;
use iced_x86::code_asm::*;
use kagami_cpu::state::flags::{CF, OF, SF, ZF};
use kagami_cpu::{Cpu, Exception};

const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RBX: usize = 3;
const RSI: usize = 6;

/// Offset of DATA in the data segment of the mode (DS base is DATA in real mode).
fn data_off(bits: u32) -> u64 {
    if bits == 16 {
        0
    } else {
        DATA
    }
}

fn set_cf(c: &mut Cpu, on: bool) {
    c.s.set_flag_bits(CF, if on { CF } else { 0 });
}

#[test]
fn bt_register_and_immediate_forms() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RAX] = 0x8001;
        c.s.gpr[RCX] = 15 + 32; // taken modulo 16 for a register operand
        exec(&mut c, |a| a.bt(ax, cx).unwrap()).unwrap();
        assert!(c.s.cf());
        exec(&mut c, |a| a.btr(ax, 0).unwrap()).unwrap();
        assert!(c.s.cf());
        assert_eq!(c.s.gpr[RAX], 0x8000);
        exec(&mut c, |a| a.bts(eax, 33).unwrap()).unwrap(); // 33 mod 32 = 1
        assert!(!c.s.cf());
        assert_eq!(c.s.gpr[RAX], 0x8002);
        exec(&mut c, |a| a.btc(eax, 15).unwrap()).unwrap();
        assert!(c.s.cf());
        assert_eq!(c.s.gpr[RAX], 0x0002);
        // ZF is not touched.
        c.s.set_flag_bits(ZF, ZF);
        exec(&mut c, |a| a.bt(eax, 0).unwrap()).unwrap();
        assert!(c.s.zf() && !c.s.cf());
    }
}

#[test]
fn bt_memory_with_signed_register_offset() {
    for bits in MODES {
        let mut c = machine(bits);
        let base = data_off(bits) + 0x100;
        poke(&c, DATA + 0xfc, &[0, 0, 0, 0x80, 0x01, 0, 0, 0]);
        c.s.gpr[RBX] = base;
        // 16-bit operand, offset -1: bit 15 of the word at [bx-2].
        c.s.gpr[RCX] = 0xffff;
        if bits == 16 {
            exec(&mut c, |a| a.bt(word_ptr(bx), cx).unwrap()).unwrap();
        } else if bits == 32 {
            exec(&mut c, |a| a.bt(word_ptr(ebx), cx).unwrap()).unwrap();
        } else {
            exec(&mut c, |a| a.bt(word_ptr(rbx), cx).unwrap()).unwrap();
        }
        assert!(c.s.cf(), "{bits}: bit 15 of [base-2]");
        // 32-bit operand, offset 32: bit 0 of the dword at [base+4].
        c.s.gpr[RCX] = 32;
        poke(&c, DATA + 0x104, &[1]);
        let r = if bits == 16 {
            exec(&mut c, |a| a.bts(dword_ptr(bx), ecx).unwrap())
        } else if bits == 32 {
            exec(&mut c, |a| a.bts(dword_ptr(ebx), ecx).unwrap())
        } else {
            exec(&mut c, |a| a.bts(dword_ptr(rbx), ecx).unwrap())
        };
        r.unwrap();
        assert!(c.s.cf());
        // 32-bit operand, offset -8: bit 24 of the dword at [base-4], then set.
        c.s.gpr[RCX] = (-8i32) as u32 as u64;
        poke(&c, DATA + 0xfc, &[0, 0, 0, 0]);
        let r = if bits == 16 {
            exec(&mut c, |a| a.bts(dword_ptr(bx), ecx).unwrap())
        } else if bits == 32 {
            exec(&mut c, |a| a.bts(dword_ptr(ebx), ecx).unwrap())
        } else {
            exec(&mut c, |a| a.bts(dword_ptr(rbx), ecx).unwrap())
        };
        r.unwrap();
        assert!(!c.s.cf());
        assert_eq!(peek(&c, DATA + 0xfc, 4), vec![0, 0, 0, 1]);
    }
    // 64-bit operand with a large negative offset: -65 selects bit 63 of the
    // qword 16 bytes below.
    let mut c = machine(64);
    poke(&c, DATA + 0xf0, &[0, 0, 0, 0, 0, 0, 0, 0x80]);
    c.s.gpr[RBX] = DATA + 0x100;
    c.s.gpr[RCX] = (-65i64) as u64;
    exec(&mut c, |a| a.btr(qword_ptr(rbx), rcx).unwrap()).unwrap();
    assert!(c.s.cf());
    assert_eq!(peek(&c, DATA + 0xf0, 8), vec![0; 8]);
}

#[test]
fn bit_scans_and_counts() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RCX] = 0x0050;
        c.s.gpr[RAX] = 0x1234;
        exec(&mut c, |a| a.bsf(ax, cx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 4);
        assert!(!c.s.zf());
        exec(&mut c, |a| a.bsr(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 6);
        // Zero source: ZF=1, destination unchanged.
        c.s.gpr[RCX] = 0;
        c.s.gpr[RAX] = 0x1234_5678;
        exec(&mut c, |a| a.bsf(eax, ecx).unwrap()).unwrap();
        assert!(c.s.zf());
        assert_eq!(c.s.gpr[RAX], 0x1234_5678);
        exec(&mut c, |a| a.bsr(ax, cx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x1234_5678);
        // TZCNT/LZCNT: zero source gives the size and CF=1.
        exec(&mut c, |a| a.tzcnt(ax, cx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] & 0xffff, 16);
        assert!(c.s.cf() && !c.s.zf());
        exec(&mut c, |a| a.lzcnt(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 32);
        c.s.gpr[RCX] = 0x8000_0000;
        exec(&mut c, |a| a.lzcnt(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        assert!(c.s.zf() && !c.s.cf());
        exec(&mut c, |a| a.tzcnt(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 31);
        // POPCNT clears everything but ZF.
        c.s.set_flag_bits(CF | OF | SF, CF | OF | SF);
        c.s.gpr[RCX] = 0xf0f0_0001;
        exec(&mut c, |a| a.popcnt(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 9);
        assert_eq!(c.s.flags() & (CF | OF | SF | ZF), 0);
        c.s.gpr[RCX] = 0;
        exec(&mut c, |a| a.popcnt(cx, cx).unwrap()).unwrap();
        assert!(c.s.zf());
    }
    let mut c = machine(64);
    // Zero source: a 32-bit destination keeps its low half, upper half cleared (Intel).
    c.s.gpr[RCX] = 0;
    c.s.gpr[RAX] = 0xffff_ffff_1234_5678;
    exec(&mut c, |a| a.bsf(eax, ecx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x1234_5678);
    c.s.gpr[RAX] = 0xffff_ffff_1234_5678;
    exec(&mut c, |a| a.bsr(rax, rcx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0xffff_ffff_1234_5678);
    c.s.gpr[RCX] = 1 << 40;
    exec(&mut c, |a| a.bsr(rax, rcx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 40);
    exec(&mut c, |a| a.lzcnt(rax, rcx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 23);
    c.s.gpr[RCX] = u64::MAX;
    exec(&mut c, |a| a.popcnt(rax, rcx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 64);
}

#[test]
fn bswap_setcc_cmovcc() {
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RAX] = 0x1122_3344;
        exec(&mut c, |a| a.bswap(eax).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x4433_2211);
        // CMP 1,2 -> B, NE, L; SETcc into registers and memory.
        c.s.gpr[RAX] = 1;
        exec(&mut c, |a| a.cmp(eax, 2).unwrap()).unwrap();
        c.s.gpr[RBX] = 0xffff;
        exec(&mut c, |a| a.setb(bl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RBX], 0xff01);
        exec(&mut c, |a| a.sete(bh).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RBX], 0x0001);
        let off = data_off(bits);
        poke(&c, DATA, &[0x55]);
        exec(&mut c, |a| a.setl(byte_ptr(off)).unwrap()).unwrap();
        assert_eq!(peek(&c, DATA, 1), vec![1]);
        exec(&mut c, |a| a.setg(byte_ptr(off)).unwrap()).unwrap();
        assert_eq!(peek(&c, DATA, 1), vec![0]);
        // CMOV taken and not taken.
        c.s.gpr[RCX] = 0xabcd;
        c.s.gpr[RDX] = 0x1111;
        exec(&mut c, |a| a.cmovb(dx, cx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RDX], 0xabcd);
        exec(&mut c, |a| a.cmovae(dx, word_ptr(off)).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RDX], 0xabcd);
    }
    let mut c = machine(64);
    // A 32-bit CMOV zero-extends the destination even when not taken.
    c.s.gpr[RDX] = 0xffff_ffff_0000_0001;
    c.s.set_flag_bits(ZF, 0);
    exec(&mut c, |a| a.cmove(edx, ecx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RDX], 1);
    // The memory source is read (and can fault) even when not taken.
    c.s.gpr[RSI] = 0x8000_0000_0000_0000; // non-canonical
    assert_eq!(exec(&mut c, |a| a.cmove(rdx, qword_ptr(rsi)).unwrap()), Err(Exception::GP0));
    c.s.gpr[RAX] = 0x0102_0304_0506_0708;
    exec(&mut c, |a| a.bswap(rax).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x0807_0605_0403_0201);
}

#[test]
fn bmi1() {
    for bits in [32, 64] {
        let mut c = machine(bits);
        c.s.gpr[RCX] = 0xff00_ff00;
        c.s.gpr[RDX] = 0x0ff0_0ff0;
        exec(&mut c, |a| a.andn(eax, ecx, edx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x00f0_00f0);
        assert!(!c.s.zf() && !c.s.cf() && !c.s.of());
        // BEXTR: start 4, length 8.
        c.s.gpr[RCX] = 0x0000_0804;
        c.s.gpr[RDX] = 0x1234_5678;
        exec(&mut c, |a| a.bextr(eax, edx, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x67);
        c.s.gpr[RCX] = 0x0000_ff20; // start beyond the operand
        exec(&mut c, |a| a.bextr(eax, edx, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        assert!(c.s.zf());
        c.s.gpr[RCX] = 0x0000_ff10; // length beyond: everything above start
        exec(&mut c, |a| a.bextr(eax, edx, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x1234);
        // BLSI / BLSMSK / BLSR.
        c.s.gpr[RCX] = 0b1011_0100;
        exec(&mut c, |a| a.blsi(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0b100);
        assert!(c.s.cf());
        exec(&mut c, |a| a.blsmsk(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0b111);
        assert!(!c.s.cf());
        exec(&mut c, |a| a.blsr(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0b1011_0000);
        assert!(!c.s.cf());
        c.s.gpr[RCX] = 0;
        exec(&mut c, |a| a.blsi(eax, ecx).unwrap()).unwrap();
        assert!(!c.s.cf() && c.s.zf());
        exec(&mut c, |a| a.blsmsk(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xffff_ffff);
        assert!(c.s.cf() && c.s.sf() && !c.s.zf());
        exec(&mut c, |a| a.blsr(eax, ecx).unwrap()).unwrap();
        assert!(c.s.cf() && c.s.zf());
    }
}

#[test]
fn bmi2() {
    for bits in [32, 64] {
        let mut c = machine(bits);
        // BZHI.
        c.s.gpr[RCX] = 8;
        c.s.gpr[RDX] = 0xffff_ffff;
        exec(&mut c, |a| a.bzhi(eax, edx, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xff);
        assert!(!c.s.cf());
        c.s.gpr[RCX] = 40;
        exec(&mut c, |a| a.bzhi(eax, edx, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xffff_ffff);
        assert!(c.s.cf());
        // PDEP / PEXT.
        c.s.gpr[RCX] = 0b1011;
        c.s.gpr[RDX] = 0xf0f0_0f00;
        exec(&mut c, |a| a.pdep(eax, ecx, edx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x0000_0b00);
        c.s.gpr[RCX] = 0x1234_5678;
        exec(&mut c, |a| a.pext(eax, ecx, edx).unwrap()).unwrap();
        // bits of 12345678 under f0f00f00: 1,3,6 -> 0x136
        assert_eq!(c.s.gpr[RAX], 0x136);
        c.s.gpr[RDX] = 0;
        exec(&mut c, |a| a.pdep(eax, ecx, edx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        // MULX: flags untouched; same destination gets the high half.
        set_cf(&mut c, true);
        c.s.gpr[RDX] = 0x8000_0000;
        c.s.gpr[RCX] = 6;
        exec(&mut c, |a| a.mulx(ebx, eax, ecx).unwrap()).unwrap();
        assert_eq!((c.s.gpr[RBX], c.s.gpr[RAX]), (3, 0));
        assert!(c.s.cf());
        exec(&mut c, |a| a.mulx(ebx, ebx, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RBX], 3);
        // RORX / SARX / SHLX / SHRX: flags untouched, counts masked.
        c.s.gpr[RCX] = 0x8000_0001;
        exec(&mut c, |a| a.rorx(eax, ecx, 33).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xc000_0000);
        c.s.gpr[RDX] = 36;
        exec(&mut c, |a| a.sarx(eax, ecx, edx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0xf800_0000);
        exec(&mut c, |a| a.shrx(eax, ecx, edx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x0800_0000);
        exec(&mut c, |a| a.shlx(eax, ecx, edx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x10);
        assert!(c.s.cf());
    }
    let mut c = machine(64);
    c.s.gpr[RCX] = 0x5555_5555_5555_5555;
    c.s.gpr[RDX] = 0xffff_0000_0000_ffff;
    exec(&mut c, |a| a.pext(rax, rcx, rdx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0x5555_5555);
    c.s.gpr[RCX] = 0xffff_ffff;
    exec(&mut c, |a| a.pdep(rax, rcx, rdx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0xffff_0000_0000_ffff);
    c.s.gpr[RDX] = u64::MAX;
    c.s.gpr[RCX] = u64::MAX;
    exec(&mut c, |a| a.mulx(rbx, rax, rcx).unwrap()).unwrap();
    assert_eq!((c.s.gpr[RBX], c.s.gpr[RAX]), (u64::MAX - 1, 1));
    c.s.gpr[RCX] = 1;
    c.s.gpr[RDX] = 65;
    exec(&mut c, |a| a.shlx(rax, rcx, rdx).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 2);
    // VEX instructions do not exist in real mode.
    let mut c = machine(16);
    c.s.mode = kagami_cpu::state::Mode::Prot16;
    c.s.gpr[RCX] = 1;
    c.s.gpr[RDX] = 1;
    exec(&mut c, |a| a.andn(eax, ecx, edx).unwrap()).unwrap();
    c.s.mode = kagami_cpu::state::Mode::Real;
    assert_eq!(exec(&mut c, |a| a.andn(eax, ecx, edx).unwrap()), Err(Exception::InvalidOpcode));
}

#[test]
fn adcx_adox_use_only_their_flag() {
    for bits in [32, 64] {
        let mut c = machine(bits);
        c.s.set_flag_bits(CF | OF | ZF, CF | ZF);
        c.s.gpr[RAX] = 0xffff_ffff;
        c.s.gpr[RCX] = 0;
        exec(&mut c, |a| a.adcx(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        assert_eq!(c.s.flags() & (CF | OF | ZF), CF | ZF);
        exec(&mut c, |a| a.adox(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        c.s.gpr[RAX] = 0xffff_fffe;
        c.s.gpr[RCX] = 1;
        c.s.set_flag_bits(OF, OF);
        exec(&mut c, |a| a.adox(eax, ecx).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0);
        assert_eq!(c.s.flags() & (CF | OF | ZF), CF | OF | ZF);
    }
}

#[test]
fn movbe() {
    for bits in MODES {
        let mut c = machine(bits);
        let off = data_off(bits);
        poke(&c, DATA, &[0x11, 0x22, 0x33, 0x44]);
        exec(&mut c, |a| a.movbe(eax, dword_ptr(off)).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX], 0x1122_3344);
        c.s.gpr[RCX] = 0xaabb;
        exec(&mut c, |a| a.movbe(word_ptr(off), cx).unwrap()).unwrap();
        assert_eq!(peek(&c, DATA, 4), vec![0xaa, 0xbb, 0x33, 0x44]);
    }
    let mut c = machine(64);
    c.s.gpr[RCX] = 0x0102_0304_0506_0708;
    exec(&mut c, |a| a.movbe(qword_ptr(DATA), rcx).unwrap()).unwrap();
    assert_eq!(peek(&c, DATA, 8), vec![1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn crc32c_check_value_and_widths() {
    // The CRC-32C check value: "123456789" -> E3069283h (with the usual
    // pre- and post-inversion done by software).
    let msg = b"123456789";
    for bits in MODES {
        let mut c = machine(bits);
        c.s.gpr[RAX] = 0xffff_ffff;
        for &b in msg {
            c.s.gpr[RCX] = b as u64;
            exec(&mut c, |a| a.crc32(eax, cl).unwrap()).unwrap();
        }
        assert_eq!(c.s.gpr[RAX] ^ 0xffff_ffff, 0xe306_9283, "{bits}");
        // The same with word and dword steps: "1234" "5678" "9" / "12" …
        c.s.gpr[RAX] = 0xffff_ffff;
        c.s.gpr[RCX] = u32::from_le_bytes(*b"1234") as u64;
        exec(&mut c, |a| a.crc32(eax, ecx).unwrap()).unwrap();
        c.s.gpr[RCX] = u16::from_le_bytes(*b"56") as u64;
        exec(&mut c, |a| a.crc32(eax, cx).unwrap()).unwrap();
        c.s.gpr[RCX] = u16::from_le_bytes(*b"78") as u64;
        exec(&mut c, |a| a.crc32(eax, cx).unwrap()).unwrap();
        c.s.gpr[RCX] = b'9' as u64;
        exec(&mut c, |a| a.crc32(eax, cl).unwrap()).unwrap();
        assert_eq!(c.s.gpr[RAX] ^ 0xffff_ffff, 0xe306_9283);
    }
    let mut c = machine(64);
    c.s.gpr[RAX] = 0xffff_ffff_ffff_ffff; // upper half ignored, result zero-extended
    c.s.gpr[RCX] = u64::from_le_bytes(*b"12345678");
    exec(&mut c, |a| a.crc32(rax, rcx).unwrap()).unwrap();
    c.s.gpr[RCX] = b'9' as u64;
    exec(&mut c, |a| a.crc32(rax, cl).unwrap()).unwrap();
    assert_eq!(c.s.gpr[RAX], 0xe306_9283 ^ 0xffff_ffff);
    // 32 zero bytes (RFC 3720 B.4): 8A9136AAh.
    let mut crc = 0xffff_ffffu64;
    for _ in 0..4 {
        c.s.gpr[RAX] = crc;
        c.s.gpr[RCX] = 0;
        exec(&mut c, |a| a.crc32(rax, rcx).unwrap()).unwrap();
        crc = c.s.gpr[RAX];
    }
    assert_eq!(crc ^ 0xffff_ffff, 0x8a91_36aa);
}
