//! The Linux x86 boot protocol (Documentation/arch/x86/boot.rst, protocol
//! 2.06 and later): load a bzImage's protected-mode part at 1 MiB, the initrd
//! high in RAM, fill in the "zero page" (struct boot_params) with the setup
//! header, the command line and the E820 map, and enter at the 64-bit entry
//! (startup_64, load address + 0x200) when the kernel has one, else at the
//! 32-bit entry (code32_start) in flat protected mode.
//!
//! Left out: the 16-bit real-mode entry (setup code) — direct boot never runs
//! it, as QEMU's and Firecracker's direct boot do not; EFI handover.

use crate::boot::*;
use crate::e820::E820Map;

/// Guest-physical layout of the boot data (low memory, below 0x9f000).
pub const BOOT_PARAMS_ADDR: u64 = 0x7000;
pub const PAGE_TABLES_ADDR: u64 = 0x9000;
pub const CMDLINE_ADDR: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 0x10000;
pub const KERNEL_ADDR: u64 = 0x10_0000;
/// Initial stack for the 32-bit path (the kernel sets up its own at once).
const BOOT_STACK: u64 = 0x8ff0;

// Offsets in the setup header / boot_params (boot.rst, "THE REAL-MODE KERNEL HEADER").
const OFF_E820_ENTRIES: usize = 0x1e8;
const OFF_SETUP_SECTS: usize = 0x1f1;
const OFF_JUMP: usize = 0x200;
const OFF_HEADER_MAGIC: usize = 0x202;
const OFF_VERSION: usize = 0x206;
const OFF_TYPE_OF_LOADER: usize = 0x210;
const OFF_LOADFLAGS: usize = 0x211;
const OFF_CODE32_START: usize = 0x214;
const OFF_RAMDISK_IMAGE: usize = 0x218;
const OFF_RAMDISK_SIZE: usize = 0x21c;
const OFF_HEAP_END_PTR: usize = 0x224;
const OFF_CMD_LINE_PTR: usize = 0x228;
const OFF_INITRD_ADDR_MAX: usize = 0x22c;
const OFF_XLOADFLAGS: usize = 0x236;
const OFF_CMDLINE_SIZE: usize = 0x238;
const OFF_INIT_SIZE: usize = 0x260;
const OFF_E820_TABLE: usize = 0x2d0;
const E820_MAX: usize = 128;

const LOADED_HIGH: u8 = 0x01;
const CAN_USE_HEAP: u8 = 0x80;
const XLF_KERNEL_64: u16 = 0x01;

/// Facts read from a bzImage's setup header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BzImage<'a> {
    pub version: u16,
    pub setup_bytes: usize,
    pub protected: &'a [u8],
    pub has_64bit_entry: bool,
    pub initrd_addr_max: u32,
    pub cmdline_size: u32,
    pub init_size: u32,
    header: &'a [u8],
}

fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

impl<'a> BzImage<'a> {
    /// Parse and check a bzImage. Errors say what is wrong with the file.
    pub fn parse(image: &'a [u8]) -> Result<BzImage<'a>, BootError> {
        if image.len() < 0x270 || &image[OFF_HEADER_MAGIC..OFF_HEADER_MAGIC + 4] != b"HdrS" {
            return err("not a Linux bzImage (no \"HdrS\" setup header at offset 0x202)");
        }
        let version = rd16(image, OFF_VERSION);
        if version < 0x0206 {
            return err(format!(
                "Linux boot protocol {}.{:02} is too old (2.06 or later needed)",
                version >> 8,
                version & 0xff
            ));
        }
        if image[OFF_LOADFLAGS] & LOADED_HIGH == 0 {
            return err("zImage kernels (loaded below 1 MiB) are not supported; use a bzImage");
        }
        let sects = match image[OFF_SETUP_SECTS] {
            0 => 4,
            n => n as usize,
        };
        let setup_bytes = (sects + 1) * 512;
        if setup_bytes >= image.len() {
            return err("bzImage is truncated: no protected-mode kernel after the setup sectors");
        }
        let header_end = (OFF_JUMP + 2 + image[OFF_JUMP + 1] as usize).min(setup_bytes);
        Ok(BzImage {
            version,
            setup_bytes,
            protected: &image[setup_bytes..],
            has_64bit_entry: version >= 0x020c && rd16(image, OFF_XLOADFLAGS) & XLF_KERNEL_64 != 0,
            initrd_addr_max: rd32(image, OFF_INITRD_ADDR_MAX),
            cmdline_size: if version >= 0x0206 { rd32(image, OFF_CMDLINE_SIZE) } else { 255 },
            init_size: if version >= 0x020a { rd32(image, OFF_INIT_SIZE) } else { 0 },
            header: &image[OFF_SETUP_SECTS..header_end],
        })
    }
}

/// Load a bzImage (and initrd) for direct boot and return the entry state.
pub fn load_linux(
    mem: &mut dyn GuestWriter,
    e820: &E820Map,
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
) -> Result<BootEntry, BootError> {
    let bz = BzImage::parse(kernel)?;
    let ram_top = e820.top_of_ram_below(1 << 32);
    let kernel_end = KERNEL_ADDR + (bz.protected.len() as u64).max(bz.init_size as u64);
    if !e820.is_ram(KERNEL_ADDR, kernel_end - KERNEL_ADDR) {
        return err(format!(
            "not enough RAM for the kernel: it needs {} MiB above 1 MiB",
            (kernel_end - KERNEL_ADDR) >> 20
        ));
    }
    if cmdline.len() + 1 > CMDLINE_MAX.min(bz.cmdline_size as usize + 1) {
        return err(format!(
            "kernel command line is {} bytes; this kernel accepts at most {}",
            cmdline.len(),
            bz.cmdline_size
        ));
    }
    mem.write(KERNEL_ADDR, bz.protected)?;

    let mut zp = vec![0u8; 4096];
    zp[OFF_SETUP_SECTS..OFF_SETUP_SECTS + bz.header.len()].copy_from_slice(bz.header);
    zp[OFF_TYPE_OF_LOADER] = 0xff;
    zp[OFF_LOADFLAGS] |= CAN_USE_HEAP;
    zp[OFF_HEAP_END_PTR..OFF_HEAP_END_PTR + 2].copy_from_slice(&0xfe00u16.to_le_bytes());
    zp[OFF_CODE32_START..OFF_CODE32_START + 4].copy_from_slice(&(KERNEL_ADDR as u32).to_le_bytes());
    zp[OFF_CMD_LINE_PTR..OFF_CMD_LINE_PTR + 4].copy_from_slice(&(CMDLINE_ADDR as u32).to_le_bytes());
    let mut c = cmdline.as_bytes().to_vec();
    c.push(0);
    mem.write(CMDLINE_ADDR, &c)?;

    if let Some(rd) = initrd {
        // As high as allowed, page aligned, above the kernel's init area.
        let max = (bz.initrd_addr_max as u64).min(ram_top.saturating_sub(1));
        let addr = (max + 1).saturating_sub(rd.len() as u64) & !0xfff;
        if addr < kernel_end || !e820.is_ram(addr, rd.len() as u64) {
            return err(format!(
                "not enough RAM for a {} MiB initrd next to the kernel: give the guest more memory (-m)",
                rd.len() >> 20
            ));
        }
        mem.write(addr, rd)?;
        zp[OFF_RAMDISK_IMAGE..OFF_RAMDISK_IMAGE + 4].copy_from_slice(&(addr as u32).to_le_bytes());
        zp[OFF_RAMDISK_SIZE..OFF_RAMDISK_SIZE + 4].copy_from_slice(&(rd.len() as u32).to_le_bytes());
    }

    let entries = e820.entries();
    if entries.len() > E820_MAX {
        return err(format!("memory map has {} ranges; boot_params holds {E820_MAX}", entries.len()));
    }
    zp[OFF_E820_ENTRIES] = entries.len() as u8;
    for (i, e) in entries.iter().enumerate() {
        let o = OFF_E820_TABLE + 20 * i;
        zp[o..o + 20].copy_from_slice(&e.to_bytes());
    }
    mem.write(BOOT_PARAMS_ADDR, &zp)?;

    // boot.rst: __BOOT_CS = 0x10 and __BOOT_DS = 0x18, 4 GiB flat.
    let code = if bz.has_64bit_entry { DESC_CODE64 } else { DESC_CODE32 };
    let gdt_limit = write_gdt(mem, GDT_ADDR, &[0, 0, code, DESC_DATA])?;
    let (mode, rip) = if bz.has_64bit_entry {
        let cr3 = write_identity_page_tables(mem, PAGE_TABLES_ADDR)?;
        (EntryMode::Long64 { cr3 }, KERNEL_ADDR + 0x200)
    } else {
        (EntryMode::Protected32, KERNEL_ADDR)
    };
    Ok(BootEntry {
        mode,
        rip,
        rax: 0,
        rbx: 0,
        rsi: BOOT_PARAMS_ADDR,
        rsp: BOOT_STACK,
        gdt_base: GDT_ADDR,
        gdt_limit,
        cs: (0x10, code),
        ds: (0x18, DESC_DATA),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::testmem::VecMem;
    use crate::e820::E820Type;

    fn fake_bzimage(version: u16, xlf: u16) -> Vec<u8> {
        let mut k = vec![0u8; 5 * 512 + 4096];
        k[OFF_SETUP_SECTS] = 4;
        k[OFF_JUMP] = 0xeb;
        k[OFF_JUMP + 1] = 0x66;
        k[OFF_HEADER_MAGIC..OFF_HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        k[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&version.to_le_bytes());
        k[OFF_LOADFLAGS] = LOADED_HIGH;
        k[OFF_INITRD_ADDR_MAX..OFF_INITRD_ADDR_MAX + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        k[OFF_XLOADFLAGS..OFF_XLOADFLAGS + 2].copy_from_slice(&xlf.to_le_bytes());
        k[OFF_CMDLINE_SIZE..OFF_CMDLINE_SIZE + 4].copy_from_slice(&2047u32.to_le_bytes());
        k[5 * 512] = 0xfa; // first byte of the protected-mode part
        k
    }

    fn e820(mb: u64) -> E820Map {
        let mut m = E820Map::new();
        m.add(0, 0x9fc00, E820Type::Ram);
        m.add(0x10_0000, (mb << 20) - 0x10_0000, E820Type::Ram);
        m
    }

    #[test]
    fn sixty_four_bit_kernel_gets_long_mode_entry_and_zero_page() {
        let mut mem = VecMem(vec![0; 64 << 20]);
        let k = fake_bzimage(0x020f, XLF_KERNEL_64);
        let initrd = vec![0x5a; 10000];
        let e = load_linux(&mut mem, &e820(64), &k, Some(&initrd), "console=ttyS0").unwrap();
        assert_eq!(e.rip, KERNEL_ADDR + 0x200);
        assert_eq!(e.rsi, BOOT_PARAMS_ADDR);
        assert!(matches!(e.mode, EntryMode::Long64 { cr3: PAGE_TABLES_ADDR }));
        assert_eq!(mem.0[KERNEL_ADDR as usize], 0xfa);
        let zp = BOOT_PARAMS_ADDR as usize;
        assert_eq!(mem.0[zp + OFF_TYPE_OF_LOADER], 0xff);
        assert_eq!(mem.0[zp + OFF_E820_ENTRIES], 2);
        assert_eq!(&mem.0[zp + OFF_HEADER_MAGIC..zp + OFF_HEADER_MAGIC + 4], b"HdrS");
        let rd = mem.u32(BOOT_PARAMS_ADDR + OFF_RAMDISK_IMAGE as u64) as u64;
        assert_eq!(rd & 0xfff, 0);
        assert!(rd + 10000 <= 64 << 20 && rd > 32 << 20, "initrd placed high: {rd:#x}");
        assert_eq!(mem.0[rd as usize], 0x5a);
        assert_eq!(&mem.0[CMDLINE_ADDR as usize..CMDLINE_ADDR as usize + 14], b"console=ttyS0\0");
        // Identity map: 2 MiB page number 5 maps to 10 MiB.
        assert_eq!(mem.u64(PAGE_TABLES_ADDR + 0x2000 + 5 * 8), (5 << 21) | 0x83);
        assert_eq!(mem.u64(GDT_ADDR + 0x10), DESC_CODE64);
    }

    #[test]
    fn old_or_bad_images_are_refused_with_a_reason() {
        let mut mem = VecMem(vec![0; 16 << 20]);
        let e = load_linux(&mut mem, &e820(16), b"not a kernel", None, "").unwrap_err();
        assert!(e.0.contains("not a Linux bzImage"), "{e}");
        let e = load_linux(&mut mem, &e820(16), &fake_bzimage(0x0204, 0), None, "").unwrap_err();
        assert!(e.0.contains("too old"), "{e}");
        let e = load_linux(&mut mem, &e820(16), &fake_bzimage(0x020f, 1), Some(&vec![0; 15 << 20]), "").unwrap_err();
        assert!(e.0.contains("initrd"), "{e}");
    }

    #[test]
    fn thirty_two_bit_kernel_enters_at_code32_start() {
        let mut mem = VecMem(vec![0; 16 << 20]);
        let e = load_linux(&mut mem, &e820(16), &fake_bzimage(0x020a, 0), None, "x").unwrap();
        assert_eq!(e.mode, EntryMode::Protected32);
        assert_eq!(e.rip, KERNEL_ADDR);
        assert_eq!(e.cs, (0x10, DESC_CODE32));
    }
}
