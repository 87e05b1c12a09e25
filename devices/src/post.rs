//! POST diagnostic port (port 0x80): firmware writes progress codes here;
//! on real boards they show on a debug card. Writes are also the
//! traditional "I/O delay" (`out 0x80, al`).
//!
//! Keeps the last code and a count of writes, and traces each code at
//! `trace` level. Reads return the last code written, as LPC chipsets that
//! latch port 0x80 do.
//!
//! Offset layout: 0 (port 0x80).

use crate::bus::PortIoDevice;
use crate::snapshot::{Snapshot, StateError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub last: u8,
    pub writes: u64,
}

#[derive(Debug, Default)]
pub struct PostCode {
    s: State,
}

impl PostCode {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn last(&self) -> u8 {
        self.s.last
    }
    pub fn writes(&self) -> u64 {
        self.s.writes
    }
}

impl PortIoDevice for PostCode {
    fn read(&mut self, offset: u16, _size: u8) -> u32 {
        if offset == 0 {
            self.s.last as u32
        } else {
            0xff
        }
    }
    fn write(&mut self, offset: u16, _size: u8, value: u32) {
        if offset == 0 {
            self.s.last = value as u8;
            self.s.writes += 1;
            tracing::trace!(code = value as u8, "POST code");
        }
    }
}

impl Snapshot for PostCode {
    type State = State;
    fn save(&self) -> State {
        self.s.clone()
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        self.s = s.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_last_code() {
        let mut p = PostCode::new();
        p.write(0, 1, 0x12);
        p.write(0, 1, 0x34);
        assert_eq!((p.last(), p.writes(), p.read(0, 1)), (0x34, 2, 0x34));
    }
}
