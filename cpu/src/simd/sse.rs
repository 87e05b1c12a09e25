//! SSE housekeeping with no data operands: the fences, PREFETCHh and
//! CLFLUSH-free hints that only need their availability checks.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, Mnemonic};

/// PREFETCHh / fences: no architectural effect beyond the address being
/// computed (prefetches never fault).
fn nop(_: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    Some(match code.mnemonic() {
        Mnemonic::Prefetcht0 | Mnemonic::Prefetcht1 | Mnemonic::Prefetcht2 | Mnemonic::Prefetchnta => nop,
        Mnemonic::Sfence | Mnemonic::Lfence | Mnemonic::Mfence => nop,
        _ => return None,
    })
}
