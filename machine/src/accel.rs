//! The TCG accelerator's construction: kagami's interpreter plus the
//! Cranelift JIT (kagami-jit), as the command line configures it
//! (`--jit`, `--no-jit`, `--jit-threshold N`, `--jit-stats`).
//!
//! The JIT is opt-in for now. Translated code now beats the interpreter on
//! hot loops (`jit_mips`), but on the Linux boot compile time still eats the
//! gain: deterministic vmlinux boot to power-off, dev build, on the loaded
//! 2-core machine (2026-11-23), two runs at a time: interpreter-only 141.9 s
//! beside `--jit --jit-threshold 50` 188.5 s (110 s of it compiling); and
//! `--jit-threshold 1000` 144.8 s beside `--jit-threshold 4000` 136.6 s
//! (21 s compiling, 94.8% of the instructions translated).

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
