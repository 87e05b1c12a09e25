#!/usr/bin/env bash
# Build kagami's Linux test guest from Debian 12 packages:
#   target/guest/bzImage             the stock Debian kernel (linux-image-6.1.*-amd64)
#   target/guest/vmlinux             the same kernel decompressed (ELF with a PVH entry)
#   target/guest/initramfs.cpio.gz   busybox-static + scripts/guest/init, packed by
#                                    kagami's own newc writer (kagami-mkinitramfs)
#
# Idempotent: what is already built is kept. The initramfs is rebuilt when
# scripts/guest/init, the busybox binary or the file list change (a stamp
# holds their hash). KAGAMI_GUEST_DIR overrides the output folder;
# --force rebuilds everything.
#
# Needs apt-get (for `apt-get download`, which works without root once the
# package lists exist) and dpkg-deb. Boot it with QEMU, for instance:
#   qemu-system-x86_64 -m 512 -nographic -no-reboot -kernel target/guest/bzImage \
#     -initrd target/guest/initramfs.cpio.gz -append "console=ttyS0 kagami.poweroff=1"
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${KAGAMI_GUEST_DIR:-${CARGO_TARGET_DIR:-$repo/target}/guest}
force=0
[ "${1:-}" = "--force" ] && force=1
mkdir -p "$out"

log() { echo "build-test-guest: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; exit 1
    fi
}

# The package lists are needed to resolve and download packages.
ensure_apt_lists() {
    if ! apt-cache show linux-image-amd64 >/dev/null 2>&1 || ! apt-cache show busybox-static >/dev/null 2>&1; then
        log "apt package lists missing: running apt-get update"
        as_root apt-get update -qq
    fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt-get download drops privileges to _apt when it can write here.
chmod 0777 "$tmp"

# download PACKAGE: fetch one .deb into $tmp and print its path.
download() {
    (cd "$tmp" && apt-get download -qq "$1" >/dev/null 2>&1) || (cd "$tmp" && apt-get download "$1" >&2)
    ls "$tmp"/"$1"_*.deb
}

# --- kernel -----------------------------------------------------------------
if [ $force = 1 ] || [ ! -s "$out/bzImage" ]; then
    ensure_apt_lists
    # linux-image-amd64 is a metapackage; its dependency names the real one.
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9.]+-[0-9]+-amd64$/ {print $2; exit}')
    [ -n "$pkg" ] || { log "cannot resolve linux-image-amd64 to a linux-image-6.1.*-amd64 package"; exit 1; }
    log "downloading $pkg"
    deb=$(download "$pkg")
    mkdir "$tmp/kernel"
    dpkg-deb -x "$deb" "$tmp/kernel"
    vmlinuz=$(ls "$tmp"/kernel/boot/vmlinuz-* | head -n1)
    cp "$vmlinuz" "$out/bzImage.partial"
    mv "$out/bzImage.partial" "$out/bzImage"
    dpkg-deb -f "$deb" Package Version >"$out/kernel.version"
    rm -rf "$tmp/kernel" "$deb"
    log "kernel: $(basename "$vmlinuz") -> $out/bzImage"
fi

# --- vmlinux -----------------------------------------------------------------
# The same kernel, decompressed: the ELF inside the bzImage (an XZ stream).
# It has the Xen PVH entry note, so kagami can boot it directly (-kernel
# vmlinux) without running the in-kernel decompressor, which costs about
# 4.5 G instructions.
if [ $force = 1 ] || [ ! -s "$out/vmlinux" ] || [ "$out/bzImage" -nt "$out/vmlinux" ]; then
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/bzImage" | head -n1 | cut -d: -f1)
    [ -n "$off" ] || { log "no XZ stream in $out/bzImage: cannot extract vmlinux"; exit 1; }
    # xz stops after the stream, so tail may die of SIGPIPE: only xz's status counts.
    { tail -c +$((off + 1)) "$out/bzImage" || true; } | xz -dc --single-stream >"$out/vmlinux.partial"
    mv "$out/vmlinux.partial" "$out/vmlinux"
    log "vmlinux: extracted from bzImage ($(stat -c %s "$out/vmlinux") bytes)"
fi

# --- busybox ----------------------------------------------------------------
if [ $force = 1 ] || [ ! -x "$out/busybox" ]; then
    ensure_apt_lists
    log "downloading busybox-static"
    deb=$(download busybox-static)
    mkdir "$tmp/busybox"
    dpkg-deb -x "$deb" "$tmp/busybox"
    cp "$tmp/busybox/bin/busybox" "$out/busybox.partial"
    chmod 0755 "$out/busybox.partial"
    mv "$out/busybox.partial" "$out/busybox"
    dpkg-deb -f "$deb" Package Version >"$out/busybox.version"
fi

# --- initramfs ----------------------------------------------------------------
# The description, in gen_init_cpio format (see kagami-mkinitramfs --help).
spec="$tmp/initramfs.spec"
{
    for d in bin sbin usr usr/bin usr/sbin etc dev proc sys tmp root run var mnt; do
        echo "dir /$d 0755 0 0"
    done
    echo "nod /dev/console 0600 0 0 c 5 1"
    echo "nod /dev/null 0666 0 0 c 1 3"
    echo "nod /dev/ttyS0 0600 0 0 c 4 64"
    echo "file /bin/busybox $out/busybox 0755 0 0"
    echo "file /init $repo/scripts/guest/init 0755 0 0"
    # busybox runs on the build host (it is a static x86-64 binary): ask it
    # for its applets and their usual places.
    "$out/busybox" --list-full | sort | while read -r applet; do
        [ "$applet" = bin/busybox ] && continue
        echo "slink /$applet /bin/busybox 0777 0 0"
    done
} >"$spec"
stamp=$(cat "$spec" "$repo/scripts/guest/init" "$out/busybox" | sha256sum | cut -d' ' -f1)
if [ $force = 1 ] || [ ! -s "$out/initramfs.cpio.gz" ] || [ "$(cat "$out/initramfs.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "packing initramfs with kagami-mkinitramfs"
    # Built in the profile the caller already builds (run.sh: release), so a
    # clean clone does not compile the workspace twice.
    profile=${KAGAMI_BUILD_PROFILE:-debug}
    pflag=(); [ "$profile" = release ] && pflag=(--release)
    (cd "$repo" && cargo build -q "${pflag[@]}" -p kagami-machine --bin kagami-mkinitramfs)
    bin=${CARGO_TARGET_DIR:-$repo/target}/$profile/kagami-mkinitramfs
    "$bin" "$spec" -o "$out/initramfs.cpio.gz"
    cp "$spec" "$out/initramfs.spec"
    echo "$stamp" >"$out/initramfs.stamp"
fi

log "ready: $out/bzImage $out/initramfs.cpio.gz ($(cat "$out/kernel.version" | tr '\n' ' '))"
