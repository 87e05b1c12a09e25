//! Random streams: instructions with random operands from one class, and a
//! random starting state (GPRs, arithmetic flags and DF, x87/MMX/SSE state,
//! data window). Everything comes from one `Rng`, so a seed reproduces it.

use super::classes::Class;
use super::layout::*;
use super::rng::Rng;
use super::state::{ArchState, Fx};
use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, Instruction, InstructionInfoFactory, OpAccess, OpCodeOperandKind as K, OpKind, Register,
    RflagsBits,
};

/// A generated test case.
#[derive(Clone, Debug)]
pub struct Stream {
    pub insns: Vec<Instruction>,
    /// The encoded stream, at `STREAM`.
    pub bytes: Vec<u8>,
    pub input: ArchState,
    pub data: Vec<u8>,
    /// RFLAGS bits (hardware positions) left undefined at the end.
    pub undefined_flags: u64,
    /// x87 condition-code bits of FSW (C0..C3) left undefined at the end.
    pub undefined_fsw: u16,
    /// `(undefined_flags, undefined_fsw)` before each instruction, for
    /// comparing the state at a fault.
    pub masks_before: Vec<(u64, u16)>,
}

const GPR8: [Register; 16] = [
    Register::AL,
    Register::CL,
    Register::DL,
    Register::AH,
    Register::CH,
    Register::DH,
    Register::BPL,
    Register::SIL,
    Register::DIL,
    Register::R8L,
    Register::R9L,
    Register::R10L,
    Register::R11L,
    Register::R12L,
    Register::R13L,
    Register::R14L,
];
/// GPR numbers operands may name: never RBX (the data pointer) or RSP.
const GPR_NUMS: [usize; 14] = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// In string streams RCX, RSI and RDI are reserved too.
const GPR_NUMS_STR: [usize; 11] = [0, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15];

/// The register `n` places after `base` in iced's numbering.
fn reg_at(base: Register, n: usize) -> Register {
    Register::try_from(base as usize + n).expect("register in range")
}

struct Ctx<'a> {
    rng: &'a mut Rng,
    nums: &'static [usize],
}

impl Ctx<'_> {
    fn gpr(&mut self, base: Register) -> Register {
        let n = *self.rng.pick(self.nums);
        if base == Register::AL {
            loop {
                let r = *self.rng.pick(&GPR8);
                let num = r.full_register().number();
                if self.nums.contains(&num) {
                    return r;
                }
            }
        }
        reg_at(base, n)
    }

    fn memory(&mut self, insn: &mut Instruction, n: u32) {
        insn.set_op_kind(n, OpKind::Memory);
        // Sometimes with a 67h prefix: [ebx+disp] reaches the same window,
        // which lies below 4 GiB.
        insn.set_memory_base(if self.rng.chance(15) { Register::EBX } else { Register::RBX });
        insn.set_memory_index(Register::None);
        insn.set_memory_index_scale(1);
        // Stay inside the data window whatever the access size (up to 512).
        let room = 512i64;
        let half = (DATA_SIZE / 2) as i64;
        let mut disp = -half + self.rng.below((2 * half - room) as u64) as i64;
        if self.rng.chance(80) {
            disp &= !15;
        }
        if self.rng.chance(10) {
            disp = self.rng.below(8) as i64 * 16 - 64;
        }
        if self.rng.chance(10) {
            // RIP-relative: iced takes the absolute target and encodes the
            // offset from the next instruction.
            insn.set_memory_base(Register::RIP);
            insn.set_memory_displacement64((DATA + (DATA_SIZE / 2) as u64).wrapping_add(disp as u64));
            insn.set_memory_displ_size(8);
        } else {
            insn.set_memory_displacement64(disp as u64);
            insn.set_memory_displ_size(if (-128..128).contains(&disp) { 1 } else { 4 });
        }
        // ES/CS/SS/DS overrides are ignored in 64-bit mode (base 0 on both sides).
        if self.rng.chance(5) {
            insn.set_segment_prefix(*self.rng.pick(&[Register::ES, Register::CS, Register::SS, Register::DS]));
        }
    }

    fn imm(&mut self) -> u64 {
        if self.rng.chance(30) {
            self.rng.below(70)
        } else {
            self.rng.interesting()
        }
    }
}

/// Build one instruction of `code` with random operands.
fn build(code: Code, class: Class, ctx: &mut Ctx) -> Instruction {
    let op = code.op_code();
    let mut insn = Instruction::default();
    insn.set_code(code);
    let mut imm8_seen = false;
    let addr32 = ctx.rng.chance(15);
    for (n, kind) in op.op_kinds().iter().enumerate() {
        let n = n as u32;
        let reg = |insn: &mut Instruction, r: Register| {
            insn.set_op_kind(n, OpKind::Register);
            insn.set_op_register(n, r);
        };
        match *kind {
            K::mem => ctx.memory(&mut insn, n),
            K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem | K::mm_or_mem | K::xmm_or_mem if ctx.rng.chance(40) => {
                ctx.memory(&mut insn, n)
            }
            K::r8_or_mem | K::r8_reg | K::r8_opcode => {
                let r = ctx.gpr(Register::AL);
                reg(&mut insn, r)
            }
            K::r16_or_mem | K::r16_reg | K::r16_rm | K::r16_opcode => {
                let r = ctx.gpr(Register::AX);
                reg(&mut insn, r)
            }
            K::r32_or_mem | K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_vvvv => {
                let r = ctx.gpr(Register::EAX);
                reg(&mut insn, r)
            }
            K::r64_or_mem | K::r64_reg | K::r64_rm | K::r64_opcode | K::r64_vvvv => {
                let r = ctx.gpr(Register::RAX);
                reg(&mut insn, r)
            }
            K::mm_or_mem | K::mm_reg | K::mm_rm => {
                let r = reg_at(Register::MM0, ctx.rng.below(8) as usize);
                reg(&mut insn, r)
            }
            K::xmm_or_mem | K::xmm_reg | K::xmm_rm => {
                let r = reg_at(Register::XMM0, ctx.rng.below(16) as usize);
                reg(&mut insn, r)
            }
            K::al => reg(&mut insn, Register::AL),
            K::cl => reg(&mut insn, Register::CL),
            K::ax => reg(&mut insn, Register::AX),
            K::eax => reg(&mut insn, Register::EAX),
            K::rax => reg(&mut insn, Register::RAX),
            K::st0 => reg(&mut insn, Register::ST0),
            K::sti_opcode => {
                let r = reg_at(Register::ST0, ctx.rng.below(8) as usize);
                reg(&mut insn, r)
            }
            K::imm8 => {
                let v = ctx.imm() as u8;
                if imm8_seen {
                    insn.set_op_kind(n, OpKind::Immediate8_2nd);
                    insn.set_immediate8_2nd(v);
                } else {
                    insn.set_op_kind(n, OpKind::Immediate8);
                    insn.set_immediate8(v);
                }
                imm8_seen = true;
            }
            K::imm8_const_1 => {
                insn.set_op_kind(n, OpKind::Immediate8);
                insn.set_immediate8(1);
            }
            K::imm8sex16 => {
                insn.set_op_kind(n, OpKind::Immediate8to16);
                insn.set_immediate8to16(ctx.imm() as i8 as i16);
            }
            K::imm8sex32 => {
                insn.set_op_kind(n, OpKind::Immediate8to32);
                insn.set_immediate8to32(ctx.imm() as i8 as i32);
            }
            K::imm8sex64 => {
                insn.set_op_kind(n, OpKind::Immediate8to64);
                insn.set_immediate8to64(ctx.imm() as i8 as i64);
            }
            K::imm16 => {
                insn.set_op_kind(n, OpKind::Immediate16);
                insn.set_immediate16(ctx.imm() as u16);
            }
            K::imm32 => {
                insn.set_op_kind(n, OpKind::Immediate32);
                insn.set_immediate32(ctx.imm() as u32);
            }
            K::imm32sex64 => {
                insn.set_op_kind(n, OpKind::Immediate32to64);
                insn.set_immediate32to64(ctx.imm() as i32 as i64);
            }
            K::imm64 => {
                insn.set_op_kind(n, OpKind::Immediate64);
                insn.set_immediate64(ctx.imm());
            }
            // 32-bit addressing (67h) now and then: ESI/EDI/ECX, same window.
            K::seg_rSI => insn.set_op_kind(n, if addr32 { OpKind::MemorySegESI } else { OpKind::MemorySegRSI }),
            K::es_rDI => insn.set_op_kind(n, if addr32 { OpKind::MemoryESEDI } else { OpKind::MemoryESRDI }),
            K::seg_rDI => insn.set_op_kind(n, if addr32 { OpKind::MemorySegEDI } else { OpKind::MemorySegRDI }),
            K::seg_rBX_al => {
                insn.set_op_kind(n, OpKind::Memory);
                insn.set_memory_base(Register::RBX);
                insn.set_memory_index(Register::AL);
                insn.set_memory_index_scale(1);
            }
            other => unreachable!("classes::fillable admitted {other:?}"),
        }
    }
    // SHLD/SHRD on 16-bit operands: a count above 16 gives an undefined
    // result (SDM SHLD/SHRD), so keep the immediate within 0..=16.
    if matches!(code, Code::Shld_rm16_r16_imm8 | Code::Shrd_rm16_r16_imm8) {
        let c = insn.immediate8() % 17;
        insn.set_immediate8(c | (ctx.rng.below(8) as u8) << 5);
    }
    if class == Class::Str && op.can_use_rep_prefix() && ctx.rng.chance(60) {
        let cmp = matches!(
            code.mnemonic(),
            iced_x86::Mnemonic::Cmpsb
                | iced_x86::Mnemonic::Cmpsw
                | iced_x86::Mnemonic::Cmpsd
                | iced_x86::Mnemonic::Cmpsq
                | iced_x86::Mnemonic::Scasb
                | iced_x86::Mnemonic::Scasw
                | iced_x86::Mnemonic::Scasd
                | iced_x86::Mnemonic::Scasq
        );
        if cmp && ctx.rng.chance(50) {
            insn.set_has_repne_prefix(true);
        } else {
            insn.set_has_rep_prefix(true);
        }
    }
    if op.can_use_lock_prefix() {
        let mem_dest = insn.op_count() > 0 && insn.op0_kind() == OpKind::Memory;
        if (mem_dest && ctx.rng.chance(30)) || ctx.rng.chance(2) {
            insn.set_has_lock_prefix(true);
        }
    }
    insn
}

/// iced `RflagsBits` to RFLAGS bit positions (arithmetic flags and DF).
pub fn hw_flags(bits: u32) -> u64 {
    use kagami_cpu::state::flags as f;
    let map = [
        (RflagsBits::OF, f::OF),
        (RflagsBits::SF, f::SF),
        (RflagsBits::ZF, f::ZF),
        (RflagsBits::AF, f::AF),
        (RflagsBits::CF, f::CF),
        (RflagsBits::PF, f::PF),
        (RflagsBits::DF, f::DF),
    ];
    map.iter().filter(|(i, _)| bits & i != 0).fold(0, |a, (_, h)| a | h)
}

/// iced `RflagsBits` to FSW condition-code bits.
pub fn fsw_flags(bits: u32) -> u16 {
    let map = [
        (RflagsBits::C0, 1u16 << 8),
        (RflagsBits::C1, 1 << 9),
        (RflagsBits::C2, 1 << 10),
        (RflagsBits::C3, 1 << 14),
    ];
    map.iter().filter(|(i, _)| bits & i != 0).fold(0, |a, (_, h)| a | h)
}

/// x87 transcendentals. Their results are "as close as practical" by the
/// project's requirements: kagami rounds the exact value correctly while
/// the hardware's own results are not always correctly rounded, so the
/// comparison allows two units in the last place and any C1 for them
/// (`compare.rs`), and a stream ends at the first one.
pub fn is_transcendental(m: iced_x86::Mnemonic) -> bool {
    use iced_x86::Mnemonic::*;
    matches!(m, F2xm1 | Fyl2x | Fyl2xp1 | Fptan | Fpatan | Fsin | Fcos | Fsincos)
}

/// Generate one stream of 1..=8 instructions from `codes` (and, for the
/// string class, `int_codes` mixed in).
pub fn stream(class: Class, codes: &[Code], int_codes: &[Code], rng: &mut Rng) -> Stream {
    let nums: &'static [usize] = if class == Class::Str { &GPR_NUMS_STR } else { &GPR_NUMS };
    let count = 1 + rng.below(if class == Class::Str { 4 } else { 8 }) as usize;
    let mut insns = Vec::new();
    let mut bytes = Vec::new();
    let mut undefined = 0u64;
    let mut undefined_fsw = 0u16;
    let mut masks_before = Vec::new();
    let mut tainted = 0u16;
    let mut info = InstructionInfoFactory::new();
    while insns.len() < count {
        let ip = STREAM + bytes.len() as u64;
        let mut ctx = Ctx { rng, nums };
        let pool = if class == Class::Str && !int_codes.is_empty() && ctx.rng.chance(40) {
            int_codes
        } else {
            codes
        };
        let code = *ctx.rng.pick(pool);
        let mut insn = build(code, class, &mut ctx);
        insn.set_ip(ip);
        let mut enc = Encoder::new(64);
        let Ok(len) = enc.encode(&insn, ip) else { continue };
        let buf = enc.take_buffer();
        // The decoder must agree with what we meant (and gives the full form).
        let mut dec = Decoder::with_ip(64, &buf, ip, DecoderOptions::NONE);
        let d = dec.decode();
        if d.is_invalid() || d.code() != code || d.len() != len {
            continue;
        }
        // Never read a flag an earlier instruction left undefined.
        if hw_flags(d.rflags_read()) & undefined != 0 || fsw_flags(d.rflags_read()) & undefined_fsw != 0 {
            continue;
        }
        let inf = info.info(&d);
        let bad_write = inf.used_registers().iter().any(|u| {
            let full = u.register().full_register();
            let writes = !matches!(
                u.access(),
                OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess | OpAccess::None
            );
            writes
                && (full == Register::RBX
                    || full == Register::RSP
                    || (class == Class::Str && !is_string(&d) && matches!(full, Register::RCX | Register::RSI | Register::RDI)))
        });
        if bad_write {
            continue;
        }
        // A register a zero-source 32-bit BSF/BSR wrote is host-specific
        // above bit 31 (see `compare::zero_source_bit_scan_dests`): nothing
        // may read it afterwards.
        let reads_tainted = inf.used_registers().iter().any(|u| {
            let full = u.register().full_register();
            let reads = matches!(
                u.access(),
                OpAccess::Read | OpAccess::CondRead | OpAccess::ReadWrite | OpAccess::ReadCondWrite
            );
            reads && full.is_gpr64() && tainted & (1 << full.number()) != 0
        });
        if reads_tainted {
            continue;
        }
        // BT/BTS/BTR/BTC m, r: the register's bit offset can address memory
        // anywhere, outside the data window.
        if matches!(
            d.mnemonic(),
            iced_x86::Mnemonic::Bt | iced_x86::Mnemonic::Bts | iced_x86::Mnemonic::Btr | iced_x86::Mnemonic::Btc
        ) && d.op0_kind() == OpKind::Memory
            && d.op1_kind() == OpKind::Register
        {
            continue;
        }
        if matches!(d.code(), Code::Bsf_r32_rm32 | Code::Bsr_r32_rm32) {
            tainted |= 1 << d.op0_register().full_register().number();
        } else {
            for u in inf.used_registers() {
                let r = u.register();
                if u.access() == OpAccess::Write && r.is_gpr() && r.size() >= 4 {
                    tainted &= !(1 << r.full_register().number());
                }
            }
        }
        masks_before.push((undefined, undefined_fsw));
        (undefined, undefined_fsw) = after(undefined, undefined_fsw, &d);
        bytes.extend_from_slice(&buf);
        insns.push(d);
        // A transcendental's result may be two ulps from the host's (see
        // `is_transcendental`): nothing may compute with it afterwards.
        if is_transcendental(d.mnemonic()) {
            break;
        }
    }
    let (input, data) = state(class, rng);
    Stream {
        insns,
        bytes,
        input,
        data,
        undefined_flags: undefined,
        undefined_fsw,
        masks_before,
    }
}

/// The undefined-flag masks after `d` runs. A shift or rotate whose count
/// can be zero (CL, or an immediate that masks to 0), or a REP string
/// instruction (RCX can be 0), may leave every flag as it was, so it cannot
/// make an undefined flag defined again.
///
/// FCOMI/FCOMIP/FUCOMI/FUCOMIP: the SDM says they clear C1; AMD processors
/// leave it unchanged, so on an AMD host C1 counts as undefined after them.
pub fn after(undefined: u64, undefined_fsw: u16, d: &Instruction) -> (u64, u16) {
    use iced_x86::Mnemonic::*;
    let modified = if count_may_be_zero(d) { 0 } else { d.rflags_modified() };
    let mut fsw_undefined = fsw_flags(d.rflags_undefined());
    if matches!(d.mnemonic(), Fcomi | Fcomip | Fucomi | Fucomip) && super::classes::host_is_amd() {
        fsw_undefined |= 1 << 9;
    }
    (
        (undefined & !hw_flags(modified)) | hw_flags(d.rflags_undefined()),
        (undefined_fsw & !fsw_flags(modified)) | fsw_undefined,
    )
}

impl Stream {
    /// The first `k` instructions of this stream, from the same state.
    pub fn prefix(&self, k: usize) -> Stream {
        let insns = self.insns[..k].to_vec();
        let len: usize = insns.iter().map(|i| i.len()).sum();
        let (mut u, mut uf) = (0, 0);
        let mut masks_before = Vec::new();
        for d in &insns {
            masks_before.push((u, uf));
            (u, uf) = after(u, uf, d);
        }
        Stream {
            insns,
            bytes: self.bytes[..len].to_vec(),
            input: self.input.clone(),
            data: self.data.clone(),
            undefined_flags: u,
            undefined_fsw: uf,
            masks_before,
        }
    }
}

fn count_may_be_zero(d: &Instruction) -> bool {
    use iced_x86::Mnemonic::*;
    // REP CMPS/SCAS with RCX = 0 compare nothing and leave the flags.
    if (d.has_rep_prefix() || d.has_repne_prefix()) && is_string(d) {
        return true;
    }
    if !matches!(d.mnemonic(), Rol | Ror | Rcl | Rcr | Shl | Sal | Shr | Sar | Shld | Shrd) {
        return false;
    }
    let n = d.op_count() - 1;
    match d.op_kind(n) {
        OpKind::Register => d.op_register(n) == Register::CL,
        OpKind::Immediate8 => {
            let mask = if d.op0_kind() == OpKind::Register && d.op0_register().size() == 8 || d.memory_size().size() == 8 {
                63
            } else {
                31
            };
            d.immediate8() & mask == 0
        }
        _ => false,
    }
}

fn is_string(i: &Instruction) -> bool {
    (0..i.op_count()).any(|n| {
        matches!(
            i.op_kind(n),
            OpKind::MemorySegRSI
                | OpKind::MemoryESRDI
                | OpKind::MemorySegRDI
                | OpKind::MemorySegESI
                | OpKind::MemoryESEDI
                | OpKind::MemorySegEDI
        )
    })
}

/// A random starting state and data window.
fn state(class: Class, rng: &mut Rng) -> (ArchState, Vec<u8>) {
    use kagami_cpu::state::flags as f;
    let mut gpr = [0u64; 16];
    for g in gpr.iter_mut() {
        *g = rng.interesting();
    }
    gpr[3] = DATA + (DATA_SIZE / 2) as u64;
    gpr[4] = STACK_TOP;
    if class == Class::Str {
        gpr[1] = rng.below(20);
        gpr[6] = DATA + 0x400 + rng.below(DATA_SIZE as u64 - 0x800);
        gpr[7] = DATA + 0x400 + rng.below(DATA_SIZE as u64 - 0x800);
    }
    let mut rflags = f::FIXED1 | f::IF | (rng.next_u64() & f::ARITH);
    if rng.chance(if class == Class::Str { 40 } else { 15 }) {
        rflags |= f::DF;
    }
    // x87: a random TOP, a stack of random depth, masked exceptions mostly.
    let mut fcw = 0x0040 | (rng.below(4) as u16) << 10 | if rng.chance(70) { 3 << 8 } else { (rng.below(4) as u16) << 8 };
    fcw |= if rng.chance(90) { 0x3f } else { rng.below(64) as u16 };
    let top = rng.below(8) as u16;
    let mut fsw = top << 11;
    fsw |= (rng.below(16) as u16 & 7) << 8 | (rng.below(2) as u16) << 14;
    fsw |= rng.below(64) as u16 & fcw & 0x3f;
    let depth = rng.below(9) as usize;
    let mut st = [[0u8; 10]; 8];
    let mut ftw = 0u8;
    for (i, r) in st.iter_mut().enumerate() {
        let (m, e) = if class == Class::Mmx && rng.chance(70) {
            (rng.chunk(), 0xffff)
        } else {
            rng.f80()
        };
        r[..8].copy_from_slice(&m.to_le_bytes());
        r[8..].copy_from_slice(&e.to_le_bytes());
        if i < depth {
            ftw |= 1 << ((top as usize + i) & 7);
        }
    }
    let mut mxcsr = 0x1f80 | (rng.below(4) as u32) << 13;
    if rng.chance(20) {
        mxcsr |= 1 << 15;
    }
    if rng.chance(20) {
        mxcsr |= 1 << 6;
    }
    if rng.chance(10) {
        mxcsr &= !((rng.below(64) as u32) << 7);
    }
    mxcsr |= rng.below(64) as u32 & (mxcsr >> 7) & 0x3f;
    let mut xmm = [0u128; 16];
    for x in xmm.iter_mut() {
        *x = rng.chunk() as u128 | (rng.chunk() as u128) << 64;
    }
    let mut data = vec![0u8; DATA_SIZE];
    for c in data.chunks_mut(8) {
        c.copy_from_slice(&rng.chunk().to_le_bytes());
    }
    (
        ArchState {
            gpr,
            rip: STREAM,
            rflags,
            fx: Fx {
                fcw,
                fsw,
                ftw,
                st,
                mxcsr,
                xmm,
            },
        },
        data,
    )
}
