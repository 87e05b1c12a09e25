//! Reset control register (port 0xCF9, byte access), as in the PIIX4
//! datasheet §4.1.17 "RC — Reset Control Register" and later ICH parts.
//!
//! Bit 1 SYS_RST (hard vs. soft reset) and bit 3 FULL_RST are stored and read
//! back; writing bit 2 (RST_CPU) set requests a reset from the machine (the
//! machine does the same full reset for every type).
//!
//! Port 0xCF9 sits inside the PCI configuration address dword at 0xCF8; the
//! machine must send only byte accesses to 0xCF9 here.
//!
//! Offset layout: 0 (port 0xCF9).

use crate::bus::PortIoDevice;
use crate::request::{MachineRequest, RequestSink};
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub value: u8,
}

pub struct ResetControl {
    value: u8,
    requests: Box<dyn RequestSink>,
}

impl ResetControl {
    pub fn new(requests: Box<dyn RequestSink>) -> Self {
        Self { value: 0, requests }
    }

    pub fn reset(&mut self) {
        self.value = 0;
    }
}

/// Prints the snapshot state (wiring and sinks are not shown).
impl std::fmt::Debug for ResetControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ResetControl").field(&self.save()).finish()
    }
}

impl PortIoDevice for ResetControl {
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
        self.value = v & 0x0a;
        if v & 0x04 != 0 {
            self.requests.request(MachineRequest::Reset);
        }
    }
}

impl Snapshot for ResetControl {
    type State = State;
    fn save(&self) -> State {
        State { value: self.value }
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        check("reset-control", s.value & !0x0a == 0, || {
            format!("value {:#x} has bits other than SYS_RST/FULL_RST", s.value)
        })?;
        self.value = s.value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestQueue;

    #[test]
    fn rst_cpu_requests_reset() {
        let q = RequestQueue::new();
        let mut r = ResetControl::new(q.sink());
        r.write(0, 1, 0x02);
        assert!(q.is_empty());
        assert_eq!(r.read(0, 1), 0x02);
        r.write(0, 1, 0x06);
        assert_eq!(q.take(), vec![MachineRequest::Reset]);
        assert_eq!(r.read(0, 1), 0x02, "RST_CPU does not read back");
        assert!(r.restore(&State { value: 0x04 }).is_err());
        r.restore(&State { value: 0x0a }).unwrap();
        assert_eq!(r.read(0, 1), 0x0a);
    }
}
