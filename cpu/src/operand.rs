//! Operand access shared by every instruction family: effective addresses,
//! and reading/writing an instruction's operand `n` whatever its kind.

use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::mmu::Access;
use crate::state::Mode;
use iced_x86::{Instruction, OpKind, Register};

/// A resolved operand location, so read-modify-write instructions compute
/// the address (and check the segment) once.
#[derive(Clone, Copy, Debug)]
pub enum Loc {
    Reg(Register),
    /// A linear address, already checked against the segment for the access.
    Mem(u64),
}

/// Segment register index (0..6) of an iced-x86 segment register.
#[inline(always)]
pub fn seg_index(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::ES as usize)
}

impl Cpu {
    /// Effective address (offset within the segment) of the memory operand.
    #[inline]
    pub fn ea(&self, i: &Instruction) -> u64 {
        let base = i.memory_base();
        let index = i.memory_index();
        let mut a = i.memory_displacement64();
        let mut size = 0usize;
        if base != Register::None {
            if base == Register::RIP || base == Register::EIP {
                // iced already folded next_ip into the displacement.
                return if base == Register::EIP { a & 0xffff_ffff } else { a };
            }
            a = a.wrapping_add(self.reg(base));
            size = base.size();
        }
        if index != Register::None {
            a = a.wrapping_add(self.reg(index) << i.memory_index_scale().trailing_zeros());
            if size == 0 {
                size = index.size();
            }
        }
        if size == 0 {
            size = match self.s.mode {
                Mode::Long64 => 8,
                _ => i.memory_displ_size() as usize,
            };
        }
        match size {
            2 => a & 0xffff,
            4 => a & 0xffff_ffff,
            _ => a,
        }
    }

    /// Segment index and offset of the memory operand.
    #[inline]
    pub fn mem_operand(&self, i: &Instruction) -> (usize, u64) {
        (seg_index(i.memory_segment()), self.ea(i))
    }

    /// Size in bytes of operand `n`.
    #[inline]
    pub fn op_size(i: &Instruction, n: u32) -> usize {
        match i.op_kind(n) {
            OpKind::Register => i.op_register(n).size(),
            OpKind::Memory => i.memory_size().size(),
            OpKind::Immediate8 => 1,
            OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
            OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
            _ => 8,
        }
    }

    /// Resolve operand `n` (register or memory) for the given access.
    #[inline]
    pub fn loc(&self, i: &Instruction, n: u32, access: Access) -> Result<Loc> {
        match i.op_kind(n) {
            OpKind::Register => Ok(Loc::Reg(i.op_register(n))),
            _ => {
                let (seg, off) = self.mem_operand(i);
                let size = i.memory_size().size().max(1);
                Ok(Loc::Mem(self.seg_lin(seg, off, size, access)?))
            }
        }
    }

    #[inline]
    pub fn read_loc(&mut self, bus: &mut dyn Bus, loc: Loc, size: usize) -> Result<u64> {
        match loc {
            Loc::Reg(r) => Ok(self.reg(r)),
            Loc::Mem(lin) => self.read_lin(bus, lin, size),
        }
    }

    #[inline]
    pub fn write_loc(&mut self, bus: &mut dyn Bus, loc: Loc, size: usize, v: u64) -> Result<()> {
        match loc {
            Loc::Reg(r) => {
                self.set_reg(r, v);
                Ok(())
            }
            Loc::Mem(lin) => self.write_lin(bus, lin, size, v),
        }
    }

    /// Read operand `n`: register, memory or immediate (sign-extended as encoded).
    #[inline]
    pub fn read_op(&mut self, bus: &mut dyn Bus, i: &Instruction, n: u32) -> Result<u64> {
        match i.op_kind(n) {
            OpKind::Register => Ok(self.reg(i.op_register(n))),
            OpKind::Memory => {
                let size = i.memory_size().size();
                let (seg, off) = self.mem_operand(i);
                self.read_mem(bus, seg, off, size)
            }
            _ => Ok(i.immediate(n)),
        }
    }

    /// Write operand `n` (register or memory).
    #[inline]
    pub fn write_op(&mut self, bus: &mut dyn Bus, i: &Instruction, n: u32, v: u64) -> Result<()> {
        match i.op_kind(n) {
            OpKind::Register => {
                self.set_reg(i.op_register(n), v);
                Ok(())
            }
            _ => {
                let size = i.memory_size().size();
                let (seg, off) = self.mem_operand(i);
                self.write_mem(bus, seg, off, size, v)
            }
        }
    }
}
