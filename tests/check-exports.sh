#!/bin/sh
# The shared library exports exactly the functions that iomem.h declares,
# and the version script lists the same set.
set -eu
lib=$1 header=$2 map=$3
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
echo "exports: $(wc -l <"$tmp/exported") symbols, all iomem_*, matching iomem.h and the map"
exit $status
