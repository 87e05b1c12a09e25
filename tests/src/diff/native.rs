//! Running a stream on the host processor.
//!
//! A forked child process owns a fixed-address mapping (see `layout`): a
//! prologue that saves the host's callee-saved registers and FPU state,
//! loads every GPR, RFLAGS and the FXSAVE image from the state block and
//! jumps to the stream; the stream is followed by an epilogue that stores
//! the registers back and joins a common tail (FXSAVE, restore the host,
//! return). A fault inside the stream is caught by a signal handler that
//! records the vector (the kernel's trap number), copies the registers from
//! the signal context and resumes at the tail, so the FPU state saved there
//! is the state at the fault. The parent talks to the child over two pipes
//! with fixed-size messages; the child allocates nothing after `fork`.
//!
//! The stream runs at CPL 3 with RFLAGS.IF set (POPFQ cannot change IF or
//! IOPL in user mode), so only the arithmetic flags and DF are inputs.

use super::layout::*;
use super::state::{ArchState, Fault, Fx, Outcome};
use iced_x86::code_asm::*;
use std::ptr;

/// Offsets in the state page.
const IN_GPR: u64 = STATE;
const IN_RFLAGS: u64 = STATE + 0x80;
const OUT_GPR: u64 = STATE + 0x100;
const OUT_RFLAGS: u64 = STATE + 0x180;
const HOST_RSP: u64 = STATE + 0x200;
const FAULT_VALID: u64 = STATE + 0x280;
const FAULT_TRAPNO: u64 = STATE + 0x288;
const FAULT_RIP: u64 = STATE + 0x290;
const STREAM_LEN: u64 = STATE + 0x2c0;
const IN_FX: u64 = STATE + 0x400;
const OUT_FX: u64 = STATE + 0x600;
const HOST_FX: u64 = STATE + 0x800;

/// Request: stream length (u64), code bytes, GPRs, RFLAGS, FXSAVE image, data.
const REQ_CODE: usize = 8;
const REQ_GPR: usize = REQ_CODE + CODE_MAX;
const REQ_FX: usize = REQ_GPR + 17 * 8;
const REQ_DATA: usize = REQ_FX + 512;
const REQ_LEN: usize = REQ_DATA + DATA_SIZE;
/// Response: GPRs, RFLAGS, FXSAVE image, fault (valid, trap number, rip), data.
const RESP_FX: usize = 17 * 8;
const RESP_FAULT: usize = RESP_FX + 512;
const RESP_DATA: usize = RESP_FAULT + 24;
const RESP_LEN: usize = RESP_DATA + DATA_SIZE;

const GPRS: [AsmRegister64; 16] = [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15];

/// The prologue at `BASE` and the common tail at `TAIL`.
fn fixed_code() -> (Vec<u8>, Vec<u8>) {
    let mut a = CodeAssembler::new(64).unwrap();
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r).unwrap();
    }
    a.pushfq().unwrap();
    a.mov(qword_ptr(HOST_RSP), rsp).unwrap();
    a.fxsave64(ptr(HOST_FX)).unwrap();
    a.fxrstor64(ptr(IN_FX)).unwrap();
    a.push(qword_ptr(IN_RFLAGS)).unwrap();
    a.popfq().unwrap();
    for (i, r) in GPRS.iter().enumerate() {
        a.mov(*r, qword_ptr(IN_GPR + 8 * i as u64)).unwrap();
    }
    a.jmp(STREAM).unwrap();
    let prologue = a.assemble(BASE).unwrap();

    let mut a = CodeAssembler::new(64).unwrap();
    a.fxsave64(ptr(OUT_FX)).unwrap();
    a.mov(rsp, qword_ptr(HOST_RSP)).unwrap();
    a.fxrstor64(ptr(HOST_FX)).unwrap();
    a.popfq().unwrap();
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r).unwrap();
    }
    a.ret().unwrap();
    let tail = a.assemble(TAIL).unwrap();
    (prologue, tail)
}

/// The epilogue placed right after a stream that ends at `at`.
pub fn epilogue(at: u64) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    for (i, r) in GPRS.iter().enumerate() {
        a.mov(qword_ptr(OUT_GPR + 8 * i as u64), *r).unwrap();
    }
    a.pushfq().unwrap();
    a.pop(qword_ptr(OUT_RFLAGS)).unwrap();
    a.jmp(TAIL).unwrap();
    a.assemble(at).unwrap()
}

/// The child process that runs streams natively.
pub struct NativeRunner {
    pid: libc::pid_t,
    req_fd: libc::c_int,
    resp_fd: libc::c_int,
    req: Vec<u8>,
    resp: Vec<u8>,
}

impl NativeRunner {
    pub fn spawn() -> Result<NativeRunner, String> {
        let (prologue, tail) = fixed_code();
        let mut to_child = [0; 2];
        let mut from_child = [0; 2];
        // SAFETY: plain pipe(2) calls with valid two-element arrays.
        unsafe {
            if libc::pipe2(to_child.as_mut_ptr(), libc::O_CLOEXEC) != 0 || libc::pipe2(from_child.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err(format!("pipe: {}", std::io::Error::last_os_error()));
            }
        }
        let mut req = vec![0u8; REQ_LEN];
        let mut resp = vec![0u8; RESP_LEN];
        // SAFETY: the child only makes system calls and touches memory it
        // already owns (the buffers allocated above, the fixed mapping it
        // creates), so forking a multi-threaded test process is sound; it
        // never returns into the test harness (`child_main` ends in _exit).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; we are the child.
            unsafe {
                // Keep only our two pipe ends: a copy of another runner's
                // write end (tests run in parallel) would keep that runner's
                // child from ever seeing EOF.
                for fd in 3..4096 {
                    if fd != to_child[0] && fd != from_child[1] {
                        libc::close(fd);
                    }
                }
                child_main(to_child[0], from_child[1], &prologue, &tail, &mut req, &mut resp);
            }
        }
        // SAFETY: closing our copies of the child's pipe ends.
        unsafe {
            libc::close(to_child[0]);
            libc::close(from_child[1]);
        }
        let mut r = NativeRunner {
            pid,
            req_fd: to_child[1],
            resp_fd: from_child[0],
            req,
            resp,
        };
        // The child answers a zero-length stream once its mapping is ready.
        let probe = ArchState {
            gpr: [0; 16],
            rip: 0,
            rflags: 0x202,
            fx: Fx::from_fxsave(&[0u8; 512]),
        };
        let mut fx = probe.clone();
        fx.fx.fcw = 0x37f;
        fx.fx.mxcsr = 0x1f80;
        fx.gpr[4] = STACK_TOP;
        r.run(&epilogue(STREAM), 0, &fx, &[0u8; DATA_SIZE])
            .map_err(|e| format!("native runner did not start: {e}"))?;
        Ok(r)
    }

    /// Run `code` (stream of `stream_len` bytes followed by its epilogue).
    pub fn run(&mut self, code: &[u8], stream_len: usize, input: &ArchState, data: &[u8]) -> Result<Outcome, String> {
        assert!(code.len() <= CODE_MAX && data.len() == DATA_SIZE);
        let q = &mut self.req;
        q.fill(0);
        q[0..8].copy_from_slice(&(stream_len as u64).to_le_bytes());
        q[REQ_CODE..REQ_CODE + code.len()].copy_from_slice(code);
        for i in 0..16 {
            q[REQ_GPR + 8 * i..REQ_GPR + 8 * i + 8].copy_from_slice(&input.gpr[i].to_le_bytes());
        }
        q[REQ_GPR + 128..REQ_GPR + 136].copy_from_slice(&input.rflags.to_le_bytes());
        q[REQ_FX..REQ_FX + 512].copy_from_slice(&input.fx.to_fxsave());
        q[REQ_DATA..].copy_from_slice(data);
        if !write_all(self.req_fd, &self.req) || !read_all(self.resp_fd, &mut self.resp) {
            let mut status = 0;
            // SAFETY: reaping our own child by pid.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
            let why = if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else if libc::WEXITSTATUS(status) == 3 {
                format!("could not map its RWX window at {BASE:#x} (address in use, or W^X enforced)")
            } else {
                format!("exited with status {}", libc::WEXITSTATUS(status))
            };
            self.pid = 0;
            return Err(format!("native child {why}"));
        }
        let p = &self.resp;
        let word = |off: usize| u64::from_le_bytes(p[off..off + 8].try_into().unwrap());
        let mut gpr = [0u64; 16];
        for (i, g) in gpr.iter_mut().enumerate() {
            *g = word(8 * i);
        }
        let fault = (word(RESP_FAULT) != 0).then(|| Fault {
            vector: word(RESP_FAULT + 8) as u8,
            rip: word(RESP_FAULT + 16),
        });
        Ok(Outcome {
            state: ArchState {
                gpr,
                rip: fault.map_or(STREAM + stream_len as u64, |f| f.rip),
                rflags: word(128),
                fx: Fx::from_fxsave(&p[RESP_FX..RESP_FX + 512]),
            },
            data: p[RESP_DATA..].to_vec(),
            fault,
        })
    }

    pub fn alive(&self) -> bool {
        self.pid != 0
    }
}

impl Drop for NativeRunner {
    fn drop(&mut self) {
        // SAFETY: closing our pipe ends makes the child exit; it is also
        // killed (by its pid: our own child) so a wedged child cannot hang
        // the test, then reaped.
        unsafe {
            libc::close(self.req_fd);
            libc::close(self.resp_fd);
            if self.pid != 0 {
                libc::kill(self.pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(self.pid, &mut status, 0);
            }
        }
    }
}

fn write_all(fd: libc::c_int, buf: &[u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writing from a live buffer.
        let n = unsafe { libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

fn read_all(fd: libc::c_int, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reading into a live buffer.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

/// Memory the signal handler runs on (the stream's RSP is the guest stack).
static mut ALT_STACK: [u8; 1 << 16] = [0; 1 << 16];

/// SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGTRAP inside the stream: record the trap
/// number and registers, and resume at the tail.
extern "C" fn on_fault(sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext; the state page is mapped
    // at a fixed address for the life of the child.
    unsafe {
        let uc = ctx as *mut libc::ucontext_t;
        let g = &mut (*uc).uc_mcontext.gregs;
        let rip = g[libc::REG_RIP as usize] as u64;
        let len = ptr::read_volatile(STREAM_LEN as *const u64);
        if !(STREAM..STREAM + len).contains(&rip) {
            // Not the stream: let the default action kill the child, which
            // the parent reports.
            libc::signal(sig, libc::SIG_DFL);
            return;
        }
        let order = [
            libc::REG_RAX,
            libc::REG_RCX,
            libc::REG_RDX,
            libc::REG_RBX,
            libc::REG_RSP,
            libc::REG_RBP,
            libc::REG_RSI,
            libc::REG_RDI,
            libc::REG_R8,
            libc::REG_R9,
            libc::REG_R10,
            libc::REG_R11,
            libc::REG_R12,
            libc::REG_R13,
            libc::REG_R14,
            libc::REG_R15,
        ];
        for (i, r) in order.iter().enumerate() {
            ptr::write_volatile((OUT_GPR + 8 * i as u64) as *mut u64, g[*r as usize] as u64);
        }
        ptr::write_volatile(OUT_RFLAGS as *mut u64, g[libc::REG_EFL as usize] as u64);
        ptr::write_volatile(FAULT_VALID as *mut u64, 1);
        ptr::write_volatile(FAULT_TRAPNO as *mut u64, g[libc::REG_TRAPNO as usize] as u64);
        ptr::write_volatile(FAULT_RIP as *mut u64, rip);
        g[libc::REG_RIP as usize] = TAIL as i64;
    }
}

/// The child's serve loop. Never returns.
///
/// # Safety
/// Must only be called in a freshly forked child.
unsafe fn child_main(req_fd: libc::c_int, resp_fd: libc::c_int, prologue: &[u8], tail: &[u8], req: &mut [u8], resp: &mut [u8]) -> ! {
    let map = libc::mmap(
        BASE as *mut libc::c_void,
        REGION_SIZE,
        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
        -1,
        0,
    );
    if map != BASE as *mut libc::c_void {
        libc::_exit(3);
    }
    let alt = libc::stack_t {
        ss_sp: ptr::addr_of_mut!(ALT_STACK).cast(),
        ss_flags: 0,
        ss_size: 1 << 16,
    };
    libc::sigaltstack(&alt, ptr::null_mut());
    for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP] {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, ptr::null_mut());
    }
    ptr::copy_nonoverlapping(prologue.as_ptr(), BASE as *mut u8, prologue.len());
    ptr::copy_nonoverlapping(tail.as_ptr(), TAIL as *mut u8, tail.len());
    type Entry = extern "C" fn();
    let entry: Entry = std::mem::transmute::<usize, Entry>(BASE as usize);
    loop {
        if !read_all(req_fd, req) {
            libc::_exit(0);
        }
        ptr::copy_nonoverlapping(req[REQ_CODE..].as_ptr(), STREAM as *mut u8, CODE_MAX);
        ptr::copy_nonoverlapping(req[REQ_GPR..].as_ptr(), IN_GPR as *mut u8, 17 * 8);
        ptr::copy_nonoverlapping(req[REQ_FX..].as_ptr(), IN_FX as *mut u8, 512);
        ptr::copy_nonoverlapping(req[REQ_DATA..].as_ptr(), DATA as *mut u8, DATA_SIZE);
        ptr::copy_nonoverlapping(req.as_ptr(), STREAM_LEN as *mut u8, 8);
        ptr::write_volatile(FAULT_VALID as *mut u64, 0);
        entry();
        ptr::copy_nonoverlapping(OUT_GPR as *const u8, resp.as_mut_ptr(), 17 * 8);
        ptr::copy_nonoverlapping(OUT_FX as *const u8, resp[RESP_FX..].as_mut_ptr(), 512);
        ptr::copy_nonoverlapping(FAULT_VALID as *const u8, resp[RESP_FAULT..].as_mut_ptr(), 24);
        ptr::copy_nonoverlapping(DATA as *const u8, resp[RESP_DATA..].as_mut_ptr(), DATA_SIZE);
        if !write_all(resp_fd, resp) {
            libc::_exit(0);
        }
    }
}
