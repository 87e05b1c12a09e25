use super::*;
use crate::dma::VecDma;

fn select(f: &mut FwCfg, key: u16) {
    f.write(SELECTOR, 2, key as u32);
}

fn read_bytes(f: &mut FwCfg, n: usize) -> Vec<u8> {
    (0..n).map(|_| f.read(DATA, 1) as u8).collect()
}

/// Start a DMA transfer with the descriptor at `desc`, as a guest does:
/// two 32-bit OUTs of the big-endian address halves.
fn kick(f: &mut FwCfg, desc: u64) {
    f.write(DMA_ADDRESS, 4, ((desc >> 32) as u32).swap_bytes());
    f.write(DMA_ADDRESS + 4, 4, (desc as u32).swap_bytes());
}

fn put_desc(mem: &VecDma, at: u64, control: u32, length: u32, address: u64) {
    let mut d = Vec::new();
    d.extend_from_slice(&control.to_be_bytes());
    d.extend_from_slice(&length.to_be_bytes());
    d.extend_from_slice(&address.to_be_bytes());
    mem.write(at, &d).unwrap();
}

fn control_after(mem: &VecDma, at: u64) -> u32 {
    let mut b = [0u8; 4];
    mem.read(at, &mut b).unwrap();
    u32::from_be_bytes(b)
}

fn mem_bytes(mem: &VecDma, at: u64, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    mem.read(at, &mut b).unwrap();
    b
}

#[test]
fn signature_and_id_through_the_ports() {
    let mut f = FwCfg::new(None);
    select(&mut f, SIGNATURE);
    assert_eq!(read_bytes(&mut f, 4), b"QEMU");
    assert_eq!(f.read(DATA, 1), 0, "past the end reads 0");
    select(&mut f, ID);
    assert_eq!(read_bytes(&mut f, 4), [1, 0, 0, 0], "no DMA: traditional interface only");
    let mut f = FwCfg::new(Some(VecDma::new(16).boxed()));
    select(&mut f, ID);
    assert_eq!(read_bytes(&mut f, 4), [3, 0, 0, 0], "bit 1: DMA");
    // Port 0x510 reads the data register too; selecting restarts the item.
    select(&mut f, SIGNATURE);
    assert_eq!(f.read(SELECTOR, 1), b'Q' as u32);
    assert_eq!(f.read(DATA, 1), b'E' as u32);
    select(&mut f, SIGNATURE);
    assert_eq!(f.read(DATA, 1), b'Q' as u32);
    // The DMA register reads back "QEMU CFG" in memory order.
    let sig: Vec<u8> = (0..8).map(|i| f.read(DMA_ADDRESS + i, 1) as u8).collect();
    assert_eq!(sig, b"QEMU CFG");
    assert_eq!(f.read(DMA_ADDRESS, 4).to_le_bytes(), *b"QEMU");
    // The old write channel bit is ignored.
    select(&mut f, 0x4000 | SIGNATURE);
    assert_eq!(f.read(DATA, 1), b'Q' as u32);
}

#[test]
fn standard_items() {
    let mut f = FwCfg::new(None);
    f.set_ram_size(0x8000_0000);
    f.set_cpus(2, 4);
    f.set_cmdline(0x2_0000, "console=ttyS0");
    f.set_kernel(0x10_0000, vec![0xaa; 5]);
    select(&mut f, RAM_SIZE);
    assert_eq!(read_bytes(&mut f, 8), 0x8000_0000u64.to_le_bytes());
    select(&mut f, NB_CPUS);
    assert_eq!(read_bytes(&mut f, 2), [2, 0]);
    select(&mut f, MAX_CPUS);
    assert_eq!(read_bytes(&mut f, 2), [4, 0]);
    select(&mut f, CMDLINE_SIZE);
    assert_eq!(read_bytes(&mut f, 4), 14u32.to_le_bytes(), "size counts the NUL");
    select(&mut f, CMDLINE_DATA);
    assert_eq!(read_bytes(&mut f, 14), b"console=ttyS0\0");
    select(&mut f, KERNEL_SIZE);
    assert_eq!(read_bytes(&mut f, 4), 5u32.to_le_bytes());
    select(&mut f, KERNEL_ADDR);
    assert_eq!(read_bytes(&mut f, 4), 0x10_0000u32.to_le_bytes());
    select(&mut f, 0x0123);
    assert_eq!(read_bytes(&mut f, 2), [0, 0], "missing item reads zeros");
}

#[test]
fn file_directory_lookup_by_name() {
    let mut f = FwCfg::new(None);
    f.add_file("etc/e820", vec![1; 40]).unwrap();
    f.add_file("bootorder", b"/rom@genroms/linuxboot.bin\n".to_vec()).unwrap();
    f.add_file("etc/acpi/tables", vec![2; 300]).unwrap();
    assert_eq!(f.add_file("etc/e820", vec![]), Err(FwCfgError::Duplicate("etc/e820".into())));
    assert!(matches!(f.add_file(&"x".repeat(56), vec![]), Err(FwCfgError::BadName(_))));
    assert!(matches!(f.add_file("", vec![]), Err(FwCfgError::BadName(_))));

    // Walk the directory the way firmware does and find "etc/e820".
    select(&mut f, FILE_DIR);
    let count = u32::from_be_bytes(read_bytes(&mut f, 4).try_into().unwrap());
    assert_eq!(count, 3);
    let mut names = Vec::new();
    let mut e820 = None;
    for _ in 0..count {
        let e = read_bytes(&mut f, 64);
        let size = u32::from_be_bytes(e[0..4].try_into().unwrap());
        let sel = u16::from_be_bytes([e[4], e[5]]);
        let name = String::from_utf8(e[8..].iter().take_while(|&&b| b != 0).copied().collect()).unwrap();
        if name == "etc/e820" {
            e820 = Some((sel, size));
        }
        names.push(name);
    }
    assert_eq!(names, ["bootorder", "etc/acpi/tables", "etc/e820"], "sorted by name");
    let (sel, size) = e820.unwrap();
    assert_eq!((sel, size), (FILE_FIRST + 2, 40));
    assert_eq!(f.file_selector("etc/e820"), Some(sel));
    assert_eq!(f.file_selector("nope"), None);
    select(&mut f, sel);
    assert_eq!(read_bytes(&mut f, 41), [vec![1; 40], vec![0]].concat());
}

#[test]
fn dma_read_into_guest_memory() {
    let mem = VecDma::new(0x1_0000);
    let mut f = FwCfg::new(Some(mem.boxed()));
    f.add_file("etc/table-loader", (0..200u8).collect()).unwrap();
    let sel = f.file_selector("etc/table-loader").unwrap() as u32;
    // Select + read 150 bytes to 0x2000.
    put_desc(&mem, 0x100, (sel << 16) | DMA_CTL_SELECT | DMA_CTL_READ, 150, 0x2000);
    kick(&mut f, 0x100);
    assert_eq!(control_after(&mem, 0x100), 0);
    assert_eq!(mem_bytes(&mem, 0x2000, 150), (0..150u8).collect::<Vec<_>>());
    // Continue without select: 50 bytes remain, the rest of the 60 is zero-filled.
    mem.write(0x3000, &[0xee; 60]).unwrap();
    put_desc(&mem, 0x100, DMA_CTL_READ, 60, 0x3000);
    kick(&mut f, 0x100);
    assert_eq!(control_after(&mem, 0x100), 0);
    assert_eq!(
        mem_bytes(&mem, 0x3000, 60),
        [(150..200u8).collect::<Vec<_>>(), vec![0; 10]].concat()
    );
    // The DMA address register clears after a transfer; a high half alone does nothing.
    f.write(DMA_ADDRESS, 4, 0);
    assert_eq!(f.save().dma_address, 0);
}

#[test]
fn select_skip_read() {
    let mem = VecDma::new(0x1_0000);
    let mut f = FwCfg::new(Some(mem.boxed()));
    f.add_file("genroms/linuxboot.bin", (0..64u8).collect()).unwrap();
    let sel = f.file_selector("genroms/linuxboot.bin").unwrap() as u32;
    put_desc(&mem, 0x200, (sel << 16) | DMA_CTL_SELECT | DMA_CTL_SKIP, 10, 0);
    kick(&mut f, 0x200);
    assert_eq!(control_after(&mem, 0x200), 0);
    put_desc(&mem, 0x200, DMA_CTL_READ, 4, 0x4000);
    kick(&mut f, 0x200);
    assert_eq!(mem_bytes(&mem, 0x4000, 4), [10, 11, 12, 13]);
    // The port sees the same position.
    assert_eq!(f.read(DATA, 1), 14);
}

#[test]
fn dma_errors() {
    let mem = VecDma::new(0x1_0000);
    let mut f = FwCfg::new(Some(mem.boxed()));
    f.add_writable_file("etc/boot-fail-wait", vec![0; 4]).unwrap();
    // A write to a selector that names no item.
    mem.write(0x5000, &[1, 2, 3, 4]).unwrap();
    put_desc(&mem, 0x300, (0x0123 << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE, 4, 0x5000);
    kick(&mut f, 0x300);
    assert_eq!(control_after(&mem, 0x300), DMA_CTL_ERROR, "bad selector");
    // A write to a read-only item.
    put_desc(&mem, 0x300, ((SIGNATURE as u32) << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE, 4, 0x5000);
    kick(&mut f, 0x300);
    assert_eq!(control_after(&mem, 0x300), DMA_CTL_ERROR, "read-only item");
    select(&mut f, SIGNATURE);
    assert_eq!(read_bytes(&mut f, 4), b"QEMU");
    // A read into memory that is not RAM.
    put_desc(
        &mem,
        0x300,
        ((SIGNATURE as u32) << 16) | DMA_CTL_SELECT | DMA_CTL_READ,
        4,
        0xfff0_0000,
    );
    kick(&mut f, 0x300);
    assert_eq!(control_after(&mem, 0x300), DMA_CTL_ERROR, "target outside RAM");
    // A writable file takes the write, but not past its end.
    let sel = f.file_selector("etc/boot-fail-wait").unwrap() as u32;
    put_desc(&mem, 0x300, (sel << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE, 4, 0x5000);
    kick(&mut f, 0x300);
    assert_eq!(control_after(&mem, 0x300), 0);
    assert_eq!(f.file("etc/boot-fail-wait"), Some(&[1, 2, 3, 4][..]));
    put_desc(&mem, 0x300, (sel << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE, 5, 0x5000);
    kick(&mut f, 0x300);
    assert_eq!(control_after(&mem, 0x300), DMA_CTL_ERROR, "past the end");
    put_desc(&mem, 0x300, (sel << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE, 4, 0xfff0_0000);
    kick(&mut f, 0x300);
    assert_eq!(control_after(&mem, 0x300), DMA_CTL_ERROR, "source outside RAM");
    assert_eq!(
        f.file("etc/boot-fail-wait"),
        Some(&[1, 2, 3, 4][..]),
        "failed writes change nothing"
    );
    // A read of a missing item is zeros, not an error (as QEMU does).
    mem.write(0x6000, &[0xff; 4]).unwrap();
    put_desc(&mem, 0x300, (0x0123 << 16) | DMA_CTL_SELECT | DMA_CTL_READ, 4, 0x6000);
    kick(&mut f, 0x300);
    assert_eq!(control_after(&mem, 0x300), 0);
    assert_eq!(mem_bytes(&mem, 0x6000, 4), [0; 4]);
}

#[test]
fn snapshot_round_trip_and_validation() {
    let mem = VecDma::new(0x1_0000);
    let mk = || {
        let mut f = FwCfg::new(Some(mem.boxed()));
        f.add_file("bootorder", vec![7; 8]).unwrap();
        f.add_writable_file("etc/w", vec![0; 4]).unwrap();
        f
    };
    let mut f = mk();
    mem.write(0x5000, &[9, 8, 7, 6]).unwrap();
    let sel = f.file_selector("etc/w").unwrap() as u32;
    put_desc(&mem, 0x300, (sel << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE, 4, 0x5000);
    kick(&mut f, 0x300);
    let boot = f.file_selector("bootorder").unwrap();
    select(&mut f, boot);
    read_bytes(&mut f, 3);
    let s = f.save();
    let json = serde_json::to_string(&s).unwrap();
    let mut g = mk();
    g.restore(&serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(g.save(), s);
    assert_eq!(g.file("etc/w"), Some(&[9, 8, 7, 6][..]));
    assert_eq!(g.read(DATA, 1), 7);

    let bad = |m: &dyn Fn(&mut State)| {
        let mut b = s.clone();
        m(&mut b);
        let mut g = mk();
        let before = g.save();
        assert!(g.restore(&b).is_err(), "{b:?}");
        assert_eq!(g.save(), before);
    };
    bad(&|b| b.offset = 9);
    bad(&|b| b.selector |= 0x4000);
    bad(&|b| b.dma_address = 0x1234);
    bad(&|b| b.writable_files[0].1.push(0));
    bad(&|b| b.writable_files[0].0 = "bootorder".into());
    bad(&|b| b.writable_files.clear());
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_guest_traffic_never_panics() {
    let mem = VecDma::new(0x1_0000);
    let mut f = FwCfg::new(Some(mem.boxed()));
    f.add_file("etc/e820", vec![5; 100]).unwrap();
    f.add_writable_file("etc/w", vec![0; 16]).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let r = rng.next();
        let size = [1u8, 2, 4][(r % 3) as usize];
        match (r >> 4) % 4 {
            0 => f.write((r >> 8) as u16 % SPAN, size, (r >> 32) as u32),
            1 => {
                f.read((r >> 8) as u16 % SPAN, size);
            }
            2 => select(
                &mut f,
                [SIGNATURE, FILE_DIR, FILE_FIRST, FILE_FIRST + 1, 0x7777][(r >> 8) as usize % 5],
            ),
            _ => {
                // A descriptor somewhere in (or just past) RAM with random fields.
                let at = (r >> 16) % 0x1_0010;
                let mut d = [0u8; 16];
                d[..8].copy_from_slice(&rng.next().to_be_bytes());
                d[4..6].fill(0); // keep lengths below 64 KiB
                d[8..].copy_from_slice(&(rng.next() % 0x1_1000).to_be_bytes());
                let _ = mem.write(at, &d);
                kick(&mut f, at);
            }
        }
    }
    let s = f.save();
    let mut g = FwCfg::new(Some(mem.boxed()));
    g.add_file("etc/e820", vec![5; 100]).unwrap();
    g.add_writable_file("etc/w", vec![0; 16]).unwrap();
    g.restore(&s).unwrap();
    assert_eq!(g.save(), s);
}
