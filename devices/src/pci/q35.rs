//! Intel Q35 (3 Series) memory controller hub, function 00:00.0 of
//! `-machine q35`: host bridge configuration space, PCIEXBAR (where the
//! PCIe ECAM window sits), PAM and SMRAM.
//!
//! Intel 3 Series Express Chipset Family datasheet (316966) §5.1: vendor
//! 8086, device 29C0, class 06/00/00. PCIEXBAR at 0x60 (§5.1.13, 64 bits):
//! bit 0 PCIEXBAREN, bits 2:1 LENGTH (00 = 256 MiB / 256 buses, 01 = 128
//! MiB, 10 = 64 MiB, 11 reserved), base in bits 35:28 (35:27, 35:26 for the
//! smaller sizes). PAM0–PAM6 at 0x90–0x96 (§5.1.15–5.1.21, decoded in
//! [`super::pam`]), SMRAM at 0x9D and ESMRAMC at 0x9E (§5.1.22–5.1.23).
//!
//! PCIEXBAR resets to 0 (disabled). Without firmware, the machine calls
//! [`Q35Mch::enable_ecam`] with the base its ACPI MCFG names (0xB0000000),
//! as SeaBIOS would. The ECAM accesses themselves go to
//! [`super::PciBus::ecam_read`]; this function only says where the window is.
//!
//! Left out: DRAM configuration (TOLUD, TOUUD, REMAP and the rest read 0),
//! TSEG (ESMRAMC is stored, not decoded), the DMI/EP/MCH BARs, PCIe root
//! ports, SMM.

use super::pam::{self, pam_wmask, smram_validate, smram_write, PamSegment, C_BASE_SEG, PAM_SEGMENTS};
use super::{ConfigSpace, PciDevice, CONFIG_SIZE, VENDOR_INTEL};
use crate::snapshot::StateError;

pub const DEVICE_ID: u16 = 0x29c0;
pub const PCIEXBAR: usize = 0x60;
pub const PAM0: usize = 0x90;
pub const SMRAM: usize = 0x9d;
pub const ESMRAMC: usize = 0x9e;
/// The ECAM base kagami's ACPI MCFG describes.
pub const ECAM_BASE: u64 = 0xb000_0000;

pub struct Q35Mch {
    cfg: ConfigSpace,
    changed: bool,
}

impl Default for Q35Mch {
    fn default() -> Self {
        Self::new()
    }
}

impl Q35Mch {
    pub fn new() -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, VENDOR_INTEL, DEVICE_ID, 0x02, 0x06_00_00);
        cfg.set_u16(super::COMMAND as usize, 0x0006);
        cfg.set_u16(super::STATUS as usize, 0x0090);
        cfg.set_wmask_u32(PCIEXBAR, 0xfc00_0007);
        cfg.set_wmask_u32(PCIEXBAR + 4, 0x0000_000f);
        for i in 0..7 {
            cfg.set_wmask(PAM0 + i, pam_wmask(i));
        }
        cfg.set_byte(SMRAM, C_BASE_SEG);
        cfg.set_byte(ESMRAMC, 0x38);
        cfg.set_wmask(ESMRAMC, 0x87);
        cfg.seal_power_on();
        Q35Mch { cfg, changed: false }
    }

    fn pcie_xbar(&self) -> u64 {
        self.cfg.u32(PCIEXBAR) as u64 | ((self.cfg.u32(PCIEXBAR + 4) as u64) << 32)
    }

    /// The ECAM window `(base, size)` while PCIEXBAREN is set and LENGTH
    /// is valid. Each MiB of it is one bus; offset 0 is bus 0.
    pub fn ecam_window(&self) -> Option<(u64, u64)> {
        let x = self.pcie_xbar();
        if x & 1 == 0 {
            return None;
        }
        let size: u64 = match (x >> 1) & 3 {
            0 => 256 << 20,
            1 => 128 << 20,
            2 => 64 << 20,
            _ => return None,
        };
        Some((x & 0xf_ffff_ffff & !(size - 1), size))
    }

    /// Program PCIEXBAR for a 256-bus window at `base` and enable it.
    pub fn enable_ecam(&mut self, base: u64) {
        assert!(base.is_multiple_of(256 << 20) && base < 1 << 36, "ECAM base {base:#x}");
        self.config_write(PCIEXBAR as u16 + 4, 4, (base >> 32) as u32);
        self.config_write(PCIEXBAR as u16, 4, base as u32 | 1);
    }

    /// Where reads and writes of each BIOS-area segment go.
    pub fn pam(&self) -> [PamSegment; PAM_SEGMENTS] {
        pam::segments(&self.cfg, PAM0)
    }

    pub fn smram(&self) -> u8 {
        self.cfg.byte(SMRAM)
    }

    /// Whether 0xA0000–0xBFFFF shows RAM instead of the VGA window.
    pub fn smram_open(&self) -> bool {
        pam::smram_open(self.smram())
    }

    fn watched(&self) -> (u64, [u8; 7], u8) {
        (self.pcie_xbar(), pam::regs(&self.cfg, PAM0), self.smram())
    }
}

impl PciDevice for Q35Mch {
    fn name(&self) -> &'static str {
        "Q35 MCH host bridge"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        let before = self.watched();
        for i in 0..size as u16 {
            let o = offset + i;
            let b = (value >> (8 * i)) as u8;
            if o as usize == SMRAM {
                let v = smram_write(self.smram(), b);
                self.cfg.set_byte(SMRAM, v);
            } else {
                self.cfg.write(o, 1, b as u32);
            }
        }
        if self.watched() != before {
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
        smram_validate(self.name(), bytes[SMRAM])?;
        let mut probe = bytes.to_vec();
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
