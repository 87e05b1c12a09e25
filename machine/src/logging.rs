//! `-d ITEMS` / `-D FILE`: QEMU-style debug logging through the `tracing`
//! crate. Each item turns on the events of one or more tracing targets:
//!
//! | item | targets | what |
//! |---|---|---|
//! | `int` | `int` | every interrupt and exception delivered (vector, CS:RIP, CR2) |
//! | `guest_errors` | `guest_errors` | things a correct guest does not do (triple fault, ...) |
//! | `unimp` | `unimp`, `kagami::cpu`, `kagami_devices` | unimplemented instructions and device features |
//! | `cpu_reset` | `cpu_reset` | CPU resets, with the register state before the reset |
//! | `input` | `input` | outside input through the machine's doorway, with its instruction count |
//!
//! Without `-d` no subscriber is installed, so the events cost one static check.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The items `-d` accepts, with their tracing directives.
pub const ITEMS: &[(&str, &str, &str)] = &[
    ("int", "int=trace", "interrupts and exceptions delivered to the CPU"),
    (
        "guest_errors",
        "guest_errors=trace",
        "guest behaviour no correct guest shows (triple faults, ...)",
    ),
    (
        "unimp",
        "unimp=trace,kagami::cpu=trace,kagami_devices=debug",
        "unimplemented instructions and device features",
    ),
    ("cpu_reset", "cpu_reset=trace", "CPU resets, with the state before the reset"),
    (
        "input",
        "input=debug",
        "outside input (typed bytes, host entropy) and the instruction count it took effect at",
    ),
];

/// Turn `-d a,b,c` into an EnvFilter directive string. `help` lists the items.
pub fn directives(items: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for item in items.split(',').filter(|s| !s.is_empty()) {
        match ITEMS.iter().find(|(n, _, _)| *n == item) {
            Some((_, d, _)) => out.push(*d),
            None => {
                let names: Vec<&str> = ITEMS.iter().map(|(n, _, _)| *n).collect();
                return Err(format!("-d: unknown log item '{item}' (kagami has: {})", names.join(", ")));
            }
        }
    }
    if out.is_empty() {
        return Err("-d: no log items given".into());
    }
    Ok(out.join(","))
}

/// A `-d help` listing.
pub fn help() -> String {
    let mut s = String::from("Log items (-d ITEM[,ITEM...]):\n");
    for (n, _, what) in ITEMS {
        s.push_str(&format!("  {n:<13} {what}\n"));
    }
    s
}

#[derive(Clone)]
struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Install the subscriber for `-d items` writing to `file` (stderr when None).
pub fn init(items: &str, file: Option<&std::path::Path>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(directives(items)?).map_err(|e| format!("-d: {e}"))?;
    let out: Box<dyn Write + Send> = match file {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("-D: cannot create {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stderr()),
    };
    let w = SharedWriter(Arc::new(Mutex::new(out)));
    FLUSH.with(|f| *f.borrow_mut() = Some(w.clone()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || w.clone())
        .with_ansi(false)
        .without_time()
        .with_target(true)
        .with_level(false)
        .try_init()
        .map_err(|e| format!("-d: {e}"))
}

thread_local! {
    static FLUSH: std::cell::RefCell<Option<SharedWriter>> = const { std::cell::RefCell::new(None) };
}

/// Flush a `-D` file (call before exiting).
pub fn flush() {
    FLUSH.with(|f| {
        if let Some(w) = f.borrow_mut().as_mut() {
            let _ = w.flush();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_map_to_directives_and_unknown_items_are_errors() {
        assert_eq!(directives("int").unwrap(), "int=trace");
        assert!(directives("int,cpu_reset").unwrap().contains("cpu_reset=trace"));
        assert!(directives("int,bogus").unwrap_err().contains("unknown log item 'bogus'"));
        assert!(directives("").is_err());
    }
}
