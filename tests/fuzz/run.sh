#!/bin/sh
# Build the libFuzzer harness (tests/fuzz/fuzz_api.c) with clang, replay
# the regressions, then fuzz for a bounded time. Fails on any crash, leak,
# sanitizer report or broken invariant, leaving the input that did it in
# the output folder (copy it into tests/fuzz/regressions/ once fixed).
#
# usage: tests/fuzz/run.sh [SECONDS [BACKEND]]
#   SECONDS  how long to fuzz (default 60; 0 only builds and replays)
#   BACKEND  memfd, shm or dax: fuzz one object only (default: all three)
# The build and the corpus it grows go to $IOMEM_FUZZ_OUT (default
# build-fuzz/ in the tree).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-60}
backend=${2:-}
out=${IOMEM_FUZZ_OUT:-$root/build-fuzz}
cc=${CLANG:-clang}
mkdir -p "$out/artifacts"

if ! command -v "$cc" >/dev/null 2>&1; then
        echo "fuzz: $cc is not installed (scripts/setup installs clang)" >&2
        exit 1
fi

# The library's sources straight into the harness, instrumented alike.
# Every backend of the list in backends/meson.build, as a build with all
# of them would have it.
backends=$(sed -n "s/^ *\['\([a-z0-9_]*\)', '[a-z0-9_]*'\],*$/\1/p" "$root/backends/meson.build")
built= known=
for b in $backends; do
        built="$built X($b)"
        known="$known${known:+, }\"$b\""
done
cat >"$out/config.h" <<CONF
#define IOMEM_HAVE_NUMA 0
#define IOMEM_HAVE_AIO 0
#define IOMEM_BACKENDS_BUILT$built
#define IOMEM_BACKENDS_KNOWN $known
CONF
exe=$out/fuzz_api
if [ ! -x "$exe" ] || [ -n "$(find "$root/lib" "$root/backends" "$root/include" "$here/fuzz_api.c" \
        -newer "$exe" -name '*.[ch]' | head -n 1)" ]; then
        flags="-std=gnu11 -g -O1 -Wall -Wextra -Werror -fvisibility=hidden"
        flags="$flags -I$out -I$root -I$root/include -I$root/lib"
        for dir in "$root"/backends/*/; do
                flags="$flags -I$dir"
        done
        san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
        # The platform layer holds the syscall table; clang 14 refuses its
        # initialiser (a const object is not a constant expression in C),
        # gcc takes it. Linux's layer, as the default build has.
        # shellcheck disable=SC2086
        if ! "$cc" $flags -c -o "$out/platform.o" "$root/lib/platform_linux.c" 2>/dev/null; then
                gcc $flags -c -o "$out/platform.o" "$root/lib/platform_linux.c"
        fi
        # The asynchronous transfers, the receiver and fabric exports are
        # not fuzzed here: their stubs (aio_none.c, rx_none.c,
        # fabric_none.c) stand in for io_uring and libfabric, as in a build
        # without them.
        srcs=
        for src in "$root"/lib/*.c "$root"/backends/*/*.c; do
                case $src in
                "$root/lib/platform_linux.c" | "$root/lib/platform_posix.c" | \
                "$root/backends/fd/thp_none.c" | \
                "$root/lib/aio.c" | "$root/lib/rx.c" | "$root/lib/fabric.c") ;;
                *) srcs="$srcs $src" ;;
                esac
        done
        # shellcheck disable=SC2086
        "$cc" $flags $san -o "$exe" "$here/fuzz_api.c" "$out/platform.o" $srcs -lpthread -lrt
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
tag=${backend:-all}

# Every input that once broke something must pass for good, replayed as it
# was found: a file named memfd-*, shm-* or dax-* with that backend alone
# (the input decodes differently with all three), any other with all.
passed=0
for group in memfd shm dax all; do
        if [ "$group" = all ]; then
                regressions=$(find "$here/regressions" -type f ! -name '.*' ! -name 'README*' \
                        ! -name 'memfd-*' ! -name 'shm-*' ! -name 'dax-*' | sort)
        else
                regressions=$(find "$here/regressions" -type f -name "$group-*" | sort)
        fi
        [ -n "$regressions" ] || continue
        if [ "$group" = all ]; then
                set -- env -u IOMEM_FUZZ_BACKEND
        else
                set -- env IOMEM_FUZZ_BACKEND="$group"
        fi
        # shellcheck disable=SC2086
        if ! "$@" "$exe" $regressions >"$out/regressions-$tag.log" 2>&1; then
                cat "$out/regressions-$tag.log"
                echo "fuzz: a regression input fails again ($group)" >&2
                exit 1
        fi
        passed=$((passed + $(echo "$regressions" | wc -l)))
done
[ "$passed" -eq 0 ] || echo "fuzz: $passed regression inputs pass"
[ "$secs" -gt 0 ] || exit 0
if [ -n "$backend" ]; then
        export IOMEM_FUZZ_BACKEND="$backend"
fi

work=$out/corpus-$tag
mkdir -p "$work"
log=$out/fuzz-$tag.log
status=0
"$exe" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=1024 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$tag-" \
        "$work" "$here/corpus" >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
        tail -n 60 "$log"
        echo "fuzz: FAILED ($tag, exit $status); the input is in $out/artifacts/" >&2
        exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
echo "fuzz: $tag: ${runs:-?} inputs in ${secs}s, $cov, no crash, leak or broken invariant"
