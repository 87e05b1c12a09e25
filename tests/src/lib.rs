//! kagami-tests: cross-crate tests and CPU conformance harnesses.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod diff;
pub mod guest;
pub mod harness;
pub mod kvm_guest;
pub mod mbkernel;
pub mod moo;
pub mod sst;
