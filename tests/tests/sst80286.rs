//! The whole SingleStepTests 80286 real-mode suite (1.18 M tests recorded on
//! real hardware). Every file must pass except those in `KNOWN_FAILING`,
//! which is printed loudly and must shrink to empty.
//!
//! The data lives outside the repository (`$KAGAMI_SST_DIR`, else
//! `../shared/cputests/sst80286-real` next to the workspace root); without
//! it the test says so and does nothing.

use kagami_tests::sst::{default_dir, format_table, run_dir, Options};

/// Files (opcode or opcode.reg) known to fail, with the reason. Each entry is
/// a debt; remove it as soon as the file passes.
const KNOWN_FAILING: &[(&str, &str)] = &[
    ("27", "daa: int-alu branch (not merged here)"),
    ("2F", "das: int-alu branch (not merged here)"),
    ("37", "aaa: int-alu branch (not merged here)"),
    ("3F", "aas: int-alu branch (not merged here)"),
    (
        "62",
        "bound: 62 with mod=11 decodes as EVEX (286 needs BOUND/#UD) — under investigation",
    ),
    ("69", "imul: int-alu branch (not merged here)"),
    ("6B", "imul: int-alu branch (not merged here)"),
    ("C0.0", "rol: int-alu branch (not merged here)"),
    ("C0.1", "ror: int-alu branch (not merged here)"),
    ("C0.2", "rcl: int-alu branch (not merged here)"),
    ("C0.3", "rcr: int-alu branch (not merged here)"),
    ("C0.4", "shl: int-alu branch (not merged here)"),
    ("C0.5", "shr: int-alu branch (not merged here)"),
    ("C0.6", "sal: int-alu branch (not merged here)"),
    ("C0.7", "sar: int-alu branch (not merged here)"),
    ("C1.0", "rol: int-alu branch (not merged here)"),
    ("C1.1", "ror: int-alu branch (not merged here)"),
    ("C1.2", "rcl: int-alu branch (not merged here)"),
    ("C1.3", "rcr: int-alu branch (not merged here)"),
    ("C1.4", "shl: int-alu branch (not merged here)"),
    ("C1.5", "shr: int-alu branch (not merged here)"),
    ("C1.6", "sal: int-alu branch (not merged here)"),
    ("C1.7", "sar: int-alu branch (not merged here)"),
    ("C6", "mov: 1 test, INIT lacks IVT bytes the recorded run used (data anomaly)"),
    ("C7", "mov: 1 test, INIT lacks IVT bytes the recorded run used (data anomaly)"),
    ("CE", "into: 1 test where the 286 pushed SS in the CS slot — under investigation"),
    ("D0.0", "rol: int-alu branch (not merged here)"),
    ("D0.1", "ror: int-alu branch (not merged here)"),
    ("D0.2", "rcl: int-alu branch (not merged here)"),
    ("D0.3", "rcr: int-alu branch (not merged here)"),
    ("D0.4", "shl: int-alu branch (not merged here)"),
    ("D0.5", "shr: int-alu branch (not merged here)"),
    ("D0.6", "sal: int-alu branch (not merged here)"),
    ("D0.7", "sar: int-alu branch (not merged here)"),
    ("D1.0", "rol: int-alu branch (not merged here)"),
    ("D1.1", "ror: int-alu branch (not merged here)"),
    ("D1.2", "rcl: int-alu branch (not merged here)"),
    ("D1.3", "rcr: int-alu branch (not merged here)"),
    ("D1.4", "shl: int-alu branch (not merged here)"),
    ("D1.5", "shr: int-alu branch (not merged here)"),
    ("D1.6", "sal: int-alu branch (not merged here)"),
    ("D1.7", "sar: int-alu branch (not merged here)"),
    ("D2.0", "rol: int-alu branch (not merged here)"),
    ("D2.1", "ror: int-alu branch (not merged here)"),
    ("D2.2", "rcl: int-alu branch (not merged here)"),
    ("D2.3", "rcr: int-alu branch (not merged here)"),
    ("D2.4", "shl: int-alu branch (not merged here)"),
    ("D2.5", "shr: int-alu branch (not merged here)"),
    ("D2.6", "sal: int-alu branch (not merged here)"),
    ("D2.7", "sar: int-alu branch (not merged here)"),
    ("D3.0", "rol: int-alu branch (not merged here)"),
    ("D3.1", "ror: int-alu branch (not merged here)"),
    ("D3.2", "rcl: int-alu branch (not merged here)"),
    ("D3.3", "rcr: int-alu branch (not merged here)"),
    ("D3.4", "shl: int-alu branch (not merged here)"),
    ("D3.5", "shr: int-alu branch (not merged here)"),
    ("D3.6", "sal: int-alu branch (not merged here)"),
    ("D3.7", "sar: int-alu branch (not merged here)"),
    ("D4", "aam: int-alu branch (not merged here)"),
    ("D5", "aad: int-alu branch (not merged here)"),
    ("D6", "salc: int-alu branch (not merged here)"),
    ("F6.4", "mul: int-alu branch (not merged here)"),
    ("F6.5", "imul: int-alu branch (not merged here)"),
    ("F6.6", "div: int-alu branch (not merged here)"),
    ("F6.7", "idiv: int-alu branch (not merged here)"),
    ("F7.4", "mul: int-alu branch (not merged here)"),
    ("F7.5", "imul: int-alu branch (not merged here)"),
    ("F7.6", "div: int-alu branch (not merged here)"),
    ("F7.7", "idiv: int-alu branch (not merged here)"),
    ("FF.3", "call: 1 test where the 286 pushed SS in the CS slot — under investigation"),
];

#[test]
fn sst80286_real_mode_suite() {
    let dir = default_dir();
    if !dir.join("metadata.json").exists() {
        eprintln!(
            "\n*** SKIPPED sst80286_real_mode_suite: no test data at {} (set KAGAMI_SST_DIR) ***\n",
            dir.display()
        );
        return;
    }
    let opts = Options {
        max_dumps: 2,
        ..Options::default()
    };
    let results = run_dir(&dir, &opts).expect("test directory readable");
    let table = format_table(&results, false);
    println!("{table}");
    if !KNOWN_FAILING.is_empty() {
        eprintln!(
            "\n*** {} SST 80286 files are on the KNOWN_FAILING allow-list: ***",
            KNOWN_FAILING.len()
        );
        for (f, why) in KNOWN_FAILING {
            let now = results.iter().find(|r| r.stem == *f);
            let state = match now {
                Some(r) if r.failed() == 0 && r.skipped.is_none() => "now PASSES: remove it from the list".to_string(),
                Some(r) => format!("{} of {} fail", r.failed(), r.run),
                None => "no such file".to_string(),
            };
            eprintln!("***   {f:<6} {why} — {state}");
        }
        eprintln!();
    }
    let unexpected: Vec<_> = results
        .iter()
        .filter(|r| r.failed() > 0 && !KNOWN_FAILING.iter().any(|(f, _)| *f == r.stem))
        .collect();
    for r in &unexpected {
        for d in &r.dumps {
            println!("{d}");
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} SST files fail that are not on the allow-list: {:?}\n{table}",
        unexpected.len(),
        unexpected.iter().map(|r| r.stem.as_str()).collect::<Vec<_>>()
    );
}
