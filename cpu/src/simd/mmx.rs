//! MMX state management: EMMS. (The MMX data instructions share their
//! implementations with SSE2 in `sse_int`, `sse_move` and `sse_shuffle`,
//! operating on the low 8 bytes; `enter` in `mod.rs` performs the x87→MMX
//! transition they all make.)

use super::check_mmx;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, Mnemonic};

/// EMMS: mark every x87 register empty (tag word all ones). TOP is left
/// alone (SDM Vol. 2, EMMS).
fn emms(cpu: &mut Cpu, _: &mut dyn Bus, _: &Instruction) -> Result<()> {
    check_mmx(cpu)?;
    cpu.s.fpu.ftw = 0xffff;
    // EMMS also resets TOP to 0 on the reference host (AMD), like the
    // other MMX instructions' x87 state transition.
    cpu.s.fpu.set_top(0);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    match code.mnemonic() {
        Mnemonic::Emms => Some(emms),
        _ => None,
    }
}
