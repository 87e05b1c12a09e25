//! Disk images on the host: opening raw and qcow2 files as the
//! [`BlockBackend`] a disk controller uses.
//!
//! - Raw files are read and written with positioned I/O; a guest FLUSH is
//!   `fdatasync`.
//! - qcow2 (version 2 and 3, compressed clusters, backing chains) goes
//!   through the `imago` crate; kagami only checks the header first
//!   ([`Qcow2Header`]) so that a corrupt or truncated file, or a missing
//!   backing file, is a clear error at start-up, before anything is opened
//!   for writing.
//! - Locking: an image opened writable holds an exclusive `flock` on the
//!   file for as long as the backend lives, a read-only one a shared lock,
//!   so a second kagami cannot open it for writing meanwhile (and cannot open
//!   for writing an image another one reads). Every backing file of a qcow2
//!   chain is only read: it holds a shared lock, so nobody can open a base
//!   for writing while an overlay on it is in use. `-snapshot` takes shared
//!   locks only.
//! - `-snapshot`: the image is opened read-only and the guest writes into an
//!   in-memory [`Overlay`] that is dropped at exit.
//!
//! Every error is a message naming the file and what is wrong.

use kagami_devices::storage::{check_range, BlockBackend, BlockError, Overlay};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Image file formats kagami reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

impl ImageFormat {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(ImageFormat::Raw),
            "qcow2" => Ok(ImageFormat::Qcow2),
            _ => Err(format!("unknown image format '{s}' (kagami has raw and qcow2)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// The format a file's first bytes say it has (qcow2 magic, else raw).
pub fn probe_format(path: &Path) -> Result<ImageFormat, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open image '{}': {e}", path.display()))?;
    let mut magic = [0u8; 4];
    match f.read_exact(&mut magic) {
        Ok(()) if magic == QCOW2_MAGIC => Ok(ImageFormat::Qcow2),
        _ => Ok(ImageFormat::Raw),
    }
}

/// The fields of a qcow2 header kagami checks and reports (qcow2 spec,
/// `docs/interop/qcow2.txt` in QEMU: big-endian, 72 bytes in version 2,
/// at least 104 in version 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    pub version: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
    pub incompatible_features: u64,
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

impl Qcow2Header {
    /// Read and check the header of the qcow2 file at `path`: magic,
    /// version, cluster size, and that the L1 table, refcount table and
    /// backing file name lie inside the file (a truncated file fails here).
    pub fn read(path: &Path) -> Result<Self, String> {
        let name = path.display();
        let f = File::open(path).map_err(|e| format!("cannot open image '{name}': {e}"))?;
        let file_len = f.metadata().map_err(|e| format!("'{name}': {e}"))?.len();
        let corrupt = |why: String| format!("'{name}' is not a valid qcow2 image: {why}");
        let mut h = [0u8; 512];
        let n = read_up_to(&f, 0, &mut h).map_err(|e| format!("'{name}': {e}"))?;
        if n < 72 {
            return Err(corrupt(format!("the file has {n} bytes, a qcow2 header needs 72")));
        }
        if h[..4] != QCOW2_MAGIC {
            return Err(corrupt("no qcow2 magic".into()));
        }
        let version = be32(&h, 4);
        if version != 2 && version != 3 {
            return Err(corrupt(format!("version {version} (kagami reads 2 and 3)")));
        }
        let backing_offset = be64(&h, 8);
        let backing_len = be32(&h, 16) as u64;
        let cluster_bits = be32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(corrupt(format!("cluster_bits {cluster_bits} outside 9..=21")));
        }
        let size = be64(&h, 24);
        let crypt = be32(&h, 32);
        if crypt != 0 {
            return Err(corrupt("encrypted images are not supported".into()));
        }
        let l1_size = be32(&h, 36) as u64;
        let l1_offset = be64(&h, 40);
        let rt_offset = be64(&h, 48);
        let rt_clusters = be32(&h, 56) as u64;
        let cluster = 1u64 << cluster_bits;
        let inside = |off: u64, len: u64| off.checked_add(len).is_some_and(|end| end <= file_len);
        if !inside(l1_offset, l1_size * 8) {
            return Err(corrupt(format!(
                "the L1 table ({l1_size} entries at {l1_offset:#x}) reaches past the end of the file ({file_len} bytes): truncated?"
            )));
        }
        if rt_clusters == 0 || !inside(rt_offset, rt_clusters * cluster) {
            return Err(corrupt(format!(
                "the refcount table ({rt_clusters} clusters at {rt_offset:#x}) reaches past the end of the file ({file_len} bytes): truncated?"
            )));
        }
        let (incompatible_features, header_len) = if version == 3 {
            if n < 104 {
                return Err(corrupt("version 3 header shorter than 104 bytes".into()));
            }
            (be64(&h, 72), be32(&h, 100) as u64)
        } else {
            (0, 72)
        };
        // Bit 0 dirty, 1 corrupt, 2 external data file, 3 compression type, 4 extended L2.
        if incompatible_features & 2 != 0 {
            return Err(corrupt("the image is marked corrupt (repair it with qemu-img check -r all)".into()));
        }
        if incompatible_features & !0x1f != 0 {
            return Err(corrupt(format!("unknown incompatible features {incompatible_features:#x}")));
        }
        let backing_file = if backing_offset != 0 && backing_len != 0 {
            if backing_len > 1023 || !inside(backing_offset, backing_len) {
                return Err(corrupt("bad backing file name offset or length".into()));
            }
            let mut b = vec![0u8; backing_len as usize];
            f.read_exact_at(&mut b, backing_offset).map_err(|e| format!("'{name}': {e}"))?;
            Some(String::from_utf8(b).map_err(|_| corrupt("backing file name is not UTF-8".into()))?)
        } else {
            None
        };
        let backing_format = read_backing_format(&f, header_len.max(72), cluster.min(file_len))?;
        Ok(Qcow2Header {
            version,
            cluster_bits,
            size,
            backing_file,
            backing_format,
            incompatible_features,
        })
    }

    /// The backing file's path, relative names taken from the directory of
    /// the image that names it (as QEMU does).
    pub fn backing_path(&self, image: &Path) -> Option<PathBuf> {
        let b = Path::new(self.backing_file.as_ref()?);
        Some(if b.is_absolute() {
            b.to_path_buf()
        } else {
            image.parent().unwrap_or(Path::new(".")).join(b)
        })
    }
}

/// The backing-format header extension (type 0xE2792ACA), if present.
fn read_backing_format(f: &File, start: u64, end: u64) -> Result<Option<String>, String> {
    let mut off = start;
    while off + 8 <= end {
        let mut h = [0u8; 8];
        if f.read_exact_at(&mut h, off).is_err() {
            return Ok(None);
        }
        let (kind, len) = (be32(&h, 0), be32(&h, 4) as u64);
        if kind == 0 {
            break;
        }
        if kind == 0xE279_2ACA && len < 64 {
            let mut b = vec![0u8; len as usize];
            if f.read_exact_at(&mut b, off + 8).is_ok() {
                return Ok(String::from_utf8(b).ok());
            }
        }
        off += 8 + len.div_ceil(8) * 8;
    }
    Ok(None)
}

fn read_up_to(f: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// One layer of an image's backing chain, for `kagami img info` and the
/// start-up checks.
#[derive(Debug, Clone)]
pub struct ChainLink {
    pub path: PathBuf,
    pub format: ImageFormat,
    pub virtual_size: u64,
    pub header: Option<Qcow2Header>,
}

/// Walk the backing chain from `path` down, checking each layer's header
/// and that each backing file exists. The first element is the image itself.
pub fn backing_chain(path: &Path, format: Option<ImageFormat>) -> Result<Vec<ChainLink>, String> {
    let mut chain: Vec<ChainLink> = Vec::new();
    let mut next = Some((path.to_path_buf(), format));
    while let Some((p, fmt)) = next.take() {
        if chain.len() > 16 {
            return Err(format!("'{}': backing chain longer than 16 images (a loop?)", path.display()));
        }
        if let Some(parent) = chain.last() {
            if !p.exists() {
                return Err(format!(
                    "the backing file '{}' of '{}' does not exist",
                    p.display(),
                    parent.path.display()
                ));
            }
        }
        let fmt = match fmt {
            Some(f) => f,
            None => probe_format(&p)?,
        };
        let meta = std::fs::metadata(&p).map_err(|e| format!("cannot open image '{}': {e}", p.display()))?;
        if !meta.is_file() {
            return Err(format!("'{}' is not a regular file", p.display()));
        }
        let link = match fmt {
            ImageFormat::Raw => ChainLink {
                path: p.clone(),
                format: fmt,
                virtual_size: meta.len(),
                header: None,
            },
            ImageFormat::Qcow2 => {
                let h = Qcow2Header::read(&p)?;
                if let Some(bp) = h.backing_path(&p) {
                    let bf = match h.backing_format.as_deref() {
                        Some("raw") | Some("file") => Some(ImageFormat::Raw),
                        Some("qcow2") => Some(ImageFormat::Qcow2),
                        Some(other) => {
                            return Err(format!("'{}': backing format '{other}' is not supported", p.display()));
                        }
                        None => None,
                    };
                    next = Some((bp, bf));
                }
                ChainLink {
                    path: p.clone(),
                    format: fmt,
                    virtual_size: h.size,
                    header: Some(h),
                }
            }
        };
        chain.push(link);
    }
    Ok(chain)
}

/// How to open a drive's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// `None`: probe (qcow2 magic, else raw).
    pub format: Option<ImageFormat>,
    pub read_only: bool,
    /// Writes go to a throw-away overlay; the image is opened read-only.
    pub snapshot: bool,
}

/// Take an advisory lock on `file`: exclusive for a writer, shared for a
/// reader, never waiting.
fn lock(file: &File, path: &Path, exclusive: bool) -> Result<(), String> {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH } | libc::LOCK_NB;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(file.as_raw_fd(), op) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(if exclusive {
            format!(
                "'{}' is in use by another process (locked); open it with readonly=on or -snapshot, or stop the other user",
                path.display()
            )
        } else {
            format!("'{}' is opened for writing by another process (locked)", path.display())
        })
    } else {
        Err(format!("cannot lock '{}': {e}", path.display()))
    }
}

/// Open the image at `path` for a guest drive.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Box<dyn BlockBackend>, String> {
    let chain = backing_chain(path, opts.format)?;
    let top = &chain[0];
    let writable = !opts.read_only && !opts.snapshot;
    let file = std::fs::OpenOptions::new().read(true).write(writable).open(path).map_err(|e| {
        format!(
            "cannot open image '{}'{}: {e}",
            path.display(),
            if writable { " for writing" } else { "" }
        )
    })?;
    lock(&file, path, writable)?;
    let mut backing_locks = Vec::new();
    for link in &chain[1..] {
        let f = File::open(&link.path).map_err(|e| format!("cannot open backing file '{}': {e}", link.path.display()))?;
        lock(&f, &link.path, false)?;
        backing_locks.push(f);
    }
    let backend: Box<dyn BlockBackend> = match top.format {
        ImageFormat::Raw => Box::new(RawFile {
            file,
            size: top.virtual_size,
            read_only: !writable,
        }),
        ImageFormat::Qcow2 => {
            let mut q = Qcow2Image::open(path, writable, file)?;
            q._backing_locks = backing_locks;
            Box::new(q)
        }
    };
    Ok(if opts.snapshot { Box::new(Overlay::new(backend)) } else { backend })
}

/// A raw image file.
pub struct RawFile {
    file: File,
    size: u64,
    read_only: bool,
}

fn io_err(e: std::io::Error) -> BlockError {
    BlockError::Io(e.to_string())
}

impl BlockBackend for RawFile {
    fn len(&self) -> u64 {
        self.size
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(offset, buf.len() as u64, self.size)?;
        // The file may have been shortened behind our back: read what is there, zeros beyond.
        let n = read_up_to(&self.file, offset, buf).map_err(io_err)?;
        buf[n..].fill(0);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        check_range(offset, data.len() as u64, self.size)?;
        self.file.write_all_at(data, offset).map_err(io_err)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(io_err)
    }
}

/// A qcow2 image through imago (its backing chain opened read-only by imago).
pub struct Qcow2Image {
    access: imago::FormatAccess<imago::file::File>,
    size: u64,
    read_only: bool,
    /// Holds the lock for the image's lifetime.
    _lock: File,
    /// Shared locks on the backing chain, held as long.
    _backing_locks: Vec<File>,
}

impl Qcow2Image {
    pub fn open(path: &Path, writable: bool, lock: File) -> Result<Self, String> {
        use imago::FormatDriverBuilder;
        let q = imago::qcow2::Qcow2::<imago::file::File>::builder_path(path)
            .write(writable)
            .open(imago::PermissiveImplicitOpenGate::default())
            .map_err(|e| format!("cannot open qcow2 image '{}': {e}", path.display()))?;
        let access = imago::FormatAccess::new(q);
        Ok(Qcow2Image {
            size: access.size(),
            access,
            read_only: !writable,
            _lock: lock,
            _backing_locks: Vec::new(),
        })
    }
}

impl BlockBackend for Qcow2Image {
    fn len(&self) -> u64 {
        self.size
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(offset, buf.len() as u64, self.size)?;
        self.access.read(buf, offset).map_err(io_err)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        check_range(offset, data.len() as u64, self.size)?;
        self.access.write(data, offset).map_err(io_err)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        if self.read_only {
            return Ok(());
        }
        self.access.flush().map_err(io_err)?;
        self.access.sync().map_err(io_err)
    }
}
