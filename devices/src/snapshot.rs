//! Snapshots: every device's state as a plain serde struct.
//!
//! `save()` returns a `State` that fully describes the device (not its
//! wiring: IRQ lines, sinks and request queues are reattached by the
//! machine). `restore()` checks the whole state first and returns a
//! [`StateError`] for anything the hardware could not be in, leaving the
//! device untouched; only then does it apply it. A snapshot of the machine is
//! a tree of these keyed by device id (the machine's business).
//!
//! Times inside a state are absolute virtual nanoseconds, so a state is
//! consistent with the machine clock saved alongside it.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// Save/restore of one device.
pub trait Snapshot {
    type State: Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq;
    fn save(&self) -> Self::State;
    fn restore(&mut self, state: &Self::State) -> Result<(), StateError>;
}

/// A state that no device of this kind can be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    pub device: &'static str,
    pub reason: String,
}

impl StateError {
    pub fn new(device: &'static str, reason: impl Into<String>) -> Self {
        Self {
            device,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} state: {}", self.device, self.reason)
    }
}

impl std::error::Error for StateError {}

/// `Err(StateError)` unless `cond` holds.
pub fn check(device: &'static str, cond: bool, reason: impl FnOnce() -> String) -> Result<(), StateError> {
    if cond {
        Ok(())
    } else {
        Err(StateError::new(device, reason()))
    }
}
