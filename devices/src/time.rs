//! Virtual time.
//!
//! The machine owns one clock (in deterministic mode derived from
//! instructions retired) and hands its reading to devices; a device never
//! reads the wall clock and never runs a thread. The contract:
//!
//! 1. Before any register access to a [`Timed`] device, the machine calls
//!    `advance_to(now)`, so the access sees the device as of `now`.
//! 2. After any access (which may have reprogrammed it), and after every
//!    `advance_to`, the machine reads `next_deadline()` and arranges to call
//!    `advance_to` again no later than that instant (for example by ending
//!    the CPU's run slice there).
//! 3. Time never goes backwards: `advance_to` with an earlier instant than
//!    the last one is ignored.
//!
//! A late `advance_to` (the machine overshot a deadline) is always correct:
//! the device applies everything that happened up to `now`, as a real chip
//! would have, raising at least one edge for every interrupt it owed.
//!
//! Hardware counts in its own oscillator's ticks (the PIT at 1.193182 MHz,
//! the RTC at 32.768 kHz). [`ns_to_ticks`] and [`ticks_to_ns`] convert
//! exactly, from absolute nanoseconds rather than by accumulating, so a
//! device's time never drifts from the machine's.

/// The machine's virtual clock, in nanoseconds since machine power-on.
pub trait Clock {
    fn now_ns(&self) -> u64;
}

/// A device whose state changes with time, not only on register access.
pub trait Timed {
    /// Bring the device up to `now_ns`: everything due at or before it
    /// happens (counters count, interrupt lines move).
    fn advance_to(&mut self, now_ns: u64);
    /// The earliest instant at which the device will, by itself, do
    /// something the rest of the machine can see (an interrupt line edge).
    /// `None`: nothing scheduled until the next register access.
    fn next_deadline(&self) -> Option<u64>;
}

/// A clock for tests: it moves only when told to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestClock {
    now: u64,
}

impl TestClock {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn at(now_ns: u64) -> Self {
        Self { now: now_ns }
    }
    pub fn set(&mut self, now_ns: u64) {
        assert!(now_ns >= self.now, "TestClock moved backwards");
        self.now = now_ns;
    }
    pub fn advance(&mut self, delta_ns: u64) -> u64 {
        self.now += delta_ns;
        self.now
    }
}

impl Clock for TestClock {
    fn now_ns(&self) -> u64 {
        self.now
    }
}

pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Number of whole ticks of an `hz` oscillator (started at time 0) by `ns`.
pub fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    (ns as u128 * hz as u128 / NS_PER_SEC as u128) as u64
}

/// The first nanosecond at which tick `ticks` has happened: the smallest `ns`
/// with `ns_to_ticks(ns, hz) >= ticks`. Saturates at `u64::MAX`.
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let ns = (ticks as u128 * NS_PER_SEC as u128).div_ceil(hz as u128);
    ns.min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_conversion_is_exact_and_inverse() {
        const PIT: u64 = 1_193_182;
        assert_eq!(ns_to_ticks(NS_PER_SEC, PIT), PIT);
        assert_eq!(ns_to_ticks(3600 * NS_PER_SEC, PIT), 3600 * PIT, "no drift over an hour");
        for t in [0u64, 1, 2, 65535, 65536, 1_193_181, 1_193_182, 10_000_000_007] {
            let ns = ticks_to_ns(t, PIT);
            assert_eq!(ns_to_ticks(ns, PIT), t, "tick {t} at {ns}");
            if ns > 0 {
                assert_eq!(ns_to_ticks(ns - 1, PIT), t - 1, "tick {t} is not reached before {ns}");
            }
        }
        assert_eq!(ticks_to_ns(1, 32768), 30518);
    }

    #[test]
    fn test_clock_moves_only_when_told() {
        let mut c = TestClock::new();
        assert_eq!(c.now_ns(), 0);
        assert_eq!(c.advance(5), 5);
        c.set(9);
        assert_eq!(c.now_ns(), 9);
    }
}
