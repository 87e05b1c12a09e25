//! String instructions: MOVS CMPS SCAS LODS STOS INS OUTS with REP, REPE
//! and REPNE (SDM Vol. 1, 7.3.9 and the Vol. 2 entries).
//!
//! The address size picks SI/ESI/RSI, DI/EDI/RDI and CX/ECX/RCX. The source
//! segment may be overridden; the destination is always ES. A REP
//! instruction runs at most `REP_CHUNK` iterations per call and, if the count
//! is not exhausted, leaves RIP on itself so that it resumes after pending
//! interrupts are taken, or stops at once after a write to a page holding
//! decoded code so that the executor drops the stale blocks (SDM 7.3.9.2: registers reflect completed
//! iterations, so it is restartable at any point). A fault in iteration k
//! leaves iterations before k done.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::{Cpu, CpuModel};
use crate::exception::Result;
use crate::flags::{size_log2, size_mask, CC_SUB};
use crate::mmu::Access;
use crate::state::{ES, RAX, RCX, RDI, RSI};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

/// Iterations of a REP instruction between interrupt checks.
const REP_CHUNK: u64 = 1024;

const MOVS: u8 = 0;
const CMPS: u8 = 1;
const SCAS: u8 = 2;
const LODS: u8 = 3;
const STOS: u8 = 4;
const INS: u8 = 5;
const OUTS: u8 = 6;

/// Address size in bytes, from the string operand's kind.
fn addr_size(i: &Instruction) -> usize {
    for n in 0..i.op_count() {
        match i.op_kind(n) {
            OpKind::MemorySegSI | OpKind::MemoryESDI => return 2,
            OpKind::MemorySegESI | OpKind::MemoryESEDI => return 4,
            OpKind::MemorySegRSI | OpKind::MemoryESRDI => return 8,
            _ => {}
        }
    }
    2
}

/// Write an index or counter register with the address size's width.
#[inline]
fn set_areg(cpu: &mut Cpu, idx: usize, v: u64, asize: usize) {
    let g = &mut cpu.s.gpr[idx];
    *g = match asize {
        2 => (*g & !0xffff) | (v & 0xffff),
        4 => v & 0xffff_ffff,
        _ => v,
    };
}

fn string_op<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let size = i.memory_size().size();
    let sz = size_log2(size);
    let vm = size_mask(sz);
    let asize = addr_size(i);
    let am = size_mask(size_log2(asize));
    let src_seg = crate::operand::seg_index(i.memory_segment());
    let rep = i.has_rep_prefix() || i.has_repne_prefix();
    // Only CMPS and SCAS distinguish REPE from REPNE.
    let until_zf = match OP {
        CMPS | SCAS if i.has_repne_prefix() => Some(true),
        CMPS | SCAS if i.has_rep_prefix() => Some(false),
        _ => None,
    };
    let delta = if cpu.s.df() { (size as u64).wrapping_neg() } else { size as u64 };
    let port = cpu.s.gpr[crate::state::RDX] as u16;
    if matches!(OP, INS | OUTS) {
        cpu.check_io(bus, port, size)?;
    }
    let mut done = 0u64;
    // Port I/O ends the block (`Cpu::port_in/port_out`), but only a write
    // to code cuts a REP INS/OUTS short (below).
    // The executor drains the dirty-code list before every block, so a flag
    // already up here is stale (a caller invoking handlers directly).
    let code_was_dirty = cpu.mem.has_dirty_code();
    loop {
        if rep && cpu.s.gpr[RCX] & am == 0 {
            return Ok(());
        }
        if rep && (OP == MOVS || OP == STOS) && cpu.model == CpuModel::X86_64 {
            let n = bulk_run::<OP>(cpu, src_seg, size, asize, REP_CHUNK - done);
            if n > 0 {
                done += n;
                if cpu.s.gpr[RCX] & am == 0 {
                    return Ok(());
                }
                if done >= REP_CHUNK {
                    cpu.s.rip = i.ip();
                    cpu.break_block = true;
                    return Ok(());
                }
                continue;
            }
        }
        let si = cpu.s.gpr[RSI] & am;
        let di = cpu.s.gpr[RDI] & am;
        let mut stop = false;
        if cpu.model == CpuModel::I80286 {
            check_286::<OP>(cpu, rep, src_seg, si, di, size, delta, asize)?;
        }
        match OP {
            MOVS => {
                let v = cpu.read_mem(bus, src_seg, si, size)?;
                cpu.write_mem(bus, ES, di, size, v)?;
                set_areg(cpu, RSI, si.wrapping_add(delta), asize);
                set_areg(cpu, RDI, di.wrapping_add(delta), asize);
            }
            CMPS => {
                let a = cpu.read_mem(bus, src_seg, si, size)?;
                let b = cpu.read_mem(bus, ES, di, size)?;
                let r = a.wrapping_sub(b) & vm;
                cpu.s.set_cc(CC_SUB, sz, r, a, b);
                set_areg(cpu, RSI, si.wrapping_add(delta), asize);
                set_areg(cpu, RDI, di.wrapping_add(delta), asize);
                stop = until_zf.is_some_and(|z| (r == 0) == z);
            }
            SCAS => {
                let a = cpu.s.gpr[RAX] & vm;
                let b = cpu.read_mem(bus, ES, di, size)?;
                let r = a.wrapping_sub(b) & vm;
                cpu.s.set_cc(CC_SUB, sz, r, a, b);
                set_areg(cpu, RDI, di.wrapping_add(delta), asize);
                stop = until_zf.is_some_and(|z| (r == 0) == z);
            }
            LODS => {
                let v = cpu.read_mem(bus, src_seg, si, size)?;
                cpu.set_reg(accumulator(size), v);
                set_areg(cpu, RSI, si.wrapping_add(delta), asize);
            }
            STOS => {
                let v = cpu.s.gpr[RAX] & vm;
                cpu.write_mem(bus, ES, di, size, v)?;
                set_areg(cpu, RDI, di.wrapping_add(delta), asize);
            }
            INS => {
                // Check the destination before the port read has side effects.
                let lin = cpu.seg_lin(ES, di, size, Access::Write)?;
                cpu.probe_write(bus, lin, size)?;
                let v = cpu.port_in(bus, port, size as u8) as u64;
                cpu.write_lin(bus, lin, size, v)?;
                set_areg(cpu, RDI, di.wrapping_add(delta), asize);
            }
            _ => {
                let v = cpu.read_mem(bus, src_seg, si, size)?;
                cpu.port_out(bus, port, size as u8, v as u32);
                set_areg(cpu, RSI, si.wrapping_add(delta), asize);
            }
        }
        if !rep {
            return Ok(());
        }
        let c = cpu.s.gpr[RCX].wrapping_sub(1) & am;
        set_areg(cpu, RCX, c, asize);
        done += 1;
        if stop || c == 0 {
            return Ok(());
        }
        if done >= REP_CHUNK || (!code_was_dirty && cpu.mem.has_dirty_code()) || cpu.db_hits != 0 {
            // Resume here after the executor has looked at interrupts and
            // invalidated code this instruction may have overwritten (or
            // reported the data breakpoint this iteration hit: SDM Vol. 3B
            // 17.3.1.2, the trap comes after the iteration).
            cpu.s.rip = i.ip();
            cpu.break_block = true;
            return Ok(());
        }
    }
}

/// Up to `max` iterations of REP MOVS/STOS done at once by `Cpu::copy_run`
/// / `fill_run`, when each run of elements is contiguous inside one page,
/// passes the segment checks at both ends (which covers every element in
/// between) and is plain RAM in the TLB. Registers end as after that many
/// single iterations. Returns the iterations done; 0 means nothing was
/// done and the caller iterates one by one (which also raises any fault at
/// the exact iteration).
fn bulk_run<const OP: u8>(cpu: &mut Cpu, src_seg: usize, size: usize, asize: usize, max: u64) -> u64 {
    let am = size_mask(size_log2(asize));
    let count = cpu.s.gpr[RCX] & am;
    let down = cpu.s.df();
    let sz = size as u64;
    let di = cpu.s.gpr[RDI] & am;
    let si = cpu.s.gpr[RSI] & am;
    // Elements from the first one to the edge of its page, in the direction of travel.
    let fit = |lin: u64| -> u64 {
        let p = lin & 0xfff;
        if p + sz > 0x1000 {
            0
        } else if down {
            p / sz + 1
        } else {
            (0x1000 - p) / sz
        }
    };
    let Ok(d0) = cpu.seg_lin(ES, di, size, Access::Write) else {
        return 0;
    };
    let mut n = count.min(max).min(fit(d0));
    let mut s0 = 0;
    if OP == MOVS {
        let Ok(l) = cpu.seg_lin(src_seg, si, size, Access::Read) else {
            return 0;
        };
        s0 = l;
        n = n.min(fit(s0));
    }
    if n == 0 {
        return 0;
    }
    let span = (n - 1) * sz;
    // The lowest linear address of a run starting at offset `off` (linear
    // `lin0`), if its last element neither wraps the address size nor fails
    // the segment checks, and the run is contiguous in linear memory.
    let low = |cpu: &Cpu, off: u64, seg: usize, access: Access, lin0: u64| -> Option<u64> {
        let off_last = if down {
            off.checked_sub(span)?
        } else {
            let o = off.checked_add(span)?;
            if o.checked_add(sz - 1)? > am {
                return None;
            }
            o
        };
        let l = cpu.seg_lin(seg, off_last, size, access).ok()?;
        let want = if down { lin0.wrapping_sub(span) } else { lin0.wrapping_add(span) };
        (l == want).then_some(if down { l } else { lin0 })
    };
    let Some(d_low) = low(cpu, di, ES, Access::Write, d0) else {
        return 0;
    };
    let done = if OP == MOVS {
        let Some(s_low) = low(cpu, si, src_seg, Access::Read, s0) else {
            return 0;
        };
        cpu.copy_run(s_low, d_low, n, size, down)
    } else {
        let v = cpu.s.gpr[RAX] & size_mask(size_log2(size));
        cpu.fill_run(d_low, n, size, v)
    };
    if !done {
        return 0;
    }
    let moved = if down { (n * sz).wrapping_neg() } else { n * sz };
    set_areg(cpu, RDI, di.wrapping_add(moved), asize);
    if OP == MOVS {
        set_areg(cpu, RSI, si.wrapping_add(moved), asize);
    }
    set_areg(cpu, RCX, count - n, asize);
    n
}

/// The 286 steps an index register even when its access faults at the end
/// of the segment (a word at offset 0xFFFF), and a REP prefix also counts
/// the faulting iteration in CX: twice for a faulting write, once for a
/// faulting read, except not at all when the ES:DI read of CMPS faults. None of this is documented; it is what the SST data,
/// recorded on a real 286, shows. CMPS reads ES:DI first.
#[allow(clippy::too_many_arguments)]
fn check_286<const OP: u8>(
    cpu: &mut Cpu,
    rep: bool,
    src_seg: usize,
    si: u64,
    di: u64,
    size: usize,
    delta: u64,
    asize: usize,
) -> Result<()> {
    let am = size_mask(size_log2(asize));
    let fault = |cpu: &mut Cpu, idx: usize, off: u64, dec: u64, e| {
        set_areg(cpu, idx, off.wrapping_add(delta), asize);
        if rep {
            let c = cpu.s.gpr[RCX].wrapping_sub(dec) & am;
            set_areg(cpu, RCX, c, asize);
        }
        Err(e)
    };
    let src = |cpu: &mut Cpu| -> Result<()> {
        match cpu.seg_lin(src_seg, si, size, Access::Read) {
            Err(e) => fault(cpu, RSI, si, 1, e),
            Ok(_) => Ok(()),
        }
    };
    let dst = |cpu: &mut Cpu, access: Access| -> Result<()> {
        match cpu.seg_lin(ES, di, size, access) {
            Err(e) => fault(
                cpu,
                RDI,
                di,
                if access == Access::Write {
                    2
                } else if OP == CMPS {
                    0
                } else {
                    1
                },
                e,
            ),
            Ok(_) => Ok(()),
        }
    };
    match OP {
        MOVS => {
            src(cpu)?;
            set_areg(cpu, RSI, si.wrapping_add(delta), asize);
            let r = dst(cpu, Access::Write);
            if r.is_ok() {
                set_areg(cpu, RSI, si, asize);
            }
            r
        }
        CMPS => {
            dst(cpu, Access::Read)?;
            set_areg(cpu, RDI, di.wrapping_add(delta), asize);
            let r = src(cpu);
            if r.is_ok() {
                set_areg(cpu, RDI, di, asize);
            }
            r
        }
        LODS | OUTS => src(cpu),
        SCAS => dst(cpu, Access::Read),
        _ => dst(cpu, Access::Write),
    }
}

fn accumulator(size: usize) -> Register {
    match size {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    }
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsq => string_op::<MOVS>,
        // MOVSD shares its mnemonic with the SSE2 scalar move.
        Mnemonic::Movsd if format!("{code:?}").starts_with("Movsd_m32") => string_op::<MOVS>,
        Mnemonic::Cmpsb | Mnemonic::Cmpsw | Mnemonic::Cmpsq => string_op::<CMPS>,
        Mnemonic::Cmpsd if format!("{code:?}").starts_with("Cmpsd_m32") => string_op::<CMPS>,
        Mnemonic::Scasb | Mnemonic::Scasw | Mnemonic::Scasd | Mnemonic::Scasq => string_op::<SCAS>,
        Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd | Mnemonic::Lodsq => string_op::<LODS>,
        Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq => string_op::<STOS>,
        Mnemonic::Insb | Mnemonic::Insw | Mnemonic::Insd => string_op::<INS>,
        Mnemonic::Outsb | Mnemonic::Outsw | Mnemonic::Outsd => string_op::<OUTS>,
        _ => return None,
    })
}
