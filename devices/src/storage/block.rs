//! The block layer a disk controller sees: a byte-addressed image of a
//! fixed length ([`BlockBackend`]), whatever file format is behind it.
//!
//! Controllers use it sector by sector (512 bytes for ATA disks, 2048 for
//! CD-ROMs) and check every request against [`BlockBackend::len`] before
//! issuing it, so a guest request outside the image becomes an ATA error
//! (IDNF / LBA OUT OF RANGE), never a host access out of range. The
//! backends check again and return [`BlockError::OutOfRange`].
//!
//! Implementations for host files (raw, qcow2) live in `machine/`; this
//! crate has [`MemBackend`] for tests and [`Overlay`], the throw-away
//! copy-on-write layer behind `-snapshot`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// A failed block request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// The request reaches past the end of the image.
    OutOfRange { offset: u64, len: u64, size: u64 },
    /// A write to an image opened read-only.
    ReadOnly,
    /// The host could not do it (I/O error, corrupt metadata).
    Io(String),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::OutOfRange { offset, len, size } => {
                write!(f, "{len} bytes at {offset} reach past the image end ({size} bytes)")
            }
            BlockError::ReadOnly => write!(f, "the image is read-only"),
            BlockError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for BlockError {}

/// A disk image as a controller uses it.
pub trait BlockBackend: Send {
    /// Size in bytes (fixed while the machine runs).
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// Fill `buf` from byte `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Write `data` at byte `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError>;
    /// Make every completed write durable (the guest's FLUSH CACHE: fsync
    /// on a host file).
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// `Err(OutOfRange)` unless `offset..offset+len` lies inside `size` bytes.
pub fn check_range(offset: u64, len: u64, size: u64) -> Result<(), BlockError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(BlockError::OutOfRange { offset, len, size }),
    }
}

/// An image in memory, for tests. Cloning shares the bytes, so a test can
/// look at what the guest wrote; `flushes` counts FLUSH requests.
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    inner: Arc<Mutex<MemInner>>,
    read_only: bool,
}

#[derive(Debug, Default)]
struct MemInner {
    bytes: Vec<u8>,
    flushes: usize,
}

impl MemBackend {
    pub fn new(bytes: Vec<u8>) -> Self {
        MemBackend {
            inner: Arc::new(Mutex::new(MemInner { bytes, flushes: 0 })),
            read_only: false,
        }
    }
    /// The same bytes, refusing writes.
    pub fn read_only(&self) -> Self {
        MemBackend {
            inner: self.inner.clone(),
            read_only: true,
        }
    }
    pub fn bytes(&self) -> Vec<u8> {
        self.inner.lock().unwrap().bytes.clone()
    }
    pub fn flushes(&self) -> usize {
        self.inner.lock().unwrap().flushes
    }
}

impl BlockBackend for MemBackend {
    fn len(&self) -> u64 {
        self.inner.lock().unwrap().bytes.len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let m = self.inner.lock().unwrap();
        check_range(offset, buf.len() as u64, m.bytes.len() as u64)?;
        buf.copy_from_slice(&m.bytes[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let mut m = self.inner.lock().unwrap();
        check_range(offset, data.len() as u64, m.bytes.len() as u64)?;
        m.bytes[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.inner.lock().unwrap().flushes += 1;
        Ok(())
    }
}

/// Bytes per [`Overlay`] chunk.
const CHUNK: u64 = 4096;

/// A copy-on-write layer in memory over a base that is only read: what
/// `-snapshot` gives the guest. Writes land in 4 KiB chunks held here and
/// are dropped with the overlay; the base image is never written. A guest
/// FLUSH has nothing durable to reach and succeeds.
pub struct Overlay {
    base: Box<dyn BlockBackend>,
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl Overlay {
    pub fn new(base: Box<dyn BlockBackend>) -> Self {
        Overlay {
            base,
            chunks: BTreeMap::new(),
        }
    }
    /// Bytes of guest writes held in memory.
    pub fn dirty_bytes(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK
    }
    fn chunk(&mut self, index: u64) -> Result<&mut [u8], BlockError> {
        if !self.chunks.contains_key(&index) {
            let start = index * CHUNK;
            let n = CHUNK.min(self.base.len() - start) as usize;
            let mut c = vec![0u8; CHUNK as usize].into_boxed_slice();
            self.base.read_at(start, &mut c[..n])?;
            self.chunks.insert(index, c);
        }
        Ok(self.chunks.get_mut(&index).expect("inserted above"))
    }
}

impl BlockBackend for Overlay {
    fn len(&self) -> u64 {
        self.base.len()
    }
    fn read_only(&self) -> bool {
        false
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_range(offset, buf.len() as u64, self.len())?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (index, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let n = (CHUNK as usize - within).min(buf.len() - done);
            match self.chunks.get(&index) {
                Some(c) => buf[done..done + n].copy_from_slice(&c[within..within + n]),
                None => self.base.read_at(pos, &mut buf[done..done + n])?,
            }
            done += n;
        }
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        check_range(offset, data.len() as u64, self.len())?;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (index, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let n = (CHUNK as usize - within).min(data.len() - done);
            self.chunk(index)?[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_backend_checks_range() {
        let mut m = MemBackend::new(vec![0; 1024]);
        assert!(m.write_at(1020, &[1; 4]).is_ok());
        assert_eq!(
            m.write_at(1021, &[1; 4]),
            Err(BlockError::OutOfRange {
                offset: 1021,
                len: 4,
                size: 1024
            })
        );
        let mut b = [0; 8];
        assert!(m.read_at(u64::MAX - 2, &mut b).is_err());
        assert_eq!(m.read_only().write_at(0, &[1]), Err(BlockError::ReadOnly));
    }

    #[test]
    fn overlay_keeps_base_untouched() {
        let base = MemBackend::new((0..10000u32).map(|i| i as u8).collect());
        let mut o = Overlay::new(Box::new(base.read_only()));
        o.write_at(4090, &[0xaa; 10]).unwrap();
        let mut b = [0u8; 16];
        o.read_at(4088, &mut b).unwrap();
        assert_eq!(&b[..2], &[(4088 % 256) as u8, (4089 % 256) as u8]);
        assert_eq!(&b[2..12], &[0xaa; 10]);
        assert_eq!(b[12], (4100 % 256) as u8);
        // The last, partial chunk of the image.
        o.write_at(9998, &[7, 7]).unwrap();
        assert!(o.write_at(9999, &[7, 7]).is_err());
        o.read_at(9990, &mut b[..10]).unwrap();
        assert_eq!(&b[8..10], &[7, 7]);
        assert_eq!(base.bytes()[4090], (4090 % 256) as u8);
        assert_eq!(o.dirty_bytes(), 3 * 4096);
    }
}
