//! The machine's one clock. Every device's notion of time comes from here,
//! in nanoseconds since power-on.
//!
//! - Host mode (default): time follows the host's monotonic clock, read only
//!   here (it is an outside input, like a key press).
//! - Instruction mode (`-icount shift=N`, deterministic): time is
//!   `instructions retired << N` nanoseconds plus a "warp" added when the CPU
//!   halts, so that an idle guest jumps straight to its next timer instead of
//!   spinning. The warp depends only on guest and device state, so two runs
//!   with the same inputs see the same times at the same instructions.

use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    Host,
    /// 2^shift nanoseconds per instruction.
    Instructions {
        shift: u32,
    },
}

#[derive(Debug)]
pub struct MachineClock {
    mode: ClockMode,
    start: Instant,
    /// Nanoseconds added while halted (instruction mode) or while paused (host mode).
    warp_ns: u64,
}

impl MachineClock {
    pub fn new(mode: ClockMode) -> MachineClock {
        MachineClock {
            mode,
            start: Instant::now(),
            warp_ns: 0,
        }
    }

    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    pub fn is_deterministic(&self) -> bool {
        matches!(self.mode, ClockMode::Instructions { .. })
    }

    /// The time now, given the instructions retired so far.
    pub fn now_ns(&self, icount: u64) -> u64 {
        match self.mode {
            ClockMode::Host => self.start.elapsed().as_nanos() as u64 + self.warp_ns,
            ClockMode::Instructions { shift } => (icount << shift) + self.warp_ns,
        }
    }

    /// How many instructions may run before `deadline_ns` (instruction mode);
    /// in host mode, a slice length that keeps device latency low.
    pub fn budget_until(&self, icount: u64, deadline_ns: Option<u64>, max: u64) -> u64 {
        match (self.mode, deadline_ns) {
            (ClockMode::Instructions { shift }, Some(d)) => {
                let now = self.now_ns(icount);
                (d.saturating_sub(now) >> shift).clamp(1, max)
            }
            _ => max,
        }
    }

    /// The CPU is idle until `deadline_ns`: in instruction mode, jump there.
    /// Returns how long a host-mode caller should sleep instead.
    pub fn idle_until(&mut self, icount: u64, deadline_ns: u64) -> std::time::Duration {
        let now = self.now_ns(icount);
        if deadline_ns <= now {
            return std::time::Duration::ZERO;
        }
        match self.mode {
            ClockMode::Instructions { .. } => {
                self.warp_ns += deadline_ns - now;
                std::time::Duration::ZERO
            }
            ClockMode::Host => std::time::Duration::from_nanos(deadline_ns - now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_clock_is_exact_and_warps_on_idle() {
        let mut c = MachineClock::new(ClockMode::Instructions { shift: 3 });
        assert_eq!(c.now_ns(1000), 8000);
        assert_eq!(c.budget_until(1000, Some(8800), 1 << 20), 100);
        assert_eq!(c.budget_until(1000, Some(100), 1 << 20), 1, "overdue deadlines still make progress");
        assert_eq!(c.idle_until(1000, 20_000), std::time::Duration::ZERO);
        assert_eq!(c.now_ns(1000), 20_000);
        assert_eq!(c.now_ns(1001), 20_008);
    }

    #[test]
    fn host_clock_moves_forward() {
        let c = MachineClock::new(ClockMode::Host);
        let a = c.now_ns(0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now_ns(0) >= a + 1_000_000);
    }
}
