//! KVM exit round trip: port-I/O exits per second on KVM next to the
//! software CPU's cost for the same `out` loop, in the same run.
//!
//!     cargo run --release -p kagami-benches --bin kvm_exits [-- --iterations N]
//!
//! The guest is a 64-bit ring-0 loop (`out 0x80, al; dec ecx; jnz`) ending
//! in HLT; each `out` is one KVM_EXIT_IO handled by kagami's run loop and
//! bus (a counting bus, so the device cost is near zero) and resumed. The
//! software CPU runs the identical loop on the same kind of bus. Where KVM
//! cannot create a VM the KVM half is skipped with the reason. On PVM hosts
//! the ring-0 loop itself runs in KVM's instruction emulator, so the KVM
//! figure there is exit cost plus emulation. This is a benchmark, not a
//! test: nothing here asserts a time.

use iced_x86::code_asm::*;
use kagami_benches::{long_mode_cpu, CODE};
use kagami_cpu::{Bus, Cpu, Exit};
use kagami_machine::kvm::KvmCpu;
use std::time::Instant;

const PORT: u16 = 0x80;

#[derive(Default)]
struct CountingBus {
    writes: u64,
}

impl Bus for CountingBus {
    fn io_read(&mut self, _: u16, _: u8) -> u32 {
        0xff
    }
    fn io_write(&mut self, port: u16, _: u8, _: u32) {
        if port == PORT {
            self.writes += 1;
        }
    }
    fn mmio_read(&mut self, _: u64, _: u8) -> u64 {
        u64::MAX
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) {}
}

fn guest(iterations: u32) -> Cpu {
    let cpu = long_mode_cpu();
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.mov(ecx, iterations).unwrap();
    a.set_label(&mut top).unwrap();
    a.out(PORT as u32, al).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.hlt().unwrap();
    cpu.mem.write(CODE, &a.assemble(CODE).unwrap());
    cpu
}

fn main() {
    let mut iterations: u32 = 20_000;
    let args: Vec<String> = std::env::args().collect();
    let mut k = 1;
    while k < args.len() {
        match args[k].as_str() {
            "--iterations" if k + 1 < args.len() => {
                iterations = match args[k + 1].parse() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        eprintln!("kvm_exits: --iterations wants a positive number, not '{}'", args[k + 1]);
                        std::process::exit(1);
                    }
                };
                k += 2;
            }
            other => {
                eprintln!("kvm_exits: unknown argument '{other}' (--iterations N)");
                std::process::exit(1);
            }
        }
    }

    // Software CPU: many rounds of the loop so the time is measurable.
    let soft_rounds = 50u32;
    let mut soft_writes = 0;
    let t = Instant::now();
    for _ in 0..soft_rounds {
        let mut cpu = guest(iterations);
        let mut bus = CountingBus::default();
        let exit = cpu.run(&mut bus, u64::MAX);
        assert_eq!(exit, Exit::Halted, "software run ended with {exit:?}");
        soft_writes += bus.writes;
    }
    let soft_s = t.elapsed().as_secs_f64();
    let soft_rate = soft_writes as f64 / soft_s;
    println!(
        "software CPU: {soft_writes} port writes (out + dec + jnz) in {:.3} s: {:.0} writes/s, {:.1} ns per iteration",
        soft_s,
        soft_rate,
        1e9 / soft_rate
    );

    let cpu = guest(iterations);
    let mut vcpu = match KvmCpu::new(&cpu) {
        Ok(v) => v,
        Err(why) => {
            println!("KVM: skipped ({why})");
            return;
        }
    };
    let mut bus = CountingBus::default();
    let t = Instant::now();
    let exit = vcpu.run(&mut bus, None);
    let kvm_s = t.elapsed().as_secs_f64();
    match exit {
        Ok(Exit::Halted) => {}
        other => {
            println!("KVM: the loop did not finish normally: {other:?}");
            return;
        }
    }
    let kvm_rate = bus.writes as f64 / kvm_s;
    println!(
        "KVM:          {} port-I/O exits in {:.3} s: {:.0} exits/s, {:.2} us per exit round trip ({} exits counted by the run loop)",
        bus.writes,
        kvm_s,
        kvm_rate,
        1e6 / kvm_rate,
        vcpu.exits.io
    );
    println!(
        "ratio: the software CPU does the same port write {:.1}x as fast as a KVM exit round trip",
        soft_rate / kvm_rate
    );
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        println!("(this host's KVM is PVM: the ring-0 loop runs in KVM's instruction emulator, which is included in the KVM figure)");
    }
}
