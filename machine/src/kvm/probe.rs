//! The start-up probe that decides whether KVM can run a general guest.
//!
//! Capability lists, the API version and even in-guest CPUID look the same
//! on a paravirtual KVM flavour (PVM) that cannot run a stock kernel as on
//! VMX/SVM KVM, so the probe is functional: a tiny long-mode ring-0 guest
//! that uses SSE, POPCNT and CMPXCHG16B, takes a #UD through its IDT and
//! returns with IRETQ, then times a tight loop. Any failure, an unexpected
//! exit, or a loop slower than `MIN_LOOP_RATE` means "not usable for general
//! guests". Hints such as /sys/module/kvm_pvm only make the message precise.

use iced_x86::code_asm::*;
use kvm_bindings::{kvm_segment, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};
use std::time::Instant;

/// The probe's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmStatus {
    /// KVM runs the probe guest correctly and fast.
    Usable { loop_rate: u64 },
    /// /dev/kvm is missing or cannot be opened.
    Absent(String),
    /// KVM exists but cannot run a general guest; the reason says why.
    Unusable(String),
}

/// Hardware virtualization runs the loop at 10^8-10^9 iterations/s; PVM's
/// ring-0 emulation at ~3x10^5. The threshold sits far from both.
const MIN_LOOP_RATE: u64 = 10_000_000;
const LOOP_ITERATIONS: u32 = 20_000;
const MEM_SIZE: usize = 2 << 20;
const CODE: u64 = 0x8000;
const UD_HANDLER: u64 = 0x9000;
const GDT: u64 = 0x500;
const IDT: u64 = 0x600;
const PML4: u64 = 0x1000;
const STACK: u64 = 0x7000;
const CX16_SLOT: u64 = 0x7800;
/// Ports the probe guest reports through.
const PORT_LOOP_START: u16 = 0x10;
const PORT_DONE: u16 = 0x11;
const PORT_FAIL: u16 = 0x12;

fn probe_program() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut fail = a.create_label();
    a.mov(rsp, STACK)?;
    // SSE: 1.0f + 1.0f == 2.0f
    a.mov(eax, 0x3f80_0000u32)?;
    a.movd(xmm0, eax)?;
    a.addss(xmm0, xmm0)?;
    a.movd(eax, xmm0)?;
    a.cmp(eax, 0x4000_0000u32)?;
    a.jne(fail)?;
    // POPCNT
    a.mov(rax, 0xf0f0u64)?;
    a.popcnt(rbx, rax)?;
    a.cmp(rbx, 8)?;
    a.jne(fail)?;
    // CMPXCHG16B: memory holds 0:0, RDX:RAX = 0:0 -> stores RCX:RBX.
    a.xor(eax, eax)?;
    a.xor(edx, edx)?;
    a.mov(ebx, 0x1234u32)?;
    a.mov(ecx, 0x5678u32)?;
    a.mov(rdi, CX16_SLOT)?;
    a.cmpxchg16b(xmmword_ptr(rdi))?;
    a.jne(fail)?;
    a.cmp(qword_ptr(rdi + 8), 0x5678)?;
    a.jne(fail)?;
    // #UD through the IDT; the handler sets R15 and skips the UD2.
    a.xor(r15d, r15d)?;
    a.ud2()?;
    a.cmp(r15, 1)?;
    a.jne(fail)?;
    // Timed loop between two port writes.
    a.out(PORT_LOOP_START as u32, al)?;
    a.mov(ecx, LOOP_ITERATIONS)?;
    let mut top = a.create_label();
    a.set_label(&mut top)?;
    a.dec(ecx)?;
    a.jnz(top)?;
    a.out(PORT_DONE as u32, al)?;
    a.hlt()?;
    a.set_label(&mut fail)?;
    a.out(PORT_FAIL as u32, al)?;
    a.hlt()?;
    a.assemble(CODE)
}

fn ud_handler() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.mov(r15d, 1u32)?;
    a.add(qword_ptr(rsp), 2)?;
    a.iretq()?;
    a.assemble(UD_HANDLER)
}

fn seg(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 0,
        db: if code { 0 } else { 1 },
        s: 1,
        l: code as u8,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Run the probe. Takes a few milliseconds where KVM works.
pub fn probe() -> KvmStatus {
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => return KvmStatus::Absent(format!("cannot open /dev/kvm: {e}")),
    };
    let hint = if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        " (this host's KVM is PVM, a paravirtual flavour that cannot run unmodified ring-0 code)"
    } else {
        ""
    };
    match run_probe(&kvm) {
        Ok(rate) if rate >= MIN_LOOP_RATE => KvmStatus::Usable { loop_rate: rate },
        Ok(rate) => KvmStatus::Unusable(format!(
            "KVM present but not usable for general guests{hint}: ring-0 loop ran at {rate} iterations/s, hardware virtualization does over {MIN_LOOP_RATE}"
        )),
        Err(why) => KvmStatus::Unusable(format!("KVM present but not usable for general guests{hint}: {why}")),
    }
}

fn run_probe(kvm: &Kvm) -> Result<u64, String> {
    // Declared before the VM so that it is dropped after it.
    let mut mem = memmap2::MmapMut::map_anon(MEM_SIZE).map_err(|e| format!("cannot map probe memory: {e}"))?;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM failed: {e}"))?;
    let put = |mem: &mut memmap2::MmapMut, at: u64, data: &[u8]| mem[at as usize..at as usize + data.len()].copy_from_slice(data);
    let code = probe_program().map_err(|e| format!("probe assembly: {e}"))?;
    put(&mut mem, CODE, &code);
    put(&mut mem, UD_HANDLER, &ud_handler().map_err(|e| format!("probe assembly: {e}"))?);
    // Identity-map the first 2 MiB with one large page.
    put(&mut mem, PML4, &(PML4 + 0x1000 | 3).to_le_bytes());
    put(&mut mem, PML4 + 0x1000, &(PML4 + 0x2000 | 3).to_le_bytes());
    put(&mut mem, PML4 + 0x2000, &0x83u64.to_le_bytes());
    put(&mut mem, GDT + 8, &0x0020_9b00_0000_0000u64.to_le_bytes());
    put(&mut mem, GDT + 16, &0x0000_9300_0000_0000u64.to_le_bytes());
    // 64-bit interrupt gate for #UD (vector 6) -> UD_HANDLER, CS 0x08.
    let mut gate = [0u8; 16];
    gate[0..2].copy_from_slice(&(UD_HANDLER as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&8u16.to_le_bytes());
    gate[5] = 0x8e;
    gate[6..8].copy_from_slice(&((UD_HANDLER >> 16) as u16).to_le_bytes());
    put(&mut mem, IDT + 6 * 16, &gate);
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: mem.as_mut_ptr() as u64,
    };
    // SAFETY: the region is `mem`, a live anonymous mapping of exactly
    // MEM_SIZE bytes; `mem` is declared before `vm` and so dropped after the
    // VM and its vCPU, and it is never remapped while they exist.
    unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("KVM_SET_USER_MEMORY_REGION failed: {e}"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU failed: {e}"))?;
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID failed: {e}"))?;
    vcpu.set_cpuid2(&cpuid).map_err(|e| format!("KVM_SET_CPUID2 failed: {e}"))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| format!("KVM_GET_SREGS failed: {e}"))?;
    sregs.cs = seg(8, true);
    let data = seg(16, false);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.gdt.base = GDT;
    sregs.gdt.limit = 23;
    sregs.idt.base = IDT;
    sregs.idt.limit = 16 * 7 - 1;
    sregs.cr3 = PML4;
    sregs.cr4 = (1 << 5) | (1 << 9) | (1 << 10); // PAE, OSFXSR, OSXMMEXCPT
    sregs.cr0 = 1 | 2 | (1 << 5) | (1 << 16) | (1 << 31); // PE, MP, NE, WP, PG
    sregs.efer = (1 << 8) | (1 << 10); // LME, LMA
    vcpu.set_sregs(&sregs).map_err(|e| format!("KVM_SET_SREGS failed: {e}"))?;
    let mut regs = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS failed: {e}"))?;
    regs.rip = CODE;
    regs.rflags = 2;
    vcpu.set_regs(&regs).map_err(|e| format!("KVM_SET_REGS failed: {e}"))?;

    let started = Instant::now();
    let mut loop_start = None;
    loop {
        if started.elapsed().as_secs() >= 2 {
            return Err("the probe guest did not finish within 2 s".into());
        }
        let exit = vcpu.run().map_err(|e| format!("KVM_RUN failed: {e}"))?;
        match exit {
            VcpuExit::IoOut(PORT_LOOP_START, _) => loop_start = Some(Instant::now()),
            VcpuExit::IoOut(PORT_DONE, _) => {
                let t = loop_start.ok_or("the probe skipped its timing loop")?.elapsed();
                return Ok((LOOP_ITERATIONS as f64 / t.as_secs_f64().max(1e-9)) as u64);
            }
            VcpuExit::IoOut(PORT_FAIL, _) => {
                return Err("the probe guest computed a wrong result (SSE, POPCNT, CMPXCHG16B or #UD delivery)".into())
            }
            VcpuExit::InternalError => {
                return Err("KVM's instruction emulator failed on the probe's SSE/POPCNT/CMPXCHG16B code (emulation failure exit)".into())
            }
            VcpuExit::Shutdown => return Err("the probe guest triple-faulted (exception delivery through the IDT does not work)".into()),
            VcpuExit::FailEntry(reason, _) => return Err(format!("VM entry failed (hardware reason {reason:#x})")),
            VcpuExit::Hlt => return Err("the probe guest halted unexpectedly".into()),
            other => return Err(format!("unexpected exit from the probe guest: {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever this host offers, the probe must reach a verdict quickly and
    /// say why; on this project's CI hosts (PVM) the verdict is "unusable".
    #[test]
    fn probe_reaches_a_verdict() {
        let t = Instant::now();
        let status = probe();
        eprintln!("KVM probe: {status:?} in {:?}", t.elapsed());
        assert!(t.elapsed().as_secs() < 3);
        match &status {
            KvmStatus::Unusable(why) | KvmStatus::Absent(why) => assert!(!why.is_empty()),
            KvmStatus::Usable { loop_rate } => assert!(*loop_rate >= MIN_LOOP_RATE),
        }
        if std::path::Path::new("/sys/module/kvm_pvm").exists() {
            assert!(matches!(status, KvmStatus::Unusable(ref why) if why.contains("PVM")), "{status:?}");
        }
    }
}
