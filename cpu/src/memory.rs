//! Guest physical memory: one anonymous memmap2 mapping that holds all RAM
//! and the firmware ROM images, plus the physical address map that says
//! which guest-physical ranges are backed by which part of it. Everything
//! else in the physical address space is MMIO and goes to the [`Bus`].
//!
//! `unsafe` lives here and in `mmu.rs` only: the mapping is accessed through
//! raw pointers so that the CPU, DMA-capable devices and (later) other vCPUs
//! can share it, the way hardware shares DRAM.
//!
//! Self-modifying code: a bitmap marks the backing pages that hold decoded
//! code. A write to such a page, by the CPU or by DMA, records the page as
//! dirty; the CPU drops its decoded blocks for dirty pages before executing
//! any further block.
//!
//! [`Bus`]: crate::bus::Bus

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub const PAGE_SIZE: u64 = 4096;
pub const PAGE_SHIFT: u32 = 12;

/// What a guest-physical range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Read/write memory.
    Ram,
    /// Read-only: reads come from the backing, writes go to the bus as MMIO
    /// (usually to nothing; a chipset may catch them).
    Rom,
}

/// A guest-physical range backed by `backing..backing+len` of the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub backing: u64,
    pub kind: RegionKind,
}

/// The machine's physical memory map (RAM and ROM only). Regions never overlap;
/// the machine builds it and hands it to the CPU with `Cpu::set_phys_map`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysMap {
    regions: Vec<Region>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct OverlapError(pub Region, pub Region);

impl PhysMap {
    pub fn new() -> PhysMap {
        PhysMap::default()
    }

    /// Add a region; overlapping an existing one is an error in the caller's map.
    pub fn add(&mut self, r: Region) -> Result<(), OverlapError> {
        if let Some(o) = self.regions.iter().find(|o| r.start < o.start + o.len && o.start < r.start + r.len) {
            return Err(OverlapError(*o, r));
        }
        self.regions.push(r);
        self.regions.sort_by_key(|r| r.start);
        Ok(())
    }

    /// Remove every region that intersects `start..start+len`.
    pub fn remove_range(&mut self, start: u64, len: u64) {
        self.regions.retain(|o| !(start < o.start + o.len && o.start < start + len));
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region containing `addr`, if it is RAM or ROM.
    #[inline]
    pub fn lookup(&self, addr: u64) -> Option<&Region> {
        let i = self.regions.partition_point(|r| r.start + r.len <= addr);
        self.regions.get(i).filter(|r| r.start <= addr)
    }
}

struct Inner {
    map: memmap2::MmapRaw,
    len: u64,
    /// One bit per backing page: it holds code the CPU has decoded.
    code_pages: Box<[AtomicU64]>,
    /// Set when a code page was written; the list says which.
    code_dirty: AtomicBool,
    dirty_pages: Mutex<Vec<u64>>,
}

/// A cheap handle to the guest's memory backing; clones share it.
#[derive(Clone)]
pub struct GuestMemory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub struct MemoryError(pub String);

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for MemoryError {}

impl GuestMemory {
    /// Map `len` bytes (rounded up to a page) of zeroed anonymous memory.
    pub fn new(len: u64) -> Result<GuestMemory, MemoryError> {
        let len = len.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let size = usize::try_from(len).map_err(|_| MemoryError(format!("{len} bytes of guest memory do not fit this host")))?;
        let map = memmap2::MmapOptions::new()
            .len(size)
            .map_anon()
            .map_err(|e| MemoryError(format!("cannot map {} MiB of guest memory: {e}", len >> 20)))?;
        let map = memmap2::MmapRaw::from(map);
        let pages = (len / PAGE_SIZE) as usize;
        let words = pages.div_ceil(64);
        let code_pages = (0..words).map(|_| AtomicU64::new(0)).collect();
        Ok(GuestMemory {
            inner: Arc::new(Inner {
                map,
                len,
                code_pages,
                code_dirty: AtomicBool::new(false),
                dirty_pages: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn len(&self) -> u64 {
        self.inner.len
    }

    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Host address of backing offset 0.
    #[inline(always)]
    pub fn host_base(&self) -> *mut u8 {
        self.inner.map.as_mut_ptr()
    }

    fn check(&self, offset: u64, len: usize) -> bool {
        offset.checked_add(len as u64).is_some_and(|end| end <= self.inner.len)
    }

    /// Copy out of the backing. Out-of-range reads fill with 0xff (open bus).
    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        if !self.check(offset, buf.len()) {
            buf.fill(0xff);
            return;
        }
        // SAFETY: offset..offset+len is inside the mapping (checked above),
        // which lives as long as `inner`. Guest memory may be written
        // concurrently by another vCPU or DMA; like hardware, byte copies give
        // whatever value is there.
        unsafe { std::ptr::copy_nonoverlapping(self.host_base().add(offset as usize), buf.as_mut_ptr(), buf.len()) }
    }

    /// Copy into the backing (CPU slow path, DMA, firmware loading), keeping
    /// decoded code coherent. Out-of-range writes are dropped.
    pub fn write(&self, offset: u64, data: &[u8]) {
        if !self.check(offset, data.len()) {
            return;
        }
        // SAFETY: bounds checked above; see `read`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.host_base().add(offset as usize), data.len()) }
        if !data.is_empty() {
            let first = offset >> PAGE_SHIFT;
            let last = (offset + data.len() as u64 - 1) >> PAGE_SHIFT;
            for p in first..=last {
                self.note_write(p);
            }
        }
    }

    /// Mark a backing page dirty if it holds decoded code.
    #[inline]
    pub fn note_write(&self, page: u64) {
        if self.is_code_page(page) {
            self.clear_code_page(page);
            self.inner.dirty_pages.lock().unwrap().push(page);
            self.inner.code_dirty.store(true, Ordering::Release);
        }
    }

    #[inline(always)]
    pub fn is_code_page(&self, page: u64) -> bool {
        let w = (page / 64) as usize;
        match self.inner.code_pages.get(w) {
            Some(word) => word.load(Ordering::Relaxed) & (1 << (page % 64)) != 0,
            None => false,
        }
    }

    pub fn set_code_page(&self, page: u64) {
        if let Some(word) = self.inner.code_pages.get((page / 64) as usize) {
            word.fetch_or(1 << (page % 64), Ordering::Relaxed);
        }
    }

    fn clear_code_page(&self, page: u64) {
        if let Some(word) = self.inner.code_pages.get((page / 64) as usize) {
            word.fetch_and(!(1 << (page % 64)), Ordering::Relaxed);
        }
    }

    /// Take the list of code pages written since the last call.
    pub fn take_dirty_code(&self) -> Option<Vec<u64>> {
        // A plain load first: this runs at every block boundary, and an
        // atomic swap there costs more than the block lookup.
        if !self.inner.code_dirty.load(Ordering::Relaxed) || !self.inner.code_dirty.swap(false, Ordering::Acquire) {
            return None;
        }
        Some(std::mem::take(&mut *self.inner.dirty_pages.lock().unwrap()))
    }

    /// Whether any code page was written since the last `take_dirty_code`.
    #[inline(always)]
    pub fn has_dirty_code(&self) -> bool {
        self.inner.code_dirty.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phys_map_lookup_and_overlap() {
        let mut m = PhysMap::new();
        m.add(Region {
            start: 0,
            len: 0xa0000,
            backing: 0,
            kind: RegionKind::Ram,
        })
        .unwrap();
        m.add(Region {
            start: 0x100000,
            len: 0x100000,
            backing: 0x100000,
            kind: RegionKind::Ram,
        })
        .unwrap();
        assert!(m
            .add(Region {
                start: 0x9f000,
                len: 0x2000,
                backing: 0,
                kind: RegionKind::Ram
            })
            .is_err());
        assert_eq!(m.lookup(0x9ffff).unwrap().start, 0);
        assert!(m.lookup(0xa0000).is_none());
        assert_eq!(m.lookup(0x1fffff).unwrap().start, 0x100000);
        assert!(m.lookup(0x200000).is_none());
    }

    #[test]
    fn writes_to_code_pages_are_reported() {
        let g = GuestMemory::new(0x10000).unwrap();
        g.set_code_page(2);
        g.write(0x1ff0, &[1; 8]);
        assert!(g.take_dirty_code().is_none());
        g.write(0x1ffc, &[1; 8]);
        assert_eq!(g.take_dirty_code(), Some(vec![2]));
        assert!(!g.is_code_page(2));
        let mut b = [0u8; 4];
        g.read(0x1ffc, &mut b);
        assert_eq!(b, [1; 4]);
        g.read(0x10000, &mut b);
        assert_eq!(b, [0xff; 4]);
    }
}
