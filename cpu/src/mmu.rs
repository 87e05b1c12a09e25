//! Linear-to-physical translation: the software TLB, the page walker for
//! 32-bit, PAE and 4-level paging (SDM Vol. 3A, chapter 4), and the linear
//! memory accessors every instruction uses.
//!
//! The TLB is direct-mapped, one table per MMU mode (supervisor with SMAP
//! enforced, user, supervisor with SMAP suspended by EFLAGS.AC). Each entry has
//! separate read, write and execute tags, QEMU-style: a tag equal to the page's
//! linear address means "fast path: host pointer = linear + addend"; flag bits
//! in the low 12 bits of a tag send the access to the slow path. Flushing more
//! than the architecture requires is always correct, so CR3 writes, INVLPG of
//! a large page and INVPCID simply flush everything.

use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{pf, Exception, Result};
use crate::memory::{RegionKind, PAGE_SHIFT, PAGE_SIZE};
use crate::state::{cr0, cr4, efer, flags};

pub const TLB_BITS: u32 = 8;
pub const TLB_ENTRIES: usize = 1 << TLB_BITS;
pub const MMU_MODES: usize = 3;

/// Tag flag: no translation cached for this kind of access.
pub const TLB_INVALID: u64 = 1;
/// Tag flag: translated, but the page is not RAM (MMIO or a ROM write).
pub const TLB_MMIO: u64 = 2;
/// Tag flag: RAM holding decoded code; writes must invalidate it.
pub const TLB_CODE: u64 = 4;
/// Tag flag: a data breakpoint lies in this page (`debug.rs`); accesses
/// take the slow path, which checks them.
pub const TLB_WATCH: u64 = 8;
const TAG_FLAGS: u64 = PAGE_SIZE - 1;

/// Physical address width kagami reports in CPUID 0x80000008.
pub const PHYS_ADDR_BITS: u32 = 40;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TlbEntry {
    pub read: u64,
    pub write: u64,
    pub code: u64,
    /// host address = linear address + addend (RAM pages only).
    pub addend: u64,
    /// Guest-physical page address.
    pub phys: u64,
    /// Backing page number in guest memory, or `u64::MAX` if not RAM/ROM.
    pub backing: u64,
}

const EMPTY: TlbEntry = TlbEntry {
    read: TLB_INVALID,
    write: TLB_INVALID,
    code: TLB_INVALID,
    addend: 0,
    phys: 0,
    backing: u64::MAX,
};

#[repr(C)]
pub struct Tlb {
    pub e: [[TlbEntry; TLB_ENTRIES]; MMU_MODES],
    pub hits: u64,
    pub misses: u64,
    /// Some entry came from a 2 MiB/4 MiB/1 GiB page since the last full flush.
    pub large: bool,
}

impl Tlb {
    pub fn new_boxed() -> Box<Tlb> {
        Box::new(Tlb {
            e: [[EMPTY; TLB_ENTRIES]; MMU_MODES],
            hits: 0,
            misses: 0,
            large: false,
        })
    }
}

/// What an access is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// MMU modes (TLB tables).
pub const MMU_SUPER: usize = 0;
pub const MMU_USER: usize = 1;
pub const MMU_SUPER_NOSMAP: usize = 2;

/// The control registers a page walk reads.
#[derive(Clone, Copy)]
struct PagingRegs {
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

impl crate::state::CpuState {
    fn clone_regs(&self) -> PagingRegs {
        PagingRegs {
            cr0: self.cr0,
            cr3: self.cr3,
            cr4: self.cr4,
            efer: self.efer,
        }
    }
}

/// The result of a page walk.
#[derive(Clone, Copy, Debug)]
struct Walk {
    /// Physical address of the 4 KiB page containing the address.
    page: u64,
    user: bool,
    writable: bool,
    nx: bool,
    dirty: bool,
}

#[inline(always)]
fn tlb_index(lin: u64) -> usize {
    ((lin >> PAGE_SHIFT) as usize) & (TLB_ENTRIES - 1)
}

impl Cpu {
    /// The TLB table for data accesses at the current privilege level.
    #[inline(always)]
    pub fn mmu_mode(&self) -> usize {
        if self.s.cpl == 3 {
            MMU_USER
        } else if self.s.cr4 & cr4::SMAP != 0 && self.s.rflags & flags::AC == 0 {
            MMU_SUPER
        } else {
            MMU_SUPER_NOSMAP
        }
    }

    pub fn flush_tlb_all(&mut self) {
        for t in self.tlb.e.iter_mut() {
            t.fill(EMPTY);
        }
        self.tlb.large = false;
    }

    /// INVLPG: drop one page from every table.
    pub fn flush_tlb_page(&mut self, lin: u64) {
        let i = tlb_index(lin);
        for t in self.tlb.e.iter_mut() {
            t[i] = EMPTY;
        }
        // A large page is cached as 4 KiB pieces in many slots: if any large
        // page was cached since the last full flush, flush everything.
        if self.tlb.large {
            self.flush_tlb_all();
        }
    }

    /// Forget write fast paths to a backing page that now holds code.
    pub(crate) fn protect_code_page(&mut self, backing_page: u64) {
        for t in self.tlb.e.iter_mut() {
            for e in t.iter_mut() {
                if e.backing == backing_page && e.write & TLB_INVALID == 0 {
                    e.write |= TLB_CODE;
                }
            }
        }
    }

    // ----- physical access (page walker, descriptor-free paths, DMA-like) -----

    /// Read `size` (1..=8) bytes of guest-physical memory.
    pub fn read_phys(&mut self, bus: &mut dyn Bus, addr: u64, size: usize) -> u64 {
        let addr = addr & self.s.a20_mask;
        match self.phys.lookup(addr) {
            Some(r) if addr + size as u64 <= r.start + r.len => {
                let mut b = [0u8; 8];
                self.mem.read(r.backing + (addr - r.start), &mut b[..size]);
                u64::from_le_bytes(b)
            }
            Some(_) => {
                let mut v = 0;
                for i in 0..size {
                    v |= self.read_phys(bus, addr + i as u64, 1) << (8 * i);
                }
                v
            }
            None => self.mmio_read(bus, addr, size as u8),
        }
    }

    pub fn write_phys(&mut self, bus: &mut dyn Bus, addr: u64, size: usize, v: u64) {
        let addr = addr & self.s.a20_mask;
        match self.phys.lookup(addr) {
            Some(r) if r.kind == RegionKind::Ram && addr + size as u64 <= r.start + r.len => {
                let off = r.backing + (addr - r.start);
                let had_code = self.mem.is_code_page(off >> PAGE_SHIFT) || self.mem.is_code_page((off + size as u64 - 1) >> PAGE_SHIFT);
                self.mem.write(off, &v.to_le_bytes()[..size]);
                if had_code {
                    self.break_block = true;
                }
            }
            Some(r) if r.kind == RegionKind::Ram => {
                for i in 0..size {
                    self.write_phys(bus, addr + i as u64, 1, v >> (8 * i));
                }
            }
            _ => self.mmio_write(bus, addr, size as u8, v),
        }
    }

    // ----- page walk -----

    fn pf(&self, lin: u64, code: u32, access: Access, user: bool) -> Exception {
        let mut code = code;
        if access == Access::Write {
            code |= pf::W;
        }
        if user {
            code |= pf::U;
        }
        if access == Access::Exec && (self.s.efer & efer::NXE != 0 || self.s.cr4 & cr4::SMEP != 0) {
            code |= pf::I;
        }
        Exception::PageFault { addr: lin, code }
    }

    /// Walk the page tables for `lin`, setting accessed/dirty bits, and check
    /// the access. `mmu` is the TLB table (privilege) the access is made with.
    fn walk(&mut self, bus: &mut dyn Bus, lin: u64, access: Access, mmu: usize) -> Result<Walk> {
        let s = self.s.clone_regs();
        let user_access = mmu == MMU_USER;
        if s.cr0 & cr0::PG == 0 {
            let page = lin & 0xffff_ffff & !TAG_FLAGS;
            return Ok(Walk {
                page,
                user: true,
                writable: true,
                nx: false,
                dirty: true,
            });
        }
        let nxe = s.efer & efer::NXE != 0;
        let max_phys = (1u64 << PHYS_ADDR_BITS) - 1;
        let (levels, entry_size, mut table) = if s.efer & efer::LMA != 0 {
            (4, 8u64, s.cr3 & max_phys & !0xfff)
        } else if s.cr4 & cr4::PAE != 0 {
            // PDPTE: no permission bits, only P and reserved bits.
            let pdpte_addr = (s.cr3 & 0xffff_ffe0) + ((lin >> 30) & 3) * 8;
            let pdpte = self.read_phys(bus, pdpte_addr, 8);
            if pdpte & 1 == 0 {
                return Err(self.pf(lin, 0, access, user_access));
            }
            if pdpte & (0x1e6 | !max_phys & !(1u64 << 63)) != 0 || pdpte & (1 << 63) != 0 {
                return Err(self.pf(lin, pf::P | pf::RSVD, access, user_access));
            }
            (2, 8u64, pdpte & max_phys & !0xfff)
        } else {
            (2, 4u64, s.cr3 & 0xffff_f000)
        };
        let pse = s.cr4 & cr4::PSE != 0 || entry_size == 8;
        let mut user = true;
        let mut writable = true;
        let mut nx = false;
        let mut entries: [(u64, u64); 4] = [(0, 0); 4];
        let mut level = levels;
        let (page, leaf_level) = loop {
            let shift = if entry_size == 8 {
                12 + 9 * (level - 1)
            } else {
                12 + 10 * (level - 1)
            };
            let idx_mask = if entry_size == 8 { 0x1ff } else { 0x3ff };
            let addr = table + ((lin >> shift) & idx_mask) * entry_size;
            let e = self.read_phys(bus, addr, entry_size as usize);
            if e & 1 == 0 {
                return Err(self.pf(lin, 0, access, user_access));
            }
            // Reserved bits (SDM 4.x "reserved bit" tables).
            let mut rsvd = false;
            if entry_size == 8 {
                // Physical-address bits above MAXPHYADDR (up to bit 51) are reserved.
                if e & (((1u64 << 52) - 1) & !max_phys) != 0 {
                    rsvd = true;
                }
                if !nxe && e & (1 << 63) != 0 {
                    rsvd = true;
                }
                if levels == 4 && level == 4 && e & 0x80 != 0 {
                    rsvd = true;
                }
            }
            let large = level > 1 && e & 0x80 != 0 && (pse || level == 3) && !(levels == 4 && level == 4);
            if large && entry_size == 8 {
                // Large-page frame: bits below the page size (except PAT bit 12) must be 0.
                let low = (1u64 << (12 + 9 * (level - 1))) - 1;
                if e & low & !0x1fff & max_phys != 0 {
                    rsvd = true;
                }
            }
            if rsvd {
                return Err(self.pf(lin, pf::P | pf::RSVD, access, user_access));
            }
            user &= e & 4 != 0;
            writable &= e & 2 != 0;
            nx |= entry_size == 8 && nxe && e & (1 << 63) != 0;
            entries[level - 1] = (addr, e);
            if level == 1 || large {
                let page = if level == 1 {
                    if entry_size == 8 {
                        e & max_phys & !0xfff
                    } else {
                        e & 0xffff_f000
                    }
                } else if entry_size == 4 {
                    // 4 MiB page: bits 13..20 are physical address bits 32..39.
                    let base = (e & 0xffc0_0000) | ((e >> 13) & 0xff) << 32;
                    base + (lin & 0x3f_f000)
                } else {
                    let low = (1u64 << shift) - 1;
                    (e & max_phys & !low) + (lin & low & !0xfff)
                };
                break (page, level);
            }
            table = if entry_size == 8 { e & max_phys & !0xfff } else { e & 0xffff_f000 };
            level -= 1;
        };
        // Permission checks (SDM 4.6).
        let denied = match access {
            Access::Read => (user_access && !user) || (mmu == MMU_SUPER && user && s.cr4 & cr4::SMAP != 0),
            Access::Write => {
                if user_access {
                    !user || !writable
                } else {
                    (!writable && s.cr0 & cr0::WP != 0) || (mmu == MMU_SUPER && user && s.cr4 & cr4::SMAP != 0)
                }
            }
            Access::Exec => nx || (user_access && !user) || (!user_access && user && s.cr4 & cr4::SMEP != 0),
        };
        if denied {
            return Err(self.pf(lin, pf::P, access, user_access));
        }
        // Accessed bits on every level, dirty on the leaf for writes.
        let mut dirty = false;
        for lvl in leaf_level..=levels {
            let (addr, e) = entries[lvl - 1];
            let mut ne = e | 0x20;
            if lvl == leaf_level {
                if access == Access::Write {
                    ne |= 0x40;
                }
                dirty = ne & 0x40 != 0;
            }
            if ne != e {
                self.write_phys(bus, addr, entry_size as usize, ne);
            }
        }
        if leaf_level > 1 {
            self.tlb.large = true;
        }
        Ok(Walk {
            page: page & !TAG_FLAGS,
            user,
            writable,
            nx,
            dirty,
        })
    }

    /// Fill the TLB for `lin` and return the entry index; faults if the
    /// requested access is not allowed.
    fn tlb_fill(&mut self, bus: &mut dyn Bus, lin: u64, access: Access, mmu: usize) -> Result<usize> {
        self.tlb.misses += 1;
        let w = self.walk(bus, lin, access, mmu)?;
        let s = &self.s;
        let phys = w.page & s.a20_mask;
        let user_mode = mmu == MMU_USER;
        let smap = mmu == MMU_SUPER && s.cr4 & cr4::SMAP != 0;
        let wp = s.cr0 & cr0::WP != 0;
        let paging = s.cr0 & cr0::PG != 0;
        let can_read = !paging || if user_mode { w.user } else { !(smap && w.user) };
        let can_write = !paging
            || (if user_mode {
                w.user && w.writable
            } else {
                (w.writable || !wp) && !(smap && w.user)
            }) && w.dirty;
        let can_exec = !paging || (!w.nx && if user_mode { w.user } else { !(w.user && s.cr4 & cr4::SMEP != 0) });
        let page = lin & !TAG_FLAGS;
        let mut e = TlbEntry {
            read: if can_read { page } else { TLB_INVALID },
            write: if can_write { page } else { TLB_INVALID },
            code: if can_exec { page } else { TLB_INVALID },
            addend: 0,
            phys,
            backing: u64::MAX,
        };
        match self.phys.lookup(phys) {
            Some(r) => {
                let backing = r.backing + (phys - r.start);
                e.backing = backing >> PAGE_SHIFT;
                e.addend = (self.mem.host_base() as u64).wrapping_add(backing).wrapping_sub(page);
                if r.kind == RegionKind::Rom && e.write & TLB_INVALID == 0 {
                    e.write |= TLB_MMIO;
                }
                if self.mem.is_code_page(e.backing) && e.write & TLB_INVALID == 0 {
                    e.write |= TLB_CODE;
                }
            }
            None => {
                for t in [&mut e.read, &mut e.write, &mut e.code] {
                    if *t & TLB_INVALID == 0 {
                        *t |= TLB_MMIO;
                    }
                }
            }
        }
        if self.watch.read | self.watch.write != 0 {
            if self.watch.watches_page(page, true) && e.read & TLB_INVALID == 0 {
                e.read |= TLB_WATCH;
            }
            if self.watch.watches_page(page, false) && e.write & TLB_INVALID == 0 {
                e.write |= TLB_WATCH;
            }
        }
        let i = tlb_index(lin);
        self.tlb.e[mmu][i] = e;
        Ok(i)
    }

    /// Translate a linear address for an access, returning the TLB entry
    /// (the access is allowed once this returns).
    #[inline]
    fn tlb_entry(&mut self, bus: &mut dyn Bus, lin: u64, access: Access, mmu: usize) -> Result<TlbEntry> {
        let i = tlb_index(lin);
        let e = &self.tlb.e[mmu][i];
        let tag = match access {
            Access::Read => e.read,
            Access::Write => e.write,
            Access::Exec => e.code,
        };
        if tag & !TAG_FLAGS == lin & !TAG_FLAGS && tag & TLB_INVALID == 0 {
            return Ok(*e);
        }
        let i = self.tlb_fill(bus, lin, access, mmu)?;
        Ok(self.tlb.e[mmu][i])
    }

    /// Translate a linear address to a physical one (for the debugger and
    /// the executor's code lookups).
    pub fn translate(&mut self, bus: &mut dyn Bus, lin: u64, access: Access) -> Result<u64> {
        let mmu = self.mmu_mode();
        self.translate_mmu(bus, lin, access, mmu)
    }

    /// Translate with an explicit MMU mode (instruction fetch uses the
    /// user or the SMAP-free supervisor table, whatever EFLAGS.AC says).
    pub fn translate_mmu(&mut self, bus: &mut dyn Bus, lin: u64, access: Access, mmu: usize) -> Result<u64> {
        let e = self.tlb_entry(bus, lin, access, mmu)?;
        Ok(e.phys | (lin & TAG_FLAGS))
    }

    /// The backing page and host pointer for fetching code at `lin`, if the
    /// code is in RAM/ROM; `Ok(None)` for code in MMIO space.
    pub(crate) fn code_page(&mut self, bus: &mut dyn Bus, lin: u64) -> Result<Option<(u64, u64)>> {
        let mmu = if self.s.cpl == 3 { MMU_USER } else { MMU_SUPER_NOSMAP };
        let e = self.tlb_entry(bus, lin, Access::Exec, mmu)?;
        if e.code & TLB_MMIO != 0 || e.backing == u64::MAX {
            return Ok(None);
        }
        Ok(Some((e.backing, e.phys)))
    }

    /// The backing page for fetching code at `lin` when the code TLB
    /// already maps it to RAM/ROM (no fill, no fault); `code_page` otherwise.
    #[inline(always)]
    pub(crate) fn code_page_fast(&self, lin: u64) -> Option<u64> {
        let mmu = if self.s.cpl == 3 { MMU_USER } else { MMU_SUPER_NOSMAP };
        let e = &self.tlb.e[mmu][tlb_index(lin)];
        (e.code == lin & !TAG_FLAGS).then_some(e.backing)
    }

    // ----- linear accessors -----

    /// Read `size` bytes (1, 2, 4, 8) at a linear address with the current
    /// privilege. Accesses that cross a page are split.
    #[inline]
    pub fn read_lin(&mut self, bus: &mut dyn Bus, lin: u64, size: usize) -> Result<u64> {
        let mmu = self.mmu_mode();
        self.read_lin_mmu(bus, lin, size, mmu)
    }

    /// Read with an explicit MMU mode (implicit supervisor accesses to
    /// descriptor tables and the TSS use `MMU_SUPER_NOSMAP`/`MMU_SUPER`).
    #[inline]
    pub fn read_lin_mmu(&mut self, bus: &mut dyn Bus, lin: u64, size: usize, mmu: usize) -> Result<u64> {
        let i = tlb_index(lin);
        let e = &self.tlb.e[mmu][i];
        if e.read == lin & !TAG_FLAGS && (lin & TAG_FLAGS) as usize + size <= PAGE_SIZE as usize {
            let p = lin.wrapping_add(e.addend) as *const u8;
            // SAFETY: a fast-path tag is only installed for RAM/ROM pages, with
            // addend = host address of the page's backing - linear page; the
            // access stays inside that 4 KiB page (checked above) and the
            // backing lives as long as `self.mem`.
            return Ok(unsafe {
                match size {
                    1 => *p as u64,
                    2 => (p as *const u16).read_unaligned() as u64,
                    4 => (p as *const u32).read_unaligned() as u64,
                    _ => (p as *const u64).read_unaligned(),
                }
            });
        }
        self.read_lin_slow(bus, lin, size, mmu)
    }

    #[cold]
    fn read_lin_slow(&mut self, bus: &mut dyn Bus, lin: u64, size: usize, mmu: usize) -> Result<u64> {
        if (lin & TAG_FLAGS) as usize + size > PAGE_SIZE as usize {
            let mut v = 0u64;
            for k in 0..size {
                let a = lin.wrapping_add(k as u64) & self.lin_mask();
                v |= self.read_lin_mmu(bus, a, 1, mmu)? << (8 * k);
            }
            return Ok(v);
        }
        let e = self.tlb_entry(bus, lin, Access::Read, mmu)?;
        if e.read & TLB_WATCH != 0 {
            self.watch_access(lin, size, false);
        }
        if e.read & TLB_MMIO != 0 {
            return Ok(self.mmio_read(bus, e.phys | (lin & TAG_FLAGS), size as u8));
        }
        if e.read & TLB_WATCH != 0 {
            let mut b = [0u8; 8];
            self.mem.read((e.backing << PAGE_SHIFT) | (lin & TAG_FLAGS), &mut b[..size]);
            return Ok(u64::from_le_bytes(b));
        }
        self.read_lin_mmu(bus, lin, size, mmu)
    }

    #[inline]
    pub fn write_lin(&mut self, bus: &mut dyn Bus, lin: u64, size: usize, v: u64) -> Result<()> {
        let mmu = self.mmu_mode();
        self.write_lin_mmu(bus, lin, size, v, mmu)
    }

    #[inline]
    pub fn write_lin_mmu(&mut self, bus: &mut dyn Bus, lin: u64, size: usize, v: u64, mmu: usize) -> Result<()> {
        let i = tlb_index(lin);
        let e = &self.tlb.e[mmu][i];
        if e.write == lin & !TAG_FLAGS && (lin & TAG_FLAGS) as usize + size <= PAGE_SIZE as usize {
            let p = lin.wrapping_add(e.addend) as *mut u8;
            // SAFETY: as in `read_lin_mmu`; write tags are installed only for
            // RAM pages that hold no decoded code.
            unsafe {
                match size {
                    1 => *p = v as u8,
                    2 => (p as *mut u16).write_unaligned(v as u16),
                    4 => (p as *mut u32).write_unaligned(v as u32),
                    _ => (p as *mut u64).write_unaligned(v),
                }
            }
            return Ok(());
        }
        self.write_lin_slow(bus, lin, size, v, mmu)
    }

    #[cold]
    fn write_lin_slow(&mut self, bus: &mut dyn Bus, lin: u64, size: usize, v: u64, mmu: usize) -> Result<()> {
        if (lin & TAG_FLAGS) as usize + size > PAGE_SIZE as usize {
            // Both pages must be writable before any byte is written.
            let second = lin.wrapping_add(size as u64 - 1) & self.lin_mask();
            self.tlb_entry(bus, lin, Access::Write, mmu)?;
            self.tlb_entry(bus, second, Access::Write, mmu)?;
            for k in 0..size {
                let a = lin.wrapping_add(k as u64) & self.lin_mask();
                self.write_lin_mmu(bus, a, 1, v >> (8 * k), mmu)?;
            }
            return Ok(());
        }
        let e = self.tlb_entry(bus, lin, Access::Write, mmu)?;
        let phys = e.phys | (lin & TAG_FLAGS);
        if e.write & TLB_WATCH != 0 {
            self.watch_access(lin, size, true);
        }
        if e.write & TLB_MMIO != 0 {
            self.mmio_write(bus, phys, size as u8, v);
            return Ok(());
        }
        // RAM holding code or a data breakpoint: write through memory (which
        // marks a code page dirty), then refresh the entry so later writes
        // take the fast path if the page no longer holds code.
        self.mem
            .write((e.backing << PAGE_SHIFT) | (lin & TAG_FLAGS), &v.to_le_bytes()[..size]);
        self.break_block = true;
        let i = tlb_index(lin);
        if !self.mem.is_code_page(e.backing) {
            self.tlb.e[mmu][i].write &= !TLB_CODE;
        }
        Ok(())
    }

    /// Host address of `lin..lin+len` when that range lies in one page and
    /// the TLB holds a fast-path entry for the access (RAM; for writes, a
    /// page without decoded code). No fill, no fault: `None` means "use
    /// the ordinary path".
    #[inline]
    fn fast_host(&self, lin: u64, len: u64, access: Access, mmu: usize) -> Option<u64> {
        if len == 0 || (lin & TAG_FLAGS) + len > PAGE_SIZE {
            return None;
        }
        let e = &self.tlb.e[mmu][tlb_index(lin)];
        let tag = match access {
            Access::Read => e.read,
            Access::Write => e.write,
            Access::Exec => e.code,
        };
        (tag == lin & !TAG_FLAGS).then(|| lin.wrapping_add(e.addend))
    }

    /// The memory part of `n` iterations of REP MOVS with `size`-byte
    /// elements: `src` and `dst` are the lowest linear addresses of the two
    /// runs, each inside one page. Iterations go up (or down with `down`)
    /// as the instruction would do them one by one, so overlapping runs give
    /// the same bytes. Returns false, having done nothing, unless both runs
    /// are reachable through TLB fast paths (the caller then iterates).
    pub(crate) fn copy_run(&mut self, src: u64, dst: u64, n: u64, size: usize, down: bool) -> bool {
        let mmu = self.mmu_mode();
        let len = n * size as u64;
        let (Some(hs), Some(hd)) = (
            self.fast_host(src, len, Access::Read, mmu),
            self.fast_host(dst, len, Access::Write, mmu),
        ) else {
            return false;
        };
        let (ps, pd) = (hs as *const u8, hd as *mut u8);
        if hs.abs_diff(hd) >= len {
            // SAFETY: fast-path tags map whole 4 KiB pages of the guest
            // memory mapping (see `read_lin_mmu`), both ranges are inside
            // one such page (checked by `fast_host`) and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ps, pd, len as usize) };
            return true;
        }
        let order: &mut dyn Iterator<Item = u64> = if down { &mut (0..n).rev() } else { &mut (0..n) };
        for k in order {
            let off = (k * size as u64) as usize;
            // SAFETY: as above; each element is inside both ranges, and
            // `copy` allows the overlap.
            unsafe { std::ptr::copy(ps.add(off), pd.add(off), size) };
        }
        true
    }

    /// The memory part of `n` iterations of REP STOS: the low `size` bytes
    /// of `v` stored `n` times from the lowest linear address `dst` (one
    /// page). Returns false, having done nothing, unless the run is
    /// reachable through a TLB fast path.
    pub(crate) fn fill_run(&mut self, dst: u64, n: u64, size: usize, v: u64) -> bool {
        let mmu = self.mmu_mode();
        let Some(hd) = self.fast_host(dst, n * size as u64, Access::Write, mmu) else {
            return false;
        };
        let pd = hd as *mut u8;
        // SAFETY: as in `copy_run`: the range is inside one fast-path RAM page.
        unsafe {
            if size == 1 {
                std::ptr::write_bytes(pd, v as u8, n as usize);
            } else {
                let bytes = v.to_le_bytes();
                for k in 0..n as usize {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), pd.add(k * size), size);
                }
            }
        }
        true
    }

    /// Mask for linear addresses: 32 bits outside 64-bit mode.
    #[inline(always)]
    pub fn lin_mask(&self) -> u64 {
        if self.s.mode == crate::state::Mode::Long64 {
            u64::MAX
        } else {
            0xffff_ffff
        }
    }

    /// Check that a linear range can be written, without writing (for
    /// instructions that must not partially complete, e.g. far CALL pushes).
    pub fn probe_write(&mut self, bus: &mut dyn Bus, lin: u64, size: usize) -> Result<()> {
        let mmu = self.mmu_mode();
        self.tlb_entry(bus, lin, Access::Write, mmu)?;
        let last = lin.wrapping_add(size as u64 - 1) & self.lin_mask();
        if last >> PAGE_SHIFT != lin >> PAGE_SHIFT {
            self.tlb_entry(bus, last, Access::Write, mmu)?;
        }
        Ok(())
    }
}
