//! QEMU/Bochs debug console (`isa-debugcon`, port 0xE9 by default): every
//! byte written goes to the machine's sink (firmware and kernel debug
//! output). Reads return the readback value (0xE9 by default, as QEMU), so a
//! guest can detect the port.
//!
//! A write of any size sends its low byte once, as QEMU does.
//!
//! Offset layout: 0 (port 0xE9).

use crate::bus::PortIoDevice;
use crate::sink::ByteSink;
use crate::snapshot::{Snapshot, StateError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {}

pub struct IsaDebugcon {
    readback: u8,
    out: ByteSink,
    sink_errors: u64,
}

impl IsaDebugcon {
    pub fn new(out: ByteSink) -> Self {
        Self::with_readback(out, 0xe9)
    }
    pub fn with_readback(out: ByteSink, readback: u8) -> Self {
        Self {
            readback,
            out,
            sink_errors: 0,
        }
    }
    pub fn sink_errors(&self) -> u64 {
        self.sink_errors
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for IsaDebugcon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IsaDebugcon").field(&self.save()).finish()
    }
}

impl PortIoDevice for IsaDebugcon {
    fn read(&mut self, offset: u16, _size: u8) -> u32 {
        if offset == 0 {
            self.readback as u32
        } else {
            0xff
        }
    }
    fn write(&mut self, offset: u16, _size: u8, value: u32) {
        if offset == 0 && self.out.write_all(&[value as u8]).is_err() {
            self.sink_errors += 1;
        }
    }
}

impl Snapshot for IsaDebugcon {
    type State = State;
    fn save(&self) -> State {
        State {}
    }
    fn restore(&mut self, _s: &State) -> Result<(), StateError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SharedBuffer;

    #[test]
    fn bytes_reach_the_sink_and_reads_identify() {
        let buf = SharedBuffer::new();
        let mut d = IsaDebugcon::new(buf.sink());
        for b in b"ok\n" {
            d.write(0, 1, *b as u32);
        }
        d.write(0, 2, 0x4142);
        assert_eq!(buf.contents(), b"ok\nB");
        assert_eq!(d.read(0, 1), 0xe9);
    }
}
