//! System instructions and protected-mode machinery.

use crate::block::Handler;
use iced_x86::Code;

pub mod cpuid;
pub mod ctrl;
pub mod desc;
pub mod far;
pub mod idt;
pub mod mca;
pub mod msr;
pub mod protfar;
pub mod task;

/// The handler for `code`, from whichever family implements it.
pub fn lookup(code: Code) -> Option<Handler> {
    far::lookup(code)
        .or_else(|| idt::lookup(code))
        .or_else(|| desc::lookup(code))
        .or_else(|| ctrl::lookup(code))
        .or_else(|| msr::lookup(code))
        .or_else(|| cpuid::lookup(code))
        .or_else(|| task::lookup(code))
}
#[cfg(test)]
mod tests;
