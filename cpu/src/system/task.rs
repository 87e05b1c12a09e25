//! The TSS: the I/O permission check (SDM Vol. 1, 19.5). Hardware task
//! switching joins it here.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::{Exception, Result};
use crate::mmu::MMU_SUPER_NOSMAP;
use crate::state::{flags, Mode};
use iced_x86::Code;

impl Cpu {
    /// May the current code access `size` bytes of I/O space at `port`?
    /// CPL <= IOPL allows it; otherwise (and always in V86 mode) the TSS I/O
    /// bitmap decides.
    pub fn check_io(&mut self, bus: &mut dyn Bus, port: u16, size: usize) -> Result<()> {
        match self.s.mode {
            Mode::Real => return Ok(()),
            Mode::V86 => {}
            _ => {
                let iopl = (self.s.rflags & flags::IOPL) >> 12;
                if self.s.cpl as u64 <= iopl {
                    return Ok(());
                }
            }
        }
        let tr = self.s.tr;
        let ty = tr.attr & 0xf;
        if (ty != 9 && ty != 11) || tr.limit < 103 {
            return Err(Exception::GP0);
        }
        let map = self.read_lin_mmu(bus, tr.base + 102, 2, MMU_SUPER_NOSMAP)?;
        let byte = map + (port as u64 >> 3);
        if byte + 1 > tr.limit as u64 {
            return Err(Exception::GP0);
        }
        let bits = self.read_lin_mmu(bus, tr.base + byte, 2, MMU_SUPER_NOSMAP)?;
        let mask = ((1u64 << size) - 1) << (port & 7);
        if bits & mask != 0 {
            return Err(Exception::GP0);
        }
        Ok(())
    }
}

pub fn lookup(_code: Code) -> Option<Handler> {
    None
}
