//! Far transfers outside real mode: through code segments, call gates, task
//! gates and TSS descriptors, with privilege changes (SDM Vol. 3A 5.8, 7.3).
//! Real-mode versions are in `system/far.rs`, which calls these for every
//! other mode.

use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};

impl Cpu {
    /// JMP ptr16:16/32 or JMP m16:16/32/64 outside real mode.
    pub(crate) fn far_jump_protected(&mut self, _bus: &mut dyn Bus, _sel: u16, _off: u64, _op_size: usize) -> Result<()> {
        tracing::error!(target: "kagami::cpu", "protected-mode far JMP is not implemented yet");
        Err(Exception::GP0)
    }

    /// CALL far outside real mode (pushes CS:IP of the next instruction, which
    /// is `self.s.rip` on entry).
    pub(crate) fn far_call_protected(&mut self, _bus: &mut dyn Bus, _sel: u16, _off: u64, _op_size: usize) -> Result<()> {
        tracing::error!(target: "kagami::cpu", "protected-mode far CALL is not implemented yet");
        Err(Exception::GP0)
    }

    /// RETF [imm16] outside real mode.
    pub(crate) fn far_ret_protected(&mut self, _bus: &mut dyn Bus, _op_size: usize, _release: u16) -> Result<()> {
        tracing::error!(target: "kagami::cpu", "protected-mode RETF is not implemented yet");
        Err(Exception::GP0)
    }

    /// IRET/IRETD/IRETQ outside real mode (V86, protected, long, task return).
    pub(crate) fn iret_protected(&mut self, _bus: &mut dyn Bus, _op_size: usize) -> Result<()> {
        tracing::error!(target: "kagami::cpu", "protected-mode IRET is not implemented yet");
        Err(Exception::GP0)
    }
}
