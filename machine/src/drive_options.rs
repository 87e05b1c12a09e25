//! The drive options, in QEMU's spelling: `-drive file=...,format=raw|qcow2,
//! if=ide|none,media=disk|cdrom,readonly=on,index=N|bus=B,unit=U,id=ID,
//! snapshot=on`, the
//! shorthands `-hda`..`-hdd` and `-cdrom`, `-boot order=c|d|...` and the
//! global `-snapshot`; then where each drive goes (IDE channel/unit on
//! `-machine pc`, AHCI port on `-machine q35`, as QEMU places `if=ide`
//! drives on each), opening its image, and SeaBIOS's `bootorder` file.
//!
//! QEMU's `-device` spellings for drives (docs/qdev-device-use.txt and
//! `-device ide-hd,help`): `-drive if=none,id=ID,...` opened by
//! `-device ide-hd,drive=ID[,bus=ide.N][,unit=U][,bootindex=I]` or
//! `-device ide-cd,...`; `-device ahci,id=NAME` (alias `ich9-ahci`) adds a
//! controller whose ports are the buses `NAME.0`..`NAME.5`. The built-in
//! controller's buses are `ide.0`, `ide.1` (PIIX3 channels, units 0 and 1)
//! on pc and `ide.0`..`ide.5` (AHCI ports, unit 0) on q35; a controller
//! without an id continues the `ide.N` numbering, as QEMU names buses of
//! unnamed controllers. Without `bus=` a device takes the first bus with a
//! free unit, built-in controller first.

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
    /// `id=`: the name `-device ...,drive=ID` refers to.
    pub id: Option<String>,
    /// `bus=`/`unit=` of an `if=ide` drive (instead of `index=`).
    pub bus: Option<u32>,
    pub unit: Option<u32>,
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
            id: None,
            bus: None,
            unit: None,
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
            "id" => d.id = Some(v.to_string()),
            "bus" => d.bus = Some(v.parse().map_err(|_| format!("-drive: bus={v} is not a number"))?),
            "unit" => d.unit = Some(v.parse().map_err(|_| format!("-drive: unit={v} is not a number"))?),
            // Accepted and without effect here.
            "cache" | "aio" | "discard" | "detect-zeroes" => {}
            _ => return Err(format!("-drive: unknown property '{k}'")),
        }
    }
    if d.index.is_some() && (d.bus.is_some() || d.unit.is_some()) {
        return Err("-drive: index= cannot be used with bus= and unit=".into());
    }
    // if=none: an empty drive is allowed; -device ide-hd then refuses it.
    if d.file.is_none() && d.media == Media::Disk && d.interface != Interface::None {
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

/// A drive placed on the machine: on controller `controller` (0: the
/// built-in IDE/AHCI; n: the n-th `-device ahci`), at `index` in QEMU's
/// numbering (IDE: channel * 2 + unit; AHCI: the port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub controller: usize,
    pub index: u32,
    pub spec: DriveSpec,
    /// `-device ...,bootindex=N`.
    pub bootindex: Option<u32>,
}

/// How many `if=ide` indexes a machine has: 4 on pc (2 channels x 2),
/// 6 on q35 (the AHCI ports).
pub fn ide_slots(kind: MachineKind) -> u32 {
    match kind {
        MachineKind::Pc => 4,
        MachineKind::Q35 => 6,
    }
}

/// Give every `if=ide` drive an index (explicit ones, from `index=` or
/// `bus=` and `unit=` (index = bus * units per bus + unit), first, then a
/// free unit on a `bus=` given alone, then the lowest free, as QEMU does)
/// and check they fit and do not collide.
pub fn place(specs: &[DriveSpec], kind: MachineKind) -> Result<Vec<Placed>, String> {
    let slots = ide_slots(kind);
    let units = if kind == MachineKind::Pc { 2 } else { 1 };
    let mut used = vec![false; slots as usize];
    let mut out = Vec::new();
    let placed = |index: u32, s: &DriveSpec| Placed {
        controller: 0,
        index,
        spec: s.clone(),
        bootindex: None,
    };
    let mut on_bus = Vec::new();
    let mut anywhere = Vec::new();
    for s in specs.iter().filter(|s| s.interface == Interface::Ide) {
        if let Some(b) = s.bus {
            if b >= slots / units {
                return Err(format!(
                    "-drive: bus={b} does not exist on this machine (0 to {})",
                    slots / units - 1
                ));
            }
        }
        if let Some(u) = s.unit {
            if u >= units {
                return Err(format!(
                    "-drive: unit={u} does not exist on this machine's buses (0 to {})",
                    units - 1
                ));
            }
        }
        let explicit = s.index.or(s.unit.map(|u| s.bus.unwrap_or(0) * units + u));
        match (explicit, s.bus) {
            (Some(i), _) => {
                if i >= slots {
                    return Err(format!("-drive: index={i} does not exist on this machine (0 to {})", slots - 1));
                }
                if std::mem::replace(&mut used[i as usize], true) {
                    return Err(format!("-drive: two drives at index {i} (bus {}, unit {})", i / units, i % units));
                }
                out.push(placed(i, s));
            }
            (None, Some(b)) => on_bus.push((b, s)),
            (None, None) => anywhere.push(s),
        }
    }
    for (b, s) in on_bus {
        let i = (b * units..(b + 1) * units)
            .find(|&i| !used[i as usize])
            .ok_or_else(|| format!("-drive: bus={b} has no free unit"))?;
        used[i as usize] = true;
        out.push(placed(i, s));
    }
    for s in anywhere {
        let i = used
            .iter()
            .position(|u| !u)
            .ok_or_else(|| format!("-drive: no free IDE slot left (this machine has {slots})"))?;
        used[i] = true;
        out.push(placed(i as u32, s));
    }
    out.sort_by_key(|p| p.index);
    Ok(out)
}

/// `-device ahci` / `-device ich9-ahci`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AhciSpec {
    pub id: Option<String>,
    /// `addr=SLOT` (function 0); `None`: the first free slot.
    pub slot: Option<u8>,
}

/// A `-device` that is about drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveDevice {
    /// `ide-hd` (`cdrom: false`) or `ide-cd`.
    Ide {
        cdrom: bool,
        drive: Option<String>,
        bus: Option<String>,
        unit: Option<u32>,
        bootindex: Option<u32>,
    },
    Ahci(AhciSpec),
}

const DRIVE_DEVICES: [&str; 4] = ["ide-hd", "ide-cd", "ahci", "ich9-ahci"];

/// Whether a `-device` value names one of the drive devices
/// ([`parse_drive_device`] handles those; the rest are the board's).
pub fn is_drive_device(s: &str) -> bool {
    DRIVE_DEVICES.contains(&s.split(',').next().unwrap_or(""))
}

fn parse_u32(what: &str, v: &str) -> Result<u32, String> {
    let n = match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => v.parse(),
    };
    n.map_err(|_| format!("{what}={v} is not a number"))
}

/// Parse one drive `-device` value.
pub fn parse_drive_device(s: &str) -> Result<DriveDevice, String> {
    let props = split_props(s);
    let driver = props[0].as_str();
    let mut kv = Vec::new();
    for p in props.iter().skip(1).filter(|p| !p.is_empty()) {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("-device {driver}: property '{p}' needs a value (key=value)"))?;
        kv.push((k, v));
    }
    match driver {
        "ide-hd" | "ide-cd" => {
            let (mut drive, mut bus, mut unit, mut bootindex) = (None, None, None, None);
            for (k, v) in kv {
                let what = format!("-device {driver}: {k}");
                match k {
                    "drive" => drive = Some(v.to_string()),
                    "bus" => bus = Some(v.to_string()),
                    "unit" => unit = Some(parse_u32(&what, v)?),
                    "bootindex" => bootindex = Some(parse_u32(&what, v)?),
                    "id" => {}
                    _ => {
                        return Err(format!(
                            "-device {driver}: unknown property '{k}' (kagami has drive, bus, unit, bootindex, id)"
                        ))
                    }
                }
            }
            if driver == "ide-hd" && drive.is_none() {
                return Err("-device ide-hd: needs drive=ID (a -drive if=none,id=ID)".into());
            }
            Ok(DriveDevice::Ide {
                cdrom: driver == "ide-cd",
                drive,
                bus,
                unit,
                bootindex,
            })
        }
        "ahci" | "ich9-ahci" => {
            let mut a = AhciSpec { id: None, slot: None };
            for (k, v) in kv {
                match k {
                    "id" => a.id = Some(v.to_string()),
                    // The root bus is the only bus.
                    "bus" if v == "pcie.0" || v == "pci.0" => {}
                    "bus" => return Err(format!("-device {driver}: bus={v} does not exist (kagami has pcie.0/pci.0)")),
                    "addr" => {
                        let (slot, func) = v.split_once('.').unwrap_or((v, "0"));
                        if func != "0" {
                            return Err(format!("-device {driver}: addr={v}: only function 0 is possible"));
                        }
                        let n = parse_u32(&format!("-device {driver}: addr"), slot)?;
                        if n >= 32 {
                            return Err(format!("-device {driver}: addr={v}: PCI slots are 0 to 0x1f"));
                        }
                        a.slot = Some(n as u8);
                    }
                    _ => return Err(format!("-device {driver}: unknown property '{k}' (kagami has id, bus, addr)")),
                }
            }
            Ok(DriveDevice::Ahci(a))
        }
        _ => Err(format!("-device {driver}: not a drive device")),
    }
}

/// One IDE bus a `-device ide-hd/ide-cd` can name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdeBus {
    name: String,
    controller: usize,
    bus: u32,
    units: u32,
}

/// The buses of the built-in controller and of every `-device ahci`.
fn ide_buses(kind: MachineKind, ahcis: &[AhciSpec]) -> Vec<IdeBus> {
    let mut out = Vec::new();
    let (n, units) = match kind {
        MachineKind::Pc => (2, 2),
        MachineKind::Q35 => (6, 1),
    };
    for bus in 0..n {
        out.push(IdeBus {
            name: format!("ide.{bus}"),
            controller: 0,
            bus,
            units,
        });
    }
    let mut auto = n;
    for (k, a) in ahcis.iter().enumerate() {
        for bus in 0..kagami_devices::storage::ahci::PORTS as u32 {
            let name = match &a.id {
                Some(id) => format!("{id}.{bus}"),
                None => {
                    auto += 1;
                    format!("ide.{}", auto - 1)
                }
            };
            out.push(IdeBus {
                name,
                controller: k + 1,
                bus,
                units: 1,
            });
        }
    }
    out
}

/// Place every drive: `if=ide` drives on the built-in controller
/// ([`place`]), then each `-device ide-hd/ide-cd` on its bus and unit.
/// Returns the placed drives and the extra AHCI controllers (controller
/// n is `ahcis[n - 1]`).
pub fn place_all(specs: &[DriveSpec], devices: &[DriveDevice], kind: MachineKind) -> Result<(Vec<Placed>, Vec<AhciSpec>), String> {
    let mut placed = place(specs, kind)?;
    let ahcis: Vec<AhciSpec> = devices
        .iter()
        .filter_map(|d| match d {
            DriveDevice::Ahci(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    for (i, a) in ahcis.iter().enumerate() {
        if let Some(id) = &a.id {
            if ahcis[..i].iter().any(|b| b.id.as_ref() == Some(id)) {
                return Err(format!("-device ahci: two controllers with id={id}"));
            }
        }
    }
    let buses = ide_buses(kind, &ahcis);
    let units_of = |controller: usize| if controller == 0 && kind == MachineKind::Pc { 2 } else { 1 };
    let mut used_drives: Vec<&str> = Vec::new();
    for d in devices {
        let DriveDevice::Ide {
            cdrom,
            drive,
            bus,
            unit,
            bootindex,
        } = d
        else {
            continue;
        };
        let dev = if *cdrom { "ide-cd" } else { "ide-hd" };
        let mut spec = match drive {
            Some(id) => {
                let s = specs
                    .iter()
                    .find(|s| s.id.as_deref() == Some(id.as_str()))
                    .ok_or_else(|| format!("-device {dev}: drive={id}: no -drive with id={id}"))?;
                if s.interface != Interface::None {
                    return Err(format!(
                        "-device {dev}: drive={id} is already attached by its -drive (if=ide); give that -drive if=none"
                    ));
                }
                if used_drives.contains(&id.as_str()) {
                    return Err(format!("-device {dev}: drive={id} is already used by another device"));
                }
                used_drives.push(id);
                s.clone()
            }
            None => DriveSpec::new(None, Media::Cdrom, None),
        };
        if *cdrom {
            spec.media = Media::Cdrom;
            spec.read_only = true;
        } else if spec.media == Media::Cdrom {
            return Err(format!(
                "-device ide-hd: drive={} is a CD-ROM (media=cdrom); use ide-cd",
                drive.as_deref().unwrap_or("")
            ));
        } else if spec.file.is_none() {
            return Err(format!(
                "-device ide-hd: drive={} has no file (a hard disk needs one)",
                drive.as_deref().unwrap_or("")
            ));
        }
        let taken = |placed: &[Placed], b: &IdeBus, u: u32| {
            placed
                .iter()
                .any(|p| p.controller == b.controller && p.index == b.bus * units_of(b.controller) + u)
        };
        let (b, u) = match bus {
            Some(name) => {
                let b = buses.iter().find(|b| &b.name == name).ok_or_else(|| {
                    let names: Vec<&str> = buses.iter().map(|b| b.name.as_str()).collect();
                    format!("-device {dev}: bus={name} does not exist (this machine has {})", names.join(", "))
                })?;
                let u = match unit {
                    Some(u) if *u >= b.units => {
                        return Err(format!(
                            "-device {dev}: unit={u} does not exist on bus {name} (0 to {})",
                            b.units - 1
                        ))
                    }
                    Some(u) if taken(&placed, b, *u) => return Err(format!("-device {dev}: unit {u} of bus {name} is in use")),
                    Some(u) => *u,
                    None => (0..b.units)
                        .find(|&u| !taken(&placed, b, u))
                        .ok_or_else(|| format!("-device {dev}: bus {name} has no free unit"))?,
                };
                (b, u)
            }
            None => {
                let mut found = None;
                for b in &buses {
                    let u = match unit {
                        Some(u) if *u < b.units && !taken(&placed, b, *u) => Some(*u),
                        Some(_) => None,
                        None => (0..b.units).find(|&u| !taken(&placed, b, u)),
                    };
                    if let Some(u) = u {
                        found = Some((b, u));
                        break;
                    }
                }
                found.ok_or_else(|| format!("-device {dev}: no IDE bus with a free unit left"))?
            }
        };
        placed.push(Placed {
            controller: b.controller,
            index: b.bus * units_of(b.controller) + u,
            spec,
            bootindex: *bootindex,
        });
    }
    placed.sort_by_key(|p| (p.controller, p.index));
    Ok((placed, ahcis))
}

/// Open the image of a placed drive and build the device model.
/// `snapshot`: the global `-snapshot`.
pub fn open_drive(p: &Placed, snapshot: bool) -> Result<Drive, String> {
    let s = &p.spec;
    let serial = format!("QM{:05}", p.controller as u32 * 8 + p.index + 1);
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
        (Media::Disk, None) => unreachable!("parse_drive and place_all require a file for disks"),
        (Media::Cdrom, b) => Drive::cdrom(b, &serial),
    })
}

/// The order the firmware should try drives in: every drive with a
/// `bootindex` (lowest first), then for each `-boot` letter the first drive
/// of that media. Entries are (controller, index).
pub fn boot_list(drives: &[Placed], order: &[BootDevice]) -> Vec<(usize, u32)> {
    let mut with_index: Vec<&Placed> = drives.iter().filter(|p| p.bootindex.is_some()).collect();
    with_index.sort_by_key(|p| p.bootindex);
    let mut out: Vec<(usize, u32)> = with_index.iter().map(|p| (p.controller, p.index)).collect();
    for b in order {
        let media = match b {
            BootDevice::Disk => Media::Disk,
            BootDevice::Cdrom => Media::Cdrom,
            BootDevice::Other => continue,
        };
        if let Some(p) = drives.iter().find(|p| p.spec.media == media) {
            if !out.contains(&(p.controller, p.index)) {
                out.push((p.controller, p.index));
            }
        }
    }
    out
}

/// SeaBIOS's `bootorder` fw_cfg file for `list` ([`boot_list`]): one
/// device path a line, `/pci@i0cf8/ide@1,1/drive@CHANNEL/disk@UNIT` on pc
/// and `/pci@i0cf8/pci8086,2922@1f,2/drive@PORT/disk@0` on q35, the paths
/// QEMU writes and SeaBIOS matches; a `-device ahci` in PCI slot S is
/// `/pci@i0cf8/pci8086,2922@S/drive@PORT/disk@0`. `slots[n - 1]` is the
/// slot of controller n.
pub fn bootorder_paths(kind: MachineKind, list: &[(usize, u32)], slots: &[u8]) -> String {
    let mut out = String::new();
    for &(controller, index) in list {
        let line = match (controller, kind) {
            (0, MachineKind::Pc) => format!("/pci@i0cf8/ide@1,1/drive@{}/disk@{}\n", index / 2, index % 2),
            (0, MachineKind::Q35) => format!("/pci@i0cf8/pci8086,2922@1f,2/drive@{index}/disk@0\n"),
            (n, _) => match slots.get(n - 1) {
                Some(slot) => format!("/pci@i0cf8/pci8086,2922@{slot:x}/drive@{index}/disk@0\n"),
                None => continue,
            },
        };
        out.push_str(&line);
    }
    out
}

/// The built-in controller's `bootorder` for `-boot` letters (see
/// [`bootorder_paths`]).
pub fn bootorder(kind: MachineKind, drives: &[Placed], order: &[BootDevice]) -> String {
    bootorder_paths(kind, &boot_list(drives, order), &[])
}

/// The drive options of one command line, as given.
#[derive(Debug, Default, Clone)]
pub struct DriveArgs {
    pub drive: Vec<String>,
    /// `-hda`..`-hdd`, `-cdrom`: (option name without the dash, file).
    pub legacy: Vec<(&'static str, String)>,
    /// The `-device` values [`is_drive_device`] accepts.
    pub devices: Vec<String>,
    pub boot: Option<String>,
    pub snapshot: bool,
}

/// A `-device ahci` with its drives, opened.
pub struct ExtraAhci {
    pub slot: Option<u8>,
    /// (port, device).
    pub drives: Vec<(u32, Drive)>,
}

/// The machine's drives, opened, with their places, and the firmware boot order.
pub struct DriveSetup {
    pub kind: MachineKind,
    /// (QEMU index, device): IDE channel index / 2, unit index % 2 on pc;
    /// AHCI port index on q35.
    pub drives: Vec<(u32, Drive)>,
    /// `-device ahci` controllers (controller n of [`Placed`] is `extra[n - 1]`).
    pub extra: Vec<ExtraAhci>,
    /// The firmware's boot order as (controller, index) ([`boot_list`]);
    /// render it with [`bootorder_paths`] once the controllers' slots are known.
    pub boot: Vec<(usize, u32)>,
}

impl DriveSetup {
    /// SeaBIOS `bootorder` contents (empty: firmware default) for the
    /// extra controllers at `slots`.
    pub fn bootorder(&self, slots: &[u8]) -> String {
        bootorder_paths(self.kind, &self.boot, slots)
    }
}

impl std::fmt::Debug for DriveSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idx: Vec<u32> = self.drives.iter().map(|d| d.0).collect();
        let extra: Vec<Vec<u32>> = self.extra.iter().map(|e| e.drives.iter().map(|d| d.0).collect()).collect();
        write!(
            f,
            "DriveSetup {{ drives at {idx:?}, extra AHCI ports {extra:?}, boot {:?} }}",
            self.boot
        )
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
    for (i, s) in specs.iter().enumerate() {
        if let Some(id) = &s.id {
            if specs[..i].iter().any(|t| t.id.as_ref() == Some(id)) {
                return Err(format!("-drive: two drives with id={id}"));
            }
        }
    }
    let mut devices = Vec::new();
    for d in &args.devices {
        devices.push(parse_drive_device(d)?);
    }
    let (placed, ahcis) = place_all(&specs, &devices, kind)?;
    for s in specs.iter().filter(|s| s.interface == Interface::None) {
        let used = placed.iter().any(|p| p.spec.id.is_some() && p.spec.id == s.id);
        if let (false, Some(f)) = (used, &s.file) {
            eprintln!(
                "kagami: -drive if=none ({}): no -device ide-hd/ide-cd uses it; it is attached to nothing",
                f.display()
            );
        }
    }
    let order = match &args.boot {
        Some(b) => parse_boot(b)?,
        None => Vec::new(),
    };
    let mut drives = Vec::new();
    let mut extra: Vec<ExtraAhci> = ahcis
        .iter()
        .map(|a| ExtraAhci {
            slot: a.slot,
            drives: Vec::new(),
        })
        .collect();
    for p in &placed {
        let d = open_drive(p, args.snapshot)?;
        match p.controller {
            0 => drives.push((p.index, d)),
            n => extra[n - 1].drives.push((p.index, d)),
        }
    }
    Ok(DriveSetup {
        kind,
        drives,
        extra,
        boot: boot_list(&placed, &order),
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
        // -drive if=ide,bus=B,unit=U: index B * units + U; bus alone takes a free unit.
        let bu = |v: &str| parse_drive(&format!("file=x,{v}")).unwrap();
        let p = place(&[bu("bus=1"), bu("bus=1,unit=0"), bu("unit=1"), bu("")], MachineKind::Pc).unwrap();
        let idx: Vec<(u32, Option<u32>, Option<u32>)> = p.iter().map(|p| (p.index, p.spec.bus, p.spec.unit)).collect();
        assert_eq!(
            idx,
            [(0, None, None), (1, None, Some(1)), (2, Some(1), Some(0)), (3, Some(1), None)]
        );
        assert_eq!(place(&[bu("bus=4")], MachineKind::Q35).unwrap()[0].index, 4);
        assert!(place(&[bu("bus=2")], MachineKind::Pc).unwrap_err().contains("bus=2 does not exist"));
        assert!(place(&[bu("bus=0,unit=1")], MachineKind::Q35).unwrap_err().contains("unit=1"));
        assert!(place(&[bu("bus=0,unit=1"), bu("index=1")], MachineKind::Pc)
            .unwrap_err()
            .contains("two drives at index 1"));
        assert!(place(&[bu("bus=0"), bu("bus=0"), bu("bus=0")], MachineKind::Pc)
            .unwrap_err()
            .contains("no free unit"));
        assert!(parse_drive("file=x,index=1,bus=0").is_err());
        assert!(parse_drive("file=x,unit=z").is_err());
        let n = parse_drive("if=none,id=d0").unwrap();
        assert!(n.file.is_none() && n.id.as_deref() == Some("d0"), "if=none may be empty");
    }

    fn none_drive(id: &str, file: &str) -> DriveSpec {
        parse_drive(&format!("if=none,id={id},file={file}")).unwrap()
    }

    fn devs(list: &[&str]) -> Vec<DriveDevice> {
        list.iter().map(|d| parse_drive_device(d).unwrap()).collect()
    }

    fn at(p: &[Placed]) -> Vec<(usize, u32, Option<PathBuf>, Media)> {
        p.iter()
            .map(|p| (p.controller, p.index, p.spec.file.clone(), p.spec.media))
            .collect()
    }

    #[test]
    fn device_spellings_place_drives_on_buses() {
        let specs = [none_drive("d0", "a"), none_drive("d1", "b"), none_drive("cd", "c.iso")];
        // pc: ide.0 units 0/1 are indexes 0/1, ide.1 unit 1 is index 3.
        let d = devs(&["ide-hd,drive=d0,bus=ide.1,unit=1", "ide-hd,drive=d1", "ide-cd,drive=cd"]);
        let (p, extra) = place_all(&specs, &d, MachineKind::Pc).unwrap();
        assert!(extra.is_empty());
        assert_eq!(
            at(&p),
            [
                (0, 0, Some("b".into()), Media::Disk),
                (0, 1, Some("c.iso".into()), Media::Cdrom),
                (0, 3, Some("a".into()), Media::Disk)
            ]
        );
        assert!(p[1].spec.read_only, "ide-cd opens its drive read-only");
        // q35: the built-in AHCI's ports are ide.0..ide.5; an if=ide drive takes port 0 first.
        let mut with_ide = specs.to_vec();
        with_ide.push(legacy_drive("hda", "h").unwrap());
        let d = devs(&["ide-hd,drive=d0,bus=ide.4", "ide-cd,drive=cd"]);
        let (p, _) = place_all(&with_ide, &d, MachineKind::Q35).unwrap();
        assert_eq!(
            at(&p),
            [
                (0, 0, Some("h".into()), Media::Disk),
                (0, 1, Some("c.iso".into()), Media::Cdrom),
                (0, 4, Some("a".into()), Media::Disk)
            ]
        );
        // -device ahci,id=ahci0: its ports are ahci0.0..5; an unnamed one continues ide.N.
        let d = devs(&[
            "ahci,id=ahci0",
            "ich9-ahci,addr=0x5",
            "ide-hd,drive=d0,bus=ahci0.2",
            "ide-hd,drive=d1,bus=ide.7,bootindex=1",
            "ide-cd,drive=cd,bootindex=0",
        ]);
        let (p, extra) = place_all(&specs, &d, MachineKind::Q35).unwrap();
        assert_eq!(
            extra,
            [
                AhciSpec {
                    id: Some("ahci0".into()),
                    slot: None
                },
                AhciSpec { id: None, slot: Some(5) }
            ]
        );
        assert_eq!(
            at(&p),
            [
                (0, 0, Some("c.iso".into()), Media::Cdrom),
                (1, 2, Some("a".into()), Media::Disk),
                (2, 1, Some("b".into()), Media::Disk)
            ]
        );
        let list = boot_list(&p, &[BootDevice::Disk]);
        assert_eq!(list, [(0, 0), (2, 1), (1, 2)], "bootindex order, then -boot c's first disk");
        assert_eq!(
            bootorder_paths(MachineKind::Q35, &list, &[3, 5]),
            "/pci@i0cf8/pci8086,2922@1f,2/drive@0/disk@0\n/pci@i0cf8/pci8086,2922@5/drive@1/disk@0\n\
             /pci@i0cf8/pci8086,2922@3/drive@2/disk@0\n"
        );
    }

    #[test]
    fn device_spelling_errors_are_clear() {
        let specs = [none_drive("d0", "a"), none_drive("d1", "b"), parse_drive("if=none,id=e").unwrap()];
        let err = |list: &[&str], kind| place_all(&specs, &devs(list), kind).unwrap_err();
        let e = err(&["ide-hd,drive=nope"], MachineKind::Pc);
        assert!(e.contains("no -drive with id=nope"), "{e}");
        let e = err(&["ide-hd,drive=d0,bus=ide.2"], MachineKind::Pc);
        assert!(e.contains("bus=ide.2 does not exist") && e.contains("ide.0, ide.1"), "{e}");
        let e = err(&["ide-hd,drive=d0,bus=ahci0.0"], MachineKind::Q35);
        assert!(e.contains("bus=ahci0.0 does not exist"), "{e}");
        let e = err(
            &["ide-hd,drive=d0,bus=ide.0,unit=0", "ide-hd,drive=d1,bus=ide.0,unit=0"],
            MachineKind::Pc,
        );
        assert!(e.contains("unit 0 of bus ide.0 is in use"), "{e}");
        let e = err(&["ide-hd,drive=d0,bus=ide.0,unit=1"], MachineKind::Q35);
        assert!(e.contains("unit=1 does not exist"), "{e}");
        let e = err(&["ide-hd,drive=d0", "ide-cd,drive=d0"], MachineKind::Pc);
        assert!(e.contains("already used"), "{e}");
        let e = err(&["ide-hd,drive=e"], MachineKind::Pc);
        assert!(e.contains("has no file"), "{e}");
        let e = err(&["ahci,id=x", "ahci,id=x"], MachineKind::Q35);
        assert!(e.contains("two controllers with id=x"), "{e}");
        let many: Vec<String> = (0..5).map(|_| "ide-cd".to_string()).collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        let e = err(&many, MachineKind::Pc);
        assert!(e.contains("no IDE bus with a free unit"), "{e}");
        let ide = [parse_drive("file=a,id=x").unwrap()];
        let e = place_all(&ide, &devs(&["ide-hd,drive=x"]), MachineKind::Pc).unwrap_err();
        assert!(e.contains("if=none"), "{e}");
        for bad in [
            "ide-hd",
            "ide-hd,drive=d0,unit=z",
            "ide-hd,drive=d0,serial=1",
            "ahci,addr=0x20",
            "ahci,addr=3.1",
            "ahci,bus=pci.1",
        ] {
            assert!(parse_drive_device(bad).is_err(), "{bad}");
        }
        assert!(is_drive_device("ide-hd,drive=x") && is_drive_device("ahci") && !is_drive_device("isa-debugcon"));
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
