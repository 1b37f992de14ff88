#!/bin/sh
# Build the initramfs of a VM-tier guest:
#   mkinitramfs.sh OUT.cpio.gz KERNEL-VERSION INIT PROGRAM...
# busybox (static) with relative applet links, mke2fs with the libraries
# ldd lists and /etc/mke2fs.conf (busybox's mke2fs cannot make ext4), the
# guest kernel's modules for virtio-pci, virtio-fs, NVDIMM, device DAX and ext4 in
# load order (/etc/iomem-modules), INIT as /init, and the PROGRAMs in
# /opt/iomem (static, or with the libraries ldd names).
set -eu

[ $# -ge 3 ] || { echo "usage: $0 OUT KERNEL-VERSION INIT [PROGRAM...]" >&2; exit 2; }
out=$1
kver=$2
init=$3
shift 3

work=$(mktemp -d "${TMPDIR:-/tmp}/iomem-initramfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/dev" "$root/proc" "$root/sys" \
        "$root/tmp" "$root/mnt" "$root/opt/iomem" "$root/lib/modules/$kver"

# busybox and its applets, linked relatively so that they work inside the
# cpio (busybox --install -s makes absolute links into the host's tree).
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# The libraries a dynamic program needs, at the paths ldd names.
copy_libs() {
        ldd "$1" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | while read -r lib; do
                mkdir -p "$root$(dirname "$lib")"
                cp -L "$lib" "$root$lib"
        done
}
if [ -x /sbin/mke2fs ]; then
        cp -L /sbin/mke2fs "$root/sbin/mke2fs"
        copy_libs /sbin/mke2fs
        rm -f "$root/bin/mke2fs" # busybox's, which cannot make ext4
        [ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
fi

# Modules with their dependencies first, each once, in load order.
: >"$root/etc/iomem-modules"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci fuse virtiofs \
        libnvdimm nd_btt nd_pmem nfit nd_e820 device_dax dax_pmem crc16 mbcache jbd2 crc32c_generic \
        crc32c-intel ext4; do
        modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
done | while read -r ko; do
        rel=${ko#/lib/modules/"$kver"/}
        [ -e "$root/lib/modules/$kver/$rel" ] && continue
        mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
        case $ko in
        *.ko) cp "$ko" "$root/lib/modules/$kver/$rel" ;;
        *.ko.xz) xz -dc "$ko" >"$root/lib/modules/$kver/${rel%.xz}"; rel=${rel%.xz} ;;
        *.ko.zst) zstd -qdc "$ko" >"$root/lib/modules/$kver/${rel%.zst}"; rel=${rel%.zst} ;;
        *) continue ;;
        esac
        echo "/lib/modules/$kver/$rel" >>"$root/etc/iomem-modules"
done

cp "$init" "$root/init"
chmod 755 "$root/init"
for p in "$@"; do
        cp "$p" "$root/opt/iomem/"
        # Static but for bench_persist (libpmem2 has no static build here).
        ! ldd "$p" >/dev/null 2>&1 || copy_libs "$p"
done

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
