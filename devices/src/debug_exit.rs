//! QEMU's `isa-debug-exit` device: a guest-controlled exit for test
//! harnesses. A write of value V asks the machine to end the emulator with
//! exit code `(V << 1) | 1` (so a guest can never produce 0, which a harness
//! would mistake for the emulator's own success).
//!
//! The machine chooses the I/O base and size (QEMU's `iobase`/`iosize`,
//! commonly 0x501/2 or 0xF4/4); the device accepts a write at any offset
//! inside `iosize` and takes the value at the access size. Reads return all
//! ones.

use crate::bus::PortIoDevice;
use crate::request::{MachineRequest, RequestSink};
use crate::snapshot::{Snapshot, StateError};
use serde::{Deserialize, Serialize};

/// Stateless; the unit struct keeps the snapshot tree uniform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {}

pub struct IsaDebugExit {
    iosize: u16,
    requests: Box<dyn RequestSink>,
}

impl IsaDebugExit {
    pub fn new(iosize: u16, requests: Box<dyn RequestSink>) -> Self {
        Self { iosize, requests }
    }

    /// The exit code a write of `value` requests.
    pub fn exit_code(value: u32) -> i32 {
        ((value << 1) | 1) as i32
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for IsaDebugExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IsaDebugExit").field(&self.save()).finish()
    }
}

impl PortIoDevice for IsaDebugExit {
    fn read(&mut self, _offset: u16, size: u8) -> u32 {
        if size >= 4 {
            u32::MAX
        } else {
            (1u32 << (8 * size as u32)) - 1
        }
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        if offset >= self.iosize {
            return;
        }
        let v = if size >= 4 {
            value
        } else {
            value & ((1u32 << (8 * size as u32)) - 1)
        };
        self.requests.request(MachineRequest::Exit(Self::exit_code(v)));
    }
}

impl Snapshot for IsaDebugExit {
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
    use crate::request::RequestQueue;

    #[test]
    fn write_requests_exit_with_shifted_code() {
        let q = RequestQueue::new();
        let mut d = IsaDebugExit::new(4, q.sink());
        d.write(0, 1, 0x10);
        d.write(0, 1, 0x1ff); // byte access: 0xff
        d.write(2, 2, 0);
        d.write(4, 1, 0x33); // outside iosize
        assert_eq!(
            q.take(),
            vec![MachineRequest::Exit(0x21), MachineRequest::Exit(0x1ff), MachineRequest::Exit(1)]
        );
        assert_eq!(d.read(0, 2), 0xffff);
    }
}
