//! Intel ICH9 LPC interface bridge, function 00:1f.0 of `-machine q35`:
//! the ACPI PM base, SCI routing, the eight PIRQ routers and RCBA.
//!
//! Intel I/O Controller Hub 9 datasheet (316972) §13.1: vendor 8086,
//! device 2918, class 06/01/00. PMBASE at 0x40 (bits 15:7 the 128-port
//! base, bit 0 hardwired 1), ACPI_CNTL at 0x44 (bit 7 ACPI_EN, bits 2:0
//! SCI_IRQ_SEL), PIRQA–D_ROUT at 0x60–0x63 and PIRQE–H_ROUT at 0x68–0x6B
//! (bit 7 IRQEN, 1 = not routed to the 8259; bits 3:0 the ISA IRQ, same
//! encoding as the PIIX3), RCBA at 0xF0 (bits 31:14 base, bit 0 enable).
//!
//! In APIC mode the ICH9 wires PIRQA–H to IOAPIC inputs 16–23 directly
//! (§5.9.2), whatever the route registers say: [`Ich9Lpc::pirq_gsi`].
//!
//! Defaults: PMBASE 0x601 and ACPI_EN set (SCI on IRQ 9), the state the
//! firmware leaves them in and what the FADT names, because kagami boots
//! kernels without firmware. PIRQ routes keep their reset value 0x80.
//!
//! Left out: GPIO, the root complex register block's contents (RCBA is only
//! stored), LPC decode ranges (GEN1–4_DEC are plain registers; every ISA
//! port is decoded regardless), SMI, the other ICH9 functions (SATA, SMBus).

use super::piix::route_to_isa_irq;
use super::{ConfigSpace, PciDevice, CONFIG_SIZE, VENDOR_INTEL};

pub const DEVICE_ID: u16 = 0x2918;
pub const PMBASE: usize = 0x40;
pub const ACPI_CNTL: usize = 0x44;
pub const PIRQA_ROUT: usize = 0x60;
pub const PIRQE_ROUT: usize = 0x68;
pub const RCBA: usize = 0xf0;

const ACPI_EN: u8 = 1 << 7;

pub struct Ich9Lpc {
    cfg: ConfigSpace,
    changed: bool,
}

impl Default for Ich9Lpc {
    fn default() -> Self {
        Self::new()
    }
}

fn rout_offset(pirq: u8) -> usize {
    if pirq < 4 {
        PIRQA_ROUT + pirq as usize
    } else {
        PIRQE_ROUT + pirq as usize - 4
    }
}

impl Ich9Lpc {
    pub fn new() -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, VENDOR_INTEL, DEVICE_ID, 0x02, 0x06_01_00);
        cfg.set_u16(super::COMMAND as usize, 0x0007);
        cfg.set_u16(super::STATUS as usize, 0x0210);
        cfg.set_u32(PMBASE, 0x0601);
        cfg.set_wmask_u32(PMBASE, 0x0000_ff80);
        cfg.set_byte(ACPI_CNTL, ACPI_EN);
        cfg.set_wmask(ACPI_CNTL, 0x87);
        for p in 0..8 {
            cfg.set_byte(rout_offset(p), 0x80);
            cfg.set_wmask(rout_offset(p), 0x8f);
        }
        cfg.set_writable(0x48, 8); // GPIOBASE, GC
        cfg.set_writable(0x80, 0x20); // LPC I/O decode, GEN1–4_DEC
        cfg.set_writable(0xa0, 0x10); // GEN_PMCON and friends
        cfg.set_wmask_u32(RCBA, 0xffff_c001);
        cfg.seal_power_on();
        Ich9Lpc { cfg, changed: false }
    }

    /// The I/O base of the ACPI PM block (PM1a_EVT at +0, PM1a_CNT at +4,
    /// PM_TMR at +8), or `None` while ACPI_EN is clear.
    pub fn pm_base(&self) -> Option<u16> {
        (self.cfg.byte(ACPI_CNTL) & ACPI_EN != 0).then(|| (self.cfg.u32(PMBASE) & 0xff80) as u16)
    }

    /// The interrupt the SCI is steered to (an ISA IRQ or, above 15, an
    /// IOAPIC input), or `None` for the reserved selection.
    pub fn sci_irq(&self) -> Option<u8> {
        match self.cfg.byte(ACPI_CNTL) & 7 {
            0 => Some(9),
            1 => Some(10),
            2 => Some(11),
            3 => None,
            n => Some(16 + n),
        }
    }

    /// The ISA IRQ (8259 input) PIRQ `pirq` (0 = PIRQA … 7 = PIRQH) is
    /// routed to, if routing is enabled.
    pub fn pirq_isa_irq(&self, pirq: u8) -> Option<u8> {
        (pirq < 8).then(|| route_to_isa_irq(self.cfg.byte(rout_offset(pirq)))).flatten()
    }

    /// The 8259 inputs (bit n = IRQ n) that PCI interrupts hold high,
    /// given the PIRQ levels from [`super::PciIntx::levels`]. In APIC mode
    /// the IOAPIC sees PIRQ n on input 16 + n instead ([`Ich9Lpc::pirq_gsi`]).
    pub fn isa_irq_levels(&self, pirq_levels: u8) -> u16 {
        (0..8)
            .filter(|&p| pirq_levels & (1 << p) != 0)
            .filter_map(|p| self.pirq_isa_irq(p))
            .fold(0, |m, irq| m | 1 << irq)
    }

    /// The IOAPIC input PIRQ `pirq` drives in APIC mode (fixed wiring).
    pub fn pirq_gsi(pirq: u8) -> u32 {
        16 + pirq as u32
    }

    /// Program PIRQA–H as the firmware would (for booting without one).
    pub fn route_pirqs(&mut self, irqs: [u8; 8]) {
        for (p, irq) in irqs.into_iter().enumerate() {
            self.config_write(rout_offset(p as u8) as u16, 1, irq as u32);
        }
    }

    /// The root complex register block base, if enabled.
    pub fn rcba(&self) -> Option<u32> {
        let v = self.cfg.u32(RCBA);
        (v & 1 != 0).then_some(v & 0xffff_c000)
    }

    fn watched(&self) -> (u32, u8, u32, u32, u32) {
        (
            self.cfg.u32(PMBASE),
            self.cfg.byte(ACPI_CNTL),
            self.cfg.u32(PIRQA_ROUT),
            self.cfg.u32(PIRQE_ROUT),
            self.cfg.u32(RCBA),
        )
    }
}

/// Offset of SMI_EN in the ICH9 PM I/O block (ICH9 datasheet §13.8.3.7);
/// SMI_STS follows at +4.
pub const SMI_EN_OFFSET: u16 = 0x30;
/// SMI_EN bit 5: SMI on writes to the APM control port 0xB2.
pub const APMC_EN: u32 = 1 << 5;

/// SMI_EN and SMI_STS of the ICH9 PM block (offsets 0 and 4 here).
/// kagami has no SMM, so APMC_EN reads as set: firmware takes that as "SMM
/// already set up" and never raises an SMI it would wait for (QEMU does the
/// same with SMM off; SeaBIOS src/fw/smm.c ich9_lpc_apmc_smm_setup). Other
/// bits are plain storage; SMI_STS reads 0 (no SMI ever happens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ich9SmiEn {
    pub smi_en: u32,
}

impl Default for Ich9SmiEn {
    fn default() -> Self {
        Ich9SmiEn { smi_en: APMC_EN }
    }
}

impl crate::bus::PortIoDevice for Ich9SmiEn {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        let v = if offset < 4 { self.smi_en >> (8 * offset) } else { 0 };
        if size >= 4 {
            v
        } else {
            v & ((1 << (8 * size)) - 1)
        }
    }
    fn write(&mut self, offset: u16, size: u8, value: u32) {
        if offset >= 4 {
            return;
        }
        let shift = 8 * offset as u32;
        let mask = (if size >= 4 { u32::MAX } else { (1u32 << (8 * size)) - 1 })
            .checked_shl(shift)
            .unwrap_or(0);
        self.smi_en = ((self.smi_en & !mask) | ((value << shift) & mask)) | APMC_EN;
    }
}

impl PciDevice for Ich9Lpc {
    fn name(&self) -> &'static str {
        "ICH9 LPC bridge"
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
    fn load_config(&mut self, bytes: &[u8]) {
        self.cfg.load(bytes);
        self.changed = true;
    }
    fn take_chipset_change(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}
