#!/bin/sh
# Each C example in README.md compiles as it stands, with only the headers
# it includes itself (-Wall -Wextra -Werror), so that it works when pasted
# and the README cannot drift from the API.
set -eu
readme=$1 include=$2 cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '/^```c$/ { inside = 1; n++; next } /^```$/ { inside = 0 }
        inside { print > (dir "/example" n ".c") }' "$readme"
n=0
for example in "$tmp"/example*.c; do
        n=$((n + 1))
        "$cc" -std=gnu11 -Wall -Wextra -Werror -Wno-unused-function -I"$include" -c "$example" \
                -o "$example.o" || { echo "readme: example $n does not compile:" >&2; cat "$example" >&2; exit 1; }
done
[ "$n" -gt 0 ] || { echo "readme: no C example found" >&2; exit 1; }
echo "readme: $n C examples compile as they stand"
