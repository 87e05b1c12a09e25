//! KVM as the CPU, where the host's KVM can run a general guest.
//!
//! - `probe.rs`: the start-up probe (can this host's KVM run a general guest?).
//! - `vm.rs`: a VM over kagami's guest memory (memory slots, MMIO holes).
//! - `vcpu.rs`: one vCPU run like the software CPU against the same `Bus`.
//! - `run.rs`: the PC's run loop with KVM as the CPU.
//! - `state.rs`: `CpuState` ⇄ KVM register/segment/FPU/MSR/event state.

pub mod probe;
pub mod run;
pub mod state;
pub mod vcpu;
pub mod vm;

pub use vcpu::KvmCpu;
pub use vm::KvmVm;
#[cfg(test)]
mod tests;
