//! The built-in BIOS of a direct kernel boot, called from a real-mode
//! program the way a boot loader would: INT 10h teletype to the console,
//! INT 15h E820 (the same map the kernel gets), E801, A20, INT 12h, INT 16h
//! console input, INT 1Ah clock; the program reports through memory and
//! exits through isa-debug-exit.

use iced_x86::code_asm::*;
use kagami_cpu::state::{CS, DS, ES, SS};
use kagami_devices::SharedBuffer;
use kagami_machine::clock::ClockMode;
use kagami_machine::pc::{MachineKind, Pc, PcConfig, Stop};

const ORG: u64 = 0x7c00;
const OUT: u32 = 0x5f00;
const BUF: u32 = 0x6000;

fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    let r: Result<(), IcedError> = (|| {
        let mut next = a.create_label();
        let mut fail = a.create_label();
        let mut done = a.create_label();
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        for c in b"Hi\n" {
            a.mov(ax, 0x0e00u32 | *c as u32)?;
            a.int(0x10)?;
        }
        // E820 into BUF, count in [OUT].
        a.mov(di, BUF)?;
        a.xor(ebx, ebx)?;
        a.xor(bp, bp)?;
        a.set_label(&mut next)?;
        a.mov(eax, 0xe820u32)?;
        a.mov(edx, 0x534d_4150u32)?;
        a.mov(ecx, 20u32)?;
        a.int(0x15)?;
        a.jc(fail)?;
        a.cmp(eax, 0x534d_4150)?;
        a.jne(fail)?;
        a.inc(bp)?;
        a.add(di, 20u32)?;
        a.test(ebx, ebx)?;
        a.jnz(next)?;
        a.mov(word_ptr(OUT), bp)?;
        // INT 12h base memory, E801 sizes.
        a.int(0x12)?;
        a.mov(word_ptr(OUT + 2), ax)?;
        a.mov(ax, 0xe801u32)?;
        a.int(0x15)?;
        a.jc(fail)?;
        a.mov(word_ptr(OUT + 4), ax)?;
        a.mov(word_ptr(OUT + 6), bx)?;
        // A20 on, query.
        a.mov(ax, 0x2401u32)?;
        a.int(0x15)?;
        a.jc(fail)?;
        a.mov(ax, 0x2402u32)?;
        a.int(0x15)?;
        a.mov(byte_ptr(OUT + 8), al)?;
        // An unknown INT 15h function sets CF.
        a.mov(ah, 0xc7)?;
        a.int(0x15)?;
        a.setc(byte_ptr(OUT + 9))?;
        // INT 16h: check (ZF clear, key stays), then read it.
        a.mov(ah, 0x01)?;
        a.int(0x16)?;
        a.setz(byte_ptr(OUT + 10))?;
        a.mov(byte_ptr(OUT + 11), al)?;
        a.mov(ah, 0x00)?;
        a.int(0x16)?;
        a.mov(byte_ptr(OUT + 12), al)?;
        a.mov(ah, 0x01)?;
        a.int(0x16)?;
        a.setz(byte_ptr(OUT + 13))?;
        // INT 1Ah: date (century, year).
        a.mov(ah, 0x04)?;
        a.int(0x1a)?;
        a.jc(fail)?;
        a.mov(word_ptr(OUT + 14), cx)?;
        a.mov(al, 0)?;
        a.jmp(done)?;
        a.set_label(&mut fail)?;
        a.mov(al, 0x7f)?;
        a.set_label(&mut done)?;
        a.out(0xf4, al)?;
        a.hlt()
    })();
    r.unwrap();
    a.assemble(ORG).unwrap()
}

#[test]
fn real_mode_program_uses_the_builtin_bios() {
    for kind in [MachineKind::Pc, MachineKind::Q35] {
        let out = SharedBuffer::new();
        let mut pc = Pc::new(PcConfig {
            kind,
            ram_bytes: 64 << 20,
            kernel: Some(kagami_tests::mbkernel::kernel()),
            kernel_path: "mb.elf".into(),
            initrd: None,
            append: String::new(),
            serial: vec![Some(out.sink()), None],
            debug_exit: Some((0xf4, 4)),
            debugcon: None,
            clock: ClockMode::Instructions { shift: 3 },
            no_reboot: true,
            // 2023-11-14 22:13:20 UTC
            rtc_start: 1_700_000_000,
        })
        .unwrap();
        // Start the program in real mode at 0000:7C00 instead of the kernel.
        pc.cpu.mem.write(ORG, &program());
        pc.cpu.reset();
        pc.cpu.s.segs[CS].selector = 0;
        pc.cpu.s.segs[CS].base = 0;
        for s in [DS, ES, SS] {
            pc.cpu.s.segs[s].selector = 0;
            pc.cpu.s.segs[s].base = 0;
        }
        pc.cpu.s.rip = ORG;
        pc.cpu.s.gpr[4] = 0x7000;
        pc.cpu.update_mode();
        pc.board.serial_input(0, b"k");
        let stop = pc.run(Some(1_000_000));
        assert_eq!(stop, Stop::Exit(1), "{kind:?}: the program failed (exit 0xff = a BIOS call failed)");
        assert_eq!(out.contents(), b"Hi\n");
        let mem = |a: u32, n: usize| {
            let mut b = vec![0u8; n];
            pc.cpu.mem.read(a as u64, &mut b);
            b
        };
        let u16at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let o = mem(OUT, 16);
        let count = u16at(&o, 0) as usize;
        // The kernel's map: base RAM, EBDA, BIOS area, RAM, ACPI tables,
        // and on q35 the reserved ECAM window.
        let q35 = kind == MachineKind::Q35;
        assert_eq!(count, if q35 { 6 } else { 5 }, "{kind:?}");
        let e = mem(BUF, 20 * count);
        assert_eq!(
            &e[0..20],
            &[&0u64.to_le_bytes()[..], &0x9fc00u64.to_le_bytes(), &1u32.to_le_bytes()].concat()[..]
        );
        let acpi = &e[20 * 4..];
        assert_eq!(u32::from_le_bytes(acpi[16..20].try_into().unwrap()), 3, "ACPI tables after RAM");
        if q35 {
            let ecam = &e[20 * 5..];
            assert_eq!(u64::from_le_bytes(ecam[0..8].try_into().unwrap()), 0xb000_0000, "ECAM base");
            assert_eq!(u32::from_le_bytes(ecam[16..20].try_into().unwrap()), 2, "ECAM reserved");
        }
        assert_eq!(u16at(&o, 2), 639, "INT 12h");
        assert_eq!(u16at(&o, 4), 15 << 10, "E801: 1-16 MiB in KiB");
        assert_eq!(
            u16at(&o, 6),
            (((64u32 << 20) - (16 << 20) - (64 << 10)) >> 16) as u16,
            "E801: 64 KiB blocks above 16 MiB"
        );
        assert_eq!(o[8], 1, "A20 on");
        assert_eq!(o[9], 1, "unknown function: CF");
        assert_eq!((o[10], o[11]), (0, b'k'), "INT 16h AH=01: key waiting");
        assert_eq!(o[12], b'k', "INT 16h AH=00");
        assert_eq!(o[13], 1, "no more keys");
        assert_eq!(u16at(&o, 14), 0x2023, "INT 1Ah AH=04: CH=century 20h, CL=year 23h (BCD)");
    }
}
