//! Local APIC of one processor (Intel SDM Vol. 3A chapter 11): the xAPIC
//! register page (11.4.1, table 11-1) as an [`MmioDevice`] at offsets inside
//! its 4 KiB window, the x2APIC MSR interface (11.12, MSRs 0x800–0x8ff) and
//! the IA32_TSC_DEADLINE MSR (11.5.4.1).
//!
//! Modelled: ID, version (0x50014: six LVT entries, no EOI-broadcast
//! suppression), TPR/APR/PPR (11.8.3.1), EOI with the level-triggered EOI
//! broadcast reported to the machine, LDR/DFR flat and cluster logical
//! destinations, SVR software enable and spurious vector (11.9), 256-bit
//! ISR/TMR/IRR, ESR with its write-to-latch behaviour (11.5.3), ICR (fixed,
//! lowest-priority, NMI, INIT, SIPI, shorthands, x2APIC SELF IPI), the LVT
//! (timer, thermal, performance, LINT0, LINT1, error), and the timer in
//! one-shot, periodic and TSC-deadline modes (11.5.4).
//!
//! Time: the timer's input clock (the "bus clock") is [`LAPIC_TIMER_HZ`], 1 GHz,
//! so one divided tick is `divide` nanoseconds of virtual time and every
//! expiry is an exact nanosecond. The TSC runs at [`TSC_HZ`] (also 1 GHz);
//! the machine hands TSC-deadline values in TSC units and this file converts.
//!
//! Single processor: an IPI whose destination includes this APIC is
//! accepted here; INIT and SIPI aimed at other processors (and INIT at this
//! one) are queued as [`IpiRequest`]s for the machine (future SMP). Fixed,
//! lowest-priority and NMI IPIs to other processors go nowhere.
//!
//! Left out: the APIC base relocation (the machine maps the page at the
//! architectural 0xfee00000), SMI delivery (no SMM), focus-processor
//! checking, the CMCI LVT, thermal and performance-counter interrupt
//! sources (their LVT entries are plain registers), the remote read
//! register, and LINT0/LINT1 in fixed delivery mode (the board only uses
//! LINT0 as ExtINT, the 8259's INTR, and LINT1 as NMI). The "delivery
//! status" bits always read 0 (delivery is instantaneous).

use crate::bus::MmioDevice;
use crate::snapshot::{check, Snapshot, StateError};
use crate::time::{ticks_to_ns, Timed};
use serde::{Deserialize, Serialize};

/// Frequency of the clock the APIC timer divides.
pub const LAPIC_TIMER_HZ: u64 = 1_000_000_000;
/// Frequency of the time-stamp counter the machine presents.
pub const TSC_HZ: u64 = 1_000_000_000;
/// Size of the MMIO register page.
pub const LAPIC_MMIO_SIZE: u64 = 0x1000;
/// Version register: version 0x14, max LVT entry 5 (SDM 11.4.8).
pub const LAPIC_VERSION: u32 = 0x0005_0014;

const LVT_MASKED: u32 = 1 << 16;
const SVR_ENABLE: u32 = 1 << 8;
// LVT indices.
const LVT_TIMER: usize = 0;
const LVT_LINT0: usize = 3;
const LVT_LINT1: usize = 4;
const LVT_ERROR: usize = 5;
/// Writable bits of each LVT entry (SDM figure 11-8).
const LVT_WRITABLE: [u32; 6] = [0x0007_00ff, 0x0001_07ff, 0x0001_07ff, 0x0001_a7ff, 0x0001_a7ff, 0x0001_00ff];
// ESR bits (SDM 11.5.3).
const ESR_SEND_ILLEGAL: u32 = 1 << 5;
const ESR_RECV_ILLEGAL: u32 = 1 << 6;
const ESR_ILLEGAL_REG: u32 = 1 << 7;

/// IA32_APIC_BASE's EN and EXTD bits, as the machine tracks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApicMode {
    /// EN = 0: the APIC is off; the 8259's INTR goes straight to the CPU.
    Disabled,
    /// EN = 1, EXTD = 0: registers in the MMIO page.
    XApic,
    /// EN = 1, EXTD = 1: registers as MSRs 0x800–0x8ff.
    X2Apic,
}

/// The LVT timer's mode field (bits 18:17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerMode {
    OneShot,
    Periodic,
    TscDeadline,
}

/// An INIT or start-up IPI for the machine to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpiKind {
    Init,
    /// Start-up at physical address `vector << 12`.
    Startup(u8),
}

/// Who an [`IpiRequest`] is for: the ICR's shorthand or destination field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpiTarget {
    /// This processor.
    SelfOnly,
    AllIncludingSelf,
    AllExcludingSelf,
    /// A destination field (8 bits in xAPIC mode, 32 in x2APIC mode).
    Destination {
        logical: bool,
        dest: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpiRequest {
    pub kind: IpiKind,
    pub target: IpiTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub mode: ApicMode,
    /// The APIC ID (xAPIC: the value of bits 31:24 of the ID register).
    pub id: u32,
    /// The ID the processor was born with (x2APIC ID on entering x2APIC mode).
    pub initial_id: u32,
    pub tpr: u8,
    pub ldr: u32,
    pub dfr: u32,
    pub svr: u32,
    pub isr: [u32; 8],
    pub tmr: [u32; 8],
    pub irr: [u32; 8],
    /// Readable ESR and the errors collected since the last ESR write.
    pub esr: u32,
    pub esr_pending: u32,
    pub icr_low: u32,
    pub icr_high: u32,
    /// Timer, thermal, performance, LINT0, LINT1, error.
    pub lvt: [u32; 6],
    pub timer_initial: u32,
    pub timer_divide: u32,
    /// When the current count was loaded with `timer_initial`.
    pub timer_start_ns: u64,
    /// The next expiry not yet delivered.
    pub timer_next_ns: Option<u64>,
    /// IA32_TSC_DEADLINE (0: disarmed).
    pub tsc_deadline: u64,
    pub now_ns: u64,
    pub nmi_pending: bool,
    pub extint_pending: bool,
    pub ipi_requests: Vec<IpiRequest>,
    pub eoi_broadcasts: Vec<u8>,
}

pub struct Lapic {
    s: State,
}

fn bit(bits: &[u32; 8], v: u8) -> bool {
    bits[v as usize / 32] & (1 << (v % 32)) != 0
}
fn set_bit(bits: &mut [u32; 8], v: u8, on: bool) {
    let (w, b) = (v as usize / 32, 1u32 << (v % 32));
    if on {
        bits[w] |= b
    } else {
        bits[w] &= !b
    }
}
/// The highest vector set, if any.
fn highest(bits: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&w| bits[w] != 0)
        .map(|w| (w * 32 + 31 - bits[w].leading_zeros() as usize) as u8)
}

impl State {
    fn power_up(id: u32, bsp: bool) -> State {
        let mut lvt = [LVT_MASKED; 6];
        if bsp {
            // Virtual-wire mode as the firmware leaves it (MP spec 3.6.2.2):
            // the BSP's LINT0 passes the 8259's INTR (ExtINT), LINT1 is NMI.
            lvt[LVT_LINT0] = 0x700;
            lvt[LVT_LINT1] = 0x400;
        }
        State {
            mode: ApicMode::XApic,
            id,
            initial_id: id,
            tpr: 0,
            ldr: 0,
            dfr: 0xffff_ffff,
            svr: 0xff,
            isr: [0; 8],
            tmr: [0; 8],
            irr: [0; 8],
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt,
            timer_initial: 0,
            timer_divide: 0,
            timer_start_ns: 0,
            timer_next_ns: None,
            tsc_deadline: 0,
            now_ns: 0,
            nmi_pending: false,
            extint_pending: false,
            ipi_requests: Vec::new(),
            eoi_broadcasts: Vec::new(),
        }
    }
}

impl Lapic {
    /// The local APIC of the processor with APIC ID `id`, as at power-up
    /// (xAPIC mode, software-disabled). `bsp` selects the firmware's
    /// virtual-wire LINT0/LINT1 setup.
    pub fn new(id: u32, bsp: bool) -> Lapic {
        Lapic {
            s: State::power_up(id, bsp),
        }
    }

    pub fn mode(&self) -> ApicMode {
        self.s.mode
    }

    pub fn id(&self) -> u32 {
        self.s.id
    }

    /// Follow a write of IA32_APIC_BASE's EN/EXTD bits (SDM 11.12.5).
    /// Returns `false` for a transition the SDM forbids (the caller's #GP);
    /// the mode is then unchanged. Disabling resets the APIC to its
    /// power-up state except for the ID.
    pub fn set_mode(&mut self, mode: ApicMode) -> bool {
        use ApicMode::*;
        match (self.s.mode, mode) {
            (a, b) if a == b => {}
            (Disabled, X2Apic) | (X2Apic, XApic) => return false,
            (_, Disabled) => {
                let (id, now) = (self.s.initial_id, self.s.now_ns);
                self.s = State::power_up(id, false);
                self.s.now_ns = now;
                self.s.mode = Disabled;
            }
            (Disabled, XApic) => self.s.mode = XApic,
            (XApic, X2Apic) => {
                // SDM 11.12.5.1: the x2APIC ID is the initial APIC ID and
                // the LDR is derived from it.
                let id = self.s.initial_id;
                self.s.id = id;
                self.s.ldr = ((id >> 4) << 16) | (1 << (id & 0xf));
                self.s.mode = X2Apic;
            }
            _ => unreachable!("all mode pairs are covered"),
        }
        true
    }

    fn sw_enabled(&self) -> bool {
        self.s.svr & SVR_ENABLE != 0
    }

    fn isrv(&self) -> u8 {
        highest(&self.s.isr).unwrap_or(0)
    }

    /// Processor priority (SDM 11.8.3.1).
    pub fn ppr(&self) -> u8 {
        let isrv = self.isrv();
        if self.s.tpr >> 4 >= isrv >> 4 {
            self.s.tpr
        } else {
            isrv & 0xf0
        }
    }

    /// Arbitration priority (SDM 11.8.3.1, figure 11-15).
    fn apr(&self) -> u8 {
        let top = self.isrv().max(highest(&self.s.irr).unwrap_or(0));
        if self.s.tpr >> 4 >= top >> 4 {
            self.s.tpr
        } else {
            top & 0xf0
        }
    }

    /// CR8 writes land here (`tpr` holds the class in bits 7:4).
    pub fn set_tpr(&mut self, tpr: u8) {
        self.s.tpr = tpr;
    }

    pub fn tpr(&self) -> u8 {
        self.s.tpr
    }

    fn error(&mut self, bits: u32) {
        self.s.esr_pending |= bits;
        let lvt = self.s.lvt[LVT_ERROR];
        if lvt & LVT_MASKED == 0 {
            // An illegal error vector does not recurse: it just sets the bit.
            let v = lvt as u8;
            if v >= 16 {
                set_bit(&mut self.s.irr, v, true);
                set_bit(&mut self.s.tmr, v, false);
            } else {
                self.s.esr_pending |= ESR_RECV_ILLEGAL;
            }
        }
    }

    /// A fixed or lowest-priority interrupt message for this APIC (from the
    /// IOAPIC or an IPI). Vectors 0–15 are illegal (ESR bit 6). While the
    /// APIC is disabled, or software-disabled (SDM 11.4.7.2), fixed
    /// interrupts are not accepted.
    pub fn accept_interrupt(&mut self, vector: u8, level_triggered: bool) {
        if self.s.mode == ApicMode::Disabled || !self.sw_enabled() {
            return;
        }
        if vector < 16 {
            self.error(ESR_RECV_ILLEGAL);
            return;
        }
        set_bit(&mut self.s.irr, vector, true);
        set_bit(&mut self.s.tmr, vector, level_triggered);
    }

    /// An NMI message (IOAPIC, IPI or LINT1).
    pub fn accept_nmi(&mut self) {
        if self.s.mode != ApicMode::Disabled {
            self.s.nmi_pending = true;
        }
    }

    /// An ExtINT message from the IOAPIC: the vector comes from the 8259.
    pub fn accept_extint(&mut self) {
        if self.s.mode != ApicMode::Disabled {
            self.s.extint_pending = true;
        }
    }

    /// An INIT message: queued for the machine (it resets the processor).
    pub fn accept_init(&mut self) {
        self.s.ipi_requests.push(IpiRequest {
            kind: IpiKind::Init,
            target: IpiTarget::SelfOnly,
        });
    }

    /// NMI to take at the next instruction boundary (consumed).
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.s.nmi_pending)
    }

    /// Whether the 8259's INTR reaches the processor: the APIC is
    /// hardware-disabled, LINT0 is an unmasked ExtINT entry, or the IOAPIC
    /// sent an ExtINT message that has not been acknowledged.
    pub fn passes_extint(&self) -> bool {
        match self.s.mode {
            ApicMode::Disabled => true,
            _ => {
                let l = self.s.lvt[LVT_LINT0];
                self.s.extint_pending || (l & LVT_MASKED == 0 && (l >> 8) & 7 == 7)
            }
        }
    }

    /// The 8259 was acknowledged through this APIC (ExtINT).
    pub fn extint_acknowledged(&mut self) {
        self.s.extint_pending = false;
    }

    /// Whether LINT1 is programmed as an unmasked NMI input.
    pub fn lint1_is_nmi(&self) -> bool {
        let l = self.s.lvt[LVT_LINT1];
        self.s.mode != ApicMode::Disabled && l & LVT_MASKED == 0 && (l >> 8) & 7 == 4
    }

    /// The vector the processor would take now: the highest IRR vector
    /// whose priority class is above the PPR's (SDM 11.8.3).
    pub fn pending_vector(&self) -> Option<u8> {
        if self.s.mode == ApicMode::Disabled {
            return None;
        }
        let v = highest(&self.s.irr)?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// The INTA cycle: move the pending vector from IRR to ISR. With
    /// nothing deliverable (it was masked by a TPR raise meanwhile) the
    /// APIC answers with the spurious vector, which sets no ISR bit
    /// (SDM 11.9).
    pub fn acknowledge(&mut self) -> Option<u8> {
        if self.s.mode == ApicMode::Disabled {
            return None;
        }
        match self.pending_vector() {
            Some(v) => {
                set_bit(&mut self.s.irr, v, false);
                set_bit(&mut self.s.isr, v, true);
                Some(v)
            }
            None => Some(self.s.svr as u8),
        }
    }

    /// End of interrupt: clear the highest ISR bit. Returns its vector if
    /// it was level-triggered, for the EOI broadcast to the IOAPIC.
    pub fn eoi(&mut self) -> Option<u8> {
        let v = highest(&self.s.isr)?;
        set_bit(&mut self.s.isr, v, false);
        bit(&self.s.tmr, v).then_some(v)
    }

    /// Vectors of level-triggered EOIs done through the register interface
    /// (MMIO or MSR) since the last call, for the IOAPIC.
    pub fn take_eoi_broadcasts(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.s.eoi_broadcasts)
    }

    /// Whether [`Lapic::take_eoi_broadcasts`] has anything.
    pub fn has_eoi_broadcasts(&self) -> bool {
        !self.s.eoi_broadcasts.is_empty()
    }

    /// INIT/SIPI requests since the last call.
    pub fn take_ipi_requests(&mut self) -> Vec<IpiRequest> {
        std::mem::take(&mut self.s.ipi_requests)
    }

    fn eoi_register(&mut self) {
        if let Some(v) = self.eoi() {
            self.s.eoi_broadcasts.push(v);
        }
    }

    /// Whether a message to `dest` (physical or logical, in the current
    /// mode's format) includes this APIC (SDM 11.6.2, 11.12.10).
    pub fn accepts(&self, logical: bool, dest: u32) -> bool {
        match self.s.mode {
            ApicMode::Disabled => false,
            ApicMode::XApic => {
                let dest = dest & 0xff;
                if dest == 0xff {
                    return true;
                }
                if !logical {
                    return dest == self.s.id & 0xff;
                }
                let ldr = self.s.ldr >> 24;
                if self.s.dfr >> 28 == 0xf {
                    ldr & dest != 0
                } else {
                    ldr >> 4 == dest >> 4 && ldr & dest & 0xf != 0
                }
            }
            ApicMode::X2Apic => {
                if dest == 0xffff_ffff {
                    return true;
                }
                if !logical {
                    return dest == self.s.id;
                }
                dest >> 16 == self.s.ldr >> 16 && dest & self.s.ldr & 0xffff != 0
            }
        }
    }

    /// An interrupt message from the IOAPIC, whose destination field is
    /// always 8 bits (in x2APIC mode without interrupt remapping 0xff is
    /// still the broadcast).
    pub fn accepts_ioapic(&self, logical: bool, dest: u8) -> bool {
        match self.s.mode {
            ApicMode::X2Apic if dest == 0xff => true,
            _ => self.accepts(logical, dest as u32),
        }
    }

    // ---- timer (SDM 11.5.4) ----

    fn timer_mode(&self) -> TimerMode {
        match (self.s.lvt[LVT_TIMER] >> 17) & 3 {
            0 => TimerMode::OneShot,
            1 => TimerMode::Periodic,
            _ => TimerMode::TscDeadline,
        }
    }

    /// Divide configuration: bits 0, 1, 3 → 2, 4, …, 128, 1 (figure 11-10).
    fn divisor(&self) -> u64 {
        let d = self.s.timer_divide;
        let code = (d & 3) | ((d >> 1) & 4);
        if code == 7 {
            1
        } else {
            2 << code
        }
    }

    fn period_ns(&self) -> u64 {
        self.s.timer_initial as u64 * self.divisor()
    }

    /// Recompute the next expiry after `now` from the programmed state.
    fn rearm_timer(&mut self) {
        let now = self.s.now_ns;
        self.s.timer_next_ns = match self.timer_mode() {
            TimerMode::TscDeadline => (self.s.tsc_deadline != 0).then(|| ticks_to_ns(self.s.tsc_deadline, TSC_HZ)),
            _ if self.s.timer_initial == 0 => None,
            TimerMode::OneShot => Some(self.s.timer_start_ns + self.period_ns()).filter(|&t| t > now),
            TimerMode::Periodic => {
                let p = self.period_ns();
                let k = (now - self.s.timer_start_ns.min(now)) / p + 1;
                Some(self.s.timer_start_ns + k * p)
            }
        };
    }

    fn timer_fire(&mut self) {
        let lvt = self.s.lvt[LVT_TIMER];
        if lvt & LVT_MASKED == 0 && self.s.mode != ApicMode::Disabled {
            let v = lvt as u8;
            if v < 16 {
                self.error(ESR_RECV_ILLEGAL);
            } else {
                set_bit(&mut self.s.irr, v, true);
                set_bit(&mut self.s.tmr, v, false);
            }
        }
    }

    /// Current count register.
    fn current_count(&self) -> u32 {
        let now = self.s.now_ns;
        let init = self.s.timer_initial as u64;
        if init == 0 || now < self.s.timer_start_ns {
            return self.s.timer_initial;
        }
        let ticks = (now - self.s.timer_start_ns) / self.divisor();
        match self.timer_mode() {
            TimerMode::TscDeadline => 0,
            TimerMode::OneShot => init.saturating_sub(ticks) as u32,
            TimerMode::Periodic => (init - ticks % init) as u32,
        }
    }

    fn write_initial_count(&mut self, v: u32) {
        if self.timer_mode() == TimerMode::TscDeadline {
            return;
        }
        self.s.timer_initial = v;
        self.s.timer_start_ns = self.s.now_ns;
        self.rearm_timer();
    }

    /// IA32_TSC_DEADLINE read.
    pub fn tsc_deadline(&self) -> u64 {
        if self.timer_mode() == TimerMode::TscDeadline {
            self.s.tsc_deadline
        } else {
            0
        }
    }

    /// IA32_TSC_DEADLINE write (`tsc` in [`TSC_HZ`] units since power-on).
    /// Outside TSC-deadline mode the write is ignored (SDM 11.5.4.1); a
    /// deadline already past fires at once.
    pub fn write_tsc_deadline(&mut self, tsc: u64) {
        if self.timer_mode() != TimerMode::TscDeadline {
            return;
        }
        self.s.tsc_deadline = tsc;
        self.rearm_timer();
        self.process_timer();
    }

    /// Deliver an expiry that is due by `now_ns`.
    fn process_timer(&mut self) {
        if let Some(t) = self.s.timer_next_ns {
            if t <= self.s.now_ns {
                // Several missed periods collapse into one interrupt: the
                // IRR holds one bit per vector anyway.
                self.timer_fire();
                match self.timer_mode() {
                    TimerMode::TscDeadline => {
                        self.s.tsc_deadline = 0;
                        self.s.timer_next_ns = None;
                    }
                    TimerMode::OneShot => self.s.timer_next_ns = None,
                    TimerMode::Periodic => self.rearm_timer(),
                }
            }
        }
    }

    // ---- register file (shared by MMIO and MSR access) ----

    fn write_lvt(&mut self, i: usize, v: u32) {
        let mut v = v & LVT_WRITABLE[i];
        if !self.sw_enabled() {
            v |= LVT_MASKED;
        }
        if i == LVT_TIMER {
            let old = self.timer_mode();
            if (v >> 17) & 3 == 3 {
                // Mode 3 is reserved: the mode field keeps its value.
                v = (v & !(3 << 17)) | (self.s.lvt[i] & (3 << 17));
            }
            self.s.lvt[i] = v;
            let new = self.timer_mode();
            if old != new && (old == TimerMode::TscDeadline || new == TimerMode::TscDeadline) {
                // Switching to or from TSC-deadline mode disarms the timer.
                self.s.timer_initial = 0;
                self.s.tsc_deadline = 0;
            }
            self.rearm_timer();
        } else {
            // LINT0/LINT1's remote IRR (bit 14) and delivery status are read-only.
            self.s.lvt[i] = v;
        }
    }

    fn write_svr(&mut self, v: u32) {
        self.s.svr = v & 0x3ff;
        if v & SVR_ENABLE == 0 {
            for l in self.s.lvt.iter_mut() {
                *l |= LVT_MASKED;
            }
        }
    }

    /// Send the IPI described by the ICR (SDM 11.6.1).
    fn send_ipi(&mut self, low: u32, dest: u32) {
        let vector = low as u8;
        let mode = (low >> 8) & 7;
        let logical = low & (1 << 11) != 0;
        let level_assert = low & (1 << 14) != 0;
        let level_trigger = low & (1 << 15) != 0;
        let target = match (low >> 18) & 3 {
            0 => IpiTarget::Destination { logical, dest },
            1 => IpiTarget::SelfOnly,
            2 => IpiTarget::AllIncludingSelf,
            _ => IpiTarget::AllExcludingSelf,
        };
        let to_self = match target {
            IpiTarget::SelfOnly | IpiTarget::AllIncludingSelf => true,
            IpiTarget::AllExcludingSelf => false,
            IpiTarget::Destination { logical, dest } => self.accepts(logical, dest),
        };
        match mode {
            0 | 1 => {
                if vector < 16 {
                    self.error(ESR_SEND_ILLEGAL);
                    if to_self {
                        self.error(ESR_RECV_ILLEGAL);
                    }
                } else if to_self {
                    self.accept_interrupt(vector, false);
                }
            }
            4 if to_self => self.accept_nmi(),
            // INIT level de-assert (INIT, level 0, trigger level) only
            // synchronises arbitration IDs.
            5 if !level_assert && level_trigger => {}
            5 => self.s.ipi_requests.push(IpiRequest {
                kind: IpiKind::Init,
                target,
            }),
            // A SIPI to oneself is ignored by a running processor.
            6 if target != IpiTarget::SelfOnly => self.s.ipi_requests.push(IpiRequest {
                kind: IpiKind::Startup(vector),
                target,
            }),
            _ => {}
        }
    }

    fn read_bits(bits: &[u32; 8], idx: usize) -> u32 {
        bits[idx]
    }
}

/// Register offsets in the xAPIC page (SDM table 11-1).
pub mod reg {
    pub const ID: u64 = 0x20;
    pub const VERSION: u64 = 0x30;
    pub const TPR: u64 = 0x80;
    pub const APR: u64 = 0x90;
    pub const PPR: u64 = 0xa0;
    pub const EOI: u64 = 0xb0;
    pub const RRD: u64 = 0xc0;
    pub const LDR: u64 = 0xd0;
    pub const DFR: u64 = 0xe0;
    pub const SVR: u64 = 0xf0;
    pub const ISR: u64 = 0x100;
    pub const TMR: u64 = 0x180;
    pub const IRR: u64 = 0x200;
    pub const ESR: u64 = 0x280;
    pub const ICR_LOW: u64 = 0x300;
    pub const ICR_HIGH: u64 = 0x310;
    pub const LVT_TIMER: u64 = 0x320;
    pub const LVT_ERROR: u64 = 0x370;
    pub const TIMER_INITIAL: u64 = 0x380;
    pub const TIMER_CURRENT: u64 = 0x390;
    pub const TIMER_DIVIDE: u64 = 0x3e0;
    /// x2APIC only (MSR 0x83f).
    pub const SELF_IPI: u64 = 0x3f0;
}

impl Lapic {
    /// A 32-bit register read at page offset `r` (16-byte aligned).
    /// `None`: no readable register there.
    fn read_reg(&self, r: u64) -> Option<u32> {
        let s = &self.s;
        Some(match r {
            reg::ID if s.mode == ApicMode::X2Apic => s.id,
            reg::ID => s.id << 24,
            reg::VERSION => LAPIC_VERSION,
            reg::TPR => s.tpr as u32,
            reg::APR if s.mode == ApicMode::XApic => self.apr() as u32,
            reg::PPR => self.ppr() as u32,
            reg::RRD if s.mode == ApicMode::XApic => 0,
            reg::LDR => s.ldr,
            reg::DFR if s.mode == ApicMode::XApic => s.dfr | 0x0fff_ffff,
            reg::SVR => s.svr,
            0x100..=0x170 => Self::read_bits(&s.isr, ((r - reg::ISR) >> 4) as usize),
            0x180..=0x1f0 => Self::read_bits(&s.tmr, ((r - reg::TMR) >> 4) as usize),
            0x200..=0x270 => Self::read_bits(&s.irr, ((r - reg::IRR) >> 4) as usize),
            reg::ESR => s.esr,
            reg::ICR_LOW => s.icr_low,
            reg::ICR_HIGH if s.mode == ApicMode::XApic => s.icr_high,
            0x320..=0x370 => s.lvt[((r - reg::LVT_TIMER) >> 4) as usize],
            reg::TIMER_INITIAL => s.timer_initial,
            reg::TIMER_CURRENT => self.current_count(),
            reg::TIMER_DIVIDE => s.timer_divide,
            _ => return None,
        })
    }

    /// A 32-bit register write at page offset `r`. `false`: no writable
    /// register there, or reserved bits set where x2APIC faults on them.
    fn write_reg(&mut self, r: u64, v: u32) -> bool {
        let x2 = self.s.mode == ApicMode::X2Apic;
        match r {
            reg::ID if !x2 => self.s.id = v >> 24,
            reg::TPR => {
                if x2 && v >> 8 != 0 {
                    return false;
                }
                self.s.tpr = v as u8;
            }
            reg::EOI => {
                if x2 && v != 0 {
                    return false;
                }
                self.eoi_register();
            }
            reg::LDR if !x2 => self.s.ldr = v & 0xff00_0000,
            reg::DFR if !x2 => self.s.dfr = v | 0x0fff_ffff,
            reg::SVR => {
                if x2 && v & !0x11ff != 0 {
                    return false;
                }
                self.write_svr(v);
            }
            reg::ESR => {
                if x2 && v != 0 {
                    return false;
                }
                self.s.esr = std::mem::take(&mut self.s.esr_pending);
            }
            reg::ICR_LOW => {
                self.s.icr_low = v & 0x000c_cfff;
                let dest = if x2 { self.s.icr_high } else { self.s.icr_high >> 24 };
                self.send_ipi(self.s.icr_low, dest);
            }
            reg::ICR_HIGH if !x2 => self.s.icr_high = v & 0xff00_0000,
            0x320..=0x370 => {
                let i = ((r - reg::LVT_TIMER) >> 4) as usize;
                if x2 && (v & !LVT_WRITABLE[i] != 0 || (i == LVT_TIMER && (v >> 17) & 3 == 3)) {
                    return false;
                }
                self.write_lvt(i, v);
            }
            reg::TIMER_INITIAL => self.write_initial_count(v),
            reg::TIMER_DIVIDE => {
                if x2 && v & !0xb != 0 {
                    return false;
                }
                self.s.timer_divide = v & 0xb;
                self.rearm_timer();
            }
            reg::SELF_IPI if x2 => {
                if v >> 8 != 0 {
                    return false;
                }
                self.send_ipi(v & 0xff | (1 << 18), 0);
            }
            _ => {
                // Writes to read-only registers are ignored; reserved
                // offsets are an error (SDM 11.5.3, bit 7).
                if !x2 && self.read_reg(r).is_none() {
                    self.error(ESR_ILLEGAL_REG);
                }
                return false;
            }
        }
        true
    }

    /// RDMSR of 0x800–0x8ff (SDM 11.12.1.2). `None` is #GP: not in x2APIC
    /// mode, no such register, or a write-only one.
    pub fn read_msr(&self, msr: u32) -> Option<u64> {
        if self.s.mode != ApicMode::X2Apic || !(0x800..=0x8ff).contains(&msr) {
            return None;
        }
        let r = ((msr - 0x800) as u64) << 4;
        match r {
            reg::ICR_LOW => Some((self.s.icr_high as u64) << 32 | self.s.icr_low as u64),
            reg::EOI | reg::SELF_IPI => None,
            _ => self.read_reg(r).map(u64::from),
        }
    }

    /// WRMSR of 0x800–0x8ff. `false` is #GP (read-only register, reserved
    /// bits, not in x2APIC mode).
    pub fn write_msr(&mut self, msr: u32, v: u64) -> bool {
        if self.s.mode != ApicMode::X2Apic || !(0x800..=0x8ff).contains(&msr) {
            return false;
        }
        let r = ((msr - 0x800) as u64) << 4;
        if r == reg::ICR_LOW {
            if v & 0xffff_ffff & !0x000c_cfff != 0 {
                return false;
            }
            self.s.icr_high = (v >> 32) as u32;
            return self.write_reg(r, v as u32);
        }
        if v >> 32 != 0 {
            return false;
        }
        self.write_reg(r, v as u32)
    }

    /// Pending requests or interrupts the machine must look at.
    pub fn needs_attention(&self) -> bool {
        self.s.nmi_pending || !self.s.ipi_requests.is_empty() || !self.s.eoi_broadcasts.is_empty()
    }
}

impl MmioDevice for Lapic {
    /// Registers are 32 bits wide on 16-byte boundaries; a narrower read
    /// sees the addressed bytes of the register, bytes 4–15 read as 0.
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if self.s.mode != ApicMode::XApic {
            return ones(size);
        }
        let within = offset & 0xf;
        if within >= 4 {
            return 0;
        }
        let v = self.read_reg(offset & 0xff0).unwrap_or(0) as u64;
        (v >> (8 * within)) & ones(size)
    }

    /// Only aligned 32-bit (or 64-bit, low half) writes reach a register
    /// (SDM 11.4.1: other accesses are undefined; they are dropped here).
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if self.s.mode != ApicMode::XApic || offset & 0xf != 0 || size < 4 {
            return;
        }
        let r = offset & 0xff0;
        if r == reg::SELF_IPI {
            self.error(ESR_ILLEGAL_REG);
            return;
        }
        self.write_reg(r, value as u32);
    }
}

fn ones(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size as u32)) - 1
    }
}

impl Timed for Lapic {
    fn advance_to(&mut self, now_ns: u64) {
        if now_ns <= self.s.now_ns {
            return;
        }
        self.s.now_ns = now_ns;
        self.process_timer();
    }

    fn next_deadline(&self) -> Option<u64> {
        self.s.timer_next_ns
    }
}

impl Snapshot for Lapic {
    type State = State;
    fn save(&self) -> State {
        self.s.clone()
    }
    fn restore(&mut self, s: &State) -> Result<(), StateError> {
        const D: &str = "lapic";
        check(D, s.svr & !0x3ff == 0, || format!("SVR {:#x} has reserved bits", s.svr))?;
        check(D, s.timer_divide & !0xb == 0, || {
            format!("divide {:#x} has reserved bits", s.timer_divide)
        })?;
        for (i, l) in s.lvt.iter().enumerate() {
            check(D, l & !LVT_WRITABLE[i] == 0, || format!("LVT {i} = {l:#x} has reserved bits"))?;
        }
        check(D, (s.lvt[LVT_TIMER] >> 17) & 3 != 3, || "LVT timer mode 3 is reserved".into())?;
        check(D, s.isr[0] & 0xffff == 0 && s.irr[0] & 0xffff == 0, || {
            "vectors 0-15 in ISR/IRR".into()
        })?;
        check(D, s.dfr | 0xf000_0000 == 0xffff_ffff, || format!("DFR {:#x}", s.dfr))?;
        check(D, s.timer_next_ns.is_none_or(|t| t > s.now_ns), || {
            "timer expiry already due".into()
        })?;
        if s.mode == ApicMode::X2Apic {
            check(D, s.id == s.initial_id, || "x2APIC ID differs from the initial ID".into())?;
        }
        self.s = s.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
