//! Message Signalled Interrupts: the MSI capability in a function's
//! configuration space, and the messages it sends.
//!
//! PCI Local Bus Specification 3.0 §6.8.1 (capability layout: Message
//! Control at +2, Message Address at +4, Message Upper Address at +8 when
//! 64-bit capable, Message Data after them) and Intel SDM Vol. 3A §11.11
//! (what the x86 platform makes of a message: address 0xFEEx_xxxx with the
//! destination in bits 19:12 and the destination mode in bit 2; data with
//! the vector in bits 7:0, the delivery mode in 10:8 and the trigger mode in
//! bit 15).
//!
//! An MSI is a memory write by the function. kagami does not send it through
//! the DMA path: the function hands an [`MsiMessage`] to its [`MsiSender`]
//! (the machine's [`MsiQueue`]), and the machine decodes it
//! ([`MsiMessage::decode`]) into the same [`IoapicDelivery`] the IOAPIC
//! produces and delivers it to the local APIC on the same path, at the
//! same point (the next interrupt sync after the device access).
//!
//! Left out: multiple messages (Multiple Message Capable is 0: one vector),
//! per-vector masking, MSI-X, and messages to addresses outside the
//! interrupt window (a real function would write memory there; kagami
//! drops them).

use super::ConfigSpace;
use crate::ioapic::{DeliveryMode, IoapicDelivery};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Capability ID of MSI (§6.7, Appendix H).
pub const CAP_ID_MSI: u8 = 0x05;

/// Message Control bits (§6.8.1.3).
pub const MSI_CTRL_ENABLE: u16 = 1 << 0;
pub const MSI_CTRL_64BIT: u16 = 1 << 7;
/// Multiple Message Enable, bits 6:4: software may write it.
const MSI_CTRL_MME: u16 = 0x7 << 4;

/// One message: the address and the data the function writes (32 bits; the
/// upper 16 are zero for MSI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

impl MsiMessage {
    /// The interrupt this message asks for on an x86 platform (SDM Vol. 3A
    /// §11.11.1–2), or `None` when the address is not in the 0xFEEx_xxxx
    /// interrupt window or the delivery mode is reserved (3 and 6).
    pub fn decode(&self) -> Option<IoapicDelivery> {
        if self.address >> 20 != 0xfee {
            return None;
        }
        let mode = match (self.data >> 8) & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            _ => return None,
        };
        Some(IoapicDelivery {
            vector: self.data as u8,
            mode,
            logical: self.address & (1 << 2) != 0,
            dest: (self.address >> 12) as u8,
            // Trigger mode (bit 15) only means something for fixed and
            // lowest-priority messages, as for the IOAPIC's entries.
            level_triggered: self.data & (1 << 15) != 0 && matches!(mode, DeliveryMode::Fixed | DeliveryMode::LowestPriority),
        })
    }
}

/// Where a function sends its messages. The machine's end is an [`MsiQueue`].
pub trait MsiSender: Send {
    fn send(&mut self, msg: MsiMessage);
}

/// Messages sent since the machine last drained them. Cloning shares the
/// queue; [`MsiQueue::sender`] hands a device its end.
#[derive(Debug, Default, Clone)]
pub struct MsiQueue {
    queue: Arc<Mutex<Vec<MsiMessage>>>,
    /// Mirrors "queue is not empty", so the machine can poll it after every
    /// device access without the lock.
    pending: Arc<AtomicBool>,
}

impl MsiQueue {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn sender(&self) -> Box<dyn MsiSender> {
        Box::new(self.clone())
    }
    pub fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }
    /// Every message since the last call, oldest first.
    pub fn take(&self) -> Vec<MsiMessage> {
        if !self.has_pending() {
            return Vec::new();
        }
        let mut q = self.queue.lock().unwrap();
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut *q)
    }
}

impl MsiSender for MsiQueue {
    fn send(&mut self, msg: MsiMessage) {
        self.queue.lock().unwrap().push(msg);
        self.pending.store(true, Ordering::Release);
    }
}

/// An MSI capability placed in a [`ConfigSpace`]: where it is and its
/// shape. The registers themselves live in the configuration space bytes
/// (so the PCI bus's snapshot of the space covers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiCapability {
    offset: u8,
    is_64bit: bool,
}

impl MsiCapability {
    /// Append an MSI capability with one message at `offset` (§6.8.1):
    /// Message Control's enable and Multiple Message Enable, the address
    /// (dword aligned) and the 16-bit data are writable.
    pub fn add(cfg: &mut ConfigSpace, offset: u8, is_64bit: bool) -> MsiCapability {
        let len = if is_64bit { 14 } else { 10 };
        let o = cfg.add_capability(CAP_ID_MSI, offset, len) as usize;
        cfg.set_u16(o + 2, if is_64bit { MSI_CTRL_64BIT } else { 0 });
        cfg.set_wmask_u16(o as u16 + 2, MSI_CTRL_ENABLE | MSI_CTRL_MME);
        cfg.set_wmask_u32(o + 4, 0xffff_fffc);
        let data = if is_64bit {
            cfg.set_wmask_u32(o + 8, 0xffff_ffff);
            o + 12
        } else {
            o + 8
        };
        cfg.set_wmask_u16(data as u16, 0xffff);
        MsiCapability { offset, is_64bit }
    }

    pub fn offset(&self) -> u8 {
        self.offset
    }

    /// MSI Enable (§6.8.1.3): while set the function sends messages and
    /// must not assert INTx.
    pub fn enabled(&self, cfg: &ConfigSpace) -> bool {
        cfg.u16(self.offset as usize + 2) & MSI_CTRL_ENABLE != 0
    }

    /// The message software programmed.
    pub fn message(&self, cfg: &ConfigSpace) -> MsiMessage {
        let o = self.offset as usize;
        let (hi, data) = if self.is_64bit {
            (cfg.u32(o + 8) as u64, cfg.u16(o + 12))
        } else {
            (0, cfg.u16(o + 8))
        };
        MsiMessage {
            address: hi << 32 | cfg.u32(o + 4) as u64,
            data: data as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::{CAPABILITIES, CONFIG_SIZE, STATUS};

    #[test]
    fn capability_registers_and_masks() {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, 0x8086, 0x1234, 0, 0);
        let msi = MsiCapability::add(&mut cfg, 0x80, true);
        assert_eq!(cfg.byte(CAPABILITIES as usize), 0x80);
        assert_ne!(cfg.u16(STATUS as usize) & 0x10, 0, "capability list bit");
        assert_eq!(cfg.read(0x80, 4), 0x0080_0005, "ID 5, end of list, 64-bit capable, disabled");
        // Read-only bits (64-bit flag, MMC, per-vector masking) stay.
        cfg.write(0x82, 2, 0xffff);
        assert_eq!(cfg.read(0x82, 2), 0x00f1);
        cfg.write(0x82, 2, 0x0001);
        assert!(msi.enabled(&cfg));
        cfg.write(0x84, 4, 0xfee0_3007);
        cfg.write(0x88, 4, 0);
        cfg.write(0x8c, 4, 0xffff_4041);
        assert_eq!(
            msi.message(&cfg),
            MsiMessage {
                address: 0xfee0_3004,
                data: 0x4041
            }
        );
        let m32 = {
            let mut c = ConfigSpace::new(CONFIG_SIZE, 0x8086, 0x1234, 0, 0);
            let m = MsiCapability::add(&mut c, 0x50, false);
            c.write(0x54, 4, 0xfee0_0000);
            c.write(0x58, 2, 0x31);
            m.message(&c)
        };
        assert_eq!(m32.data, 0x31);
    }

    #[test]
    fn messages_decode_as_the_sdm_says() {
        let d = MsiMessage {
            address: 0xfee0_1000,
            data: 0x0031,
        }
        .decode()
        .unwrap();
        assert_eq!(
            (d.vector, d.mode, d.logical, d.dest, d.level_triggered),
            (0x31, DeliveryMode::Fixed, false, 1, false)
        );
        let d = MsiMessage {
            address: 0xfeef_f00c,
            data: 0xc1_40,
        }
        .decode()
        .unwrap();
        assert_eq!(
            (d.vector, d.mode, d.logical, d.dest, d.level_triggered),
            (0x40, DeliveryMode::LowestPriority, true, 0xff, true)
        );
        assert_eq!(
            MsiMessage {
                address: 0xfee0_0000,
                data: 0x400
            }
            .decode()
            .unwrap()
            .mode,
            DeliveryMode::Nmi
        );
        assert!(
            MsiMessage {
                address: 0x1000,
                data: 0x31
            }
            .decode()
            .is_none(),
            "not the interrupt window"
        );
        assert!(
            MsiMessage {
                address: 0xfee0_0000,
                data: 0x331
            }
            .decode()
            .is_none(),
            "reserved mode"
        );
    }

    #[test]
    fn queue_drains_in_order() {
        let q = MsiQueue::new();
        let mut s = q.sender();
        assert!(!q.has_pending());
        s.send(MsiMessage {
            address: 0xfee0_0000,
            data: 1,
        });
        s.send(MsiMessage {
            address: 0xfee0_0000,
            data: 2,
        });
        assert!(q.has_pending());
        assert_eq!(q.take().iter().map(|m| m.data).collect::<Vec<_>>(), [1, 2]);
        assert!(!q.has_pending() && q.take().is_empty());
    }
}
