//! `kagami-mkinitramfs`: build a Linux initramfs (newc cpio, optionally
//! gzip-compressed) from a `gen_init_cpio`-style description, with kagami's
//! own writer (`kagami_machine::initramfs`). scripts/build-test-guest.sh
//! uses it for the test guest.

use clap::Parser;
use kagami_machine::initramfs::{parse_spec, CpioWriter};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Build an initramfs (newc cpio) from a description file.
///
/// Each line of SPEC is one of (as in the kernel's usr/gen_init_cpio):
///   dir   <path> <mode> <uid> <gid>
///   file  <path> <host file> <mode> <uid> <gid>
///   slink <path> <target> <mode> <uid> <gid>
///   nod   <path> <mode> <uid> <gid> <c|b> <major> <minor>
/// Host files are relative to the current directory. '#' starts a comment.
#[derive(Parser, Debug)]
#[command(name = "kagami-mkinitramfs", version, verbatim_doc_comment)]
struct Args {
    /// The description file.
    spec: PathBuf,
    /// Where to write the archive.
    #[arg(short, long)]
    output: PathBuf,
    /// Compress with gzip (the default when OUTPUT ends in .gz).
    #[arg(long)]
    gzip: bool,
}

fn run(args: &Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.spec).map_err(|e| format!("cannot read {}: {e}", args.spec.display()))?;
    let entries = parse_spec(&text, |p| std::fs::read(p)).map_err(|e| format!("{}: {e}", args.spec.display()))?;
    let gzip = args.gzip || args.output.extension().is_some_and(|e| e == "gz");
    let mut bytes = CpioWriter::new(Vec::new());
    for e in &entries {
        bytes.append(e).map_err(|err| format!("{}: {err}", e.path))?;
    }
    let mut bytes = bytes.finish().map_err(|e| e.to_string())?;
    if gzip {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&bytes).and_then(|_| z.flush()).map_err(|e| e.to_string())?;
        bytes = z.finish().map_err(|e| e.to_string())?;
    }
    // Write beside the target and rename, so an interrupted run never
    // leaves a truncated archive that a cache check would take as done.
    let tmp = args.output.with_extension("partial");
    std::fs::write(&tmp, &bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &args.output).map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    eprintln!(
        "kagami-mkinitramfs: {} entries, {} bytes -> {}",
        entries.len(),
        bytes.len(),
        args.output.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        // --help and --version are not errors; everything else exits 1.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kagami-mkinitramfs: {e}");
            ExitCode::FAILURE
        }
    }
}
