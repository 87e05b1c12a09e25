//! The x87 register stack and status word: TOP, the tag word, push/pop,
//! stack faults, exception reporting (ES/B, C1), the #NM/#MF checks every
//! ESC opcode makes, and the instruction/data pointers (SDM Vol. 1, 8.1).

use super::float80::{Class, Env, F80, IE};
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::state::{cr0, FpuState, Mode, CS};
use iced_x86::{Instruction, OpKind, Register};

pub const SF: u16 = 1 << 6;
pub const ES: u16 = 1 << 7;
pub const C0: u16 = 1 << 8;
pub const C1: u16 = 1 << 9;
pub const C2: u16 = 1 << 10;
pub const C3: u16 = 1 << 14;
pub const B: u16 = 1 << 15;
pub const TOP_SHIFT: u16 = 11;

pub const TAG_VALID: u16 = 0;
pub const TAG_ZERO: u16 = 1;
pub const TAG_SPECIAL: u16 = 2;
pub const TAG_EMPTY: u16 = 3;

/// The tag a value gets when written to a register.
pub fn tag_of(v: F80) -> u16 {
    match v.class() {
        Class::Normal => TAG_VALID,
        Class::Zero => TAG_ZERO,
        _ => TAG_SPECIAL,
    }
}

impl FpuState {
    pub fn top(&self) -> usize {
        ((self.fsw >> TOP_SHIFT) & 7) as usize
    }
    pub fn set_top(&mut self, top: usize) {
        self.fsw = (self.fsw & !(7 << TOP_SHIFT)) | (((top & 7) as u16) << TOP_SHIFT);
    }
    /// Physical register number of ST(i).
    pub fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }
    pub fn tag(&self, phys: usize) -> u16 {
        (self.ftw >> (phys * 2)) & 3
    }
    pub fn set_tag(&mut self, phys: usize, tag: u16) {
        self.ftw = (self.ftw & !(3 << (phys * 2))) | (tag << (phys * 2));
    }
    pub fn is_empty(&self, i: usize) -> bool {
        self.tag(self.phys(i)) == TAG_EMPTY
    }
    /// ST(i) as a value (whatever its tag).
    pub fn st(&self, i: usize) -> F80 {
        F80::from_bits(self.st[self.phys(i)] & ((1u128 << 80) - 1))
    }
    /// Write ST(i) and tag it from its contents.
    pub fn set_st(&mut self, i: usize, v: F80) {
        let p = self.phys(i);
        self.st[p] = v.to_bits();
        self.set_tag(p, tag_of(v));
    }
    /// Mark ST(0) empty and increment TOP.
    pub fn pop(&mut self) {
        let p = self.phys(0);
        self.set_tag(p, TAG_EMPTY);
        self.set_top(self.top() + 1);
    }
    /// Decrement TOP and write the new ST(0).
    pub fn push(&mut self, v: F80) {
        self.set_top(self.top().wrapping_sub(1));
        self.set_st(0, v);
    }
    pub fn set_cc(&mut self, c0: bool, c1: bool, c2: bool, c3: bool) {
        self.fsw &= !(C0 | C1 | C2 | C3);
        self.fsw |= (c0 as u16 * C0) | (c1 as u16 * C1) | (c2 as u16 * C2) | (c3 as u16 * C3);
    }
    pub fn set_c1(&mut self, c1: bool) {
        self.fsw = (self.fsw & !C1) | (c1 as u16 * C1);
    }
    /// Recompute ES and B from the pending exception flags and the masks.
    pub fn update_es(&mut self) {
        if self.fsw & !self.fcw & 0x3f != 0 {
            self.fsw |= ES | B;
        } else {
            self.fsw &= !(ES | B);
        }
    }
    /// Record exceptions in the status word. Returns true when the result
    /// may be delivered: false if an unmasked IE, DE or ZE occurred (the
    /// destination and the stack are then left unchanged, SDM Vol. 1, 8.5).
    pub fn raise(&mut self, flags: u16) -> bool {
        self.fsw |= flags & 0x3f;
        self.update_es();
        flags & !self.fcw & 0x07 == 0
    }
    /// Report the exceptions of a completed arithmetic operation: flags,
    /// and C1 = "rounded up" when inexact.
    pub fn finish(&mut self, env: &Env) -> bool {
        let ok = self.raise(env.flags);
        self.set_c1(env.flags & super::float80::PE != 0 && env.round_up);
        ok
    }
    /// Stack underflow (an empty register was read): IE|SF, C1 = 0.
    /// Returns true when masked (the caller delivers the indefinite).
    pub fn underflow(&mut self) -> bool {
        self.fsw |= IE | SF;
        self.set_c1(false);
        self.update_es();
        self.fcw & IE != 0
    }
    /// Stack overflow (push onto a full register): IE|SF, C1 = 1.
    pub fn overflow(&mut self) -> bool {
        self.fsw |= IE | SF;
        self.set_c1(true);
        self.update_es();
        self.fcw & IE != 0
    }
    /// Push with the overflow check; a masked overflow pushes the indefinite.
    pub fn push_checked(&mut self, v: F80) {
        if !self.is_empty(7) {
            if self.overflow() {
                self.push(F80::INDEFINITE);
            }
        } else {
            self.push(v);
        }
    }
    /// The full 8 registers in the FNINIT state.
    pub fn init(&mut self) {
        self.fcw = 0x037f;
        self.fsw = 0;
        self.ftw = 0xffff;
        self.fip = 0;
        self.fdp = 0;
        self.fop = 0;
        self.fcs = 0;
        self.fds = 0;
    }
    /// Recompute one register's tag from its contents (for FLDENV/FRSTOR,
    /// which keep only the empty/non-empty distinction of the loaded tags).
    pub fn retag(&mut self, phys: usize) {
        if self.tag(phys) != TAG_EMPTY {
            let v = F80::from_bits(self.st[phys]);
            self.set_tag(phys, tag_of(v));
        }
    }
}

/// Register index of ST(i) from an iced operand register.
pub fn sti(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::ST0 as usize) & 7
}

impl Cpu {
    /// Checks every ESC opcode makes before anything else (SDM Vol. 3A,
    /// 2.5 and 6.15 #NM/#MF): CR0.EM or CR0.TS raise #NM; a waiting
    /// instruction with an unmasked exception pending raises #MF when
    /// CR0.NE is set (with NE clear the error goes to FERR#, which no PC
    /// chipset model here routes; the instruction proceeds).
    pub fn fpu_check(&mut self, waiting: bool) -> Result<()> {
        if self.s.cr0 & (cr0::EM | cr0::TS) != 0 {
            return Err(Exception::DeviceNotAvailable);
        }
        if waiting && self.s.fpu.fsw & ES != 0 && self.s.cr0 & cr0::NE != 0 {
            return Err(Exception::FloatingPoint);
        }
        Ok(())
    }

    /// Entry of a non-control x87 instruction: the checks, then FIP/FCS/FOP
    /// and, for a memory operand, FDP/FDS (SDM Vol. 1, 8.1.8-8.1.9).
    pub fn fpu_enter(&mut self, i: &Instruction) -> Result<()> {
        self.fpu_check(true)?;
        let f = &mut self.s.fpu;
        f.fip = if self.s.mode == Mode::Long64 {
            i.ip()
        } else {
            i.ip() & 0xffff_ffff
        };
        f.fcs = self.s.segs[CS].selector;
        f.fop = fop_of(i);
        if (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory) {
            let (seg, off) = self.mem_operand(i);
            let f = &mut self.s.fpu;
            f.fdp = off;
            f.fds = self.s.segs[seg].selector;
        }
        Ok(())
    }

    /// Read a 10-byte memory operand.
    pub fn read_m80(&mut self, bus: &mut dyn Bus, i: &Instruction) -> Result<u128> {
        let (seg, off) = self.mem_operand(i);
        let lo = self.read_mem(bus, seg, off, 8)?;
        let hi = self.read_mem(bus, seg, off.wrapping_add(8), 2)?;
        Ok(((hi as u128) << 64) | lo as u128)
    }

    /// Write a 10-byte memory operand, checking both parts first so a fault
    /// leaves memory untouched.
    pub fn write_m80(&mut self, bus: &mut dyn Bus, i: &Instruction, v: u128) -> Result<()> {
        let (seg, off) = self.mem_operand(i);
        self.probe_mem_write(bus, seg, off, 10)?;
        self.write_mem(bus, seg, off, 8, v as u64)?;
        self.write_mem(bus, seg, off.wrapping_add(8), 2, (v >> 64) as u64)
    }

    /// Check that `size` bytes at seg:off can be written (segment and paging).
    pub fn probe_mem_write(&mut self, bus: &mut dyn Bus, seg: usize, off: u64, size: usize) -> Result<()> {
        let lin = self.seg_lin(seg, off, size, crate::mmu::Access::Write)?;
        self.probe_write(bus, lin, size)
    }
}

/// The 11-bit x87 opcode (FOP): low three bits of the first opcode byte and
/// the ModRM byte (SDM Vol. 1, 8.1.10).
pub fn fop_of(i: &Instruction) -> u16 {
    let oc = i.op_code();
    let first = (oc.op_code() >> if oc.op_code() > 0xff { 8 } else { 0 }) as u16 & 7;
    let modrm = if oc.op_code() > 0xff {
        // Register forms: iced encodes "D8 C0+i" as a two-byte opcode.
        let base = (oc.op_code() & 0xff) as u16;
        let reg = (0..i.op_count())
            .filter(|&n| i.op_kind(n) == OpKind::Register)
            .map(|n| i.op_register(n))
            .find(|&r| r != Register::ST0 || i.op_count() == 1)
            .map(|r| sti(r) as u16)
            .unwrap_or(0);
        if oc.op_code() & 7 == 0 && has_sti(i) {
            base | reg
        } else {
            base
        }
    } else {
        let reg = oc.group_index().max(0) as u16;
        let (md, rm) = modrm_mem(i);
        (md << 6) | (reg << 3) | rm
    };
    (first << 8) | modrm
}

fn has_sti(i: &Instruction) -> bool {
    (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n) != Register::ST0)
        || (i.op_count() == 2 && i.op_register(0) == Register::ST0 && i.op_register(1) == Register::ST0)
}

/// Reconstruct mod and r/m of a memory operand's ModRM byte.
fn modrm_mem(i: &Instruction) -> (u16, u16) {
    let base = i.memory_base();
    let index = i.memory_index();
    let disp = i.memory_displ_size();
    // mod: 0 without displacement (or with no base at all), 1 for disp8, 2 otherwise.
    let md = |no_disp: bool| -> u16 {
        if base == Register::None || no_disp {
            0
        } else if disp == 1 {
            1
        } else {
            2
        }
    };
    let addr16 = base.size() == 2 || index.size() == 2 || (base == Register::None && index == Register::None && disp == 2);
    if addr16 {
        let rm = match (base, index) {
            (Register::BX, Register::SI) => 0,
            (Register::BX, Register::DI) => 1,
            (Register::BP, Register::SI) => 2,
            (Register::BP, Register::DI) => 3,
            (Register::SI, Register::None) => 4,
            (Register::DI, Register::None) => 5,
            (Register::BX, Register::None) => 7,
            _ => 6,
        };
        return (md(i.memory_displacement64() == 0 && base != Register::BP), rm);
    }
    if base == Register::RIP || base == Register::EIP || (base == Register::None && index == Register::None && disp == 4) {
        return (0, 5);
    }
    let no_disp = disp == 0 && base.number() & 7 != 5;
    if index != Register::None || base == Register::None || base.number() & 7 == 4 {
        return (md(no_disp), 4);
    }
    (md(no_disp), (base.number() & 7) as u16)
}
