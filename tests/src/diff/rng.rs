//! A small deterministic PRNG (SplitMix64), so a seed reproduces a stream on
//! any host without an extra dependency.

#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An integer biased towards the values that find flag and carry bugs:
    /// zero, one, all ones, sign boundaries, small values, and noise.
    pub fn interesting(&mut self) -> u64 {
        let width = *self.pick(&[8u32, 16, 32, 64]);
        match self.below(10) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => 1u64 << (width - 1),
            4 => (1u64 << (width - 1)).wrapping_sub(1),
            5 => self.below(17),
            6 => self.below(17).wrapping_neg(),
            7 => self.next_u64() & 0xffff_ffff,
            _ => self.next_u64(),
        }
    }

    /// Bits of an f64 biased towards special values.
    pub fn f64_bits(&mut self) -> u64 {
        let sign = self.next_u64() & (1 << 63);
        sign | match self.below(12) {
            0 => 0,
            1 => 0x7ff0_0000_0000_0000,
            2 => 0x7ff8_0000_0000_0000 | (self.next_u64() & 0x7_ffff_ffff_ffff),
            3 => 0x7ff0_0000_0000_0001 | (self.next_u64() & 0x3_ffff_ffff_ffff),
            4 => self.next_u64() & 0xf_ffff_ffff_ffff,
            5 => (self.below(200) as f64).to_bits(),
            _ => ((1023 - 40 + self.below(80)) << 52) | (self.next_u64() & 0xf_ffff_ffff_ffff),
        }
    }

    /// Bits of an f32 biased towards special values.
    pub fn f32_bits(&mut self) -> u32 {
        let sign = (self.next_u64() as u32) & (1 << 31);
        sign | match self.below(12) {
            0 => 0,
            1 => 0x7f80_0000,
            2 => 0x7fc0_0000 | (self.next_u64() as u32 & 0x3f_ffff),
            3 => 0x7f80_0001 | (self.next_u64() as u32 & 0x1f_ffff),
            4 => self.next_u64() as u32 & 0x7f_ffff,
            5 => (self.below(200) as f32).to_bits(),
            _ => ((127 - 20 + self.below(40) as u32) << 23) | (self.next_u64() as u32 & 0x7f_ffff),
        }
    }

    /// Eight bytes of data: a double, two floats, or an integer.
    pub fn chunk(&mut self) -> u64 {
        match self.below(4) {
            0 => self.f64_bits(),
            1 => self.f32_bits() as u64 | (self.f32_bits() as u64) << 32,
            2 => self.interesting(),
            _ => self.next_u64(),
        }
    }

    /// An 80-bit extended value: (significand, sign+exponent).
    pub fn f80(&mut self) -> (u64, u16) {
        let sign = if self.chance(50) { 0x8000 } else { 0 };
        let (m, e) = match self.below(14) {
            0 => (0, 0),
            1 => (1 << 63, 0x7fff),
            2 => (0xc000_0000_0000_0000 | (self.next_u64() >> 2), 0x7fff),
            3 => (0x8000_0000_0000_0001 | (self.next_u64() >> 3), 0x7fff),
            4 => (self.next_u64() >> 1, 0),
            5 => {
                let v = self.below(1000) as f64;
                return f64_to_f80(v.to_bits() | (sign as u64) << 48);
            }
            // Unnormal: exponent set, integer bit clear (an invalid operand).
            6 if self.chance(20) => (self.next_u64() >> 1, 0x3fff),
            _ => ((1 << 63) | self.next_u64(), (0x3fff - 64 + self.below(128)) as u16),
        };
        (m, sign | e)
    }
}

/// Exact conversion of a finite, normal-or-zero f64 to the 80-bit format.
pub fn f64_to_f80(bits: u64) -> (u64, u16) {
    let sign = ((bits >> 63) as u16) << 15;
    let exp = ((bits >> 52) & 0x7ff) as u16;
    let frac = bits & 0xf_ffff_ffff_ffff;
    if exp == 0 && frac == 0 {
        return (0, sign);
    }
    ((1 << 63) | frac << 11, sign | (exp + 16383 - 1023))
}
