//! What every boot path produces: bytes placed in guest memory and the CPU
//! state to start from. The bios crate does not know the CPU; the machine
//! turns a [`BootEntry`] into register state.

use std::fmt;

/// Where boot code writes guest memory (the machine implements it over guest RAM).
pub trait GuestWriter {
    /// Write `data` at guest-physical `addr`; an error if it is not RAM.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), BootError>;
}

/// A boot image the user gave us is unusable; the message names the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootError(pub String);

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BootError {}

pub fn err<T>(msg: impl Into<String>) -> Result<T, BootError> {
    Err(BootError(msg.into()))
}

/// The processor mode a boot protocol enters the kernel in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// 32-bit protected mode, flat segments, paging off.
    Protected32,
    /// 64-bit long mode with identity-mapped paging (CR3 given).
    Long64 { cr3: u64 },
}

/// The register state a kernel expects at its entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootEntry {
    pub mode: EntryMode,
    pub rip: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rsi: u64,
    pub rsp: u64,
    /// The GDT the entry segments come from (base, limit).
    pub gdt_base: u64,
    pub gdt_limit: u16,
    /// Selector and raw descriptor of CS and of the data segments.
    pub cs: (u16, u64),
    pub ds: (u16, u64),
}

/// Flat 4 GiB descriptors.
pub const DESC_CODE32: u64 = 0x00cf_9b00_0000_ffff;
pub const DESC_CODE64: u64 = 0x00af_9b00_0000_ffff;
pub const DESC_DATA: u64 = 0x00cf_9300_0000_ffff;

/// Write a GDT of `descs` at `base`; returns the limit.
pub fn write_gdt(mem: &mut dyn GuestWriter, base: u64, descs: &[u64]) -> Result<u16, BootError> {
    let bytes: Vec<u8> = descs.iter().flat_map(|d| d.to_le_bytes()).collect();
    mem.write(base, &bytes)?;
    Ok((bytes.len() - 1) as u16)
}

/// Where every boot path puts its boot GDT (free conventional memory).
pub const GDT_ADDR: u64 = 0x500;

/// Entry in flat 32-bit protected mode with paging off, CS = 0x10 and the
/// data segments = 0x18 from a boot GDT at [`GDT_ADDR`] (the Multiboot and
/// PVH ABIs; Linux's 32-bit protocol uses the same selectors).
pub fn protected32_entry(mem: &mut dyn GuestWriter, rip: u64, rax: u64, rbx: u64) -> Result<BootEntry, BootError> {
    let gdt_limit = write_gdt(mem, GDT_ADDR, &[0, 0, DESC_CODE32, DESC_DATA])?;
    Ok(BootEntry {
        mode: EntryMode::Protected32,
        rip,
        rax,
        rbx,
        rsi: 0,
        rsp: 0,
        gdt_base: GDT_ADDR,
        gdt_limit,
        cs: (0x10, DESC_CODE32),
        ds: (0x18, DESC_DATA),
    })
}

/// Identity-map the first 4 GiB with 2 MiB pages: PML4 at `base`, PDPT at
/// `base + 0x1000`, four page directories after it (0x6000 bytes in all).
pub fn write_identity_page_tables(mem: &mut dyn GuestWriter, base: u64) -> Result<u64, BootError> {
    let pml4 = base;
    let pdpt = base + 0x1000;
    let pd = base + 0x2000;
    mem.write(pml4, &(pdpt | 3).to_le_bytes())?;
    let mut p = Vec::with_capacity(32);
    for i in 0..4u64 {
        p.extend_from_slice(&((pd + i * 0x1000) | 3).to_le_bytes());
    }
    mem.write(pdpt, &p)?;
    let mut d = Vec::with_capacity(4 * 4096);
    for i in 0..2048u64 {
        d.extend_from_slice(&((i << 21) | 0x83).to_le_bytes());
    }
    mem.write(pd, &d)?;
    Ok(pml4)
}

#[cfg(test)]
pub(crate) mod testmem {
    use super::*;

    /// A flat test memory of `size` bytes.
    pub struct VecMem(pub Vec<u8>);

    impl GuestWriter for VecMem {
        fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), BootError> {
            let a = addr as usize;
            match self.0.get_mut(a..a + data.len()) {
                Some(dst) => {
                    dst.copy_from_slice(data);
                    Ok(())
                }
                None => err(format!("write outside RAM at {addr:#x}")),
            }
        }
    }

    impl VecMem {
        pub fn u32(&self, a: u64) -> u32 {
            u32::from_le_bytes(self.0[a as usize..a as usize + 4].try_into().unwrap())
        }
        pub fn u64(&self, a: u64) -> u64 {
            u64::from_le_bytes(self.0[a as usize..a as usize + 8].try_into().unwrap())
        }
    }
}
