//! An ATA device as both disk controllers see it: a hard disk or an ATAPI
//! CD-ROM executing commands from a taskfile. The controller (PIIX IDE
//! registers, or an AHCI command FIS) fills in a [`Taskfile`], calls
//! [`Drive::execute`] and moves the data the answer asks for, by PIO or DMA.
//!
//! Follows ATA/ATAPI-8 ACS (T13/1699-D): §7 commands, §7.16 IDENTIFY DEVICE
//! words, §7.17 IDENTIFY PACKET DEVICE, §6.2 status/error bits; the
//! ATAPI packet commands are in [`super::atapi`].
//!
//! Left out: CHS translation beyond the default 16-head, 63-sector geometry
//! (INITIALIZE DEVICE PARAMETERS is accepted with it), security, SMART, HPA,
//! power management beyond answering CHECK POWER MODE, general purpose logs
//! other than the NCQ command error log.
//!
//! NCQ (ACS-2 §7.22 READ FPDMA QUEUED, §7.64 WRITE FPDMA QUEUED, §A.13 the
//! NCQ command error log, page 10h of READ LOG EXT): a drive the AHCI
//! controller enables with [`Drive::set_ncq`] advertises queue depth 32
//! (IDENTIFY words 75 and 76) and decodes FPDMA commands for it
//! ([`Drive::fpdma`]); the controller moves the data and keeps the queue.

use super::atapi::{Cdrom, CdromState};
use super::block::BlockBackend;
use crate::snapshot::{check, StateError};
use serde::{Deserialize, Serialize};

pub const SECTOR: usize = 512;

/// Status register bits (ACS-2 §6.2).
pub const BSY: u8 = 0x80;
pub const DRDY: u8 = 0x40;
pub const DF: u8 = 0x20;
pub const DSC: u8 = 0x10;
pub const DRQ: u8 = 0x08;
pub const ERR: u8 = 0x01;
/// Error register bits.
pub const ABRT: u8 = 0x04;
pub const IDNF: u8 = 0x10;
pub const UNC: u8 = 0x40;

/// Largest DRQ block for READ/WRITE MULTIPLE (IDENTIFY word 47).
pub const MAX_MULTIPLE: u16 = 16;

/// What the host wrote: the command block registers with the LBA48
/// "previous" bytes folded in (bits 47:24 of `lba`, 15:8 of `count` and
/// `feature`). A 28-bit command uses only the low bits and `device` 3:0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taskfile {
    pub command: u8,
    pub feature: u16,
    pub count: u16,
    pub lba: u64,
    pub device: u8,
}

/// The data phase a command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// No data: done.
    None,
    /// Data to the host, `block` bytes per DRQ block when moved by PIO.
    In { data: Vec<u8>, block: usize },
    /// `len` bytes from the host, then [`Drive::write_done`].
    Out { len: usize, block: usize },
    /// ATAPI PACKET: the 12-byte command packet comes next ([`Drive::packet`]).
    Packet,
}

/// An accepted command: its data phase and whether the data moves by DMA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub phase: Phase,
    pub dma: bool,
}

impl Accepted {
    fn pio(phase: Phase) -> Self {
        Accepted { phase, dma: false }
    }
}

/// A failed command: the error register value (status gets ERR).
pub type AtaError = u8;

enum Kind {
    Disk(Box<dyn BlockBackend>),
    Cdrom(Cdrom),
}

/// One device on an ATA channel or AHCI port.
pub struct Drive {
    kind: Kind,
    /// Sectors per DRQ block for READ/WRITE MULTIPLE; 0 until SET MULTIPLE MODE.
    multiple: u16,
    /// Pending write: byte offset of the first sector.
    write_at: u64,
    /// UDMA mode selected by SET FEATURES (word 88 bits 14:8), or multiword (word 63).
    udma: Option<u8>,
    mwdma: Option<u8>,
    write_cache: bool,
    serial: String,
    /// NCQ offered (set by a SATA controller that can queue: AHCI).
    ncq: bool,
    /// Page 10h of the NCQ command error log after a failed queued command.
    ncq_error: Option<NcqError>,
}

/// A queued command that failed, for the NCQ command error log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NcqError {
    pub tag: u8,
    pub status: u8,
    pub error: u8,
    pub lba: u64,
    pub count: u16,
}

/// A decoded READ/WRITE FPDMA QUEUED: the tag in count 7:3, the sector
/// count in the feature register (0 = 65536), FUA in device bit 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fpdma {
    pub tag: u8,
    pub write: bool,
    pub lba: u64,
    pub sectors: usize,
    pub fua: bool,
}

/// The tag of an FPDMA command's taskfile.
pub fn fpdma_tag(tf: &Taskfile) -> u8 {
    (tf.count >> 3) as u8 & 0x1f
}

impl Drive {
    /// A hard disk on `backend`; `serial` shows in IDENTIFY.
    pub fn disk(backend: Box<dyn BlockBackend>, serial: &str) -> Self {
        Self::with_kind(Kind::Disk(backend), serial)
    }
    /// An ATAPI CD-ROM, with or without a medium.
    pub fn cdrom(medium: Option<Box<dyn BlockBackend>>, serial: &str) -> Self {
        Self::with_kind(Kind::Cdrom(Cdrom::new(medium)), serial)
    }
    fn with_kind(kind: Kind, serial: &str) -> Self {
        Drive {
            kind,
            multiple: 0,
            write_at: 0,
            udma: Some(2),
            mwdma: None,
            write_cache: true,
            serial: serial.to_string(),
            ncq: false,
            ncq_error: None,
        }
    }

    /// Offer NCQ (disks only): the controller can queue FPDMA commands.
    pub fn set_ncq(&mut self, on: bool) {
        self.ncq = on && !self.is_atapi();
    }

    pub fn ncq(&self) -> bool {
        self.ncq
    }

    /// Decode and check READ (0x60) / WRITE (0x61) FPDMA QUEUED.
    pub fn fpdma(&self, tf: &Taskfile) -> Result<Fpdma, AtaError> {
        let Kind::Disk(b) = &self.kind else { return Err(ABRT) };
        let write = match tf.command {
            0x60 => false,
            0x61 => true,
            _ => return Err(ABRT),
        };
        if !self.ncq || (write && b.read_only()) {
            return Err(ABRT);
        }
        let sectors = if tf.feature == 0 { 65536 } else { tf.feature as usize };
        let lba = tf.lba & 0xffff_ffff_ffff;
        if lba.checked_add(sectors as u64).is_none_or(|end| end > self.sectors()) {
            return Err(IDNF);
        }
        Ok(Fpdma {
            tag: fpdma_tag(tf),
            write,
            lba,
            sectors,
            fua: tf.device & 0x80 != 0,
        })
    }

    /// The data of a checked READ FPDMA QUEUED.
    pub fn fpdma_read(&mut self, f: &Fpdma) -> Result<Vec<u8>, AtaError> {
        let Kind::Disk(b) = &mut self.kind else { return Err(ABRT) };
        let mut data = vec![0u8; f.sectors * SECTOR];
        b.read_at(f.lba * SECTOR as u64, &mut data).map_err(|_| UNC | ABRT)?;
        Ok(data)
    }

    /// Write the host's data of a checked WRITE FPDMA QUEUED; FUA or a
    /// disabled write cache make it durable before it completes.
    pub fn fpdma_write(&mut self, f: &Fpdma, data: &[u8]) -> Result<(), AtaError> {
        let durable = f.fua || !self.write_cache;
        let Kind::Disk(b) = &mut self.kind else { return Err(ABRT) };
        b.write_at(f.lba * SECTOR as u64, data).map_err(|_| ABRT)?;
        if durable {
            b.flush().map_err(|_| ABRT)?;
        }
        Ok(())
    }

    /// Record a failed queued command for READ LOG EXT page 10h.
    pub fn set_ncq_error(&mut self, e: NcqError) {
        self.ncq_error = Some(e);
    }

    /// Page 10h of the NCQ command error log (ACS-2 §A.13), which reading
    /// clears: NQ (bit 7 of byte 0) when no queued command failed.
    fn ncq_error_log(&mut self) -> Vec<u8> {
        let mut p = vec![0u8; SECTOR];
        match self.ncq_error.take() {
            None => p[0] = 0x80,
            Some(e) => {
                p[0] = e.tag & 0x1f;
                p[2] = e.status;
                p[3] = e.error;
                for i in 0..3 {
                    p[4 + i] = (e.lba >> (8 * i)) as u8;
                    p[8 + i] = (e.lba >> (8 * (i + 3))) as u8;
                }
                p[7] = 0x40;
                p[12] = e.count as u8;
                p[13] = (e.count >> 8) as u8;
            }
        }
        let sum = p[..511].iter().fold(0u8, |a, &b| a.wrapping_add(b));
        p[511] = sum.wrapping_neg();
        p
    }

    pub fn is_atapi(&self) -> bool {
        matches!(self.kind, Kind::Cdrom(_))
    }

    /// Sectors of 512 bytes (disks); 0 for a CD-ROM.
    pub fn sectors(&self) -> u64 {
        match &self.kind {
            Kind::Disk(b) => b.len() / SECTOR as u64,
            Kind::Cdrom(_) => 0,
        }
    }

    /// Count, LBA low, mid, high after reset or EXECUTE DEVICE DIAGNOSTIC
    /// (ATA8-ACS §9.12: the PACKET signature is 0x14/0xEB in LBA mid/high).
    pub fn signature(&self) -> (u8, u8, u8, u8) {
        if self.is_atapi() {
            (1, 1, 0x14, 0xeb)
        } else {
            (1, 1, 0, 0)
        }
    }

    /// Status after reset: a disk is ready, an ATAPI device shows 0 until
    /// a command (ATA8-ACS §9.12).
    pub fn reset_status(&self) -> u8 {
        if self.is_atapi() {
            0
        } else {
            DRDY | DSC
        }
    }

    /// Start executing `tf.command`. Non-data commands finish here (with
    /// outputs written back into `tf`).
    pub fn execute(&mut self, tf: &mut Taskfile) -> Result<Accepted, AtaError> {
        if self.is_atapi() {
            return self.execute_atapi(tf);
        }
        let cmd = tf.command;
        match cmd {
            0xec => Ok(Accepted::pio(Phase::In {
                data: self.identify(),
                block: SECTOR,
            })),
            // READ SECTORS (with/without retry), READ SECTORS EXT, READ MULTIPLE (EXT), READ DMA (EXT).
            0x20 | 0x21 | 0x24 | 0xc4 | 0x29 | 0xc8 | 0x25 => {
                let (lba, n) = self.range(tf, matches!(cmd, 0x24 | 0x29 | 0x25))?;
                let block = self.block_size(cmd)?;
                let mut data = vec![0u8; n * SECTOR];
                let Kind::Disk(b) = &mut self.kind else { unreachable!() };
                b.read_at(lba * SECTOR as u64, &mut data).map_err(|_| UNC | ABRT)?;
                Ok(Accepted {
                    phase: Phase::In { data, block },
                    dma: matches!(cmd, 0xc8 | 0x25),
                })
            }
            // WRITE SECTORS (EXT), WRITE MULTIPLE (EXT), WRITE DMA (EXT), WRITE MULTIPLE FUA EXT, WRITE DMA FUA EXT.
            0x30 | 0x31 | 0x34 | 0xc5 | 0x39 | 0xca | 0x35 | 0xce | 0x3d => {
                let (lba, n) = self.range(tf, matches!(cmd, 0x34 | 0x39 | 0x35 | 0xce | 0x3d))?;
                let block = self.block_size(cmd)?;
                let Kind::Disk(b) = &self.kind else { unreachable!() };
                if b.read_only() {
                    return Err(ABRT);
                }
                self.write_at = lba * SECTOR as u64;
                Ok(Accepted {
                    phase: Phase::Out { len: n * SECTOR, block },
                    dma: matches!(cmd, 0xca | 0x35 | 0x3d),
                })
            }
            // READ VERIFY SECTORS (EXT): only the range check.
            0x40 | 0x41 | 0x42 => {
                self.range(tf, cmd == 0x42)?;
                Ok(Accepted::pio(Phase::None))
            }
            // FLUSH CACHE (EXT): the data must reach the medium (the host file's fsync).
            0xe7 | 0xea => {
                let Kind::Disk(b) = &mut self.kind else { unreachable!() };
                b.flush().map_err(|_| ABRT)?;
                Ok(Accepted::pio(Phase::None))
            }
            0xef => self.set_features(tf).map(|()| Accepted::pio(Phase::None)),
            // SET MULTIPLE MODE: a power of two up to MAX_MULTIPLE, or 0 to disable.
            0xc6 => {
                let n = tf.count & 0xff;
                if n > MAX_MULTIPLE || (n != 0 && !n.is_power_of_two()) {
                    return Err(ABRT);
                }
                self.multiple = n;
                Ok(Accepted::pio(Phase::None))
            }
            // INITIALIZE DEVICE PARAMETERS: only the default geometry.
            0x91 => {
                if tf.count & 0xff == 63 && tf.device & 0x0f == 15 {
                    Ok(Accepted::pio(Phase::None))
                } else {
                    Err(ABRT)
                }
            }
            // RECALIBRATE, SEEK, STANDBY IMMEDIATE, IDLE IMMEDIATE, STANDBY, IDLE: nothing to do here.
            0x10..=0x1f | 0x70 | 0xe0..=0xe3 => Ok(Accepted::pio(Phase::None)),
            // CHECK POWER MODE: active or idle.
            0xe5 => {
                tf.count = 0xff;
                Ok(Accepted::pio(Phase::None))
            }
            // READ LOG EXT: only one page of the NCQ command error log.
            0x2f if self.ncq && tf.lba & 0xff == 0x10 && tf.count == 1 && tf.lba >> 8 & 0xffff == 0 => Ok(Accepted::pio(Phase::In {
                data: self.ncq_error_log(),
                block: SECTOR,
            })),
            _ => Err(ABRT),
        }
    }

    fn execute_atapi(&mut self, tf: &mut Taskfile) -> Result<Accepted, AtaError> {
        match tf.command {
            0xa1 => Ok(Accepted::pio(Phase::In {
                data: self.identify_packet(),
                block: SECTOR,
            })),
            0xa0 => Ok(Accepted {
                phase: Phase::Packet,
                dma: tf.feature & 1 != 0,
            }),
            0xef => self.set_features(tf).map(|()| Accepted::pio(Phase::None)),
            0xe5 => {
                tf.count = 0xff;
                Ok(Accepted::pio(Phase::None))
            }
            0xe0..=0xe3 => Ok(Accepted::pio(Phase::None)),
            // IDENTIFY DEVICE and everything else: abort, the signature tells the host to use PACKET.
            _ => Err(ABRT),
        }
    }

    /// Run an ATAPI command packet: the data to return to the host, or the
    /// error register value of a CHECK CONDITION (sense key in bits 7:4).
    pub fn packet(&mut self, cdb: &[u8]) -> Result<Vec<u8>, AtaError> {
        match &mut self.kind {
            Kind::Cdrom(c) => c.command(cdb).map_err(|key| (key << 4) | if key == 5 { ABRT } else { 0 }),
            Kind::Disk(_) => Err(ABRT),
        }
    }

    /// The host's data for the pending write arrived.
    pub fn write_done(&mut self, data: &[u8]) -> Result<(), AtaError> {
        let at = self.write_at;
        let wc = self.write_cache;
        match &mut self.kind {
            Kind::Disk(b) => {
                b.write_at(at, data).map_err(|_| ABRT)?;
                // Write cache disabled: every write is durable when it completes.
                if !wc {
                    b.flush().map_err(|_| ABRT)?;
                }
                Ok(())
            }
            Kind::Cdrom(_) => Err(ABRT),
        }
    }

    fn set_features(&mut self, tf: &Taskfile) -> Result<(), AtaError> {
        match tf.feature & 0xff {
            // Set transfer mode (count 7:3 = mode class, 2:0 = mode).
            0x03 => {
                let mode = tf.count as u8;
                match mode >> 3 {
                    0 | 1 => {}
                    4 if mode & 7 <= 2 => {
                        self.mwdma = Some(mode & 7);
                        self.udma = None;
                    }
                    8 if mode & 7 <= 5 => {
                        self.udma = Some(mode & 7);
                        self.mwdma = None;
                    }
                    _ => return Err(ABRT),
                }
                Ok(())
            }
            0x02 => {
                self.write_cache = true;
                Ok(())
            }
            0x82 => {
                self.write_cache = false;
                Ok(())
            }
            // Read look-ahead, reverting to defaults, 8-bit PIO off: nothing to change.
            0x55 | 0xaa | 0x66 | 0xcc | 0x81 => Ok(()),
            _ => Err(ABRT),
        }
    }

    /// The LBA and sector count of a read/write command, checked against the disk.
    fn range(&self, tf: &Taskfile, lba48: bool) -> Result<(u64, usize), AtaError> {
        let (lba, n) = if lba48 {
            let n = if tf.count == 0 { 65536 } else { tf.count as usize };
            (tf.lba & 0xffff_ffff_ffff, n)
        } else {
            let n = if tf.count & 0xff == 0 { 256 } else { (tf.count & 0xff) as usize };
            let lba = if tf.device & 0x40 != 0 {
                (tf.lba & 0xff_ffff) | ((tf.device as u64 & 0x0f) << 24)
            } else {
                // CHS: sector in LBA low (from 1), cylinder in mid/high, head in device 3:0.
                let (c, h, s) = ((tf.lba >> 8) & 0xffff, tf.device as u64 & 0x0f, tf.lba & 0xff);
                if s == 0 {
                    return Err(IDNF | ABRT);
                }
                (c * 16 + h) * 63 + s - 1
            };
            (lba, n)
        };
        if lba.checked_add(n as u64).is_none_or(|end| end > self.sectors()) {
            return Err(IDNF);
        }
        Ok((lba, n))
    }

    fn block_size(&self, cmd: u8) -> Result<usize, AtaError> {
        if matches!(cmd, 0xc4 | 0x29 | 0xc5 | 0x39 | 0xce) {
            if self.multiple == 0 {
                return Err(ABRT);
            }
            Ok(self.multiple as usize * SECTOR)
        } else {
            Ok(SECTOR)
        }
    }

    fn common_identify(&self, w: &mut [u16; 256]) {
        put_string(&mut w[10..20], &self.serial);
        put_string(&mut w[23..27], "0.1");
        put_string(&mut w[27..47], if self.is_atapi() { "KAGAMI DVD-ROM" } else { "KAGAMI HARDDISK" });
        w[49] = 0x0b00; // IORDY, LBA, DMA
        w[50] = 0x4000;
        w[51] = 0x0200; // PIO timing mode 2
        w[53] = 0x0006; // words 64-70 and 88 valid
        w[63] = 0x0007 | self.mwdma.map_or(0, |m| 0x100 << m);
        w[64] = 0x0003; // PIO 3 and 4
        w[65] = 120;
        w[66] = 120;
        w[67] = 120;
        w[68] = 120;
        w[88] = 0x003f | self.udma.map_or(0, |m| 0x100 << m);
        w[93] = 0x6000 | if self.is_atapi() { 0 } else { 0x0001 };
    }

    /// IDENTIFY DEVICE (ACS-2 §7.16): 256 words.
    pub fn identify(&self) -> Vec<u8> {
        let mut w = [0u16; 256];
        let sectors = self.sectors();
        let cyl = (sectors / (16 * 63)).clamp(1, 16383) as u16;
        w[0] = 0x0040;
        w[1] = cyl;
        w[3] = 16;
        w[6] = 63;
        self.common_identify(&mut w);
        w[47] = 0x8000 | MAX_MULTIPLE;
        w[54] = cyl;
        w[55] = 16;
        w[56] = 63;
        let chs = cyl as u32 * 16 * 63;
        w[57] = chs as u16;
        w[58] = (chs >> 16) as u16;
        w[59] = if self.multiple != 0 { 0x0100 | self.multiple } else { 0 };
        let lba28 = sectors.min(0x0fff_ffff) as u32;
        w[60] = lba28 as u16;
        w[61] = (lba28 >> 16) as u16;
        w[80] = 0x00f0; // ATA/ATAPI-4 to -7
                        // Word 82/85: write cache, NOP-less; 83/86: 48-bit, FLUSH CACHE (EXT).
        w[82] = 0x0020;
        w[83] = 0x4000 | 0x2000 | 0x1000 | 0x0400;
        w[84] = 0x4000;
        w[85] = if self.write_cache { 0x0020 } else { 0 };
        w[86] = 0x2000 | 0x1000 | 0x0400;
        w[87] = 0x4000;
        for (i, word) in w[100..104].iter_mut().enumerate() {
            *word = (sectors >> (16 * i)) as u16;
        }
        w[106] = 0x4000; // one 512-byte logical sector per physical
        if self.ncq {
            // Queue depth 32; SATA capabilities: NCQ, Gen1 signalling.
            w[75] = 31;
            w[76] = 0x0100 | 0x0002;
        }
        finish_identify(w)
    }

    /// IDENTIFY PACKET DEVICE (ACS-2 §7.17).
    pub fn identify_packet(&self) -> Vec<u8> {
        let mut w = [0u16; 256];
        // ATAPI, CD-ROM (type 5), removable, DRQ within 50 µs, 12-byte packets.
        w[0] = 0x85c0;
        self.common_identify(&mut w);
        w[71] = 30;
        w[72] = 30;
        w[80] = 0x001e; // ATA/ATAPI-1 to -4
        w[82] = 0x4010; // PACKET feature set
        w[85] = 0x0010;
        finish_identify(w)
    }
}

/// What a [`Drive`] holds besides its image (the image is reattached by the machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveState {
    pub multiple: u16,
    pub write_at: u64,
    pub udma: Option<u8>,
    pub mwdma: Option<u8>,
    pub write_cache: bool,
    /// Present for a CD-ROM.
    pub cdrom: Option<CdromState>,
    /// A failed queued command not yet read from the NCQ error log.
    #[serde(default)]
    pub ncq_error: Option<NcqError>,
}

impl Drive {
    pub fn save(&self) -> DriveState {
        DriveState {
            multiple: self.multiple,
            write_at: self.write_at,
            udma: self.udma,
            mwdma: self.mwdma,
            write_cache: self.write_cache,
            cdrom: match &self.kind {
                Kind::Cdrom(c) => Some(c.save()),
                Kind::Disk(_) => None,
            },
            ncq_error: self.ncq_error,
        }
    }

    /// Check a saved state against this drive, changing nothing.
    pub fn validate(&self, s: &DriveState) -> Result<(), StateError> {
        const D: &str = "ata-drive";
        check(
            D,
            s.multiple <= MAX_MULTIPLE && (s.multiple == 0 || s.multiple.is_power_of_two()),
            || format!("multiple count {}", s.multiple),
        )?;
        check(D, s.udma.is_none_or(|m| m <= 5) && s.mwdma.is_none_or(|m| m <= 2), || {
            "transfer mode out of range".into()
        })?;
        check(D, s.cdrom.is_some() == self.is_atapi(), || "saved drive is of another kind".into())?;
        check(D, s.ncq_error.is_none_or(|e| self.ncq && e.tag < 32), || {
            "NCQ error log on a drive without NCQ".into()
        })?;
        check(D, s.write_at.is_multiple_of(SECTOR as u64), || {
            format!("write offset {}", s.write_at)
        })
    }

    pub fn restore(&mut self, s: &DriveState) -> Result<(), StateError> {
        self.validate(s)?;
        self.multiple = s.multiple;
        self.write_at = s.write_at;
        self.udma = s.udma;
        self.mwdma = s.mwdma;
        self.write_cache = s.write_cache;
        self.ncq_error = s.ncq_error;
        if let (Kind::Cdrom(c), Some(cs)) = (&mut self.kind, &s.cdrom) {
            c.restore(cs);
        }
        Ok(())
    }
}

/// ATA strings: two characters per word, the first in the high byte, padded with spaces.
fn put_string(words: &mut [u16], s: &str) {
    let mut bytes = s.as_bytes().to_vec();
    bytes.resize(words.len() * 2, b' ');
    for (i, w) in words.iter_mut().enumerate() {
        *w = (bytes[2 * i] as u16) << 8 | bytes[2 * i + 1] as u16;
    }
}

/// Word 255: signature 0xA5 and a checksum making all 512 bytes sum to 0.
fn finish_identify(mut w: [u16; 256]) -> Vec<u8> {
    w[255] = 0x00a5;
    let mut out: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let sum = out[..511].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    out[511] = sum.wrapping_neg();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemBackend;

    fn disk(sectors: usize) -> (Drive, MemBackend) {
        let m = MemBackend::new(vec![0; sectors * SECTOR]);
        (Drive::disk(Box::new(m.clone()), "SN1"), m)
    }

    #[test]
    fn identify_words() {
        let (d, _) = disk(100_000);
        let id = d.identify();
        let w = |i: usize| u16::from_le_bytes([id[2 * i], id[2 * i + 1]]);
        assert_eq!(w(60) as u32 | (w(61) as u32) << 16, 100_000);
        assert_eq!(w(100) as u32, 100_000 & 0xffff);
        assert_eq!(w(101), 1);
        assert_eq!(&id[54..60], b"AKAGIM", "model is byte-swapped per word");
        assert_eq!(id.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        assert_eq!(id[510], 0xa5);
    }

    #[test]
    fn range_checks_and_lba_forms() {
        let (mut d, _) = disk(1000);
        let mut tf = Taskfile {
            command: 0x20,
            count: 2,
            lba: 998,
            device: 0x40,
            ..Default::default()
        };
        assert!(d.execute(&mut tf).is_ok());
        tf.lba = 999;
        assert_eq!(d.execute(&mut tf), Err(IDNF));
        // LBA48 with count 0 = 65536 sectors: out of range on this disk.
        let mut tf = Taskfile {
            command: 0x24,
            count: 0,
            lba: 0,
            device: 0x40,
            ..Default::default()
        };
        assert_eq!(d.execute(&mut tf), Err(IDNF));
        // CHS cylinder 0, head 0, sector 1 = LBA 0.
        let mut tf = Taskfile {
            command: 0x20,
            count: 1,
            lba: 1,
            device: 0x00,
            ..Default::default()
        };
        assert!(d.execute(&mut tf).is_ok());
        // READ MULTIPLE before SET MULTIPLE MODE aborts.
        let mut tf = Taskfile {
            command: 0xc4,
            count: 1,
            device: 0x40,
            ..Default::default()
        };
        assert_eq!(d.execute(&mut tf), Err(ABRT));
        assert_eq!(
            d.execute(&mut Taskfile {
                command: 0xc6,
                count: 3,
                ..Default::default()
            }),
            Err(ABRT)
        );
        assert_eq!(
            d.execute(&mut Taskfile {
                command: 0xb0,
                ..Default::default()
            }),
            Err(ABRT)
        );
    }

    #[test]
    fn read_only_disk_refuses_writes() {
        let m = MemBackend::new(vec![0; 4096]);
        let mut d = Drive::disk(Box::new(m.read_only()), "x");
        let mut tf = Taskfile {
            command: 0x30,
            count: 1,
            device: 0x40,
            ..Default::default()
        };
        assert_eq!(d.execute(&mut tf), Err(ABRT));
    }
}
