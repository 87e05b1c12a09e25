//! The ATAPI CD-ROM's packet commands: the SCSI/MMC commands a BIOS and
//! Linux's sr driver send, on 2048-byte sectors of a data disc with one
//! track.
//!
//! Follows SPC-3 (INQUIRY, REQUEST SENSE fixed format §4.5.3, TEST UNIT
//! READY, MODE SENSE(10), PREVENT ALLOW MEDIUM REMOVAL) and MMC-5 (READ
//! CAPACITY, READ(10/12), READ TOC/PMA/ATIP formats 0 and 1 §6.33, GET
//! CONFIGURATION §6.6 with the profile list, GET EVENT STATUS NOTIFICATION
//! §6.7 polled media class, START STOP UNIT).
//!
//! Left out: audio, READ CD, multi-session and writable media, tray
//! mechanics (an eject request is accepted unless the medium is locked; the
//! medium stays).

use super::block::BlockBackend;
use serde::{Deserialize, Serialize};

/// A CD-ROM's state besides its medium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdromState {
    pub sense: (u8, u8, u8),
    pub locked: bool,
    pub media_event: bool,
}

pub const CD_SECTOR: usize = 2048;

/// Sense keys (SPC-3 §4.5.6).
pub const NOT_READY: u8 = 2;
pub const MEDIUM_ERROR: u8 = 3;
pub const ILLEGAL_REQUEST: u8 = 5;
pub const UNIT_ATTENTION: u8 = 6;

pub struct Cdrom {
    medium: Option<Box<dyn BlockBackend>>,
    /// (key, ASC, ASCQ) of the last CHECK CONDITION, for REQUEST SENSE.
    sense: (u8, u8, u8),
    locked: bool,
    /// A new medium to report once through GET EVENT STATUS NOTIFICATION.
    media_event: bool,
}

fn be16(b: &[u8], o: usize) -> usize {
    u16::from_be_bytes([b[o], b[o + 1]]) as usize
}
fn be32(b: &[u8], o: usize) -> u64 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap()) as u64
}

/// LBA → minutes/seconds/frames (75 frames a second, 2 s lead-in).
fn msf(lba: u64) -> [u8; 4] {
    let f = lba + 150;
    [0, (f / (60 * 75)) as u8, ((f / 75) % 60) as u8, (f % 75) as u8]
}

impl Cdrom {
    pub fn new(medium: Option<Box<dyn BlockBackend>>) -> Self {
        let media_event = medium.is_some();
        Cdrom {
            medium,
            sense: (0, 0, 0),
            locked: false,
            media_event,
        }
    }

    pub fn save(&self) -> CdromState {
        CdromState {
            sense: self.sense,
            locked: self.locked,
            media_event: self.media_event,
        }
    }
    pub fn restore(&mut self, s: &CdromState) {
        self.sense = s.sense;
        self.locked = s.locked;
        self.media_event = s.media_event;
    }

    /// Sectors of the medium (0 with none).
    pub fn sectors(&self) -> u64 {
        self.medium.as_ref().map_or(0, |m| m.len() / CD_SECTOR as u64)
    }

    fn fail(&mut self, key: u8, asc: u8, ascq: u8) -> Result<Vec<u8>, u8> {
        self.sense = (key, asc, ascq);
        Err(key)
    }

    fn need_medium(&mut self) -> Result<(), u8> {
        if self.medium.is_none() {
            self.sense = (NOT_READY, 0x3a, 0);
            return Err(NOT_READY);
        }
        Ok(())
    }

    /// Execute one command packet: the data for the host (already cut to
    /// the allocation length), or the sense key of a CHECK CONDITION.
    pub fn command(&mut self, cdb: &[u8]) -> Result<Vec<u8>, u8> {
        let op = cdb[0];
        if op != 0x03 {
            self.sense = (0, 0, 0);
        }
        let (data, alloc) = match op {
            // TEST UNIT READY
            0x00 => {
                self.need_medium()?;
                (Vec::new(), 0)
            }
            // REQUEST SENSE: fixed format, then the sense is cleared.
            0x03 => {
                let mut d = vec![0u8; 18];
                d[0] = 0x70;
                d[2] = self.sense.0;
                d[7] = 10;
                d[12] = self.sense.1;
                d[13] = self.sense.2;
                self.sense = (0, 0, 0);
                (d, cdb[4] as usize)
            }
            // INQUIRY
            0x12 => {
                if cdb[1] & 1 != 0 {
                    return self.fail(ILLEGAL_REQUEST, 0x24, 0); // no VPD pages
                }
                let mut d = vec![0u8; 36];
                d[0] = 0x05; // CD/DVD device
                d[1] = 0x80; // removable
                d[2] = 0x05; // SPC-3
                d[3] = 0x32; // response data format 2
                d[4] = 31;
                d[8..16].copy_from_slice(b"KAGAMI  ");
                d[16..32].copy_from_slice(b"DVD-ROM         ");
                d[32..36].copy_from_slice(b"0.1 ");
                (d, be16(cdb, 3))
            }
            // START STOP UNIT: ejecting a locked medium is refused.
            0x1b => {
                if cdb[4] & 3 == 2 && self.locked {
                    return self.fail(ILLEGAL_REQUEST, 0x53, 0x02);
                }
                (Vec::new(), 0)
            }
            // PREVENT ALLOW MEDIUM REMOVAL
            0x1e => {
                self.locked = cdb[4] & 1 != 0;
                (Vec::new(), 0)
            }
            // READ CAPACITY: last LBA and block length.
            0x25 => {
                self.need_medium()?;
                let mut d = Vec::with_capacity(8);
                d.extend_from_slice(&(self.sectors().saturating_sub(1) as u32).to_be_bytes());
                d.extend_from_slice(&(CD_SECTOR as u32).to_be_bytes());
                (d, 8)
            }
            // READ(10), READ(12)
            0x28 | 0xa8 => {
                self.need_medium()?;
                let lba = be32(cdb, 2);
                let n = if op == 0x28 { be16(cdb, 7) as u64 } else { be32(cdb, 6) };
                if lba.checked_add(n).is_none_or(|e| e > self.sectors()) {
                    return self.fail(ILLEGAL_REQUEST, 0x21, 0); // LBA out of range
                }
                // A READ larger than 16 MiB is not something a driver sends; refuse it
                // rather than allocate what the guest asks for.
                if n * CD_SECTOR as u64 > 16 << 20 {
                    return self.fail(ILLEGAL_REQUEST, 0x24, 0);
                }
                let mut d = vec![0u8; (n as usize) * CD_SECTOR];
                let m = self.medium.as_mut().expect("checked");
                if m.read_at(lba * CD_SECTOR as u64, &mut d).is_err() {
                    return self.fail(MEDIUM_ERROR, 0x11, 0);
                }
                let len = d.len();
                (d, len)
            }
            // SEEK(10)
            0x2b => {
                self.need_medium()?;
                (Vec::new(), 0)
            }
            // READ TOC/PMA/ATIP
            0x43 => {
                self.need_medium()?;
                let time = cdb[1] & 2 != 0;
                let format = match cdb[2] & 0x0f {
                    0 => cdb[9] >> 6, // older drives put the format in the control byte
                    f => f,
                };
                let addr = |lba: u64| if time { msf(lba) } else { (lba as u32).to_be_bytes() };
                let mut d = vec![0u8, 0];
                match format {
                    0 => {
                        d.extend([1, 1]);
                        let start = cdb[6];
                        if start <= 1 {
                            d.extend([0, 0x14, 1, 0]);
                            d.extend(addr(0));
                        } else if start != 0xaa {
                            return self.fail(ILLEGAL_REQUEST, 0x24, 0);
                        }
                        d.extend([0, 0x14, 0xaa, 0]);
                        d.extend(addr(self.sectors()));
                    }
                    1 => {
                        d.extend([1, 1, 0, 0x14, 1, 0]);
                        d.extend(addr(0));
                    }
                    _ => return self.fail(ILLEGAL_REQUEST, 0x24, 0),
                }
                let len = (d.len() - 2) as u16;
                d[..2].copy_from_slice(&len.to_be_bytes());
                (d, be16(cdb, 7))
            }
            // GET CONFIGURATION: header, then the profile list feature (CD-ROM).
            0x46 => {
                let current: u16 = if self.medium.is_some() { 0x0008 } else { 0 };
                let mut d = vec![0u8; 8];
                d[6..8].copy_from_slice(&current.to_be_bytes());
                if be16(cdb, 2) == 0 || cdb[1] & 3 != 2 {
                    d.extend([0, 0, 0x03, 4, 0, 0x08, (current == 8) as u8, 0]);
                }
                let len = (d.len() - 4) as u32;
                d[..4].copy_from_slice(&len.to_be_bytes());
                (d, be16(cdb, 7))
            }
            // GET EVENT STATUS NOTIFICATION, polled, media class only.
            0x4a => {
                if cdb[1] & 1 == 0 {
                    return self.fail(ILLEGAL_REQUEST, 0x24, 0);
                }
                let d = if cdb[4] & 0x10 != 0 {
                    let code = if std::mem::take(&mut self.media_event) { 2 } else { 0 };
                    vec![0, 6, 4, 0x10, code, (self.medium.is_some() as u8) << 1, 0, 0]
                } else {
                    vec![0, 2, 0x80, 0x10]
                };
                (d, be16(cdb, 7))
            }
            // MODE SENSE(10): error recovery and capabilities pages.
            0x5a => {
                let page = cdb[2] & 0x3f;
                let mut d = vec![0u8; 8];
                if page == 0x01 || page == 0x3f {
                    d.extend([0x01, 0x0a, 0, 3, 0, 0, 0, 0, 3, 0, 0, 0]);
                }
                if page == 0x2a || page == 0x3f {
                    let mut p = vec![0u8; 22];
                    p[0] = 0x2a;
                    p[1] = 20;
                    p[2] = 0x3b; // reads CD-R/RW, DVD-ROM...
                    p[4] = 0x71; // multi-session, mode 2 form 1/2, audio play
                    p[6] = 0x29 | ((self.locked as u8) << 1); // lock, eject, tray
                    p[8..10].copy_from_slice(&(16u16 * 176).to_be_bytes()); // max speed KB/s
                    p[10..12].copy_from_slice(&256u16.to_be_bytes()); // volume levels
                    p[12..14].copy_from_slice(&2048u16.to_be_bytes()); // buffer KB
                    p[14..16].copy_from_slice(&(16u16 * 176).to_be_bytes());
                    d.extend(p);
                }
                if d.len() == 8 {
                    return self.fail(ILLEGAL_REQUEST, 0x24, 0);
                }
                let len = (d.len() - 2) as u16;
                d[..2].copy_from_slice(&len.to_be_bytes());
                (d, be16(cdb, 7))
            }
            _ => return self.fail(ILLEGAL_REQUEST, 0x20, 0),
        };
        let mut data = data;
        data.truncate(alloc);
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemBackend;

    fn cd(sectors: usize) -> Cdrom {
        let bytes = (0..sectors * CD_SECTOR).map(|i| (i / CD_SECTOR) as u8).collect();
        Cdrom::new(Some(Box::new(MemBackend::new(bytes))))
    }

    #[test]
    fn capacity_read_toc() {
        let mut c = cd(300);
        assert_eq!(
            c.command(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            [0, 0, 1, 43, 0, 0, 8, 0]
        );
        let d = c.command(&[0x28, 0, 0, 0, 0, 5, 0, 0, 2, 0, 0, 0]).unwrap();
        assert_eq!(d.len(), 4096);
        assert_eq!((d[0], d[2048]), (5, 6));
        assert_eq!(c.command(&[0x28, 0, 0, 0, 1, 43, 0, 0, 2, 0, 0, 0]), Err(ILLEGAL_REQUEST));
        let s = c.command(&[0x03, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!((s[2], s[12]), (ILLEGAL_REQUEST, 0x21));
        let toc = c.command(&[0x43, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0]).unwrap();
        assert_eq!(toc, [0, 18, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0, 0, 0x14, 0xaa, 0, 0, 0, 1, 44]);
        let toc = c.command(&[0x43, 2, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0]).unwrap();
        assert_eq!(&toc[16..20], &[0, 0, 6, 0], "300 + 150 frames = 0:06:00");
        let s = c.command(&[0x43, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0]).unwrap();
        assert_eq!(s, [0, 10, 1, 1], "cut to the allocation length");
    }

    #[test]
    fn no_medium_and_events() {
        let mut c = Cdrom::new(None);
        assert_eq!(c.command(&[0; 12]), Err(NOT_READY));
        let s = c.command(&[0x03, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!((s[2], s[12]), (NOT_READY, 0x3a));
        let mut c = cd(10);
        let ev = [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0, 0, 0];
        assert_eq!(c.command(&ev).unwrap()[4..6], [2, 2]);
        assert_eq!(c.command(&ev).unwrap()[4..6], [0, 2]);
        c.command(&[0x1e, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(c.command(&[0x1b, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]), Err(ILLEGAL_REQUEST));
        let g = c.command(&[0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0]).unwrap();
        assert_eq!(&g[6..8], &[0, 8]);
        assert_eq!(c.command(&[0xff; 12]), Err(ILLEGAL_REQUEST));
    }
}
