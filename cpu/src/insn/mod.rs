//! Integer instructions: one file per family (Bochs-style).

use crate::block::Handler;
use iced_x86::Code;

pub mod alu;
pub mod bcd;
pub mod bits;
pub mod branch;
pub mod fast;
pub mod flagops;
pub mod io;
pub mod misc;
pub mod mov;
pub mod muldiv;
pub mod shift;
pub mod stack;
pub mod string;

/// The handler for `code`, from whichever family implements it.
pub fn lookup(code: Code) -> Option<Handler> {
    alu::lookup(code)
        .or_else(|| shift::lookup(code))
        .or_else(|| muldiv::lookup(code))
        .or_else(|| bcd::lookup(code))
        .or_else(|| bits::lookup(code))
        .or_else(|| mov::lookup(code))
        .or_else(|| stack::lookup(code))
        .or_else(|| branch::lookup(code))
        .or_else(|| string::lookup(code))
        .or_else(|| flagops::lookup(code))
        .or_else(|| io::lookup(code))
        .or_else(|| misc::lookup(code))
}
