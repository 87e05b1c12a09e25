//! Storage: the block layer ([`block`]), the ATA/ATAPI device model both
//! controllers share ([`ata`], [`atapi`]), the PIIX3 IDE channels ([`ide`])
//! and the ICH9 AHCI controller ([`ahci`]).

pub mod ahci;
pub mod ata;
pub mod atapi;
pub mod block;
pub mod ide;
pub mod piix_ide;

pub use ahci::Ich9Ahci;
pub use ata::Drive;
pub use block::{check_range, BlockBackend, BlockError, MemBackend, Overlay};
pub use ide::IdeController;
pub use piix_ide::Piix3IdePci;

#[cfg(test)]
mod tests;
