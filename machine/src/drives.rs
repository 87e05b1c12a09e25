//! The command line's drive options onto the machine: open every image
//! first (errors stop kagami before the machine is built), then attach the
//! disk controller with the drives and give the firmware its boot order.

use crate::Cli;
use kagami_machine::drive_options::{is_drive_device, setup, DriveArgs, DriveSetup};
use kagami_machine::pc::{MachineKind, Pc};

pub fn open(cli: &Cli, kind: MachineKind) -> Result<DriveSetup, String> {
    let mut legacy = Vec::new();
    for (name, v) in [
        ("hda", &cli.hda),
        ("hdb", &cli.hdb),
        ("hdc", &cli.hdc),
        ("hdd", &cli.hdd),
        ("cdrom", &cli.cdrom),
    ] {
        if let Some(f) = v {
            legacy.push((name, f.clone()));
        }
    }
    let args = DriveArgs {
        drive: cli.drive.clone(),
        legacy,
        devices: cli.device.iter().filter(|d| is_drive_device(d)).cloned().collect(),
        boot: cli.boot.clone(),
        snapshot: cli.snapshot,
    };
    setup(&args, kind)
}

/// ABARs of `-device ahci` controllers for a direct kernel boot: below
/// the built-in one (0xfebf0000), inside the PCI memory window.
const EXTRA_ABAR_BASE: u32 = 0xfebe_0000;

pub fn attach(mut s: DriveSetup, pc: &mut Pc, firmware: bool) -> Result<(), String> {
    if !s.drives.is_empty() {
        pc.board.attach_disks(std::mem::take(&mut s.drives), !firmware)?;
    }
    let mut slots = Vec::new();
    for (k, e) in std::mem::take(&mut s.extra).into_iter().enumerate() {
        let abar = EXTRA_ABAR_BASE + 0x1000 * k as u32;
        slots.push(pc.board.attach_ahci(e.slot, e.drives, !firmware, abar)?);
    }
    let bootorder = s.bootorder(&slots);
    if !bootorder.is_empty() {
        if let Some(fw) = pc.board.fw_cfg.as_mut() {
            fw.set_file("bootorder", bootorder.into_bytes())
                .map_err(|e| format!("-boot: {e}"))?;
        }
    }
    Ok(())
}
