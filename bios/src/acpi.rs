//! ACPI tables for direct kernel boot (ACPI 6.5): RSDP, RSDT, XSDT, FADT,
//! FACS, DSDT, MADT, HPET and (Q35) MCFG, generated from the machine's
//! configuration. AML and table headers come from rust-vmm's `acpi_tables`
//! crate; the fixed-layout tables are laid out here by the spec's offsets.
//!
//! The DSDT describes the PCI root bridge (its resource windows and a static
//! `_PRT` routing every slot's INTA-D to the machine's PCI GSIs with the usual
//! swizzle), the ISA devices Linux enumerates through ACPI (COM1/COM2, the
//! i8042 keyboard and mouse, the RTC, the HPET) and `\_S5` with the platform's
//! SLP_TYP for soft-off. SMI_CMD is 0: the platform is always in ACPI mode
//! (the PM device must read SCI_EN = 1).
//!
//! Left out: processor objects and CPU hotplug, PCI hotplug, sleep states
//! other than S5, GPE blocks, SRAT/SLIT (one NUMA node).

use acpi_tables::aml;
use acpi_tables::sdt::Sdt;
use acpi_tables::Aml;

const OEM_ID: [u8; 6] = *b"KAGAMI";
const OEM_TABLE: [u8; 8] = *b"KAGAMIPC";

/// SLP_TYP values that mean S5 (soft off) on the PM devices kagami models:
/// PIIX4 PM1_CNT encodes soft-off as 0, ICH9 as 7 (their datasheets).
pub const S5_SLP_TYP_PIIX4: u8 = 0;
pub const S5_SLP_TYP_ICH9: u8 = 7;

/// What the tables describe; the machine fills it in.
#[derive(Clone, Debug)]
pub struct AcpiConfig {
    pub q35: bool,
    pub cpus: u8,
    pub lapic_addr: u32,
    pub ioapic_addr: u32,
    pub ioapic_id: u8,
    pub hpet_addr: Option<u32>,
    /// ACPI PM I/O base: PM1a_EVT at +0, PM1a_CNT at +4, PM_TMR at +8.
    pub pm_base: u16,
    pub sci_irq: u8,
    pub s5_slp_typ: u8,
    /// Reset register: an I/O port and the value to write (0xcf9, 0x06).
    pub reset: (u16, u8),
    /// GSIs that PCI INTA..INTD of slot 0 reach (other slots swizzle).
    pub pci_gsis: [u32; 4],
    /// 32-bit PCI MMIO window (inclusive), and an optional 64-bit one.
    pub pci_mmio32: (u32, u32),
    pub pci_mmio64: Option<(u64, u64)>,
    /// Q35 PCIe ECAM base and last bus.
    pub ecam: Option<(u64, u8)>,
}

/// The generated tables: `rsdp` goes in the BIOS area (0xE0000-0xFFFFF,
/// 16-byte aligned); `tables` is one blob placed at the base address given
/// to [`build`] (mark it ACPI in the E820 map).
pub struct AcpiTables {
    pub rsdp: Vec<u8>,
    pub tables: Vec<u8>,
}

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// A Generic Address Structure (ACPI 5.2.3.2).
fn gas(space: u8, bits: u8, access: u8, addr: u64) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = space;
    g[1] = bits;
    g[3] = access;
    g[4..12].copy_from_slice(&addr.to_le_bytes());
    g
}
const SPACE_MEM: u8 = 0;
const SPACE_IO: u8 = 1;

fn sdt(sig: &[u8; 4], body: &[u8], revision: u8) -> Vec<u8> {
    let mut t = Sdt::new(*sig, 36 + body.len() as u32, revision, OEM_ID, OEM_TABLE, 1);
    t.write_bytes(36, body);
    t.update_checksum();
    t.as_slice().to_vec()
}

fn fadt(cfg: &AcpiConfig, facs: u64, dsdt: u64) -> Vec<u8> {
    let mut b = vec![0u8; 276 - 36];
    let mut put = |off: usize, v: &[u8]| b[off - 36..off - 36 + v.len()].copy_from_slice(v);
    put(36, &(facs as u32).to_le_bytes());
    put(40, &(dsdt as u32).to_le_bytes());
    put(46, &(cfg.sci_irq as u16).to_le_bytes());
    let pm = cfg.pm_base as u32;
    put(56, &pm.to_le_bytes()); // PM1a_EVT_BLK
    put(64, &(pm + 4).to_le_bytes()); // PM1a_CNT_BLK
    put(76, &(pm + 8).to_le_bytes()); // PM_TMR_BLK
    put(88, &[4, 2, 0, 4]); // PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN
    put(96, &0x0fffu16.to_le_bytes()); // P_LVL2_LAT: C2 not supported
    put(98, &0x0fffu16.to_le_bytes()); // P_LVL3_LAT: C3 not supported
    put(108, &[0x32]); // CENTURY: CMOS index
                       // IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042 (Linux probes the i8042 only then).
    put(109, &0x0003u16.to_le_bytes());
    // Flags: WBINVD, PROC_C1, PWR_BUTTON (none), SLP_BUTTON (none),
    // TMR_VAL_EXT (32-bit PM timer), RESET_REG_SUP.
    let flags: u32 = 1 | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 10);
    put(112, &flags.to_le_bytes());
    put(116, &gas(SPACE_IO, 8, 1, cfg.reset.0 as u64));
    put(128, &[cfg.reset.1]);
    put(131, &[5]); // FADT minor version (6.5)
    put(132, &facs.to_le_bytes());
    put(140, &dsdt.to_le_bytes());
    put(148, &gas(SPACE_IO, 32, 3, pm as u64));
    put(172, &gas(SPACE_IO, 16, 2, pm as u64 + 4));
    put(208, &gas(SPACE_IO, 32, 3, pm as u64 + 8));
    sdt(b"FACP", &b, 6)
}

fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[32] = 2; // version
    f
}

fn madt(cfg: &AcpiConfig) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&cfg.lapic_addr.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT: dual 8259s present
    for id in 0..cfg.cpus {
        b.extend_from_slice(&[0, 8, id, id]);
        b.extend_from_slice(&1u32.to_le_bytes()); // enabled
    }
    b.extend_from_slice(&[1, 12, cfg.ioapic_id, 0]);
    b.extend_from_slice(&cfg.ioapic_addr.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    let mut iso = |src: u8, gsi: u32, flags: u16| {
        b.extend_from_slice(&[2, 10, 0, src]);
        b.extend_from_slice(&gsi.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
    };
    // The PIT's IRQ0 is wired to IOAPIC input 2.
    iso(0, 2, 0);
    // Level-triggered, active-high: the SCI and PCI lines below 16.
    let level_high = 0x000d;
    let mut level: Vec<u32> = vec![cfg.sci_irq as u32];
    level.extend(cfg.pci_gsis.iter().copied().filter(|&g| g < 16));
    level.sort_unstable();
    level.dedup();
    for g in level {
        iso(g as u8, g, level_high);
    }
    // LINT1 of every processor is NMI.
    b.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
    sdt(b"APIC", &b, 5)
}

fn hpet(addr: u32) -> Vec<u8> {
    let mut b = Vec::new();
    // Event timer block ID: vendor 0x8086, legacy replacement capable,
    // 64-bit counter, 3 comparators (index of last = 2), revision 1.
    b.extend_from_slice(&0x8086_a201u32.to_le_bytes());
    b.extend_from_slice(&gas(SPACE_MEM, 64, 0, addr as u64));
    b.push(0); // HPET number
    b.extend_from_slice(&0x0080u16.to_le_bytes()); // minimum tick
    b.push(0); // no page protection
    sdt(b"HPET", &b, 1)
}

fn mcfg(base: u64, last_bus: u8) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b.extend_from_slice(&base.to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, last_bus, 0, 0, 0, 0]);
    sdt(b"MCFG", &b, 1)
}

fn isa_device(name: &str, hid: &str, uid: u32, resources: Vec<&dyn Aml>) -> Vec<u8> {
    let mut out = Vec::new();
    let crs = aml::ResourceTemplate::new(resources);
    aml::Device::new(
        name.into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new(hid)),
            &aml::Name::new("_UID".into(), &uid),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

/// Raw AML bytes as an `Aml` object (for pre-serialised children).
struct RawAml(Vec<u8>);
impl Aml for RawAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(&self.0);
    }
}

fn dsdt(cfg: &AcpiConfig) -> Vec<u8> {
    // _PRT: slot s, pin p -> pci_gsis[(s + p) % 4].
    let mut prt = aml::PackageBuilder::new();
    for slot in 1u32..32 {
        for pin in 0u32..4 {
            let mut e = aml::PackageBuilder::new();
            e.add_element(&((slot << 16) | 0xffff));
            e.add_element(&(pin as u8));
            e.add_element(&aml::ZERO);
            e.add_element(&cfg.pci_gsis[((slot + pin) % 4) as usize]);
            prt.add_element(&e);
        }
    }
    let bus = aml::AddressSpace::new_bus_number(0u16, 255u16);
    let cfg_io = aml::IO::new(0xcf8, 0xcf8, 1, 8);
    let io_lo = aml::AddressSpace::new_io(0u16, 0x0cf7u16, None);
    let io_hi = aml::AddressSpace::new_io(0x0d00u16, 0xffffu16, None);
    let vga = aml::AddressSpace::new_memory(aml::AddressSpaceCacheable::Cacheable, true, 0xa_0000u32, 0xb_ffffu32, None);
    let mmio32 = aml::AddressSpace::new_memory(
        aml::AddressSpaceCacheable::NotCacheable,
        true,
        cfg.pci_mmio32.0,
        cfg.pci_mmio32.1,
        None,
    );
    let mmio64 = cfg
        .pci_mmio64
        .map(|(a, b)| aml::AddressSpace::new_memory(aml::AddressSpaceCacheable::NotCacheable, true, a, b, None));
    let mut res: Vec<&dyn Aml> = vec![&bus, &cfg_io, &io_lo, &io_hi, &vga, &mmio32];
    if let Some(m) = &mmio64 {
        res.push(m);
    }
    let crs = aml::ResourceTemplate::new(res);

    let irq = |n: u32| aml::Interrupt::new(true, true, false, false, n);
    let (i1, i3, i4, i8, i12) = (irq(1), irq(3), irq(4), irq(8), irq(12));
    let (p3f8, p2f8) = (aml::IO::new(0x3f8, 0x3f8, 1, 8), aml::IO::new(0x2f8, 0x2f8, 1, 8));
    let (p60, p64, p70) = (
        aml::IO::new(0x60, 0x60, 1, 1),
        aml::IO::new(0x64, 0x64, 1, 1),
        aml::IO::new(0x70, 0x70, 1, 2),
    );
    let mut children = Vec::new();
    children.extend(isa_device("COM1", "PNP0501", 1, vec![&p3f8, &i4]));
    children.extend(isa_device("COM2", "PNP0501", 2, vec![&p2f8, &i3]));
    children.extend(isa_device("KBD_", "PNP0303", 0, vec![&p60, &p64, &i1]));
    children.extend(isa_device("MOU_", "PNP0F13", 0, vec![&i12]));
    children.extend(isa_device("RTC_", "PNP0B00", 0, vec![&p70, &i8]));
    if let Some(h) = cfg.hpet_addr {
        let m = aml::Memory32Fixed::new(false, h, 0x400);
        children.extend(isa_device("HPET", "PNP0103", 0, vec![&m]));
    }
    // Motherboard resources: the ECAM window (PCI Firmware Spec 3.2, 4.1.2:
    // Linux uses MMCONFIG only where a PNP0C02 device or E820 reserves it).
    let ecam_res = cfg
        .ecam
        .map(|(base, last)| aml::Memory32Fixed::new(false, base as u32, (last as u32 + 1) << 20));
    if let Some(m) = &ecam_res {
        children.extend(isa_device("MRES", "PNP0C02", 0, vec![m]));
    }
    let children = RawAml(children);

    let hid = aml::EISAName::new(if cfg.q35 { "PNP0A08" } else { "PNP0A03" });
    let cid = aml::EISAName::new("PNP0A03");
    let hid_name = aml::Name::new("_HID".into(), &hid);
    let mut pci: Vec<&dyn Aml> = vec![&hid_name];
    let cid_name = aml::Name::new("_CID".into(), &cid);
    if cfg.q35 {
        pci.push(&cid_name);
    }
    let adr = aml::Name::new("_ADR".into(), &aml::ZERO);
    let uid = aml::Name::new("_UID".into(), &aml::ZERO);
    let crs_name = aml::Name::new("_CRS".into(), &crs);
    let prt_name = aml::Name::new("_PRT".into(), &prt);
    pci.extend([&adr as &dyn Aml, &uid, &crs_name, &prt_name, &children]);
    let pci0 = aml::Device::new("PCI0".into(), pci);

    let mut s5 = aml::PackageBuilder::new();
    for v in [cfg.s5_slp_typ, cfg.s5_slp_typ, 0, 0] {
        s5.add_element(&v);
    }
    let mut body = Vec::new();
    aml::Scope::new("\\_SB_".into(), vec![&pci0]).to_aml_bytes(&mut body);
    aml::Name::new("\\_S5_".into(), &s5).to_aml_bytes(&mut body);
    sdt(b"DSDT", &body, 2)
}

/// Build every table for tables placed at `base` (64-byte aligned).
pub fn build(cfg: &AcpiConfig, base: u64) -> AcpiTables {
    let mut blob: Vec<u8> = Vec::new();
    let place = |t: Vec<u8>, blob: &mut Vec<u8>| -> u64 {
        while blob.len() % 64 != 0 {
            blob.push(0);
        }
        let at = base + blob.len() as u64;
        blob.extend_from_slice(&t);
        at
    };
    let facs_at = place(facs(), &mut blob);
    let dsdt_at = place(dsdt(cfg), &mut blob);
    let mut tables = vec![place(fadt(cfg, facs_at, dsdt_at), &mut blob), place(madt(cfg), &mut blob)];
    if let Some(h) = cfg.hpet_addr {
        tables.push(place(hpet(h), &mut blob));
    }
    if let Some((ecam, last)) = cfg.ecam {
        tables.push(place(mcfg(ecam, last), &mut blob));
    }
    let rsdt_body: Vec<u8> = tables.iter().flat_map(|a| (*a as u32).to_le_bytes()).collect();
    let xsdt_body: Vec<u8> = tables.iter().flat_map(|a| a.to_le_bytes()).collect();
    let rsdt_at = place(sdt(b"RSDT", &rsdt_body, 1), &mut blob);
    let xsdt_at = place(sdt(b"XSDT", &xsdt_body, 1), &mut blob);

    let mut rsdp = vec![0u8; 36];
    rsdp[0..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(&OEM_ID);
    rsdp[15] = 2;
    rsdp[16..20].copy_from_slice(&(rsdt_at as u32).to_le_bytes());
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&xsdt_at.to_le_bytes());
    rsdp[8] = checksum(&rsdp[0..20]);
    rsdp[32] = checksum(&rsdp);
    AcpiTables { rsdp, tables: blob }
}

/// The tables as QEMU hands them to firmware through fw_cfg: the blob
/// `etc/acpi/tables` (tables at offsets, pointers holding offsets into it),
/// `etc/acpi/rsdp`, and `etc/table-loader`, the script that tells the
/// firmware (SeaBIOS, OVMF) where to allocate both files, which pointer
/// fields to relocate and which checksums to recompute.
pub struct LoaderTables {
    pub tables: Vec<u8>,
    pub rsdp: Vec<u8>,
    pub loader: Vec<u8>,
}

pub const TABLES_FILE: &str = "etc/acpi/tables";
pub const RSDP_FILE: &str = "etc/acpi/rsdp";
pub const LOADER_FILE: &str = "etc/table-loader";

/// Table-loader commands (QEMU hw/acpi/bios-linker-loader.c, the format
/// SeaBIOS's romfile_loader.c reads): 128-byte entries, a little-endian
/// u32 command, then its arguments; file names are 56-byte NUL-padded.
pub mod loader {
    pub const ENTRY_SIZE: usize = 128;
    pub const FILE_SIZE: usize = 56;
    pub const ALLOCATE: u32 = 1;
    pub const ADD_POINTER: u32 = 2;
    pub const ADD_CHECKSUM: u32 = 3;
    /// ALLOCATE zones: anywhere in RAM below 4 GiB, or the F segment.
    pub const ZONE_HIGH: u8 = 1;
    pub const ZONE_FSEG: u8 = 2;

    fn entry(cmd: u32) -> Vec<u8> {
        let mut e = vec![0u8; ENTRY_SIZE];
        e[0..4].copy_from_slice(&cmd.to_le_bytes());
        e
    }
    fn name(e: &mut [u8], at: usize, file: &str) {
        assert!(file.len() < FILE_SIZE, "loader file name {file} too long");
        e[at..at + file.len()].copy_from_slice(file.as_bytes());
    }
    /// Allocate `file` aligned to `align` in `zone` and load it there.
    pub fn allocate(file: &str, align: u32, zone: u8) -> Vec<u8> {
        let mut e = entry(ALLOCATE);
        name(&mut e, 4, file);
        e[60..64].copy_from_slice(&align.to_le_bytes());
        e[64] = zone;
        e
    }
    /// Add the address `src` was loaded at to the `size`-byte little-endian
    /// field at `offset` of `dest`.
    pub fn add_pointer(dest: &str, src: &str, offset: u32, size: u8) -> Vec<u8> {
        let mut e = entry(ADD_POINTER);
        name(&mut e, 4, dest);
        name(&mut e, 60, src);
        e[116..120].copy_from_slice(&offset.to_le_bytes());
        e[120] = size;
        e
    }
    /// Make the bytes `start..start+len` of `file` sum to zero by adjusting
    /// the byte at `offset`.
    pub fn add_checksum(file: &str, offset: u32, start: u32, len: u32) -> Vec<u8> {
        let mut e = entry(ADD_CHECKSUM);
        name(&mut e, 4, file);
        e[60..64].copy_from_slice(&offset.to_le_bytes());
        e[64..68].copy_from_slice(&start.to_le_bytes());
        e[68..72].copy_from_slice(&len.to_le_bytes());
        e
    }
}

/// Build the tables for firmware that loads them through the table
/// loader: the same tables as [`build`], laid out from offset 0, with
/// every pointer and checksum described by a loader command.
pub fn build_for_loader(cfg: &AcpiConfig) -> LoaderTables {
    use loader::*;
    let t = build(cfg, 0);
    let mut cmds: Vec<Vec<u8>> = vec![allocate(TABLES_FILE, 64, ZONE_HIGH), allocate(RSDP_FILE, 16, ZONE_FSEG)];
    // Walk the blob: tables start 64-byte aligned with their signature and length.
    let blob = &t.tables;
    let mut off = 0usize;
    while off + 8 <= blob.len() {
        let sig = &blob[off..off + 4];
        let len = if sig == b"FACS" {
            64
        } else {
            u32::from_le_bytes(blob[off + 4..off + 8].try_into().unwrap()) as usize
        };
        if len == 0 {
            break;
        }
        let ptr = |field: usize, size: u8| add_pointer(TABLES_FILE, TABLES_FILE, (off + field) as u32, size);
        match sig {
            b"FACP" => {
                cmds.push(ptr(36, 4)); // FIRMWARE_CTRL -> FACS
                cmds.push(ptr(40, 4)); // DSDT
                cmds.push(ptr(132, 8)); // X_FIRMWARE_CTRL
                cmds.push(ptr(140, 8)); // X_DSDT
            }
            b"RSDT" => {
                for k in (36..len).step_by(4) {
                    cmds.push(ptr(k, 4));
                }
            }
            b"XSDT" => {
                for k in (36..len).step_by(8) {
                    cmds.push(ptr(k, 8));
                }
            }
            _ => {}
        }
        if sig != b"FACS" {
            // The SDT header checksum is byte 9.
            cmds.push(add_checksum(TABLES_FILE, (off + 9) as u32, off as u32, len as u32));
        }
        off = (off + len).div_ceil(64) * 64;
    }
    cmds.push(add_pointer(RSDP_FILE, TABLES_FILE, 16, 4));
    cmds.push(add_pointer(RSDP_FILE, TABLES_FILE, 24, 8));
    cmds.push(add_checksum(RSDP_FILE, 8, 0, 20));
    cmds.push(add_checksum(RSDP_FILE, 32, 0, 36));
    LoaderTables {
        tables: t.tables,
        rsdp: t.rsdp,
        loader: cmds.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc() -> AcpiConfig {
        AcpiConfig {
            q35: false,
            cpus: 1,
            lapic_addr: 0xfee0_0000,
            ioapic_addr: 0xfec0_0000,
            ioapic_id: 0,
            hpet_addr: Some(0xfed0_0000),
            pm_base: 0x600,
            sci_irq: 9,
            s5_slp_typ: S5_SLP_TYP_PIIX4,
            reset: (0xcf9, 6),
            pci_gsis: [10, 10, 11, 11],
            pci_mmio32: (0xe000_0000, 0xfebf_ffff),
            pci_mmio64: None,
            ecam: None,
        }
    }

    /// Find a table by signature through the XSDT, checking every checksum.
    fn find<'a>(t: &'a AcpiTables, base: u64, sig: &[u8; 4]) -> Option<&'a [u8]> {
        assert_eq!(checksum(&t.rsdp[0..20]), 0);
        assert_eq!(checksum(&t.rsdp), 0);
        let xsdt = u64::from_le_bytes(t.rsdp[24..32].try_into().unwrap());
        let table = |addr: u64| {
            let o = (addr - base) as usize;
            let len = u32::from_le_bytes(t.tables[o + 4..o + 8].try_into().unwrap()) as usize;
            let s = &t.tables[o..o + len];
            assert_eq!(checksum(s), 0, "checksum of {}", String::from_utf8_lossy(&s[0..4]));
            s
        };
        let x = table(xsdt);
        x[36..]
            .chunks(8)
            .map(|c| table(u64::from_le_bytes(c.try_into().unwrap())))
            .find(|s| &s[0..4] == sig)
    }

    /// Run a table-loader script the way SeaBIOS's romfile_loader.c does:
    /// files at the given addresses, pointers incremented by the source's
    /// address, checksums fixed with `data[offset] -= sum(start..start+len)`.
    fn run_loader(l: &LoaderTables, at: &[(&str, u64)]) -> (Vec<u8>, Vec<u8>, Vec<(String, u32, u8)>) {
        let mut files = vec![(TABLES_FILE, l.tables.clone()), (RSDP_FILE, l.rsdp.clone())];
        let cname = |b: &[u8]| String::from_utf8(b.iter().take_while(|c| **c != 0).copied().collect()).unwrap();
        let addr = |n: &str| at.iter().find(|(f, _)| *f == n).unwrap().1;
        let mut allocs = Vec::new();
        assert_eq!(l.loader.len() % loader::ENTRY_SIZE, 0);
        for e in l.loader.chunks(loader::ENTRY_SIZE) {
            let u32at = |o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap());
            match u32at(0) {
                loader::ALLOCATE => allocs.push((cname(&e[4..60]), u32at(60), e[64])),
                loader::ADD_POINTER => {
                    let (dest, src) = (cname(&e[4..60]), cname(&e[60..116]));
                    let (off, size) = (u32at(116) as usize, e[120] as usize);
                    let data = &mut files.iter_mut().find(|(f, _)| *f == dest).unwrap().1;
                    let mut v = [0u8; 8];
                    v[..size].copy_from_slice(&data[off..off + size]);
                    let p = u64::from_le_bytes(v).wrapping_add(addr(&src));
                    data[off..off + size].copy_from_slice(&p.to_le_bytes()[..size]);
                }
                loader::ADD_CHECKSUM => {
                    let file = cname(&e[4..60]);
                    let (off, start, len) = (u32at(60) as usize, u32at(64) as usize, u32at(68) as usize);
                    let data = &mut files.iter_mut().find(|(f, _)| *f == file).unwrap().1;
                    let sum = data[start..start + len].iter().fold(0u8, |a, b| a.wrapping_add(*b));
                    data[off] = data[off].wrapping_sub(sum);
                }
                c => panic!("unknown loader command {c}"),
            }
        }
        (files[0].1.clone(), files[1].1.clone(), allocs)
    }

    /// The loader script turns the offset-based blob into exactly the
    /// tables `build` makes for the address the firmware chose.
    #[test]
    fn table_loader_relocates_to_the_same_tables() {
        for cfg in [
            pc(),
            AcpiConfig {
                q35: true,
                ecam: Some((0xb000_0000, 255)),
                ..pc()
            },
        ] {
            let l = build_for_loader(&cfg);
            let base = 0x07fe_0040;
            let (tables, rsdp, allocs) = run_loader(&l, &[(TABLES_FILE, base), (RSDP_FILE, 0xf_5a10)]);
            assert_eq!(
                allocs,
                vec![
                    (TABLES_FILE.to_string(), 64, loader::ZONE_HIGH),
                    (RSDP_FILE.to_string(), 16, loader::ZONE_FSEG)
                ]
            );
            let direct = build(&cfg, base);
            assert_eq!(tables, direct.tables);
            assert_eq!(rsdp, direct.rsdp);
            let t = AcpiTables { rsdp, tables };
            assert!(find(&t, base, b"FACP").is_some());
            assert_eq!(find(&t, base, b"MCFG").is_some(), cfg.q35);
        }
    }

    #[test]
    fn pc_tables_are_linked_and_checksummed() {
        let base = 0x7ffe_0000;
        let t = build(&pc(), base);
        let fadt = find(&t, base, b"FACP").expect("FADT");
        assert_eq!(fadt.len(), 276);
        let dsdt = u64::from_le_bytes(fadt[140..148].try_into().unwrap());
        let o = (dsdt - base) as usize;
        assert_eq!(&t.tables[o..o + 4], b"DSDT");
        let dsdt_bytes = &t.tables[o..];
        assert!(dsdt_bytes.windows(4).any(|w| w == b"_S5_"));
        assert!(dsdt_bytes.windows(4).any(|w| w == b"_PRT"));
        assert_eq!(u16::from_le_bytes([fadt[46], fadt[47]]), 9);
        let madt = find(&t, base, b"APIC").expect("MADT");
        assert_eq!(madt[44], 0, "first entry is a local APIC");
        assert!(find(&t, base, b"HPET").is_some());
        assert!(find(&t, base, b"MCFG").is_none());
    }

    #[test]
    fn q35_has_mcfg_and_pcie_root() {
        let mut c = pc();
        c.q35 = true;
        c.ecam = Some((0xb000_0000, 255));
        c.pci_gsis = [16, 17, 18, 19];
        let base = 0x100_0000;
        let t = build(&c, base);
        let m = find(&t, base, b"MCFG").expect("MCFG");
        assert_eq!(u64::from_le_bytes(m[44..52].try_into().unwrap()), 0xb000_0000);
        // The ECAM window is a motherboard resource (PNP0C02 = EISA id 41 d0 0c 02),
        // or Linux does not use MMCONFIG.
        let fadt = find(&t, base, b"FACP").expect("FADT");
        let o = (u64::from_le_bytes(fadt[140..148].try_into().unwrap()) - base) as usize;
        let dsdt = &t.tables[o..];
        assert!(dsdt.windows(4).any(|w| w == [0x41, 0xd0, 0x0c, 0x02]), "no PNP0C02 device");
        // Memory32Fixed descriptor (0x86) with base 0xb0000000 and length 256 MiB.
        let desc = [0x86, 9, 0, 0, 0, 0, 0, 0xb0, 0, 0, 0, 0x10];
        assert!(dsdt.windows(desc.len()).any(|w| w == desc), "ECAM not reserved");
    }
}

#[cfg(test)]
mod iasl {
    use super::*;

    /// Disassemble the DSDT with ACPICA's iasl (Debian package acpica-tools),
    /// an independent check that the AML is well-formed. Skipped, loudly,
    /// where iasl is not installed.
    #[test]
    fn dsdt_disassembles_with_iasl() {
        if std::process::Command::new("iasl").arg("-v").output().is_err() {
            eprintln!("SKIPPED dsdt_disassembles_with_iasl: iasl not installed (apt-get install acpica-tools)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("kagami-iasl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for q35 in [false, true] {
            let mut c = tests_cfg();
            c.q35 = q35;
            let d = dsdt(&c);
            let f = dir.join(format!("dsdt{}.aml", q35 as u8));
            std::fs::write(&f, &d).unwrap();
            let out = std::process::Command::new("iasl").arg("-d").arg(&f).output().unwrap();
            let dsl = std::fs::read_to_string(f.with_extension("dsl")).unwrap_or_default();
            assert!(out.status.success(), "iasl failed: {}", String::from_utf8_lossy(&out.stderr));
            assert!(dsl.contains("PNP0A0") && dsl.contains("_S5_") && dsl.contains("PNP0501"), "{dsl}");
        }
        if std::env::var_os("KAGAMI_KEEP_IASL").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    fn tests_cfg() -> AcpiConfig {
        AcpiConfig {
            q35: false,
            cpus: 2,
            lapic_addr: 0xfee0_0000,
            ioapic_addr: 0xfec0_0000,
            ioapic_id: 0,
            hpet_addr: Some(0xfed0_0000),
            pm_base: 0x600,
            sci_irq: 9,
            s5_slp_typ: 0,
            reset: (0xcf9, 6),
            pci_gsis: [10, 10, 11, 11],
            pci_mmio32: (0xe000_0000, 0xfebf_ffff),
            pci_mmio64: Some((0x1_0000_0000, 0x1_ffff_ffff)),
            ecam: None,
        }
    }
}
