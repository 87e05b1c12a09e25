//! x87 transcendentals (placeholder while written).

use crate::block::Handler;
use iced_x86::Code;

pub fn lookup(_code: Code) -> Option<Handler> {
    None
}
