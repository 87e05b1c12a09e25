//! The TCG accelerator's construction: kagami's interpreter plus the
//! Cranelift JIT (kagami-jit), as the command line configures it
//! (`--jit`, `--no-jit`, `--jit-threshold N`, `--jit-stats`).
//!
//! The JIT is on by default (`--no-jit` for interpreter only): release
//! vmlinux boot to power-off, interpreter-only and JIT runs side by side on
//! the loaded 2-core machine (2026-11-23), twice: 79.8 s vs 73.6 s and
//! 62.4 s vs 56.6 s (default threshold 2000; 12-13 s of the JIT runs
//! compiling). Lower thresholds lose to compile time: dev build,
//! deterministic boot, interpreter-only 141.9 s beside `--jit-threshold 50`
//! 188.5 s (110 s compiling).

use kagami_cpu::Cpu;
use kagami_jit::{Jit, JitConfig};

/// What the command line says about the JIT.
#[derive(Clone, Debug)]
pub struct JitOptions {
    /// Install the JIT (on by default; `--no-jit`: interpreter only).
    pub enabled: bool,
    /// Executions of a block before it is translated (0: at first sight).
    pub threshold: u32,
    /// Print translation statistics on stderr when the run ends.
    pub stats: bool,
    /// Compile on a background thread while the interpreter runs the block
    /// (`--jit-sync`: on the CPU's thread). Translated code is exact, so
    /// when a block switches from interpreted to translated changes
    /// nothing the guest sees, even under `-icount`.
    pub background: bool,
}

impl Default for JitOptions {
    fn default() -> Self {
        JitOptions {
            enabled: true,
            threshold: JitConfig::default().threshold,
            stats: false,
            background: true,
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
                background: o.background,
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
