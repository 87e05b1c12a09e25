//! 128-bit fixed-point kernels for the trigonometric instructions: the
//! argument is reduced exactly modulo the x87's own 68-bit π/2 (as the
//! hardware does), then sine and cosine are summed as Taylor series in
//! Q2.126 (about 120 correct bits) and rounded once to the destination
//! precision, so results are correctly rounded images of the reduced argument.

use super::float80::{round, Env, EXT, F80};

/// π/2 as the x87 holds it for argument reduction: 0xC90FDAA22168C234C × 2^-67.
pub const HALF_PI_68: u128 = 0xc_90fd_aa22_168c_234c;

/// One in Q2.126.
const ONE: u128 = 1 << 126;

/// (a × b) >> 126 for Q2.126 values below 4.
fn mul(a: u128, b: u128) -> u128 {
    let (a1, a0) = (a >> 64, a & u64::MAX as u128);
    let (b1, b0) = (b >> 64, b & u64::MAX as u128);
    let lo = a0 * b0;
    let mid1 = a1 * b0;
    let mid2 = a0 * b1;
    let hi = a1 * b1;
    // 256-bit sum: hi·2^128 + (mid1 + mid2)·2^64 + lo.
    let (mid, c1) = mid1.overflowing_add(mid2);
    let (low, c2) = lo.overflowing_add(mid << 64);
    let high = hi + (mid >> 64) + ((c1 as u128) << 64) + c2 as u128;
    (high << 2) | (low >> 126)
}

/// sin and cos of r (Q2.126, 0 ≤ r ≤ π/4) in Q2.126.
fn sin_cos_fx(r: u128) -> (u128, u128) {
    let r2 = mul(r, r);
    let mut sin = r;
    let mut term = r;
    let mut k = 1u128;
    loop {
        term = mul(term, r2) / ((2 * k) * (2 * k + 1));
        if term == 0 {
            break;
        }
        if k % 2 == 1 {
            sin -= term;
        } else {
            sin += term;
        }
        k += 1;
    }
    let mut cos = ONE;
    let mut term = ONE;
    let mut k = 1u128;
    loop {
        term = mul(term, r2) / ((2 * k - 1) * (2 * k));
        if term == 0 {
            break;
        }
        if k % 2 == 1 {
            cos -= term;
        } else {
            cos += term;
        }
        k += 1;
    }
    (sin, cos)
}

/// A Q2.126 value (nonzero) with a sign, rounded into the extended format.
fn to_f80(env: &mut Env, sign: bool, v: u128) -> F80 {
    if v == 0 {
        return F80::zero(sign);
    }
    // value = v × 2^-126 = v × 2^(1 - 127)
    let prec = env.prec;
    round(env, sign, 1, v | 1, EXT, prec).to_f80()
}

/// n / d for Q2.126 values, rounded into the extended format.
fn div_to_f80(env: &mut Env, sign: bool, n: u128, d: u128) -> F80 {
    let sn = n.leading_zeros() as i32 - 1;
    let sd = d.leading_zeros() as i32 - 1;
    let (n, d) = (n << sn, d << sd);
    let mut rem = n;
    let mut q: u128 = 0;
    for _ in 0..128 {
        q <<= 1;
        if rem >= d {
            rem -= d;
            q |= 1;
        }
        rem <<= 1;
    }
    // q = floor(n/d × 2^127); n/d has one integer bit at most.
    let prec = env.prec;
    round(env, sign, sd - sn, q | (rem != 0) as u128, EXT, prec).to_f80()
}

/// Reduce a finite nonzero x with |x| < 2^63: the octant-folded argument
/// |r| in Q2.126 (0 ≤ |r| ≤ π/4), its sign, and the quadrant q mod 4.
fn reduce(x: F80) -> (u128, bool, u64) {
    let (_, e, m) = x.unpack();
    if e < -1 {
        // |x| < 0.5 < π/4: r = x exactly (e ≥ -40 here, so no bits are lost).
        // The sign is applied by the caller (sine odd, cosine even).
        return ((m as u128) >> (-(63 + e)).clamp(0, 127) << (63 + e).clamp(0, 62), false, 0);
    }
    // x / (π/2) = m × 2^(e+4) / HALF_PI_68: long division bit by bit.
    let mut r = m as u128 % HALF_PI_68;
    let mut q = (m as u128 / HALF_PI_68) as u64;
    for _ in 0..(e + 4) {
        r <<= 1;
        q = q.wrapping_shl(1);
        if r >= HALF_PI_68 {
            r -= HALF_PI_68;
            q |= 1;
        }
    }
    // r × 2^-67 in [0, π/2); fold the upper half to a negative remainder.
    let (mag, neg) = if r > HALF_PI_68 / 2 {
        q = q.wrapping_add(1);
        (HALF_PI_68 - r, true)
    } else {
        (r, false)
    };
    (mag << 59, neg, q & 3)
}

/// sin, cos and tan of a finite nonzero x with 2^-40 ≤ |x| < 2^63. Each
/// result is rounded separately and sets PE/C1 in its own environment.
pub fn sin_cos_tan(env: &Env, x: F80) -> [(F80, Env); 3] {
    let sign_x = x.sign();
    let (r, neg_r, q) = reduce(x);
    let (sr, cr) = sin_cos_fx(r);
    // sin/cos of the signed remainder: sin odd, cos even.
    let (s_mag, s_neg, c_mag, c_neg) = match q {
        0 => (sr, neg_r, cr, false),
        1 => (cr, false, sr, !neg_r),
        2 => (sr, !neg_r, cr, true),
        _ => (cr, true, sr, neg_r),
    };
    let mut es = Env { flags: 0, ..*env };
    let mut ec = es;
    let mut et = es;
    let s = to_f80(&mut es, s_neg ^ sign_x, s_mag);
    let c = to_f80(&mut ec, c_neg, c_mag);
    let t = if s_mag == 0 {
        F80::zero(s_neg ^ sign_x ^ c_neg)
    } else {
        div_to_f80(&mut et, s_neg ^ sign_x ^ c_neg, s_mag, c_mag)
    };
    [(s, es), (c, ec), (t, et)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fpu::float80::from_f64;

    #[test]
    fn known_values() {
        let env = Env::new(0x037f);
        // sin(1) = 0x3FFE D76AA47848677021 (rounded to nearest).
        let [(s, _), (c, _), (t, _)] = sin_cos_tan(&env, from_f64(1f64.to_bits()));
        assert_eq!(
            s,
            F80 {
                se: 0x3ffe,
                sig: 0xd76a_a478_4867_7021
            }
        );
        // cos(1) = 0.5403023058681397174009366... = 0x3FFE 8A51407DA8345C92
        assert_eq!(
            c,
            F80 {
                se: 0x3ffe,
                sig: 0x8a51_407d_a834_5c92
            }
        );
        // tan(1) = 1.5574077246549022305... = 0x3FFF C75922E5F71D2DC5
        assert_eq!(
            t,
            F80 {
                se: 0x3fff,
                sig: 0xc759_22e5_f71d_2dc5
            }
        );
    }
}

/// ln 2, log2 e in Q2.126 (truncated).
const LN2: u128 = 0x2c5c_85fd_f473_de6a_f278_ece6_00fc_bdab;
const LOG2E: u128 = 0x5c55_1d94_ae0b_f85d_df43_ff68_348e_9f44;

/// A wide intermediate: value = sig × 2^(exp - 127), sig normalised to bit
/// 127 (or zero); `inexact` records that bits were dropped on the way.
#[derive(Clone, Copy, Debug)]
pub struct Wide {
    pub neg: bool,
    pub exp: i32,
    pub sig: u128,
    pub inexact: bool,
}

impl Wide {
    fn norm(neg: bool, exp: i32, sig: u128, inexact: bool) -> Wide {
        let lz = sig.leading_zeros();
        Wide {
            neg,
            exp: exp - lz as i32,
            sig: sig << lz,
            inexact,
        }
    }
    /// From a finite nonzero extended value (exact).
    pub fn from_f80(a: F80) -> Wide {
        let (s, e, m) = a.unpack();
        Wide::norm(s, e + 64, m as u128, false)
    }
    /// From a Q2.126 value.
    fn from_fx(neg: bool, v: u128, inexact: bool) -> Wide {
        Wide::norm(neg, 1, v, inexact)
    }
    fn mul(self, o: Wide) -> Wide {
        let (a1, a0) = (self.sig >> 64, self.sig & u64::MAX as u128);
        let (b1, b0) = (o.sig >> 64, o.sig & u64::MAX as u128);
        let lo = a0 * b0;
        let (mid, c1) = (a1 * b0).overflowing_add(a0 * b1);
        let (low, c2) = lo.overflowing_add(mid << 64);
        let high = a1 * b1 + (mid >> 64) + ((c1 as u128) << 64) + c2 as u128;
        // product = high·2^128 + low, worth 2^(ea + eb - 254): high is worth 2^(ea + eb + 1 - 127).
        Wide::norm(self.neg ^ o.neg, self.exp + o.exp + 1, high, self.inexact || o.inexact || low != 0).with_sticky(low != 0)
    }
    /// The product of two wide values (truncated to 128 bits, sticky kept).
    pub fn mul_pub(self, o: Wide) -> Wide {
        self.mul(o)
    }
    fn with_sticky(mut self, s: bool) -> Wide {
        self.sig |= s as u128;
        self
    }
    /// Q2.126 value of a Wide below 4 (truncating).
    fn to_fx(self) -> u128 {
        let sh = 1 - self.exp; // sig >> sh gives Q2.126 (value = sig × 2^(exp-127))
        if sh >= 128 {
            0
        } else if sh <= 0 {
            self.sig << (-sh)
        } else {
            self.sig >> sh
        }
    }
    /// Round into the extended format with precision control.
    pub fn round(self, env: &mut Env) -> F80 {
        if self.sig == 0 {
            return F80::zero(self.neg);
        }
        let prec = env.prec;
        round(env, self.neg, self.exp, self.sig | self.inexact as u128, EXT, prec).to_f80()
    }
}

/// n / d (both nonzero) as a Wide, with a sticky bit.
fn div_wide(neg: bool, n: Wide, d: Wide) -> Wide {
    let (mut rem, d_sig) = (n.sig >> 1, d.sig >> 1);
    let mut q: u128 = 0;
    for _ in 0..128 {
        q <<= 1;
        if rem >= d_sig {
            rem -= d_sig;
            q |= 1;
        }
        rem <<= 1;
    }
    // q = floor(n.sig/d.sig × 2^127): value n/d = q × 2^(en - ed - 127).
    Wide::norm(neg, n.exp - d.exp, q, n.inexact || d.inexact || rem != 0).with_sticky(rem != 0)
}

/// 1 + t/2! + t²/3! + ... (or the alternating series when `neg`) in Q2.126,
/// so that e^t - 1 = t·S (e^-t - 1 = -t·S).
fn expm1_series(t: u128, neg: bool) -> u128 {
    let mut s = ONE;
    let mut term = ONE;
    let mut k = 2u128;
    loop {
        term = mul(term, t) / k;
        if term == 0 {
            break;
        }
        if neg && k % 2 == 0 {
            s -= term;
        } else {
            s += term;
        }
        k += 1;
    }
    s
}

/// 2^x - 1 for finite nonzero x with |x| ≤ 1.
pub fn f2xm1(x: F80) -> Wide {
    let t = Wide::from_f80(x).mul(Wide::from_fx(false, LN2, true));
    let s = expm1_series(t.to_fx(), x.sign());
    t.mul(Wide::from_fx(false, s, true))
}

/// 1 + z²/3 + z⁴/5 + ..., so that atanh z = z·S, in Q2.126 (|z| < 1/2).
fn atanh_series(z2: u128) -> u128 {
    let mut s = ONE;
    let mut pow = ONE;
    let mut k = 3u128;
    loop {
        pow = mul(pow, z2);
        let term = pow / k;
        if term == 0 {
            break;
        }
        s += term;
        k += 2;
    }
    s
}

/// log2 of (n / d) given z = (n - d)/(n + d): 2·atanh(z)·log2(e).
fn log2_from_z(z: Wide) -> Wide {
    let z2 = z.mul(z).to_fx();
    let s = atanh_series(z2);
    let two = Wide::from_fx(false, 2 * ONE, false);
    z.mul(Wide::from_fx(false, s, true)).mul(two).mul(Wide::from_fx(false, LOG2E, true))
}

/// log2(x) for finite positive x (not 1).
pub fn log2(x: F80) -> Wide {
    let (_, e, m) = x.unpack();
    let frac = if m == 1 << 63 {
        None
    } else {
        // z = (m - 1)/(m + 1) with m the significand in [1, 2).
        let num = Wide::norm(false, 1, ((m - (1 << 63)) as u128) << 63, false);
        let den = Wide::norm(false, 1, (m as u128 + (1u128 << 63)) << 63, false);
        Some(log2_from_z(div_wide(false, num, den)))
    };
    match (e, frac) {
        (0, Some(f)) => f,
        (0, None) => Wide {
            neg: false,
            exp: 0,
            sig: 0,
            inexact: false,
        },
        (e, f) => {
            // l = e + frac in signed Q16.111.
            let fx = f.map(|f| f.to_fx() >> 15).unwrap_or(0) as i128;
            let l = ((e as i128) << 111) + fx;
            let inexact = f.is_some();
            Wide::norm(l < 0, 16, l.unsigned_abs(), inexact).with_sticky(inexact)
        }
    }
}

/// log2(1 + x) for finite nonzero x with |x| < 1/2 (callers send larger
/// arguments through `log2` of 1 + x; the clamps below only keep a bad
/// argument from panicking).
pub fn log2_1p(x: F80) -> Wide {
    let (s, e, m) = x.unpack();
    let e = e.min(-2);
    // |x| in Q2.126: exact down to 2^-63; below, truncation only perturbs
    // 2 ± x by less than 2^-126 (relatively), while z keeps x exactly.
    let xf = if e >= -63 {
        (m as u128) << (63 + e)
    } else {
        (m as u128) >> (-(63 + e)).min(127)
    };
    let den = if s { 2 * ONE - xf } else { 2 * ONE + xf };
    let z = div_wide(s, Wide::from_f80(x), Wide::from_fx(false, den, false));
    log2_from_z(z)
}

#[cfg(test)]
mod wide_tests {
    use super::*;
    use crate::fpu::float80::from_f64;

    fn f(x: f64) -> F80 {
        from_f64(x.to_bits())
    }

    #[test]
    fn log_and_exp_kernels() {
        let mut env = Env::new(0x037f);
        // log2(3) = 1.58496250072115618145... = 0x3FFF CAE00D1CFDEB43D0
        assert_eq!(
            log2(f(3.0)).round(&mut env),
            F80 {
                se: 0x3fff,
                sig: 0xcae0_0d1c_fdeb_43d0
            }
        );
        // log2(0.75) negative, log2(8) = 3 exactly.
        assert!(log2(f(0.75)).neg);
        assert_eq!(log2(f(8.0)).round(&mut env), f(3.0));
        // 2^0.5 - 1 = 0.41421356237309504880... = 0x3FFD D413CCCFE7799211
        assert_eq!(
            f2xm1(f(0.5)).round(&mut env),
            F80 {
                se: 0x3ffd,
                sig: 0xd413_cccf_e779_9211
            }
        );
        // log2(1.25) via log2_1p(0.25) = 0.32192809488736234787 = 0x3FFD A4D3C25E68DC57F2
        assert_eq!(
            log2_1p(f(0.25)).round(&mut env),
            F80 {
                se: 0x3ffd,
                sig: 0xa4d3_c25e_68dc_57f2
            }
        );
    }
}

/// π in Q2.126 (truncated).
const PI: u128 = 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1;

/// 1 - w²/3 + w⁴/5 - ..., so that atan w = w·S, in Q2.126 (|w| < 1).
fn atan_series(w2: u128) -> u128 {
    let mut s = ONE;
    let mut pow = ONE;
    let mut k = 3u128;
    let mut neg = true;
    loop {
        pow = mul(pow, w2);
        let term = pow / k;
        if term == 0 {
            break;
        }
        if neg {
            s -= term;
        } else {
            s += term;
        }
        neg = !neg;
        k += 2;
    }
    s
}

/// atan of a Q2.126 value in [0, 1], in Q2.126.
fn atan_fx(z: u128) -> u128 {
    let k = ((z + (ONE >> 4)) >> 123).min(8); // nearest multiple of 1/8
    let c = k << 123;
    let atan_c = if k == 0 {
        0
    } else if k == 8 {
        PI >> 2
    } else {
        mul(c, atan_series(mul(c, c)))
    };
    // w = (z - c) / (1 + z·c), |w| ≤ 1/16.
    let (num, neg) = if z >= c { (z - c, false) } else { (c - z, true) };
    if num == 0 {
        return atan_c;
    }
    let den = ONE + mul(z, c);
    let w = div_wide(neg, Wide::from_fx(false, num, false), Wide::from_fx(false, den, false)).to_fx();
    let aw = mul(w, atan_series(mul(w, w)));
    if neg {
        atan_c - aw
    } else {
        atan_c + aw
    }
}

/// FPATAN: atan2(y, x) for any non-NaN operands (zeros and infinities
/// included), as a wide value with its sign.
pub fn atan2(y: F80, x: F80) -> Wide {
    use super::float80::Class;
    let (cy, cx) = (y.class(), x.class());
    let fx = |neg: bool, v: u128| Wide::from_fx(neg, v, true);
    let ys = y.sign();
    // The angle for |y| : |x| in the first quadrant, then mirrored for x < 0.
    let first = |v: u128| if x.sign() { PI - v } else { v };
    match (cy, cx) {
        (Class::Zero, _) => {
            if x.sign() {
                fx(ys, PI)
            } else {
                Wide {
                    neg: ys,
                    exp: 0,
                    sig: 0,
                    inexact: false,
                }
            }
        }
        (Class::Inf, Class::Inf) => fx(ys, first(PI >> 2)),
        (Class::Inf, _) | (_, Class::Zero) => fx(ys, PI >> 1),
        (_, Class::Inf) => {
            if x.sign() {
                fx(ys, PI)
            } else {
                Wide {
                    neg: ys,
                    exp: 0,
                    sig: 0,
                    inexact: false,
                }
            }
        }
        _ => {
            let (wy, wx) = (Wide::from_f80(y.with_sign(false)), Wide::from_f80(x.with_sign(false)));
            let y_le_x = (wy.exp, wy.sig) <= (wx.exp, wx.sig);
            let z = if y_le_x { div_wide(false, wy, wx) } else { div_wide(false, wx, wy) };
            if y_le_x && !x.sign() && z.exp < 1 - 4 {
                // atan z = z·S for small z, keeping relative precision.
                let s = atan_series(mul(z.to_fx(), z.to_fx()));
                let r = z.mul(fx(false, s));
                return Wide { neg: ys, ..r };
            }
            let a = atan_fx(z.to_fx());
            let v = if y_le_x { a } else { (PI >> 1) - a };
            fx(ys, first(v))
        }
    }
}

#[cfg(test)]
mod atan_tests {
    use super::*;
    use crate::fpu::float80::from_f64;

    #[test]
    fn atan_values() {
        let mut env = Env::new(0x037f);
        let f = |x: f64| from_f64(x.to_bits());
        // atan(1) = π/4 = 0x3FFE C90FDAA22168C235
        assert_eq!(
            atan2(f(1.0), f(1.0)).round(&mut env),
            F80 {
                se: 0x3ffe,
                sig: 0xc90f_daa2_2168_c235
            }
        );
        // atan2(0.5, 1) = 0.46364760900080611621 = 0x3FFD ED63382B0DDA7B45
        assert_eq!(
            atan2(f(0.5), f(1.0)).round(&mut env),
            F80 {
                se: 0x3ffd,
                sig: 0xed63_382b_0dda_7b45
            }
        );
        // atan2(-1, -0) = -π/2
        assert_eq!(
            atan2(f(-1.0), f(-0.0)).round(&mut env),
            F80 {
                se: 0xbfff,
                sig: 0xc90f_daa2_2168_c235
            }
        );
    }
}
