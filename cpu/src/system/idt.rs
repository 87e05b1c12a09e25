//! Protected-mode and long-mode event delivery through the IDT.

use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::interrupt::Source;
use iced_x86::Code;

impl Cpu {
    /// Deliver through the IDT. Not written yet: the machine resets, loudly.
    pub(crate) fn deliver_protected(&mut self, _bus: &mut dyn Bus, vector: u8, _error: Option<u32>, _src: Source) -> Result<()> {
        tracing::error!(target: "kagami::cpu", "protected-mode delivery of vector {vector} is not implemented; shutting down");
        self.request_shutdown();
        Ok(())
    }
}

pub fn lookup(_code: Code) -> Option<Handler> {
    None
}
