//! The controllers driven through their registers as a driver does.

use super::ahci::*;
use super::ata::*;
use super::atapi::CD_SECTOR;
use super::ide::*;
use super::*;
use crate::bus::{MmioDevice, PortIoDevice};
use crate::dma::{DmaMemory, VecDma};
use crate::irq::RecordingIrq;
use crate::pci::{MsiMessage, MsiQueue, PciDevice, CMD_BUS_MASTER, CMD_INTX_DISABLE, CMD_MEMORY, COMMAND};

fn pattern(bytes: usize, unit: usize) -> Vec<u8> {
    (0..bytes).map(|i| ((i / unit) as u8).wrapping_mul(7) ^ (i as u8)).collect()
}

struct Ide {
    c: IdeController,
    mem: VecDma,
    irq14: RecordingIrq,
    irq15: RecordingIrq,
    disk: MemBackend,
}

const CMD: u16 = PRIMARY;

fn ide() -> Ide {
    let mem = VecDma::new(1 << 20);
    let (irq14, irq15) = (RecordingIrq::new(), RecordingIrq::new());
    let mut c = IdeController::new(irq14.line(), irq15.line(), mem.boxed());
    let disk = MemBackend::new(pattern(2048 * SECTOR, SECTOR));
    c.attach(0, 0, Drive::disk(Box::new(disk.clone()), "QM0001"));
    let cd = MemBackend::new(pattern(64 * CD_SECTOR, CD_SECTOR));
    c.attach(1, 0, Drive::cdrom(Some(Box::new(cd)), "QM0002"));
    Ide {
        c,
        mem,
        irq14,
        irq15,
        disk,
    }
}

impl Ide {
    fn status(&mut self, base: u16) -> u8 {
        self.c.read(base + 7, 1) as u8
    }
    fn lba28(&mut self, base: u16, cmd: u8, lba: u32, count: u8) {
        self.c.write(base + 6, 1, 0xe0 | (lba >> 24) & 0xf);
        self.c.write(base + 2, 1, count as u32);
        self.c.write(base + 3, 1, lba & 0xff);
        self.c.write(base + 4, 1, (lba >> 8) & 0xff);
        self.c.write(base + 5, 1, (lba >> 16) & 0xff);
        self.c.write(base + 7, 1, cmd as u32);
    }
    fn lba48(&mut self, cmd: u8, lba: u64, count: u16) {
        self.c.write(CMD + 6, 1, 0x40);
        for shift in [8, 0] {
            self.c.write(CMD + 2, 1, (count >> shift) as u32 & 0xff);
        }
        for (reg, byte) in [(3, 0), (4, 1), (5, 2)] {
            self.c.write(CMD + reg, 1, (lba >> (8 * (byte + 3))) as u32 & 0xff);
        }
        for (reg, byte) in [(3, 0), (4, 1), (5, 2)] {
            self.c.write(CMD + reg, 1, (lba >> (8 * byte)) as u32 & 0xff);
        }
        self.c.write(CMD + 7, 1, cmd as u32);
    }
    fn read_data(&mut self, base: u16, bytes: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..bytes / 2 {
            v.extend_from_slice(&(self.c.read(base, 2) as u16).to_le_bytes());
        }
        v
    }
    /// PRD table at 0x1000: (addr, len) entries, the last one with EOT.
    fn prd(&mut self, channel: u16, entries: &[(u32, u32)]) {
        for (i, &(addr, len)) in entries.iter().enumerate() {
            let mut e = [0u8; 8];
            e[0..4].copy_from_slice(&addr.to_le_bytes());
            e[4..6].copy_from_slice(&(len as u16).to_le_bytes());
            if i == entries.len() - 1 {
                e[7] = 0x80;
            }
            self.mem.write(0x1000 + 8 * i as u64, &e).unwrap();
        }
        self.c.write(BUS_MASTER + 8 * channel + 4, 4, 0x1000);
    }
}

#[test]
fn ide_identify_and_pio_read_with_an_interrupt_per_block() {
    let mut t = ide();
    t.c.write(CMD + 6, 1, 0xa0);
    t.c.write(CMD + 7, 1, 0xec);
    assert!(t.irq14.level());
    assert_eq!(t.c.read(PRIMARY_CONTROL, 1) as u8 & DRQ, DRQ, "alt status: DRQ");
    assert!(t.irq14.level(), "alternate status does not acknowledge");
    assert_eq!(t.status(CMD) & (DRQ | ERR | BSY), DRQ);
    assert!(!t.irq14.level(), "status read acknowledges");
    let id = t.read_data(CMD, 512);
    assert_eq!(u16::from_le_bytes([id[120], id[121]]), 2048, "word 60: LBA28 sectors");
    assert_eq!(t.status(CMD), DRDY | DSC);

    t.irq14.take_rising_edges();
    t.lba28(CMD, 0x20, 5, 3);
    let mut data = Vec::new();
    for _ in 0..3 {
        assert!(t.irq14.level(), "one interrupt per DRQ block");
        assert_eq!(t.status(CMD) & DRQ, DRQ);
        data.extend(t.read_data(CMD, 512));
    }
    assert_eq!(t.status(CMD), DRDY | DSC);
    assert!(!t.irq14.level());
    assert_eq!(data, &t.disk.bytes()[5 * 512..8 * 512]);

    // READ MULTIPLE after SET MULTIPLE MODE 4: one block of 4 sectors, 32-bit data reads.
    t.lba28(CMD, 0xc6, 0, 4);
    assert_eq!(t.status(CMD), DRDY | DSC);
    t.irq14.take_rising_edges();
    t.lba28(CMD, 0xc4, 100, 8);
    let mut data = Vec::new();
    for _ in 0..2 {
        t.status(CMD);
        for _ in 0..512 {
            data.extend_from_slice(&t.c.read(CMD, 4).to_le_bytes());
        }
    }
    assert_eq!(t.irq14.take_rising_edges(), 2);
    assert_eq!(data, &t.disk.bytes()[100 * 512..108 * 512]);
}

#[test]
fn ide_pio_write_lba48_and_hob_readback() {
    let mut t = ide();
    t.lba48(0x34, 1000, 2);
    assert_eq!(t.status(CMD) & DRQ, DRQ);
    assert!(!t.irq14.level(), "no interrupt before the first PIO-out block");
    for i in 0..256u32 {
        t.c.write(CMD, 2, 0xab00 | (i & 0xff));
    }
    assert!(t.irq14.level(), "interrupt after each block");
    t.status(CMD);
    for _ in 0..256 {
        t.c.write(CMD, 2, 0x5a5a);
    }
    assert!(t.irq14.level());
    assert_eq!(t.status(CMD), DRDY | DSC);
    let b = t.disk.bytes();
    assert_eq!(&b[1000 * 512..1000 * 512 + 4], &[0, 0xab, 1, 0xab]);
    assert_eq!(&b[1001 * 512..1002 * 512], &[0x5a; 512]);
    // HOB: the previous contents of the LBA registers read back with control bit 7.
    t.c.write(PRIMARY_CONTROL, 1, 0x80);
    assert_eq!(t.c.read(CMD + 3, 1), 0);
    t.c.write(PRIMARY_CONTROL, 1, 0);
    assert_eq!(t.c.read(CMD + 3, 1), 1000 & 0xff);
    assert_eq!(t.c.read(CMD + 4, 1), 1000 >> 8);
}

#[test]
fn ide_bus_master_dma_read_and_write() {
    let mut t = ide();
    // READ DMA: command first, then start (what Linux's ata_bmdma does).
    t.prd(0, &[(0x10000, 1024), (0x20000, 0)]);
    t.c.write(BUS_MASTER, 1, 0x08);
    t.lba28(CMD, 0xc8, 10, 130);
    assert!(!t.irq14.level(), "nothing moves before the start bit");
    t.c.write(BUS_MASTER, 1, 0x09);
    assert!(t.irq14.level());
    assert_eq!(t.c.read(BUS_MASTER + 2, 1) as u8 & 7, 0x04, "interrupt, not active, no error");
    let disk = t.disk.bytes();
    let mut got = vec![0u8; 1024];
    t.mem.read(0x10000, &mut got).unwrap();
    assert_eq!(got, &disk[10 * 512..12 * 512]);
    let mut got = vec![0u8; 128 * 512];
    t.mem.read(0x20000, &mut got).unwrap();
    assert_eq!(got, &disk[12 * 512..140 * 512]);
    assert_eq!(t.status(CMD), DRDY | DSC);
    t.c.write(BUS_MASTER + 2, 1, 0x04);
    assert_eq!(t.c.read(BUS_MASTER + 2, 1) as u8 & 4, 0, "write 1 clears the interrupt bit");
    t.c.write(BUS_MASTER, 1, 0);

    // WRITE DMA EXT with the start bit set before the command.
    t.mem.write(0x30000, &[0xc3; 2048]).unwrap();
    t.prd(0, &[(0x30000, 2048)]);
    t.c.write(BUS_MASTER, 1, 0x01);
    t.lba48(0x35, 2000, 4);
    assert!(t.irq14.level());
    assert_eq!(t.status(CMD), DRDY | DSC);
    assert_eq!(&t.disk.bytes()[2000 * 512..2004 * 512], &[0xc3; 2048]);

    // A PRD table shorter than the transfer: bus master error, command aborted.
    t.c.write(BUS_MASTER, 1, 0);
    t.prd(0, &[(0x30000, 512)]);
    t.lba28(CMD, 0xc8, 0, 2);
    t.c.write(BUS_MASTER, 1, 0x09);
    assert_eq!(t.c.read(BUS_MASTER + 2, 1) as u8 & 2, 2);
    assert_eq!(t.status(CMD) & ERR, ERR);
    // A PRD pointing outside RAM fails the same way, without touching anything.
    t.c.write(BUS_MASTER, 1, 0);
    t.prd(0, &[(0xfff0_0000, 512)]);
    t.lba28(CMD, 0xc8, 0, 1);
    t.c.write(BUS_MASTER, 1, 0x09);
    assert_eq!(t.status(CMD) & ERR, ERR);
}

#[test]
fn ide_errors_flush_and_masked_interrupts() {
    let mut t = ide();
    t.lba28(CMD, 0x20, 2047, 2);
    assert!(t.irq14.level());
    assert_eq!(t.status(CMD), DRDY | ERR);
    assert_eq!(t.c.read(CMD + 1, 1) as u8, IDNF);
    t.lba28(CMD, 0xb0, 0, 0);
    assert_eq!(t.status(CMD), DRDY | ERR);
    assert_eq!(t.c.read(CMD + 1, 1) as u8, ABRT);
    t.lba28(CMD, 0xea, 0, 0);
    assert_eq!(t.status(CMD), DRDY | DSC);
    assert_eq!(t.disk.flushes(), 1);
    // nIEN: no interrupt line, but the status is there.
    t.c.write(PRIMARY_CONTROL, 1, 0x02);
    t.lba28(CMD, 0xe7, 0, 0);
    assert!(!t.irq14.level());
    t.c.write(PRIMARY_CONTROL, 1, 0x00);
    assert!(t.irq14.level(), "pending interrupt shows when unmasked");
    assert_eq!(t.disk.flushes(), 2);
    // Device 1 absent: its registers read 0, commands to it are ignored.
    t.c.write(CMD + 6, 1, 0xb0);
    assert_eq!(t.status(CMD), 0);
    t.c.write(CMD + 7, 1, 0xec);
    assert_eq!(t.status(CMD), 0);
    // SRST: signature back, device 0 selected.
    t.c.write(PRIMARY_CONTROL, 1, 0x04);
    assert_eq!(t.c.read(PRIMARY_CONTROL, 1) as u8 & BSY, BSY);
    t.c.write(PRIMARY_CONTROL, 1, 0x00);
    assert_eq!(t.status(CMD), DRDY | DSC);
    assert_eq!(t.c.read(CMD + 1, 1), 1);
    assert_eq!((t.c.read(CMD + 2, 1), t.c.read(CMD + 3, 1)), (1, 1));
}

#[test]
fn ide_atapi_signature_packet_pio_and_dma() {
    let mut t = ide();
    let s = SECONDARY;
    t.c.write(s + 6, 1, 0xa0);
    assert_eq!((t.c.read(s + 4, 1), t.c.read(s + 5, 1)), (0x14, 0xeb));
    t.c.write(s + 7, 1, 0xec);
    assert_eq!(t.status(s) & ERR, ERR, "IDENTIFY DEVICE aborts on ATAPI");
    assert_eq!(t.c.read(s + 5, 1), 0xeb, "with the signature in place");
    t.c.write(s + 7, 1, 0xa1);
    t.status(s);
    let id = t.read_data(s, 512);
    assert_eq!(u16::from_le_bytes([id[0], id[1]]), 0x85c0);

    // PACKET READ(10) of 3 sectors at LBA 4 with a 4096-byte byte count limit.
    let cdb = [0x28u8, 0, 0, 0, 0, 4, 0, 0, 3, 0, 0, 0];
    t.c.write(s + 1, 1, 0);
    t.c.write(s + 4, 1, 0x00);
    t.c.write(s + 5, 1, 0x10);
    t.irq15.take_rising_edges();
    t.c.write(s + 7, 1, 0xa0);
    assert_eq!(t.status(s) & DRQ, DRQ);
    assert_eq!(t.c.read(s + 2, 1), 1, "interrupt reason: command packet");
    for w in cdb.chunks(2) {
        t.c.write(s, 2, u16::from_le_bytes([w[0], w[1]]) as u32);
    }
    let mut data = Vec::new();
    for expect in [4096u32, 2048] {
        assert!(t.irq15.level());
        t.status(s);
        assert_eq!(t.c.read(s + 2, 1), 2, "interrupt reason: data to host");
        assert_eq!(t.c.read(s + 4, 1) | t.c.read(s + 5, 1) << 8, expect);
        data.extend(t.read_data(s, expect as usize));
    }
    assert!(t.irq15.level(), "status phase interrupt");
    assert_eq!(t.c.read(s + 2, 1), 3);
    assert_eq!(t.status(s), DRDY | DSC);
    assert_eq!(data, pattern(64 * CD_SECTOR, CD_SECTOR)[4 * CD_SECTOR..7 * CD_SECTOR]);

    // The same by DMA (feature bit 0).
    t.prd(1, &[(0x40000, 0)]);
    t.c.write(BUS_MASTER + 8, 1, 0x08);
    t.c.write(s + 1, 1, 1);
    t.c.write(s + 7, 1, 0xa0);
    for w in cdb.chunks(2) {
        t.c.write(s, 2, u16::from_le_bytes([w[0], w[1]]) as u32);
    }
    t.c.write(BUS_MASTER + 8, 1, 0x09);
    assert_eq!(t.status(s), DRDY | DSC);
    let mut got = vec![0u8; 3 * CD_SECTOR];
    t.mem.read(0x40000, &mut got).unwrap();
    assert_eq!(got, data);

    // An unknown packet: CHECK CONDITION, sense key in the error register.
    t.c.write(s + 1, 1, 0);
    t.c.write(s + 7, 1, 0xa0);
    for _ in 0..6 {
        t.c.write(s, 2, 0xffff);
    }
    assert_eq!(t.status(s), DRDY | ERR);
    assert_eq!(t.c.read(s + 1, 1) as u8 >> 4, 5);
}

#[test]
fn ide_empty_channel_floats() {
    let mem = VecDma::new(4096);
    let mut c = IdeController::new(RecordingIrq::new().line(), RecordingIrq::new().line(), mem.boxed());
    assert_eq!(c.read(SECONDARY + 7, 1), 0xff);
    assert_eq!(c.read(SECONDARY_CONTROL, 1), 0xff);
    c.write(SECONDARY + 7, 1, 0xec);
    assert_eq!(c.read(SECONDARY + 7, 1), 0xff);
}

// ---- AHCI ----

struct Hba {
    a: Ich9Ahci,
    mem: VecDma,
    irq: RecordingIrq,
    msi: MsiQueue,
    disk: MemBackend,
}

const CLB: u64 = 0x1000;
const FB: u64 = 0x2000;
const CTBA: u64 = 0x3000;
const DATA: u64 = 0x10000;

fn port_reg(port: usize, reg: u64) -> u64 {
    PORT_BASE + port as u64 * PORT_SIZE + reg
}

fn hba() -> Hba {
    let mem = VecDma::new(1 << 20);
    let irq = RecordingIrq::new();
    let msi = MsiQueue::new();
    let mut a = Ich9Ahci::new(irq.line(), msi.sender(), mem.boxed());
    let disk = MemBackend::new(pattern(4096 * SECTOR, SECTOR));
    a.attach(0, Drive::disk(Box::new(disk.clone()), "QM0001"));
    let cd = MemBackend::new(pattern(64 * CD_SECTOR, CD_SECTOR));
    a.attach(1, Drive::cdrom(Some(Box::new(cd)), "QM0002"));
    // What a driver does: enable interrupts, point each port at its areas, start it.
    a.write(GHC, 4, 0x8000_0002);
    for p in 0..2 {
        let off = p as u64 * 0x10000;
        a.write(port_reg(p, P_CLB), 4, CLB + off);
        a.write(port_reg(p, P_FB), 4, FB + off);
        a.write(port_reg(p, P_SERR), 4, 0xffff_ffff);
        a.write(port_reg(p, P_IE), 4, 0xffff_ffff);
        a.write(port_reg(p, P_CMD), 4, 0x11);
    }
    Hba { a, mem, irq, msi, disk }
}

impl Hba {
    /// Issue one command in slot 0 of `port`: CFIS from `tf`, PRDT entries
    /// (addr, len), `write` for host-to-device data, `acmd` for ATAPI.
    fn issue(&mut self, port: usize, tf: Taskfile, prdt: &[(u64, u32)], write: bool, acmd: Option<[u8; 12]>) {
        self.prepare(port, 0, tf, prdt, write, acmd);
        self.a.write(port_reg(port, P_CI), 4, 1);
    }
    /// Build command slot `slot` of `port` (its table at CTBA + slot * 0x100) without issuing it.
    fn prepare(&mut self, port: usize, slot: u64, tf: Taskfile, prdt: &[(u64, u32)], write: bool, acmd: Option<[u8; 12]>) {
        let off = port as u64 * 0x10000;
        let mut cfis = [0u8; 20];
        cfis[0] = 0x27;
        cfis[1] = 0x80;
        cfis[2] = tf.command;
        cfis[3] = tf.feature as u8;
        for i in 0..3 {
            cfis[4 + i] = (tf.lba >> (8 * i)) as u8;
            cfis[8 + i] = (tf.lba >> (8 * (i + 3))) as u8;
        }
        cfis[7] = tf.device;
        cfis[11] = (tf.feature >> 8) as u8;
        cfis[12] = tf.count as u8;
        cfis[13] = (tf.count >> 8) as u8;
        let ctba = CTBA + off + slot * 0x100;
        self.mem.write(ctba, &cfis).unwrap();
        if let Some(a) = acmd {
            self.mem.write(ctba + 0x40, &a).unwrap();
        }
        for (i, &(addr, len)) in prdt.iter().enumerate() {
            let mut e = [0u8; 16];
            e[0..8].copy_from_slice(&addr.to_le_bytes());
            e[12..16].copy_from_slice(&(len - 1).to_le_bytes());
            self.mem.write(ctba + 0x80 + 16 * i as u64, &e).unwrap();
        }
        let dw0 = 5 | (acmd.is_some() as u32) << 5 | (write as u32) << 6 | (prdt.len() as u32) << 16;
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&dw0.to_le_bytes());
        hdr[8..16].copy_from_slice(&ctba.to_le_bytes());
        self.mem.write(CLB + off + slot * 32, &hdr).unwrap();
    }
    fn reg(&mut self, port: usize, r: u64) -> u32 {
        self.a.read(port_reg(port, r), 4) as u32
    }
    fn prdbc(&self, port: usize) -> u32 {
        let mut b = [0u8; 4];
        self.mem.read(CLB + port as u64 * 0x10000 + 4, &mut b).unwrap();
        u32::from_le_bytes(b)
    }
    fn ack(&mut self, port: usize) {
        let is = self.reg(port, P_IS);
        self.a.write(port_reg(port, P_IS), 4, is as u64);
        self.a.write(IS, 4, 0xff);
    }
}

fn tf(command: u8, lba: u64, count: u16) -> Taskfile {
    Taskfile {
        command,
        lba,
        count,
        device: 0x40,
        feature: 0,
    }
}

#[test]
fn ahci_hba_and_port_registers() {
    let mut h = hba();
    let cap = h.a.read(CAP, 4) as u32;
    assert_eq!(cap & 0x1f, 5, "six ports");
    assert_eq!((cap >> 8) & 0x1f, 31, "32 command slots");
    assert_ne!(cap & (1 << 30), 0, "NCQ");
    assert_eq!(h.a.read(PI, 4), 0x3f);
    assert_eq!(h.reg(0, P_SSTS), 0x113);
    assert_eq!(h.reg(2, P_SSTS), 0, "no device on port 2");
    assert_eq!(h.reg(0, P_SIG), 0x0000_0101);
    assert_eq!(h.reg(1, P_SIG), 0xeb14_0101);
    assert_eq!(h.reg(0, P_CMD) & 0xc011, 0xc011, "ST, FRE and their running bits");
    // Reset: registers back to their power-on values, devices stay.
    h.a.write(GHC, 4, 1);
    assert_eq!(h.a.read(GHC, 4) as u32, 0x8000_0000);
    assert_eq!(h.reg(0, P_CMD), 0);
    assert_eq!(h.reg(0, P_SIG), 0x101);
}

#[test]
fn ahci_identify_and_dma_read_write() {
    let mut h = hba();
    h.issue(0, tf(0xec, 0, 0), &[(DATA, 512)], false, None);
    assert_eq!(h.reg(0, P_CI), 0, "completed");
    assert!(h.irq.level());
    assert_eq!(h.reg(0, P_IS) & (IS_DHRS | IS_PSS), IS_DHRS | IS_PSS);
    assert_eq!(h.a.read(IS, 4), 1);
    assert_eq!(h.prdbc(0), 512);
    let mut id = vec![0u8; 512];
    h.mem.read(DATA, &mut id).unwrap();
    assert_eq!(u16::from_le_bytes([id[200], id[201]]), 4096, "word 100: LBA48 sectors");
    let mut pio = [0u8; 20];
    h.mem.read(FB + 0x20, &mut pio).unwrap();
    assert_eq!((pio[0], pio[15]), (0x5f, DRDY | DSC));
    h.ack(0);
    assert!(!h.irq.level(), "acknowledged at the port and the HBA");

    // READ DMA EXT of 9 sectors at LBA 3000 into two PRD entries.
    h.issue(0, tf(0x25, 3000, 9), &[(DATA, 4096), (DATA + 0x8000, 512)], false, None);
    assert_eq!(h.reg(0, P_TFD), (DRDY | DSC) as u32);
    let d = h.disk.bytes();
    let mut got = vec![0u8; 4096];
    h.mem.read(DATA, &mut got).unwrap();
    assert_eq!(got, &d[3000 * 512..3008 * 512]);
    let mut got = vec![0u8; 512];
    h.mem.read(DATA + 0x8000, &mut got).unwrap();
    assert_eq!(got, &d[3008 * 512..3009 * 512]);
    assert_eq!(h.prdbc(0), 9 * 512);
    let mut d2h = [0u8; 20];
    h.mem.read(FB + 0x40, &mut d2h).unwrap();
    assert_eq!((d2h[0], d2h[2]), (0x34, DRDY | DSC));
    h.ack(0);

    // WRITE DMA EXT, then FLUSH CACHE EXT.
    h.mem.write(DATA, &[0x99; 1024]).unwrap();
    h.issue(0, tf(0x35, 7, 2), &[(DATA, 1024)], true, None);
    assert_eq!(&h.disk.bytes()[7 * 512..9 * 512], &[0x99; 1024]);
    h.issue(0, tf(0xea, 0, 0), &[], false, None);
    assert_eq!(h.disk.flushes(), 1);
    assert_eq!(h.reg(0, P_TFD), (DRDY | DSC) as u32);
}

/// MSI: the capability at 0x80 in the list, INTx silent while it is
/// enabled, one message per interrupt condition, another after an IS write
/// that leaves a port's condition pending, none without bus mastering.
#[test]
fn ahci_msi_replaces_intx() {
    let mut h = hba();
    let cfg = |h: &mut Hba, off: u16, size: u8| h.a.config_read(off, size);
    assert_eq!(cfg(&mut h, 0x34, 1), MSI_CAP_OFFSET as u32);
    assert_eq!(cfg(&mut h, MSI_CAP_OFFSET as u16, 1), 0x05);
    h.a.config_write(COMMAND, 2, (CMD_MEMORY | CMD_BUS_MASTER) as u32);
    // INTx first: the level follows the condition.
    h.issue(0, tf(0xe7, 0, 0), &[], false, None);
    assert!(h.irq.level());
    assert!(h.msi.take().is_empty());
    // Enabling MSI with the condition pending drops INTx and sends one message.
    let o = MSI_CAP_OFFSET as u16;
    h.a.config_write(o + 4, 4, 0xfee0_0000);
    h.a.config_write(o + 8, 4, 0);
    h.a.config_write(o + 12, 2, 0x0041);
    h.a.config_write(o + 2, 2, 1);
    assert!(!h.irq.level(), "no INTx while MSI is enabled");
    let m = MsiMessage {
        address: 0xfee0_0000,
        data: 0x41,
    };
    assert_eq!(h.msi.take(), [m]);
    h.ack(0);
    assert!(h.msi.take().is_empty(), "acknowledged: nothing more");
    // Two completions before the handler runs: one message.
    h.issue(0, tf(0xe7, 0, 0), &[], false, None);
    h.issue(0, tf(0xe7, 0, 0), &[], false, None);
    assert_eq!(h.msi.take(), [m]);
    // The handler clears the HBA's IS while the port's PxIS is still set
    // (a completion between its reads): the condition stays, a new message.
    h.a.write(IS, 4, 1);
    assert_eq!(h.msi.take(), [m]);
    h.ack(0);
    assert!(h.msi.take().is_empty());
    assert!(!h.irq.level());
    // Without bus mastering no message goes out, even with INTx disable clear.
    h.a.config_write(COMMAND, 2, CMD_MEMORY as u32);
    h.issue(0, tf(0xe7, 0, 0), &[], false, None);
    assert!(h.msi.take().is_empty() && !h.irq.level());
    h.a.config_write(COMMAND, 2, (CMD_MEMORY | CMD_BUS_MASTER) as u32);
    assert_eq!(h.msi.take(), [m], "sent once mastering is on");
    h.ack(0);
    // MSI off again: back to INTx, gated by INTx disable.
    h.a.config_write(o + 2, 2, 0);
    h.a.config_write(COMMAND, 2, (CMD_MEMORY | CMD_BUS_MASTER | CMD_INTX_DISABLE) as u32);
    h.issue(0, tf(0xe7, 0, 0), &[], false, None);
    assert!(!h.irq.level() && h.msi.take().is_empty());
    h.a.config_write(COMMAND, 2, (CMD_MEMORY | CMD_BUS_MASTER) as u32);
    assert!(h.irq.level());
}

fn fpdma(write: bool, tag: u8, lba: u64, sectors: u16) -> Taskfile {
    Taskfile {
        command: if write { 0x61 } else { 0x60 },
        lba,
        count: (tag as u16) << 3,
        device: 0x40,
        feature: sectors,
    }
}

/// NCQ: IDENTIFY advertises it; several queued commands issued at once
/// complete with Set Device Bits FISes that clear their PxSACT bits; a
/// failing one keeps its bit, sets TFES, and READ LOG EXT page 10h names it.
#[test]
fn ahci_ncq_queued_reads_and_writes() {
    let mut h = hba();
    h.issue(0, tf(0xec, 0, 0), &[(DATA, 512)], false, None);
    let mut id = vec![0u8; 512];
    h.mem.read(DATA, &mut id).unwrap();
    let word = |w: usize| u16::from_le_bytes([id[2 * w], id[2 * w + 1]]);
    assert_eq!((word(75) & 0x1f, word(76) & 0x100), (31, 0x100), "queue depth 32, NCQ");
    h.ack(0);

    // Tag 3: write 4 sectors at LBA 100; tag 7: read 8 sectors at LBA 2000; tag 12: read 1 at 4000.
    h.mem.write(DATA + 0x8000, &[0x5a; 2048]).unwrap();
    h.prepare(0, 3, fpdma(true, 3, 100, 4), &[(DATA + 0x8000, 2048)], true, None);
    h.prepare(0, 7, fpdma(false, 7, 2000, 8), &[(DATA, 1024), (DATA + 0x1000, 3072)], false, None);
    h.prepare(0, 12, fpdma(false, 12, 4000, 1), &[(DATA + 0x4000, 512)], false, None);
    let slots = 1 << 3 | 1 << 7 | 1 << 12;
    h.a.write(port_reg(0, P_SACT), 4, slots);
    assert_eq!(h.reg(0, P_SACT), slots as u32);
    h.a.write(port_reg(0, P_CI), 4, slots);
    assert_eq!((h.reg(0, P_CI), h.reg(0, P_SACT)), (0, 0), "all three done");
    assert_eq!(h.reg(0, P_IS) & IS_SDBS, IS_SDBS);
    assert_eq!(h.reg(0, P_TFD), (DRDY | DSC) as u32);
    assert!(h.irq.level());
    let d = h.disk.bytes();
    assert_eq!(&d[100 * 512..104 * 512], &[0x5a; 2048]);
    let mut got = vec![0u8; 4096];
    h.mem.read(DATA, &mut got[..1024]).unwrap();
    h.mem.read(DATA + 0x1000, &mut got[1024..]).unwrap();
    assert_eq!(got, &d[2000 * 512..2008 * 512]);
    let mut got = vec![0u8; 512];
    h.mem.read(DATA + 0x4000, &mut got).unwrap();
    assert_eq!(got, &d[4000 * 512..4001 * 512]);
    let mut sdb = [0u8; 8];
    h.mem.read(FB + 0x58, &mut sdb).unwrap();
    assert_eq!((sdb[0], sdb[1], sdb[2]), (0xa1, 0x40, DRDY | DSC), "the last SDB FIS");
    assert_eq!(u32::from_le_bytes(sdb[4..8].try_into().unwrap()), 1 << 12);
    h.ack(0);
    assert!(!h.irq.level());

    // Tag 5 reaches past the end of the disk: its SActive bit stays, TFES.
    h.prepare(0, 5, fpdma(false, 5, 4090, 16), &[(DATA, 8192)], false, None);
    h.a.write(port_reg(0, P_SACT), 4, 1 << 5);
    h.a.write(port_reg(0, P_CI), 4, 1 << 5);
    assert_eq!(h.reg(0, P_SACT), 1 << 5);
    assert_ne!(h.reg(0, P_IS) & IS_TFES, 0);
    assert_eq!(h.reg(0, P_TFD), (IDNF as u32) << 8 | (DRDY | ERR) as u32);
    // Error handling as Linux does it: stop the port, restart, read log 10h.
    h.ack(0);
    h.a.write(port_reg(0, P_CMD), 4, 0x10);
    assert_eq!(h.reg(0, P_SACT), 0);
    h.a.write(port_reg(0, P_CMD), 4, 0x11);
    let mut log = tf(0x2f, 0x10, 1);
    log.device = 0;
    h.issue(0, log, &[(DATA, 512)], false, None);
    assert_eq!(h.reg(0, P_TFD), (DRDY | DSC) as u32);
    let mut page = vec![0u8; 512];
    h.mem.read(DATA, &mut page).unwrap();
    assert_eq!((page[0], page[2], page[3]), (5, DRDY | ERR, IDNF), "tag, status, error");
    assert_eq!((page[4], page[5], page[12]), ((4090 & 0xff) as u8, (4090 >> 8) as u8, 16));
    assert_eq!(page.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0, "checksum");
    h.ack(0);
    h.issue(0, log, &[(DATA, 512)], false, None);
    h.mem.read(DATA, &mut page).unwrap();
    assert_eq!(page[0], 0x80, "read once: no queued error left (NQ)");
    // Other log pages are not there.
    h.issue(0, tf(0x2f, 0x00, 1), &[(DATA, 512)], false, None);
    assert_eq!(h.reg(0, P_TFD) & 0xff, (DRDY | ERR) as u32);
}

#[test]
fn ahci_errors_set_tfes() {
    let mut h = hba();
    h.issue(0, tf(0x25, 4095, 2), &[(DATA, 1024)], false, None);
    assert_eq!(h.reg(0, P_TFD), (IDNF as u32) << 8 | (DRDY | ERR) as u32);
    assert_ne!(h.reg(0, P_IS) & IS_TFES, 0);
    assert!(h.irq.level());
    h.ack(0);
    // A PRDT pointing outside RAM: aborted, nothing written.
    h.issue(0, tf(0x25, 0, 1), &[(0xfff0_0000, 512)], false, None);
    assert_eq!(h.reg(0, P_TFD) & 0xff, (DRDY | ERR) as u32);
    // Commands are ignored while the port is stopped.
    h.a.write(port_reg(0, P_CMD), 4, 0x10);
    h.a.write(port_reg(0, P_CI), 4, 1);
    assert_eq!(h.reg(0, P_CI), 0);
    // GHC.IE clear: no interrupt line.
    h.ack(0);
    h.a.write(GHC, 4, 0x8000_0000);
    h.a.write(port_reg(0, P_CMD), 4, 0x11);
    h.issue(0, tf(0xe7, 0, 0), &[], false, None);
    assert!(!h.irq.level());
}

#[test]
fn ahci_atapi_packet_and_soft_reset() {
    let mut h = hba();
    let off = 0x10000;
    let read10 = [0x28u8, 0, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0];
    let mut t = tf(0xa0, 0, 0);
    t.feature = 1;
    h.issue(1, t, &[(DATA + off, 4096)], false, Some(read10));
    assert_eq!(h.reg(1, P_TFD), (DRDY | DSC) as u32);
    let mut got = vec![0u8; 4096];
    h.mem.read(DATA + off, &mut got).unwrap();
    assert_eq!(got, pattern(64 * CD_SECTOR, CD_SECTOR)[2 * CD_SECTOR..4 * CD_SECTOR]);
    h.ack(1);
    // Unknown opcode, then REQUEST SENSE.
    h.issue(1, tf(0xa0, 0, 0), &[], false, Some([0xee; 12]));
    assert_eq!(h.reg(1, P_TFD) >> 12, 5, "sense key ILLEGAL REQUEST in error 7:4");
    h.issue(
        1,
        tf(0xa0, 0, 0),
        &[(DATA + off, 18)],
        false,
        Some([3, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0, 0]),
    );
    let mut s = [0u8; 18];
    h.mem.read(DATA + off, &mut s).unwrap();
    assert_eq!((s[2], s[12]), (5, 0x20));
    // Software reset: a control FIS with SRST, then one without.
    let mut cfis = [0u8; 20];
    cfis[0] = 0x27;
    cfis[15] = 0x04;
    for srst in [0x04u8, 0] {
        cfis[15] = srst;
        h.mem.write(CTBA + off, &cfis).unwrap();
        let hdr = 5u32 | 1 << 8 | 1 << 10;
        h.mem.write(CLB + off, &hdr.to_le_bytes()).unwrap();
        h.a.write(port_reg(1, P_CI), 4, 1);
    }
    let mut d2h = [0u8; 20];
    h.mem.read(FB + off + 0x40, &mut d2h).unwrap();
    assert_eq!((d2h[5], d2h[6]), (0x14, 0xeb), "signature in the D2H FIS");
    assert_eq!(h.reg(1, P_SIG), 0xeb14_0101);
}

/// A small deterministic generator for the no-panic tests.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Whatever a guest writes, in any order, nothing panics or reaches past
/// the image (MemBackend would panic on a slice out of range).
#[test]
fn ide_random_register_traffic_never_panics() {
    let mut t = ide();
    let mut r = Lcg(7);
    let commands = [
        0x20, 0x24, 0x25, 0x30, 0x35, 0xc4, 0xc5, 0xc6, 0xc8, 0xca, 0xa0, 0xa1, 0xec, 0xe7, 0xef, 0x90, 0x08, 0x91,
    ];
    for _ in 0..200_000 {
        let off = [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x16, 0x17, 0x18, 0x20, 0x22, 0x24, 0x28, 0x2a, 0x2c,
        ][r.next() as usize % 19];
        let size = [1, 2, 4][r.next() as usize % 3];
        let v = r.next() as u32;
        match r.next() % 4 {
            0 => {
                t.c.read(off, size);
            }
            1 if off & 7 == 7 && off < 0x20 => t.c.write(off, 1, commands[v as usize % commands.len()]),
            _ => t.c.write(off, size, v),
        }
        if r.next() % 64 == 0 {
            let addr = r.next() % (1 << 20);
            let _ = t.mem.write(addr & !7, &r.next().to_le_bytes());
        }
    }
}

#[test]
fn ahci_random_command_tables_never_panic() {
    let mut h = hba();
    let mut r = Lcg(11);
    for round in 0..3000 {
        // Random bytes over the command list, tables and PRDTs, keeping the
        // FIS type of slot 0 valid half of the time.
        for _ in 0..64 {
            let addr = CLB + r.next() % 0x3000;
            let _ = h.mem.write(addr, &(r.next() as u32).to_le_bytes());
        }
        if round % 2 == 0 {
            h.mem
                .write(CTBA, &[0x27, 0x80, [0xec, 0x25, 0x35, 0xa0, 0xc8, 0x00, 0x60, 0x61][round % 8]])
                .unwrap();
        }
        let reg = [P_CI, P_CMD, P_IS, P_IE, P_SCTL, P_SERR, P_CLB, P_FB, P_SACT][r.next() as usize % 9];
        let port = r.next() as usize % PORTS;
        let v = match reg {
            P_CLB => CLB,
            P_FB => FB,
            P_CMD => 0x11,
            _ => r.next(),
        };
        h.a.write(port_reg(port, reg), 4, v);
        h.a.read(r.next() % 0x1000, [1, 2, 4, 8][r.next() as usize % 4]);
        if r.next() % 500 == 0 {
            h.a.write(GHC, 4, 1);
            h.a.write(GHC, 4, 0x8000_0002);
        }
    }
}

#[test]
fn snapshots_round_trip_and_reject_impossible_states() {
    use crate::snapshot::Snapshot;
    let mut t = ide();
    t.lba28(CMD, 0x20, 5, 3);
    t.status(CMD);
    let _ = t.read_data(CMD, 100);
    let saved = t.c.save();
    let json = serde_json::to_string(&saved).unwrap();
    let mut u = ide();
    u.c.restore(&serde_json::from_str(&json).unwrap()).unwrap();
    // The restored controller continues the transfer where it stopped.
    let rest = u.read_data(CMD, 412);
    assert_eq!(rest, &t.disk.bytes()[5 * 512 + 100..6 * 512]);
    let mut bad = saved.clone();
    bad.channels[0].pos = bad.channels[0].buf.len() + 1;
    assert!(u.c.restore(&bad).is_err());
    let mut bad = saved.clone();
    bad.channels[0].drives[1] = bad.channels[0].drives[0].clone();
    assert!(u.c.restore(&bad).is_err());

    let mut h = hba();
    h.issue(0, tf(0xc6, 0, 0), &[], false, None);
    let s = h.a.save();
    let mut h2 = hba();
    h2.a.restore(&s).unwrap();
    assert_eq!(h2.a.save(), s);
    let mut bad = s.clone();
    bad.ports[0].ci = 1;
    assert!(h2.a.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.ports[1].drive.as_mut().unwrap().multiple = 3;
    assert!(h2.a.restore(&bad).is_err());
}
