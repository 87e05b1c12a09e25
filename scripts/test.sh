#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this) and as a developer
# does on a fresh Debian 12 machine with Rust installed:
#   1. installs the Debian packages the tests use, only those missing
#      (cpio to read back the test guest's archive, qemu-system-x86 to boot it,
#      qemu-utils for qemu-img, which makes and checks disk images,
#      acpica-tools for iasl, which checks the generated ACPI tables, seabios
#      for the -bios tests, syslinux/isolinux/mtools/dosfstools/fdisk/xorriso
#      to build the boot images of the disk tests, gdb for the gdb stub tests);
#   2. builds the Linux test guest in target/guest/ if it is not there
#      (scripts/build-test-guest.sh) and the disk modules (scripts/build-disk-guest.sh),
#      and after the build the SYSLINUX/ISOLINUX boot images of the disk tests
#      (scripts/build-boot-images.sh);
#   3. runs every test of the workspace with cargo-nextest (cargo test if
#      nextest is missing), in the dev profile only;
#   4. builds the fuzz target (fuzz/) on stable and runs it briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

log() { echo "test.sh: $*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root to run: $*"; exit 1
    fi
}

command -v cargo >/dev/null || { log "cargo not found: install Rust 1.95 or later (rustup.rs)"; exit 1; }

missing=()
for p in cpio qemu-system-x86 qemu-utils acpica-tools seabios syslinux syslinux-common isolinux mtools dosfstools fdisk xorriso gdb; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/build-test-guest.sh
# The disk modules come from the kernel's exact package version; if the mirror
# no longer has it, the Linux disk tests say why instead of stopping the run.
bash scripts/build-disk-guest.sh || log "disk modules unavailable: the Linux disk tests will report them missing"

# A missing guest image or tool fails the guest tests instead of skipping them.
export KAGAMI_REQUIRE_GUEST=1
# The command-line tests run the kagami binary; nextest builds only test targets.
cargo build --workspace --bins
# The SYSLINUX disk and ISOLINUX CD images of tests/tests/boot_images.rs
# (uses target/debug/kagami-mkinitramfs, built just above). The test runs the
# script too (a no-op when up to date); a failure here is reported there.
bash scripts/build-boot-images.sh || log "boot images unavailable: tests/tests/boot_images.rs will fail"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --profile ci
    # The CPU conformance and boot tests again with the JIT translating every
    # block at first sight (tests/src constructors honour KAGAMI_JIT_THRESHOLD).
    KAGAMI_JIT_THRESHOLD=0 cargo nextest run -p kagami-tests --profile ci \
        --test system_guest --test int_flow --test differential --test sst80286 --test multiboot_boot
else
    log "cargo-nextest not found: using cargo test"
    cargo test --workspace
    KAGAMI_JIT_THRESHOLD=0 cargo test -p kagami-tests \
        --test system_guest --test int_flow --test differential --test sst80286 --test multiboot_boot
fi

# The fuzz crate is outside the workspace; sharing the target folder reuses
# the workspace's artifacts. Built without sanitizer instrumentation (stable
# Rust); see fuzz/README.md for real fuzzing.
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} cargo build --manifest-path fuzz/Cargo.toml
"${CARGO_TARGET_DIR:-$PWD/target}/debug/decode_execute" -runs=300 -seed=1 -artifact_prefix=target/ 2>&1 | tail -n1

log "done in $(($(date +%s) - start)) s"
