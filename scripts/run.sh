#!/usr/bin/env bash
# The main job: boot the stock Debian 12 kernel to a busybox shell on kagami.
#
# Builds kagami (release), builds the test guest if it is not cached
# (scripts/build-test-guest.sh: Debian's linux-image-amd64 bzImage and a
# busybox initramfs, in target/guest/), and boots it on `-machine pc` with the
# serial console on this terminal: type at the shell, `poweroff -f` ends
# kagami with exit code 0, Ctrl-A X quits. When stdin is not a terminal the
# guest powers itself off after printing its marker line, so the script
# also works unattended. Arguments are passed on to kagami (e.g. `-machine
# q35`, `--stats`, `--no-jit`); `kagami --demo` runs the built-in real-mode
# demo program instead.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "run.sh: cargo not found: install Rust 1.95 or later (rustup.rs)" >&2; exit 1; }
cargo build --release -p kagami-machine --bin kagami
KAGAMI_BUILD_PROFILE=release bash scripts/build-test-guest.sh
guest=${CARGO_TARGET_DIR:-target}/guest
append="console=ttyS0"
[ -t 0 ] || append="$append kagami.poweroff=1"
exec "${CARGO_TARGET_DIR:-target}/release/kagami" -machine pc -m 256 -nographic \
    -kernel "$guest/bzImage" -initrd "$guest/initramfs.cpio.gz" -append "$append" "$@"
