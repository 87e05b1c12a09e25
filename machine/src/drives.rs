//! The command line's drive options onto the machine: open every image
//! first (errors stop kagami before the machine is built), then attach the
//! disk controller with the drives and give the firmware its boot order.

use crate::Cli;
use kagami_machine::drive_options::{setup, DriveArgs, DriveSetup};
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
        boot: cli.boot.clone(),
        snapshot: cli.snapshot,
    };
    setup(&args, kind)
}

pub fn attach(s: DriveSetup, pc: &mut Pc, firmware: bool) -> Result<(), String> {
    if !s.bootorder.is_empty() {
        if let Some(fw) = pc.board.fw_cfg.as_mut() {
            fw.set_file("bootorder", s.bootorder.into_bytes())
                .map_err(|e| format!("-boot: {e}"))?;
        }
    }
    if s.drives.is_empty() {
        return Ok(());
    }
    pc.board.attach_disks(s.drives, !firmware)
}
