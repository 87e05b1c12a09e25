use super::bus::{CONFIG_ADDRESS, CONFIG_DATA};
use super::i440fx::I440fx;
use super::ich9::Ich9Lpc;
use super::piix::{Piix3Isa, Piix4Pm};
use super::q35::Q35Mch;
use super::*;
use crate::bus::{MmioDevice, PortIoDevice};
use crate::snapshot::Snapshot;

fn addr(dev: u8, func: u8, reg: u8) -> u32 {
    0x8000_0000 | (dev as u32) << 11 | (func as u32) << 8 | reg as u32
}

/// A config read through ports 0xCF8/0xCFC, as a guest does it.
fn cfg_read(bus: &mut PciBus, dev: u8, func: u8, reg: u8, size: u8) -> u32 {
    bus.write(CONFIG_ADDRESS, 4, addr(dev, func, reg & 0xfc));
    bus.read(CONFIG_DATA + (reg & 3) as u16, size)
}

fn cfg_write(bus: &mut PciBus, dev: u8, func: u8, reg: u8, size: u8, v: u32) {
    bus.write(CONFIG_ADDRESS, 4, addr(dev, func, reg & 0xfc));
    bus.write(CONFIG_DATA + (reg & 3) as u16, size, v);
}

/// A test function with one BAR of each kind and a capability list.
struct TestDev {
    cfg: ConfigSpace,
}

impl TestDev {
    fn new() -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, 0x1234, 0x5678, 1, 0x02_00_00);
        cfg.declare_bar(0, BarKind::Io, 0x20);
        cfg.declare_bar(1, BarKind::Mem32 { prefetchable: true }, 0x1000);
        cfg.declare_bar(2, BarKind::Mem64 { prefetchable: false }, 0x10_0000);
        cfg.set_interrupt_pin(2);
        cfg.declare_rom(0x1_0000);
        cfg.add_capability(0x05, 0x50, 8);
        cfg.add_capability(0x09, 0x60, 4);
        cfg.seal_power_on();
        TestDev { cfg }
    }
}

impl PciDevice for TestDev {
    fn name(&self) -> &'static str {
        "test device"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
}

#[test]
fn mechanism1_reads_ids_at_any_offset_and_size() {
    let mut bus = pc_bus();
    assert_eq!(cfg_read(&mut bus, 0, 0, 0, 4), 0x1237_8086);
    assert_eq!(cfg_read(&mut bus, 0, 0, 2, 2), 0x1237);
    assert_eq!(cfg_read(&mut bus, 0, 0, 1, 1), 0x80);
    assert_eq!(cfg_read(&mut bus, 1, 0, 0, 4), 0x7000_8086);
    assert_eq!(cfg_read(&mut bus, 1, 1, 2, 2), 0x7010);
    assert_eq!(cfg_read(&mut bus, 1, 3, 0, 4), 0x7113_8086);
    // Class code of the ISA bridge: 06/01/00.
    assert_eq!(cfg_read(&mut bus, 1, 0, 8, 4) >> 8, 0x06_01_00);
    // Empty slot, other bus, other function of an absent device: master abort.
    assert_eq!(cfg_read(&mut bus, 5, 0, 0, 4), 0xffff_ffff);
    assert_eq!(cfg_read(&mut bus, 5, 0, 0, 2), 0xffff);
    bus.write(CONFIG_ADDRESS, 4, 0x8001_0000);
    assert_eq!(bus.read(CONFIG_DATA, 4), 0xffff_ffff, "bus 1 does not exist");
    // CONFIG_ADDRESS reads back without its reserved bits.
    bus.write(CONFIG_ADDRESS, 4, 0xffff_ffff);
    assert_eq!(bus.read(CONFIG_ADDRESS, 4), 0x80ff_fffc);
    // Enable bit clear: the data port is not a configuration cycle.
    bus.write(CONFIG_ADDRESS, 4, 0x0000_0000);
    assert_eq!(bus.read(CONFIG_DATA, 4), 0xffff_ffff);
    // Byte and word accesses to 0xCF8 do not touch CONFIG_ADDRESS.
    bus.write(CONFIG_ADDRESS, 4, addr(0, 0, 0));
    bus.write(CONFIG_ADDRESS, 1, 0x55);
    bus.write(CONFIG_ADDRESS + 2, 2, 0x55);
    assert_eq!(bus.read(CONFIG_ADDRESS, 4), 0x8000_0000);
    // A dword at 0xCFE: only two bytes are in the data window.
    assert_eq!(bus.read(CONFIG_DATA + 2, 4), 0xffff_1237);
}

#[test]
fn multifunction_bit_and_function0_rule() {
    let mut bus = pc_bus();
    assert_eq!(cfg_read(&mut bus, 1, 0, 0x0e, 1), 0x80, "PIIX3 has functions 1 and 3");
    assert_eq!(cfg_read(&mut bus, 0, 0, 0x0e, 1), 0x00, "the host bridge is single-function");
    let mut bus = PciBus::new();
    bus.add(Bdf::new(3, 2), Box::new(TestDev::new()));
    assert_eq!(cfg_read(&mut bus, 3, 2, 0, 2), 0xffff, "no function 0: slot is empty");
    bus.add(Bdf::new(3, 0), Box::new(TestDev::new()));
    assert_eq!(cfg_read(&mut bus, 3, 2, 0, 2), 0x1234);
    assert_eq!(cfg_read(&mut bus, 3, 0, 0x0e, 1), 0x80);
}

#[test]
fn bar_sizing_and_mapping() {
    let mut bus = PciBus::new();
    bus.add(Bdf::new(4, 0), Box::new(TestDev::new()));
    bus.take_changes();
    // Size each BAR: write all ones, read back.
    for r in [0x10u8, 0x14, 0x18, 0x1c, 0x20] {
        cfg_write(&mut bus, 4, 0, r, 4, 0xffff_ffff);
    }
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x10, 4), 0xffff_ffe1, "32 I/O ports");
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x14, 4), 0xffff_f008, "4 KiB prefetchable 32-bit");
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x18, 4), 0xfff0_0004, "1 MiB 64-bit, low half");
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x1c, 4), 0xffff_ffff, "64-bit, high half");
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x20, 4), 0, "BAR4 not implemented");
    assert!(bus.take_changes().bars);
    // Program them; nothing is decoded until the command register says so.
    cfg_write(&mut bus, 4, 0, 0x10, 4, 0xc040);
    cfg_write(&mut bus, 4, 0, 0x14, 4, 0xfebf_0000);
    cfg_write(&mut bus, 4, 0, 0x18, 4, 0x0010_0000);
    cfg_write(&mut bus, 4, 0, 0x1c, 4, 0x1);
    assert!(bus.bar_mappings().is_empty());
    cfg_write(&mut bus, 4, 0, 0x04, 2, CMD_IO as u32);
    assert!(bus.take_changes().bars);
    let m = bus.bar_mappings();
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].bar, m[0].addr, m[0].size, m[0].kind), (0, 0xc040, 0x20, BarKind::Io));
    cfg_write(&mut bus, 4, 0, 0x04, 2, (CMD_IO | CMD_MEMORY) as u32);
    let m = bus.bar_mappings();
    assert_eq!(m.len(), 3);
    assert_eq!((m[1].addr, m[1].size), (0xfebf_0000, 0x1000));
    assert_eq!((m[2].bar, m[2].addr, m[2].size), (2, 0x1_0010_0000, 0x10_0000));
    // Expansion ROM: sizing, then enable bit.
    cfg_write(&mut bus, 4, 0, 0x30, 4, 0xffff_ffff);
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x30, 4), 0xffff_0001, "64 KiB ROM");
    assert_eq!(bus.bar_mappings().len(), 4, "ROM enable bit set by sizing, address all ones");
    cfg_write(&mut bus, 4, 0, 0x30, 4, 0xfeb0_0000);
    assert_eq!(bus.bar_mappings().len(), 3, "ROM decode disabled");
    cfg_write(&mut bus, 4, 0, 0x30, 4, 0xfeb0_0001);
    let rom = *bus.bar_mappings().last().unwrap();
    assert_eq!((rom.bar, rom.addr, rom.size), (bus::ROM_BAR, 0xfeb0_0000, 0x1_0000));
    // Writes elsewhere do not flag a mapping change.
    assert!(bus.take_changes().bars);
    cfg_write(&mut bus, 4, 0, 0x3c, 1, 11);
    assert!(!bus.take_changes().bars);
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x3c, 2), 0x020b, "interrupt line 11, pin INTB");
}

#[test]
fn command_status_and_capabilities() {
    let mut bus = PciBus::new();
    bus.add(Bdf::new(4, 0), Box::new(TestDev::new()));
    assert!(!bus.device::<TestDev>(Bdf::new(4, 0)).unwrap().cfg.intx_disabled());
    cfg_write(&mut bus, 4, 0, 0x04, 2, 0xffff);
    assert!(bus.device::<TestDev>(Bdf::new(4, 0)).unwrap().cfg.intx_disabled());
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x04, 2), 0x0547, "only implemented command bits stick");
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x06, 2) & 0x10, 0x10, "capabilities list present");
    let first = cfg_read(&mut bus, 4, 0, 0x34, 1) as u8;
    assert_eq!(first, 0x50);
    assert_eq!(cfg_read(&mut bus, 4, 0, first, 2), 0x6005, "MSI cap, next at 0x60");
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x60, 2), 0x0009, "vendor cap, end of list");
    // Capability headers are read-only.
    cfg_write(&mut bus, 4, 0, 0x50, 2, 0);
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x50, 2), 0x6005);
    // Status error bits are write-one-to-clear: the device sets one ...
    bus.device_mut::<TestDev>(Bdf::new(4, 0)).unwrap().cfg.set_byte(0x07, 0x20);
    cfg_write(&mut bus, 4, 0, 0x06, 2, 0x0000);
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x07, 1), 0x20, "writing 0 leaves it");
    cfg_write(&mut bus, 4, 0, 0x06, 2, 0x2000);
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x07, 1), 0x00, "writing 1 clears it");
    // Vendor ID is read-only.
    cfg_write(&mut bus, 4, 0, 0x00, 4, 0);
    assert_eq!(cfg_read(&mut bus, 4, 0, 0x00, 2), 0x1234);
}

#[test]
fn i440fx_pam_and_smram() {
    let mut bus = pc_bus();
    bus.take_changes();
    let host = bus.device::<I440fx>(PC_HOST).unwrap();
    assert!(
        host.pam().iter().all(|s| !s.access.read_ram && !s.access.write_ram),
        "reset: ROM reads"
    );
    // PAM0 (dword at 0x58 covers 0x58-0x5b): F segment read/write RAM.
    cfg_write(&mut bus, 0, 0, 0x59, 1, 0xff);
    assert!(bus.take_changes().chipset);
    assert_eq!(cfg_read(&mut bus, 0, 0, 0x59, 1), 0x30, "PAM0 low field reserved");
    // PAM1 low field = 0xC0000-0xC3FFF read-only RAM, high field write-only.
    cfg_write(&mut bus, 0, 0, 0x5a, 1, 0x21);
    let pam = bus.device::<I440fx>(PC_HOST).unwrap().pam();
    assert!(pam[0].access.read_ram && pam[0].access.write_ram);
    assert_eq!(
        (pam[1].start, pam[1].access.read_ram, pam[1].access.write_ram),
        (0xc_0000, true, false)
    );
    assert_eq!(
        (pam[2].start, pam[2].access.read_ram, pam[2].access.write_ram),
        (0xc_4000, false, true)
    );
    // The same values again are not a change.
    assert!(bus.take_changes().chipset);
    cfg_write(&mut bus, 0, 0, 0x5a, 1, 0x21);
    assert!(!bus.take_changes().chipset);
    // SMRAM: open, then lock closes it for good.
    assert_eq!(cfg_read(&mut bus, 0, 0, 0x72, 1), 0x02);
    cfg_write(&mut bus, 0, 0, 0x72, 1, 0x4a);
    assert!(bus.device::<I440fx>(PC_HOST).unwrap().smram_open());
    cfg_write(&mut bus, 0, 0, 0x72, 1, 0x1a);
    cfg_write(&mut bus, 0, 0, 0x72, 1, 0x4a);
    assert!(!bus.device::<I440fx>(PC_HOST).unwrap().smram_open());
    assert!(bus.take_changes().chipset);
    bus.reset();
    assert_eq!(cfg_read(&mut bus, 0, 0, 0x72, 1), 0x02, "reset unlocks");
    assert_eq!(cfg_read(&mut bus, 0, 0, 0x59, 1), 0x00);
}

#[test]
fn piix3_pirq_routing_and_piix4_pm_base() {
    let mut bus = pc_bus();
    bus.take_changes();
    assert_eq!(cfg_read(&mut bus, 1, 0, 0x60, 4), 0x8080_8080);
    assert_eq!(bus.device::<Piix3Isa>(PC_ISA).unwrap().pirq_isa_irq(0), None);
    // The guest (or firmware) routes PIRQA-D with one dword write.
    cfg_write(&mut bus, 1, 0, 0x60, 4, 0x0b0b_0a0a);
    assert!(bus.take_changes().chipset);
    let isa = bus.device::<Piix3Isa>(PC_ISA).unwrap();
    assert_eq!(
        (0..4).map(|p| isa.pirq_isa_irq(p)).collect::<Vec<_>>(),
        [Some(10), Some(10), Some(11), Some(11)]
    );
    // Reserved IRQ numbers and the disable bit route nowhere.
    cfg_write(&mut bus, 1, 0, 0x61, 1, 0x02);
    cfg_write(&mut bus, 1, 0, 0x62, 1, 0x8b);
    let isa = bus.device::<Piix3Isa>(PC_ISA).unwrap();
    assert_eq!((isa.pirq_isa_irq(1), isa.pirq_isa_irq(2)), (None, None));
    // Firmware helper: what SeaBIOS and the ACPI _PRT agree on.
    let isa = bus.device_mut::<Piix3Isa>(PC_ISA).unwrap();
    isa.route_pirqs([10, 10, 11, 11]);
    // A function in slot 3, INTB -> PIRQ (3 + 1) % 4 = A -> IRQ 10.
    assert_eq!(isa.pirq_isa_irq(pirq_index(3, 1)), Some(10));
    assert_eq!(isa.pirq_isa_irq(pirq_index(2, 0)), Some(11));

    let pm = bus.device::<Piix4Pm>(PC_PM).unwrap();
    assert_eq!(pm.pm_base(), Some(0x600));
    assert_eq!(cfg_read(&mut bus, 1, 3, 0x3d, 1), 1, "PM function uses INTA");
    cfg_write(&mut bus, 1, 3, 0x40, 4, 0xb000);
    assert_eq!(cfg_read(&mut bus, 1, 3, 0x40, 4), 0xb001, "bit 0 hardwired");
    assert!(bus.take_changes().chipset);
    assert_eq!(bus.device::<Piix4Pm>(PC_PM).unwrap().pm_base(), Some(0xb000));
    cfg_write(&mut bus, 1, 3, 0x80, 1, 0);
    assert_eq!(bus.device::<Piix4Pm>(PC_PM).unwrap().pm_base(), None, "PMIOSE clear");
}

#[test]
fn q35_pciexbar_and_ecam() {
    let mut bus = q35_bus();
    assert_eq!(cfg_read(&mut bus, 0, 0, 0, 4), 0x29c0_8086);
    assert_eq!(cfg_read(&mut bus, 0x1f, 0, 0, 4), 0x2918_8086);
    assert_eq!(bus.device::<Q35Mch>(Q35_HOST).unwrap().ecam_window(), None, "disabled at reset");
    bus.take_changes();
    cfg_write(&mut bus, 0, 0, 0x60, 4, 0xb000_0001);
    assert!(bus.take_changes().chipset);
    assert_eq!(
        bus.device::<Q35Mch>(Q35_HOST).unwrap().ecam_window(),
        Some((0xb000_0000, 256 << 20))
    );
    cfg_write(&mut bus, 0, 0, 0x60, 4, 0xb000_0005);
    assert_eq!(bus.device::<Q35Mch>(Q35_HOST).unwrap().ecam_window(), Some((0xb000_0000, 64 << 20)));
    cfg_write(&mut bus, 0, 0, 0x60, 4, 0xffff_ffff);
    assert_eq!(cfg_read(&mut bus, 0, 0, 0x60, 4), 0xfc00_0007);
    assert_eq!(bus.device::<Q35Mch>(Q35_HOST).unwrap().ecam_window(), None, "LENGTH 11 reserved");
    bus.device_mut::<Q35Mch>(Q35_HOST).unwrap().enable_ecam(q35::ECAM_BASE);
    assert_eq!(cfg_read(&mut bus, 0, 0, 0x60, 4), 0xb000_0001);

    // ECAM: bus << 20 | dev << 15 | fn << 12 | reg.
    let lpc = 0x1fu64 << 15;
    let mut ecam = Ecam(&mut bus);
    assert_eq!(ecam.read(lpc, 4), 0x2918_8086);
    assert_eq!(ecam.read(lpc + 2, 2), 0x2918);
    assert_eq!(ecam.read(0, 8), 0x0090_0006_29c0_8086, "an 8-byte read is two dwords");
    assert_eq!(
        ecam.read(lpc + 0x100, 4),
        0xffff_ffff,
        "no extended space on a conventional function"
    );
    assert_eq!(ecam.read(1 << 20, 4), 0xffff_ffff, "bus 1 is empty");
    ecam.write(lpc + 0x60, 1, 0x0a);
    assert_eq!(ecam.read(lpc + 0x60, 1), 0x0a);
    // PAM through the MCH's own offsets.
    ecam.write(0x90, 1, 0x30);
    assert!(bus.device::<Q35Mch>(Q35_HOST).unwrap().pam()[0].access.read_ram);
    assert!(bus.take_changes().chipset);
}

#[test]
fn ich9_lpc_routing_and_pm() {
    let mut bus = q35_bus();
    let lpc = bus.device::<Ich9Lpc>(Q35_LPC).unwrap();
    assert_eq!(lpc.pm_base(), Some(0x600));
    assert_eq!(lpc.sci_irq(), Some(9));
    assert_eq!(lpc.rcba(), None);
    cfg_write(&mut bus, 0x1f, 0, 0x68, 4, 0x8005_0b0a);
    cfg_write(&mut bus, 0x1f, 0, 0x60, 1, 0x0b);
    cfg_write(&mut bus, 0x1f, 0, 0x44, 1, 0x85);
    cfg_write(&mut bus, 0x1f, 0, 0xf0, 4, 0xfed1_c001);
    let lpc = bus.device::<Ich9Lpc>(Q35_LPC).unwrap();
    assert_eq!(lpc.pirq_isa_irq(0), Some(11));
    assert_eq!(lpc.pirq_isa_irq(1), None);
    assert_eq!(lpc.pirq_isa_irq(4), Some(10), "PIRQE");
    assert_eq!(lpc.pirq_isa_irq(6), Some(5), "PIRQG");
    assert_eq!(lpc.pirq_isa_irq(7), None, "PIRQH disabled");
    assert_eq!(lpc.sci_irq(), Some(21));
    assert_eq!(lpc.rcba(), Some(0xfed1_c000));
    assert_eq!(Ich9Lpc::pirq_gsi(pirq_index(2, 1)), 19);
    cfg_write(&mut bus, 0x1f, 0, 0x44, 1, 0x00);
    assert_eq!(bus.device::<Ich9Lpc>(Q35_LPC).unwrap().pm_base(), None, "ACPI_EN clear");
}

#[test]
fn snapshot_round_trip_and_validation() {
    let mut bus = pc_bus();
    cfg_write(&mut bus, 0, 0, 0x59, 1, 0x30);
    cfg_write(&mut bus, 1, 0, 0x60, 4, 0x0b0b_0a0a);
    cfg_write(&mut bus, 0, 0, 0x72, 1, 0x1a);
    bus.write(CONFIG_ADDRESS, 4, addr(1, 3, 0x40));
    let s = bus.save();
    let json = serde_json::to_string(&s).unwrap();
    let back: bus::State = serde_json::from_str(&json).unwrap();
    let mut other = pc_bus();
    other.restore(&back).unwrap();
    assert_eq!(other.save(), s);
    assert!(other.take_changes().chipset);
    assert_eq!(other.device::<I440fx>(PC_HOST).unwrap().smram() & 0x10, 0x10, "lock survives");
    assert_eq!(other.read(CONFIG_ADDRESS, 4), addr(1, 3, 0x40));
    assert_eq!(other.read(CONFIG_DATA, 2), 0x601);

    let bad = |f: &dyn Fn(&mut bus::State)| {
        let mut b = s.clone();
        f(&mut b);
        let mut t = pc_bus();
        let before = t.save();
        assert!(t.restore(&b).is_err());
        assert_eq!(t.save(), before, "a failed restore changes nothing");
    };
    bad(&|b| b.functions[0].config[0] = 0x87);
    bad(&|b| b.functions[0].config[0x72] = 0x5a);
    bad(&|b| b.functions[0].config[0x59] = 0x0f);
    bad(&|b| b.functions[1].config.truncate(100));
    bad(&|b| b.functions[3].config[0x40] = 0x00);
    bad(&|b| b.functions.pop().map(|_| ()).unwrap());
    bad(&|b| b.functions[2].bdf = Bdf::new(9, 0));
    bad(&|b| b.config_address = 0x4000_0000);
}

#[test]
fn pci_interrupts_reach_isa_irqs_through_the_routers() {
    let mut bus = pc_bus();
    bus.device_mut::<Piix3Isa>(PC_ISA).unwrap().route_pirqs([10, 10, 11, 11]);
    let isa = bus.device::<Piix3Isa>(PC_ISA).unwrap();
    // PIRQB and PIRQC asserted: IRQ 10 and 11.
    assert_eq!(isa.isa_irq_levels(0b0110), (1 << 10) | (1 << 11));
    assert_eq!(isa.isa_irq_levels(0), 0);
    let mut q = q35_bus();
    q.device_mut::<Ich9Lpc>(Q35_LPC)
        .unwrap()
        .route_pirqs([10, 11, 0x80, 5, 0x80, 0x80, 0x80, 3]);
    let lpc = q.device::<Ich9Lpc>(Q35_LPC).unwrap();
    assert_eq!(lpc.isa_irq_levels(0xff), (1 << 10) | (1 << 11) | (1 << 5) | (1 << 3));
}

#[test]
fn describe_lists_functions_and_bars() {
    let mut bus = pc_bus();
    cfg_write(&mut bus, 1, 1, 0x20, 4, 0xc000);
    cfg_write(&mut bus, 1, 1, 0x04, 2, CMD_IO as u32);
    let d = bus.describe();
    assert!(d.contains("00:00.0  8086:1237  i440FX host bridge"), "{d}");
    assert!(d.contains("00:01.3  8086:7113  PIIX4 power management  INTA"), "{d}");
    assert!(d.contains("BAR4 I/O 0xc000-0xc00f"), "{d}");
}

#[test]
fn bus_and_fw_cfg_are_send() {
    fn send<T: Send>() {}
    send::<PciBus>();
    send::<PciIntx>();
    send::<crate::fw_cfg::FwCfg>();
}

/// xorshift64: deterministic pseudo-random guest traffic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_guest_traffic_never_panics_and_snapshots_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for make in [pc_bus as fn() -> PciBus, q35_bus] {
        let mut bus = make();
        for _ in 0..50_000 {
            let r = rng.next();
            let size = [1u8, 2, 4][(r % 3) as usize];
            let v = (r >> 32) as u32;
            match (r >> 8) % 5 {
                // Aim CONFIG_ADDRESS at the chipset's slots most of the time.
                0 => bus.write(
                    CONFIG_ADDRESS,
                    4,
                    addr([0, 1, 0x1f, 7][(r >> 12) as usize % 4], (r >> 16) as u8 & 7, (r >> 24) as u8),
                ),
                1 => bus.write((r >> 40) as u16 % 8, size, v),
                2 => {
                    bus.read((r >> 40) as u16 % 8, size);
                }
                3 => Ecam(&mut bus).write(r >> 44, [1u8, 2, 4, 8][(r % 4) as usize], v as u64),
                _ => {
                    Ecam(&mut bus).read(r.rotate_left(20) & 0xfff_ffff, size);
                }
            }
        }
        bus.bar_mappings();
        let s = bus.save();
        let mut again = make();
        again.restore(&s).expect("a state the guest produced restores");
        assert_eq!(again.save(), s);
    }
}

/// End to end on `-machine pc`: a function in slot 3 asserts INTA, which
/// the swizzle sends to PIRQD, the PIIX3 to IRQ 11, and the 8259 (IRQ 11
/// level-triggered through the ELCR, as firmware sets it) to the CPU.
#[test]
fn pc_intx_reaches_the_pic_as_a_level_interrupt() {
    use crate::irq::IrqPins;
    use crate::pic::{self, Pic8259};
    let mut bus = pc_bus();
    bus.device_mut::<Piix3Isa>(PC_ISA).unwrap().route_pirqs([10, 10, 11, 11]);
    let pins = IrqPins::new();
    let intx = PciIntx::new((0..4).map(|n| pins.line(16 + n)).collect());
    let mut inta = intx.line(3, 0);
    let mut pic = Pic8259::new();
    for (o, v) in [
        (pic::MASTER_COMMAND, 0x11),
        (pic::MASTER_DATA, 0x20),
        (pic::MASTER_DATA, 4),
        (pic::MASTER_DATA, 1),
        (pic::SLAVE_COMMAND, 0x11),
        (pic::SLAVE_DATA, 0x28),
        (pic::SLAVE_DATA, 2),
        (pic::SLAVE_DATA, 1),
        (pic::MASTER_DATA, 0xfb),
        (pic::SLAVE_DATA, 0xf7),
        (pic::ELCR_SLAVE, 0x0c),
    ] {
        pic.write(o, 1, v);
    }
    // What the machine's interrupt sync does with PCI pins 16-19.
    let sync = |pic: &mut Pic8259, bus: &PciBus| {
        let pirqs = (pins.levels() >> 16) as u8 & 0xf;
        let isa = bus.device::<Piix3Isa>(PC_ISA).unwrap().isa_irq_levels(pirqs);
        for irq in [10u8, 11] {
            pic.set_irq(irq, isa & (1 << irq) != 0);
        }
    };
    inta.set_level(true);
    sync(&mut pic, &bus);
    assert!(pic.pending());
    assert_eq!(pic.acknowledge(), 0x28 + 3, "IRQ 11");
    pic.write(pic::SLAVE_COMMAND, 1, 0x20);
    pic.write(pic::MASTER_COMMAND, 1, 0x20);
    assert!(pic.pending(), "still asserted after EOI: level-triggered");
    inta.set_level(false);
    sync(&mut pic, &bus);
    assert!(!pic.pending());
}

/// A snapshot file can hold anything: a mutated configuration byte is
/// either rejected (leaving the bus as it was) or gives a bus that still
/// takes guest traffic.
#[test]
fn mutated_snapshots_are_rejected_or_survive() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for make in [pc_bus as fn() -> PciBus, q35_bus] {
        let base = make().save();
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..3000 {
            let mut s = base.clone();
            let f = (rng.next() % s.functions.len() as u64) as usize;
            let o = (rng.next() % 256) as usize;
            s.functions[f].config[o] ^= 1 << (rng.next() % 8);
            let mut bus = make();
            match bus.restore(&s) {
                Ok(()) => {
                    accepted += 1;
                    for _ in 0..20 {
                        let r = rng.next();
                        bus.write(
                            CONFIG_ADDRESS,
                            4,
                            addr([0, 1, 0x1f][(r % 3) as usize], (r >> 8) as u8 & 7, (r >> 16) as u8),
                        );
                        bus.write(CONFIG_DATA, 4, (r >> 32) as u32);
                        bus.read(CONFIG_DATA, 4);
                    }
                    bus.bar_mappings();
                }
                Err(_) => {
                    rejected += 1;
                    assert_eq!(bus.save(), base, "a rejected restore changes nothing");
                }
            }
        }
        assert!(accepted > 0 && rejected > 0, "{accepted} accepted, {rejected} rejected");
    }
}
