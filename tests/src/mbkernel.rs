//! Multiboot test kernels assembled with iced-x86 into ELF32 images, shared
//! by the boot tests and the command-line tests.

use iced_x86::code_asm::*;

pub const LOAD: u32 = 0x10_0000;
pub const DEBUGCON: u16 = 0xe9;
pub const EXIT_PORT: u16 = 0xf4;

/// ELF32 with one PT_LOAD at LOAD holding the Multiboot header and `code`.
pub fn elf(code: &[u8], entry: u32) -> Vec<u8> {
    let hdr_flags: u32 = 0b11; // page-align modules, want memory info
    let mut body = Vec::new();
    for v in [0x1bad_b002u32, hdr_flags, 0u32.wrapping_sub(0x1bad_b002).wrapping_sub(hdr_flags)] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.resize(0x40, 0);
    body.extend_from_slice(code);
    let mut f = vec![0u8; 0x1000];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 1;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&3u16.to_le_bytes());
    f[24..28].copy_from_slice(&entry.to_le_bytes());
    f[28..32].copy_from_slice(&52u32.to_le_bytes());
    f[42..44].copy_from_slice(&32u16.to_le_bytes());
    f[44..46].copy_from_slice(&1u16.to_le_bytes());
    let p = 52;
    f[p..p + 4].copy_from_slice(&1u32.to_le_bytes());
    f[p + 4..p + 8].copy_from_slice(&0x1000u32.to_le_bytes());
    f[p + 12..p + 16].copy_from_slice(&LOAD.to_le_bytes());
    f[p + 16..p + 20].copy_from_slice(&(body.len() as u32).to_le_bytes());
    f[p + 20..p + 24].copy_from_slice(&(body.len() as u32 + 0x1000).to_le_bytes());
    f.extend_from_slice(&body);
    f
}

/// The kernel: check EAX, print the command line from the info structure,
/// add up the module's bytes and exit with (sum & 0x7f).
pub fn kernel() -> Vec<u8> {
    let entry = LOAD + 0x40;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut bad = a.create_label();
    let mut print = a.create_label();
    let mut printed = a.create_label();
    let mut sum = a.create_label();
    let mut summed = a.create_label();
    a.cmp(eax, 0x2bad_b002u32).unwrap();
    a.jne(bad).unwrap();
    // Command line: info->cmdline at +16 (flag bit 2).
    a.mov(esi, dword_ptr(ebx + 16)).unwrap();
    a.mov(dx, DEBUGCON as u32).unwrap();
    a.set_label(&mut print).unwrap();
    a.lodsb().unwrap();
    a.test(al, al).unwrap();
    a.jz(printed).unwrap();
    a.out(dx, al).unwrap();
    a.jmp(print).unwrap();
    a.set_label(&mut printed).unwrap();
    // Module 0: mods_addr at +24 -> {start, end}.
    a.mov(edi, dword_ptr(ebx + 24)).unwrap();
    a.mov(esi, dword_ptr(edi)).unwrap();
    a.mov(ecx, dword_ptr(edi + 4)).unwrap();
    a.xor(eax, eax).unwrap();
    a.set_label(&mut sum).unwrap();
    a.cmp(esi, ecx).unwrap();
    a.jae(summed).unwrap();
    a.movzx(edx, byte_ptr(esi)).unwrap();
    a.add(eax, edx).unwrap();
    a.inc(esi).unwrap();
    a.jmp(sum).unwrap();
    a.set_label(&mut summed).unwrap();
    a.and(eax, 0x7f).unwrap();
    a.mov(dx, EXIT_PORT as u32).unwrap();
    a.out(dx, eax).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut bad).unwrap();
    a.mov(dx, EXIT_PORT as u32).unwrap();
    a.mov(eax, 0x7fu32).unwrap();
    a.out(dx, eax).unwrap();
    a.hlt().unwrap();
    elf(&a.assemble(entry as u64).unwrap(), entry)
}

/// A timer-driven kernel: remaps the PIC, programs PIT channel 0 at ~1 kHz,
/// counts 50 IRQ0s with HLT in between, and prints the PIT's current count
/// latched in each interrupt handler (a value that depends on when the
/// interrupt was taken). In deterministic mode two runs must print the same
/// bytes and retire the same number of instructions.
pub fn timer_kernel() -> Vec<u8> {
    let entry = LOAD + 0x40;
    let idt = 0x20_0000u32;
    let ticks = 0x20_1000u32;
    let handler_at = entry + 0x400;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut wait = a.create_label();
    // Multiboot leaves ESP undefined.
    a.mov(esp, 0x30_0000u32).unwrap();
    // IDT: vector 0x20 -> handler (an interrupt gate, CS 0x10).
    a.mov(edi, idt).unwrap();
    a.mov(eax, handler_at).unwrap();
    a.mov(word_ptr(edi + 0x20 * 8), ax).unwrap();
    a.mov(word_ptr(edi + 0x20 * 8 + 2), 0x10u32).unwrap();
    a.mov(word_ptr(edi + 0x20 * 8 + 4), 0x8e00u32).unwrap();
    a.shr(eax, 16).unwrap();
    a.mov(word_ptr(edi + 0x20 * 8 + 6), ax).unwrap();
    a.sub(esp, 8).unwrap();
    a.mov(word_ptr(esp), 0x7ffu32).unwrap();
    a.mov(dword_ptr(esp + 2), idt).unwrap();
    a.lidt(ptr(esp)).unwrap();
    a.add(esp, 8).unwrap();
    // PIC: vectors 0x20/0x28, only IRQ0 unmasked.
    for (port, v) in [
        (0x20u32, 0x11u32),
        (0x21, 0x20),
        (0x21, 4),
        (0x21, 1),
        (0xa0, 0x11),
        (0xa1, 0x28),
        (0xa1, 2),
        (0xa1, 1),
        (0x21, 0xfe),
        (0xa1, 0xff),
    ] {
        a.mov(al, v).unwrap();
        a.out(port, al).unwrap();
    }
    // PIT channel 0, mode 2, count 1193.
    a.mov(al, 0x34u32).unwrap();
    a.out(0x43u32, al).unwrap();
    a.mov(al, 1193u32 & 0xff).unwrap();
    a.out(0x40u32, al).unwrap();
    a.mov(al, 1193u32 >> 8).unwrap();
    a.out(0x40u32, al).unwrap();
    a.mov(dword_ptr(ticks), 0u32).unwrap();
    a.sti().unwrap();
    a.set_label(&mut wait).unwrap();
    a.hlt().unwrap();
    a.cmp(dword_ptr(ticks), 50u32).unwrap();
    a.jb(wait).unwrap();
    a.mov(dx, EXIT_PORT as u32).unwrap();
    a.mov(eax, 0x11u32).unwrap();
    a.out(dx, eax).unwrap();
    a.hlt().unwrap();
    let mut code = a.assemble(entry as u64).unwrap();
    assert!(code.len() <= 0x400);
    code.resize(0x400, 0xcc);
    // IRQ0: latch and print channel 0's count (low, high), EOI, count.
    let mut a = CodeAssembler::new(32).unwrap();
    a.push(eax).unwrap();
    a.push(edx).unwrap();
    a.mov(al, 0u32).unwrap();
    a.out(0x43u32, al).unwrap();
    a.mov(dx, DEBUGCON as u32).unwrap();
    a.in_(al, 0x40u32).unwrap();
    a.out(dx, al).unwrap();
    a.in_(al, 0x40u32).unwrap();
    a.out(dx, al).unwrap();
    a.mov(al, 0x20u32).unwrap();
    a.out(0x20u32, al).unwrap();
    a.inc(dword_ptr(ticks)).unwrap();
    a.pop(edx).unwrap();
    a.pop(eax).unwrap();
    a.iretd().unwrap();
    code.extend(a.assemble(handler_at as u64).unwrap());
    elf(&code, entry)
}
