//! The GDB remote stub (`-gdb tcp::PORT`, `-S`), driven over TCP by the
//! real gdb in batch mode (registers, memory, stepi, breakpoints, detach;
//! deterministic breakpoint stops with `-icount`) and by a tiny RSP client
//! in this file (Ctrl-C while running, kill). The guest is the Multiboot
//! timer kernel (tests/src/mbkernel.rs): it takes 50 IRQ0s, each through
//! the handler at HANDLER, then exits through isa-debug-exit with code
//! (0x11 << 1) | 1.
//!
//! The gdb tests need /usr/bin/gdb; without it they fail with a message
//! saying so (CI installs the `gdb` package).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kagami_tests::harness::kagami;
use kagami_tests::mbkernel::LOAD;

const ENTRY: u64 = LOAD as u64 + 0x40;
const HANDLER: u64 = ENTRY + 0x400;
const EXIT_CODE: i32 = (0x11 << 1) | 1;

fn timer_kernel(tag: &str) -> PathBuf {
    write_kernel(tag, &kagami_tests::mbkernel::timer_kernel())
}

fn write_kernel(tag: &str, image: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kagami-gdb-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("kernel.elf");
    std::fs::write(&p, image).unwrap();
    p
}

/// Virtual address the paged kernel maps (4 MiB page) onto physical 4 MiB.
const PAGED_VIRT: u64 = 0x4000_0000;

/// A kernel that turns on paging (4 MiB pages: the low 4 MiB identity
/// mapped, PAGED_VIRT -> 0x400000, nothing else), stores a marker at
/// physical 0x400000 and spins at the returned address.
fn paged_kernel() -> (Vec<u8>, u64) {
    use iced_x86::code_asm::*;
    let pd = 0x30_0000u32;
    let mut a = CodeAssembler::new(32).unwrap();
    let mut spin = a.create_label();
    a.mov(dword_ptr(0x40_0000u32), 0xfeed_faceu32).unwrap();
    a.mov(edi, pd).unwrap();
    a.xor(eax, eax).unwrap();
    a.mov(ecx, 1024u32).unwrap();
    a.rep().stosd().unwrap();
    a.mov(dword_ptr(pd), 0x83u32).unwrap();
    a.mov(dword_ptr(pd + (PAGED_VIRT >> 22) as u32 * 4), 0x40_0083u32).unwrap();
    a.mov(eax, cr4).unwrap();
    a.or(eax, 0x10).unwrap();
    a.mov(cr4, eax).unwrap();
    a.mov(eax, pd).unwrap();
    a.mov(cr3, eax).unwrap();
    a.mov(eax, cr0).unwrap();
    a.or(eax, 0x8000_0000u32 as i32).unwrap();
    a.mov(cr0, eax).unwrap();
    a.set_label(&mut spin).unwrap();
    a.jmp(spin).unwrap();
    let code = a.assemble(ENTRY).unwrap();
    // The spin loop is the last instruction (jmp rel8: 2 bytes).
    let spin_at = ENTRY + code.len() as u64 - 2;
    (kagami_tests::mbkernel::elf(&code, ENTRY as u32), spin_at)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start kagami paused (-S) with the stub on `port`; returns once it listens.
fn start(kernel: &Path, port: u16, extra: &[&str]) -> Child {
    let mut child = Command::new(kagami())
        .args([
            "-S",
            "-gdb",
            &format!("tcp:127.0.0.1:{port}"),
            "-icount",
            "shift=3",
            "-display",
            "none",
        ])
        .args(["-serial", "null", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel"])
        .arg(kernel)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kagami");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("kagami ended before listening for gdb: {seen}");
        }
        seen.push_str(&line);
        if line.contains("waiting for gdb") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
    });
    child
}

fn wait_exit(child: &mut Child) -> i32 {
    for _ in 0..600 {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("kagami did not end within 30 s");
}

fn gdb(port: u16, cmds: &[&str]) -> String {
    let gdb = Path::new("/usr/bin/gdb");
    assert!(gdb.exists(), "these tests need gdb (/usr/bin/gdb; apt-get install gdb)");
    let mut c = Command::new(gdb);
    c.args(["-batch", "-nx", "-ex", "set architecture i386:x86-64", "-ex"])
        .arg(format!("target remote 127.0.0.1:{port}"));
    for cmd in cmds {
        c.args(["-ex", cmd]);
    }
    let out = c.stdin(Stdio::null()).output().expect("run gdb");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text
}

/// The value after `key` on the first line that has it, as a number.
fn value_after(out: &str, key: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("no '{key}' in:\n{out}"));
    let v = line[line.find(key).unwrap() + key.len()..].split_whitespace().next().unwrap();
    let v = v.trim_end_matches(',');
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => v
            .parse()
            .unwrap_or_else(|_| panic!("'{v}' after '{key}' is not a number in:\n{out}")),
    }
}

/// All values printed after `key`, in order.
fn values_after(out: &str, key: &str) -> Vec<u64> {
    out.lines().filter(|l| l.contains(key)).map(|l| value_after(l, key)).collect()
}

#[test]
fn gdb_reads_and_writes_registers_and_memory_and_steps() {
    let k = timer_kernel("regs");
    let port = free_port();
    let mut child = start(&k, port, &[]);
    let out = gdb(
        port,
        &[
            "printf \"rip=%#lx\\n\", $rip",
            "printf \"cs=%#x ds=%#x ss=%#x\\n\", $cs, $ds, $ss",
            "printf \"eflags=%#x\\n\", $eflags",
            "monitor icount",
            // mov esp, 0x300000 is the kernel's first instruction: bc 00 00 30 00.
            "printf \"code=%#x\\n\", *(unsigned char*)0x100040",
            "printf \"imm=%#x\\n\", *(unsigned int*)0x100041",
            "stepi",
            "printf \"rip=%#lx\\n\", $rip",
            "printf \"esp=%#lx\\n\", $rsp",
            "monitor icount",
            "set $rax = 0x1234abcd",
            "set $rbx = 0x5a5a",
            "printf \"rax=%#lx rbx=%#lx\\n\", $rax, $rbx",
            "set {unsigned int}0x210000 = 0xdeadbeef",
            "printf \"mem=%#x\\n\", *(unsigned int*)0x210000",
            // Beyond the 128 MiB of RAM: not memory, an error reply.
            "x/xw 0x40000000",
            "printf \"after error\\n\"",
            "detach",
        ],
    );
    let code = wait_exit(&mut child);
    assert_eq!(values_after(&out, "rip="), [ENTRY, ENTRY + 5], "{out}");
    assert_eq!(value_after(&out, "cs="), 0x10, "{out}");
    assert_eq!(value_after(&out, "ds="), 0x18, "{out}");
    assert_eq!(value_after(&out, "eflags=") & 2, 2, "{out}");
    assert_eq!(value_after(&out, "code="), 0xbc, "{out}");
    assert_eq!(value_after(&out, "imm="), 0x30_0000, "{out}");
    assert_eq!(value_after(&out, "esp="), 0x30_0000, "{out}");
    let counts = values_after(&out, "icount ");
    assert_eq!(counts.len(), 2, "{out}");
    assert_eq!(counts[1], counts[0] + 1, "stepi retires exactly one instruction: {out}");
    assert_eq!(value_after(&out, "rax="), 0x1234_abcd, "{out}");
    assert_eq!(value_after(&out, "rbx="), 0x5a5a, "{out}");
    assert_eq!(value_after(&out, "mem="), 0xdead_beef, "{out}");
    assert!(out.contains("Cannot access memory at address 0x40000000"), "{out}");
    assert!(out.contains("after error"), "{out}");
    // Detached: the guest ran on to its end.
    assert_eq!(code, EXIT_CODE, "{out}");
}

/// Breakpoints stop before the instruction at their address, also on an
/// interrupt handler's first instruction, at the same instruction count in
/// every run (-icount).
fn breakpoint_run(tag: &str, extra: &[&str]) -> (Vec<u64>, Vec<u64>, i32) {
    let k = timer_kernel(tag);
    let port = free_port();
    let mut child = start(&k, port, extra);
    let out = gdb(
        port,
        &[
            &format!("break *{HANDLER:#x}"),
            "continue",
            "printf \"rip=%#lx\\n\", $rip",
            "monitor icount",
            "continue",
            "printf \"rip=%#lx\\n\", $rip",
            "monitor icount",
            "delete",
            &format!("hbreak *{:#x}", HANDLER + 1),
            "continue",
            "printf \"rip=%#lx\\n\", $rip",
            "monitor icount",
            "delete",
            "detach",
        ],
    );
    let code = wait_exit(&mut child);
    (values_after(&out, "rip="), values_after(&out, "icount "), code)
}

#[test]
fn breakpoints_stop_before_the_instruction_deterministically() {
    let (rips, counts, code) = breakpoint_run("bp1", &[]);
    assert_eq!(rips, [HANDLER, HANDLER, HANDLER + 1]);
    assert_eq!(counts.len(), 3);
    assert!(counts[0] < counts[1] && counts[1] < counts[2], "{counts:?}");
    // push eax: the hardware breakpoint is one instruction after the handler entry.
    assert_eq!(counts[2], counts[1] + 1, "{counts:?}");
    assert_eq!(code, EXIT_CODE);
    let again = breakpoint_run("bp2", &[]);
    assert_eq!(
        again,
        (rips.clone(), counts.clone(), code),
        "a second run stops at the same instruction counts"
    );
    // The JIT (translating every block at once) stops at the same points.
    let jit = breakpoint_run("bp3", &["--jit-threshold", "0"]);
    assert_eq!(jit, (rips, counts, code), "with the JIT");
}

/// A minimal RSP client: send one packet, read one reply packet.
struct Rsp(TcpStream);

impl Rsp {
    fn send(&mut self, body: &str) {
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        self.0.write_all(format!("${body}#{sum:02x}").as_bytes()).unwrap();
    }

    fn reply(&mut self) -> String {
        let mut b = [0u8; 1];
        // Skip acks until the packet start.
        loop {
            self.0.read_exact(&mut b).unwrap();
            if b[0] == b'$' {
                break;
            }
        }
        let mut body = Vec::new();
        loop {
            self.0.read_exact(&mut b).unwrap();
            if b[0] == b'#' {
                break;
            }
            body.push(b[0]);
        }
        let mut sum = [0u8; 2];
        self.0.read_exact(&mut sum).unwrap();
        self.0.write_all(b"+").unwrap();
        // Undo the escapes (`}` then byte ^ 0x20) and run-length encoding
        // (`X*n`: n - 29 more copies of X).
        let mut out: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b'}' if i + 1 < body.len() => {
                    out.push(body[i + 1] ^ 0x20);
                    i += 2;
                }
                b'*' if i + 1 < body.len() && !out.is_empty() => {
                    let last = *out.last().unwrap();
                    out.extend(std::iter::repeat_n(last, (body[i + 1] - 29) as usize));
                    i += 2;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn ask(&mut self, body: &str) -> String {
        self.send(body);
        self.reply()
    }
}

#[test]
fn ctrl_c_interrupts_a_running_guest_and_kill_ends_kagami() {
    let k = timer_kernel("ctrlc");
    let port = free_port();
    let mut child = start(&k, port, &[]);
    let mut c = Rsp(TcpStream::connect(("127.0.0.1", port)).unwrap());
    c.0.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert!(c.ask("qSupported:swbreak+;hwbreak+").contains("PacketSize"));
    // jmp $ at the entry: the guest spins until interrupted.
    assert_eq!(c.ask(&format!("M{ENTRY:x},2:ebfe")), "OK");
    assert_eq!(c.ask(&format!("m{ENTRY:x},2")), "ebfe");
    // Reading unmapped memory is an error reply.
    assert!(c.ask("m40000000,4").starts_with('E'));
    c.send("c");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the guest keeps running until interrupted");
    c.0.write_all(&[0x03]).unwrap();
    let stop = c.reply();
    assert!(stop.starts_with("T02") || stop.starts_with("S02"), "stop reply {stop}");
    // RIP (after the 16 general registers in gdb's x86-64 order) is still at the spin loop.
    let regs = c.ask("g");
    let rip = regs.get(256..272).unwrap_or_else(|| panic!("short g reply {regs}"));
    assert_eq!(u64::from_str_radix(rip, 16).map(u64::swap_bytes), Ok(ENTRY), "{rip}");
    c.send("k");
    assert_eq!(wait_exit(&mut child), 0);
}

#[test]
fn gdb_with_kvm_is_a_clear_error() {
    let k = timer_kernel("kvm");
    let out = Command::new(kagami())
        .args(["-s", "-accel", "kvm", "-display", "none", "-serial", "null", "-kernel"])
        .arg(&k)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Without usable KVM, -accel kvm fails before the stub is considered; both name the problem.
    assert!(err.contains("accel tcg") || err.contains("-accel kvm"), "{err}");
}

#[test]
fn bad_gdb_device_is_a_clear_error() {
    let k = timer_kernel("bad");
    let out = Command::new(kagami())
        .args(["-gdb", "tcp::notaport", "-display", "none", "-kernel"])
        .arg(&k)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("-gdb tcp::notaport"), "{err}");
}

#[test]
fn memory_is_read_through_the_guest_page_tables() {
    let (image, spin) = paged_kernel();
    let k = write_kernel("paged", &image);
    let port = free_port();
    let mut child = start(&k, port, &[]);
    let out = gdb(
        port,
        &[
            &format!("break *{spin:#x}"),
            "continue",
            "printf \"rip=%#lx\\n\", $rip",
            &format!("printf \"virt=%#x\\n\", *(unsigned int*){PAGED_VIRT:#x}"),
            // Physical 0x400000 is not mapped at its own address.
            "x/xw 0x400000",
            "x/xw 0x80000000",
            "printf \"after errors\\n\"",
            "kill",
        ],
    );
    assert_eq!(wait_exit(&mut child), 0, "{out}");
    assert_eq!(value_after(&out, "rip="), spin, "{out}");
    assert_eq!(value_after(&out, "virt="), 0xfeed_face, "{out}");
    assert!(out.contains("Cannot access memory at address 0x400000"), "{out}");
    assert!(out.contains("Cannot access memory at address 0x80000000"), "{out}");
    assert!(out.contains("after errors"), "{out}");
}

/// A write watchpoint on the timer kernel's tick counter (0x201000) stops
/// right after the `inc dword [ticks]` in the IRQ0 handler.
#[test]
fn write_watchpoint_stops_after_the_writing_instruction() {
    let k = timer_kernel("watch");
    let port = free_port();
    let mut child = start(&k, port, &[]);
    let out = gdb(
        port,
        &[
            "watch *(unsigned int*)0x201000",
            "continue",
            "printf \"ticks=%d\\n\", *(unsigned int*)0x201000",
            // inc dword [abs]: ff 05 imm32, just before RIP.
            "printf \"op=%#x modrm=%#x\\n\", *(unsigned char*)($rip - 6), *(unsigned char*)($rip - 5)",
            "continue",
            "printf \"ticks=%d\\n\", *(unsigned int*)0x201000",
            "delete",
            "detach",
        ],
    );
    assert_eq!(wait_exit(&mut child), EXIT_CODE, "{out}");
    assert!(out.contains("atchpoint 1: *(unsigned int*)0x201000"), "{out}");
    assert_eq!(values_after(&out, "ticks="), [1, 2], "{out}");
    assert_eq!(value_after(&out, "op="), 0xff, "{out}");
    assert_eq!(value_after(&out, "modrm="), 0x05, "{out}");
}

/// Without -S the guest runs at once; gdb attaches to the running guest
/// (which stops), a detach lets it run on, and a second debugger can attach.
#[test]
fn attach_to_a_running_guest_detach_and_attach_again() {
    let (image, spin) = paged_kernel();
    let k = write_kernel("attach", &image);
    let port = free_port();
    let mut child = Command::new(kagami())
        .args([
            "-gdb",
            &format!("tcp:127.0.0.1:{port}"),
            "-icount",
            "shift=3",
            "-display",
            "none",
            "-serial",
            "null",
            "-kernel",
        ])
        .arg(&k)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let connect = || {
        for _ in 0..200 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                return Rsp(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("kagami never listened on {port}");
    };
    let rip_of = |c: &mut Rsp| {
        let regs = c.ask("g");
        u64::from_str_radix(&regs[256..272], 16).unwrap().swap_bytes()
    };
    let icount_of = |c: &mut Rsp| {
        c.send(&format!(
            "qRcmd,{}",
            "icount".bytes().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        let out = c.reply();
        assert_eq!(c.reply(), "OK");
        let text: Vec<u8> = (1..out.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&out[i..i + 2], 16).unwrap())
            .collect();
        let text = String::from_utf8(text).unwrap();
        text.trim().strip_prefix("icount ").unwrap().parse::<u64>().unwrap()
    };
    // Let the guest reach its spin loop before attaching.
    std::thread::sleep(Duration::from_millis(300));
    let mut c = connect();
    assert!(c.ask("?").starts_with(['S', 'T']));
    assert_eq!(rip_of(&mut c), spin);
    let first = icount_of(&mut c);
    assert!(first > 0);
    assert_eq!(c.ask("D"), "OK");
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the guest runs on after detach");
    let mut c = connect();
    assert_eq!(rip_of(&mut c), spin);
    assert!(icount_of(&mut c) > first, "the guest ran between the sessions");
    c.send("k");
    assert_eq!(wait_exit(&mut child), 0);
}
