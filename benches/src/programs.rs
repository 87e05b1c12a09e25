//! Guest programs shared by the `mips` and `jit_mips` benchmarks: 64-bit
//! code assembled with iced-x86 for [`crate::long_mode_cpu`], loaded at
//! [`CODE`], its input at [`DATA`], ending with HLT, and a check of the
//! result against the same computation done on the host.

use crate::{CODE, DATA, DATA2};
use iced_x86::code_asm::*;
use kagami_cpu::Cpu;

/// A benchmark program.
pub struct Program {
    pub name: String,
    pub code: Vec<u8>,
    /// Written to guest memory at [`DATA`] before the run.
    pub data: Vec<u8>,
    /// Checks the guest's result; Err says what is wrong.
    pub check: Box<dyn Fn(&Cpu) -> Result<(), String>>,
    /// Bytes the program moves, for a MB/s figure (string copies).
    pub bytes: Option<u64>,
}

impl Program {
    /// Put the code and the input into `cpu`'s memory.
    pub fn load(&self, cpu: &Cpu) {
        cpu.mem.write(CODE, &self.code);
        cpu.mem.write(DATA, &self.data);
    }
}

/// Assemble 64-bit code at [`CODE`] with a HLT appended.
pub fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.hlt().unwrap();
    a.assemble(CODE).unwrap()
}

/// `len` bytes of xorshift output (deterministic for a seed).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a (32-bit) over a 64 KiB buffer, `passes` times, the hash carried
/// on (a load and an IMUL per byte).
pub fn fnv1a(passes: u32) -> Program {
    const LEN: usize = 64 << 10;
    let code = asm(|a| {
        let mut pass = a.create_label();
        let mut byte = a.create_label();
        a.mov(eax, FNV_OFFSET)?;
        a.mov(ecx, passes)?;
        a.set_label(&mut pass)?;
        a.mov(rsi, DATA)?;
        a.lea(rdi, ptr(rsi + LEN as i32))?;
        a.set_label(&mut byte)?;
        a.movzx(edx, byte_ptr(rsi))?;
        a.xor(eax, edx)?;
        a.imul_3(eax, eax, FNV_PRIME as i32)?;
        a.inc(rsi)?;
        a.cmp(rsi, rdi)?;
        a.jb(byte)?;
        a.dec(ecx)?;
        a.jne(pass)
    });
    let data = pseudo_random(LEN, 1);
    let mut want = FNV_OFFSET;
    for _ in 0..passes {
        for &b in &data {
            want = (want ^ b as u32).wrapping_mul(FNV_PRIME);
        }
    }
    Program {
        name: format!("fnv1a hash, 64 KiB x{passes}"),
        code,
        data,
        check: Box::new(move |cpu| {
            let got = cpu.s.gpr[0] as u32;
            (got == want).then_some(()).ok_or(format!("hash {got:#x}, expected {want:#x}"))
        }),
        bytes: None,
    }
}

/// Insertion sort of `n` unsigned dwords (loads, stores, compares, branches).
pub fn insertion_sort(n: u32) -> Program {
    let code = asm(|a| {
        // for i in 1..n { key = v[i]; j = i; while j > 0 && v[j-1] > key { v[j] = v[j-1]; j -= 1 } v[j] = key }
        let mut outer = a.create_label();
        let mut inner = a.create_label();
        let mut place = a.create_label();
        let mut done = a.create_label();
        a.mov(rbx, DATA)?;
        a.mov(esi, 1u32)?;
        a.set_label(&mut outer)?;
        a.cmp(esi, n)?;
        a.jae(done)?;
        a.mov(eax, dword_ptr(rbx + rsi * 4))?;
        a.mov(edi, esi)?;
        a.set_label(&mut inner)?;
        a.test(edi, edi)?;
        a.je(place)?;
        a.mov(edx, dword_ptr(rbx + rdi * 4 - 4))?;
        a.cmp(edx, eax)?;
        a.jbe(place)?;
        a.mov(dword_ptr(rbx + rdi * 4), edx)?;
        a.dec(edi)?;
        a.jmp(inner)?;
        a.set_label(&mut place)?;
        a.mov(dword_ptr(rbx + rdi * 4), eax)?;
        a.inc(esi)?;
        a.jmp(outer)?;
        a.set_label(&mut done)?;
        a.nop()
    });
    let data = pseudo_random(4 * n as usize, 2);
    let mut want: Vec<u32> = data.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    want.sort_unstable();
    Program {
        name: format!("insertion sort, {n} dwords"),
        code,
        data,
        check: Box::new(move |cpu| {
            let mut got = vec![0u8; want.len() * 4];
            cpu.mem.read(DATA, &mut got);
            let got: Vec<u32> = got.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
            (got == want).then_some(()).ok_or("array not sorted".to_string())
        }),
        bytes: None,
    }
}

const COPY_LEN: usize = 1 << 20;

fn copy_program(name: String, code: Vec<u8>, passes: u64) -> Program {
    let src = pseudo_random(COPY_LEN, 3);
    let want = src.clone();
    Program {
        name,
        code,
        data: src,
        check: Box::new(move |cpu| {
            let mut got = vec![0u8; COPY_LEN];
            cpu.mem.read(DATA2, &mut got);
            (got == want).then_some(()).ok_or("destination differs from source".to_string())
        }),
        bytes: Some(COPY_LEN as u64 * passes),
    }
}

/// REP MOVSB of 1 MiB from [`DATA`] to [`DATA2`], `passes` times.
pub fn rep_movsb(passes: u32) -> Program {
    let code = asm(|a| {
        let mut pass = a.create_label();
        a.mov(ebx, passes)?;
        a.cld()?;
        a.set_label(&mut pass)?;
        a.mov(rsi, DATA)?;
        a.mov(rdi, DATA2)?;
        a.mov(ecx, COPY_LEN as u32)?;
        a.rep().movsb()?;
        a.dec(ebx)?;
        a.jne(pass)
    });
    copy_program(format!("rep movsb, 1 MiB x{passes}"), code, passes as u64)
}

/// The same copy as a byte loop, `passes` times.
pub fn byte_loop(passes: u32) -> Program {
    let code = asm(|a| {
        let mut pass = a.create_label();
        let mut byte = a.create_label();
        a.mov(ebx, passes)?;
        a.set_label(&mut pass)?;
        a.mov(rsi, DATA)?;
        a.mov(rdi, DATA2)?;
        a.mov(ecx, COPY_LEN as u32)?;
        a.set_label(&mut byte)?;
        a.mov(al, byte_ptr(rsi))?;
        a.mov(byte_ptr(rdi), al)?;
        a.inc(rsi)?;
        a.inc(rdi)?;
        a.dec(ecx)?;
        a.jne(byte)?;
        a.dec(ebx)?;
        a.jne(pass)
    });
    copy_program(format!("byte-loop copy, 1 MiB x{passes}"), code, passes as u64)
}
