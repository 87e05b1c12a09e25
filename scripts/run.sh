#!/usr/bin/env bash
# The main job: build kagami (release) and run it.
#
# Today kagami runs its built-in demo guest (a real-mode program assembled
# in machine/src/demo.rs that prints primes). When the PC platform can boot
# Linux, this script builds the test guest (scripts/build-test-guest.sh) and
# runs `kagami -kernel target/guest/bzImage -initrd
# target/guest/initramfs.cpio.gz -append console=ttyS0` instead; arguments
# given to this script are passed on to kagami either way.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "run.sh: cargo not found: install Rust 1.95 or later (rustup.rs)" >&2; exit 1; }
cargo build --release -p kagami-machine --bin kagami
exec "${CARGO_TARGET_DIR:-target}/release/kagami" --demo "$@"
