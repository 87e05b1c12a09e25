#!/usr/bin/env bash
# Bootable images of kagami's Linux test guest, for booting through SeaBIOS
# (tests/tests/boot_images.rs):
#   target/boot-images/disk.raw   raw disk: MBR (syslinux's mbr.bin, one active
#                                 partition from sfdisk), a FAT16 partition made
#                                 with mkfs.vfat --offset, SYSLINUX installed with
#                                 syslinux --offset, files copied with mcopy
#   target/boot-images/cd.iso     ISO 9660 with ISOLINUX, El Torito
#                                 no-emulation boot, made with xorriso
# Both boot the test guest's kernel (target/guest/bzImage) with one initrd:
# the test guest's initramfs.cpio.gz followed by a second archive (the kernel
# unpacks concatenated archives) holding the disk and FAT modules of the same
# kernel package and /etc/kagami-boot.sh, the workload the command line names:
#   - loads the modules (ata_piix/ahci, sd_mod, sr_mod, vfat...);
#   - a disk whose first MiB is all zero is formatted (busybox mkdosfs: FAT32,
#     which mtools reads only with more than 65524 clusters, so give it 64 MiB),
#     gets KAGAMI.DAT (1 MiB from /dev/urandom), is synced and unmounted:
#     "BOOTIMG wrote <md5> <dev>";
#   - a disk with a FAT file system holding KAGAMI.DAT is read back:
#     "BOOTIMG read <md5>";
#   - kernel warnings, ATA errors and I/O errors in dmesg: "BOOTIMG dmesg ...".
# The kernel command line: console=ttyS0 kagami.poweroff=1
# kagami.workload=/etc/kagami-boot.sh (scripts/guest/init reads the knobs),
# and kagami.medium=disk or cd, which the workload prints ("BOOTIMG medium").
#
# No root, loop devices or mounts. Tools (Debian packages): fdisk (sfdisk),
# dosfstools (mkfs.vfat), mtools, syslinux + syslinux-common, isolinux,
# xorriso; scripts/test.sh installs them. The kernel modules come from the
# kernel package (apt-get download + dpkg-deb -x), like build-disk-guest.sh.
#
# Idempotent: the images are rebuilt only when an input changes (a stamp
# holds the inputs' hash); --force rebuilds. Concurrent runs wait on a lock.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
guest=${KAGAMI_GUEST_DIR:-$target/guest}
out=${KAGAMI_BOOT_IMAGES_DIR:-$target/boot-images}
force=0
[ "${1:-}" = "--force" ] && force=1
log() { echo "build-boot-images: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

for tool in sfdisk mkfs.vfat mcopy syslinux xorriso dpkg-deb apt-get; do
    command -v "$tool" >/dev/null || die "$tool not found: install fdisk dosfstools mtools syslinux syslinux-common isolinux xorriso"
done
MBR=/usr/lib/syslinux/mbr/mbr.bin
ISOLINUX=/usr/lib/ISOLINUX/isolinux.bin
LDLINUX=/usr/lib/syslinux/modules/bios/ldlinux.c32
for f in $MBR $ISOLINUX $LDLINUX; do
    [ -s "$f" ] || die "$f missing: install syslinux, syslinux-common and isolinux"
done

# The guest and its disk modules (both idempotent).
[ -s "$guest/bzImage" ] && [ -s "$guest/initramfs.cpio.gz" ] || bash "$repo/scripts/build-test-guest.sh"
bash "$repo/scripts/build-disk-guest.sh"

# FAT file system modules, in load order, from the guest's kernel package.
fs_modules="fs/fat/fat fs/fat/vfat fs/nls/nls_cp437 fs/nls/nls_ascii fs/nls/nls_utf8"
fsmods=$out/fs-modules
complete=1
for m in $fs_modules; do [ -s "$fsmods/$(basename "$m").ko" ] || complete=0; done
[ "$(cat "$fsmods/kernel.version" 2>/dev/null)" = "$(cat "$guest/kernel.version")" ] || complete=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 0777 "$tmp"
if [ $complete = 0 ]; then
    pkg=$(awk '/^Package:/ {print $2}' "$guest/kernel.version")
    ver=$(awk '/^Version:/ {print $2}' "$guest/kernel.version")
    log "downloading $pkg=$ver for its FAT modules"
    (cd "$tmp" && apt-get download -qq "$pkg=$ver" >/dev/null 2>&1) || (cd "$tmp" && apt-get download "$pkg=$ver" >&2)
    mkdir "$tmp/k"
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/k"
    kdir=$(ls -d "$tmp"/k/lib/modules/*/kernel)
    rm -rf "$fsmods.partial"
    mkdir -p "$fsmods.partial"
    for m in $fs_modules; do cp "$kdir/$m.ko" "$fsmods.partial/"; done
    cp "$guest/kernel.version" "$fsmods.partial/kernel.version"
    rm -rf "$fsmods" "$tmp/k" "$tmp"/*.deb
    mv "$fsmods.partial" "$fsmods"
fi

# --- the workload -----------------------------------------------------------
boot_sh=$tmp/kagami-boot.sh
cat >"$boot_sh" <<'EOF'
#!/bin/sh
# Run by the test guest's /init (kagami.workload=/etc/kagami-boot.sh).
while read -r m; do
    insmod "/lib/modules/$m.ko" || echo "BOOTIMG insmod $m failed"
done </lib/modules/modules.order
# Module init waits for libata's asynchronous port scan; wait a little more
# for the device nodes of the boot medium.
n=0
while [ ! -b /dev/sda ] && [ ! -b /dev/sr0 ] && [ $n -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
# Which medium SYSLINUX/ISOLINUX started from (their configs differ here).
echo "BOOTIMG medium $(sed -n 's/.*kagami\.medium=\([a-z]*\).*/\1/p' /proc/cmdline)"
echo "BOOTIMG devices $(cd /sys/block && echo sd* sr*)"
zero=$(dd if=/dev/zero bs=65536 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
mkdir -p /data
for b in /sys/block/sd*; do
    [ -e "$b" ] || continue
    dev=/dev/${b##*/}
    if mount -t vfat "$dev" /data 2>/dev/null; then
        if [ -f /data/KAGAMI.DAT ]; then
            echo "BOOTIMG read $(md5sum </data/KAGAMI.DAT | cut -d' ' -f1) $dev"
        fi
        umount /data
    elif [ "$(dd if="$dev" bs=65536 count=16 2>/dev/null | md5sum | cut -d' ' -f1)" = "$zero" ]; then
        mkdosfs "$dev" >/dev/null || echo "BOOTIMG mkdosfs $dev failed"
        mount -t vfat "$dev" /data || echo "BOOTIMG mount $dev failed"
        dd if=/dev/urandom of=/data/KAGAMI.DAT bs=4096 count=256 2>/dev/null
        sync
        echo "BOOTIMG wrote $(md5sum </data/KAGAMI.DAT | cut -d' ' -f1) $dev"
        umount /data || echo "BOOTIMG umount $dev failed"
    fi
done
# Kernel warnings and oopses (WARNING:, BUG:, Call Trace), ATA errors, I/O errors.
{ dmesg | grep -E "WARNING:|BUG:|Call Trace|I/O error"; dmesg | grep -iE "ata[0-9.]*: .*(error|timeout|failed|exception)"; } | sed 's/^/BOOTIMG dmesg /'
echo "BOOTIMG done"
EOF

APPEND="console=ttyS0 loglevel=4 kagami.poweroff=1 kagami.workload=/etc/kagami-boot.sh"

# The inputs; the stamp is their hash.
stamp=$( (
    cat "$0" "$guest/bzImage" "$guest/initramfs.cpio.gz" "$guest/disk-modules/modules.order" "$fsmods"/*.ko
    cat "$guest"/disk-modules/*.ko
    cat $MBR $ISOLINUX $LDLINUX
) | sha256sum | cut -d' ' -f1)
if [ $force = 0 ] && [ -s "$out/disk.raw" ] && [ -s "$out/cd.iso" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
    log "up to date: $out/disk.raw $out/cd.iso"
    exit 0
fi
rm -f "$out/stamp"

# --- the initrd: the guest's archive + modules and workload -----------------
spec=$tmp/extra.spec
{
    echo "dir /lib 0755 0 0"
    echo "dir /lib/modules 0755 0 0"
    echo "dir /etc 0755 0 0"
    echo "file /etc/kagami-boot.sh $boot_sh 0755 0 0"
    : >"$tmp/modules.order"
    while read -r m; do
        echo "file /lib/modules/$m.ko $guest/disk-modules/$m.ko 0644 0 0"
        echo "$m" >>"$tmp/modules.order"
    done <"$guest/disk-modules/modules.order"
    for m in $fs_modules; do
        echo "file /lib/modules/$(basename "$m").ko $fsmods/$(basename "$m").ko 0644 0 0"
        basename "$m" >>"$tmp/modules.order"
    done
    echo "file /lib/modules/modules.order $tmp/modules.order 0644 0 0"
} >"$spec"
# Built in the profile the caller already builds (KAGAMI_BUILD_PROFILE, as in
# build-test-guest.sh; scripts/test.sh and the tests: debug), never one that
# would compile the workspace again.
profile=${KAGAMI_BUILD_PROFILE:-debug}
pflag=(); [ "$profile" = release ] && pflag=(--release)
(cd "$repo" && cargo build -q "${pflag[@]}" -p kagami-machine --bin kagami-mkinitramfs)
"$target/$profile/kagami-mkinitramfs" "$spec" -o "$tmp/extra.cpio.gz"
cat "$guest/initramfs.cpio.gz" "$tmp/extra.cpio.gz" >"$tmp/initrd.gz"

# --- the disk image ---------------------------------------------------------
# 64 MiB; partition 1 from sector 2048 to the end, type 6 (FAT16), active.
size_mib=64
start=2048
disk=$tmp/disk.raw
truncate -s ${size_mib}M "$disk"
echo "label: dos
start=$start, type=6, bootable" | sfdisk -q "$disk"
part_sectors=$(((size_mib << 11) - start))
mkfs.vfat -F 16 -n KAGAMIBOOT --offset $start "$disk" $((part_sectors / 2)) >/dev/null
# syslinux's MBR code: the first 440 bytes, before the disk signature and
# the partition table.
dd if=$MBR of="$disk" bs=440 count=1 conv=notrunc status=none
syslinux --offset $((start * 512)) --install "$disk"
cat >"$tmp/syslinux.cfg" <<EOF
DEFAULT kagami
PROMPT 0
TIMEOUT 0
LABEL kagami
  KERNEL /bzImage
  INITRD /initrd.gz
  APPEND $APPEND kagami.medium=disk
EOF
export MTOOLS_SKIP_CHECK=1
img="$disk@@$((start * 512))"
mcopy -i "$img" "$guest/bzImage" ::/bzImage
mcopy -i "$img" "$tmp/initrd.gz" ::/initrd.gz
mcopy -i "$img" "$tmp/syslinux.cfg" ::/syslinux.cfg

# --- the ISO ----------------------------------------------------------------
iso=$tmp/iso
mkdir -p "$iso/isolinux" "$iso/boot"
cp $ISOLINUX $LDLINUX "$iso/isolinux/"
sed 's,/bzImage,/boot/bzImage,; s,/initrd.gz,/boot/initrd.gz,; s,kagami.medium=disk,kagami.medium=cd,' "$tmp/syslinux.cfg" >"$iso/isolinux/isolinux.cfg"
cp "$guest/bzImage" "$tmp/initrd.gz" "$iso/boot/"
SOURCE_DATE_EPOCH=0 xorriso -as mkisofs -quiet -o "$tmp/cd.iso" -V KAGAMI -J -R \
    -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table "$iso" 2>&1 | grep -v SOURCE_DATE_EPOCH >&2 || true

mv "$disk" "$out/disk.raw"
mv "$tmp/cd.iso" "$out/cd.iso"
echo "$stamp" >"$out/stamp"
log "built $out/disk.raw ($size_mib MiB: MBR, FAT16 partition at sector $start, SYSLINUX)"
log "built $out/cd.iso ($(($(stat -c %s "$out/cd.iso") >> 20)) MiB: ISOLINUX, El Torito no-emulation)"
log "kernel command line: $APPEND"
