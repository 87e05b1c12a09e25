use super::*;

fn enabled() -> Lapic {
    let mut a = Lapic::new(0, true);
    a.write(reg::SVR, 4, 0x1ff);
    a
}

fn rd(a: &mut Lapic, r: u64) -> u32 {
    a.read(r, 4) as u32
}

#[test]
fn power_up_values() {
    let mut a = Lapic::new(3, false);
    assert_eq!(rd(&mut a, reg::ID), 3 << 24);
    assert_eq!(rd(&mut a, reg::VERSION), 0x0005_0014);
    assert_eq!(rd(&mut a, reg::SVR), 0xff);
    assert_eq!(rd(&mut a, reg::DFR), 0xffff_ffff);
    for r in (0x320..=0x370).step_by(16) {
        assert_eq!(rd(&mut a, r), 0x1_0000, "LVT {r:#x} masked");
    }
    let mut b = Lapic::new(0, true);
    assert_eq!(rd(&mut b, 0x350), 0x700, "BSP LINT0 is ExtINT (virtual wire)");
    assert_eq!(rd(&mut b, 0x360), 0x400, "BSP LINT1 is NMI");
    assert!(b.passes_extint() && b.lint1_is_nmi());
    assert_eq!(a.read(reg::VERSION + 2, 1), 5, "byte read of the max-LVT field");
}

#[test]
fn priorities_tpr_ppr_and_eoi() {
    let mut a = enabled();
    a.accept_interrupt(0x30, false);
    a.accept_interrupt(0x51, false);
    assert_eq!(a.pending_vector(), Some(0x51));
    a.set_tpr(0x50);
    assert_eq!(a.pending_vector(), None, "class 5 is not above TPR class 5");
    assert_eq!(rd(&mut a, reg::APR), 0x50);
    a.write(reg::TPR, 4, 0x40);
    assert_eq!(a.tpr(), 0x40);
    assert_eq!(a.acknowledge(), Some(0x51));
    assert_eq!(rd(&mut a, reg::PPR), 0x50, "ISR class above TPR");
    assert_eq!(rd(&mut a, reg::ISR + 0x20), 1 << (0x51 - 0x40));
    assert_eq!(a.pending_vector(), None, "0x30 below PPR");
    a.write(reg::EOI, 4, 0);
    assert!(a.take_eoi_broadcasts().is_empty(), "edge: no broadcast");
    assert_eq!(rd(&mut a, reg::PPR), 0x40);
    assert_eq!(a.pending_vector(), None, "TPR 0x40 still masks class 3");
    a.set_tpr(0);
    assert_eq!(a.acknowledge(), Some(0x30));
    a.set_tpr(0xf0);
    assert_eq!(a.acknowledge(), Some(0xff), "nothing deliverable: spurious vector");
}

#[test]
fn level_triggered_eoi_is_broadcast() {
    let mut a = enabled();
    a.accept_interrupt(0x41, true);
    assert_eq!(rd(&mut a, reg::TMR + 0x20), 2);
    assert_eq!(a.acknowledge(), Some(0x41));
    a.write(reg::EOI, 4, 0);
    assert_eq!(a.take_eoi_broadcasts(), vec![0x41]);
    assert_eq!(a.eoi(), None, "ISR empty");
}

#[test]
fn illegal_vectors_and_esr_latching() {
    let mut a = enabled();
    a.accept_interrupt(5, false);
    assert_eq!(a.pending_vector(), None);
    assert_eq!(rd(&mut a, reg::ESR), 0, "errors are visible only after an ESR write");
    a.write(reg::ESR, 4, 0);
    assert_eq!(rd(&mut a, reg::ESR), ESR_RECV_ILLEGAL);
    a.write(reg::ICR_LOW, 4, 0x4_0000 | 7);
    a.write(reg::ESR, 4, 0);
    assert_eq!(rd(&mut a, reg::ESR), ESR_SEND_ILLEGAL | ESR_RECV_ILLEGAL);
    a.write(reg::ESR, 4, 0);
    assert_eq!(rd(&mut a, reg::ESR), 0);
    // With the error LVT unmasked, an error raises its vector.
    a.write(reg::LVT_ERROR, 4, 0xe3);
    a.write(0x3f0, 4, 0x40); // reserved offset in xAPIC mode
    assert_eq!(a.pending_vector(), Some(0xe3));
    a.write(reg::ESR, 4, 0);
    assert_eq!(rd(&mut a, reg::ESR), ESR_ILLEGAL_REG);
}

#[test]
fn software_disable_masks_lvt_and_refuses_fixed() {
    let mut a = enabled();
    a.write(0x350, 4, 0x700);
    a.write(reg::SVR, 4, 0xff);
    assert_eq!(rd(&mut a, 0x350), 0x1_0700);
    a.write(0x350, 4, 0x700);
    assert_eq!(rd(&mut a, 0x350), 0x1_0700, "mask cannot be cleared while disabled");
    assert!(!a.passes_extint());
    a.accept_interrupt(0x40, false);
    assert_eq!(a.pending_vector(), None);
}

#[test]
fn one_shot_timer_fires_at_exact_time() {
    let mut a = enabled();
    a.advance_to(1000);
    a.write(reg::TIMER_DIVIDE, 4, 3); // divide by 16
    a.write(reg::LVT_TIMER, 4, 0x40);
    a.write(reg::TIMER_INITIAL, 4, 1000);
    assert_eq!(a.next_deadline(), Some(1000 + 16_000));
    a.advance_to(16_999);
    assert_eq!(a.pending_vector(), None);
    assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 1, "15999 ns = 999 ticks of 16 ns");
    a.advance_to(17_000);
    assert_eq!(a.pending_vector(), Some(0x40));
    assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 0);
    assert_eq!(a.next_deadline(), None);
    assert_eq!(rd(&mut a, reg::TIMER_INITIAL), 1000);
}

#[test]
fn periodic_timer_reloads_and_collapses_missed_periods() {
    let mut a = enabled();
    a.advance_to(50);
    a.write(reg::TIMER_DIVIDE, 4, 0xb); // divide by 1
    a.write(reg::LVT_TIMER, 4, 0x2_0050);
    a.write(reg::TIMER_INITIAL, 4, 100);
    assert_eq!(a.next_deadline(), Some(150));
    a.advance_to(149);
    assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 1);
    a.advance_to(150);
    assert_eq!(a.acknowledge(), Some(0x50));
    assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 100);
    assert_eq!(a.next_deadline(), Some(250));
    a.advance_to(1020);
    assert_eq!(a.pending_vector(), None, "in service");
    a.eoi();
    assert_eq!(a.acknowledge(), Some(0x50));
    assert_eq!(a.pending_vector(), None, "missed periods are one interrupt");
    assert_eq!(a.next_deadline(), Some(1050));
    assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 30);
    // A masked timer keeps counting but raises nothing.
    a.write(reg::LVT_TIMER, 4, 0x3_0050);
    a.eoi();
    a.advance_to(1050);
    assert_eq!(a.pending_vector(), None);
    assert_eq!(a.next_deadline(), Some(1150));
}

#[test]
fn tsc_deadline_mode() {
    let mut a = enabled();
    a.write_tsc_deadline(5000);
    assert_eq!(a.tsc_deadline(), 0, "ignored outside TSC-deadline mode");
    a.write(reg::TIMER_INITIAL, 4, 100);
    a.write(reg::LVT_TIMER, 4, 0x4_0061);
    assert_eq!(a.next_deadline(), None, "mode switch disarms the count");
    a.write(reg::LVT_TIMER, 4, 0x6_0061);
    assert_eq!(rd(&mut a, reg::LVT_TIMER), 0x4_0061, "reserved mode 3 keeps the mode field");
    assert_eq!(rd(&mut a, reg::TIMER_INITIAL), 0);
    a.write(reg::TIMER_INITIAL, 4, 100);
    assert_eq!(rd(&mut a, reg::TIMER_INITIAL), 0, "initial count ignored in TSC-deadline mode");
    a.write_tsc_deadline(5000);
    assert_eq!(a.tsc_deadline(), 5000);
    assert_eq!(a.next_deadline(), Some(5000 * 1_000_000_000 / TSC_HZ));
    a.advance_to(4999);
    assert_eq!(a.pending_vector(), None);
    a.advance_to(5000);
    assert_eq!(a.pending_vector(), Some(0x61));
    assert_eq!(a.tsc_deadline(), 0, "disarmed after firing");
    a.acknowledge();
    a.eoi();
    a.write_tsc_deadline(10);
    assert_eq!(a.pending_vector(), Some(0x61), "a past deadline fires at once");
}

#[test]
fn ipis_to_self_and_init_sipi_queue() {
    let mut a = enabled();
    a.write(reg::ICR_LOW, 4, 0x4_0070); // fixed, self
    assert_eq!(a.pending_vector(), Some(0x70));
    a.write(reg::ICR_HIGH, 4, 0);
    a.write(reg::ICR_LOW, 4, 0x0071); // fixed, physical dest 0 = this APIC
    a.write(reg::ICR_HIGH, 4, 0x0500_0000);
    a.write(reg::ICR_LOW, 4, 0x0072); // physical dest 5: nobody
    assert_eq!(rd(&mut a, reg::IRR + 0x30), 0b11 << 16);
    a.write(reg::ICR_LOW, 4, 0x4_0400); // NMI to self
    assert!(a.take_nmi());
    assert!(!a.take_nmi());
    a.write(reg::ICR_LOW, 4, 0xc_4500); // INIT assert, all excluding self
    a.write(reg::ICR_LOW, 4, 0xc_8500); // INIT de-assert: no request
    a.write(reg::ICR_LOW, 4, 0xc_0699); // SIPI 0x99, all excluding self
    assert_eq!(
        a.take_ipi_requests(),
        vec![
            IpiRequest {
                kind: IpiKind::Init,
                target: IpiTarget::AllExcludingSelf
            },
            IpiRequest {
                kind: IpiKind::Startup(0x99),
                target: IpiTarget::AllExcludingSelf
            },
        ]
    );
    assert_eq!(rd(&mut a, reg::ICR_LOW) & (1 << 12), 0, "delivery status idle");
}

#[test]
fn logical_destinations_flat_and_cluster() {
    let mut a = enabled();
    a.write(reg::LDR, 4, 0x0400_0000);
    assert!(a.accepts(true, 0x04) && a.accepts(true, 0x0c) && !a.accepts(true, 0x03));
    assert!(a.accepts(true, 0xff), "broadcast");
    a.write(reg::DFR, 4, 0x0fff_ffff); // cluster model
    a.write(reg::LDR, 4, 0x2100_0000); // cluster 2, member bit 0
    assert!(a.accepts(true, 0x21) && a.accepts(true, 0x23) && !a.accepts(true, 0x11));
    assert!(a.accepts(false, 0) && !a.accepts(false, 1));
}

#[test]
fn x2apic_msr_interface() {
    let mut a = Lapic::new(0x12, true);
    assert_eq!(a.read_msr(0x802), None, "xAPIC mode: MSRs fault");
    assert!(a.set_mode(ApicMode::Disabled));
    assert!(!a.set_mode(ApicMode::X2Apic), "disabled -> x2APIC is invalid");
    assert!(a.set_mode(ApicMode::XApic));
    assert!(a.set_mode(ApicMode::X2Apic));
    assert_eq!(a.read(reg::VERSION, 4), 0xffff_ffff, "MMIO page is gone in x2APIC mode");
    assert_eq!(a.read_msr(0x802), Some(0x12));
    assert_eq!(a.read_msr(0x80d), Some((1 << 16) | (1 << 2)));
    assert!(!a.write_msr(0x80d, 0), "LDR is read-only");
    assert_eq!(a.read_msr(0x80e), None, "no DFR");
    assert!(a.write_msr(0x80f, 0x1ff));
    assert!(!a.write_msr(0x808, 0x100), "reserved TPR bits");
    assert!(a.write_msr(0x808, 0x20));
    assert_eq!(a.tpr(), 0x20);
    assert!(a.write_msr(0x83f, 0x45));
    assert_eq!(a.pending_vector(), Some(0x45));
    assert_eq!(a.read_msr(0x83f), None, "SELF IPI is write-only");
    assert_eq!(a.acknowledge(), Some(0x45));
    assert!(!a.write_msr(0x80b, 1), "EOI must be written with 0");
    assert!(a.write_msr(0x80b, 0));
    assert_eq!(a.read_msr(0x811), Some(0));
    assert!(a.write_msr(0x830, (0x12u64 << 32) | 0x46));
    assert_eq!(a.read_msr(0x830), Some((0x12u64 << 32) | 0x46));
    assert_eq!(a.pending_vector(), Some(0x46), "physical 32-bit destination = own ID");
    assert!(!a.set_mode(ApicMode::XApic), "x2APIC -> xAPIC is invalid");
    assert!(a.set_mode(ApicMode::Disabled));
    assert_eq!(a.pending_vector(), None);
    assert!(a.passes_extint(), "disabled APIC passes the 8259");
}

#[test]
fn snapshot_round_trip_and_validation() {
    let mut a = enabled();
    a.write(reg::LVT_TIMER, 4, 0x40);
    a.write(reg::TIMER_INITIAL, 4, 10);
    a.accept_interrupt(0x33, true);
    let s = a.save();
    let json = serde_json::to_string(&s).unwrap();
    let mut b = Lapic::new(0, false);
    b.restore(&serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(b.save(), s);
    assert_eq!(b.next_deadline(), Some(20));
    let mut bad = s.clone();
    bad.lvt[0] = 0x6_0040;
    assert!(b.restore(&bad).is_err());
    let mut bad = s.clone();
    bad.irr[0] = 1;
    assert!(b.restore(&bad).is_err());
    assert_eq!(b.save(), s, "failed restore leaves the device untouched");
}
