//! kagami's small built-in BIOS for direct kernel boot (no `-bios`): the
//! real-mode services a kernel or boot program may still call after the
//! machine loaded it, without a POST (the machine writes everything in
//! place and the CPU starts at the kernel's entry).
//!
//! - Interrupt vector table: every vector points at an `IRET`, the IRQ
//!   vectors (08h-0Fh, 70h-77h) at handlers that acknowledge the 8259s,
//!   and the services below.
//! - BIOS data area (0x400): COM1/COM2 bases, equipment word, 639 KiB of
//!   base memory, the EBDA segment, video mode 3 with 80x25 text, the tick
//!   count INT 08h advances.
//! - INT 10h: AH=0Eh teletype output to COM1 (the console), AH=0Fh video
//!   mode 3, AH=03h cursor at 0,0.
//! - INT 11h equipment word, INT 12h base memory size.
//! - INT 15h: AX=E820h memory map (the same map the kernel was given),
//!   AX=E801h and AH=88h memory sizes, AX=2400h-2403h A20 through port
//!   0x92; anything else: CF=1, AH=86h.
//! - INT 16h: AH=00h/10h wait for a key, AH=01h/11h check for one, AH=02h
//!   shift flags; keys come from COM1's receiver (the console), ASCII in
//!   AL, scan code 0.
//! - INT 1Ah: AH=00h tick count, AH=02h RTC time, AH=04h RTC date (BCD,
//!   read from the CMOS clock).
//!
//! Interfaces follow the IBM PC/AT BIOS conventions as documented in
//! Ralf Brown's Interrupt List (INT 15h E820h: ACPI 6.5 §15.1). Results in
//! CF and ZF are set in the caller's FLAGS image on the stack, so `IRET`
//! restores the caller's IF.
//!
//! The code lives in the F segment at [`ROM_BASE`] (segment F000h), after
//! the E820 table it hands out.

use crate::e820::E820Map;
use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;

/// Where the handlers go: F000:1000 (SMBIOS uses 0xF0000-0xF0FFF).
pub const ROM_BASE: u64 = 0xf_1000;
pub const ROM_SEGMENT: u16 = 0xf000;
pub const IVT_ADDR: u64 = 0;
pub const BDA_ADDR: u64 = 0x400;
/// EBDA segment (the top KiB of conventional memory, reserved in E820).
pub const EBDA_SEGMENT: u16 = 0x9fc0;

/// BDA offsets (from 0x400) this BIOS keeps.
pub mod bda {
    pub const COM1: usize = 0x00;
    pub const COM2: usize = 0x02;
    pub const EBDA: usize = 0x0e;
    pub const EQUIPMENT: usize = 0x10;
    pub const BASE_MEMORY_KB: usize = 0x13;
    /// The one-character console input buffer: the character, then 1 if held.
    pub const KEY_CHAR: usize = 0x1e;
    pub const KEY_HELD: usize = 0x1f;
    pub const VIDEO_MODE: usize = 0x49;
    pub const COLUMNS: usize = 0x4a;
    pub const TICKS: usize = 0x6c;
    pub const MIDNIGHT: usize = 0x70;
    pub const ROWS_MINUS_1: usize = 0x84;
}

/// Ticks per day at 18.2 Hz (0x1800B0).
const TICKS_PER_DAY: u32 = 0x0018_00b0;
const COM1: u16 = 0x3f8;
const SMAP: u32 = 0x534d_4150;

/// The IVT, BDA and handler code, each to be written at its address.
pub struct BuiltinBios {
    pub ivt: Vec<u8>,
    pub bda: Vec<u8>,
    pub rom: Vec<u8>,
}

/// Build the BIOS for a machine with this memory map.
pub fn build(e820: &E820Map) -> Result<BuiltinBios, String> {
    assemble(e820).map_err(|e| format!("built-in BIOS: {e}"))
}

/// `push bp; mov bp,sp; op [bp+6], mask; pop bp`: change the caller's FLAGS
/// image (stack: BP, IP, CS, FLAGS).
fn flags_image(a: &mut CodeAssembler, set: bool, mask: u16) -> Result<(), IcedError> {
    a.push(bp)?;
    a.mov(bp, sp)?;
    if set {
        a.or(word_ptr(bp + 6), mask as u32)?;
    } else {
        a.and(word_ptr(bp + 6), !mask as u32 & 0xffff)?;
    }
    a.pop(bp)
}

const CF: u16 = 1;
const ZF: u16 = 1 << 6;

fn assemble(e820: &E820Map) -> Result<BuiltinBios, IcedError> {
    let mut a = CodeAssembler::new(16)?;
    let mut iret_l = a.create_label();
    let mut irq_master = a.create_label();
    let mut irq_slave = a.create_label();
    let mut int08 = a.create_label();
    let mut int10 = a.create_label();
    let mut int11 = a.create_label();
    let mut int12 = a.create_label();
    let mut int15 = a.create_label();
    let mut int16 = a.create_label();
    let mut int1a = a.create_label();
    // The E820 table INT 15h copies from, first: its offset is the ROM's.
    let ip = ROM_BASE - ((ROM_SEGMENT as u64) << 4);
    let table: Vec<u8> = e820.entries().iter().flat_map(|e| e.to_bytes()).collect();
    if !table.is_empty() {
        a.db(&table)?;
    }

    // Default: return.
    a.set_label(&mut iret_l)?;
    a.iret()?;

    // Master 8259 IRQs: non-specific EOI.
    a.set_label(&mut irq_master)?;
    a.push(ax)?;
    a.mov(al, 0x20)?;
    a.out(0x20, al)?;
    a.pop(ax)?;
    a.iret()?;

    // Slave 8259 IRQs: EOI to both.
    a.set_label(&mut irq_slave)?;
    a.push(ax)?;
    a.mov(al, 0x20)?;
    a.out(0xa0, al)?;
    a.out(0x20, al)?;
    a.pop(ax)?;
    a.iret()?;

    // INT 08h: the tick count at 0040:006C, midnight flag at 0040:0070.
    a.set_label(&mut int08)?;
    {
        let mut no_wrap = a.create_label();
        a.push(ds)?;
        a.push(ax)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.inc(dword_ptr(0x400 + bda::TICKS as u32))?;
        a.cmp(dword_ptr(0x400 + bda::TICKS as u32), TICKS_PER_DAY as i32)?;
        a.jb(no_wrap)?;
        a.mov(dword_ptr(0x400 + bda::TICKS as u32), 0)?;
        a.mov(byte_ptr(0x400 + bda::MIDNIGHT as u32), 1)?;
        a.set_label(&mut no_wrap)?;
        a.mov(al, 0x20)?;
        a.out(0x20, al)?;
        a.pop(ax)?;
        a.pop(ds)?;
        a.iret()?;
    }

    // INT 10h.
    a.set_label(&mut int10)?;
    {
        let mut tty = a.create_label();
        let mut mode = a.create_label();
        let mut cursor = a.create_label();
        let mut wait = a.create_label();
        a.cmp(ah, 0x0e)?;
        a.je(tty)?;
        a.cmp(ah, 0x0f)?;
        a.je(mode)?;
        a.cmp(ah, 0x03)?;
        a.je(cursor)?;
        a.iret()?;
        a.set_label(&mut tty)?;
        a.push(dx)?;
        a.push(ax)?;
        a.mov(dx, (COM1 + 5) as u32)?;
        a.set_label(&mut wait)?;
        a.in_(al, dx)?;
        a.test(al, 0x20)?; // THR empty (no UART: reads all ones)
        a.jz(wait)?;
        a.pop(ax)?;
        a.mov(dx, COM1 as u32)?;
        a.out(dx, al)?;
        a.pop(dx)?;
        a.iret()?;
        a.set_label(&mut mode)?;
        a.mov(ax, 0x5003u32)?; // 80 columns, mode 3
        a.xor(bh, bh)?;
        a.iret()?;
        a.set_label(&mut cursor)?;
        a.mov(cx, 0x0607u32)?;
        a.xor(dx, dx)?;
        a.iret()?;
    }

    // INT 11h / 12h.
    for (label, off) in [(&mut int11, bda::EQUIPMENT), (&mut int12, bda::BASE_MEMORY_KB)] {
        a.set_label(label)?;
        a.push(ds)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(ax, word_ptr(0x400 + off as u32))?;
        a.pop(ds)?;
        a.iret()?;
    }

    // INT 15h.
    let n = e820.entries().len() as u32;
    // RAM (E820 type 1) in a window of the address space.
    let ram = |lo: u64, hi: u64| e820.ram_below(hi).saturating_sub(e820.ram_below(lo));
    let below_16m_kb = (ram(1 << 20, 16 << 20) >> 10).min(15 << 10) as u32;
    let above_16m_64k = (ram(16 << 20, 1 << 32) >> 16).min(0xffff) as u32;
    let ext_kb = (ram(1 << 20, 64 << 20) >> 10).min(0xffff) as u32;
    a.set_label(&mut int15)?;
    {
        let mut not_e820 = a.create_label();
        let mut bad = a.create_label();
        let mut done_e820 = a.create_label();
        let mut not_e801 = a.create_label();
        let mut not_88 = a.create_label();
        let mut a20_on = a.create_label();
        let mut a20_off = a.create_label();
        let mut a20_query = a.create_label();
        let mut a20_write = a.create_label();
        let mut ok = a.create_label();

        a.cmp(eax, 0xe820)?;
        a.jne(not_e820)?;
        a.cmp(edx, SMAP as i32)?;
        a.jne(bad)?;
        a.cmp(ebx, n as i32)?;
        a.jae(bad)?;
        a.push(ds)?;
        a.push(si)?;
        a.push(di)?;
        a.push(cs)?;
        a.pop(ds)?;
        a.imul_3(si, bx, 20)?;
        a.add(si, ip as u32)?;
        a.mov(cx, 20u32)?;
        a.cld()?;
        a.rep().movsb()?;
        a.pop(di)?;
        a.pop(si)?;
        a.pop(ds)?;
        a.inc(ebx)?;
        a.cmp(ebx, n as i32)?;
        a.jb(done_e820)?;
        a.xor(ebx, ebx)?; // that was the last entry
        a.set_label(&mut done_e820)?;
        a.mov(eax, SMAP)?;
        a.mov(ecx, 20u32)?;
        a.jmp(ok)?;

        a.set_label(&mut not_e820)?;
        a.cmp(ax, 0xe801u32)?;
        a.jne(not_e801)?;
        a.mov(ax, below_16m_kb)?;
        a.mov(cx, below_16m_kb)?;
        a.mov(bx, above_16m_64k)?;
        a.mov(dx, above_16m_64k)?;
        a.jmp(ok)?;

        a.set_label(&mut not_e801)?;
        a.cmp(ah, 0x88)?;
        a.jne(not_88)?;
        a.mov(ax, ext_kb)?;
        a.jmp(ok)?;

        a.set_label(&mut not_88)?;
        a.cmp(ax, 0x2401u32)?;
        a.je(a20_on)?;
        a.cmp(ax, 0x2400u32)?;
        a.je(a20_off)?;
        a.cmp(ax, 0x2402u32)?;
        a.je(a20_query)?;
        a.cmp(ax, 0x2403u32)?;
        a.jne(bad)?;
        a.mov(bx, 2u32)?; // supported through port 0x92
        a.xor(ah, ah)?;
        a.jmp(ok)?;
        a.set_label(&mut a20_query)?;
        a.in_(al, 0x92)?;
        a.shr(al, 1)?;
        a.and(al, 1)?;
        a.xor(ah, ah)?;
        a.jmp(ok)?;
        a.set_label(&mut a20_on)?;
        a.in_(al, 0x92)?;
        a.or(al, 2)?;
        a.jmp(a20_write)?;
        a.set_label(&mut a20_off)?;
        a.in_(al, 0x92)?;
        a.and(al, 0xfd)?;
        a.set_label(&mut a20_write)?;
        a.and(al, 0xfe)?; // never the reset bit
        a.out(0x92, al)?;
        a.xor(ah, ah)?;
        a.jmp(ok)?;

        a.set_label(&mut bad)?;
        a.mov(ah, 0x86)?;
        flags_image(&mut a, true, CF)?;
        a.iret()?;
        a.set_label(&mut ok)?;
        flags_image(&mut a, false, CF)?;
        a.iret()?;
    }

    // INT 16h: console input from COM1 with a one-character buffer in the BDA.
    a.set_label(&mut int16)?;
    {
        let mut read = a.create_label();
        let mut check = a.create_label();
        let mut wait = a.create_label();
        let mut have = a.create_label();
        let mut none = a.create_label();
        let mut not_shift = a.create_label();
        a.push(ds)?;
        a.push(dx)?;
        a.push(ax)?;
        a.xor(dx, dx)?;
        a.mov(ds, dx)?;
        a.pop(ax)?;
        a.cmp(ah, 0x00)?;
        a.je(read)?;
        a.cmp(ah, 0x10)?;
        a.je(read)?;
        a.cmp(ah, 0x01)?;
        a.je(check)?;
        a.cmp(ah, 0x11)?;
        a.je(check)?;
        a.cmp(ah, 0x02)?;
        a.jne(not_shift)?;
        a.xor(al, al)?;
        a.set_label(&mut not_shift)?;
        a.pop(dx)?;
        a.pop(ds)?;
        a.iret()?;
        // Wait for a character, consume it.
        a.set_label(&mut read)?;
        a.cmp(byte_ptr(0x400 + bda::KEY_HELD as u32), 0)?;
        a.je(wait)?;
        a.mov(byte_ptr(0x400 + bda::KEY_HELD as u32), 0)?;
        a.mov(al, byte_ptr(0x400 + bda::KEY_CHAR as u32))?;
        a.xor(ah, ah)?;
        a.pop(dx)?;
        a.pop(ds)?;
        a.iret()?;
        a.set_label(&mut wait)?;
        a.mov(dx, (COM1 + 5) as u32)?;
        a.in_(al, dx)?;
        a.cmp(al, 0xff)?; // no UART: nothing will ever come
        a.je(wait)?;
        a.test(al, 1)?;
        a.jz(wait)?;
        a.mov(dx, COM1 as u32)?;
        a.in_(al, dx)?;
        a.xor(ah, ah)?;
        a.pop(dx)?;
        a.pop(ds)?;
        a.iret()?;
        // Check: ZF=0 and AX=key if one is there (it stays buffered).
        a.set_label(&mut check)?;
        a.cmp(byte_ptr(0x400 + bda::KEY_HELD as u32), 0)?;
        a.jne(have)?;
        a.mov(dx, (COM1 + 5) as u32)?;
        a.in_(al, dx)?;
        a.cmp(al, 0xff)?;
        a.je(none)?;
        a.test(al, 1)?;
        a.jz(none)?;
        a.mov(dx, COM1 as u32)?;
        a.in_(al, dx)?;
        a.mov(byte_ptr(0x400 + bda::KEY_CHAR as u32), al)?;
        a.mov(byte_ptr(0x400 + bda::KEY_HELD as u32), 1)?;
        a.set_label(&mut have)?;
        a.mov(al, byte_ptr(0x400 + bda::KEY_CHAR as u32))?;
        a.xor(ah, ah)?;
        a.pop(dx)?;
        a.pop(ds)?;
        flags_image(&mut a, false, ZF)?;
        a.iret()?;
        a.set_label(&mut none)?;
        a.pop(dx)?;
        a.pop(ds)?;
        flags_image(&mut a, true, ZF)?;
        a.iret()?;
    }

    // INT 1Ah.
    a.set_label(&mut int1a)?;
    {
        let mut not_ticks = a.create_label();
        let mut not_time = a.create_label();
        let mut not_date = a.create_label();
        let mut ok = a.create_label();
        let cmos = |a: &mut CodeAssembler, reg: u32, dst: AsmRegister8| -> Result<(), IcedError> {
            a.mov(al, reg)?;
            a.out(0x70, al)?;
            a.in_(al, 0x71)?;
            a.mov(dst, al)
        };
        a.cmp(ah, 0x00)?;
        a.jne(not_ticks)?;
        a.push(ds)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(dx, word_ptr(0x400 + bda::TICKS as u32))?;
        a.mov(cx, word_ptr(0x400 + bda::TICKS as u32 + 2))?;
        a.mov(al, byte_ptr(0x400 + bda::MIDNIGHT as u32))?;
        a.mov(byte_ptr(0x400 + bda::MIDNIGHT as u32), 0)?;
        a.pop(ds)?;
        a.jmp(ok)?;
        a.set_label(&mut not_ticks)?;
        a.cmp(ah, 0x02)?;
        a.jne(not_time)?;
        cmos(&mut a, 4, ch)?;
        cmos(&mut a, 2, cl)?;
        cmos(&mut a, 0, dh)?;
        a.xor(dl, dl)?;
        a.jmp(ok)?;
        a.set_label(&mut not_time)?;
        a.cmp(ah, 0x04)?;
        a.jne(not_date)?;
        cmos(&mut a, 0x32, ch)?;
        cmos(&mut a, 9, cl)?;
        cmos(&mut a, 8, dh)?;
        cmos(&mut a, 7, dl)?;
        a.jmp(ok)?;
        a.set_label(&mut not_date)?;
        flags_image(&mut a, true, CF)?;
        a.iret()?;
        a.set_label(&mut ok)?;
        flags_image(&mut a, false, CF)?;
        a.iret()?;
    }

    let r = a.assemble_options(ip, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let off = |l: &CodeLabel| -> Result<u16, IcedError> { Ok(r.label_ip(l)? as u16) };

    let mut ivt = vec![0u8; 0x400];
    let mut set = |v: usize, l: &CodeLabel| -> Result<(), IcedError> {
        let o = off(l)?;
        ivt[4 * v..4 * v + 2].copy_from_slice(&o.to_le_bytes());
        ivt[4 * v + 2..4 * v + 4].copy_from_slice(&ROM_SEGMENT.to_le_bytes());
        Ok(())
    };
    for v in 0..256 {
        set(v, &iret_l)?;
    }
    for v in 0x09..0x10 {
        set(v, &irq_master)?;
    }
    for v in 0x70..0x78 {
        set(v, &irq_slave)?;
    }
    set(0x08, &int08)?;
    set(0x10, &int10)?;
    set(0x11, &int11)?;
    set(0x12, &int12)?;
    set(0x15, &int15)?;
    set(0x16, &int16)?;
    set(0x1a, &int1a)?;

    let mut bda_bytes = vec![0u8; 0x100];
    let mut put16 = |o: usize, v: u16| bda_bytes[o..o + 2].copy_from_slice(&v.to_le_bytes());
    put16(bda::COM1, COM1);
    put16(bda::COM2, 0x2f8);
    put16(bda::EBDA, EBDA_SEGMENT);
    // Two serial ports (bits 11:9), 80x25 colour (bits 5:4 = 10), no floppy.
    put16(bda::EQUIPMENT, (2 << 9) | (2 << 4));
    put16(bda::BASE_MEMORY_KB, (e820.ram_below(0xa_0000) >> 10).min(639) as u16);
    put16(bda::COLUMNS, 80);
    bda_bytes[bda::VIDEO_MODE] = 3;
    bda_bytes[bda::ROWS_MINUS_1] = 24;
    Ok(BuiltinBios {
        ivt,
        bda: bda_bytes,
        rom: r.inner.code_buffer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e820::E820Type;

    #[test]
    fn vectors_point_into_the_rom() {
        let mut m = E820Map::new();
        m.add(0, 0x9fc00, E820Type::Ram);
        m.add(0x10_0000, 127 << 20, E820Type::Ram);
        let b = build(&m).unwrap();
        assert!(b.rom.len() < 0x1000, "{} bytes", b.rom.len());
        let vec = |v: usize| {
            let o = u16::from_le_bytes([b.ivt[4 * v], b.ivt[4 * v + 1]]) as u64;
            let s = u16::from_le_bytes([b.ivt[4 * v + 2], b.ivt[4 * v + 3]]) as u64;
            (s << 4) + o
        };
        for v in 0..256 {
            let a = vec(v);
            assert!(a >= ROM_BASE && a < ROM_BASE + b.rom.len() as u64, "vector {v:#x}");
        }
        // The default handler is a bare IRET (0xCF).
        assert_eq!(b.rom[(vec(0x30) - ROM_BASE) as usize], 0xcf);
        assert_ne!(vec(0x15), vec(0x30));
        // The E820 table is at the start of the ROM.
        let t: Vec<u8> = m.entries().iter().flat_map(|e| e.to_bytes()).collect();
        assert!(b.rom.starts_with(&t));
        assert_eq!(u16::from_le_bytes([b.bda[0x13], b.bda[0x14]]), 639);
        assert_eq!(u16::from_le_bytes([b.bda[0], b.bda[1]]), 0x3f8);
    }
}
