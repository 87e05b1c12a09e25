//! The state both runs start from and end in, in one host-neutral form, and
//! conversion to and from the FXSAVE image the native run uses.

/// x87/MMX/SSE state as FXSAVE presents it. `st[i]` is ST(i) (stack order),
/// `ftw` the abridged tag word (bit per *physical* register, 1 = not empty).
/// FOP, FIP and FDP are not kept: AMD processors store them only while an
/// x87 exception is pending (FXSAVE description, AMD APM vol. 5), so they
/// cannot be compared on every host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fx {
    pub fcw: u16,
    pub fsw: u16,
    pub ftw: u8,
    pub st: [[u8; 10]; 8],
    pub mxcsr: u32,
    pub xmm: [u128; 16],
}

impl Fx {
    /// TOP field of the status word.
    pub fn top(&self) -> usize {
        ((self.fsw >> 11) & 7) as usize
    }

    pub fn to_fxsave(self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..2].copy_from_slice(&self.fcw.to_le_bytes());
        b[2..4].copy_from_slice(&self.fsw.to_le_bytes());
        b[4] = self.ftw;
        b[24..28].copy_from_slice(&self.mxcsr.to_le_bytes());
        b[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        for i in 0..8 {
            b[32 + 16 * i..42 + 16 * i].copy_from_slice(&self.st[i]);
        }
        for i in 0..16 {
            b[160 + 16 * i..176 + 16 * i].copy_from_slice(&self.xmm[i].to_le_bytes());
        }
        b
    }

    pub fn from_fxsave(b: &[u8]) -> Fx {
        let mut st = [[0u8; 10]; 8];
        for (i, r) in st.iter_mut().enumerate() {
            r.copy_from_slice(&b[32 + 16 * i..42 + 16 * i]);
        }
        let mut xmm = [0u128; 16];
        for (i, x) in xmm.iter_mut().enumerate() {
            *x = u128::from_le_bytes(b[160 + 16 * i..176 + 16 * i].try_into().unwrap());
        }
        Fx {
            fcw: u16::from_le_bytes([b[0], b[1]]),
            fsw: u16::from_le_bytes([b[2], b[3]]),
            ftw: b[4],
            st,
            mxcsr: u32::from_le_bytes(b[24..28].try_into().unwrap()),
            xmm,
        }
    }
}

/// Registers compared after a run (RIP is the stream's end, or the faulting
/// instruction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchState {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub fx: Fx,
}

/// An exception one run raised: vector and the address of the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub rip: u64,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub state: ArchState,
    pub data: Vec<u8>,
    pub fault: Option<Fault>,
}

pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];

/// Name of an exception vector, for reports.
pub fn vector_name(v: u8) -> &'static str {
    match v {
        0 => "#DE",
        1 => "#DB",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        _ => "#?",
    }
}
