//! A GDB remote stub for the software CPU (`-gdb tcp::PORT`, `-s`, `-S`),
//! built on the `gdbstub` crate with `gdbstub_arch`'s x86-64 registers.
//!
//! - Registers: the general registers, RIP, RFLAGS, the segment selectors,
//!   x87/SSE state (read; GPRs, RIP, RFLAGS, XMM and MXCSR writable; a
//!   selector write is accepted in real mode, where it sets the base, and
//!   refused elsewhere because it would need a descriptor load).
//! - Memory: gdb's addresses are linear addresses, translated through the
//!   current page tables (supervisor view); only RAM and ROM are read (MMIO
//!   is not, reading a device register could change the device), only RAM
//!   is written. An unmapped address is an error reply. A translation can
//!   set accessed bits in the guest's page tables, as a CPU access would.
//! - Breakpoints (Z0 software, Z1 hardware) live here, not in guest memory:
//!   while any is set, the machine runs one instruction at a time in two
//!   phases. First a "held" run delivers whatever events are pending
//!   (interrupts, NMIs, debug traps) and stops before the next instruction
//!   (`Pc::hold_before_insn`); then the breakpoints are compared with RIP
//!   (so a breakpoint on an interrupt handler's first instruction is hit);
//!   then one instruction runs. With no breakpoint the machine runs in
//!   slices of [`SLICE`] instructions at full speed, looking for Ctrl-C
//!   between slices. With `-icount` the instruction count at each stop is
//!   the same in every run.
//! - `stepi` retires exactly one instruction; when an event is pending the
//!   step stops at the entry of its handler (no instruction retired), so
//!   the handler can be stepped through.
//! - Write watchpoints (Z2) compare the watched bytes after each stepped
//!   instruction; read and access watchpoints (Z3, Z4) are refused.
//! - `monitor icount` prints the retired instruction count.
//! - Detach leaves the guest running (QEMU's behaviour) and the stub waits
//!   for the next debugger; `kill` ends kagami (exit code 0). When the guest
//!   itself ends the machine (isa-debug-exit, power-off), gdb is told the
//!   exit code and kagami exits with it.

use crate::pc::{Pc, Stop};
use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{self, BlockingEventLoop};
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::singlethread::{SingleThreadBase, SingleThreadResume, SingleThreadSingleStep};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{Breakpoints, HwBreakpoint, HwWatchpoint, SwBreakpoint, WatchKind};
use gdbstub::target::ext::monitor_cmd::{outputln, ConsoleOutput, MonitorCmd};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;
use kagami_cpu::mmu::Access;
use kagami_cpu::state::{Mode, CS, DS, ES, FS, GS, SS};
use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};

/// Instructions per slice when no breakpoint is set (Ctrl-C and new
/// connections are looked for between slices).
pub const SLICE: u64 = 100_000;
/// Instructions stepped between looks for Ctrl-C while breakpoints are set.
const STEPS_PER_POLL: u32 = 1024;

/// gdb's register order (rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8-r15)
/// as indices into `CpuState::gpr` (hardware order).
const GPR_ORDER: [usize; 16] = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];

/// Parse QEMU's `-gdb` device: `tcp::PORT`, `tcp:HOST:PORT` (or `:PORT`).
/// Returns the address to listen on.
pub fn parse_dev(dev: &str) -> Result<String, String> {
    let rest = dev.strip_prefix("tcp:").unwrap_or(dev);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("-gdb {dev}: expected tcp::PORT or tcp:HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| format!("-gdb {dev}: '{port}' is not a TCP port number"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok(format!("{host}:{port}"))
}

/// Open the listening socket for `-gdb`.
pub fn listen(addr: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("-gdb: cannot listen on {addr}: {e}"))
}

/// What the debugger asked the machine to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resume {
    Continue,
    Step,
}

/// The machine as gdbstub sees it.
pub struct GdbTarget<'a> {
    pub pc: &'a mut Pc,
    sw: BTreeSet<u64>,
    hw: BTreeSet<u64>,
    resume: Resume,
    /// Write watchpoints: address, length and the bytes last seen there.
    watch: Vec<(u64, u64, Vec<u8>)>,
    /// The machine stopped for good (guest exit, power-off, quit).
    pub ended: Option<Stop>,
}

/// How a step or a run ended.
enum Event {
    DoneStep,
    Break {
        sw: bool,
    },
    /// A write watchpoint's bytes changed (the address).
    Watch(u64),
    /// Data came from gdb (Ctrl-C) while running.
    Incoming,
    Machine(Stop),
}

impl<'a> GdbTarget<'a> {
    pub fn new(pc: &'a mut Pc) -> GdbTarget<'a> {
        GdbTarget {
            pc,
            sw: BTreeSet::new(),
            hw: BTreeSet::new(),
            resume: Resume::Continue,
            watch: Vec::new(),
            ended: None,
        }
    }

    fn cs_rip(&self) -> (u16, u64) {
        (self.pc.cpu.s.segs[CS].selector, self.pc.cpu.s.rip)
    }

    /// Deliver pending events without executing an instruction. After an
    /// STI or MOV SS nothing can be delivered before the next instruction,
    /// so nothing is done then.
    fn deliver_pending(&mut self) -> Option<Stop> {
        if self.pc.cpu.s.irq_shadow != 0 {
            return None;
        }
        self.pc.hold_before_insn = true;
        let r = self.pc.run(Some(1));
        self.pc.hold_before_insn = false;
        (r != Stop::Limit).then_some(r)
    }

    /// Execute one instruction (events were delivered just before).
    fn exec_one(&mut self) -> Option<Stop> {
        let r = self.pc.run(Some(1));
        (r != Stop::Limit).then_some(r)
    }

    fn step(&mut self) -> Event {
        let before = self.cs_rip();
        if let Some(s) = self.deliver_pending() {
            return Event::Machine(s);
        }
        if self.cs_rip() != before {
            return Event::DoneStep;
        }
        match self.exec_one() {
            Some(s) => Event::Machine(s),
            None => match self.watch_hit() {
                Some(a) => Event::Watch(a),
                None => Event::DoneStep,
            },
        }
    }

    fn armed(&self) -> bool {
        !self.sw.is_empty() || !self.hw.is_empty() || !self.watch.is_empty()
    }

    /// The bytes at `addr..addr+len` as far as they are readable.
    fn peek(&mut self, addr: u64, len: u64) -> Vec<u8> {
        let mut buf = vec![0u8; len as usize];
        let n = self.access(addr, buf.len(), |pc, off, r| pc.cpu.mem.read(off, &mut buf[r]), false);
        buf.truncate(n);
        buf
    }

    /// Write watchpoints compare the watched bytes after each instruction
    /// (gdb's `watch` stops on a changed value): the first that changed.
    fn watch_hit(&mut self) -> Option<u64> {
        let mut hit = None;
        for i in 0..self.watch.len() {
            let (addr, len, _) = self.watch[i];
            let now = self.peek(addr, len);
            if now != self.watch[i].2 {
                self.watch[i].2 = now;
                hit = hit.or(Some(addr));
            }
        }
        hit
    }

    /// Run until a breakpoint, the machine stops, or `incoming()` says gdb sent something.
    fn cont(&mut self, mut incoming: impl FnMut() -> bool) -> Event {
        // Resuming at a breakpoint runs its instruction (as RF does), unless
        // an event moves execution elsewhere first.
        let mut skip = Some(self.cs_rip());
        loop {
            if !self.armed() {
                if let r @ (Stop::Exit(_) | Stop::Reset | Stop::Hung | Stop::Quit) = self.pc.run(Some(SLICE)) {
                    return Event::Machine(r);
                }
            } else {
                for _ in 0..STEPS_PER_POLL {
                    if let Some(s) = self.deliver_pending() {
                        return Event::Machine(s);
                    }
                    let at = self.cs_rip();
                    if skip.take() != Some(at) {
                        let rip = at.1;
                        if self.sw.contains(&rip) {
                            return Event::Break { sw: true };
                        }
                        if self.hw.contains(&rip) {
                            return Event::Break { sw: false };
                        }
                    }
                    if let Some(s) = self.exec_one() {
                        return Event::Machine(s);
                    }
                    if !self.watch.is_empty() {
                        if let Some(a) = self.watch_hit() {
                            return Event::Watch(a);
                        }
                    }
                }
            }
            if incoming() {
                return Event::Incoming;
            }
        }
    }

    /// Linear -> guest-physical for the debugger (supervisor view).
    fn phys(&mut self, lin: u64) -> Option<u64> {
        let lin = lin & self.pc.cpu.lin_mask();
        self.pc.cpu.translate(&mut self.pc.board, lin, Access::Read).ok()
    }

    /// The backing offset of guest-physical `pa` if it is RAM (or ROM when
    /// `rom_ok`), with the bytes left in its region.
    fn backing(&self, pa: u64, rom_ok: bool) -> Option<(u64, u64)> {
        let pa = pa & self.pc.cpu.s.a20_mask;
        let r = self.pc.cpu.phys.lookup(pa)?;
        if !rom_ok && r.kind != kagami_cpu::memory::RegionKind::Ram {
            return None;
        }
        Some((r.backing + (pa - r.start), r.start + r.len - pa))
    }

    /// Copy between gdb's buffer and guest memory, page by page; returns
    /// how many bytes were done (short at the first unmapped or non-RAM byte).
    fn access(&mut self, addr: u64, len: usize, mut f: impl FnMut(&Pc, u64, std::ops::Range<usize>), write: bool) -> usize {
        let mut done = 0usize;
        while done < len {
            let lin = addr.wrapping_add(done as u64);
            let Some(pa) = self.phys(lin) else { break };
            let Some((off, room)) = self.backing(pa, !write) else {
                break;
            };
            let page_left = 0x1000 - (lin & 0xfff);
            let n = (len - done).min(page_left as usize).min(room as usize);
            f(self.pc, off, done..done + n);
            done += n;
        }
        done
    }
}

impl Target for GdbTarget<'_> {
    type Arch = X86_64_SSE;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<gdbstub::target::ext::breakpoints::BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<gdbstub::target::ext::monitor_cmd::MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    // Breakpoints never touch guest memory, so gdb may keep them inserted
    // while the guest runs.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl SingleThreadBase for GdbTarget<'_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        let s = &self.pc.cpu.s;
        for (i, &g) in GPR_ORDER.iter().enumerate() {
            regs.regs[i] = s.gpr[g];
        }
        regs.rip = s.rip;
        regs.eflags = s.flags() as u32;
        let seg = |i: usize| s.segs[i].selector as u32;
        regs.segments.cs = seg(CS);
        regs.segments.ss = seg(SS);
        regs.segments.ds = seg(DS);
        regs.segments.es = seg(ES);
        regs.segments.fs = seg(FS);
        regs.segments.gs = seg(GS);
        let f = &s.fpu;
        for (i, st) in f.st.iter().enumerate() {
            regs.st[i].copy_from_slice(&st.to_le_bytes()[..10]);
        }
        regs.fpu.fctrl = f.fcw as u32;
        regs.fpu.fstat = f.fsw as u32;
        regs.fpu.ftag = f.ftw as u32;
        regs.fpu.fiseg = f.fcs as u32;
        regs.fpu.fioff = f.fip as u32;
        regs.fpu.foseg = f.fds as u32;
        regs.fpu.fooff = f.fdp as u32;
        regs.fpu.fop = f.fop as u32;
        regs.xmm = f.xmm;
        regs.mxcsr = f.mxcsr;
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        let cpu = &mut self.pc.cpu;
        let segs = [
            (CS, regs.segments.cs),
            (SS, regs.segments.ss),
            (DS, regs.segments.ds),
            (ES, regs.segments.es),
            (FS, regs.segments.fs),
            (GS, regs.segments.gs),
        ];
        let real = cpu.s.mode == Mode::Real;
        if !real && segs.iter().any(|&(i, v)| cpu.s.segs[i].selector as u32 != v) {
            // A selector load outside real mode reads a descriptor: refused.
            return Err(TargetError::NonFatal);
        }
        for (i, &g) in GPR_ORDER.iter().enumerate() {
            cpu.s.gpr[g] = regs.regs[i];
        }
        cpu.s.rip = regs.rip;
        if cpu.s.flags() as u32 != regs.eflags {
            cpu.s.set_flags(regs.eflags as u64);
        }
        if real {
            for (i, v) in segs {
                if cpu.s.segs[i].selector as u32 != v {
                    cpu.s.segs[i].selector = v as u16;
                    cpu.s.segs[i].base = ((v & 0xffff) as u64) << 4;
                }
            }
        }
        cpu.s.fpu.xmm = regs.xmm;
        cpu.s.fpu.mxcsr = regs.mxcsr;
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let len = data.len();
        let n = self.access(start, len, |pc, off, r| pc.cpu.mem.read(off, &mut data[r]), false);
        if n == 0 && len > 0 {
            return Err(TargetError::NonFatal);
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        // GuestMemory::write marks written code pages, so decoded blocks of
        // patched code are dropped before they run again.
        let n = self.access(start, data.len(), |pc, off, r| pc.cpu.mem.write(off, &data[r]), true);
        if n < data.len() {
            return Err(TargetError::NonFatal);
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<gdbstub::target::ext::base::singlethread::SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for GdbTarget<'_> {
    fn resume(&mut self, signal: Option<Signal>) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a machine".into());
        }
        self.resume = Resume::Continue;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<gdbstub::target::ext::base::singlethread::SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for GdbTarget<'_> {
    fn step(&mut self, signal: Option<Signal>) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a machine".into());
        }
        self.resume = Resume::Step;
        Ok(())
    }
}

impl Breakpoints for GdbTarget<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<gdbstub::target::ext::breakpoints::SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<gdbstub::target::ext::breakpoints::HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<gdbstub::target::ext::breakpoints::HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl HwWatchpoint for GdbTarget<'_> {
    /// Write watchpoints only (Z2): a changed value is seen after the
    /// instruction that wrote it (or after a device's DMA, at the next
    /// instruction boundary). Read and access watchpoints (Z3, Z4) would
    /// need the CPU to report each access: refused.
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        if kind != WatchKind::Write || len == 0 || len > 4096 {
            return Ok(false);
        }
        let now = self.peek(addr, len);
        self.watch.push((addr, len, now));
        Ok(true)
    }

    fn remove_hw_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> TargetResult<bool, Self> {
        let before = self.watch.len();
        if kind == WatchKind::Write {
            self.watch.retain(|w| (w.0, w.1) != (addr, len));
        }
        Ok(self.watch.len() != before)
    }
}

impl SwBreakpoint for GdbTarget<'_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.sw.insert(addr);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.sw.remove(&addr))
    }
}

impl HwBreakpoint for GdbTarget<'_> {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.hw.insert(addr);
        Ok(true)
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.hw.remove(&addr))
    }
}

impl MonitorCmd for GdbTarget<'_> {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), Self::Error> {
        match std::str::from_utf8(cmd).unwrap_or("").trim() {
            "icount" => outputln!(out, "icount {}", self.pc.cpu.s.icount),
            other => outputln!(out, "kagami: unknown monitor command '{}' (known: icount)", other),
        }
        Ok(())
    }
}

struct EventLoop<'a>(std::marker::PhantomData<&'a mut Pc>);

type Reason = SingleThreadStopReason<u64>;

fn stop_reason(target: &mut GdbTarget<'_>, stop: Stop) -> Reason {
    match stop {
        // The guest halted with interrupts off: report a stop, so the
        // state can still be inspected; continuing reports it again.
        Stop::Hung => Reason::Signal(Signal::SIGSTOP),
        Stop::Limit => Reason::Signal(Signal::SIGINT),
        Stop::Exit(code) => {
            target.ended = Some(stop);
            Reason::Exited(code as u8)
        }
        Stop::Reset | Stop::Quit => {
            target.ended = Some(stop);
            Reason::Exited(0)
        }
    }
}

impl<'a> BlockingEventLoop for EventLoop<'a> {
    type Target = GdbTarget<'a>;
    type Connection = TcpStream;
    type StopReason = Reason;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut GdbTarget<'a>,
        conn: &mut TcpStream,
    ) -> Result<run_blocking::Event<Reason>, run_blocking::WaitForStopReasonError<String, std::io::Error>> {
        let event = match target.resume {
            Resume::Step => target.step(),
            Resume::Continue => target.cont(|| conn.peek().map(|b| b.is_some()).unwrap_or(true)),
        };
        Ok(match event {
            Event::DoneStep => run_blocking::Event::TargetStopped(Reason::DoneStep),
            Event::Break { sw: true } => run_blocking::Event::TargetStopped(Reason::SwBreak(())),
            Event::Break { sw: false } => run_blocking::Event::TargetStopped(Reason::HwBreak(())),
            Event::Watch(addr) => run_blocking::Event::TargetStopped(Reason::Watch {
                tid: (),
                kind: WatchKind::Write,
                addr,
            }),
            Event::Machine(stop) => run_blocking::Event::TargetStopped(stop_reason(target, stop)),
            Event::Incoming => {
                let byte = conn.read().map_err(run_blocking::WaitForStopReasonError::Connection)?;
                run_blocking::Event::IncomingData(byte)
            }
        })
    }

    fn on_interrupt(_target: &mut GdbTarget<'a>) -> Result<Option<Reason>, String> {
        // The machine only runs inside wait_for_stop_reason: it is stopped already.
        Ok(Some(Reason::Signal(Signal::SIGINT)))
    }
}

/// How a debugger session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// gdb detached or the connection closed: the guest keeps running.
    Detached,
    /// gdb killed the target: kagami ends.
    Killed,
    /// The machine stopped (the guest exited, powered off, ...).
    Machine(Stop),
}

/// Serve one debugger connection; the machine is stopped from the moment
/// gdb connects until it resumes it.
pub fn session(pc: &mut Pc, stream: TcpStream) -> Result<SessionEnd, String> {
    let _ = stream.set_nodelay(true);
    let mut t = GdbTarget::new(pc);
    let target = &mut t;
    {
        let gdb = GdbStub::new(stream);
        match gdb.run_blocking::<EventLoop<'_>>(target) {
            Ok(DisconnectReason::Disconnect) => Ok(SessionEnd::Detached),
            Ok(DisconnectReason::Kill) => Ok(SessionEnd::Killed),
            Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {
                Ok(SessionEnd::Machine(target.ended.unwrap_or(Stop::Quit)))
            }
            Err(e) if e.is_connection_error() => Ok(match target.ended {
                Some(s) => SessionEnd::Machine(s),
                None => SessionEnd::Detached,
            }),
            Err(e) => Err(format!("gdb stub: {e}")),
        }
    }
}

/// Run the machine with a GDB stub listening on `listener` (`-gdb`): with
/// `wait` (`-S`) nothing runs until a debugger connects; otherwise the guest
/// runs and a debugger may attach at any time (the machine stops while it
/// is attached). `limit` (`--max-instructions`) counts outside sessions too.
pub fn run(pc: &mut Pc, listener: TcpListener, wait: bool, limit: Option<u64>) -> Result<Stop, String> {
    let end = limit.map(|l| pc.cpu.s.icount.saturating_add(l));
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut wait = wait;
    loop {
        let conn = if wait {
            eprintln!("kagami: waiting for gdb to connect on {addr} (-S)");
            listener.set_nonblocking(false).map_err(|e| format!("-gdb: {e}"))?;
            Some(listener.accept().map_err(|e| format!("-gdb: accept: {e}"))?.0)
        } else {
            listener.set_nonblocking(true).map_err(|e| format!("-gdb: {e}"))?;
            match listener.accept() {
                Ok((s, _)) => Some(s),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => return Err(format!("-gdb: accept: {e}")),
            }
        };
        if let Some(stream) = conn {
            wait = false;
            stream.set_nonblocking(false).map_err(|e| format!("-gdb: {e}"))?;
            match session(pc, stream)? {
                SessionEnd::Detached => eprintln!("kagami: gdb detached; the guest keeps running"),
                SessionEnd::Killed => return Ok(Stop::Quit),
                SessionEnd::Machine(s) => return Ok(s),
            }
            continue;
        }
        let n = match end {
            Some(e) if pc.cpu.s.icount >= e => return Ok(Stop::Limit),
            Some(e) => SLICE.min(e - pc.cpu.s.icount),
            None => SLICE,
        };
        match pc.run(Some(n)) {
            Stop::Limit => {}
            s => return Ok(s),
        }
    }
}
