//! Arbitrary bytes as guest code: the first byte picks the mode (real,
//! 16/32-bit protected, 64-bit) and whether the block cache is used, the
//! rest runs for at most 10,000 instructions on a NullBus. See
//! kagami_cpu::fuzz. A panic or a hang is a bug.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kagami_cpu::fuzz::decode_execute(data);
});
