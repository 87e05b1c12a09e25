//! The x87 instruction families, in one lookup.

use crate::block::Handler;
use iced_x86::Code;

pub fn lookup(code: Code) -> Option<Handler> {
    super::arith::lookup(code)
        .or_else(|| super::convert::lookup(code))
        .or_else(|| super::compare::lookup(code))
        .or_else(|| super::control::lookup(code))
        .or_else(|| super::transcendental::lookup(code))
}
