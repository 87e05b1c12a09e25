//! The machine-check architecture's MSRs (SDM Vol. 3B 16.3): IA32_MCG_CAP,
//! IA32_MCG_STATUS, IA32_MCG_CTL and a few error-reporting banks
//! (IA32_MCi_CTL/STATUS/ADDR/MISC). They read as an idle machine's: no
//! error is ever logged, so every MCi_STATUS is 0 (not VAL), and
//! MCi_ADDR/MISC hold nothing. #MC is never raised. CPUID leaf 1 advertises
//! MCE and MCA so that an OS sets up its handler and polling.
//!
//! Left out: CMCI (MCG_CAP bit 10, MCi_CTL2), software error recovery
//! (MCG_SER_P), local machine checks (MCG_LMCE_P) and error injection.

use crate::state::Msrs;

/// Error-reporting banks (MCG_CAP.Count).
pub const BANKS: usize = 4;

pub const MCG_CAP: u32 = 0x179;
pub const MCG_STATUS: u32 = 0x17a;
pub const MCG_CTL: u32 = 0x17b;
/// IA32_MC0_CTL; bank i's CTL, STATUS, ADDR, MISC are at 0x400 + 4i + 0..3.
pub const MC0_CTL: u32 = 0x400;
const MC_LAST: u32 = MC0_CTL + 4 * BANKS as u32 - 1;

/// MCG_CAP: the bank count and MCG_CTL_P (bit 8: IA32_MCG_CTL exists).
const CAP: u64 = BANKS as u64 | 1 << 8;
/// MCG_STATUS bits RIPV, EIPV, MCIP (LMCE_S needs MCG_LMCE_P).
const STATUS_BITS: u64 = 0x7;

/// Whether `msr` is one of the machine-check MSRs handled here.
pub fn owns(msr: u32) -> bool {
    matches!(msr, MCG_CAP | MCG_STATUS | MCG_CTL | MC0_CTL..=MC_LAST)
}

/// RDMSR of a machine-check MSR (`owns(msr)`).
pub fn read(m: &Msrs, msr: u32) -> Option<u64> {
    Some(match msr {
        MCG_CAP => CAP,
        MCG_STATUS => m.mcg_status,
        MCG_CTL => m.mcg_ctl,
        MC0_CTL..=MC_LAST => match (msr - MC0_CTL) % 4 {
            0 => m.mc_ctl[((msr - MC0_CTL) / 4) as usize],
            // STATUS (never VAL), ADDR and MISC (empty while STATUS is clear).
            _ => 0,
        },
        _ => return None,
    })
}

/// WRMSR of a machine-check MSR (`owns(msr)`); `false` means #GP.
pub fn write(m: &mut Msrs, msr: u32, v: u64) -> bool {
    match msr {
        MCG_CAP => false,
        // Software clears MCIP after handling; reserved bits fault.
        MCG_STATUS if v & !STATUS_BITS == 0 => {
            m.mcg_status = v;
            true
        }
        MCG_CTL => {
            m.mcg_ctl = v;
            true
        }
        MC0_CTL..=MC_LAST => match (msr - MC0_CTL) % 4 {
            0 => {
                m.mc_ctl[((msr - MC0_CTL) / 4) as usize] = v;
                true
            }
            // STATUS/ADDR/MISC: writing 0 clears them (they are already
            // clear); writing 1s raises #GP (SDM 16.3.2.2, 16.3.2.3).
            _ => v == 0,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_read_as_an_idle_machine() {
        let mut m = Msrs::default();
        assert_eq!(read(&m, MCG_CAP), Some(BANKS as u64 | 1 << 8));
        assert!(!write(&mut m, MCG_CAP, 0), "MCG_CAP is read-only");
        assert!(write(&mut m, MCG_CTL, u64::MAX));
        assert_eq!(read(&m, MCG_CTL), Some(u64::MAX));
        assert!(write(&mut m, MCG_STATUS, 0));
        assert!(!write(&mut m, MCG_STATUS, 1 << 3), "LMCE_S without MCG_LMCE_P");
        for i in 0..BANKS as u32 {
            let base = MC0_CTL + 4 * i;
            assert!(write(&mut m, base, 0xff00 | i as u64));
            assert_eq!(read(&m, base), Some(0xff00 | i as u64), "MC{i}_CTL reads back");
            for r in 1..4 {
                assert!(write(&mut m, base + r, 0), "clearing MC{i} register {r}");
                assert!(!write(&mut m, base + r, 1), "setting MC{i} register {r}");
                assert_eq!(read(&m, base + r), Some(0));
            }
        }
        assert!(!owns(MC0_CTL + 4 * BANKS as u32), "no bank past MCG_CAP.Count");
        assert!(owns(MCG_CAP) && owns(MC0_CTL + 4 * BANKS as u32 - 1));
    }
}
