//! `kagami img`: create, inspect and convert disk images (raw and qcow2),
//! with qemu-img's spellings where it has them:
//!
//! ```text
//! kagami img create [-f raw|qcow2] [-b BACKING [-F FMT]] FILE [SIZE]
//! kagami img info [-f FMT] FILE
//! kagami img convert [-f FMT] -O raw|qcow2 [-p] SRC DST
//! ```
//!
//! qcow2 files are written through `imago` (the same crate that reads them
//! for the guest). Bad input is a message and exit code 1.

use crate::drive::{self, ImageFormat, OpenOptions};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(name = "kagami img", about = "Create, inspect and convert disk images (raw, qcow2)")]
struct ImgCli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create an image: SIZE in bytes or with a k/M/G/T suffix; with -b, the
    /// size defaults to the backing file's.
    Create {
        /// Format of the new image.
        #[arg(short = 'f', default_value = "raw")]
        format: String,
        /// Backing file (qcow2 only): the new image starts as a copy-on-write clone.
        #[arg(short = 'b')]
        backing: Option<PathBuf>,
        /// Format of the backing file (default: probed).
        #[arg(short = 'F')]
        backing_format: Option<String>,
        file: PathBuf,
        size: Option<String>,
    },
    /// Print format, virtual size, disk usage and the backing chain.
    Info {
        #[arg(short = 'f')]
        format: Option<String>,
        file: PathBuf,
    },
    /// Copy an image into a new file of another (or the same) format.
    Convert {
        /// Source format (default: probed).
        #[arg(short = 'f')]
        format: Option<String>,
        /// Output format.
        #[arg(short = 'O', default_value = "raw")]
        output_format: String,
        /// Progress bar (qemu-img's flag; kagami shows one whenever stderr is a terminal).
        #[arg(short = 'p')]
        progress: bool,
        src: PathBuf,
        dst: PathBuf,
    },
}

/// Run `kagami img` with `args` (the words after `img`); returns the exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> u8 {
    let cli = match ImgCli::try_parse_from(std::iter::once("kagami img".into()).chain(args)) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            let _ = e.print();
            return 1;
        }
    };
    let r = match cli.cmd {
        Cmd::Create {
            format,
            backing,
            backing_format,
            file,
            size,
        } => create(&format, backing.as_deref(), backing_format.as_deref(), &file, size.as_deref()),
        Cmd::Info { format, file } => info(format.as_deref(), &file).map(|s| print!("{s}")),
        Cmd::Convert {
            format,
            output_format,
            progress,
            src,
            dst,
        } => convert(format.as_deref(), &output_format, progress, &src, &dst),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kagami img: {e}");
            1
        }
    }
}

/// A size in bytes, or with a k/K, M, G, T suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, shift) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 30),
        Some('t' | 'T') => (&s[..s.len() - 1], 40),
        Some('b' | 'B') => (&s[..s.len() - 1], 0),
        _ => (s, 0),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 1048576, 512M, 4G)"))?;
    n.checked_mul(1 << shift)
        .filter(|&b| b <= 1 << 50)
        .ok_or_else(|| format!("size '{s}' is too large (at most 1 PiB)"))
}

fn format_arg(s: Option<&str>) -> Result<Option<ImageFormat>, String> {
    s.map(ImageFormat::parse).transpose()
}

/// Create a raw or qcow2 image of `size` bytes (a qcow2 image may have a backing file).
pub fn create_image(path: &Path, format: ImageFormat, size: u64, backing: Option<(&str, ImageFormat)>) -> Result<(), String> {
    let name = path.display();
    match format {
        ImageFormat::Raw => {
            if backing.is_some() {
                return Err("a raw image cannot have a backing file (use -f qcow2)".into());
            }
            let f = std::fs::File::create(path).map_err(|e| format!("cannot create '{name}': {e}"))?;
            f.set_len(size).map_err(|e| format!("cannot size '{name}': {e}"))?;
            f.sync_all().map_err(|e| format!("'{name}': {e}"))
        }
        ImageFormat::Qcow2 => {
            use imago::{FormatCreateBuilder, Storage, StorageCreateOptions};
            let storage = imago::file::File::create_open(StorageCreateOptions::new().filename(path).overwrite(true))
                .map_err(|e| format!("cannot create '{name}': {e}"))?;
            let mut b = imago::qcow2::Qcow2::<imago::file::File>::create_builder(storage).size(size);
            if let Some((file, fmt)) = backing {
                b = b.backing(file.to_string(), fmt.name().to_string());
            }
            b.create().map_err(|e| format!("cannot write qcow2 image '{name}': {e}"))
        }
    }
}

fn create(format: &str, backing: Option<&Path>, backing_format: Option<&str>, file: &Path, size: Option<&str>) -> Result<(), String> {
    let format = ImageFormat::parse(format)?;
    let mut size = size.map(parse_size).transpose()?;
    let backing = match backing {
        None => {
            if backing_format.is_some() {
                return Err("-F needs -b".into());
            }
            None
        }
        Some(b) => {
            // Relative backing names are relative to the new image's directory.
            let resolved = if b.is_absolute() {
                b.to_path_buf()
            } else {
                file.parent().unwrap_or(Path::new(".")).join(b)
            };
            let chain = drive::backing_chain(&resolved, format_arg(backing_format)?)?;
            size.get_or_insert(chain[0].virtual_size);
            let name = b
                .to_str()
                .ok_or_else(|| format!("backing file name '{}' is not UTF-8", b.display()))?;
            Some((name.to_string(), chain[0].format))
        }
    };
    let size = size.ok_or("create needs a SIZE (or -b BACKING to take its size)")?;
    create_image(file, format, size, backing.as_ref().map(|(n, f)| (n.as_str(), *f)))?;
    println!("Formatting '{}', fmt={} size={size}", file.display(), format.name());
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.3} {}", UNITS[u]).replace(".000 ", " ")
    }
}

/// `kagami img info` text for the image at `file`.
pub fn info(format: Option<&str>, file: &Path) -> Result<String, String> {
    use std::fmt::Write;
    use std::os::unix::fs::MetadataExt;
    let chain = drive::backing_chain(file, format_arg(format)?)?;
    let mut out = String::new();
    for (i, link) in chain.iter().enumerate() {
        let meta = std::fs::metadata(&link.path).map_err(|e| format!("'{}': {e}", link.path.display()))?;
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "image: {}", link.path.display());
        let _ = writeln!(out, "file format: {}", link.format.name());
        let _ = writeln!(out, "virtual size: {} ({} bytes)", human(link.virtual_size), link.virtual_size);
        let _ = writeln!(out, "disk size: {}", human(meta.blocks() * 512));
        if let Some(h) = &link.header {
            let _ = writeln!(out, "qcow2 version: {}", h.version);
            let _ = writeln!(out, "cluster_size: {}", 1u64 << h.cluster_bits);
            if let Some(b) = &h.backing_file {
                let _ = writeln!(out, "backing file: {b}");
            }
            if let Some(f) = &h.backing_format {
                let _ = writeln!(out, "backing file format: {f}");
            }
        }
    }
    if chain.len() > 1 {
        let names: Vec<String> = chain.iter().map(|l| l.path.display().to_string()).collect();
        let _ = writeln!(out, "\nbacking chain: {}", names.join(" -> "));
    }
    Ok(out)
}

fn convert(format: Option<&str>, output: &str, progress: bool, src: &Path, dst: &Path) -> Result<(), String> {
    let out_format = ImageFormat::parse(output)?;
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            return Err(format!("'{}' is both the source and the destination", src.display()));
        }
    }
    let mut input = drive::open(
        src,
        &OpenOptions {
            format: format_arg(format)?,
            read_only: true,
            snapshot: false,
        },
    )?;
    let size = input.len();
    create_image(dst, out_format, size, None)?;
    let mut output = drive::open(
        dst,
        &OpenOptions {
            format: Some(out_format),
            read_only: false,
            snapshot: false,
        },
    )?;
    let _ = progress;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(size);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while pos < size {
        let n = CHUNK.min((size - pos) as usize);
        input
            .read_at(pos, &mut buf[..n])
            .map_err(|e| format!("reading '{}': {e}", src.display()))?;
        // The new image reads as zeros already: leave zero runs unallocated.
        if buf[..n].iter().any(|&b| b != 0) {
            output
                .write_at(pos, &buf[..n])
                .map_err(|e| format!("writing '{}': {e}", dst.display()))?;
        }
        pos += n as u64;
        if let Some(b) = &bar {
            b.set_position(pos);
        }
    }
    output.flush().map_err(|e| format!("writing '{}': {e}", dst.display()))?;
    if let Some(b) = bar {
        b.finish();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999T").is_err());
    }
}
