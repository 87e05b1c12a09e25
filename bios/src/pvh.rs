//! The PVH boot ABI for an uncompressed ELF `vmlinux` (Xen's
//! docs/misc/pvh.pandoc and public/arch-x86/hvm/start_info.h): the kernel
//! advertises a 32-bit entry point in an ELF note (name "Xen", type 18,
//! XEN_ELFNOTE_PHYS32_ENTRY); the loader places its PT_LOAD segments at their
//! physical addresses, builds an `hvm_start_info` (version 1: command line,
//! modules such as an initrd, the E820 map, the RSDP address) and enters in
//! flat 32-bit protected mode with paging off and EBX = the start info.

use crate::boot::*;
use crate::e820::E820Map;

const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const START_INFO_MAGIC: u32 = 0x336e_c578;
const START_INFO_ADDR: u64 = 0x6000;

fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn rd64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// An ELF64 x86-64 program header we care about.
struct Phdr {
    kind: u32,
    offset: usize,
    paddr: u64,
    filesz: usize,
    memsz: u64,
}

fn phdrs(image: &[u8]) -> Result<Vec<Phdr>, BootError> {
    if image.len() < 64 || &image[0..4] != b"\x7fELF" || image[4] != 2 || image[5] != 1 || rd16(image, 18) != 62 {
        return err("not a 64-bit x86-64 ELF file");
    }
    let (phoff, phentsize, phnum) = (rd64(image, 32) as usize, rd16(image, 54) as usize, rd16(image, 56) as usize);
    (0..phnum)
        .map(|k| {
            let p = phoff
                .checked_add(k * phentsize)
                .filter(|p| p + 56 <= image.len())
                .ok_or_else(|| BootError("ELF program headers run past the end of the file".into()))?;
            Ok(Phdr {
                kind: rd32(image, p),
                offset: rd64(image, p + 8) as usize,
                paddr: rd64(image, p + 24),
                filesz: rd64(image, p + 32) as usize,
                memsz: rd64(image, p + 40),
            })
        })
        .collect()
}

/// The PVH entry point from the ELF notes, if the kernel has one.
pub fn pvh_entry(image: &[u8]) -> Option<u64> {
    let phs = phdrs(image).ok()?;
    for ph in phs.iter().filter(|p| p.kind == 4) {
        let notes = image.get(ph.offset..ph.offset.checked_add(ph.filesz)?)?;
        let mut o = 0;
        while o + 12 <= notes.len() {
            let (namesz, descsz, ty) = (rd32(notes, o) as usize, rd32(notes, o + 4) as usize, rd32(notes, o + 8));
            let name_at = o + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let next = desc_at + descsz.div_ceil(4) * 4;
            if next > notes.len() {
                break;
            }
            if ty == XEN_ELFNOTE_PHYS32_ENTRY && &notes[name_at..name_at + namesz.min(4)] == b"Xen\0"[..namesz.min(4)].as_ref() {
                return match descsz {
                    4 => Some(rd32(notes, desc_at) as u64),
                    8 => Some(rd64(notes, desc_at)),
                    _ => None,
                };
            }
            o = next;
        }
    }
    None
}

/// Load a PVH-capable ELF kernel, an optional initrd (module 0), and the
/// command line; `rsdp` is the ACPI RSDP address if the machine has tables.
pub fn load_pvh(
    mem: &mut dyn GuestWriter,
    e820: &E820Map,
    image: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    rsdp: Option<u64>,
) -> Result<BootEntry, BootError> {
    let entry = pvh_entry(image)
        .ok_or_else(|| BootError("ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH=y".into()))?;
    let mut end = 0u64;
    for ph in phdrs(image)?.iter().filter(|p| p.kind == 1) {
        let data = image
            .get(ph.offset..ph.offset + ph.filesz)
            .ok_or_else(|| BootError("ELF segment runs past the end of the file".into()))?;
        let len = ph.memsz.max(ph.filesz as u64);
        if !e820.is_ram(ph.paddr, len.max(1)) {
            return err(format!(
                "kernel segment at {:#x} ({} KiB) is not in RAM: give the guest more memory (-m)",
                ph.paddr,
                len >> 10
            ));
        }
        mem.write(ph.paddr, data)?;
        if ph.memsz > ph.filesz as u64 {
            mem.write(ph.paddr + ph.filesz as u64, &vec![0; (ph.memsz - ph.filesz as u64) as usize])?;
        }
        end = end.max(ph.paddr + len);
    }
    if end == 0 {
        return err("ELF kernel has no loadable segments");
    }
    // Layout after the start info page: command line, module list, memory map.
    let cmdline_at = START_INFO_ADDR + 0x100;
    let mut c = cmdline.as_bytes().to_vec();
    c.push(0);
    if c.len() > 0x800 {
        return err("kernel command line is longer than 2 KiB");
    }
    mem.write(cmdline_at, &c)?;
    let modlist_at = START_INFO_ADDR + 0x900;
    let memmap_at = START_INFO_ADDR + 0xa00;
    let mut nr_modules = 0u32;
    if let Some(rd) = initrd {
        let top = e820.top_of_ram_below(1 << 32);
        let at = top.saturating_sub(rd.len() as u64) & !0xfff;
        if at < end || !e820.is_ram(at, rd.len() as u64) {
            return err(format!(
                "not enough RAM for a {} MiB initrd next to the kernel: give the guest more memory (-m)",
                rd.len() >> 20
            ));
        }
        mem.write(at, rd)?;
        let mut m = Vec::with_capacity(32);
        m.extend_from_slice(&at.to_le_bytes());
        m.extend_from_slice(&(rd.len() as u64).to_le_bytes());
        m.extend_from_slice(&[0; 16]);
        mem.write(modlist_at, &m)?;
        nr_modules = 1;
    }
    let entries = e820.entries();
    if entries.len() * 24 > 0x600 {
        return err("memory map too large for the PVH start info page");
    }
    let mut mm = Vec::new();
    for e in entries {
        mm.extend_from_slice(&e.addr.to_le_bytes());
        mm.extend_from_slice(&e.size.to_le_bytes());
        mm.extend_from_slice(&(e.kind as u32).to_le_bytes());
        mm.extend_from_slice(&0u32.to_le_bytes());
    }
    mem.write(memmap_at, &mm)?;
    let mut si = Vec::with_capacity(56);
    si.extend_from_slice(&START_INFO_MAGIC.to_le_bytes());
    si.extend_from_slice(&1u32.to_le_bytes()); // version
    si.extend_from_slice(&0u32.to_le_bytes()); // flags
    si.extend_from_slice(&nr_modules.to_le_bytes());
    si.extend_from_slice(&(if nr_modules > 0 { modlist_at } else { 0 }).to_le_bytes());
    si.extend_from_slice(&cmdline_at.to_le_bytes());
    si.extend_from_slice(&rsdp.unwrap_or(0).to_le_bytes());
    si.extend_from_slice(&memmap_at.to_le_bytes());
    si.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    si.extend_from_slice(&0u32.to_le_bytes());
    mem.write(START_INFO_ADDR, &si)?;
    protected32_entry(mem, entry, 0, START_INFO_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::testmem::VecMem;
    use crate::e820::E820Type;

    /// ELF64 with a PT_LOAD at 16 MiB and a PT_NOTE holding the PVH entry.
    fn vmlinux(with_note: bool) -> Vec<u8> {
        let mut f = vec![0u8; 0x2000];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let load = 64;
        f[load..load + 4].copy_from_slice(&1u32.to_le_bytes());
        f[load + 8..load + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        f[load + 24..load + 32].copy_from_slice(&0x100_0000u64.to_le_bytes());
        f[load + 32..load + 40].copy_from_slice(&0x800u64.to_le_bytes());
        f[load + 40..load + 48].copy_from_slice(&0x4000u64.to_le_bytes());
        let note = 64 + 56;
        f[note..note + 4].copy_from_slice(&if with_note { 4u32 } else { 6u32 }.to_le_bytes());
        f[note + 8..note + 16].copy_from_slice(&0x800u64.to_le_bytes());
        f[note + 32..note + 40].copy_from_slice(&24u64.to_le_bytes());
        let n = 0x800;
        f[n..n + 4].copy_from_slice(&4u32.to_le_bytes());
        f[n + 4..n + 8].copy_from_slice(&8u32.to_le_bytes());
        f[n + 8..n + 12].copy_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
        f[n + 12..n + 16].copy_from_slice(b"Xen\0");
        f[n + 16..n + 24].copy_from_slice(&0x100_0100u64.to_le_bytes());
        f[0x1000] = 0xcc;
        f
    }

    #[test]
    fn pvh_kernel_gets_start_info() {
        let mut mem = VecMem(vec![0; 64 << 20]);
        let mut m = E820Map::new();
        m.add(0, 0x9fc00, E820Type::Ram);
        m.add(0x10_0000, 63 << 20, E820Type::Ram);
        let e = load_pvh(&mut mem, &m, &vmlinux(true), Some(b"RD"), "console=ttyS0", Some(0xf0000)).unwrap();
        assert_eq!(e.rip, 0x100_0100);
        assert_eq!(e.rbx, START_INFO_ADDR);
        assert_eq!(mem.0[0x100_0000], 0xcc);
        assert_eq!(mem.u32(START_INFO_ADDR), START_INFO_MAGIC);
        assert_eq!(mem.u32(START_INFO_ADDR + 12), 1);
        assert_eq!(mem.u64(START_INFO_ADDR + 32), 0xf0000);
        assert_eq!(mem.u32(START_INFO_ADDR + 48), 2);
        let rd = mem.u64(mem.u64(START_INFO_ADDR + 16));
        assert_eq!(&mem.0[rd as usize..rd as usize + 2], b"RD");
    }

    #[test]
    fn elf_without_pvh_note_is_refused() {
        let mut mem = VecMem(vec![0; 64 << 20]);
        let mut m = E820Map::new();
        m.add(0x10_0000, 63 << 20, E820Type::Ram);
        let e = load_pvh(&mut mem, &m, &vmlinux(false), None, "", None).unwrap_err();
        assert!(e.0.contains("PVH"), "{e}");
        assert!(load_pvh(&mut mem, &m, b"MZ", None, "", None).is_err());
    }
}
