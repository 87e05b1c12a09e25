//! The drive options, in QEMU's spelling: `-drive file=...,format=raw|qcow2,
//! if=ide|none,media=disk|cdrom,readonly=on,index=N,snapshot=on`, the
//! shorthands `-hda`..`-hdd` and `-cdrom`, `-boot order=c|d|...` and the
//! global `-snapshot`; then where each drive goes (IDE channel/unit on
//! `-machine pc`, AHCI port on `-machine q35`, as QEMU places `if=ide`
//! drives on each), opening its image, and SeaBIOS's `bootorder` file.

use crate::drive::{self, ImageFormat, OpenOptions};
use crate::pc::MachineKind;
use kagami_devices::storage::Drive;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Ide,
    /// Opened but attached to no controller (QEMU pairs it with -device).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Disk,
    Cdrom,
}

/// One `-drive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveSpec {
    pub file: Option<PathBuf>,
    pub format: Option<ImageFormat>,
    pub interface: Interface,
    pub media: Media,
    pub read_only: bool,
    pub snapshot: bool,
    pub index: Option<u32>,
}

impl DriveSpec {
    fn new(file: Option<PathBuf>, media: Media, index: Option<u32>) -> Self {
        DriveSpec {
            file,
            format: None,
            interface: Interface::Ide,
            media,
            read_only: media == Media::Cdrom,
            snapshot: false,
            index,
        }
    }
}

/// QEMU's option syntax: `key=value` pairs separated by commas, a doubled
/// comma standing for a comma inside a value.
fn split_props(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                out.last_mut().unwrap().push(',');
            } else {
                out.push(String::new());
            }
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    out
}

fn on_off(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("-drive: {key}={v} must be on or off")),
    }
}

/// Parse one `-drive` value.
pub fn parse_drive(s: &str) -> Result<DriveSpec, String> {
    let mut d = DriveSpec::new(None, Media::Disk, None);
    let mut read_only = None;
    for p in split_props(s) {
        if p.is_empty() {
            continue;
        }
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("-drive: '{p}' needs a value (key=value)"))?;
        match k {
            "file" => d.file = Some(PathBuf::from(v)),
            "format" => d.format = Some(ImageFormat::parse(v).map_err(|e| format!("-drive: {e}"))?),
            "if" => {
                d.interface = match v {
                    "ide" => Interface::Ide,
                    "none" => Interface::None,
                    _ => return Err(format!("-drive: if={v} is not supported (kagami has ide and none)")),
                }
            }
            "media" => {
                d.media = match v {
                    "disk" => Media::Disk,
                    "cdrom" => Media::Cdrom,
                    _ => return Err(format!("-drive: media={v} must be disk or cdrom")),
                }
            }
            "readonly" => read_only = Some(on_off(k, v)?),
            "snapshot" => d.snapshot = on_off(k, v)?,
            "index" => d.index = Some(v.parse().map_err(|_| format!("-drive: index={v} is not a number"))?),
            // Accepted and without effect here.
            "id" | "cache" | "aio" | "discard" | "detect-zeroes" => {}
            _ => return Err(format!("-drive: unknown property '{k}'")),
        }
    }
    if d.file.is_none() && d.media == Media::Disk {
        return Err("-drive: a disk needs file=PATH (only media=cdrom may be empty)".into());
    }
    d.read_only = read_only.unwrap_or(d.media == Media::Cdrom);
    if d.media == Media::Cdrom && !d.read_only {
        return Err("-drive: a CD-ROM is read-only (readonly=off is not possible with media=cdrom)".into());
    }
    Ok(d)
}

/// `-hda`..`-hdd` (indexes 0–3) and `-cdrom` (index 2), as QEMU defines them.
pub fn legacy_drive(option: &str, file: &str) -> Result<DriveSpec, String> {
    let (media, index) = match option {
        "hda" => (Media::Disk, 0),
        "hdb" => (Media::Disk, 1),
        "hdc" => (Media::Disk, 2),
        "hdd" => (Media::Disk, 3),
        "cdrom" => (Media::Cdrom, 2),
        _ => return Err(format!("-{option}: not a drive option")),
    };
    if file.is_empty() {
        return Err(format!("-{option}: needs a file name"));
    }
    Ok(DriveSpec::new(Some(PathBuf::from(file)), media, Some(index)))
}

/// What `-boot order=` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    /// `c`: the first hard disk.
    Disk,
    /// `d`: the first CD-ROM.
    Cdrom,
    /// `a`/`b` floppies and `n` network: accepted, nothing to boot from here.
    Other,
}

/// `-boot order=cd`, `-boot d`, `-boot once=d,menu=off`...
pub fn parse_boot(s: &str) -> Result<Vec<BootDevice>, String> {
    let mut order = Vec::new();
    for p in split_props(s) {
        let letters = match p.split_once('=') {
            Some(("order" | "once", v)) => v.to_string(),
            Some(("menu" | "splash-time" | "reboot-timeout" | "strict" | "splash", _)) => continue,
            Some((k, _)) => return Err(format!("-boot: unknown property '{k}'")),
            None => p.clone(),
        };
        for c in letters.chars() {
            order.push(match c {
                'c' => BootDevice::Disk,
                'd' => BootDevice::Cdrom,
                'a' | 'b' | 'n' | 'o' | 'p' => BootDevice::Other,
                _ => return Err(format!("-boot: '{c}' is not a boot device (c: disk, d: CD-ROM)")),
            });
        }
    }
    Ok(order)
}

/// A drive placed on the machine: `index` in QEMU's numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub index: u32,
    pub spec: DriveSpec,
}

/// How many `if=ide` indexes a machine has: 4 on pc (2 channels x 2),
/// 6 on q35 (the AHCI ports).
pub fn ide_slots(kind: MachineKind) -> u32 {
    match kind {
        MachineKind::Pc => 4,
        MachineKind::Q35 => 6,
    }
}

/// Give every `if=ide` drive an index (explicit ones first, then the
/// lowest free, as QEMU does) and check they fit and do not collide.
pub fn place(specs: &[DriveSpec], kind: MachineKind) -> Result<Vec<Placed>, String> {
    let slots = ide_slots(kind);
    let mut used = vec![false; slots as usize];
    let mut out = Vec::new();
    for s in specs.iter().filter(|s| s.interface == Interface::Ide) {
        if let Some(i) = s.index {
            if i >= slots {
                return Err(format!("-drive: index={i} does not exist on this machine (0 to {})", slots - 1));
            }
            if std::mem::replace(&mut used[i as usize], true) {
                return Err(format!("-drive: two drives at index {i}"));
            }
            out.push(Placed { index: i, spec: s.clone() });
        }
    }
    for s in specs.iter().filter(|s| s.interface == Interface::Ide && s.index.is_none()) {
        let i = used
            .iter()
            .position(|u| !u)
            .ok_or_else(|| format!("-drive: no free IDE slot left (this machine has {slots})"))?;
        used[i] = true;
        out.push(Placed {
            index: i as u32,
            spec: s.clone(),
        });
    }
    out.sort_by_key(|p| p.index);
    Ok(out)
}

/// Open the image of a placed drive and build the device model.
/// `snapshot`: the global `-snapshot`.
pub fn open_drive(p: &Placed, snapshot: bool) -> Result<Drive, String> {
    let s = &p.spec;
    let serial = format!("QM{:05}", p.index + 1);
    let backend = match &s.file {
        None => None,
        Some(f) => Some(drive::open(
            f,
            &OpenOptions {
                format: s.format,
                read_only: s.read_only,
                snapshot: (snapshot || s.snapshot) && !s.read_only,
            },
        )?),
    };
    Ok(match (s.media, backend) {
        (Media::Disk, Some(b)) => {
            if b.len() < 512 {
                return Err(format!(
                    "'{}' is smaller than one 512-byte sector",
                    s.file.as_ref().expect("has a backend").display()
                ));
            }
            Drive::disk(b, &serial)
        }
        (Media::Disk, None) => unreachable!("parse_drive requires a file for disks"),
        (Media::Cdrom, b) => Drive::cdrom(b, &serial),
    })
}

/// SeaBIOS's `bootorder` fw_cfg file for the drives in `order` (each `-boot`
/// letter picks the first drive of that media): one device path a line,
/// `/pci@i0cf8/ide@1,1/drive@CHANNEL/disk@UNIT` on pc and
/// `/pci@i0cf8/pci8086,2922@1f,2/drive@PORT/disk@0` on q35, the paths QEMU
/// writes and SeaBIOS matches.
pub fn bootorder(kind: MachineKind, drives: &[Placed], order: &[BootDevice]) -> String {
    let mut out = String::new();
    for b in order {
        let media = match b {
            BootDevice::Disk => Media::Disk,
            BootDevice::Cdrom => Media::Cdrom,
            BootDevice::Other => continue,
        };
        let Some(p) = drives.iter().find(|p| p.spec.media == media) else {
            continue;
        };
        let line = match kind {
            MachineKind::Pc => format!("/pci@i0cf8/ide@1,1/drive@{}/disk@{}\n", p.index / 2, p.index % 2),
            MachineKind::Q35 => format!("/pci@i0cf8/pci8086,2922@1f,2/drive@{}/disk@0\n", p.index),
        };
        if !out.contains(&line) {
            out.push_str(&line);
        }
    }
    out
}

/// The drive options of one command line, as given.
#[derive(Debug, Default, Clone)]
pub struct DriveArgs {
    pub drive: Vec<String>,
    /// `-hda`..`-hdd`, `-cdrom`: (option name without the dash, file).
    pub legacy: Vec<(&'static str, String)>,
    pub boot: Option<String>,
    pub snapshot: bool,
}

/// The machine's drives, opened, with their places, and the firmware boot order.
pub struct DriveSetup {
    /// (QEMU index, device): IDE channel index / 2, unit index % 2 on pc;
    /// AHCI port index on q35.
    pub drives: Vec<(u32, Drive)>,
    /// SeaBIOS `bootorder` contents (empty: firmware default).
    pub bootorder: String,
}

impl std::fmt::Debug for DriveSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idx: Vec<u32> = self.drives.iter().map(|d| d.0).collect();
        write!(f, "DriveSetup {{ drives at {idx:?}, bootorder {:?} }}", self.bootorder)
    }
}

/// Parse, place and open every drive of the command line.
pub fn setup(args: &DriveArgs, kind: MachineKind) -> Result<DriveSetup, String> {
    let mut specs = Vec::new();
    for d in &args.drive {
        specs.push(parse_drive(d)?);
    }
    for (opt, file) in &args.legacy {
        specs.push(legacy_drive(opt, file)?);
    }
    for s in specs.iter().filter(|s| s.interface == Interface::None) {
        if let Some(f) = &s.file {
            eprintln!(
                "kagami: -drive if=none ({}): attached to nothing (kagami has no -device for drives yet)",
                f.display()
            );
        }
    }
    let placed = place(&specs, kind)?;
    let order = match &args.boot {
        Some(b) => parse_boot(b)?,
        None => Vec::new(),
    };
    let mut drives = Vec::new();
    for p in &placed {
        drives.push((p.index, open_drive(p, args.snapshot)?));
    }
    Ok(DriveSetup {
        drives,
        bootorder: bootorder(kind, &placed, &order),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_options_parse() {
        let d = parse_drive("file=/tmp/a,,b.img,format=qcow2,if=ide,index=1,readonly=on").unwrap();
        assert_eq!(d.file, Some(PathBuf::from("/tmp/a,b.img")));
        assert_eq!((d.format, d.index, d.read_only), (Some(ImageFormat::Qcow2), Some(1), true));
        let c = parse_drive("media=cdrom").unwrap();
        assert!(c.read_only && c.file.is_none());
        assert!(parse_drive("format=raw").is_err(), "a disk without a file");
        assert!(parse_drive("file=x,format=vmdk").is_err());
        assert!(parse_drive("file=x,if=scsi").is_err());
        assert!(parse_drive("file=x,colour=red").is_err());
        assert!(parse_drive("file=x,readonly=maybe").is_err());
        assert!(parse_drive("file=x,media=cdrom,readonly=off").is_err());
        assert_eq!(legacy_drive("cdrom", "x.iso").unwrap().index, Some(2));
        assert_eq!(parse_boot("order=dc,menu=on").unwrap(), [BootDevice::Cdrom, BootDevice::Disk]);
        assert_eq!(parse_boot("c").unwrap(), [BootDevice::Disk]);
        assert!(parse_boot("order=z").is_err());
    }

    #[test]
    fn placement_and_bootorder() {
        let a = legacy_drive("hda", "a").unwrap();
        let cd = legacy_drive("cdrom", "c").unwrap();
        let free = parse_drive("file=b").unwrap();
        let p = place(&[free.clone(), a.clone(), cd.clone()], MachineKind::Pc).unwrap();
        assert_eq!(p.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(p[1].spec, free);
        assert!(place(&[a.clone(), a.clone()], MachineKind::Pc).is_err());
        let many = vec![free.clone(); 5];
        assert!(place(&many, MachineKind::Pc).is_err());
        assert_eq!(place(&many, MachineKind::Q35).unwrap().len(), 5);
        let order = [BootDevice::Cdrom, BootDevice::Disk];
        assert_eq!(
            bootorder(MachineKind::Pc, &p, &order),
            "/pci@i0cf8/ide@1,1/drive@1/disk@0\n/pci@i0cf8/ide@1,1/drive@0/disk@0\n"
        );
        assert_eq!(
            bootorder(MachineKind::Q35, &p[..1], &[BootDevice::Disk]),
            "/pci@i0cf8/pci8086,2922@1f,2/drive@0/disk@0\n"
        );
    }
}
