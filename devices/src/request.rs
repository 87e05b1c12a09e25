//! Requests a device makes of the machine: reset, A20, exit, power-off.
//!
//! Devices never touch the CPU. The i8042's output port, port 0x92, the
//! reset control register and isa-debug-exit report what the guest asked
//! for through a [`RequestSink`]; the machine acts at the next instruction
//! boundary (and should end the CPU's run slice when a request is queued).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineRequest {
    /// Reset the whole machine (CPU reset line / chipset hard reset).
    Reset,
    /// Gate address line 20: `true` lets A20 through, `false` forces it to
    /// 0 (8086 wrap-around). The last request wins, as on chipsets that wire
    /// the i8042 and port 0x92 gates to one line.
    SetA20(bool),
    /// End the emulator process with this exit code (isa-debug-exit).
    Exit(i32),
    /// The guest entered S5 (ACPI soft off): the machine powers off and
    /// kagami ends with exit code 0.
    PowerOff,
}

/// Where a device sends its requests.
pub trait RequestSink: Send {
    fn request(&mut self, request: MachineRequest);
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRequests;

impl RequestSink for NoRequests {
    fn request(&mut self, _request: MachineRequest) {}
}

/// A shared FIFO of requests: give clones to devices, drain in the machine.
#[derive(Debug, Default, Clone)]
pub struct RequestQueue {
    queue: Arc<Mutex<Vec<MachineRequest>>>,
    /// Mirrors "queue is not empty" so the machine can poll it at every
    /// block boundary without taking the lock.
    pending: Arc<AtomicBool>,
}

impl RequestQueue {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn sink(&self) -> Box<dyn RequestSink> {
        Box::new(self.clone())
    }
    pub fn is_empty(&self) -> bool {
        !self.pending.load(Ordering::Acquire)
    }
    /// All requests since the last call, oldest first.
    pub fn take(&self) -> Vec<MachineRequest> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut q = self.queue.lock().unwrap();
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut *q)
    }
}

impl RequestSink for RequestQueue {
    fn request(&mut self, request: MachineRequest) {
        let mut q = self.queue.lock().unwrap();
        q.push(request);
        self.pending.store(true, Ordering::Release);
    }
}
