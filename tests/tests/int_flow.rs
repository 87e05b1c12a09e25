//! Guest programs for the integer families of branch int-flow: stack, mov,
//! string, far transfers (real mode), flag operations and misc, in 16-, 32-
//! and 64-bit modes (`flat_cpu`). Faults are checked by calling the
//! instruction's handler directly and looking at the `Exception` it returns.

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions};
use kagami_cpu::dispatch::handler_for;
use kagami_cpu::state::{flags, CS, DS, ES, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP, SS};
use kagami_cpu::{Exception, Exit};
use kagami_tests::guest::{flat_cpu, Guest, FLAT_CODE};

/// Physical address of the data area; in 16-bit mode DS = ES = 0x2000.
const DATA: u64 = 0x2_0000;

fn asm(bits: u32, ip: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(bits).unwrap();
    f(&mut a).unwrap();
    a.assemble(ip).unwrap()
}

/// A flat guest with the program loaded at `FLAT_CODE` (CS = 0x1000, IP = 0
/// in real mode) and, in real mode, DS = ES = 0x2000.
fn guest(bits: u32, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> (Guest, u64) {
    let mut g = flat_cpu(bits);
    let ip = if bits == 16 {
        g.cpu.load_real_seg(CS, (FLAT_CODE >> 4) as u16);
        g.cpu.load_real_seg(DS, (DATA >> 4) as u16);
        g.cpu.load_real_seg(ES, (DATA >> 4) as u16);
        0
    } else {
        FLAT_CODE
    };
    let code = asm(bits, ip, f);
    g.load(FLAT_CODE, &code);
    (g, ip)
}

/// Run a program that ends in HLT.
fn run(bits: u32, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Guest {
    let (mut g, ip) = guest(bits, |a| {
        f(a)?;
        a.hlt()
    });
    assert_eq!(
        g.run_at(ip, 1_000_000),
        Exit::Halted,
        "program did not reach HLT (rip {:#x})",
        g.cpu.s.rip
    );
    g
}

/// Execute exactly the first instruction of `f` through its handler.
fn exec_one(g: &mut Guest, bits: u32, ip: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Result<(), Exception> {
    let code = asm(bits, ip, f);
    g.load(g.cpu.s.segs[CS].base + ip, &code);
    let insn = Decoder::with_ip(bits, &code, ip, DecoderOptions::NONE).decode();
    let h = handler_for(&insn, g.cpu.model);
    g.cpu.s.rip = insn.next_ip();
    h(&mut g.cpu, &mut g.bus, &insn)
}

fn read(g: &Guest, addr: u64, n: usize) -> u64 {
    let mut b = [0u8; 8];
    g.cpu.mem.read(addr, &mut b[..n]);
    u64::from_le_bytes(b)
}

fn data_off(bits: u32) -> u32 {
    if bits == 16 {
        0
    } else {
        DATA as u32
    }
}

#[test]
fn push_sp_pushes_the_old_value() {
    let g = run(16, |a| {
        a.mov(ax, sp)?;
        a.push(sp)?;
        a.pop(bx)
    });
    assert_eq!(g.cpu.s.gpr[RBX] & 0xffff, g.cpu.s.gpr[RAX] & 0xffff);
    let g = run(32, |a| {
        a.mov(eax, esp)?;
        a.push(esp)?;
        a.pop(ebx)
    });
    assert_eq!(g.cpu.s.gpr[RBX], g.cpu.s.gpr[RAX]);
    let g = run(64, |a| {
        a.mov(rax, rsp)?;
        a.push(rsp)?;
        a.pop(rbx)
    });
    assert_eq!(g.cpu.s.gpr[RBX], g.cpu.s.gpr[RAX]);
}

#[test]
fn pop_to_memory_addresses_with_the_incremented_sp() {
    // pop [esp]: the value lands in the slot above the popped one.
    let g = run(32, |a| {
        a.push(0x11)?;
        a.push(0x22)?;
        a.pop(dword_ptr(esp))?;
        a.pop(eax)
    });
    assert_eq!(g.cpu.s.gpr[RAX], 0x22);
    assert_eq!(g.cpu.s.gpr[RSP], kagami_tests::guest::FLAT_STACK);
    let g = run(64, |a| {
        a.push(0x33)?;
        a.push(-5)?;
        a.pop(qword_ptr(rsp))?;
        a.pop(rax)
    });
    assert_eq!(g.cpu.s.gpr[RAX] as i64, -5);
}

#[test]
fn push_pop_immediates_memory_and_segments() {
    let g = run(16, |a| {
        a.mov(word_ptr(0x10), 0xbeefu32)?;
        a.push(word_ptr(0x10))?;
        a.push(0x7fu32)?; // push imm8 sign-extended to 16 bits
        a.push(ds)?;
        a.pop(es)?;
        a.pop(cx)?;
        a.pop(dx)
    });
    assert_eq!(g.cpu.s.gpr[RCX] & 0xffff, 0x7f);
    assert_eq!(g.cpu.s.gpr[RDX] & 0xffff, 0xbeef);
    assert_eq!(g.cpu.s.segs[ES].selector, (DATA >> 4) as u16);
    let g = run(64, |a| {
        a.mov(rax, 0x1122_3344_5566_7788u64)?;
        a.mov(qword_ptr(DATA as i32), rax)?;
        a.push(qword_ptr(DATA as i32))?;
        a.push(-2)?;
        a.pop(rcx)?;
        a.pop(rdx)
    });
    assert_eq!(g.cpu.s.gpr[RCX] as i64, -2);
    assert_eq!(g.cpu.s.gpr[RDX], 0x1122_3344_5566_7788);
}

#[test]
fn pusha_popa_skip_sp() {
    for bits in [16u32, 32] {
        let g = run(bits, |a| {
            if bits == 16 {
                a.mov(ax, 1u32)?;
                a.mov(cx, 2u32)?;
                a.mov(bp, 6u32)?;
                a.mov(di, 8u32)?;
                a.pusha()?;
                a.xor(ax, ax)?;
                a.xor(cx, cx)?;
                a.xor(bp, bp)?;
                a.xor(di, di)?;
                a.mov(bx, sp)?;
                a.mov(word_ptr(bx + 6), 0x5555u32)?; // the stored SP slot is ignored
                a.popa()
            } else {
                a.mov(eax, 1u32)?;
                a.mov(ecx, 2u32)?;
                a.mov(ebp, 6u32)?;
                a.mov(edi, 8u32)?;
                a.pushad()?;
                a.xor(eax, eax)?;
                a.xor(ecx, ecx)?;
                a.xor(ebp, ebp)?;
                a.xor(edi, edi)?;
                a.mov(dword_ptr(esp + 12), 0x5555u32)?;
                a.popad()
            }
        });
        let s = &g.cpu.s;
        assert_eq!(
            [s.gpr[RAX], s.gpr[RCX], s.gpr[RBP], s.gpr[RDI]].map(|v| v & 0xffff),
            [1, 2, 6, 8],
            "{bits}-bit"
        );
        let (top, mask) = if bits == 16 {
            (0, 0xffff)
        } else {
            (kagami_tests::guest::FLAT_STACK, u64::MAX)
        };
        assert_eq!(s.gpr[RSP] & mask, top, "{bits}-bit SP");
    }
}

#[test]
fn pushf_popf_privilege_rules() {
    // CPL 0: IOPL and IF can be set; VM never; RF is cleared.
    let g = run(32, |a| {
        a.push(0x0003_3ad5u32)?; // VM|RF|IOPL=3|OF|DF|IF|TF.. minus TF
        a.and(dword_ptr(esp), !0x100u32 as i32)?;
        a.popfd()?;
        a.pushfd()?;
        a.pop(eax)
    });
    let f = g.cpu.s.gpr[RAX];
    assert_eq!(f & (flags::IOPL | flags::IF | flags::OF), flags::IOPL | flags::IF | flags::OF);
    assert_eq!(f & (flags::VM | flags::RF | flags::TF), 0);
    // 16-bit POPF in 64-bit mode keeps the upper half.
    let g = run(64, |a| {
        a.push(0x0801)?; // OF | CF
        a.popfq()?;
        a.pushfq()?;
        a.pop(rax)
    });
    assert_eq!(g.cpu.s.gpr[RAX] & 0xfff, 0x803);
}

#[test]
fn enter_nested_frames_and_leave() {
    let g = run(32, |a| {
        a.mov(ebp, 0x7_0000u32)?;
        a.mov(dword_ptr(0x6_fffc), 0xaaaau32)?; // the outer frame's display entry
        a.enter(16u32, 2u32)?;
        a.mov(esi, esp)?;
        a.mov(edi, ebp)?;
        a.mov(eax, dword_ptr(ebp - 4))?; // copied display entry
        a.mov(ecx, dword_ptr(ebp - 8))?; // this frame's pointer
        a.leave()
    });
    let s = &g.cpu.s;
    let top = kagami_tests::guest::FLAT_STACK;
    assert_eq!(s.gpr[RDI], top - 4, "EBP = frame pointer");
    assert_eq!(s.gpr[RSI], top - 4 - 8 - 16, "ESP = frame - display - locals");
    assert_eq!(s.gpr[RAX], 0xaaaa);
    assert_eq!(s.gpr[RCX], top - 4);
    assert_eq!(s.gpr[RBP], 0x7_0000, "LEAVE restores EBP");
    assert_eq!(s.gpr[RSP], top, "LEAVE restores ESP");
}

#[test]
fn exchange_and_compare_exchange() {
    let g = run(64, |a| {
        a.mov(rax, 10u64)?;
        a.mov(rbx, 32u64)?;
        a.xadd(rax, rbx)?; // rax = 42, rbx = 10
        a.mov(qword_ptr(DATA as i32), 7)?;
        a.mov(rcx, 99u64)?;
        a.mov(rdx, rax)?;
        a.mov(rax, 7u64)?;
        a.cmpxchg(qword_ptr(DATA as i32), rcx)?; // equal: [DATA] = 99
        a.mov(rax, 5u64)?;
        a.cmpxchg(qword_ptr(DATA as i32), rcx)?; // not equal: rax = 99
        a.mov(rsi, rax)?;
        a.xchg(dword_ptr(DATA as i32 + 8), edx)
    });
    let s = &g.cpu.s;
    assert_eq!(s.gpr[RBX], 10);
    assert_eq!(s.gpr[RSI], 99);
    assert_eq!(read(&g, DATA, 8), 99);
    assert_eq!(read(&g, DATA + 8, 4), 42);
    assert_eq!(s.gpr[RDX], 0);
    assert!(!s.zf());

    let g = run(64, |a| {
        a.mov(qword_ptr(DATA as i32 + 16), 1)?;
        a.mov(qword_ptr(DATA as i32 + 24), 2)?;
        a.mov(rax, 1u64)?;
        a.mov(rdx, 2u64)?;
        a.mov(rbx, 3u64)?;
        a.mov(rcx, 4u64)?;
        a.cmpxchg16b(xmmword_ptr(DATA as i32 + 16))?;
        a.mov(edx, 0u32)?;
        a.mov(eax, 0u32)?;
        a.cmpxchg8b(qword_ptr(DATA as i32 + 16))?; // not equal: EDX:EAX = [m]
        a.xlatb()
    });
    assert_eq!([read(&g, DATA + 16, 8), read(&g, DATA + 24, 8)], [3, 4]);
    assert_eq!(g.cpu.s.gpr[RDX], 0);
    assert!(!g.cpu.s.zf());

    let mut g = flat_cpu(64);
    let r = exec_one(&mut g, 64, FLAT_CODE, |a| a.cmpxchg16b(xmmword_ptr(DATA as i32 + 8)));
    assert_eq!(r, Err(Exception::GP0), "CMPXCHG16B needs 16-byte alignment");
}

#[test]
fn extensions_lea_xlat_and_flags_to_ah() {
    let g = run(64, |a| {
        a.mov(ecx, 0xffff_ff80u32)?;
        a.movsx(rax, cl)?;
        a.movzx(ebx, cx)?;
        a.movsxd(rdx, ecx)?;
        a.lea(rsi, qword_ptr(rax + rbx * 2 + 8))?;
        a.mov(byte_ptr(DATA as i32 + 0x85), 0x5a)?;
        a.mov(rbx, DATA)?;
        a.mov(edi, 0x85u32)?;
        a.xchg(eax, edi)?;
        a.xlatb()?;
        a.mov(edi, eax)?;
        a.mov(eax, 0x8000u32)?;
        a.cwde()?;
        a.cdqe()?;
        a.cqo()
    });
    let s = &g.cpu.s;
    assert_eq!(s.gpr[RBX], DATA);
    assert_eq!(s.gpr[RDX], u64::MAX, "CQO of a negative RAX");
    assert_eq!(s.gpr[RAX] as i64, -0x8000);
    assert_eq!(s.gpr[RDI] & 0xff, 0x5a);
    assert_eq!(s.gpr[RSI], (-128i64 + 2 * 0xff80 + 8) as u64);

    let g = run(16, |a| {
        a.mov(al, 0x80u32)?;
        a.cbw()?;
        a.cwd()?;
        a.mov(bx, ax)?;
        a.stc()?;
        a.lahf()?;
        a.mov(cl, ah)?;
        a.mov(ah, 0xd5u32)?;
        a.sahf()?;
        a.lea(si, word_ptr(bx + di + 0x10))
    });
    let s = &g.cpu.s;
    assert_eq!(s.gpr[RBX] & 0xffff, 0xff80);
    assert_eq!(s.gpr[RDX] & 0xffff, 0xffff);
    assert_eq!(s.gpr[RCX] & 0x01, 1, "LAHF copies CF");
    assert_eq!(s.gpr[RCX] & 0x02, 2, "LAHF bit 1 is set");
    assert_eq!(s.flags() & 0xd5, 0xd5, "SAHF loads SF ZF AF PF CF");
    assert_eq!(s.gpr[RSI] & 0xffff, 0xff90);
}

#[test]
fn segment_moves_and_far_pointer_loads() {
    let g = run(16, |a| {
        a.mov(word_ptr(0x20), 0x1234u32)?;
        a.mov(word_ptr(0x22), 0x3000u32)?;
        a.les(di, dword_ptr(0x20))?;
        a.mov(ax, es)?;
        a.mov(bx, 0x4000u32)?;
        a.mov(ss, bx)?;
        a.mov(word_ptr(0x30), ss)
    });
    let s = &g.cpu.s;
    assert_eq!(s.gpr[RDI] & 0xffff, 0x1234);
    assert_eq!(s.gpr[RAX] & 0xffff, 0x3000);
    assert_eq!(s.segs[ES].base, 0x3_0000);
    assert_eq!(s.segs[SS].base, 0x4_0000);
    assert_eq!(read(&g, DATA + 0x30, 2), 0x4000);

    // MOV SS opens the interrupt shadow; MOV CS is #UD.
    let mut g = flat_cpu(16);
    exec_one(&mut g, 16, 0x100, |a| a.mov(ss, ax)).unwrap();
    assert_eq!(g.cpu.s.irq_shadow, 1);
    let mut g = flat_cpu(16);
    let r = exec_one(&mut g, 16, 0x100, |a| a.db(&[0x8e, 0xc8]));
    assert_eq!(r, Err(Exception::InvalidOpcode));
}

#[test]
fn string_instructions_all_modes() {
    for bits in [16u32, 32, 64] {
        let d = data_off(bits);
        let g = run(bits, |a| {
            // "abcdefgh" at d, copy it to d+0x100, compare, scan, fill.
            a.mov(dword_ptr(d), 0x6463_6261u32)?;
            a.mov(dword_ptr(d + 4), 0x6867_6665u32)?;
            match bits {
                16 => {
                    a.mov(si, d)?;
                    a.mov(di, d + 0x100)?;
                    a.mov(cx, 8u32)?;
                }
                32 => {
                    a.mov(esi, d)?;
                    a.mov(edi, d + 0x100)?;
                    a.mov(ecx, 8u32)?;
                }
                _ => {
                    a.mov(rsi, d as u64)?;
                    a.mov(rdi, d as u64 + 0x100)?;
                    a.mov(rcx, 8u64)?;
                }
            }
            a.cld()?;
            a.rep().movsb()?;
            a.mov(byte_ptr(d + 0x105), 0x7au32)?; // 'z' where 'f' was
            match bits {
                16 => {
                    a.mov(si, d)?;
                    a.mov(di, d + 0x100)?;
                    a.mov(cx, 8u32)?;
                }
                32 => {
                    a.mov(esi, d)?;
                    a.mov(edi, d + 0x100)?;
                    a.mov(ecx, 8u32)?;
                }
                _ => {
                    a.mov(rsi, d as u64)?;
                    a.mov(rdi, d as u64 + 0x100)?;
                    a.mov(rcx, 8u64)?;
                }
            }
            a.repe().cmpsb()?; // stops after the mismatch at index 5
            a.xor(edx, edx)?;
            a.mov(dl, cl)?; // remaining count: 2
            match bits {
                16 => {
                    a.mov(di, d)?;
                    a.mov(cx, 8u32)?;
                }
                32 => {
                    a.mov(edi, d)?;
                    a.mov(ecx, 8u32)?;
                }
                _ => {
                    a.mov(rdi, d as u64)?;
                    a.mov(rcx, 8u64)?;
                }
            }
            a.mov(al, 0x64u32)?; // 'd'
            a.repne().scasb()?; // found at index 3: 4 compared, 4 left
            a.mov(bl, cl)?;
            // Fill backwards: STD, REP STOSW of 3 words ending at d+0x20.
            match bits {
                16 => {
                    a.mov(di, d + 0x20)?;
                    a.mov(cx, 3u32)?;
                }
                32 => {
                    a.mov(edi, d + 0x20)?;
                    a.mov(ecx, 3u32)?;
                }
                _ => {
                    a.mov(rdi, d as u64 + 0x20)?;
                    a.mov(rcx, 3u64)?;
                }
            }
            a.std()?;
            a.mov(ax, 0x4141u32)?;
            a.rep().stosw()?;
            a.cld()?;
            match bits {
                16 => a.mov(si, d + 0x100)?,
                32 => a.mov(esi, d + 0x100)?,
                _ => a.mov(rsi, d as u64 + 0x100)?,
            }
            a.lodsw()
        });
        let s = &g.cpu.s;
        assert_eq!(read(&g, DATA + 0x100, 5), 0x65_6463_6261, "{bits}: REP MOVSB");
        assert_eq!(s.gpr[RDX] & 0xff, 2, "{bits}: REPE CMPSB stops after the mismatch");
        assert_eq!(s.gpr[RBX] & 0xff, 4, "{bits}: REPNE SCASB stops after the match");
        assert_eq!(read(&g, DATA + 0x1c, 6), 0x4141_4141_4141, "{bits}: STD REP STOSW");
        assert_eq!(s.gpr[RAX] & 0xffff, 0x6261, "{bits}: LODSW");
        assert_eq!(
            s.gpr[RDI] & 0xffff,
            (data_off(bits) + 0x20 - 6) as u64 & 0xffff,
            "{bits}: DI after STD"
        );
    }
}

#[test]
fn rep_runs_in_bounded_chunks_and_resumes() {
    let mut g = flat_cpu(32);
    g.cpu.s.gpr[RCX] = 3000;
    g.cpu.s.gpr[RDI] = DATA;
    g.cpu.s.gpr[RAX] = 0x5a;
    exec_one(&mut g, 32, FLAT_CODE, |a| a.rep().stosb()).unwrap();
    assert_eq!(g.cpu.s.gpr[RCX], 3000 - 1024, "one chunk");
    assert_eq!(g.cpu.s.rip, FLAT_CODE, "RIP stays on the instruction");
    assert_eq!(g.cpu.s.gpr[RDI], DATA + 1024);
    let g = run(32, |a| {
        a.mov(edi, DATA as u32)?;
        a.mov(ecx, 3000u32)?;
        a.mov(al, 0x5au32)?;
        a.rep().stosb()
    });
    assert_eq!(g.cpu.s.gpr[RCX], 0);
    assert_eq!(read(&g, DATA + 2999, 2), 0x5a);

    // 32-bit addressing in 16-bit code (67h): ECX and EDI count, while a
    // 16-bit REP leaves the upper halves alone.
    let g = run(16, |a| {
        a.mov(edi, 0x100u32)?;
        a.mov(ecx, 4u32)?;
        a.mov(al, 0x33u32)?;
        a.db(&[0x67, 0xf3, 0xaa])?; // addr32 rep stosb
        a.mov(esi, 0x1234_0000u32)?;
        a.mov(ebx, 0x5678_0002u32)?;
        a.mov(ecx, ebx)?;
        a.rep().lodsb()
    });
    assert_eq!(g.cpu.s.gpr[RDI], 0x104);
    assert_eq!(read(&g, DATA + 0x100, 4), 0x3333_3333);
    assert_eq!(g.cpu.s.gpr[RCX], 0x5678_0000);
    assert_eq!(g.cpu.s.gpr[RSI], 0x1234_0002);
}

#[test]
fn string_fault_keeps_completed_iterations() {
    // Real mode: the word at ES:0xFFFF faults (#GP) after two words were stored.
    let mut g = flat_cpu(16);
    g.cpu.load_real_seg(ES, 0x3000);
    g.cpu.s.gpr[RDI] = 0xfffb;
    g.cpu.s.gpr[RCX] = 5;
    let r = exec_one(&mut g, 16, 0x100, |a| a.rep().stosw());
    assert_eq!(r, Err(Exception::GP0));
    assert_eq!(g.cpu.s.gpr[RDI], 0xffff);
    assert_eq!(g.cpu.s.gpr[RCX], 3);
}

#[test]
fn real_mode_far_transfers_and_software_interrupts() {
    // IVT: vector 0x80 -> 0x1000:0x0200, vector 5 (BOUND) -> 0x1000:0x0300.
    let (mut g, ip) = guest(16, |a| {
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(word_ptr(0x80 * 4), 0x200u32)?;
        a.mov(word_ptr(0x80 * 4 + 2), 0x1000u32)?;
        a.mov(word_ptr(5 * 4), 0x300u32)?;
        a.mov(word_ptr(5 * 4 + 2), 0x1000u32)?;
        a.mov(ax, 0x2000u32)?;
        a.mov(ds, ax)?;
        a.push(0x77u32)?; // argument RETF 2 releases
        a.call_far(0x1000u16, 0x100u32)?;
        a.int(0x80)?;
        a.mov(word_ptr(0), 0u32)?; // bounds [0, 4]
        a.mov(word_ptr(2), 4u32)?;
        a.mov(bx, 4u32)?;
        a.bound(bx, dword_ptr(0))?; // in range
        a.mov(bx, 5u32)?;
        a.bound(bx, dword_ptr(0))?; // #BR: handler returns past it
        a.hlt()
    });
    // Far routine at 0x1000:0x100, INT handler at 0x200, #BR handler at 0x300.
    let far = asm(16, 0x100, |a| {
        a.mov(cx, 0x1111u32)?;
        a.retf_1(2)
    });
    g.load(FLAT_CODE + 0x100, &far);
    let handler = asm(16, 0x200, |a| {
        a.mov(dx, 0x2222u32)?;
        a.iret()
    });
    g.load(FLAT_CODE + 0x200, &handler);
    // #BR pushes the BOUND's own address: skip the 4-byte instruction.
    let br = asm(16, 0x300, |a| {
        a.mov(si, 0x3333u32)?;
        a.mov(bp, sp)?;
        a.add(word_ptr(bp), 4u32)?;
        a.iret()
    });
    g.load(FLAT_CODE + 0x300, &br);
    assert_eq!(g.run_at(ip, 1000), Exit::Halted);
    let s = &g.cpu.s;
    assert_eq!(s.gpr[RCX] & 0xffff, 0x1111, "far call reached");
    assert_eq!(s.gpr[RDX] & 0xffff, 0x2222, "INT 80h handler ran");
    assert_eq!(s.gpr[RSI] & 0xffff, 0x3333, "BOUND raised #BR");
    assert_eq!(s.gpr[RSP] & 0xffff, 0, "RETF 2 released the argument; IRETs balanced");
    assert_eq!(s.segs[CS].selector, 0x1000);
}

#[test]
fn traps_and_invalid_opcodes() {
    let mut g = flat_cpu(16);
    assert_eq!(exec_one(&mut g, 16, 0, |a| a.int(0x21)), Err(Exception::SoftwareInterrupt(0x21)));
    assert_eq!(exec_one(&mut g, 16, 0, |a| a.int3()), Err(Exception::Breakpoint));
    g.cpu.s.set_flag_bits(flags::OF, 0);
    assert_eq!(exec_one(&mut g, 16, 0, |a| a.into()), Ok(()));
    g.cpu.s.set_flag_bits(flags::OF, flags::OF);
    assert_eq!(exec_one(&mut g, 16, 0, |a| a.into()), Err(Exception::Overflow));
    assert_eq!(exec_one(&mut g, 16, 0, |a| a.ud2()), Err(Exception::InvalidOpcode));
    let mut g = flat_cpu(64);
    assert_eq!(
        exec_one(&mut g, 64, FLAT_CODE, |a| a.ud1(eax, dword_ptr(rax))),
        Err(Exception::InvalidOpcode)
    );
    assert_eq!(exec_one(&mut g, 64, FLAT_CODE, |a| a.clflush(byte_ptr(DATA))), Ok(()));
    g.cpu.s.gpr[RBX] = 0x7fff_0000_0000;
    assert_eq!(
        exec_one(&mut g, 64, FLAT_CODE, |a| a.prefetchnta(byte_ptr(rbx))),
        Ok(()),
        "prefetch of unmapped memory"
    );
    // A non-canonical CLFLUSH address faults.
    g.cpu.s.gpr[RAX] = 0x8000_0000_0000;
    assert_eq!(exec_one(&mut g, 64, FLAT_CODE, |a| a.clflush(byte_ptr(rax))), Err(Exception::GP0));
    assert_eq!(exec_one(&mut g, 64, FLAT_CODE, |a| a.mfence()), Ok(()));
}

#[test]
fn flag_operations() {
    let g = run(32, |a| {
        a.stc()?;
        a.cmc()?;
        a.cmc()?; // CF = 1
        a.std()?;
        a.cli()?;
        a.pushfd()?;
        a.pop(eax)?;
        a.clc()?;
        a.cld()?;
        a.pushfd()?;
        a.pop(ebx)
    });
    let s = &g.cpu.s;
    assert_eq!(s.gpr[RAX] & (flags::CF | flags::DF | flags::IF), flags::CF | flags::DF);
    assert_eq!(s.gpr[RBX] & (flags::CF | flags::DF), 0);

    // STI opens the one-instruction shadow only when IF was clear.
    let mut g = flat_cpu(32);
    exec_one(&mut g, 32, FLAT_CODE, |a| a.sti()).unwrap();
    assert_eq!(g.cpu.s.irq_shadow, 1);
    g.cpu.s.irq_shadow = 0;
    exec_one(&mut g, 32, FLAT_CODE, |a| a.sti()).unwrap();
    assert_eq!(g.cpu.s.irq_shadow, 0);
    // CPL 3 with IOPL 0: CLI faults.
    g.cpu.s.cpl = 3;
    assert_eq!(exec_one(&mut g, 32, FLAT_CODE, |a| a.cli()), Err(Exception::GP0));
}

#[test]
fn near_branches_wrap_and_mask() {
    // 16-bit: an indirect JMP through a register takes only 16 bits.
    let mut g = flat_cpu(16);
    g.cpu.s.gpr[RAX] = 0x1_0234;
    exec_one(&mut g, 16, 0x100, |a| a.jmp(ax)).unwrap();
    assert_eq!(g.cpu.s.rip, 0x234);
    // CALL through memory in 64-bit mode pushes 8 bytes.
    let mut g = flat_cpu(64);
    g.load(DATA, &0x1234_5678u64.to_le_bytes());
    exec_one(&mut g, 64, FLAT_CODE, |a| a.call(qword_ptr(DATA))).unwrap();
    assert_eq!(g.cpu.s.rip, 0x1234_5678);
    assert_eq!(g.cpu.s.gpr[RSP], kagami_tests::guest::FLAT_STACK - 8);
    // JECXZ tests ECX, not CX.
    let mut g = flat_cpu(32);
    g.cpu.s.gpr[RCX] = 0x1_0000;
    let before = FLAT_CODE;
    exec_one(&mut g, 32, before, |a| {
        let mut l = a.create_label();
        a.jecxz(l)?;
        a.nop()?;
        a.set_label(&mut l)?;
        a.nop()
    })
    .unwrap();
    assert_eq!(g.cpu.s.rip, before + 2, "not taken");
    let _ = RBP;
}

#[test]
fn virtual_8086_interrupt_flag_rules() {
    use kagami_cpu::state::{cr4, Mode};
    let mut g = flat_cpu(32);
    g.cpu.s.rflags |= flags::VM | flags::IF | flags::VIF;
    g.cpu.update_mode();
    assert_eq!(g.cpu.s.mode, Mode::V86);
    g.cpu.load_real_seg(SS, 0x7000);
    // IOPL 0, no VME: CLI, POPF and INT n fault.
    assert_eq!(exec_one(&mut g, 16, 0x100, |a| a.cli()), Err(Exception::GP0));
    assert_eq!(exec_one(&mut g, 16, 0x100, |a| a.popf()), Err(Exception::GP0));
    assert_eq!(exec_one(&mut g, 16, 0x100, |a| a.int(0x10)), Err(Exception::GP0));
    // VME: CLI clears VIF, not IF; a 16-bit POPF moves the popped IF to VIF.
    g.cpu.s.cr4 |= cr4::VME;
    exec_one(&mut g, 16, 0x100, |a| a.cli()).unwrap();
    assert_eq!(g.cpu.s.rflags & (flags::IF | flags::VIF), flags::IF);
    let top = g.cpu.s.gpr[RSP];
    let ss_base = g.cpu.s.segs[SS].base;
    g.load(ss_base + (top & 0xffff), &0x0200u16.to_le_bytes());
    exec_one(&mut g, 16, 0x100, |a| a.popf()).unwrap();
    assert_eq!(g.cpu.s.rflags & (flags::IF | flags::VIF), flags::IF | flags::VIF);
    // IOPL 3: the real IF is used.
    g.cpu.s.rflags |= flags::IOPL;
    exec_one(&mut g, 16, 0x100, |a| a.cli()).unwrap();
    assert_eq!(g.cpu.s.rflags & flags::IF, 0);
}
