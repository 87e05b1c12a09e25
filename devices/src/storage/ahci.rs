//! The ICH9 AHCI SATA controller (PCI 8086:2922 at 00:1f.2 on `-machine
//! q35`): HBA registers in the ABAR (BAR5) memory window, six ports with
//! command lists, received-FIS areas and PRDT scatter/gather DMA, disks and
//! ATAPI CD-ROMs through the shared [`Drive`] model.
//!
//! Follows the Serial ATA AHCI 1.3.1 specification: §3.1 generic host
//! control (CAP, GHC, IS, PI, VS), §3.3 port registers (CLB, FB, IS, IE,
//! CMD, TFD, SIG, SSTS, SCTL, SERR, SACT, CI), §4.2.2 command header,
//! §4.2.3 command table (CFIS at 0x00, ACMD at 0x40, PRDT at 0x80), §4.2.1
//! received-FIS layout (PIO Setup at 0x20, D2H Register at 0x40), §5.3.2
//! software reset through a control FIS (SRST); SATA 3.x §10.3 FIS layouts.
//!
//! Commands execute when their CI bit is written (the port running, PxCMD.ST):
//! the data moves at once and the port posts its FISes and interrupt. The
//! interrupt is INTx (level), gated by GHC.IE and the command register's
//! INTx disable, or, once software enables the MSI capability at 0x80 (ICH9
//! datasheet §14.1, one message), a message each time the HBA's interrupt
//! condition (GHC.IE and IS not zero) arises, and again after software
//! writes IS while a port still has an enabled PxIS bit (AHCI 1.3.1 §10.7.2:
//! the message stands for the edge INTx would have made).
//! NCQ (CAP.SNCQ): READ/WRITE FPDMA QUEUED in any slot with its PxSACT
//! bit; the device accepts it (D2H Register FIS without I, the CI bit
//! clears), the data moves through the slot's PRDT, and a Set Device Bits
//! FIS (SATA 3.x §10.3.7, at FB + 0x58) with the tag's SActive bit and I
//! completes it: PxSACT clears, PxIS.SDBS sets. A failed queued command
//! leaves its PxSACT bit, sets TFES and is in the drive's NCQ error log for
//! the host's error handling (AHCI 1.3.1 §6.2.2).
//! Left out: multiple MSI messages, port multipliers,
//! staggered spin-up, power states (partial/slumber), enclosure management,
//! command completion coalescing, the BAR4 index/data pair.

use super::ata::{Drive, DriveState, Phase, Taskfile, ABRT, DRDY, DSC, ERR};
use crate::bus::MmioDevice;
use crate::dma::DmaMemory;
use crate::irq::IrqLine;
use crate::pci::{BarKind, ConfigSpace, MsiCapability, MsiSender, PciDevice, CMD_BUS_MASTER, COMMAND, CONFIG_SIZE, VENDOR_INTEL};
use crate::snapshot::{check, Snapshot, StateError};
use serde::{Deserialize, Serialize};

pub const ICH9_AHCI_DEVICE_ID: u16 = 0x2922;
pub const PORTS: usize = 6;
/// Size of the ABAR window.
pub const ABAR_SIZE: u64 = 0x1000;

/// HBA registers (offsets in the ABAR).
pub const CAP: u64 = 0x00;
pub const GHC: u64 = 0x04;
pub const IS: u64 = 0x08;
pub const PI: u64 = 0x0c;
pub const VS: u64 = 0x10;
/// Port `n`'s registers start at `PORT_BASE + n * PORT_SIZE`.
pub const PORT_BASE: u64 = 0x100;
pub const PORT_SIZE: u64 = 0x80;
/// Port register offsets.
pub const P_CLB: u64 = 0x00;
pub const P_CLBU: u64 = 0x04;
pub const P_FB: u64 = 0x08;
pub const P_FBU: u64 = 0x0c;
pub const P_IS: u64 = 0x10;
pub const P_IE: u64 = 0x14;
pub const P_CMD: u64 = 0x18;
pub const P_TFD: u64 = 0x20;
pub const P_SIG: u64 = 0x24;
pub const P_SSTS: u64 = 0x28;
pub const P_SCTL: u64 = 0x2c;
pub const P_SERR: u64 = 0x30;
pub const P_SACT: u64 = 0x34;
pub const P_CI: u64 = 0x38;

const GHC_HR: u32 = 1 << 0;
const GHC_IE: u32 = 1 << 1;
const GHC_AE: u32 = 1 << 31;

const CMD_ST: u32 = 1 << 0;
const CMD_CLO: u32 = 1 << 3;
const CMD_FRE: u32 = 1 << 4;
const CMD_FR: u32 = 1 << 14;
const CMD_CR: u32 = 1 << 15;

/// PxIS bits.
pub const IS_DHRS: u32 = 1 << 0;
pub const IS_PSS: u32 = 1 << 1;
pub const IS_SDBS: u32 = 1 << 3;
pub const IS_TFES: u32 = 1 << 30;

#[derive(Default)]
struct Port {
    drive: Option<Drive>,
    clb: u64,
    fb: u64,
    is: u32,
    ie: u32,
    cmd: u32,
    tfd: u32,
    sig: u32,
    sctl: u32,
    serr: u32,
    sact: u32,
    ci: u32,
}

impl Port {
    fn ssts(&self) -> u32 {
        // DET 3 (device present, PHY up), SPD 1 (Gen1), IPM 1 (active).
        if self.drive.is_some() && self.sctl & 0xf != 1 {
            0x113
        } else {
            0
        }
    }
    fn reset_device(&mut self) {
        match &self.drive {
            Some(d) => {
                let (count, low, mid, high) = d.signature();
                self.sig = u32::from_le_bytes([count, low, mid, high]);
                self.tfd = d.reset_status() as u32 | 0x100; // error register 1: diagnostics passed
            }
            None => {
                self.sig = 0xffff_ffff;
                self.tfd = 0x7f;
            }
        }
    }
}

/// The ICH9 AHCI function: PCI configuration space and the HBA behind ABAR.
pub struct Ich9Ahci {
    cfg: ConfigSpace,
    ghc: u32,
    is: u32,
    ports: [Port; PORTS],
    irq: Box<dyn IrqLine>,
    msi_cap: MsiCapability,
    msi: Box<dyn MsiSender>,
    /// The interrupt condition held while MSI was on, and a message went out for it.
    msi_sent: bool,
    dma: Box<dyn DmaMemory>,
}

/// Where the MSI capability sits (ICH9 datasheet §14.1: MSI at 0x80).
pub const MSI_CAP_OFFSET: u8 = 0x80;

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

impl Ich9Ahci {
    /// `irq`: the function's INTA line (the machine routes it through PIRQ);
    /// `msi`: where its MSI messages go; `dma`: guest memory.
    pub fn new(irq: Box<dyn IrqLine>, msi: Box<dyn MsiSender>, dma: Box<dyn DmaMemory>) -> Self {
        let mut cfg = ConfigSpace::new(CONFIG_SIZE, VENDOR_INTEL, ICH9_AHCI_DEVICE_ID, 0x02, 0x01_06_01);
        cfg.set_u16(crate::pci::STATUS as usize, 0x0290);
        cfg.set_interrupt_pin(1);
        cfg.declare_bar(5, BarKind::Mem32 { prefetchable: false }, ABAR_SIZE);
        // PCS (port control and status): Linux's ahci sets the port enables here.
        cfg.set_writable(0x92, 2);
        let msi_cap = MsiCapability::add(&mut cfg, MSI_CAP_OFFSET, true);
        cfg.seal_power_on();
        let mut a = Ich9Ahci {
            cfg,
            ghc: GHC_AE,
            is: 0,
            ports: Default::default(),
            irq,
            msi_cap,
            msi,
            msi_sent: false,
            dma,
        };
        a.reset_hba();
        a
    }

    /// Attach a drive to `port` (0–5). Disks are offered NCQ.
    pub fn attach(&mut self, port: usize, mut drive: Drive) {
        drive.set_ncq(true);
        self.ports[port].drive = Some(drive);
        self.ports[port].reset_device();
    }

    fn reset_hba(&mut self) {
        self.ghc = GHC_AE;
        self.is = 0;
        for p in &mut self.ports {
            let drive = p.drive.take();
            *p = Port {
                drive,
                ..Default::default()
            };
            p.reset_device();
        }
        self.update_irq();
    }

    fn update_irq(&mut self) {
        for (i, p) in self.ports.iter().enumerate() {
            if p.is & p.ie != 0 {
                self.is |= 1 << i;
            }
        }
        let pending = self.ghc & GHC_IE != 0 && self.is != 0;
        if self.msi_cap.enabled(&self.cfg) {
            // PCI 3.0 §6.8.1.3: with MSI enabled the function does not use INTx.
            self.irq.set_level(false);
            // A message is a memory write: bus mastering must be on.
            let master = self.cfg.u16(COMMAND as usize) & CMD_BUS_MASTER != 0;
            if pending && master && !self.msi_sent {
                let m = self.msi_cap.message(&self.cfg);
                self.msi.send(m);
            }
            self.msi_sent = pending && (master || self.msi_sent);
        } else {
            self.msi_sent = false;
            self.irq.set_level(pending && !self.cfg.intx_disabled());
        }
    }

    fn cap(&self) -> u32 {
        // S64A, SNCQ, SAM (AHCI only), ISS Gen1, SCLO, 32 command slots, 6 ports.
        (1 << 31) | (1 << 30) | (1 << 18) | (1 << 20) | (1 << 24) | (31 << 8) | (PORTS as u32 - 1)
    }

    fn read32(&mut self, offset: u64) -> u32 {
        match offset {
            CAP => self.cap(),
            GHC => self.ghc,
            IS => self.is,
            PI => (1 << PORTS) - 1,
            VS => 0x0001_0000,
            o if (PORT_BASE..PORT_BASE + PORTS as u64 * PORT_SIZE).contains(&o) => {
                let p = &self.ports[((o - PORT_BASE) / PORT_SIZE) as usize];
                match (o - PORT_BASE) % PORT_SIZE {
                    P_CLB => p.clb as u32,
                    P_CLBU => (p.clb >> 32) as u32,
                    P_FB => p.fb as u32,
                    P_FBU => (p.fb >> 32) as u32,
                    P_IS => p.is,
                    P_IE => p.ie,
                    P_CMD => p.cmd,
                    P_TFD => p.tfd,
                    P_SIG => p.sig,
                    P_SSTS => p.ssts(),
                    P_SCTL => p.sctl,
                    P_SERR => p.serr,
                    P_SACT => p.sact,
                    P_CI => p.ci,
                    _ => 0,
                }
            }
            _ => 0,
        }
    }

    fn write32(&mut self, offset: u64, v: u32) {
        match offset {
            GHC => {
                if v & GHC_HR != 0 {
                    self.reset_hba();
                    return;
                }
                self.ghc = GHC_AE | (v & GHC_IE);
                self.update_irq();
            }
            IS => {
                self.is &= !v;
                // A condition still pending after the acknowledgement is a new
                // interrupt: with MSI it needs a new message.
                self.msi_sent = false;
                self.update_irq();
            }
            o if (PORT_BASE..PORT_BASE + PORTS as u64 * PORT_SIZE).contains(&o) => {
                let n = ((o - PORT_BASE) / PORT_SIZE) as usize;
                self.port_write(n, (o - PORT_BASE) % PORT_SIZE, v);
            }
            _ => {}
        }
    }

    fn port_write(&mut self, n: usize, reg: u64, v: u32) {
        let p = &mut self.ports[n];
        match reg {
            P_CLB => p.clb = (p.clb & !0xffff_ffff) | (v & !0x3ff) as u64,
            P_CLBU => p.clb = (p.clb & 0xffff_ffff) | (v as u64) << 32,
            P_FB => p.fb = (p.fb & !0xffff_ffff) | (v & !0xff) as u64,
            P_FBU => p.fb = (p.fb & 0xffff_ffff) | (v as u64) << 32,
            P_IS => {
                p.is &= !v;
                self.update_irq();
            }
            P_IE => {
                p.ie = v & 0xfdc0_00ff;
                self.update_irq();
            }
            P_CMD => {
                let mut cmd = (p.cmd & (CMD_FR | CMD_CR)) | (v & !(CMD_FR | CMD_CR | CMD_CLO | 0x1f00));
                if v & CMD_CLO != 0 {
                    p.tfd &= !0x88; // clear BSY and DRQ
                }
                cmd = if cmd & CMD_FRE != 0 { cmd | CMD_FR } else { cmd & !CMD_FR };
                if cmd & CMD_ST != 0 {
                    cmd |= CMD_CR;
                } else {
                    cmd &= !CMD_CR;
                    p.ci = 0;
                    p.sact = 0;
                }
                let fis_enabled = cmd & CMD_FR != 0 && p.cmd & CMD_FR == 0;
                p.cmd = cmd;
                if fis_enabled && p.drive.is_some() {
                    // The D2H FIS a device sends after reset, now that there is a place for it.
                    let (status, error) = (p.tfd as u8, (p.tfd >> 8) as u8);
                    let sig = p.sig.to_le_bytes();
                    self.post_d2h(n, status, error, sig, false);
                }
            }
            P_SCTL => {
                let was = p.sctl;
                p.sctl = v & 0xfff;
                // DET 1 → 0: COMRESET done, the device comes back with its signature.
                if was & 0xf == 1 && v & 0xf != 1 {
                    p.reset_device();
                    p.serr |= 1 << 26; // DIAG.X: link exchanged
                }
            }
            P_SERR => p.serr &= !v,
            P_SACT => p.sact |= v,
            P_CI => {
                if p.cmd & CMD_ST == 0 {
                    return;
                }
                let new = v & !p.ci;
                p.ci |= new;
                for slot in 0..32 {
                    if new & (1 << slot) != 0 {
                        self.run_slot(n, slot);
                    }
                }
                self.update_irq();
            }
            _ => {}
        }
    }

    /// Post a D2H Register FIS (type 0x34) into the receive area.
    fn post_d2h(&mut self, n: usize, status: u8, error: u8, regs: [u8; 4], interrupt: bool) {
        let p = &self.ports[n];
        if p.cmd & CMD_FR == 0 {
            return;
        }
        let mut fis = [0u8; 20];
        fis[0] = 0x34;
        fis[1] = if interrupt { 0x40 } else { 0 };
        fis[2] = status;
        fis[3] = error;
        fis[4] = regs[1];
        fis[5] = regs[2];
        fis[6] = regs[3];
        fis[12] = regs[0];
        let _ = self.dma.write(p.fb + 0x40, &fis);
    }

    /// Execute command slot `slot` of port `n` and complete it.
    fn run_slot(&mut self, n: usize, slot: u32) {
        let p = &self.ports[n];
        let hdr_addr = p.clb + slot as u64 * 32;
        let mut hdr = [0u8; 16];
        let mut cfis = [0u8; 64];
        let mut acmd = [0u8; 16];
        let ok = self.dma.read(hdr_addr, &mut hdr).is_ok() && {
            let ctba = u32_at(&hdr, 8) as u64 & !0x7f | (u32_at(&hdr, 12) as u64) << 32;
            self.dma.read(ctba, &mut cfis).is_ok() && self.dma.read(ctba + 0x40, &mut acmd).is_ok()
        };
        let dw0 = u32_at(&hdr, 0);
        let ctba = u32_at(&hdr, 8) as u64 & !0x7f | (u32_at(&hdr, 12) as u64) << 32;
        let prdtl = (dw0 >> 16) as usize;
        self.ports[n].ci &= !(1 << slot);
        if !ok || cfis[0] != 0x27 || self.ports[n].drive.is_none() {
            // Host bus fault or a FIS we do not take: task file error.
            self.finish(n, slot, hdr_addr, 0, Err(ABRT), false);
            return;
        }
        if cfis[1] & 0x80 == 0 {
            // Control FIS: SRST set then cleared is a software reset (§5.3.2).
            if cfis[15] & 0x04 == 0 {
                let p = &mut self.ports[n];
                p.reset_device();
                let (status, error, sig) = (p.tfd as u8, (p.tfd >> 8) as u8, p.sig.to_le_bytes());
                self.post_d2h(n, status, error, sig, false);
            }
            let _ = self.dma.write(hdr_addr + 4, &0u32.to_le_bytes());
            return;
        }
        let mut tf = Taskfile {
            command: cfis[2],
            feature: cfis[3] as u16 | (cfis[11] as u16) << 8,
            lba: cfis[4] as u64
                | (cfis[5] as u64) << 8
                | (cfis[6] as u64) << 16
                | (cfis[8] as u64) << 24
                | (cfis[9] as u64) << 32
                | (cfis[10] as u64) << 40,
            device: cfis[7],
            count: cfis[12] as u16 | (cfis[13] as u16) << 8,
        };
        let drive = self.ports[n].drive.as_mut().expect("checked");
        if matches!(tf.command, 0x60 | 0x61) && drive.ncq() {
            self.run_fpdma(n, hdr_addr, ctba, prdtl, &tf);
            return;
        }
        let result = drive.execute(&mut tf).and_then(|acc| match acc.phase {
            Phase::None => Ok((0, false)),
            Phase::In { data, .. } => {
                let pio = !acc.dma;
                scatter_gather(self.dma.as_ref(), ctba, prdtl, Sg::ToMemory(&data)).map(|n| (n, pio))
            }
            Phase::Out { len, .. } => {
                let mut buf = vec![0u8; len];
                let moved = scatter_gather(self.dma.as_ref(), ctba, prdtl, Sg::FromMemory(&mut buf))?;
                if moved < len {
                    return Err(ABRT);
                }
                drive.write_done(&buf).map(|()| (moved, false))
            }
            Phase::Packet => {
                let data = drive.packet(&acmd[..12])?;
                let pio = !acc.dma;
                scatter_gather(self.dma.as_ref(), ctba, prdtl, Sg::ToMemory(&data)).map(|n| (n, pio && !data.is_empty()))
            }
        });
        let count = tf.count;
        match result {
            Ok((moved, pio_in)) => self.finish(n, slot, hdr_addr, moved, Ok(count), pio_in),
            Err(e) => self.finish(n, slot, hdr_addr, 0, Err(e), false),
        }
    }

    /// A queued command (FPDMA): accept, move the data, complete it with a
    /// Set Device Bits FIS.
    fn run_fpdma(&mut self, n: usize, hdr_addr: u64, ctba: u64, prdtl: usize, tf: &Taskfile) {
        let tag = super::ata::fpdma_tag(tf);
        // Accepted: BSY clear, no interrupt; the slot's CI bit is already clear.
        self.post_d2h(n, DRDY | DSC, 0, [0; 4], false);
        let dma = self.dma.as_ref();
        let drive = self.ports[n].drive.as_mut().expect("checked by run_slot");
        let result = drive.fpdma(tf).and_then(|f| {
            if f.write {
                let mut buf = vec![0u8; f.sectors * super::ata::SECTOR];
                let moved = scatter_gather(dma, ctba, prdtl, Sg::FromMemory(&mut buf))?;
                if moved < buf.len() {
                    return Err(ABRT);
                }
                drive.fpdma_write(&f, &buf).map(|()| moved)
            } else {
                let data = drive.fpdma_read(&f)?;
                scatter_gather(dma, ctba, prdtl, Sg::ToMemory(&data))
            }
        });
        let (status, error, done) = match result {
            Ok(moved) => {
                let _ = self.dma.write(hdr_addr + 4, &(moved as u32).to_le_bytes());
                (DRDY | DSC, 0, 1u32 << tag)
            }
            Err(e) => {
                let status = DRDY | ERR;
                drive.set_ncq_error(super::ata::NcqError {
                    tag,
                    status,
                    error: e,
                    lba: tf.lba,
                    count: tf.feature,
                });
                (status, e, 0)
            }
        };
        let p = &mut self.ports[n];
        p.sact &= !done;
        p.tfd = (error as u32) << 8 | status as u32;
        p.is |= IS_SDBS;
        if status & ERR != 0 {
            p.is |= IS_TFES;
        }
        if p.cmd & CMD_FR != 0 {
            let mut fis = [0u8; 8];
            fis[0] = 0xa1;
            fis[1] = 0x40; // I
            fis[2] = status & 0x77; // Status-Hi 6:4, Status-Lo 2:0
            fis[3] = error;
            fis[4..8].copy_from_slice(&done.to_le_bytes());
            let _ = self.dma.write(p.fb + 0x58, &fis);
        }
    }

    fn finish(&mut self, n: usize, _slot: u32, hdr_addr: u64, moved: usize, r: Result<u16, u8>, pio_in: bool) {
        let _ = self.dma.write(hdr_addr + 4, &(moved as u32).to_le_bytes());
        let (status, error, count) = match r {
            Ok(count) => (DRDY | DSC, 0u8, count),
            Err(e) => (DRDY | ERR, e, 0),
        };
        let p = &mut self.ports[n];
        p.tfd = (error as u32) << 8 | status as u32;
        let fb = p.fb;
        let fr = p.cmd & CMD_FR != 0;
        if pio_in && fr {
            // PIO Setup FIS (type 0x5F): D (device to host), I, E_Status at byte 15.
            let mut fis = [0u8; 20];
            fis[0] = 0x5f;
            fis[1] = 0x60;
            fis[2] = status;
            fis[3] = error;
            fis[15] = status;
            fis[16..18].copy_from_slice(&(moved as u16).to_le_bytes());
            let _ = self.dma.write(fb + 0x20, &fis);
            self.ports[n].is |= IS_PSS;
        }
        self.post_d2h(n, status, error, [count as u8, 0, 0, 0], true);
        let p = &mut self.ports[n];
        p.is |= IS_DHRS;
        if status & ERR != 0 {
            p.is |= IS_TFES;
        }
    }
}

enum Sg<'a> {
    ToMemory(&'a [u8]),
    FromMemory(&'a mut [u8]),
}

/// Move data through a PRDT of `prdtl` entries at `ctba + 0x80`; returns
/// the bytes moved (less than the data when the table is shorter).
fn scatter_gather(dma: &dyn DmaMemory, ctba: u64, prdtl: usize, mut sg: Sg<'_>) -> Result<usize, u8> {
    let total = match &sg {
        Sg::ToMemory(d) => d.len(),
        Sg::FromMemory(d) => d.len(),
    };
    let mut done = 0;
    for i in 0..prdtl {
        if done >= total {
            break;
        }
        let mut e = [0u8; 16];
        dma.read(ctba + 0x80 + i as u64 * 16, &mut e).map_err(|_| ABRT)?;
        let addr = u32_at(&e, 0) as u64 | (u32_at(&e, 4) as u64) << 32;
        let len = ((u32_at(&e, 12) & 0x3f_ffff) as usize + 1).min(total - done);
        match &mut sg {
            Sg::ToMemory(d) => dma.write(addr, &d[done..done + len]),
            Sg::FromMemory(d) => dma.read(addr, &mut d[done..done + len]),
        }
        .map_err(|_| ABRT)?;
        done += len;
    }
    Ok(done)
}

impl MmioDevice for Ich9Ahci {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        match size {
            8 => self.read32(offset) as u64 | (self.read32(offset + 4) as u64) << 32,
            _ => {
                let v = self.read32(offset & !3) as u64 >> (8 * (offset & 3));
                v & (u64::MAX >> (64 - 8 * size as u32))
            }
        }
    }
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        match size {
            8 => {
                self.write32(offset, value as u32);
                self.write32(offset + 4, (value >> 32) as u32);
            }
            4 => self.write32(offset, value as u32),
            // Narrow writes only make sense for plain registers: merge them.
            _ => {
                let shift = 8 * (offset & 3);
                let mask = ((1u64 << (8 * size)) - 1) << shift;
                let old = self.read32(offset & !3) as u64;
                self.write32(offset & !3, ((old & !mask) | ((value << shift) & mask)) as u32);
            }
        }
    }
}

impl PciDevice for Ich9Ahci {
    fn name(&self) -> &'static str {
        "ICH9 AHCI"
    }
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
    fn config_write(&mut self, offset: u16, size: u8, value: u32) {
        self.cfg.write(offset, size, value);
        // INTx disable may have changed.
        self.update_irq();
    }
    fn reset(&mut self) {
        self.cfg.reset();
        self.reset_hba();
    }
    fn bar_read(&mut self, bar: u8, offset: u64, size: u8) -> u64 {
        match bar {
            5 => MmioDevice::read(self, offset, size),
            _ => u64::MAX >> (64 - 8 * size.clamp(1, 8) as u32),
        }
    }
    fn bar_write(&mut self, bar: u8, offset: u64, size: u8, value: u64) {
        if bar == 5 {
            MmioDevice::write(self, offset, size, value)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortState {
    pub clb: u64,
    pub fb: u64,
    pub is: u32,
    pub ie: u32,
    pub cmd: u32,
    pub tfd: u32,
    pub sig: u32,
    pub sctl: u32,
    pub serr: u32,
    pub sact: u32,
    pub ci: u32,
    pub drive: Option<DriveState>,
}

/// The HBA and its ports (configuration space is saved by the PCI bus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub ghc: u32,
    pub is: u32,
    pub ports: Vec<PortState>,
}

impl Snapshot for Ich9Ahci {
    type State = State;
    fn save(&self) -> State {
        State {
            ghc: self.ghc,
            is: self.is,
            ports: self
                .ports
                .iter()
                .map(|p| PortState {
                    clb: p.clb,
                    fb: p.fb,
                    is: p.is,
                    ie: p.ie,
                    cmd: p.cmd,
                    tfd: p.tfd,
                    sig: p.sig,
                    sctl: p.sctl,
                    serr: p.serr,
                    sact: p.sact,
                    ci: p.ci,
                    drive: p.drive.as_ref().map(Drive::save),
                })
                .collect(),
        }
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        const D: &str = "ich9-ahci";
        check(D, s.ports.len() == PORTS, || format!("{} ports", s.ports.len()))?;
        check(D, s.ghc & !(GHC_AE | GHC_IE) == 0 && s.ghc & GHC_AE != 0, || {
            format!("GHC {:#x}", s.ghc)
        })?;
        check(D, s.is < 1 << PORTS, || format!("IS {:#x}", s.is))?;
        for (i, (p, ps)) in self.ports.iter().zip(&s.ports).enumerate() {
            check(D, p.drive.is_some() == ps.drive.is_some(), || {
                format!("port {i} saved with another drive")
            })?;
            // Commands complete when issued: nothing can be outstanding.
            check(D, ps.ci == 0 && ps.clb & 0x3ff == 0 && ps.fb & 0xff == 0, || {
                format!("port {i}: CI/CLB/FB")
            })?;
            if let (Some(d), Some(ds)) = (&p.drive, &ps.drive) {
                d.validate(ds)?;
            }
        }
        for (p, ps) in self.ports.iter_mut().zip(&s.ports) {
            if let (Some(d), Some(ds)) = (p.drive.as_mut(), &ps.drive) {
                d.restore(ds)?;
            }
            p.clb = ps.clb;
            p.fb = ps.fb;
            p.is = ps.is;
            p.ie = ps.ie;
            p.cmd = ps.cmd;
            p.tfd = ps.tfd;
            p.sig = ps.sig;
            p.sctl = ps.sctl;
            p.serr = ps.serr;
            p.sact = ps.sact;
            p.ci = ps.ci;
        }
        self.ghc = s.ghc;
        self.is = s.is;
        // A pending condition was signalled before the snapshot: do not send it twice.
        self.msi_sent = self.msi_cap.enabled(&self.cfg) && self.ghc & GHC_IE != 0 && self.is != 0;
        self.update_irq();
        Ok(())
    }
}
