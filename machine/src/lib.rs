pub mod clock;
pub mod kvm;
