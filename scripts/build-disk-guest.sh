#!/usr/bin/env bash
# The kernel modules the disk tests load into the Linux test guest
# (tests/tests/disk_guest.rs): the test guest's kernel (Debian's) builds
# libata, ata_piix, ahci, sd_mod, sr_mod and ext4 (which also mounts ext2) as modules, and the plain test
# initramfs carries none. This extracts them from the same kernel package
# (target/guest/kernel.version, written by build-test-guest.sh) into
# target/guest/disk-modules/, in load order (modules.order).
#
# Idempotent: kept when the list is complete. Needs apt-get download and dpkg-deb.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
guest=${KAGAMI_GUEST_DIR:-${CARGO_TARGET_DIR:-$repo/target}/guest}
out=$guest/disk-modules
log() { echo "build-disk-guest: $*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; exit 1
    fi
}

# Dependencies first (from each module's depends= field).
modules="drivers/scsi/scsi_common drivers/scsi/scsi_mod drivers/ata/libata drivers/ata/ata_piix
drivers/ata/libahci drivers/ata/ahci lib/crc64 crypto/crc64_rocksoft_generic lib/crc64-rocksoft
crypto/crct10dif_common crypto/crct10dif_generic lib/crc-t10dif block/t10-pi drivers/scsi/sd_mod
drivers/cdrom/cdrom drivers/scsi/sr_mod fs/jbd2/jbd2 fs/mbcache lib/crc16 crypto/crc32c_generic fs/ext4/ext4"

complete=1
for m in $modules; do [ -s "$out/$(basename "$m").ko" ] || complete=0; done
[ -s "$out/modules.order" ] || complete=0
if [ $complete = 1 ]; then exit 0; fi

[ -s "$guest/kernel.version" ] || bash "$repo/scripts/build-test-guest.sh"
pkg=$(awk '/^Package:/ {print $2}' "$guest/kernel.version")
ver=$(awk '/^Version:/ {print $2}' "$guest/kernel.version")
apt-cache show "$pkg=$ver" >/dev/null 2>&1 || as_root apt-get update -qq
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 0777 "$tmp"
log "downloading $pkg=$ver for its modules"
(cd "$tmp" && apt-get download -qq "$pkg=$ver" >/dev/null 2>&1) || (cd "$tmp" && apt-get download "$pkg=$ver" >&2)
mkdir "$tmp/x"
dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
kdir=$(ls -d "$tmp"/x/lib/modules/*/kernel)
mkdir -p "$out.partial"
: >"$out.partial/modules.order"
for m in $modules; do
    cp "$kdir/$m.ko" "$out.partial/"
    basename "$m" >>"$out.partial/modules.order"
done
rm -rf "$out"
mv "$out.partial" "$out"
log "modules -> $out"
