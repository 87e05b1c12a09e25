//! Lazy arithmetic flags (the scheme of QEMU's `CC_OP` and Bochs' lazy flags).
//!
//! Flag-setting instructions store the operation, its result and its sources in
//! `cc_op`/`cc_dst`/`cc_src1`/`cc_src2`; the six arithmetic flags are computed
//! only when something reads them. `CC_EFLAGS` means they are already in
//! `rflags`. An op value is `base | size` where size is log2 of the operand
//! width in bytes (0 = 8-bit … 3 = 64-bit).

use crate::state::{flags::*, CcOp, CpuState};

pub const CC_EFLAGS: CcOp = 0;
/// dst = src1 + src2.
pub const CC_ADD: CcOp = 4;
/// dst = src1 + src2 + carry.
pub const CC_ADC: CcOp = 8;
/// dst = src1 - src2.
pub const CC_SUB: CcOp = 12;
/// dst = src1 - src2 - borrow.
pub const CC_SBB: CcOp = 16;
/// dst = logic result; CF = OF = AF = 0.
pub const CC_LOGIC: CcOp = 20;
/// dst = src1 + 1; src2 = the CF to keep (0/1).
pub const CC_INC: CcOp = 24;
/// dst = src1 - 1; src2 = the CF to keep (0/1).
pub const CC_DEC: CcOp = 28;
/// dst = result; src1 = value shifted left by count-1 (CF is its top bit).
pub const CC_SHL: CcOp = 32;
/// dst = result; src1 = value shifted right by count-1 (CF is its bit 0).
/// OF = top bit of (src1 ^ dst), which is right for SHR and SAR by one.
pub const CC_SHR: CcOp = 36;
/// dst = low half of the product; CF = OF = (src1 != 0).
pub const CC_MUL: CcOp = 40;

#[inline(always)]
pub fn size_mask(size: u32) -> u64 {
    match size {
        0 => 0xff,
        1 => 0xffff,
        2 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

#[inline(always)]
fn sign_bit(size: u32) -> u64 {
    1u64 << ((8u32 << size) - 1)
}

/// log2 of an operand size in bytes (1, 2, 4, 8).
#[inline(always)]
pub fn size_log2(bytes: usize) -> u32 {
    bytes.trailing_zeros()
}

#[inline(always)]
pub fn parity(v: u64) -> u64 {
    if (v as u8).count_ones() & 1 == 0 {
        PF
    } else {
        0
    }
}

#[inline(always)]
fn szp(dst: u64, size: u32) -> u64 {
    let d = dst & size_mask(size);
    let mut f = parity(d);
    if d == 0 {
        f |= ZF;
    }
    if d & sign_bit(size) != 0 {
        f |= SF;
    }
    f
}

/// Compute the six arithmetic flags from the lazy fields.
pub fn compute(s: &CpuState) -> u64 {
    let op = s.cc_op;
    if op == CC_EFLAGS {
        return s.rflags & ARITH;
    }
    let size = op & 3;
    let m = size_mask(size);
    let sb = sign_bit(size);
    let (dst, a, b) = (s.cc_dst & m, s.cc_src1 & m, s.cc_src2 & m);
    let base = op & !3;
    let mut f = szp(dst, size);
    match base {
        CC_ADD | CC_ADC => {
            let cin = if base == CC_ADC {
                dst.wrapping_sub(a).wrapping_sub(b) & m
            } else {
                0
            };
            if dst < a || (cin != 0 && dst == a) {
                f |= CF;
            }
            if (a ^ dst) & (b ^ dst) & sb != 0 {
                f |= OF;
            }
            f |= (a ^ b ^ dst) & AF;
        }
        CC_SUB | CC_SBB => {
            let bin = if base == CC_SBB {
                a.wrapping_sub(b).wrapping_sub(dst) & m
            } else {
                0
            };
            if a < b || (bin != 0 && a == b) {
                f |= CF;
            }
            if (a ^ b) & (a ^ dst) & sb != 0 {
                f |= OF;
            }
            f |= (a ^ b ^ dst) & AF;
        }
        CC_LOGIC => {}
        CC_INC => {
            f |= s.cc_src2 & CF;
            if dst == sb {
                f |= OF;
            }
            f |= (a ^ dst) & AF;
        }
        CC_DEC => {
            f |= s.cc_src2 & CF;
            if dst == sb - 1 {
                f |= OF;
            }
            f |= (a ^ dst) & AF;
        }
        CC_SHL => {
            if a & sb != 0 {
                f |= CF;
            }
            if ((a & sb != 0) as u64) ^ ((dst & sb != 0) as u64) != 0 {
                f |= OF;
            }
        }
        CC_SHR => {
            f |= a & CF;
            if (a ^ dst) & sb != 0 {
                f |= OF;
            }
        }
        CC_MUL => {
            if a != 0 {
                f |= CF | OF;
            }
        }
        _ => panic!("corrupt cc_op {op:#x}"),
    }
    f
}

#[cold]
#[inline(never)]
fn cf_slow(s: &CpuState) -> bool {
    compute(s) & CF != 0
}

impl CpuState {
    /// Record a flag-setting operation. `op` is a `CC_*` base; `size` is log2 bytes.
    #[inline(always)]
    pub fn set_cc(&mut self, op: CcOp, size: u32, dst: u64, src1: u64, src2: u64) {
        self.cc_op = op | size;
        self.cc_dst = dst;
        self.cc_src1 = src1;
        self.cc_src2 = src2;
    }

    /// The full RFLAGS value.
    #[inline]
    pub fn flags(&self) -> u64 {
        (self.rflags & !ARITH) | compute(self)
    }

    /// Replace the whole RFLAGS (callers apply privilege rules first).
    #[inline]
    pub fn set_flags(&mut self, v: u64) {
        self.rflags = (v & LIVE) | FIXED1;
        self.cc_op = CC_EFLAGS;
    }

    /// Replace the bits in `mask` with those of `v`, keeping the rest.
    #[inline]
    pub fn set_flag_bits(&mut self, mask: u64, v: u64) {
        let cur = self.flags();
        self.set_flags((cur & !mask) | (v & mask));
    }

    /// CF, without computing the other flags for the common operations
    /// (tests in the order they usually come up: INC/DEC keep CF, CMP/SUB,
    /// logic, ADD, MUL).
    #[inline(always)]
    pub fn cf(&self) -> bool {
        let op = self.cc_op;
        let base = op & !3;
        let m = size_mask(op & 3);
        if base == CC_INC || base == CC_DEC {
            self.cc_src2 & CF != 0
        } else if base == CC_SUB {
            (self.cc_src1 & m) < (self.cc_src2 & m)
        } else if base == CC_LOGIC {
            false
        } else if base == CC_ADD {
            (self.cc_dst & m) < (self.cc_src1 & m)
        } else if base == CC_MUL {
            self.cc_src1 & m != 0
        } else if op == CC_EFLAGS {
            self.rflags & CF != 0
        } else {
            cf_slow(self)
        }
    }

    #[inline(always)]
    pub fn zf(&self) -> bool {
        if self.cc_op == CC_EFLAGS {
            self.rflags & ZF != 0
        } else {
            self.cc_dst & size_mask(self.cc_op & 3) == 0
        }
    }

    #[inline(always)]
    pub fn sf(&self) -> bool {
        if self.cc_op == CC_EFLAGS {
            self.rflags & SF != 0
        } else {
            self.cc_dst & sign_bit(self.cc_op & 3) != 0
        }
    }

    #[inline(always)]
    pub fn of(&self) -> bool {
        compute(self) & OF != 0
    }

    #[inline(always)]
    pub fn pf(&self) -> bool {
        compute(self) & PF != 0
    }

    /// Evaluate a condition code (the `cc` of Jcc/SETcc/CMOVcc, 0..15).
    /// After a CMP/SUB or a logic operation, the usual case before a
    /// branch, it is answered from the operands without computing flags.
    #[inline]
    pub fn cond(&self, cc: u8) -> bool {
        self.cond_inline(cc)
    }

    /// `cond`, always inlined: with a constant `cc` the tests fold away.
    #[inline(always)]
    pub fn cond_inline(&self, cc: u8) -> bool {
        let op = self.cc_op;
        if cc >> 1 == 2 {
            return self.zf() ^ (cc & 1 != 0);
        }
        let r = match op & !3 {
            CC_SUB => {
                let size = op & 3;
                let m = size_mask(size);
                let (a, b) = (self.cc_src1 & m, self.cc_src2 & m);
                // Signed view of the operands: SF != OF exactly when a < b signed.
                let sh = 64 - (8u32 << size);
                let (sa, sb) = (((a << sh) as i64) >> sh, ((b << sh) as i64) >> sh);
                match cc >> 1 {
                    1 => a < b,
                    2 => a == b,
                    3 => a <= b,
                    6 => sa < sb,
                    7 => sa <= sb,
                    _ => self.cond_slow(cc >> 1),
                }
            }
            CC_LOGIC => {
                let size = op & 3;
                let d = self.cc_dst & size_mask(size);
                let sf = d & sign_bit(size) != 0;
                match cc >> 1 {
                    0 | 1 => false,
                    2 | 3 => d == 0,
                    4 | 6 => sf,
                    7 => d == 0 || sf,
                    _ => parity(d) != 0,
                }
            }
            _ => self.cond_slow(cc >> 1),
        };
        r ^ (cc & 1 != 0)
    }

    /// The positive condition `c` (0..7: O, B, Z, BE, S, P, L, LE).
    fn cond_slow(&self, c: u8) -> bool {
        match c {
            0 => self.of(),
            1 => self.cf(),
            2 => self.zf(),
            3 => self.cf() || self.zf(),
            4 => self.sf(),
            5 => self.pf(),
            6 => {
                let f = compute(self);
                ((f & SF) != 0) != ((f & OF) != 0)
            }
            _ => {
                let f = compute(self);
                f & ZF != 0 || (((f & SF) != 0) != ((f & OF) != 0))
            }
        }
    }

    #[inline(always)]
    pub fn df(&self) -> bool {
        self.rflags & DF != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sub_flags_match_definitions() {
        let mut s = CpuState::default();
        s.set_cc(CC_ADD, 0, 0x7f_u64.wrapping_add(1), 0x7f, 1);
        let f = compute(&s);
        assert_eq!(f & (OF | SF | AF | CF | ZF), OF | SF | AF);
        s.set_cc(CC_SUB, 2, 0u64.wrapping_sub(1), 0, 1);
        let f = compute(&s);
        assert_eq!(f & (CF | SF | ZF | OF), CF | SF);
        assert!(s.cf());
        assert!(s.cond(2)); // B
        assert!(!s.cond(3)); // AE
        s.set_cc(CC_SBB, 1, 0xffff, 0, 0);
        assert!(s.cf(), "0 - 0 - 1 borrows");
    }

    /// A small deterministic generator (xorshift64*) biased to edge values.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        match v & 7 {
            0 => 0,
            1 => u64::MAX,
            2 => 1u64 << (v >> 58),
            3 => (1u64 << (v >> 58)).wrapping_sub(1),
            _ => v >> 3,
        }
    }

    /// Reference flags from wide integer arithmetic, independent of `compute`.
    fn reference(kind: u32, size: u32, a: u64, b: u64, cin: u64) -> u64 {
        let bits = 8u32 << size;
        let m = size_mask(size);
        let (a, b) = (a & m, b & m);
        let sx = |v: u64| (((v as u128) << (128 - bits)) as i128) >> (128 - bits);
        let (r, cf, of) = match kind {
            0 => {
                let w = a as u128 + b as u128 + cin as u128;
                let sw = sx(a) + sx(b) + cin as i128;
                (w as u64 & m, (w >> bits) & 1 != 0, sw != sx(w as u64 & m))
            }
            _ => {
                let w = (a as i128) - (b as i128) - cin as i128;
                let sw = sx(a) - sx(b) - cin as i128;
                (w as u64 & m, w < 0, sw != sx(w as u64 & m))
            }
        };
        let mut f = szp(r, size) | ((a ^ b ^ r) & AF);
        if cf {
            f |= CF;
        }
        if of {
            f |= OF;
        }
        f
    }

    #[test]
    fn lazy_arith_flags_match_wide_reference() {
        let mut st = 0x1234_5678_9abc_def1u64;
        let mut s = CpuState::default();
        for _ in 0..200_000 {
            let size = (rng(&mut st) & 3) as u32;
            let m = size_mask(size);
            let (a, b) = (rng(&mut st) & m, rng(&mut st) & m);
            let cin = rng(&mut st) & 1;
            s.set_cc(CC_ADD, size, a.wrapping_add(b) & m, a, b);
            assert_eq!(compute(&s), reference(0, size, a, b, 0), "add {size} {a:x} {b:x}");
            s.set_cc(CC_ADC, size, a.wrapping_add(b).wrapping_add(cin) & m, a, b);
            assert_eq!(compute(&s), reference(0, size, a, b, cin), "adc {size} {a:x} {b:x} {cin}");
            s.set_cc(CC_SUB, size, a.wrapping_sub(b) & m, a, b);
            assert_eq!(compute(&s), reference(1, size, a, b, 0), "sub {size} {a:x} {b:x}");
            assert_eq!(s.cf(), compute(&s) & CF != 0);
            s.set_cc(CC_SBB, size, a.wrapping_sub(b).wrapping_sub(cin) & m, a, b);
            assert_eq!(compute(&s), reference(1, size, a, b, cin), "sbb {size} {a:x} {b:x} {cin}");
            // INC/DEC: the ADD/SUB flags with 1, CF kept.
            s.set_cc(CC_INC, size, a.wrapping_add(1) & m, a, cin);
            assert_eq!(compute(&s), (reference(0, size, a, 1, 0) & !CF) | cin, "inc {size} {a:x}");
            s.set_cc(CC_DEC, size, a.wrapping_sub(1) & m, a, cin);
            assert_eq!(compute(&s), (reference(1, size, a, 1, 0) & !CF) | cin, "dec {size} {a:x}");
            // Every condition code agrees with its definition on the flags,
            // after every kind of operation (cond has fast paths for some).
            for (op, d, x, y) in [
                (CC_SUB, a.wrapping_sub(b), a, b),
                (CC_LOGIC, a & b, 0, 0),
                (CC_ADD, a.wrapping_add(b), a, b),
                (CC_MUL, a, b & 1, 0),
                (CC_INC, a.wrapping_add(1), a, cin),
            ] {
                s.set_cc(op, size, d & m, x, y);
                let f = compute(&s);
                assert_eq!(s.cf(), f & CF != 0, "cf after op {op} size {size} {a:x} {b:x}");
                let (cf, zf, sf, of, pf) = (f & CF != 0, f & ZF != 0, f & SF != 0, f & OF != 0, f & PF != 0);
                let want = [of, cf, zf, cf || zf, sf, pf, sf != of, zf || sf != of];
                for cc in 0..16u8 {
                    assert_eq!(
                        s.cond(cc),
                        want[cc as usize >> 1] ^ (cc & 1 != 0),
                        "cc {cc} op {op} size {size} {a:x} {b:x}"
                    );
                }
            }
            s.set_cc(CC_DEC, size, a.wrapping_sub(1) & m, a, cin);
            let f = compute(&s);
            let (cf, zf, sf, of, pf) = (f & CF != 0, f & ZF != 0, f & SF != 0, f & OF != 0, f & PF != 0);
            let want = [of, cf, zf, cf || zf, sf, pf, sf != of, zf || sf != of];
            for cc in 0..16u8 {
                assert_eq!(s.cond(cc), want[cc as usize >> 1] ^ (cc & 1 != 0));
            }
        }
    }
}
