//! kagami-machine: wiring, the `kagami` command line and the run loop.

pub mod accel;
pub mod board;
pub mod clock;
pub mod demo;
pub mod drive;
pub mod drive_options;
pub mod firmware;
pub mod gdb;
pub mod img;
pub mod initramfs;
pub mod kvm;
pub mod options;
pub mod pc;
