//! Storage: the block layer ([`block`]) and the disk controllers built on it.

pub mod block;

pub use block::{check_range, BlockBackend, BlockError, MemBackend, Overlay};
