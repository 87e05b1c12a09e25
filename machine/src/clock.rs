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

use std::cell::Cell;
use std::time::Instant;

/// Host mode: the most machine time one retired instruction may take, as
/// the interpreter sees it. A host stall (kagami descheduled, the host
/// swapping) longer than this is not shown to the guest: its clock falls
/// behind the host's by the excess instead of jumping, so a busy host does
/// not make the guest miss timer ticks ("IO-APIC + timer doesn't work!",
/// lost jiffies). 2 µs is 40 times the interpreter's usual time per
/// instruction.
pub const MAX_NS_PER_INSN: u64 = 2_000;

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
    /// Host mode: host time the guest did not see (stalls, see [`MAX_NS_PER_INSN`]).
    lag_ns: Cell<u64>,
    /// Host mode: (instruction count, time) of the last paced reading.
    last: Cell<(u64, u64)>,
    /// Host mode: the next paced reading may jump (the CPU was idle).
    idle: Cell<bool>,
}

impl MachineClock {
    pub fn new(mode: ClockMode) -> MachineClock {
        MachineClock {
            mode,
            start: Instant::now(),
            warp_ns: 0,
            lag_ns: Cell::new(0),
            last: Cell::new((0, 0)),
            idle: Cell::new(false),
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
            ClockMode::Host => (self.start.elapsed().as_nanos() as u64 + self.warp_ns).saturating_sub(self.lag_ns.get()),
            ClockMode::Instructions { shift } => (icount << shift) + self.warp_ns,
        }
    }

    /// The time as the interpreted CPU sees it: [`now_ns`](Self::now_ns),
    /// except that in host mode time moves at most [`MAX_NS_PER_INSN`] per
    /// instruction retired since the last reading, unless the CPU was idle
    /// in between ([`idle_passed`](Self::idle_passed)). Never goes backwards.
    pub fn paced_now_ns(&self, icount: u64) -> u64 {
        if self.mode != ClockMode::Host {
            return self.now_ns(icount);
        }
        let t = self.now_ns(icount);
        let (last_icount, last_ns) = self.last.get();
        let t = if self.idle.replace(false) {
            t.max(last_ns)
        } else {
            let max = last_ns.saturating_add((icount.saturating_sub(last_icount) + 1).saturating_mul(MAX_NS_PER_INSN));
            if t > max {
                self.lag_ns.set(self.lag_ns.get() + (t - max));
                max
            } else {
                t.max(last_ns)
            }
        };
        self.last.set((icount, t));
        t
    }

    /// The CPU was idle (halted): host time that passed meanwhile is the
    /// guest's, and the next paced reading may jump to it.
    pub fn idle_passed(&self) {
        self.idle.set(true);
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
    fn host_clock_hides_stalls_from_a_running_cpu_but_not_idle_time() {
        let c = MachineClock::new(ClockMode::Host);
        let a = c.paced_now_ns(0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 10 instructions later: at most 11 * MAX_NS_PER_INSN, not 20 ms.
        let b = c.paced_now_ns(10);
        assert!(b >= a && b - a <= 11 * MAX_NS_PER_INSN, "{a} -> {b}");
        assert!(c.now_ns(10) < 5_000_000 + b, "the stall became lag");
        c.idle_passed();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let d = c.paced_now_ns(10);
        assert!(d >= b + 5_000_000, "idle time passes: {b} -> {d}");
    }

    #[test]
    fn host_clock_moves_forward() {
        let c = MachineClock::new(ClockMode::Host);
        let a = c.now_ns(0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now_ns(0) >= a + 1_000_000);
    }
}
