//! State transfer between kagami's `CpuState` and KVM's vCPU structures.
//!
//! The conversion is split in two: [`KvmState`] is a plain copy of what the
//! KVM_GET_* ioctls return (registers, segments, the XSAVE legacy area, XCR0,
//! MSRs, events, debug registers), and the functions here turn a `CpuState`
//! into one and back without touching a vCPU, so they are unit-tested on any
//! host. `vcpu.rs` moves a `KvmState` in and out of a real vCPU.
//!
//! What does not travel, and why:
//! - FCS/FDS: KVM keeps the FPU in the 64-bit XSAVE layout, where bytes 8..23
//!   are a 64-bit FIP and FDP (SDM Vol. 1, 10.5.1.1); the selectors are gone.
//! - The A20 gate: KVM has none; the machine keeps it open on KVM.
//! - `icount`: KVM does not count instructions; the software CPU's count
//!   stays where it was.
//! - HLT: with the interrupt controllers in user space KVM keeps every vCPU
//!   RUNNABLE (KVM_SET_MP_STATE refuses HALTED without an in-kernel LAPIC),
//!   so the halted flag lives in `KvmCpu` and travels from there.

use kagami_cpu::state::{attr, CpuState, Segment, TableReg, CS, DS, ES, FS, GS, SS};
use kvm_bindings::{kvm_debugregs, kvm_dtable, kvm_regs, kvm_segment, kvm_sregs, kvm_vcpu_events};

/// MSR numbers (SDM Vol. 4, chapter 2).
pub mod msr {
    pub const TSC: u32 = 0x10;
    pub const TSC_ADJUST: u32 = 0x3b;
    pub const SPEC_CTRL: u32 = 0x48;
    pub const SYSENTER_CS: u32 = 0x174;
    pub const SYSENTER_ESP: u32 = 0x175;
    pub const SYSENTER_EIP: u32 = 0x176;
    pub const MISC_ENABLE: u32 = 0x1a0;
    pub const MTRR_PHYS_BASE0: u32 = 0x200;
    pub const MTRR_FIX64K: u32 = 0x250;
    pub const MTRR_FIX16K: [u32; 2] = [0x258, 0x259];
    pub const MTRR_FIX4K_FIRST: u32 = 0x268;
    pub const PAT: u32 = 0x277;
    pub const MTRR_DEF_TYPE: u32 = 0x2ff;
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const CSTAR: u32 = 0xc000_0083;
    pub const SFMASK: u32 = 0xc000_0084;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const TSC_AUX: u32 = 0xc000_0103;
}

/// KVM_VCPUEVENT_VALID_* flags (linux/kvm.h).
const VALID_NMI_PENDING: u32 = 1;
const VALID_SHADOW: u32 = 4;
/// kvm_vcpu_events.interrupt.shadow: blocking by STI (linux/kvm.h KVM_X86_SHADOW_INT_STI).
const SHADOW_STI: u8 = 2;

/// Everything kagami transfers, in KVM's shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct KvmState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    /// The 512-byte FXSAVE64 image (the XSAVE legacy area).
    pub fxsave: [u8; 512],
    pub xcr0: u64,
    pub msrs: Vec<(u32, u64)>,
    pub events: kvm_vcpu_events,
    pub debugregs: kvm_debugregs,
    /// Halted at a HLT (kept in `KvmCpu`, see the module comment).
    pub halted: bool,
}

/// Events KVM had accepted but not yet delivered when its state was read.
/// The software CPU delivers them before its first instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingEvents {
    pub nmi: bool,
    /// An external interrupt already acknowledged at the controller.
    pub interrupt: Option<u8>,
    /// An exception (vector, error code) in the middle of delivery.
    pub exception: Option<(u8, Option<u32>)>,
}

/// Every MSR `CpuState::msr` holds, with its number.
pub fn msr_list(s: &CpuState) -> Vec<(u32, u64)> {
    use msr::*;
    let m = &s.msr;
    let mut v = vec![
        (TSC, s.tsc),
        (STAR, m.star),
        (LSTAR, m.lstar),
        (CSTAR, m.cstar),
        (SFMASK, m.sfmask),
        (KERNEL_GS_BASE, m.kernel_gs_base),
        (SYSENTER_CS, m.sysenter_cs),
        (SYSENTER_ESP, m.sysenter_esp),
        (SYSENTER_EIP, m.sysenter_eip),
        (PAT, m.pat),
        (TSC_AUX, m.tsc_aux),
        (MISC_ENABLE, m.misc_enable),
        (MTRR_DEF_TYPE, m.mtrr_def_type),
        (SPEC_CTRL, m.spec_ctrl),
        (MTRR_FIX64K, m.mtrr_fixed[0]),
        (MTRR_FIX16K[0], m.mtrr_fixed[1]),
        (MTRR_FIX16K[1], m.mtrr_fixed[2]),
    ];
    for k in 0..8 {
        v.push((MTRR_FIX4K_FIRST + k, m.mtrr_fixed[3 + k as usize]));
    }
    for k in 0..16 {
        v.push((MTRR_PHYS_BASE0 + k, m.mtrr_var[k as usize]));
    }
    v
}

fn put_msr(s: &mut CpuState, index: u32, value: u64) {
    use msr::*;
    let m = &mut s.msr;
    match index {
        TSC => s.tsc = value,
        TSC_ADJUST => m.tsc_adjust = value,
        STAR => m.star = value,
        LSTAR => m.lstar = value,
        CSTAR => m.cstar = value,
        SFMASK => m.sfmask = value,
        KERNEL_GS_BASE => m.kernel_gs_base = value,
        SYSENTER_CS => m.sysenter_cs = value,
        SYSENTER_ESP => m.sysenter_esp = value,
        SYSENTER_EIP => m.sysenter_eip = value,
        PAT => m.pat = value,
        TSC_AUX => m.tsc_aux = value,
        MISC_ENABLE => m.misc_enable = value,
        MTRR_DEF_TYPE => m.mtrr_def_type = value,
        SPEC_CTRL => m.spec_ctrl = value,
        MTRR_FIX64K => m.mtrr_fixed[0] = value,
        i if i == MTRR_FIX16K[0] => m.mtrr_fixed[1] = value,
        i if i == MTRR_FIX16K[1] => m.mtrr_fixed[2] = value,
        i if (MTRR_FIX4K_FIRST..MTRR_FIX4K_FIRST + 8).contains(&i) => m.mtrr_fixed[3 + (i - MTRR_FIX4K_FIRST) as usize] = value,
        i if (MTRR_PHYS_BASE0..MTRR_PHYS_BASE0 + 16).contains(&i) => m.mtrr_var[(i - MTRR_PHYS_BASE0) as usize] = value,
        _ => {}
    }
}

/// kagami's packed attribute (VMCB layout) → KVM's unpacked fields.
pub fn seg_to_kvm(s: &Segment) -> kvm_segment {
    let a = s.attr;
    let bit = |m: u16| (a & m != 0) as u8;
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: (a & attr::TYPE_MASK) as u8,
        present: bit(attr::P),
        dpl: ((a >> attr::DPL_SHIFT) & 3) as u8,
        db: bit(attr::DB),
        s: bit(attr::S),
        l: bit(attr::L),
        g: bit(attr::G),
        avl: bit(attr::AVL),
        // VMX's "segment unusable" is what a not-present (null-loaded)
        // segment register is to the software CPU (SDM Vol. 3C, 25.4.1).
        unusable: (a & attr::P == 0) as u8,
        padding: 0,
    }
}

pub fn seg_from_kvm(k: &kvm_segment) -> Segment {
    let flag = |v: u8, m: u16| if v != 0 { m } else { 0 };
    let mut a = (k.type_ as u16 & attr::TYPE_MASK)
        | flag(k.s, attr::S)
        | ((k.dpl as u16 & 3) << attr::DPL_SHIFT)
        | flag(k.present, attr::P)
        | flag(k.avl, attr::AVL)
        | flag(k.l, attr::L)
        | flag(k.db, attr::DB)
        | flag(k.g, attr::G);
    if k.unusable != 0 {
        a &= !attr::P;
    }
    Segment {
        base: k.base,
        limit: k.limit,
        selector: k.selector,
        attr: a,
    }
}

fn table_to_kvm(t: &TableReg) -> kvm_dtable {
    kvm_dtable {
        base: t.base,
        limit: t.limit as u16,
        padding: [0; 3],
    }
}

fn table_from_kvm(t: &kvm_dtable) -> TableReg {
    TableReg {
        base: t.base,
        limit: t.limit as u32,
        _pad: 0,
    }
}

/// The FXSAVE64 image of kagami's x87/SSE state. ST(i) is physical register
/// (TOP + i) mod 8; the tag byte is the abridged form (SDM Vol. 1, 10.5.1.1).
pub fn fxsave_image(s: &CpuState) -> [u8; 512] {
    let f = &s.fpu;
    let mut img = [0u8; 512];
    img[0..2].copy_from_slice(&f.fcw.to_le_bytes());
    img[2..4].copy_from_slice(&f.fsw.to_le_bytes());
    img[4] = (0..8).fold(0u8, |acc, k| if (f.ftw >> (2 * k)) & 3 != 3 { acc | 1 << k } else { acc });
    img[6..8].copy_from_slice(&f.fop.to_le_bytes());
    img[8..16].copy_from_slice(&f.fip.to_le_bytes());
    img[16..24].copy_from_slice(&f.fdp.to_le_bytes());
    img[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
    img[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    let top = (f.fsw >> 11) as usize & 7;
    for k in 0..8 {
        let v = f.st[(top + k) & 7] & ((1u128 << 80) - 1);
        img[32 + 16 * k..48 + 16 * k].copy_from_slice(&v.to_le_bytes());
    }
    for k in 0..16 {
        img[160 + 16 * k..176 + 16 * k].copy_from_slice(&f.xmm[k].to_le_bytes());
    }
    img
}

/// The full two-bit tag of a non-empty register from its contents (what
/// FXRSTOR computes from the abridged tag, SDM Vol. 1, table 10-2).
fn tag_of(v: u128) -> u16 {
    let exp = (v >> 64) as u16 & 0x7fff;
    let mant = v as u64;
    match exp {
        0x7fff => 2,
        0 if mant == 0 => 1,
        0 => 2,
        _ if mant >> 63 == 0 => 2,
        _ => 0,
    }
}

pub fn load_fxsave_image(s: &mut CpuState, img: &[u8; 512]) {
    let u16_at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(img[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(img[o..o + 8].try_into().unwrap());
    let f = &mut s.fpu;
    f.fcw = u16_at(0);
    f.fsw = u16_at(2);
    f.fop = u16_at(6) & 0x7ff;
    f.fip = u64_at(8);
    f.fdp = u64_at(16);
    f.mxcsr = u32_at(24);
    let top = (f.fsw >> 11) as usize & 7;
    for k in 0..8 {
        f.st[(top + k) & 7] = u128::from_le_bytes(img[32 + 16 * k..48 + 16 * k].try_into().unwrap()) & ((1u128 << 80) - 1);
    }
    for k in 0..16 {
        f.xmm[k] = u128::from_le_bytes(img[160 + 16 * k..176 + 16 * k].try_into().unwrap());
    }
    let abridged = img[4];
    f.ftw = (0..8).fold(0u16, |acc, j| {
        acc | if abridged & (1 << j) != 0 { tag_of(f.st[j]) } else { 3 } << (2 * j)
    });
}

/// kagami → KVM.
pub fn to_kvm(s: &CpuState) -> KvmState {
    let g = &s.gpr;
    let regs = kvm_regs {
        rax: g[0],
        rcx: g[1],
        rdx: g[2],
        rbx: g[3],
        rsp: g[4],
        rbp: g[5],
        rsi: g[6],
        rdi: g[7],
        r8: g[8],
        r9: g[9],
        r10: g[10],
        r11: g[11],
        r12: g[12],
        r13: g[13],
        r14: g[14],
        r15: g[15],
        rip: s.rip,
        rflags: s.flags(),
    };
    let sregs = kvm_sregs {
        cs: seg_to_kvm(&s.segs[CS]),
        ds: seg_to_kvm(&s.segs[DS]),
        es: seg_to_kvm(&s.segs[ES]),
        fs: seg_to_kvm(&s.segs[FS]),
        gs: seg_to_kvm(&s.segs[GS]),
        ss: seg_to_kvm(&s.segs[SS]),
        tr: seg_to_kvm(&s.tr),
        ldt: seg_to_kvm(&s.ldtr),
        gdt: table_to_kvm(&s.gdtr),
        idt: table_to_kvm(&s.idtr),
        cr0: s.cr0,
        cr2: s.cr2,
        cr3: s.cr3,
        cr4: s.cr4,
        cr8: s.cr8,
        efer: s.efer,
        apic_base: s.msr.apic_base,
        // kagami acknowledges an interrupt only when it delivers it, so no
        // interrupt is ever accepted-but-undelivered in a `CpuState`.
        interrupt_bitmap: [0; 4],
    };
    let mut events = kvm_vcpu_events::default();
    events.interrupt.shadow = if s.irq_shadow != 0 { SHADOW_STI } else { 0 };
    events.nmi.masked = s.nmi_blocked;
    events.flags = VALID_SHADOW | VALID_NMI_PENDING;
    let debugregs = kvm_debugregs {
        db: [s.dr[0], s.dr[1], s.dr[2], s.dr[3]],
        dr6: s.dr[6],
        dr7: s.dr[7],
        ..Default::default()
    };
    KvmState {
        regs,
        sregs,
        fxsave: fxsave_image(s),
        xcr0: s.fpu.xcr0,
        msrs: msr_list(s),
        events,
        debugregs,
        halted: s.halted != 0,
    }
}

/// KVM → kagami: `base` supplies what KVM does not hold (icount, A20, FCS/FDS,
/// DR4/DR5); the mode and CPL are recomputed by the caller (`Cpu::update_mode`).
pub fn from_kvm(k: &KvmState, base: &CpuState) -> (CpuState, PendingEvents) {
    let mut s = base.clone();
    let r = &k.regs;
    s.gpr = [
        r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
    ];
    s.rip = r.rip;
    s.set_flags(r.rflags);
    let sr = &k.sregs;
    s.segs[CS] = seg_from_kvm(&sr.cs);
    s.segs[DS] = seg_from_kvm(&sr.ds);
    s.segs[ES] = seg_from_kvm(&sr.es);
    s.segs[FS] = seg_from_kvm(&sr.fs);
    s.segs[GS] = seg_from_kvm(&sr.gs);
    s.segs[SS] = seg_from_kvm(&sr.ss);
    s.tr = seg_from_kvm(&sr.tr);
    s.ldtr = seg_from_kvm(&sr.ldt);
    s.gdtr = table_from_kvm(&sr.gdt);
    s.idtr = table_from_kvm(&sr.idt);
    s.cr0 = sr.cr0;
    s.cr2 = sr.cr2;
    s.cr3 = sr.cr3;
    s.cr4 = sr.cr4;
    s.cr8 = sr.cr8;
    s.efer = sr.efer;
    s.msr.apic_base = sr.apic_base;
    load_fxsave_image(&mut s, &k.fxsave);
    s.fpu.xcr0 = k.xcr0;
    for &(i, v) in &k.msrs {
        put_msr(&mut s, i, v);
    }
    s.dr[0..4].copy_from_slice(&k.debugregs.db);
    s.dr[6] = k.debugregs.dr6;
    s.dr[7] = k.debugregs.dr7;
    let e = &k.events;
    s.irq_shadow = (e.interrupt.shadow != 0) as u8;
    s.nmi_blocked = e.nmi.masked;
    s.halted = k.halted as u8;
    let mut pending = PendingEvents {
        nmi: e.nmi.pending != 0 || e.nmi.injected != 0,
        ..Default::default()
    };
    if e.interrupt.injected != 0 && e.interrupt.soft == 0 {
        pending.interrupt = Some(e.interrupt.nr);
    } else if let Some(v) = (0..256).find(|v| sr.interrupt_bitmap[v / 64] & (1 << (v % 64)) != 0) {
        pending.interrupt = Some(v as u8);
    }
    if e.exception.injected != 0 || e.exception.pending != 0 {
        pending.exception = Some((e.exception.nr, (e.exception.has_error_code != 0).then_some(e.exception.error_code)));
    }
    if pending.interrupt.is_some() || pending.nmi || pending.exception.is_some() {
        s.halted = 0;
    }
    (s, pending)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kagami_cpu::state::{cr0, cr4, efer, flags};

    /// A state with every transferred field set to something recognisable.
    pub(crate) fn busy_state(mode: u32) -> CpuState {
        let mut s = CpuState::default();
        for (k, r) in s.gpr.iter_mut().enumerate() {
            *r = 0x0101_0101_0000_0000u64.wrapping_mul(k as u64 + 1) + k as u64;
        }
        s.rip = 0x1234;
        s.set_flags(flags::FIXED1 | flags::CF | flags::ZF | flags::IF | flags::OF);
        s.cr2 = 0xdead_b000;
        s.tsc = 0x0004_0000_1234_5678;
        s.msr.star = 0x0023_0010_0000_0000;
        s.msr.lstar = 0xffff_8000_0000_1000;
        s.msr.cstar = 0xffff_8000_0000_2000;
        s.msr.sfmask = 0x4700;
        s.msr.kernel_gs_base = 0xffff_8880_0000_0000;
        s.msr.sysenter_cs = 0x10;
        s.msr.sysenter_esp = 0x9000;
        s.msr.sysenter_eip = 0x8000;
        s.msr.tsc_aux = 7;
        s.msr.mtrr_var[3] = 0xfff;
        s.dr = [0x1000, 0x2000, 0x3000, 0x4000, 0, 0, 0xffff_0ff1, 0x401];
        s.fpu.fcw = 0x027f;
        s.fpu.fsw = 0x3800; // TOP = 7
        s.fpu.st[7] = (0x3fffu128 << 64) | (1u128 << 63); // 1.0 in ST0
        s.fpu.st[0] = 0; // +0 in ST1
        s.fpu.ftw = 0xffff & !(3 << 14) & !(2 << 0);
        s.fpu.fip = 0x4000;
        s.fpu.fdp = 0x5000;
        s.fpu.fop = 0x1d9;
        s.fpu.xmm[3] = 0x0123_4567_89ab_cdef_0011_2233_4455_6677;
        s.fpu.xmm[15] = u128::MAX;
        s.fpu.mxcsr = 0x1fa0;
        s.fpu.xcr0 = 3;
        s.irq_shadow = 1;
        s.nmi_blocked = 1;
        match mode {
            16 => {
                s.segs[CS] = Segment::real(0x1000);
                s.segs[DS] = Segment::real(0x2000);
            }
            32 | 64 => {
                let data = Segment {
                    base: 0,
                    limit: 0xffff_ffff,
                    selector: 0x10,
                    attr: attr::P | attr::S | attr::RW | attr::ACCESSED | attr::DB | attr::G,
                };
                s.segs = [data; 6];
                s.segs[FS].base = 0x7fff_0000;
                s.segs[GS] = Segment {
                    selector: 0,
                    base: 0xffff_8880_1234_0000,
                    limit: 0,
                    attr: 0,
                };
                s.segs[CS] = Segment {
                    selector: 0x08,
                    attr: attr::P
                        | attr::S
                        | attr::CODE
                        | attr::RW
                        | attr::ACCESSED
                        | if mode == 64 { attr::L } else { attr::DB | attr::G },
                    ..data
                };
                s.gdtr = TableReg {
                    base: 0x500,
                    limit: 0x3f,
                    _pad: 0,
                };
                s.idtr = TableReg {
                    base: 0x2000,
                    limit: 0xfff,
                    _pad: 0,
                };
                s.tr = Segment {
                    base: 0x3000,
                    limit: 0x67,
                    selector: 0x28,
                    attr: attr::P | 0xb,
                };
                s.cr0 = cr0::PE | cr0::ET | cr0::NE | cr0::MP;
                s.cr4 = cr4::OSFXSR | cr4::OSXMMEXCPT;
                if mode == 64 {
                    s.cr0 |= cr0::PG | cr0::WP;
                    s.cr3 = 0x1000;
                    s.cr4 |= cr4::PAE | cr4::PGE;
                    s.efer = efer::LME | efer::LMA | efer::SCE | efer::NXE;
                    s.cr8 = 3;
                }
            }
            _ => unreachable!(),
        }
        s
    }

    #[test]
    fn conversion_round_trips_in_every_mode() {
        for mode in [16, 32, 64] {
            let s = busy_state(mode);
            let k = to_kvm(&s);
            let (back, pending) = from_kvm(&k, &CpuState::default());
            assert_eq!(pending, PendingEvents::default());
            assert_eq!(back, s, "mode {mode}");
        }
    }

    #[test]
    fn segments_pack_and_unpack() {
        let s = Segment {
            base: 0x1234_5000,
            limit: 0xfffff,
            selector: 0x2b,
            attr: attr::P | attr::S | 3 << attr::DPL_SHIFT | attr::CODE | attr::L | attr::AVL,
        };
        let k = seg_to_kvm(&s);
        assert_eq!(
            (k.type_, k.s, k.dpl, k.present, k.l, k.db, k.g, k.avl, k.unusable),
            (8, 1, 3, 1, 1, 0, 0, 1, 0)
        );
        assert_eq!(seg_from_kvm(&k), s);
        let null = Segment::default();
        assert_eq!(seg_to_kvm(&null).unusable, 1);
        assert_eq!(seg_from_kvm(&seg_to_kvm(&null)), null);
    }

    #[test]
    fn fxsave_image_is_stack_relative() {
        let s = busy_state(32);
        let img = fxsave_image(&s);
        // TOP = 7: ST0 is R7 (1.0), ST1 is R0 (+0); tags: R7 and R0 valid/zero.
        assert_eq!(u16::from_le_bytes([img[32 + 8], img[32 + 9]]), 0x3fff);
        assert_eq!(img[4], 0x81);
        assert_eq!(&img[160 + 48..160 + 64], &s.fpu.xmm[3].to_le_bytes());
    }

    #[test]
    fn injected_events_come_back_as_pending() {
        let s = busy_state(64);
        let mut k = to_kvm(&s);
        k.events.interrupt.injected = 1;
        k.events.interrupt.nr = 0x30;
        k.halted = true;
        let (back, pending) = from_kvm(&k, &s);
        assert_eq!(pending.interrupt, Some(0x30));
        assert_eq!(back.halted, 0);
        k.events.interrupt.injected = 0;
        k.sregs.interrupt_bitmap[1] = 1 << 2;
        assert_eq!(from_kvm(&k, &s).1.interrupt, Some(66));
    }
}
