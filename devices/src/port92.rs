//! System control port A (port 0x92, "fast A20 and reset"), as the PS/2
//! introduced and PC chipsets keep (e.g. PIIX4 datasheet §4.1.16, "PORT92").
//!
//! Bit 0: a 0→1 transition requests a CPU reset (fast reset); bit 1: A20
//! gate; bit 3 (password lock) and the rest are stored and read back.
//! Requests go to the machine; every write reports the A20 gate because the
//! i8042's output port drives the same line (last writer wins).
//!
//! Left out: the fixed-disk activity LED (bits 6–7) and the password lock
//! having any effect.
//!
//! Offset layout: 0 (port 0x92).

use crate::bus::PortIoDevice;
use crate::request::{MachineRequest, RequestSink};
use crate::snapshot::{Snapshot, StateError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub value: u8,
}

pub struct Port92 {
    value: u8,
    power_on: u8,
    requests: Box<dyn RequestSink>,
}

impl Port92 {
    /// `a20` is the gate's state at power-on (what the machine starts the CPU with).
    pub fn new(a20: bool, requests: Box<dyn RequestSink>) -> Self {
        Self {
            value: (a20 as u8) << 1,
            power_on: (a20 as u8) << 1,
            requests,
        }
    }

    /// Machine reset: back to the power-on value (no request: the machine
    /// resets its A20 state itself).
    pub fn reset(&mut self) {
        self.value = self.power_on;
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for Port92 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Port92").field(&self.save()).finish()
    }
}

impl PortIoDevice for Port92 {
    fn read(&mut self, offset: u16, _size: u8) -> u32 {
        if offset == 0 {
            self.value as u32
        } else {
            0xff
        }
    }

    fn write(&mut self, offset: u16, _size: u8, value: u32) {
        if offset != 0 {
            return;
        }
        let v = value as u8;
        let old = self.value;
        self.value = v;
        self.requests.request(MachineRequest::SetA20(v & 2 != 0));
        if v & 1 != 0 && old & 1 == 0 {
            self.requests.request(MachineRequest::Reset);
        }
    }
}

impl Snapshot for Port92 {
    type State = State;
    fn save(&self) -> State {
        State { value: self.value }
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        self.value = s.value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestQueue;

    #[test]
    fn a20_and_fast_reset() {
        let q = RequestQueue::new();
        let mut p = Port92::new(true, q.sink());
        assert_eq!(p.read(0, 1), 0x02);
        p.write(0, 1, 0x00);
        assert_eq!(q.take(), vec![MachineRequest::SetA20(false)]);
        p.write(0, 1, 0x03);
        assert_eq!(q.take(), vec![MachineRequest::SetA20(true), MachineRequest::Reset]);
        p.write(0, 1, 0x03);
        assert_eq!(q.take(), vec![MachineRequest::SetA20(true)], "bit 0 already set: no new reset");
        assert_eq!(p.read(0, 1), 0x03);
        let s = p.save();
        let mut p2 = Port92::new(false, q.sink());
        p2.restore(&serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap())
            .unwrap();
        assert_eq!(p2.read(0, 1), 0x03);
    }
}
