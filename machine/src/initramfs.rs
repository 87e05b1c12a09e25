//! A writer for Linux initramfs archives: cpio in the "newc" format (magic
//! `070701`), as the kernel's `init/initramfs.c` unpacks it and
//! `Documentation/driver-api/early-userspace/buffer-format.rst` describes.
//!
//! Each entry is a 110-byte ASCII header (thirteen 8-digit hex fields after
//! the magic), the NUL-terminated name padded so the data starts on a 4-byte
//! boundary, then the data padded to 4 bytes. A `TRAILER!!!` entry ends the
//! archive. Because the archive is written here, device nodes such as
//! `/dev/console` can be put in it without root.
//!
//! The entry list can also be read from a text description in the format of
//! the kernel's `usr/gen_init_cpio` (`file`, `dir`, `slink`, `nod` lines),
//! which is what `kagami-mkinitramfs` takes. Hard links, pipes and sockets are
//! left out: a test guest does not need them.

use std::fmt;
use std::io::{self, Write};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;

/// What an entry is, with what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
}

/// One archive member. `path` is relative to the archive root, without a
/// leading slash (the kernel accepts both; `cpio -t` prints what is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    /// Permission bits only (0o7777); the file type comes from `kind`.
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: Kind,
}

impl Entry {
    pub fn dir(path: &str, perm: u32) -> Entry {
        Entry::new(path, perm, Kind::Dir)
    }
    pub fn file(path: &str, perm: u32, data: Vec<u8>) -> Entry {
        Entry::new(path, perm, Kind::File(data))
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::new(path, 0o777, Kind::Symlink(target.to_string()))
    }
    pub fn char_dev(path: &str, perm: u32, major: u32, minor: u32) -> Entry {
        Entry::new(path, perm, Kind::CharDev { major, minor })
    }

    fn new(path: &str, perm: u32, kind: Kind) -> Entry {
        Entry {
            path: path.trim_start_matches('/').to_string(),
            perm: perm & 0o7777,
            uid: 0,
            gid: 0,
            kind,
        }
    }

    fn mode(&self) -> u32 {
        self.perm
            | match self.kind {
                Kind::Dir => S_IFDIR,
                Kind::File(_) => S_IFREG,
                Kind::Symlink(_) => S_IFLNK,
                Kind::CharDev { .. } => S_IFCHR,
                Kind::BlockDev { .. } => S_IFBLK,
            }
    }

    fn data(&self) -> &[u8] {
        match &self.kind {
            Kind::File(d) => d,
            Kind::Symlink(t) => t.as_bytes(),
            _ => &[],
        }
    }

    fn rdev(&self) -> (u32, u32) {
        match self.kind {
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => (major, minor),
            _ => (0, 0),
        }
    }
}

/// Streams entries to `out` in newc format. Inode numbers are assigned in
/// order; every mtime is 0 so that the same input gives the same bytes.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> CpioWriter<W> {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    pub fn append(&mut self, e: &Entry) -> io::Result<()> {
        if e.path.is_empty() || e.path.len() >= 4096 || e.path.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad archive path {:?}", e.path),
            ));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if matches!(e.kind, Kind::Dir) { 2 } else { 1 };
        let data = e.data();
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{} is larger than 4 GiB", e.path)))?;
        let (rmaj, rmin) = e.rdev();
        self.header(&e.path, [ino, e.mode(), e.uid, e.gid, nlink, 0, size, 0, 0, rmaj, rmin])?;
        self.put(data)?;
        self.pad()
    }

    /// Write the trailer and return the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Fields in newc order: ino mode uid gid nlink mtime filesize devmajor
    /// devminor rdevmajor rdevminor; namesize and check follow.
    fn header(&mut self, name: &str, f: [u32; 11]) -> io::Result<()> {
        let mut h = String::with_capacity(110);
        h.push_str(MAGIC);
        for v in f {
            h.push_str(&format!("{v:08X}"));
        }
        h.push_str(&format!("{:08X}", name.len() + 1));
        h.push_str("00000000");
        self.put(h.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }
}

/// Write a whole archive to a byte vector.
pub fn archive(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut w = CpioWriter::new(Vec::new());
    for e in entries {
        w.append(e)?;
    }
    w.finish()
}

/// A line of a description that could not be used.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SpecError {}

/// Parse a `gen_init_cpio`-style description:
///
/// ```text
/// # comment
/// dir   /bin 0755 0 0
/// file  /init <host path> 0755 0 0
/// slink /bin/sh busybox 0777 0 0
/// nod   /dev/console 0600 0 0 c 5 1
/// ```
///
/// `read_file` loads the host file named by a `file` line, so the parser
/// itself touches no file system (and is testable).
pub fn parse_spec(text: &str, mut read_file: impl FnMut(&str) -> io::Result<Vec<u8>>) -> Result<Vec<Entry>, SpecError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let err = |message: String| SpecError { line, message };
        let words: Vec<&str> = raw.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let want = match words[0] {
            "dir" => 5,
            "file" | "slink" => 6,
            "nod" => 8,
            other => return Err(err(format!("unknown entry type {other:?} (expected dir, file, slink or nod)"))),
        };
        if words.len() != want {
            return Err(err(format!("{:?} takes {} fields, found {}", words[0], want - 1, words.len() - 1)));
        }
        let num = |s: &str, what: &str, radix: u32| u32::from_str_radix(s, radix).map_err(|_| err(format!("bad {what} {s:?}")));
        let path = words[1];
        let (mode_at, owner_at) = if matches!(words[0], "dir" | "nod") { (2, 3) } else { (3, 4) };
        let perm = num(words[mode_at], "mode", 8)?;
        let uid = num(words[owner_at], "uid", 10)?;
        let gid = num(words[owner_at + 1], "gid", 10)?;
        let kind = match words[0] {
            "dir" => Kind::Dir,
            "file" => Kind::File(read_file(words[2]).map_err(|e| err(format!("cannot read {}: {e}", words[2])))?),
            "slink" => Kind::Symlink(words[2].to_string()),
            _ => {
                let major = num(words[6], "major", 10)?;
                let minor = num(words[7], "minor", 10)?;
                match words[5] {
                    "c" => Kind::CharDev { major, minor },
                    "b" => Kind::BlockDev { major, minor },
                    t => return Err(err(format!("device type {t:?} is neither c nor b"))),
                }
            }
        };
        let mut e = Entry::new(path, perm, kind);
        e.uid = uid;
        e.gid = gid;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(h: &[u8], i: usize) -> u32 {
        let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap();
        u32::from_str_radix(s, 16).unwrap()
    }

    /// Walk an archive the way the kernel does and return (name, mode, data, rdev).
    fn read_back(mut a: &[u8]) -> Vec<(String, u32, Vec<u8>, (u32, u32))> {
        let total = a.len();
        let mut out = Vec::new();
        loop {
            assert_eq!(&a[..6], b"070701");
            let mode = field(a, 1);
            let size = field(a, 6) as usize;
            let rdev = (field(a, 9), field(a, 10));
            let namesize = field(a, 11) as usize;
            assert_eq!(field(a, 12), 0, "check field");
            let name = std::str::from_utf8(&a[110..110 + namesize - 1]).unwrap().to_string();
            assert_eq!(a[110 + namesize - 1], 0, "name is NUL-terminated");
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let data = a[data_at..data_at + size].to_vec();
            let next = (data_at + size).div_ceil(4) * 4;
            // Every entry starts on a 4-byte boundary of the whole archive.
            assert_eq!((total - a.len()) % 4, 0);
            a = &a[next..];
            if name == TRAILER {
                assert!(a.is_empty(), "nothing after the trailer");
                return out;
            }
            out.push((name, mode, data, rdev));
        }
    }

    #[test]
    fn header_layout_matches_newc() {
        let a = archive(&[Entry::file("/init", 0o755, b"#!/bin/sh\n".to_vec())]).unwrap();
        // 110-byte header + "init\0" = 115, padded to 116; 10 data bytes padded to 12.
        assert_eq!(&a[..6], b"070701");
        assert_eq!(field(&a, 0), 1, "first inode");
        assert_eq!(field(&a, 1), 0o100755);
        assert_eq!(field(&a, 4), 1, "nlink");
        assert_eq!(field(&a, 6), 10, "filesize");
        assert_eq!(field(&a, 11), 5, "namesize counts the NUL");
        assert_eq!(&a[110..116], b"init\0\0");
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        assert_eq!(&a[126..128], b"\0\0");
        assert_eq!(&a[128..134], b"070701");
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn every_kind_round_trips() {
        let entries = vec![
            Entry::dir("bin", 0o755),
            Entry::file("bin/busybox", 0o755, (0..=255u8).cycle().take(1001).collect()),
            Entry::symlink("bin/sh", "busybox"),
            Entry::char_dev("dev/console", 0o600, 5, 1),
            Entry::new("dev/sda", 0o660, Kind::BlockDev { major: 8, minor: 0 }),
            Entry::file("empty", 0o644, Vec::new()),
        ];
        let back = read_back(&archive(&entries).unwrap());
        assert_eq!(back.len(), entries.len());
        assert_eq!(back[0].0, "bin");
        assert_eq!(back[0].1, 0o040755);
        assert_eq!(back[1].2, entries[1].data());
        assert_eq!(back[2], ("bin/sh".to_string(), 0o120777, b"busybox".to_vec(), (0, 0)));
        assert_eq!(back[3], ("dev/console".to_string(), 0o020600, Vec::new(), (5, 1)));
        assert_eq!(back[4].1, 0o060660);
        assert_eq!(back[4].3, (8, 0));
        assert_eq!(back[5].2, Vec::<u8>::new());
    }

    #[test]
    fn output_is_deterministic() {
        let e = [Entry::dir("proc", 0o555), Entry::file("a", 0o644, b"x".to_vec())];
        assert_eq!(archive(&e).unwrap(), archive(&e).unwrap());
    }

    #[test]
    fn rejects_empty_and_nul_paths() {
        assert!(archive(&[Entry::dir("/", 0o755)]).is_err());
        assert!(archive(&[Entry::dir("a\0b", 0o755)]).is_err());
    }

    #[test]
    fn spec_lines_parse() {
        let spec = "# test\n\ndir /proc 0555 0 0\nfile /init host/init 0755 0 0\nslink /bin/sh busybox 0777 0 0\nnod /dev/console 0600 0 5 c 5 1\n";
        let entries = parse_spec(spec, |p| {
            assert_eq!(p, "host/init");
            Ok(b"echo hi".to_vec())
        })
        .unwrap();
        assert_eq!(
            entries,
            vec![
                Entry::dir("proc", 0o555),
                Entry::file("init", 0o755, b"echo hi".to_vec()),
                Entry::symlink("bin/sh", "busybox"),
                Entry {
                    gid: 5,
                    ..Entry::char_dev("dev/console", 0o600, 5, 1)
                },
            ]
        );
    }

    #[test]
    fn spec_errors_name_the_line() {
        let no_files = |_: &str| -> io::Result<Vec<u8>> { Err(io::Error::new(io::ErrorKind::NotFound, "no such file")) };
        let e = parse_spec("dir /a 0755 0 0\npipe /p 0644 0 0\n", no_files).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("pipe"), "{e}");
        assert_eq!(parse_spec("dir /a 0789 0 0", no_files).unwrap_err().message, "bad mode \"0789\"");
        assert!(parse_spec("dir /a 0755 0", no_files)
            .unwrap_err()
            .message
            .contains("takes 4 fields"));
        assert!(parse_spec("file /init missing 0755 0 0", no_files)
            .unwrap_err()
            .message
            .contains("cannot read missing"));
        assert!(parse_spec("nod /dev/x 0600 0 0 p 1 1", no_files)
            .unwrap_err()
            .message
            .contains("neither c nor b"));
    }
}
