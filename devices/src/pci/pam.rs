//! Programmable Attribute Map: how the host bridge routes reads and writes
//! of the 0xC0000–0xFFFFF BIOS area.
//!
//! Intel 440FX PMC datasheet (290549) §3.2.18 PAM\[6:0\] and the Q35/3 Series
//! MCH datasheet (316966) §5.1.15–5.1.21 PAM0–PAM6 share the layout: seven
//! registers, two 4-bit fields each. PAM0's high field covers the 64 KiB
//! F segment (its low field is reserved); PAM1–PAM6 cover 0xC0000–0xEFFFF
//! in 16 KiB pieces, low field first. In each field bit 0 (RE) sends reads
//! to DRAM and bit 1 (WE) sends writes to DRAM; a clear bit sends the
//! access to the PCI/DMI side, which on kagami means the BIOS ROM image for
//! reads and nowhere for writes.
//!
//! Both bridges also share the SMRAM control register's layout (440FX
//! §3.2.22 at 0x72, Q35 MCH §5.1.22 at 0x9D): bit 6 D_OPEN, 5 D_CLS, 4
//! D_LCK, 3 G_SMRAME, 2:0 C_BASE_SEG hardwired 010 (0xA0000). Setting D_LCK
//! clears D_OPEN and makes D_OPEN, D_LCK and G_SMRAME read-only until reset.

use crate::snapshot::StateError;

pub const D_OPEN: u8 = 1 << 6;
pub const D_CLS: u8 = 1 << 5;
pub const D_LCK: u8 = 1 << 4;
pub const G_SMRAME: u8 = 1 << 3;
pub const C_BASE_SEG: u8 = 0b010;

/// The SMRAM register after software writes `v` over `old`.
pub fn smram_write(old: u8, v: u8) -> u8 {
    if old & D_LCK != 0 {
        // Locked: only D_CLS may change.
        return (old & !D_CLS) | (v & D_CLS);
    }
    let mut n = (v & (D_OPEN | D_CLS | D_LCK | G_SMRAME)) | C_BASE_SEG;
    if n & D_LCK != 0 {
        n &= !D_OPEN;
    }
    n
}

/// Reject SMRAM values software cannot produce.
pub fn smram_validate(device: &'static str, s: u8) -> Result<(), StateError> {
    if s & 0x87 != C_BASE_SEG {
        return Err(StateError::new(
            device,
            format!("SMRAM {s:#04x}: reserved or C_BASE_SEG bits wrong"),
        ));
    }
    if s & D_LCK != 0 && s & D_OPEN != 0 {
        return Err(StateError::new(device, "SMRAM locked and open"));
    }
    Ok(())
}

/// Read/write routing of one PAM segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PamAccess {
    /// Reads come from RAM (else from the ROM image).
    pub read_ram: bool,
    /// Writes go to RAM (else they are dropped).
    pub write_ram: bool,
}

/// One segment of the BIOS area and where its accesses go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PamSegment {
    pub start: u64,
    pub len: u64,
    pub access: PamAccess,
}

/// Number of segments: the F segment plus twelve 16 KiB pieces.
pub const PAM_SEGMENTS: usize = 13;

/// Write mask of PAM register `i` (0–6): only RE and WE exist.
pub fn pam_wmask(i: usize) -> u8 {
    if i == 0 {
        0x30
    } else {
        0x33
    }
}

/// The segments described by the seven PAM registers starting at config
/// offset `pam0` (i440FX 0x59, Q35 MCH 0x90).
pub fn segments(cfg: &super::ConfigSpace, pam0: usize) -> [PamSegment; PAM_SEGMENTS] {
    decode(&regs(cfg, pam0))
}

/// The seven PAM register values starting at `pam0`.
pub fn regs(cfg: &super::ConfigSpace, pam0: usize) -> [u8; 7] {
    std::array::from_fn(|i| cfg.byte(pam0 + i))
}

/// Whether an SMRAM control value shows RAM at 0xA0000–0xBFFFF to ordinary
/// accesses instead of the VGA window: G_SMRAME and D_OPEN both set.
pub fn smram_open(smram: u8) -> bool {
    smram & G_SMRAME != 0 && smram & D_OPEN != 0
}

/// Decode the seven PAM registers into the thirteen segments, F segment first.
pub fn decode(pam: &[u8; 7]) -> [PamSegment; PAM_SEGMENTS] {
    let field = |v: u8| PamAccess {
        read_ram: v & 1 != 0,
        write_ram: v & 2 != 0,
    };
    let mut out = [PamSegment {
        start: 0xf_0000,
        len: 0x1_0000,
        access: field(pam[0] >> 4),
    }; PAM_SEGMENTS];
    for (k, seg) in out.iter_mut().enumerate().skip(1) {
        let reg = pam[1 + (k - 1) / 2];
        let nib = if (k - 1) % 2 == 0 { reg } else { reg >> 4 };
        *seg = PamSegment {
            start: 0xc_0000 + 0x4000 * (k as u64 - 1),
            len: 0x4000,
            access: field(nib),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smram_lock_freezes_open() {
        let s = smram_write(C_BASE_SEG, D_OPEN | G_SMRAME | 0x07);
        assert_eq!(s, D_OPEN | G_SMRAME | C_BASE_SEG, "C_BASE_SEG is hardwired");
        let s = smram_write(s, G_SMRAME | D_LCK | D_OPEN);
        assert_eq!(s & (D_OPEN | D_LCK), D_LCK, "locking closes");
        let s2 = smram_write(s, D_OPEN | D_CLS);
        assert_eq!(s2, s | D_CLS, "only D_CLS moves once locked");
        assert!(smram_validate("t", D_LCK | D_OPEN | C_BASE_SEG).is_err());
        assert!(smram_validate("t", 0).is_err());
    }

    #[test]
    fn segments_cover_the_bios_area_in_order() {
        let segs = decode(&[0x30, 0x01, 0x20, 0, 0, 0, 0x30]);
        assert_eq!(segs[0].start, 0xf_0000);
        assert_eq!(
            segs[0].access,
            PamAccess {
                read_ram: true,
                write_ram: true
            }
        );
        assert_eq!(
            (segs[1].start, segs[1].access.read_ram, segs[1].access.write_ram),
            (0xc_0000, true, false)
        );
        assert_eq!(
            segs[2].access,
            PamAccess {
                read_ram: false,
                write_ram: false
            }
        );
        assert_eq!((segs[4].start, segs[4].access.write_ram), (0xc_c000, true));
        assert_eq!((segs[12].start, segs[12].access.read_ram), (0xe_c000, true));
        assert!(!segs[11].access.read_ram);
        let total: u64 = segs.iter().map(|s| s.len).sum();
        assert_eq!(total, 0x4_0000);
    }
}
