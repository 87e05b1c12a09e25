//! x87 floating point.

use crate::block::Handler;
use iced_x86::Code;

pub mod x87;

/// The handler for `code`, from whichever family implements it.
pub fn lookup(code: Code) -> Option<Handler> {
    x87::lookup(code)
}
