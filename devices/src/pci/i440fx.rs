//! Intel 440FX PCI and memory controller (PMC), function 00:00.0 of
//! `-machine pc`: the host bridge's configuration space, the PAM registers
//! and SMRAM control.
//!
//! Intel 440FX PCIset datasheet (290549): §3.2 configuration registers;
//! vendor 8086, device 1237, revision 02, class 06/00/00; PAM0–PAM6 at
//! 0x59–0x5F (§3.2.18, decoded in [`super::pam`]); SMRAM at 0x72 (§3.2.22:
//! bit 6 D_OPEN, 5 D_CLS, 4 D_LCK, 3 G_SMRAME, 2:0 C_BASE_SEG hardwired
//! 010 = 0xA0000). Setting D_LCK clears D_OPEN and makes D_OPEN, D_LCK and
//! G_SMRAME read-only until reset.
//!
//! The bridge decodes nothing itself: the machine reads [`I440fx::pam`] and
//! [`I440fx::smram_open`] when the bus reports a chipset change and remaps
//! the BIOS area and the A/B segments.
//!
//! Left out: DRAM controller registers (DRB, DRT, DRAMC and the rest are
//! plain read/write bytes with no effect), the error reporting registers,
//! SMM itself (kagami has no SMM, so only D_OPEN's RAM visibility matters),
//! the turbo-reset and deturbo bits.

use super::pam::{self, pam_wmask, smram_validate, smram_write, PamSegment, C_BASE_SEG, PAM_SEGMENTS};
use super::{ConfigSpace, PciDevice, CONFIG_SIZE, VENDOR_INTEL};
use crate::snapshot::StateError;

pub const DEVICE_ID: u16 = 0x1237;
pub const PAM0: usize = 0x59;
pub const SMRAM: usize = 0x72;

pub struct I440fx {
    cfg: ConfigSpace,
    changed: bool,
}

impl Default for I440fx {
    fn default() -> Self {
        Self::new()
    }
}

impl I440fx {
    pub fn new() -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, VENDOR_INTEL, DEVICE_ID, 0x02, 0x06_00_00);
        // PMCCFG, DETURBO, DBC, AXC, DRAMR, DRAMC, DRAMT: scratch here.
        cfg.set_writable(0x50, 9);
        for i in 0..7 {
            cfg.set_wmask(PAM0 + i, pam_wmask(i));
        }
        // DRB0–7, FDHC, and the MTT/CLT bytes: scratch.
        cfg.set_writable(0x60, 9);
        cfg.set_byte(SMRAM, C_BASE_SEG);
        // SMRAM's writes are handled in config_write (the lock).
        cfg.seal_power_on();
        I440fx { cfg, changed: false }
    }

    /// Where reads and writes of each BIOS-area segment go.
    pub fn pam(&self) -> [PamSegment; PAM_SEGMENTS] {
        pam::segments(&self.cfg, PAM0)
    }

    /// The SMRAM control register.
    pub fn smram(&self) -> u8 {
        self.cfg.byte(SMRAM)
    }

    /// Whether 0xA0000–0xBFFFF shows SMRAM (RAM) to ordinary accesses
    /// instead of the VGA window: G_SMRAME and D_OPEN both set.
    pub fn smram_open(&self) -> bool {
        pam::smram_open(self.smram())
    }

    fn write_smram(&mut self, v: u8) {
        let new = smram_write(self.smram(), v);
        self.cfg.set_byte(SMRAM, new);
    }
}

impl PciDevice for I440fx {
    fn name(&self) -> &'static str {
        "i440FX host bridge"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        let before = (pam::regs(&self.cfg, PAM0), self.smram());
        for i in 0..size as u16 {
            let o = offset + i;
            let b = (value >> (8 * i)) as u8;
            if o as usize == SMRAM {
                self.write_smram(b);
            } else {
                self.cfg.write(o, 1, b as u32);
            }
        }
        if (pam::regs(&self.cfg, PAM0), self.smram()) != before {
            self.changed = true;
        }
    }
    fn reset(&mut self) {
        self.cfg.reset();
        self.changed = true;
    }
    fn validate_config(&self, bytes: &[u8]) -> Result<(), StateError> {
        if bytes.len() != self.cfg.size() {
            return self.cfg.validate(self.name(), bytes);
        }
        let mut probe = bytes.to_vec();
        smram_validate(self.name(), probe[SMRAM])?;
        // SMRAM bits are not in the write mask; compare the rest.
        probe[SMRAM] = C_BASE_SEG;
        self.cfg.validate(self.name(), &probe)
    }
    fn load_config(&mut self, bytes: &[u8]) {
        self.cfg.load(bytes);
        self.changed = true;
    }
    fn take_chipset_change(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}
