//! The TCG accelerator's construction: kagami's interpreter plus the
//! Cranelift JIT (kagami-jit), as the command line configures it
//! (`--jit`, `--no-jit`, `--jit-threshold N`, `--jit-stats`).
//!
//! The JIT is opt-in for now: its first tier (no block chaining, memory
//! operands inline only in 64-bit mode) is slower than the interpreter's fast
//! path on most code. Measured 2026-11-23 in release on this project's 2-core
//! machine: the Linux vmlinux boot to power-off took 12.0 s interpreter-only
//! and 27.1 s with the JIT at its default threshold; `jit_mips` showed the
//! JIT at 1.4x on a register loop but 0.53x (hash) and 0.31x (sort).

use kagami_cpu::Cpu;
use kagami_jit::{Jit, JitConfig};

/// What the command line says about the JIT.
#[derive(Clone, Debug)]
pub struct JitOptions {
    /// Install the JIT (off, the default: interpreter only).
    pub enabled: bool,
    /// Executions of a block before it is translated (0: at first sight).
    pub threshold: u32,
    /// Print translation statistics on stderr when the run ends.
    pub stats: bool,
}

impl Default for JitOptions {
    fn default() -> Self {
        JitOptions {
            enabled: false,
            threshold: JitConfig::default().threshold,
            stats: false,
        }
    }
}

/// Install the JIT into `cpu` if the options ask for it.
pub fn install(cpu: &mut Cpu, o: &JitOptions) {
    if o.enabled {
        Jit::install(
            cpu,
            JitConfig {
                threshold: o.threshold,
                ..JitConfig::default()
            },
        );
    }
}

/// The `--jit-stats` report: the translator's own counters and the split of
/// retired instructions between translated code and the interpreter.
pub fn stats_report(cpu: &Cpu) -> String {
    let Some(t) = cpu.translator() else {
        return format!(
            "jit: off (interpreter only; --jit turns it on); {} instructions interpreted",
            cpu.s.icount
        );
    };
    let mut r = t.stats_report();
    if let Some(n) = r
        .split(", ")
        .find(|p| p.ends_with("instructions retired in translated code"))
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
    {
        let total = cpu.s.icount.max(1);
        r.push_str(&format!(
            "\njit: {} of {} instructions ({:.1}%) in translated code, {} interpreted",
            n,
            cpu.s.icount,
            100.0 * n as f64 / total as f64,
            cpu.s.icount.saturating_sub(n)
        ));
    }
    r
}
