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

fn entry(function: u32, index: u32, r: [u32; 4]) -> kvm_bindings::kvm_cpuid_entry2 {
    kvm_bindings::kvm_cpuid_entry2 {
        function,
        index,
        eax: r[0],
        ebx: r[1],
        ecx: r[2],
        edx: r[3],
        ..Default::default()
    }
}

#[test]
fn cpuid_is_kvms_intersected_with_kagamis() {
    use super::vcpu::intersect_cpuid;
    let c = cpu();
    let all = !0u32;
    let kvm = kvm_bindings::CpuId::from_entries(&[
        entry(0, 0, [0x7f, 1, 2, 3]),
        entry(1, 0, [0x000a_0655, 0x0800, all, all]),
        entry(7, 0, [0, all, all, all]),
        entry(7, 1, [all, 0, 0, 0]),
        entry(0x4000_0000, 0, [0x4000_0001, 4, 5, 6]),
        entry(0x4000_0001, 0, [all, 0, 0, 0]),
        entry(0x8000_0000, 0, [0x8000_00ff, 0, 0, 0]),
        entry(0x8000_0001, 0, [0, 0, all, all]),
    ])
    .unwrap();
    let out = intersect_cpuid(&kvm, |l, s| c.cpuid(l, s)).unwrap();
    let get = |f: u32, i: u32| out.as_slice().iter().find(|e| e.function == f && e.index == i).copied();
    assert_eq!(get(0, 0).unwrap().eax, 0x7f.min(c.cpuid(0, 0)[0]));
    let l1 = get(1, 0).unwrap();
    assert_eq!((l1.eax, l1.ebx), (0x000a_0655, 0x0800), "signature and topology are KVM's");
    assert_eq!(l1.ecx, c.cpuid(1, 0)[2] | 1 << 27);
    assert_eq!(l1.edx, c.cpuid(1, 0)[3]);
    let l7 = get(7, 0).unwrap();
    assert_eq!([l7.ebx, l7.ecx, l7.edx], [c.cpuid(7, 0)[1], c.cpuid(7, 0)[2], c.cpuid(7, 0)[3]]);
    assert_eq!(get(7, 1).map(|e| e.eax), Some(0));
    assert!(get(0x4000_0000, 0).is_none() && get(0x4000_0001, 0).is_none());
    assert_eq!(get(0x8000_0000, 0).unwrap().eax, 0x8000_00ff.min(c.cpuid(0x8000_0000, 0)[0]));
    let e1 = get(0x8000_0001, 0).unwrap();
    assert_eq!([e1.ecx, e1.edx], [c.cpuid(0x8000_0001, 0)[2], c.cpuid(0x8000_0001, 0)[3]]);
}

#[derive(Default)]
struct Record(Vec<u32>);

impl kagami_cpu::Bus for Record {
    fn io_read(&mut self, _: u16, _: u8) -> u32 {
        0
    }
    fn io_write(&mut self, _: u16, _: u8, v: u32) {
        self.0.push(v);
    }
    fn mmio_read(&mut self, _: u64, _: u8) -> u64 {
        0xdead
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) {}
}

/// A changed physical map (what PAM writes do) re-registers KVM's memory
/// slots: the same guest address then shows other backing, or none (MMIO).
#[test]
fn memory_slots_follow_the_phys_map() {
    let mem = GuestMemory::new(4 << 20).unwrap();
    let region = |start, len, backing| Region {
        start,
        len,
        backing,
        kind: RegionKind::Ram,
    };
    let mut low = PhysMap::new();
    low.add(region(0, 2 << 20, 0)).unwrap();
    // real mode at 0:7c00: OUT the word at 0:1000, HLT.
    let code = [0xa1, 0x00, 0x10, 0xe7, 0x80, 0xf4]; // mov ax,[0x1000]; out 0x80,ax; hlt
    mem.write(0x7c00, &code);
    mem.write((2 << 20) + 0x7c00, &code);
    mem.write(0x1000, &0x1111u16.to_le_bytes());
    mem.write((2 << 20) + 0x1000, &0x2222u16.to_le_bytes());
    let mut c = Cpu::new(mem, low.clone());
    c.s.segs[kagami_cpu::state::CS] = kagami_cpu::state::Segment::real(0);
    c.s.rip = 0x7c00;
    let start = c.s.clone();
    let mut k = match KvmCpu::new(&c) {
        Ok(k) => k,
        Err(why) => {
            eprintln!("SKIPPED memory_slots_follow_the_phys_map: {why}");
            return;
        }
    };
    let mut bus = Record::default();
    let run = |k: &mut KvmCpu, bus: &mut Record| {
        k.set_state(&start).unwrap();
        assert_eq!(k.run(bus, None), Ok(kagami_cpu::Exit::Halted));
    };
    run(&mut k, &mut bus);
    let mut high = PhysMap::new();
    high.add(region(0, 2 << 20, 2 << 20)).unwrap();
    k.set_phys_map(&high).unwrap();
    run(&mut k, &mut bus);
    // Code stays RAM, the data page becomes a hole: MMIO reads 0xdead.
    let mut holed = PhysMap::new();
    holed.add(region(0, 0x1000, 0)).unwrap();
    holed.add(region(0x2000, (2 << 20) - 0x2000, 0x2000)).unwrap();
    k.set_phys_map(&holed).unwrap();
    run(&mut k, &mut bus);
    assert_eq!(bus.0, vec![0x1111, 0x2222, 0xdead]);
    assert_eq!(k.vm().slots.len(), 2);
}
