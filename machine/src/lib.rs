pub mod kvm;
