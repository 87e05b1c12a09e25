//! Conversions: CVTPI2PS/PD, CVT(T)PS2PI, CVT(T)PD2PI, CVTSI2SS/SD,
//! CVT(T)SS2SI, CVT(T)SD2SI, CVTPS2PD, CVTPD2PS, CVTSS2SD, CVTSD2SS,
//! CVTDQ2PS/PD, CVT(T)PS2DQ, CVT(T)PD2DQ. Rounding per MXCSR.RC (the CVTT
//! forms truncate); an out-of-range or NaN source gives the integer
//! indefinite (SDM Vol. 1, 4.8.3.7 / 11.5.2.1).

use super::softfp::{Env, F32, F64};
use super::sse_float::{lane, set_lane};
use super::*;
use crate::block::Handler;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::exception::Result;
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

fn sext(v: u128, size: usize) -> i64 {
    if size == 8 {
        v as u64 as i64
    } else {
        v as u32 as i32 as i64
    }
}

fn convert(cpu: &mut Cpu, bus: &mut dyn Bus, i: &Instruction) -> Result<()> {
    use Mnemonic::*;
    // The MMX transition happens only once the source was fetched: a
    // faulting CVT(T)PD2PI mm, m128 leaves the x87 state alone (host check).
    let mm = enter_checks(cpu, i)?;
    let m = i.mnemonic();
    let src = read_op(cpu, bus, i, 1)?;
    if mm {
        enter_mmx(cpu);
    }
    let dst = i.op_register(0);
    let old = get_reg(cpu, dst);
    let mut env = Env::from_mxcsr(cpu.s.fpu.mxcsr);
    let trunc = matches!(m, Cvttps2pi | Cvttpd2pi | Cvttss2si | Cvttsd2si | Cvttps2dq | Cvttpd2dq);
    let src_size = if i.op_kind(1) == OpKind::Register {
        i.op_register(1).size()
    } else {
        i.memory_size().size()
    };
    let r: u128 = match m {
        Cvtpi2ps => {
            let mut r = old;
            for k in 0..2 {
                r = set_lane(r, F32, k, env.from_int(F32, lane(src, F32, k) as u32 as i32 as i64));
            }
            r
        }
        Cvtpi2pd | Cvtdq2pd => {
            let mut r = 0;
            for k in 0..2 {
                r = set_lane(r, F64, k, env.from_int(F64, lane(src, F32, k) as u32 as i32 as i64));
            }
            r
        }
        Cvtdq2ps => {
            let mut r = 0;
            for k in 0..4 {
                r = set_lane(r, F32, k, env.from_int(F32, lane(src, F32, k) as u32 as i32 as i64));
            }
            r
        }
        Cvtsi2ss => set_lane(old, F32, 0, env.from_int(F32, sext(src, src_size))),
        Cvtsi2sd => set_lane(old, F64, 0, env.from_int(F64, sext(src, src_size))),
        Cvtps2pi | Cvttps2pi => {
            let mut r = 0;
            for k in 0..2 {
                r = set_lane(r, F32, k, env.to_int(F32, lane(src, F32, k), 32, trunc));
            }
            r
        }
        Cvtps2dq | Cvttps2dq => {
            let mut r = 0;
            for k in 0..4 {
                r = set_lane(r, F32, k, env.to_int(F32, lane(src, F32, k), 32, trunc));
            }
            r
        }
        Cvtpd2pi | Cvttpd2pi | Cvtpd2dq | Cvttpd2dq => {
            let mut r = 0;
            for k in 0..2 {
                r = set_lane(r, F32, k, env.to_int(F64, lane(src, F64, k), 32, trunc));
            }
            r
        }
        Cvtss2si | Cvttss2si => env.to_int(F32, lane(src, F32, 0), 8 * dst.size() as u32, trunc) as u128,
        Cvtsd2si | Cvttsd2si => env.to_int(F64, lane(src, F64, 0), 8 * dst.size() as u32, trunc) as u128,
        Cvtps2pd => {
            let mut r = 0;
            for k in 0..2 {
                r = set_lane(r, F64, k, env.convert(F32, F64, lane(src, F32, k)));
            }
            r
        }
        Cvtpd2ps => {
            let mut r = 0;
            for k in 0..2 {
                r = set_lane(r, F32, k, env.convert(F64, F32, lane(src, F64, k)));
            }
            r
        }
        Cvtss2sd => set_lane(old, F64, 0, env.convert(F32, F64, lane(src, F32, 0))),
        _ => set_lane(old, F32, 0, env.convert(F64, F32, lane(src, F64, 0))),
    };
    fp_commit(cpu, &env)?;
    set_reg(cpu, dst, r);
    Ok(())
}

pub fn lookup(code: Code) -> Option<Handler> {
    use Mnemonic::*;
    Some(match code.mnemonic() {
        Cvtpi2ps | Cvtpi2pd | Cvtdq2pd | Cvtdq2ps | Cvtsi2ss | Cvtsi2sd | Cvtps2pi | Cvttps2pi | Cvtps2dq | Cvttps2dq | Cvtpd2pi
        | Cvttpd2pi | Cvtpd2dq | Cvttpd2dq | Cvtss2si | Cvttss2si | Cvtsd2si | Cvttsd2si | Cvtps2pd | Cvtpd2ps | Cvtss2sd | Cvtsd2ss => {
            convert
        }
        _ => return None,
    })
}
