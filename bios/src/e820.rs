//! The BIOS E820 memory map (ACPI 6.5 section 15, "System Address Map
//! Interfaces"): the machine describes its RAM and holes once here, and every
//! boot path (Linux boot_params, Multiboot mmap, fw_cfg `etc/e820`, INT 15h
//! E820) reads it from this one place.

/// Address-range types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    Ram = 1,
    Reserved = 2,
    Acpi = 3,
    Nvs = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: E820Type,
}

impl E820Entry {
    /// The 20-byte wire form used by boot_params and INT 15h.
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..20].copy_from_slice(&(self.kind as u32).to_le_bytes());
        b
    }
}

/// A sorted, non-overlapping memory map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct E820Map {
    entries: Vec<E820Entry>,
}

impl E820Map {
    pub fn new() -> E820Map {
        E820Map::default()
    }

    /// Add a range. Ranges must not overlap (the machine's layout is fixed);
    /// zero-sized ranges are ignored.
    pub fn add(&mut self, addr: u64, size: u64, kind: E820Type) {
        if size == 0 {
            return;
        }
        debug_assert!(
            self.entries.iter().all(|e| addr + size <= e.addr || e.addr + e.size <= addr),
            "overlapping e820 range"
        );
        self.entries.push(E820Entry { addr, size, kind });
        self.entries.sort_by_key(|e| e.addr);
    }

    pub fn entries(&self) -> &[E820Entry] {
        &self.entries
    }

    /// Total bytes of usable RAM below `limit`.
    pub fn ram_below(&self, limit: u64) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == E820Type::Ram && e.addr < limit)
            .map(|e| e.size.min(limit - e.addr))
            .sum()
    }

    /// The highest RAM address range end below `limit` in a range that also
    /// starts at or above `from` (for placing an initrd or tables high).
    pub fn top_of_ram_below(&self, limit: u64) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == E820Type::Ram && e.addr < limit)
            .map(|e| (e.addr + e.size).min(limit))
            .max()
            .unwrap_or(0)
    }

    /// Whether `addr..addr+len` lies entirely inside one RAM range.
    pub fn is_ram(&self, addr: u64, len: u64) -> bool {
        self.entries
            .iter()
            .any(|e| e.kind == E820Type::Ram && e.addr <= addr && addr + len <= e.addr + e.size)
    }

    /// The fw_cfg `etc/e820` file: 20-byte entries.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.entries.iter().flat_map(|e| e.to_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_sorted_and_answers_queries() {
        let mut m = E820Map::new();
        m.add(0x10_0000, 0x7ff0_0000, E820Type::Ram);
        m.add(0, 0x9fc00, E820Type::Ram);
        m.add(0x9fc00, 0x400, E820Type::Reserved);
        assert_eq!(m.entries()[0].addr, 0);
        assert_eq!(m.ram_below(1 << 20), 0x9fc00);
        assert_eq!(m.top_of_ram_below(0x4000_0000), 0x4000_0000);
        assert!(m.is_ram(0x20_0000, 0x1000));
        assert!(!m.is_ram(0x9f000, 0x1000));
        assert_eq!(
            &m.to_bytes()[0..20],
            &E820Entry {
                addr: 0,
                size: 0x9fc00,
                kind: E820Type::Ram
            }
            .to_bytes()
        );
    }
}
