//! MMX, SSE through SSE4.2, FXSAVE/XSAVE.

use crate::block::Handler;
use iced_x86::Code;

pub mod mmx;
pub mod sse;
pub mod xsave;

/// The handler for `code`, from whichever family implements it.
pub fn lookup(code: Code) -> Option<Handler> {
    mmx::lookup(code).or_else(|| sse::lookup(code)).or_else(|| xsave::lookup(code))
}
