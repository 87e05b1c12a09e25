//! Guest memory as a DMA-capable device sees it.
//!
//! Devices must not depend on `kagami-cpu`, where guest RAM lives, so a
//! device that reads or writes guest memory by itself (fw_cfg DMA, disk
//! controllers, virtio queues) holds a `Box<dyn DmaMemory>` the machine
//! provides, the same way it holds its interrupt lines. Addresses are guest
//! physical; the machine's implementation decides what a DMA access to MMIO
//! or to a hole does (normally: fails).
//!
//! DMA bypasses the CPU's paging and A20 gate, as bus masters do on the PC.
//! An implementation must also tell the CPU that written pages may hold
//! decoded code (the CPU's dirty-page list), which is why a device never
//! gets a raw slice.

use std::fmt;
use std::sync::{Arc, Mutex};

/// A DMA access that touched something other than RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaError {
    pub addr: u64,
    pub len: usize,
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DMA of {} bytes at {:#x} leaves guest RAM", self.len, self.addr)
    }
}

impl std::error::Error for DmaError {}

/// Guest-physical memory for bus-master devices.
pub trait DmaMemory: Send {
    /// Fill `buf` from guest-physical `addr`. On error nothing useful is in `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Copy `data` to guest-physical `addr`; all or nothing.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError>;
}

/// A flat RAM from address 0, for tests. Cloning shares it.
#[derive(Debug, Clone)]
pub struct VecDma {
    ram: Arc<Mutex<Vec<u8>>>,
}

impl VecDma {
    pub fn new(size: usize) -> Self {
        Self {
            ram: Arc::new(Mutex::new(vec![0; size])),
        }
    }
    pub fn boxed(&self) -> Box<dyn DmaMemory> {
        Box::new(self.clone())
    }
    fn range(&self, addr: u64, len: usize, size: usize) -> Result<std::ops::Range<usize>, DmaError> {
        let err = DmaError { addr, len };
        let start = usize::try_from(addr).map_err(|_| err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > size {
            return Err(err);
        }
        Ok(start..end)
    }
}

impl DmaMemory for VecDma {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let ram = self.ram.lock().unwrap();
        let r = self.range(addr, buf.len(), ram.len())?;
        buf.copy_from_slice(&ram[r]);
        Ok(())
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let mut ram = self.ram.lock().unwrap();
        let r = self.range(addr, data.len(), ram.len())?;
        ram[r].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_dma_bounds() {
        let m = VecDma::new(16);
        let d = m.boxed();
        d.write(12, &[1, 2, 3, 4]).unwrap();
        let mut b = [0; 2];
        d.read(13, &mut b).unwrap();
        assert_eq!(b, [2, 3]);
        assert_eq!(d.write(14, &[0; 3]), Err(DmaError { addr: 14, len: 3 }));
        assert!(d.read(u64::MAX, &mut b).is_err());
    }
}
