//! Segmentation: turning a segment:offset into a linear address with the
//! limit, type and canonical-address checks of SDM Vol. 3A chapter 3 and 5.

use crate::cpu::{Cpu, CpuModel};
use crate::exception::{Exception, Result};
use crate::mmu::Access;
use crate::state::{attr, Mode, SS};

#[inline(always)]
pub fn canonical(a: u64) -> bool {
    ((a as i64) << 16 >> 16) as u64 == a
}

impl Cpu {
    /// The fault for a bad access through segment `seg` (#SS for the stack).
    #[inline]
    pub fn seg_fault(&self, seg: usize) -> Exception {
        if seg == SS && self.model != CpuModel::I80286 {
            Exception::StackFault(0)
        } else {
            Exception::GP0
        }
    }

    /// Segment:offset to linear address for an access of `size` bytes.
    #[inline]
    pub fn seg_lin(&self, seg: usize, off: u64, size: usize, access: Access) -> Result<u64> {
        let s = &self.s.segs[seg];
        if self.s.mode == Mode::Long64 {
            let lin = if seg >= crate::state::FS { s.base.wrapping_add(off) } else { off };
            if !canonical(lin) || !canonical(lin.wrapping_add(size as u64 - 1)) {
                return Err(self.seg_fault(seg));
            }
            return Ok(lin);
        }
        let off = off & 0xffff_ffff;
        if self.s.mode.is_protected() {
            if s.attr & attr::P == 0 {
                return Err(self.seg_fault(seg));
            }
            let code = s.attr & attr::CODE != 0;
            let bad_type = match access {
                Access::Write => code || s.attr & attr::RW == 0,
                Access::Read => code && s.attr & attr::RW == 0,
                Access::Exec => !code,
            };
            if bad_type {
                return Err(self.seg_fault(seg));
            }
        }
        let last = off + size as u64 - 1;
        let expand_down = s.attr & (attr::CODE | attr::DC) == attr::DC && self.s.mode != Mode::Real;
        if expand_down {
            let upper = if s.attr & attr::DB != 0 { 0xffff_ffff } else { 0xffff };
            if off <= s.limit as u64 || last > upper {
                return Err(self.seg_fault(seg));
            }
        } else if last > s.limit as u64 {
            return Err(self.seg_fault(seg));
        }
        Ok(s.base.wrapping_add(off) & 0xffff_ffff)
    }

    /// Read `size` bytes at seg:off.
    #[inline]
    pub fn read_mem(&mut self, bus: &mut dyn crate::bus::Bus, seg: usize, off: u64, size: usize) -> Result<u64> {
        let lin = self.seg_lin(seg, off, size, Access::Read)?;
        self.read_lin(bus, lin, size)
    }

    /// Write `size` bytes at seg:off.
    #[inline]
    pub fn write_mem(&mut self, bus: &mut dyn crate::bus::Bus, seg: usize, off: u64, size: usize, v: u64) -> Result<()> {
        let lin = self.seg_lin(seg, off, size, Access::Write)?;
        self.write_lin(bus, lin, size, v)
    }
}

/// Linear address of `size` bytes at `off` through an explicit segment
/// cache (a stack that is not yet in SS), or `None` on a limit violation.
/// Data segments only (stacks); expand-down honoured. `long64` skips the
/// limit and checks canonicality instead.
pub fn seg_lin_in(s: &crate::state::Segment, off: u64, size: usize, long64: bool) -> Option<u64> {
    if long64 {
        let end = off.wrapping_add(size as u64 - 1);
        return (canonical(off) && canonical(end)).then_some(off);
    }
    let off = off & 0xffff_ffff;
    let last = off + size as u64 - 1;
    if s.attr & (attr::CODE | attr::DC) == attr::DC {
        let upper = if s.attr & attr::DB != 0 { 0xffff_ffff } else { 0xffff };
        if off <= s.limit as u64 || last > upper {
            return None;
        }
    } else if last > s.limit as u64 {
        return None;
    }
    Some(s.base.wrapping_add(off) & 0xffff_ffff)
}
