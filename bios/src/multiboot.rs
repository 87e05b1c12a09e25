//! Multiboot v1 (the Multiboot Specification 0.6.96) for 32-bit kernels:
//! find the header in the first 8 KiB, load the ELF32 program headers (or
//! the a.out-kludge address fields), load modules page-aligned after the
//! kernel, build the multiboot_info structure with memory sizes, command
//! line, modules and the memory map, and enter with EAX = 0x2BADB002 and
//! EBX = the info address in flat 32-bit protected mode, paging off.
//!
//! Left out: video mode requests (header flag bit 2) — refused with a
//! message, as the spec requires for requirement bits a loader cannot meet;
//! symbol tables; drives and APM tables.

use crate::boot::*;
use crate::e820::E820Map;

pub const MAGIC_HEADER: u32 = 0x1bad_b002;
pub const MAGIC_EAX: u32 = 0x2bad_b002;

const INFO_ADDR: u64 = 0x8000;
const HDR_AOUT_KLUDGE: u32 = 1 << 16;
/// Requirement bits we meet: page-align modules (0), memory info (1).
const SUPPORTED_REQUIREMENTS: u32 = 0b11;

const INFO_MEM: u32 = 1 << 0;
const INFO_CMDLINE: u32 = 1 << 2;
const INFO_MODS: u32 = 1 << 3;
const INFO_MMAP: u32 = 1 << 6;
const INFO_LOADER_NAME: u32 = 1 << 9;

/// A Multiboot module: its string (path and arguments) and contents.
pub struct Module<'a> {
    pub string: String,
    pub data: &'a [u8],
}

fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// Offset of a valid Multiboot header, if the image has one.
pub fn find_header(image: &[u8]) -> Option<usize> {
    if image.len() < 12 {
        return None;
    }
    let end = image.len().min(8192) - 12;
    (0..=end)
        .step_by(4)
        .find(|&o| rd32(image, o) == MAGIC_HEADER && rd32(image, o).wrapping_add(rd32(image, o + 4)).wrapping_add(rd32(image, o + 8)) == 0)
}

/// Load the kernel's segments; returns (entry point, first free address after the image).
fn load_kernel(mem: &mut dyn GuestWriter, image: &[u8], hdr: usize, e820: &E820Map) -> Result<(u64, u64), BootError> {
    let flags = rd32(image, hdr + 4);
    let check = |a: u64, len: u64| -> Result<(), BootError> {
        if e820.is_ram(a, len.max(1)) {
            Ok(())
        } else {
            err(format!(
                "multiboot kernel wants {len:#x} bytes at {a:#x}, which is not RAM in this machine"
            ))
        }
    };
    if flags & HDR_AOUT_KLUDGE != 0 {
        if image.len() < hdr + 32 {
            return err("multiboot header is truncated");
        }
        let (header_addr, load_addr, load_end, bss_end, entry) = (
            rd32(image, hdr + 12),
            rd32(image, hdr + 16),
            rd32(image, hdr + 20),
            rd32(image, hdr + 24),
            rd32(image, hdr + 28),
        );
        if load_addr > header_addr || (header_addr - load_addr) as usize > hdr {
            return err("multiboot header address fields are inconsistent");
        }
        let file_off = hdr - (header_addr - load_addr) as usize;
        let len = if load_end == 0 {
            image.len() - file_off
        } else {
            (load_end.saturating_sub(load_addr)) as usize
        };
        let data = image
            .get(file_off..file_off + len)
            .ok_or_else(|| BootError("multiboot load range runs past the end of the file".into()))?;
        check(load_addr as u64, len as u64)?;
        mem.write(load_addr as u64, data)?;
        let end = if bss_end > load_addr + len as u32 {
            let bss = (bss_end - load_addr) as usize - len;
            check(load_addr as u64 + len as u64, bss as u64)?;
            mem.write(load_addr as u64 + len as u64, &vec![0; bss])?;
            bss_end
        } else {
            load_addr + len as u32
        };
        return Ok((entry as u64, end as u64));
    }
    // ELF32, little-endian, x86.
    if image.len() < 52 || &image[0..4] != b"\x7fELF" || image[4] != 1 || image[5] != 1 || rd16(image, 18) != 3 {
        return err("multiboot kernel is neither a 32-bit x86 ELF file nor uses the header's address fields");
    }
    let entry = rd32(image, 24) as u64;
    let (phoff, phentsize, phnum) = (rd32(image, 28) as usize, rd16(image, 42) as usize, rd16(image, 44) as usize);
    let mut end = 0u64;
    for k in 0..phnum {
        let p = phoff + k * phentsize;
        if p + 32 > image.len() {
            return err("ELF program headers run past the end of the file");
        }
        if rd32(image, p) != 1 {
            continue; // not PT_LOAD
        }
        let (off, paddr, filesz, memsz) = (
            rd32(image, p + 4) as usize,
            rd32(image, p + 12) as u64,
            rd32(image, p + 16) as usize,
            rd32(image, p + 20) as u64,
        );
        let data = image
            .get(off..off + filesz)
            .ok_or_else(|| BootError("ELF segment runs past the end of the file".into()))?;
        check(paddr, memsz.max(filesz as u64))?;
        mem.write(paddr, data)?;
        if memsz > filesz as u64 {
            mem.write(paddr + filesz as u64, &vec![0; (memsz - filesz as u64) as usize])?;
        }
        end = end.max(paddr + memsz.max(filesz as u64));
    }
    if end == 0 {
        return err("ELF file has no loadable segments");
    }
    Ok((entry, end))
}

/// Load a Multiboot kernel and its modules; `kernel_path` starts the command line.
pub fn load_multiboot(
    mem: &mut dyn GuestWriter,
    e820: &E820Map,
    image: &[u8],
    kernel_path: &str,
    args: &str,
    modules: &[Module<'_>],
) -> Result<BootEntry, BootError> {
    let Some(hdr) = find_header(image) else {
        return err("no Multiboot header in the first 8 KiB of the kernel");
    };
    let flags = rd32(image, hdr + 4);
    let unsupported = flags & 0xffff & !SUPPORTED_REQUIREMENTS;
    if unsupported != 0 {
        return err(format!(
            "multiboot kernel requires features kagami does not provide (header flags {unsupported:#x}; video modes are not supported)"
        ));
    }
    let (entry, kernel_end) = load_kernel(mem, image, hdr, e820)?;

    // Strings and tables in the info area, modules after the kernel.
    let mut strings: Vec<u8> = Vec::new();
    let mut add_str = |s: &str| -> u64 {
        let at = INFO_ADDR + 0x1000 + strings.len() as u64;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        at
    };
    let cmdline = if args.is_empty() {
        kernel_path.to_string()
    } else {
        format!("{kernel_path} {args}")
    };
    let cmdline_addr = add_str(&cmdline);
    let name_addr = add_str("kagami");
    let mut mods = Vec::new();
    let mut next = (kernel_end + 0xfff) & !0xfff;
    for m in modules {
        let len = m.data.len() as u64;
        if !e820.is_ram(next, len.max(1)) {
            return err(format!("not enough RAM to load multiboot module '{}'", m.string));
        }
        mem.write(next, m.data)?;
        let s = add_str(&m.string);
        mods.extend_from_slice(&(next as u32).to_le_bytes());
        mods.extend_from_slice(&((next + len) as u32).to_le_bytes());
        mods.extend_from_slice(&(s as u32).to_le_bytes());
        mods.extend_from_slice(&0u32.to_le_bytes());
        next = (next + len + 0xfff) & !0xfff;
    }
    let mut mmap = Vec::new();
    for e in e820.entries() {
        mmap.extend_from_slice(&20u32.to_le_bytes());
        mmap.extend_from_slice(&e.to_bytes());
    }
    let mods_addr = INFO_ADDR + 0x100;
    let mmap_addr = mods_addr + mods.len() as u64;
    if strings.len() > 0x1000 || mmap_addr + mmap.len() as u64 > INFO_ADDR + 0x1000 {
        return err("multiboot command line, module strings or memory map are too long");
    }
    let mut info = [0u8; 0x58];
    let put = |info: &mut [u8; 0x58], o: usize, v: u64| info[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes());
    put(
        &mut info,
        0,
        (INFO_MEM | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_LOADER_NAME) as u64,
    );
    put(&mut info, 4, e820.ram_below(640 << 10) >> 10);
    // mem_upper: contiguous RAM from 1 MiB, in KiB.
    let upper = e820
        .entries()
        .iter()
        .find(|e| e.addr == 1 << 20 && e.kind == crate::e820::E820Type::Ram)
        .map_or(0, |e| e.size >> 10);
    put(&mut info, 8, upper);
    put(&mut info, 16, cmdline_addr);
    put(&mut info, 20, modules.len() as u64);
    put(&mut info, 24, mods_addr);
    put(&mut info, 44, mmap.len() as u64);
    put(&mut info, 48, mmap_addr);
    put(&mut info, 64, name_addr);
    mem.write(INFO_ADDR, &info)?;
    mem.write(mods_addr, &mods)?;
    mem.write(mmap_addr, &mmap)?;
    mem.write(INFO_ADDR + 0x1000, &strings)?;

    protected32_entry(mem, entry, MAGIC_EAX as u64, INFO_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::testmem::VecMem;
    use crate::e820::E820Type;

    /// A minimal ELF32 with one PT_LOAD segment at 1 MiB and a Multiboot header.
    fn elf_kernel(header_flags: u32) -> Vec<u8> {
        let mut f = vec![0u8; 0x1000];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&3u16.to_le_bytes());
        f[24..28].copy_from_slice(&0x10_0040u32.to_le_bytes()); // e_entry
        f[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&1u16.to_le_bytes());
        let p = 52;
        f[p..p + 4].copy_from_slice(&1u32.to_le_bytes());
        f[p + 4..p + 8].copy_from_slice(&0x100u32.to_le_bytes()); // p_offset
        f[p + 12..p + 16].copy_from_slice(&0x10_0000u32.to_le_bytes()); // p_paddr
        f[p + 16..p + 20].copy_from_slice(&0x200u32.to_le_bytes()); // filesz
        f[p + 20..p + 24].copy_from_slice(&0x3000u32.to_le_bytes()); // memsz
        let h = 0x100;
        f[h..h + 4].copy_from_slice(&MAGIC_HEADER.to_le_bytes());
        f[h + 4..h + 8].copy_from_slice(&header_flags.to_le_bytes());
        f[h + 8..h + 12].copy_from_slice(&0u32.wrapping_sub(MAGIC_HEADER).wrapping_sub(header_flags).to_le_bytes());
        f[0x140] = 0xf4;
        f
    }

    fn e820() -> E820Map {
        let mut m = E820Map::new();
        m.add(0, 0x9fc00, E820Type::Ram);
        m.add(0x10_0000, 31 << 20, E820Type::Ram);
        m
    }

    #[test]
    fn elf_kernel_with_module_boots_with_info() {
        let mut mem = VecMem(vec![0xcc; 32 << 20]);
        let k = elf_kernel(3);
        let m = [Module {
            string: "initrd.img arg=1".into(),
            data: b"MODULE",
        }];
        let e = load_multiboot(&mut mem, &e820(), &k, "/boot/kernel", "quiet", &m).unwrap();
        assert_eq!(e.rip, 0x10_0040);
        assert_eq!(e.rax, MAGIC_EAX as u64);
        assert_eq!(mem.0[0x10_0040], 0xf4);
        assert_eq!(mem.0[0x10_0200], 0, "bss zeroed");
        let info = e.rbx;
        assert_eq!(mem.u32(info) & 0x24f, 0x24d);
        assert_eq!(mem.u32(info + 4), 0x9fc00 >> 10);
        assert_eq!(mem.u32(info + 8), 31 << 10);
        let cmd = mem.u32(info + 16) as usize;
        assert_eq!(&mem.0[cmd..cmd + 19], b"/boot/kernel quiet\0");
        assert_eq!(mem.u32(info + 20), 1);
        let m0 = mem.u32(info + 24) as u64;
        let (start, end) = (mem.u32(m0) as usize, mem.u32(m0 + 4) as usize);
        assert_eq!(start & 0xfff, 0);
        assert!(start >= 0x10_3000);
        assert_eq!(&mem.0[start..end], b"MODULE");
        assert_eq!(mem.u32(info + 44), 48);
    }

    #[test]
    fn video_requirement_and_missing_header_are_refused() {
        let mut mem = VecMem(vec![0; 32 << 20]);
        let e = load_multiboot(&mut mem, &e820(), &elf_kernel(1 << 2), "k", "", &[]).unwrap_err();
        assert!(e.0.contains("video"), "{e}");
        let e = load_multiboot(&mut mem, &e820(), &[0u8; 100], "k", "", &[]).unwrap_err();
        assert!(e.0.contains("no Multiboot header"), "{e}");
        for short in [&[][..], &[0x02, 0xb0, 0xad, 0x1b][..]] {
            assert_eq!(find_header(short), None, "a {}-byte file", short.len());
        }
    }
}
