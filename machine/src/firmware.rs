//! What the machine tells firmware: the fw_cfg items and files QEMU's PC
//! machines provide (docs/specs/fw_cfg.rst and what SeaBIOS reads), and the
//! `-bios` image checks.
//!
//! Items: signature and ID (with the DMA bit), RAM size, CPU counts,
//! `-nographic`, the boot menu flag; with `-kernel`, the Linux setup code,
//! protected-mode kernel, initrd and command line split and patched the way
//! QEMU's `x86_load_linux` does (an option ROM such as QEMU's
//! `linuxboot_dma.bin` copies them into place). Files: `etc/e820`,
//! `bootorder`, `etc/boot-fail-wait`, the ACPI tables through the table
//! loader (`etc/acpi/tables`, `etc/acpi/rsdp`, `etc/table-loader`) and,
//! when given, the SMBIOS tables (`etc/smbios/smbios-tables`,
//! `etc/smbios/smbios-anchor`).

use kagami_bios::acpi::{self, AcpiConfig};
use kagami_bios::e820::{E820Map, E820Type};
use kagami_devices::fw_cfg::{self, FwCfg};
use kagami_devices::DmaMemory;

/// Largest `-bios` image: QEMU maps it below 4 GiB; 16 MiB is the flash
/// window chipsets decode there.
pub const MAX_BIOS_SIZE: usize = 16 << 20;

/// Check a `-bios` image the way QEMU does: a non-empty multiple of 64 KiB.
pub fn check_bios(path: &str, image: &[u8]) -> Result<(), String> {
    if image.is_empty() || image.len() % 0x1_0000 != 0 || image.len() > MAX_BIOS_SIZE {
        return Err(format!(
            "-bios {path}: {} bytes is not a firmware image size (a multiple of 64 KiB, at most 16 MiB)",
            image.len()
        ));
    }
    Ok(())
}

/// The machine facts firmware asks for.
pub struct FwCfgSetup<'a> {
    pub ram_below_4g: u64,
    pub ram_above_4g: u64,
    pub cpus: u16,
    pub nographic: bool,
    pub acpi: &'a AcpiConfig,
    /// SMBIOS entry point (anchor) and structure table, if any.
    pub smbios: Option<(Vec<u8>, Vec<u8>)>,
    /// `-kernel` (a Linux bzImage), `-initrd`, `-append`.
    pub linux: Option<(&'a [u8], Option<&'a [u8]>, &'a str)>,
    /// The option ROM that boots `linux` (QEMU's linuxboot_dma.bin), offered
    /// as `genroms/linuxboot_dma.bin` and named first in `bootorder`.
    pub linuxboot_rom: Option<Vec<u8>>,
}

/// Where QEMU's option ROMs live on Debian (package qemu-system-data).
pub const QEMU_DATA_DIRS: [&str; 2] = ["/usr/share/qemu", "/usr/share/seabios"];
pub const LINUXBOOT_ROM: &str = "linuxboot_dma.bin";

/// QEMU's linuxboot_dma.bin, which firmware runs to start a `-kernel`
/// through fw_cfg (as QEMU does for `-bios` with `-kernel`).
pub fn find_linuxboot_rom() -> Result<Vec<u8>, String> {
    for d in QEMU_DATA_DIRS {
        let p = std::path::Path::new(d).join(LINUXBOOT_ROM);
        if let Ok(b) = std::fs::read(&p) {
            return Ok(b);
        }
    }
    Err(format!(
        "-kernel with -bios: the firmware starts the kernel through QEMU's {LINUXBOOT_ROM} option ROM, \
         which is not in {} (install the Debian package qemu-system-data)",
        QEMU_DATA_DIRS.join(" or ")
    ))
}

/// The E820 map QEMU hands firmware in `etc/e820`: the RAM only (firmware
/// reserves its own areas).
pub fn firmware_e820(below_4g: u64, above_4g: u64) -> E820Map {
    let mut m = E820Map::new();
    m.add(0, below_4g, E820Type::Ram);
    m.add(1 << 32, above_4g, E820Type::Ram);
    m
}

/// Build the fw_cfg device for this machine.
pub fn build_fw_cfg(s: &FwCfgSetup, dma: Option<Box<dyn DmaMemory>>) -> Result<FwCfg, String> {
    let err = |e: fw_cfg::FwCfgError| format!("fw_cfg: {e}");
    let mut f = FwCfg::new(dma);
    f.set_ram_size(s.ram_below_4g + s.ram_above_4g);
    f.set_cpus(s.cpus, s.cpus);
    f.set_nographic(s.nographic);
    f.add_file("etc/e820", firmware_e820(s.ram_below_4g, s.ram_above_4g).to_bytes())
        .map_err(err)?;
    // Boot devices in order, one OpenFirmware path a line; none named:
    // firmware uses its default order.
    let bootorder = match &s.linuxboot_rom {
        Some(rom) => {
            f.add_file(&format!("genroms/{LINUXBOOT_ROM}"), rom.clone()).map_err(err)?;
            format!("/rom@genroms/{LINUXBOOT_ROM}\n").into_bytes()
        }
        None => Vec::new(),
    };
    f.add_file("bootorder", bootorder).map_err(err)?;
    // -1: after "No bootable device" wait forever instead of rebooting.
    f.add_file("etc/boot-fail-wait", (-1i32).to_le_bytes().to_vec()).map_err(err)?;
    let t = acpi::build_for_loader(s.acpi);
    f.add_file(acpi::TABLES_FILE, t.tables).map_err(err)?;
    f.add_file(acpi::RSDP_FILE, t.rsdp).map_err(err)?;
    f.add_file(acpi::LOADER_FILE, t.loader).map_err(err)?;
    if let Some((anchor, tables)) = &s.smbios {
        f.add_file("etc/smbios/smbios-anchor", anchor.clone()).map_err(err)?;
        f.add_file("etc/smbios/smbios-tables", tables.clone()).map_err(err)?;
    }
    if let Some((kernel, initrd, cmdline)) = s.linux {
        let l = split_linux(kernel, initrd, cmdline, s.ram_below_4g)?;
        f.set_setup(l.setup_addr, l.setup);
        f.set_kernel(l.kernel_addr, l.kernel);
        f.set_cmdline(l.cmdline_addr, cmdline);
        if let Some(d) = initrd {
            f.set_initrd(l.initrd_addr, d.to_vec());
        }
    }
    Ok(f)
}

/// A bzImage split for fw_cfg: real-mode setup (header patched) and the
/// protected-mode kernel, with the addresses an option ROM loads them at.
pub struct LinuxFwCfg {
    pub setup_addr: u32,
    pub setup: Vec<u8>,
    pub kernel_addr: u32,
    pub kernel: Vec<u8>,
    pub cmdline_addr: u32,
    pub initrd_addr: u32,
}

/// Room QEMU keeps free at the top of low RAM for ACPI data when placing
/// the initrd.
const ACPI_DATA_ROOM: u64 = 0x2_8000;

/// QEMU's `x86_load_linux` for fw_cfg: where the setup code, command line
/// and kernel go by boot protocol version, and the header fields it fills
/// in (Documentation/arch/x86/boot.rst: type_of_loader 0x210, loadflags
/// CAN_USE_HEAP 0x211, ramdisk_image/size 0x218/0x21c, heap_end_ptr 0x224,
/// cmd_line_ptr 0x228, initrd_addr_max 0x22c).
pub fn split_linux(k: &[u8], initrd: Option<&[u8]>, cmdline: &str, ram_below_4g: u64) -> Result<LinuxFwCfg, String> {
    if k.len() < 0x250 || &k[0x202..0x206] != b"HdrS" {
        return Err("-kernel: with -bios, the kernel must be a Linux bzImage (setup header 2.00 or later)".into());
    }
    let u16at = |o: usize| u16::from_le_bytes([k[o], k[o + 1]]);
    let u32at = |o: usize| u32::from_le_bytes(k[o..o + 4].try_into().unwrap());
    let protocol = u16at(0x206);
    let loaded_high = k[0x211] & 1 != 0;
    let (real_addr, prot_addr, cmdline_addr): (u32, u32, u32) = if !loaded_high {
        return Err("-kernel: a zImage (not loaded high) cannot be booted through fw_cfg".into());
    } else if protocol < 0x202 {
        (0x9_0000, 0x10_0000, 0x9_a000 - (cmdline.len() as u32 + 1))
    } else {
        (0x1_0000, 0x10_0000, 0x2_0000)
    };
    let setup_sects = match k[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let setup_size = (setup_sects + 1) * 512;
    if setup_size >= k.len() {
        return Err(format!("-kernel: setup code of {setup_size} bytes leaves no kernel"));
    }
    let mut setup = k[..setup_size].to_vec();
    let put16 = |s: &mut Vec<u8>, o: usize, v: u16| s[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |s: &mut Vec<u8>, o: usize, v: u32| s[o..o + 4].copy_from_slice(&v.to_le_bytes());
    if protocol >= 0x202 {
        put32(&mut setup, 0x228, cmdline_addr);
    } else {
        put16(&mut setup, 0x20, 0xa33f);
        put16(&mut setup, 0x22, (cmdline_addr - real_addr) as u16);
    }
    setup[0x210] = 0xb0;
    if protocol >= 0x201 {
        setup[0x211] |= 0x80;
        put16(&mut setup, 0x224, (cmdline_addr - real_addr - 0x200) as u16);
    }
    let mut initrd_addr = 0;
    if let Some(d) = initrd {
        let mut max = if protocol >= 0x203 { u32at(0x22c) as u64 } else { 0x37ff_ffff };
        if max >= ram_below_4g.saturating_sub(ACPI_DATA_ROOM) {
            max = ram_below_4g.saturating_sub(ACPI_DATA_ROOM + 1);
        }
        let size = d.len() as u64;
        if size > max.saturating_sub(prot_addr as u64 + (k.len() - setup_size) as u64) {
            return Err(format!("-initrd: {size} bytes do not fit below {max:#x} next to the kernel"));
        }
        initrd_addr = ((max - size) & !0xfff) as u32;
        put32(&mut setup, 0x218, initrd_addr);
        put32(&mut setup, 0x21c, size as u32);
    }
    Ok(LinuxFwCfg {
        setup_addr: real_addr,
        setup,
        kernel_addr: prot_addr,
        kernel: k[setup_size..].to_vec(),
        cmdline_addr,
        initrd_addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kagami_devices::PortIoDevice;

    fn acpi_cfg() -> AcpiConfig {
        crate::pc::acpi_config_for(crate::pc::MachineKind::Pc)
    }

    fn read_item(f: &mut FwCfg, key: u16, len: usize) -> Vec<u8> {
        f.write(fw_cfg::SELECTOR, 2, key as u32);
        (0..len).map(|_| f.read(fw_cfg::DATA, 1) as u8).collect()
    }

    /// The directory lists the standard files; each reads back.
    #[test]
    fn standard_items_and_files() {
        let cfg = acpi_cfg();
        let mut f = build_fw_cfg(
            &FwCfgSetup {
                ram_below_4g: 128 << 20,
                ram_above_4g: 0,
                cpus: 1,
                nographic: true,
                acpi: &cfg,
                smbios: Some((b"_SM_".to_vec(), vec![127, 4, 0, 0, 0, 0])),
                linux: None,
                linuxboot_rom: None,
            },
            None,
        )
        .unwrap();
        assert_eq!(read_item(&mut f, fw_cfg::SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut f, fw_cfg::RAM_SIZE, 8), (128u64 << 20).to_le_bytes());
        assert_eq!(read_item(&mut f, fw_cfg::NB_CPUS, 2), [1, 0]);
        let e820 = f.file("etc/e820").unwrap();
        assert_eq!(e820.len(), 20);
        assert_eq!(&e820[8..16], &(128u64 << 20).to_le_bytes());
        assert_eq!(f.file("etc/boot-fail-wait").unwrap(), [0xff; 4]);
        assert_eq!(f.file("bootorder").unwrap(), b"");
        for name in [
            "etc/acpi/tables",
            "etc/acpi/rsdp",
            "etc/table-loader",
            "etc/smbios/smbios-anchor",
            "etc/smbios/smbios-tables",
        ] {
            let sel = f.file_selector(name).unwrap_or_else(|| panic!("{name} missing"));
            let len = f.file(name).unwrap().len();
            assert!(len > 0);
            assert_eq!(read_item(&mut f, sel, len), f.file(name).unwrap().to_vec());
        }
        assert_eq!(&f.file("etc/acpi/rsdp").unwrap()[0..8], b"RSD PTR ");
    }

    fn bzimage(protocol: u16) -> Vec<u8> {
        let mut k = vec![0u8; 0x4000];
        k[0x1f1] = 3;
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&protocol.to_le_bytes());
        k[0x211] = 1;
        k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        k[0x800] = 0xaa;
        k
    }

    #[test]
    fn linux_is_split_and_patched_like_qemu() {
        let k = bzimage(0x20f);
        let l = split_linux(&k, Some(&[1; 5000]), "console=ttyS0", 64 << 20).unwrap();
        assert_eq!((l.setup_addr, l.kernel_addr, l.cmdline_addr), (0x1_0000, 0x10_0000, 0x2_0000));
        assert_eq!(l.setup.len(), 4 * 512);
        assert_eq!(l.kernel[0], 0xaa);
        assert_eq!(l.setup[0x210], 0xb0);
        assert_eq!(l.setup[0x211], 0x81);
        assert_eq!(u32::from_le_bytes(l.setup[0x228..0x22c].try_into().unwrap()), 0x2_0000);
        assert_eq!(u16::from_le_bytes([l.setup[0x224], l.setup[0x225]]), 0xfe00);
        let initrd = u32::from_le_bytes(l.setup[0x218..0x21c].try_into().unwrap());
        assert_eq!(initrd, l.initrd_addr);
        assert_eq!(initrd % 4096, 0);
        assert!(initrd as u64 + 5000 < (64 << 20) - ACPI_DATA_ROOM);
        assert_eq!(u32::from_le_bytes(l.setup[0x21c..0x220].try_into().unwrap()), 5000);
        assert!(split_linux(&[0; 100], None, "", 64 << 20).is_err());
        assert!(split_linux(&k, Some(&vec![0; 70 << 20]), "", 64 << 20).is_err());
    }

    #[test]
    fn bios_sizes() {
        assert!(check_bios("b", &vec![0; 256 << 10]).is_ok());
        assert!(check_bios("b", &[]).is_err());
        assert!(check_bios("b", &vec![0; 1000]).is_err());
        assert!(check_bios("b", &vec![0; 32 << 20]).is_err());
    }
}
