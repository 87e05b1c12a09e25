//! The 80-bit extended-precision core: classification of x87 register
//! encodings, one correctly rounded rounding routine with x87 precision
//! control, and the basic operations (add, multiply, divide, square root,
//! remainder, round to integer) computed exactly in 128-bit integers.
//!
//! Written here rather than taken from a crate: Berkeley SoftFloat
//! (`softfloat-sys`) needs CMake at build time and FFI `unsafe` in the CPU
//! crate; `rustc_apfloat` has no precision control, no denormal-operand flag,
//! no round-up indication (C1) and rejects the x87-only encodings
//! (pseudo-denormals, unnormals). The host-differential test
//! (`cpu/tests/x87_host.rs`) checks this file against the host's x87.

/// x87 status-word exception bits (SDM Vol. 1, 8.1.3).
pub const IE: u16 = 1 << 0;
pub const DE: u16 = 1 << 1;
pub const ZE: u16 = 1 << 2;
pub const OE: u16 = 1 << 3;
pub const UE: u16 = 1 << 4;
pub const PE: u16 = 1 << 5;

pub const EXP_BIAS: i32 = 16383;
const INT_BIT: u64 = 1 << 63;

/// An 80-bit register value: sign and 15-bit biased exponent in `se`,
/// significand with explicit integer bit in `sig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F80 {
    pub se: u16,
    pub sig: u64,
}

/// The classes the x87 distinguishes (SDM Vol. 1, 8.2.2 and table 8-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Zero,
    /// Denormal or pseudo-denormal (exponent 0, any integer bit).
    Denormal,
    Normal,
    Inf,
    QNaN,
    SNaN,
    /// Unnormal, pseudo-NaN, pseudo-infinity: invalid operands since the 387.
    Unsupported,
}

impl F80 {
    pub const ZERO: F80 = F80 { se: 0, sig: 0 };
    pub const ONE: F80 = F80 { se: 0x3fff, sig: INT_BIT };
    /// The masked response to an invalid operation: negative QNaN "indefinite".
    pub const INDEFINITE: F80 = F80 {
        se: 0xffff,
        sig: 0xc000_0000_0000_0000,
    };

    pub fn from_bits(v: u128) -> F80 {
        F80 {
            se: (v >> 64) as u16,
            sig: v as u64,
        }
    }
    pub fn to_bits(self) -> u128 {
        ((self.se as u128) << 64) | self.sig as u128
    }
    pub fn sign(self) -> bool {
        self.se & 0x8000 != 0
    }
    pub fn exp(self) -> u16 {
        self.se & 0x7fff
    }
    pub fn with_sign(self, s: bool) -> F80 {
        F80 {
            se: (self.se & 0x7fff) | ((s as u16) << 15),
            sig: self.sig,
        }
    }
    pub fn negate(self) -> F80 {
        F80 {
            se: self.se ^ 0x8000,
            sig: self.sig,
        }
    }
    pub fn inf(sign: bool) -> F80 {
        F80 {
            se: 0x7fff | ((sign as u16) << 15),
            sig: INT_BIT,
        }
    }
    pub fn zero(sign: bool) -> F80 {
        F80 {
            se: (sign as u16) << 15,
            sig: 0,
        }
    }

    pub fn class(self) -> Class {
        let e = self.exp();
        if e == 0 {
            if self.sig == 0 {
                Class::Zero
            } else {
                Class::Denormal
            }
        } else if e == 0x7fff {
            if self.sig & INT_BIT == 0 {
                Class::Unsupported
            } else if self.sig << 1 == 0 {
                Class::Inf
            } else if self.sig & (1 << 62) != 0 {
                Class::QNaN
            } else {
                Class::SNaN
            }
        } else if self.sig & INT_BIT == 0 {
            Class::Unsupported
        } else {
            Class::Normal
        }
    }
    pub fn is_nan(self) -> bool {
        matches!(self.class(), Class::QNaN | Class::SNaN)
    }
    pub fn quiet(self) -> F80 {
        F80 {
            se: self.se,
            sig: self.sig | (1 << 62),
        }
    }

    /// A finite nonzero value as (sign, unbiased exponent of bit 63,
    /// significand with bit 63 set). Pseudo-denormals take exponent 1 - bias.
    pub fn unpack(self) -> (bool, i32, u64) {
        let e = self.exp() as i32;
        let mut sig = self.sig;
        let mut exp = if e == 0 { 1 - EXP_BIAS } else { e - EXP_BIAS };
        let lz = sig.leading_zeros() as i32;
        // A zero significand (only for invalid encodings) must not panic.
        sig = sig.checked_shl(lz as u32).unwrap_or(0);
        exp -= lz;
        (self.sign(), exp, sig)
    }
}

/// The rounding environment of one operation and what it raised.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    /// Rounding control: 0 nearest, 1 down, 2 up, 3 toward zero.
    pub rc: u8,
    /// Significand bits kept by precision control (24, 53 or 64).
    pub prec: u32,
    /// Exception mask bits from the control word (FCW bits 0..5).
    pub masks: u16,
    /// Exceptions raised (status-word bit positions).
    pub flags: u16,
    /// The last rounding increased the magnitude (reported in C1).
    pub round_up: bool,
}

impl Env {
    pub fn new(fcw: u16) -> Env {
        Env {
            rc: ((fcw >> 10) & 3) as u8,
            prec: match (fcw >> 8) & 3 {
                0 => 24,
                2 => 53,
                _ => 64,
            },
            masks: fcw & 0x3f,
            flags: 0,
            round_up: false,
        }
    }
    /// The environment of an instruction precision control does not affect:
    /// PC applies only to FADD/FSUB/FMUL/FDIV (all forms) and FSQRT (SDM
    /// Vol. 1, 8.1.5.2); transcendentals, FSCALE and the rest round to 64 bits.
    pub fn transcendental(fcw: u16) -> Env {
        Env { prec: 64, ..Env::new(fcw) }
    }
    pub fn masked(&self, bit: u16) -> bool {
        self.masks & bit != 0
    }
}

/// A destination format for rounding.
#[derive(Clone, Copy)]
pub struct Format {
    pub prec: u32,
    pub emin: i32,
    pub emax: i32,
    /// Exponent adjustment for unmasked overflow/underflow (SDM 4.9.1.4):
    /// 0 means the destination gets no bias-adjusted result.
    pub bias_adjust: i32,
}

pub const EXT: Format = Format {
    prec: 64,
    emin: -16382,
    emax: 16383,
    bias_adjust: 24576,
};
pub const SINGLE: Format = Format {
    prec: 24,
    emin: -126,
    emax: 127,
    bias_adjust: 0,
};
pub const DOUBLE: Format = Format {
    prec: 53,
    emin: -1022,
    emax: 1023,
    bias_adjust: 0,
};

/// Shift right, ORing every bit shifted out into bit 0.
fn shr_jam(v: u128, n: u32) -> u128 {
    if n == 0 {
        v
    } else if n >= 128 {
        (v != 0) as u128
    } else {
        (v >> n) | ((v & ((1u128 << n) - 1) != 0) as u128)
    }
}

/// A rounded result: `exp` is the unbiased exponent of bit 63 of `sig`;
/// a denormal has `exp == fmt.emin` and bit 63 clear; `None` exp = infinity.
#[derive(Clone, Copy, Debug)]
pub struct Rounded {
    pub sign: bool,
    pub exp: i32,
    pub sig: u64,
    pub inf: bool,
}

/// Round `sig × 2^(exp - 127)` (any nonzero `sig`) to `fmt`, with `prec`
/// bits of significand (precision control may narrow the format's own).
/// Raises PE/UE/OE in `env` per SDM Vol. 1, 4.9.1.4-4.9.1.6: with UE masked
/// underflow is signalled only when the tiny result is also inexact;
/// tininess is detected after rounding (as the x87 does).
pub fn round(env: &mut Env, sign: bool, exp: i32, sig: u128, fmt: Format, prec: u32) -> Rounded {
    debug_assert!(sig != 0);
    let lz = sig.leading_zeros();
    let sig = sig << lz;
    let mut exp = exp - lz as i32;
    let shift = 128 - prec;
    let half = 1u128 << (shift - 1);
    let mask = (1u128 << shift) - 1;
    let rc = env.rc;
    let incr = |rb: u128, lsb: bool| -> bool {
        match rc {
            0 => rb > half || (rb == half && lsb),
            1 => sign && rb != 0,
            2 => !sign && rb != 0,
            _ => false,
        }
    };
    let ue_masked = env.masked(UE);
    let oe_masked = env.masked(OE);
    let mut sig = sig;
    // Unmasked underflow/overflow deliver a result with the exponent
    // adjusted by ±24576 when that brings it into range; otherwise the
    // masked response is delivered (checked against hardware with FSCALE).
    let adjustable_under = !ue_masked && fmt.bias_adjust != 0 && exp + fmt.bias_adjust >= fmt.emin;
    if fmt.bias_adjust != 0 && !ue_masked && !adjustable_under {
        // Beyond even the adjusted range: a signed zero, inexact, not rounded up.
        env.flags |= UE | PE;
        env.round_up = false;
        return Rounded {
            sign,
            exp: fmt.emin,
            sig: 0,
            inf: false,
        };
    }
    if fmt.bias_adjust != 0 && !oe_masked && exp - fmt.bias_adjust > fmt.emax {
        env.flags |= OE | PE;
        env.round_up = true;
        return Rounded {
            sign,
            exp: 0,
            sig: INT_BIT,
            inf: true,
        };
    }
    if exp < fmt.emin && !adjustable_under {
        // Tininess after rounding: would the result, rounded with an
        // unbounded exponent, still be below the normal range?
        let rb = sig & mask;
        let up = incr(rb, sig & (1 << shift) != 0);
        let tiny = !(exp == fmt.emin - 1 && up && (sig >> shift).wrapping_add(1) >> prec != 0);
        let d = shr_jam(sig, (fmt.emin - exp) as u32);
        let rb = d & mask;
        let up = incr(rb, d & (1 << shift) != 0);
        let inexact = rb != 0;
        let mut m = (d >> shift) + up as u128;
        let e = fmt.emin;
        m <<= shift;
        if inexact {
            env.flags |= PE;
            env.round_up = up;
        }
        if tiny && (inexact || !ue_masked) {
            env.flags |= UE;
        }
        // A carry into bit 127 makes it the smallest normal: same encoding.
        return Rounded {
            sign,
            exp: e,
            sig: (m >> 64) as u64,
            inf: false,
        };
    }
    let rb = sig & mask;
    let up = incr(rb, sig & (1 << shift) != 0);
    let mut m = sig >> shift;
    if up {
        m += 1;
        if m >> prec != 0 {
            m >>= 1;
            exp += 1;
        }
    }
    if rb != 0 {
        env.flags |= PE;
        env.round_up = up;
    }
    sig = m << shift;
    if exp < fmt.emin {
        // Unmasked underflow with a bias-adjusted destination.
        env.flags |= UE;
        exp += fmt.bias_adjust;
    } else if exp > fmt.emax {
        env.flags |= OE;
        if !oe_masked && fmt.bias_adjust != 0 && exp - fmt.bias_adjust <= fmt.emax {
            exp -= fmt.bias_adjust;
        } else {
            // Masked response (SDM table 4-10): infinity or the largest
            // finite value, depending on the rounding direction.
            env.flags |= PE;
            let to_inf = match env.rc {
                0 => true,
                1 => sign,
                2 => !sign,
                _ => false,
            };
            env.round_up = to_inf;
            if to_inf {
                return Rounded {
                    sign,
                    exp: 0,
                    sig: INT_BIT,
                    inf: true,
                };
            }
            return Rounded {
                sign,
                exp: fmt.emax,
                sig: (((1u128 << prec) - 1) << shift >> 64) as u64,
                inf: false,
            };
        }
    }
    Rounded {
        sign,
        exp,
        sig: (sig >> 64) as u64,
        inf: false,
    }
}

impl Rounded {
    pub fn to_f80(self) -> F80 {
        if self.inf {
            return F80::inf(self.sign);
        }
        let s = (self.sign as u16) << 15;
        if self.sig == 0 {
            return F80 { se: s, sig: 0 };
        }
        let e = if self.sig & INT_BIT == 0 { 0 } else { (self.exp + EXP_BIAS) as u16 };
        F80 { se: s | e, sig: self.sig }
    }
    pub fn to_f32(self) -> u32 {
        let s = (self.sign as u32) << 31;
        if self.inf {
            return s | 0x7f80_0000;
        }
        let e = if self.sig & INT_BIT == 0 { 0 } else { (self.exp + 127) as u32 };
        s | (e << 23) | ((self.sig >> 40) as u32 & 0x7f_ffff)
    }
    pub fn to_f64(self) -> u64 {
        let s = (self.sign as u64) << 63;
        if self.inf {
            return s | 0x7ff0_0000_0000_0000;
        }
        let e = if self.sig & INT_BIT == 0 { 0 } else { (self.exp + 1023) as u64 };
        s | (e << 52) | ((self.sig >> 11) & 0xf_ffff_ffff_ffff)
    }
}

/// Round an exact value to the extended register format with precision control.
pub fn round_ext(env: &mut Env, sign: bool, exp: i32, sig: u128) -> F80 {
    let prec = env.prec;
    round(env, sign, exp, sig, EXT, prec).to_f80()
}

/// The signed zero an exact cancellation produces: -0 only when rounding down.
fn exact_zero(env: &Env) -> F80 {
    F80::zero(env.rc == 1)
}

/// a + b for finite operands (zeros allowed).
pub fn add_finite(env: &mut Env, a: F80, b: F80) -> F80 {
    let az = a.class() == Class::Zero;
    let bz = b.class() == Class::Zero;
    if az && bz {
        return if a.sign() == b.sign() { a } else { exact_zero(env) };
    }
    if az {
        return round_value(env, b);
    }
    if bz {
        return round_value(env, a);
    }
    let (sa, ea, ma) = a.unpack();
    let (sb, eb, mb) = b.unpack();
    let (sa, ea, ma, sb, eb, mb) = if ea >= eb {
        (sa, ea, ma, sb, eb, mb)
    } else {
        (sb, eb, mb, sa, ea, ma)
    };
    // Bit 63 of the significand goes to bit 126, leaving room for a carry.
    let x = (ma as u128) << 63;
    let y = shr_jam((mb as u128) << 63, (ea - eb) as u32);
    if sa == sb {
        round_ext(env, sa, ea + 1, x + y)
    } else if x == y {
        exact_zero(env)
    } else if x > y {
        round_ext(env, sa, ea + 1, x - y)
    } else {
        round_ext(env, sb, ea + 1, y - x)
    }
}

/// Re-round a finite value to the current precision (an operation whose
/// exact result equals one operand still rounds it, e.g. x + 0).
pub fn round_value(env: &mut Env, a: F80) -> F80 {
    if a.class() == Class::Zero {
        return a;
    }
    let (s, e, m) = a.unpack();
    round_ext(env, s, e + 64, m as u128)
}

/// a × b for finite nonzero operands.
pub fn mul_finite(env: &mut Env, a: F80, b: F80) -> F80 {
    let (sa, ea, ma) = a.unpack();
    let (sb, eb, mb) = b.unpack();
    let p = ma as u128 * mb as u128;
    // p has its top bit at 126 or 127 for an exponent of ea + eb (+1).
    round_ext(env, sa ^ sb, ea + eb + 1, p)
}

/// a / b for finite nonzero operands.
pub fn div_finite(env: &mut Env, a: F80, b: F80) -> F80 {
    let (sa, ea, ma) = a.unpack();
    let (sb, eb, mb) = b.unpack();
    let n = (ma as u128) << 63;
    let q1 = n / mb as u128;
    let r1 = n % mb as u128;
    let n2 = r1 << 64;
    let q2 = n2 / mb as u128;
    let r2 = n2 % mb as u128;
    let q = (q1 << 64) | q2 | (r2 != 0) as u128;
    // q = ma/mb × 2^127.
    round_ext(env, sa ^ sb, ea - eb, q)
}

/// √a for finite positive nonzero a.
pub fn sqrt_finite(env: &mut Env, a: F80) -> F80 {
    let (_, e, m) = a.unpack();
    // a = m × 2^(e - 63); pick the shift so the scaled exponent is even.
    let shift = if (e - 63 - 63) % 2 == 0 { 63 } else { 64 };
    let t = e - 63 - shift;
    let v = (m as u128) << shift;
    let r = v.isqrt();
    let rem = v - r * r;
    // The exact root is never halfway: guard bit = rem > r.
    let guard = rem > r;
    let sticky = rem != 0;
    let s = (r << 64) | ((guard as u128) << 63) | sticky as u128;
    // value = s × 2^(t/2 - 64) = s × 2^(E - 127)
    round_ext(env, false, t / 2 + 63, s)
}

/// Round a finite value to an integer-valued F80 per `rc`; sets PE/round_up.
pub fn round_to_int(env: &mut Env, a: F80, rc: u8) -> F80 {
    if a.class() == Class::Zero {
        return a;
    }
    let (s, e, m) = a.unpack();
    if e >= 63 {
        return a;
    }
    let (int, frac_nonzero, up) = int_part(s, e, m, rc);
    if frac_nonzero {
        env.flags |= PE;
        env.round_up = up;
    }
    if int == 0 {
        return F80::zero(s);
    }
    let lz = int.leading_zeros();
    F80 {
        se: ((s as u16) << 15) | (EXP_BIAS + 63 - lz as i32) as u16,
        sig: int << lz,
    }
}

/// |value| = m × 2^(e-63) with e < 64: the rounded integer magnitude, whether
/// a fraction was dropped, whether the magnitude was rounded up.
pub fn int_part(sign: bool, e: i32, m: u64, rc: u8) -> (u64, bool, bool) {
    if e < -1 {
        // |value| < 0.5
        let up = match rc {
            1 => sign,
            2 => !sign,
            _ => false,
        };
        return (up as u64, true, up);
    }
    let sh = 63 - e; // 0..=64
    let (int, frac, half) = if sh == 64 {
        (0u64, m as u128, 1u128 << 63)
    } else {
        (
            m >> sh,
            (m as u128) & ((1u128 << sh) - 1),
            if sh == 0 { 0 } else { 1u128 << (sh - 1) },
        )
    };
    if frac == 0 {
        return (int, false, false);
    }
    let up = match rc {
        0 => frac > half || (frac == half && int & 1 != 0),
        1 => sign,
        2 => !sign,
        _ => false,
    };
    (int.wrapping_add(up as u64), true, up)
}

/// Exact partial remainder for FPREM (`nearest` false) and FPREM1: returns
/// the remainder, the low three quotient bits and whether the reduction is
/// complete (C2 clear). Both operands finite, b nonzero.
/// SDM Vol. 2A, FPREM: when the exponent difference is 64 or more, the
/// exponent is reduced by an amount N between 32 and 63.
pub fn partial_rem(env: &mut Env, a: F80, b: F80, nearest: bool) -> (F80, u64, bool) {
    if a.class() == Class::Zero {
        return (a, 0, true);
    }
    let (sa, ea, ma) = a.unpack();
    let (_, eb, mb) = b.unpack();
    let d = ea - eb;
    if d < 0 {
        // |a| < |b|: quotient 0, except that FPREM1 may round it to 1.
        if nearest && d == -1 && ma > mb {
            // |a| > |b|/2 (a has half the weight): remainder a - b.
            let x = (ma as u128) << 63;
            let y = (mb as u128) << 64;
            let r = y - x;
            return (round_exact(env, !sa, ea + 1, r), 1, true);
        }
        return (round_exact(env, sa, ea, (ma as u128) << 64), 0, true);
    }
    let (n, complete) = if d < 64 {
        (d as u32, true)
    } else {
        (32 + (d as u32 - 32) % 32, false)
    };
    let x = (ma as u128) << n;
    let mut q = x / mb as u128;
    let mut r = x % mb as u128;
    let mut sign = sa;
    if nearest && complete {
        let twice = r << 1;
        if twice > mb as u128 || (twice == mb as u128 && q & 1 != 0) {
            r = mb as u128 - r;
            q += 1;
            sign = !sa;
        }
    }
    let res_exp = eb + (d - n as i32);
    if r == 0 {
        return (F80::zero(sa), q as u64, complete);
    }
    // r × 2^(res_exp - 63) = (r << 64) × 2^(res_exp - 127)
    (round_exact(env, sign, res_exp, r << 64), q as u64, complete)
}

/// A finite value re-encoded as a result: pseudo-denormals become normal,
/// denormals signal underflow when UE is unmasked.
pub fn repack(env: &mut Env, a: F80) -> F80 {
    if a.class() == Class::Zero {
        return a;
    }
    let (s, e, m) = a.unpack();
    round_exact(env, s, e + 64, m as u128)
}

/// Pack an exact value (no rounding needed except denormalization).
fn round_exact(env: &mut Env, sign: bool, exp: i32, sig: u128) -> F80 {
    let mut e = Env {
        prec: 64,
        flags: 0,
        ..*env
    };
    let r = round(&mut e, sign, exp, sig, EXT, 64);
    env.flags |= e.flags & UE;
    r.to_f80()
}

/// Integer (as i128 magnitude ≤ 2^64) to F80, exact.
pub fn from_int(v: i64) -> F80 {
    if v == 0 {
        return F80::ZERO;
    }
    let s = v < 0;
    let m = v.unsigned_abs();
    let lz = m.leading_zeros();
    F80 {
        se: ((s as u16) << 15) | (EXP_BIAS + 63 - lz as i32) as u16,
        sig: m << lz,
    }
}

/// Widen a single or double to F80 exactly (no flags; the caller deals
/// with SNaN and denormal-operand reporting).
pub fn from_f32(v: u32) -> F80 {
    let s = v >> 31 != 0;
    let e = ((v >> 23) & 0xff) as i32;
    let f = (v & 0x7f_ffff) as u64;
    widen(s, e, f, 23, 255, 127)
}
pub fn from_f64(v: u64) -> F80 {
    let s = v >> 63 != 0;
    let e = ((v >> 52) & 0x7ff) as i32;
    let f = v & 0xf_ffff_ffff_ffff;
    widen(s, e, f, 52, 2047, 1023)
}
fn widen(s: bool, e: i32, f: u64, fbits: u32, emax: i32, bias: i32) -> F80 {
    let sign = (s as u16) << 15;
    if e == emax {
        return F80 {
            se: sign | 0x7fff,
            sig: INT_BIT | (f << (63 - fbits)),
        };
    }
    if e == 0 {
        if f == 0 {
            return F80 { se: sign, sig: 0 };
        }
        let lz = f.leading_zeros() as i32;
        // value = f × 2^(1 - bias - fbits)
        let exp = 1 - bias - fbits as i32 + (63 - lz);
        return F80 {
            se: sign | (exp + EXP_BIAS) as u16,
            sig: f << lz,
        };
    }
    F80 {
        se: sign | (e - bias + EXP_BIAS) as u16,
        sig: INT_BIT | (f << (63 - fbits)),
    }
}

/// Narrow a finite nonzero value to single/double with the format's own
/// precision (precision control does not apply to memory stores).
pub fn narrow(env: &mut Env, a: F80, fmt: Format) -> Rounded {
    let (s, e, m) = a.unpack();
    round(env, s, e + 64, m as u128, fmt, fmt.prec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> F80 {
        from_f64(x.to_bits())
    }

    #[test]
    fn basic_ops() {
        let mut env = Env::new(0x037f);
        assert_eq!(add_finite(&mut env, f(1.5), f(2.25)), f(3.75));
        assert_eq!(mul_finite(&mut env, f(1.5), f(-4.0)), f(-6.0));
        assert_eq!(div_finite(&mut env, f(1.0), f(4.0)), f(0.25));
        assert_eq!(sqrt_finite(&mut env, f(2.25)), f(1.5));
        assert_eq!(env.flags, 0);
        // 1/3 in extended: 0x3FFD AAAAAAAAAAAAAAAB (round to nearest).
        let third = div_finite(&mut env, f(1.0), f(3.0));
        assert_eq!(
            third,
            F80 {
                se: 0x3ffd,
                sig: 0xaaaa_aaaa_aaaa_aaab
            }
        );
        assert_eq!(env.flags, PE);
        assert!(env.round_up);
        // sqrt(2) = 0x3FFF B504F333F9DE6484 (rounded to nearest).
        assert_eq!(
            sqrt_finite(&mut env, f(2.0)),
            F80 {
                se: 0x3fff,
                sig: 0xb504_f333_f9de_6484
            }
        );
    }

    #[test]
    fn precision_control_single() {
        let mut env = Env::new(0x007f);
        let third = div_finite(&mut env, f(1.0), f(3.0));
        assert_eq!(
            third,
            F80 {
                se: 0x3ffd,
                sig: 0xaaaa_ab00_0000_0000
            }
        );
    }
}
