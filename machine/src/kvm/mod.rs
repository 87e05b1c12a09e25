//! KVM as the CPU, where the host's KVM can run a general guest.

pub mod probe;
