//! Reader for the SingleStepTests MOO format (gzip-compressed chunk stream).
//!
//! A chunk is a 4-byte ASCII tag, a little-endian u32 payload length and the
//! payload. `TEST`, `INIT` and `FINA` payloads are themselves chunk streams.
//! Unknown tags (`CYCL`, `HASH`, `GMET`, anything newer) are skipped by their
//! length, so other copies of the data set read unchanged. The layout is the
//! one described in `shared/cputests/README.md`.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// Register order of the `REGS` bitmask.
pub const REG_NAMES: [&str; 14] = [
    "ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags",
];
pub const R_AX: usize = 0;
pub const R_BX: usize = 1;
pub const R_CX: usize = 2;
pub const R_DX: usize = 3;
pub const R_CS: usize = 4;
pub const R_SS: usize = 5;
pub const R_DS: usize = 6;
pub const R_ES: usize = 7;
pub const R_SP: usize = 8;
pub const R_BP: usize = 9;
pub const R_SI: usize = 10;
pub const R_DI: usize = 11;
pub const R_IP: usize = 12;
pub const R_FLAGS: usize = 13;

/// A processor state as a test records it: registers present in the
/// bitmask, and (address, byte) pairs of RAM.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub regs: [Option<u16>; 14],
    pub ram: Vec<(u32, u8)>,
}

/// An exception or interrupt the instruction took (`EXCP`).
#[derive(Clone, Copy, Debug)]
pub struct Excp {
    pub vector: u8,
    pub flags_addr: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Test {
    pub index: u32,
    pub name: String,
    pub bytes: Vec<u8>,
    pub init: State,
    pub fina: State,
    pub excp: Option<Excp>,
}

#[derive(Clone, Debug, Default)]
pub struct MooFile {
    pub major: u8,
    pub minor: u8,
    /// CPU id from the `MOO ` header, e.g. "C286".
    pub cpu: String,
    /// Test count the header announces.
    pub declared: u32,
    /// From `META`: mnemonic (trimmed) and CPU mode (0 = real mode), if present.
    pub mnemonic: String,
    pub cpu_mode: Option<u8>,
    pub tests: Vec<Test>,
}

/// A malformed file: what was wrong and at which byte of the decompressed stream.
#[derive(Debug)]
pub struct MooError(pub String);

impl std::fmt::Display for MooError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for MooError {}

type R<T> = Result<T, MooError>;

/// A little-endian cursor over a byte slice that never panics.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    /// Offset of `b[0]` in the whole stream, for error messages.
    base: usize,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8], base: usize) -> Self {
        Cur { b, pos: 0, base }
    }
    fn err<T>(&self, what: &str) -> R<T> {
        Err(MooError(format!("{what} at byte {}", self.base + self.pos)))
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.b.len() - self.pos < n {
            return self.err(&format!("truncated: need {n} bytes"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
    /// Next chunk: (tag, payload cursor).
    fn chunk(&mut self) -> R<([u8; 4], Cur<'a>)> {
        let tag: [u8; 4] = self.take(4)?.try_into().unwrap_or([0; 4]);
        let len = self.u32()? as usize;
        let base = self.base + self.pos;
        let body = self.take(len)?;
        Ok((tag, Cur::new(body, base)))
    }
}

fn read_state(mut c: Cur) -> R<State> {
    let mut st = State::default();
    while !c.done() {
        let (tag, mut p) = c.chunk()?;
        match &tag {
            b"REGS" => {
                let mask = p.u16()?;
                for (bit, reg) in st.regs.iter_mut().enumerate() {
                    if mask & (1 << bit) != 0 {
                        *reg = Some(p.u16()?);
                    }
                }
            }
            b"RAM " => {
                let n = p.u32()? as usize;
                st.ram.reserve(n);
                for _ in 0..n {
                    let a = p.u32()?;
                    let v = p.u8()?;
                    st.ram.push((a, v));
                }
            }
            _ => {}
        }
    }
    Ok(st)
}

fn read_test(mut c: Cur) -> R<Test> {
    let mut t = Test {
        index: c.u32()?,
        ..Test::default()
    };
    while !c.done() {
        let (tag, mut p) = c.chunk()?;
        match &tag {
            b"NAME" => {
                let n = p.u32()? as usize;
                t.name = String::from_utf8_lossy(p.take(n)?).into_owned();
            }
            b"BYTS" => {
                let n = p.u32()? as usize;
                t.bytes = p.take(n)?.to_vec();
            }
            b"INIT" => t.init = read_state(p)?,
            b"FINA" => t.fina = read_state(p)?,
            b"EXCP" => {
                t.excp = Some(Excp {
                    vector: p.u8()?,
                    flags_addr: p.u32()?,
                })
            }
            _ => {}
        }
    }
    Ok(t)
}

/// Parse a decompressed MOO stream.
pub fn parse(data: &[u8]) -> R<MooFile> {
    let mut c = Cur::new(data, 0);
    let mut f = MooFile::default();
    let mut seen_header = false;
    while !c.done() {
        let (tag, mut p) = c.chunk()?;
        match &tag {
            b"MOO " => {
                f.major = p.u8()?;
                f.minor = p.u8()?;
                p.take(2)?;
                f.declared = p.u32()?;
                f.cpu = String::from_utf8_lossy(p.take(4)?).trim().to_string();
                seen_header = true;
            }
            b"TEST" => f.tests.push(read_test(p)?),
            b"META" => {
                p.take(7)?;
                f.mnemonic = String::from_utf8_lossy(p.take(8)?).trim().to_string();
                p.take(4 + 8)?;
                f.cpu_mode = Some(p.u8()?);
            }
            _ => {}
        }
    }
    if !seen_header {
        return Err(MooError("no `MOO ` header chunk".into()));
    }
    Ok(f)
}

/// Read and parse a gzip-compressed MOO file.
pub fn read_gz(path: &Path) -> R<MooFile> {
    let file = std::fs::File::open(path).map_err(|e| MooError(format!("{}: {e}", path.display())))?;
    let mut data = Vec::new();
    GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut data)
        .map_err(|e| MooError(format!("{}: not a gzip stream: {e}", path.display())))?;
    parse(&data).map_err(|e| MooError(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(tag: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = tag.to_vec();
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reads_tests_and_skips_unknown_chunks() {
        let mut hdr = vec![1, 0, 0, 0];
        hdr.extend_from_slice(&1u32.to_le_bytes());
        hdr.extend_from_slice(b"C286");
        let mut regs = 0b101u16.to_le_bytes().to_vec();
        regs.extend_from_slice(&0x1234u16.to_le_bytes());
        regs.extend_from_slice(&0xbeefu16.to_le_bytes());
        let mut ram = 1u32.to_le_bytes().to_vec();
        ram.extend_from_slice(&0x10ffefu32.to_le_bytes());
        ram.push(0xf4);
        let mut init = chunk(b"REGS", &regs);
        init.extend(chunk(b"QUEU", &[1, 2, 3]));
        init.extend(chunk(b"RAM ", &ram));
        let mut name = 3u32.to_le_bytes().to_vec();
        name.extend_from_slice(b"hlt");
        let mut test = 7u32.to_le_bytes().to_vec();
        test.extend(chunk(b"NAME", &name));
        test.extend(chunk(b"CYCL", &[0; 9]));
        test.extend(chunk(b"INIT", &init));
        test.extend(chunk(b"FINA", &chunk(b"REGS", &0u16.to_le_bytes())));
        test.extend(chunk(b"EXCP", &[6, 0x10, 0, 0, 0]));
        let mut file = chunk(b"MOO ", &hdr);
        file.extend(chunk(b"HASH", &[0; 20]));
        file.extend(chunk(b"TEST", &test));
        let f = parse(&file).unwrap();
        assert_eq!(f.cpu, "C286");
        assert_eq!(f.tests.len(), 1);
        let t = &f.tests[0];
        assert_eq!(t.index, 7);
        assert_eq!(t.name, "hlt");
        assert_eq!(t.init.regs[0], Some(0x1234));
        assert_eq!(t.init.regs[1], None);
        assert_eq!(t.init.regs[2], Some(0xbeef));
        assert_eq!(t.init.ram, vec![(0x10ffef, 0xf4)]);
        assert!(t.fina.regs.iter().all(|r| r.is_none()));
        assert_eq!(t.excp.unwrap().vector, 6);
        assert!(parse(&file[..file.len() - 3]).is_err(), "truncation is an error, not a panic");
    }
}
