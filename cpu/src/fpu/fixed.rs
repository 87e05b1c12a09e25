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
        return ((m as u128) >> (-(63 + e)).max(0) << (63 + e).max(0), false, 0);
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
