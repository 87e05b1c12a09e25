//! kagami-tests: cross-crate tests and CPU conformance harnesses.

pub mod guest;
pub mod moo;
pub mod sst;
