//! The `kagami` command line.
//!
//! Options follow QEMU's spelling where QEMU has one: besides clap's own
//! `--name`, a single-dash long option such as `-kernel` is accepted for
//! every long option (see [`qemu_style`]), so `-machine`, `-kernel`,
//! `-initrd`, `-append` and friends slot into [`Cli`] as plain fields when
//! the platform work adds them.

use clap::{CommandFactory, Parser};
use kagami_machine::demo;
use std::ffi::OsString;
use std::process::ExitCode;

mod boot;
mod console;
mod drives;
mod logging;

/// kagami: a full-system x86-64 PC emulator.
#[derive(Parser, Debug)]
#[command(
    name = "kagami",
    version,
    about,
    after_help = "Single-dash long options (-demo) are accepted too, as QEMU spells them."
)]
pub(crate) struct Cli {
    /// Run the built-in demo guest: a real-mode program that prints primes
    /// on the console (port 0xE9 / UART 0x3F8) and exits with its status
    /// through port 0xF4.
    #[arg(long)]
    pub(crate) demo: bool,

    /// Stop the guest after this many instructions (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_instructions: u64,

    /// Machine type: pc (i440FX) or q35, with optional ,accel=tcg|kvm.
    #[arg(long, value_name = "TYPE[,accel=A]")]
    pub(crate) machine: Option<String>,

    /// Accelerator: tcg (kagami's own CPU), kvm, or kvm:tcg (KVM if usable).
    #[arg(long, value_name = "ACCEL")]
    pub(crate) accel: Option<String>,

    /// Same as -accel kvm.
    #[arg(long)]
    pub(crate) enable_kvm: bool,

    /// CPU model (only kagami's own model exists; "max", "host" and "qemu64" are accepted).
    #[arg(long, value_name = "MODEL")]
    pub(crate) cpu: Option<String>,

    /// Guest RAM: MiB, or a size with K/M/G suffix (default 128M).
    #[arg(short = 'm', value_name = "SIZE")]
    pub(crate) memory: Option<String>,

    /// Number of CPUs (kagami runs one for now).
    #[arg(long, value_name = "N")]
    pub(crate) smp: Option<String>,

    /// Kernel to boot directly: Linux bzImage, Multiboot ELF, or a PVH vmlinux.
    #[arg(long, value_name = "FILE")]
    pub(crate) kernel: Option<std::path::PathBuf>,

    /// Initial ramdisk (Linux, PVH) or Multiboot module.
    #[arg(long, value_name = "FILE")]
    pub(crate) initrd: Option<std::path::PathBuf>,

    /// Kernel command line.
    #[arg(long, value_name = "CMDLINE", default_value = "")]
    pub(crate) append: String,

    /// Firmware image (e.g. SeaBIOS's bios-256k.bin), mapped below 4 GiB
    /// and its last 128 KiB below 1 MiB; the CPU starts at its reset vector.
    #[arg(long, value_name = "FILE")]
    pub(crate) bios: Option<std::path::PathBuf>,

    /// No graphical output; the serial port is on stdio.
    #[arg(long)]
    pub(crate) nographic: bool,

    /// Display backend (only "none" for now).
    #[arg(long, value_name = "TYPE")]
    pub(crate) display: Option<String>,

    /// Serial port backend, once per port: stdio, file:PATH, null.
    #[arg(long, value_name = "DEV")]
    pub(crate) serial: Vec<String>,

    /// Devices: isa-debug-exit[,iobase=A,iosize=N], isa-debugcon[,iobase=A,chardev=ID], pc-testdev,
    /// ide-hd|ide-cd[,drive=ID][,bus=ide.N|CTRL.N][,unit=U][,bootindex=I], ahci[,id=CTRL][,addr=SLOT].
    #[arg(long, value_name = "DRIVER[,PROP=V...]")]
    pub(crate) device: Vec<String>,

    /// Character devices for -device ...,chardev=ID: stdio|file|null,id=ID[,path=P].
    #[arg(long, value_name = "BACKEND,id=ID[,path=P]")]
    pub(crate) chardev: Vec<String>,

    /// A drive: file=PATH[,format=raw|qcow2][,if=ide|none][,media=disk|cdrom][,readonly=on][,index=N|bus=B,unit=U][,id=ID][,snapshot=on].
    #[arg(long, value_name = "OPTIONS")]
    pub(crate) drive: Vec<String>,

    /// Hard disk image at IDE index 0.
    #[arg(long, value_name = "FILE")]
    pub(crate) hda: Option<String>,

    /// Hard disk image at IDE index 1.
    #[arg(long, value_name = "FILE")]
    pub(crate) hdb: Option<String>,

    /// Hard disk image at IDE index 2.
    #[arg(long, value_name = "FILE")]
    pub(crate) hdc: Option<String>,

    /// Hard disk image at IDE index 3.
    #[arg(long, value_name = "FILE")]
    pub(crate) hdd: Option<String>,

    /// CD-ROM image (IDE index 2).
    #[arg(long, value_name = "FILE")]
    pub(crate) cdrom: Option<String>,

    /// Firmware boot order: order=c (hard disk), d (CD-ROM), or both (cd, dc).
    #[arg(long, value_name = "order=X")]
    pub(crate) boot: Option<String>,

    /// Guest writes to disk images go to temporary overlays; the images stay unchanged.
    #[arg(long)]
    pub(crate) snapshot: bool,

    /// isa-debugcon on port 0xE9 writing to stdio, file:PATH or null.
    #[arg(long, value_name = "DEV")]
    pub(crate) debugcon: Option<String>,

    /// Exit instead of rebooting when the guest resets.
    #[arg(long)]
    pub(crate) no_reboot: bool,

    /// When the guest powers off, stop the machine instead of exiting; Ctrl-A X then quits.
    #[arg(long)]
    pub(crate) no_shutdown: bool,

    /// Start with the machine paused: kagami waits for Enter on stdin (there is no monitor yet).
    #[arg(short = 'S')]
    pub(crate) paused: bool,

    /// GDB remote stub on a TCP port: tcp::PORT or tcp:HOST:PORT (TCG only; see README).
    #[arg(long, value_name = "DEV")]
    pub(crate) gdb: Option<String>,

    /// Same as -gdb tcp::1234.
    #[arg(short = 's')]
    pub(crate) gdb_default: bool,

    /// Deterministic mode: time is instructions retired << shift nanoseconds.
    #[arg(long, value_name = "shift=N")]
    pub(crate) icount: Option<String>,

    /// Print the machine's I/O map (and MMIO map) and exit.
    #[arg(long)]
    pub(crate) print_machine: bool,

    /// TCG: translate hot blocks with the Cranelift JIT (the default; kept
    /// for old command lines).
    #[arg(long)]
    pub(crate) jit: bool,

    /// TCG: interpreter only, no JIT (overrides --jit).
    #[arg(long)]
    pub(crate) no_jit: bool,

    /// TCG: executions of a block before the JIT translates it (0: at first sight).
    #[arg(long, value_name = "N")]
    pub(crate) jit_threshold: Option<u32>,

    /// Print JIT statistics on stderr at exit.
    #[arg(long)]
    pub(crate) jit_stats: bool,

    /// TCG: compile blocks on the CPU's thread instead of a background
    /// compiler thread (the guest runs the same either way).
    #[arg(long)]
    pub(crate) jit_sync: bool,

    /// Debug log items, comma separated: int, guest_errors, unimp, cpu_reset (-d help lists them).
    #[arg(short = 'd', value_name = "ITEMS")]
    pub(crate) log_items: Option<String>,

    /// Write the -d log to FILE instead of stderr.
    #[arg(short = 'D', value_name = "FILE")]
    pub(crate) log_file: Option<std::path::PathBuf>,

    /// At exit, print the retired instruction count (and time, MIPS, final CS:RIP) on stderr.
    #[arg(long)]
    pub(crate) stats: bool,
}

/// Rewrite QEMU-style single-dash long options (`-kernel x`, `-m=512`) to
/// clap's `--kernel x`. Only names that `Cli` knows as long options are
/// rewritten, so short-option clusters and values are left alone; anything
/// after `--` is untouched.
fn qemu_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let cmd = Cli::command();
    let longs: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .chain(["help".into(), "version".into()])
        .collect();
    let mut out = Vec::new();
    let mut rest = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(a);
            continue;
        }
        if a == "--" {
            rest = true;
            out.push(a);
            continue;
        }
        let rewritten = a.to_str().and_then(|s| {
            let name = s.strip_prefix('-').filter(|n| !n.starts_with('-'))?;
            let key = name.split('=').next().unwrap_or(name);
            (key.len() > 1 && longs.iter().any(|l| l == key)).then(|| OsString::from(format!("-{s}")))
        });
        out.push(rewritten.unwrap_or(a));
    }
    out
}

fn run_demo(cli: &Cli) -> Result<u8, String> {
    let limit = if cli.max_instructions == 0 {
        u64::MAX
    } else {
        cli.max_instructions
    };
    let stdout = std::io::stdout().lock();
    let (outcome, _) = demo::run(stdout, limit)?;
    match outcome {
        demo::Outcome::Exited { status, instructions } => {
            if status & demo::EXCEPTION_STATUS != 0 {
                eprintln!(
                    "kagami: the demo guest took exception vector {} after {instructions} instructions (status {status:#x})",
                    status & !demo::EXCEPTION_STATUS
                );
            } else {
                eprintln!("kagami: demo guest exited with status {status} after {instructions} instructions");
            }
            Ok(status)
        }
        demo::Outcome::Stuck { why, instructions } => Err(format!(
            "the demo guest stopped without reporting a status ({why:?}) after {instructions} instructions"
        )),
    }
}

fn main() -> ExitCode {
    // `kagami img ...`: the image tool has its own command line.
    let mut args = std::env::args_os();
    if std::env::args_os().nth(1).is_some_and(|a| a == "img") {
        return ExitCode::from(kagami_machine::img::main(args.by_ref().skip(2).collect()));
    }
    let cli = match Cli::try_parse_from(qemu_style(std::env::args_os())) {
        Ok(c) => c,
        // --help and --version print to stdout and succeed.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    if let Some(items) = &cli.log_items {
        if items == "help" {
            print!("{}", logging::help());
            return ExitCode::SUCCESS;
        }
        if let Err(e) = logging::init(items, cli.log_file.as_deref()) {
            eprintln!("kagami: {e}");
            return ExitCode::FAILURE;
        }
    } else if cli.log_file.is_some() {
        eprintln!("kagami: -D: a log file needs -d ITEMS to say what to log");
        return ExitCode::FAILURE;
    }
    if !cli.demo {
        let r = boot::run(&cli);
        logging::flush();
        return match r {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("kagami: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run_demo(&cli) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("kagami: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        qemu_style(a.iter().map(OsString::from))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_options_become_double_dash() {
        assert_eq!(args(&["kagami", "-demo"]), ["kagami", "--demo"]);
        assert_eq!(args(&["kagami", "-max-instructions=5"]), ["kagami", "--max-instructions=5"]);
        assert_eq!(args(&["kagami", "--demo", "-h"]), ["kagami", "--demo", "-h"]);
        assert_eq!(args(&["kagami", "-nosuch"]), ["kagami", "-nosuch"]);
        assert_eq!(args(&["kagami", "--", "-demo"]), ["kagami", "--", "-demo"]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Cli::try_parse_from(qemu_style(["kagami", "-max-instructions", "lots"].map(OsString::from))).is_err());
        assert!(Cli::try_parse_from(["kagami", "--bogus"]).is_err());
        let c = Cli::try_parse_from(qemu_style(["kagami", "-demo", "-max-instructions", "7"].map(OsString::from))).unwrap();
        assert!(c.demo);
        assert_eq!(c.max_instructions, 7);
    }
}
