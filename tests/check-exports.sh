#!/bin/sh
# The shared library exports exactly the functions that iomem.h declares,
# and the version script lists the same set; every global symbol of the
# static archive starts with iom_ or iomem_, so that linking it statically
# cannot clash with a program's own names.
set -eu
lib=$1 header=$2 map=$3 archive=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWwDdBbRr]$/ {print $3}' | sed 's/@.*//' |
        grep -v '^LIBIOMEM_' | sort -u >"$tmp/exported"
grep -oE '\<iomem_[a-z_]+\(' "$header" | tr -d '(' | sort -u >"$tmp/declared"
grep -oE '^[[:space:]]+iomem_[a-z_]+;' "$map" | tr -d ' \t;' | sort -u >"$tmp/mapped"
status=0
if ! diff -u "$tmp/declared" "$tmp/exported"; then
        echo "exports differ from the functions iomem.h declares" >&2
        status=1
fi
if ! diff -u "$tmp/declared" "$tmp/mapped"; then
        echo "lib/libiomem.map differs from the functions iomem.h declares" >&2
        status=1
fi
if grep -v '^iomem_' "$tmp/exported"; then
        echo "symbols outside iomem_* are exported" >&2
        status=1
fi
# Names starting with __ are the toolchain's (sanitizer instrumentation).
nm -g --defined-only "$archive" | awk 'NF == 3 && $3 !~ /^__/ {print $3}' | sort -u >"$tmp/archived"
if grep -vE '^(iom|iomem)_' "$tmp/archived"; then
        echo "global symbols of $(basename "$archive") above lack the iom_/iomem_ prefix" >&2
        status=1
fi
[ "$status" -ne 0 ] || echo "exports: $(wc -l <"$tmp/exported") symbols, all iomem_*, matching iomem.h and the map;" \
        "$(wc -l <"$tmp/archived") global symbols in the archive, all iom_* or iomem_*"
exit $status
