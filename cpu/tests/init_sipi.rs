//! INIT and SIPI as CPU inputs (SDM Vol. 3A 9.1, 9.4, 10.6.1): INIT resets
//! the registers but keeps x87/SSE state and MSRs; the bootstrap processor
//! restarts at the reset vector, an application processor waits, ignoring
//! interrupts and NMIs, until a start-up IPI sends it to vector << 12.

mod common;

use kagami_cpu::state::{CS, RAX};
use kagami_cpu::{Bus, Exit};

/// A bus that delivers an INIT, then (on request) a SIPI, and counts
/// interrupt acknowledges and NMIs taken.
#[derive(Default)]
struct Signals {
    init: bool,
    sipi: Option<u8>,
    nmi: bool,
    irq: bool,
    stop: bool,
    out: Vec<(u16, u32)>,
}

impl Bus for Signals {
    fn io_read(&mut self, _: u16, _: u8) -> u32 {
        0xffff_ffff
    }
    fn io_write(&mut self, port: u16, _: u8, value: u32) {
        self.out.push((port, value));
    }
    fn mmio_read(&mut self, _: u64, _: u8) -> u64 {
        u64::MAX
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) {}
    fn take_init(&mut self) -> bool {
        std::mem::take(&mut self.init)
    }
    fn take_sipi(&mut self) -> Option<u8> {
        self.sipi.take()
    }
    fn take_nmi(&mut self) -> bool {
        self.nmi
    }
    fn interrupt_pending(&mut self) -> bool {
        self.irq
    }
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        self.irq.then_some(0x20)
    }
    fn stop_requested(&mut self) -> bool {
        self.stop
    }
}

#[test]
fn init_on_the_bsp_restarts_at_the_reset_vector_keeping_msrs_and_sse() {
    let mut cpu = common::machine(64);
    cpu.s.gpr[RAX] = 0x1234;
    cpu.s.fpu.xmm[3] = 0xdead_beef_0000_0007;
    cpu.s.msr.lstar = 0xffff_8000_0000_1000;
    let mut bus = Signals {
        init: true,
        stop: true,
        ..Default::default()
    };
    // The INIT is taken at the first boundary; the machine then stops the
    // slice before the first instruction at the reset vector.
    assert_eq!(cpu.run(&mut bus, 1000), Exit::Stopped);
    assert_eq!(cpu.s.rip, 0xfff0);
    assert_eq!(cpu.s.segs[CS].selector, 0xf000);
    assert_eq!(cpu.s.segs[CS].base, 0xffff_0000);
    assert_eq!(cpu.s.gpr[RAX], 0, "general registers reset");
    assert_eq!(cpu.s.cr0 & 1, 0, "real mode");
    assert_eq!(cpu.s.efer, 0);
    assert_eq!(cpu.s.fpu.xmm[3], 0xdead_beef_0000_0007, "SSE state kept");
    assert_eq!(cpu.s.msr.lstar, 0xffff_8000_0000_1000, "MSRs kept");
    assert_eq!(cpu.s.wait_for_sipi, 0, "the BSP does not wait for SIPI");
}

#[test]
fn an_application_processor_waits_for_sipi_and_starts_at_its_vector() {
    let mut cpu = common::machine(64);
    cpu.s.msr.apic_base &= !(1 << 8); // not the BSP
                                      // Code at 0x10000 = vector 0x10: OUT 0x80, AL=0x5a; HLT.
    cpu.mem.write(0x10000, &[0xb0, 0x5a, 0xe6, 0x80, 0xf4]);
    let mut bus = Signals {
        init: true,
        nmi: true,
        irq: true,
        ..Default::default()
    };
    assert_eq!(cpu.run(&mut bus, 1000), Exit::Halted);
    assert_eq!(cpu.s.wait_for_sipi, 1);
    assert_eq!(cpu.s.icount, 0, "nothing runs while waiting for SIPI");
    // NMIs and interrupts stay pending while it waits.
    assert_eq!(cpu.run(&mut bus, 1000), Exit::Halted);
    assert_eq!(cpu.s.icount, 0);
    bus.nmi = false;
    bus.irq = false;
    bus.sipi = Some(0x10);
    assert_eq!(cpu.run(&mut bus, 1000), Exit::Halted);
    assert_eq!(cpu.s.segs[CS].selector, 0x1000);
    assert_eq!(cpu.s.segs[CS].base, 0x10000);
    assert_eq!(bus.out, vec![(0x80, 0x5a)]);
    assert_eq!(cpu.s.icount, 3);
}

#[test]
fn sipi_is_ignored_unless_waiting() {
    let mut cpu = common::machine(16);
    assert!(!cpu.sipi(0x10));
    assert_eq!(cpu.s.wait_for_sipi, 0);
}
