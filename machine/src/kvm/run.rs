//! The PC's run loop with KVM as the CPU: the same board and machine clock
//! (host time) as `Pc::run`, with `KvmCpu::run` slices that end at the next
//! device deadline (the vCPU is kicked out of KVM_RUN then), when the guest
//! halts, or when a device asks the machine to act.

use super::vcpu::KvmCpu;
use crate::pc::{Pc, Requests, Stop};
use kagami_cpu::Exit;
use std::time::{Duration, Instant};

/// Longest slice between device updates (host time).
const SLICE: Duration = Duration::from_millis(10);

/// Run `pc` on `kvm` (created from `pc.cpu`) until the guest stops the
/// machine. The software CPU's state is left where KVM stopped.
pub fn run_pc(pc: &mut Pc, kvm: &mut KvmCpu) -> Result<Stop, String> {
    if pc.clock.is_deterministic() {
        return Err("-icount: KVM does not count instructions, so the deterministic clock needs the software CPU (-accel tcg)".into());
    }
    loop {
        // Outside input (typing on COM1, Ctrl-A X), as `Pc::run` takes it.
        if let Some(stop) = pc.drain_input() {
            return Ok(stop);
        }
        // PAM/SMRAM changes: both the software CPU's map and KVM's slots.
        if let Some(m) = pc.board.take_phys_map() {
            kvm.set_phys_map(&m)?;
            pc.cpu.set_phys_map(m);
        }
        let now = pc.clock.now_ns(0);
        pc.board.advance_to(now);
        // KVM has no A20 gate: the line stays open (every guest kagami
        // boots directly runs with A20 enabled); A20 requests only set the
        // software CPU's gate.
        match pc.handle_requests() {
            Requests::Run => {}
            Requests::CpuReset => kvm.set_state(&pc.cpu.s)?,
            Requests::Stop(stop) => return Ok(stop),
        }
        let slice = match pc.board.next_deadline() {
            Some(d) => Duration::from_nanos(d.saturating_sub(now)).min(SLICE),
            None => SLICE,
        };
        match kvm.run(&mut pc.board, Some(Instant::now() + slice))? {
            Exit::Budget | Exit::Stopped => {}
            Exit::TripleFault => {
                if let Some(stop) = pc.reset_cpu() {
                    return Ok(stop);
                }
                kvm.set_state(&pc.cpu.s)?;
            }
            Exit::Halted => {
                let if_set = kvm.interrupts_enabled()?;
                match pc.board.next_deadline() {
                    None if !if_set => return Ok(Stop::Hung),
                    None => std::thread::sleep(Duration::from_millis(1)),
                    Some(d) => {
                        let wait = Duration::from_nanos(d.saturating_sub(pc.clock.now_ns(0)));
                        if !wait.is_zero() {
                            std::thread::sleep(wait.min(SLICE));
                        }
                    }
                }
            }
        }
    }
}
