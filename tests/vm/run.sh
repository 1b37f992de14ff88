#!/bin/sh
# Boot a VM-tier guest and turn what it prints into a test result:
#   run.sh SCENARIO PROGRAM...
# SCENARIO is numa (two NUMA nodes, two CPUs), dax (an emulated NVDIMM
# made fsdax with ext4 dax=always, and a virtio-fs mount of a host
# directory) or devdax (the emulated NVDIMM made a device-DAX device). The
# PROGRAMs are binaries for the guest's /opt/iomem. Exit 0 when the guest's checks passed, 1 when one failed or
# the guest did not finish, 77 (skipped) with the reason when something
# the tier needs is missing here.
#
# Debian's kernel runs under QEMU with software emulation (TCG): /dev/kvm
# may be a nested hypervisor that does not boot it. QEMU always runs under
# a timeout, IOMEM_VM_TIMEOUT seconds (default 240). IOMEM_VM_KERNEL picks
# the guest kernel (default: the newest /boot/vmlinuz-* with modules);
# IOMEM_VM_KEEP=1 keeps the work directory.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 numa|dax|devdax PROGRAM..." >&2; exit 2; }
scenario=$1
shift

skip() {
        echo "SKIP: vm $scenario: $*"
        exit 77
}

qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
qboot=/usr/share/qemu/qboot.rom
[ -r "$qboot" ] || skip "no $qboot (apt-get install qemu-system-x86)"
[ -x /bin/busybox ] || skip "no /bin/busybox (apt-get install busybox-static)"
command -v cpio >/dev/null || skip "no cpio (apt-get install cpio)"

kernel=${IOMEM_VM_KERNEL:-}
if [ -z "$kernel" ]; then
        kernel=$(for k in /boot/vmlinuz-*; do
                [ -d "/lib/modules/${k#/boot/vmlinuz-}/kernel" ] && echo "$k"
        done | sort -V | tail -n 1)
fi
[ -n "$kernel" ] || skip "no guest kernel: no /boot/vmlinuz-* with modules (apt-get install linux-image-amd64)"
[ -e "$kernel" ] || skip "no guest kernel $kernel"
[ -r "$kernel" ] || skip "cannot read the guest kernel $kernel (run as root)"
kver=${kernel##*/vmlinuz-}

case $scenario in
numa | devdax) ;;
dax)
        virtiofsd=/usr/lib/qemu/virtiofsd
        [ -x "$virtiofsd" ] || skip "no $virtiofsd (apt-get install qemu-system-common)"
        [ -x /sbin/mke2fs ] || skip "no /sbin/mke2fs (apt-get install e2fsprogs)"
        [ "$(id -u)" = 0 ] || skip "virtiofsd needs root"
        guest_dax=
        for p in "$@"; do
                [ "${p##*/}" = guest_dax ] && guest_dax=$p
        done
        [ -n "$guest_dax" ] || { echo "run.sh: dax needs the guest_dax program" >&2; exit 2; }
        ;;
*)
        echo "run.sh: unknown scenario $scenario" >&2
        exit 2
        ;;
esac

work=$(mktemp -d "${TMPDIR:-/var/tmp}/iomem-vm-$scenario.XXXXXX")
vfs_pid=
# shellcheck disable=SC2317 # run by the trap
cleanup() {
        [ -z "$vfs_pid" ] || kill "$vfs_pid" 2>/dev/null || true
        if [ "${IOMEM_VM_KEEP:-0}" = 1 ]; then
                echo "vm: kept $work (console.log, initramfs.gz, virtiofsd.log)"
        else
                rm -rf "$work"
        fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$here/mkinitramfs.sh" "$work/initramfs.gz" "$kver" "$here/init.sh" "$@"

limit=${IOMEM_VM_TIMEOUT:-240}
set -- -accel tcg,thread=multi -cpu max -bios "$qboot" -nic none -no-reboot -nographic \
        -kernel "$kernel" -initrd "$work/initramfs.gz" \
        -append "console=ttyS0 panic=-1 loglevel=4 iomem.scenario=$scenario"
case $scenario in
numa)
        set -- "$@" -machine pc -smp 2 -m 1G \
                -object memory-backend-ram,id=m0,size=512M -object memory-backend-ram,id=m1,size=512M \
                -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1
        ;;
dax)
        # The NVDIMM's memory is a sparse host file; virtio-fs needs the
        # guest's RAM shared with virtiofsd.
        : >"$work/nvdimm.img"
        truncate -s 256M "$work/nvdimm.img"
        mkdir "$work/share"
        "$guest_dax" make "$work/share"
        set -- "$@" -machine pc,nvdimm=on,memory-backend=mem -smp 1 -m 512M,slots=2,maxmem=1G \
                -object memory-backend-memfd,id=mem,size=512M,share=on \
                -object memory-backend-file,id=nv0,share=on,mem-path="$work/nvdimm.img",size=256M \
                -device nvdimm,id=nvdimm0,memdev=nv0 \
                -chardev socket,id=vfs,path="$work/vfs.sock" \
                -device vhost-user-fs-pci,chardev=vfs,tag=iomemshare
        # virtiofsd is ready when it says it waits for the connection; its
        # stderr comes through a fifo that is drained from then on.
        mkfifo "$work/vfs.fifo"
        timeout "$((limit + 30))" "$virtiofsd" -f --socket-path="$work/vfs.sock" \
                -o source="$work/share" -o cache=auto 2>"$work/vfs.fifo" &
        vfs_pid=$!
        exec 3<"$work/vfs.fifo"
        while IFS= read -r line <&3; do
                echo "virtiofsd: $line" >>"$work/virtiofsd.log"
                case $line in *"Waiting for vhost-user socket connection"*) break ;; esac
        done
        cat <&3 >>"$work/virtiofsd.log" &
        exec 3<&-
        [ -S "$work/vfs.sock" ] || { cat "$work/virtiofsd.log"; echo "FAIL: vm dax: virtiofsd did not start"; exit 1; }
        ;;
devdax)
        : >"$work/nvdimm.img"
        truncate -s 256M "$work/nvdimm.img"
        set -- "$@" -machine pc,nvdimm=on -smp 1 -m 512M,slots=2,maxmem=1G \
                -object memory-backend-file,id=nv0,share=on,mem-path="$work/nvdimm.img",size=256M \
                -device nvdimm,id=nvdimm0,memdev=nv0
        ;;
esac

start=$(date +%s%N)
status=0
timeout -k 5 "$limit" "$qemu" "$@" </dev/null >"$work/console.raw" 2>&1 || status=$?
end=$(date +%s%N)
tr -d '\r' <"$work/console.raw" >"$work/console.log"
cat "$work/console.log"
elapsed=$(((end - start) / 1000000))
echo "vm: $scenario guest ran $((elapsed / 1000)).$((elapsed % 1000 / 100)) s (qemu exit status $status)"

# Checks on the host after the guest: what the guest wrote into the
# virtio-fs directory is in the host's file.
if [ "$scenario" = dax ] && grep -q '^IOMEM-VM: exit' "$work/console.log"; then
        wait "$vfs_pid" 2>/dev/null || true # it ends when QEMU disconnects
        vfs_pid=
        "$guest_dax" verify "$work/share" "virtio-fs: the host reads the bytes the guest wrote" \
                | tee -a "$work/console.log" || true
fi

grep -q '^IOMEM-VM: exit' "$work/console.log" || {
        [ "$status" = 124 ] && echo "FAIL: vm $scenario: the guest did not finish in $limit s" ||
                echo "FAIL: vm $scenario: the guest ended without finishing (qemu status $status)"
        [ ! -f "$work/virtiofsd.log" ] || cat "$work/virtiofsd.log"
        exit 1
}
pass=$(grep -c '^PASS: ' "$work/console.log" || true)
fail=$(grep -c '^FAIL: ' "$work/console.log" || true)
skipped=$(grep -c '^SKIP: ' "$work/console.log" || true)
echo "vm: $scenario: $pass passed, $fail failed, $skipped skipped"
[ "$fail" = 0 ] || exit 1
[ "$pass" != 0 ] || exit 77
exit 0
