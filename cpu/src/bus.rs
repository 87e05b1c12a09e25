//! What the CPU needs from the machine around it: port I/O, MMIO, the
//! interrupt controller and a few side-band signals. The machine implements
//! [`Bus`]; the CPU never knows which device sits where.

/// Port-I/O, MMIO and interrupt acknowledge, as the chipset presents them.
/// Sizes are in bytes (1, 2, 4, 8).
pub trait Bus {
    fn io_read(&mut self, port: u16, size: u8) -> u32;
    fn io_write(&mut self, port: u16, size: u8, value: u32);
    /// A read from a physical address that is not RAM. Unclaimed addresses
    /// read as all ones (open bus).
    fn mmio_read(&mut self, addr: u64, size: u8) -> u64;
    fn mmio_write(&mut self, addr: u64, size: u8, value: u64);

    /// Whether a maskable interrupt is waiting (checked at instruction
    /// boundaries while RFLAGS.IF is set and no shadow is active).
    fn interrupt_pending(&mut self) -> bool {
        false
    }
    /// The INTA cycle: the vector of the highest-priority pending interrupt,
    /// or `None` if it went away (spurious).
    fn acknowledge_interrupt(&mut self) -> Option<u8> {
        None
    }
    /// NMI, INIT and SIPI requests, consumed when returned.
    fn take_nmi(&mut self) -> bool {
        false
    }
    /// An INIT signal (INIT IPI or INIT# pin) for this CPU.
    fn take_init(&mut self) -> bool {
        false
    }
    /// A start-up IPI's vector; only a CPU waiting for SIPI after INIT takes it.
    fn take_sipi(&mut self) -> Option<u8> {
        None
    }
    /// CR8 writes (the local APIC's TPR); CR8 reads come from `read_tpr`.
    fn write_tpr(&mut self, _tpr: u8) {}
    fn read_tpr(&mut self) -> u8 {
        0
    }
    /// RDMSR of an MSR that belongs to the platform (x2APIC range, etc.);
    /// `None` means no such MSR (#GP).
    fn read_msr(&mut self, _msr: u32) -> Option<u64> {
        None
    }
    fn write_msr(&mut self, _msr: u32, _value: u64) -> bool {
        false
    }
    /// The machine's notion of "should the CPU stop its current run slice
    /// now" (a device raised something that needs the main loop).
    fn stop_requested(&mut self) -> bool {
        false
    }
    /// Called with the number of instructions retired so far just before a
    /// port or MMIO access, so the machine can bring time-keeping devices
    /// (PM timer, PIT, HPET, LAPIC timer) to the exact moment of the access
    /// instead of the start of the run slice. Default: time moves only
    /// between slices.
    fn sync_clock(&mut self, _icount: u64) {}
    /// The time-stamp counter at this instruction, if the machine keeps it
    /// (RDTSC, RDTSCP, RDMSR 0x10); `None`: the CPU's own `s.tsc`.
    fn read_tsc(&mut self, _icount: u64) -> Option<u64> {
        None
    }
    /// The guest wrote the TSC (WRMSR TSC or TSC_ADJUST): from this
    /// instruction on it reads `value` plus the time elapsed.
    fn write_tsc(&mut self, _icount: u64, _value: u64) {}
}

/// A bus with nothing on it: ports read 0xff…, MMIO reads open bus, writes vanish.
#[derive(Default)]
pub struct NullBus;

impl Bus for NullBus {
    fn io_read(&mut self, _port: u16, size: u8) -> u32 {
        ones(size) as u32
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32) {}
    fn mmio_read(&mut self, _addr: u64, size: u8) -> u64 {
        ones(size)
    }
    fn mmio_write(&mut self, _addr: u64, _size: u8, _value: u64) {}
}

/// All-ones value of `size` bytes.
pub fn ones(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size as u32 * 8)) - 1
    }
}
