//! The PIIX3 IDE controller's channels (PCI function 00:01.1 on
//! `-machine pc`, in legacy mode): two ATA channels with up to two drives
//! each, PIO through the command/control blocks and bus-master DMA through
//! the BAR4 block with PRD tables.
//!
//! Follows ATA8-ACS / ATA8-APT (taskfile registers, the LBA48 two-byte
//! register FIFO with HOB read-back, PIO data-in/out and PACKET protocols,
//! SRST), and the PIIX3 datasheet (290550) §2.7 bus-master IDE registers
//! (BMICx command: bit 0 start, bit 3 read/write-to-memory; BMISx status:
//! bit 0 active, 1 error, 2 interrupt (write 1 to clear), 6:5 drive DMA
//! capable; BMIDTPx: PRD table address) and §2.7.3 PRD entries (32-bit
//! address, 16-bit count with 0 = 64 KiB, bit 31 of the second dword = end
//! of table). The PCI configuration function itself is `pci::piix::Piix3Ide`.
//!
//! Offset layout of [`IdeController`] (the machine maps the ports):
//!
//! | offsets | PC ports | what |
//! |---|---|---|
//! | 0x00–0x07 | 0x1F0–0x1F7 | primary command block |
//! | 0x08 | 0x3F6 | primary alternate status / device control |
//! | 0x10–0x17 | 0x170–0x177 | secondary command block |
//! | 0x18 | 0x376 | secondary alternate status / device control |
//! | 0x20–0x2F | BAR4 | bus master: primary at +0, secondary at +8 |
//!
//! Commands complete at once: a data phase is ready when the command is
//! written, a DMA transfer completes when the bus master's start bit is set
//! (or at the command if it already is). Left out: PIO/DMA timing, the
//! drive's BSY time, simplex mode.

use super::ata::{Accepted, Drive, DriveState, Phase, Taskfile, ABRT, DRDY, DRQ, DSC, ERR};
use crate::bus::PortIoDevice;
use crate::dma::DmaMemory;
use crate::irq::IrqLine;
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};

pub const PRIMARY: u16 = 0x00;
pub const PRIMARY_CONTROL: u16 = 0x08;
pub const SECONDARY: u16 = 0x10;
pub const SECONDARY_CONTROL: u16 = 0x18;
pub const BUS_MASTER: u16 = 0x20;
/// Size of the controller's offset space.
pub const SPAN: u16 = 0x30;

/// Device control register bits.
const NIEN: u8 = 0x02;
const SRST: u8 = 0x04;
const HOB: u8 = 0x80;

/// Bus-master status bits.
const BM_ACTIVE: u8 = 0x01;
const BM_ERROR: u8 = 0x02;
const BM_INTERRUPT: u8 = 0x04;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Xfer {
    None,
    /// PIO to the host, ATA command.
    PioIn,
    /// PIO from the host, ATA write.
    PioOut,
    /// The 12 bytes of an ATAPI command packet.
    Packet,
    /// PIO to the host, ATAPI.
    AtapiIn,
    /// Waiting for the bus master: to memory / from memory.
    DmaIn,
    DmaOut,
    /// ATAPI data waiting for the bus master.
    AtapiDmaIn,
}

/// One ATA channel: its drives, the shared taskfile registers, the
/// transfer in progress and its bus-master registers.
pub struct IdeChannel {
    drives: [Option<Drive>; 2],
    irq: Box<dyn IrqLine>,
    feature: [u8; 2],
    count: [u8; 2],
    lba: [[u8; 2]; 3],
    device: u8,
    control: u8,
    status: u8,
    error: u8,
    irq_pending: bool,
    xfer: Xfer,
    buf: Vec<u8>,
    pos: usize,
    block: usize,
    block_end: usize,
    /// ATAPI PACKET: data by DMA.
    packet_dma: bool,
    /// The unit the current command runs on (the guest may select the
    /// other one while a transfer is pending).
    active: usize,
    bm_command: u8,
    bm_status: u8,
    prd: u32,
}

impl IdeChannel {
    pub fn new(irq: Box<dyn IrqLine>) -> Self {
        IdeChannel {
            drives: [None, None],
            irq,
            feature: [0; 2],
            count: [0; 2],
            lba: [[0; 2]; 3],
            device: 0,
            control: 0,
            status: 0,
            error: 1,
            irq_pending: false,
            xfer: Xfer::None,
            buf: Vec::new(),
            pos: 0,
            block: 0,
            block_end: 0,
            packet_dma: false,
            active: 0,
            bm_command: 0,
            bm_status: 0,
            prd: 0,
        }
    }

    /// Attach `drive` as device 0 (master) or 1 (slave).
    pub fn attach(&mut self, unit: usize, drive: Drive) {
        self.drives[unit] = Some(drive);
        // Bits 6:5 of BMIS: the BIOS says which drives can do DMA.
        self.bm_status |= 0x20 << unit;
        self.reset_drives();
    }

    fn unit(&self) -> usize {
        (self.device >> 4) as usize & 1
    }
    fn drive(&mut self) -> Option<&mut Drive> {
        let u = self.unit();
        self.drives[u].as_mut()
    }
    fn empty(&self) -> bool {
        self.drives.iter().all(Option::is_none)
    }

    fn update_irq(&mut self) {
        let level = self.irq_pending && self.control & NIEN == 0;
        self.irq.set_level(level);
    }
    fn raise(&mut self) {
        self.irq_pending = true;
        self.bm_status |= BM_INTERRUPT;
        self.update_irq();
    }

    fn set_signature(&mut self) {
        let sig = self.drives[self.unit()].as_ref().map(Drive::signature).unwrap_or((1, 1, 0, 0));
        self.count[0] = sig.0;
        self.lba[0][0] = sig.1;
        self.lba[1][0] = sig.2;
        self.lba[2][0] = sig.3;
    }

    /// SRST or power-on: signatures, diagnostic code 1, no transfer.
    fn reset_drives(&mut self) {
        self.xfer = Xfer::None;
        self.device &= 0xf0 & !0x10;
        self.error = 1;
        self.set_signature();
        self.status = self.drives[0].as_ref().map_or(0, Drive::reset_status);
    }

    fn taskfile(&self) -> Taskfile {
        let l = |i: usize| self.lba[i][0] as u64 | (self.lba[i][1] as u64) << 24;
        Taskfile {
            command: 0,
            feature: self.feature[0] as u16 | (self.feature[1] as u16) << 8,
            count: self.count[0] as u16 | (self.count[1] as u16) << 8,
            lba: l(0) | l(1) << 8 | l(2) << 16,
            device: self.device,
        }
    }

    fn active_drive(&mut self) -> Option<&mut Drive> {
        self.drives[self.active].as_mut()
    }

    fn fail(&mut self, error: u8) {
        self.xfer = Xfer::None;
        self.error = error;
        self.status = DRDY | ERR;
        if self.active_drive().is_some_and(|d| d.is_atapi()) {
            self.count[0] = 3; // I/O and C/D: status phase
        }
        self.raise();
    }

    fn complete(&mut self) {
        self.xfer = Xfer::None;
        self.error = 0;
        self.status = DRDY | DSC;
        if self.active_drive().is_some_and(|d| d.is_atapi()) {
            self.count[0] = 3;
        }
        self.raise();
    }

    fn command(&mut self, cmd: u8, dma: &dyn DmaMemory) {
        if self.drive().is_none() {
            return;
        }
        self.active = self.unit();
        self.irq_pending = false;
        self.update_irq();
        if cmd == 0x90 {
            // EXECUTE DEVICE DIAGNOSTIC: both devices, signature, code 1.
            self.reset_drives();
            self.raise();
            return;
        }
        if cmd == 0x08 && self.drive().is_some_and(|d| d.is_atapi()) {
            // DEVICE RESET (ATAPI): signature, no interrupt.
            self.xfer = Xfer::None;
            self.set_signature();
            self.error = 1;
            self.status = 0;
            return;
        }
        let mut tf = self.taskfile();
        tf.command = cmd;
        let r = self.drive().expect("checked").execute(&mut tf);
        self.count[0] = tf.count as u8;
        match r {
            Err(e) => {
                if self.drive().is_some_and(|d| d.is_atapi()) {
                    self.set_signature();
                }
                self.fail(e)
            }
            Ok(Accepted { phase, dma: use_dma }) => self.start(phase, use_dma, dma),
        }
    }

    fn start(&mut self, phase: Phase, use_dma: bool, dma: &dyn DmaMemory) {
        match phase {
            Phase::None => self.complete(),
            Phase::In { data, block } => {
                self.buf = data;
                if use_dma {
                    self.xfer = Xfer::DmaIn;
                    self.dma_ready(dma);
                } else {
                    self.xfer = Xfer::PioIn;
                    self.pio_block(block);
                    self.raise();
                }
            }
            Phase::Out { len, block } => {
                self.buf = vec![0; len];
                if use_dma {
                    self.xfer = Xfer::DmaOut;
                    self.dma_ready(dma);
                } else {
                    self.xfer = Xfer::PioOut;
                    self.pio_block(block);
                }
            }
            Phase::Packet => {
                self.packet_dma = use_dma;
                self.buf = vec![0; 12];
                self.xfer = Xfer::Packet;
                self.pio_block(12);
                self.count[0] = 1; // C/D = 1, I/O = 0: send the command packet
            }
        }
    }

    /// First DRQ block of a PIO transfer.
    fn pio_block(&mut self, block: usize) {
        self.pos = 0;
        self.block = block;
        self.block_end = block.min(self.buf.len());
        self.status = DRDY | DSC | DRQ;
        self.error = 0;
    }

    /// A DMA command is set up: transfer now if the bus master is already started.
    fn dma_ready(&mut self, dma: &dyn DmaMemory) {
        self.status = DRDY | DSC | DRQ;
        if self.bm_command & 1 != 0 {
            self.run_dma(dma);
        }
    }

    /// Move the whole pending DMA transfer through the PRD table.
    fn run_dma(&mut self, dma: &dyn DmaMemory) {
        let to_memory = match self.xfer {
            Xfer::DmaIn | Xfer::AtapiDmaIn => true,
            Xfer::DmaOut => false,
            _ => return,
        };
        self.bm_status |= BM_ACTIVE;
        let total = self.buf.len();
        let mut done = 0usize;
        let mut entry = self.prd as u64;
        let mut ok = true;
        // A PRD table lies within one 64 KiB region: at most 8192 entries.
        for _ in 0..8192 {
            let mut prd = [0u8; 8];
            if dma.read(entry, &mut prd).is_err() {
                ok = false;
                break;
            }
            let addr = u32::from_le_bytes(prd[0..4].try_into().unwrap()) as u64 & !1;
            let count = match u16::from_le_bytes([prd[4], prd[5]]) as usize & !1 {
                0 => 0x10000,
                c => c,
            };
            let eot = prd[7] & 0x80 != 0;
            let n = count.min(total - done);
            let r = if to_memory {
                dma.write(addr, &self.buf[done..done + n])
            } else {
                dma.read(addr, &mut self.buf[done..done + n])
            };
            if r.is_err() {
                ok = false;
                break;
            }
            done += n;
            entry += 8;
            if eot || done == total {
                break;
            }
        }
        if !ok || done < total {
            // The PRD table ended early or pointed outside RAM.
            self.bm_status = (self.bm_status | BM_ERROR) & !BM_ACTIVE;
            self.fail(ABRT);
            return;
        }
        self.bm_status &= !BM_ACTIVE;
        if self.xfer == Xfer::DmaOut {
            let buf = std::mem::take(&mut self.buf);
            let r = self.active_drive().map_or(Err(ABRT), |d| d.write_done(&buf));
            if let Err(e) = r {
                self.fail(e);
                return;
            }
        }
        self.complete();
    }

    /// After a PIO block moved: next block, or the end of the command.
    fn block_done(&mut self, dma: &dyn DmaMemory) {
        match self.xfer {
            Xfer::PioIn | Xfer::AtapiIn if self.pos >= self.buf.len() => {
                if self.xfer == Xfer::AtapiIn {
                    self.complete();
                } else {
                    self.xfer = Xfer::None;
                    self.status = DRDY | DSC;
                }
            }
            Xfer::PioIn | Xfer::AtapiIn => {
                self.block_end = (self.pos + self.block).min(self.buf.len());
                if self.xfer == Xfer::AtapiIn {
                    self.set_byte_count(self.block_end - self.pos);
                }
                self.raise();
            }
            Xfer::PioOut if self.pos >= self.buf.len() => {
                let buf = std::mem::take(&mut self.buf);
                match self.active_drive().map_or(Err(ABRT), |d| d.write_done(&buf)) {
                    Ok(()) => self.complete(),
                    Err(e) => self.fail(e),
                }
            }
            Xfer::PioOut => {
                self.block_end = (self.pos + self.block).min(self.buf.len());
                self.raise();
            }
            Xfer::Packet => self.run_packet(dma),
            _ => {}
        }
    }

    fn set_byte_count(&mut self, n: usize) {
        self.lba[1][0] = n as u8;
        self.lba[2][0] = (n >> 8) as u8;
    }

    fn run_packet(&mut self, dma: &dyn DmaMemory) {
        let cdb = std::mem::take(&mut self.buf);
        // The byte count limit the host put in LBA mid/high (even, 0 means 0xFFFE).
        let limit = match (self.lba[1][0] as usize | (self.lba[2][0] as usize) << 8) & !1 {
            0 => 0xfffe,
            l => l,
        };
        match self.active_drive().map_or(Err(ABRT), |d| d.packet(&cdb)) {
            Err(e) => self.fail(e),
            Ok(data) if data.is_empty() => self.complete(),
            Ok(data) => {
                self.buf = data;
                if self.packet_dma {
                    self.xfer = Xfer::AtapiDmaIn;
                    self.count[0] = 2;
                    self.dma_ready(dma);
                } else {
                    self.xfer = Xfer::AtapiIn;
                    self.pio_block(limit);
                    self.set_byte_count(self.block_end);
                    self.count[0] = 2; // I/O = 1, C/D = 0: data to the host
                    self.raise();
                }
            }
        }
    }

    fn data_read(&mut self, size: u8, dma: &dyn DmaMemory) -> u32 {
        if !matches!(self.xfer, Xfer::PioIn | Xfer::AtapiIn) || self.pos >= self.block_end {
            return 0xffff_ffff >> (32 - 8 * size as u32);
        }
        let mut v = 0u32;
        for i in 0..size as usize {
            if self.pos < self.block_end {
                v |= (self.buf[self.pos] as u32) << (8 * i);
                self.pos += 1;
            }
        }
        if self.pos >= self.block_end {
            self.block_done(dma);
        }
        v
    }

    fn data_write(&mut self, size: u8, value: u32, dma: &dyn DmaMemory) {
        if !matches!(self.xfer, Xfer::PioOut | Xfer::Packet) || self.pos >= self.block_end {
            return;
        }
        for i in 0..size as usize {
            if self.pos < self.block_end {
                self.buf[self.pos] = (value >> (8 * i)) as u8;
                self.pos += 1;
            }
        }
        if self.pos >= self.block_end {
            self.block_done(dma);
        }
    }

    fn read_register(&mut self, reg: u16, size: u8, dma: &dyn DmaMemory) -> u32 {
        if self.empty() {
            return 0xff; // floating bus: no devices on this channel
        }
        if reg == 0 {
            return self.data_read(size, dma);
        }
        let present = self.drives[self.unit()].is_some();
        let hob = (self.control & HOB != 0) as usize;
        let v = match reg {
            1 => self.error,
            2 => self.count[hob],
            3..=5 => self.lba[reg as usize - 3][hob],
            6 => return self.device as u32 | 0xa0,
            7 => {
                self.irq_pending = false;
                self.update_irq();
                self.status
            }
            _ => 0xff,
        };
        // An absent device 1 next to a present device 0 reads as 0 (what QEMU does too).
        if present {
            v as u32
        } else {
            0
        }
    }

    fn write_register(&mut self, reg: u16, value: u8, dma: &dyn DmaMemory) {
        // Any taskfile write clears HOB (ATA8-ACS §6.3.4).
        if (1..=6).contains(&reg) {
            self.control &= !HOB;
        }
        match reg {
            1 => self.feature = [value, self.feature[0]],
            2 => self.count = [value, self.count[0]],
            3..=5 => {
                let r = &mut self.lba[reg as usize - 3];
                *r = [value, r[0]];
            }
            6 => self.device = value & 0x5f,
            7 => self.command(value, dma),
            _ => {}
        }
    }

    fn write_control(&mut self, value: u8) {
        let was = self.control;
        self.control = value & (NIEN | SRST | HOB);
        if value & SRST != 0 && was & SRST == 0 {
            self.reset_drives();
            self.status |= 0x80; // BSY while SRST is held
            self.irq_pending = false;
        } else if value & SRST == 0 && was & SRST != 0 {
            self.status = self.drives[0].as_ref().map_or(0, Drive::reset_status);
        }
        self.update_irq();
    }

    fn read_control(&self) -> u32 {
        if self.empty() {
            0xff
        } else if self.drives[self.unit()].is_none() {
            0
        } else {
            self.status as u32
        }
    }

    fn bm_read(&self, reg: u16) -> u8 {
        match reg {
            0 => self.bm_command,
            2 => self.bm_status,
            4..=7 => (self.prd >> (8 * (reg - 4))) as u8,
            _ => 0,
        }
    }

    fn bm_write(&mut self, reg: u16, value: u8, dma: &dyn DmaMemory) {
        match reg {
            0 => {
                let start = value & 1 != 0 && self.bm_command & 1 == 0;
                self.bm_command = value & 0x09;
                if value & 1 == 0 {
                    self.bm_status &= !BM_ACTIVE;
                }
                if start {
                    self.run_dma(dma);
                }
            }
            2 => {
                self.bm_status = (self.bm_status & !0x60) | (value & 0x60);
                self.bm_status &= !(value & (BM_ERROR | BM_INTERRUPT));
            }
            4..=7 => {
                let shift = 8 * (reg - 4);
                self.prd = (self.prd & !(0xff << shift)) | ((value as u32) << shift);
                self.prd &= !3;
            }
            _ => {}
        }
    }
}

/// Both channels of the PIIX3 IDE function and the bus master they share.
pub struct IdeController {
    pub channels: [IdeChannel; 2],
    dma: Box<dyn DmaMemory>,
}

impl IdeController {
    /// `irq14`/`irq15`: the legacy interrupt lines of the primary and
    /// secondary channel; `dma`: guest memory for the bus master.
    pub fn new(irq14: Box<dyn IrqLine>, irq15: Box<dyn IrqLine>, dma: Box<dyn DmaMemory>) -> Self {
        IdeController {
            channels: [IdeChannel::new(irq14), IdeChannel::new(irq15)],
            dma,
        }
    }

    /// Attach a drive: channel 0/1, unit 0 (master) / 1 (slave). QEMU's
    /// `index=N` is channel N / 2, unit N % 2.
    pub fn attach(&mut self, channel: usize, unit: usize, drive: Drive) {
        self.channels[channel].attach(unit, drive);
    }

    /// The chipset reset line.
    pub fn reset(&mut self) {
        for c in &mut self.channels {
            c.control = 0;
            c.bm_command = 0;
            c.bm_status &= 0x60;
            c.prd = 0;
            c.reset_drives();
            c.irq_pending = false;
            c.update_irq();
        }
    }
}

impl PortIoDevice for IdeController {
    fn read(&mut self, offset: u16, size: u8) -> u32 {
        let dma = self.dma.as_ref();
        match offset {
            0x00..=0x07 | 0x10..=0x17 => {
                let ch = &mut self.channels[(offset >> 4) as usize];
                if offset & 7 == 0 {
                    ch.read_register(0, size, dma)
                } else {
                    crate::bus::read_bytewise(offset & 7, size, |r| ch.read_register(r.min(8), 1, dma) as u8)
                }
            }
            PRIMARY_CONTROL | SECONDARY_CONTROL => self.channels[(offset >> 4) as usize].read_control(),
            0x20..=0x2f => {
                let ch = &self.channels[((offset - 0x20) >> 3) as usize];
                crate::bus::read_bytewise((offset - 0x20) & 7, size, |r| ch.bm_read(r & 7))
            }
            _ => 0xffff_ffff >> (32 - 8 * size.min(4) as u32),
        }
    }

    fn write(&mut self, offset: u16, size: u8, value: u32) {
        let dma = self.dma.as_ref();
        match offset {
            0x00..=0x07 | 0x10..=0x17 => {
                let ch = &mut self.channels[(offset >> 4) as usize];
                if offset & 7 == 0 {
                    ch.data_write(size, value, dma)
                } else {
                    crate::bus::write_bytewise(offset & 7, size, value, |r, b| ch.write_register(r, b, dma))
                }
            }
            PRIMARY_CONTROL | SECONDARY_CONTROL => self.channels[(offset >> 4) as usize].write_control(value as u8),
            0x20..=0x2f => {
                let ch = &mut self.channels[((offset - 0x20) >> 3) as usize];
                crate::bus::write_bytewise((offset - 0x20) & 7, size, value, |r, b| ch.bm_write(r & 7, b, dma))
            }
            _ => {}
        }
    }
}

/// One channel's registers, transfer in progress and drive states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    pub feature: [u8; 2],
    pub count: [u8; 2],
    pub lba: [[u8; 2]; 3],
    pub device: u8,
    pub control: u8,
    pub status: u8,
    pub error: u8,
    pub irq_pending: bool,
    pub xfer: Xfer,
    pub buf: Vec<u8>,
    pub pos: usize,
    pub block: usize,
    pub block_end: usize,
    pub packet_dma: bool,
    pub active: usize,
    pub bm_command: u8,
    pub bm_status: u8,
    pub prd: u32,
    pub drives: [Option<DriveState>; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub channels: Vec<ChannelState>,
}

impl IdeChannel {
    fn save(&self) -> ChannelState {
        ChannelState {
            feature: self.feature,
            count: self.count,
            lba: self.lba,
            device: self.device,
            control: self.control,
            status: self.status,
            error: self.error,
            irq_pending: self.irq_pending,
            xfer: self.xfer,
            buf: self.buf.clone(),
            pos: self.pos,
            block: self.block,
            block_end: self.block_end,
            packet_dma: self.packet_dma,
            active: self.active,
            bm_command: self.bm_command,
            bm_status: self.bm_status,
            prd: self.prd,
            drives: [self.drives[0].as_ref().map(Drive::save), self.drives[1].as_ref().map(Drive::save)],
        }
    }

    fn validate(&self, s: &ChannelState) -> Result<(), StateError> {
        const D: &str = "ide-channel";
        check(D, s.pos <= s.block_end && s.block_end <= s.buf.len(), || {
            format!("transfer position {}/{}/{}", s.pos, s.block_end, s.buf.len())
        })?;
        check(D, s.active < 2 && s.prd & 3 == 0, || "unit or PRD address out of range".into())?;
        check(D, s.xfer == Xfer::None || (s.block > 0 && self.drives[s.active].is_some()), || {
            "a transfer without a block size or a drive".into()
        })?;
        for u in 0..2 {
            check(D, s.drives[u].is_some() == self.drives[u].is_some(), || {
                format!("unit {u} saved with another drive set")
            })?;
            if let (Some(d), Some(ds)) = (&self.drives[u], &s.drives[u]) {
                d.validate(ds)?;
            }
        }
        Ok(())
    }

    fn load(&mut self, s: &ChannelState) -> Result<(), StateError> {
        for u in 0..2 {
            if let (Some(d), Some(ds)) = (self.drives[u].as_mut(), &s.drives[u]) {
                d.restore(ds)?;
            }
        }
        self.feature = s.feature;
        self.count = s.count;
        self.lba = s.lba;
        self.device = s.device;
        self.control = s.control;
        self.status = s.status;
        self.error = s.error;
        self.irq_pending = s.irq_pending;
        self.xfer = s.xfer;
        self.buf = s.buf.clone();
        self.pos = s.pos;
        self.block = s.block;
        self.block_end = s.block_end;
        self.packet_dma = s.packet_dma;
        self.active = s.active;
        self.bm_command = s.bm_command;
        self.bm_status = s.bm_status;
        self.prd = s.prd;
        self.update_irq();
        Ok(())
    }
}

/// Registers and drive states; the images and guest memory are the machine's.
impl Snapshot for IdeController {
    type State = State;
    fn save(&self) -> State {
        State {
            channels: self.channels.iter().map(IdeChannel::save).collect(),
        }
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        check("ide", s.channels.len() == 2, || format!("{} channels", s.channels.len()))?;
        for (c, cs) in self.channels.iter().zip(&s.channels) {
            c.validate(cs)?;
        }
        for (c, cs) in self.channels.iter_mut().zip(&s.channels) {
            c.load(cs)?;
        }
        Ok(())
    }
}
