//! Parsing of QEMU-style option values (`-m 512M`, `-machine q35,accel=tcg`,
//! `-device isa-debug-exit,iobase=0xf4,iosize=4`, `-serial file:PATH`).
//! Every error names the option and what was expected; none panics.

use crate::pc::MachineKind;

/// `-m`: a size in MiB, or with a K/M/G/T suffix (QEMU's rules), and the
/// `size=` key form.
pub fn parse_mem(s: &str) -> Result<u64, String> {
    let v = s.strip_prefix("size=").unwrap_or(s).split(',').next().unwrap_or("");
    let (num, mult) = match v.chars().last() {
        Some('k' | 'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&v[..v.len() - 1], 1 << 20),
        Some('g' | 'G') => (&v[..v.len() - 1], 1 << 30),
        Some('t' | 'T') => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1 << 20),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("-m: '{s}' is not a memory size (examples: 512, 512M, 2G)"))?;
    let bytes = n * mult as f64;
    if !(bytes >= 1.0) || bytes > (1u64 << 40) as f64 {
        return Err(format!("-m: {s} is not a possible memory size (1 MiB to 1 TiB)"));
    }
    Ok((bytes as u64 + 0xfff) & !0xfff)
}

/// `-machine TYPE[,accel=A][,...]` → machine kind and the accel request.
pub fn parse_machine(s: &str) -> Result<(MachineKind, Option<String>), String> {
    let mut kind = None;
    let mut accel = None;
    for (i, part) in s.split(',').enumerate() {
        let (k, v) = part.split_once('=').map_or(("type", part), |(k, v)| (k, v));
        match (i, k) {
            (0, "type") | (_, "type") => {
                kind = Some(match v {
                    "pc" | "pc-i440fx" | "pc-i440fx-7.2" | "pc-i440fx-8.0" => MachineKind::Pc,
                    "q35" | "pc-q35" | "pc-q35-7.2" | "pc-q35-8.0" => MachineKind::Q35,
                    _ => return Err(format!("-machine: unknown machine type '{v}' (kagami has pc and q35)")),
                })
            }
            (_, "accel") => accel = Some(v.to_string()),
            _ => return Err(format!("-machine: unknown property '{k}'")),
        }
    }
    Ok((kind.unwrap_or(MachineKind::Pc), accel))
}

/// Parse a number in decimal or 0x hex.
pub fn parse_num(opt: &str, key: &str, v: &str) -> Result<u64, String> {
    let r = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    r.map_err(|_| format!("{opt}: {key}={v} is not a number"))
}

/// Where a character device's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CharTarget {
    Stdio,
    File(String),
    Null,
}

pub fn parse_chardev(opt: &str, s: &str) -> Result<CharTarget, String> {
    match s {
        "stdio" | "mon:stdio" => Ok(CharTarget::Stdio),
        "null" | "none" => Ok(CharTarget::Null),
        _ => match s.strip_prefix("file:") {
            Some(p) if !p.is_empty() => Ok(CharTarget::File(p.to_string())),
            _ => Err(format!("{opt}: '{s}' is not supported (use stdio, file:PATH or null)")),
        },
    }
}

/// `-device` values kagami knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    DebugExit {
        iobase: u16,
        iosize: u16,
    },
    Debugcon {
        iobase: u16,
        chardev: Option<String>,
    },
    /// QEMU's pc-testdev (fixed ports and MMIO window; no properties).
    PcTestdev,
}

pub fn parse_device(s: &str) -> Result<Device, String> {
    let mut parts = s.split(',');
    let driver = parts.next().unwrap_or("");
    let mut props = Vec::new();
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("-device {driver}: property '{p}' needs a value (key=value)"))?;
        props.push((k, v));
    }
    let num = |key: &str, default: u64, max: u64| -> Result<u64, String> {
        match props.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                let n = parse_num(&format!("-device {driver}"), key, v)?;
                if n > max {
                    return Err(format!("-device {driver}: {key}={v} is out of range (at most {max:#x})"));
                }
                Ok(n)
            }
            None => Ok(default),
        }
    };
    let known = |keys: &[&str]| -> Result<(), String> {
        match props.iter().find(|(k, _)| !keys.contains(k)) {
            Some((k, _)) => Err(format!("-device {driver}: unknown property '{k}'")),
            None => Ok(()),
        }
    };
    match driver {
        "isa-debug-exit" => {
            known(&["iobase", "iosize"])?;
            let iobase = num("iobase", 0x501, 0xffff)? as u16;
            let iosize = num("iosize", 2, 8)? as u16;
            if iosize == 0 || iobase as u32 + iosize as u32 > 0x10000 {
                return Err(format!(
                    "-device isa-debug-exit: iobase={iobase:#x} iosize={iosize} does not fit the I/O space"
                ));
            }
            Ok(Device::DebugExit { iobase, iosize })
        }
        "isa-debugcon" => {
            known(&["iobase", "chardev"])?;
            let iobase = num("iobase", 0xe9, 0xffff)? as u16;
            let chardev = props.iter().find(|(k, _)| *k == "chardev").map(|(_, v)| v.to_string());
            Ok(Device::Debugcon { iobase, chardev })
        }
        "pc-testdev" => {
            known(&[])?;
            Ok(Device::PcTestdev)
        }
        "" => Err("-device: missing device name".into()),
        _ => Err(format!(
            "-device: '{driver}' is not a device kagami has (isa-debug-exit, isa-debugcon, pc-testdev)"
        )),
    }
}

/// `-chardev file,id=ID,path=P` / `stdio,id=ID` / `null,id=ID` → (id, target).
pub fn parse_chardev_def(s: &str) -> Result<(String, CharTarget), String> {
    let mut parts = s.split(',');
    let backend = parts.next().unwrap_or("");
    let mut id = None;
    let mut path = None;
    for p in parts {
        match p.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("path", v)) => path = Some(v.to_string()),
            Some(("signal" | "mux" | "logfile", _)) => {}
            _ => return Err(format!("-chardev: unknown property '{p}'")),
        }
    }
    let id = id.ok_or("-chardev: an id=NAME is required")?;
    let target = match backend {
        "stdio" => CharTarget::Stdio,
        "null" => CharTarget::Null,
        "file" => CharTarget::File(path.ok_or("-chardev file: path=PATH is required")?),
        _ => return Err(format!("-chardev: backend '{backend}' is not supported (stdio, file, null)")),
    };
    Ok((id, target))
}

/// `-icount shift=N[,...]` or `-icount N` → shift (0..=10).
pub fn parse_icount(s: &str) -> Result<u32, String> {
    for part in s.split(',') {
        let v = part.strip_prefix("shift=").unwrap_or(part);
        if part.contains('=') && !part.starts_with("shift=") {
            continue;
        }
        if v == "auto" {
            return Err("-icount shift=auto is not deterministic; give a number (e.g. shift=3)".into());
        }
        let n: u32 = v
            .parse()
            .map_err(|_| format!("-icount: '{s}' needs shift=N with N a number from 0 to 10"))?;
        if n > 10 {
            return Err(format!("-icount: shift={n} is out of range (0 to 10)"));
        }
        return Ok(n);
    }
    Err(format!("-icount: '{s}' needs shift=N"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_machines_devices() {
        assert_eq!(parse_mem("512").unwrap(), 512 << 20);
        assert_eq!(parse_mem("2G").unwrap(), 2 << 30);
        assert_eq!(parse_mem("size=64M").unwrap(), 64 << 20);
        assert!(parse_mem("lots").is_err());
        assert!(parse_mem("0").is_err());
        assert!(parse_mem("-5").is_err());
        assert!(parse_mem("99T").is_err());
        assert_eq!(parse_machine("q35,accel=tcg").unwrap(), (MachineKind::Q35, Some("tcg".into())));
        assert!(parse_machine("isapc").is_err());
        assert_eq!(
            parse_device("isa-debug-exit,iobase=0xf4,iosize=0x04").unwrap(),
            Device::DebugExit { iobase: 0xf4, iosize: 4 }
        );
        assert_eq!(
            parse_device("isa-debugcon").unwrap(),
            Device::Debugcon {
                iobase: 0xe9,
                chardev: None
            }
        );
        assert!(parse_device("isa-debug-exit,iobase=zz").is_err());
        assert!(parse_device("virtio-net").is_err());
        assert_eq!(parse_device("pc-testdev").unwrap(), Device::PcTestdev);
        assert!(parse_device("pc-testdev,iobase=1").is_err());
        assert!(parse_device("isa-debug-exit,colour=red").is_err());
        assert_eq!(parse_chardev("-serial", "file:/tmp/x").unwrap(), CharTarget::File("/tmp/x".into()));
        assert!(parse_chardev("-serial", "tcp:1234").is_err());
        assert_eq!(
            parse_chardev_def("file,id=c0,path=/tmp/o").unwrap(),
            ("c0".into(), CharTarget::File("/tmp/o".into()))
        );
        assert_eq!(parse_icount("shift=3").unwrap(), 3);
        assert_eq!(parse_icount("shift=2,sleep=off").unwrap(), 2);
        assert!(parse_icount("shift=auto").is_err());
    }
}
