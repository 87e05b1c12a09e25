//! Differential tests: random instruction streams on kagami versus the host
//! CPU (see `kagami_tests::diff`). `KAGAMI_DIFF_COUNT` scales the number of
//! streams per class, `KAGAMI_DIFF_SEED` and `KAGAMI_DIFF_ONLY` reproduce one.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod host {
    use kagami_tests::diff::{check_class, classes::Class};

    #[test]
    fn integer() {
        check_class(Class::Int);
    }

    #[test]
    fn bmi() {
        check_class(Class::Bmi);
    }

    #[test]
    fn string() {
        check_class(Class::Str);
    }

    #[test]
    fn x87() {
        check_class(Class::X87);
    }

    #[test]
    fn mmx() {
        check_class(Class::Mmx);
    }

    #[test]
    fn sse() {
        check_class(Class::Sse);
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
#[test]
fn differential_needs_x86_64_linux() {
    println!("SKIPPED: differential tests need an x86-64 Linux host");
}

/// The harness itself: the native side computes, reports faults with the
/// right vector, and a wrong result is reported as a difference.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod harness {
    use iced_x86::{Code, Instruction, Register};
    use kagami_tests::diff::{compare, emu::Emu, run_pair, stream_of};

    #[test]
    fn native_add_and_divide_error() {
        let add = Instruction::with2(Code::Add_rm64_r64, Register::RAX, Register::RCX).unwrap();
        let s = stream_of(&[add], 1);
        let (n, k) = run_pair(&s);
        assert_eq!(n.state.gpr[0], s.input.gpr[0].wrapping_add(s.input.gpr[1]));
        assert_eq!(n.fault, None);
        assert!(compare::diff(&s, &n, &k).is_empty() || !kagami_cpu::dispatch::implemented(Code::Add_rm64_r64));

        // A wrong kagami result must show up.
        let mut bad = k.clone();
        bad.state.gpr[0] ^= 1;
        bad.data[5] ^= 0x80;
        let d = compare::diff(&s, &n, &bad);
        assert!(
            d.iter().any(|l| l.starts_with("rax")) && d.iter().any(|l| l.starts_with("data")),
            "{d:?}"
        );

        let xor = Instruction::with2(Code::Xor_r32_rm32, Register::ECX, Register::ECX).unwrap();
        let div = Instruction::with1(Code::Div_rm64, Register::RCX).unwrap();
        let s = stream_of(&[xor, div], 2);
        let (n, _) = run_pair(&s);
        let f = n.fault.expect("DIV by zero faults natively");
        assert_eq!(f.vector, 0);
        assert_eq!(f.rip, s.insns[1].ip());
        assert_eq!(n.state.gpr[1], 0);
    }

    /// The executor path stops at the end of the stream, or at a fault.
    #[test]
    fn executor_path_runs_the_stream() {
        if !kagami_cpu::dispatch::implemented(Code::Add_rm64_r64) || !kagami_cpu::dispatch::implemented(Code::Div_rm64) {
            println!("SKIPPED: ADD/DIV not implemented yet");
            return;
        }
        let mut emu = Emu::new();
        let add = Instruction::with2(Code::Add_rm64_r64, Register::RAX, Register::RCX).unwrap();
        let s = stream_of(&[add], 3);
        let e = emu.run_executor(&s.bytes, &s.input, &s.data);
        assert_eq!(e.fault, None);
        assert_eq!(e.state.gpr[0], s.input.gpr[0].wrapping_add(s.input.gpr[1]));
        let xor = Instruction::with2(Code::Xor_r32_rm32, Register::ECX, Register::ECX).unwrap();
        let div = Instruction::with1(Code::Div_rm64, Register::RCX).unwrap();
        let s = stream_of(&[xor, div], 4);
        let e = emu.run_executor(&s.bytes, &s.input, &s.data);
        assert_eq!(e.fault.map(|f| f.rip), Some(s.insns[1].ip()));
        assert_eq!(e.state.gpr[1], 0);
    }
}
