//! Page-walker and TLB tests: each paging mode, large pages, accessed and
//! dirty bits, permission faults with their error codes, and TLB coherence
//! with code pages.

use crate::bus::NullBus;
use crate::cpu::Cpu;
use crate::exception::{pf, Exception};
use crate::mmu::{Access, MMU_SUPER, MMU_SUPER_NOSMAP, MMU_USER};
use crate::state::{cr0, cr4, efer, Mode};

const P: u64 = 1;
const W: u64 = 2;
const U: u64 = 4;
const A: u64 = 0x20;
const D: u64 = 0x40;
const PS: u64 = 0x80;
const NX: u64 = 1 << 63;

fn cpu() -> Cpu {
    Cpu::with_ram(16 << 20).unwrap()
}

fn w64(c: &mut Cpu, addr: u64, v: u64) {
    c.mem.write(addr, &v.to_le_bytes());
}

fn r64(c: &Cpu, addr: u64) -> u64 {
    let mut b = [0; 8];
    c.mem.read(addr, &mut b);
    u64::from_le_bytes(b)
}

fn long_mode(c: &mut Cpu) {
    c.s.cr0 = cr0::PE | cr0::PG | cr0::WP;
    c.s.cr4 = cr4::PAE;
    c.s.efer = efer::LME | efer::LMA | efer::NXE;
    c.s.cr3 = 0x1000;
    c.s.mode = Mode::Long64;
    c.s.cpl = 0;
}

#[test]
fn four_level_walk_sets_accessed_and_dirty() {
    let mut c = cpu();
    long_mode(&mut c);
    // 0x4000_1000 -> PML4[0] -> PDPT[1] -> PD[0] -> PT[1] -> 0x80_0000
    w64(&mut c, 0x1000, 0x2000 | P | W | U);
    w64(&mut c, 0x2000 + 8, 0x3000 | P | W | U);
    w64(&mut c, 0x3000, 0x4000 | P | W | U);
    w64(&mut c, 0x4000 + 8, 0x80_0000 | P | W | U);
    w64(&mut c, 0x80_0010, 0x1122_3344_5566_7788);
    let mut bus = NullBus;
    assert_eq!(c.read_lin(&mut bus, 0x4000_1010, 8).unwrap(), 0x1122_3344_5566_7788);
    assert_eq!(r64(&c, 0x4000 + 8) & (A | D), A, "read sets A only");
    assert_eq!(r64(&c, 0x1000) & A, A);
    c.write_lin(&mut bus, 0x4000_1018, 4, 0xdead_beef).unwrap();
    assert_eq!(r64(&c, 0x4000 + 8) & (A | D), A | D, "write sets D");
    assert_eq!(r64(&c, 0x80_0018) & 0xffff_ffff, 0xdead_beef);
}

#[test]
fn two_mib_and_one_gib_pages() {
    let mut c = cpu();
    long_mode(&mut c);
    w64(&mut c, 0x1000, 0x2000 | P | W);
    w64(&mut c, 0x2000, 0x3000 | P | W); // PDPT[0] -> PD
    w64(&mut c, 0x3000 + 8 * 3, 0x40_0000 | P | W | PS); // 2 MiB at 6 MiB -> 4 MiB
    w64(&mut c, 0x2000 + 8 * 2, P | W | PS); // 1 GiB page at 2 GiB -> 0
    w64(&mut c, 0x40_1234 & !7, 0x77);
    let mut bus = NullBus;
    assert_eq!(c.read_lin(&mut bus, 0x60_1230, 1).unwrap(), 0x77);
    assert_eq!(c.translate(&mut bus, 0x8000_5678, Access::Read).unwrap(), 0x5678);
    assert!(c.tlb.large);
}

#[test]
fn permission_faults_have_the_right_error_codes() {
    let mut c = cpu();
    long_mode(&mut c);
    w64(&mut c, 0x1000, 0x2000 | P | W | U);
    w64(&mut c, 0x2000, 0x3000 | P | W | U);
    w64(&mut c, 0x3000, 0x4000 | P | W | U);
    w64(&mut c, 0x4000, 0x10_0000 | P); // page 0: supervisor, read-only
    w64(&mut c, 0x4000 + 8, 0x10_1000 | P | W | U | NX); // page 1: user, NX
    let mut bus = NullBus;
    // Supervisor write to read-only with CR0.WP.
    let e = c.write_lin(&mut bus, 0x10, 1, 0).unwrap_err();
    assert_eq!(
        e,
        Exception::PageFault {
            addr: 0x10,
            code: pf::P | pf::W
        }
    );
    // User read of a supervisor page.
    c.s.cpl = 3;
    let e = c.read_lin_mmu(&mut bus, 0x20, 1, MMU_USER).unwrap_err();
    assert_eq!(
        e,
        Exception::PageFault {
            addr: 0x20,
            code: pf::P | pf::U
        }
    );
    // Not present.
    let e = c.read_lin_mmu(&mut bus, 0x5000, 1, MMU_USER).unwrap_err();
    assert_eq!(e, Exception::PageFault { addr: 0x5000, code: pf::U });
    // Fetch from NX page.
    let e = c.translate(&mut bus, 0x1000, Access::Exec).unwrap_err();
    assert_eq!(
        e,
        Exception::PageFault {
            addr: 0x1000,
            code: pf::P | pf::U | pf::I
        }
    );
    // Reserved bit (bit 51) in a PTE.
    w64(&mut c, 0x4000 + 16, 0x10_2000 | P | W | U | (1 << 51));
    let e = c.read_lin_mmu(&mut bus, 0x2000, 1, MMU_USER).unwrap_err();
    assert_eq!(
        e,
        Exception::PageFault {
            addr: 0x2000,
            code: pf::P | pf::U | pf::RSVD
        }
    );
    // Supervisor without WP may write a read-only page.
    c.s.cpl = 0;
    c.s.cr0 &= !cr0::WP;
    c.flush_tlb_all();
    c.write_lin(&mut bus, 0x10, 1, 0x5a).unwrap();
    // SMAP: supervisor data access to a user page faults unless AC.
    c.s.cr4 |= cr4::SMAP;
    c.flush_tlb_all();
    let e = c.read_lin_mmu(&mut bus, 0x1000, 1, MMU_SUPER).unwrap_err();
    assert_eq!(e, Exception::PageFault { addr: 0x1000, code: pf::P });
    assert!(c.read_lin_mmu(&mut bus, 0x1000, 1, MMU_SUPER_NOSMAP).is_ok());
}

#[test]
fn legacy_32_bit_paging_with_4mib_pages() {
    let mut c = cpu();
    c.s.cr0 = cr0::PE | cr0::PG;
    c.s.cr4 = cr4::PSE;
    c.s.cr3 = 0x1000;
    c.s.mode = Mode::Prot32;
    let pde = |c: &mut Cpu, i: u64, v: u32| c.mem.write(0x1000 + i * 4, &v.to_le_bytes());
    pde(&mut c, 0, 0x2000 | 7);
    c.mem.write(0x2000 + 4 * 5, &(0x9000u32 | 7).to_le_bytes());
    pde(&mut c, 0x300, 0x0040_0000 | 0x83); // 0xC000_0000 -> 4 MiB
    let mut bus = NullBus;
    assert_eq!(c.translate(&mut bus, 0x5abc, Access::Read).unwrap(), 0x9abc);
    assert_eq!(c.translate(&mut bus, 0xc012_3456, Access::Read).unwrap(), 0x52_3456);
}

#[test]
fn pae_paging_uses_pdptes() {
    let mut c = cpu();
    c.s.cr0 = cr0::PE | cr0::PG;
    c.s.cr4 = cr4::PAE;
    c.s.cr3 = 0x1000;
    c.s.mode = Mode::Prot32;
    w64(&mut c, 0x1000 + 8 * 3, 0x2000 | P); // PDPTE 3 covers 0xC000_0000
    w64(&mut c, 0x2000 + 8, 0x3000 | P | W);
    w64(&mut c, 0x3000 + 8 * 2, 0xa000 | P | W);
    let mut bus = NullBus;
    assert_eq!(c.translate(&mut bus, 0xc020_2345, Access::Write).unwrap(), 0xa345);
    // A PDPTE with reserved bits (bit 1 = R/W is reserved in PDPTEs).
    w64(&mut c, 0x1000, 0x2000 | P | W);
    let e = c.translate(&mut bus, 0x1000, Access::Read).unwrap_err();
    assert!(matches!(e, Exception::PageFault { code, .. } if code & pf::RSVD != 0));
}

#[test]
fn straddling_accesses_and_code_page_writes() {
    let mut c = cpu();
    let mut bus = NullBus;
    c.write_lin(&mut bus, 0xffe, 4, 0xaabb_ccdd).unwrap();
    assert_eq!(c.read_lin(&mut bus, 0xffe, 4).unwrap(), 0xaabb_ccdd);
    assert_eq!(c.read_lin(&mut bus, 0x1000, 1).unwrap(), 0xbb);
    // A write to a page holding decoded code goes through memory, which
    // reports the page as dirty.
    c.mem.set_code_page(3);
    c.protect_code_page(3);
    c.read_lin(&mut bus, 0x3000, 1).unwrap();
    c.write_lin(&mut bus, 0x3004, 2, 0x9090).unwrap();
    assert_eq!(c.mem.take_dirty_code(), Some(vec![3]));
    assert_eq!(c.read_lin(&mut bus, 0x3004, 2).unwrap(), 0x9090);
}

#[test]
fn a20_gate_wraps_at_one_mib() {
    let mut c = cpu();
    let mut bus = NullBus;
    c.write_lin(&mut bus, 0x10_0010, 1, 0x42).unwrap();
    c.set_a20(false);
    assert_eq!(c.read_lin(&mut bus, 0x10_0010, 1).unwrap(), 0);
    c.write_lin(&mut bus, 0x10_0020, 1, 0x43).unwrap();
    assert_eq!(c.read_lin(&mut bus, 0x20, 1).unwrap(), 0x43);
    c.set_a20(true);
    assert_eq!(c.read_lin(&mut bus, 0x10_0010, 1).unwrap(), 0x42);
}
