//! QEMU's firmware configuration device (fw_cfg), the x86 I/O-port flavour:
//! how firmware and guests read the machine's configuration (RAM size, CPU
//! count, kernel, initrd and command line, named files such as `etc/e820`,
//! `bootorder`, `etc/acpi/tables`, `etc/table-loader`).
//!
//! Follows QEMU's `docs/specs/fw_cfg.rst`: a 16-bit selector register, a
//! byte-wide data register that auto-increments through the selected item
//! (reads past the end return 0), and the DMA interface: writing the
//! big-endian guest-physical address of an `FWCfgDmaAccess` structure
//! (`be32 control; be32 length; be64 address`) starts a transfer; control
//! bits are 0 error, 1 read, 2 skip, 3 select (selector in bits 31:16), 4
//! write; on completion the device stores control = 0, or the error bit.
//! Reading the DMA register returns the signature "QEMU CFG". Item 0x0019
//! (FILE_DIR) lists the named files: a big-endian count, then per file
//! `be32 size, be16 select, be16 reserved, char name[56]`, sorted by name;
//! file selectors start at 0x0020 in that order.
//!
//! As in QEMU, a DMA read of a missing item (or past its end) fills guest
//! memory with zeros and is not an error; the error bit means a DMA write
//! to an item that is missing or read-only, a write past an item's end, or
//! a transfer that touched memory outside guest RAM.
//!
//! Left out: the legacy data-register write path (ignored since QEMU 2.4),
//! write callbacks (a writable file just stores what the guest writes), the
//! MMIO flavour used by other architectures, item 0x0009 (the old kernel
//! command line item) and NUMA data.
//!
//! Offset layout: 0–1 selector (port 0x510, 16-bit writes) with the data
//! register at offsets 0 and 1 (port 0x511, byte reads); 4–11 the DMA
//! address (ports 0x514–0x51B: write the high half at 4, then the low half
//! at 8, each as a 32-bit big-endian value; the second write starts the
//! transfer).

use crate::bus::PortIoDevice;
use crate::dma::DmaMemory;
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SELECTOR: u16 = 0;
pub const DATA: u16 = 1;
pub const DMA_ADDRESS: u16 = 4;
/// Size of the port window (0x510–0x51B).
pub const SPAN: u16 = 12;

pub const SIGNATURE: u16 = 0x0000;
pub const ID: u16 = 0x0001;
pub const UUID: u16 = 0x0002;
pub const RAM_SIZE: u16 = 0x0003;
pub const NOGRAPHIC: u16 = 0x0004;
pub const NB_CPUS: u16 = 0x0005;
pub const MACHINE_ID: u16 = 0x0006;
pub const KERNEL_ADDR: u16 = 0x0007;
pub const KERNEL_SIZE: u16 = 0x0008;
pub const INITRD_ADDR: u16 = 0x000a;
pub const INITRD_SIZE: u16 = 0x000b;
pub const BOOT_DEVICE: u16 = 0x000c;
pub const BOOT_MENU: u16 = 0x000e;
pub const MAX_CPUS: u16 = 0x000f;
pub const KERNEL_ENTRY: u16 = 0x0010;
pub const KERNEL_DATA: u16 = 0x0011;
pub const INITRD_DATA: u16 = 0x0012;
pub const CMDLINE_ADDR: u16 = 0x0013;
pub const CMDLINE_SIZE: u16 = 0x0014;
pub const CMDLINE_DATA: u16 = 0x0015;
pub const SETUP_ADDR: u16 = 0x0016;
pub const SETUP_SIZE: u16 = 0x0017;
pub const SETUP_DATA: u16 = 0x0018;
pub const FILE_DIR: u16 = 0x0019;
/// First file selector.
pub const FILE_FIRST: u16 = 0x0020;
/// Selectors with this bit are architecture-specific items (x86: 0x8000
/// ACPI tables, 0x8001 SMBIOS, 0x8002 IRQ0 override, 0x8003 E820, 0x8004 HPET).
pub const ARCH_LOCAL: u16 = 0x8000;
/// The old write-enable bit of the selector; ignored.
const WRITE_CHANNEL: u16 = 0x4000;

/// Longest file name, not counting the terminating NUL.
pub const MAX_NAME: usize = 55;
/// At most this many files (selectors 0x0020–0x3FFF).
pub const MAX_FILES: usize = (WRITE_CHANNEL - FILE_FIRST) as usize;

pub const DMA_CTL_ERROR: u32 = 1 << 0;
pub const DMA_CTL_READ: u32 = 1 << 1;
pub const DMA_CTL_SKIP: u32 = 1 << 2;
pub const DMA_CTL_SELECT: u32 = 1 << 3;
pub const DMA_CTL_WRITE: u32 = 1 << 4;

const DMA_SIGNATURE: &[u8; 8] = b"QEMU CFG";

/// A file that could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwCfgError {
    /// Empty, longer than [`MAX_NAME`] bytes, or containing a NUL.
    BadName(String),
    Duplicate(String),
    TooManyFiles,
    /// Items are sized by a 32-bit field.
    TooLarge(String),
}

impl std::fmt::Display for FwCfgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FwCfgError::BadName(n) => write!(f, "fw_cfg file name {n:?} must be 1 to {MAX_NAME} bytes without NUL"),
            FwCfgError::Duplicate(n) => write!(f, "fw_cfg file {n:?} already exists"),
            FwCfgError::TooManyFiles => write!(f, "fw_cfg holds at most {MAX_FILES} files"),
            FwCfgError::TooLarge(n) => write!(f, "fw_cfg item {n:?} is larger than 4 GiB"),
        }
    }
}

impl std::error::Error for FwCfgError {}

#[derive(Debug, Clone)]
struct Item {
    data: Vec<u8>,
    writable: bool,
}

#[derive(Debug, Clone)]
struct File {
    name: String,
    item: Item,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub selector: u16,
    pub offset: u32,
    /// The DMA address as written so far (high half pending the low write).
    pub dma_address: u64,
    /// Contents of the writable files, by name (the guest may have changed them).
    pub writable_files: Vec<(String, Vec<u8>)>,
}

pub struct FwCfg {
    /// Numbered items (everything below [`FILE_FIRST`] and arch items).
    items: BTreeMap<u16, Item>,
    /// Named files, sorted by name; file `i` has selector `FILE_FIRST + i`.
    files: Vec<File>,
    selector: u16,
    offset: u32,
    dma_address: u64,
    dma: Option<Box<dyn DmaMemory>>,
}

/// Prints the snapshot state.
impl std::fmt::Debug for FwCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FwCfg")
            .field("selector", &self.selector)
            .field("offset", &self.offset)
            .field("files", &self.files.iter().map(|f| &f.name).collect::<Vec<_>>())
            .finish()
    }
}

impl FwCfg {
    /// A device with the signature, ID, and zeroed standard items. With
    /// `dma` the ID advertises the DMA interface (bit 1).
    pub fn new(dma: Option<Box<dyn DmaMemory>>) -> Self {
        let mut f = FwCfg {
            items: BTreeMap::new(),
            files: Vec::new(),
            selector: 0,
            offset: 0,
            dma_address: 0,
            dma,
        };
        f.set_item(SIGNATURE, b"QEMU".to_vec());
        let id: u32 = 1 | if f.dma.is_some() { 2 } else { 0 };
        f.set_item(ID, id.to_le_bytes().to_vec());
        f.set_item(UUID, vec![0; 16]);
        f.set_ram_size(0);
        f.set_u16(NOGRAPHIC, 1);
        f.set_cpus(1, 1);
        f.set_u16(BOOT_MENU, 0);
        f.rebuild_dir();
        f
    }

    /// Set a numbered item (not a file) to `data`.
    pub fn set_item(&mut self, key: u16, data: Vec<u8>) {
        let key = key & !WRITE_CHANNEL;
        assert!(
            key < FILE_FIRST || key & ARCH_LOCAL != 0,
            "selector {key:#x} belongs to the file range"
        );
        assert!(u32::try_from(data.len()).is_ok(), "fw_cfg item {key:#x} over 4 GiB");
        self.items.insert(key, Item { data, writable: false });
    }
    pub fn set_u16(&mut self, key: u16, v: u16) {
        self.set_item(key, v.to_le_bytes().to_vec());
    }
    pub fn set_u32(&mut self, key: u16, v: u32) {
        self.set_item(key, v.to_le_bytes().to_vec());
    }
    pub fn set_u64(&mut self, key: u16, v: u64) {
        self.set_item(key, v.to_le_bytes().to_vec());
    }

    pub fn set_ram_size(&mut self, bytes: u64) {
        self.set_u64(RAM_SIZE, bytes);
    }
    pub fn set_cpus(&mut self, boot: u16, max: u16) {
        self.set_u16(NB_CPUS, boot);
        self.set_u16(MAX_CPUS, max);
    }
    pub fn set_uuid(&mut self, uuid: [u8; 16]) {
        self.set_item(UUID, uuid.to_vec());
    }
    pub fn set_nographic(&mut self, on: bool) {
        self.set_u16(NOGRAPHIC, on as u16);
    }
    pub fn set_boot_menu(&mut self, on: bool) {
        self.set_u16(BOOT_MENU, on as u16);
    }
    /// The protected-mode kernel: where it is loaded and its bytes.
    pub fn set_kernel(&mut self, addr: u32, data: Vec<u8>) {
        self.set_u32(KERNEL_ADDR, addr);
        self.set_u32(KERNEL_SIZE, data.len() as u32);
        self.set_item(KERNEL_DATA, data);
    }
    pub fn set_initrd(&mut self, addr: u32, data: Vec<u8>) {
        self.set_u32(INITRD_ADDR, addr);
        self.set_u32(INITRD_SIZE, data.len() as u32);
        self.set_item(INITRD_DATA, data);
    }
    /// The kernel command line; the data item carries the terminating NUL
    /// and the size counts it.
    pub fn set_cmdline(&mut self, addr: u32, cmdline: &str) {
        let mut data = cmdline.as_bytes().to_vec();
        data.push(0);
        self.set_u32(CMDLINE_ADDR, addr);
        self.set_u32(CMDLINE_SIZE, data.len() as u32);
        self.set_item(CMDLINE_DATA, data);
    }
    /// The Linux real-mode setup code.
    pub fn set_setup(&mut self, addr: u32, data: Vec<u8>) {
        self.set_u32(SETUP_ADDR, addr);
        self.set_u32(SETUP_SIZE, data.len() as u32);
        self.set_item(SETUP_DATA, data);
    }

    /// Add a named file the guest can only read.
    pub fn add_file(&mut self, name: &str, data: Vec<u8>) -> Result<(), FwCfgError> {
        self.insert_file(name, data, false)
    }
    /// Add a named file the guest may overwrite through DMA (in place, no
    /// longer than it is).
    pub fn add_writable_file(&mut self, name: &str, data: Vec<u8>) -> Result<(), FwCfgError> {
        self.insert_file(name, data, true)
    }

    fn insert_file(&mut self, name: &str, data: Vec<u8>, writable: bool) -> Result<(), FwCfgError> {
        if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
            return Err(FwCfgError::BadName(name.into()));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::TooLarge(name.into()));
        }
        if self.files.len() >= MAX_FILES {
            return Err(FwCfgError::TooManyFiles);
        }
        let at = match self.files.binary_search_by(|f| f.name.as_str().cmp(name)) {
            Ok(_) => return Err(FwCfgError::Duplicate(name.into())),
            Err(at) => at,
        };
        self.files.insert(
            at,
            File {
                name: name.into(),
                item: Item { data, writable },
            },
        );
        self.rebuild_dir();
        Ok(())
    }

    /// Set file `name` to `data`, adding it if it is not there (the
    /// machine fills some files after building the device, e.g. `bootorder`).
    pub fn set_file(&mut self, name: &str, data: Vec<u8>) -> Result<(), FwCfgError> {
        match self.files.binary_search_by(|f| f.name.as_str().cmp(name)) {
            Ok(i) => {
                if u32::try_from(data.len()).is_err() {
                    return Err(FwCfgError::TooLarge(name.into()));
                }
                self.files[i].item.data = data;
                self.rebuild_dir();
                Ok(())
            }
            Err(_) => self.add_file(name, data),
        }
    }

    /// The selector of file `name` (what FILE_DIR tells the guest).
    pub fn file_selector(&self, name: &str) -> Option<u16> {
        self.files
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| FILE_FIRST + i as u16)
    }

    /// Current contents of file `name` (for writable files: what the guest wrote).
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        let i = self.files.binary_search_by(|f| f.name.as_str().cmp(name)).ok()?;
        Some(&self.files[i].item.data)
    }

    fn rebuild_dir(&mut self) {
        let mut dir = (self.files.len() as u32).to_be_bytes().to_vec();
        for (i, f) in self.files.iter().enumerate() {
            dir.extend_from_slice(&(f.item.data.len() as u32).to_be_bytes());
            dir.extend_from_slice(&(FILE_FIRST + i as u16).to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut name = [0u8; 56];
            name[..f.name.len()].copy_from_slice(f.name.as_bytes());
            dir.extend_from_slice(&name);
        }
        self.items.insert(
            FILE_DIR,
            Item {
                data: dir,
                writable: false,
            },
        );
    }

    fn item(&self, key: u16) -> Option<&Item> {
        if (FILE_FIRST..ARCH_LOCAL).contains(&key) {
            self.files.get((key - FILE_FIRST) as usize).map(|f| &f.item)
        } else {
            self.items.get(&key)
        }
    }

    fn item_mut(&mut self, key: u16) -> Option<&mut Item> {
        if (FILE_FIRST..ARCH_LOCAL).contains(&key) {
            self.files.get_mut((key - FILE_FIRST) as usize).map(|f| &mut f.item)
        } else {
            self.items.get_mut(&key)
        }
    }

    fn select(&mut self, key: u16) {
        self.selector = key & !WRITE_CHANNEL;
        self.offset = 0;
    }

    fn read_data_byte(&mut self) -> u8 {
        let off = self.offset as usize;
        match self.item(self.selector).and_then(|i| i.data.get(off).copied()) {
            Some(b) => {
                self.offset += 1;
                b
            }
            None => 0,
        }
    }

    /// Run the DMA descriptor at `desc` (guest-physical).
    fn dma_transfer(&mut self, desc: u64) {
        let Some(mem) = self.dma.take() else { return };
        let mut d = [0u8; 16];
        if mem.read(desc, &mut d).is_err() {
            let _ = mem.write(desc, &DMA_CTL_ERROR.to_be_bytes());
            self.dma = Some(mem);
            return;
        }
        let control = u32::from_be_bytes(d[0..4].try_into().unwrap());
        let mut length = u32::from_be_bytes(d[4..8].try_into().unwrap());
        let mut address = u64::from_be_bytes(d[8..16].try_into().unwrap());
        if control & DMA_CTL_SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        let (read, write) = if control & DMA_CTL_READ != 0 {
            (true, false)
        } else if control & DMA_CTL_WRITE != 0 {
            (false, true)
        } else if control & DMA_CTL_SKIP != 0 {
            (false, false)
        } else {
            length = 0;
            (false, false)
        };
        let mut status = 0u32;
        while length > 0 && status & DMA_CTL_ERROR == 0 {
            let off = self.offset as usize;
            let available = self.item(self.selector).map_or(0, |i| i.data.len().saturating_sub(off));
            let len;
            if available == 0 {
                // Missing item or past its end: reads see zeros, writes fail.
                len = length;
                if read && zero_fill(mem.as_ref(), address, len).is_err() {
                    status |= DMA_CTL_ERROR;
                }
                if write {
                    status |= DMA_CTL_ERROR;
                }
            } else {
                len = length.min(available as u32);
                let key = self.selector;
                if read {
                    let item = self.item(key).expect("available > 0");
                    if mem.write(address, &item.data[off..off + len as usize]).is_err() {
                        status |= DMA_CTL_ERROR;
                    }
                } else if write {
                    let item = self.item_mut(key).expect("available > 0");
                    // All or nothing: a read-only item, a write past the end
                    // or a source outside RAM leaves the item as it was.
                    let mut buf = vec![0; len as usize];
                    if item.writable && len == length && mem.read(address, &mut buf).is_ok() {
                        item.data[off..off + len as usize].copy_from_slice(&buf);
                    } else {
                        status |= DMA_CTL_ERROR;
                    }
                }
                self.offset += len;
            }
            address = address.wrapping_add(len as u64);
            length -= len;
        }
        let _ = mem.write(desc, &status.to_be_bytes());
        self.dma = Some(mem);
    }

    /// The chipset reset line: selection and DMA address clear; items stay.
    pub fn reset(&mut self) {
        self.selector = 0;
        self.offset = 0;
        self.dma_address = 0;
    }
}

/// Write `len` zero bytes at `addr`, a page at a time (the guest picks
/// `len`, up to 4 GiB; the host must not allocate that).
fn zero_fill(mem: &dyn DmaMemory, addr: u64, len: u32) -> Result<(), crate::dma::DmaError> {
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut done = 0u64;
    while done < len as u64 {
        let n = (len as u64 - done).min(ZEROS.len() as u64) as usize;
        mem.write(addr.wrapping_add(done), &ZEROS[..n])?;
        done += n as u64;
    }
    Ok(())
}

impl PortIoDevice for FwCfg {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        match offset {
            SELECTOR | DATA if size == 1 => self.read_data_byte() as u32,
            4..=11 => {
                let mut v = 0u32;
                for i in 0..size.min(4) as u16 {
                    let b = DMA_SIGNATURE.get((offset - DMA_ADDRESS + i) as usize).copied().unwrap_or(0xff);
                    v |= (b as u32) << (8 * i);
                }
                v
            }
            _ => {
                if size >= 4 {
                    !0
                } else {
                    (1 << (8 * size)) - 1
                }
            }
        }
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) {
        match (offset, size) {
            (SELECTOR, 2) => self.select(value as u16),
            // The guest wrote the big-endian bytes with a little-endian OUT.
            (4, 4) => self.dma_address = (value.swap_bytes() as u64) << 32,
            (8, 4) => {
                let desc = self.dma_address | value.swap_bytes() as u64;
                self.dma_address = 0;
                self.dma_transfer(desc);
            }
            _ => {}
        }
    }
}

impl Snapshot for FwCfg {
    type State = State;
    fn save(&self) -> State {
        State {
            selector: self.selector,
            offset: self.offset,
            dma_address: self.dma_address,
            writable_files: self
                .files
                .iter()
                .filter(|f| f.item.writable)
                .map(|f| (f.name.clone(), f.item.data.clone()))
                .collect(),
        }
    }

    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        check("fw_cfg", s.selector & WRITE_CHANNEL == 0, || {
            format!("selector {:#x} has the write-channel bit", s.selector)
        })?;
        if let Some(item) = self.item(s.selector) {
            check("fw_cfg", s.offset as usize <= item.data.len(), || {
                format!("offset {} past the end of item {:#x}", s.offset, s.selector)
            })?;
        }
        check("fw_cfg", s.dma_address & 0xffff_ffff == 0, || {
            "DMA address has a low half without a transfer".into()
        })?;
        let present: Vec<(&str, usize)> = self
            .files
            .iter()
            .filter(|f| f.item.writable)
            .map(|f| (f.name.as_str(), f.item.data.len()))
            .collect();
        let mut saved: Vec<(&str, usize)> = s.writable_files.iter().map(|(n, d)| (n.as_str(), d.len())).collect();
        saved.sort_unstable();
        check("fw_cfg", saved == present, || {
            format!("writable files saved as {saved:?}, device has {present:?}")
        })?;
        self.selector = s.selector;
        self.offset = s.offset;
        self.dma_address = s.dma_address;
        for (name, data) in &s.writable_files {
            let f = self.files.iter_mut().find(|f| &f.name == name).expect("validated above");
            f.item.data.clone_from(data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
