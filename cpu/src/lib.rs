//! kagami-cpu: the x86-64 processor — architectural state, the memory path
//! (guest RAM, software TLB, page walker), the decoded-block cache and the
//! interpreter. See ARCHITECTURE.md for the path of one instruction.

pub mod block;
pub mod bus;
pub mod cpu;
pub(crate) mod debug;
mod devio;
pub mod dispatch;
pub mod exception;
pub mod exec;
pub mod flags;
pub mod fpu;
pub mod fuzz;
pub mod insn;
pub mod interrupt;
pub mod jit_iface;
pub mod memory;
pub mod mmu;
#[cfg(test)]
mod mmu_tests;
pub mod operand;
pub mod seg;
pub mod simd;
pub mod state;
pub mod system;

pub use bus::{Bus, NullBus};
pub use cpu::{Cpu, CpuModel, Exit};
pub use exception::Exception;
pub use memory::{GuestMemory, PhysMap, Region, RegionKind};
pub use state::CpuState;
