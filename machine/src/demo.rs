//! The built-in demo guest (`kagami --demo`): a small real-mode program,
//! assembled here with iced-x86's CodeAssembler, that runs on the
//! interpreter before any firmware or chipset exists. It prints a banner,
//! runs a Sieve of Eratosthenes, prints the primes below 100 and the count,
//! sum and largest of the primes below 10,000 in decimal, checks the count
//! against the known answer, and reports its status on the exit port.
//!
//! The machine around it is three ports ([`DemoBus`]):
//! - 0xE9 (Bochs/QEMU debugcon) and 0x3F8 (the THR of a minimal UART whose
//!   LSR at 0x3FD always says "transmitter empty"): bytes go to the console;
//! - 0xF4 (as QEMU's isa-debug-exit): the byte written ends the run and is
//!   the guest's status. Unlike QEMU, which exits with `(value << 1) | 1`,
//!   kagami exits with the value itself, so 0 means success.
//!
//! The guest uses only instructions whose handlers exist in the integer
//! core today (MOV, ADD/SUB/CMP/TEST, INC, Jcc, CALL/RET, IN/OUT, HLT);
//! decimal output is done by subtracting powers of ten rather than DIV.
//! Every exception vector points at a stub that exits with status
//! `0x80 | vector`, so a missing instruction shows up as status 0x86 (#UD)
//! instead of a hang.

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use kagami_cpu::state::{CS, DS, ES, RSP, SS};
use kagami_cpu::{Bus, Cpu, Exit};
use std::io::{self, Write};

pub const DEBUGCON_PORT: u16 = 0xe9;
pub const UART_THR_PORT: u16 = 0x3f8;
pub const UART_LSR_PORT: u16 = 0x3fd;
pub const EXIT_PORT: u16 = 0xf4;

/// Status the guest reports when an exception reaches it: `EXCEPTION_STATUS | vector`.
pub const EXCEPTION_STATUS: u8 = 0x80;

/// Guest-physical layout (all in segment 0).
const CODE: u64 = 0x7c00;
const DATA: u64 = 0x0600;
const SIEVE: u64 = 0x8000;
const STACK_TOP: u64 = 0x7c00;
const RAM: u64 = 0x10000;

/// The sieve covers 0..LIMIT; marking multiples of p < SQRT is enough.
pub const LIMIT: u32 = 10_000;
const SQRT: u32 = 100;
/// pi(10,000): the number of primes below 10,000.
const KNOWN_COUNT: u32 = 1229;

/// The demo's three ports; console bytes go to `out`.
pub struct DemoBus<W: Write> {
    out: W,
    /// The status written to the exit port, once written.
    pub exit_status: Option<u8>,
    /// A failed console write (e.g. a closed pipe) stops the run.
    pub io_error: Option<io::Error>,
}

impl<W: Write> DemoBus<W> {
    pub fn new(out: W) -> DemoBus<W> {
        DemoBus {
            out,
            exit_status: None,
            io_error: None,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn console(&mut self, byte: u8) {
        if self.io_error.is_none() {
            if let Err(e) = self.out.write_all(&[byte]) {
                self.io_error = Some(e);
            }
        }
    }
}

impl<W: Write> Bus for DemoBus<W> {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        match port {
            // THRE | TEMT: the transmitter is always ready.
            UART_LSR_PORT => 0x60,
            _ => kagami_cpu::bus::ones(size) as u32,
        }
    }
    fn io_write(&mut self, port: u16, _size: u8, value: u32) {
        match port {
            DEBUGCON_PORT | UART_THR_PORT => self.console(value as u8),
            EXIT_PORT => self.exit_status = Some(value as u8),
            _ => {}
        }
    }
    fn mmio_read(&mut self, _addr: u64, size: u8) -> u64 {
        kagami_cpu::bus::ones(size)
    }
    fn mmio_write(&mut self, _addr: u64, _size: u8, _value: u64) {}
    fn stop_requested(&mut self) -> bool {
        self.exit_status.is_some() || self.io_error.is_some()
    }
}

/// How a demo run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest wrote its status to the exit port.
    Exited { status: u8, instructions: u64 },
    /// The guest stopped without reporting (HLT with nothing to wake it, a
    /// triple fault, or the instruction limit).
    Stuck { why: Exit, instructions: u64 },
}

/// The data area: strings and the powers-of-ten table, at fixed addresses.
struct Data {
    bytes: Vec<u8>,
}

impl Data {
    fn add(&mut self, b: &[u8]) -> u32 {
        let at = DATA as u32 + self.bytes.len() as u32;
        self.bytes.extend_from_slice(b);
        at
    }
    fn string(&mut self, s: &str) -> u32 {
        let at = self.add(s.as_bytes());
        self.bytes.push(0);
        at
    }
    fn dword(&mut self, v: u32) -> u32 {
        while self.bytes.len() % 4 != 0 {
            self.bytes.push(0);
        }
        self.add(&v.to_le_bytes())
    }
}

/// The assembled program: code for `CODE`, data for `DATA`, and where each
/// exception stub landed (for the IVT).
pub struct Program {
    pub code: Vec<u8>,
    pub data: Vec<u8>,
    stubs: Vec<u16>,
}

/// Assemble the demo guest.
pub fn assemble() -> Result<Program, IcedError> {
    let mut d = Data { bytes: Vec::new() };
    let banner = d.string("kagami demo guest: real mode on the kagami interpreter\nSieve of Eratosthenes\n");
    let small = d.string("primes below 100: ");
    let big = d.string("\nprimes below 10000: ");
    let sum_s = d.string(", sum ");
    let largest_s = d.string(", largest ");
    let ok_s = d.string("\nself-check: ok\n");
    let bad_s = d.string("\nself-check: FAILED (expected 1229)\n");
    let count_v = d.dword(0);
    let sum_v = d.dword(0);
    let largest_v = d.dword(0);
    let pow10 = d.dword(1_000_000_000);
    for p in (0..9).rev() {
        d.dword(10u32.pow(p));
    }
    let pow10_end = pow10 + 40;

    let mut a = CodeAssembler::new(16)?;
    let mut putc = a.create_label();
    let mut puts = a.create_label();
    let mut print_dec = a.create_label();

    // --- main ---
    a.mov(si, banner)?;
    a.call(puts)?;

    // sieve[2..LIMIT] = 1
    a.mov(bx, 2u32)?;
    let mut fill = a.create_label();
    a.set_label(&mut fill)?;
    a.mov(byte_ptr(bx + SIEVE as i32), 1u32)?;
    a.inc(bx)?;
    a.cmp(bx, LIMIT)?;
    a.jb(fill)?;

    // for p in 2..SQRT: if sieve[p] { for j in (2p..LIMIT).step_by(p) { sieve[j] = 0 } }
    a.mov(bx, 2u32)?;
    let mut outer = a.create_label();
    let mut inner = a.create_label();
    let mut next_p = a.create_label();
    a.set_label(&mut outer)?;
    a.cmp(byte_ptr(bx + SIEVE as i32), 0u32)?;
    a.je(next_p)?;
    a.mov(di, bx)?;
    a.add(di, bx)?;
    a.set_label(&mut inner)?;
    a.cmp(di, LIMIT)?;
    a.jae(next_p)?;
    a.mov(byte_ptr(di + SIEVE as i32), 0u32)?;
    a.add(di, bx)?;
    a.jmp(inner)?;
    a.set_label(&mut next_p)?;
    a.inc(bx)?;
    a.cmp(bx, SQRT)?;
    a.jb(outer)?;

    // Print the primes below 100.
    a.mov(si, small)?;
    a.call(puts)?;
    a.mov(bp, 2u32)?;
    let mut list = a.create_label();
    let mut list_next = a.create_label();
    a.set_label(&mut list)?;
    a.cmp(byte_ptr(bp + SIEVE as i32), 0u32)?;
    a.je(list_next)?;
    a.movzx(eax, bp)?;
    a.call(print_dec)?;
    a.mov(al, b' ' as u32)?;
    a.call(putc)?;
    a.set_label(&mut list_next)?;
    a.inc(bp)?;
    a.cmp(bp, SQRT)?;
    a.jb(list)?;

    // Count, sum and largest of all primes below LIMIT.
    a.xor(ecx, ecx)?;
    a.xor(esi, esi)?;
    a.xor(edi, edi)?;
    a.mov(bx, 2u32)?;
    let mut count = a.create_label();
    let mut count_next = a.create_label();
    a.set_label(&mut count)?;
    a.cmp(byte_ptr(bx + SIEVE as i32), 0u32)?;
    a.je(count_next)?;
    a.inc(ecx)?;
    a.movzx(edi, bx)?;
    a.add(esi, edi)?;
    a.set_label(&mut count_next)?;
    a.inc(bx)?;
    a.cmp(bx, LIMIT)?;
    a.jb(count)?;
    a.mov(dword_ptr(count_v), ecx)?;
    a.mov(dword_ptr(sum_v), esi)?;
    a.mov(dword_ptr(largest_v), edi)?;

    a.mov(si, big)?;
    a.call(puts)?;
    a.mov(eax, dword_ptr(count_v))?;
    a.call(print_dec)?;
    a.mov(si, sum_s)?;
    a.call(puts)?;
    a.mov(eax, dword_ptr(sum_v))?;
    a.call(print_dec)?;
    a.mov(si, largest_s)?;
    a.call(puts)?;
    a.mov(eax, dword_ptr(largest_v))?;
    a.call(print_dec)?;

    // Self-check and exit.
    let mut failed = a.create_label();
    a.cmp(dword_ptr(count_v), KNOWN_COUNT)?;
    a.jne(failed)?;
    a.mov(si, ok_s)?;
    a.call(puts)?;
    a.mov(al, 0u32)?;
    a.out(EXIT_PORT as u32, al)?;
    a.hlt()?;
    a.set_label(&mut failed)?;
    a.mov(si, bad_s)?;
    a.call(puts)?;
    a.mov(al, 1u32)?;
    a.out(EXIT_PORT as u32, al)?;
    a.hlt()?;

    // putc(AL): wait for the UART's transmitter, then send. Clobbers AH, DX.
    a.set_label(&mut putc)?;
    a.mov(ah, al)?;
    a.mov(dx, UART_LSR_PORT as u32)?;
    let mut wait = a.create_label();
    a.set_label(&mut wait)?;
    a.in_(al, dx)?;
    a.test(al, 0x20u32)?;
    a.je(wait)?;
    a.mov(al, ah)?;
    a.mov(dx, UART_THR_PORT as u32)?;
    a.out(dx, al)?;
    a.ret()?;

    // puts(DS:SI): a NUL-terminated string. Clobbers AX, DX, SI.
    a.set_label(&mut puts)?;
    let mut puts_done = a.create_label();
    a.mov(al, byte_ptr(si))?;
    a.test(al, al)?;
    a.je(puts_done)?;
    a.call(putc)?;
    a.inc(si)?;
    a.jmp(puts)?;
    a.set_label(&mut puts_done)?;
    a.ret()?;

    // print_dec(EAX): unsigned decimal without leading zeros, by repeated
    // subtraction of 10^9 .. 10^0. Clobbers EAX, EBX, CX, DX, DI.
    a.set_label(&mut print_dec)?;
    a.mov(ebx, eax)?;
    a.mov(di, pow10)?;
    a.xor(ch, ch)?;
    let mut digit_loop = a.create_label();
    let mut subtract = a.create_label();
    let mut emit = a.create_label();
    let mut after_emit = a.create_label();
    let mut have_digit = a.create_label();
    a.set_label(&mut digit_loop)?;
    a.mov(cl, b'0' as u32)?;
    a.set_label(&mut subtract)?;
    a.cmp(ebx, dword_ptr(di))?;
    a.jb(have_digit)?;
    a.sub(ebx, dword_ptr(di))?;
    a.inc(cl)?;
    a.jmp(subtract)?;
    a.set_label(&mut have_digit)?;
    a.add(di, 4u32)?;
    a.cmp(cl, b'0' as u32)?;
    a.jne(emit)?;
    a.test(ch, ch)?;
    a.jne(emit)?;
    a.cmp(di, pow10_end)?;
    a.jne(digit_loop)?; // a leading zero, and not the last digit: skip it
    a.set_label(&mut emit)?;
    a.mov(ch, 1u32)?;
    a.mov(al, cl)?;
    a.call(putc)?;
    a.set_label(&mut after_emit)?;
    a.cmp(di, pow10_end)?;
    a.jne(digit_loop)?;
    a.ret()?;

    // Exception stubs: vector v exits with status 0x80 | v.
    let mut report = a.create_label();
    let mut stub_labels = Vec::new();
    for v in 0..32u32 {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.mov(al, EXCEPTION_STATUS as u32 | v)?;
        a.jmp(report)?;
        stub_labels.push(l);
    }
    a.set_label(&mut report)?;
    a.out(EXIT_PORT as u32, al)?;
    a.hlt()?;

    let res = a.assemble_options(CODE, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let stubs = stub_labels
        .iter()
        .map(|l| res.label_ip(l).map(|ip| ip as u16))
        .collect::<Result<Vec<_>, _>>()?;
    let code = res.inner.code_buffer;
    assert!(DATA as usize + d.bytes.len() < CODE as usize && CODE as usize + code.len() < SIEVE as usize);
    Ok(Program {
        code,
        data: d.bytes,
        stubs,
    })
}

/// Build the machine (64 KiB of RAM, the program loaded, CS:IP = 0:7C00,
/// SS:SP = 0:7C00) ready to run.
pub fn machine(p: &Program) -> Result<Cpu, String> {
    let mut cpu = Cpu::with_ram(RAM).map_err(|e| e.to_string())?;
    let mut ivt = Vec::with_capacity(4 * p.stubs.len());
    for ip in &p.stubs {
        ivt.extend_from_slice(&ip.to_le_bytes());
        ivt.extend_from_slice(&0u16.to_le_bytes());
    }
    cpu.mem.write(0, &ivt);
    cpu.mem.write(DATA, &p.data);
    cpu.mem.write(CODE, &p.code);
    for seg in [CS, DS, ES, SS] {
        cpu.load_real_seg(seg, 0);
    }
    cpu.s.rip = CODE;
    cpu.s.gpr[RSP] = STACK_TOP;
    Ok(cpu)
}

/// Assemble and run the demo, console output to `out`, for at most
/// `max_instructions` instructions.
pub fn run<W: Write>(out: W, max_instructions: u64) -> Result<(Outcome, W), String> {
    let program = assemble().map_err(|e| format!("assembling the demo guest: {e}"))?;
    let mut cpu = machine(&program)?;
    let mut bus = DemoBus::new(out);
    let outcome = loop {
        let left = max_instructions.saturating_sub(cpu.s.icount);
        let exit = cpu.run(&mut bus, left.min(1_000_000));
        if let Some(e) = bus.io_error.take() {
            return Err(format!("writing the guest's console output: {e}"));
        }
        if let Some(status) = bus.exit_status {
            break Outcome::Exited {
                status,
                instructions: cpu.s.icount,
            };
        }
        match exit {
            Exit::Budget if cpu.s.icount < max_instructions => continue,
            why => {
                break Outcome::Stuck {
                    why,
                    instructions: cpu.s.icount,
                }
            }
        }
    };
    let mut out = bus.into_inner();
    out.flush().map_err(|e| format!("writing the guest's console output: {e}"))?;
    Ok((outcome, out))
}

/// What the guest must print, computed on the host.
pub fn expected_output() -> String {
    let mut sieve = vec![true; LIMIT as usize];
    sieve[0] = false;
    sieve[1] = false;
    for p in 2..LIMIT as usize {
        if sieve[p] {
            for j in (2 * p..LIMIT as usize).step_by(p) {
                sieve[j] = false;
            }
        }
    }
    let primes: Vec<u32> = (0..LIMIT).filter(|&i| sieve[i as usize]).collect();
    let small: String = primes.iter().filter(|&&p| p < SQRT).map(|p| format!("{p} ")).collect();
    let sum: u32 = primes.iter().sum();
    format!(
        "kagami demo guest: real mode on the kagami interpreter\nSieve of Eratosthenes\nprimes below 100: {small}\nprimes below 10000: {}, sum {sum}, largest {}\nself-check: ok\n",
        primes.len(),
        primes.last().unwrap()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_prints_primes_and_exits_zero() {
        let (outcome, out) = run(Vec::new(), 50_000_000).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, expected_output());
        assert!(text.contains("primes below 10000: 1229, sum 5736396, largest 9973"), "{text}");
        match outcome {
            Outcome::Exited { status, instructions } => {
                assert_eq!(status, 0);
                assert!(instructions > 100_000, "the sieve alone retires more than {instructions}");
            }
            other => panic!("guest did not exit: {other:?}"),
        }
    }

    #[test]
    fn exception_reaches_the_stub_and_reports_its_vector() {
        // Replace the first instruction with UD2: the #UD stub must report 0x86.
        let mut p = assemble().unwrap();
        p.code[0] = 0x0f;
        p.code[1] = 0x0b;
        let mut cpu = machine(&p).unwrap();
        let mut bus = DemoBus::new(Vec::new());
        cpu.run(&mut bus, 10_000);
        assert_eq!(bus.exit_status, Some(EXCEPTION_STATUS | 6));
    }

    #[test]
    fn closed_console_is_an_error_not_a_panic() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = run(Closed, 50_000_000).err().unwrap();
        assert!(e.contains("closed"), "{e}");
    }

    #[test]
    fn instruction_limit_stops_the_guest() {
        let (outcome, _) = run(Vec::new(), 1000).unwrap();
        assert_eq!(
            outcome,
            Outcome::Stuck {
                why: Exit::Budget,
                instructions: 1000
            }
        );
    }
}
