//! IEEE 754 binary32/binary64 arithmetic with the SSE environment: MXCSR
//! rounding control, DAZ, FTZ, the six exception flags and SSE's masked
//! responses (SDM Vol. 1, 4.8 and 11.5). Exact results are computed with
//! integer arithmetic on u128 significands and rounded once in `round_pack`,
//! so every result is correctly rounded in every mode; nothing depends on
//! the host's floating-point unit.
//!
//! Values travel as raw bit patterns in a `u64` (binary32 in the low 32 bits).

/// MXCSR exception flag bits (and, shifted left by 7, their masks).
pub const IE: u32 = 1;
pub const DE: u32 = 2;
pub const ZE: u32 = 4;
pub const OE: u32 = 8;
pub const UE: u32 = 16;
pub const PE: u32 = 32;

/// A binary floating-point format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fmt {
    pub ebits: u32,
    pub mbits: u32,
}

pub const F32: Fmt = Fmt { ebits: 8, mbits: 23 };
pub const F64: Fmt = Fmt { ebits: 11, mbits: 52 };

impl Fmt {
    #[inline]
    fn bias(self) -> i32 {
        (1 << (self.ebits - 1)) - 1
    }
    #[inline]
    fn emax_field(self) -> u64 {
        (1 << self.ebits) - 1
    }
    #[inline]
    fn sign_bit(self) -> u64 {
        1 << (self.ebits + self.mbits)
    }
    #[inline]
    fn man_mask(self) -> u64 {
        (1 << self.mbits) - 1
    }
    #[inline]
    pub fn exp_field(self, v: u64) -> u64 {
        (v >> self.mbits) & self.emax_field()
    }
    #[inline]
    pub fn sign(self, v: u64) -> bool {
        v & self.sign_bit() != 0
    }
    #[inline]
    pub fn is_nan(self, v: u64) -> bool {
        self.exp_field(v) == self.emax_field() && v & self.man_mask() != 0
    }
    #[inline]
    pub fn is_snan(self, v: u64) -> bool {
        self.is_nan(v) && v & (1 << (self.mbits - 1)) == 0
    }
    #[inline]
    pub fn is_inf(self, v: u64) -> bool {
        self.exp_field(v) == self.emax_field() && v & self.man_mask() == 0
    }
    #[inline]
    pub fn is_zero(self, v: u64) -> bool {
        v & (self.sign_bit() - 1) == 0
    }
    #[inline]
    pub fn is_denormal(self, v: u64) -> bool {
        self.exp_field(v) == 0 && v & self.man_mask() != 0
    }
    #[inline]
    pub fn quiet(self, v: u64) -> u64 {
        v | (1 << (self.mbits - 1))
    }
    /// The "real indefinite" QNaN: sign set, quiet bit only.
    #[inline]
    pub fn default_nan(self) -> u64 {
        self.sign_bit() | (self.emax_field() << self.mbits) | (1 << (self.mbits - 1))
    }
    #[inline]
    pub fn inf(self, sign: bool) -> u64 {
        (self.emax_field() << self.mbits) | if sign { self.sign_bit() } else { 0 }
    }
    #[inline]
    pub fn zero(self, sign: bool) -> u64 {
        if sign {
            self.sign_bit()
        } else {
            0
        }
    }
    #[inline]
    fn max_finite(self, sign: bool) -> u64 {
        self.inf(sign) - 1
    }
    /// Finite non-zero `v` as (sign, exponent, significand) with value sig * 2^exp.
    #[inline]
    fn unpack(self, v: u64) -> (bool, i32, u128) {
        let e = self.exp_field(v) as i32;
        let m = (v & self.man_mask()) as u128;
        let emin = 1 - self.bias();
        if e == 0 {
            (self.sign(v), emin - self.mbits as i32, m)
        } else {
            (self.sign(v), e - self.bias() - self.mbits as i32, m | (1 << self.mbits))
        }
    }
}

/// The SIMD floating-point environment of one instruction: MXCSR controls
/// in, accumulated exception flags out.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    /// Rounding control: 0 nearest-even, 1 down, 2 up, 3 toward zero.
    pub rc: u32,
    pub daz: bool,
    pub ftz: bool,
    /// Underflow masked (FTZ only acts then; unmasked underflow is reported
    /// for tiny results even when exact).
    pub um: bool,
    /// Overflow masked (an unmasked overflow reports PE only when the
    /// exponent-unbounded result is inexact, as the host does).
    pub om: bool,
    pub flags: u32,
}

impl Env {
    pub fn from_mxcsr(mxcsr: u32) -> Env {
        Env {
            rc: (mxcsr >> 13) & 3,
            daz: mxcsr & (1 << 6) != 0,
            ftz: mxcsr & (1 << 15) != 0,
            um: mxcsr & (1 << 11) != 0,
            om: mxcsr & (1 << 10) != 0,
            flags: 0,
        }
    }

    /// Apply DAZ to an input and report a denormal operand (DE) otherwise.
    #[inline]
    pub fn input(&mut self, f: Fmt, v: u64) -> u64 {
        if f.is_denormal(v) {
            if self.daz {
                return v & f.sign_bit();
            }
            self.flags |= DE;
        }
        v
    }

    /// Apply DAZ without raising DE (instructions that do not report it).
    #[inline]
    pub fn daz_only(&self, f: Fmt, v: u64) -> u64 {
        if self.daz && f.is_denormal(v) {
            v & f.sign_bit()
        } else {
            v
        }
    }

    /// The SSE rule for a two-operand NaN result: an SNaN raises IE; the
    /// first source's NaN wins, quieted (SDM Vol. 1, table 4-7).
    #[inline]
    fn nan2(&mut self, f: Fmt, a: u64, b: u64) -> u64 {
        if f.is_snan(a) || f.is_snan(b) {
            self.flags |= IE;
        }
        if f.is_nan(a) {
            f.quiet(a)
        } else {
            f.quiet(b)
        }
    }

    #[inline]
    fn invalid(&mut self, f: Fmt) -> u64 {
        self.flags |= IE;
        f.default_nan()
    }

    /// Round sig * 2^exp (sig != 0; bit 0 may carry a sticky bit for
    /// discarded non-zero bits, provided sig has at least p+2 significant
    /// bits then) to the format, with overflow, underflow (tininess after
    /// rounding, as x86 detects it) and FTZ.
    pub fn round_pack(&mut self, f: Fmt, sign: bool, exp: i32, sig: u128) -> u64 {
        debug_assert!(sig != 0);
        let p = f.mbits + 1;
        let lz = sig.leading_zeros();
        let sig = sig << lz;
        // Value = sig * 2^(exp - lz), sig in [2^127, 2^128): unbiased exponent e.
        let e = exp - lz as i32 + 127;
        let emin = 1 - f.bias();
        let sign_bits = if sign { f.sign_bit() } else { 0 };
        let round = |shift: u32, rc: u32| -> (u128, bool, bool) {
            // (kept, increment, inexact)
            let (kept, guard, sticky) = if shift <= 127 {
                (sig >> shift, (sig >> (shift - 1)) & 1 != 0, sig & ((1u128 << (shift - 1)) - 1) != 0)
            } else if shift == 128 {
                (0, true, sig & ((1u128 << 127) - 1) != 0)
            } else {
                (0, false, true)
            };
            let inexact = guard || sticky;
            let inc = match rc {
                0 => guard && (sticky || kept & 1 != 0),
                1 => inexact && sign,
                2 => inexact && !sign,
                _ => false,
            };
            (kept, inc, inexact)
        };
        let normal_shift = 128 - p;
        let tiny = if e < emin - 1 {
            true
        } else if e == emin - 1 {
            let (kept, inc, _) = round(normal_shift, self.rc);
            kept + inc as u128 != 1u128 << p
        } else {
            false
        };
        if tiny {
            if self.um && self.ftz {
                self.flags |= UE | PE;
                return sign_bits;
            }
            if !self.um {
                // Unmasked: no result is delivered; PE reflects the
                // exponent-unbounded rounding (host behaviour).
                let (_, _, inexact) = round(normal_shift, self.rc);
                self.flags |= UE | if inexact { PE } else { 0 };
                return sign_bits;
            }
            let shift = normal_shift as i64 + (emin - e) as i64;
            let shift = shift.min(200) as u32;
            let (kept, inc, inexact) = round(shift, self.rc);
            if inexact {
                self.flags |= UE | PE;
            } else if !self.um {
                self.flags |= UE;
            }
            // A carry into the hidden bit yields the smallest normal, which
            // the encoding represents naturally.
            return sign_bits | (kept + inc as u128) as u64;
        }
        let (mut kept, inc, inexact) = round(normal_shift, self.rc);
        let mut e = e;
        kept += inc as u128;
        if kept == 1u128 << p {
            kept >>= 1;
            e += 1;
        }
        if inexact {
            self.flags |= PE;
        }
        let biased = e + f.bias();
        if biased as i64 >= f.emax_field() as i64 {
            // Masked overflow delivers ∞/max (inexact); unmasked delivers
            // nothing and PE follows the exponent-unbounded rounding.
            self.flags |= if self.om { OE | PE } else { OE };
            let to_inf = match self.rc {
                0 => true,
                1 => sign,
                2 => !sign,
                _ => false,
            };
            return if to_inf { f.inf(sign) } else { f.max_finite(sign) };
        }
        sign_bits | ((biased as u64) << f.mbits) | (kept as u64 & f.man_mask())
    }

    /// a + b, or a - b when `sub`.
    pub fn add(&mut self, f: Fmt, a: u64, b: u64, sub: bool) -> u64 {
        if f.is_nan(a) || f.is_nan(b) {
            return self.nan2(f, a, b);
        }
        let a = self.input(f, a);
        let b = self.input(f, b);
        let b = if sub { b ^ f.sign_bit() } else { b };
        let (sa, sb) = (f.sign(a), f.sign(b));
        if f.is_inf(a) || f.is_inf(b) {
            if f.is_inf(a) && f.is_inf(b) && sa != sb {
                return self.invalid(f);
            }
            return if f.is_inf(a) { a } else { b };
        }
        if f.is_zero(a) && f.is_zero(b) {
            return if sa == sb { a } else { f.zero(self.rc == 1) };
        }
        if f.is_zero(b) {
            let (s, e, m) = f.unpack(a);
            return self.round_pack(f, s, e, m);
        }
        if f.is_zero(a) {
            let (s, e, m) = f.unpack(b);
            return self.round_pack(f, s, e, m);
        }
        let (sa, ea, ma) = f.unpack(a);
        let (sb, eb, mb) = f.unpack(b);
        // Align to the smaller exponent when that is exact in 128 bits;
        // otherwise the larger operand is normal: put it high and jam the
        // smaller one into a sticky bit far below the rounding position.
        let ((s1, e1, m1), (s2, e2, m2)) = if ea >= eb {
            ((sa, ea, ma), (sb, eb, mb))
        } else {
            ((sb, eb, mb), (sa, ea, ma))
        };
        let diff = (e1 - e2) as u32;
        let (e, m1, m2) = if diff < 64 {
            (e2, m1 << diff, m2)
        } else {
            let r = diff - 64; // m2 moves right by diff - 72 (>= -8)
            let m2 = if r < 8 {
                m2 << (8 - r)
            } else if r - 8 >= 120 {
                1
            } else {
                let sh = r - 8;
                (m2 >> sh) | ((m2 & ((1u128 << sh) - 1) != 0) as u128)
            };
            (e1 - 72, m1 << 72, m2)
        };
        if s1 == s2 {
            self.round_pack(f, s1, e, m1 + m2)
        } else if m1 > m2 {
            self.round_pack(f, s1, e, m1 - m2)
        } else if m2 > m1 {
            self.round_pack(f, s2, e, m2 - m1)
        } else {
            f.zero(self.rc == 1)
        }
    }

    pub fn mul(&mut self, f: Fmt, a: u64, b: u64) -> u64 {
        if f.is_nan(a) || f.is_nan(b) {
            return self.nan2(f, a, b);
        }
        let a = self.input(f, a);
        let b = self.input(f, b);
        let sign = f.sign(a) != f.sign(b);
        if f.is_inf(a) || f.is_inf(b) {
            if f.is_zero(a) || f.is_zero(b) {
                return self.invalid(f);
            }
            return f.inf(sign);
        }
        if f.is_zero(a) || f.is_zero(b) {
            return f.zero(sign);
        }
        let (_, ea, ma) = f.unpack(a);
        let (_, eb, mb) = f.unpack(b);
        self.round_pack(f, sign, ea + eb, ma * mb)
    }

    pub fn div(&mut self, f: Fmt, a: u64, b: u64) -> u64 {
        if f.is_nan(a) || f.is_nan(b) {
            return self.nan2(f, a, b);
        }
        // Hardware reports a zero divisor (ZE) without DE for a denormal
        // dividend.
        if f.is_zero(self.daz_only(f, b)) && !f.is_zero(self.daz_only(f, a)) && !f.is_inf(a) {
            self.flags |= ZE;
            return f.inf(f.sign(a) != f.sign(b));
        }
        let a = self.input(f, a);
        let b = self.input(f, b);
        let sign = f.sign(a) != f.sign(b);
        if f.is_inf(a) {
            if f.is_inf(b) {
                return self.invalid(f);
            }
            return f.inf(sign);
        }
        if f.is_inf(b) {
            return f.zero(sign);
        }
        if f.is_zero(b) {
            if f.is_zero(a) {
                return self.invalid(f);
            }
            self.flags |= ZE;
            return f.inf(sign);
        }
        if f.is_zero(a) {
            return f.zero(sign);
        }
        let (_, ea, ma) = f.unpack(a);
        let (_, eb, mb) = f.unpack(b);
        let s = ma.leading_zeros() - 1;
        let num = ma << s;
        let q = num / mb;
        let r = num % mb;
        self.round_pack(f, sign, ea - s as i32 - eb - 1, q << 1 | (r != 0) as u128)
    }

    pub fn sqrt(&mut self, f: Fmt, a: u64) -> u64 {
        if f.is_nan(a) {
            if f.is_snan(a) {
                self.flags |= IE;
            }
            return f.quiet(a);
        }
        // A negative operand is invalid before a denormal one is reported.
        if f.sign(a) && !f.is_zero(self.daz_only(f, a)) {
            return self.invalid(f);
        }
        let a = self.input(f, a);
        if f.is_zero(a) {
            return a;
        }
        if f.is_inf(a) {
            return a;
        }
        let (_, mut e, mut m) = f.unpack(a);
        if e & 1 != 0 {
            m <<= 1;
            e -= 1;
        }
        let lz = m.leading_zeros() & !1;
        let m = m << lz;
        let e = e - lz as i32;
        let (root, rem) = isqrt(m);
        self.round_pack(f, false, e / 2 - 1, root << 1 | (rem != 0) as u128)
    }
}

impl Env {
    /// Convert between formats (CVTSS2SD, CVTSD2SS, CVTPS2PD, CVTPD2PS).
    pub fn convert(&mut self, from: Fmt, to: Fmt, v: u64) -> u64 {
        let sign = from.sign(v);
        if from.is_nan(v) {
            if from.is_snan(v) {
                self.flags |= IE;
            }
            let payload = v & from.man_mask();
            let payload = if to.mbits > from.mbits {
                payload << (to.mbits - from.mbits)
            } else {
                payload >> (from.mbits - to.mbits)
            };
            return to.quiet(to.inf(sign) | payload);
        }
        let v = self.input(from, v);
        if from.is_inf(v) {
            return to.inf(sign);
        }
        if from.is_zero(v) {
            return to.zero(sign);
        }
        let (s, e, m) = from.unpack(v);
        self.round_pack(to, s, e, m)
    }

    /// A signed integer to float (CVTSI2SS and friends).
    pub fn from_int(&mut self, f: Fmt, v: i64) -> u64 {
        if v == 0 {
            return 0;
        }
        self.round_pack(f, v < 0, 0, v.unsigned_abs() as u128)
    }

    /// Round finite non-zero (sign, exp, sig) to an integer magnitude with
    /// rounding control `rc`: (magnitude, inexact). Magnitudes are capped at
    /// 2^65 (anything larger is out of range for every caller).
    fn to_integer(sign: bool, exp: i32, sig: u128, rc: u32) -> (u128, bool) {
        if exp >= 0 {
            if exp > 64 {
                return (1 << 65, false);
            }
            return (sig << exp, false);
        }
        let r = (-exp) as u32;
        let (int, frac_half, frac_rest) = if r > 120 {
            (0, false, true)
        } else {
            (sig >> r, (sig >> (r - 1)) & 1 != 0, sig & ((1u128 << (r - 1)) - 1) != 0)
        };
        let inexact = frac_half || frac_rest;
        let inc = match rc {
            0 => frac_half && (frac_rest || int & 1 != 0),
            1 => inexact && sign,
            2 => inexact && !sign,
            _ => false,
        };
        (int + inc as u128, inexact)
    }

    /// Float to a `bits`-wide signed integer (CVT*2SI/DQ/PI); `truncate` for
    /// the CVTT forms. NaN, infinity and out-of-range give the integer
    /// indefinite 1 << (bits-1) with IE.
    pub fn to_int(&mut self, f: Fmt, v: u64, bits: u32, truncate: bool) -> u64 {
        let indefinite = 1u64 << (bits - 1);
        if f.is_nan(v) || f.is_inf(v) {
            self.flags |= IE;
            return indefinite;
        }
        let v = self.daz_only(f, v);
        if f.is_zero(v) {
            return 0;
        }
        let (sign, e, m) = f.unpack(v);
        let (mag, inexact) = Self::to_integer(sign, e, m, if truncate { 3 } else { self.rc });
        let limit = 1u128 << (bits - 1);
        if (sign && mag > limit) || (!sign && mag >= limit) {
            self.flags |= IE;
            return indefinite;
        }
        if inexact {
            self.flags |= PE;
        }
        let r = if sign { (mag as u64).wrapping_neg() } else { mag as u64 };
        if bits == 64 {
            r
        } else {
            r & 0xffff_ffff
        }
    }

    /// Round to an integral value in the same format (ROUNDPS/PD/SS/SD).
    /// `rc` is the rounding control to use; `inexact_ok` suppresses PE.
    pub fn round_int(&mut self, f: Fmt, v: u64, rc: u32, suppress_pe: bool) -> u64 {
        if f.is_nan(v) {
            if f.is_snan(v) {
                self.flags |= IE;
            }
            return f.quiet(v);
        }
        let v = self.daz_only(f, v);
        if f.is_inf(v) || f.is_zero(v) {
            return v;
        }
        let (sign, e, m) = f.unpack(v);
        if e >= 0 {
            return v;
        }
        let (mag, inexact) = Self::to_integer(sign, e, m, rc);
        if inexact && !suppress_pe {
            self.flags |= PE;
        }
        if mag == 0 {
            return f.zero(sign);
        }
        let mut env = Env {
            rc: 0,
            daz: false,
            ftz: false,
            um: true,
            om: true,
            flags: 0,
        };
        env.round_pack(f, sign, 0, mag)
    }

    /// Compare: `None` when unordered. IE for SNaN, or for any NaN when
    /// `signal_qnan` (the ordered predicates, COMISS). DE for denormals.
    pub fn compare(&mut self, f: Fmt, a: u64, b: u64, signal_qnan: bool) -> Option<core::cmp::Ordering> {
        if f.is_nan(a) || f.is_nan(b) {
            if signal_qnan || f.is_snan(a) || f.is_snan(b) {
                self.flags |= IE;
            }
            return None;
        }
        let a = self.input(f, a);
        let b = self.input(f, b);
        Some(order_key(f, a).cmp(&order_key(f, b)))
    }

    /// MINPS/MAXPS semantics: if either is a NaN, or both are zeros, or
    /// they are equal, the second operand is returned (SDM MINPS).
    pub fn min_max(&mut self, f: Fmt, a: u64, b: u64, max: bool) -> u64 {
        if f.is_nan(a) || f.is_nan(b) {
            self.flags |= IE;
            return self.daz_only(f, b);
        }
        let a = self.input(f, a);
        let b = self.input(f, b);
        let (ka, kb) = (order_key(f, a), order_key(f, b));
        let pick_a = if max { ka > kb } else { ka < kb };
        if pick_a && !(f.is_zero(a) && f.is_zero(b)) {
            a
        } else {
            b
        }
    }
}

/// A total order key for non-NaN values (both zeros equal).
fn order_key(f: Fmt, v: u64) -> i128 {
    let mag = (v & (f.sign_bit() - 1)) as i128;
    if f.sign(v) {
        -mag
    } else {
        mag
    }
}

/// Integer square root of a u128: (floor(sqrt(n)), n - root^2).
fn isqrt(n: u128) -> (u128, u128) {
    let mut rem = n;
    let mut root: u128 = 0;
    let mut bit: u128 = 1 << 126;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    (root, rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(rc: u32) -> Env {
        Env {
            rc,
            daz: false,
            ftz: false,
            um: true,
            om: true,
            flags: 0,
        }
    }

    #[test]
    fn division_rounds_in_every_mode() {
        // 1/3 in binary32: 0x3eaaaaab nearest/up, 0x3eaaaaaa down/zero.
        let want = [0x3eaa_aaab, 0x3eaa_aaaa, 0x3eaa_aaab, 0x3eaa_aaaa];
        for rc in 0..4 {
            let mut e = env(rc);
            assert_eq!(e.div(F32, 0x3f80_0000, 0x4040_0000), want[rc as usize]);
            assert_eq!(e.flags, PE);
        }
        // -1/3 rounds the other way for the directed modes.
        let mut e = env(1);
        assert_eq!(e.div(F32, 0xbf80_0000, 0x4040_0000), 0xbeaa_aaab);
    }

    #[test]
    fn overflow_underflow_and_ftz() {
        let max = 0x7f7f_ffff;
        let mut e = env(0);
        assert_eq!(e.mul(F32, max, 0x4000_0000), 0x7f80_0000);
        assert_eq!(e.flags, OE | PE);
        let mut e = env(3);
        assert_eq!(e.mul(F32, max, 0x4000_0000), max);
        // 2^-126 * 0.5 = 2^-127: exact denormal, no flags when masked.
        let mut e = env(0);
        assert_eq!(e.mul(F32, 0x0080_0000, 0x3f00_0000), 0x0040_0000);
        assert_eq!(e.flags, 0);
        // Unmasked underflow reports the exact tiny result too.
        let mut e = Env { um: false, ..env(0) };
        e.mul(F32, 0x0080_0000, 0x3f00_0000);
        assert_eq!(e.flags, UE);
        // FTZ flushes it, with UE and PE.
        let mut e = Env { ftz: true, ..env(0) };
        assert_eq!(e.mul(F32, 0x8080_0000, 0x3f00_0000), 0x8000_0000);
        assert_eq!(e.flags, UE | PE);
        // DAZ: a denormal operand is zero and raises no DE.
        let mut e = Env { daz: true, ..env(0) };
        assert_eq!(e.add(F32, 0x0000_0001, 0x8000_0000, false), 0);
        assert_eq!(e.flags, 0);
    }

    #[test]
    fn nan_rules_and_special_cases() {
        let mut e = env(0);
        // First operand's NaN wins, quieted; SNaN raises IE.
        assert_eq!(e.add(F32, 0x7f80_0001, 0x7fc0_0002, false), 0x7fc0_0001);
        assert_eq!(e.flags, IE);
        let mut e = env(0);
        assert_eq!(e.add(F32, 0x3f80_0000, 0xffc0_0005, false), 0xffc0_0005);
        assert_eq!(e.flags, 0);
        // inf - inf → default NaN.
        let mut e = env(0);
        assert_eq!(e.add(F64, F64.inf(false), F64.inf(false), true), 0xfff8_0000_0000_0000);
        assert_eq!(e.flags, IE);
        // sqrt(-0) = -0; sqrt(2) correctly rounded.
        let mut e = env(0);
        assert_eq!(e.sqrt(F64, 1 << 63), 1 << 63);
        assert_eq!(e.sqrt(F64, 2f64.to_bits()), 2f64.sqrt().to_bits());
        // Conversions: out of range → integer indefinite.
        let mut e = env(0);
        assert_eq!(e.to_int(F64, 3e9f64.to_bits(), 32, false), 0x8000_0000);
        assert_eq!(e.flags, IE);
        let mut e = env(0);
        assert_eq!(e.to_int(F64, (-2.5f64).to_bits(), 32, false), (-2i32) as u32 as u64);
        assert_eq!(e.to_int(F64, (-2.5f64).to_bits(), 32, true), (-2i32) as u32 as u64);
        assert_eq!(e.flags, PE);
        // MIN: equal zeros return the second operand.
        let mut e = env(0);
        assert_eq!(e.min_max(F32, 0x8000_0000, 0, false), 0);
        assert_eq!(e.min_max(F32, 0, 0x8000_0000, false), 0x8000_0000);
    }
}
