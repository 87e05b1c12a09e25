//! One KVM vCPU driven like kagami's software CPU: `KvmCpu::run(bus, …)`
//! returns the same `Exit` values as `Cpu::run`, port-I/O and MMIO exits go
//! to the same `Bus`, interrupts come from the bus's (kagami's own) PIC,
//! IOAPIC and LAPIC and enter with KVM_INTERRUPT when KVM says the guest can
//! take one (the interrupt window), and HLT is handled in user space.
//!
//! Stopping at an instruction boundary: after a port-I/O or MMIO exit the
//! instruction is only complete once KVM is re-entered, so before returning
//! (or reading state) the run loop re-enters once with `immediate_exit` set,
//! which finishes the instruction and returns without running the guest
//! (Documentation/virt/kvm/api.rst, "immediate_exit").

use super::state::{to_kvm, KvmState, PendingEvents};
use super::vm::KvmVm;
use kagami_cpu::{Bus, Cpu, CpuState, Exit};
use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_xcr, kvm_xcrs, CpuId, Msrs};
use kvm_ioctls::{Cap, VcpuExit, VcpuFd};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// KVM_INTERRUPT = _IOW(KVMIO, 0x86, struct kvm_interrupt) (linux/kvm.h);
/// kvm-ioctls does not wrap it.
const KVM_INTERRUPT: libc::c_ulong = (1 << 30) | (4 << 16) | (0xae << 8) | 0x86;
/// KVM_SET_DEVICE_ATTR = _IOW(KVMIO, 0xe1, struct kvm_device_attr); the
/// wrapper exists only for other architectures' vCPUs in kvm-ioctls.
const KVM_SET_DEVICE_ATTR: libc::c_ulong = (1 << 30) | (24 << 16) | (0xae << 8) | 0xe1;

pub struct KvmCpu {
    // Declared first so that it is dropped before the VM and its memory.
    pub(crate) vcpu: VcpuFd,
    vm: KvmVm,
    /// The MSRs of `state::msr_list` that this host's KVM can save and restore.
    msrs: Vec<u32>,
    has_xcrs: bool,
    has_xsave: bool,
    tsc_settable: bool,
    /// HLT executed and no interrupt has woken the vCPU yet.
    halted: bool,
    /// The last CR8 value synchronised with the bus's TPR.
    cr8: u64,
    kicker: Kicker,
    /// Exits taken, by kind, since creation (for benchmarks and tests).
    pub exits: ExitCounts,
}

/// A port access KVM handed to user space.
enum Io {
    Out(u16, Vec<u8>),
    /// Port and the number of bytes to read.
    In(u16, usize),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ExitCounts {
    pub io: u64,
    pub mmio: u64,
    pub hlt: u64,
    pub irq_window: u64,
    pub interrupts_injected: u64,
    pub other: u64,
}

impl KvmCpu {
    /// A VM over `cpu`'s memory and map with one vCPU whose CPUID is KVM's
    /// supported set intersected with `cpu`'s model, in `cpu`'s state.
    pub fn new(cpu: &Cpu) -> Result<KvmCpu, String> {
        let vm = KvmVm::new(&cpu.mem, &cpu.phys)?;
        let vcpu = vm.vm.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU failed: {e}"))?;
        let cpuid = intersect_cpuid(&vm.supported_cpuid, |l, s| cpu.cpuid(l, s))?;
        vcpu.set_cpuid2(&cpuid).map_err(|e| format!("KVM_SET_CPUID2 failed: {e}"))?;
        let index = vm
            .kvm
            .get_msr_index_list()
            .map_err(|e| format!("KVM_GET_MSR_INDEX_LIST failed: {e}"))?;
        let msrs = super::state::msr_list(&cpu.s)
            .into_iter()
            .map(|(i, _)| i)
            .filter(|i| index.as_slice().contains(i))
            .collect();
        let has_xcrs = vm.kvm.check_extension(Cap::Xcrs);
        let has_xsave = vm.kvm.check_extension(Cap::Xsave);
        let mut k = KvmCpu {
            vcpu,
            vm,
            msrs,
            has_xcrs,
            has_xsave,
            tsc_settable: true,
            halted: false,
            cr8: 0,
            kicker: Kicker::new(),
            exits: ExitCounts::default(),
        };
        k.set_state(&cpu.s)?;
        Ok(k)
    }

    pub fn vm(&self) -> &KvmVm {
        &self.vm
    }

    /// Follow a change of the machine's physical memory map (the software
    /// CPU's `Cpu::set_phys_map`).
    pub fn set_phys_map(&mut self, phys: &kagami_cpu::PhysMap) -> Result<(), String> {
        self.vm.set_phys_map(phys)
    }

    /// Load a software CPU's state into the vCPU.
    pub fn set_state(&mut self, s: &CpuState) -> Result<(), String> {
        let k = to_kvm(s);
        let v = &self.vcpu;
        v.set_sregs(&k.sregs).map_err(|e| format!("KVM_SET_SREGS failed: {e}"))?;
        v.set_regs(&k.regs).map_err(|e| format!("KVM_SET_REGS failed: {e}"))?;
        self.set_fpu_image(&k.fxsave)?;
        let v = &self.vcpu;
        if self.has_xcrs {
            let mut xcrs = kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            };
            xcrs.xcrs[0] = kvm_xcr {
                xcr: 0,
                reserved: 0,
                value: k.xcr0,
            };
            v.set_xcrs(&xcrs)
                .map_err(|e| format!("KVM_SET_XCRS (XCR0 = {:#x}) failed: {e}", k.xcr0))?;
        }
        let entries: Vec<kvm_msr_entry> = k
            .msrs
            .iter()
            .filter(|(i, _)| self.msrs.contains(i))
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect();
        let list = Msrs::from_entries(&entries).map_err(|e| format!("MSR list: {e:?}"))?;
        let n = v.set_msrs(&list).map_err(|e| format!("KVM_SET_MSRS failed: {e}"))?;
        if n != entries.len() {
            let bad = entries[n];
            return Err(format!("KVM refused MSR {:#x} = {:#x}", bad.index, bad.data));
        }
        if let Some(&(_, tsc)) = k.msrs.iter().find(|(i, _)| *i == super::state::msr::TSC) {
            self.tsc_settable = self.set_tsc(tsc)?;
        }
        let v = &self.vcpu;
        v.set_vcpu_events(&k.events)
            .map_err(|e| format!("KVM_SET_VCPU_EVENTS failed: {e}"))?;
        v.set_debug_regs(&k.debugregs)
            .map_err(|e| format!("KVM_SET_DEBUGREGS failed: {e}"))?;
        self.halted = k.halted;
        self.cr8 = k.sregs.cr8;
        Ok(())
    }

    /// x87/SSE state in: through KVM_SET_XSAVE where KVM has it (the XSAVE
    /// legacy area is the FXSAVE64 image; XSTATE_BV gets the x87 and SSE
    /// bits so XRSTOR takes them, SDM Vol. 1, 13.8), else KVM_SET_FPU.
    /// (KVM_GET_FPU loses MXCSR on this project's PVM hosts; XSAVE does not.)
    fn set_fpu_image(&mut self, img: &[u8; 512]) -> Result<(), String> {
        if !self.has_xsave {
            return self
                .vcpu
                .set_fpu(&fpu_from_image(img))
                .map_err(|e| format!("KVM_SET_FPU failed: {e}"));
        }
        let mut x = self.vcpu.get_xsave().map_err(|e| format!("KVM_GET_XSAVE failed: {e}"))?;
        for (k, w) in x.region[..128].iter_mut().enumerate() {
            // Bytes 28..31 are MXCSR_MASK, the host's to say.
            if k != 7 {
                *w = u32::from_le_bytes(img[4 * k..4 * k + 4].try_into().unwrap());
            }
        }
        x.region[128] |= 3;
        // SAFETY: KVM_SET_XSAVE reads `size_of::<kvm_xsave>()` (4096) bytes
        // unless the VM was given dynamically enabled XSAVE features
        // (ARCH_REQ_XCOMP_GUEST_PERM), which kagami never requests.
        unsafe { self.vcpu.set_xsave(&x) }.map_err(|e| format!("KVM_SET_XSAVE failed: {e}"))
    }

    fn get_fpu_image(&self) -> Result<[u8; 512], String> {
        if !self.has_xsave {
            let f = self.vcpu.get_fpu().map_err(|e| format!("KVM_GET_FPU failed: {e}"))?;
            return Ok(image_from_fpu(&f));
        }
        let x = self.vcpu.get_xsave().map_err(|e| format!("KVM_GET_XSAVE failed: {e}"))?;
        let mut img = [0u8; 512];
        for (k, w) in x.region[..128].iter().enumerate() {
            img[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
        }
        let bv = x.region[128];
        if bv & 1 == 0 {
            // x87 in its initial configuration (SDM Vol. 1, 13.6).
            img[..24].fill(0);
            img[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
            img[32..160].fill(0);
        }
        if bv & 2 == 0 {
            img[160..416].fill(0);
        }
        Ok(img)
    }

    fn read_tsc(&self) -> Result<u64, String> {
        let mut list = Msrs::from_entries(&[kvm_msr_entry {
            index: super::state::msr::TSC,
            ..Default::default()
        }])
        .map_err(|e| format!("MSR list: {e:?}"))?;
        self.vcpu
            .get_msrs(&mut list)
            .map_err(|e| format!("KVM_GET_MSRS (TSC) failed: {e}"))?;
        Ok(list.as_slice()[0].data)
    }

    /// Make the guest's TSC read `value`. KVM treats a host write of
    /// IA32_TSC close to what it expects as "synchronise" and may ignore it,
    /// so the result is checked and, if it did not take, the TSC offset is
    /// set through the vCPU attribute (KVM_VCPU_TSC_OFFSET). Returns false
    /// where neither works (PVM runs the guest on the host's TSC).
    fn set_tsc(&self, value: u64) -> Result<bool, String> {
        // One second at any plausible TSC rate.
        const CLOSE: u64 = 1 << 32;
        if self.read_tsc()?.abs_diff(value) < CLOSE {
            return Ok(true);
        }
        // SAFETY: RDTSC has no preconditions on x86-64.
        let host = unsafe { core::arch::x86_64::_rdtsc() };
        let mut offset = value.wrapping_sub(host);
        let attr = kvm_bindings::kvm_device_attr {
            flags: 0,
            group: kvm_bindings::KVM_VCPU_TSC_CTRL,
            attr: kvm_bindings::KVM_VCPU_TSC_OFFSET as u64,
            addr: &mut offset as *mut u64 as u64,
        };
        // SAFETY: KVM_SET_DEVICE_ATTR reads one `kvm_device_attr`, whose
        // `addr` points at `offset`, live for the call.
        let r = unsafe { libc::ioctl(self.vcpu.as_raw_fd(), KVM_SET_DEVICE_ATTR, &attr as *const _) };
        if r != 0 {
            return Ok(false);
        }
        Ok(self.read_tsc()?.abs_diff(value) < CLOSE)
    }

    /// RFLAGS.IF of the vCPU (one KVM_GET_REGS).
    pub fn interrupts_enabled(&self) -> Result<bool, String> {
        let regs = self.vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS failed: {e}"))?;
        Ok(regs.rflags & kagami_cpu::state::flags::IF != 0)
    }

    /// Whether the last `set_state` could set the guest's TSC (false on PVM,
    /// where the guest reads the host's TSC).
    pub fn tsc_settable(&self) -> bool {
        self.tsc_settable
    }

    /// Read the vCPU's state (at an instruction boundary: `run` returns only
    /// there).
    pub fn get_state(&mut self) -> Result<KvmState, String> {
        let v = &self.vcpu;
        let regs = v.get_regs().map_err(|e| format!("KVM_GET_REGS failed: {e}"))?;
        let sregs = v.get_sregs().map_err(|e| format!("KVM_GET_SREGS failed: {e}"))?;
        let fxsave = self.get_fpu_image()?;
        let xcr0 = if self.has_xcrs {
            let x = v.get_xcrs().map_err(|e| format!("KVM_GET_XCRS failed: {e}"))?;
            x.xcrs[..x.nr_xcrs as usize].iter().find(|x| x.xcr == 0).map_or(1, |x| x.value)
        } else {
            1
        };
        let entries: Vec<kvm_msr_entry> = self
            .msrs
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut list = Msrs::from_entries(&entries).map_err(|e| format!("MSR list: {e:?}"))?;
        let n = v.get_msrs(&mut list).map_err(|e| format!("KVM_GET_MSRS failed: {e}"))?;
        if n != entries.len() {
            return Err(format!("KVM could not read MSR {:#x}", entries[n].index));
        }
        let msrs = list.as_slice().iter().map(|e| (e.index, e.data)).collect();
        let events = v.get_vcpu_events().map_err(|e| format!("KVM_GET_VCPU_EVENTS failed: {e}"))?;
        let debugregs = v.get_debug_regs().map_err(|e| format!("KVM_GET_DEBUGREGS failed: {e}"))?;
        Ok(KvmState {
            regs,
            sregs,
            fxsave,
            xcr0,
            msrs,
            events,
            debugregs,
            halted: self.halted,
        })
    }

    /// Move the vCPU's state into `cpu` (which must share this VM's memory)
    /// and deliver there what KVM had accepted but not delivered.
    pub fn save_to(&mut self, cpu: &mut Cpu, bus: &mut dyn Bus) -> Result<(), String> {
        let k = self.get_state()?;
        let (s, pending) = super::state::from_kvm(&k, &cpu.s);
        cpu.s = s;
        // KVM wrote guest memory behind the software CPU's back: drop its
        // decoded blocks and TLB (re-setting the map does both).
        let phys = cpu.phys.clone();
        cpu.set_phys_map(phys);
        cpu.update_mode();
        deliver_pending(cpu, bus, pending);
        Ok(())
    }

    /// Run until the guest halts with nothing to wake it, triple-faults, the
    /// bus asks to stop, or `deadline` passes (host time; `Exit::Budget`).
    /// Returns only at an instruction boundary. An exit KVM cannot handle
    /// (its instruction emulator failing, a failed VM entry) is an error.
    pub fn run(&mut self, bus: &mut dyn Bus, deadline: Option<Instant>) -> Result<Exit, String> {
        if let Some(d) = deadline {
            self.kicker.arm(d);
        }
        let r = self.run_loop(bus, deadline);
        self.kicker.disarm();
        r
    }

    fn run_loop(&mut self, bus: &mut dyn Bus, deadline: Option<Instant>) -> Result<Exit, String> {
        // An I/O or MMIO instruction handled in user space and not yet
        // completed by re-entering KVM.
        let mut incomplete = false;
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if incomplete {
                    self.complete_pending_io()?;
                }
                return Ok(Exit::Budget);
            }
            if bus.take_nmi() {
                self.vcpu.nmi().map_err(|e| format!("KVM_NMI failed: {e}"))?;
                self.halted = false;
            }
            let injected = self.offer_interrupt(bus)?;
            if self.halted && !injected {
                return Ok(Exit::Halted);
            }
            let tpr = (bus.read_tpr() >> 4) as u64;
            self.vcpu.get_kvm_run().cr8 = tpr;
            self.cr8 = tpr;
            // KVM_RUN first completes a pending I/O, then checks for signals
            // (Documentation/virt/kvm/api.rst, "KVM_EXIT_IO"), so after it
            // returns, in any way, nothing is left incomplete.
            let r = self.vcpu.run();
            incomplete = false;
            let exit = match r {
                Ok(exit) => exit,
                // The kicker's signal (deadline) or another signal: look again.
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
                Err(e) => return Err(format!("KVM_RUN failed: {e}")),
            };
            let mut complete = false;
            let mut io = None;
            match exit {
                VcpuExit::IoOut(port, data) => io = Some(Io::Out(port, data.to_vec())),
                VcpuExit::IoIn(port, data) => io = Some(Io::In(port, data.len())),
                VcpuExit::MmioRead(addr, data) => {
                    self.exits.mmio += 1;
                    complete = true;
                    let v = bus.mmio_read(addr, data.len() as u8);
                    let len = data.len().min(8);
                    data[..len].copy_from_slice(&v.to_le_bytes()[..len]);
                }
                VcpuExit::MmioWrite(addr, data) => {
                    self.exits.mmio += 1;
                    complete = true;
                    let len = data.len().min(8);
                    let mut v = [0u8; 8];
                    v[..len].copy_from_slice(&data[..len]);
                    bus.mmio_write(addr, len as u8, u64::from_le_bytes(v));
                }
                VcpuExit::Hlt => {
                    self.exits.hlt += 1;
                    self.halted = true;
                }
                VcpuExit::IrqWindowOpen => self.exits.irq_window += 1,
                VcpuExit::Intr => {}
                VcpuExit::Shutdown => return Ok(Exit::TripleFault),
                VcpuExit::InternalError => {
                    let rip = self.vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
                    return Err(format!(
                        "KVM's instruction emulator failed at RIP {rip:#x} (KVM_EXIT_INTERNAL_ERROR; on PVM hosts ring-0 SSE, x87 math and INT n end here)"
                    ));
                }
                VcpuExit::FailEntry(reason, _) => return Err(format!("VM entry failed (hardware reason {reason:#x})")),
                other => {
                    self.exits.other += 1;
                    return Err(format!("unexpected KVM exit: {other:?}"));
                }
            }
            if let Some(io) = io {
                self.exits.io += 1;
                complete = true;
                self.port_io(bus, io);
            }
            let cr8 = self.vcpu.get_kvm_run().cr8;
            if cr8 != self.cr8 {
                bus.write_tpr((cr8 << 4) as u8);
                self.cr8 = cr8;
            }
            if bus.stop_requested() || deadline.is_some_and(|d| Instant::now() >= d) {
                if complete {
                    self.complete_pending_io()?;
                }
                return Ok(if bus.stop_requested() { Exit::Stopped } else { Exit::Budget });
            }
            incomplete = complete;
        }
    }

    /// Carry out a KVM_EXIT_IO on the bus. String instructions (REP INS/OUTS)
    /// arrive as `count` elements of `size` bytes in one exit.
    fn port_io(&mut self, bus: &mut dyn Bus, io: Io) {
        // SAFETY: the exit reason was KVM_EXIT_IO, so `io` is the union
        // member the kernel filled in; the field is plain data.
        let info = unsafe { self.vcpu.get_kvm_run().__bindgen_anon_1.io };
        let size = (info.size as usize).clamp(1, 4);
        match io {
            Io::Out(port, data) => {
                for chunk in data.chunks(size) {
                    let mut v = [0u8; 4];
                    v[..chunk.len()].copy_from_slice(chunk);
                    bus.io_write(port, size as u8, u32::from_le_bytes(v));
                }
            }
            Io::In(port, len) => {
                let base = self.vcpu.get_kvm_run() as *mut kvm_bindings::kvm_run as *mut u8;
                // SAFETY: KVM put `len` (count x size) bytes of I/O data at
                // `data_offset` inside the vCPU's kvm_run mapping for user
                // space to fill before the next KVM_RUN; the mapping lives as
                // long as `self.vcpu` and nothing else refers to it here.
                let data = unsafe { std::slice::from_raw_parts_mut(base.add(info.data_offset as usize), len) };
                for chunk in data.chunks_mut(size) {
                    let v = bus.io_read(port, size as u8);
                    chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
                }
            }
        }
    }

    /// Inject the bus's pending interrupt if the guest can take it now,
    /// otherwise ask KVM to exit when it can. Returns whether one went in.
    fn offer_interrupt(&mut self, bus: &mut dyn Bus) -> Result<bool, String> {
        if !bus.interrupt_pending() {
            self.vcpu.get_kvm_run().request_interrupt_window = 0;
            return Ok(false);
        }
        // kvm_run's readiness flags describe the last exit; a vCPU that was
        // given a halted state without running has none yet. A halted vCPU
        // is past its HLT (no interrupt shadow), so RFLAGS.IF decides.
        let ready = if self.halted {
            self.interrupts_enabled()?
        } else {
            let run = self.vcpu.get_kvm_run();
            run.ready_for_interrupt_injection != 0 && run.if_flag != 0
        };
        if ready {
            self.vcpu.get_kvm_run().request_interrupt_window = 0;
            if let Some(vector) = bus.acknowledge_interrupt() {
                let irq = kvm_bindings::kvm_interrupt { irq: vector as u32 };
                // SAFETY: KVM_INTERRUPT reads one `struct kvm_interrupt`
                // from the pointer, which is valid for the call.
                let r = unsafe { libc::ioctl(self.vcpu.as_raw_fd(), KVM_INTERRUPT, &irq as *const _) };
                if r != 0 {
                    return Err(format!(
                        "KVM_INTERRUPT (vector {vector:#x}) failed: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                self.exits.interrupts_injected += 1;
                self.halted = false;
                return Ok(true);
            }
            return Ok(false);
        }
        // Not now: KVM exits with KVM_EXIT_IRQ_WINDOW_OPEN when it can.
        // A halted vCPU with IF clear stays halted (only NMI/reset wake it).
        self.vcpu.get_kvm_run().request_interrupt_window = 1;
        Ok(false)
    }

    /// Finish an I/O or MMIO instruction without running the guest further.
    fn complete_pending_io(&mut self) -> Result<(), String> {
        self.vcpu.set_kvm_immediate_exit(1);
        let r = self.vcpu.run().map(|_| ());
        self.vcpu.set_kvm_immediate_exit(0);
        match r {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            Ok(()) => Ok(()),
            Err(e) => Err(format!("KVM_RUN (completing I/O) failed: {e}")),
        }
    }
}

/// Deliver events KVM had accepted but not delivered on the software CPU.
pub fn deliver_pending(cpu: &mut Cpu, bus: &mut dyn Bus, p: PendingEvents) {
    if let Some((vector, error)) = p.exception {
        let _ = cpu.deliver(bus, vector, error, kagami_cpu::interrupt::Source::Exception);
    }
    if p.nmi {
        cpu.s.nmi_blocked = 1;
        cpu.deliver_external(bus, 2);
    }
    if let Some(v) = p.interrupt {
        cpu.deliver_external(bus, v);
    }
}

fn fpu_from_image(img: &[u8; 512]) -> kvm_fpu {
    let u16_at = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(img[o..o + 8].try_into().unwrap());
    let mut f = kvm_fpu {
        fcw: u16_at(0),
        fsw: u16_at(2),
        ftwx: img[4],
        last_opcode: u16_at(6),
        last_ip: u64_at(8),
        last_dp: u64_at(16),
        mxcsr: u32::from_le_bytes(img[24..28].try_into().unwrap()),
        ..Default::default()
    };
    for k in 0..8 {
        f.fpr[k].copy_from_slice(&img[32 + 16 * k..48 + 16 * k]);
    }
    for k in 0..16 {
        f.xmm[k].copy_from_slice(&img[160 + 16 * k..176 + 16 * k]);
    }
    f
}

fn image_from_fpu(f: &kvm_fpu) -> [u8; 512] {
    let mut img = [0u8; 512];
    img[0..2].copy_from_slice(&f.fcw.to_le_bytes());
    img[2..4].copy_from_slice(&f.fsw.to_le_bytes());
    img[4] = f.ftwx;
    img[6..8].copy_from_slice(&f.last_opcode.to_le_bytes());
    img[8..16].copy_from_slice(&f.last_ip.to_le_bytes());
    img[16..24].copy_from_slice(&f.last_dp.to_le_bytes());
    img[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
    for k in 0..8 {
        img[32 + 16 * k..48 + 16 * k].copy_from_slice(&f.fpr[k]);
    }
    for k in 0..16 {
        img[160 + 16 * k..176 + 16 * k].copy_from_slice(&f.xmm[k]);
    }
    img
}

/// KVM's supported CPUID intersected with kagami's model: feature bits a
/// guest sees are those both can run (leaves 1, 7, 0xD, 0x8000_0001); the
/// maximum leaves are the smaller of the two; vendor, signature, cache and
/// topology leaves are KVM's (they describe the processor that actually
/// runs the code); KVM's paravirtual leaves (0x4000_00xx) are left out.
pub fn intersect_cpuid(kvm: &CpuId, kagami: impl Fn(u32, u32) -> [u32; 4]) -> Result<CpuId, String> {
    let max_std = kagami(0, 0)[0];
    let max_ext = kagami(0x8000_0000, 0)[0];
    let mut out = Vec::new();
    for e in kvm.as_slice() {
        let mut e = *e;
        let k = kagami(e.function, e.index);
        match e.function {
            0 => e.eax = e.eax.min(max_std),
            0x8000_0000 => e.eax = e.eax.min(max_ext),
            f if (0x4000_0000..0x4000_0100).contains(&f) => continue,
            f if f < 0x8000_0000 && f > max_std => continue,
            f if f > max_ext => continue,
            1 => {
                // ECX bit 27 (OSXSAVE) follows CR4 and KVM sets it itself.
                e.ecx &= k[2] | (1 << 27);
                e.edx &= k[3];
            }
            7 if e.index == 0 => {
                e.ebx &= k[1];
                e.ecx &= k[2];
                e.edx &= k[3];
            }
            7 => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0),
            0xd => match e.index {
                0 => {
                    e.eax &= k[0];
                    e.edx &= k[3];
                    e.ecx = k[2].max(576);
                }
                1 => e.eax &= k[0],
                _ => continue,
            },
            0x8000_0001 => {
                e.ecx &= k[2];
                e.edx &= k[3];
            }
            _ => {}
        }
        out.push(e);
    }
    CpuId::from_entries(&out).map_err(|e| format!("CPUID list: {e:?}"))
}

/// Gets a vCPU thread out of KVM_RUN at a host-time deadline: a helper
/// thread signals it (a no-op handler installed without SA_RESTART makes
/// KVM_RUN return EINTR) and repeats every millisecond until the deadline is
/// disarmed, which covers a signal landing just before KVM_RUN.
struct Kicker {
    shared: Arc<(Mutex<KickState>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct KickState {
    deadline: Option<Instant>,
    target: libc::pthread_t,
    quit: bool,
}

extern "C" fn kick_handler(_: libc::c_int) {}

fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

impl Kicker {
    fn new() -> Kicker {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            // SAFETY: installs a handler that does nothing (async-signal-safe)
            // for a real-time signal kagami reserves for this purpose.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = kick_handler as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                sa.sa_flags = 0;
                libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
            }
        });
        Kicker {
            shared: Arc::new((
                Mutex::new(KickState {
                    deadline: None,
                    // SAFETY: pthread_self has no preconditions.
                    target: unsafe { libc::pthread_self() },
                    quit: false,
                }),
                Condvar::new(),
            )),
            thread: None,
        }
    }

    fn arm(&mut self, deadline: Instant) {
        let (m, cv) = &*self.shared;
        {
            let mut st = m.lock().unwrap();
            st.deadline = Some(deadline);
            // SAFETY: pthread_self has no preconditions.
            st.target = unsafe { libc::pthread_self() };
        }
        cv.notify_all();
        if self.thread.is_none() {
            let shared = self.shared.clone();
            self.thread = Some(std::thread::spawn(move || kicker_thread(shared)));
        }
    }

    fn disarm(&mut self) {
        let (m, cv) = &*self.shared;
        m.lock().unwrap().deadline = None;
        cv.notify_all();
    }
}

fn kicker_thread(shared: Arc<(Mutex<KickState>, Condvar)>) {
    let (m, cv) = &*shared;
    let mut st = m.lock().unwrap();
    loop {
        if st.quit {
            return;
        }
        match st.deadline {
            None => st = cv.wait(st).unwrap(),
            Some(d) => {
                let now = Instant::now();
                if now < d {
                    st = cv.wait_timeout(st, d - now).unwrap().0;
                } else {
                    // SAFETY: `target` is the vCPU thread, alive while the
                    // deadline is armed (disarm runs before it returns).
                    unsafe { libc::pthread_kill(st.target, kick_signal()) };
                    st = cv.wait_timeout(st, Duration::from_millis(1)).unwrap().0;
                }
            }
        }
    }
}

impl Drop for Kicker {
    fn drop(&mut self) {
        self.shared.0.lock().unwrap().quit = true;
        self.shared.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
