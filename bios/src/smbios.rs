//! SMBIOS tables (DMTF DSP0134 3.x, structures in their 2.8 layouts) with a
//! 32-bit SMBIOS 2.1 entry point ("_SM_"/"_DMI_"): for a direct kernel boot
//! the machine writes the entry point in the F segment, where Linux's
//! `dmi_scan` looks for it; for SeaBIOS the same bytes go through fw_cfg
//! (`etc/smbios/smbios-anchor`, `etc/smbios/smbios-tables`) and SeaBIOS
//! relocates the table and fixes the entry point's address and checksums.
//!
//! Structures: BIOS (type 0), system (1), chassis (3), one processor per
//! CPU (4), the physical memory array (16), one memory device per 16 GiB
//! (17), a mapped-address range per contiguous RAM block (19), system boot
//! information (32) and the end-of-table marker (127).
//!
//! DSP0134 §6.1.2: each structure is a formatted area (type, length,
//! handle, fields) followed by its strings, each NUL-terminated, the set
//! ending with an extra NUL (two NULs when there are no strings). String
//! fields hold 1-based string numbers, 0 = none.

/// What the tables describe.
#[derive(Clone, Debug)]
pub struct SmbiosConfig {
    pub ram_below_4g: u64,
    pub ram_above_4g: u64,
    pub cpus: u8,
    pub uuid: [u8; 16],
    /// CPUID leaf 1 EAX and EDX (the processor ID of type 4).
    pub cpuid_1: (u32, u32),
    pub bios_vendor: String,
    pub bios_version: String,
    pub bios_date: String,
    pub manufacturer: String,
    pub product: String,
    pub version: String,
}

impl Default for SmbiosConfig {
    fn default() -> Self {
        SmbiosConfig {
            ram_below_4g: 0,
            ram_above_4g: 0,
            cpus: 1,
            uuid: [0; 16],
            cpuid_1: (0, 0),
            bios_vendor: "kagami".into(),
            bios_version: env!("CARGO_PKG_VERSION").into(),
            bios_date: "01/01/2026".into(),
            manufacturer: "kagami".into(),
            product: "Standard PC".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The entry point and the structure table it points to.
#[derive(Clone, Debug)]
pub struct SmbiosTables {
    /// The 31-byte SMBIOS 2.1 entry point (16-byte aligned in 0xF0000-0xFFFFF).
    pub entry: Vec<u8>,
    /// The structure table, to be placed at the address given to [`build`].
    pub tables: Vec<u8>,
}

pub const ENTRY_LEN: usize = 0x1f;
/// SMBIOS version the entry point announces (2.8, BCD 0x28).
pub const MAJOR: u8 = 2;
pub const MINOR: u8 = 8;

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// One structure under construction.
struct Structure {
    formatted: Vec<u8>,
    strings: Vec<String>,
}

impl Structure {
    fn new(kind: u8, len: u8, handle: u16) -> Structure {
        let mut formatted = vec![0u8; len as usize];
        formatted[0] = kind;
        formatted[1] = len;
        formatted[2..4].copy_from_slice(&handle.to_le_bytes());
        Structure {
            formatted,
            strings: Vec::new(),
        }
    }
    fn u8(&mut self, off: usize, v: u8) -> &mut Self {
        self.formatted[off] = v;
        self
    }
    fn u16(&mut self, off: usize, v: u16) -> &mut Self {
        self.formatted[off..off + 2].copy_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.formatted[off..off + 4].copy_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.formatted[off..off + 8].copy_from_slice(&v.to_le_bytes());
        self
    }
    /// A string field: empty strings are "none" (0).
    fn str(&mut self, off: usize, s: &str) -> &mut Self {
        let s: String = s.chars().filter(|c| *c != '\0').collect();
        if s.is_empty() {
            self.formatted[off] = 0;
        } else {
            self.strings.push(s);
            self.formatted[off] = self.strings.len() as u8;
        }
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut b = self.formatted.clone();
        if self.strings.is_empty() {
            b.extend_from_slice(&[0, 0]);
        } else {
            for s in &self.strings {
                b.extend_from_slice(s.as_bytes());
                b.push(0);
            }
            b.push(0);
        }
        b
    }
}

const GIB16_MB: u64 = 16 << 10;

/// Build the structures for a table placed at `table_addr`.
pub fn build(cfg: &SmbiosConfig, table_addr: u32) -> SmbiosTables {
    let mut s: Vec<Structure> = Vec::new();
    let mut handle = 0u16;
    let mut next = || {
        let h = handle;
        handle += 1;
        h
    };

    // Type 0, BIOS information (§7.1).
    let mut t = Structure::new(0, 0x18, next());
    t.str(4, &cfg.bios_vendor)
        .str(5, &cfg.bios_version)
        .u16(6, 0xe800) // starting segment
        .str(8, &cfg.bios_date)
        .u8(9, 0) // 64 KiB ROM
        .u64(0x0a, 1 << 3) // "BIOS characteristics are not supported"
        .u8(0x12, 0)
        .u8(0x13, 1 << 3 | 1 << 4) // targeted content distribution, virtual machine
        .u8(0x14, 0)
        .u8(0x15, 0)
        .u8(0x16, 0xff) // no embedded controller firmware
        .u8(0x17, 0xff);
    s.push(t);

    // Type 1, system information (§7.2).
    let mut t = Structure::new(1, 0x1b, next());
    t.str(4, &cfg.manufacturer).str(5, &cfg.product).str(6, &cfg.version).str(7, "");
    t.formatted[8..24].copy_from_slice(&cfg.uuid);
    t.u8(0x18, 6) // wake-up type: power switch
        .str(0x19, "")
        .str(0x1a, "");
    s.push(t);

    // Type 3, chassis (§7.4), 2.7 layout with no contained elements.
    let mut t = Structure::new(3, 0x16, next());
    t.str(4, &cfg.manufacturer)
        .u8(5, 1) // other
        .str(6, &cfg.version)
        .str(7, "")
        .str(8, "")
        .u8(9, 3) // boot-up state: safe
        .u8(0x0a, 3)
        .u8(0x0b, 3)
        .u8(0x0c, 2) // security: unknown
        .u32(0x0d, 0)
        .u8(0x11, 0)
        .u8(0x12, 0)
        .u8(0x13, 0)
        .u8(0x14, 0)
        .str(0x15, "");
    s.push(t);

    // Type 4, one processor per CPU (§7.5), 2.6 layout.
    for cpu in 0..cfg.cpus.max(1) {
        let mut t = Structure::new(4, 0x2a, next());
        t.str(4, &format!("CPU {cpu}"))
            .u8(5, 3) // central processor
            .u8(6, 0xfe) // see processor family 2
            .str(7, &cfg.manufacturer)
            .u32(8, cfg.cpuid_1.0)
            .u32(12, cfg.cpuid_1.1)
            .str(0x10, "kagami x86-64")
            .u8(0x11, 0)
            .u16(0x12, 0) // external clock unknown
            .u16(0x14, 2000)
            .u16(0x16, 2000)
            .u8(0x18, 0x41) // socket populated, CPU enabled
            .u8(0x19, 1) // upgrade: other
            .u16(0x1a, 0xffff)
            .u16(0x1c, 0xffff)
            .u16(0x1e, 0xffff)
            .str(0x20, "")
            .str(0x21, "")
            .str(0x22, "")
            .u8(0x23, 1)
            .u8(0x24, 1)
            .u8(0x25, 1)
            .u16(0x26, 0x04) // 64-bit capable
            .u16(0x28, 0x01); // family: other
        s.push(t);
    }

    // Type 16, physical memory array (§7.17), 2.7 layout.
    let total_kb = (cfg.ram_below_4g + cfg.ram_above_4g) >> 10;
    let total_mb = total_kb >> 10;
    let n_dev = total_mb.div_ceil(GIB16_MB).max(1);
    let array = next();
    let mut t = Structure::new(16, 0x17, array);
    t.u8(4, 1) // location: other
        .u8(5, 3) // use: system memory
        .u8(6, 6) // multi-bit ECC
        .u16(0x0b, 0xfffe); // no error information
    if total_kb < 0x8000_0000 {
        t.u32(7, total_kb as u32);
    } else {
        t.u32(7, 0x8000_0000).u64(0x0f, total_kb << 10);
    }
    t.u16(0x0d, n_dev as u16);
    s.push(t);

    // Type 17, memory devices of up to 16 GiB each (§7.18), 2.8 layout.
    let mut left = total_mb;
    for k in 0..n_dev {
        let mb = left.min(GIB16_MB);
        left -= mb;
        let mut t = Structure::new(17, 0x28, next());
        t.u16(4, array)
            .u16(6, 0xfffe)
            .u16(8, 64)
            .u16(0x0a, 64)
            .u8(0x0e, 9) // DIMM
            .u8(0x0f, 0)
            .str(0x10, &format!("DIMM {k}"))
            .str(0x11, "")
            .u8(0x12, 7) // RAM
            .u16(0x13, 2) // other
            .u16(0x15, 0)
            .str(0x17, &cfg.manufacturer)
            .str(0x18, "")
            .str(0x19, "")
            .str(0x1a, "")
            .u8(0x1b, 0);
        if mb < 0x7fff {
            t.u16(0x0c, mb as u16);
        } else {
            t.u16(0x0c, 0x7fff).u32(0x1c, mb as u32);
        }
        s.push(t);
    }

    // Type 19, one mapped range per RAM block (§7.20), 2.7 layout.
    for (start, len) in [(0u64, cfg.ram_below_4g), (1 << 32, cfg.ram_above_4g)] {
        if len == 0 {
            continue;
        }
        let mut t = Structure::new(19, 0x1f, next());
        let end = start + len - 1;
        if end >> 10 < 0xffff_ffff {
            t.u32(4, (start >> 10) as u32).u32(8, (end >> 10) as u32);
        } else {
            t.u32(4, 0xffff_ffff).u32(8, 0xffff_ffff).u64(0x0f, start).u64(0x17, end);
        }
        t.u16(0x0c, array).u8(0x0e, n_dev as u8);
        s.push(t);
    }

    // Type 32, system boot information (§7.33): no errors.
    s.push(Structure::new(32, 0x0b, next()));
    // Type 127, end of table (§7.45).
    s.push(Structure::new(127, 4, next()));

    let parts: Vec<Vec<u8>> = s.iter().map(|x| x.bytes()).collect();
    let max = parts.iter().map(|p| p.len()).max().unwrap_or(0);
    let tables = parts.concat();
    let entry = entry_point(table_addr, tables.len() as u16, max as u16, parts.len() as u16);
    SmbiosTables { entry, tables }
}

/// The SMBIOS 2.1 entry point (§5.2.1).
fn entry_point(addr: u32, len: u16, max: u16, count: u16) -> Vec<u8> {
    let mut e = vec![0u8; ENTRY_LEN];
    e[0..4].copy_from_slice(b"_SM_");
    e[5] = ENTRY_LEN as u8;
    e[6] = MAJOR;
    e[7] = MINOR;
    e[8..10].copy_from_slice(&max.to_le_bytes());
    e[0x10..0x15].copy_from_slice(b"_DMI_");
    e[0x16..0x18].copy_from_slice(&len.to_le_bytes());
    e[0x18..0x1c].copy_from_slice(&addr.to_le_bytes());
    e[0x1c..0x1e].copy_from_slice(&count.to_le_bytes());
    e[0x1e] = (MAJOR << 4) | MINOR;
    e[0x15] = checksum(&e[0x10..ENTRY_LEN]);
    e[4] = checksum(&e);
    e
}

/// A structure read back from a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub kind: u8,
    pub handle: u16,
    pub formatted: Vec<u8>,
    pub strings: Vec<String>,
}

impl Parsed {
    /// The string a string field at `off` names (None for 0 or out of range).
    pub fn string(&self, off: usize) -> Option<&str> {
        let n = *self.formatted.get(off)? as usize;
        self.strings.get(n.checked_sub(1)?).map(|s| s.as_str())
    }
}

/// Walk a structure table the way Linux's `dmi_decode_table` does: by each
/// structure's length, then past its strings to the double NUL, stopping at
/// type 127, after `count` structures or at the end of `len` bytes.
pub fn walk(table: &[u8], count: u16) -> Result<Vec<Parsed>, String> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while out.len() < count as usize && i + 4 <= table.len() {
        let len = table[i + 1] as usize;
        if len < 4 || i + len > table.len() {
            return Err(format!("structure at {i} has length {len}"));
        }
        let formatted = table[i..i + len].to_vec();
        let mut j = i + len;
        let mut strings = Vec::new();
        loop {
            let end = table[j..].iter().position(|b| *b == 0).ok_or("unterminated string set")? + j;
            if end == j {
                // An empty string ends the set (the first one too: no strings).
                if strings.is_empty() {
                    j += 1;
                }
                j += 1;
                break;
            }
            strings.push(String::from_utf8_lossy(&table[j..end]).into_owned());
            j = end + 1;
        }
        let kind = formatted[0];
        out.push(Parsed {
            kind,
            handle: u16::from_le_bytes([formatted[2], formatted[3]]),
            formatted,
            strings,
        });
        i = j;
        if kind == 127 {
            break;
        }
    }
    Ok(out)
}

/// Check a 2.1 entry point; returns (table address, table length, count).
pub fn check_entry(e: &[u8]) -> Result<(u32, u16, u16), String> {
    if e.len() < ENTRY_LEN || &e[0..4] != b"_SM_" || &e[0x10..0x15] != b"_DMI_" {
        return Err("no _SM_/_DMI_ anchors".into());
    }
    let n = e[5] as usize;
    if n != ENTRY_LEN || checksum(&e[..n]) != 0 || checksum(&e[0x10..n]) != 0 {
        return Err("entry point checksum".into());
    }
    Ok((
        u32::from_le_bytes(e[0x18..0x1c].try_into().unwrap()),
        u16::from_le_bytes([e[0x16], e[0x17]]),
        u16::from_le_bytes([e[0x1c], e[0x1d]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(below: u64, above: u64) -> SmbiosConfig {
        SmbiosConfig {
            ram_below_4g: below,
            ram_above_4g: above,
            uuid: [7; 16],
            cpuid_1: (0x000806c1, 0x078bfbff),
            ..SmbiosConfig::default()
        }
    }

    #[test]
    fn entry_point_checksums_and_walk() {
        let t = build(&cfg(128 << 20, 0), 0xf_0020);
        let (addr, len, count) = check_entry(&t.entry).unwrap();
        assert_eq!((addr, len as usize), (0xf_0020, t.tables.len()));
        let s = walk(&t.tables, count).unwrap();
        assert_eq!(s.len(), count as usize);
        let kinds: Vec<u8> = s.iter().map(|x| x.kind).collect();
        assert_eq!(kinds, vec![0, 1, 3, 4, 16, 17, 19, 32, 127]);
        // Handles are unique; the maximum structure size is right.
        let mut h: Vec<u16> = s.iter().map(|x| x.handle).collect();
        h.dedup();
        assert_eq!(h.len(), s.len());
        let max = u16::from_le_bytes([t.entry[8], t.entry[9]]) as usize;
        let sizes: Vec<usize> = s
            .iter()
            .map(|x| x.formatted.len() + x.strings.iter().map(|s| s.len() + 1).sum::<usize>() + if x.strings.is_empty() { 2 } else { 1 })
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), t.tables.len(), "walk consumed every byte");
        assert_eq!(*sizes.iter().max().unwrap(), max);
        assert_eq!(s[0].string(4), Some("kagami"));
        assert_eq!(s[1].string(5), Some("Standard PC"));
        assert_eq!(&s[1].formatted[8..24], &[7; 16]);
        assert_eq!(u32::from_le_bytes(s[3].formatted[8..12].try_into().unwrap()), 0x000806c1);
        // 128 MiB: array capacity in KiB, one device of 128 MiB, one range.
        assert_eq!(u32::from_le_bytes(s[4].formatted[7..11].try_into().unwrap()), 128 << 10);
        assert_eq!(u16::from_le_bytes([s[5].formatted[0x0c], s[5].formatted[0x0d]]), 128);
        assert_eq!(u16::from_le_bytes([s[5].formatted[4], s[5].formatted[5]]), s[4].handle);
        assert_eq!(u32::from_le_bytes(s[6].formatted[8..12].try_into().unwrap()), (128 << 10) - 1);
    }

    #[test]
    fn large_memory_uses_extended_fields() {
        // 3 GiB below 4 GiB, 37 GiB above: three devices of at most 16 GiB
        // (which still fits the 16-bit size in MiB), two ranges.
        let t = build(&cfg(3 << 30, 37 << 30), 0x1000);
        let (_, _, count) = check_entry(&t.entry).unwrap();
        let s = walk(&t.tables, count).unwrap();
        let devs: Vec<&Parsed> = s.iter().filter(|x| x.kind == 17).collect();
        assert_eq!(devs.len(), 3);
        let size = |d: &Parsed| u16::from_le_bytes([d.formatted[0x0c], d.formatted[0x0d]]);
        let ext = |d: &Parsed| u32::from_le_bytes(d.formatted[0x1c..0x20].try_into().unwrap());
        assert_eq!((size(devs[0]), ext(devs[0])), (16 << 10, 0));
        assert_eq!(size(devs[2]), 8 << 10);
        let ranges: Vec<&Parsed> = s.iter().filter(|x| x.kind == 19).collect();
        assert_eq!(ranges.len(), 2);
        assert_eq!(u32::from_le_bytes(ranges[1].formatted[4..8].try_into().unwrap()), 4 << 20);
        // Corrupt a byte: the checksum catches it.
        let mut e = t.entry.clone();
        e[0x18] ^= 1;
        assert!(check_entry(&e).is_err());
    }
}
