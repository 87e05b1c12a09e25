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
