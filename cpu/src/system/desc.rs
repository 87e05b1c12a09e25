//! Segment-register loads and descriptor tables (SDM Vol. 3A chapters 3 and 5).

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::state::Mode;
use iced_x86::Code;

impl Cpu {
    /// Load a segment register other than CS (MOV Sreg, POP Sreg, LDS…)
    /// with the rules of the current mode. The caller handles the MOV SS
    /// interrupt shadow.
    pub fn load_seg(&mut self, bus: &mut dyn Bus, seg: usize, sel: u16) -> Result<()> {
        match self.s.mode {
            Mode::Real | Mode::V86 => {
                self.load_real_seg(seg, sel);
                Ok(())
            }
            _ => self.load_seg_protected(bus, seg, sel),
        }
    }

    /// Protected/long mode: selector checks, descriptor fetch, accessed bit.
    fn load_seg_protected(&mut self, _bus: &mut dyn Bus, _seg: usize, _sel: u16) -> Result<()> {
        tracing::error!(target: "kagami::cpu", "protected-mode segment loads are not implemented yet");
        Err(crate::exception::Exception::GP0)
    }
}

pub fn lookup(_code: Code) -> Option<Handler> {
    None
}
