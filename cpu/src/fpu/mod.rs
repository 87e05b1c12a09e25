//! x87 floating point. `float80` is the 80-bit arithmetic core; `stack`
//! the register stack, tags, status word and #NM/#MF checks; the other
//! files are instruction families, gathered by `x87::lookup`.

use crate::block::Handler;
use iced_x86::Code;

pub mod arith;
pub mod compare;
pub mod control;
pub mod convert;
pub mod fixed;
pub mod float80;
pub mod stack;
pub mod transcendental;
pub mod x87;

/// The handler for `code`, from whichever family implements it.
pub fn lookup(code: Code) -> Option<Handler> {
    x87::lookup(code)
}
