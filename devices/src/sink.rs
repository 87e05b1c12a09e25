//! Byte streams leaving the guest (serial transmit, debugcon).
//!
//! A device writes to a `Box<dyn Write + Send>` the machine provides (stdout,
//! a file, a socket). Write errors are counted by the device and otherwise
//! ignored: a full pipe must not stop the guest.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// The sink type devices hold.
pub type ByteSink = Box<dyn Write + Send>;

/// An in-memory sink whose contents can be read back (tests, the machine's
/// boot-log capture). Cloning shares the buffer.
#[derive(Debug, Default, Clone)]
pub struct SharedBuffer {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl SharedBuffer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn sink(&self) -> ByteSink {
        Box::new(self.clone())
    }
    pub fn contents(&self) -> Vec<u8> {
        self.buf.lock().unwrap().clone()
    }
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap())
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
