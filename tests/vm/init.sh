#!/bin/sh
# /init of a VM-tier guest (busybox sh). The kernel command line names the
# scenario (iomem.scenario=numa|dax|devdax); the guest programs in /opt/iomem
# print PASS/FAIL/SKIP lines on the serial console, and the last line is
# "IOMEM-VM: exit N" (N is 1 when a program failed, else 0). A guest that
# never prints it has crashed or hung: the host's timeout ends it and
# tests/vm/run.sh fails the test.

mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mkdir -p /dev/shm /dev/hugepages /var/tmp
mount -t tmpfs shm /dev/shm
mount -t hugetlbfs hugetlbfs /dev/hugepages
PATH=/bin:/sbin:/opt/iomem
export PATH

scenario=
read -r cmdline </proc/cmdline
for word in $cmdline; do
        case $word in
        iomem.scenario=*) scenario=${word#iomem.scenario=} ;;
        esac
done

# Setup that fails is a failure of the tier, not a skip: the host had
# everything the guest needs.
fail() {
        echo "FAIL: $scenario setup: $*"
        finish 1
}

# Run a guest program; a failure makes the scenario fail.
status=0
run() {
        "$@"
        r=$?
        [ "$r" = 0 ] || [ "$r" = 77 ] || status=1
}

# The dax: Check suite (tests/test_dax.c) with its files on a mount, when
# the build made it: suite DIR EXPECT-DAX NAME.
suite() {
        [ -x /opt/iomem/guest_test_dax ] || return 0
        IOMEM_TEST_DAX_DIR=$1 IOMEM_TEST_DAX_EXPECT=$2 CK_TIMEOUT_MULTIPLIER=4 guest_test_dax
        case $? in
        0) echo "PASS: $3" ;;
        77) echo "SKIP: $3" ;;
        *) echo "FAIL: $3"; status=1 ;;
        esac
}

finish() {
        sync
        echo "IOMEM-VM: exit $1"
        poweroff -f
}

load_modules() {
        while read -r ko; do
                out=$(insmod "$ko" 2>&1) || case $out in
                *"File exists"*) ;;
                *) echo "vm: insmod $ko: $out" ;;
                esac
        done </etc/iomem-modules
}

# The raw namespace of the emulated NVDIMM (the first with a size).
nvdimm_namespace() {
        for d in /sys/bus/nd/devices/namespace*.*; do
                [ -e "$d/size" ] && [ "$(cat "$d/size")" != 0 ] && { echo "${d##*/}"; return 0; }
        done
        return 1
}

# What `ndctl create-namespace -m fsdax|devdax` does, through sysfs: the
# raw namespace of the emulated NVDIMM becomes the region's pfn device
# (fsdax: /dev/pmem0 supports DAX) or its dax device (devdax: device_dax
# makes /dev/daxR.N), with struct pages on the device itself, 2 MiB
# aligned, bound to DRIVER.
#   convert_namespace MODE SEED DRIVER
convert_namespace() {
        nd=/sys/bus/nd
        ns=$(nvdimm_namespace) || return 1
        region=$(basename "$(readlink -f "$nd/devices/$ns/..")")
        dev=$(cat "$nd/devices/$region/$2")
        [ -n "$dev" ] || return 1
        echo "$ns" >"$nd/drivers/nd_pmem/unbind" 2>/dev/null
        cat /proc/sys/kernel/random/uuid >"$nd/devices/$dev/uuid" &&
                echo pmem >"$nd/devices/$dev/mode" &&
                echo 2097152 >"$nd/devices/$dev/align" &&
                echo "$ns" >"$nd/devices/$dev/namespace" &&
                echo "$dev" >"$nd/drivers/$3/bind" || return 1
        echo "vm: $ns of $region is $1 through $dev"
}

case $scenario in
numa)
        run guest_numa
        finish "$status"
        ;;
dax)
        load_modules
        convert_namespace fsdax pfn_seed nd_pmem || fail "cannot turn the NVDIMM namespace into fsdax"
        [ -b /dev/pmem0 ] || fail "no /dev/pmem0"
        [ "$(cat /sys/block/pmem0/queue/dax 2>/dev/null)" = 1 ] || fail "/dev/pmem0 does not support DAX"
        mkdir -p /mnt/pmem /mnt/host
        # By path: busybox sh runs its own applets before looking at PATH.
        /sbin/mke2fs -q -F -t ext4 -b 4096 /dev/pmem0 || fail "mke2fs -t ext4 -b 4096 /dev/pmem0"
        mount -t ext4 -o dax=always /dev/pmem0 /mnt/pmem || fail "mount -o dax=always /dev/pmem0"
        mount -t virtiofs iomemshare /mnt/host || fail "mount -t virtiofs iomemshare"
        run guest_dax run /mnt/pmem dax
        suite /mnt/pmem 1 "dax: the dax suite on ext4 dax=always"
        # Built where libpmem2 is (scripts/setup test installs it).
        [ ! -x /opt/iomem/bench_persist ] || run bench_persist /mnt/pmem
        run guest_dax run /mnt/host virtiofs
        suite /mnt/host 0 "virtio-fs: the dax suite on virtio-fs"
        # What was written through the mappings is on the device, not in a
        # cache: it is still there after a remount.
        umount /mnt/pmem || fail "umount /mnt/pmem"
        mount -t ext4 -o dax=always /dev/pmem0 /mnt/pmem || fail "mount /dev/pmem0 again"
        run guest_dax verify /mnt/pmem "dax: bytes written through retrieve survive a remount"
        umount /mnt/pmem
        umount /mnt/host || fail "umount /mnt/host"
        finish "$status"
        ;;
devdax)
        load_modules
        convert_namespace devdax dax_seed dax_pmem || fail "cannot turn the NVDIMM namespace into devdax"
        dev=
        for d in /dev/dax*; do
                [ -c "$d" ] && { dev=$d; break; }
        done
        [ -n "$dev" ] || fail "no /dev/dax* character device"
        run guest_devdax run "$dev"
        # Another process, started afresh, finds what those wrote.
        run guest_devdax verify "$dev"
        finish "$status"
        ;;
*)
        echo "FAIL: unknown scenario '$scenario' (iomem.scenario= on the kernel command line)"
        finish 1
        ;;
esac
