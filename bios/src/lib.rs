//! kagami-bios: firmware for the PC machine — the boot protocols that load a
//! kernel directly (Linux bzImage, Multiboot), the E820 memory map, and (to
//! come) ACPI/SMBIOS tables and the built-in BIOS. Knows nothing of the CPU:
//! it writes guest memory through [`boot::GuestWriter`] and describes the
//! entry state as a [`boot::BootEntry`].

pub mod acpi;
pub mod boot;
pub mod builtin;
pub mod e820;
pub mod linux;
pub mod multiboot;
pub mod pvh;
pub mod smbios;
