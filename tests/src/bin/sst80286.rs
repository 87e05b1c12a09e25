//! Run the SingleStepTests 80286 real-mode suite and print a per-file table.
//!
//! usage: sst80286 [DIR] [--file STEM]... [--index N] [--max N] [--verbose] [--dumps N]
//!                 [--threads N] [--all] [--trace]
//!
//! DIR defaults to $KAGAMI_SST_DIR, else ../shared/cputests/sst80286-real
//! next to the workspace root.

use kagami_tests::sst::{default_dir, format_table, run_dir, Options};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: sst80286 [DIR] [--file STEM]... [--index N] [--max N] [--verbose] [--dumps N] [--threads N] [--all] [--trace]
  DIR          test directory (default: $KAGAMI_SST_DIR or ../shared/cputests/sst80286-real)
  --file STEM  run only this file (e.g. 00 or F7.6); may repeat
  --index N    run only the test with index N
  --max N      run at most N tests per file
  --verbose    print failure dumps (file, index, NAME, differences, disassembly)
  --dumps N    failure dumps kept per file with --verbose (default 3)
  --threads N  worker threads (default 2)
  --all        list passing files too, not only failing ones
  --trace      print each instruction executed (use with --file and --index)";

fn parse_num(flag: &str, v: Option<String>) -> Result<usize, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a number"))?;
    v.parse().map_err(|_| format!("{flag}: `{v}` is not a number"))
}

fn main() -> ExitCode {
    let mut opts = Options::default();
    let mut dir: Option<PathBuf> = None;
    let mut verbose = false;
    let mut all = false;
    let mut args = std::env::args().skip(1);
    let parsed: Result<(), String> = (|| {
        while let Some(a) = args.next() {
            match a.as_str() {
                "--file" => opts.only.push(args.next().ok_or("--file needs a file stem")?),
                "--index" => opts.index = Some(parse_num("--index", args.next())? as u32),
                "--max" => opts.max_tests = Some(parse_num("--max", args.next())?),
                "--dumps" => opts.max_dumps = parse_num("--dumps", args.next())?,
                "--threads" => opts.threads = parse_num("--threads", args.next())?,
                "--verbose" | "-v" => verbose = true,
                "--all" => all = true,
                "--trace" => opts.trace = true,
                "--help" | "-h" => return Err(String::new()),
                s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
                _ if dir.is_none() => dir = Some(PathBuf::from(a)),
                _ => return Err(format!("unexpected argument `{a}`")),
            }
        }
        Ok(())
    })();
    if let Err(e) = parsed {
        if !e.is_empty() {
            eprintln!("sst80286: {e}");
        }
        eprintln!("{USAGE}");
        return ExitCode::from(if e.is_empty() { 0 } else { 1 });
    }
    if !verbose {
        opts.max_dumps = 0;
    }
    let dir = dir.unwrap_or_else(default_dir);
    let results = match run_dir(&dir, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sst80286: {e}");
            return ExitCode::from(1);
        }
    };
    if verbose {
        for r in &results {
            for d in &r.dumps {
                println!("{d}");
            }
        }
    }
    print!("{}", format_table(&results, all));
    if results.iter().all(|r| r.failed() == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
