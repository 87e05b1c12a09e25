//! Shuffles, inserts, extracts, blends and other lane rearrangements:
//! PSHUFD/HW/LW/W, SHUFPS/PD, PALIGNR, PEXTRB/W/D/Q, EXTRACTPS,
//! PINSRB/W/D/Q, INSERTPS, PBLENDW, BLENDPS/PD, BLENDVPS/PD, PBLENDVB,
//! PMOVSX*/PMOVZX*, PTEST, PHMINPOSUW, MPSADBW.

use super::*;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use crate::state::flags;
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

/// dest = f(dest, src, imm8) for the register-destination forms with an
/// immediate (or, for the BLENDV forms, the implicit XMM0 mask).
fn shuffle(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    use Mnemonic::*;
    let mm = enter(cpu, i)?;
    let n = width(mm);
    let b = read_op(cpu, bus, i, 1)?;
    let dst = i.op_register(0);
    let a = get_reg(cpu, dst);
    let m = i.mnemonic();
    let imm = if i.op_count() > 2 && i.op_kind(2) != OpKind::Register {
        i.immediate8() as usize
    } else {
        0
    };
    let sel2 = |k: usize| (imm >> (2 * k)) & 3;
    let r = match m {
        Pshufd => {
            let d = to_d(b);
            from_d(core::array::from_fn(|k| d[sel2(k)]))
        }
        Pshufw => {
            let w = to_w(b);
            from_w(core::array::from_fn(|k| w[sel2(k) % 4]))
        }
        Pshuflw => {
            let w = to_w(b);
            from_w(core::array::from_fn(|k| if k < 4 { w[sel2(k)] } else { w[k] }))
        }
        Pshufhw => {
            let w = to_w(b);
            from_w(core::array::from_fn(|k| if k < 4 { w[k] } else { w[4 + sel2(k - 4)] }))
        }
        Shufps => {
            let (da, db) = (to_d(a), to_d(b));
            from_d([da[sel2(0)], da[sel2(1)], db[sel2(2)], db[sel2(3)]])
        }
        Shufpd => {
            let (qa, qb) = (to_q(a), to_q(b));
            from_q([qa[imm & 1], qb[(imm >> 1) & 1]])
        }
        Palignr => {
            let mut cat = [0u8; 32];
            cat[..n].copy_from_slice(&to_b(b)[..n]);
            cat[n..2 * n].copy_from_slice(&to_b(a)[..n]);
            from_b(core::array::from_fn(|j| if j < n && j + imm < 2 * n { cat[j + imm] } else { 0 }))
        }
        Pblendw => {
            let (wa, wb) = (to_w(a), to_w(b));
            from_w(core::array::from_fn(|k| if imm & (1 << k) != 0 { wb[k] } else { wa[k] }))
        }
        Blendps => {
            let (da, db) = (to_d(a), to_d(b));
            from_d(core::array::from_fn(|k| if imm & (1 << k) != 0 { db[k] } else { da[k] }))
        }
        Blendpd => {
            let (qa, qb) = (to_q(a), to_q(b));
            from_q(core::array::from_fn(|k| if imm & (1 << k) != 0 { qb[k] } else { qa[k] }))
        }
        Blendvps | Blendvpd | Pblendvb => {
            let size = match m {
                Blendvps => 4,
                Blendvpd => 8,
                _ => 1,
            };
            let mask = cpu.s.fpu.xmm[0];
            let mut r = a;
            for k in 0..16 / size {
                if (mask >> (8 * size * k + 8 * size - 1)) & 1 != 0 {
                    let em = mask_to(u128::MAX, size) << (8 * size * k);
                    r = (r & !em) | (b & em);
                }
            }
            r
        }
        Insertps => {
            let v = if i.op_kind(1) == OpKind::Memory {
                b as u32
            } else {
                to_d(b)[(imm >> 6) & 3]
            };
            let mut d = to_d(a);
            d[(imm >> 4) & 3] = v;
            for (k, x) in d.iter_mut().enumerate() {
                if imm & (1 << k) != 0 {
                    *x = 0;
                }
            }
            from_d(d)
        }
        Mpsadbw => {
            let (ab, bb) = (to_b(a), to_b(b));
            let oa = ((imm >> 2) & 1) * 4;
            let ob = (imm & 3) * 4;
            from_w(core::array::from_fn(|k| {
                (0..4).map(|j| ab[oa + k + j].abs_diff(bb[ob + j]) as u16).sum()
            }))
        }
        Phminposuw => {
            let w = to_w(b);
            let (idx, min) = w
                .iter()
                .enumerate()
                .fold((0, u16::MAX), |(bi, bm), (k, &x)| if x < bm || k == 0 { (k, x) } else { (bi, bm) });
            min as u128 | (idx as u128) << 16
        }
        _ => pmov_extend(m, b),
    };
    set_reg(cpu, dst, mask_to(r, n));
    Ok(())
}

/// PMOVSX/PMOVZX: widen the low elements of the source.
fn pmov_extend(m: Mnemonic, b: u128) -> u128 {
    use Mnemonic::*;
    let (from, to, signed) = match m {
        Pmovsxbw => (1, 2, true),
        Pmovsxbd => (1, 4, true),
        Pmovsxbq => (1, 8, true),
        Pmovsxwd => (2, 4, true),
        Pmovsxwq => (2, 8, true),
        Pmovsxdq => (4, 8, true),
        Pmovzxbw => (1, 2, false),
        Pmovzxbd => (1, 4, false),
        Pmovzxbq => (1, 8, false),
        Pmovzxwd => (2, 4, false),
        Pmovzxwq => (2, 8, false),
        _ => (4, 8, false),
    };
    let mut r = 0u128;
    for k in 0..16 / to {
        let x = (b >> (8 * from * k)) as u64 & (u64::MAX >> (64 - 8 * from));
        let x = if signed {
            let sh = 64 - 8 * from as u32;
            (((x << sh) as i64) >> sh) as u64
        } else {
            x
        };
        r |= mask_to(x as u128, to) << (8 * to * k);
    }
    r
}

/// PEXTRB/W/D/Q and EXTRACTPS: an element to a GPR (zero-extended) or memory.
fn extract(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mm = enter(cpu, i)?;
    let n = width(mm);
    let s = get_reg(cpu, i.op_register(1));
    let imm = i.immediate8() as usize;
    let size = match i.mnemonic() {
        Mnemonic::Pextrb => 1,
        Mnemonic::Pextrw => 2,
        Mnemonic::Pextrq => 8,
        _ => 4,
    };
    let k = imm % (n / size);
    let v = mask_to(s >> (8 * size * k), size);
    write_op(cpu, bus, i, 0, v)
}

/// PINSRB/W/D/Q: a GPR or memory element into a lane.
fn insert(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    let mm = enter(cpu, i)?;
    let n = width(mm);
    let size = match i.mnemonic() {
        Mnemonic::Pinsrb => 1,
        Mnemonic::Pinsrw => 2,
        Mnemonic::Pinsrq => 8,
        _ => 4,
    };
    let v = mask_to(read_op(cpu, bus, i, 1)?, size);
    let k = i.immediate8() as usize % (n / size);
    let dst = i.op_register(0);
    let em = mask_to(u128::MAX, size) << (8 * size * k);
    let r = (get_reg(cpu, dst) & !em) | (v << (8 * size * k));
    set_reg(cpu, dst, mask_to(r, n));
    Ok(())
}

/// PTEST: ZF = (a AND b) == 0, CF = (NOT a AND b) == 0; the rest clear.
fn ptest(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    check_sse(cpu)?;
    let b = read_op(cpu, bus, i, 1)?;
    let a = get_reg(cpu, i.op_register(0));
    let mut f = 0;
    if a & b == 0 {
        f |= flags::ZF;
    }
    if !a & b == 0 {
        f |= flags::CF;
    }
    cpu.s.set_flag_bits(flags::ARITH, f);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    Some(match code.mnemonic() {
        Pshufd | Pshufw | Pshuflw | Pshufhw | Shufps | Shufpd | Palignr | Pblendw | Blendps | Blendpd | Blendvps | Blendvpd | Pblendvb
        | Insertps | Mpsadbw | Phminposuw | Pmovsxbw | Pmovsxbd | Pmovsxbq | Pmovsxwd | Pmovsxwq | Pmovsxdq | Pmovzxbw | Pmovzxbd
        | Pmovzxbq | Pmovzxwd | Pmovzxwq | Pmovzxdq => shuffle,
        Pextrb | Pextrw | Pextrd | Pextrq | Extractps => extract,
        Pinsrb | Pinsrw | Pinsrd | Pinsrq => insert,
        Ptest => ptest,
        _ => return None,
    })
}
