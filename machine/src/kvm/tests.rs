//! State transfer through a real vCPU: kagami state → KVM → kagami state.
//! Skipped, with the reason printed, where /dev/kvm cannot create a VM.

use super::state::{from_kvm, tests::busy_state, PendingEvents};
use super::vcpu::KvmCpu;
use kagami_cpu::{Cpu, GuestMemory, PhysMap, Region, RegionKind};

fn cpu() -> Cpu {
    let mem = GuestMemory::new(4 << 20).unwrap();
    let mut map = PhysMap::new();
    map.add(Region {
        start: 0,
        len: 4 << 20,
        backing: 0,
        kind: RegionKind::Ram,
    })
    .unwrap();
    Cpu::new(mem, map)
}

#[test]
fn state_round_trips_through_kvm() {
    let mut c = cpu();
    let mut k = match KvmCpu::new(&c) {
        Ok(k) => k,
        Err(why) => {
            eprintln!("SKIPPED state_round_trips_through_kvm: {why}");
            return;
        }
    };
    for mode in [16, 32, 64] {
        let s = busy_state(mode);
        c.s = s.clone();
        k.set_state(&c.s).unwrap_or_else(|e| panic!("mode {mode}: {e}"));
        let got = k.get_state().unwrap();
        let (mut back, pending) = from_kvm(&got, &c.s);
        assert_eq!(pending, PendingEvents::default(), "mode {mode}");
        // The TSC runs while the state is in KVM (and cannot be set at all
        // where the guest runs on the host's TSC, as on PVM).
        if k.tsc_settable() {
            assert!(
                back.tsc >= s.tsc && back.tsc - s.tsc < 1 << 32,
                "mode {mode}: TSC {} -> {}",
                s.tsc,
                back.tsc
            );
        } else {
            eprintln!("NOTE: this host's KVM does not let user space set the guest TSC; TSC not compared");
            assert!(
                std::path::Path::new("/sys/module/kvm_pvm").exists(),
                "TSC not settable on a non-PVM KVM"
            );
        }
        back.tsc = s.tsc;
        assert_eq!(back, s, "mode {mode}");
    }
}
