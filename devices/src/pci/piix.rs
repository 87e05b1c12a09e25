//! The PIIX south bridge functions of `-machine pc`: PIIX3 PCI-to-ISA
//! bridge (00:01.0), PIIX3 IDE (00:01.1) and the PIIX4 power management
//! function (00:01.3), as QEMU's `pc` machine pairs them.
//!
//! PIIX3 datasheet (290550) §2.2: the ISA bridge is 8086:7000, class
//! 06/01/00, with PIRQRC\[A:D\] at 0x60–0x63 (bit 7 IRQROUTEN, 1 = routing
//! disabled; bits 3:0 the ISA IRQ, with 0–2, 8 and 13 reserved), reset
//! value 0x80. The IDE function is 8086:7010, class 01/01/80, with the
//! bus-master IDE block in BAR4 (16 I/O ports) and IDETIM at 0x40/0x42.
//! PIIX4 datasheet (290562) §7.2: the PM function is 8086:7113, class
//! 06/80/00, PMBA at 0x40 (bits 15:6 the 64-port base, bit 0 hardwired 1),
//! PMREGMISC at 0x80 (bit 0 PMIOSE enables the PM I/O block), DEVACTB at
//! 0x58, SMBBA at 0x90.
//!
//! Defaults: PMBA is 0x601 and PMIOSE set, the state the firmware leaves
//! them in and the base the ACPI FADT names (`bios/src/acpi.rs`), because
//! kagami boots kernels directly with no firmware to program them. PIRQ
//! routing keeps the hardware reset value (disabled); the machine calls
//! [`Piix3Isa::route_pirqs`] with `[10, 10, 11, 11]` (what SeaBIOS
//! programs and the ACPI `_PRT` promises) when it boots without firmware.
//!
//! Left out: the ISA bridge's other registers (XBCS, TOM, MBIRQ, APICBASE,
//! DLC, the SMI block) are plain read/write bytes with no effect; the IDE
//! function has no drives behind it; the PM registers themselves, the SMBus
//! controller and SMI generation belong elsewhere (the PM registers are the
//! ACPI PM device mapped at [`Piix4Pm::pm_base`]).

use super::{BarKind, ConfigSpace, PciDevice, CONFIG_SIZE, VENDOR_INTEL};
use crate::snapshot::StateError;

pub const PIIX3_ISA_DEVICE_ID: u16 = 0x7000;
pub const PIIX3_IDE_DEVICE_ID: u16 = 0x7010;
pub const PIIX4_PM_DEVICE_ID: u16 = 0x7113;
pub const PIRQRC: usize = 0x60;
pub const PMBA: usize = 0x40;
pub const DEVACTB: usize = 0x58;
/// DEVACTB bit 25 (APMC_EN, SMI on writes to port 0xB2) in byte 3.
pub const APMC_EN_BYTE3: u8 = 1 << 1;
pub const PMREGMISC: usize = 0x80;
pub const SMBBA: usize = 0x90;

/// The ISA IRQ a PIRQ route register selects, if routing is enabled and
/// the value is not reserved. Shared with ICH9, whose PIRQx_ROUT registers
/// have the same encoding.
pub fn route_to_isa_irq(v: u8) -> Option<u8> {
    if v & 0x80 != 0 {
        return None;
    }
    match v & 0x0f {
        0..=2 | 8 | 13 => None,
        irq => Some(irq),
    }
}

pub struct Piix3Isa {
    cfg: ConfigSpace,
    changed: bool,
}

impl Default for Piix3Isa {
    fn default() -> Self {
        Self::new()
    }
}

impl Piix3Isa {
    pub fn new() -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, VENDOR_INTEL, PIIX3_ISA_DEVICE_ID, 0x00, 0x06_01_00);
        // Bus master, special cycles and I/O/memory are fixed on; only SERR# writable.
        cfg.set_u16(super::COMMAND as usize, 0x0007);
        cfg.set_wmask_u16(super::COMMAND, 0x0100);
        cfg.set_u16(super::STATUS as usize, 0x0200);
        cfg.set_byte(0x4c, 0x4d); // IORT
        cfg.set_u16(0x4e, 0x0003); // XBCS
        cfg.set_writable(0x4c, 4);
        for i in 0..4 {
            cfg.set_byte(PIRQRC + i, 0x80);
            cfg.set_wmask(PIRQRC + i, 0x8f);
        }
        cfg.set_byte(0x69, 0x02); // TOM
        cfg.set_writable(0x69, 3);
        cfg.set_byte(0x70, 0x80); // MBIRQ0/1
        cfg.set_byte(0x71, 0x80);
        cfg.set_writable(0x70, 2);
        cfg.set_writable(0x76, 4); // MBDMA, PCSC
        cfg.set_writable(0x80, 3); // APICBASE, DLC
        cfg.set_writable(0xa0, 12); // SMI control and enables
        cfg.seal_power_on();
        Piix3Isa { cfg, changed: false }
    }

    /// The ISA IRQ PIRQ `pirq` (0 = PIRQA … 3 = PIRQD) is steered to, if
    /// routing is enabled. On the PIIX3 the same ISA IRQ feeds the PIC and
    /// IOAPIC input of the same number, so this is also the GSI.
    pub fn pirq_isa_irq(&self, pirq: u8) -> Option<u8> {
        (pirq < 4)
            .then(|| route_to_isa_irq(self.cfg.byte(PIRQRC + pirq as usize)))
            .flatten()
    }

    /// The ISA IRQs (bit n = IRQ n) that PCI interrupts hold high, given
    /// the PIRQ levels from [`super::PciIntx::levels`]. The machine ORs
    /// these into the 8259 and IOAPIC inputs 0–15.
    pub fn isa_irq_levels(&self, pirq_levels: u8) -> u16 {
        (0..4)
            .filter(|&p| pirq_levels & (1 << p) != 0)
            .filter_map(|p| self.pirq_isa_irq(p))
            .fold(0, |m, irq| m | 1 << irq)
    }

    /// Program PIRQA–D as the firmware would (for booting without one).
    pub fn route_pirqs(&mut self, irqs: [u8; 4]) {
        for (i, irq) in irqs.into_iter().enumerate() {
            self.config_write((PIRQRC + i) as u16, 1, irq as u32);
        }
    }
}

impl PciDevice for Piix3Isa {
    fn name(&self) -> &'static str {
        "PIIX3 PCI-to-ISA bridge"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        let before = self.cfg.u32(PIRQRC);
        self.cfg.write(offset, size, value);
        if self.cfg.u32(PIRQRC) != before {
            self.changed = true;
        }
    }
    fn reset(&mut self) {
        self.cfg.reset();
        self.changed = true;
    }
    fn load_config(&mut self, bytes: &[u8]) {
        self.cfg.load(bytes);
        self.changed = true;
    }
    fn take_chipset_change(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

pub struct Piix3Ide {
    cfg: ConfigSpace,
}

impl Default for Piix3Ide {
    fn default() -> Self {
        Self::new()
    }
}

impl Piix3Ide {
    pub fn new() -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, VENDOR_INTEL, PIIX3_IDE_DEVICE_ID, 0x00, 0x01_01_80);
        cfg.set_u16(super::STATUS as usize, 0x0280);
        cfg.declare_bar(4, BarKind::Io, 16);
        cfg.set_writable(0x40, 5); // IDETIM primary/secondary, SIDETIM
        cfg.seal_power_on();
        Piix3Ide { cfg }
    }
}

impl PciDevice for Piix3Ide {
    fn name(&self) -> &'static str {
        "PIIX3 IDE"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
}

pub struct Piix4Pm {
    cfg: ConfigSpace,
    changed: bool,
}

impl Default for Piix4Pm {
    fn default() -> Self {
        Self::new()
    }
}

impl Piix4Pm {
    pub fn new() -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, VENDOR_INTEL, PIIX4_PM_DEVICE_ID, 0x03, 0x06_80_00);
        cfg.set_u16(super::STATUS as usize, 0x0280);
        cfg.set_interrupt_pin(1);
        cfg.set_u32(PMBA, 0x0601);
        cfg.set_wmask_u32(PMBA, 0x0000_ffc0);
        cfg.set_writable(DEVACTB, 4);
        // kagami has no SMM: DEVACTB's APMC_EN (bit 25) reads as set from
        // power-on, which firmware takes as "SMM already set up" and so
        // never raises an SMI it would wait for (QEMU does the same when
        // SMM is off; SeaBIOS src/fw/smm.c piix4_apmc_smm_setup).
        cfg.set_byte(DEVACTB + 3, APMC_EN_BYTE3);
        cfg.set_writable(0x5c, 4); // DEVRESD
        cfg.set_byte(PMREGMISC, 0x01);
        cfg.set_wmask(PMREGMISC, 0x01);
        cfg.set_u32(SMBBA, 0x0001);
        cfg.set_wmask_u32(SMBBA, 0x0000_fff0);
        cfg.set_writable(0xd2, 1); // SMBHSTCFG
        cfg.seal_power_on();
        Piix4Pm { cfg, changed: false }
    }

    /// The I/O base of the 64-port PM register block (PM1a_EVT at +0,
    /// PM1a_CNT at +4, PM_TMR at +8), or `None` while PMIOSE is clear.
    pub fn pm_base(&self) -> Option<u16> {
        (self.cfg.byte(PMREGMISC) & 1 != 0).then(|| (self.cfg.u32(PMBA) & 0xffc0) as u16)
    }

    fn watched(&self) -> (u32, u8) {
        (self.cfg.u32(PMBA), self.cfg.byte(PMREGMISC))
    }
}

impl PciDevice for Piix4Pm {
    fn name(&self) -> &'static str {
        "PIIX4 power management"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        let before = self.watched();
        self.cfg.write(offset, size, value);
        if self.watched() != before {
            self.changed = true;
        }
    }
    fn reset(&mut self) {
        self.cfg.reset();
        self.changed = true;
    }
    fn validate_config(&self, bytes: &[u8]) -> Result<(), StateError> {
        self.cfg.validate(self.name(), bytes)
    }
    fn load_config(&mut self, bytes: &[u8]) {
        self.cfg.load(bytes);
        self.changed = true;
    }
    fn take_chipset_change(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}
