//! A KVM virtual machine over kagami's guest memory: the one memmap2 mapping
//! of `GuestMemory` registered as memory slots, one per RAM/ROM region of the
//! machine's `PhysMap`. Everything the map leaves out (the MMIO holes) makes
//! KVM exit to user space, where the same `Bus` as the software CPU's answers.

use kagami_cpu::{GuestMemory, PhysMap, RegionKind};
use kvm_bindings::{kvm_userspace_memory_region, CpuId, KVM_MAX_CPUID_ENTRIES, KVM_MEM_READONLY};
use kvm_ioctls::{Cap, Kvm, VmFd};

/// Where KVM may put the real-mode TSS and identity-map page VMX needs on
/// hosts without "unrestricted guest" (QEMU's addresses, just under the
/// 4 GiB firmware area; never RAM on a PC).
const IDENTITY_MAP_ADDR: u64 = 0xfeff_c000;
const TSS_ADDR: usize = 0xfeff_d000;

pub struct KvmVm {
    pub(crate) kvm: Kvm,
    pub(crate) vm: VmFd,
    /// Keeps the mapping the memory slots point into alive as long as the VM.
    mem: GuestMemory,
    /// The slots, for `describe` and tests.
    pub slots: Vec<kvm_userspace_memory_region>,
    /// ROM regions are read-only slots (writes exit as MMIO) when KVM
    /// supports KVM_MEM_READONLY; otherwise the guest can write them.
    pub readonly_rom: bool,
    pub(crate) supported_cpuid: CpuId,
}

impl KvmVm {
    /// Open /dev/kvm, create a VM and register `phys`'s regions of `mem`.
    pub fn new(mem: &GuestMemory, phys: &PhysMap) -> Result<KvmVm, String> {
        let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
        let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM failed: {e}"))?;
        if kvm.check_extension(Cap::SetIdentityMapAddr) {
            vm.set_identity_map_address(IDENTITY_MAP_ADDR)
                .map_err(|e| format!("KVM_SET_IDENTITY_MAP_ADDR failed: {e}"))?;
        }
        if kvm.check_extension(Cap::SetTssAddr) {
            vm.set_tss_address(TSS_ADDR).map_err(|e| format!("KVM_SET_TSS_ADDR failed: {e}"))?;
        }
        let readonly_rom = kvm.check_extension(Cap::ReadonlyMem);
        let supported_cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID failed: {e}"))?;
        let mut v = KvmVm {
            kvm,
            vm,
            mem: mem.clone(),
            slots: Vec::new(),
            readonly_rom,
            supported_cpuid,
        };
        v.set_phys_map(phys)?;
        Ok(v)
    }

    /// Replace the memory slots with `phys`'s regions (PAM/SMRAM changes):
    /// every old slot is deleted (size 0) and the new ones are registered.
    /// Call it only while no vCPU of this VM is in KVM_RUN.
    pub fn set_phys_map(&mut self, phys: &PhysMap) -> Result<(), String> {
        let (vm, mem, readonly_rom) = (&self.vm, &self.mem, self.readonly_rom);
        for old in self.slots.drain(..) {
            let gone = kvm_userspace_memory_region { memory_size: 0, ..old };
            // SAFETY: deleting a slot makes KVM drop its reference to the mapping.
            unsafe { vm.set_user_memory_region(gone) }
                .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION (delete slot {}) failed: {e}", old.slot))?;
        }
        let mut slots = Vec::new();
        for (k, r) in phys.regions().iter().enumerate() {
            if r.start % 4096 != 0 || r.len % 4096 != 0 || r.backing % 4096 != 0 {
                return Err(format!(
                    "memory region {:#x}+{:#x} is not page-aligned; KVM cannot map it",
                    r.start, r.len
                ));
            }
            if r.backing.checked_add(r.len).is_none_or(|end| end > mem.len()) {
                return Err(format!("memory region {:#x}+{:#x} lies outside guest memory", r.start, r.len));
            }
            let region = kvm_userspace_memory_region {
                slot: k as u32,
                flags: if r.kind == RegionKind::Rom && readonly_rom {
                    KVM_MEM_READONLY
                } else {
                    0
                },
                guest_phys_addr: r.start,
                memory_size: r.len,
                userspace_addr: mem.host_base() as u64 + r.backing,
            };
            // SAFETY: the region lies inside `mem`'s mapping (checked above),
            // which `self.mem` keeps alive for as long as the VM exists (the
            // VmFd is dropped with `self`, before or together with `mem`;
            // drop order of fields is declaration order, vm before mem), and
            // the mapping is never moved or unmapped while it is shared.
            unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("KVM_SET_USER_MEMORY_REGION {k} failed: {e}"))?;
            slots.push(region);
        }
        self.slots = slots;
        Ok(())
    }

    pub fn memory(&self) -> &GuestMemory {
        &self.mem
    }
}
