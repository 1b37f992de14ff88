#!/bin/sh
# Everything Linux-only sits in the platform layer (lib/platform.h), or in
# the modules that exist only on Linux. Meson compiles every other file of
# the library as POSIX C11 (-std=c11 -D_POSIX_C_SOURCE=200809L), so a
# symbol POSIX lacks does not build; this catches what builds anywhere
# but works only on Linux: /proc and /sys paths, raw system calls, Linux
# headers, extensions asked for by name.
set -eu
root=$1
# The Linux-only modules, each built only on the Linux platform layer.
linux_only="lib/platform_linux.c lib/aio.c lib/rx.c lib/fabric.c
backends/fd/memfd.c backends/fd/mshare.c backends/fd/mshare_abi.c backends/fd/thp.c
backends/devdax/devdax.c"
pattern='_GNU_SOURCE|#include <linux/|"/proc/|"/sys/|[^_a-z]syscall\(|SYS_[a-z]|<sys/(syscall|vfs|statfs|xattr|eventfd|sysmacros|prctl|epoll)\.h>|__linux__|_NP\b'
bad=0 n=0
for f in "$root"/lib/*.[ch] "$root"/backends/*/*.[ch]; do
        rel=${f#"$root"/}
        case " $(echo $linux_only) " in
        *" $rel "*) continue ;;
        esac
        n=$((n + 1))
        if grep -nE "$pattern" "$f" >&2; then
                echo "portable: $rel reaches Linux outside the platform layer (lib/platform.h)" >&2
                bad=1
        fi
done
[ "$n" -gt 20 ] || { echo "portable: only $n files found under $root" >&2; exit 1; }
[ "$bad" -eq 0 ] || exit 1
echo "portable: $n files of lib/ and backends/ reach Linux only through the platform layer"
