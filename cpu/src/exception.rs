//! Guest exceptions are values, not Rust errors: a guest doing something
//! illegal is normal operation. Every instruction handler returns
//! `Result<(), Exception>`; the executor delivers the exception through the
//! IDT/IVT (`interrupt.rs`).

/// An architectural exception, with its error code where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #DE, vector 0.
    DivideError,
    /// #DB, vector 1 (a fault or trap; DR6 already updated).
    Debug,
    /// #BP, vector 3 (INT3).
    Breakpoint,
    /// #OF, vector 4 (INTO).
    Overflow,
    /// #BR, vector 5 (BOUND).
    BoundRange,
    /// #UD, vector 6.
    InvalidOpcode,
    /// #NM, vector 7.
    DeviceNotAvailable,
    /// #DF, vector 8 (error code always 0).
    DoubleFault,
    /// #TS(selector), vector 10.
    InvalidTss(u16),
    /// #NP(selector), vector 11.
    SegmentNotPresent(u16),
    /// #SS(selector), vector 12.
    StackFault(u16),
    /// #GP(selector or 0), vector 13.
    GeneralProtection(u16),
    /// #PF, vector 14: the linear address (CR2) and the error code.
    PageFault { addr: u64, code: u32 },
    /// #MF, vector 16 (x87 error with CR0.NE).
    FloatingPoint,
    /// #AC(0), vector 17.
    AlignmentCheck,
    /// #MC, vector 18.
    MachineCheck,
    /// #XM, vector 19 (SIMD floating-point, CR4.OSXMMEXCPT).
    SimdFloatingPoint,
    /// A software interrupt (INT n): not an exception but delivered the same
    /// way, with the pushed IP pointing after the instruction.
    SoftwareInterrupt(u8),
}

/// Page-fault error code bits.
pub mod pf {
    pub const P: u32 = 1 << 0;
    pub const W: u32 = 1 << 1;
    pub const U: u32 = 1 << 2;
    pub const RSVD: u32 = 1 << 3;
    pub const I: u32 = 1 << 4;
}

/// Exception classes for the double-fault rule (SDM Vol. 3A, table 7-4).
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum Class {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

impl Exception {
    pub fn vector(&self) -> u8 {
        use Exception::*;
        match self {
            DivideError => 0,
            Debug => 1,
            Breakpoint => 3,
            Overflow => 4,
            BoundRange => 5,
            InvalidOpcode => 6,
            DeviceNotAvailable => 7,
            DoubleFault => 8,
            InvalidTss(_) => 10,
            SegmentNotPresent(_) => 11,
            StackFault(_) => 12,
            GeneralProtection(_) => 13,
            PageFault { .. } => 14,
            FloatingPoint => 16,
            AlignmentCheck => 17,
            MachineCheck => 18,
            SimdFloatingPoint => 19,
            SoftwareInterrupt(v) => *v,
        }
    }

    /// The error code pushed in protected/long mode, if this vector has one.
    pub fn error_code(&self) -> Option<u32> {
        use Exception::*;
        match *self {
            DoubleFault | AlignmentCheck => Some(0),
            InvalidTss(s) | SegmentNotPresent(s) | StackFault(s) | GeneralProtection(s) => Some(s as u32),
            PageFault { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn class(&self) -> Class {
        use Exception::*;
        match self {
            DivideError | InvalidTss(_) | SegmentNotPresent(_) | StackFault(_) | GeneralProtection(_) => Class::Contributory,
            PageFault { .. } => Class::PageFault,
            DoubleFault => Class::DoubleFault,
            _ => Class::Benign,
        }
    }

    /// Traps report the address of the next instruction; faults of the
    /// faulting one.
    pub fn is_trap(&self) -> bool {
        matches!(self, Exception::Breakpoint | Exception::Overflow | Exception::SoftwareInterrupt(_))
    }

    /// Whether delivering this exception pushes RFLAGS with RF = 1 (SDM
    /// Vol. 3B 17.3.1.1): every fault-class exception does, so that
    /// returning to the faulting instruction does not hit an instruction
    /// breakpoint again, except #DB itself (its handler decides). Traps
    /// (INT n, INT3, INTO) and aborts (#DF, #MC) push RF as it is.
    pub fn sets_rf(&self) -> bool {
        use Exception::*;
        !self.is_trap() && !matches!(self, Debug | DoubleFault | MachineCheck)
    }

    /// #GP(0), the most common case.
    pub const GP0: Exception = Exception::GeneralProtection(0);
}

pub type Result<T> = core::result::Result<T, Exception>;
